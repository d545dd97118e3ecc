// libFuzzer target: the safetensors reader. The input is written to a file (the reader maps files),
// opened, and every tensor is read and summed. A malformed file must end in a std::runtime_error
// naming the file; anything else is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include <ATen/core/Tensor.h>

#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/dev/shm/sefar_fuzz_safetensors_" + std::to_string(::getpid());
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return 0;
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    sefar::io::SafetensorsReader reader(path);
    double sum = 0;
    for (const auto& entry : reader.entries()) {
      at::Tensor t = reader.tensor(entry.name);
      sum += double(t.numel());
      if (t.numel() > 0) sum += t.sum().item<double>();
    }
    (void)sum;
  } catch (const std::runtime_error&) {
  }
  return 0;
}

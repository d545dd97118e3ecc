// libFuzzer target: clip decoding. The input is written to a file and opened with the decoder the
// pipelines use (frame index, keyframe seeks, send-packet/receive-frame loop, scaling); up to three
// frames are decoded at small size. A bad clip must end in a VideoError; anything else (another
// exception, a crash, a sanitizer report, a hang) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "io/video.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = "/dev/shm/sefar_fuzz_clip_" + std::to_string(::getpid()) + ".mp4";
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return 0;
    if (size) std::fwrite(data, 1, size, f);
    std::fclose(f);
  }
  try {
    sefar::io::DecoderOptions options;
    sefar::io::VideoDecoder decoder(options);
    decoder.open(path);
    const int n = decoder.frame_count();
    if (n > 0) {
      sefar::io::ResizeSpec resize;
      resize.short_side = 32;
      (void)decoder.decode({0, n / 2, n - 1}, resize);
    }
  } catch (const sefar::io::VideoError&) {
  }
  return 0;
}

// libFuzzer target: the split-list parser ("path label" lines, official format), lenient and
// strict. Bad lines are reported (lenient) or end in a SplitListError (strict); anything else is a
// finding.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "io/split_list.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (bool strict : {false, true}) {
    sefar::io::SplitListOptions options;
    options.strict = strict;
    options.strip_components = size % 3;
    options.allow_missing_label = (size & 4) != 0;
    try {
      auto list = sefar::io::parse_split_list(text, "<fuzz>", "root", options);
      (void)list.summary();
    } catch (const sefar::io::SplitListError&) {
    }
  }
  return 0;
}

// libFuzzer target: the pipeline loader (JSON with comments and line tracking, `extends`, `--set`
// overrides, ${param} substitution, the canonical form). Every bad input must end in a
// PipelineError naming its place; anything else (another exception, a crash, a sanitizer report)
// is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "graph/diagnostics.h"
#include "graph/pipeline.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto doc = sefar::graph::parse_pipeline("<fuzz>", text);
    sefar::graph::apply_overrides(doc, {"epochs=3", "optimizer.lr=0.1", "runtime.threads=2"});
    sefar::graph::substitute_params(doc);
    (void)sefar::graph::to_json(doc).dump();
  } catch (const sefar::graph::PipelineError&) {
  }
  return 0;
}

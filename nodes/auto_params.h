// Pipeline parameters whose value is "auto": resolved before the pipeline is validated, from what
// the pipeline's other parameters name. A model evaluated at another size than it was trained at
// still runs (and reports a poor accuracy without complaint), so evaluation and export pipelines
// take the input geometry from the weights instead of repeating it:
//
//   crop        the model's img_size   (weights metadata "sefar.model_config")
//   views       the model's views      (same)
//   short_side  the training run's evaluation short side (metadata "sefar.eval_short_side"; weights
//               written before it was recorded: round(crop * 256 / 224), the usual 224/256 ratio)
//   classes     the classes.txt beside the split list `list`, when there is one, else ""
//
// The first three need a "weights" parameter naming a safetensors file. A value given instead of
// "auto" (in the file or with --set) is kept; where it differs from the weights' a warning says so.
#pragma once

#include <string>
#include <vector>

#include "graph/pipeline.h"

namespace sefar::nodes {

// Replaces the "auto" parameters of `doc` (see above) and returns warnings, one line each. Throws
// graph::PipelineError naming the parameter when an "auto" value cannot be resolved (weights
// missing or without the metadata), unless `lenient` (`sefar validate --schema-only`, which checks
// a pipeline before any weights exist): then such a parameter takes the value of FineGym training
// (crop 224, views [2,2,4], short side 256) and a warning says so.
std::vector<std::string> resolve_auto_params(graph::PipelineDoc& doc, bool lenient = false);

}  // namespace sefar::nodes

// Parameter groups: parameters several node types declare alike, declared once. Each group is a
// function adding the parameters to a schema (graph::NodeSpec::param_group) and an options struct
// read back from the validated values, so their names, defaults, ranges and docs cannot drift apart.
#pragma once

#include <string>

#include "graph/schema.h"

namespace sefar::nodes {

// "device" and "threads": where LibTorch runs a model and its intra-op threads (sefar_model, and
// through model_runner_params classify and export_features).
struct DeviceParams {
  std::string device = "cpu";
  // "threads" is read by the runtime, which owns LibTorch's thread count (the parameter is flagged
  // compute_threads), not by the node.

  static DeviceParams read(const graph::Params& p);
};
void device_params(graph::NodeSpec& spec);

// "weights", then the device group: a node running a trained model on its own (classify,
// export_features; the model itself is nodes/model_runner.h's LoadedModel).
struct ModelRunnerParams {
  std::string weights;
  DeviceParams device;

  static ModelRunnerParams read(const graph::Params& p);
};
void model_runner_params(graph::NodeSpec& spec);

}  // namespace sefar::nodes

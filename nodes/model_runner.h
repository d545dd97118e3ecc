// A trained model loaded from a weights file for the nodes that only run it (classify,
// export_features): the config comes from the file's metadata, the model runs in evaluation mode.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/config.h"
#include "nodes/param_groups.h"

namespace sefar::models {
class MultiGranularViT;
}

namespace sefar::nodes {

struct LoadedModel {
  models::ModelConfig config;
  std::shared_ptr<models::MultiGranularViT> model;
  std::string device;
};

// Loads `params.weights` (written by save_weights: sefar_train's model.safetensors or a checkpoint's
// best.safetensors) onto its device; errors are util::ParamErrors of "weights" or "device". The
// thread count is the runtime's (the group's "threads" is flagged compute_threads).
LoadedModel load_model_for_node(const ModelRunnerParams& params);

// The schema the nodes running a model on batches share: `doc`, their ordered input "in" of batches
// (`input_doc`), serial, and the model runner parameters (weights, device, threads). Each adds its
// own parameters and factory.
graph::NodeSpec model_runner_spec(std::string type, std::string doc, std::string input_doc);

// Per-view CLS features [B, D] and the fused feature [B, F] of one view set, averaged over the
// view sets of a batch (multi-view testing); probabilities averaged the same way.
struct ModelOutputs {
  std::vector<at::Tensor> view_features;  // per view [B, D], CPU
  at::Tensor fused;                       // [B, F], CPU
  at::Tensor probs;                       // [B, C], CPU
};
ModelOutputs run_model(LoadedModel& loaded, const std::vector<std::vector<at::Tensor>>& view_sets);

}  // namespace sefar::nodes

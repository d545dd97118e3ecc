#include "nodes/model_runner.h"

#include <filesystem>
#include <stdexcept>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "models/device.h"
#include "models/timesformer.h"
#include "models/weights.h"
#include "nodes/batch.h"
#include "util/errors.h"

namespace sefar::nodes {

LoadedModel load_model_for_node(const ModelRunnerParams& params) {
  const std::string& weights = params.weights;
  if (!std::filesystem::exists(weights))
    throw util::ParamError("weights", fmt::format("weights file {} does not exist", weights));
  LoadedModel loaded;
  try {
    loaded.config = models::model_config_from_weights(weights);
    loaded.model = models::make_model(loaded.config);
    models::load_weights(*loaded.model, weights);
  } catch (const std::exception& e) {
    throw util::ParamError("weights", fmt::format("cannot load {}: {}", weights, e.what()));
  }
  loaded.model->to(models::resolve_device(params.device.device));
  loaded.model->eval();
  loaded.device = params.device.device;
  return loaded;
}

graph::NodeSpec model_runner_spec(std::string type, std::string doc, std::string input_doc) {
  return graph::NodeSpec(std::move(type))
      .doc(std::move(doc))
      .ordered_input("in", batch_message(), std::move(input_doc))
      .serial()
      .param_group(model_runner_params);
}

ModelOutputs run_model(LoadedModel& loaded, const std::vector<std::vector<at::Tensor>>& view_sets) {
  at::NoGradGuard no_grad;
  auto& model = *loaded.model;
  const auto device = model.parameters().front().device();
  ModelOutputs out;
  for (const auto& set : view_sets) {
    std::vector<at::Tensor> views;
    for (const auto& v : set) views.push_back(v.to(device));
    auto features = model.backbone(views);
    auto head = model.head(features, /*dropout_active=*/false);
    auto probs = at::softmax(head.logits, 1);
    if (out.view_features.empty()) {
      for (auto& f : features) out.view_features.push_back(f.clone());
      out.fused = head.fused.clone();
      out.probs = probs;
    } else {
      for (std::size_t i = 0; i < features.size(); ++i) out.view_features[i].add_(features[i]);
      out.fused.add_(head.fused);
      out.probs = out.probs + probs;
    }
  }
  const double n = double(view_sets.size());
  for (auto& f : out.view_features) f = f.div(n).to(at::kCPU);
  out.fused = out.fused.div(n).to(at::kCPU);
  out.probs = out.probs.div(n).to(at::kCPU);
  return out;
}

}  // namespace sefar::nodes

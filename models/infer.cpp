#include "models/infer.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/cat.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "io/safetensors.h"
#include "models/device.h"
#include "models/timesformer.h"
#include "models/weights.h"

namespace sefar::models {

void run_inference(const ModelConfig& config, const std::string& weights_path, const std::string& inputs_path,
                   const std::string& outputs_path, const InferOptions& options) {
  const c10::Device device = resolve_device(options.device);
  auto model = make_model(config);
  LoadOptions lo;
  lo.strict = options.strict;
  load_weights(*model, weights_path, lo);
  model->to(device);
  model->eval();

  io::SafetensorsReader in(inputs_path);
  auto fail = [&inputs_path](const std::string& what) {
    throw std::runtime_error("inference inputs '" + inputs_path + "': " + what);
  };
  const size_t nv = config.views.size();
  std::vector<at::Tensor> views(nv), mix_views(nv), mix_masks(nv);
  bool has_mix = false;
  for (size_t i = 0; i < nv; ++i) {
    const std::string key = "views." + std::to_string(i);
    if (!in.contains(key))
      fail("missing tensor '" + key + "' (the model has " + std::to_string(nv) + " views)");
    views[i] = in.tensor(key);
    if (!views[i].is_floating_point()) fail("tensor '" + key + "' must be floating point");
    const std::string mv = "mix.views." + std::to_string(i), mm = "mix.masks." + std::to_string(i);
    if (in.contains(mv) != in.contains(mm)) fail("'" + mv + "' and '" + mm + "' must come together");
    if (in.contains(mv)) {
      has_mix = true;
      mix_views[i] = in.tensor(mv);
      mix_masks[i] = in.tensor(mm).to(at::kBool);
    }
  }
  if (has_mix)
    for (size_t i = 0; i < nv; ++i)
      if (!mix_views[i].defined()) fail("token mix inputs must be given for every view or none");
  const int64_t b = views[0].size(0);
  for (size_t i = 0; i < nv; ++i)
    if (views[i].dim() < 1 || views[i].size(0) != b) fail("every view must have the same batch size");
  for (size_t i = 0; i < nv; ++i)
    if (views[i].dim() == 5 && (views[i].size(3) != config.img_size || views[i].size(4) != config.img_size)) {
      const std::string what = "inference inputs '" + inputs_path + "': views." + std::to_string(i) + " is " +
                               std::to_string(views[i].size(4)) + "x" + std::to_string(views[i].size(3)) +
                               " but the weights were trained at " + std::to_string(config.img_size) + "x" +
                               std::to_string(config.img_size) +
                               " (img_size): the model runs with resized position embeddings, on inputs it was "
                               "not trained on";
      if (options.warn)
        options.warn(what);
      else
        std::fprintf(stderr, "warning: %s\n", what.c_str());
      break;
    }

  const int64_t step = options.batch_size > 0 ? options.batch_size : b;
  std::vector<at::Tensor> logits, fused;
  std::vector<std::vector<at::Tensor>> feats(nv);
  at::NoGradGuard no_grad;
  for (int64_t s = 0; s < b; s += step) {
    const int64_t n = std::min(step, b - s);
    std::vector<at::Tensor> xs;
    TokenMix mix;
    for (size_t i = 0; i < nv; ++i) {
      xs.push_back(views[i].narrow(0, s, n).to(device, at::kFloat));
      if (has_mix) {
        mix.views.push_back(mix_views[i].narrow(0, s, n).to(device, at::kFloat));
        // Per-clip masks follow the batch slice; a shared [P] mask is used as it is.
        const at::Tensor& m = mix_masks[i];
        mix.masks.push_back((m.dim() >= 2 ? m.narrow(0, s, n) : m).to(device));
      }
    }
    ModelOutput out;
    try {
      out = model->forward(xs, has_mix ? &mix : nullptr);
    } catch (const std::invalid_argument& e) {
      fail(e.what());  // shape problems: name the file they came from
    }
    logits.push_back(out.logits.to(at::kCPU, at::kFloat));
    fused.push_back(out.fused.to(at::kCPU, at::kFloat));
    for (size_t i = 0; i < nv; ++i) feats[i].push_back(out.features[i].to(at::kCPU, at::kFloat));
  }

  std::vector<std::pair<std::string, at::Tensor>> outputs;
  outputs.emplace_back("logits", at::cat(logits, 0));
  outputs.emplace_back("fused", at::cat(fused, 0));
  for (size_t i = 0; i < nv; ++i) outputs.emplace_back("features." + std::to_string(i), at::cat(feats[i], 0));
  io::save_safetensors(outputs_path, outputs,
                       {{"format", "sefar-infer-1"},
                        {"sefar.model_config", model_config_to_json(config).dump()},
                        {"weights", weights_path}});
}

}  // namespace sefar::models

#include "models/weights.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "io/safetensors.h"

namespace sefar::models {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// "module." comes from checkpoints saved through DistributedDataParallel.
std::string strip_module(const std::string& key) {
  return starts_with(key, "module.") ? key.substr(7) : key;
}

// Lists keys in an error message, shortened so that a wholly wrong file gives a readable message.
std::string key_list(const std::vector<std::string>& keys, size_t limit = 40) {
  std::string out;
  for (size_t i = 0; i < keys.size() && i < limit; ++i) out += (i ? ", " : "") + keys[i];
  if (keys.size() > limit) out += ", ... (" + std::to_string(keys.size() - limit) + " more)";
  return out;
}

int64_t square_side(int64_t n) {
  const auto g = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  return g * g == n ? g : -1;
}

std::map<std::string, at::Tensor> strip_all(const std::map<std::string, at::Tensor>& tensors,
                                            const std::string& source) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : tensors) {
    const std::string key = strip_module(k);
    if (!out.emplace(key, v).second)
      throw std::runtime_error("loading weights from '" + source + "': key '" + key +
                               "' appears both with and without the 'module.' prefix");
  }
  return out;
}

}  // namespace

std::string LoadReport::summary() const {
  std::string s = "loaded " + std::to_string(loaded.size()) + " tensors, " + std::to_string(missing.size()) +
                  " missing, " + std::to_string(unexpected.size()) + " unexpected";
  if (!resized.empty()) s += ", resized " + key_list(resized);
  return s;
}

std::map<std::string, at::Tensor> state_dict(const torch::nn::Module& model) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : model.named_parameters(true)) out.emplace(p.key(), p.value());
  for (const auto& b : model.named_buffers(true)) out.emplace(b.key(), b.value());
  return out;
}

LoadReport load_state_dict(torch::nn::Module& model, const std::map<std::string, at::Tensor>& tensors,
                           const LoadOptions& options, const std::string& source) {
  const std::map<std::string, at::Tensor> src = strip_all(tensors, source);
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& p : model.named_parameters(true)) targets.emplace_back(p.key(), p.value());
  for (const auto& b : model.named_buffers(true)) targets.emplace_back(b.key(), b.value());

  LoadReport report;
  std::vector<std::string> mismatches;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (destination, source)
  std::set<std::string> known;
  for (auto& [name, dst] : targets) {
    known.insert(name);
    auto it = src.find(name);
    if (it == src.end()) {
      report.missing.push_back(name);
      continue;
    }
    at::Tensor value = it->second;
    if (!value.defined()) {
      mismatches.push_back(name + ": undefined tensor");
      continue;
    }
    if (dst.is_floating_point() != value.is_floating_point()) {
      mismatches.push_back(name + ": file dtype " + std::string(c10::toString(value.scalar_type())) +
                           " vs model " + c10::toString(dst.scalar_type()));
      continue;
    }
    if (value.sizes() != dst.sizes()) {
      const bool pos = ends_with(name, "pos_embed") && options.resize_pos_embed && value.dim() == 3 &&
                       dst.dim() == 3 && value.size(0) == 1 && value.size(2) == dst.size(2) &&
                       square_side(value.size(1) - 1) > 0 && square_side(dst.size(1) - 1) > 0;
      if (!pos) {
        mismatches.push_back(name + ": file " + shape_str(value.sizes()) + " vs model " +
                             shape_str(dst.sizes()));
        continue;
      }
      const int64_t g = square_side(dst.size(1) - 1);
      report.resized.push_back(name + ": " + shape_str(value.sizes()) + " -> " + shape_str(dst.sizes()));
      value = resize_pos_embed(value, g, g, options.bicubic);
    }
    copies.emplace_back(dst, value);
    report.loaded.push_back(name);
  }
  for (const auto& [name, value] : src)
    if (!known.count(name)) report.unexpected.push_back(name);

  std::string err;
  if (!mismatches.empty())
    err += std::to_string(mismatches.size()) + " shape/dtype mismatch(es): " + key_list(mismatches);
  if (options.strict && !report.missing.empty())
    err += std::string(err.empty() ? "" : "; ") + std::to_string(report.missing.size()) +
           " missing key(s): " + key_list(report.missing);
  if (options.strict && !report.unexpected.empty())
    err += std::string(err.empty() ? "" : "; ") + std::to_string(report.unexpected.size()) +
           " unexpected key(s): " + key_list(report.unexpected);
  if (!err.empty()) throw std::runtime_error("loading weights from '" + source + "': " + err);

  // Only after every check passed, so that a failed load leaves the model untouched.
  at::NoGradGuard no_grad;
  for (auto& [dst, value] : copies) dst.copy_(value);
  return report;
}

LoadReport load_weights(torch::nn::Module& model, const std::string& path, const LoadOptions& options) {
  return load_state_dict(model, io::load_safetensors(path), options, path);
}

void save_weights(const torch::nn::Module& model, const std::string& path,
                  const std::map<std::string, std::string>& metadata) {
  io::save_safetensors(path, state_dict(model), metadata);
}

void save_weights(const MultiGranularViT& model, const std::string& path,
                  std::map<std::string, std::string> metadata) {
  metadata["sefar.model_config"] = model_config_to_json(model.config()).dump();
  metadata.emplace("format", "pt");  // the convention of safetensors.torch.save_file
  save_weights(static_cast<const torch::nn::Module&>(model), path, metadata);
}

ModelConfig model_config_from_weights(const std::string& path) {
  io::SafetensorsReader reader(path);
  auto it = reader.metadata().find("sefar.model_config");
  if (it == reader.metadata().end())
    throw std::runtime_error("weights file '" + path +
                             "' stores no model config (metadata 'sefar.model_config')");
  try {
    return model_config_from_json(nlohmann::json::parse(it->second));
  } catch (const std::exception& e) {
    throw std::runtime_error("weights file '" + path + "': bad model config in metadata: " + e.what());
  }
}

LoadReport load_timm_vit(MultiGranularViT& model, const std::map<std::string, at::Tensor>& tensors,
                         bool strict, const std::string& source) {
  const ModelConfig& c = model.config();
  const std::string prefix = "vit.model.";
  static const std::set<std::string> top = {
      "cls_token",   "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
      "norm.weight", "norm.bias"};
  // timm keys that are not backbone weights and are expected to stay behind.
  static const std::vector<std::string> benign = {"head.", "head_dist.", "fc_norm.", "pre_logits.",
                                                  "dist_token"};

  std::map<std::string, at::Tensor> mapped;
  std::vector<std::string> unused, foreign, resized;
  for (const auto& [k, v] : strip_all(tensors, source)) {
    if (!top.count(k) && !starts_with(k, "blocks.")) {
      unused.push_back(k);
      bool ok = false;
      for (const auto& b : benign) ok = ok || starts_with(k, b);
      if (!ok) foreign.push_back(k);
      continue;
    }
    at::Tensor value = v;
    if (k == "patch_embed.proj.weight" && value.dim() == 2 &&
        value.size(1) == c.in_chans * c.patch_size * c.patch_size)
      value = value.reshape({value.size(0), c.in_chans, c.patch_size, c.patch_size});  // linear patchify
    if (k == "pos_embed" && value.dim() == 3 && value.size(1) != 1 + c.num_patches() &&
        square_side(value.size(1) - 1) > 0) {
      const auto before = value.sizes().vec();
      value = resize_pos_embed(value, c.grid(), c.grid(), /*bicubic=*/true);
      resized.push_back(prefix + k + ": " + shape_str(before) + " -> " + shape_str(value.sizes()));
    }
    mapped[prefix + k] = value;
    // Temporal attention starts as a copy of the spatial attention (official load_pretrained).
    if (starts_with(k, "blocks.")) {
      for (const auto& [from, to] : {std::pair<std::string, std::string>{".attn.", ".temporal_attn."},
                                     std::pair<std::string, std::string>{".norm1.", ".temporal_norm1."}}) {
        const auto pos = k.find(from);
        if (pos != std::string::npos) {
          std::string tk = k;
          tk.replace(pos, from.size(), to);
          if (!tensors.count(tk) && !tensors.count("module." + tk)) mapped[prefix + tk] = value;
        }
      }
    }
  }

  // What the model may legitimately lack from ImageNet weights.
  auto allowed_missing = [&](const std::string& key) {
    return starts_with(key, prefix + "time_embed.") || key.find(".temporal_fc.") != std::string::npos ||
           !starts_with(key, prefix);  // the fusion head
  };
  std::vector<std::string> bad_missing;
  for (const auto& p : model.named_parameters(true))
    if (!mapped.count(p.key()) && !allowed_missing(p.key())) bad_missing.push_back(p.key());
  if (strict && (!bad_missing.empty() || !foreign.empty())) {
    std::string err;
    if (!bad_missing.empty())
      err += std::to_string(bad_missing.size()) + " backbone key(s) missing: " + key_list(bad_missing);
    if (!foreign.empty())
      err += std::string(err.empty() ? "" : "; ") + std::to_string(foreign.size()) +
             " key(s) that are not ViT weights: " + key_list(foreign);
    throw std::runtime_error("loading timm ViT weights from '" + source + "': " + err);
  }

  LoadOptions opts;
  opts.strict = false;
  opts.resize_pos_embed = false;  // done above, bicubically
  LoadReport report = load_state_dict(model, mapped, opts, source);
  report.unexpected.insert(report.unexpected.end(), unused.begin(), unused.end());
  report.resized = resized;

  // temporal_fc: zero after the first block, as a fresh TimeSformer.
  at::NoGradGuard no_grad;
  for (auto& p : model.named_parameters(true)) {
    const std::string& key = p.key();
    if (starts_with(key, prefix + "blocks.") && key.find(".temporal_fc.") != std::string::npos &&
        !starts_with(key, prefix + "blocks.0."))
      p.value().zero_();
  }
  return report;
}

LoadReport load_timm_vit(MultiGranularViT& model, const std::string& path, bool strict) {
  return load_timm_vit(model, io::load_safetensors(path), strict, path);
}

}  // namespace sefar::models

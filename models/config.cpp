#include "models/config.h"

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace sefar::models {

ModelConfig ModelConfig::tiny(int64_t num_classes, std::vector<int64_t> views) {
  ModelConfig c;
  c.size = "tiny";
  c.num_classes = num_classes;
  c.views = std::move(views);
  return c;
}

ModelConfig ModelConfig::small(int64_t num_classes, std::vector<int64_t> views) {
  ModelConfig c;
  c.size = "S";
  c.img_size = 224;
  c.patch_size = 16;
  c.embed_dim = 384;
  c.depth = 12;
  c.num_heads = 6;
  c.num_classes = num_classes;
  c.views = std::move(views);
  return c;
}

ModelConfig ModelConfig::base(int64_t num_classes, std::vector<int64_t> views) {
  ModelConfig c = small(num_classes, std::move(views));
  c.size = "B";
  c.embed_dim = 768;
  c.num_heads = 12;
  return c;
}

ModelConfig ModelConfig::preset(const std::string& size) {
  if (size == "tiny") return tiny();
  if (size == "S" || size == "small") return small();
  if (size == "B" || size == "base") return base();
  throw std::invalid_argument("unknown model size '" + size + "' (expected tiny, S or B)");
}

void ModelConfig::validate() const {
  std::string err;
  auto bad = [&err](const std::string& s) { err += (err.empty() ? "" : "; ") + s; };
  if (patch_size <= 0) bad("patch_size must be positive");
  if (img_size <= 0 || (patch_size > 0 && img_size % patch_size != 0))
    bad("img_size " + std::to_string(img_size) + " must be a positive multiple of patch_size " +
        std::to_string(patch_size));
  if (in_chans <= 0) bad("in_chans must be positive");
  if (embed_dim <= 0 || num_heads <= 0 || embed_dim % num_heads != 0)
    bad("embed_dim " + std::to_string(embed_dim) + " must be a positive multiple of num_heads " +
        std::to_string(num_heads));
  if (depth <= 0) bad("depth must be positive");
  if (!(mlp_ratio > 0)) bad("mlp_ratio must be positive");
  if (views.empty()) bad("views must list at least one view");
  for (int64_t t : views)
    if (t <= 0) bad("every view needs a positive frame count");
  if (num_classes <= 0) bad("num_classes must be positive");
  if (fusion_dim <= 0) bad("fusion_dim must be positive");
  auto rate = [&bad](const char* name, double v) {
    if (!(v >= 0.0 && v < 1.0)) bad(std::string(name) + " must be in [0, 1)");
  };
  rate("drop_rate", drop_rate);
  rate("attn_drop_rate", attn_drop_rate);
  rate("drop_path_rate", drop_path_rate);
  rate("head_dropout", head_dropout);
  if (!err.empty()) throw std::invalid_argument("model config: " + err);
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("model config must be a JSON object");
  ModelConfig c;
  if (j.contains("size")) {
    if (!j.at("size").is_string()) throw std::invalid_argument("model config: 'size' must be a string");
    const std::string size = j.at("size").get<std::string>();
    // "custom" marks a config written out with every field; it starts from the defaults.
    if (size == "custom")
      c.size = size;
    else
      c = ModelConfig::preset(size);
  }
  static const std::set<std::string> known = {
      "size",      "img_size",       "patch_size",     "in_chans",     "embed_dim",   "depth",
      "num_heads", "mlp_ratio",      "qkv_bias",       "views",        "num_classes", "fusion_dim",
      "drop_rate", "attn_drop_rate", "drop_path_rate", "head_dropout", "attention", "init"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!known.count(it.key())) throw std::invalid_argument("model config: unknown field '" + it.key() + "'");
  try {
    auto get = [&j](const char* key, auto& field) {
      if (j.contains(key)) field = j.at(key).get<std::decay_t<decltype(field)>>();
    };
    get("img_size", c.img_size);
    get("patch_size", c.patch_size);
    get("in_chans", c.in_chans);
    get("embed_dim", c.embed_dim);
    get("depth", c.depth);
    get("num_heads", c.num_heads);
    get("mlp_ratio", c.mlp_ratio);
    get("qkv_bias", c.qkv_bias);
    get("views", c.views);
    get("num_classes", c.num_classes);
    get("fusion_dim", c.fusion_dim);
    get("drop_rate", c.drop_rate);
    get("attn_drop_rate", c.attn_drop_rate);
    get("drop_path_rate", c.drop_path_rate);
    get("head_dropout", c.head_dropout);
    if (j.contains("attention"))
      c.attention = attention_impl_from_string(j.at("attention").get<std::string>());
    if (j.contains("init")) c.init = param_init_from_string(j.at("init").get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("model config: ") + e.what());
  }
  c.validate();
  return c;
}

nlohmann::json model_config_to_json(const ModelConfig& c) {
  return {{"size", c.size},
          {"img_size", c.img_size},
          {"patch_size", c.patch_size},
          {"in_chans", c.in_chans},
          {"embed_dim", c.embed_dim},
          {"depth", c.depth},
          {"num_heads", c.num_heads},
          {"mlp_ratio", c.mlp_ratio},
          {"qkv_bias", c.qkv_bias},
          {"views", c.views},
          {"num_classes", c.num_classes},
          {"fusion_dim", c.fusion_dim},
          {"drop_rate", c.drop_rate},
          {"attn_drop_rate", c.attn_drop_rate},
          {"drop_path_rate", c.drop_path_rate},
          {"head_dropout", c.head_dropout},
          {"attention", to_string(c.attention)},
          {"init", to_string(c.init)}};
}

}  // namespace sefar::models

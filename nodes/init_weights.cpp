#include "nodes/init_weights.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "graph/diagnostics.h"
#include "graph/json_source.h"
#include "graph/runtime.h"
#include "io/safetensors.h"
#include "models/timesformer.h"
#include "models/weights.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace sefar::nodes {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool has_prefix(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// What the file's key names look like, to tell a user who named it under the other parameter.
struct Naming {
  bool sefar = false;  // official/sefar state-dict names (vit.model.*, fc.*), perhaps behind a prefix
  bool timm = false;   // timm ViT names (blocks.N.attn.*, cls_token, ...)
};

// The key without a leading "module." (DistributedDataParallel) or "student."/"teacher." (a training
// checkpoint).
std::string bare(const std::string& key) {
  for (const char* prefix : {"module.", "student.", "teacher."})
    if (has_prefix(key, prefix)) return key.substr(std::string(prefix).size());
  return key;
}

Naming naming_of(const std::map<std::string, at::Tensor>& tensors) {
  Naming n;
  for (const auto& [key, value] : tensors) {
    const std::string k = bare(key);
    n.sefar = n.sefar || has_prefix(k, "vit.model.");
    n.timm = n.timm || has_prefix(k, "blocks.") || k == "cls_token";
  }
  return n;
}

// Width and depth of the ViT in the file (0 when it cannot tell), to name a model of another size in
// one sentence instead of a shape mismatch per tensor.
std::pair<std::int64_t, std::int64_t> vit_size(const std::map<std::string, at::Tensor>& tensors) {
  static const std::regex block(R"((?:vit\.model\.)?blocks\.(\d+)\..*)");
  std::int64_t width = 0, depth = 0;
  for (const auto& [full, value] : tensors) {
    const std::string key = bare(full);
    std::smatch m;
    if (std::regex_match(key, m, block)) depth = std::max<std::int64_t>(depth, std::stoll(m[1]) + 1);
    const bool cls = key == "cls_token" || key == "vit.model.cls_token";
    if (cls && value.dim() == 3) width = value.size(2);
  }
  return {width, depth};
}

json report_json(const std::string& param, const std::string& path, const models::LoadReport& r) {
  return json{{"parameter", param},  {"file", path},         {"summary", r.summary()},
              {"loaded", r.loaded},  {"missing", r.missing}, {"unexpected", r.unexpected},
              {"resized", r.resized}};
}

// Tensor names by module ("fc.weight", "fc.bias" -> "fc"), blocks merged ("vit.model.blocks.11.temporal_fc"
// -> "vit.model.blocks.*.temporal_fc (x12)"), in first-seen order.
std::string grouped(const json& keys) {
  static const std::regex block(R"(blocks\.\d+\.)");
  static const std::regex param(R"(\.(weight|bias)$)");
  std::map<std::string, std::set<std::string>> modules;
  std::vector<std::string> order;
  for (const auto& k : keys) {
    const std::string module = std::regex_replace(k.get<std::string>(), param, "");
    const std::string g = std::regex_replace(module, block, "blocks.*.");
    if (modules[g].empty()) order.push_back(g);
    modules[g].insert(module);
  }
  std::string out;
  for (const auto& g : order)
    out += (out.empty() ? "" : ", ") + g +
           (modules[g].size() > 1 ? fmt::format(" (x{})", modules[g].size()) : "");
  return out;
}


}  // namespace

json load_initial_weights(models::MultiGranularViT& model, const std::string& param, const std::string& path,
                          bool backbone_only) {
  auto fail = [&](const std::string& why) {
    return util::ParamError(param, fmt::format("{}: {}", path, why));
  };
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw fail("no such file");
  std::map<std::string, at::Tensor> tensors;
  try {
    tensors = io::load_safetensors(path);
  } catch (const std::exception& e) {
    throw fail(fmt::format("not a readable safetensors file ({})", e.what()));
  }
  const Naming naming = naming_of(tensors);
  const auto [width, depth] = vit_size(tensors);
  const models::ModelConfig& c = model.config();
  if (width > 0 && depth > 0 && (width != c.embed_dim || depth != c.depth))
    throw fail(
        fmt::format("the file holds a ViT of width {} with {} blocks, the model (size {}) has width {} and "
                    "{} blocks: choose the model size that matches the weights (S: ViT-S/16, B: ViT-B/16)",
                    width, depth, c.size, c.embed_dim, c.depth));
  try {
    if (param == "pretrained") {
      if (naming.sefar && !naming.timm)
        throw std::runtime_error(
            "it holds a whole SeFAR model (vit.model.* keys), not ImageNet ViT weights in timm's naming: "
            "name it with \"init_from\" instead");
      return report_json(param, path, models::load_timm_vit(model, tensors, /*strict=*/true, path));
    }
    // A training checkpoint (RUN_DIR/checkpoints/*.safetensors): the model a run leaves, its teacher
    // once there is one, else its student; the optimiser state stays behind.
    std::string part;
    for (const char* prefix : {"teacher.", "student."})
      if (part.empty() && tensors.count(std::string(prefix) + "vit.model.cls_token")) part = prefix;
    if (!part.empty()) {
      std::map<std::string, at::Tensor> model_tensors;
      for (const auto& [key, value] : tensors)
        if (has_prefix(key, part)) model_tensors.emplace(key.substr(part.size()), value);
      tensors = std::move(model_tensors);
    } else if (naming.timm && !naming.sefar) {
      throw std::runtime_error(
          "it holds ViT weights in timm's naming (blocks.N.*), not a whole SeFAR model: name it with "
          "\"pretrained\" instead");
    }
    models::LoadOptions options;  // strict; pos_embed resized ('nearest', as the official forward)
    std::vector<std::string> left_out, time_resized;  // by backbone_only
    if (backbone_only) {
      // The time embeddings follow the model's views: another frame count is resized the way the
      // official forward resizes it (nearest), a view the model lacks is left out, and a view the
      // file lacks stays as built (an ImageNet start has none at all).
      const auto own = models::state_dict(model);
      for (auto it = tensors.begin(); it != tensors.end();) {
        const std::string key = bare(it->first);
        const bool time_embed = has_prefix(key, "vit.model.time_embed.");
        const auto mine = own.find(key);
        if (!has_prefix(key, "vit.model.") || (time_embed && mine == own.end())) {
          left_out.push_back(it->first);
          it = tensors.erase(it);
          continue;
        }
        at::Tensor& value = it->second;
        if (time_embed && value.dim() == 3 && mine->second.dim() == 3 &&
            value.size(1) != mine->second.size(1) && value.size(0) == 1 &&
            value.size(2) == mine->second.size(2)) {
          time_resized.push_back(fmt::format("{}: [1, {}, {}] -> [1, {}, {}]", key, value.size(1),
                                             value.size(2), mine->second.size(1), mine->second.size(2)));
          value = models::resize_time_embed(value, mine->second.size(1));
        }
        ++it;
      }
      options.strict = false;  // the head is missing by design; the backbone is checked below
    }
    models::LoadReport loaded = models::load_state_dict(model, tensors, options, path);
    if (backbone_only) {
      std::vector<std::string> backbone_missing;
      for (const auto& key : loaded.missing)
        if (has_prefix(key, "vit.model.") && !has_prefix(key, "vit.model.time_embed."))
          backbone_missing.push_back(key);
      if (!backbone_missing.empty() || !loaded.unexpected.empty())
        throw std::runtime_error(fmt::format(
            "init_from_parts \"backbone\": the file's backbone does not match the model's ({} backbone "
            "tensors missing: {}; {} unexpected: {})",
            backbone_missing.size(), fmt::join(backbone_missing, ", "), loaded.unexpected.size(),
            fmt::join(loaded.unexpected, ", ")));
      loaded.unexpected = left_out;
      loaded.resized.insert(loaded.resized.end(), time_resized.begin(), time_resized.end());
    }
    json report = report_json(param, path, loaded);
    if (backbone_only) {
      report["parts"] = "backbone";
      report["summary"] = "the backbone only (the head as built): " + report["summary"].get<std::string>();
    }
    if (!part.empty()) {
      report["checkpoint_part"] = part.substr(0, part.size() - 1);
      report["summary"] =
          "the checkpoint's " + part.substr(0, part.size() - 1) + ": " + report["summary"].get<std::string>();
    }
    return report;
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
}

std::string initial_weights_summary(const json& report) {
  std::string s = fmt::format("{} from {}: {}", report.value("parameter", ""), report.value("file", ""),
                              report.value("summary", ""));
  // summary() already lists what was resized; the lists below say what stayed as built.
  if (!report["missing"].empty())
    s += "\n  kept from the model's own initialisation: " + grouped(report["missing"]);
  if (!report["unexpected"].empty()) s += "\n  left out of the file: " + grouped(report["unexpected"]);
  return s;
}

void write_initial_weights(const std::string& run_dir, const json& report) {
  const std::string path = (fs::path(run_dir) / "initial_weights.json").string();
  if (report.is_null()) {  // built from scratch: no earlier run's file may say otherwise
    std::error_code ec;
    fs::remove(path, ec);
    return;
  }
  try {
    util::write_file_atomic(path, graph::safe_dump(report, 2) + "\n");
  } catch (const std::exception& e) {
    throw graph::StorageError(fmt::format("cannot write {}: {}", path, e.what()));
  }
}

}  // namespace sefar::nodes

#include "nodes/auto_params.h"

#include <cmath>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (in fmt/format.h only before fmt 11)
#include <nlohmann/json.hpp>

#include "graph/diagnostics.h"
#include "io/safetensors.h"
#include "models/config.h"

namespace sefar::nodes {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

bool is_auto(const json& v) {
  return v.is_string() && v.get<std::string>() == "auto";
}

// What trained weights say about the inputs they expect.
struct WeightsFacts {
  std::int64_t crop = 0;
  std::vector<std::int64_t> views;
  std::int64_t short_side = 0;
  bool short_side_recorded = false;
};

WeightsFacts read_facts(const std::string& path) {
  io::SafetensorsReader reader(path);
  const auto& meta = reader.metadata();
  auto config = meta.find("sefar.model_config");
  if (config == meta.end())
    throw std::runtime_error(
        "it stores no model config (metadata \"sefar.model_config\"): not written by sefar");
  const models::ModelConfig c = models::model_config_from_json(json::parse(config->second));
  WeightsFacts f;
  f.crop = c.img_size;
  f.views = c.views;
  if (auto side = meta.find("sefar.eval_short_side"); side != meta.end()) {
    f.short_side = std::stoll(side->second);
    f.short_side_recorded = true;
  } else {
    f.short_side = std::llround(double(f.crop) * 256.0 / 224.0);
  }
  return f;
}

}  // namespace

std::vector<std::string> resolve_auto_params(graph::PipelineDoc& doc, bool lenient) {
  std::vector<std::string> warnings;
  json& params = doc.params;
  auto diagnostic = [&](const std::string& key, const std::string& message) {
    int line = doc.line_of(doc.file, {"params", key});
    std::string file = doc.file;
    if (line == 0 && !doc.base.empty()) {
      file = doc.base;
      line = doc.line_of(file, {"params", key});
    }
    return graph::Diagnostic{file, line, 0, "", "", key, message};
  };
  auto has = [&](const char* key) { return params.contains(key); };

  // classes: beside the list.
  if (has("classes") && is_auto(params["classes"])) {
    std::string found;
    if (has("list") && params["list"].is_string()) {
      const fs::path beside = fs::path(params["list"].get<std::string>()).parent_path() / "classes.txt";
      std::error_code ec;
      if (fs::is_regular_file(beside, ec)) found = beside.string();
    }
    params["classes"] = found;
  }

  // crop, views, short_side: from the weights.
  std::vector<std::string> wanted;  // the ones set to "auto"
  for (const char* key : {"crop", "views", "short_side"})
    if (has(key) && is_auto(params[key])) wanted.push_back(key);
  const bool named = has("weights") && params["weights"].is_string();
  const std::string weights = named ? params["weights"].get<std::string>() : "";
  std::optional<WeightsFacts> facts;
  std::string why = "the pipeline has no \"weights\" parameter naming them";
  std::error_code ec;
  if (named && !fs::is_regular_file(weights, ec)) {
    why = weights + ", but it does not exist";
  } else if (named) {
    try {
      facts = read_facts(weights);
    } catch (const std::exception& e) {
      why = weights + ", but " + e.what();
    }
  }
  if (!facts) {
    if (wanted.empty()) return warnings;  // the node that loads the weights reports it
    if (lenient) {
      const json fallback{{"crop", 224}, {"views", {2, 2, 4}}, {"short_side", 256}};
      std::vector<std::string> used;
      for (const auto& key : wanted) {
        params[key] = fallback[key];
        used.push_back(fmt::format("{} {}", key, fallback[key].dump()));
      }
      warnings.push_back(
          fmt::format("note: \"auto\" parameters checked with {}: they take the values of the "
                      "weights, {}",
                      fmt::join(used, ", "), why));
      return warnings;
    }
    std::vector<graph::Diagnostic> problems;
    for (const auto& key : wanted)
      problems.push_back(
          diagnostic(key, fmt::format("param \"{}\": \"auto\" takes the value from the weights {}; "
                                      "train first or give --set weights=... (or --set {}=...)",
                                      key, why, key)));
    throw graph::PipelineError(std::move(problems));
  }
  const json from_weights{{"crop", facts->crop}, {"views", facts->views}, {"short_side", facts->short_side}};
  for (const char* key : {"crop", "views", "short_side"}) {
    if (!has(key)) continue;
    json& value = params[key];
    if (is_auto(value)) {
      value = from_weights[key];
    } else if (value != from_weights[key] &&
               !(std::string(key) == "short_side" && !facts->short_side_recorded)) {
      warnings.push_back(fmt::format(
          "warning: param \"{}\" is {} but the weights {} were trained with {}: the model sees inputs it was "
          "not trained on (\"auto\" takes the weights' value)",
          key, value.dump(), weights, from_weights[key].dump()));
    }
  }
  return warnings;
}

}  // namespace sefar::nodes

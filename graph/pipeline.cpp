#include "graph/pipeline.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <set>

#include <fmt/format.h>

namespace sefar::graph {

namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kTopLevelKeys = {"name",   "description", "extends", "params",      "runtime",
                                                "models", "nodes",       "edges",   "remove_edges"};
const std::vector<std::string> kNodeKeys = {"type", "params", "concurrency", "description"};
const std::vector<std::string> kModelKeys = {"type", "params", "description"};
constexpr int kMaxExtendsDepth = 16;

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

struct Loader {
  std::vector<Diagnostic> problems;

  void problem(const JsonSource& src, std::vector<std::string> keys, std::string node, std::string key,
               std::string message) {
    problems.push_back(Diagnostic{src.path(), src.line_of(keys), 0, std::move(node), "", std::move(key),
                                  std::move(message)});
  }

  void remove_node(PipelineDoc& doc, const std::string& id) {
    doc.nodes.erase(
        std::remove_if(doc.nodes.begin(), doc.nodes.end(), [&](const NodeDecl& n) { return n.id == id; }),
        doc.nodes.end());
    doc.edges.erase(std::remove_if(doc.edges.begin(), doc.edges.end(),
                                   [&](const EdgeDecl& e) { return e.from_node == id || e.to_node == id; }),
                    doc.edges.end());
  }

  void overlay(PipelineDoc& doc, const JsonSource& src) {
    const json& root = src.root();
    const std::string& file = src.path();
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), it.key()) == kTopLevelKeys.end()) {
        auto guess = closest_match(it.key(), kTopLevelKeys);
        problem(src, {it.key()}, "", it.key(),
                fmt::format("unknown top-level key \"{}\"{}", it.key(),
                            guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess)));
      }
    }
    if (root.contains("name")) {
      if (root["name"].is_string())
        doc.name = root["name"];
      else
        problem(src, {"name"}, "", "name", "\"name\" must be a string");
    }
    if (root.contains("description") && root["description"].is_string())
      doc.description = root["description"];
    for (const char* block : {"params", "runtime"}) {
      if (!root.contains(block)) continue;
      const json& b = root[block];
      if (!b.is_object()) {
        problem(src, {block}, "", block, fmt::format("\"{}\" must be an object", block));
        continue;
      }
      json& target = std::string(block) == "params" ? doc.params : doc.runtime;
      for (auto it = b.begin(); it != b.end(); ++it) target[it.key()] = it.value();
    }
    if (root.contains("models")) {
      const json& models = root["models"];
      if (!models.is_object()) {
        problem(src, {"models"}, "", "models", "\"models\" must be an object mapping model ids to models");
      } else {
        for (auto it = models.begin(); it != models.end(); ++it)
          overlay_node(doc, src, it.key(), it.value(), "models");
      }
    }
    if (root.contains("nodes")) {
      const json& nodes = root["nodes"];
      if (!nodes.is_object()) {
        problem(src, {"nodes"}, "", "nodes", "\"nodes\" must be an object mapping node ids to nodes");
      } else {
        for (auto it = nodes.begin(); it != nodes.end(); ++it)
          overlay_node(doc, src, it.key(), it.value(), "nodes");
      }
    }
    if (root.contains("remove_edges")) {
      const json& list = root["remove_edges"];
      if (!list.is_array()) {
        problem(src, {"remove_edges"}, "", "remove_edges", "\"remove_edges\" must be a list of edges");
      } else {
        for (const auto& e : list) {
          EdgeDecl edge;
          if (!e.is_string() || !parse_edge(e.get<std::string>(), edge)) {
            problem(src, {"remove_edges"}, "", "remove_edges",
                    fmt::format("malformed edge {}: expected \"node.port -> node.port\"", quote_value(e)));
            continue;
          }
          auto before = doc.edges.size();
          doc.edges.erase(std::remove_if(doc.edges.begin(), doc.edges.end(),
                                         [&](const EdgeDecl& x) {
                                           return x.from_node == edge.from_node &&
                                                  x.to_node == edge.to_node &&
                                                  x.from_port == edge.from_port && x.to_port == edge.to_port;
                                         }),
                          doc.edges.end());
          if (doc.edges.size() == before)
            problems.push_back(
                Diagnostic{file, src.line_of_string(e.get<std::string>()), 0, "", "", "remove_edges",
                           fmt::format("edge \"{}\" is not in the base pipeline", e.get<std::string>())});
        }
      }
    }
    if (root.contains("edges")) {
      const json& list = root["edges"];
      if (!list.is_array()) {
        problem(src, {"edges"}, "", "edges",
                "\"edges\" must be a list of \"node.port -> node.port\" strings");
      } else {
        for (const auto& e : list) {
          EdgeDecl edge;
          if (!e.is_string() || !parse_edge(e.get<std::string>(), edge)) {
            int line = e.is_string() ? src.line_of_string(e.get<std::string>()) : src.line_of({"edges"});
            problems.push_back(Diagnostic{
                file, line, 0, "", "", "edges",
                fmt::format("malformed edge {}: expected \"node.port -> node.port\"", quote_value(e))});
            continue;
          }
          edge.file = file;
          doc.edges.push_back(std::move(edge));
        }
      }
    }
  }

  // A node (section "nodes") or a shared model (section "models", no concurrency and no edges).
  void overlay_node(PipelineDoc& doc, const JsonSource& src, const std::string& id, const json& v,
                    const std::string& section) {
    const bool is_model = section == "models";
    const char* what = is_model ? "model" : "node";
    auto& list = is_model ? doc.models : doc.nodes;
    auto find = [&]() -> NodeDecl* { return is_model ? doc.find_model(id) : doc.find_node(id); };
    if (v.is_null()) {
      if (!find())
        problem(src, {section, id}, id, "",
                fmt::format("cannot remove: no such {} in the base pipeline", what));
      if (is_model)
        list.erase(std::remove_if(list.begin(), list.end(), [&](const NodeDecl& n) { return n.id == id; }),
                   list.end());
      else
        remove_node(doc, id);
      return;
    }
    if (!v.is_object()) {
      problem(src, {section, id}, id, "",
              fmt::format("a {} must be an object with \"type\" and \"params\"", what));
      return;
    }
    const auto& keys = is_model ? kModelKeys : kNodeKeys;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
        auto guess = closest_match(it.key(), keys);
        problem(src, {section, id, it.key()}, id, it.key(),
                fmt::format("unknown key \"{}\" in {}{}", it.key(), what,
                            guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess)));
      }
    }
    if (v.contains("type") && !v["type"].is_string()) {
      problem(src, {section, id, "type"}, id, "type", "\"type\" must be a string");
      return;
    }
    if (v.contains("params") && !v["params"].is_object()) {
      problem(src, {section, id, "params"}, id, "params", "\"params\" must be an object");
      return;
    }
    NodeDecl* node = find();
    std::string type = v.value("type", std::string());
    if (node && !type.empty() && type != node->type) {
      // A different type replaces the node (its parameters no longer apply); edges stay.
      node->type = type;
      node->params = json::object();
      node->param_files.clear();
      node->concurrency = json();
      node->concurrency_file.clear();
    }
    if (!node) {
      list.push_back(NodeDecl{id, type, json::object(), json(), "", src.path(), {}});
      node = &list.back();
      if (type.empty()) problem(src, {section, id}, id, "type", "missing \"type\"");
    }
    node->file = src.path();
    if (v.contains("params")) {
      for (auto it = v["params"].begin(); it != v["params"].end(); ++it) {
        node->params[it.key()] = it.value();
        node->param_files[it.key()] = src.path();
      }
    }
    if (!is_model && v.contains("concurrency")) {
      node->concurrency = v["concurrency"];
      node->concurrency_file = src.path();
    }
  }

  PipelineDoc load(const std::string& path, std::vector<std::string>& chain,
                   std::shared_ptr<JsonSource> preloaded = nullptr) {
    // The error_code forms: a name the file system rejects (too long, a bad component) is reported
    // where it was written, not thrown as a filesystem_error (found by fuzzing).
    std::error_code ec;
    std::string canonical = fs::weakly_canonical(fs::path(path), ec).string();
    if (ec) canonical = fs::path(path).lexically_normal().string();
    auto src = preloaded ? preloaded : std::make_shared<JsonSource>(JsonSource::load(path));
    if (!src->root().is_object())
      throw PipelineError(Diagnostic{path, 1, 1, "", "", "", "a pipeline must be a JSON object"});
    chain.push_back(canonical);
    PipelineDoc doc;
    const json& root = src->root();
    if (root.contains("extends")) {
      const json& ext = root["extends"];
      if (!ext.is_string())
        throw PipelineError(Diagnostic{path, src->line_of({"extends"}), 0, "", "", "extends",
                                       "\"extends\" must be a file name"});
      fs::path base = fs::path(path).parent_path() / ext.get<std::string>();
      std::string base_canonical = fs::weakly_canonical(base, ec).string();
      if (ec)
        throw PipelineError(
            Diagnostic{path, src->line_of({"extends"}), 0, "", "", "extends",
                       fmt::format("base pipeline {} cannot be read: {}", base.string(), ec.message())});
      if (std::find(chain.begin(), chain.end(), base_canonical) != chain.end())
        throw PipelineError(
            Diagnostic{path, src->line_of({"extends"}), 0, "", "", "extends",
                       fmt::format("\"extends\" cycle: {} is already being loaded", base.string())});
      if (int(chain.size()) >= kMaxExtendsDepth)
        throw PipelineError(
            Diagnostic{path, src->line_of({"extends"}), 0, "", "", "extends",
                       fmt::format("\"extends\" chain deeper than {} files", kMaxExtendsDepth)});
      if (!fs::exists(base, ec))
        throw PipelineError(Diagnostic{path, src->line_of({"extends"}), 0, "", "", "extends",
                                       fmt::format("base pipeline {} does not exist", base.string())});
      doc = load(base.string(), chain);
      doc.base = base.lexically_normal().string();
    } else {
      doc.base.clear();
    }
    doc.sources[path] = src;
    overlay(doc, *src);
    chain.pop_back();
    return doc;
  }
};

}  // namespace

const NodeDecl* PipelineDoc::find_node(const std::string& id) const {
  for (const auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

NodeDecl* PipelineDoc::find_node(const std::string& id) {
  for (auto& n : nodes)
    if (n.id == id) return &n;
  return nullptr;
}

const NodeDecl* PipelineDoc::find_model(const std::string& id) const {
  for (const auto& m : models)
    if (m.id == id) return &m;
  return nullptr;
}

NodeDecl* PipelineDoc::find_model(const std::string& id) {
  for (auto& m : models)
    if (m.id == id) return &m;
  return nullptr;
}

int PipelineDoc::line_of(const std::string& f, const std::vector<std::string>& keys) const {
  auto it = sources.find(f);
  return it == sources.end() ? 0 : it->second->line_of(keys);
}

bool parse_edge(const std::string& text, EdgeDecl& edge) {
  auto arrow = text.find("->");
  if (arrow == std::string::npos) return false;
  auto split = [](const std::string& end, std::string& node, std::string& port) {
    auto e = trim(end);
    if (e.empty() || e.find_first_of(" \t") != std::string::npos) return false;
    auto dot = e.find('.');
    node = e.substr(0, dot);
    port = dot == std::string::npos ? "" : e.substr(dot + 1);
    return !node.empty() && (dot == std::string::npos || !port.empty());
  };
  edge.text = text;
  return split(text.substr(0, arrow), edge.from_node, edge.from_port) &&
         split(text.substr(arrow + 2), edge.to_node, edge.to_port);
}

PipelineDoc load_pipeline(const std::string& path) {
  Loader loader;
  std::vector<std::string> chain;
  PipelineDoc doc = loader.load(path, chain);
  doc.file = path;
  if (doc.name.empty()) doc.name = fs::path(path).stem().string();
  if (!loader.problems.empty()) throw PipelineError(std::move(loader.problems));
  return doc;
}

PipelineDoc parse_pipeline(const std::string& path, const std::string& text) {
  Loader loader;
  std::vector<std::string> chain;
  auto src = std::make_shared<JsonSource>(JsonSource::parse(path, text));
  PipelineDoc doc = loader.load(path, chain, src);
  doc.file = path;
  if (doc.name.empty()) doc.name = fs::path(path).stem().string();
  if (!loader.problems.empty()) throw PipelineError(std::move(loader.problems));
  return doc;
}

void apply_overrides(PipelineDoc& doc, const std::vector<std::string>& assignments) {
  std::vector<Diagnostic> problems;
  for (const auto& a : assignments) {
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) {
      problems.push_back(Diagnostic{"--set", 0, 0, "", "", a,
                                    fmt::format("\"{}\": expected name=value or node.param=value", a)});
      continue;
    }
    std::string target = a.substr(0, eq), text = a.substr(eq + 1);
    if (json_too_deep(text) != std::string::npos) {
      problems.push_back(
          Diagnostic{"--set", 0, 0, "", "", target,
                     fmt::format("\"{}=...\": value nested deeper than {} levels", target, kMaxJsonDepth)});
      continue;
    }
    json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) value = text;  // a bare word is a string
    auto dot = target.find('.');
    if (dot == std::string::npos) {
      if (!doc.params.contains(target)) {
        std::vector<std::string> names;
        for (auto it = doc.params.begin(); it != doc.params.end(); ++it) names.push_back(it.key());
        auto guess = closest_match(target, names);
        problems.push_back(
            Diagnostic{"--set", 0, 0, "", "", target,
                       fmt::format("\"{}\": no pipeline parameter \"{}\"{}", a, target,
                                   guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess))});
        continue;
      }
      doc.params[target] = value;
      continue;
    }
    std::string node_id = target.substr(0, dot), key = target.substr(dot + 1);
    if (node_id == "runtime") {
      doc.runtime[key] = value;  // checked against the runtime schema by the validator
      doc.runtime_from_cli.push_back(key);
      continue;
    }
    if (node_id == "models") {
      // models.ID.PARAM=VALUE: a parameter of a shared model.
      auto dot2 = key.find('.');
      std::string model_id = key.substr(0, dot2),
                  param = dot2 == std::string::npos ? "" : key.substr(dot2 + 1);
      NodeDecl* model = doc.find_model(model_id);
      if (!model || param.empty()) {
        std::vector<std::string> ids;
        for (const auto& m : doc.models) ids.push_back(m.id);
        auto guess = closest_match(model_id, ids);
        problems.push_back(Diagnostic{
            "--set", 0, 0, "", "", target,
            param.empty() ? fmt::format("\"{}\": expected models.ID.PARAM=VALUE", a)
                          : fmt::format("\"{}\": no model \"{}\" in the pipeline{}", a, model_id,
                                        guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess))});
        continue;
      }
      model->params[param] = value;
      model->param_files[param] = "--set";
      continue;
    }
    NodeDecl* node = doc.find_node(node_id);
    if (!node) {
      std::vector<std::string> ids;
      for (const auto& n : doc.nodes) ids.push_back(n.id);
      auto guess = closest_match(node_id, ids);
      problems.push_back(
          Diagnostic{"--set", 0, 0, "", "", target,
                     fmt::format("\"{}\": no node \"{}\" in the pipeline{}", a, node_id,
                                 guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess))});
      continue;
    }
    if (key == "concurrency") {
      node->concurrency = value;
      node->concurrency_file = "--set";
    } else {
      node->params[key] = value;
      node->param_files[key] = "--set";
    }
  }
  if (!problems.empty()) throw PipelineError(std::move(problems));
}

namespace {

// Returns the substituted value; records problems for unknown names.
json substitute(const json& v, const json& params, const std::function<void(const std::string&)>& unknown) {
  if (v.is_array()) {
    json out = json::array();
    for (const auto& e : v) out.push_back(substitute(e, params, unknown));
    return out;
  }
  if (v.is_object()) {
    json out = json::object();
    for (auto it = v.begin(); it != v.end(); ++it) out[it.key()] = substitute(it.value(), params, unknown);
    return out;
  }
  if (!v.is_string()) return v;
  const std::string s = v.get<std::string>();
  // Exactly one reference: keep the parameter's type.
  if (s.size() > 3 && s.rfind("${", 0) == 0 && s.back() == '}' && s.find('}') == s.size() - 1) {
    std::string name = s.substr(2, s.size() - 3);
    if (!params.contains(name)) {
      unknown(name);
      return v;
    }
    return params[name];
  }
  std::string out;
  std::size_t pos = 0;
  while (true) {
    auto start = s.find("${", pos);
    if (start == std::string::npos) break;
    auto end = s.find('}', start);
    if (end == std::string::npos) break;
    std::string name = s.substr(start + 2, end - start - 2);
    out += s.substr(pos, start - pos);
    if (!params.contains(name)) {
      unknown(name);
      out += s.substr(start, end - start + 1);
    } else {
      const json& p = params[name];
      out += p.is_string() ? p.get<std::string>() : safe_dump(p);
    }
    pos = end + 1;
  }
  out += s.substr(pos);
  return out;
}

}  // namespace

void substitute_params(PipelineDoc& doc) {
  std::vector<Diagnostic> problems;
  // ${name} is the pipeline's name unless a parameter says otherwise.
  json params = doc.params;
  if (!params.contains("name")) params["name"] = doc.name;
  std::vector<std::string> names;
  for (auto it = params.begin(); it != params.end(); ++it) names.push_back(it.key());
  for (auto& model : doc.models) {
    for (auto it = model.params.begin(); it != model.params.end(); ++it) {
      auto file_it = model.param_files.find(it.key());
      std::string file = file_it == model.param_files.end() ? model.file : file_it->second;
      it.value() = substitute(it.value(), params, [&](const std::string& name) {
        auto guess = closest_match(name, names);
        problems.push_back(
            Diagnostic{file, doc.line_of(file, {"models", model.id, "params", it.key()}), 0, model.id,
                       model.type, it.key(),
                       fmt::format("param \"{}\": unknown pipeline parameter \"${{{}}}\"{}", it.key(), name,
                                   guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess))});
      });
    }
  }
  for (auto& node : doc.nodes) {
    for (auto it = node.params.begin(); it != node.params.end(); ++it) {
      auto file_it = node.param_files.find(it.key());
      std::string file = file_it == node.param_files.end() ? node.file : file_it->second;
      it.value() = substitute(it.value(), params, [&](const std::string& name) {
        auto guess = closest_match(name, names);
        problems.push_back(Diagnostic{
            file, doc.line_of(file, {"nodes", node.id, "params", it.key()}), 0, node.id, node.type, it.key(),
            fmt::format("param \"{}\": unknown pipeline parameter \"${{{}}}\"{}", it.key(), name,
                        guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess))});
      });
    }
    const std::string& cfile = node.concurrency_file.empty() ? node.file : node.concurrency_file;
    if (!node.concurrency.is_null())
      node.concurrency = substitute(node.concurrency, params, [&](const std::string& name) {
        problems.push_back(Diagnostic{
            cfile, doc.line_of(cfile, {"nodes", node.id, "concurrency"}), 0, node.id, node.type,
            "concurrency", fmt::format("concurrency: unknown pipeline parameter \"${{{}}}\"", name)});
      });
  }
  json runtime = doc.runtime;
  for (auto it = runtime.begin(); it != runtime.end(); ++it) {
    it.value() = substitute(it.value(), params, [&](const std::string& name) {
      problems.push_back(
          Diagnostic{doc.file, doc.line_of(doc.file, {"runtime", it.key()}), 0, "", "", it.key(),
                     fmt::format("runtime \"{}\": unknown pipeline parameter \"${{{}}}\"", it.key(), name)});
    });
  }
  doc.runtime = runtime;
  if (!problems.empty()) throw PipelineError(std::move(problems));
}

json to_json(const PipelineDoc& doc) {
  json out;
  out["name"] = doc.name;
  if (!doc.description.empty()) out["description"] = doc.description;
  out["params"] = doc.params;
  out["runtime"] = doc.runtime;
  if (!doc.models.empty()) {
    out["models"] = json::object();
    for (const auto& m : doc.models) out["models"][m.id] = {{"type", m.type}, {"params", m.params}};
  }
  out["nodes"] = json::object();
  for (const auto& n : doc.nodes) {
    json node;
    node["type"] = n.type;
    node["params"] = n.params;
    if (!n.concurrency.is_null()) node["concurrency"] = n.concurrency;
    out["nodes"][n.id] = node;
  }
  out["edges"] = json::array();
  for (const auto& e : doc.edges) out["edges"].push_back(e.text);
  return out;
}

}  // namespace sefar::graph

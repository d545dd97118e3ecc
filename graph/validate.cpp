#include "graph/validate.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join (in fmt/format.h only before fmt 11)

namespace sefar::graph {

const std::vector<ParamSpec>& runtime_schema() {
  static const std::vector<ParamSpec> schema = [] {
    std::vector<ParamSpec> s;
    auto add = [&](const char* name, ParamType type, json def, std::optional<double> min,
                   std::optional<double> max, bool may_change_on_resume, const char* doc) {
      ParamSpec p;
      p.name = name;
      p.type = type;
      p.default_value = std::move(def);
      p.min = min;
      p.max = max;
      p.may_change_on_resume = may_change_on_resume;
      p.doc = doc;
      s.push_back(std::move(p));
    };
    add("threads", ParamType::Int, 0, 0, 4096, true, "worker threads for the graph (0: one per core)");
    add("max_in_flight", ParamType::Int, 64, 1, 1 << 20, true,
        "source items alive at once, all sources together (bounds memory)");
    add("seed", ParamType::Int, 0, 0, 9007199254740991.0, false, "run seed; every random draw derives from it");
    add("run_dir", ParamType::String, "", std::nullopt, std::nullopt, true,
        "directory for the run's outputs: resolved pipeline, profile, metrics, checkpoints (empty: none)");
    add("warn_skip_fraction", ParamType::Float, 0.1, 0, 1, false,
        "warn when more than this share of a source's last two passes was skipped as bad input");
    add("max_skip_fraction", ParamType::Float, 1.0, 0, 1, false,
        "stop the run (exit 2) when more than this share of a source's last two passes was skipped "
        "as bad input (1: never)");
    return s;
  }();
  return schema;
}

namespace {

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  auto guess = closest_match(word, candidates);
  return guess.empty() ? "" : fmt::format(" (did you mean \"{}\"?)", guess);
}

std::vector<std::string> port_names(const std::vector<PortSpec>& ports) {
  std::vector<std::string> names;
  for (const auto& p : ports) names.push_back(p.name);
  return names;
}

}  // namespace

ValidatedPipeline validate(const PipelineDoc& doc, const Registry& registry) {
  std::vector<Diagnostic> problems;
  ValidatedPipeline out;
  out.name = doc.name;
  out.file = doc.file;

  // Runtime block.
  {
    std::vector<std::string> names;
    for (const auto& s : runtime_schema()) names.push_back(s.name);
    // Where a runtime setting was written: on the command line, or the line in the file.
    auto place = [&](const std::string& key) -> std::pair<std::string, int> {
      const auto& cli = doc.runtime_from_cli;
      if (std::find(cli.begin(), cli.end(), key) != cli.end()) return {"--set", 0};
      return {doc.file, doc.line_of(doc.file, {"runtime", key})};
    };
    for (auto it = doc.runtime.begin(); it != doc.runtime.end(); ++it) {
      if (std::find(names.begin(), names.end(), it.key()) == names.end()) {
        auto [file, line] = place(it.key());
        problems.push_back(Diagnostic{
            file, line, 0, "", "", it.key(),
            fmt::format("runtime: unknown setting \"{}\"{}", it.key(), did_you_mean(it.key(), names))});
      }
    }
    json values;
    for (const auto& s : runtime_schema()) {
      json v = doc.runtime.contains(s.name) ? doc.runtime[s.name] : s.default_value;
      std::string err = s.check(v);
      if (!err.empty()) {
        auto [file, line] = place(s.name);
        problems.push_back(
            Diagnostic{file, line, 0, "", "", s.name, fmt::format("runtime \"{}\": {}", s.name, err)});
        v = s.default_value;
      }
      values[s.name] = v;
    }
    out.runtime.threads = values["threads"].get<int>();
    out.runtime.max_in_flight = values["max_in_flight"].get<int>();
    out.runtime.seed = values["seed"].get<std::uint64_t>();
    out.runtime.run_dir = values["run_dir"].get<std::string>();
    out.runtime.warn_skip_fraction = values["warn_skip_fraction"].get<double>();
    out.runtime.max_skip_fraction = values["max_skip_fraction"].get<double>();
  }

  std::map<std::string, int> index;
  std::vector<std::string> ids;
  for (const auto& n : doc.nodes) ids.push_back(n.id);

  // Parameters of a node or model declaration against its type's schema: unknown names (with "did
  // you mean"), missing required ones, wrong values; defaults filled in.
  auto check_params = [&](const NodeDecl& decl, const std::string& section, const NodeSpec& spec,
                          ResolvedNode& node) {
    auto decl_problem = [&](const std::vector<std::string>& keys, const std::string& key, std::string message,
                            const std::string& file) {
      problems.push_back(Diagnostic{file, doc.line_of(file, keys), 0, decl.id, decl.type, key,
                                    std::move(message), section == "models"});
    };
    std::vector<std::string> param_names;
    for (const auto& p : spec.params()) param_names.push_back(p.name);
    for (auto it = decl.params.begin(); it != decl.params.end(); ++it) {
      if (!spec.find_param(it.key())) {
        auto f = decl.param_files.count(it.key()) ? decl.param_files.at(it.key()) : decl.file;
        decl_problem(
            {section, decl.id, "params", it.key()}, it.key(),
            fmt::format("no parameter \"{}\" in {} type \"{}\"{}", it.key(),
                        spec.is_model() ? "model" : "node", spec.type(), did_you_mean(it.key(), param_names)),
            f);
      }
    }
    node.params = json::object();
    for (const auto& p : spec.params()) {
      auto f = decl.param_files.count(p.name) ? decl.param_files.at(p.name) : decl.file;
      if (!decl.params.contains(p.name)) {
        if (p.required) {
          decl_problem(
              {section, decl.id}, p.name,
              fmt::format("missing required parameter \"{}\" ({}: {})", p.name, to_string(p.type), p.doc),
              decl.file);
        } else {
          node.params[p.name] = p.default_value;
        }
        continue;
      }
      const json& v = decl.params[p.name];
      std::string err = p.check(v);
      if (!err.empty()) {
        decl_problem({section, decl.id, "params", p.name}, p.name,
                     fmt::format("param \"{}\": {}", p.name, err), f);
        continue;
      }
      node.params[p.name] = v;
    }
    // Parameters naming a shared model: it must exist and be of the model type the node needs.
    for (const auto& p : spec.params()) {
      if (p.model_type.empty() || !node.params.contains(p.name)) continue;
      const std::string id = node.params[p.name].get<std::string>();
      auto f = decl.param_files.count(p.name) ? decl.param_files.at(p.name) : decl.file;
      const NodeDecl* model = doc.find_model(id);
      std::vector<std::string> model_ids;
      for (const auto& m : doc.models) model_ids.push_back(m.id);
      if (!model)
        decl_problem(
            {section, decl.id, "params", p.name}, p.name,
            fmt::format("param \"{}\": no model \"{}\" in the pipeline's \"models\"{}", p.name, id,
                        model_ids.empty() ? fmt::format(" (declare one of type \"{}\")", p.model_type)
                                          : did_you_mean(id, model_ids)),
            f);
      else if (model->type != p.model_type)
        decl_problem({section, decl.id, "params", p.name}, p.name,
                     fmt::format("param \"{}\": model \"{}\" is a \"{}\"; this node needs a \"{}\"", p.name,
                                 id, model->type, p.model_type),
                     f);
    }
  };

  // A declaration's id, place and where each of its parameters was set, before any check.
  auto resolve_place = [&](const NodeDecl& decl, const std::string& section) {
    ResolvedNode r;
    r.id = decl.id;
    r.file = decl.file;
    r.line = doc.line_of(decl.file, {section, decl.id});
    for (auto it = decl.params.begin(); it != decl.params.end(); ++it) {
      auto f = decl.param_files.count(it.key()) ? decl.param_files.at(it.key()) : decl.file;
      r.param_places[it.key()] = {f, doc.line_of(f, {section, decl.id, "params", it.key()})};
    }
    return r;
  };

  // Shared models.
  std::vector<std::string> model_types;
  for (const auto* spec : registry.specs())
    if (spec->is_model()) model_types.push_back(spec->type());
  for (const auto& decl : doc.models) {
    ResolvedNode model = resolve_place(decl, "models");
    model.spec = registry.find(decl.type);
    if (decl.type.empty()) continue;  // reported while loading
    if (!model.spec || !model.spec->is_model()) {
      problems.push_back(Diagnostic{
          decl.file, doc.line_of(decl.file, {"models", decl.id, "type"}), 0, decl.id, decl.type, "type",
          model.spec
              ? fmt::format("\"{}\" is a node type: declare it under \"nodes\"", decl.type)
              : fmt::format("unknown model type \"{}\"{}", decl.type, did_you_mean(decl.type, model_types)),
          true});
      continue;
    }
    check_params(decl, "models", *model.spec, model);
    out.models.push_back(std::move(model));
  }

  for (const auto& decl : doc.nodes) {
    auto node_problem = [&](const std::vector<std::string>& keys, const std::string& key, std::string message,
                            const std::string& file_override = "") {
      std::string file = file_override.empty() ? decl.file : file_override;
      problems.push_back(
          Diagnostic{file, doc.line_of(file, keys), 0, decl.id, decl.type, key, std::move(message)});
    };
    ResolvedNode node = resolve_place(decl, "nodes");
    node.spec = registry.find(decl.type);
    index[decl.id] = int(out.nodes.size());
    if (decl.type.empty()) {
      out.nodes.push_back(std::move(node));
      continue;  // reported while loading
    }
    if (node.spec && node.spec->is_model()) {
      node_problem({"nodes", decl.id, "type"}, "type",
                   fmt::format("\"{}\" is a model type: declare it under \"models\" and name it from nodes",
                               decl.type));
      node.spec = nullptr;
      out.nodes.push_back(std::move(node));
      continue;
    }
    if (!node.spec) {
      node_problem(
          {"nodes", decl.id, "type"}, "type",
          fmt::format("unknown node type \"{}\"{}", decl.type, did_you_mean(decl.type, registry.types())));
      out.nodes.push_back(std::move(node));
      continue;
    }
    const NodeSpec& spec = *node.spec;
    check_params(decl, "nodes", spec, node);
    // Concurrency.
    const json& c = decl.concurrency;
    const std::string cfile = decl.concurrency_file.empty() ? decl.file : decl.concurrency_file;
    if (c.is_null()) {
      node.concurrency = 1;
    } else if (c.is_string() && c.get<std::string>() == "unlimited") {
      node.concurrency = 0;
    } else if (c.is_number_integer() && c.get<std::int64_t>() >= 1 && c.get<std::int64_t>() <= 4096) {
      node.concurrency = c.get<int>();
    } else {
      node_problem(
          {"nodes", decl.id, "concurrency"}, "concurrency",
          fmt::format("concurrency must be an integer in [1, 4096] or \"unlimited\", got {}", quote_value(c)),
          cfile);
    }
    if (spec.is_serial() && node.concurrency != 1)
      node_problem(
          {"nodes", decl.id, "concurrency"}, "concurrency",
          fmt::format("node type \"{}\" keeps state across items and runs with concurrency 1", spec.type()));
    if (spec.is_source() && node.concurrency != 1)
      node_problem({"nodes", decl.id, "concurrency"}, "concurrency", "a source runs with concurrency 1");
    out.nodes.push_back(std::move(node));
  }

  // Edges.
  std::map<std::pair<int, int>, int> incoming;  // (node, input port) -> count
  std::set<std::pair<int, int>> attempted;      // (node, input port) named by any edge
  for (const auto& e : doc.edges) {
    int line = 0;
    if (auto it = doc.sources.find(e.file); it != doc.sources.end())
      line = it->second->line_of_string(e.text);
    auto edge_problem = [&](const std::string& node_id, const std::string& type, std::string message) {
      problems.push_back(Diagnostic{e.file, line, 0, node_id, type, "edges",
                                    fmt::format("edge \"{}\": {}", e.text, message)});
    };
    auto from_it = index.find(e.from_node), to_it = index.find(e.to_node);
    // An edge the user wrote into a port counts as connecting it even when the edge itself is
    // wrong, so one mistake gives one message.
    if (to_it != index.end() && out.nodes[to_it->second].spec) {
      const auto& to_spec = *out.nodes[to_it->second].spec;
      int p = e.to_port.empty() ? (to_spec.inputs().size() == 1 ? 0 : -1) : to_spec.input_index(e.to_port);
      if (p >= 0) attempted.insert({to_it->second, p});
    }
    if (from_it == index.end())
      edge_problem("", "", fmt::format("no node \"{}\"{}", e.from_node, did_you_mean(e.from_node, ids)));
    if (to_it == index.end())
      edge_problem("", "", fmt::format("no node \"{}\"{}", e.to_node, did_you_mean(e.to_node, ids)));
    if (from_it == index.end() || to_it == index.end()) continue;
    const ResolvedNode& from = out.nodes[from_it->second];
    const ResolvedNode& to = out.nodes[to_it->second];
    if (!from.spec || !to.spec) continue;  // unknown type, reported above
    int from_port = -1, to_port = -1;
    if (e.from_port.empty()) {
      if (from.spec->outputs().size() == 1)
        from_port = 0;
      else
        edge_problem(
            from.id, from.spec->type(),
            fmt::format("node \"{}\" has {} outputs; name one ({})", from.id, from.spec->outputs().size(),
                        fmt::join(port_names(from.spec->outputs()), ", ")));
    } else {
      from_port = from.spec->output_index(e.from_port);
      if (from_port < 0)
        edge_problem(
            from.id, from.spec->type(),
            fmt::format("no output port \"{}\" in node \"{}\" ({}){}", e.from_port, from.id,
                        from.spec->type(), did_you_mean(e.from_port, port_names(from.spec->outputs()))));
    }
    if (e.to_port.empty()) {
      if (to.spec->inputs().size() == 1)
        to_port = 0;
      else
        edge_problem(to.id, to.spec->type(),
                     fmt::format("node \"{}\" has {} inputs; name one ({})", to.id, to.spec->inputs().size(),
                                 fmt::join(port_names(to.spec->inputs()), ", ")));
    } else {
      to_port = to.spec->input_index(e.to_port);
      if (to_port < 0)
        edge_problem(to.id, to.spec->type(),
                     fmt::format("no input port \"{}\" in node \"{}\" ({}){}", e.to_port, to.id,
                                 to.spec->type(), did_you_mean(e.to_port, port_names(to.spec->inputs()))));
    }
    if (from_port < 0 || to_port < 0) continue;
    const auto& out_msg = from.spec->outputs()[from_port].message;
    const auto& in_msg = to.spec->inputs()[to_port].message;
    if (!out_msg.compatible_with(in_msg)) {
      edge_problem(to.id, to.spec->type(),
                   fmt::format("incompatible ports: {}.{} carries \"{}\" but {}.{} expects \"{}\"", from.id,
                               from.spec->outputs()[from_port].name, out_msg.name, to.id,
                               to.spec->inputs()[to_port].name, in_msg.name));
      continue;
    }
    ResolvedEdge r{from_it->second, from_port, to_it->second, to_port, e.text};
    bool duplicate = false;
    for (const auto& x : out.edges)
      duplicate |= x.from_node == r.from_node && x.from_port == r.from_port && x.to_node == r.to_node &&
                   x.to_port == r.to_port;
    if (duplicate) {
      edge_problem(to.id, to.spec->type(), "duplicate edge");
      continue;
    }
    int count = ++incoming[{r.to_node, r.to_port}];
    if (count > 1 && to.spec->inputs()[to_port].ordered)
      edge_problem(to.id, to.spec->type(),
                   fmt::format("input \"{}\" restores source order and accepts exactly one edge",
                               to.spec->inputs()[to_port].name));
    out.edges.push_back(r);
  }

  // Required inputs.
  for (std::size_t i = 0; i < out.nodes.size(); ++i) {
    const auto& n = out.nodes[i];
    if (!n.spec) continue;
    for (std::size_t p = 0; p < n.spec->inputs().size(); ++p) {
      const auto& port = n.spec->inputs()[p];
      if (port.required && !attempted.count({int(i), int(p)}))
        problems.push_back(Diagnostic{n.file, doc.line_of(n.file, {"nodes", n.id}), 0, n.id, n.spec->type(),
                                      port.name, fmt::format("input \"{}\" is not connected", port.name)});
    }
  }

  // Cycles (edges into feedback inputs may close one) and a topological order.
  {
    std::size_t n = out.nodes.size();
    std::vector<std::vector<int>> next(n);
    std::vector<int> indegree(n, 0);
    for (const auto& e : out.edges) {
      if (out.nodes[e.to_node].spec->inputs()[e.to_port].feedback) continue;
      next[e.from_node].push_back(e.to_node);
      ++indegree[e.to_node];
    }
    std::vector<int> ready;
    for (std::size_t i = 0; i < n; ++i)
      if (indegree[i] == 0) ready.push_back(int(i));
    std::reverse(ready.begin(), ready.end());
    while (!ready.empty()) {
      int v = ready.back();
      ready.pop_back();
      out.topo_order.push_back(v);
      for (int w : next[v])
        if (--indegree[w] == 0) ready.push_back(w);
    }
    if (out.topo_order.size() != n) {
      std::string members;
      for (std::size_t i = 0; i < n; ++i)
        if (indegree[i] > 0) members += (members.empty() ? "" : ", ") + out.nodes[i].id;
      problems.push_back(Diagnostic{
          doc.file, 0, 0, "", "", "edges",
          fmt::format("the edges form a cycle through {} (only a feedback input may close a cycle)",
                      members)});
    }
  }

  if (out.nodes.empty())
    problems.push_back(Diagnostic{doc.file, 0, 0, "", "", "nodes", "the pipeline has no nodes"});
  if (!problems.empty()) throw PipelineError(std::move(problems));

  // The canonical resolved form: every parameter with its value (defaults filled in), so two
  // documents that run the same graph compare equal.
  json& d = out.document;
  d["name"] = out.name;
  if (!doc.description.empty()) d["description"] = doc.description;
  d["runtime"] = {{"threads", out.runtime.threads},
                  {"max_in_flight", out.runtime.max_in_flight},
                  {"seed", out.runtime.seed},
                  {"run_dir", out.runtime.run_dir},
                  {"warn_skip_fraction", out.runtime.warn_skip_fraction},
                  {"max_skip_fraction", out.runtime.max_skip_fraction}};
  if (!out.models.empty()) {
    d["models"] = json::object();
    for (const auto& m : out.models) d["models"][m.id] = {{"type", m.spec->type()}, {"params", m.params}};
  }
  d["nodes"] = json::object();
  for (const auto& n : out.nodes) {
    json node{{"type", n.spec->type()}, {"params", n.params}};
    if (n.concurrency != 1)
      node["concurrency"] = n.concurrency == 0 ? json("unlimited") : json(n.concurrency);
    d["nodes"][n.id] = std::move(node);
  }
  d["edges"] = json::array();
  for (const auto& e : out.edges)
    d["edges"].push_back(fmt::format(
        "{}.{} -> {}.{}", out.nodes[e.from_node].id, out.nodes[e.from_node].spec->outputs()[e.from_port].name,
        out.nodes[e.to_node].id, out.nodes[e.to_node].spec->inputs()[e.to_port].name));
  return out;
}

}  // namespace sefar::graph

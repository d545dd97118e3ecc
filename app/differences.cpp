#include "app/differences.h"

#include <set>

#include <fmt/format.h>

#include "graph/validate.h"

namespace sefar::app {

void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
    return;
  }
  out[prefix] = j;
}

std::vector<std::string> document_differences(nlohmann::json base, nlohmann::json derived) {
  std::vector<std::string> lines;
  auto& base_nodes = base["nodes"];
  auto& derived_nodes = derived["nodes"];
  for (auto it = base_nodes.begin(); it != base_nodes.end(); ++it)
    if (!derived_nodes.contains(it.key())) lines.push_back(fmt::format("  node {} removed", it.key()));
  for (auto it = derived_nodes.begin(); it != derived_nodes.end(); ++it)
    if (!base_nodes.contains(it.key()))
      lines.push_back(fmt::format("  node {} added ({})", it.key(), it.value().value("type", "?")));
  for (auto* nodes : {&base_nodes, &derived_nodes})
    for (auto it = nodes->begin(); it != nodes->end();)
      it = (base_nodes.contains(it.key()) && derived_nodes.contains(it.key())) ? std::next(it)
                                                                               : nodes->erase(it);
  std::set<std::string> base_edges, derived_edges;
  for (const auto& e : base["edges"]) base_edges.insert(e.dump());
  for (const auto& e : derived["edges"]) derived_edges.insert(e.dump());
  for (const auto& e : base_edges)
    if (!derived_edges.count(e)) lines.push_back(fmt::format("  edge {} removed", e));
  for (const auto& e : derived_edges)
    if (!base_edges.count(e)) lines.push_back(fmt::format("  edge {} added", e));
  base.erase("edges");
  derived.erase("edges");
  std::map<std::string, nlohmann::json> a, b;
  flatten(base, "", a);
  flatten(derived, "", b);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  for (const auto& k : keys) {
    auto x = a.find(k), y = b.find(k);
    if (x != a.end() && y != b.end() && x->second == y->second) continue;
    if (k == "description") continue;
    lines.push_back(fmt::format("  {}: {} -> {}", k, x == a.end() ? "(absent)" : x->second.dump(),
                                y == b.end() ? "(absent)" : y->second.dump()));
  }
  return lines;
}

bool may_change_on_resume(const std::string& key, const nlohmann::json& reference,
                          const nlohmann::json& resolved, const graph::Registry& registry) {
  if (key == "name" || key == "description") return true;
  auto starts_with = [&](const std::string& head) { return key.compare(0, head.size(), head) == 0; };
  if (starts_with("runtime.")) {
    for (const auto& p : graph::runtime_schema())
      if (key == "runtime." + p.name) return p.may_change_on_resume;
    return false;
  }
  for (const char* section : {"nodes", "models"})
    for (const auto* document : {&resolved, &reference}) {
      const auto entries = document->find(section);
      if (entries == document->end() || !entries->is_object()) continue;
      for (auto it = entries->begin(); it != entries->end(); ++it) {
        const std::string head = std::string(section) + "." + it.key() + ".";
        if (!starts_with(head)) continue;
        const std::string rest = key.substr(head.size());
        if (rest == "concurrency") return true;
        if (rest.compare(0, 7, "params.") != 0) return false;
        const std::string name = rest.substr(7, rest.find('.', 7) - 7);
        const auto* spec = registry.find(it.value().value("type", std::string()));
        const auto* param = spec ? spec->find_param(name) : nullptr;
        return param && param->may_change_on_resume;
      }
    }
  return false;
}

std::vector<graph::Diagnostic> resume_differences(const nlohmann::json& reference,
                                                  const nlohmann::json& resolved,
                                                  const graph::Registry& registry, const std::string& file,
                                                  const std::string& from) {
  std::map<std::string, nlohmann::json> a, b;
  flatten(reference, "", a);
  flatten(resolved, "", b);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) keys.insert(k);
  for (const auto& [k, v] : b) keys.insert(k);
  std::vector<graph::Diagnostic> problems;
  for (const auto& k : keys) {
    if (may_change_on_resume(k, reference, resolved, registry)) continue;
    auto x = a.find(k), y = b.find(k);
    if (x != a.end() && y != b.end() && x->second == y->second) continue;
    problems.push_back(graph::Diagnostic{file, 0, 0, "", "", k,
                                         fmt::format("--resume: {} is {} here but {} in the run being "
                                                     "resumed ({}); resume with the run's own pipeline "
                                                     "(leave PIPELINE out) or start a new run",
                                                     k, y == b.end() ? "absent" : y->second.dump(),
                                                     x == a.end() ? "absent" : x->second.dump(), from)});
  }
  return problems;
}

}  // namespace sefar::app

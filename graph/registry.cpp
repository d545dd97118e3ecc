#include "graph/registry.h"

#include <stdexcept>

namespace sefar::graph {

void Registry::add(NodeSpec spec) {
  if (!spec.factory() && !spec.is_model())
    throw std::logic_error("node type '" + spec.type() + "' has no factory");
  if (spec.runs_inline_flag())
    for (const auto& port : spec.inputs())
      if (port.ordered || port.feedback)
        throw std::logic_error("node type '" + spec.type() +
                               "' runs inline: its inputs can be neither ordered nor feedback");
  std::string type = spec.type();
  if (!specs_.emplace(type, std::move(spec)).second)
    throw std::logic_error("node type '" + type + "' registered twice");
}

const NodeSpec* Registry::find(const std::string& type) const {
  auto it = specs_.find(type);
  return it == specs_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::types() const {
  std::vector<std::string> out;
  for (const auto& [type, spec] : specs_) out.push_back(type);
  return out;
}

std::vector<const NodeSpec*> Registry::specs() const {
  std::vector<const NodeSpec*> out;
  for (const auto& [type, spec] : specs_) out.push_back(&spec);
  return out;
}

}  // namespace sefar::graph

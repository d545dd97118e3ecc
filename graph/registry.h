// The set of node types a pipeline may use. Filled by one explicit list (nodes/builtin.cpp), never
// by static initialisers, which the linker drops from static libraries.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "graph/schema.h"

namespace sefar::graph {

class Registry {
 public:
  void add(NodeSpec spec);  // throws std::logic_error on a duplicate type
  const NodeSpec* find(const std::string& type) const;
  std::vector<std::string> types() const;  // sorted
  std::vector<const NodeSpec*> specs() const;

 private:
  std::map<std::string, NodeSpec> specs_;
};

}  // namespace sefar::graph

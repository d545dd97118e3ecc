// The explicit list of node types sefar ships. Each node type lives in its own file under nodes/
// with its schema; add a new one to nodes/builtin.cpp and nodes/CMakeLists.txt.
#pragma once

#include "graph/registry.h"

namespace sefar::nodes {

graph::NodeSpec range_spec();
graph::NodeSpec delay_spec();
graph::NodeSpec log_spec();
graph::NodeSpec discard_spec();
graph::NodeSpec split_source_spec();
graph::NodeSpec decode_spec();
graph::NodeSpec views_spec();
graph::NodeSpec batch_spec();
graph::NodeSpec sefar_train_spec();
graph::NodeSpec classify_spec();
graph::NodeSpec export_features_spec();

// Adds every built-in node type to `registry`.
void register_builtin_nodes(graph::Registry& registry);

}  // namespace sefar::nodes

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
// The SeFAR training step (nodes/train_step.h): the shared model, the loop, one node per stage.
graph::NodeSpec sefar_model_spec();
graph::NodeSpec train_loop_spec();
graph::NodeSpec teacher_spec();
graph::NodeSpec adaptive_regulation_spec();
graph::NodeSpec fixed_threshold_spec();
graph::NodeSpec no_regulation_spec();
graph::NodeSpec tube_token_mix_spec();
graph::NodeSpec student_spec();
graph::NodeSpec regulated_loss_spec();
graph::NodeSpec backward_spec();
graph::NodeSpec optimizer_spec();
graph::NodeSpec ema_update_spec();
graph::NodeSpec classify_spec();
graph::NodeSpec export_features_spec();

// Adds every built-in node type to `registry`.
void register_builtin_nodes(graph::Registry& registry);

}  // namespace sefar::nodes

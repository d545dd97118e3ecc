// Graphviz view of a validated pipeline: one record per node with its ports, one arrow per edge.
#pragma once

#include <string>

#include "graph/validate.h"

namespace sefar::graph {

std::string to_dot(const ValidatedPipeline& pipeline);

}  // namespace sefar::graph

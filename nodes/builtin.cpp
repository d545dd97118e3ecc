#include "nodes/builtin.h"

namespace sefar::nodes {

void register_builtin_nodes(graph::Registry& registry) {
  registry.add(range_spec());
  registry.add(delay_spec());
  registry.add(log_spec());
  registry.add(discard_spec());
}

}  // namespace sefar::nodes

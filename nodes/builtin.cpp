#include "nodes/builtin.h"

namespace sefar::nodes {

void register_builtin_nodes(graph::Registry& registry) {
  registry.add(range_spec());
  registry.add(delay_spec());
  registry.add(log_spec());
  registry.add(discard_spec());
  registry.add(split_source_spec());
  registry.add(decode_spec());
  registry.add(views_spec());
  registry.add(batch_spec());
  registry.add(sefar_train_spec());
  registry.add(classify_spec());
  registry.add(export_features_spec());
}

}  // namespace sefar::nodes

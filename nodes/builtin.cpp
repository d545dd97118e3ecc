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
  registry.add(sefar_model_spec());
  registry.add(train_loop_spec());
  registry.add(teacher_spec());
  registry.add(adaptive_regulation_spec());
  registry.add(fixed_threshold_spec());
  registry.add(no_regulation_spec());
  registry.add(tube_token_mix_spec());
  registry.add(student_spec());
  registry.add(regulated_loss_spec());
  registry.add(backward_spec());
  registry.add(optimizer_spec());
  registry.add(ema_update_spec());
  registry.add(classify_spec());
  registry.add(export_features_spec());
}

}  // namespace sefar::nodes

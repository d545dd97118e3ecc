// fixed_threshold: FixMatch's confidence threshold in place of the adaptive regulation (ablation).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec fixed_threshold_spec() {
  return step_stage_spec(
             "fixed_threshold",
             "FixMatch's regulation: eta = 1 when the teacher's p_max reaches the threshold, else 0.", false)
      .param_float("threshold", 0.95, "confidence threshold", 0, 1)
      .factory([](const graph::NodeContext& ctx) {
        const double threshold = ctx.params.get_float("threshold");
        return std::make_unique<StepStageNode>([threshold](models::TrainStep& step) {
          models::regulate(step, models::Regulation::fixed, threshold);
        });
      });
}

}  // namespace sefar::nodes

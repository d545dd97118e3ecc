// adaptive_regulation: SeFAR's weight of each pseudo-label (DESIGN §2, Adaptive Regulation).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec adaptive_regulation_spec() {
  return step_stage_spec(
             "adaptive_regulation",
             "SeFAR's adaptive regulation: eta = 2 sigmoid(exp(p_max) - e) * 2 (sigmoid(1 / (20 s_max + "
             "1e-9)) - 0.5), near 1 only when the teacher is confident and stable.",
             false)
      .factory([](const graph::NodeContext&) {
        return std::make_unique<StepStageNode>(
            [](models::TrainStep& step) { models::regulate(step, models::Regulation::adaptive); });
      });
}

}  // namespace sefar::nodes

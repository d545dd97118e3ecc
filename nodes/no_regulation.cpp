// no_regulation: every pseudo-label weighs 1 (ablation).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec no_regulation_spec() {
  return step_stage_spec("no_regulation", "No regulation: eta = 1 for every unlabeled clip.", false)
      .factory([](const graph::NodeContext&) {
        return std::make_unique<StepStageNode>(
            [](models::TrainStep& step) { models::regulate(step, models::Regulation::none); });
      });
}

}  // namespace sefar::nodes

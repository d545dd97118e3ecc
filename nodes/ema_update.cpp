// ema_update: the teacher follows the student; its output closes the step's loop (a feedback edge
// back to the training loop, which then starts the next step).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec ema_update_spec() {
  return step_stage_spec(
             "ema_update",
             "The EMA update of the teacher after a finite semi-supervised step: teacher = decay teacher "
             "+ (1 - decay) student. Wire its output back to the training loop's `done` input.")
      .param_float("decay", 0.9999, "teacher EMA decay", 0, 1)
      .factory([](const graph::NodeContext& ctx) {
        auto trainer = ctx.model<models::Trainer>("model");
        const double decay = ctx.params.get_float("decay");
        return std::make_unique<StepStageNode>(
            [trainer, decay](models::TrainStep& step) { models::ema_step(*trainer, step, decay); },
            trainer.get());
      });
}

}  // namespace sefar::nodes

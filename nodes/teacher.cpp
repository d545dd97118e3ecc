// teacher: the EMA teacher's Monte-Carlo statistics on the weak views (DESIGN §2, Teacher).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec teacher_spec() {
  return step_stage_spec(
             "teacher",
             "The EMA teacher on the weak views, K Monte-Carlo passes: mean probabilities p, per-class "
             "std s, pseudo-labels argmax p. Backbone once and the head K times when only the head is "
             "random; otherwise K passes batched as one. Warm-up and supervised steps pass through.")
      .param_int("passes", 10, "Monte-Carlo passes (K)", 1, 1000)
      .factory([](const graph::NodeContext& ctx) {
        auto trainer = ctx.model<models::Trainer>("model");
        const int passes = int(ctx.params.get_int("passes"));
        return std::make_unique<StepStageNode>(
            [trainer, passes](models::TrainStep& step) { models::teacher_forward(*trainer, step, passes); },
            trainer.get());
      });
}

}  // namespace sefar::nodes

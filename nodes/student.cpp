// student: the student's forward passes with autograd (labeled + strong, and the mixed views).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec student_spec() {
  return step_stage_spec(
             "student",
             "The student's forward passes with autograd: labeled and channel-dropped strong clips in one "
             "pass, and the Tube-TokenMix'ed strong views when a token-mix node drew them.")
      .param_int("inject_nonfinite_at_step", -1,
                 "fault injection for tests: make the labeled input of this step NaN (-1: never)", -1, 1e12)
      .may_change_on_resume()
      .factory([](const graph::NodeContext& ctx) {
        auto trainer = ctx.model<models::Trainer>("model");
        const std::int64_t inject = ctx.params.get_int("inject_nonfinite_at_step");
        return std::make_unique<StepStageNode>(
            [trainer, inject](models::TrainStep& step) { models::student_forward(*trainer, step, inject); },
            trainer.get());
      });
}

}  // namespace sefar::nodes

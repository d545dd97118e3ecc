// backward: the backward pass, gradient averaging in a data-parallel job, the non-finite check.
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec backward_spec() {
  return step_stage_spec(
             "backward",
             "The backward pass of the loss; in a data-parallel job the gradients (in 25 MiB buckets) and "
             "the logged losses are averaged over ranks. A NaN or infinite loss or gradient norm marks the "
             "step non-finite: nothing downstream updates anything.")
      .factory([](const graph::NodeContext& ctx) {
        auto trainer = ctx.model<models::Trainer>("model");
        return std::make_unique<StepStageNode>(
            [trainer](models::TrainStep& step) { models::backward(*trainer, step); }, trainer.get());
      });
}

}  // namespace sefar::nodes

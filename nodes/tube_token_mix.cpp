// tube_token_mix: the Tube TokenMix draw and the second student input (DESIGN §2, Tube TokenMix).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec tube_token_mix_spec() {
  return step_stage_spec(
             "tube_token_mix",
             "Tube TokenMix: lambda ~ Beta(alpha, alpha), one batch permutation for every view and the "
             "mixed targets, a tube mask per view (floor(lambda P) patch positions, the same in every "
             "frame); the student then also runs on the strong views mixed with their permuted copy. "
             "Remove the node (wire the regulation to the student) to train without it.")
      .param_float("alpha", 10.0, "Beta(alpha, alpha) of the mixing ratio", 0.01, 1e3)
      .param_choice("permutation", "shared", {"shared", "per_view"},
                    "one batch permutation for every view and the targets, or one per view with the "
                    "targets on the last view's (the official code's form, docs/STEP_PARITY.md)")
      .factory([](const graph::NodeContext& ctx) {
        auto trainer = ctx.model<models::Trainer>("model");
        const double alpha = ctx.params.get_float("alpha");
        const bool per_view = ctx.params.get_string("permutation") == "per_view";
        return std::make_unique<StepStageNode>(
            [trainer, alpha, per_view](models::TrainStep& step) {
              models::tube_token_mix(*trainer, step, alpha, per_view);
            },
            trainer.get());
      });
}

}  // namespace sefar::nodes

// regulated_loss: L = L_sup + xi(e) (gamma_un L_un + gamma_mix L_mix) (DESIGN §2, Loss).
#include "nodes/builtin.h"
#include "nodes/train_step.h"

namespace sefar::nodes {

graph::NodeSpec regulated_loss_spec() {
  return step_stage_spec(
             "regulated_loss",
             "The regulated loss: cross-entropy on the labeled clips, eta-weighted cross-entropy of the "
             "strong views against the pseudo-labels, eta_mix-weighted squared error of the mixed views "
             "against the mixed teacher targets; the unlabeled terms ramped in by xi(e) = sin(pi/2 (e + 1 "
             "- W) / (E - W)) after the warm-up.",
             false)
      .param_float("gamma_un", 2.0, "weight of the unlabeled loss", 0, 1e3)
      .param_float("gamma_mix", 2.0, "weight of the Tube TokenMix loss", 0, 1e3)
      .param_choice(
          "mix_target", "probabilities", {"probabilities", "logits"},
          "compare mixed-view probabilities (SVFormer form) or raw logits (official code) with the mixed "
          "teacher targets")
      .factory([](const graph::NodeContext& ctx) {
        const double gamma_un = ctx.params.get_float("gamma_un"),
                     gamma_mix = ctx.params.get_float("gamma_mix");
        const bool logits = ctx.params.get_string("mix_target") == "logits";
        return std::make_unique<StepStageNode>([gamma_un, gamma_mix, logits](models::TrainStep& step) {
          models::regulated_loss(step, gamma_un, gamma_mix, logits);
        });
      });
}

}  // namespace sefar::nodes

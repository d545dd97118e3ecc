// optimizer: the learning-rate schedule and the update of the student (SGD or AdamW).
#include <fmt/format.h>

#include "nodes/builtin.h"
#include "nodes/train_step.h"
#include "util/errors.h"

namespace sefar::nodes {

graph::NodeSpec optimizer_spec() {
  return step_stage_spec(
             "optimizer",
             "The student's update: the learning rate of the step's epoch (base lr times every factor "
             "whose milestone is reached), global-norm clipping, SGD with momentum (official) or AdamW. "
             "Its state is checkpointed with the model.")
      .param_choice("optimizer", "sgd", {"sgd", "adamw"},
                    "sgd (official, for ImageNet-initialised models) or adamw (small models from scratch)")
      .param_float("lr", 0.005, "learning rate", 0, 100)
      .param_float("momentum", 0.9, "SGD momentum", 0, 1)
      .param_float("weight_decay", 1e-3, "weight decay (AdamW: decoupled)", 0, 1)
      .param_float("clip_grad_norm", 0.0, "clip the global gradient norm to this (0: off)", 0, 1e6)
      .param_int_list("milestones", std::vector<std::int64_t>{25, 28}, "epochs where the learning rate steps",
                      0, 1e6)
      .param_float_list("factors", std::vector<double>{0.1, 0.01},
                        "learning-rate factor from each milestone on", 0, 1e3)
      .factory([](const graph::NodeContext& ctx) {
        const auto& p = ctx.params;
        models::OptimizerOptions o;
        o.kind = p.get_string("optimizer");
        o.lr = p.get_float("lr");
        o.momentum = p.get_float("momentum");
        o.weight_decay = p.get_float("weight_decay");
        o.clip_grad_norm = p.get_float("clip_grad_norm");
        o.milestones.clear();
        for (auto m : p.get_int_list("milestones")) o.milestones.push_back(int(m));
        o.factors = p.get_float_list("factors");
        if (o.factors.size() != o.milestones.size())
          throw util::ParamError("factors", fmt::format("{} factors for {} milestones",
                                                  o.factors.size(), o.milestones.size()));
        auto trainer = ctx.model<models::Trainer>("model");
        return std::make_unique<StepStageNode>(
            [trainer, o](models::TrainStep& step) { models::optimizer_step(*trainer, step, o); },
            trainer.get());
      });
}

}  // namespace sefar::nodes

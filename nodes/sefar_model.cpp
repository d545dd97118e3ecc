// sefar_model: the student and its EMA teacher, declared once in a pipeline's "models" section and
// named by the step nodes (teacher, student, backward, optimizer, ema_update) and the training loop.
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <iostream>

#include "models/device.h"
#include "models/timesformer.h"
#include "nodes/builtin.h"
#include "nodes/init_weights.h"
#include "nodes/param_groups.h"
#include "nodes/train_step.h"
#include "util/errors.h"

namespace sefar::nodes {

graph::NodeSpec sefar_model_spec() {
  return graph::NodeSpec(kSefarModelType)
      .doc(
          "The multi-granular TimeSformer being trained (the student), its EMA teacher (made from the "
          "student "
          "at the first semi-supervised step), the optimiser's state and the step counter: what a checkpoint "
          "holds. Declared under \"models\"; nodes name it with their \"model\" parameter.")
      .param_choice("model", "tiny", {"tiny", "S", "B"}, "model size (tiny: tests and the quickstart)")
      .param_int("num_classes", std::nullopt, "number of classes", 2, 100000)
      .param_int_list("views", std::vector<std::int64_t>{2, 2, 4}, "frames per view (match the decode node)",
                      1, 256, 1)
      .param_int("crop", 224, "input size (match the views node's crop)", 8, 4096)
      .param_int("patch", 0, "patch size (0: the model size's own: 8 tiny, 16 S/B)", 0, 256)
      .param_float("drop_path", 0.1, "stochastic depth rate", 0, 0.9)
      .param_float("head_dropout", 0.5, "dropout before the classifier (also the teacher's MC dropout)", 0,
                   0.95)
      .param_choice(
          "init", models::ParamInit::kOfficial, models::kParamInits,
          "initialisation from scratch: official (timm: truncated normal, std 0.02) or torch (LibTorch's "
          "layer defaults; small models from scratch learn much sooner)")
      .param_choice("attention", models::AttentionImpl::kAuto, models::kAttentionImpls,
                    "attention kernel: explicit (softmax(q k^T) v), fused (at::scaled_dot_product_attention, "
                    "LibTorch 2.x) or auto (fused where it exists)")
      .param_choice("precision", "fp32", {"fp32", "bf16"},
                    "forward passes in fp32 or under bf16 autocast (weights, gradients and optimiser state "
                    "stay fp32)")
      .param_string(
          "pretrained", "",
          "ImageNet initialisation: ViT weights in timm's naming (a safetensors file, e.g. "
          "vit_small_patch16_224's state dict) for the backbone: spatial weights as they are, temporal "
          "attention copied from the spatial one, temporal_fc zero after block 0, pos_embed resized "
          "bicubically; time embeddings and the fusion head from scratch. Empty: from scratch "
          "(docs/PRETRAINED.md)")
      .param_string(
          "init_from", "",
          "start from a whole model (safetensors: a run's model.safetensors, a training checkpoint (its "
          "teacher, else its student), or an official SeFAR checkpoint converted by "
          "tools/convert_official.py), backbone and head, loaded strictly; empty: none. A resumed run "
          "continues from its checkpoint instead")
      .param_choice(
          "init_from_parts", "all", {"all", "backbone"},
          "what init_from loads: all (backbone and head, strictly) or backbone (vit.model.* strictly; "
          "the fusion head as built): a model trained on another task, e.g. with another number of "
          "classes, as the starting point the way an ImageNet backbone is (docs/PRETRAINED.md)")
      .param_group(device_params)
      .model_factory([](const graph::NodeContext& ctx) -> std::any {
        const auto& p = ctx.params;
        models::TrainerOptions t;
        t.model = models::ModelConfig::preset(p.get_string("model"));
        t.model.num_classes = p.get_int("num_classes");
        t.model.views.clear();
        for (auto k : p.get_int_list("views")) t.model.views.push_back(k);
        t.model.img_size = p.get_int("crop");
        if (p.get_int("patch") > 0) t.model.patch_size = p.get_int("patch");
        t.model.drop_path_rate = p.get_float("drop_path");
        t.model.head_dropout = p.get_float("head_dropout");
        t.model.init = p.get_enum("init", models::kParamInits);
        t.model.attention = p.get_enum("attention", models::kAttentionImpls);
        t.bf16 = p.get_string("precision") == "bf16";
        const auto device = DeviceParams::read(p);
        t.device = device.device;
        t.seed = ctx.seed;
        const std::string pretrained = p.get_string("pretrained"), init_from = p.get_string("init_from");
        if (!pretrained.empty() && !init_from.empty())
          throw util::ParamError("init_from", "give either \"pretrained\" (ImageNet backbone) or \"init_from\" (a whole "
              "model), not both");
        auto trainer = std::make_shared<models::Trainer>(t);
        nlohmann::json report;  // null: built from scratch
        if (!pretrained.empty()) report = load_initial_weights(trainer->student(), "pretrained", pretrained);
        const bool backbone_only = p.get_string("init_from_parts") == "backbone";
        if (backbone_only && init_from.empty())
          throw util::ParamError(
              "init_from_parts",
              "\"backbone\" says what to take from init_from, which is empty: name the file "
              "with init_from, or leave init_from_parts at \"all\"");
        if (!init_from.empty())
          report = load_initial_weights(trainer->student(), "init_from", init_from, backbone_only);
        if (!report.is_null() && ctx.rank == 0)
          std::cerr << fmt::format("model '{}': {}\n", ctx.id, initial_weights_summary(report));
        trainer->set_initial_weights(std::move(report));
        return trainer;
      });
}

}  // namespace sefar::nodes

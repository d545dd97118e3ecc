// Initial weights of a model built for training (sefar_model's "pretrained" and "init_from"
// parameters): loading with errors that name the parameter and the file, the report of which keys
// were used, resized or left out, and its copy in the run directory (RUN_DIR/initial_weights.json).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace sefar::models {
class MultiGranularViT;
}

namespace sefar::nodes {

// "pretrained": ImageNet ViT weights in timm's naming (safetensors) into the backbone
// (models::load_timm_vit, strict: every backbone weight must be there and nothing but classifier keys
// may be left over). "init_from": full model weights (a sefar model.safetensors, or an official
// checkpoint converted by tools/convert_official.py, or a training checkpoint: its teacher, else its
// student) loaded strictly into backbone and head; a position embedding for another input size is
// resized. With backbone_only (sefar_model's init_from_parts "backbone") only the backbone
// (vit.model.*) is taken, strictly, and the fusion head stays as built: a model trained on another
// task (another number of classes) as the starting point, the way an ImageNet backbone is. Its time
// embeddings follow the model's views: another frame count is resized (nearest, as the official
// forward does), a view the model lacks is left out, one the file lacks stays as built. Returns the
// report (initial_weights_json's form); throws util::ParamError naming the parameter and the file.
nlohmann::json load_initial_weights(models::MultiGranularViT& model, const std::string& param,
                                    const std::string& path, bool backbone_only = false);

// The console form of a report: one line of counts (and what was resized), then the modules kept
// as built and the file's tensors left out, blocks merged ("vit.model.blocks.*.temporal_fc (x12)").
std::string initial_weights_summary(const nlohmann::json& report);

// Writes RUN_DIR/initial_weights.json from the report of the model (models::Trainer::initial_weights);
// a null report (from scratch) removes an earlier file of that name. Called by the training loop in a
// fresh run. Throws graph::StorageError when it cannot write.
void write_initial_weights(const std::string& run_dir, const nlohmann::json& report);

}  // namespace sefar::nodes

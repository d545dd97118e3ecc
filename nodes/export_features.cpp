// export_features: runs a trained model on batches and writes, for every clip in source order, the
// fused feature z and the per-view CLS features f_i to one safetensors file with the clip paths.
#include <filesystem>
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graph/node.h"
#include "io/safetensors.h"
#include "models/config.h"
#include "nodes/batch.h"
#include "nodes/builtin.h"
#include "nodes/model_runner.h"

namespace sefar::nodes {

namespace {

class ExportFeaturesNode final : public graph::Node {
 public:
  explicit ExportFeaturesNode(const graph::NodeContext& ctx) : id_(ctx.id), run_dir_(ctx.run_dir) {
    const auto& p = ctx.params;
    runner_ = ModelRunnerParams::read(p);
    out_ = p.get_string("out");
    if (run_dir_.empty()) throw std::invalid_argument("needs a run directory (runtime.run_dir)");
    model_ = load_model_for_node(runner_);
  }

  void process(int, const graph::Item& item, graph::Output&) override {
    const ViewBatch& batch = *item.as<ViewBatchPtr>();
    auto outputs = run_model(model_, batch.draws);
    fused_.push_back(outputs.fused);
    views_.push_back(at::stack(outputs.view_features, 1));  // [B, V, D]
    for (const auto& c : batch.clips) {
      clips_.push_back(c.path);
      labels_.push_back(c.list_label);
    }
  }

  void finish(graph::Output&) override {
    if (clips_.empty()) throw std::runtime_error("no clip reached the node; nothing to export");
    std::vector<std::pair<std::string, at::Tensor>> tensors = {
        {"fused", at::cat(fused_, 0)},
        {"views", at::cat(views_, 0)},
        {"labels", at::tensor(labels_, at::kLong)},
    };
    std::map<std::string, std::string> metadata = {
        {"format", "sefar-features-1"},
        {"clips", nlohmann::json(clips_).dump()},
        {"weights", runner_.weights},
        {"sefar.model_config", models::model_config_to_json(model_.config).dump()},
    };
    auto path = (std::filesystem::path(run_dir_) / out_).string();
    io::save_safetensors(path, tensors, metadata);
    std::cerr << fmt::format("{}: {} clips -> {} (fused [{}, {}], views [{}, {}, {}])\n", id_, clips_.size(),
                             path, clips_.size(), model_.config.fusion_dim, clips_.size(),
                             model_.config.num_views(), model_.config.embed_dim);
  }

 private:
  std::string id_, run_dir_, out_;
  ModelRunnerParams runner_;
  LoadedModel model_;
  std::vector<at::Tensor> fused_, views_;
  std::vector<std::string> clips_;
  std::vector<std::int64_t> labels_;
};

}  // namespace

graph::NodeSpec export_features_spec() {
  return model_runner_spec(
             "export_features",
             "Writes the fused feature z [N, fusion_dim] and the per-view CLS features [N, V, embed_dim] of "
             "every clip (source order; view sets averaged) to RUN_DIR/<out> (safetensors: fused, views, "
             "labels; metadata 'clips' is the JSON list of clip paths).",
             "batches (eval or test draws)")
      .param_string("out", "features.safetensors", "output file, relative to the run directory")
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<ExportFeaturesNode>(ctx); });
}

}  // namespace sefar::nodes

// classify: evaluates a trained model on batches (eval or multi-view test draws): top-1/top-5,
// per-class accuracy and the confusion matrix in RUN_DIR/<out>, one prediction per clip in
// RUN_DIR/<predictions>. The end of pipelines/eval.json.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graph/node.h"
#include "graph/runtime.h"
#include "io/class_names.h"
#include "io/metric_records.h"
#include "models/trainer.h"
#include "nodes/batch.h"
#include "nodes/builtin.h"
#include "nodes/model_runner.h"
#include "util/atomic_file.h"
#include "util/errors.h"

namespace sefar::nodes {

namespace {

struct ClassifyOptions {
  ModelRunnerParams runner;
  std::string out, predictions, classes;
};

class ClassifyNode final : public graph::Node {
 public:
  explicit ClassifyNode(const graph::NodeContext& ctx) : id_(ctx.id), run_dir_(ctx.run_dir) {
    const auto& p = ctx.params;
    options_.runner = ModelRunnerParams::read(p);
    options_.out = p.get_string("out");
    options_.predictions = p.get_string("predictions");
    options_.classes = p.get_string("classes");
    model_ = load_model_for_node(options_.runner);
    evaluation_ = std::make_unique<models::Evaluation>(int(model_.config.num_classes));
    if (!options_.classes.empty()) {
      try {
        class_names_ = io::read_class_names(options_.classes);
      } catch (const std::exception& e) {
        throw util::ParamError("classes", e.what());
      }
      if (class_names_.size() != std::size_t(model_.config.num_classes))
        throw util::ParamError("classes", fmt::format("{} names {} classes, the model has {}",
                                                options_.classes, class_names_.size(),
                                                model_.config.num_classes));
    }
  }

  void process(int, const graph::Item& item, graph::Output&) override {
    const ViewBatch& batch = *item.as<ViewBatchPtr>();
    auto outputs = run_model(model_, batch.draws);
    std::vector<std::int64_t> truth;
    for (const auto& c : batch.clips) truth.push_back(c.list_label);
    evaluation_->add(outputs.probs, at::tensor(truth, at::kLong));
    const at::Tensor probs = outputs.probs.to(at::kCPU, at::kFloat).contiguous();
    const std::int64_t classes = probs.size(1);
    for (std::size_t i = 0; i < batch.clips.size(); ++i) {
      const float* row = probs.data_ptr<float>() + std::int64_t(i) * classes;
      const std::int64_t predicted = std::max_element(row, row + classes) - row;
      const std::int64_t label = batch.clips[i].list_label;
      nlohmann::json line{{"clip", batch.clips[i].path},
                          {"label", label},
                          {"prediction", predicted},
                          {"confidence", row[predicted]},
                          {"probs", std::vector<float>(row, row + classes)}};
      if (!class_names_.empty()) {
        line["prediction_name"] = class_names_[std::size_t(predicted)];
        if (label >= 0 && label < classes) line["label_name"] = class_names_[std::size_t(label)];
      }
      predictions_ += line.dump() + "\n";
    }
  }

  void finish(graph::Output&) override {
    io::EvalRecord record = evaluation_->record();
    record.weights = options_.runner.weights;
    std::cerr << fmt::format("{}: top-1 {:.1f}% top-5 {:.1f}% mean-class {:.1f}% ({} clips)\n", id_,
                             100 * evaluation_->top1(), 100 * evaluation_->top5(),
                             100 * evaluation_->mean_class_accuracy(), evaluation_->count());
    if (run_dir_.empty()) return;
    util::write_file_atomic((std::filesystem::path(run_dir_) / options_.out).string(),
                            io::to_json(record).dump(2) + "\n");
    if (!options_.predictions.empty())
      util::write_file_atomic((std::filesystem::path(run_dir_) / options_.predictions).string(),
                               predictions_);
  }

 private:
  std::string id_, run_dir_;
  ClassifyOptions options_;
  LoadedModel model_;
  std::unique_ptr<models::Evaluation> evaluation_;
  std::string predictions_;
  std::vector<std::string> class_names_;  // empty: no classes file
};

}  // namespace

graph::NodeSpec classify_spec() {
  return model_runner_spec(
             "classify",
             "Evaluates trained weights on batches (view sets averaged for multi-view testing) and writes "
             "top-1/top-5, per-class accuracy and the confusion matrix to RUN_DIR/<out>, one prediction per "
             "clip to RUN_DIR/<predictions>.",
             "batches with the list's labels (eval or test draws)")
      .param_string("out", "evaluation.json", "results file, relative to the run directory")
      .param_string("predictions", "predictions.jsonl",
                    "per-clip predictions file (empty: none): clip, label, prediction, confidence and the "
                    "probability of every class")
      .param_string(
          "classes", "",
          "classes file (\"index name\" per line, as sefar synth writes): predictions also name the "
          "predicted and the true class (empty: numbers only)")
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<ClassifyNode>(ctx); });
}

}  // namespace sefar::nodes

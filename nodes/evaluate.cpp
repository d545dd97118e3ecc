#include "nodes/evaluate.h"

#include <mutex>

#include <ATen/ops/tensor.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "graph/node.h"
#include "graph/pipeline.h"
#include "graph/runtime.h"
#include "graph/validate.h"
#include "nodes/batch.h"
#include "nodes/builtin.h"

namespace sefar::nodes {

namespace {

class PredictNode final : public graph::Node {
 public:
  PredictNode(models::Trainer& trainer, models::Evaluation& evaluation)
      : trainer_(trainer), evaluation_(evaluation) {}
  void process(int, const graph::Item& item, graph::Output&) override {
    const ViewBatch& batch = *item.as<ViewBatchPtr>();
    auto probs = trainer_.predict(batch.draws);
    std::vector<std::int64_t> truth;
    for (const auto& c : batch.clips) truth.push_back(c.list_label);
    evaluation_.add(probs, at::tensor(truth, at::kLong));
  }

 private:
  models::Trainer& trainer_;
  models::Evaluation& evaluation_;
};

}  // namespace

namespace {

// The evaluation pipeline, validated and its nodes built (every start-up check: the list is read,
// its clips looked up, its labels checked against num_classes), ready to run into `evaluation`.
struct EvaluationRun {
  graph::Registry registry;
  graph::ValidatedPipeline pipeline;
  std::unique_ptr<graph::Runtime> runtime;
  graph::RunOptions options;
};

void prepare_evaluation(EvaluationRun& run, const EvalSetup& s, models::Trainer& trainer,
                        models::Evaluation& evaluation, int num_classes) {
  register_builtin_nodes(run.registry);
  run.registry.add(graph::NodeSpec("predict")
                       .doc("classifies batches with the model being trained")
                       .ordered_input("in", batch_message(), "batches")
                       .serial()
                       .factory([&](const graph::NodeContext&) {
                         return std::make_unique<PredictNode>(trainer, evaluation);
                       }));
  nlohmann::json p;
  p["name"] = "evaluation";
  p["runtime"] = {{"threads", s.threads}, {"max_in_flight", s.max_in_flight}, {"seed", s.seed}};
  p["nodes"]["clips"] = {{"type", "split_source"},
                         {"params",
                          {{"list", s.list},
                           {"root", s.root},
                           {"limit", s.limit},
                           {"strict", false},
                           {"num_classes", num_classes},
                           {"shard", "exact"}}}};
  p["nodes"]["decode"] = {{"type", "decode"},
                          {"params",
                           {{"views", s.views},
                            {"draws", s.mode == "test" ? "test" : "eval"},
                            {"test_clips", s.test_clips},
                            {"short_side", {s.short_side, s.short_side}}}},
                          {"concurrency", "unlimited"}};
  p["nodes"]["views"] = {{"type", "views"},
                         {"params", {{"crop", s.crop}, {"mode", s.mode == "test" ? "test" : "eval"}}},
                         {"concurrency", "unlimited"}};
  p["nodes"]["batch"] = {{"type", "batch"}, {"params", {{"size", s.batch}}}};
  p["nodes"]["predict"] = {{"type", "predict"}};
  p["edges"] = {"clips -> decode", "decode -> views", "views -> batch", "batch -> predict"};
  // safe_dump: a list path that is not valid UTF-8 gets U+FFFD (and is reported as not found)
  // instead of a type_error.
  auto doc = graph::parse_pipeline("<evaluation>", graph::safe_dump(p));
  run.pipeline = graph::validate(doc, run.registry);
  run.runtime = std::make_unique<graph::Runtime>(run.pipeline, run.registry);
  run.options.print_table = false;
  run.options.services.put(s.communicator);
  run.options.stop = s.stop;
  run.options.rank = s.rank;
  run.options.world_size = s.world_size;
  run.runtime->prepare(run.options);
}

}  // namespace

void check_evaluation(const EvalSetup& s, models::Trainer& trainer, int num_classes) {
  models::Evaluation evaluation(num_classes);
  EvaluationRun run;
  prepare_evaluation(run, s, trainer, evaluation, num_classes);
}

models::Evaluation evaluate_split(const EvalSetup& s, models::Trainer& trainer, int num_classes) {
  models::Evaluation evaluation(num_classes);
  EvaluationRun run;
  prepare_evaluation(run, s, trainer, evaluation, num_classes);
  run.runtime->run(run.options);
  if (s.communicator) {
    auto counts = evaluation.counts();
    std::vector<at::Tensor> summed{at::tensor(counts, at::kLong)};
    s.communicator->all_reduce_sum(summed);
    evaluation.set_counts(std::vector<std::int64_t>(summed[0].data_ptr<std::int64_t>(),
                                                    summed[0].data_ptr<std::int64_t>() + summed[0].numel()));
  }
  return evaluation;
}

}  // namespace sefar::nodes

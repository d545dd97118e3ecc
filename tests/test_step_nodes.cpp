// The training step as graph nodes: a user-defined regulation rule is one new node type used from
// JSON with no other node touched (the worked example of docs/ARCHITECTURE.md), and the pipeline's
// "models" section is checked like nodes are.
#include <cmath>
#include <mutex>

#include <ATen/ATen.h>

#include "graph/pipeline.h"
#include "graph/registry.h"
#include "graph/runtime.h"
#include "graph/validate.h"
#include "nodes/builtin.h"
#include "nodes/train_step.h"
#include "run_helpers.h"

using namespace sefar::testing;
namespace graph = sefar::graph;
namespace models = sefar::models;
namespace nodes = sefar::nodes;

namespace {

// What the test's node computed, step by step (mean eta of each semi-supervised step).
struct EtaProbe {
  std::mutex mutex;
  std::vector<double> means;
};

// The example of docs/ARCHITECTURE.md: an entropy-based regulation, eta = 1 - H(p) / log C, in one
// file's worth of code.
graph::NodeSpec entropy_regulation_spec(std::shared_ptr<EtaProbe> probe) {
  return nodes::step_stage_spec("entropy_regulation",
                                "eta = 1 - H(p) / log C: confident teachers weigh more.", false)
      .factory([probe](const graph::NodeContext&) {
        return std::make_unique<nodes::StepStageNode>([probe](models::TrainStep& step) {
          if (!step.semi) return;
          const at::Tensor& p = step.teacher.mean_prob;  // [U, C]
          at::Tensor entropy = -(p * p.clamp_min(1e-12).log()).sum(1);
          step.eta = 1 - entropy / std::log(double(p.size(1)));
          std::lock_guard<std::mutex> lock(probe->mutex);
          probe->means.push_back(step.eta.mean().item<double>());
        });
      });
}

std::vector<std::string> tiny_sets(const fs::path& run_dir) {
  const fs::path& data = tiny_dataset();
  return {"train_list=" + (data / "train.csv").string(),
          "unlabeled_list=" + (data / "unlabel.csv").string(),
          "val_list=" + (data / "val.csv").string(),
          "num_classes=3",
          "epochs=2",
          "warmup_epochs=1",
          "batch=2",
          "unlabeled_batch=4",
          "models.net.threads=1",
          "train.log_every=0",
          "runtime.threads=2",
          "runtime.run_dir=" + run_dir.string()};
}

void run_in_process(const std::string& file, const graph::Registry& registry, const fs::path& run_dir) {
  auto doc = graph::load_pipeline(file);
  graph::apply_overrides(doc, tiny_sets(run_dir));
  graph::substitute_params(doc);
  auto validated = graph::validate(doc, registry);
  graph::Runtime runtime(validated, registry);
  graph::RunOptions options;
  options.print_table = false;
  runtime.run(options);
}

std::vector<double> semi_eta_means(const fs::path& run_dir) {
  std::vector<double> out;
  for (const auto& r : records(run_dir))
    if (r.value("kind", "") == "step" && r.value("semi", false)) out.push_back(r["eta_mean"].get<double>());
  return out;
}

}  // namespace

TEST_CASE("a custom regulation node, one new type used from JSON, sets the run's eta") {
  TempDir dir("custom_regulation");
  auto probe = std::make_shared<EtaProbe>();
  graph::Registry registry;
  nodes::register_builtin_nodes(registry);
  registry.add(entropy_regulation_spec(probe));
  // The ablation as a user writes it: the quickstart with its regulation node swapped.
  const fs::path file = dir.path / "entropy.json";
  {
    std::ofstream out(file);
    out << R"({"extends": ")" << SEFAR_SOURCE_DIR << R"(/pipelines/quickstart.json", "name": "entropy",
               "nodes": {"regulation": {"type": "entropy_regulation"}}})";
  }
  run_in_process(file.string(), registry, dir.path / "entropy");
  run_in_process(std::string(SEFAR_SOURCE_DIR) + "/pipelines/quickstart.json", registry,
                 dir.path / "adaptive");

  const auto logged = semi_eta_means(dir.path / "entropy");
  REQUIRE(logged.size() == std::size_t(kStepsPerEpoch));  // epoch 2 is semi-supervised
  REQUIRE(probe->means.size() == logged.size());
  for (std::size_t i = 0; i < logged.size(); ++i) {
    INFO("step " << i);
    CHECK(logged[i] == doctest::Approx(probe->means[i]).epsilon(1e-9));  // the run used the node's eta
    CHECK(logged[i] >= 0.0);
    CHECK(logged[i] <= 1.0);
  }
  // The adaptive rule on the same run gives other weights: the swap is what changed them.
  const auto adaptive = semi_eta_means(dir.path / "adaptive");
  REQUIRE(adaptive.size() == logged.size());
  CHECK(adaptive[0] != doctest::Approx(logged[0]).epsilon(1e-6));
}

TEST_CASE("the models section is checked like nodes: references, types and --set") {
  graph::Registry registry;
  nodes::register_builtin_nodes(registry);
  const std::string quickstart = std::string(SEFAR_SOURCE_DIR) + "/pipelines/quickstart.json";
  auto problems = [&](const std::vector<std::string>& sets) {
    try {
      auto doc = graph::load_pipeline(quickstart);
      graph::apply_overrides(doc, sets);
      graph::substitute_params(doc);
      graph::validate(doc, registry);
    } catch (const graph::PipelineError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(problems({}).empty());
  CHECK(problems({"student.model=nett"})
            .find("param \"model\": no model \"nett\" in the pipeline's \"models\" (did you "
                  "mean \"net\"?)") != std::string::npos);
  CHECK(problems({"models.net.modle=tiny"})
            .find("model 'net' (sefar_model): no parameter \"modle\" in model type "
                  "\"sefar_model\" (did you mean \"model\"?)") != std::string::npos);
  CHECK(problems({"models.nett.model=tiny"})
            .find("no model \"nett\" in the pipeline (did you mean \"net\"?)") != std::string::npos);
  CHECK(problems({"models.net.crop=4"}).find("param \"crop\"") != std::string::npos);

  // A model type declared as a node, and a node type declared as a model.
  TempDir dir("models_section");
  auto write = [&](const std::string& name, const std::string& body) {
    std::ofstream(dir.path / name) << body;
    return (dir.path / name).string();
  };
  auto validate_file = [&](const std::string& path) {
    try {
      auto doc = graph::load_pipeline(path);
      graph::substitute_params(doc);
      graph::validate(doc, registry);
    } catch (const graph::PipelineError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(validate_file(write("a.json", R"({"extends": ")" + quickstart +
                                          R"(", "nodes": {"extra": {"type": "sefar_model"}}})"))
            .find("\"sefar_model\" is a model type: declare it under \"models\"") != std::string::npos);
  CHECK(validate_file(write("b.json", R"({"extends": ")" + quickstart +
                                          R"(", "models": {"other": {"type": "delay"}}})"))
            .find("\"delay\" is a node type: declare it under \"nodes\"") != std::string::npos);
}

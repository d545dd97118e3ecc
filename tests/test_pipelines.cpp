// The shipped pipelines: every ablation validates, differs from its base only where it says, and
// trains one (semi-supervised) epoch; eval.json and export_features.json run on trained weights.
#include <ATen/ATen.h>

#include "io/class_names.h"
#include "io/safetensors.h"
#include "run_helpers.h"

using namespace sefar::testing;

namespace {

std::string pipeline(const std::string& name) {
  return std::string(SEFAR_SOURCE_DIR) + "/pipelines/" + name;
}

// How many pipelines (.json files) pipelines/FOLDER holds.
std::size_t pipeline_files(const std::string& folder) {
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(pipeline(folder))) files += e.path().extension() == ".json";
  return files;
}

// The base pipeline's real-data settings replaced by the tiny model on the tiny dataset, one epoch,
// semi-supervised from the first step.
std::string tiny_overrides(const fs::path& run_dir) {
  const fs::path& data = tiny_dataset();
  return " --quiet --set train_list=" + (data / "train.csv").string() +
         " --set unlabeled_list=" + (data / "unlabel.csv").string() +
         " --set val_list=" + (data / "val.csv").string() +
         " --set num_classes=3 --set model=tiny --set crop=32 --set short_side=[36,44] --set "
         "eval_short_side=36"
         " --set epochs=1 --set warmup_epochs=0 --set batch=2 --set unlabeled_batch=4 --set device=cpu"
         " --set teacher.passes=2 --set runtime.threads=2 --set runtime.run_dir=" +
         run_dir.string();
}

}  // namespace

TEST_CASE("every synthetic-study pipeline validates and differs from its base where the study says") {
  // bench/ssl/run.sh trains these; each configuration must differ from its base by what it names.
  const std::vector<std::pair<std::string, std::string>> configs = {
      {"sefar", "nodes.optimizer.params.optimizer: \"sgd\" -> \"adamw\""},
      {"supervised", "node teacher removed"},
      {"no_dual", "models.net.params.views: [2,2,4] -> [8]"},
      {"no_perturb", "nodes.decode_unlabeled.params.perturbation: \"moderate\" -> \"warping\""},
      {"no_adareg", "nodes.regulation.type: \"adaptive_regulation\" -> \"fixed_threshold\""},
      {"no_tokenmix", "node token_mix removed"},
      {"supervised_ema", "nodes.loss.params.gamma_un: 2.0 -> 0.0"},
      {"supervised_long", "nodes.train.params.epochs: 30 -> 90"},
      {"supervised_matched", "nodes.train.params.epochs: 30 -> 120"},
  };
  CHECK(pipeline_files("synthetic") == configs.size());
  for (const auto& [name, difference] : configs) {
    INFO(name);
    check_exit(run_sefar("validate " + pipeline("synthetic/" + name + ".json") + " --quiet --schema-only"), 0,
               {difference});
  }
}

TEST_CASE("every ablation pipeline validates, names its difference from the base, and trains one epoch") {
  const std::vector<std::pair<std::string, std::string>> ablations = {
      {"no_dual", "models.net.params.views: [2,2,4] -> [8]"},
      {"no_perturb", "nodes.decode_unlabeled.params.perturbation: \"moderate\" -> \"warping\""},
      {"no_adareg", "nodes.regulation.type: \"adaptive_regulation\" -> \"fixed_threshold\""},
      {"no_tokenmix", "edge \"regulation.out -> student.in\" added"},
      {"perturb_none", "perturbation: \"moderate\" -> \"none\""},
      {"perturb_all_reverse", "perturbation: \"moderate\" -> \"all_reverse\""},
      {"perturb_local_shuffle", "perturbation: \"moderate\" -> \"local_shuffle\""},
      {"perturb_all_shuffle", "perturbation: \"moderate\" -> \"all_shuffle\""},
      {"perturb_warping", "perturbation: \"moderate\" -> \"warping\""},
      {"perturb_t_drop", "perturbation: \"moderate\" -> \"t_drop\""},
      {"perturb_t_half", "perturbation: \"moderate\" -> \"t_half\""},
  };
  // Every file in pipelines/ablations is covered.
  CHECK(pipeline_files("ablations") == ablations.size());

  TempDir dir("ablations");
  for (const auto& [name, difference] : ablations) {
    INFO(name);
    const std::string file = pipeline("ablations/" + name + ".json");
    // --schema-only: FineGym's lists are not here.
    check_exit(run_sefar("validate " + file + " --quiet --schema-only"), 0, {"differences from", difference});

    auto r = run_sefar("run " + file + tiny_overrides(dir.path / name));
    INFO(r.output);
    REQUIRE(r.status == 0);
    int semi_steps = 0;
    for (const auto& rec : records(dir.path / name))
      semi_steps += rec.value("kind", "") == "step" && rec.value("semi", false);
    CHECK(semi_steps == kStepsPerEpoch);
  }
}

TEST_CASE("eval.json and export_features.json on weights from a training run") {
  TempDir dir("eval_export");
  auto train = run_sefar("run " + pipeline("quickstart.json") + tiny_overrides(dir.path / "train"));
  INFO(train.output);
  REQUIRE(train.status == 0);
  const fs::path weights = dir.path / "train" / "model.safetensors";
  REQUIRE(fs::exists(weights));
  const fs::path val = tiny_dataset() / "val.csv";
  std::vector<std::string> val_paths;
  std::vector<std::int64_t> val_labels;
  {
    std::ifstream in(val);
    std::string path;
    std::int64_t label;
    while (in >> path >> label) {
      val_paths.push_back((tiny_dataset() / path).string());
      val_labels.push_back(label);
    }
  }
  // Crop, views and short side come from the weights ("auto"): the tiny model's 32 px, views and the
  // training's evaluation short side (36).
  const std::string common = " --quiet --set list=" + val.string() + " --set weights=" + weights.string() +
                             " --set device=cpu --set test_clips=2";
  {
    // Without --quiet, validate prints the resolved pipeline.
    auto v = run_sefar("validate " + pipeline("eval.json") + common.substr(std::string(" --quiet").size()));
    INFO(v.output);
    REQUIRE(v.status == 0);
    CHECK(v.output.find("warning:") == std::string::npos);
    const auto begin = v.output.find("{\n"), end = v.output.rfind("\n}");
    REQUIRE(begin != std::string::npos);
    REQUIRE(end != std::string::npos);
    const auto resolved = json::parse(v.output.substr(begin, end + 2 - begin));
    CHECK(resolved["params"]["crop"] == 32);
    CHECK(resolved["params"]["short_side"] == 36);
    CHECK(resolved["params"]["views"] == json::array({2, 2, 4}));
    CHECK(resolved["params"]["classes"] == (tiny_dataset() / "classes.txt").string());
    // A value that differs from the weights' is used, and said.
    check_exit(
        run_sefar("validate " + pipeline("eval.json") + common + " --set crop=48"), 0,
        {"warning: param \"crop\" is 48 but the weights " + weights.string() + " were trained with 32"});
    // "auto" without readable weights: an error naming the parameter and the file.
    check_exit(run_sefar("validate " + pipeline("eval.json") +
                         " --quiet --set weights=" + (dir.path / "none.safetensors").string()),
               2,
               {"param \"crop\": \"auto\" takes the value from the weights",
                "none.safetensors, but it does not exist"});
  }

  auto e = run_sefar("run " + pipeline("eval.json") + common +
                     " --set runtime.run_dir=" + (dir.path / "eval").string());
  INFO(e.output);
  REQUIRE(e.status == 0);
  CHECK(e.output.find("classify: top-1") != std::string::npos);
  auto result = json::parse(read_text(dir.path / "eval" / "evaluation.json"));
  CHECK(result["clips"] == val_paths.size());
  // The predictions file agrees with the summary.
  std::int64_t lines = 0, correct = 0;
  std::ifstream predictions(dir.path / "eval" / "predictions.jsonl");
  const auto names = sefar::io::read_class_names((tiny_dataset() / "classes.txt").string());
  for (std::string line; std::getline(predictions, line); ++lines) {
    auto p = json::parse(line);
    correct += p["prediction"] == p["label"];
    // Every class's probability; the prediction is the most probable; names from classes.txt.
    const auto probs = p["probs"].get<std::vector<double>>();
    REQUIRE(probs.size() == 3);
    double sum = 0;
    for (double q : probs) sum += q;
    CHECK(sum == doctest::Approx(1).epsilon(1e-5));
    CHECK(std::max_element(probs.begin(), probs.end()) - probs.begin() == p["prediction"].get<std::int64_t>());
    CHECK(p["confidence"].get<double>() == doctest::Approx(probs[p["prediction"].get<std::size_t>()]));
    CHECK(p["prediction_name"] == names.at(p["prediction"].get<std::size_t>()));
    CHECK(p["label_name"] == names.at(p["label"].get<std::size_t>()));
  }
  CHECK(lines == std::int64_t(val_paths.size()));
  CHECK(double(correct) / double(lines) == doctest::Approx(result["top1"].get<double>()));

  auto x = run_sefar("run " + pipeline("export_features.json") + common +
                     " --set runtime.run_dir=" + (dir.path / "features").string());
  INFO(x.output);
  REQUIRE(x.status == 0);
  std::map<std::string, std::string> metadata;
  auto tensors =
      sefar::io::load_safetensors((dir.path / "features" / "features.safetensors").string(), &metadata);
  const auto n = std::int64_t(val_paths.size());
  CHECK(tensors.at("fused").sizes() == at::IntArrayRef({n, 256}));
  CHECK(tensors.at("views").sizes() == at::IntArrayRef({n, 3, 64}));
  CHECK(metadata.at("format") == "sefar-features-1");
  CHECK(json::parse(metadata.at("clips")).get<std::vector<std::string>>() == val_paths);  // list order
  auto labels = tensors.at("labels");
  CHECK(std::vector<std::int64_t>(labels.data_ptr<std::int64_t>(), labels.data_ptr<std::int64_t>() + n) ==
        val_labels);
  CHECK(at::isfinite(tensors.at("fused")).all().item<bool>());
}

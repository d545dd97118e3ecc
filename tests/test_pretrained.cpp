// Initial weights: the sefar_model parameters "pretrained" (ImageNet ViT weights in timm's naming)
// and "init_from" (a whole model), their report on the console and in RUN_DIR/initial_weights.json,
// and two parity checks against real references run with .venv's python:
// - timm's vit_small_patch16_224 (random weights, nothing downloaded; tests/timm_ref.py): every
//   spatial weight lands unchanged in SeFAR-S, and one frame through SeFAR-S with the temporal branch
//   bypassed gives timm's forward_features CLS token;
// - the official SeFAR model (tests/official_ref.py; the code is not in this repository, see
//   SEFAR_OFFICIAL_SRC in docs/PRETRAINED.md): a checkpoint saved as its trainer saves one, converted
//   by tools/convert_official.py, gives through `sefar infer` the official logits.
// Both skip with a message when torch/timm/einops (bash scripts/setup_python.sh test reference) or
// the official code are missing.
#include <ATen/ATen.h>

#include "run_helpers.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/timesformer.h"
#include "models/weights.h"
#include "nodes/init_weights.h"
#include "nodes/run_directory.h"

using namespace sefar;
using namespace sefar::testing;
using SD = std::map<std::string, at::Tensor>;

namespace {

const std::string kPython = SEFAR_SOURCE_DIR "/.venv/bin/python";
const std::string kPrefix = "vit.model.";

// Runs a reference script of tests/ with .venv's python; false (with the reason shown) when it
// cannot: no .venv, or the script says "skip:" (exit status 3).
bool run_reference(const std::string& script, const fs::path& out) {
  if (!fs::exists(kPython)) {
    MESSAGE("skip: no " << kPython << " (bash scripts/setup_python.sh test reference)");
    return false;
  }
  auto r = capture(kPython + " " + SEFAR_SOURCE_DIR + "/tests/" + script + " " + out.string() + " 2>&1");
  if (r.status == 3) {
    MESSAGE(script << ": " << r.output);
    return false;
  }
  INFO(r.output);
  REQUIRE(r.status == 0);
  MESSAGE(r.output);
  return true;
}

// max |a - b| / max |b|
double max_relative(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

bool contains(const json& list, const std::string& key) {
  return std::find(list.begin(), list.end(), key) != list.end();
}

// A tiny model's backbone in timm's naming (no prefix, no temporal parts, a classifier).
SD timm_state(const models::MultiGranularViT& model) {
  SD timm;
  for (const auto& [k, v] : models::state_dict(model)) {
    if (k.rfind(kPrefix, 0) != 0) continue;
    const std::string t = k.substr(kPrefix.size());
    if (t.find("temporal") != std::string::npos || t.rfind("time_embed", 0) == 0) continue;
    timm[t] = v;
  }
  timm["head.weight"] = at::randn({10, model.config().embed_dim});
  timm["head.bias"] = at::randn({10});
  return timm;
}

// A pipeline that builds one sefar_model (tiny, 3 classes) and runs nothing to speak of.
fs::path model_pipeline(const fs::path& dir) {
  const fs::path path = dir / "model.json";
  std::ofstream(path) << R"({
  "name": "init",
  "params": {"pretrained": "", "init_from": "", "init_from_parts": "all", "num_classes": 3},
  "models": {"net": {"type": "sefar_model", "params": {"model": "tiny", "num_classes": "${num_classes}",
                     "crop": 32, "pretrained": "${pretrained}", "init_from": "${init_from}",
                     "init_from_parts": "${init_from_parts}"}}},
  "nodes": {"src": {"type": "range", "params": {"count": 1}}, "sink": {"type": "discard"}},
  "edges": ["src -> sink"]
})";
  return path;
}

}  // namespace

TEST_CASE("pretrained and init_from: loading, strictness and errors that name the parameter and file") {
  TempDir dir("init_weights");
  at::manual_seed(5);
  auto tiny = models::make_model(models::ModelConfig::tiny(3, {2, 2, 4}));
  const fs::path timm = dir.path / "timm.safetensors", whole = dir.path / "whole.safetensors";
  io::save_safetensors(timm.string(), timm_state(*tiny));
  models::save_weights(*tiny, whole.string());
  const std::string pipeline = model_pipeline(dir.path).string();
  auto validate = [&](const std::string& sets) { return run_sefar("validate " + pipeline + " " + sets); };

  auto r = validate("--set pretrained=" + timm.string());
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("model 'net': pretrained from " + timm.string() + ": loaded") != std::string::npos);
  CHECK(r.output.find("left out of the file: head\n") != std::string::npos);
  CHECK(r.output.find("vit.model.blocks.*.temporal_fc (x2), post_fusion1") != std::string::npos);
  CHECK(r.output.find("vit.model.time_embed.0") != std::string::npos);

  r = validate("--set init_from=" + whole.string());
  CHECK(r.status == 0);
  CHECK(r.output.find("init_from from " + whole.string() + ": loaded") != std::string::npos);
  CHECK(r.output.find("0 missing, 0 unexpected") != std::string::npos);

  // Errors: exit 2, the parameter (at its place) and the file named.
  r = validate("--set init_from=" + whole.string() + " --set num_classes=4");
  CHECK(r.status == 2);
  CHECK(r.output.find("param \"init_from\": " + whole.string()) != std::string::npos);
  CHECK(r.output.find("fc.weight: file [3, 256] vs model [4, 256]") != std::string::npos);
  r = validate("--set pretrained=" + (dir.path / "nope.safetensors").string());
  CHECK(r.status == 2);
  CHECK(r.output.find("param \"pretrained\": " + (dir.path / "nope.safetensors").string() +
                      ": no such file") != std::string::npos);
  CHECK(r.output.find("model.json:5: model 'net' (sefar_model): param \"pretrained\"") != std::string::npos);
  r = validate("--set pretrained=" + whole.string());
  CHECK(r.status == 2);
  CHECK(r.output.find("name it with \"init_from\" instead") != std::string::npos);
  r = validate("--set init_from=" + timm.string());
  CHECK(r.status == 2);
  CHECK(r.output.find("name it with \"pretrained\" instead") != std::string::npos);
  r = validate("--set init_from=" + pipeline);
  CHECK(r.status == 2);
  CHECK(r.output.find("param \"init_from\": " + pipeline + ": not a readable safetensors file") !=
        std::string::npos);
  r = validate("--set init_from=" + whole.string() + " --set pretrained=" + timm.string());
  CHECK(r.status == 2);
  CHECK(r.output.find("not both") != std::string::npos);
  SD partial = timm_state(*tiny);
  partial.erase("blocks.1.mlp.fc1.weight");
  io::save_safetensors((dir.path / "partial.safetensors").string(), partial);
  r = validate("--set pretrained=" + (dir.path / "partial.safetensors").string());
  CHECK(r.status == 2);
  CHECK(r.output.find("vit.model.blocks.1.mlp.fc1.weight") != std::string::npos);
}

TEST_CASE("init_from_parts backbone: a model of another task gives its backbone, the head stays as built") {
  TempDir dir("init_backbone");
  at::manual_seed(7);
  auto other_task = models::make_model(models::ModelConfig::tiny(4, {2, 2, 4}));
  const fs::path file = dir.path / "other_task.safetensors";
  models::save_weights(*other_task, file.string());
  auto model = models::make_model(models::ModelConfig::tiny(8, {2, 2, 4}));
  const SD before = models::state_dict(*model);

  const auto report = nodes::load_initial_weights(*model, "init_from", file.string(), /*backbone_only=*/true);
  CHECK(report["parts"] == "backbone");
  const SD source = models::state_dict(*other_task), after = models::state_dict(*model);
  int backbone = 0, head = 0;
  for (const auto& [key, value] : after) {
    CAPTURE(key);
    if (key.rfind(kPrefix, 0) == 0) {
      CHECK(at::equal(value, source.at(key)));
      CHECK(contains(report["loaded"], key));
      ++backbone;
    } else {
      CHECK(at::equal(value, before.at(key)));  // the head as built, also where the shapes agree
      CHECK(contains(report["missing"], key));
      CHECK(contains(report["unexpected"], key));  // the file's head, left out
      ++head;
    }
  }
  CHECK(backbone > 20);
  CHECK(head == 14);  // post_fusion0/1, global_fusion, ln1-3, fc: weight and bias each

  // Another view layout (one 8-frame view, the no_dual ablation): the file's first time embedding is
  // resized by nearest neighbour (frames 0-3 take its frame 0), the views the model lacks are left
  // out; the other way round, the views the file lacks stay as built.
  auto one_view = models::make_model(models::ModelConfig::tiny(8, {8}));
  const auto resized = nodes::load_initial_weights(*one_view, "init_from", file.string(), true);
  const at::Tensor te = models::state_dict(*one_view).at("vit.model.time_embed.0");
  const at::Tensor src_te = source.at("vit.model.time_embed.0");
  REQUIRE(te.sizes() == at::IntArrayRef({1, 8, 64}));
  for (int64_t t = 0; t < 8; ++t) CHECK(at::equal(te[0][t], src_te[0][t / 4]));
  CHECK(contains(resized["resized"], "vit.model.time_embed.0: [1, 2, 64] -> [1, 8, 64]"));
  CHECK(contains(resized["unexpected"], "vit.model.time_embed.2"));
  CHECK(at::equal(models::state_dict(*one_view).at("vit.model.blocks.0.temporal_fc.weight"),
                  source.at("vit.model.blocks.0.temporal_fc.weight")));
  const fs::path one_view_file = dir.path / "one_view.safetensors";
  models::save_weights(*one_view, one_view_file.string());
  auto three_views = models::make_model(models::ModelConfig::tiny(8, {2, 2, 4}));
  const SD three_before = models::state_dict(*three_views);
  const auto fewer = nodes::load_initial_weights(*three_views, "init_from", one_view_file.string(), true);
  CHECK(contains(fewer["missing"], "vit.model.time_embed.2"));
  CHECK(at::equal(models::state_dict(*three_views).at("vit.model.time_embed.2"),
                  three_before.at("vit.model.time_embed.2")));

  // Through a pipeline: the console says what was taken; errors name the parameter.
  const std::string pipeline = model_pipeline(dir.path).string();
  auto r = run_sefar("validate " + pipeline +
                     " --set num_classes=8 --set init_from_parts=backbone --set init_from=" + file.string());
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("init_from from " + file.string() +
                      ": the backbone only (the head as built): loaded") != std::string::npos);
  CHECK(r.output.find("kept from the model's own initialisation: post_fusion1") != std::string::npos);
  r = run_sefar("validate " + pipeline + " --set init_from_parts=backbone");
  CHECK(r.status == 2);
  CHECK(r.output.find(
            "param \"init_from_parts\": \"backbone\" says what to take from init_from, which is empty") !=
        std::string::npos);
  // A backbone of another depth is refused in one sentence (the model size check).
  auto small = models::make_model(models::ModelConfig::tiny(4, {2, 2, 4}));
  SD partial = models::state_dict(*small);
  partial.erase("vit.model.blocks.1.mlp.fc1.weight");
  io::save_safetensors((dir.path / "partial.safetensors").string(), partial);
  r = run_sefar("validate " + pipeline + " --set init_from_parts=backbone --set init_from=" +
                (dir.path / "partial.safetensors").string());
  CHECK(r.status == 2);
  CHECK(r.output.find("1 backbone tensors missing: vit.model.blocks.1.mlp.fc1.weight") != std::string::npos);
}

TEST_CASE("a training run started from pretrained weights records them in RUN_DIR/initial_weights.json") {
  TempDir dir("init_run");
  at::manual_seed(6);
  auto tiny = models::make_model(models::ModelConfig::tiny(3, {2, 2, 4}));
  const fs::path timm = dir.path / "timm.safetensors";
  SD source = timm_state(*tiny);
  source["pos_embed"] = at::randn({1, 65, 64});  // an 8x8 grid (64 px) for the quickstart's 4x4
  io::save_safetensors(timm.string(), source);
  const fs::path run = dir.path / "run";
  auto r = run_sefar("run " + train_args(run, "--set epochs=1 --set models.net.pretrained=" + timm.string()));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("model 'net': pretrained from " + timm.string()) != std::string::npos);
  const json report = json::parse(read_text(run / "initial_weights.json"));
  CHECK(report["parameter"] == "pretrained");
  CHECK(report["file"] == timm.string());
  CHECK(contains(report["loaded"], "vit.model.blocks.1.temporal_attn.qkv.weight"));
  CHECK(contains(report["missing"], "fc.weight"));
  CHECK(contains(report["unexpected"], "head.weight"));
  CHECK(report["resized"].size() == 1);

  // The run's own weights start a second run, strictly: the file says so and nothing is left out.
  const fs::path second = dir.path / "second";
  r = run_sefar("run " +
                train_args(second, "--set epochs=1 --set train.eval_limit=1 --set models.net.init_from=" +
                                       (run / "model.safetensors").string()));
  REQUIRE(r.status == 0);
  const json again = json::parse(read_text(second / "initial_weights.json"));
  CHECK(again["parameter"] == "init_from");
  CHECK(again["missing"].empty());
  CHECK(again["unexpected"].empty());

  // A training checkpoint: the model in it (the student here: one warm-up epoch has no teacher yet).
  const fs::path checkpoint = run / "checkpoints" / "epoch_0001.safetensors";
  REQUIRE(fs::exists(checkpoint));
  r = run_sefar("validate " + model_pipeline(dir.path).string() + " --set init_from=" + checkpoint.string());
  CHECK(r.status == 0);
  CHECK(r.output.find("init_from from " + checkpoint.string() + ": the checkpoint's student: loaded") !=
        std::string::npos);
  CHECK(r.output.find("0 missing, 0 unexpected") != std::string::npos);
  r = run_sefar("validate " + model_pipeline(dir.path).string() + " --set pretrained=" + checkpoint.string());
  CHECK(r.status == 2);
  CHECK(r.output.find("name it with \"init_from\" instead") != std::string::npos);

  // From scratch: no report, and a fresh run removes an earlier run's.
  nodes::write_initial_weights(second.string(), nullptr);
  CHECK(!fs::exists(second / "initial_weights.json"));
}

TEST_CASE(
    "timm vit_small_patch16_224 initialises SeFAR-S: same spatial tensors, same CLS output for one frame") {
  TempDir dir("timm_parity");
  if (!run_reference("timm_ref.py", dir.path)) return;
  const SD timm = io::load_safetensors((dir.path / "vit.safetensors").string());
  const SD reference = io::load_safetensors((dir.path / "reference.safetensors").string());

  // SeFAR-S with one view of one frame.
  auto model = models::make_model(models::ModelConfig::small(10, {1}));
  model->eval();
  const models::LoadReport report = models::load_timm_vit(*model, (dir.path / "vit.safetensors").string());
  const SD ours = models::state_dict(*model);
  int same = 0;
  for (const auto& [key, value] : timm) {
    if (key.rfind("head.", 0) == 0) {
      CHECK(std::find(report.unexpected.begin(), report.unexpected.end(), key) != report.unexpected.end());
      continue;
    }
    INFO(key);
    REQUIRE(ours.count(kPrefix + key));
    CHECK(at::equal(ours.at(kPrefix + key), value));
    same += at::equal(ours.at(kPrefix + key), value);
    for (const auto& [from, to] :
         {std::pair<std::string, std::string>{".attn.", ".temporal_attn."}, {".norm1.", ".temporal_norm1."}})
      if (auto pos = key.find(from); pos != std::string::npos) {
        std::string temporal = key;
        temporal.replace(pos, from.size(), to);
        CHECK(at::equal(ours.at(kPrefix + temporal), value));
      }
  }
  CHECK(same == 150);  // every tensor of ViT-S/16 but its classifier
  CHECK(report.resized.empty());
  CHECK(ours.at(kPrefix + "blocks.11.temporal_fc.weight").abs().max().item<float>() == 0.0f);

  // With one frame, temporal attention attends to the token itself; with temporal_fc zero in every
  // block (the ImageNet initialisation leaves block 0's) its residual is exactly zero, and with the
  // time embedding zero each block is a ViT block: the divided space-time model is the ViT. No
  // model code is needed for this, only these weights.
  {
    at::NoGradGuard no_grad;
    for (auto& p : model->named_parameters(true))
      if (p.key().find(".temporal_fc.") != std::string::npos || p.key() == kPrefix + "time_embed.0")
        p.value().zero_();
  }
  at::NoGradGuard no_grad;
  const at::Tensor cls = model->backbone({reference.at("images").unsqueeze(2)})[0];
  const double rel = max_relative(cls, reference.at("cls"));
  MESSAGE(
      "SeFAR-S (one frame, temporal branch bypassed) vs timm forward_features CLS: max relative difference "
      << rel);
  CHECK(rel < 1e-5);
}

TEST_CASE("an official SeFAR checkpoint, converted, gives the official logits through sefar infer") {
  TempDir dir("official_parity");
  if (!run_reference("official_ref.py", dir.path)) return;
  const fs::path converted = dir.path / "sefar.safetensors";
  auto r = capture(kPython + " " + SEFAR_SOURCE_DIR + "/tools/convert_official.py " +
                   (dir.path / "checkpoint.pyth").string() + " " + converted.string() + " 2>&1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  const models::ModelConfig config = models::model_config_from_weights(converted.string());
  CHECK(config.size == "S");
  CHECK(config.img_size == 112);  // the cfg's crop, not the official 14x14 grid's 224
  CHECK(config.views == std::vector<int64_t>{2, 2, 4});
  CHECK(config.num_classes == 7);
  CHECK(io::SafetensorsReader(converted.string()).metadata().at("sefar.eval_short_side") == "128");

  r = run_sefar("infer --weights " + converted.string() + " --inputs " +
                (dir.path / "inputs.safetensors").string() + " --outputs " +
                (dir.path / "out.safetensors").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("warning") == std::string::npos);
  const at::Tensor logits = io::load_safetensors((dir.path / "out.safetensors").string()).at("logits");
  const at::Tensor expected = io::load_safetensors((dir.path / "expected.safetensors").string()).at("logits");
  REQUIRE(logits.sizes() == expected.sizes());
  const double rel = max_relative(logits, expected);
  MESSAGE("sefar infer on the converted checkpoint vs the official model: max relative difference " << rel);
  CHECK(rel < 1e-4);

  // eval.json takes it too, its "auto" parameters from the converted config and cfg (a list without a
  // classes.txt beside it, so that the 7 classes are not checked against the dataset's 3).
  fs::copy_file(tiny_dataset() / "val.csv", dir.path / "val.csv");
  r = run_sefar("validate " + std::string(SEFAR_SOURCE_DIR) + "/pipelines/eval.json --set weights=" +
                converted.string() + " --set list=" + (dir.path / "val.csv").string() +
                " --set root=" + tiny_dataset().string() + " --set device=cpu");
  CHECK(r.status == 0);
  CHECK(r.output.find("\"crop\": 112") != std::string::npos);
  CHECK(r.output.find("\"short_side\": 128") != std::string::npos);

  // init_from takes the same file (strictly).
  r = run_sefar("validate " + model_pipeline(dir.path).string() +
                " --set models.net.model=S --set num_classes=7" +
                " --set models.net.crop=112 --set init_from=" + converted.string());
  CHECK(r.status == 0);
  CHECK(r.output.find("0 missing, 0 unexpected") != std::string::npos);

  // What is not such a checkpoint: exit 2 and why, nothing written.
  auto convert = [&](const fs::path& in) {
    return capture(kPython + " " + SEFAR_SOURCE_DIR + "/tools/convert_official.py " + in.string() + " " +
                   (dir.path / "bad.safetensors").string() + " 2>&1");
  };
  std::ofstream(dir.path / "text.pyth") << "not a checkpoint\n";
  r = convert(dir.path / "text.pyth");
  CHECK(r.status == 2);
  CHECK(r.output.find("not a PyTorch checkpoint") != std::string::npos);
  r = convert(dir.path / "missing.pyth");
  CHECK(r.status == 2);
  CHECK(r.output.find("no such file") != std::string::npos);
  r = convert(converted);  // safetensors, not torch.save
  CHECK(r.status == 2);
  CHECK(!fs::exists(dir.path / "bad.safetensors"));
}

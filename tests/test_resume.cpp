// Resuming a training run: sources restart at any position of their stream, and a run resumed from
// the checkpoint of epoch k logs, step by step, exactly what the uninterrupted run logs.
// LibTorch first (through nodes/messages.h): glog's CHECK must be replaced by doctest's.
#include "nodes/messages.h"

#include <doctest/doctest.h>

#include <tuple>

#include <fmt/format.h>

#include "graph/node.h"
#include "graph/registry.h"
#include "io/checkpoint.h"
#include "nodes/builtin.h"
#include "run_helpers.h"

using namespace sefar;
using namespace sefar::testing;

namespace {

using Clip = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::string>;

// Everything split_source emits from `start` on: (position, epoch, pass, index, path).
std::vector<Clip> stream(const fs::path& list, const json& overrides, std::int64_t start) {
  graph::Registry registry;
  nodes::register_builtin_nodes(registry);
  const auto* spec = registry.find("split_source");
  REQUIRE(spec);
  json params = json::object();
  for (const auto& p : spec->params())
    if (!p.required) params[p.name] = p.default_value;
  params["list"] = list.string();
  params["check_exists"] = false;  // the clips are names only: the stream is what is looked at
  for (auto it = overrides.begin(); it != overrides.end(); ++it) params[it.key()] = it.value();
  graph::NodeContext ctx;
  ctx.id = "source";
  ctx.type = "split_source";
  ctx.seed = 7;
  ctx.params = graph::Params("test", params);
  if (start >= 0) ctx.resume = json{{"next_item", start}};
  auto node = spec->factory()(ctx);
  auto* source = dynamic_cast<graph::Source*>(node.get());
  REQUIRE(source);
  std::vector<Clip> out;
  graph::Source::Produced produced;
  while (out.size() < 1000 && source->produce(produced)) {
    const auto& c = *std::any_cast<nodes::ClipRefPtr>(produced.value);
    out.emplace_back(c.position, c.epoch, c.pass, c.index, c.path);
  }
  return out;
}

}  // namespace

TEST_CASE("split_source restarts its stream at any position: the same clips, epochs, passes and order") {
  TempDir dir("resume_list");
  const fs::path list = dir.path / "list.csv";
  {
    std::ofstream out(list);
    for (int i = 0; i < 5; ++i) out << "clip" << i << ".mp4 " << i % 2 << "\n";
  }
  // Epochs of the list's length, epochs longer than it (several passes, reshuffled), shorter ones,
  // and an endless stream (only its first 1000 items are looked at).
  for (json overrides : {json{{"shuffle", true}, {"epochs", 3}},
                         json{{"shuffle", true}, {"epochs", 2}, {"items_per_epoch", 7}},
                         json{{"shuffle", true}, {"epochs", 4}, {"items_per_epoch", 3}},
                         json{{"shuffle", false}, {"epochs", 2}}, json{{"shuffle", true}, {"epochs", 0}}}) {
    INFO(overrides.dump());
    auto full = stream(list, overrides, -1);
    REQUIRE(!full.empty());
    for (std::size_t i = 0; i < std::min<std::size_t>(full.size(), 40); ++i) CHECK(std::get<0>(full[i]) == i);
    for (std::int64_t start : {0, 1, 3, 5, 7, 11, 14}) {
      if (std::size_t(start) > full.size()) continue;
      INFO("start " << start);
      auto tail = stream(list, overrides, start);
      auto expected = std::vector<Clip>(full.begin() + start, full.end());
      if (overrides["epochs"] == 0) {  // endless: compare what both hold
        tail.resize(std::min(tail.size(), expected.size()));
        expected.resize(tail.size());
      }
      CHECK(tail == expected);
    }
  }
  // Past the end: nothing.
  CHECK(stream(list, json{{"epochs", 2}}, 10).empty());
  CHECK(stream(list, json{{"epochs", 2}}, 12).empty());
}

TEST_CASE("a run resumed from the checkpoint of epoch k logs exactly what the uninterrupted run logs") {
  TempDir dir("resume_epochs");
  const fs::path reference = dir.path / "reference", again = dir.path / "again";
  auto r = run_sefar("run " + train_args(reference));
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto expected = records(reference);
  int steps = 0;
  for (const auto& rec : expected) steps += rec["kind"] == "step";
  CHECK(steps == kStepsPerEpoch * kEpochs);
  CHECK(expected.back()["kind"] == "eval");
  // First: LibTorch on the CPU with a fixed thread count gives the same numbers for the same
  // inputs, so a second uninterrupted run logs the same records and writes the same model.
  auto r2 = run_sefar("run " + train_args(again));
  REQUIRE(r2.status == 0);
  check_same_records(reference, again);
  CHECK(read_text(reference / "model.safetensors") == read_text(again / "model.safetensors"));

  for (int k : {0, 1}) {
    {
      INFO("interrupted after epoch " << k);
      // The run as a crash after epoch k leaves it: the checkpoints up to epoch k, metrics and
      // files written later (a resumed run cuts metrics.jsonl back to the checkpoint).
      const fs::path run = dir.path / ("cut_" + std::to_string(k));
      fs::copy(reference, run, fs::copy_options::recursive);
      const std::int64_t keep_step = (k + 1) * kStepsPerEpoch;
      int kept = 0;
      for (const auto& c : io::list_checkpoints((run / "checkpoints").string())) {
        if (c.step > keep_step) {
          fs::remove(c.path + ".safetensors");
          fs::remove(c.path + ".json");
        } else {
          kept += c.name != "best";
        }
      }
      CHECK(kept == k + 1);
      fs::remove(run / "model.safetensors");
      auto latest = io::latest_checkpoint((run / "checkpoints").string());
      REQUIRE(latest);
      CHECK(latest->step == keep_step);
      CHECK(latest->sidecar["node"]["epoch_open"] == false);
      // The sources' positions: the next labeled epoch, and the unlabeled stream where it was
      // (warm-up consumes none of it; each semi-supervised step one batch of 4, short at the end
      // of each pass over the 9 clips).
      CHECK(latest->sidecar["resume"]["labeled"]["next_item"] == 9 * (k + 1));
      CHECK(latest->sidecar["resume"]["unlabeled"]["next_item"] == (k == 0 ? 0 : 4 + 4 + 1 + 4 + 4));
      // Resume with the run's own pipeline (k = 0) and with the pipeline file and the same
      // settings (k = 1).
      auto resumed = k == 0 ? run_sefar("run --resume " + run.string() + " --quiet")
                            : run_sefar("run " + train_args(run, "--resume " + run.string()));
      INFO(resumed.output);
      REQUIRE(resumed.status == 0);
      CHECK(resumed.output.find("resumed from") != std::string::npos);
      CHECK(resumed.output.find(fmt::format("resumed at item {}", 9 * (k + 1))) != std::string::npos);
      check_same_records(reference, run);
      CHECK(read_text(reference / "model.safetensors") == read_text(run / "model.safetensors"));
    }
  }
}

TEST_CASE("--resume refuses what is not the same run, and needs a run directory") {
  TempDir dir("resume_refuse");
  const fs::path run = dir.path / "run";
  auto none = run_sefar("run --resume " + run.string());
  CHECK(none.status == 2);
  CHECK(none.output.find("is not a directory") != std::string::npos);
  fs::create_directories(run);
  auto empty = run_sefar("run --resume " + run.string());
  CHECK(empty.status == 2);
  CHECK(empty.output.find("not a run directory") != std::string::npos);

  // A run with one epoch done (its checkpoint is what a resume starts from).
  auto r = run_sefar("run " + train_args(run, "--set epochs=1"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  auto changed =
      run_sefar("run " + train_args(run, "--set epochs=1 --set optimizer.lr=0.01 --resume " + run.string()));
  CHECK(changed.status == 2);
  CHECK(changed.output.find("nodes.optimizer.params.lr is 0.01 here but 0.0003 in the run being resumed") !=
        std::string::npos);
  // Settings that change how the run executes, not what it computes, may change.
  auto same = run_sefar(
      "run " + train_args(run, "--set epochs=1 --set runtime.threads=1 --set train.log_every=3 --resume " +
                                   run.string()));
  INFO(same.output);
  CHECK(same.status == 0);
  // A fresh run in the same folder is refused; with --overwrite it starts anew: the earlier run's
  // checkpoints go.
  auto refused = run_sefar("run " + train_args(run, "--set epochs=1 --set train.eval_limit=1"));
  CHECK(refused.status == 2);
  auto fresh = run_sefar("run " + train_args(run, "--set epochs=1 --set train.eval_limit=1 --overwrite"));
  CHECK(fresh.status == 0);
  CHECK(fresh.output.find("removed the checkpoints of an earlier run") != std::string::npos);
}

TEST_CASE("accumulate: a run resumed from an epoch checkpoint inside an accumulation window logs the same") {
  // 5 steps an epoch, windows of 2: the checkpoint of epoch 1 (step 5) is one step into a window.
  TempDir dir("resume_accumulate");
  const fs::path reference = dir.path / "reference";
  const std::string accumulate = "--set train.accumulate=2";
  auto r = run_sefar("run " + train_args(reference, accumulate));
  INFO(r.output);
  REQUIRE(r.status == 0);
  // 15 steps: the last one does not fill a window.
  CHECK(r.output.find("the last 1 step(s) (from step 14) do not fill an accumulation window of 2") !=
        std::string::npos);
  int steps = 0;
  for (const auto& rec : records(reference)) {
    if (rec["kind"] != "step") continue;
    ++steps;
    const auto step = rec["step"].get<std::int64_t>();
    CHECK(rec["micro"] == step % 2);
    CHECK(rec.contains("grad_norm") == (step % 2 == 1));
  }
  CHECK(steps == kStepsPerEpoch * kEpochs);

  const fs::path run = dir.path / "cut";
  fs::copy(reference, run, fs::copy_options::recursive);
  for (const auto& c : io::list_checkpoints((run / "checkpoints").string()))
    if (c.step > kStepsPerEpoch) {
      fs::remove(c.path + ".safetensors");
      fs::remove(c.path + ".json");
    }
  fs::remove(run / "model.safetensors");
  auto latest = io::latest_checkpoint((run / "checkpoints").string());
  REQUIRE(latest);
  CHECK(latest->step == kStepsPerEpoch);
  CHECK(latest->sidecar["accumulate"] == 2);
  auto resumed = run_sefar("run " + train_args(run, accumulate + " --resume " + run.string()));
  INFO(resumed.output);
  REQUIRE(resumed.status == 0);
  check_same_records(reference, run);
  CHECK(read_text(reference / "model.safetensors") == read_text(run / "model.safetensors"));
}

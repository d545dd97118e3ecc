// SeFAR learns: a short CPU run of pipelines/synthetic/sefar.json on a small synthetic fine-grained
// dataset ends well above chance; and the run is a function of its seed alone: decode and view
// nodes with concurrency 1 (one thread) and 4 (four threads) log identical losses, step by step.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "run_helpers.h"

using namespace sefar::testing;

namespace {

// 8 classes, 80 training clips per class (half labeled), 10 validation clips per class.
const fs::path& learning_dataset() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("sefar_learning_data_" + std::to_string(::getpid()));
    fs::remove_all(d);
    auto r = run_sefar("synth " + d.string() +
                       " --classes 8 --train-per-class 80 --val-per-class 10 --labeled 0.5 --size 48x40"
                       " --frames 24:40 --threads 2");
    INFO(r.output);
    REQUIRE(r.status == 0);
    return d;
  }();
  return dir;
}

std::string sefar_args(const fs::path& run_dir, const std::string& extra) {
  const fs::path& d = learning_dataset();
  return std::string(SEFAR_SOURCE_DIR) + "/pipelines/synthetic/sefar.json --quiet" +
         " --set train_list=" + (d / "train.csv").string() + " --set unlabeled_list=" + (d / "unlabel.csv").string() +
         " --set val_list=" + (d / "val.csv").string() + " --set runtime.run_dir=" + run_dir.string() + " " + extra;
}

}  // namespace

TEST_CASE("a short SeFAR run on synthetic fine-grained clips ends well above chance") {
  const fs::path run = fs::temp_directory_path() / ("sefar_learning_run_" + std::to_string(::getpid()));
  fs::remove_all(run);
  // 8 supervised epochs of 40 steps, then 2 semi-supervised ones.
  auto r = run_sefar("run " + sefar_args(run,
                                         "--set labeled_per_epoch=320 --set epochs=10 --set warmup_epochs=8"
                                         " --set optimizer.milestones=[9] --set runtime.threads=2"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  double first_loss = -1, last_top1 = -1;
  std::vector<double> top1;
  int semi_steps = 0;
  for (const auto& rec : records(run)) {
    if (rec.value("kind", "") == "step") {
      if (first_loss < 0) first_loss = rec["loss"].get<double>();
      semi_steps += rec.value("semi", false);
    }
    if (rec.value("kind", "") == "eval") top1.push_back(rec["top1"].get<double>());
  }
  REQUIRE(top1.size() == 10);
  last_top1 = top1.back();
  MESSAGE("validation top-1 per epoch: " << json(top1).dump());
  CHECK(semi_steps == 80);
  // Chance is 1/8 = 12.5%.
  CHECK(last_top1 >= 0.3);
  fs::remove_all(run);
}

TEST_CASE("decode and view concurrency 1 and 4 give identical losses, step by step") {
  const fs::path base = fs::temp_directory_path() / ("sefar_learning_conc_" + std::to_string(::getpid()));
  fs::remove_all(base);
  const std::string common =
      "--set labeled_per_epoch=48 --set epochs=2 --set warmup_epochs=1 --set train.eval_limit=16 ";
  // Every decode and views node at concurrency n, on n threads.
  auto run_at = [&](int n) {
    std::string sets = common + fmt::format("--set runtime.threads={} ", n);
    for (const char* node : {"decode_labeled", "views_labeled", "decode_unlabeled", "views_unlabeled"})
      sets += fmt::format("--set {}.concurrency={} ", node, n);
    return run_sefar("run " + sefar_args(base / ("c" + std::to_string(n)), sets));
  };
  auto serial = run_at(1);
  INFO(serial.output);
  REQUIRE(serial.status == 0);
  auto parallel = run_at(4);
  INFO(parallel.output);
  REQUIRE(parallel.status == 0);
  int steps = 0;
  for (const auto& rec : records(base / "c1")) steps += rec.value("kind", "") == "step";
  CHECK(steps == 12);  // 6 supervised, 6 semi-supervised
  check_same_records(base / "c1", base / "c4");
  fs::remove_all(base);
}

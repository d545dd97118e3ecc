// The sefar command line: exit statuses, and every command on the shipped pipelines.
#include <doctest/doctest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "run_helpers.h"

namespace {

using sefar::testing::run_sefar;

std::string pipelines() {
  return std::string(SEFAR_SOURCE_DIR) + "/pipelines";
}

}  // namespace

TEST_CASE("help and usage errors") {
  CHECK(run_sefar("--help").status == 0);
  for (const char* cmd : {"run", "validate", "graph", "nodes"}) {
    auto r = run_sefar(std::string(cmd) + " --help");
    CHECK(r.status == 0);
    CHECK(r.output.find("usage: sefar") != std::string::npos);
  }
  auto r = run_sefar("rnu");
  CHECK(r.status == 2);
  CHECK(r.output.find("unknown command \"rnu\" (did you mean \"run\"?)") != std::string::npos);
  CHECK(run_sefar("run").status == 2);
  CHECK(run_sefar("run " + pipelines() + "/examples/concurrency.json --bogus").status == 2);
}

TEST_CASE("nodes lists every node type with ports and parameters") {
  auto r = run_sefar("nodes");
  CHECK(r.status == 0);
  for (const char* s : {"range", "delay", "log", "discard", "params:", "outputs:", "runtime"})
    CHECK(r.output.find(s) != std::string::npos);
  auto one = run_sefar("nodes delay");
  CHECK(one.status == 0);
  CHECK(one.output.find("ms                 float        default 1.0") != std::string::npos);
  CHECK(run_sefar("nodes dealy").output.find("did you mean \"delay\"") != std::string::npos);
  CHECK(run_sefar("nodes --json").status == 0);
}

TEST_CASE("validate, graph --dot and run work on every shipped pipeline") {
  for (const auto& entry : std::filesystem::recursive_directory_iterator(pipelines())) {
    if (entry.path().extension() != ".json") continue;
    std::string p = entry.path().string();
    INFO(p);
    // Their data is not generated here: the schema checks only.
    auto v = run_sefar("validate " + p + " --schema-only");
    CHECK(v.status == 0);
    CHECK(v.output.find("valid (") != std::string::npos);
    auto g = run_sefar("graph " + p + " --dot");
    CHECK(g.status == 0);
    CHECK(g.output.rfind("digraph", 0) == 0);
  }
  auto r = run_sefar("run " + pipelines() + "/examples/concurrency.json --set items=12 --quiet");
  CHECK(r.status == 0);
  CHECK(r.output.find("12 items") != std::string::npos);
}

TEST_CASE("exit status 2 for invalid pipelines, naming the place") {
  auto dir = std::filesystem::temp_directory_path() / ("sefar_cli_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto bad = (dir / "bad.json").string();
  std::ofstream(bad) << "{\n \"nodes\": {\"a\": {\"type\": \"range\", \"params\": {\"cnt\": 3}}}\n}\n";
  auto r = run_sefar("run " + bad);
  CHECK(r.status == 2);
  CHECK(r.output.find(
            bad +
            ":2: node 'a' (range): no parameter \"cnt\" in node type \"range\" (did you mean \"count\"?)") !=
        std::string::npos);
  auto s = run_sefar("run " + pipelines() + "/examples/concurrency.json --set print.every=0");
  CHECK(s.status == 2);
  CHECK(s.output.find("node 'print' (log): param \"every\": value 0 is below the minimum 1") !=
        std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("run writes the profile and the trace") {
  auto dir = std::filesystem::temp_directory_path() / ("sefar_cli_run_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto r = run_sefar("run " + pipelines() + "/examples/concurrency.json --set items=5 --profile " +
                     (dir / "p.json").string() + " --trace " + (dir / "t.json").string());
  CHECK(r.status == 0);
  CHECK(r.output.find("busiest node") != std::string::npos);
  CHECK(std::filesystem::file_size(dir / "p.json") > 0);
  CHECK(std::filesystem::file_size(dir / "t.json") > 0);
  std::filesystem::remove_all(dir);
}

TEST_CASE("synth, then the quickstart training pipeline end to end on a tiny dataset") {
  auto dir = std::filesystem::temp_directory_path() / ("sefar_cli_train_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto data = (dir / "data").string(), run_dir = (dir / "run").string();
  auto s = run_sefar("synth " + data +
                     " --classes 3 --train-per-class 6 --val-per-class 2 --labeled 0.5 --size 48x40 " +
                     "--frames 16:24 --threads 2");
  INFO(s.output);
  REQUIRE(s.status == 0);
  // Deterministic from the seed: a second generation writes identical lists.
  auto lists = [](const std::string& d) {
    std::ifstream a(d + "/train.csv"), b(d + "/unlabel.csv");
    return std::string(std::istreambuf_iterator<char>(a), {}) +
           std::string(std::istreambuf_iterator<char>(b), {});
  };
  CHECK(run_sefar("synth " + data +
                  "2 --classes 3 --train-per-class 6 --val-per-class 2 --labeled 0.5 --size 48x40 "
                  "--frames 16:24 --threads 1")
            .status == 0);
  CHECK(lists(data) == lists(data + "2"));
  CHECK(run_sefar("synth " + data + "3 --classes 13").status == 2);

  auto r = run_sefar(
      "run " + pipelines() + "/quickstart.json --quiet --set train_list=" + data + "/train.csv" +
      " --set unlabeled_list=" + data + "/unlabel.csv --set val_list=" + data + "/val.csv" +
      " --set num_classes=3 --set epochs=2 --set warmup_epochs=1 --set batch=2 --set unlabeled_batch=4" +
      " --set runtime.run_dir=" + run_dir + " --set runtime.threads=2");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("val top-1") != std::string::npos);
  std::ifstream metrics(run_dir + "/metrics.jsonl");
  int steps = 0, semi = 0, evals = 0;
  for (std::string line; std::getline(metrics, line);) {
    steps += line.find("\"kind\":\"step\"") != std::string::npos;
    semi += line.find("\"semi\":true") != std::string::npos;
    evals += line.find("\"kind\":\"eval\"") != std::string::npos;
  }
  CHECK(steps == 2 * 5);  // 9 labeled clips per epoch in batches of 2 (the last one short), two epochs
  CHECK(semi == 5);       // the second epoch is semi-supervised
  CHECK(evals == 2);
  for (const char* f : {"/pipeline.json", "/profile.json", "/model.safetensors", "/report.html",
                        "/checkpoints/best.safetensors", "/checkpoints/epoch_0002.json"})
    CHECK_MESSAGE(std::filesystem::exists(run_dir + f), f);
  std::filesystem::remove_all(dir);
}

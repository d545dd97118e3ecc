// Execution: bounded in-flight items, order restoring, failures, skips, profiling counts, traces.
#include <doctest/doctest.h>

#include <filesystem>
#include <unistd.h>
#include <fstream>
#include <numeric>

#include <csignal>

#include "graph/pipeline.h"
#include "graph/runtime.h"
#include "graph/stop.h"
#include "graph/validate.h"
#include "test_nodes.h"

using namespace sefar::graph;
using sefar::testing::Probe;
using sefar::testing::test_registry;

namespace {

struct Run {
  std::shared_ptr<Probe> probe = std::make_shared<Probe>();
  Registry registry = test_registry(probe);
  ValidatedPipeline pipeline;
  RunResult result;

  Run(const std::string& text, const std::vector<std::string>& sets, const RunOptions& options = quiet()) {
    auto doc = parse_pipeline("run.json", text);
    apply_overrides(doc, sets);
    substitute_params(doc);
    pipeline = validate(doc, registry);
    Runtime runtime(pipeline, registry);
    result = runtime.run(options);
  }
  static RunOptions quiet() {
    RunOptions o;
    o.print_table = false;
    return o;
  }
  const NodeStats& stats(const std::string& id) const {
    for (std::size_t i = 0; i < pipeline.nodes.size(); ++i)
      if (pipeline.nodes[i].id == id) return result.profile->stats(int(i));
    FAIL("no node " << id);
    throw 0;
  }
};

const char* kChain = R"({
  "name": "chain",
  "params": {"n": 40},
  "runtime": {"threads": 4, "max_in_flight": 8},
  "nodes": {
    "src": {"type": "tsource", "params": {"count": "${n}"}},
    "work": {"type": "jitter", "params": {"ms": 4.0}, "concurrency": 2},
    "sink": {"type": "collect_ordered"}
  },
  "edges": ["src.out -> work.in", "work.out -> sink.in"]
})";

std::vector<std::int64_t> iota(std::int64_t n) {
  std::vector<std::int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST_CASE("items in flight stay within the bound under a fast producer and a slow consumer") {
  for (int bound : {1, 3, 8}) {
    CAPTURE(bound);
    Run run(kChain, {"runtime.max_in_flight=" + std::to_string(bound), "work.ms=0", "sink.ms=2", "n=60"});
    // The budget counts items that passed the source's limiter; one more may wait inside the source.
    CHECK(run.stats("src").peak_in_flight <= bound);
    CHECK(run.probe->live->peak.load() <= bound + 1);
    CHECK(run.probe->live->created.load() == 60);
    CHECK(run.probe->live->live.load() == 0);  // everything released at the end
    CHECK(run.probe->collected == iota(60));
    // With a fast producer the bound is reached, and the source then waits for budget.
    if (bound > 1) {
      CHECK(run.stats("src").peak_in_flight == bound);
      CHECK(run.stats("src").blocked_ns.load() > 0);
    }
  }
}

TEST_CASE("source order is restored for ordered inputs, identically across concurrency 1, 2 and 8") {
  std::vector<std::vector<std::int64_t>> outputs;
  for (int c : {1, 2, 8}) {
    Run run(kChain, {"work.concurrency=" + std::to_string(c), "runtime.threads=8", "runtime.max_in_flight=32"});
    outputs.push_back(run.probe->collected);
  }
  CHECK(outputs[0] == iota(40));
  CHECK(outputs[1] == outputs[0]);
  CHECK(outputs[2] == outputs[0]);
}

TEST_CASE("without an ordered input, concurrent bodies do reorder (the sequencer is what restores order)") {
  auto text = std::string(kChain);
  text.replace(text.find("collect_ordered"), 15, "collect");
  Run run(text, {"work.concurrency=8", "runtime.threads=8", "runtime.max_in_flight=32", "work.ms=20"});
  CHECK(run.probe->collected.size() == 40);
  CHECK(run.probe->collected != iota(40));
}

TEST_CASE("an exception in a body yields one error naming pipeline, node, type and item, without hanging") {
  auto probe = std::make_shared<Probe>();
  auto registry = test_registry(probe);
  auto doc = parse_pipeline("run.json", kChain);
  apply_overrides(doc, {"work.fail_at=7", "n=1000", "work.ms=1"});
  substitute_params(doc);
  auto pipeline = validate(doc, registry);
  Runtime runtime(pipeline, registry);
  try {
    runtime.run(Run::quiet());
    FAIL("expected a NodeFailure");
  } catch (const NodeFailure& e) {
    CHECK(std::string(e.what()) == "pipeline 'chain': node 'work' (jitter) failed on item 7 (t7): injected failure");
    CHECK(e.node_id() == "work");
    CHECK(e.node_type() == "jitter");
    CHECK_FALSE(e.bad_input());
  }
  // The graph was cancelled: far fewer than 1000 items were made, and nothing is left alive.
  CHECK(probe->live->created.load() < 1000);
  CHECK(probe->live->live.load() == 0);
}

TEST_CASE("bad input is skipped and counted; order is kept with a placeholder") {
  auto probe = std::make_shared<Probe>();
  auto registry = test_registry(probe);
  // A node type whose body reports bad input on value 5.
  registry.add(NodeSpec("picky")
                   .doc("rejects 5")
                   .input("in", sefar::testing::tracked_msg(), "payloads")
                   .output("out", sefar::testing::tracked_msg(), "payloads")
                   .param_float("ms", 0.0, "", 0, 10)
                   .param_int("fail_at", -1, "", -1, 10)
                   .factory([](const NodeContext& ctx) {
                     auto n = std::make_unique<sefar::testing::Jitter>(ctx);
                     n->bad_input_at_ = 5;
                     return n;
                   }));
  auto text = std::string(kChain);
  text.replace(text.find("\"jitter\""), 8, "\"picky\"");
  auto doc = parse_pipeline("run.json", text);
  apply_overrides(doc, {"n=12"});
  substitute_params(doc);
  auto pipeline = validate(doc, registry);
  Runtime runtime(pipeline, registry);
  auto result = runtime.run(Run::quiet());
  std::vector<std::int64_t> expected = {0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11};
  CHECK(probe->collected == expected);
  int work = pipeline.nodes[0].id == "work" ? 0 : pipeline.nodes[1].id == "work" ? 1 : 2;
  const auto& picky = result.profile->stats(work);
  REQUIRE(picky.id == "work");
  CHECK(picky.skipped.load() == 1);
  REQUIRE(picky.skip_reasons.size() == 1);
  CHECK(picky.skip_reasons[0] == "item 5 (t5): unreadable");
  CHECK(result.profile->table().find("item 5 (t5): unreadable") != std::string::npos);
}

TEST_CASE("profiling counts match the items processed") {
  Run run(kChain, {"n=25"});
  CHECK(run.stats("src").items_out.load() == 25);
  CHECK(run.stats("work").items_in.load() == 25);
  CHECK(run.stats("work").items_out.load() == 25);
  CHECK(run.stats("sink").items_in.load() == 25);
  CHECK(run.stats("sink").items_out.load() == 0);
  CHECK(run.stats("work").busy_ns.load() > 0);
  auto j = run.result.profile->to_json();
  CHECK(j["nodes"].size() == 3);
  CHECK(j["nodes"][1]["id"] == "work");  // topological order
  CHECK(j["nodes"][1]["items_in"] == 25);
}

TEST_CASE("batching: items combine, the partial last batch is flushed, budgets are checked") {
  const char* text = R"({
    "runtime": {"threads": 2, "max_in_flight": 8},
    "nodes": {
      "src": {"type": "tsource", "params": {"count": 10}},
      "b": {"type": "tbatch", "params": {"size": 4}},
      "log": {"type": "discard"}
    },
    "edges": ["src -> b", "b -> log"]
  })";
  Run run(text, {});
  std::vector<std::vector<std::int64_t>> expected = {{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}};
  CHECK(run.probe->batches == expected);
  CHECK(run.stats("log").items_in.load() == 3);
  CHECK(run.probe->live->live.load() == 0);
  // A budget smaller than a batch would stall: rejected up front, naming the node and the fix.
  CHECK_THROWS_WITH_AS(Run(text, {"runtime.max_in_flight=3"}),
                       doctest::Contains("budget of 3 items, but downstream 'b' holds up to 4: raise max_in_flight to at least 4"),
                       PipelineError);
}

TEST_CASE("the Chrome trace is valid JSON with one complete event per body call") {
  auto path = (std::filesystem::temp_directory_path() / ("sefar_trace_" + std::to_string(::getpid()) + ".json")).string();
  RunOptions options = Run::quiet();
  options.trace_path = path;
  Run run(kChain, {"n=30"}, options);
  std::ifstream in(path);
  auto trace = json::parse(in);
  std::filesystem::remove(path);
  REQUIRE(trace.contains("traceEvents"));
  std::map<std::string, int> complete;
  std::map<int, std::vector<std::pair<double, double>>> by_tid;
  int thread_names = 0, finishes = 0;
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] == "X") {
      if (e["args"].value("finish", false)) {
        ++finishes;
        continue;
      }
      complete[e["name"].get<std::string>()]++;
      CHECK(e["dur"].get<double>() >= 0);
      by_tid[e["tid"].get<int>()].emplace_back(e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>());
    } else if (e["ph"] == "M" && e["name"] == "thread_name") {
      ++thread_names;
    }
  }
  CHECK(complete["work"] == 30);
  CHECK(complete["sink"] == 30);
  CHECK(complete["src"] == 30 + 1);  // 30 items and the call that reported the end
  CHECK(finishes == 3);              // one end-of-stream flush per node
  CHECK(thread_names == int(by_tid.size()));
  // Slices on one track never overlap (each worker has its own tid).
  for (auto& [tid, spans] : by_tid) {
    std::sort(spans.begin(), spans.end());
    for (std::size_t i = 1; i < spans.size(); ++i) CHECK(spans[i].first >= spans[i - 1].second - 1e-3);
  }
}

namespace {

// Records what it sees and asks for a stop (as SIGTERM would) when it reaches `stop_at`.
struct StopLog {
  std::atomic<int> processed{0};
  std::atomic<bool> finished{false}, interrupted{false};
  int processed_when_interrupted = -1;
};

class Stopper final : public Node {
 public:
  Stopper(const NodeContext& ctx, std::shared_ptr<StopLog> log)
      : stop_at_(ctx.params.get_int("stop_at")), log_(std::move(log)) {}
  void process(int, const Item& item, Output&) override {
    ++log_->processed;
    if (item.as<sefar::testing::TrackedPtr>()->value == stop_at_) request_stop(SIGTERM);
  }
  void finish(Output&) override { log_->finished = true; }
  void interrupted() override {
    log_->interrupted = true;
    log_->processed_when_interrupted = log_->processed;
  }

 private:
  std::int64_t stop_at_;
  std::shared_ptr<StopLog> log_;
};

}  // namespace

TEST_CASE("a stop request cancels the run: no finish(), interrupted() hooks, Interrupted thrown, no hang") {
  auto log = std::make_shared<StopLog>();
  auto probe = std::make_shared<Probe>();
  Registry registry = test_registry(probe);
  registry.add(NodeSpec("stopper")
                   .doc("requests a stop at one item")
                   .ordered_input("in", sefar::testing::tracked_msg(), "payloads")
                   .serial()
                   .param_int("stop_at", 20, "value that requests the stop", 0, 1e9)
                   .factory([log](const NodeContext& ctx) { return std::make_unique<Stopper>(ctx, log); }));
  auto doc = parse_pipeline("stop.json", R"({
    "name": "stop",
    "runtime": {"threads": 4, "max_in_flight": 8},
    "nodes": {
      "src": {"type": "tsource", "params": {"count": 100000}},
      "work": {"type": "jitter", "params": {"ms": 1.0}, "concurrency": 2},
      "sink": {"type": "stopper"}
    },
    "edges": ["src.out -> work.in", "work.out -> sink.in"]
  })");
  auto pipeline = validate(doc, registry);
  Runtime runtime(pipeline, registry);
  clear_stop();
  auto t0 = std::chrono::steady_clock::now();
  int signal = 0;
  try {
    runtime.run(Run::quiet());
  } catch (const Interrupted& e) {
    signal = e.signal();
    CHECK(std::string(e.what()) == "interrupted by SIGTERM");
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  clear_stop();
  CHECK(signal == SIGTERM);
  CHECK(log->interrupted);
  CHECK_FALSE(log->finished);
  // The sources stopped: what was in flight (at most max_in_flight items) at most got through.
  CHECK(log->processed >= 21);
  CHECK(log->processed <= 21 + 8);
  CHECK(log->processed_when_interrupted == log->processed);
  CHECK(seconds < 10);
  CHECK(probe->live->live == 0);  // every item was dropped

  // A stop requested before the run starts: nothing runs, the run still ends the same way.
  request_stop(SIGINT);
  log->processed = 0;
  Runtime second(pipeline, registry);
  CHECK_THROWS_AS(second.run(Run::quiet()), Interrupted);
  clear_stop();
  CHECK(log->processed <= 8);
}

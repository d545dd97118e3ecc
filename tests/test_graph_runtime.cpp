// Execution: bounded in-flight items, order restoring, failures, skips, profiling counts, traces.
#include <doctest/doctest.h>

#include <unistd.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <functional>
#include <numeric>
#include <tuple>

#include <csignal>
#include <nlohmann/json.hpp>

#include "graph/pipeline.h"
#include "graph/runtime.h"
#include "graph/stop.h"
#include "graph/validate.h"
#include "util/errors.h"
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

const std::string kChain =
    sefar::testing::tracked_chain("chain", 40, "4.0", R"({"threads": 4, "max_in_flight": 8})");

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
    Run run(kChain,
            {"work.concurrency=" + std::to_string(c), "runtime.threads=8", "runtime.max_in_flight=32"});
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
    CHECK(std::string(e.what()) ==
          "pipeline 'chain': node 'work' (jitter) failed on item 7 (t7): injected failure");
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
  registry.add(sefar::testing::tracked_stage("picky", "rejects 5")
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
  CHECK(result.profile->table().find("skipped by 'work': 1") != std::string::npos);
  CHECK(result.profile->skip_summary().find("[work] t5: unreadable") != std::string::npos);
  REQUIRE(result.profile->skips().size() == 1);
  CHECK(result.profile->skips()[0].first_seq == 5);
}

namespace {

// Rejects odd values as bad input (category "odd"); with `nested` > 0, each item also runs a small
// pipeline of that many items through a rejecting node, inside this node's body.
class RejectOdd final : public sefar::graph::Node {
 public:
  RejectOdd(const NodeContext& ctx, Registry* registry)
      : nested_(ctx.params.get_int("nested")), registry_(registry) {}
  void process(int, const Item& item, Output& out) override {
    const auto v = item.as<sefar::testing::TrackedPtr>()->value;
    if (nested_ > 0) {
      auto doc = parse_pipeline("inner.json", R"({"name": "inner", "runtime": {"threads": 2},
        "nodes": {"src": {"type": "tsource", "params": {"count": )" +
                                                  std::to_string(nested_) + R"(}},
                  "check": {"type": "reject_odd"}, "sink": {"type": "collect"}},
        "edges": ["src -> check", "check -> sink"]})");
      auto pipeline = validate(doc, *registry_);
      Runtime(pipeline, *registry_).run(Run::quiet());
    }
    if (v % 2 == 1) throw InputError("odd value " + std::to_string(v), "odd");
    out.emit(0, item.as<sefar::testing::TrackedPtr>());
  }

 private:
  std::int64_t nested_;
  Registry* registry_;
};

void add_reject_odd(Registry& registry) {
  Registry* r = &registry;
  registry.add(NodeSpec("reject_odd")
                   .doc("rejects odd values")
                   .input("in", sefar::testing::tracked_msg(), "payloads")
                   .output("out", sefar::testing::tracked_msg(), "payloads")
                   .param_int("nested", 0, "items of a pipeline run inside every body call", 0, 100)
                   .factory([r](const NodeContext& ctx) { return std::make_unique<RejectOdd>(ctx, r); }));
}

}  // namespace

TEST_CASE("skip records: one per distinct item and reason, a bounded summary, nested runs included") {
  auto probe = std::make_shared<Probe>();
  auto registry = test_registry(probe);
  add_reject_odd(registry);
  auto doc = parse_pipeline("outer.json", R"({"name": "outer", "runtime": {"threads": 2},
    "nodes": {"src": {"type": "tsource", "params": {"count": 30}},
              "check": {"type": "reject_odd", "params": {"nested": 0}, "concurrency": 2},
              "sink": {"type": "collect"}},
    "edges": ["src -> check", "check -> sink"]})");
  SUBCASE("flat") {
    auto pipeline = validate(doc, registry);
    auto result = Runtime(pipeline, registry).run(Run::quiet());
    const auto& profile = *result.profile;
    CHECK(profile.skips_total() == 15);
    auto records = profile.skips();
    REQUIRE(records.size() == 15);
    for (const auto& r : records) {
      CHECK(r.pipeline == "outer");
      CHECK(r.node == "check");
      CHECK(r.category == "odd");
      CHECK(r.count == 1);
      CHECK(r.item == "t" + std::to_string(r.first_seq));
      CHECK(r.reason == "odd value " + std::to_string(r.first_seq));
    }
    const auto summary = profile.skip_summary(5, "run/skipped.jsonl");
    CHECK(summary.find("skipped 15 items (bad input):") == 0);
    CHECK(std::count(summary.begin(), summary.end(), '\n') == 1 + 5 + 1);
    CHECK(summary.find("... and 10 more: every one in run/skipped.jsonl") != std::string::npos);
    const auto jsonl = profile.skips_jsonl();
    CHECK(std::count(jsonl.begin(), jsonl.end(), '\n') == 15);
    auto first = nlohmann::json::parse(jsonl.substr(0, jsonl.find('\n')));
    CHECK(first["node"] == "check");
    CHECK(first["category"] == "odd");
    CHECK(first["count"] == 1);
    CHECK(profile.to_json()["skipped"]["total"] == 15);
    CHECK(Profiler({}, {}, {}, 1, false).skip_summary().empty());
  }
  SUBCASE("a pipeline run inside a body reports its skips to the outer run, repeats counted") {
    apply_overrides(doc, {"src.count=2", "check.nested=4"});
    auto pipeline = validate(doc, registry);
    auto result = Runtime(pipeline, registry).run(Run::quiet());
    auto records = result.profile->skips();
    // Outer: t1 once. Inner (run twice): t1 and t3, twice each.
    CHECK(result.profile->skips_total() == 1 + 2 * 2);
    REQUIRE(records.size() == 3);
    int inner = 0;
    for (const auto& r : records) {
      if (r.pipeline != "inner") continue;
      ++inner;
      CHECK(r.count == 2);
    }
    CHECK(inner == 2);
    CHECK(result.profile->skip_summary().find("[inner/check] t3: odd value 3 (2 times)") !=
          std::string::npos);
  }
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
  CHECK_THROWS_WITH_AS(
      Run(text, {"runtime.max_in_flight=3"}),
      doctest::Contains(
          "budget of 3 items, but downstream 'b' holds up to 4: raise max_in_flight to at least 4"),
      PipelineError);
}

TEST_CASE("the Chrome trace is valid JSON with one complete event per body call") {
  auto path =
      (std::filesystem::temp_directory_path() / ("sefar_trace_" + std::to_string(::getpid()) + ".json"))
          .string();
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
      by_tid[e["tid"].get<int>()].emplace_back(e["ts"].get<double>(),
                                               e["ts"].get<double>() + e["dur"].get<double>());
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
      : stop_at_(ctx.params.get_int("stop_at")), log_(std::move(log)), stop_(ctx.stop) {}
  void process(int, const Item& item, Output&) override {
    ++log_->processed;
    if (item.as<sefar::testing::TrackedPtr>()->value == stop_at_) stop_.request(SIGTERM);
  }
  void finish(Output&) override { log_->finished = true; }
  void interrupted() override {
    log_->interrupted = true;
    log_->processed_when_interrupted = log_->processed;
  }

 private:
  std::int64_t stop_at_;
  std::shared_ptr<StopLog> log_;
  StopToken stop_;  // the run's: the node stops its run without the process-wide request
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
                   .factory(sefar::testing::node_factory<Stopper>(log)));
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
  CHECK_FALSE(stop_requested());  // the node's token stopped its run, not the process
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

namespace {

// Cycles over values 0..size-1, `passes` times (0: endless), like split_source over a list.
class CycleSource final : public sefar::graph::Source {
 public:
  CycleSource(const NodeContext& ctx, std::shared_ptr<Probe> probe)
      : size_(ctx.params.get_int("size")), passes_(ctx.params.get_int("passes")), probe_(std::move(probe)) {}
  bool produce(Produced& out) override {
    if (passes_ > 0 && next_ >= size_ * passes_) return false;
    out.value =
        sefar::testing::TrackedPtr(std::make_shared<sefar::testing::Tracked>(probe_->live, next_ % size_));
    out.label = "c" + std::to_string(next_ % size_);
    ++next_;
    return true;
  }
  std::uint64_t items_per_pass() const override { return std::uint64_t(size_); }

 private:
  std::int64_t size_, passes_, next_ = 0;
  std::shared_ptr<Probe> probe_;
};

// Skips every value but `good`.
class OnlyGood final : public sefar::graph::Node {
 public:
  explicit OnlyGood(const NodeContext& ctx) : good_(ctx.params.get_int("good")) {}
  void process(int, const Item& item, Output& out) override {
    const auto& t = item.as<sefar::testing::TrackedPtr>();
    if (t->value != good_) throw InputError("unusable " + std::to_string(t->value));
    out.emit(0, t);
  }

 private:
  std::int64_t good_;
};

Registry cycle_registry(std::shared_ptr<Probe> probe) {
  auto registry = test_registry(probe);
  registry.add(
      NodeSpec("cycle")
          .doc("cycles over a list")
          .output("out", sefar::testing::tracked_msg(), "payloads")
          .param_int("size", 10, "items per pass", 1, 1000)
          .param_int("passes", 0, "passes (0: endless)", 0, 1000)
          .factory([probe](const NodeContext& ctx) { return std::make_unique<CycleSource>(ctx, probe); }));
  registry.add(NodeSpec("only_good")
                   .doc("skips all but one value")
                   .input("in", sefar::testing::tracked_msg(), "payloads")
                   .output("out", sefar::testing::tracked_msg(), "payloads")
                   .param_int("good", 3, "the usable value (-1: none)", -1, 1000)
                   .factory([](const NodeContext& ctx) { return std::make_unique<OnlyGood>(ctx); }));
  return registry;
}

const char* kCycle = R"({
  "name": "cycle",
  "runtime": {"threads": 2, "max_in_flight": 8},
  "nodes": {
    "src": {"type": "cycle", "params": {"size": 10, "passes": 0}},
    "check": {"type": "only_good", "params": {"good": -1}, "concurrency": 2},
    "batch": {"type": "tbatch", "params": {"size": 4}},
    "sink": {"type": "discard"}
  },
  "edges": ["src -> check", "check -> batch", "batch -> sink"]
})";

}  // namespace

TEST_CASE("a source none of whose items is usable stops the run as bad input instead of spinning") {
  auto probe = std::make_shared<Probe>();
  auto registry = cycle_registry(probe);
  auto run = [&](const std::vector<std::string>& sets) {
    auto doc = parse_pipeline("cycle.json", kCycle);
    apply_overrides(doc, sets);
    auto pipeline = validate(doc, registry);
    Runtime runtime(pipeline, registry);
    return runtime.run(Run::quiet());
  };
  SUBCASE("endless, every item bad: stops after two passes' worth") {
    try {
      run({});
      FAIL("the run did not stop");
    } catch (const NodeFailure& e) {
      CHECK(e.bad_input());
      CHECK(e.node_id() == "src");
      CHECK(e.reason().find(
                "no usable item: the last 20 items it produced were all skipped as bad input (10 items "
                "per pass)") != std::string::npos);
    }
  }
  SUBCASE("finite, every item bad") {
    try {
      run({"src.passes=1"});
      FAIL("the run did not fail");
    } catch (const NodeFailure& e) {
      CHECK(e.bad_input());
      CHECK(e.reason().find("all 10 items it produced were skipped") != std::string::npos);
    }
  }
  SUBCASE("one usable item per pass, held by a batcher for four passes: runs to the end") {
    auto result = run({"src.passes=40", "check.good=3"});
    CHECK(probe->batches.size() == 10);
    CHECK(result.profile->skips_total() == 40 * 9);
  }
  CHECK(probe->live->live.load() == 0);
}

namespace {

// Records the thread of every body call and works `ms` milliseconds; `inline` variants run in the
// sender's thread.
struct ThreadLog {
  std::mutex mutex;
  std::map<std::pair<std::string, std::int64_t>, std::thread::id> threads;  // (node, item) -> thread
  std::map<std::pair<std::string, std::int64_t>, int> calls;                // (node, item) -> bodies run
};

class ThreadRecorder final : public Node {
 public:
  ThreadRecorder(const NodeContext& ctx, std::shared_ptr<ThreadLog> log)
      : id_(ctx.id), ms_(ctx.params.get_int("ms")), log_(std::move(log)) {}
  void process(int, const Item& item, Output& out) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms_));
    {
      std::lock_guard<std::mutex> lock(log_->mutex);
      log_->threads[{id_, std::int64_t(item.seq)}] = std::this_thread::get_id();
    }
    out.emit(0, item.value);
  }

 private:
  std::string id_;
  std::int64_t ms_;
  std::shared_ptr<ThreadLog> log_;
};

}  // namespace

TEST_CASE("nodes that run inline execute in the sender's thread, and busy times are self times") {
  auto log = std::make_shared<ThreadLog>();
  Registry registry = test_registry(std::make_shared<Probe>());
  for (bool inline_ : {false, true}) {
    NodeSpec spec(inline_ ? "record_inline" : "record");
    spec.input("in", any_message(), "items")
        .output("out", any_message(), "the same items")
        .serial()
        .param_int("ms", 5, "work per item")
        .factory(sefar::testing::node_factory<ThreadRecorder>(log));
    if (inline_) spec.runs_inline();
    registry.add(spec);
  }
  auto doc =
      parse_pipeline("inline.json", R"({"name": "inline", "runtime": {"threads": 4, "max_in_flight": 8},
    "nodes": {"src": {"type": "range", "params": {"count": 12}},
              "a": {"type": "record", "params": {"ms": 30}},
              "b": {"type": "record_inline", "params": {"ms": 5}},
              "c": {"type": "record_inline", "params": {"ms": 5}},
              "sink": {"type": "discard"}},
    "edges": ["src -> a", "a -> b", "b -> c", "c -> sink"]})");
  auto pipeline = validate(doc, registry);
  Runtime runtime(pipeline, registry);
  auto result = runtime.run(Run::quiet());
  for (std::int64_t seq = 0; seq < 12; ++seq) {
    INFO("item " << seq);
    const auto& t = log->threads;
    CHECK(t.at({"b", seq}) == t.at({"a", seq}));
    CHECK(t.at({"c", seq}) == t.at({"a", seq}));
  }
  // b finishes (with c inside it) before a sends the next item, so b is free and runs in a's thread.
  // a's body encloses b's and c's: counted whole, a would be busy 12 x (30 + 5 + 5) ms = 0.48 s; its
  // own time is 12 x 30 ms = 0.36 s.
  auto busy = [&](const std::string& id) {
    for (std::size_t i = 0; i < pipeline.nodes.size(); ++i)
      if (pipeline.nodes[i].id == id) return double(result.profile->stats(int(i)).busy_ns.load()) * 1e-9;
    return -1.0;
  };
  CHECK(busy("a") >= 0.36);
  CHECK(busy("a") < 0.44);
  CHECK(busy("b") >= 0.06);
  CHECK(busy("b") < 0.1);
}

namespace {

// Records the thread of each item on its input (`seq`) and of each item coming back (`back`).
class LoopRecorder final : public Node {
 public:
  explicit LoopRecorder(std::shared_ptr<ThreadLog> log) : log_(std::move(log)) {}
  void process(int port, const Item& item, Output& out) override {
    {
      std::lock_guard<std::mutex> lock(log_->mutex);
      const std::pair<std::string, std::int64_t> key{port == 0 ? "loop" : "back", std::int64_t(item.seq)};
      log_->threads[key] = std::this_thread::get_id();
      ++log_->calls[key];
    }
    if (port == 0) out.emit(0, item.value);
  }

 private:
  std::shared_ptr<ThreadLog> log_;
};

}  // namespace

TEST_CASE("a serial node answered by nodes running inline takes the answer on its own thread") {
  auto log = std::make_shared<ThreadLog>();
  Registry registry = test_registry(std::make_shared<Probe>());
  registry.add(NodeSpec("loop_log")
                   .ordered_input("in", any_message(), "items")
                   .feedback_input("back", any_message(), "the items, back from the inline chain")
                   .output("out", any_message(), "the items")
                   .serial()
                   .factory([log](const NodeContext&) { return std::make_unique<LoopRecorder>(log); }));
  registry.add(NodeSpec("record_inline")
                   .input("in", any_message(), "items")
                   .output("out", any_message(), "the same items")
                   .serial()
                   .runs_inline()
                   .param_int("ms", 2, "work per item")
                   .factory(sefar::testing::node_factory<ThreadRecorder>(log)));
  auto doc =
      parse_pipeline("mailbox.json", R"({"name": "mailbox", "runtime": {"threads": 4, "max_in_flight": 8},
    "nodes": {"src": {"type": "range", "params": {"count": 40}},
              "loop": {"type": "loop_log"},
              "step": {"type": "record_inline"}},
    "edges": ["src -> loop.in", "loop -> step", "step -> loop.back"]})");
  auto pipeline = validate(doc, registry);
  Runtime runtime(pipeline, registry);
  runtime.run(Run::quiet());
  const auto& t = log->threads;
  REQUIRE(t.size() == 3 * 40);
  for (std::int64_t seq = 0; seq < 40; ++seq) {
    INFO("item " << seq);
    CHECK(log->calls.at({"loop", seq}) == 1);
    CHECK(log->calls.at({"back", seq}) == 1);
    CHECK(t.at({"step", seq}) == t.at({"loop", seq}));
    // Through TBB's queue the answer would be a new task, which another worker may take.
    CHECK(t.at({"back", seq}) == t.at({"loop", seq}));
  }
}

namespace {

// Throws what its "throw" parameter names: from the constructor ("param", "invalid") or from the
// body ("config", "write", "failure").
class Thrower final : public Node {
 public:
  explicit Thrower(const NodeContext& ctx) : what_(ctx.params.get_string("throw")) {
    if (what_ == "param") throw sefar::util::ParamError("limit", "is above what this node takes");
    if (what_ == "invalid") throw std::invalid_argument("no parameter is to blame");
  }
  void process(int, const Item&, Output&) override {
    if (what_ == "config") throw sefar::util::ConfigError("the data cannot work with this wiring");
    if (what_ == "write") throw sefar::util::WriteError("/x/y", "disk full");
    if (what_ == "failure") throw std::runtime_error("a bug");
  }

 private:
  std::string what_;
};

int status_of(const std::function<void()>& f) {
  try {
    f();
  } catch (...) {
    return exit_status(std::current_exception());
  }
  return 0;
}

}  // namespace

TEST_CASE("typed errors: a ParamError is placed at its parameter, and one mapping gives every exit status") {
  auto probe = std::make_shared<Probe>();
  Registry registry = test_registry(probe);
  registry.add(NodeSpec("thrower")
                   .doc("throws the error it is asked for")
                   .input("in", sefar::testing::tracked_msg(), "payloads")
                   .param_string("throw", "", "param, invalid, config, write or failure")
                   .param_int("limit", 3, "a parameter a constructor may reject", 0, 100)
                   .factory([](const NodeContext& ctx) { return std::make_unique<Thrower>(ctx); }));
  auto pipeline_for = [&](const std::string& what) {
    auto doc = parse_pipeline("errors.json", R"({
  "name": "errors",
  "nodes": {
    "src": {"type": "tsource", "params": {"count": 5}},
    "t": {"type": "thrower",
          "params": {"throw": ")" + what + R"(",
                     "limit": 7}}
  },
  "edges": ["src.out -> t.in"]
})");
    return validate(doc, registry);
  };
  SUBCASE("a constructor's ParamError names the parameter's line, other errors the node's") {
    for (const std::string what : {"param", "invalid"}) {
      auto pipeline = pipeline_for(what);
      Runtime runtime(pipeline, registry);
      try {
        runtime.prepare(Run::quiet());
        FAIL("expected a PipelineError");
      } catch (const PipelineError& e) {
        REQUIRE(e.diagnostics().size() == 1);
        const auto& d = e.diagnostics()[0];
        CHECK(d.node_id == "t");
        if (what == "param") {
          CHECK(d.key == "limit");
          CHECK(d.line == 7);
          CHECK(d.reason == "is above what this node takes");
          CHECK(d.format() == "errors.json:7: node 't' (thrower): param \"limit\": is above what this node takes");
        } else {
          CHECK(d.key.empty());
          CHECK(d.line == 5);
          CHECK(d.format() == "errors.json:5: node 't' (thrower): no parameter is to blame");
        }
        CHECK(exit_status(std::make_exception_ptr(e)) == 2);
      }
    }
  }
  SUBCASE("a body's errors become a NodeFailure of the right kind and exit status") {
    const std::vector<std::tuple<std::string, FailureKind, int>> cases = {
        {"config", FailureKind::bad_input, 2}, {"write", FailureKind::storage, 74}, {"failure", FailureKind::failure, 1}};
    for (const auto& [what, kind, status] : cases) {
      CAPTURE(what);
      auto pipeline = pipeline_for(what);
      Runtime runtime(pipeline, registry);
      try {
        runtime.run(Run::quiet());
        FAIL("expected a NodeFailure");
      } catch (const NodeFailure& e) {
        CHECK(e.kind() == kind);
        CHECK(e.node_id() == "t");
        CHECK(exit_status(std::current_exception()) == status);
      }
    }
  }
  SUBCASE("the mapping of errors thrown outside a run") {
    CHECK(status_of([] {}) == 0);
    CHECK(status_of([] { throw sefar::util::ParamError("x", "y"); }) == 2);
    CHECK(status_of([] { throw sefar::util::ConfigError("x"); }) == 2);
    CHECK(status_of([] { throw InputError("x"); }) == 2);
    CHECK(status_of([] { throw sefar::util::WriteError("/p", "full"); }) == 74);
    CHECK(status_of([] { throw StorageError("/p", "full"); }) == 74);
    CHECK(status_of([] { throw Interrupted(SIGTERM); }) == 143);
    CHECK(status_of([] { throw Interrupted(SIGINT); }) == 130);
    CHECK(status_of([] { throw std::runtime_error("x"); }) == 1);
    CHECK(status_of([] { throw 42; }) == 1);
    CHECK(failure_cause(std::make_exception_ptr(42)).message == "unknown exception");
  }
}

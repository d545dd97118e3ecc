// Small node types used only by the graph tests: typed ports, a required parameter, a failing
// body, a jittered stage, ordered and unordered collectors, a batcher and a payload whose live
// instances are counted.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "graph/diagnostics.h"
#include "graph/node.h"
#include "graph/registry.h"
#include "nodes/builtin.h"

namespace sefar::testing {

using namespace sefar::graph;

// Counts live payload objects (not items: items are copied, payloads shared).
struct LiveCounter {
  std::atomic<int> live{0}, peak{0}, created{0};
};

struct Tracked {
  std::shared_ptr<LiveCounter> counter;
  std::int64_t value;
  Tracked(std::shared_ptr<LiveCounter> c, std::int64_t v) : counter(std::move(c)), value(v) {
    int now = ++counter->live;
    ++counter->created;
    int p = counter->peak.load();
    while (now > p && !counter->peak.compare_exchange_weak(p, now)) {
    }
  }
  ~Tracked() { --counter->live; }
};
using TrackedPtr = std::shared_ptr<const Tracked>;

// Shared between a test and the nodes it builds (the factory captures it).
struct Probe {
  std::shared_ptr<LiveCounter> live = std::make_shared<LiveCounter>();
  std::mutex mutex;
  std::vector<std::int64_t> collected;
  std::vector<std::vector<std::int64_t>> batches;
};

class TrackedSource final : public Source {
 public:
  TrackedSource(const NodeContext& ctx, std::shared_ptr<Probe> probe)
      : count_(ctx.params.get_int("count")), probe_(std::move(probe)) {}
  bool produce(Produced& out) override {
    if (next_ >= count_) return false;
    out.value = TrackedPtr(std::make_shared<Tracked>(probe_->live, next_));
    out.label = "t" + std::to_string(next_);
    ++next_;
    return true;
  }

 private:
  std::int64_t count_, next_ = 0;
  std::shared_ptr<Probe> probe_;
};

// Sleeps a deterministic, uneven time per item so concurrent bodies finish out of order.
class Jitter final : public Node {
 public:
  explicit Jitter(const NodeContext& ctx) : ms_(ctx.params.get_float("ms")), fail_at_(ctx.params.get_int("fail_at")) {}
  void process(int, const Item& item, Output& out) override {
    const auto& t = item.as<TrackedPtr>();
    if (t->value == fail_at_) throw std::runtime_error("injected failure");
    if (t->value == bad_input_at_) throw InputError("unreadable");
    double ms = (t->value % 4 == 0) ? ms_ : 0.0;
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
    out.emit(0, t);
  }
  std::int64_t bad_input_at_ = -1;

 private:
  double ms_;
  std::int64_t fail_at_;
};

class Collect final : public Node {
 public:
  Collect(const NodeContext& ctx, std::shared_ptr<Probe> probe)
      : ms_(ctx.params.get_float("ms")), probe_(std::move(probe)) {}
  void process(int, const Item& item, Output&) override {
    if (ms_ > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms_));
    std::lock_guard<std::mutex> lock(probe_->mutex);
    probe_->collected.push_back(item.as<TrackedPtr>()->value);
  }

 private:
  double ms_;
  std::shared_ptr<Probe> probe_;
};

// Groups items in source order into batches of `size`; the last one may be short.
class Batch final : public Node {
 public:
  Batch(const NodeContext& ctx, std::shared_ptr<Probe> probe)
      : size_(std::size_t(ctx.params.get_int("size"))), probe_(std::move(probe)) {}
  void process(int, const Item& item, Output& out) override {
    if (item.skipped()) return;
    pending_.push_back(item);
    if (pending_.size() == size_) flush(out);
  }
  void finish(Output& out) override {
    if (!pending_.empty()) flush(out);
  }
  std::size_t items_held() const override { return size_; }

 private:
  void flush(Output& out) {
    std::vector<std::int64_t> values;
    for (const auto& i : pending_) values.push_back(i.as<TrackedPtr>()->value);
    {
      std::lock_guard<std::mutex> lock(probe_->mutex);
      probe_->batches.push_back(values);
    }
    out.emit_item(0, combine(next_seq_++, std::any(std::int64_t(values.size())), pending_));
    pending_.clear();
  }
  std::size_t size_;
  std::shared_ptr<Probe> probe_;
  std::vector<Item> pending_;
  std::uint64_t next_seq_ = 0;
};

inline MessageType tracked_msg() { return message<TrackedPtr>("tracked"); }

// A factory of node type T, built from the node's context and `shared` (what the test reads back).
template <class T, class... Shared>
NodeFactory node_factory(Shared... shared) {
  return [shared...](const NodeContext& ctx) { return std::make_unique<T>(ctx, shared...); };
}

// A node type with tracked payloads in (port "in") and out (port "out").
inline NodeSpec tracked_stage(const std::string& type, const std::string& doc) {
  NodeSpec spec(type);
  spec.doc(doc).input("in", tracked_msg(), "payloads").output("out", tracked_msg(), "payloads");
  return spec;
}

// Builtin nodes plus the test nodes, all bound to `probe`.
inline Registry test_registry(std::shared_ptr<Probe> probe) {
  Registry r;
  nodes::register_builtin_nodes(r);
  r.add(NodeSpec("tsource")
            .doc("test source of tracked payloads")
            .output("out", tracked_msg(), "payloads")
            .param_int("count", 10, "how many", 0, 1e9)
            .factory(node_factory<TrackedSource>(probe)));
  r.add(tracked_stage("jitter", "uneven delays")
            .param_float("ms", 5.0, "delay of every fourth item", 0, 1000)
            .param_int("fail_at", -1, "throw on this value", -1, 1e9)
            .factory(node_factory<Jitter>()));
  // One collector, its input in source order or in arrival order.
  for (bool ordered : {true, false}) {
    NodeSpec spec(ordered ? "collect_ordered" : "collect");
    spec.doc(ordered ? "records values in source order" : "records values in arrival order");
    if (ordered)
      spec.ordered_input("in", tracked_msg(), "payloads");
    else
      spec.input("in", tracked_msg(), "payloads");
    r.add(spec.serial()
              .param_float("ms", 0.0, "delay per item", 0, 1000)
              .factory(node_factory<Collect>(probe)));
  }
  r.add(NodeSpec("tbatch")
            .doc("batches in source order")
            .ordered_input("in", tracked_msg(), "payloads")
            .output("out", message<std::int64_t>("int"), "batch sizes")
            .serial()
            .renumbers()
            .param_int("size", 4, "batch size", 1, 1e6)
            .factory(node_factory<Batch>(probe)));
  // Validation-only types: a required parameter, typed lists and choices, two inputs, a feedback input.
  r.add(tracked_stage("needs", "has a required parameter")
            .param_string("path", std::nullopt, "a required path")
            .param_int_list("views", std::vector<std::int64_t>{2, 2, 4}, "view set", 1, 64, 1)
            .param_choice("mode", "moderate", {"none", "moderate", "all_reverse"}, "a choice")
            .factory(node_factory<Jitter>()));
  r.add(NodeSpec("merge")
            .doc("two inputs, one feedback")
            .input("left", tracked_msg(), "payloads")
            .input("right", tracked_msg(), "payloads")
            .feedback_input("back", tracked_msg(), "feedback")
            .output("out", tracked_msg(), "payloads")
            .factory(node_factory<Jitter>()));
  return r;
}

// The graph tests' chain pipeline: tsource (count ${n}) -> jitter (`ms`, concurrency 2) ->
// collect_ordered, named `name`, with `n` items and, when given, the runtime object `runtime`.
inline std::string tracked_chain(const std::string& name, int n, const std::string& ms,
                                 const std::string& runtime = "") {
  std::string head = "{\n  \"name\": \"" + name + "\",\n  \"params\": {\"n\": " + std::to_string(n) + "},\n";
  if (!runtime.empty()) head += "  \"runtime\": " + runtime + ",\n";
  return head + R"(  "nodes": {
    "src": {"type": "tsource", "params": {"count": "${n}"}},
    "work": {"type": "jitter", "params": {"ms": )" +
         ms + R"(}, "concurrency": 2},
    "sink": {"type": "collect_ordered"}
  },
  "edges": ["src.out -> work.in", "work.out -> sink.in"]
})";
}

}  // namespace sefar::testing

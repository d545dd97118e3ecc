// delay: passes items through after a fixed cost. Stands in for a stage of known cost when
// studying concurrency and profiling.
#include <chrono>
#include <thread>

#include "graph/node.h"
#include "nodes/builtin.h"

namespace sefar::nodes {

namespace {

struct DelayOptions {
  double milliseconds = 0;
  bool spin = false;  // burn CPU instead of sleeping (models a compute-bound stage)
};

class DelayNode final : public graph::Node {
 public:
  explicit DelayNode(const graph::NodeContext& ctx)
      : options_{ctx.params.get_float("ms"), ctx.params.get_bool("spin")} {}

  void process(int, const graph::Item& item, graph::Output& out) override {
    auto duration = std::chrono::duration<double, std::milli>(options_.milliseconds);
    if (options_.spin) {
      auto until = std::chrono::steady_clock::now() + duration;
      while (std::chrono::steady_clock::now() < until) {
      }
    } else {
      std::this_thread::sleep_for(duration);
    }
    out.emit_item(0, item);
  }

 private:
  DelayOptions options_;
};

}  // namespace

graph::NodeSpec delay_spec() {
  return graph::NodeSpec("delay")
      .doc("Passes every item through unchanged after a fixed delay.")
      .input("in", graph::any_message(), "items of any type")
      .output("out", graph::any_message(), "the same items")
      .param_float("ms", 1.0, "delay per item in milliseconds", 0, 3.6e6)
      .param_bool("spin", false, "busy-wait instead of sleeping (a compute-bound stage)")
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<DelayNode>(ctx); });
}

}  // namespace sefar::nodes

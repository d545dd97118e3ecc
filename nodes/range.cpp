// range: a source of consecutive integers. Useful to exercise a pipeline without data.
#include <cstdint>

#include "graph/node.h"
#include "nodes/builtin.h"

namespace sefar::nodes {

namespace {

struct RangeOptions {
  std::int64_t start = 0;
  std::int64_t count = 0;
};

class RangeNode final : public graph::Source {
 public:
  explicit RangeNode(const graph::NodeContext& ctx)
      : options_{ctx.params.get_int("start"), ctx.params.get_int("count")}, next_(options_.start) {}

  bool produce(Produced& out) override {
    if (next_ >= options_.start + options_.count) return false;
    out.value = next_;
    out.label = "n=" + std::to_string(next_);
    ++next_;
    return true;
  }

 private:
  RangeOptions options_;
  std::int64_t next_;
};

}  // namespace

graph::NodeSpec range_spec() {
  return graph::NodeSpec("range")
      .doc("Emits the integers start, start+1, ..., start+count-1.")
      .output("out", graph::message<std::int64_t>("int"), "the integers, in order")
      .param_int("start", 0, "first integer", -1e15, 1e15)
      .param_int("count", 100, "how many integers", 0, 1e12)
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<RangeNode>(ctx); });
}

}  // namespace sefar::nodes

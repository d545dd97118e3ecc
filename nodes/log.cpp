// log: a sink that prints items in source order, for looking at what a pipeline produces.
#include <cstdint>
#include <cstdio>

#include <fmt/format.h>

#include "graph/node.h"
#include "nodes/builtin.h"

namespace sefar::nodes {

namespace {

struct LogOptions {
  std::int64_t every = 1;
  std::string prefix;
};

class LogNode final : public graph::Node {
 public:
  explicit LogNode(const graph::NodeContext& ctx)
      : options_{ctx.params.get_int("every"), ctx.params.get_string("prefix")} {}

  void process(int, const graph::Item& item, graph::Output&) override {
    if (count_++ % options_.every != 0) return;
    std::string value;
    if (const auto* n = std::any_cast<std::int64_t>(&item.value)) value = std::to_string(*n);
    else if (const auto* x = std::any_cast<double>(&item.value)) value = fmt::format("{}", *x);
    else if (const auto* s = std::any_cast<std::string>(&item.value)) value = *s;
    std::fputs(fmt::format("{}{}{}{}\n", options_.prefix, item.describe(), value.empty() ? "" : ": ", value).c_str(),
               stdout);
  }
  void finish(graph::Output&) override {
    std::fputs(fmt::format("{}{} items\n", options_.prefix, count_).c_str(), stdout);
    std::fflush(stdout);
  }

 private:
  LogOptions options_;
  std::int64_t count_ = 0;
};

}  // namespace

graph::NodeSpec log_spec() {
  return graph::NodeSpec("log")
      .doc("Prints every n-th item (in source order) to standard output, and the count at the end.")
      .ordered_input("in", graph::any_message(), "items of any type")
      .serial()
      .param_int("every", 1, "print one item in this many", 1, 1e12)
      .param_string("prefix", "", "text put before each line")
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<LogNode>(ctx); });
}

}  // namespace sefar::nodes

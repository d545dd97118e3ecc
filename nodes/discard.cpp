// discard: a sink that drops everything it receives (the end of a benchmark pipeline).
#include "graph/node.h"
#include "nodes/builtin.h"

namespace sefar::nodes {

namespace {

class DiscardNode final : public graph::Node {
 public:
  explicit DiscardNode(const graph::NodeContext&) {}
  void process(int, const graph::Item&, graph::Output&) override {}
};

}  // namespace

graph::NodeSpec discard_spec() {
  return graph::NodeSpec("discard")
      .doc("Drops every item it receives; the profile still counts them.")
      .input("in", graph::any_message(), "items of any type")
      .factory([](const graph::NodeContext& ctx) { return std::make_unique<DiscardNode>(ctx); });
}

}  // namespace sefar::nodes

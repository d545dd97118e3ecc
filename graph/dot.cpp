#include "graph/dot.h"

#include <fmt/format.h>

namespace sefar::graph {

static std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '{' || c == '}' || c == '<' || c == '>' || c == '|' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string to_dot(const ValidatedPipeline& p) {
  std::string out = fmt::format(
      "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=record, fontname=\"Helvetica\"];\n", escape(p.name));
  for (std::size_t i = 0; i < p.nodes.size(); ++i) {
    const auto& n = p.nodes[i];
    std::string ins, outs;
    for (const auto& port : n.spec->inputs())
      ins += fmt::format("{}<i_{}> {}", ins.empty() ? "" : "|", port.name, escape(port.name));
    for (const auto& port : n.spec->outputs())
      outs += fmt::format("{}<o_{}> {}", outs.empty() ? "" : "|", port.name, escape(port.name));
    std::string conc = n.concurrency == 0 ? "unlimited" : std::to_string(n.concurrency);
    std::string label = fmt::format("{}\\n{} x{}", escape(n.id), escape(n.spec->type()), conc);
    std::string record;
    if (!ins.empty()) record += "{" + ins + "}|";
    record += label;
    if (!outs.empty()) record += "|{" + outs + "}";
    out += fmt::format("  n{} [label=\"{{{}}}\"{}];\n", i, record,
                       n.spec->is_source() ? ", style=filled, fillcolor=\"#dbeafe\"" : "");
  }
  for (const auto& e : p.edges) {
    const auto& from = p.nodes[e.from_node];
    const auto& to = p.nodes[e.to_node];
    const auto& out_port = from.spec->outputs()[e.from_port];
    const auto& in_port = to.spec->inputs()[e.to_port];
    out += fmt::format("  n{}:o_{} -> n{}:i_{} [label=\"{}\"{}];\n", e.from_node, out_port.name, e.to_node,
                       in_port.name, escape(out_port.message.name), in_port.feedback ? ", style=dashed" : "");
  }
  // Shared models: one note each, a dotted line to every node naming it.
  for (std::size_t m = 0; m < p.models.size(); ++m) {
    const auto& model = p.models[m];
    out += fmt::format("  m{} [shape=note, label=\"{}\\n{} (model)\"];\n", m, escape(model.id),
                       escape(model.spec->type()));
    for (std::size_t i = 0; i < p.nodes.size(); ++i)
      for (const auto& param : p.nodes[i].spec->params())
        if (!param.model_type.empty() && p.nodes[i].params.value(param.name, std::string()) == model.id)
          out += fmt::format("  m{} -> n{} [style=dotted, arrowhead=none];\n", m, i);
  }
  out += "}\n";
  return out;
}

}  // namespace sefar::graph

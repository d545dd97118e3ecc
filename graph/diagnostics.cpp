#include "graph/diagnostics.h"

#include <algorithm>

#include <fmt/format.h>

#include "graph/stop.h"

namespace sefar::graph {

std::string Diagnostic::format() const {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) out += fmt::format(":{}", line);
    if (column > 0) out += fmt::format(":{}", column);
    out += ": ";
  }
  if (!node_id.empty()) {
    out += fmt::format("{} '{}'", model ? "model" : "node", node_id);
    if (!node_type.empty()) out += fmt::format(" ({})", node_type);
    out += ": ";
  }
  out += message;
  return out;
}

static std::string join_diagnostics(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) {
    if (!out.empty()) out += '\n';
    out += d.format();
  }
  return out;
}

PipelineError::PipelineError(std::vector<Diagnostic> diagnostics)
    : std::runtime_error(join_diagnostics(diagnostics)), diagnostics_(std::move(diagnostics)) {}

PipelineError::PipelineError(Diagnostic diagnostic)
    : PipelineError(std::vector<Diagnostic>{std::move(diagnostic)}) {}

NodeFailure::NodeFailure(std::string pipeline, std::string node_id, std::string node_type, std::string item,
                         std::string what, bool bad_input, bool storage)
    : std::runtime_error(fmt::format("pipeline '{}': node '{}' ({}) failed{}: {}", pipeline, node_id,
                                     node_type, item.empty() ? "" : " on " + item, what)),
      pipeline_(std::move(pipeline)),
      node_id_(std::move(node_id)),
      node_type_(std::move(node_type)),
      item_(std::move(item)),
      reason_(std::move(what)),
      bad_input_(bad_input),
      storage_(storage) {}

Interrupted::Interrupted(int signal)
    : std::runtime_error(fmt::format("interrupted by {}", signal_name(signal))), signal_(signal) {}

static std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 2) + 1;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

}  // namespace sefar::graph

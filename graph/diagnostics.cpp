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
                         std::string what, FailureKind kind)
    : std::runtime_error(fmt::format("pipeline '{}': node '{}' ({}) failed{}: {}", pipeline, node_id,
                                     node_type, item.empty() ? "" : " on " + item, what)),
      pipeline_(std::move(pipeline)),
      node_id_(std::move(node_id)),
      node_type_(std::move(node_type)),
      item_(std::move(item)),
      reason_(std::move(what)),
      kind_(kind) {}

FailureCause failure_cause(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const NodeFailure& e) {
    return {e.kind(), e.what()};
  } catch (const util::WriteError& e) {  // StorageError too
    return {FailureKind::storage, e.what()};
  } catch (const PipelineError& e) {
    return {FailureKind::bad_input, e.what()};
  } catch (const InputError& e) {
    return {FailureKind::bad_input, e.what()};
  } catch (const util::ConfigError& e) {
    return {FailureKind::bad_input, e.what()};
  } catch (const util::ParamError& e) {
    return {FailureKind::bad_input, e.what()};
  } catch (const std::exception& e) {
    return {FailureKind::failure, e.what()};
  } catch (...) {
    return {FailureKind::failure, "unknown exception"};
  }
}

int exit_status(const std::exception_ptr& error) {
  if (!error) return 0;
  try {
    std::rethrow_exception(error);
  } catch (const Interrupted& e) {
    return 128 + e.signal();
  } catch (...) {
  }
  switch (failure_cause(error).kind) {
    case FailureKind::bad_input: return 2;
    case FailureKind::storage: return 74;  // EX_IOERR (sysexits.h)
    case FailureKind::failure: break;
  }
  return 1;
}

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

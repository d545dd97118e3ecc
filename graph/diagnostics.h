// Errors of the graph layer, with distinct exit statuses (exit_status below, the one place that
// maps an exception to a status):
//  - PipelineError (exit 2): the pipeline or its input is invalid; carries every problem found.
//  - NodeFailure: a node body failed while running; names pipeline, node, type and item. Its kind
//    says why: a failure (exit 1), bad input or configuration (2), outputs not written (74).
//  - Interrupted (exit 128 + signal): the run was stopped by SIGINT/SIGTERM (see graph/stop.h).
// Nodes also throw util/errors.h's ParamError, ConfigError and WriteError.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "util/errors.h"

namespace sefar::graph {

// One problem found in a pipeline, located as precisely as we can.
struct Diagnostic {
  std::string file;       // pipeline file the offending text came from (may be empty)
  int line = 0;           // 1-based; 0 when unknown
  int column = 0;         // 1-based; 0 when unknown
  std::string node_id;    // empty when not about a node
  std::string node_type;  // empty when unknown
  std::string key;        // parameter, port or top-level key concerned
  std::string message;
  bool model = false;     // node_id names an entry of the "models" section, not a node
  // From a util::ParamError: the message without its `param "NAME": ` lead (key names the parameter).
  std::string reason = {};

  std::string format() const;
};

class PipelineError : public std::runtime_error {
 public:
  explicit PipelineError(std::vector<Diagnostic> diagnostics);
  explicit PipelineError(Diagnostic diagnostic);
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// Thrown by node bodies for bad input data (a clip that cannot be decoded, ...). The runtime turns
// it into a skipped item when the node allows it, or into a NodeFailure otherwise. `category` is an
// optional short machine-readable kind ("missing", "truncated", ...) kept in the skip records.
class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& what, std::string category = "")
      : std::runtime_error(what), category_(std::move(category)) {}
  const std::string& category() const { return category_; }

 private:
  std::string category_;
};

// Thrown by node bodies when the pipeline's configuration cannot work with the data it meets
// (a crop larger than the frames it is given): the run stops as a NodeFailure with bad_input() true,
// so the CLI exits with status 2 like for any other invalid pipeline.
using util::ConfigError;

// Thrown when a run's outputs (checkpoints, metrics, the run directory) cannot be written: a full
// disk, a read-only or missing directory. The message names the path. A util::WriteError (the file
// writer's own) is the same failure: the runtime and the CLI catch that base class (exit 74).
class StorageError : public util::WriteError {
 public:
  using util::WriteError::WriteError;
};

// Thrown by Runtime::run when a stop was requested (SIGINT/SIGTERM): the graph was cancelled and
// every node's interrupted() hook ran (a training node writes a checkpoint there).
class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int signal);
  int signal() const { return signal_; }

 private:
  int signal_;
};

// Why a run failed, for its exit status.
enum class FailureKind {
  failure,    // a bug or a resource failure (exit 1)
  bad_input,  // bad input data or a configuration that cannot work with it (exit 2)
  storage,    // the outputs could not be written (exit 74)
};

class NodeFailure : public std::runtime_error {
 public:
  NodeFailure(std::string pipeline, std::string node_id, std::string node_type, std::string item,
              std::string what, FailureKind kind);
  const std::string& pipeline() const { return pipeline_; }
  const std::string& node_id() const { return node_id_; }
  const std::string& node_type() const { return node_type_; }
  const std::string& item() const { return item_; }
  const std::string& reason() const { return reason_; }
  FailureKind kind() const { return kind_; }
  // True when the cause was bad input data or configuration rather than a bug or resource failure.
  bool bad_input() const { return kind_ == FailureKind::bad_input; }
  // True when the cause was a WriteError: the node could not write its outputs.
  bool storage() const { return kind_ == FailureKind::storage; }

 private:
  std::string pipeline_, node_id_, node_type_, item_, reason_;
  FailureKind kind_;
};

// An exception's kind and message: the one classification of errors, used by the runtime to make a
// NodeFailure and by exit_status.
struct FailureCause {
  FailureKind kind = FailureKind::failure;
  std::string message;
};
FailureCause failure_cause(const std::exception_ptr& error);

// The exit status of a command that `error` ended: 2 invalid pipeline, flags or input, 1 failure
// while running, 74 outputs not written, 128 + N stopped by signal N.
int exit_status(const std::exception_ptr& error);

// "did you mean" helper: the closest candidate within a small edit distance, or empty.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace sefar::graph

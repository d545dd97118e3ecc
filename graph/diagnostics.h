// Errors of the graph layer, with distinct exit statuses in the CLI:
//  - PipelineError (exit 2): the pipeline or its input is invalid; carries every problem found.
//  - NodeFailure (exit 1): a node body failed while running; names pipeline, node, type and item.
//    When the cause was a StorageError (outputs could not be written) the CLI exits with 74.
//  - Interrupted (exit 128 + signal): the run was stopped by SIGINT/SIGTERM (see graph/stop.h).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "util/atomic_file.h"

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
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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

class NodeFailure : public std::runtime_error {
 public:
  NodeFailure(std::string pipeline, std::string node_id, std::string node_type, std::string item,
              std::string what, bool bad_input, bool storage = false);
  const std::string& pipeline() const { return pipeline_; }
  const std::string& node_id() const { return node_id_; }
  const std::string& node_type() const { return node_type_; }
  const std::string& item() const { return item_; }
  const std::string& reason() const { return reason_; }
  // True when the cause was bad input data (an InputError) rather than a bug or resource failure.
  bool bad_input() const { return bad_input_; }
  // True when the cause was a StorageError: the node could not write its outputs.
  bool storage() const { return storage_; }

 private:
  std::string pipeline_, node_id_, node_type_, item_, reason_;
  bool bad_input_, storage_;
};

// "did you mean" helper: the closest candidate within a small edit distance, or empty.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace sefar::graph

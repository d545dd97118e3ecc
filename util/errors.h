// The errors every layer may throw, typed so that no caller decodes a message string:
//  - ParamError: a parameter's value was rejected by the code reading it; param() names it, so the
//    runtime places the message at that parameter's file and line (exit 2).
//  - ConfigError: the configuration cannot work with what it meets while running (a crop larger than
//    the frames, a step node wired without the stage before it): the run stops with exit 2.
//  - WriteError: a file could not be written (util/atomic_file.h); exit 74.
// graph/diagnostics.h adds the runtime's own (PipelineError, NodeFailure, Interrupted) and the one
// function that turns any exception into an exit status.
#pragma once

#include <stdexcept>
#include <string>

namespace sefar::util {

class ParamError : public std::invalid_argument {
 public:
  // what(): `param "NAME": reason`.
  ParamError(const std::string& param, const std::string& reason);
  const std::string& param() const { return param_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string param_, reason_;
};

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A file could not be written; path() names it, reason() says why (without the path).
class WriteError : public std::runtime_error {
 public:
  WriteError(const std::string& path, const std::string& reason);
  // A message naming the path itself (path() empty).
  explicit WriteError(const std::string& message);
  const std::string& path() const { return path_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string path_, reason_;
};

}  // namespace sefar::util

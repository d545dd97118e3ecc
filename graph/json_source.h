// JSON files with positions: syntax errors with line and column, duplicate keys detected (the
// JSON library silently keeps the last), and a best-effort line lookup for diagnostics.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "graph/diagnostics.h"

namespace sefar::graph {

// Nesting deeper than this is rejected before parsing: pipelines need a handful of levels, and
// nested values are walked recursively (parameter substitution, printing).
constexpr int kMaxJsonDepth = 64;
// Byte offset of the bracket that opens nesting level max_depth + 1 (strings and comments are
// skipped), or std::string::npos when the text stays within max_depth.
std::size_t json_too_deep(const std::string& text, int max_depth = kMaxJsonDepth);

// JSON text of `v` that never throws: strings that are not valid UTF-8 (bytes from the command line or
// from split lists, e.g. Latin-1 file names) are written with U+FFFD in place of the bad bytes, where
// nlohmann::json::dump() would throw type_error 316.
std::string safe_dump(const nlohmann::json& v, int indent = -1);
// A value as an error message quotes it: JSON with every byte outside printable ASCII escaped (no raw
// bytes reach a terminal), cut after 200 characters with the full length said.
std::string quote_value(const nlohmann::json& v);

class JsonSource {
 public:
  // Reads and parses `path`; throws PipelineError naming the file, line and column.
  static JsonSource load(const std::string& path);
  // Parses `text` as if read from `path`.
  static JsonSource parse(const std::string& path, std::string text);

  const std::string& path() const { return path_; }
  const nlohmann::json& root() const { return root_; }

  // Line of the value at `keys` (an object key path), found by searching the text for each quoted
  // key in turn. 0 when not found.
  int line_of(const std::vector<std::string>& keys) const;
  // Line of the n-th (0-based) occurrence of the quoted string `text`; 0 when not found.
  int line_of_string(const std::string& text, int occurrence = 0) const;

 private:
  std::string path_, text_;  // text_: comments blanked out once parsed
  nlohmann::json root_;
  int line_at(std::size_t offset) const;
};

}  // namespace sefar::graph

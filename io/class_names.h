// Class names from a classes file: "index name" or "name" per line (what `sefar synth` and
// `sefar prepare finegym` write as classes.txt). Used by the classify node and the report.
#pragma once

#include <string>
#include <vector>

namespace sefar::io {

// Blank lines and lines starting with '#' are skipped; an index places its name, names without one
// follow in order. Throws std::runtime_error when the file cannot be read.
std::vector<std::string> read_class_names(const std::string& path);

}  // namespace sefar::io

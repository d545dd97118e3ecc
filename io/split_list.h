// Split lists in the official format: one clip per line, `<path> <label>`, whitespace separated.
//
// What the parser accepts (the published lists use absolute paths and CRLF line ends):
// - LF or CRLF line ends, a UTF-8 byte-order mark, leading/trailing spaces and tabs, fields
//   separated by runs of spaces or tabs;
// - blank lines and lines starting with '#' are skipped (counted, not problems);
// - the label is a non-negative decimal integer. The unlabeled list keeps a label column; training
//   ignores it, but it is still checked.
// A problem line (missing label, non-integer or negative label, extra columns) is reported as
// `<file>:<line>: <what>`. Strict mode throws SplitListError listing them all at the end (the
// first `max_reported`, with the total); lenient mode skips them and keeps the report.
//
// Paths: a relative listed path is joined under the data root. An absolute listed path is kept as
// it is (as Python's os.path.join does in the official loader) unless `strip_prefix` or
// `strip_components` turns it into a relative one first; e.g. the published FineGym list names
// `/root/video/<clip>.mp4`, so strip_prefix "/root/video/" with data root "/data/gym" gives
// `/data/gym/<clip>.mp4`.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sefar::io {

struct ClipEntry {
  std::string path;      // data root joined in front
  int label = -1;        // -1 only when the line had no label and allow_missing_label was set
  std::size_t line = 0;  // 1-based line of the list it came from
};

struct SplitProblem {
  std::size_t line = 0;  // 1-based
  std::string message;   // `<file>:<line>: <what>: '<line text>'`
};

struct SplitListOptions {
  bool strict = true;                // throw on problem lines; false: skip them and report
  bool allow_missing_label = false;  // accept `<path>` alone, label -1 (unlabeled lists)
  // Stat every clip and report the missing ones; fatal only when none of the clips exists (with the
  // folder they were looked up in), which is a wrong root rather than a few bad clips.
  bool check_exists = false;
  int num_classes = 0;            // labels must be below it (0: any); a label at or above is a problem line
  std::string strip_prefix;       // removed from the front of listed paths that start with it
  int strip_components = 0;       // leading path components removed (after strip_prefix)
  std::size_t max_reported = 20;  // problems / missing paths kept in full
};

struct SplitList {
  std::string source;  // the file read (or the name given to parse_split_list)
  std::vector<ClipEntry> clips;

  std::size_t lines = 0;               // lines in the file
  std::size_t skipped_lines = 0;       // blank and comment lines
  std::size_t problem_count = 0;       // every problem line, also beyond max_reported
  std::vector<SplitProblem> problems;  // the first max_reported of them

  std::size_t missing_count = 0;           // with check_exists: clips not found on disk
  std::vector<std::string> missing_paths;  // the first max_reported of them

  // max label + 1 over the labeled clips (0 when there are none).
  int num_classes() const;
  // Clips per label, sized num_classes (or `classes` when larger); unlabeled clips not counted.
  std::vector<std::size_t> class_counts(int classes = 0) const;
  // One-line summary: clips, classes, problems, missing.
  std::string summary() const;
};

// The typed error of strict parsing and of unreadable files. what() lists the problem lines.
class SplitListError : public std::runtime_error {
 public:
  SplitListError(std::string file, std::string what, std::vector<SplitProblem> problems = {},
                 std::size_t problem_count = 0);
  const std::string& file() const { return file_; }
  const std::vector<SplitProblem>& problems() const { return problems_; }
  std::size_t problem_count() const { return problem_count_; }

 private:
  std::string file_;
  std::vector<SplitProblem> problems_;
  std::size_t problem_count_ = 0;
};

// Reads and parses a split list file. Throws SplitListError when the file cannot be read, and in
// strict mode when a line is malformed or the list holds no clips.
SplitList load_split_list(const std::string& file, const std::string& data_root,
                          const SplitListOptions& options = {});

// Parses split-list text already in memory; `source` names it in messages.
SplitList parse_split_list(std::string_view text, const std::string& source, const std::string& data_root,
                           const SplitListOptions& options = {});

}  // namespace sefar::io

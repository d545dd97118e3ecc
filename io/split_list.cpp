#include "io/split_list.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace sefar::io {

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// Splits on runs of blanks; at most `max_fields` + 1 fields are looked at, enough to see extras.
std::size_t split_fields(std::string_view s, std::string_view* fields, std::size_t max_fields) {
  std::size_t n = 0;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_blank(s[i])) ++i;
    if (i >= s.size()) break;
    std::size_t j = i;
    while (j < s.size() && !is_blank(s[j])) ++j;
    if (n < max_fields) fields[n] = s.substr(i, j - i);
    ++n;
    i = j;
  }
  return n;
}

std::string shorten(std::string_view s) {
  constexpr std::size_t kMax = 120;
  if (s.size() <= kMax) return std::string(s);
  return std::string(s.substr(0, kMax)) + "...";
}

// Listed path -> path under the data root; returns false (with `why`) when stripping fails.
bool rebase(std::string_view listed, const std::string& data_root, const SplitListOptions& options,
            std::string& out, std::string& why) {
  std::string_view p = listed;
  if (!options.strip_prefix.empty() && p.substr(0, options.strip_prefix.size()) == options.strip_prefix) {
    p.remove_prefix(options.strip_prefix.size());
  }
  for (int c = 0; c < options.strip_components; ++c) {
    while (!p.empty() && p.front() == '/') p.remove_prefix(1);
    const std::size_t slash = p.find('/');
    if (slash == std::string_view::npos) {
      why = fmt::format("path has fewer than {} leading directories to strip", options.strip_components);
      return false;
    }
    p.remove_prefix(slash + 1);
  }
  if (options.strip_components > 0) {
    while (!p.empty() && p.front() == '/') p.remove_prefix(1);
  }
  if (p.empty()) {
    why = "path is empty after stripping";
    return false;
  }
  out.clear();
  if (data_root.empty() || p.front() == '/') {
    out.assign(p);
  } else {
    out.reserve(data_root.size() + 1 + p.size());
    out.append(data_root);
    if (out.back() != '/') out.push_back('/');
    out.append(p);
  }
  return true;
}

std::string problems_text(const std::string& file, const std::vector<SplitProblem>& problems,
                          std::size_t problem_count) {
  std::string text =
      fmt::format("{}: {} malformed line{}", file, problem_count, problem_count == 1 ? "" : "s");
  for (const auto& p : problems) {
    text += "\n  ";
    text += p.message;
  }
  if (problem_count > problems.size())
    text += fmt::format("\n  ... and {} more", problem_count - problems.size());
  return text;
}

}  // namespace

SplitListError::SplitListError(std::string file, std::string what, std::vector<SplitProblem> problems,
                               std::size_t problem_count)
    : std::runtime_error(std::move(what)),
      file_(std::move(file)),
      problems_(std::move(problems)),
      problem_count_(problem_count) {}

int SplitList::num_classes() const {
  int max_label = -1;
  for (const auto& c : clips) max_label = std::max(max_label, c.label);
  return max_label + 1;
}

std::vector<std::size_t> SplitList::class_counts(int classes) const {
  std::vector<std::size_t> counts(static_cast<std::size_t>(std::max(classes, num_classes())), 0);
  for (const auto& c : clips) {
    if (c.label >= 0) ++counts[static_cast<std::size_t>(c.label)];
  }
  return counts;
}

std::string SplitList::summary() const {
  std::string s = fmt::format("{}: {} clips, {} classes", source, clips.size(), num_classes());
  if (problem_count > 0) s += fmt::format(", {} malformed lines skipped", problem_count);
  if (missing_count > 0) {
    s += fmt::format(", {} missing on disk", missing_count);
    if (!missing_paths.empty()) s += fmt::format(" (first: {})", missing_paths.front());
  }
  return s;
}

namespace {

// Parses one line at a time so a file can be fed in chunks: the output is the only large memory
// touched (first-touch page faults, not parsing, dominate a cold load).
class LineParser {
 public:
  LineParser(const std::string& source, const std::string& data_root, const SplitListOptions& options)
      : data_root_(data_root), options_(options) {
    list_.source = source;
  }

  void reserve(std::size_t lines) { list_.clips.reserve(lines); }
  std::size_t lines_read() const { return line_no_; }

  void line(std::string_view raw) {
    ++line_no_;
    if (line_no_ == 1) {
      constexpr std::string_view kBom = "\xEF\xBB\xBF";
      if (raw.substr(0, kBom.size()) == kBom) raw.remove_prefix(kBom.size());
    }
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') {
      ++list_.skipped_lines;
      return;
    }
    std::string_view fields[2];
    const std::size_t n = split_fields(line, fields, 2);
    int label = -1;
    if (n > 2) return report(line, fmt::format("expected '<path> <label>', found {} fields", n));
    if (n == 1) {
      if (!options_.allow_missing_label) return report(line, "missing label");
    } else {
      const std::string_view tok = fields[1];
      const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), label);
      if (ec == std::errc::result_out_of_range) return report(line, "label out of range");
      if (ec != std::errc() || end != tok.data() + tok.size()) {
        return report(line, fmt::format("label '{}' is not an integer", shorten(tok)));
      }
      if (label < 0) return report(line, fmt::format("negative label {}", label));
      if (options_.num_classes > 0 && label >= options_.num_classes) {
        // Fatal in lenient mode too: the model cannot train on it, and dropping it would evaluate
        // on fewer clips than the list has.
        ++label_problem_count_;
        if (label_problems_.size() < options_.max_reported)
          label_problems_.push_back(
              {line_no_, fmt::format("{}:{}: label {} is not below num_classes {} (labels "
                                     "are 0 to {}): '{}'",
                                     list_.source, line_no_, label, options_.num_classes,
                                     options_.num_classes - 1, shorten(line))});
        return;
      }
    }
    if (!rebase(fields[0], data_root_, options_, joined_, why_)) return report(line, why_);
    list_.clips.push_back({joined_, label, line_no_});
  }

  SplitList finish() {
    list_.lines = line_no_;
    const std::string& source = list_.source;
    if (label_problem_count_ > 0)
      throw SplitListError(source, problems_text(source, label_problems_, label_problem_count_),
                           label_problems_, label_problem_count_);
    if (options_.strict && list_.problem_count > 0) {
      throw SplitListError(source, problems_text(source, list_.problems, list_.problem_count), list_.problems,
                           list_.problem_count);
    }
    if (options_.strict && list_.clips.empty()) {
      throw SplitListError(source, fmt::format("{}: split list holds no clips", source));
    }
    if (options_.check_exists) {
      std::error_code ec;
      for (const auto& c : list_.clips) {
        // An error (permission, bad path) counts as missing: the clip cannot be read either way.
        if (!std::filesystem::is_regular_file(c.path, ec)) {
          ++list_.missing_count;
          if (list_.missing_paths.size() < options_.max_reported) list_.missing_paths.push_back(c.path);
        }
      }
      if (!list_.clips.empty() && list_.missing_count == list_.clips.size()) {
        const std::string folder = std::filesystem::path(list_.clips.front().path).parent_path().string();
        throw SplitListError(
            source,
            fmt::format("{}: none of its {} clips exists: they were looked up in {} (e.g. {}); set the "
                        "data root (param \"root\", or strip_prefix / strip_components for absolute "
                        "paths) to the folder that holds them",
                        source, list_.clips.size(), folder.empty() ? "." : folder, list_.clips.front().path));
      }
    }
    return std::move(list_);
  }

 private:
  void report(std::string_view line, std::string_view what) {
    ++list_.problem_count;
    if (list_.problems.size() < options_.max_reported) {
      list_.problems.push_back(
          {line_no_, fmt::format("{}:{}: {}: '{}'", list_.source, line_no_, what, shorten(line))});
    }
  }

  const std::string& data_root_;
  const SplitListOptions& options_;
  SplitList list_;
  std::size_t line_no_ = 0;
  std::string joined_;
  std::string why_;
  std::size_t label_problem_count_ = 0;       // labels at or above num_classes
  std::vector<SplitProblem> label_problems_;  // the first max_reported of them
};

constexpr std::size_t kMaxLineBytes = std::size_t(1) << 20;

// Feeds the complete lines of `text` to the parser; returns what follows the last newline.
std::string_view feed_lines(LineParser& parser, std::string_view text) {
  std::size_t pos = 0;
  for (;;) {
    const std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) return text.substr(pos);
    parser.line(text.substr(pos, eol - pos));
    pos = eol + 1;
  }
}

}  // namespace

SplitList parse_split_list(std::string_view text, const std::string& source, const std::string& data_root,
                           const SplitListOptions& options) {
  LineParser parser(source, data_root, options);
  parser.reserve(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  const std::string_view rest = feed_lines(parser, text);
  if (!rest.empty()) parser.line(rest);
  return parser.finish();
}

SplitList load_split_list(const std::string& file, const std::string& data_root,
                          const SplitListOptions& options) {
  std::error_code ec;
  const auto status = std::filesystem::status(file, ec);
  if (ec == std::errc::too_many_symbolic_link_levels)
    throw SplitListError(file, fmt::format("cannot open split list {}: symlink loop", file));
  if (std::filesystem::is_directory(status)) {
    throw SplitListError(file, fmt::format("cannot read split list {}: it is a directory", file));
  }
  // Devices (/dev/zero, a terminal) never end or block: only files and pipes.
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status) &&
      !std::filesystem::is_fifo(status)) {
    throw SplitListError(file, fmt::format("cannot read split list {}: not a regular file", file));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw SplitListError(file, fmt::format("cannot open split list {}: {}", file, std::strerror(errno)));
  }
  // Published lists run ~60 bytes a line; reserving from the file size avoids regrowth.
  const auto size = std::filesystem::file_size(file, ec);
  LineParser parser(file, data_root, options);
  if (!ec) parser.reserve(static_cast<std::size_t>(size / 40) + 1);

  // Chunked reading keeps the input buffer small; a partial last line carries into the next chunk.
  constexpr std::size_t kChunk = 64 * 1024;
  std::string buffer;
  std::size_t carried = 0;
  for (;;) {
    buffer.resize(carried + kChunk);
    in.read(buffer.data() + carried, static_cast<std::streamsize>(kChunk));
    const auto got = static_cast<std::size_t>(in.gcount());
    if (in.bad()) throw SplitListError(file, fmt::format("cannot read split list {}", file));
    const std::string_view data(buffer.data(), carried + got);
    const std::string_view rest = feed_lines(parser, data);
    if (got == 0) {
      if (!rest.empty()) parser.line(rest);
      break;
    }
    // A line this long is no split list (a binary file given by mistake): stop before it takes memory.
    if (rest.size() > kMaxLineBytes)
      throw SplitListError(file,
                           fmt::format("cannot read split list {}: line {} is longer than {} bytes (not a "
                                       "split list?)",
                                       file, parser.lines_read() + 1, kMaxLineBytes));
    std::memmove(buffer.data(), rest.data(), rest.size());
    carried = rest.size();
  }
  return parser.finish();
}

}  // namespace sefar::io

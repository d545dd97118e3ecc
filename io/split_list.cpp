#include "io/split_list.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

namespace sefar::io {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

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
  std::string text = fmt::format("{}: {} malformed line{}", file, problem_count, problem_count == 1 ? "" : "s");
  for (const auto& p : problems) {
    text += "\n  ";
    text += p.message;
  }
  if (problem_count > problems.size()) text += fmt::format("\n  ... and {} more", problem_count - problems.size());
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

SplitList parse_split_list(std::string_view text, const std::string& source, const std::string& data_root,
                           const SplitListOptions& options) {
  SplitList list;
  list.source = source;
  // ~60 bytes per line in the published lists; a rough reserve avoids most regrowth.
  list.clips.reserve(text.size() / 48 + 1);

  constexpr std::string_view kBom = "\xEF\xBB\xBF";
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());

  auto report = [&](std::size_t line_no, std::string_view line, std::string_view what) {
    ++list.problem_count;
    if (list.problems.size() < options.max_reported) {
      list.problems.push_back({line_no, fmt::format("{}:{}: {}: '{}'", source, line_no, what, shorten(line))});
    }
  };

  std::string joined;
  std::string why;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    const std::string_view raw = text.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;

    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') {
      ++list.skipped_lines;
      continue;
    }
    std::string_view fields[2];
    const std::size_t n = split_fields(line, fields, 2);
    int label = -1;
    if (n > 2) {
      report(line_no, line, fmt::format("expected '<path> <label>', found {} fields", n));
      continue;
    }
    if (n == 1) {
      if (!options.allow_missing_label) {
        report(line_no, line, "missing label");
        continue;
      }
    } else {
      const std::string_view tok = fields[1];
      const auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), label);
      if (ec == std::errc::result_out_of_range) {
        report(line_no, line, "label out of range");
        continue;
      }
      if (ec != std::errc() || end != tok.data() + tok.size()) {
        report(line_no, line, fmt::format("label '{}' is not an integer", shorten(tok)));
        continue;
      }
      if (label < 0) {
        report(line_no, line, fmt::format("negative label {}", label));
        continue;
      }
    }
    if (!rebase(fields[0], data_root, options, joined, why)) {
      report(line_no, line, why);
      continue;
    }
    list.clips.push_back({joined, label});
  }
  list.lines = line_no;

  if (options.strict && list.problem_count > 0) {
    throw SplitListError(source, problems_text(source, list.problems, list.problem_count), list.problems,
                         list.problem_count);
  }
  if (options.strict && list.clips.empty()) {
    throw SplitListError(source, fmt::format("{}: split list holds no clips", source));
  }

  if (options.check_exists) {
    std::error_code ec;
    for (const auto& c : list.clips) {
      // An error (permission, bad path) counts as missing: the clip cannot be read either way.
      if (!std::filesystem::is_regular_file(c.path, ec)) {
        ++list.missing_count;
        if (list.missing_paths.size() < options.max_reported) list.missing_paths.push_back(c.path);
      }
    }
  }
  return list;
}

SplitList load_split_list(const std::string& file, const std::string& data_root, const SplitListOptions& options) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw SplitListError(file, fmt::format("cannot open split list {}: {}", file, std::strerror(errno)));
  }
  std::string text;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size > 0) {
    text.resize(static_cast<std::size_t>(size));
    in.seekg(0, std::ios::beg);
    in.read(text.data(), size);
  }
  if (!in) throw SplitListError(file, fmt::format("cannot read split list {}", file));
  return parse_split_list(text, file, data_root, options);
}

}  // namespace sefar::io

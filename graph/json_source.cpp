#include "graph/json_source.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include <fmt/format.h>

namespace sefar::graph {

using json = nlohmann::json;

JsonSource JsonSource::load(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec == std::errc::too_many_symbolic_link_levels)
    throw PipelineError(Diagnostic{path, 0, 0, "", "", "", "cannot open file: symlink loop"});
  if (!fs::exists(status))
    throw PipelineError(Diagnostic{path, 0, 0, "", "", "", "cannot open file: no such file"});
  if (fs::is_directory(status))
    throw PipelineError(Diagnostic{path, 0, 0, "", "", "", "is a directory, not a file"});
  // Devices (/dev/zero, a terminal) never end or block: only files and pipes.
  if (!fs::is_regular_file(status) && !fs::is_fifo(status))
    throw PipelineError(Diagnostic{path, 0, 0, "", "", "", "not a regular file"});
  constexpr std::size_t kMaxBytes = std::size_t(16) << 20;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw PipelineError(Diagnostic{path, 0, 0, "", "", "", "cannot open file"});
  std::string text;
  std::vector<char> chunk(1 << 16);
  while (in.read(chunk.data(), std::streamsize(chunk.size())) || in.gcount() > 0) {
    text.append(chunk.data(), std::size_t(in.gcount()));
    if (text.size() > kMaxBytes)
      throw PipelineError(
          Diagnostic{path, 0, 0, "", "", "",
                     fmt::format("file too large for a pipeline (more than {} bytes)", kMaxBytes)});
  }
  if (in.bad()) throw PipelineError(Diagnostic{path, 0, 0, "", "", "", "read error"});
  return parse(path, std::move(text));
}

int JsonSource::line_at(std::size_t offset) const {
  int line = 1;
  for (std::size_t i = 0; i < offset && i < text_.size(); ++i)
    if (text_[i] == '\n') ++line;
  return line;
}

std::string safe_dump(const nlohmann::json& v, int indent) {
  return v.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string quote_value(const nlohmann::json& v) {
  constexpr std::size_t kMax = 200;
  std::string text = v.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  if (text.size() <= kMax) return text;
  const std::size_t total = text.size();
  text.resize(kMax);
  return fmt::format("{}... ({} characters)", text, total);
}

std::size_t json_too_deep(const std::string& text, int max_depth) {
  int depth = 0;
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (c == '"') {  // skip the string, escapes included
      for (++i; i < n && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
    } else if (c == '/' && i + 1 < n && text[i + 1] == '/') {
      while (i < n && text[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && text[i + 1] == '*') {
      auto end = text.find("*/", i + 2);
      i = end == std::string::npos ? n : end + 1;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return i;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::string::npos;
}

namespace {

// Blanks out comments (keeping line breaks), so line lookups never land on a key or an edge quoted in
// a comment.
void blank_comments(std::string& text) {
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (text[i] == '"') {
      for (++i; i < n && text[i] != '"'; ++i)
        if (text[i] == '\\') ++i;
    } else if (text[i] == '/' && i + 1 < n && (text[i + 1] == '/' || text[i + 1] == '*')) {
      const bool line = text[i + 1] == '/';
      std::size_t end = line ? text.find('\n', i) : text.find("*/", i + 2);
      end = end == std::string::npos ? n : (line ? end : end + 2);
      for (std::size_t j = i; j < end; ++j)
        if (text[j] != '\n') text[j] = ' ';
      i = end - 1;
    }
  }
}

}  // namespace

JsonSource JsonSource::parse(const std::string& path, std::string text) {
  JsonSource src;
  src.path_ = path;
  src.text_ = std::move(text);
  if (auto at = json_too_deep(src.text_); at != std::string::npos) {
    int line = src.line_at(at), column = 1;
    for (std::size_t i = at; i > 0 && src.text_[i - 1] != '\n'; --i) ++column;
    throw PipelineError(Diagnostic{path, line, column, "", "", "",
                                   fmt::format("JSON nested deeper than {} levels", kMaxJsonDepth)});
  }

  // The JSON library keeps the last of duplicate keys silently; a pipeline with two nodes of the
  // same id is almost certainly a mistake, so track the keys of every open object.
  std::vector<std::set<std::string>> open_objects;
  std::vector<std::string> key_path;
  std::string duplicate;
  std::vector<std::string> duplicate_path;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        auto key = parsed.get<std::string>();
        key_path.resize(std::max(depth - 1, 0));
        if (!open_objects.empty() && !open_objects.back().insert(key).second && duplicate.empty()) {
          duplicate = key;
          duplicate_path = key_path;
        }
        key_path.push_back(key);
        break;
      }
      default:
        break;
    }
    return true;
  };

  try {
    src.root_ = json::parse(src.text_, callback, /*allow_exceptions=*/true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    // Turn the byte offset into line and column, and keep the library's explanation.
    std::size_t byte = e.byte > 0 ? e.byte - 1 : 0;
    int line = 1, column = 1;
    for (std::size_t i = 0; i < byte && i < src.text_.size(); ++i) {
      if (src.text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    std::string what = e.what();
    auto pos = what.find("column");
    if (pos != std::string::npos) pos = what.find(": ", pos);
    std::string reason = pos == std::string::npos ? what : what.substr(pos + 2);
    throw PipelineError(Diagnostic{path, line, column, "", "", "", "JSON syntax error: " + reason});
  } catch (const json::out_of_range& e) {
    // A number too large for a double (e.g. 1e999) carries no offset: find the literal the message
    // quotes (found by fuzzing: it escaped as an uncaught exception).
    std::string what = e.what();
    auto open = what.find('\''), close = what.rfind('\'');
    std::string literal =
        open != std::string::npos && close > open ? what.substr(open + 1, close - open - 1) : "";
    const std::size_t at = literal.empty() ? std::string::npos : src.text_.find(literal);
    int line = at == std::string::npos ? 0 : src.line_at(at);
    throw PipelineError(
        Diagnostic{path, line, 0, "", "", "",
                   fmt::format("JSON number out of range: {}", literal.empty() ? what : literal)});
  }
  blank_comments(src.text_);
  if (!duplicate.empty()) {
    std::string where = duplicate_path.empty() ? "the top level" : "\"" + duplicate_path.back() + "\"";
    std::string message = duplicate_path.size() == 1 && duplicate_path[0] == "nodes"
                              ? fmt::format("duplicate node id '{}'", duplicate)
                              : fmt::format("duplicate key '{}' in {}", duplicate, where);
    // The second occurrence of the quoted key is usually the duplicate.
    int line = src.line_of_string(duplicate, 1);
    throw PipelineError(
        Diagnostic{path, line, 0, duplicate_path.size() == 1 && duplicate_path[0] == "nodes" ? duplicate : "",
                   "", duplicate, message});
  }
  return src;
}

static std::size_t find_key(const std::string& text, const std::string& key, std::size_t from) {
  std::string quoted = "\"" + key + "\"";
  while (true) {
    std::size_t pos = text.find(quoted, from);
    if (pos == std::string::npos) return pos;
    std::size_t after = pos + quoted.size();
    while (after < text.size() && std::isspace(static_cast<unsigned char>(text[after]))) ++after;
    if (after < text.size() && text[after] == ':') return pos;
    from = pos + 1;
  }
}

int JsonSource::line_of(const std::vector<std::string>& keys) const {
  std::size_t pos = 0;
  for (const auto& key : keys) {
    pos = find_key(text_, key, pos);
    if (pos == std::string::npos) return 0;
  }
  return line_at(pos);
}

int JsonSource::line_of_string(const std::string& s, int occurrence) const {
  std::string quoted = "\"" + s + "\"";
  std::size_t pos = 0;
  for (int i = 0;; ++i) {
    pos = text_.find(quoted, pos);
    if (pos == std::string::npos) return 0;
    if (i == occurrence) return line_at(pos);
    pos += 1;
  }
}

}  // namespace sefar::graph

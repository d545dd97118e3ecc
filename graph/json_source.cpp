#include "graph/json_source.h"

#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace sefar::graph {

using json = nlohmann::json;

JsonSource JsonSource::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw PipelineError(Diagnostic{path, 0, 0, "", "", "", "cannot open file"});
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse(path, buffer.str());
}

int JsonSource::line_at(std::size_t offset) const {
  int line = 1;
  for (std::size_t i = 0; i < offset && i < text_.size(); ++i)
    if (text_[i] == '\n') ++line;
  return line;
}

JsonSource JsonSource::parse(const std::string& path, std::string text) {
  JsonSource src;
  src.path_ = path;
  src.text_ = std::move(text);

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
  }
  if (!duplicate.empty()) {
    std::string where = duplicate_path.empty() ? "the top level" : "\"" + duplicate_path.back() + "\"";
    std::string message = duplicate_path.size() == 1 && duplicate_path[0] == "nodes"
                              ? fmt::format("duplicate node id '{}'", duplicate)
                              : fmt::format("duplicate key '{}' in {}", duplicate, where);
    // The second occurrence of the quoted key is usually the duplicate.
    int line = src.line_of_string(duplicate, 1);
    throw PipelineError(Diagnostic{path, line, 0, duplicate_path.size() == 1 && duplicate_path[0] == "nodes" ? duplicate : "",
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

// FineGym annotation and category files: parsing, checking and clip names.
#include "io/finegym.h"

#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sefar::io {

namespace {

constexpr std::size_t kMaxProblems = 20;

std::string join_problems(const std::string& file, const std::vector<std::string>& problems,
                          std::size_t count) {
  std::string out = fmt::format("{}: {} problem{}", file, count, count == 1 ? "" : "s");
  for (const auto& p : problems) out += "\n  " + p;
  if (count > problems.size()) out += fmt::format("\n  ... and {} more", count - problems.size());
  return out;
}

// Collects problems, keeping the first kMaxProblems and counting all.
struct Problems {
  std::vector<std::string> kept;
  std::size_t count = 0;
  void add(std::string p) {
    if (kept.size() < kMaxProblems) kept.push_back(std::move(p));
    ++count;
  }
  void throw_if_any(const std::string& file) const {
    if (count) throw FineGymError(file, kept, count);
  }
};

std::string read_file(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw FineGymError(file, {"cannot be read"}, 1);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A key used in a clip's file name: one path component, and a single field of a split list line.
std::string name_problem(const std::string& key) {
  if (key.empty()) return "an empty name";
  if (key == "." || key == "..") return "not a file name";
  for (unsigned char c : key)
    if (c == '/' || c == '\\' || c <= ' ' || c == 0x7f)
      return "not a plain file name (slash, space or control character)";
  return "";
}

std::string short_dump(const nlohmann::json& j) {
  std::string s = j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// [[start, end], ...]: one pair per stage. Empty result and a problem when malformed.
std::vector<std::pair<double, double>> read_timestamps(const nlohmann::json& owner, const std::string& key,
                                                       Problems& problems) {
  const std::string where = key + "/timestamps";
  auto it = owner.find("timestamps");
  if (it == owner.end()) {
    problems.add(where + ": missing");
    return {};
  }
  std::vector<std::pair<double, double>> out;
  bool ok = it->is_array() && !it->empty();
  if (ok)
    for (const auto& pair : *it) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_number()) {
        ok = false;
        break;
      }
      out.emplace_back(pair[0].get<double>(), pair[1].get<double>());
    }
  if (!ok) {
    problems.add(fmt::format("{}: expected [[start, end], ...] in seconds, got {}", where, short_dump(*it)));
    return {};
  }
  return out;
}

std::string times_problem(double start, double end) {
  if (!std::isfinite(start) || !std::isfinite(end)) return "times are not finite";
  if (start < 0) return fmt::format("starts before the video ({} s)", start);
  if (end <= start) return fmt::format("ends at {} s, not after its start ({} s)", end, start);
  return "";
}

}  // namespace

FineGymError::FineGymError(std::string file, std::vector<std::string> problems, std::size_t problem_count)
    : std::runtime_error(join_problems(file, problems, problem_count)),
      file_(std::move(file)),
      problems_(std::move(problems)),
      problem_count_(problem_count) {}

std::string FineGymClip::name() const {
  return video + "_" + event + "_" + action;
}

FineGymAnnotation parse_finegym_annotation(std::string_view text, const std::string& source) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw FineGymError(source, {fmt::format("not valid JSON: {}", e.what())}, 1);
  }
  if (!doc.is_object())
    throw FineGymError(source, {"expected an object of YouTube video ids at the top level"}, 1);

  FineGymAnnotation out;
  out.source = source;
  Problems problems;
  for (const auto& [video, events] : doc.items()) {
    ++out.videos;
    if (auto p = name_problem(video); !p.empty()) problems.add(fmt::format("video id \"{}\": {}", video, p));
    if (!events.is_object()) {
      problems.add(fmt::format("{}: expected an object of events, got {}", video, short_dump(events)));
      continue;
    }
    for (const auto& [event, value] : events.items()) {
      ++out.events;
      const std::string event_key = video + "/" + event;
      if (auto p = name_problem(event); !p.empty())
        problems.add(fmt::format("{}: event id {}", event_key, p));
      if (!value.is_object()) {
        problems.add(fmt::format("{}: expected an object with \"timestamps\" and \"segments\", got {}",
                                 event_key, short_dump(value)));
        continue;
      }
      const auto event_times = read_timestamps(value, event_key, problems);
      int type = 0;
      if (auto t = value.find("event"); t != value.end()) {
        if (t->is_number_integer())
          type = t->get<int>();
        else
          problems.add(fmt::format("{}/event: expected an integer, got {}", event_key, short_dump(*t)));
      }
      auto segments = value.find("segments");
      if (segments == value.end()) {
        problems.add(event_key + "/segments: missing (null when the event has no sub-actions)");
        continue;
      }
      if (segments->is_null()) {
        ++out.events_without_segments;
        continue;
      }
      if (!segments->is_object()) {
        problems.add(fmt::format("{}/segments: expected an object of sub-actions or null, got {}", event_key,
                                 short_dump(*segments)));
        continue;
      }
      for (const auto& [action, segment] : segments->items()) {
        const std::string key = event_key + "/segments/" + action;
        if (auto p = name_problem(action); !p.empty())
          problems.add(fmt::format("{}: sub-action id {}", key, p));
        if (!segment.is_object()) {
          problems.add(
              fmt::format("{}: expected an object with \"timestamps\", got {}", key, short_dump(segment)));
          continue;
        }
        const auto stages = read_timestamps(segment, key, problems);
        if (stages.empty() || event_times.empty()) continue;
        FineGymClip clip;
        clip.video = video;
        clip.event = event;
        clip.action = action;
        clip.event_type = type;
        clip.start = event_times.front().first + stages.front().first;
        clip.end = event_times.front().first + stages.back().second;
        if (auto p = times_problem(clip.start, clip.end); !p.empty())
          out.bad_times.push_back({clip.name(), key, p});
        else
          out.clips.push_back(std::move(clip));
      }
    }
  }
  problems.throw_if_any(source);
  return out;
}

FineGymAnnotation load_finegym_annotation(const std::string& file) {
  return parse_finegym_annotation(read_file(file), file);
}

std::vector<FineGymCategory> parse_finegym_categories(std::string_view text, const std::string& source) {
  std::vector<FineGymCategory> out;
  std::map<int, std::size_t> seen;  // label -> line
  Problems problems;
  std::istringstream in{std::string(text)};
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (number == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    // "Key: value;" fields, then the name.
    FineGymCategory c;
    std::size_t pos = 0;
    bool bad = false;
    for (;;) {
      const std::size_t semi = line.find(';', pos), colon = line.find(':', pos);
      if (semi == std::string::npos || colon == std::string::npos || colon > semi) break;
      std::string key = line.substr(pos, colon - pos), value = line.substr(colon + 1, semi - colon - 1);
      key.erase(0, key.find_first_not_of(" \t"));
      if (key.find_first_of(" \t(") != std::string::npos) break;  // a name that holds ':' and ';'
      int v = 0;
      std::size_t used = 0;
      try {
        v = std::stoi(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || value.find_first_not_of(" \t", used) != std::string::npos) {
        problems.add(
            fmt::format("{}:{}: \"{}\": expected an integer, got \"{}\"", source, number, key, value));
        bad = true;
        break;
      }
      if (key == "Clabel") c.label = v;
      if (key == "set") c.set = v;
      if (key == "Glabel") c.global_label = v;
      pos = semi + 1;
    }
    if (bad) continue;
    const std::size_t name_at = line.find_first_not_of(" \t", pos);
    if (c.label < 0 || name_at == std::string::npos) {
      problems.add(fmt::format("{}:{}: expected \"Clabel: N; set: S; Glabel: G; name\", got \"{}\"", source,
                               number, line.substr(0, 80)));
      continue;
    }
    c.name = line.substr(name_at);
    c.name.erase(c.name.find_last_not_of(" \t") + 1);
    if (auto [it, fresh] = seen.emplace(c.label, number); !fresh) {
      problems.add(
          fmt::format("{}:{}: Clabel {} again (first on line {})", source, number, c.label, it->second));
      continue;
    }
    out.push_back(std::move(c));
  }
  if (out.empty() && !problems.count) problems.add(source + ": no categories");
  problems.throw_if_any(source);
  return out;
}

std::vector<FineGymCategory> load_finegym_categories(const std::string& file) {
  return parse_finegym_categories(read_file(file), file);
}

std::string classes_txt(const std::vector<FineGymCategory>& categories) {
  std::map<int, const FineGymCategory*> by_label;
  for (const auto& c : categories) by_label[c.label] = &c;
  std::string out;
  for (const auto& [label, c] : by_label) out += fmt::format("{} {}\n", label, c->name);
  return out;
}

std::string clip_name_of(std::string_view listed_path) {
  const std::size_t slash = listed_path.find_last_of("/\\");
  std::string_view base = slash == std::string_view::npos ? listed_path : listed_path.substr(slash + 1);
  const std::size_t dot = base.rfind('.');
  if (dot != std::string_view::npos && dot > 0) base = base.substr(0, dot);
  return std::string(base);
}

}  // namespace sefar::io

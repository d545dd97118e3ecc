#include "report/run_files.h"

#include <fstream>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

#include "report/svg.h"

namespace sefar::report {

namespace fs = std::filesystem;
using json = nlohmann::json;

double json_number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return kNaN;
  return it->get<double>();
}

std::string json_string(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string compact(const json& j, std::size_t limit) {
  return shorten(j.dump(-1, ' ', false, json::error_handler_t::replace), limit);
}

namespace {

void add_problem(Metrics& m, std::size_t line, std::string what) {
  ++m.problem_count;
  if (m.problems.size() < kMaxProblems)
    m.problems.push_back({fmt::format("metrics.jsonl:{}", line), std::move(what)});
}

std::string line_excerpt(std::string_view line) {
  return "'" + shorten(line, 90) + "'";
}

}  // namespace

Metrics read_metrics(const fs::path& file) {
  Metrics m;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return m;
  m.present = true;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    m.error = "cannot be opened";
    return m;
  }
  std::string line;
  std::int64_t last_step = -1;
  struct Resume {
    std::size_t line;
    std::int64_t step, epoch;
  };
  std::vector<Resume> resumes;
  bool zero_based = false;  // an epoch 0: written before epochs were numbered from 1
  while (std::getline(in, line)) {
    const std::size_t n = ++m.lines;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      std::string what = e.what();
      // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> keep the reason.
      if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
      add_problem(m, n, fmt::format("not JSON ({}): {}", shorten(what, 120), line_excerpt(line)));
      continue;
    }
    if (!j.is_object()) {
      add_problem(m, n, fmt::format("not a JSON object: {}", line_excerpt(line)));
      continue;
    }
    const std::string kind = io::record_kind(j);
    if (kind.empty()) {
      add_problem(m, n, fmt::format("no \"kind\": {}", line_excerpt(line)));
      continue;
    }
    if (auto epoch = io::record_epoch(j); epoch && *epoch == 0) zero_based = true;
    std::string problem;
    if (kind == io::StepRecord::kind) {
      io::StepRecord r;
      if (!io::from_json(j, r, problem)) {
        add_problem(m, n, fmt::format("{}: {}", problem, line_excerpt(line)));
        continue;
      }
      if (r.step <= last_step) {
        if (r.step == 0) {
          m.restarts.push_back(n);
          m.steps.clear();
          m.epochs.clear();
          m.evals.clear();
        } else {
          resumes.push_back({n, r.step, r.epoch});
          m.steps.erase(m.steps.lower_bound(r.step), m.steps.end());
          m.epochs.erase(m.epochs.lower_bound(r.epoch), m.epochs.end());
          m.evals.erase(m.evals.lower_bound(r.epoch), m.evals.end());
        }
      }
      last_step = r.step;
      m.steps[r.step] = std::move(r);
    } else if (kind == io::EpochRecord::kind) {
      io::EpochRecord r;
      if (!io::from_json(j, r, problem)) {
        add_problem(m, n, fmt::format("{}: {}", problem, line_excerpt(line)));
        continue;
      }
      m.epochs[r.epoch] = std::move(r);
    } else if (kind == io::EvalRecord::kind) {
      io::EvalRecord r;
      io::from_json(j, r, problem);  // an evaluation.json's record has no epoch; these must
      if (!r.epoch) {
        add_problem(m, n, fmt::format("eval record without an integer \"epoch\": {}", line_excerpt(line)));
        continue;
      }
      if (!problem.empty()) add_problem(m, n, problem);
      m.evals[*r.epoch] = std::move(r);
    } else {
      ++m.unknown_kinds[kind];
    }
  }
  // Epochs are numbered from 1 everywhere (console, metrics, checkpoints); files of earlier versions
  // counted from 0 in metrics.jsonl, and are shown in today's numbering.
  const std::int64_t shift = zero_based ? 1 : 0;
  if (shift) {
    auto renumber = [&](auto& by_epoch) {
      std::decay_t<decltype(by_epoch)> out;
      for (auto& [e, r] : by_epoch) {
        r.epoch = e + shift;
        out.emplace(e + shift, std::move(r));
      }
      by_epoch = std::move(out);
    };
    renumber(m.epochs);
    renumber(m.evals);
    for (auto& [step, r] : m.steps) r.epoch += shift;
  }
  for (const auto& r : resumes)
    m.notes.push_back(
        fmt::format("metrics.jsonl:{}: resumed at step {} (epoch {}): the records from there on replace the "
                    "earlier ones.",
                    r.line, r.step, r.epoch + shift));
  return m;
}
JsonFile read_json_file(const fs::path& file) {
  JsonFile f;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return f;
  f.present = true;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    f.error = "cannot be opened";
    return f;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    // Comments allowed: pipeline files may carry them.
    f.value = json::parse(buffer.str(), nullptr, true, true);
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    f.error = "not valid JSON: " + shorten(what, 160);
  }
  return f;
}

std::vector<ProfileNode> parse_profile(const json& p, std::string& error) {
  std::vector<ProfileNode> nodes;
  auto it = p.find("nodes");
  if (!p.is_object() || it == p.end() || !it->is_array()) {
    error = "profile.json has no \"nodes\" array";
    return nodes;
  }
  std::size_t index = 0;
  for (const auto& n : *it) {
    ++index;
    if (!n.is_object()) continue;
    ProfileNode r;
    r.id = json_string(n, "id");
    if (r.id.empty()) r.id = fmt::format("#{}", index);
    r.type = json_string(n, "type");
    r.slots = json_number(n, "slots");
    r.items_in = json_number(n, "items_in");
    r.items_out = json_number(n, "items_out");
    r.skipped = json_number(n, "skipped");
    r.busy = json_number(n, "busy_seconds");
    r.busy_fraction = json_number(n, "busy_fraction");
    r.wait = json_number(n, "wait_input_seconds");
    r.blocked = json_number(n, "blocked_seconds");
    r.per_second = json_number(n, "items_per_second");
    r.peak_queue = json_number(n, "peak_queue");
    r.peak_in_flight = json_number(n, "peak_in_flight");
    if (auto sr = n.find("skip_reasons"); sr != n.end() && sr->is_array())
      for (const auto& v : *sr)
        r.skip_reasons.push_back(v.is_string() ? v.get<std::string>() : compact(v, 200));
    nodes.push_back(std::move(r));
  }
  return nodes;
}

std::string discover_classes_file(const fs::path& run_dir, const json& pipeline) {
  std::error_code ec;
  if (fs::is_regular_file(run_dir / "classes.txt", ec)) return (run_dir / "classes.txt").string();
  if (!pipeline.is_object()) return {};
  std::vector<std::string> lists;
  if (auto nodes = pipeline.find("nodes"); nodes != pipeline.end() && nodes->is_object())
    for (const auto& [id, node] : nodes->items())
      if (node.is_object())
        if (auto params = node.find("params"); params != node.end() && params->is_object())
          for (const char* key : {"val_list", "list"})
            if (auto v = params->find(key);
                v != params->end() && v->is_string() && !v->get<std::string>().empty())
              lists.push_back(v->get<std::string>());
  if (auto params = pipeline.find("params"); params != pipeline.end() && params->is_object())
    if (auto v = params->find("val_list"); v != params->end() && v->is_string())
      lists.insert(lists.begin(), v->get<std::string>());
  std::vector<fs::path> bases{fs::path()};
  for (fs::path p = fs::absolute(run_dir, ec); !p.empty() && bases.size() < 6; p = p.parent_path()) {
    bases.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (const auto& list : lists) {
    fs::path l(list);
    for (const auto& base : bases) {
      if (l.is_absolute() && !base.empty()) break;
      fs::path candidate = (base.empty() ? l : base / l).parent_path() / "classes.txt";
      if (fs::is_regular_file(candidate, ec)) return candidate.string();
    }
  }
  return {};
}

}  // namespace sefar::report

#include "report/report.h"

#include <filesystem>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/class_names.h"
#include "report/charts.h"
#include "report/run_files.h"
#include "report/svg.h"
#include "util/atomic_file.h"

namespace sefar::report {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kStyle = R"css(
:root{--fg:#1f2933;--muted:#5f6b7a;--line:#e3e6ea;--bg:#f5f6f8;--card:#fff;--accent:#4e79a7}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:960px;margin:0 auto;padding:24px 16px 48px}
header h1{font-size:24px;margin:0}
header p{margin:2px 0 0;color:var(--muted)}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 18px 16px;margin:16px 0}
h2{font-size:17px;margin:0 0 4px}
h3{font-size:14px;margin:14px 0 4px}
p.caption{color:var(--muted);font-size:12.5px;margin:4px 0 0}
p.missing{background:#fff8e6;border:1px solid #f3dfa7;color:#7a5b12;border-radius:6px;padding:8px 12px;margin:6px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px;margin-top:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 12px}
.card .k{color:var(--muted);font-size:12px}
.card .v{font-size:20px;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card .s{color:var(--muted);font-size:12px}
.scroll{overflow-x:auto}
svg{display:block;max-width:100%;height:auto;margin:8px 0 0}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;font-size:11px;fill:#4a5563}
svg text.title{font-size:12px;fill:#1f2933;font-weight:600}
svg text.small{font-size:10px;fill:#7b8794}
svg text.value{fill:#1f2933;font-weight:600}
svg text.hot{fill:#b35900;font-weight:700}
svg text.cell{font-weight:600;fill:#1b2a3a}
svg text.cell.inv{fill:#fff}
svg .grid{stroke:#edf0f3;stroke-width:1}
svg .axis{stroke:#9aa5b1;stroke-width:1}
svg .epoch{stroke:#c5ccd3;stroke-width:1;stroke-dasharray:2 3}
table{border-collapse:collapse;font-size:12.5px;margin-top:8px;width:100%}
th,td{padding:3px 6px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{color:var(--muted);font-weight:600;background:#fafbfc}
td.l,th.l{text-align:left}
tr.hot td{background:#fff4e8}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f7f8fa;border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;max-height:480px}
ul.problems{margin:6px 0;padding-left:20px;font-size:12.5px}
ul.problems li{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;word-break:break-all}
details summary{cursor:pointer;color:var(--accent);margin-top:8px}
.edges{columns:2;font-size:12.5px;margin:4px 0;padding-left:20px}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:24px}
)css";

std::string missing(std::string_view what) {
  return fmt::format("<p class=\"missing\">{}</p>\n", what);
}

void card(std::string& h, std::string_view key, std::string_view value, std::string_view sub = "") {
  fmt::format_to(
      std::back_inserter(h),
      "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\" title=\"{}\">{}</div>{}</div>\n",
      esc(key), esc(value), esc(value),
      sub.empty() ? std::string() : fmt::format("<div class=\"s\">{}</div>", esc(sub)));
}

// Everything the page is drawn from, read once.
struct Run {
  std::string dir;  // as given
  Metrics m;
  bool evaluation_run = false;  // evaluation.json instead of metrics.jsonl
  JsonFile profile_file, pipeline_file, record_file;
  std::vector<ProfileNode> nodes;
  std::string profile_error;
  std::size_t busiest = 0;  // nodes.size(): none
  std::vector<std::string> names;
  std::string names_source, names_problem;
  const io::EvalRecord* last_eval = nullptr;
  const io::EvalRecord* best_eval = nullptr;    // the best top-1
  const io::EvalRecord* matrix_eval = nullptr;  // the last with a confusion matrix

  Run() = default;
  Run(const Run&) = delete;  // the pointers point into m
  Run& operator=(const Run&) = delete;
  const json& pipeline() const { return pipeline_file.value; }
};

void read_run(const fs::path& dir, const ReportOptions& options, Run& r) {
  r.m = read_metrics(dir / "metrics.jsonl");
  // An evaluation run (eval.json, the classify node) leaves evaluation.json instead of metrics.
  const JsonFile evaluation_file = read_json_file(dir / "evaluation.json");
  r.evaluation_run = !r.m.present && evaluation_file.present && evaluation_file.value.is_object();
  if (r.evaluation_run) {
    io::EvalRecord e;
    std::string problem;  // a malformed matrix is left out
    io::from_json(evaluation_file.value, e, problem);
    e.epoch = 0;
    r.m.evals[0] = std::move(e);
  }
  r.profile_file = read_json_file(dir / "profile.json");
  r.pipeline_file = read_json_file(dir / "pipeline.json");
  r.record_file = read_json_file(dir / "run.json");

  // Class names.
  r.names = options.class_names;
  r.names_source = r.names.empty() ? "" : "given";
  if (r.names.empty()) {
    std::string file =
        options.classes_file.empty() ? discover_classes_file(dir, r.pipeline()) : options.classes_file;
    if (!file.empty()) {
      try {
        r.names = io::read_class_names(file);
        r.names_source = file;
      } catch (const std::exception& e) {
        r.names_problem = e.what();
      }
    }
  }

  r.profile_error = r.profile_file.error;
  if (r.profile_file.present && r.profile_error.empty())
    r.nodes = parse_profile(r.profile_file.value, r.profile_error);
  r.busiest = r.nodes.size();
  for (std::size_t i = 0; i < r.nodes.size(); ++i)
    if (finite(r.nodes[i].busy_fraction) &&
        (r.busiest == r.nodes.size() || r.nodes[i].busy_fraction > r.nodes[r.busiest].busy_fraction))
      r.busiest = i;

  const auto& evals = r.m.evals;
  r.last_eval = evals.empty() ? nullptr : &evals.rbegin()->second;
  for (const auto& [epoch, e] : evals)
    if (finite(e.top1) && (!r.best_eval || e.top1 > r.best_eval->top1)) r.best_eval = &e;
  for (auto it = evals.rbegin(); it != evals.rend(); ++it)
    if (!it->second.confusion.empty()) {
      r.matrix_eval = &it->second;
      break;
    }
}

// The epoch an evaluation followed (0 for an evaluation run's).
std::int64_t epoch_of(const io::EvalRecord& e) {
  return e.epoch.value_or(0);
}

double value(const std::optional<double>& v) {
  return v ? *v : kNaN;
}
double value(const std::optional<std::int64_t>& v) {
  return v ? double(*v) : kNaN;
}

// Who ran what, with which build (run.json).
void runs_section(std::string& h, const Run& r) {
  const JsonFile& record_file = r.record_file;
  if (record_file.present && record_file.value.is_object() && record_file.value.contains("invocations") &&
      record_file.value["invocations"].is_array()) {
    h += "<section id=\"runs\"><h2>Run records</h2>\n<table>\n<tr><th>start</th><th>end</th><th>exit "
         "status</th><th>build</th><th>command line</th></tr>\n";
    for (const auto& inv : record_file.value["invocations"]) {
      if (!inv.is_object()) continue;
      const json build = inv.value("build", json::object());
      const std::string status = inv.contains("exit_status") && inv["exit_status"].is_number()
                                     ? inv["exit_status"].dump()
                                     : "running (when this report was written)";
      h += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>sefar {} ({}), LibTorch {}, FFmpeg {}, oneTBB "
          "{}</td><td><code>{}"
          "</code></td></tr>\n",
          esc(json_string(inv, "start")), esc(json_string(inv, "end")), esc(status),
          esc(json_string(build, "sefar")), esc(json_string(build, "commit")),
          esc(json_string(build, "libtorch")), esc(json_string(build, "ffmpeg")),
          esc(json_string(build, "onetbb")), esc(json_string(inv, "command_line")));
    }
    h += "</table>\n</section>\n";
  }
}

void summary_section(std::string& h, const Run& r) {
  const Metrics& m = r.m;
  const auto* last_eval = r.last_eval;
  const auto* best_eval = r.best_eval;
  const JsonFile& profile_file = r.profile_file;
  const auto& nodes = r.nodes;
  const std::size_t busiest = r.busiest;
  const bool evaluation_run = r.evaluation_run;
  h += "<section id=\"summary\"><h2>Summary</h2>\n<div class=\"cards\">\n";
  if (!m.steps.empty()) {
    const auto& last = m.steps.rbegin()->second;
    card(h, "training steps", fmt::format("{}", m.steps.size()),
         fmt::format("last: step {}, epoch {}", last.step, last.epoch));
    auto g4 = [](double v) { return finite(v) ? fmt::format("{:.4g}", v) : std::string("\u2013"); };
    card(h, "last loss", g4(last.loss), fmt::format("supervised {}", g4(last.loss_sup)));
  }
  if (last_eval) {
    card(h, "top-1 (last)", pct(last_eval->top1),
         evaluation_run
             ? fmt::format("evaluation.json, {} clips", fixed(value(last_eval->clips), 0))
             : fmt::format("epoch {}, {} clips", epoch_of(*last_eval), fixed(value(last_eval->clips), 0)));
    card(h, "top-5 (last)", pct(last_eval->top5),
         fmt::format("mean class {}", pct(last_eval->mean_class_accuracy)));
    if (best_eval) card(h, "best top-1", pct(best_eval->top1), fmt::format("epoch {}", epoch_of(*best_eval)));
  }
  double train_seconds = 0;
  for (const auto& [epoch, e] : m.epochs)
    if (finite(value(e.seconds))) train_seconds += *e.seconds;
  if (profile_file.present && profile_file.value.is_object()) {
    double wall = json_number(profile_file.value, "wall_seconds");
    double threads = json_number(profile_file.value, "threads");
    card(h, "wall time", seconds_text(wall), finite(threads) ? fmt::format("{} threads", threads) : "");
  } else if (train_seconds > 0) {
    card(h, "training time", seconds_text(train_seconds), "sum of the epochs");
  }
  if (busiest < nodes.size())
    card(h, "busiest node", nodes[busiest].id, fmt::format("{} busy", pct(nodes[busiest].busy_fraction)));
  h += "</div>\n";
  if (evaluation_run)
    h += missing(
        "An evaluation run: its evaluation.json is shown (no metrics.jsonl: no training curves, no η).");
  else if (!m.present)
    h += missing("No metrics.jsonl in the run directory: no curves, no η, no confusion matrix.");
  if (!m.error.empty()) h += missing("metrics.jsonl " + m.error + ".");
  h += "</section>\n";
}

// Lines of metrics.jsonl skipped, restarts and resumes, unknown record kinds, class names not read.
void notes_section(std::string& h, const Run& r) {
  const Metrics& m = r.m;
  const std::string& names_problem = r.names_problem;
  if (m.problem_count > 0 || !m.notes.empty() || !m.restarts.empty() || !m.unknown_kinds.empty() ||
      !names_problem.empty()) {
    h += "<section id=\"problems\"><h2>Notes on the input</h2>\n";
    if (m.problem_count > 0) {
      h += fmt::format("<p>{} line(s) of metrics.jsonl were skipped:</p>\n<ul class=\"problems\">\n",
                       m.problem_count);
      for (const auto& p : m.problems) h += "<li>" + esc(p.where) + ": " + esc(p.what) + "</li>\n";
      if (m.problem_count > m.problems.size())
        h += fmt::format("<li>\u2026 and {} more</li>\n", m.problem_count - m.problems.size());
      h += "</ul>\n";
    }
    if (!m.restarts.empty()) {
      std::string lines;
      for (std::size_t i = 0; i < m.restarts.size() && i < 10; ++i)
        lines += (i ? ", " : "") + std::to_string(m.restarts[i]);
      if (m.restarts.size() > 10) lines += ", \u2026";
      h += "<p>" +
           esc(fmt::format(
               "metrics.jsonl holds {} runs: it is appended to, and the step counter starts again at 0 on "
               "line{} {}. The report shows the last run, from line {} on.",
               m.restarts.size() + 1, m.restarts.size() > 1 ? "s" : "", lines, m.restarts.back())) +
           "</p>\n";
    }
    if (!m.notes.empty()) {
      h += "<ul class=\"problems\">\n";
      for (std::size_t i = 0; i < m.notes.size() && i < kMaxProblems; ++i)
        h += "<li>" + esc(m.notes[i]) + "</li>\n";
      if (m.notes.size() > kMaxProblems)
        h += fmt::format("<li>\u2026 and {} more</li>\n", m.notes.size() - kMaxProblems);
      h += "</ul>\n";
    }
    for (const auto& [kind, count] : m.unknown_kinds)
      h += "<p class=\"caption\">" +
           esc(fmt::format("{} record(s) of kind \"{}\" ignored.", count, shorten(kind, 40))) + "</p>\n";
    if (!names_problem.empty())
      h += "<p class=\"caption\">" + esc(names_problem) + "; classes are shown by number.</p>\n";
    h += "</section>\n";
  }
}

void loss_section(std::string& h, const Metrics& m, SvgIds& ids) {
  h += "<section id=\"loss\"><h2>Loss</h2>\n";
  if (!m.present) {
    h += missing("No metrics.jsonl: no loss curves.");
  } else if (m.steps.empty()) {
    h += missing("metrics.jsonl has no step records.");
  } else {
    LossView v = loss_chart(m, ids);
    if (v.svg.empty())
      h += missing("The step records carry no finite loss values.");
    else
      h += "<div class=\"scroll\">" + v.svg + "</div><p class=\"caption\">" + esc(v.caption) + "</p>\n";
  }
  h += "</section>\n";
}

void training_section(std::string& h, const Metrics& m, SvgIds& ids) {
  if (const std::string training = training_charts(m, ids); !training.empty())
    h += "<section id=\"training\"><h2>Throughput and gradient norm</h2>\n<div class=\"scroll\">" + training +
         "</div><p class=\"caption\">Clips (labeled and unlabeled) per second of each step's wall time, "
         "evaluations and checkpoints left out; the gradient norm of every step before clipping.</p>\n"
         "</section>\n";
}

void accuracy_section(std::string& h, const Run& r) {
  const Metrics& m = r.m;
  h += "<section id=\"accuracy\"><h2>Validation accuracy</h2>\n";
  if (!m.present) {
    h += missing("No metrics.jsonl: no accuracy curves.");
  } else if (m.evals.empty()) {
    h += missing("metrics.jsonl has no eval records (was a validation list given?).");
  } else {
    h += "<div class=\"scroll\">" + accuracy_chart(m) + "</div>\n";
    const bool fold = m.evals.size() > 6;
    if (fold) h += fmt::format("<details><summary>the {} evaluations as a table</summary>\n", m.evals.size());
    h += "<table><tr><th>epoch</th><th>step</th><th>clips</th><th>top-1</th><th>top-5</th><th>mean "
         "class</th><th>seconds</th></tr>\n";
    for (auto it = m.evals.rbegin(); it != m.evals.rend(); ++it) {
      const auto& e = it->second;
      h += fmt::format(
          "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
          &e == r.best_eval ? " class=\"hot\"" : "", epoch_of(e), fixed(value(e.step), 0),
          fixed(value(e.clips), 0), pct(e.top1), pct(e.top5), pct(e.mean_class_accuracy),
          fixed(value(e.seconds), 1));
    }
    h += "</table>\n";
    if (r.best_eval) h += "<p class=\"caption\">Latest first; the best top-1 is highlighted.</p>\n";
    if (fold) h += "</details>\n";
  }
  h += "</section>\n";
}

// Eta per epoch, with the learning-rate and xi schedules.
void eta_section(std::string& h, const Metrics& m) {
  h += "<section id=\"eta\"><h2>Regulation weight \u03b7 per epoch</h2>\n";
  if (!m.present) {
    h += missing("No metrics.jsonl: no \u03b7 statistics.");
  } else {
    std::vector<EtaEpoch> eta = eta_by_epoch(m);
    if (eta.empty()) {
      h += missing("No semi-supervised steps yet (warm-up only, or a supervised run): no \u03b7 statistics.");
    } else {
      bool any_hist = false, any_box = false;
      h += "<div class=\"scroll\">" + eta_chart(eta, any_hist, any_box) + "</div>\n<p class=\"caption\">";
      if (any_hist)
        h += "Histograms: the \u03b7 of every unlabeled clip of the epoch (<code>eta_hist</code>). ";
      if (any_box)
        h += "Boxes: the per-step batch means of \u03b7 (quartiles and median; whiskers: smallest and "
             "largest). ";
      h += "Diamonds: the share of unlabeled clips with \u03b7 above 0.5; circles: the epoch's mean "
           "\u03b7.</p>\n";
      if (eta.size() > 12)
        h += fmt::format("<details><summary>the {} epochs as a table</summary>\n", eta.size());
      h += "<table><tr><th>epoch</th><th>semi steps</th><th>mean \u03b7</th><th>\u03b7 &gt; 0.5</th>"
           "<th>pseudo-label accuracy</th><th>seconds</th></tr>\n";
      for (const auto& e : eta) {
        auto ep = m.epochs.find(e.epoch);
        h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                         e.epoch, e.steps, fixed(e.mean, 3), pct(e.above_half), pct(e.pseudo_accuracy),
                         ep != m.epochs.end() ? fixed(value(ep->second.seconds), 1) : "\u2013");
      }
      h += "</table>\n";
      if (eta.size() > 12) h += "</details>\n";
    }
    if (!m.steps.empty()) {
      std::string sched = schedule_charts(m);
      if (!sched.empty()) h += "<h3>Schedule</h3><div class=\"scroll\">" + sched + "</div>\n";
    }
  }
  h += "</section>\n";
}

void profile_section(std::string& h, const Run& r) {
  const JsonFile& profile_file = r.profile_file;
  const std::string& profile_error = r.profile_error;
  const auto& nodes = r.nodes;
  const std::size_t busiest = r.busiest;
  h += "<section id=\"profile\"><h2>Per-node profile</h2>\n";
  if (!profile_file.present) {
    h += missing("No profile.json in the run directory.");
  } else if (!profile_error.empty()) {
    h += missing("profile.json: " + esc(profile_error) + ".");
  } else if (nodes.empty()) {
    h += missing("profile.json lists no nodes.");
  } else {
    h += "<div class=\"scroll\">" + profile_chart(nodes, busiest) + "</div>\n";
    h += "<p class=\"caption\">Busy share: the node's busy time over its slots \u00d7 the wall time";
    if (busiest < nodes.size())
      h += "; the busiest node (" + esc(nodes[busiest].id) + ") in orange bounds the run";
    h +=
        ". Busy and waiting are summed over the node's slots (together: slots \u00d7 wall time); waiting for "
        "input means a slot was idle because upstream was slower. Blocked: a source waited for in-flight "
        "budget "
        "(downstream capacity).</p>\n";
    h += "<div class=\"scroll\"><table><tr><th class=\"l\">node</th><th "
         "class=\"l\">type</th><th>slots</th><th>in</th>"
         "<th>out</th><th>skipped</th><th>busy s</th><th>busy</th><th>wait s</th><th>blocked "
         "s</th><th>items/s</th>"
         "<th title=\"peak queue\">queue</th><th title=\"peak items in flight\">in flight</th></tr>\n";
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      const auto& n = nodes[i];
      h += fmt::format(
          "<tr{}><td class=\"l\">{}</td><td "
          "class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
          "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
          i == busiest ? " class=\"hot\"" : "", esc(n.id), esc(n.type), fixed(n.slots, 0),
          fixed(n.items_in, 0), fixed(n.items_out, 0), fixed(n.skipped, 0), fixed(n.busy, 2),
          pct(n.busy_fraction), fixed(n.wait, 2), fixed(n.blocked, 2), fixed(n.per_second, 1),
          fixed(n.peak_queue, 0), fixed(n.peak_in_flight, 0));
    }
    h += "</table></div>\n";
    bool any_reasons = false;
    for (const auto& n : nodes) any_reasons = any_reasons || !n.skip_reasons.empty();
    if (any_reasons) {
      h += "<h3>Skipped items</h3><ul class=\"problems\">\n";
      for (const auto& n : nodes)
        for (std::size_t k = 0; k < n.skip_reasons.size() && k < 10; ++k)
          h += "<li>" + esc(n.id) + ": " + esc(shorten(n.skip_reasons[k], 300)) + "</li>\n";
      h += "</ul>\n";
    }
  }
  h += "</section>\n";
}

void confusion_section(std::string& h, const Run& r, SvgIds& ids) {
  const Metrics& m = r.m;
  const auto* matrix_eval = r.matrix_eval;
  h += "<section id=\"confusion\"><h2>Confusion matrix</h2>\n";
  if (!m.present) {
    h += missing("No metrics.jsonl: no confusion matrix.");
  } else if (!matrix_eval) {
    h += missing(m.evals.empty() ? "No eval records in metrics.jsonl: no confusion matrix."
                                 : "The eval records carry no confusion matrix.");
  } else {
    const std::size_t n = matrix_eval->confusion.size();
    h += fmt::format(
        "<p class=\"caption\">Evaluation after epoch {} (step {}, {} clips, top-1 {}). Rows: the true class, "
        "coloured by the share of its clips predicted as each class{}.{}</p>\n",
        epoch_of(*matrix_eval), fixed(value(matrix_eval->step), 0), fixed(value(matrix_eval->clips), 0),
        pct(matrix_eval->top1), n <= 30 ? ", with the counts; the diagonal is outlined" : "",
        r.names_source.empty()      ? ""
        : r.names_source == "given" ? ""
                                    : esc(fmt::format(" Class names from {}.", r.names_source)));
    h += "<div class=\"scroll\">" + confusion_chart(*matrix_eval, r.names) + "</div>\n" + colour_scale(ids);
  }
  h += "</section>\n";
}

void pipeline_section(std::string& h, const Run& r) {
  const JsonFile& pipeline_file = r.pipeline_file;
  const json& pipeline = r.pipeline();
  h += "<section id=\"pipeline\"><h2>Pipeline</h2>\n";
  if (!pipeline_file.present) {
    h += missing("No pipeline.json in the run directory.");
  } else if (!pipeline_file.error.empty()) {
    h += missing("pipeline.json: " + esc(pipeline_file.error) + ".");
  } else if (!pipeline.is_object()) {
    h += missing("pipeline.json is not a JSON object.");
  } else {
    if (auto rt = pipeline.find("runtime"); rt != pipeline.end() && rt->is_object() && !rt->empty()) {
      h += "<p>runtime: ";
      bool first = true;
      for (const auto& [k, v] : rt->items()) {
        h += (first ? "" : " \u00b7 ") + esc(k) + " <code>" + esc(compact(v, 80)) + "</code>";
        first = false;
      }
      h += "</p>\n";
    }
    if (auto params = pipeline.find("params");
        params != pipeline.end() && params->is_object() && !params->empty()) {
      h += "<h3>Parameters</h3><div class=\"scroll\"><table><tr><th class=\"l\">name</th><th "
           "class=\"l\">value</th></tr>\n";
      for (const auto& [k, v] : params->items())
        h += "<tr><td class=\"l\">" + esc(k) + "</td><td class=\"l\"><code>" + esc(compact(v, 120)) +
             "</code></td></tr>\n";
      h += "</table></div>\n";
    }
    if (auto pn = pipeline.find("nodes"); pn != pipeline.end() && pn->is_object()) {
      h += "<h3>Nodes</h3><div class=\"scroll\"><table><tr><th class=\"l\">node</th><th class=\"l\">type</th>"
           "<th>concurrency</th><th class=\"l\">parameters</th></tr>\n";
      for (const auto& [id, node] : pn->items()) {
        std::string type = node.is_object() ? json_string(node, "type") : "";
        std::string conc = "\u2013";
        if (node.is_object())
          if (auto c = node.find("concurrency"); c != node.end())
            conc = c->is_string() ? c->get<std::string>() : compact(*c, 20);
        std::string params = node.is_object() && node.contains("params") ? compact(node["params"], 110) : "";
        h += "<tr><td class=\"l\">" + esc(id) + "</td><td class=\"l\">" + esc(type) + "</td><td>" +
             esc(conc) + "</td><td class=\"l\"><code>" + esc(params) + "</code></td></tr>\n";
      }
      h += "</table></div>\n";
    }
    if (auto edges = pipeline.find("edges");
        edges != pipeline.end() && edges->is_array() && !edges->empty()) {
      h += "<h3>Edges</h3><ul class=\"edges\">\n";
      for (const auto& e : *edges)
        h += "<li><code>" + esc(e.is_string() ? e.get<std::string>() : compact(e, 120)) + "</code></li>\n";
      h += "</ul>\n";
    }
    h += "<details><summary>pipeline.json</summary><pre>" +
         esc(pipeline.dump(2, ' ', false, json::error_handler_t::replace)) + "</pre></details>\n";
  }
  h += "</section>\n";
}

void page_head(std::string& h, const Run& r, const std::string& title) {
  const json& pipeline = r.pipeline();
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>" + esc(title) + " \u2014 sefar run report</title>\n<style>" + kStyle +
       "</style>\n</head>\n<body>\n<main>\n";
  h += "<header><h1>" + esc(title) + "</h1><p>sefar run report \u00b7 <code>" + esc(r.dir) + "</code>";
  if (pipeline.is_object() && !json_string(pipeline, "description").empty())
    h += "</p><p>" + esc(json_string(pipeline, "description"));
  h += "</p></header>\n";
}

}  // namespace

std::string render_report(const std::string& run_dir, const ReportOptions& options) {
  std::error_code ec;
  const fs::path dir(run_dir);
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(fmt::format("'{}' is not a directory", run_dir));
  Run r;
  r.dir = run_dir;
  read_run(dir, options, r);

  std::string title = options.title;
  if (title.empty() && r.pipeline().is_object()) title = json_string(r.pipeline(), "name");
  if (title.empty()) title = fs::absolute(dir, ec).filename().string();
  if (title.empty() || title == ".") title = run_dir;

  SvgIds ids;  // this page's element ids
  std::string h;
  h.reserve(1 << 16);
  page_head(h, r, title);
  runs_section(h, r);
  summary_section(h, r);
  notes_section(h, r);
  loss_section(h, r.m, ids);
  training_section(h, r.m, ids);
  accuracy_section(h, r);
  eta_section(h, r.m);
  profile_section(h, r);
  confusion_section(h, r, ids);
  pipeline_section(h, r);
  h += "<footer>Written by sefar from metrics.jsonl, profile.json and pipeline.json. Self-contained: no "
       "scripts, "
       "nothing loaded from the network.</footer>\n</main>\n</body>\n</html>\n";
  return h;
}

void write_report(const std::string& run_dir, const ReportOptions& options) {
  const std::string html = render_report(run_dir, options);
  util::write_file_atomic((fs::path(run_dir) / "report.html").string(), html);
}

}  // namespace sefar::report

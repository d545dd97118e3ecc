#include "io/report.h"
#include "util/atomic_file.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sefar::io {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::size_t kMaxProblems = 25;  // malformed lines listed in full
constexpr std::size_t kMaxPoints = 1200;  // polyline points per series before decimation

// Palette (Tableau 10), readable on white and for most colour-vision deficiencies.
constexpr const char* kBlue = "#4e79a7";
constexpr const char* kOrange = "#f28e2b";
constexpr const char* kRed = "#e15759";
constexpr const char* kTeal = "#76b7b2";
constexpr const char* kGreen = "#59a14f";
constexpr const char* kPurple = "#b07aa1";
constexpr const char* kGrey = "#9c9c9c";
constexpr const char* kDark = "#2f3b4c";

// ---------------------------------------------------------------------------------------------
// Text helpers

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Cuts s to at most n characters (bytes; a UTF-8 sequence is not split), adding an ellipsis.
std::string shorten(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  std::size_t cut = n > 1 ? n - 1 : n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "\u2026";
}

bool finite(double v) {
  return std::isfinite(v);
}

// Coordinates in SVG.
std::string px(double v) {
  return fmt::format("{:.1f}", v);
}

// A value for tables and captions: "–" when missing, otherwise `digits` significant-ish decimals.
std::string fixed(double v, int decimals) {
  if (!finite(v)) return "\u2013";
  return fmt::format("{:.{}f}", v, decimals);
}
std::string pct(double v, int decimals = 1) {
  if (!finite(v)) return "\u2013";
  return fmt::format("{:.{}f}%", 100 * v, decimals);
}
std::string seconds_text(double s) {
  if (!finite(s)) return "\u2013";
  if (s < 1) return fmt::format("{:.0f} ms", 1000 * s);
  if (s < 120) return fmt::format("{:.1f} s", s);
  if (s < 7200) return fmt::format("{:.0f} min {:02.0f} s", std::floor(s / 60), std::fmod(s, 60));
  return fmt::format("{:.0f} h {:02.0f} min", std::floor(s / 3600), std::fmod(std::floor(s / 60), 60));
}

// Width of a label in 11 px sans-serif, roughly.
double text_width(std::string_view s, double font = 11) {
  std::size_t chars = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  return double(chars) * font * 0.58;
}

double number(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return kNaN;
  return it->get<double>();
}

std::optional<std::int64_t> integer(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  if (it->is_number_integer()) return it->get<std::int64_t>();
  double v = it->get<double>();
  if (!finite(v) || v != std::floor(v) || std::fabs(v) > 9e15) return std::nullopt;
  return std::int64_t(v);
}

std::optional<std::vector<double>> number_array(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_array()) return std::nullopt;
  std::vector<double> out;
  for (const auto& v : *it) {
    if (!v.is_number()) return std::nullopt;
    out.push_back(v.get<double>());
  }
  return out;
}

std::string string_field(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::string compact(const json& j, std::size_t limit) {
  return shorten(j.dump(-1, ' ', false, json::error_handler_t::replace), limit);
}

// ---------------------------------------------------------------------------------------------
// Reading the run directory

struct Problem {
  std::string where;  // "metrics.jsonl:17"
  std::string what;
};

struct StepRec {
  std::int64_t step = 0, epoch = 0;
  double lr = kNaN, xi = kNaN, loss = kNaN, loss_sup = kNaN, loss_un = kNaN, loss_mix = kNaN;
  bool semi = false;
  double eta_mean = kNaN, eta_above_half = kNaN, pseudo_accuracy = kNaN, unlabeled = kNaN;
  double grad_norm = kNaN, seconds = kNaN, clips = kNaN;  // clips: labeled + unlabeled
  std::vector<double> eta_hist;
};

struct EpochRec {
  std::int64_t epoch = 0;
  double steps = kNaN, seconds = kNaN, eta_mean = kNaN, eta_above_half = kNaN;
  std::vector<double> eta_hist;
};

struct EvalRec {
  std::int64_t epoch = 0;
  double step = kNaN, clips = kNaN, top1 = kNaN, top5 = kNaN, mean_class = kNaN, seconds = kNaN;
  std::vector<double> per_class;
  std::vector<std::vector<double>> confusion;  // empty when absent or not square
};

struct Metrics {
  bool present = false;
  std::string error;  // the file exists but could not be read
  std::size_t lines = 0;
  std::map<std::int64_t, StepRec> steps;
  std::map<std::int64_t, EpochRec> epochs;
  std::map<std::int64_t, EvalRec> evals;
  std::vector<Problem> problems;
  std::size_t problem_count = 0;
  std::vector<std::string> notes;     // resumes
  std::vector<std::size_t> restarts;  // lines where the step counter starts again at 0
  std::map<std::string, std::size_t> unknown_kinds;
};

void add_problem(Metrics& m, std::size_t line, std::string what) {
  ++m.problem_count;
  if (m.problems.size() < kMaxProblems)
    m.problems.push_back({fmt::format("metrics.jsonl:{}", line), std::move(what)});
}

std::string line_excerpt(std::string_view line) {
  return "'" + shorten(line, 90) + "'";
}

// An evaluation's results (an "eval" record of metrics.jsonl, or an evaluation run's evaluation.json,
// which has the same fields). `confusion_ok` is false when a "confusion" is there but not a square
// matrix of numbers (it is left out).
EvalRec parse_eval(const json& j, std::int64_t epoch, bool& confusion_ok) {
  EvalRec r;
  r.epoch = epoch;
  r.step = number(j, "step");
  r.clips = number(j, "clips");
  r.top1 = number(j, "top1");
  r.top5 = number(j, "top5");
  r.mean_class = number(j, "mean_class_accuracy");
  r.seconds = number(j, "seconds");
  if (auto pc = number_array(j, "per_class_accuracy")) r.per_class = std::move(*pc);
  confusion_ok = true;
  if (auto c = j.find("confusion"); c != j.end()) {
    bool ok = c->is_array();
    std::vector<std::vector<double>> rows;
    if (ok) {
      for (const auto& row : *c) {
        if (!row.is_array() || row.size() != c->size()) {
          ok = false;
          break;
        }
        std::vector<double> values;
        for (const auto& v : row) {
          if (!v.is_number()) {
            ok = false;
            break;
          }
          values.push_back(v.get<double>());
        }
        if (!ok) break;
        rows.push_back(std::move(values));
      }
    }
    if (ok)
      r.confusion = std::move(rows);
    else
      confusion_ok = false;
  }
  return r;
}

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
    const std::string kind = string_field(j, "kind");
    if (kind.empty()) {
      add_problem(m, n, fmt::format("no \"kind\": {}", line_excerpt(line)));
      continue;
    }
    auto epoch = integer(j, "epoch");
    if (epoch && *epoch == 0) zero_based = true;
    if (kind == "step") {
      auto step = integer(j, "step");
      if (!step || !epoch) {
        add_problem(m, n,
                    fmt::format("step record without an integer \"{}\": {}", step ? "epoch" : "step",
                                line_excerpt(line)));
        continue;
      }
      if (*step <= last_step) {
        if (*step == 0) {
          m.restarts.push_back(n);
          m.steps.clear();
          m.epochs.clear();
          m.evals.clear();
        } else {
          resumes.push_back({n, *step, *epoch});
          m.steps.erase(m.steps.lower_bound(*step), m.steps.end());
          m.epochs.erase(m.epochs.lower_bound(*epoch), m.epochs.end());
          m.evals.erase(m.evals.lower_bound(*epoch), m.evals.end());
        }
      }
      last_step = *step;
      StepRec r;
      r.step = *step;
      r.epoch = *epoch;
      r.lr = number(j, "lr");
      r.xi = number(j, "xi");
      r.loss = number(j, "loss");
      r.loss_sup = number(j, "loss_sup");
      r.loss_un = number(j, "loss_un");
      r.loss_mix = number(j, "loss_mix");
      auto semi = j.find("semi");
      r.semi = semi != j.end() && semi->is_boolean() ? semi->get<bool>() : finite(number(j, "eta_mean"));
      r.eta_mean = number(j, "eta_mean");
      r.eta_above_half = number(j, "eta_above_half");
      r.pseudo_accuracy = number(j, "pseudo_accuracy");
      r.unlabeled = number(j, "unlabeled");
      r.grad_norm = number(j, "grad_norm");
      r.seconds = number(j, "seconds");
      r.clips = number(j, "labeled") + (finite(r.unlabeled) ? r.unlabeled : 0);
      if (auto h = number_array(j, "eta_hist")) r.eta_hist = std::move(*h);
      m.steps[r.step] = std::move(r);
    } else if (kind == "epoch") {
      if (!epoch) {
        add_problem(m, n, fmt::format("epoch record without an integer \"epoch\": {}", line_excerpt(line)));
        continue;
      }
      EpochRec r;
      r.epoch = *epoch;
      r.steps = number(j, "steps");
      r.seconds = number(j, "seconds");
      r.eta_mean = number(j, "eta_mean");
      r.eta_above_half = number(j, "eta_above_half");
      if (auto h = number_array(j, "eta_hist")) r.eta_hist = std::move(*h);
      m.epochs[r.epoch] = std::move(r);
    } else if (kind == "eval") {
      if (!epoch) {
        add_problem(m, n, fmt::format("eval record without an integer \"epoch\": {}", line_excerpt(line)));
        continue;
      }
      bool confusion_ok = true;
      EvalRec r = parse_eval(j, *epoch, confusion_ok);
      if (!confusion_ok)
        add_problem(m, n, "eval record: \"confusion\" is not a square matrix of numbers (matrix skipped)");
      m.evals[r.epoch] = std::move(r);
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
    m.notes.push_back(fmt::format(
        "metrics.jsonl:{}: resumed at step {} (epoch {}): the records from there on replace the earlier ones.",
        r.line, r.step, r.epoch + shift));
  return m;
}

struct JsonFile {
  bool present = false;
  std::string error;
  json value;
};

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

// ---------------------------------------------------------------------------------------------
// Charts

struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
  int decimals = 0;
};

// "Nice" ticks (1, 2, 5 x 10^k) covering [lo, hi]; `integer` keeps the step at least 1.
Ticks nice_ticks(double lo, double hi, int target, bool integer = false, bool expand = true) {
  if (!finite(lo) || !finite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12) {
    double pad = std::max(std::fabs(lo) * 0.1, integer ? 1.0 : 0.5);
    lo -= pad;
    hi += pad;
    if (lo < 0 && lo + pad >= 0) lo = 0;
  }
  double rough = (hi - lo) / std::max(1, target);
  double mag = std::pow(10.0, std::floor(std::log10(rough)));
  double norm = rough / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (integer) step = std::max(1.0, std::round(step));
  Ticks t;
  t.step = step;
  t.lo = expand ? std::floor(lo / step + 1e-9) * step : lo;
  t.hi = expand ? std::ceil(hi / step - 1e-9) * step : hi;
  if (t.hi <= t.lo) t.hi = t.lo + step;
  double first = std::ceil(t.lo / step - 1e-9) * step;
  for (double v = first; v <= t.hi + step * 1e-6; v += step)
    t.values.push_back(std::fabs(v) < step * 1e-9 ? 0 : v);
  t.decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
  return t;
}

std::string tick_label(double v, const Ticks& t, bool percent = false) {
  if (percent) {
    int d = std::max(0, int(-std::floor(std::log10(t.step * 100) + 1e-9)));
    return fmt::format("{:.{}f}%", v * 100, d);
  }
  if (std::fabs(v) >= 10000 && t.step >= 1000) {
    double k = v / 1000;
    int d = std::max(0, int(-std::floor(std::log10(t.step / 1000) + 1e-9)));
    return fmt::format("{:.{}f}k", k, d);
  }
  return fmt::format("{:.{}f}", v, t.decimals);
}

struct Frame {
  double left = 0, top = 0, width = 1, height = 1;
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  double x(double v) const { return left + (v - x_lo) / (x_hi - x_lo) * width; }
  double y(double v) const { return top + height - (v - y_lo) / (y_hi - y_lo) * height; }
};

thread_local int g_next_id = 0;  // only for ids unique within one document; render_report resets it
std::string next_id(const char* prefix) {
  return fmt::format("{}{}", prefix, ++g_next_id);
}

std::string svg_open(double w, double h, std::string_view label) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" "
      "role=\"img\" "
      "aria-label=\"{}\">\n",
      px(w), px(h), px(w), px(h), esc(label));
}

void text(std::string& s, double x, double y, std::string_view content, std::string_view attrs = "") {
  fmt::format_to(std::back_inserter(s), "<text x=\"{}\" y=\"{}\"{}{}>{}</text>\n", px(x), px(y),
                 attrs.empty() ? "" : " ", attrs, esc(content));
}

// Horizontal grid lines with y labels, x tick marks with labels, the axis lines and axis titles.
void draw_axes(std::string& s, const Frame& f, const Ticks& xt, const Ticks& yt, std::string_view x_title,
               std::string_view y_title, bool y_percent = false, bool x_labels = true) {
  for (double v : yt.values) {
    double y = f.y(v);
    fmt::format_to(std::back_inserter(s), "<line class=\"grid\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
                   px(f.left), px(y), px(f.left + f.width), px(y));
    text(s, f.left - 6, y + 3.5, tick_label(v, yt, y_percent), "text-anchor=\"end\"");
  }
  double base = f.top + f.height;
  if (x_labels) {
    for (double v : xt.values) {
      double x = f.x(v);
      fmt::format_to(std::back_inserter(s),
                     "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n", px(x), px(base),
                     px(x), px(base + 4));
      text(s, x, base + 15, tick_label(v, xt), "text-anchor=\"middle\"");
    }
  }
  fmt::format_to(std::back_inserter(s), "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
                 px(f.left), px(base), px(f.left + f.width), px(base));
  fmt::format_to(std::back_inserter(s), "<line class=\"axis\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n",
                 px(f.left), px(f.top), px(f.left), px(base));
  if (!x_title.empty())
    text(s, f.left + f.width / 2, base + 32, x_title, "class=\"title\" text-anchor=\"middle\"");
  if (!y_title.empty()) {
    // Clear of the widest tick label (ending 6 px left of the axis), whatever the labels' length.
    double widest = 0;
    for (double v : yt.values) widest = std::max(widest, text_width(tick_label(v, yt, y_percent)));
    const double x = std::max(8.0, std::min(f.left - 44, f.left - 6 - widest - 10));
    fmt::format_to(
        std::back_inserter(s),
        "<text class=\"title\" transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        px(x), px(f.top + f.height / 2), esc(y_title));
  }
}

struct LegendItem {
  std::string label;
  std::string color;
  std::string shape = "line";  // line, dashed, dot, box, diamond, band
};

// A row of legend entries starting at (x, y); wraps to `max_width`.
void draw_legend(std::string& s, double x, double y, const std::vector<LegendItem>& items, double max_width) {
  double cx = x, cy = y;
  for (const auto& it : items) {
    double w = 26 + text_width(it.label) + 16;
    if (cx > x && cx + w > x + max_width) {
      cx = x;
      cy += 16;
    }
    if (it.shape == "line" || it.shape == "dashed") {
      fmt::format_to(std::back_inserter(s),
                     "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2.2\"{}/>\n",
                     px(cx), px(cy - 4), px(cx + 20), px(cy - 4), it.color,
                     it.shape == "dashed" ? " stroke-dasharray=\"4 3\"" : "");
    } else if (it.shape == "dot") {
      fmt::format_to(
          std::back_inserter(s),
          "<circle cx=\"{}\" cy=\"{}\" r=\"3.5\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"1.6\"/>\n",
          px(cx + 10), px(cy - 4), it.color);
    } else if (it.shape == "diamond") {
      fmt::format_to(std::back_inserter(s),
                     "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"1.5\"/>"
                     "<path d=\"M{} {}l4 4l-4 4l-4 -4z\" fill=\"{}\"/>\n",
                     px(cx), px(cy - 4), px(cx + 20), px(cy - 4), it.color, px(cx + 10), px(cy - 8),
                     it.color);
    } else {  // box, band
      fmt::format_to(std::back_inserter(s),
                     "<rect x=\"{}\" y=\"{}\" width=\"20\" height=\"9\" fill=\"{}\" fill-opacity=\"{}\" "
                     "stroke=\"{}\"/>\n",
                     px(cx), px(cy - 8.5), it.color, it.shape == "band" ? "0.15" : "0.35",
                     it.shape == "band" ? "none" : it.color);
    }
    text(s, cx + 25, cy, it.label);
    cx += w;
  }
}

double legend_height(const std::vector<LegendItem>& items, double max_width) {
  double cx = 0, rows = 1;
  for (const auto& it : items) {
    double w = 26 + text_width(it.label) + 16;
    if (cx > 0 && cx + w > max_width) {
      cx = 0;
      ++rows;
    }
    cx += w;
  }
  return rows * 16;
}

using Points = std::vector<std::pair<double, double>>;

// At most kMaxPoints points: bucket means (NaN gaps kept as gaps).
Points decimate_mean(const Points& p) {
  if (p.size() <= kMaxPoints) return p;
  Points out;
  const std::size_t per = (p.size() + kMaxPoints - 1) / kMaxPoints;
  for (std::size_t i = 0; i < p.size(); i += per) {
    double sx = 0, sy = 0;
    int n = 0;
    bool gap = false;
    for (std::size_t k = i; k < std::min(p.size(), i + per); ++k) {
      if (!finite(p[k].second)) {
        gap = true;
        continue;
      }
      sx += p[k].first;
      sy += p[k].second;
      ++n;
    }
    if (n > 0) out.emplace_back(sx / n, sy / n);
    if (gap) out.emplace_back(p[std::min(p.size() - 1, i + per - 1)].first, kNaN);
  }
  return out;
}

// At most 2 * kMaxPoints points: per bucket the minimum and the maximum, in their order (the outline
// a dense raw curve draws anyway).
Points decimate_envelope(const Points& p) {
  if (p.size() <= kMaxPoints) return p;
  Points out;
  const std::size_t per = (p.size() + kMaxPoints - 1) / kMaxPoints;
  for (std::size_t i = 0; i < p.size(); i += per) {
    std::size_t lo = p.size(), hi = p.size();
    bool gap = false;
    for (std::size_t k = i; k < std::min(p.size(), i + per); ++k) {
      if (!finite(p[k].second)) {
        gap = true;
        continue;
      }
      if (lo == p.size() || p[k].second < p[lo].second) lo = k;
      if (hi == p.size() || p[k].second > p[hi].second) hi = k;
    }
    if (lo != p.size()) {
      out.push_back(p[std::min(lo, hi)]);
      if (lo != hi) out.push_back(p[std::max(lo, hi)]);
    }
    if (gap) out.emplace_back(p[std::min(p.size() - 1, i + per - 1)].first, kNaN);
  }
  return out;
}

double median(std::vector<double>& v) {
  if (v.empty()) return kNaN;
  auto mid = v.begin() + long(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  double m = *mid;
  if (v.size() % 2 == 0) m = (m + *std::max_element(v.begin(), mid)) / 2;
  return m;
}

// A robust trend: bucket medians down to at most kMaxPoints points, then a centred running median over
// about a fortieth of them (at least 5). NaN gaps stay gaps. `span` receives the window in input points.
Points trend(const Points& p, std::size_t* span = nullptr) {
  Points b;
  const std::size_t per = p.size() > kMaxPoints ? (p.size() + kMaxPoints - 1) / kMaxPoints : 1;
  std::vector<double> ys;
  for (std::size_t i = 0; i < p.size(); i += per) {
    ys.clear();
    double sx = 0;
    std::size_t end = std::min(p.size(), i + per);
    for (std::size_t k = i; k < end; ++k) {
      sx += p[k].first;
      if (finite(p[k].second)) ys.push_back(p[k].second);
    }
    b.emplace_back(sx / double(end - i), median(ys));
  }
  const std::size_t window = std::max<std::size_t>(5, b.size() / 40) | 1, half = window / 2;
  if (span) *span = window * per;
  Points out = b;
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (!finite(b[i].second)) continue;
    ys.clear();
    for (std::size_t k = i >= half ? i - half : 0; k < std::min(b.size(), i + half + 1); ++k)
      if (finite(b[k].second)) ys.push_back(b[k].second);
    out[i].second = median(ys);
  }
  return out;
}

// Polylines through the finite points, broken at NaN gaps; optional markers.
void draw_series(std::string& s, const Frame& f, const Points& points, std::string_view color, double width,
                 double opacity = 1, bool dashed = false, bool markers = false, std::string_view clip = "") {
  std::string d;
  auto flush = [&] {
    if (d.empty()) return;
    fmt::format_to(
        std::back_inserter(s),
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" stroke-linejoin=\"round\" "
        "stroke-linecap=\"round\"{}{}{}/>\n",
        d, color, width, opacity < 1 ? fmt::format(" stroke-opacity=\"{}\"", opacity) : "",
        dashed ? " stroke-dasharray=\"5 3\"" : "",
        clip.empty() ? "" : fmt::format(" clip-path=\"url(#{})\"", clip));
    d.clear();
  };
  for (const auto& [x, y] : points) {
    if (!finite(y) || !finite(x)) {
      flush();
      continue;
    }
    if (!d.empty()) d += ' ';
    d += px(f.x(x)) + "," + px(f.y(y));
  }
  flush();
  if (markers) {
    for (const auto& [x, y] : points)
      if (finite(x) && finite(y))
        fmt::format_to(
            std::back_inserter(s),
            "<circle cx=\"{}\" cy=\"{}\" r=\"3.2\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"1.8\"/>\n",
            px(f.x(x)), px(f.y(y)), color);
  }
}

std::string clip_rect(std::string& s, const Frame& f) {
  std::string id = next_id("clip");
  fmt::format_to(
      std::back_inserter(s),
      "<defs><clipPath id=\"{}\"><rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/></clipPath></defs>\n",
      id, px(f.left - 1), px(f.top - 4), px(f.width + 2), px(f.height + 5));
  return id;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  double pos = q * double(v.size() - 1);
  std::size_t i = std::size_t(std::floor(pos));
  double frac = pos - double(i);
  return i + 1 < v.size() ? v[i] * (1 - frac) + v[i + 1] * frac : v[i];
}

std::string missing(std::string_view what) {
  return fmt::format("<p class=\"missing\">{}</p>\n", what);
}

// ---------------------------------------------------------------------------------------------
// Sections

constexpr double kChartWidth = 900;

struct LossView {
  std::string svg;
  std::string caption;
};

LossView loss_chart(const Metrics& m) {
  LossView out;
  Points total, sup, un, mix;
  std::int64_t warm_end = -1;  // last step of the leading supervised-only stretch
  bool any_semi = false;
  for (const auto& [step, r] : m.steps) {
    double x = double(step);
    total.emplace_back(x, r.loss);
    sup.emplace_back(x, r.loss_sup);
    un.emplace_back(x, r.semi ? r.loss_un : kNaN);
    mix.emplace_back(x, r.semi ? r.loss_mix : kNaN);
    if (r.semi) any_semi = true;
    if (!any_semi) warm_end = step;
  }
  std::vector<double> values;
  for (const Points* p : {&total, &sup, &un, &mix})
    for (const auto& pt : *p)
      if (finite(pt.second)) values.push_back(pt.second);
  if (values.empty()) return out;

  double x_lo = total.front().first, x_hi = std::max(total.back().first, x_lo + 1);
  double y_min = *std::min_element(values.begin(), values.end());
  double y_max = *std::max_element(values.begin(), values.end());
  double p98 = quantile(values, 0.98);
  bool clipped = false;
  if (values.size() >= 20 && p98 > 0 && y_max > 4 * p98) {
    y_max = 1.25 * p98;
    clipped = true;
  }
  Ticks yt = nice_ticks(std::min(0.0, y_min), y_max, 5);
  Ticks xt = nice_ticks(x_lo, x_hi, 8, true, false);

  const bool smoothing = total.size() >= 60;
  std::vector<LegendItem> legend{{"loss (total)", kDark}, {"supervised", kBlue}};
  if (any_semi) {
    legend.push_back({"unlabeled (L_un)", kOrange});
    legend.push_back({"mix (L_mix)", kRed});
  }
  if (warm_end >= 0 && any_semi) legend.push_back({"warm-up (supervised only)", kGrey, "band"});
  double lh = legend_height(legend, kChartWidth - 70);
  Frame f;
  f.left = 62;
  f.top = 14 + lh;
  f.width = kChartWidth - f.left - 16;
  f.height = 250;
  f.x_lo = xt.lo;
  f.x_hi = xt.hi;
  f.y_lo = yt.lo;
  f.y_hi = yt.hi;
  double h = f.top + f.height + 44;
  std::string& s = out.svg;
  s = svg_open(kChartWidth, h, "loss against step");
  std::string clip = clip_rect(s, f);
  if (warm_end >= 0 && any_semi) {
    double x1 = f.x(double(warm_end) + 0.5);
    fmt::format_to(std::back_inserter(s),
                   "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"0.15\"/>\n",
                   px(f.left), px(f.top), px(std::max(0.0, x1 - f.left)), px(f.height), kGrey);
  }
  draw_axes(s, f, xt, yt, "step", "loss");
  // Epoch boundaries: a faint line at the first step of every epoch after the first.
  std::map<std::int64_t, std::int64_t> first_step;
  for (const auto& [step, r] : m.steps) first_step.emplace(r.epoch, step);
  if (first_step.size() > 1) {
    const bool label = first_step.size() <= 24;
    // Every k-th boundary, at least 8 px apart.
    const std::size_t every = std::size_t(std::ceil(8.0 * double(first_step.size()) / f.width));
    std::size_t k = 0;
    for (auto it = std::next(first_step.begin()); it != first_step.end(); ++it) {
      if (++k % every != 0) continue;
      double x = f.x(double(it->second) - 0.5);
      fmt::format_to(std::back_inserter(s),
                     "<line class=\"epoch\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>\n", px(x), px(f.top),
                     px(x), px(f.top + f.height));
      if (label) text(s, x + 3, f.top + 10, fmt::format("e{}", it->first + 1), "class=\"small\"");
    }
  }
  struct S {
    const Points* p;
    const char* color;
    double width;
  };
  std::size_t span = 0;
  for (const S& se : {S{&mix, kRed, 1.6}, S{&un, kOrange, 1.6}, S{&sup, kBlue, 1.6}, S{&total, kDark, 2.0}}) {
    if (smoothing) {
      draw_series(s, f, decimate_envelope(*se.p), se.color, 0.8, 0.18, false, false, clip);
      draw_series(s, f, trend(*se.p, &span), se.color, se.width, 1, false, false, clip);
    } else {
      draw_series(s, f, *se.p, se.color, se.width, 1, false, se.p->size() <= 40, clip);
    }
  }
  draw_legend(s, f.left, 12, legend, kChartWidth - 70);
  s += "</svg>\n";
  out.caption = fmt::format("{} steps", m.steps.size());
  if (smoothing) out.caption += fmt::format("; solid: running median over {} steps, faint: every step", span);
  if (clipped)
    out.caption += fmt::format("; values above {:.3g} are cut off (maximum {:.3g})", yt.hi,
                               *std::max_element(values.begin(), values.end()));
  if (any_semi) out.caption += "; L_un and L_mix are drawn from the first semi-supervised step";
  out.caption += ".";
  return out;
}

std::string accuracy_chart(const Metrics& m) {
  Points top1, top5, mean_class;
  for (const auto& [epoch, r] : m.evals) {
    double x = double(epoch);
    top1.emplace_back(x, r.top1);
    top5.emplace_back(x, r.top5);
    mean_class.emplace_back(x, r.mean_class);
  }
  double x_lo = top1.front().first, x_hi = top1.back().first;
  if (x_hi - x_lo < 1) x_lo -= 0.5, x_hi += 0.5;
  Ticks xt = nice_ticks(x_lo, x_hi, 10, true, false);
  Ticks yt = nice_ticks(0, 1, 5);
  std::vector<LegendItem> legend{
      {"top-1", kBlue}, {"top-5", kTeal}, {"mean class accuracy", kPurple, "dashed"}};
  Frame f;
  f.left = 62;
  f.top = 14 + legend_height(legend, kChartWidth - 70);
  f.width = kChartWidth - f.left - 16;
  f.height = 200;
  double pad = (x_hi - x_lo) * 0.03;
  f.x_lo = x_lo - pad;
  f.x_hi = x_hi + pad;
  f.y_lo = 0;
  f.y_hi = 1;
  std::string s = svg_open(kChartWidth, f.top + f.height + 44, "validation accuracy against epoch");
  draw_axes(s, f, xt, yt, "epoch", "accuracy", true);
  const bool markers = top1.size() <= 60;
  draw_series(s, f, top5, kTeal, 2, 1, false, markers);
  draw_series(s, f, mean_class, kPurple, 1.6, 1, true, false);
  draw_series(s, f, top1, kBlue, 2.2, 1, false, markers);
  // Label the last top-1 point.
  const auto& last = top1.back();
  if (finite(last.second))
    text(s, f.x(last.first) - 6, f.y(last.second) - 8, pct(last.second),
         "class=\"value\" text-anchor=\"end\"");
  draw_legend(s, f.left, 12, legend, kChartWidth - 70);
  s += "</svg>\n";
  return s;
}

struct EtaEpoch {
  std::int64_t epoch = 0;
  std::vector<double> step_means;
  std::vector<double> hist;  // summed counts, equal bins over [0, 1]
  double mean = kNaN, above_half = kNaN, pseudo_accuracy = kNaN;
  int steps = 0;
};

std::vector<EtaEpoch> eta_by_epoch(const Metrics& m) {
  std::map<std::int64_t, EtaEpoch> by;
  std::map<std::int64_t, std::pair<double, double>> above;  // weighted sum, weight
  std::map<std::int64_t, std::pair<double, int>> pseudo;
  for (const auto& [step, r] : m.steps) {
    if (!r.semi) continue;
    auto& e = by[r.epoch];
    e.epoch = r.epoch;
    ++e.steps;
    if (finite(r.eta_mean)) e.step_means.push_back(r.eta_mean);
    if (finite(r.eta_above_half)) {
      double w = finite(r.unlabeled) && r.unlabeled > 0 ? r.unlabeled : 1;
      above[r.epoch].first += w * r.eta_above_half;
      above[r.epoch].second += w;
    }
    if (finite(r.pseudo_accuracy)) pseudo[r.epoch].first += r.pseudo_accuracy, ++pseudo[r.epoch].second;
    if (!r.eta_hist.empty()) {
      if (e.hist.empty()) e.hist.assign(r.eta_hist.size(), 0);
      if (e.hist.size() == r.eta_hist.size())
        for (std::size_t i = 0; i < e.hist.size(); ++i) e.hist[i] += r.eta_hist[i];
    }
  }
  for (const auto& [epoch, r] : m.epochs) {
    bool has = finite(r.eta_mean) || finite(r.eta_above_half) || !r.eta_hist.empty();
    if (!has && !by.count(epoch)) continue;
    auto& e = by[epoch];
    e.epoch = epoch;
    if (finite(r.eta_mean)) e.mean = r.eta_mean;
    if (finite(r.eta_above_half)) e.above_half = r.eta_above_half;
    if (!r.eta_hist.empty()) e.hist = r.eta_hist;  // the epoch's own histogram wins
  }
  std::vector<EtaEpoch> out;
  for (auto& [epoch, e] : by) {
    if (!finite(e.mean) && !e.step_means.empty()) {
      double sum = 0;
      for (double v : e.step_means) sum += v;
      e.mean = sum / double(e.step_means.size());
    }
    if (!finite(e.above_half) && above.count(epoch) && above[epoch].second > 0)
      e.above_half = above[epoch].first / above[epoch].second;
    if (pseudo.count(epoch) && pseudo[epoch].second > 0)
      e.pseudo_accuracy = pseudo[epoch].first / pseudo[epoch].second;
    double total = 0;
    for (double v : e.hist) total += std::max(0.0, v);
    if (total <= 0) e.hist.clear();
    out.push_back(std::move(e));
  }
  return out;
}

std::string eta_chart(const std::vector<EtaEpoch>& epochs, bool& any_hist, bool& any_box) {
  any_hist = any_box = false;
  for (const auto& e : epochs) {
    if (!e.hist.empty())
      any_hist = true;
    else if (!e.step_means.empty())
      any_box = true;
  }
  std::vector<LegendItem> legend;
  if (any_hist) legend.push_back({"η histogram of the epoch", kBlue, "box"});
  if (any_box) legend.push_back({"per-step mean η: quartiles, median, range", kBlue, "box"});
  legend.push_back({"epoch mean η", kDark, "dot"});
  legend.push_back({"share of η > 0.5", kOrange, "diamond"});
  Frame f;
  f.left = 62;
  f.top = 14 + legend_height(legend, kChartWidth - 70);
  f.width = kChartWidth - f.left - 16;
  f.height = 220;
  const double n = double(epochs.size());
  f.x_lo = 0;
  f.x_hi = n;
  f.y_lo = 0;
  f.y_hi = 1;
  std::string s = svg_open(kChartWidth, f.top + f.height + 44, "eta distribution per epoch");
  Ticks yt = nice_ticks(0, 1, 5);
  draw_axes(s, f, yt, yt, "epoch", "η", false, false);
  const double col = f.width / n;
  const std::size_t label_every = std::size_t(std::ceil(28.0 / col));
  // The threshold 0.5.
  fmt::format_to(std::back_inserter(s),
                 "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-dasharray=\"3 3\"/>\n",
                 px(f.left), px(f.y(0.5)), px(f.left + f.width), px(f.y(0.5)), kGrey);
  Points share, means;
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    const auto& e = epochs[i];
    const double cx = f.x(double(i) + 0.5);
    const double half = std::min(col * 0.36, 40.0);
    std::string tip = fmt::format("epoch {}: {} semi-supervised steps, mean η {}, share above 0.5 {}",
                                  e.epoch, e.steps, fixed(e.mean, 3), pct(e.above_half));
    s += "<g><title>" + esc(tip) + "</title>\n";
    if (!e.hist.empty()) {
      // Mirrored histogram bars (a stepped violin), the fullest bin `half` wide on each side.
      double top = *std::max_element(e.hist.begin(), e.hist.end());
      const double bins = double(e.hist.size());
      for (std::size_t b = 0; b < e.hist.size(); ++b) {
        double w = top > 0 ? std::max(0.0, e.hist[b]) / top * half : 0;
        if (w <= 0) continue;
        double y1 = f.y(double(b + 1) / bins), y0 = f.y(double(b) / bins);
        double gap = (y0 - y1) > 4 ? 0.6 : 0;
        fmt::format_to(
            std::back_inserter(s),
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"0.45\"/>\n",
            px(cx - std::max(w, 0.5)), px(y1 + gap), px(2 * std::max(w, 0.5)), px(y0 - y1 - 2 * gap), kBlue);
      }
    } else if (!e.step_means.empty()) {
      double q1 = quantile(e.step_means, 0.25), q2 = quantile(e.step_means, 0.5),
             q3 = quantile(e.step_means, 0.75);
      double lo = *std::min_element(e.step_means.begin(), e.step_means.end());
      double hi = *std::max_element(e.step_means.begin(), e.step_means.end());
      double bw = std::max(1.5, half * 0.8);
      fmt::format_to(std::back_inserter(s),
                     "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{3}\"/>"
                     "<line x1=\"{4}\" y1=\"{1}\" x2=\"{5}\" y2=\"{1}\" stroke=\"{3}\"/>"
                     "<line x1=\"{4}\" y1=\"{2}\" x2=\"{5}\" y2=\"{2}\" stroke=\"{3}\"/>\n",
                     px(cx), px(f.y(lo)), px(f.y(hi)), kBlue, px(cx - bw * 0.4), px(cx + bw * 0.4));
      fmt::format_to(std::back_inserter(s),
                     "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"0.35\" "
                     "stroke=\"{}\"/>"
                     "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                     px(cx - bw), px(f.y(q3)), px(2 * bw), px(std::max(1.0, f.y(q1) - f.y(q3))), kBlue, kBlue,
                     px(cx - bw), px(f.y(q2)), px(cx + bw), px(f.y(q2)), kBlue);
    }
    s += "</g>\n";
    share.emplace_back(double(i) + 0.5, e.above_half);
    means.emplace_back(double(i) + 0.5, e.mean);
    if (i % label_every == 0)
      text(s, cx, f.top + f.height + 15, fmt::format("{}", e.epoch), "text-anchor=\"middle\"");
  }
  draw_series(s, f, share, kOrange, 1.5, 0.8);
  for (const auto& [x, y] : share)
    if (finite(y))
      fmt::format_to(std::back_inserter(s), "<path d=\"M{} {}l4.5 4.5l-4.5 4.5l-4.5 -4.5z\" fill=\"{}\"/>\n",
                     px(f.x(x)), px(f.y(y) - 4.5), kOrange);
  for (const auto& [x, y] : means)
    if (finite(y))
      fmt::format_to(
          std::back_inserter(s),
          "<circle cx=\"{}\" cy=\"{}\" r=\"3.3\" fill=\"#fff\" stroke=\"{}\" stroke-width=\"1.6\"/>\n",
          px(f.x(x)), px(f.y(y)), kDark);
  text(s, f.left + f.width - 4, f.y(0.5) - 4, "0.5", "class=\"small\" text-anchor=\"end\"");
  draw_legend(s, f.left, 12, legend, kChartWidth - 70);
  s += "</svg>\n";
  return s;
}

std::string schedule_charts(const Metrics& m) {
  Points lr, xi, pseudo;
  for (const auto& [step, r] : m.steps) {
    lr.emplace_back(double(step), r.lr);
    xi.emplace_back(double(step), r.xi);
    pseudo.emplace_back(double(step), r.semi ? r.pseudo_accuracy : kNaN);
  }
  auto any_finite = [](const Points& p) {
    return std::any_of(p.begin(), p.end(), [](const auto& q) { return finite(q.second); });
  };
  if (!any_finite(lr) && !any_finite(xi)) return {};
  const double w = (kChartWidth - 20) / 2, gap = 20;
  std::string s = svg_open(kChartWidth, 230, "learning rate and xi against step");
  double x_lo = lr.front().first, x_hi = std::max(lr.back().first, x_lo + 1);
  Ticks xt = nice_ticks(x_lo, x_hi, 5, true, false);
  // Left: learning rate.
  {
    double hi = 0;
    for (const auto& p : lr)
      if (finite(p.second)) hi = std::max(hi, p.second);
    Ticks yt = nice_ticks(0, hi > 0 ? hi : 1, 4);
    Frame f;
    f.left = 62;
    f.top = 26;
    f.width = w - f.left - 8;
    f.height = 150;
    f.x_lo = xt.lo;
    f.x_hi = xt.hi;
    f.y_lo = yt.lo;
    f.y_hi = yt.hi;
    yt.decimals = std::max(yt.decimals, 0);
    draw_axes(s, f, xt, yt, "step", "learning rate");
    draw_series(s, f, decimate_mean(lr), kBlue, 2);
    draw_legend(s, f.left, 12, {{"learning rate", kBlue}}, w);
  }
  // Right: xi and the pseudo-label accuracy (both in [0, 1]).
  {
    Ticks yt = nice_ticks(0, 1, 4);
    Frame f;
    f.left = w + gap + 44;
    f.top = 26;
    f.width = kChartWidth - f.left - 16;
    f.height = 150;
    f.x_lo = xt.lo;
    f.x_hi = xt.hi;
    f.y_lo = 0;
    f.y_hi = 1;
    draw_axes(s, f, xt, yt, "step", "");
    std::vector<LegendItem> legend{{"ξ (unlabeled weight)", kGreen}};
    if (any_finite(pseudo)) {
      legend.push_back({"pseudo-label accuracy", kPurple});
      draw_series(s, f, pseudo.size() >= 60 ? trend(pseudo) : pseudo, kPurple, 1.6, 0.9);
    }
    draw_series(s, f, decimate_mean(xi), kGreen, 2);
    draw_legend(s, f.left, 12, legend, kChartWidth - f.left);
  }
  s += "</svg>\n";
  return s;
}

// Two panels against the step: training throughput (clips per second of step wall time, with its
// trend) and the gradient norm before clipping. Empty when the steps carry neither.
std::string training_charts(const Metrics& m) {
  Points rate, norm;
  for (const auto& [step, r] : m.steps) {
    rate.emplace_back(double(step), finite(r.seconds) && r.seconds > 0 ? r.clips / r.seconds : kNaN);
    norm.emplace_back(double(step), r.grad_norm);
  }
  auto finite_values = [](const Points& p) {
    std::vector<double> v;
    for (const auto& q : p)
      if (finite(q.second)) v.push_back(q.second);
    return v;
  };
  const auto rates = finite_values(rate), norms = finite_values(norm);
  if (rates.empty() && norms.empty()) return {};
  const double w = (kChartWidth - 20) / 2, gap = 20;
  std::string s = svg_open(kChartWidth, 230, "throughput and gradient norm against step");
  const double x_lo = rate.front().first, x_hi = std::max(rate.back().first, x_lo + 1);
  const Ticks xt = nice_ticks(x_lo, x_hi, 5, true, false);
  auto panel = [&](double left, double right, const Points& p, const std::vector<double>& values,
                   std::string_view y_title, std::string_view name, std::string_view color) {
    // The 99th percentile bounds the axis: the first steps (allocations, caches) are outliers.
    const double hi = values.empty() ? 1 : quantile(values, 0.99);
    Ticks yt = nice_ticks(0, hi > 0 ? hi : 1, 4);
    Frame f;
    f.left = left;
    f.top = 26;
    f.width = right - left;
    f.height = 150;
    f.x_lo = xt.lo;
    f.x_hi = xt.hi;
    f.y_lo = yt.lo;
    f.y_hi = yt.hi;
    draw_axes(s, f, xt, yt, "step", y_title);
    if (values.empty()) {
      text(s, f.left + f.width / 2, f.top + f.height / 2, "not recorded", "text-anchor=\"middle\"");
      return;
    }
    const std::string clip = clip_rect(s, f);
    draw_series(s, f, decimate_envelope(p), color, 1, 0.35, false, false, clip);
    std::vector<LegendItem> legend{{std::string(name), std::string(color)}};
    if (p.size() >= 20) {
      draw_series(s, f, trend(p), kDark, 2, 1, false, false, clip);
      legend.push_back({"trend (running median)", kDark});
    }
    draw_legend(s, f.left, 12, legend, right - left);
  };
  panel(62, w - 8, rate, rates, "clips / s", "clips per second of step time", kBlue);
  panel(w + gap + 62, kChartWidth - 16, norm, norms, "gradient norm", "gradient norm (before clipping)", kOrange);
  s += "</svg>\n";
  return s;
}

struct ProfileNode {
  std::string id, type;
  double slots = kNaN, items_in = kNaN, items_out = kNaN, skipped = kNaN, busy = kNaN, busy_fraction = kNaN,
         wait = kNaN, blocked = kNaN, per_second = kNaN, peak_queue = kNaN, peak_in_flight = kNaN;
  std::vector<std::string> skip_reasons;
};

std::string profile_chart(const std::vector<ProfileNode>& nodes, std::size_t busiest) {
  std::vector<std::string> labels;
  double label_w = 60;
  for (const auto& n : nodes) {
    std::string l = shorten(n.id, 28);
    labels.push_back(l);
    label_w = std::max(label_w, text_width(l) + 12);
  }
  label_w = std::min(label_w, 200.0);
  const double row = 30, top = 52;
  const double panel_a = 300;  // busy share
  const double a_left = label_w + 8, a_w = panel_a - 50;
  const double b_left = a_left + panel_a + 30, b_w = kChartWidth - b_left - 60;
  const double h = top + row * double(nodes.size()) + 40;
  std::string s = svg_open(kChartWidth, h, "per-node profile");
  // Busy and waiting stack up to the node's capacity (slots x wall time); blocked is its own bar.
  auto val = [](double v) { return finite(v) ? std::max(0.0, v) : 0.0; };
  double max_s = 0;
  for (const auto& n : nodes) max_s = std::max({max_s, val(n.busy) + val(n.wait), val(n.blocked)});
  Ticks at = nice_ticks(0, 1, 4);
  Ticks bt = nice_ticks(0, max_s > 0 ? max_s : 1, 4);
  const double base = top + row * double(nodes.size());
  // Panel titles and grids.
  text(s, a_left, 14, "busy share of the node's slots", "class=\"title\"");
  text(s, b_left, 14, "slot-seconds: busy + waiting for input = slots \u00d7 wall", "class=\"title\"");
  draw_legend(s, b_left, 32,
              {{"busy", kBlue, "box"},
               {"waiting for input", kGrey, "box"},
               {"source blocked (seconds)", kRed, "box"}},
              kChartWidth - b_left);
  for (double v : at.values) {
    double x = a_left + v * a_w;
    fmt::format_to(std::back_inserter(s),
                   "<line class=\"grid\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", px(x), px(top - 4),
                   px(base));
    text(s, x, base + 15, tick_label(v, at, true), "text-anchor=\"middle\"");
  }
  for (double v : bt.values) {
    double x = b_left + v / bt.hi * b_w;
    fmt::format_to(std::back_inserter(s),
                   "<line class=\"grid\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", px(x), px(top - 4),
                   px(base));
    text(s, x, base + 15, tick_label(v, bt), "text-anchor=\"middle\"");
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    const double y = top + row * double(i);
    const bool hot = i == busiest;
    s += "<g><title>" +
         esc(fmt::format(
             "{} ({}), {} slot(s): busy {} ({}), waiting for input {}, blocked {}, {} items in, {} out", n.id,
             n.type, fixed(n.slots, 0), seconds_text(n.busy), pct(n.busy_fraction), seconds_text(n.wait),
             seconds_text(n.blocked), fixed(n.items_in, 0), fixed(n.items_out, 0))) +
         "</title>\n";
    if (i % 2 == 1)
      fmt::format_to(std::back_inserter(s),
                     "<rect x=\"0\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#f7f8fa\"/>\n", px(y),
                     px(kChartWidth), px(row));
    text(s, label_w, y + row / 2 + 4, labels[i],
         hot ? "text-anchor=\"end\" class=\"hot\"" : "text-anchor=\"end\"");
    double frac = finite(n.busy_fraction) ? std::clamp(n.busy_fraction, 0.0, 1.0) : 0;
    fmt::format_to(std::back_inserter(s),
                   "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"2\" fill=\"{}\"/>\n", px(a_left),
                   px(y + 7), px(std::max(frac * a_w, finite(n.busy_fraction) ? 1.0 : 0.0)), px(row - 14),
                   hot ? kOrange : kBlue);
    text(s, a_left + frac * a_w + 5, y + row / 2 + 4, pct(n.busy_fraction), "class=\"value\"");
    const double scale = bt.hi > 0 ? b_w / bt.hi : 0;
    const bool blocked = val(n.blocked) > 0;
    const double bar = blocked ? (row - 10) * 0.6 : row - 14, y0 = blocked ? y + 4 : y + 7;
    double x = b_left;
    for (auto [v, color] : {std::pair{val(n.busy), kBlue}, std::pair{val(n.wait), kGrey}}) {
      if (v * scale > 0)
        fmt::format_to(std::back_inserter(s),
                       "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}/>\n", px(x), px(y0),
                       px(std::max(v * scale, 0.8)), px(bar), color,
                       color == kGrey ? " fill-opacity=\"0.55\"" : "");
      x += v * scale;
    }
    if (blocked)
      fmt::format_to(std::back_inserter(s),
                     "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n", px(b_left),
                     px(y0 + bar + 1.5), px(std::max(val(n.blocked) * scale, 0.8)),
                     px((row - 10) * 0.4 - 1.5), kRed);
    s += "</g>\n";
  }
  fmt::format_to(std::back_inserter(s),
                 "<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", px(a_left),
                 px(top - 4), px(base));
  fmt::format_to(std::back_inserter(s),
                 "<line class=\"axis\" x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\"/>\n", px(b_left),
                 px(top - 4), px(base));
  s += "</svg>\n";
  return s;
}

// Blues, from white to dark blue, for r in [0, 1].
std::string blues(double r) {
  static const int stops[][3] = {
      {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  r = std::clamp(finite(r) ? r : 0.0, 0.0, 1.0) * 4;
  int i = std::min(3, int(r));
  double t = r - i;
  int c[3];
  for (int k = 0; k < 3; ++k) c[k] = int(std::lround(stops[i][k] * (1 - t) + stops[i + 1][k] * t));
  return fmt::format("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
}

std::string confusion_chart(const EvalRec& e, const std::vector<std::string>& names) {
  const auto& c = e.confusion;
  const std::size_t n = c.size();
  auto name = [&](std::size_t i) {
    return i < names.size() && !names[i].empty() ? names[i] : std::to_string(i);
  };
  const double cell = std::clamp(std::floor(560.0 / double(n)), 3.0, 40.0);
  const bool counts = n <= 30;
  const double font = std::clamp(cell * 0.7, 7.0, 11.0);
  const std::size_t label_every = std::size_t(std::ceil((font + 1) / cell));
  const std::size_t column_every = std::size_t(std::ceil((font + 1) * 1.45 / cell));  // labels at 45 degrees
  const bool outline = cell >= 10;
  double label_w = 20;
  for (std::size_t i = 0; i < n; ++i) label_w = std::max(label_w, text_width(shorten(name(i), 26), font));
  label_w = std::min(label_w, 170.0) + 10;
  const double left = label_w + 22, top = label_w * 0.72 + 30;
  const double grid = cell * double(n);
  const double extra = counts ? 100 : 20;  // row totals and accuracy
  const double w = std::max(left + grid + extra + 80, 360.0), h = top + grid + 20;
  std::string s = svg_open(w, h, "confusion matrix");
  std::vector<double> totals(n, 0);
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < n; ++i)
    for (double v : c[i]) totals[i] += std::max(0.0, v), nonzero += v > 0;
  const bool tooltips = nonzero <= 6000;  // keeps the file small for hundreds of classes
  // Axis titles.
  text(s, left + grid / 2, 14, "predicted class", "class=\"title\" text-anchor=\"middle\"");
  fmt::format_to(std::back_inserter(s),
                 "<text class=\"title\" transform=\"translate(12,{}) rotate(-90)\" "
                 "text-anchor=\"middle\">true class</text>\n",
                 px(top + grid / 2));
  fmt::format_to(std::back_inserter(s),
                 "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fcfcfd\" stroke=\"#ddd\"/>\n",
                 px(left), px(top), px(grid), px(grid));
  const std::string font_attr = fmt::format("style=\"font-size:{}px\"", px(font));  // CSS beats attributes
  for (std::size_t i = 0; i < n; ++i) {
    std::string l = shorten(name(i), 26);
    if (i % label_every == 0)
      text(s, left - 6, top + cell * (double(i) + 0.5) + font * 0.35, l, "text-anchor=\"end\" " + font_attr);
    if (i % column_every == 0)
      fmt::format_to(std::back_inserter(s), "<text transform=\"translate({},{}) rotate(-45)\" {}>{}</text>\n",
                     px(left + cell * (double(i) + 0.5) - font * 0.2), px(top - 5), font_attr, esc(l));
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double v = c[i][j];
      if (!(v > 0)) continue;
      double r = totals[i] > 0 ? v / totals[i] : 0;
      double x = left + cell * double(j), y = top + cell * double(i);
      fmt::format_to(std::back_inserter(s),
                     "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}>", px(x), px(y),
                     px(cell), px(cell), blues(0.08 + 0.92 * r),
                     i == j && outline ? " stroke=\"#222\" stroke-width=\"1\"" : "");
      if (tooltips)
        s += "<title>" +
             esc(fmt::format("true {} \u2192 predicted {}: {} ({} of the class)", name(i), name(j), v,
                             pct(r))) +
             "</title>";
      s += "</rect>\n";
      if (counts && cell >= 14)
        text(s, x + cell / 2, y + cell / 2 + font * 0.35, fmt::format("{}", v),
             fmt::format("text-anchor=\"middle\" {} class=\"{}\"", font_attr, r > 0.5 ? "cell inv" : "cell"));
    }
    if (counts && cell >= 8 && i % label_every == 0) {
      double acc = totals[i] > 0 ? c[i][i] / totals[i] : kNaN;
      double y = top + cell * (double(i) + 0.5) + font * 0.35;
      text(s, left + grid + 10, y, fmt::format("{}", totals[i]), font_attr);
      text(s, left + grid + 48, y, pct(acc, 0), font_attr + " class=\"value\"");
    }
  }
  // Diagonal cells with no count still get the outline, so the diagonal stays visible.
  for (std::size_t i = 0; i < n && outline; ++i)
    if (!(c[i][i] > 0))
      fmt::format_to(std::back_inserter(s),
                     "<rect x=\"{0}\" y=\"{1}\" width=\"{2}\" height=\"{2}\" fill=\"none\" stroke=\"#bbb\" "
                     "stroke-dasharray=\"2 2\"/>\n",
                     px(left + cell * double(i)), px(top + cell * double(i)), px(cell));
  if (counts) {
    text(s, left + grid + 10, top - 6, "clips", "class=\"small\"");
    text(s, left + grid + 48, top - 6, "recall", "class=\"small\"");
  }
  s += "</svg>\n";
  return s;
}

std::string colour_scale() {
  std::string s = svg_open(420, 34, "colour scale");
  std::string id = next_id("scale");
  fmt::format_to(std::back_inserter(s), "<defs><linearGradient id=\"{}\">", id);
  for (int k = 0; k <= 10; ++k)
    fmt::format_to(std::back_inserter(s), "<stop offset=\"{}%\" stop-color=\"{}\"/>", k * 10,
                   blues(0.08 + 0.92 * k / 10.0));
  s += "</linearGradient></defs>\n";
  fmt::format_to(std::back_inserter(s),
                 "<rect x=\"10\" y=\"4\" width=\"200\" height=\"10\" fill=\"url(#{})\"/>\n", id);
  text(s, 10, 27, "0%", "class=\"small\"");
  text(s, 210, 27, "100%", "class=\"small\" text-anchor=\"end\"");
  text(s, 220, 13, "colour: share of the true class's clips", "class=\"small\"");
  s += "</svg>\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// HTML

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

void card(std::string& h, std::string_view key, std::string_view value, std::string_view sub = "") {
  fmt::format_to(
      std::back_inserter(h),
      "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\" title=\"{}\">{}</div>{}</div>\n",
      esc(key), esc(value), esc(value),
      sub.empty() ? std::string() : fmt::format("<div class=\"s\">{}</div>", esc(sub)));
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
    r.id = string_field(n, "id");
    if (r.id.empty()) r.id = fmt::format("#{}", index);
    r.type = string_field(n, "type");
    r.slots = number(n, "slots");
    r.items_in = number(n, "items_in");
    r.items_out = number(n, "items_out");
    r.skipped = number(n, "skipped");
    r.busy = number(n, "busy_seconds");
    r.busy_fraction = number(n, "busy_fraction");
    r.wait = number(n, "wait_input_seconds");
    r.blocked = number(n, "blocked_seconds");
    r.per_second = number(n, "items_per_second");
    r.peak_queue = number(n, "peak_queue");
    r.peak_in_flight = number(n, "peak_in_flight");
    if (auto sr = n.find("skip_reasons"); sr != n.end() && sr->is_array())
      for (const auto& v : *sr)
        r.skip_reasons.push_back(v.is_string() ? v.get<std::string>() : compact(v, 200));
    nodes.push_back(std::move(r));
  }
  return nodes;
}

// classes.txt beside the validation list named in the pipeline, if one can be found.
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

}  // namespace

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot read class names from '{}'", path));
  std::map<std::size_t, std::string> placed;
  std::vector<std::string> in_order;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    auto e = line.find_last_not_of(" \t");
    std::string t = line.substr(b, e - b + 1);
    auto sep = t.find_first_of(" \t");
    bool indexed = sep != std::string::npos && sep <= 9 &&
                   std::all_of(t.begin(), t.begin() + long(sep), [](char c) { return c >= '0' && c <= '9'; });
    if (indexed) {
      std::size_t index = std::stoul(t.substr(0, sep));
      placed[index] = t.substr(t.find_first_not_of(" \t", sep));
    } else {
      in_order.push_back(t);
    }
  }
  std::vector<std::string> names;
  if (!placed.empty()) names.resize(placed.rbegin()->first + 1);
  for (auto& [i, n] : placed) names[i] = std::move(n);
  for (auto& n : in_order) names.push_back(std::move(n));
  return names;
}

std::string render_report(const std::string& run_dir, const ReportOptions& options) {
  std::error_code ec;
  const fs::path dir(run_dir);
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(fmt::format("'{}' is not a directory", run_dir));
  g_next_id = 0;

  Metrics m = read_metrics(dir / "metrics.jsonl");
  // An evaluation run (eval.json, the classify node) leaves evaluation.json instead of metrics.
  const JsonFile evaluation_file = read_json_file(dir / "evaluation.json");
  const bool evaluation_run = !m.present && evaluation_file.present && evaluation_file.value.is_object();
  if (evaluation_run) {
    bool confusion_ok = true;
    m.evals[0] = parse_eval(evaluation_file.value, 0, confusion_ok);
  }
  const JsonFile profile_file = read_json_file(dir / "profile.json");
  const JsonFile pipeline_file = read_json_file(dir / "pipeline.json");
  const json& pipeline = pipeline_file.value;

  std::string title = options.title;
  if (title.empty() && pipeline.is_object()) title = string_field(pipeline, "name");
  if (title.empty()) title = fs::absolute(dir, ec).filename().string();
  if (title.empty() || title == ".") title = run_dir;

  // Class names.
  std::vector<std::string> names = options.class_names;
  std::string names_source = names.empty() ? "" : "given";
  std::string names_problem;
  if (names.empty()) {
    std::string file =
        options.classes_file.empty() ? discover_classes_file(dir, pipeline) : options.classes_file;
    if (!file.empty()) {
      try {
        names = read_class_names(file);
        names_source = file;
      } catch (const std::exception& e) {
        names_problem = e.what();
      }
    }
  }

  std::vector<ProfileNode> nodes;
  std::string profile_error = profile_file.error;
  if (profile_file.present && profile_error.empty()) nodes = parse_profile(profile_file.value, profile_error);
  std::size_t busiest = nodes.size();
  for (std::size_t i = 0; i < nodes.size(); ++i)
    if (finite(nodes[i].busy_fraction) &&
        (busiest == nodes.size() || nodes[i].busy_fraction > nodes[busiest].busy_fraction))
      busiest = i;

  const EvalRec* last_eval = m.evals.empty() ? nullptr : &m.evals.rbegin()->second;
  const EvalRec* best_eval = nullptr;
  for (const auto& [epoch, e] : m.evals)
    if (finite(e.top1) && (!best_eval || e.top1 > best_eval->top1)) best_eval = &e;
  const EvalRec* matrix_eval = nullptr;
  for (auto it = m.evals.rbegin(); it != m.evals.rend(); ++it)
    if (!it->second.confusion.empty()) {
      matrix_eval = &it->second;
      break;
    }

  std::string h;
  h.reserve(1 << 16);
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>" + esc(title) + " \u2014 sefar run report</title>\n<style>" + kStyle +
       "</style>\n</head>\n<body>\n<main>\n";
  h += "<header><h1>" + esc(title) + "</h1><p>sefar run report \u00b7 <code>" + esc(run_dir) + "</code>";
  if (pipeline.is_object() && !string_field(pipeline, "description").empty())
    h += "</p><p>" + esc(string_field(pipeline, "description"));
  h += "</p></header>\n";

  // Who ran what, with which build (run.json).
  const JsonFile record_file = read_json_file(dir / "run.json");
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
          esc(string_field(inv, "start")), esc(string_field(inv, "end")), esc(status),
          esc(string_field(build, "sefar")), esc(string_field(build, "commit")),
          esc(string_field(build, "libtorch")), esc(string_field(build, "ffmpeg")),
          esc(string_field(build, "onetbb")), esc(string_field(inv, "command_line")));
    }
    h += "</table>\n</section>\n";
  }

  // Summary.
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
             ? fmt::format("evaluation.json, {} clips", fixed(last_eval->clips, 0))
             : fmt::format("epoch {}, {} clips", last_eval->epoch, fixed(last_eval->clips, 0)));
    card(h, "top-5 (last)", pct(last_eval->top5), fmt::format("mean class {}", pct(last_eval->mean_class)));
    if (best_eval) card(h, "best top-1", pct(best_eval->top1), fmt::format("epoch {}", best_eval->epoch));
  }
  double train_seconds = 0;
  for (const auto& [epoch, e] : m.epochs)
    if (finite(e.seconds)) train_seconds += e.seconds;
  if (profile_file.present && profile_file.value.is_object()) {
    double wall = number(profile_file.value, "wall_seconds");
    double threads = number(profile_file.value, "threads");
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

  // Problems and notes.
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

  // Loss.
  h += "<section id=\"loss\"><h2>Loss</h2>\n";
  if (!m.present) {
    h += missing("No metrics.jsonl: no loss curves.");
  } else if (m.steps.empty()) {
    h += missing("metrics.jsonl has no step records.");
  } else {
    LossView v = loss_chart(m);
    if (v.svg.empty())
      h += missing("The step records carry no finite loss values.");
    else
      h += "<div class=\"scroll\">" + v.svg + "</div><p class=\"caption\">" + esc(v.caption) + "</p>\n";
  }
  h += "</section>\n";

  // Throughput and gradient norm.
  if (const std::string training = training_charts(m); !training.empty())
    h += "<section id=\"training\"><h2>Throughput and gradient norm</h2>\n<div class=\"scroll\">" +
         training +
         "</div><p class=\"caption\">Clips (labeled and unlabeled) per second of each step's wall time, "
         "evaluations and checkpoints left out; the gradient norm of every step before clipping.</p>\n"
         "</section>\n";

  // Accuracy.
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
          &e == best_eval ? " class=\"hot\"" : "", e.epoch, fixed(e.step, 0), fixed(e.clips, 0),
          pct(e.top1), pct(e.top5), pct(e.mean_class), fixed(e.seconds, 1));
    }
    h += "</table>\n";
    if (best_eval) h += "<p class=\"caption\">Latest first; the best top-1 is highlighted.</p>\n";
    if (fold) h += "</details>\n";
  }
  h += "</section>\n";

  // Eta.
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
                         ep != m.epochs.end() ? fixed(ep->second.seconds, 1) : "\u2013");
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

  // Profile.
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

  // Confusion matrix.
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
        matrix_eval->epoch, fixed(matrix_eval->step, 0), fixed(matrix_eval->clips, 0),
        pct(matrix_eval->top1), n <= 30 ? ", with the counts; the diagonal is outlined" : "",
        names_source.empty()      ? ""
        : names_source == "given" ? ""
                                  : esc(fmt::format(" Class names from {}.", names_source)));
    h += "<div class=\"scroll\">" + confusion_chart(*matrix_eval, names) + "</div>\n" + colour_scale();
  }
  h += "</section>\n";

  // Pipeline.
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
        std::string type = node.is_object() ? string_field(node, "type") : "";
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

  h += "<footer>Written by sefar from metrics.jsonl, profile.json and pipeline.json. Self-contained: no "
       "scripts, "
       "nothing loaded from the network.</footer>\n</main>\n</body>\n</html>\n";
  return h;
}

void write_report(const std::string& run_dir, const ReportOptions& options) {
  const std::string html = render_report(run_dir, options);
  util::write_file_atomic((fs::path(run_dir) / "report.html").string(), html);
}

}  // namespace sefar::io

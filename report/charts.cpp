#include "report/charts.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <optional>
#include <utility>

#include <fmt/format.h>

namespace sefar::report {

namespace {

double value(const std::optional<double>& v) {
  return v ? *v : kNaN;
}

// Clips (labeled and unlabeled) of a step; NaN when the record does not say.
double clips(const io::StepRecord& r) {
  if (!r.labeled) return kNaN;
  return double(*r.labeled) + (r.unlabeled ? double(*r.unlabeled) : 0);
}

}  // namespace

LossView loss_chart(const Metrics& m, SvgIds& ids) {
  LossView out;
  Points total, sup, un, mix;
  std::int64_t warm_end = -1;  // last step of the leading supervised-only stretch
  bool any_semi = false;
  for (const auto& [step, r] : m.steps) {
    double x = double(step);
    total.emplace_back(x, r.loss);
    sup.emplace_back(x, r.loss_sup);
    const bool semi = r.is_semi();
    un.emplace_back(x, semi ? r.loss_un : kNaN);
    mix.emplace_back(x, semi ? r.loss_mix : kNaN);
    if (semi) any_semi = true;
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
  std::string clip = clip_rect(s, f, ids);
  if (warm_end >= 0 && any_semi) {
    double x1 = f.x(double(warm_end) + 0.5);
    rect(s, f.left, f.top, std::max(0.0, x1 - f.left), f.height,
         fmt::format("fill=\"{}\" fill-opacity=\"0.15\"", kGrey));
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
    mean_class.emplace_back(x, r.mean_class_accuracy);
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

std::vector<EtaEpoch> eta_by_epoch(const Metrics& m) {
  std::map<std::int64_t, EtaEpoch> by;
  std::map<std::int64_t, std::pair<double, double>> above;  // weighted sum, weight
  std::map<std::int64_t, std::pair<double, int>> pseudo;
  for (const auto& [step, r] : m.steps) {
    if (!r.is_semi()) continue;
    auto& e = by[r.epoch];
    e.epoch = r.epoch;
    ++e.steps;
    if (const double v = value(r.eta_mean); finite(v)) e.step_means.push_back(v);
    if (const double v = value(r.eta_above_half); finite(v)) {
      double w = r.unlabeled && *r.unlabeled > 0 ? double(*r.unlabeled) : 1;
      above[r.epoch].first += w * v;
      above[r.epoch].second += w;
    }
    if (const double v = value(r.pseudo_accuracy); finite(v))
      pseudo[r.epoch].first += v, ++pseudo[r.epoch].second;
    if (r.eta_hist && !r.eta_hist->empty()) {
      const auto& h = *r.eta_hist;
      if (e.hist.empty()) e.hist.assign(h.size(), 0);
      if (e.hist.size() == h.size())
        for (std::size_t i = 0; i < e.hist.size(); ++i) e.hist[i] += double(h[i]);
    }
  }
  for (const auto& [epoch, r] : m.epochs) {
    const bool hist = r.eta_hist && !r.eta_hist->empty();
    bool has = finite(value(r.eta_mean)) || finite(value(r.eta_above_half)) || hist;
    if (!has && !by.count(epoch)) continue;
    auto& e = by[epoch];
    e.epoch = epoch;
    if (finite(value(r.eta_mean))) e.mean = *r.eta_mean;
    if (finite(value(r.eta_above_half))) e.above_half = *r.eta_above_half;
    if (hist) e.hist.assign(r.eta_hist->begin(), r.eta_hist->end());  // the epoch's own histogram wins
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
    if (!e.hist.empty())
      draw_histogram(s, f, cx, half, e.hist, kBlue);
    else if (!e.step_means.empty())
      draw_box(s, f, cx, std::max(1.5, half * 0.8), e.step_means, kBlue);
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
    pseudo.emplace_back(double(step), r.is_semi() ? value(r.pseudo_accuracy) : kNaN);
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
std::string training_charts(const Metrics& m, SvgIds& ids) {
  Points rate, norm;
  for (const auto& [step, r] : m.steps) {
    const double seconds = value(r.seconds);
    rate.emplace_back(double(step), finite(seconds) && seconds > 0 ? clips(r) / seconds : kNaN);
    norm.emplace_back(double(step), value(r.grad_norm));
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
    const std::string clip = clip_rect(s, f, ids);
    draw_series(s, f, decimate_envelope(p), color, 1, 0.35, false, false, clip);
    std::vector<LegendItem> legend{{std::string(name), std::string(color)}};
    if (p.size() >= 20) {
      draw_series(s, f, trend(p), kDark, 2, 1, false, false, clip);
      legend.push_back({"trend (running median)", kDark});
    }
    draw_legend(s, f.left, 12, legend, right - left);
  };
  panel(62, w - 8, rate, rates, "clips / s", "clips per second of step time", kBlue);
  panel(w + gap + 62, kChartWidth - 16, norm, norms, "gradient norm", "gradient norm (before clipping)",
        kOrange);
  s += "</svg>\n";
  return s;
}

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
    rect(s, a_left, y + 7, std::max(frac * a_w, finite(n.busy_fraction) ? 1.0 : 0.0), row - 14,
         fmt::format("rx=\"2\" fill=\"{}\"", hot ? kOrange : kBlue));
    text(s, a_left + frac * a_w + 5, y + row / 2 + 4, pct(n.busy_fraction), "class=\"value\"");
    const double scale = bt.hi > 0 ? b_w / bt.hi : 0;
    const bool blocked = val(n.blocked) > 0;
    const double bar = blocked ? (row - 10) * 0.6 : row - 14, y0 = blocked ? y + 4 : y + 7;
    double x = b_left;
    for (auto [v, color] : {std::pair{val(n.busy), kBlue}, std::pair{val(n.wait), kGrey}}) {
      if (v * scale > 0)
        rect(s, x, y0, std::max(v * scale, 0.8), bar,
             fmt::format("fill=\"{}\"{}", color, color == kGrey ? " fill-opacity=\"0.55\"" : ""));
      x += v * scale;
    }
    if (blocked)
      rect(s, b_left, y0 + bar + 1.5, std::max(val(n.blocked) * scale, 0.8), (row - 10) * 0.4 - 1.5,
           fmt::format("fill=\"{}\"", kRed));
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

std::string confusion_chart(const io::EvalRecord& e, const std::vector<std::string>& names) {
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
    for (const std::int64_t v : c[i]) totals[i] += std::max(0.0, double(v)), nonzero += v > 0;
  const bool tooltips = nonzero <= 6000;  // keeps the file small for hundreds of classes
  // Axis titles.
  text(s, left + grid / 2, 14, "predicted class", "class=\"title\" text-anchor=\"middle\"");
  fmt::format_to(std::back_inserter(s),
                 "<text class=\"title\" transform=\"translate(12,{}) rotate(-90)\" "
                 "text-anchor=\"middle\">true class</text>\n",
                 px(top + grid / 2));
  rect(s, left, top, grid, grid, "fill=\"#fcfcfd\" stroke=\"#ddd\"");
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
      const double v = double(c[i][j]);
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
      double acc = totals[i] > 0 ? double(c[i][i]) / totals[i] : kNaN;
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

std::string colour_scale(SvgIds& ids) {
  std::string s = svg_open(420, 34, "colour scale");
  blues_ramp(s, 10, 4, 200, 10, ids);
  text(s, 10, 27, "0%", "class=\"small\"");
  text(s, 210, 27, "100%", "class=\"small\" text-anchor=\"end\"");
  text(s, 220, 13, "colour: share of the true class's clips", "class=\"small\"");
  s += "</svg>\n";
  return s;
}

}  // namespace sefar::report

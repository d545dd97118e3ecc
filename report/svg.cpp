#include "report/svg.h"

#include <algorithm>
#include <iterator>

#include <fmt/format.h>

namespace sefar::report {

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

// Coordinates in SVG.
std::string px(double v) {
  return fmt::format("{:.1f}", v);
}

// A value for tables and captions: "–" when missing, otherwise `digits` significant-ish decimals.
std::string fixed(double v, int decimals) {
  if (!finite(v)) return "\u2013";
  return fmt::format("{:.{}f}", v, decimals);
}
std::string pct(double v, int decimals) {
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
double text_width(std::string_view s, double font) {
  std::size_t chars = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  return double(chars) * font * 0.58;
}

std::string SvgIds::next(std::string_view prefix) {
  return fmt::format("{}{}", prefix, ++last_);
}

Ticks nice_ticks(double lo, double hi, int target, bool integer, bool expand) {
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

std::string tick_label(double v, const Ticks& t, bool percent) {
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

std::string svg_open(double w, double h, std::string_view label) {
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" "
      "role=\"img\" "
      "aria-label=\"{}\">\n",
      px(w), px(h), px(w), px(h), esc(label));
}

void text(std::string& s, double x, double y, std::string_view content, std::string_view attrs) {
  fmt::format_to(std::back_inserter(s), "<text x=\"{}\" y=\"{}\"{}{}>{}</text>\n", px(x), px(y),
                 attrs.empty() ? "" : " ", attrs, esc(content));
}

// Horizontal grid lines with y labels, x tick marks with labels, the axis lines and axis titles.
void draw_axes(std::string& s, const Frame& f, const Ticks& xt, const Ticks& yt, std::string_view x_title,
               std::string_view y_title, bool y_percent, bool x_labels) {
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
    fmt::format_to(std::back_inserter(s),
                   "<text class=\"title\" transform=\"translate({},{}) rotate(-90)\" "
                   "text-anchor=\"middle\">{}</text>\n",
                   px(x), px(f.top + f.height / 2), esc(y_title));
  }
}

void rect(std::string& s, double x, double y, double w, double h, std::string_view attrs) {
  fmt::format_to(std::back_inserter(s), "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" {}/>\n", px(x),
                 px(y), px(w), px(h), attrs);
}

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
Points trend(const Points& p, std::size_t* span) {
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
                 double opacity, bool dashed, bool markers, std::string_view clip) {
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

std::string clip_rect(std::string& s, const Frame& f, SvgIds& ids) {
  std::string id = ids.next("clip");
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

void draw_box(std::string& s, const Frame& f, double cx, double half, const std::vector<double>& values,
              std::string_view color) {
  double q1 = quantile(values, 0.25), q2 = quantile(values, 0.5), q3 = quantile(values, 0.75);
  double lo = *std::min_element(values.begin(), values.end());
  double hi = *std::max_element(values.begin(), values.end());
  fmt::format_to(std::back_inserter(s),
                 "<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"{3}\"/>"
                 "<line x1=\"{4}\" y1=\"{1}\" x2=\"{5}\" y2=\"{1}\" stroke=\"{3}\"/>"
                 "<line x1=\"{4}\" y1=\"{2}\" x2=\"{5}\" y2=\"{2}\" stroke=\"{3}\"/>\n",
                 px(cx), px(f.y(lo)), px(f.y(hi)), color, px(cx - half * 0.4), px(cx + half * 0.4));
  fmt::format_to(std::back_inserter(s),
                 "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"0.35\" "
                 "stroke=\"{}\"/>"
                 "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"2\"/>\n",
                 px(cx - half), px(f.y(q3)), px(2 * half), px(std::max(1.0, f.y(q1) - f.y(q3))), color, color,
                 px(cx - half), px(f.y(q2)), px(cx + half), px(f.y(q2)), color);
}

void draw_histogram(std::string& s, const Frame& f, double cx, double half, const std::vector<double>& counts,
                    std::string_view color) {
  double top = *std::max_element(counts.begin(), counts.end());
  const double bins = double(counts.size());
  for (std::size_t b = 0; b < counts.size(); ++b) {
    double w = top > 0 ? std::max(0.0, counts[b]) / top * half : 0;
    if (w <= 0) continue;
    double y1 = f.y(double(b + 1) / bins), y0 = f.y(double(b) / bins);
    double gap = (y0 - y1) > 4 ? 0.6 : 0;
    fmt::format_to(std::back_inserter(s),
                   "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" fill-opacity=\"0.45\"/>\n",
                   px(cx - std::max(w, 0.5)), px(y1 + gap), px(2 * std::max(w, 0.5)), px(y0 - y1 - 2 * gap),
                   color);
  }
}

void blues_ramp(std::string& s, double x, double y, double w, double h, SvgIds& ids) {
  std::string id = ids.next("scale");
  fmt::format_to(std::back_inserter(s), "<defs><linearGradient id=\"{}\">", id);
  for (int k = 0; k <= 10; ++k)
    fmt::format_to(std::back_inserter(s), "<stop offset=\"{}%\" stop-color=\"{}\"/>", k * 10,
                   blues(0.08 + 0.92 * k / 10.0));
  s += "</linearGradient></defs>\n";
  fmt::format_to(std::back_inserter(s),
                 "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"url(#{})\"/>\n", x, y, w, h, id);
}

}  // namespace sefar::report

// A small kit for drawing charts as inline SVG text: text escaping and number formats, "nice" axis
// ticks and a linear frame (data to pixels), axes with grids and titles, legends, polylines with
// decimation and a robust trend, and the shapes the report's charts are made of (rectangles, a box
// plot, a mirrored histogram, a colour ramp). Every function appends to or returns a string; nothing
// here knows about runs or metrics (report/charts.h does).
//
// Element ids (clip paths, gradients) must be unique within one HTML document: they come from an
// SvgIds object that the caller owns for the document, so rendering holds no global state.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sefar::report {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr std::size_t kMaxPoints = 1200;  // polyline points per series before decimation

// Palette (Tableau 10), readable on white and for most colour-vision deficiencies.
inline constexpr const char* kBlue = "#4e79a7";
inline constexpr const char* kOrange = "#f28e2b";
inline constexpr const char* kRed = "#e15759";
inline constexpr const char* kTeal = "#76b7b2";
inline constexpr const char* kGreen = "#59a14f";
inline constexpr const char* kPurple = "#b07aa1";
inline constexpr const char* kGrey = "#9c9c9c";
inline constexpr const char* kDark = "#2f3b4c";

// ---------------------------------------------------------------------------------------------
// Text

// HTML/XML escaping of text and attribute values.
std::string esc(std::string_view s);
// Cuts s to at most n characters (bytes; a UTF-8 sequence is not split), adding an ellipsis.
std::string shorten(std::string_view s, std::size_t n);
inline bool finite(double v) {
  return std::isfinite(v);
}
// Coordinates in SVG: one decimal.
std::string px(double v);
// Values for tables and captions: "–" when not finite.
std::string fixed(double v, int decimals);
std::string pct(double v, int decimals = 1);
std::string seconds_text(double s);
// Width of a label in `font` px sans-serif, roughly.
double text_width(std::string_view s, double font = 11);

// ---------------------------------------------------------------------------------------------
// Ids

// Ids unique within one document: "<prefix><n>", n counting from 1 over every prefix. One object per
// document, so the same input renders to the same text.
class SvgIds {
 public:
  std::string next(std::string_view prefix);

 private:
  int last_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Scales

struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
  int decimals = 0;
};

// "Nice" ticks (1, 2, 5 x 10^k) covering [lo, hi]; `integer` keeps the step at least 1; `expand`
// widens [lo, hi] to whole steps.
Ticks nice_ticks(double lo, double hi, int target, bool integer = false, bool expand = true);
std::string tick_label(double v, const Ticks& t, bool percent = false);

// A plot area (pixels) and the data ranges it shows.
struct Frame {
  double left = 0, top = 0, width = 1, height = 1;
  double x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  double x(double v) const { return left + (v - x_lo) / (x_hi - x_lo) * width; }
  double y(double v) const { return top + height - (v - y_lo) / (y_hi - y_lo) * height; }
};

// ---------------------------------------------------------------------------------------------
// Elements

// The opening <svg> tag (close it with "</svg>\n").
std::string svg_open(double w, double h, std::string_view label);
void text(std::string& s, double x, double y, std::string_view content, std::string_view attrs = "");
// <rect x y width height ATTRS/> on a line.
void rect(std::string& s, double x, double y, double w, double h, std::string_view attrs);
// A clip path around the frame (a little room above for markers); returns its id.
std::string clip_rect(std::string& s, const Frame& f, SvgIds& ids);

// Horizontal grid lines with y labels, x tick marks with labels, the axis lines and axis titles.
void draw_axes(std::string& s, const Frame& f, const Ticks& xt, const Ticks& yt, std::string_view x_title,
               std::string_view y_title, bool y_percent = false, bool x_labels = true);

struct LegendItem {
  std::string label;
  std::string color;
  std::string shape = "line";  // line, dashed, dot, box, diamond, band
};
// A row of legend entries starting at (x, y); wraps to `max_width`.
void draw_legend(std::string& s, double x, double y, const std::vector<LegendItem>& items, double max_width);
double legend_height(const std::vector<LegendItem>& items, double max_width);

// ---------------------------------------------------------------------------------------------
// Series

using Points = std::vector<std::pair<double, double>>;

// At most kMaxPoints points: bucket means (NaN gaps kept as gaps).
Points decimate_mean(const Points& p);
// At most 2 * kMaxPoints points: per bucket the minimum and the maximum, in their order.
Points decimate_envelope(const Points& p);
// A robust trend: bucket medians down to at most kMaxPoints points, then a centred running median over
// about a fortieth of them (at least 5). NaN gaps stay gaps. `span` receives the window in input points.
Points trend(const Points& p, std::size_t* span = nullptr);
double median(std::vector<double>& v);  // reorders v
double quantile(std::vector<double> v, double q);

// Polylines through the finite points, broken at NaN gaps; optional markers and clip path.
void draw_series(std::string& s, const Frame& f, const Points& points, std::string_view color, double width,
                 double opacity = 1, bool dashed = false, bool markers = false, std::string_view clip = "");

// ---------------------------------------------------------------------------------------------
// Distributions and colours

// A box plot at x = cx of `values` on the frame's y scale: whiskers from the smallest to the largest,
// the box from the first to the third quartile, the median as a thick line; the box `half` wide on
// each side.
void draw_box(std::string& s, const Frame& f, double cx, double half, const std::vector<double>& values,
              std::string_view color);
// A mirrored histogram (a stepped violin) at x = cx: bins of equal width over the frame's y range
// [0, 1], the fullest bin `half` wide on each side.
void draw_histogram(std::string& s, const Frame& f, double cx, double half, const std::vector<double>& counts,
                    std::string_view color);
// Blues, from white to dark blue, for r in [0, 1].
std::string blues(double r);
// A horizontal gradient of blues(0.08 + 0.92 r) for r in [0, 1], w x h at (x, y).
void blues_ramp(std::string& s, double x, double y, double w, double h, SvgIds& ids);

}  // namespace sefar::report

#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace echokv::svg {

namespace {
const char* kFont = "font-family=\"Helvetica,Arial,sans-serif\"";
const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                          "#bcbd22", "#17becf", "#000000", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"};
constexpr size_t kColors = sizeof(kPalette) / sizeof(kPalette[0]);

std::string num(double v, int digits = 2) {
  if (!std::isfinite(v)) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string text(double x, double y, const std::string& s, int size, const std::string& extra = "") {
  std::ostringstream o;
  o << "<text x=\"" << x << "\" y=\"" << y << "\" font-size=\"" << size << "\" " << kFont << " " << extra << ">"
    << escape(s) << "</text>\n";
  return o.str();
}

std::string open_svg(double w, double h) {
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h << "\" viewBox=\"0 0 " << w
    << " " << h << "\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  return o.str();
}
}  // namespace

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string colour(double t) {
  // Piecewise-linear through viridis anchor colours.
  static const double anchors[][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 4.0;
  const int i = std::min(3, int(t));
  const double f = t - i;
  char buf[8];
  int rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = int(std::lround(anchors[i][c] * (1 - f) + anchors[i + 1][c] * f));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

std::string heatmaps(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& o) {
  size_t max_rows = 1, max_cols = 1;
  for (const auto& p : panels) {
    max_rows = std::max(max_rows, p.values.size());
    for (const auto& r : p.values) max_cols = std::max(max_cols, r.size());
  }
  const int columns = std::max(1, std::min<int>(o.columns, int(panels.size())));
  const int grid_rows = (int(panels.size()) + columns - 1) / columns;
  const double left = 70, top = 60, gap = 50, label_h = 22;
  const double pw = max_cols * o.cell, ph = max_rows * o.cell;
  const double bar_w = 110;
  const double W = std::max(left + columns * (pw + gap) + bar_w, 9.5 * double(o.title.size()) + 40);
  const double H = top + grid_rows * (ph + gap + label_h) + 30;
  std::ostringstream s;
  s << open_svg(W, H);
  s << text(W / 2, 28, o.title, 17, "text-anchor=\"middle\" font-weight=\"bold\"");
  const double span = o.vmax - o.vmin;
  for (size_t pi = 0; pi < panels.size(); ++pi) {
    const auto& p = panels[pi];
    const double x0 = left + (pi % columns) * (pw + gap);
    const double y0 = top + (pi / columns) * (ph + gap + label_h) + label_h;
    s << text(x0 + pw / 2, y0 - 8, p.title, 13, "text-anchor=\"middle\"");
    for (size_t r = 0; r < p.values.size(); ++r)
      for (size_t c = 0; c < p.values[r].size(); ++c) {
        const double v = p.values[r][c];
        const bool ok = std::isfinite(v);
        const double t = span > 0 ? (v - o.vmin) / span : 0.5;
        s << "<rect x=\"" << x0 + c * o.cell << "\" y=\"" << y0 + r * o.cell << "\" width=\"" << o.cell
          << "\" height=\"" << o.cell << "\" fill=\"" << (ok ? colour(t) : "#dddddd")
          << "\" stroke=\"white\" stroke-width=\"0.5\"><title>" << escape(p.title) << " [" << r << "," << c
          << "] = " << num(v, 3) << "</title></rect>\n";
        if (o.annotate && o.cell >= 24)
          s << text(x0 + c * o.cell + o.cell / 2.0, y0 + r * o.cell + o.cell / 2.0 + 4, ok ? num(v, std::max(std::fabs(o.vmin), std::fabs(o.vmax)) >= 10 ? 0 : 2) : "",
                    o.cell >= 30 ? 10 : 8,
                    std::string("text-anchor=\"middle\" fill=\"") + (t > 0.6 ? "black" : "white") + "\"");
      }
    for (size_t r = 0; r < p.row_labels.size() && r < p.values.size(); ++r)
      s << text(x0 - 4, y0 + r * o.cell + o.cell / 2.0 + 4, p.row_labels[r], 10, "text-anchor=\"end\"");
    for (size_t c = 0; c < p.col_labels.size(); ++c)
      s << text(x0 + c * o.cell + o.cell / 2.0, y0 + ph + 13, p.col_labels[c], 10, "text-anchor=\"middle\"");
    if (pi % columns == 0 && !o.y_label.empty())
      s << text(x0 - 45, y0 + ph / 2, o.y_label, 12,
                "text-anchor=\"middle\" transform=\"rotate(-90 " + std::to_string(x0 - 45) + " " +
                    std::to_string(y0 + ph / 2) + ")\"");
    if (!o.x_label.empty()) s << text(x0 + pw / 2, y0 + ph + 28, o.x_label, 12, "text-anchor=\"middle\"");
  }
  // Colour bar.
  const double bx = W - bar_w + 20, by = top + label_h, bh = std::max(120.0, std::min(ph, 260.0));
  const int steps = 40;
  for (int i = 0; i < steps; ++i) {
    const double t = 1.0 - (i + 0.5) / steps;
    s << "<rect x=\"" << bx << "\" y=\"" << by + i * bh / steps << "\" width=\"16\" height=\"" << bh / steps + 0.5
      << "\" fill=\"" << colour(t) << "\"/>\n";
  }
  for (int i = 0; i <= 4; ++i) {
    const double v = o.vmax - i * span / 4;
    s << text(bx + 20, by + i * bh / 4 + 4, num(v, 2), 10);
  }
  s << text(bx, by - 8, o.scale_label, 11);
  s << "</svg>\n";
  return s.str();
}

namespace {
struct Axes {
  double left = 70, right = 20, top = 50, bottom = 60, width = 640, height = 300;
  double ymin, ymax;
  double y(double v) const { return top + height * (1 - (std::clamp(v, ymin, ymax) - ymin) / (ymax - ymin)); }
};

std::string frame(const Axes& a, const BarOptions& o, double W, double H) {
  std::ostringstream s;
  s << open_svg(W, H);
  s << text(W / 2, 26, o.title, 16, "text-anchor=\"middle\" font-weight=\"bold\"");
  for (int i = 0; i <= 5; ++i) {
    const double v = a.ymin + i * (a.ymax - a.ymin) / 5;
    s << "<line x1=\"" << a.left << "\" x2=\"" << a.left + a.width << "\" y1=\"" << a.y(v) << "\" y2=\"" << a.y(v)
      << "\" stroke=\"#e5e5e5\"/>\n";
    s << text(a.left - 6, a.y(v) + 4, num(v, 2), 10, "text-anchor=\"end\"");
  }
  s << "<line x1=\"" << a.left << "\" x2=\"" << a.left << "\" y1=\"" << a.top << "\" y2=\"" << a.top + a.height
    << "\" stroke=\"black\"/>\n<line x1=\"" << a.left << "\" x2=\"" << a.left + a.width << "\" y1=\""
    << a.top + a.height << "\" y2=\"" << a.top + a.height << "\" stroke=\"black\"/>\n";
  s << text(a.left + a.width / 2, H - 12, o.x_label, 12, "text-anchor=\"middle\"");
  s << text(18, a.top + a.height / 2, o.y_label, 12,
            "text-anchor=\"middle\" transform=\"rotate(-90 18 " + std::to_string(a.top + a.height / 2) + ")\"");
  return s.str();
}

std::string legend(const std::vector<std::string>& names, double x, double y) {
  std::ostringstream s;
  for (size_t i = 0; i < names.size(); ++i) {
    s << "<rect x=\"" << x << "\" y=\"" << y + i * 16 << "\" width=\"12\" height=\"12\" fill=\"" << kPalette[i % kColors]
      << "\"/>\n";
    s << text(x + 16, y + i * 16 + 10, names[i], 11);
  }
  return s.str();
}
}  // namespace

std::string grouped_bars(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                         const BarOptions& o) {
  Axes a;
  a.ymin = o.ymin;
  a.ymax = o.ymax > o.ymin ? o.ymax : o.ymin + 1;
  a.width = std::max(320.0, 34.0 * categories.size() * std::max<size_t>(1, series.size()) / 1.5);
  const double W = a.left + a.width + a.right + 150, H = a.top + a.height + a.bottom;
  std::ostringstream s;
  s << frame(a, o, W, H);
  const double group_w = a.width / std::max<size_t>(1, categories.size());
  const double bar_w = group_w * 0.8 / std::max<size_t>(1, series.size());
  for (size_t c = 0; c < categories.size(); ++c) {
    const double gx = a.left + c * group_w + group_w * 0.1;
    for (size_t k = 0; k < series.size(); ++k) {
      const double v = c < series[k].values.size() ? series[k].values[c] : NAN;
      if (!std::isfinite(v)) continue;
      const double y = a.y(v), base = a.y(std::max(a.ymin, 0.0));
      s << "<rect x=\"" << gx + k * bar_w << "\" y=\"" << std::min(y, base) << "\" width=\"" << bar_w * 0.95
        << "\" height=\"" << std::abs(base - y) << "\" fill=\"" << kPalette[k % kColors] << "\"><title>"
        << escape(series[k].name) << ", " << escape(categories[c]) << ": " << num(v, 4) << "</title></rect>\n";
    }
    s << text(a.left + (c + 0.5) * group_w, a.top + a.height + 16, categories[c], 10, "text-anchor=\"middle\"");
  }
  std::vector<std::string> names;
  for (const auto& k : series) names.push_back(k.name);
  s << legend(names, a.left + a.width + 14, a.top);
  s << "</svg>\n";
  return s.str();
}

std::string lines(const std::vector<LineSeries>& series, const BarOptions& o, double xmin, double xmax) {
  Axes a;
  a.ymin = o.ymin;
  a.ymax = o.ymax > o.ymin ? o.ymax : o.ymin + 1;
  const double W = a.left + a.width + a.right + 150, H = a.top + a.height + a.bottom;
  auto X = [&](double v) { return a.left + a.width * (v - xmin) / (xmax - xmin); };
  std::ostringstream s;
  s << frame(a, o, W, H);
  for (int i = 0; i <= 5; ++i) {
    const double v = xmin + i * (xmax - xmin) / 5;
    s << text(X(v), a.top + a.height + 16, num(v, 2), 10, "text-anchor=\"middle\"");
  }
  for (size_t k = 0; k < series.size(); ++k) {
    std::ostringstream path;
    bool first = true;
    for (size_t i = 0; i < series[k].x.size(); ++i) {
      if (!std::isfinite(series[k].y[i])) continue;
      path << (first ? "M" : " L") << X(series[k].x[i]) << " " << a.y(series[k].y[i]);
      first = false;
      s << "<circle cx=\"" << X(series[k].x[i]) << "\" cy=\"" << a.y(series[k].y[i]) << "\" r=\"3.5\" fill=\""
        << kPalette[k % kColors] << "\"><title>" << escape(series[k].name) << " @ " << num(series[k].x[i], 2) << ": "
        << num(series[k].y[i], 4) << "</title></circle>\n";
    }
    s << "<path d=\"" << path.str() << "\" fill=\"none\" stroke=\"" << kPalette[k % kColors] << "\" stroke-width=\"2\"/>\n";
  }
  std::vector<std::string> names;
  for (const auto& k : series) names.push_back(k.name);
  s << legend(names, a.left + a.width + 14, a.top);
  s << "</svg>\n";
  return s.str();
}

}  // namespace echokv::svg

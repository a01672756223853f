// Small SVG charts for reports, readable at a glance: titles, axis labels, a colour scale
// with numbers. NaN cells/values are drawn grey ("n/a").
#pragma once
#include <string>
#include <vector>

namespace echokv::svg {

using Matrix = std::vector<std::vector<double>>;  // [rows][cols]

struct HeatmapPanel {
  std::string title;
  Matrix values;
  std::vector<std::string> row_labels, col_labels;
};

struct HeatmapOptions {
  std::string title;
  std::string x_label, y_label;
  std::string scale_label;   // colour bar caption
  double vmin = 0.0, vmax = 1.0;
  int cell = 28;             // pixel size of one cell
  bool annotate = true;      // print values in cells when they fit
  int columns = 4;           // panels per row in a grid
};

// One or several heat maps sharing one colour scale.
std::string heatmaps(const std::vector<HeatmapPanel>& panels, const HeatmapOptions& options);

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category
};

struct BarOptions {
  std::string title;
  std::string x_label, y_label;
  double ymin = 0.0, ymax = 1.0;
};

// Grouped bars: categories along x, one bar per series in each group, with a legend.
std::string grouped_bars(const std::vector<std::string>& categories, const std::vector<BarSeries>& series,
                         const BarOptions& options);

struct LineSeries {
  std::string name;
  std::vector<double> x, y;
};

// Lines with markers (e.g. score vs ratio per method).
std::string lines(const std::vector<LineSeries>& series, const BarOptions& options, double xmin, double xmax);

std::string escape(const std::string& text);
// Viridis-like colour for t in [0, 1] as "#rrggbb".
std::string colour(double t);

}  // namespace echokv::svg

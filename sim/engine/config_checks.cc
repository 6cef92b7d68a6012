#include "sim/engine/config_checks.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ouro {
namespace config_detail {
namespace {

const KeySpec& key(const std::string& path) { return key_of(common_keys(), path); }

}  // namespace

// plot: {metrics: [names], center: mean|median}, read by scripts/plot_collapse.py from manifest.json; checked here
// so that a typo in a metric's name is refused before the run, not after it.
void check_plot(const ConfigReader& r, const Experiment& ex) {
  r.choice(key("plot.center"));
  const YAML::Node m = r.node("plot.metrics");
  if (!m || m.IsNull()) return;
  if (!m.IsSequence()) throw ConfigError("plot.metrics", "expected a list of metric names, got " + scalar_text(m));
  std::vector<std::string> known, computed;
  for (const auto& p : ex.points) {
    for (const auto& n : written_metric_names(p.config))
      if (std::find(known.begin(), known.end(), n) == known.end()) known.push_back(n);
    for (const auto& n : metric_names(p.config)) computed.push_back(n);
  }
  for (std::size_t i = 0; i < m.size(); ++i) {
    const std::string path = fmt::format("plot.metrics[{}]", i);
    if (!m[i].IsScalar()) throw ConfigError(path, "expected a metric name, got " + scalar_text(m[i]));
    const std::string name = m[i].Scalar();
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    if (std::find(computed.begin(), computed.end(), name) != computed.end())
      throw ConfigError(path, fmt::format("{} does not apply to this experiment's configuration and is not written "
                                          "(`ouroboros metrics FAMILY` says when it is)",
                                          name));
    throw ConfigError(
        path, fmt::format("no metric \"{}\" in this experiment (did you mean {}?)", name, nearest(name, known)));
  }
}

// plot.scatter: {chains, generations, points} (scatter.csv): a family whose models draw points at every sweep point,
// and generations that every point has, each once.
void check_scatter(const ConfigReader& r, Experiment& ex) {
  const YAML::Node n = r.node("plot.scatter");
  if (!n || n.IsNull()) return;
  if (!n.IsMap())
    throw ConfigError("plot.scatter", "expected a mapping such as {generations: [0, 5, 10]}, got " + scalar_text(n));
  for (const auto& p : ex.points)
    if (!p.config.family->has_points())
      throw ConfigError("plot.scatter", fmt::format("the {} family's models draw no points in R^d to scatter "
                                                    "(plot.scatter needs a family with points: `ouroboros keys`)",
                                                    p.config.family->name()));
  ScatterSettings& s = ex.scatter;
  s.on = true;
  s.chains = static_cast<int>(r.integer(key("plot.scatter.chains")));
  s.points = static_cast<int>(r.integer(key("plot.scatter.points")));
  const YAML::Node g = n["generations"];
  if (!g || g.IsNull())
    throw ConfigError("plot.scatter.generations", "missing (the generations to draw, such as [0, 5, 10])");
  if (!g.IsSequence() || g.size() == 0)
    throw ConfigError("plot.scatter.generations", "expected a non-empty list of generations, got " + scalar_text(g));
  const std::string expected = "a generation (an integer in [0, generations])";
  for (std::size_t i = 0; i < g.size(); ++i) {
    const std::string path = fmt::format("plot.scatter.generations[{}]", i);
    if (!g[i].IsScalar()) throw ConfigError(path, "expected " + expected + ", got " + scalar_text(g[i]));
    const double v = as_number(g[i], path, expected);
    if (v != std::floor(v) || v < 0.0 || v > 1e9)
      throw ConfigError(path, fmt::format("expected {}, got {}", expected, g[i].Scalar()));
    const int gen = static_cast<int>(v);
    for (const auto& p : ex.points)
      if (gen > p.config.generations) {
        std::string where;
        for (std::size_t a = 0; a < ex.axes.size(); ++a)
          where += fmt::format("{}{}={}", a ? ", " : " (at sweep point ", ex.axes[a].path, p.labels[a]);
        throw ConfigError(path, fmt::format("generation {} is past the run's last, generation {}{}", gen,
                                            p.config.generations, where.empty() ? "" : where + ")"));
      }
    if (std::find(s.generations.begin(), s.generations.end(), gen) != s.generations.end())
      throw ConfigError(path, fmt::format("generation {} is listed twice", gen));
    s.generations.push_back(gen);
  }
  std::sort(s.generations.begin(), s.generations.end());
}

// summary: {metric, threshold} (sim/analysis/summary.h): one metric that every point has and that moves one way
// under collapse, and a finite threshold; the family's default when absent.
void check_summary(const ConfigReader& r, Experiment& ex) {
  if (!r.given("summary.metric")) {
    if (r.given("summary.threshold")) throw ConfigError("summary.metric", "missing (summary.threshold needs it)");
    ex.summary = ex.points.front().config.family->default_summary();
  } else {
    const YAML::Node m = r.node("summary.metric");
    if (!m.IsScalar()) throw ConfigError("summary.metric", "expected a metric name, got " + scalar_text(m));
    ex.summary.metric = m.Scalar();
    if (!r.given("summary.threshold"))
      throw ConfigError("summary.threshold", "missing (the value that counts as collapse)");
    ex.summary.threshold = r.number(key("summary.threshold"));
  }
  for (const auto& p : ex.points) {
    const auto names = written_metric_names(p.config);
    const auto computed = metric_names(p.config);
    if (std::find(names.begin(), names.end(), ex.summary.metric) == names.end() &&
        std::find(computed.begin(), computed.end(), ex.summary.metric) != computed.end())
      throw ConfigError("summary.metric",
                        fmt::format("{} does not apply to this experiment's {} points and is not written",
                                    ex.summary.metric, p.config.family->name()));
    if (std::find(names.begin(), names.end(), ex.summary.metric) == names.end())
      throw ConfigError("summary.metric",
                        fmt::format("no metric \"{}\" in this experiment's {} points (did you mean "
                                    "{}?)",
                                    ex.summary.metric, p.config.family->name(), nearest(ex.summary.metric, names)));
  }
  if (collapse_direction(ex.summary.metric) == Direction::kNone) {
    // The point's own metrics that do move one way, as its family lists them.
    const PointConfig& first = ex.points.front().config;
    const auto written = written_metric_names(first);
    std::vector<std::string> directed;
    for (const auto& m : first.family->metrics())
      if (m.direction != Direction::kNone && !m.per_component &&
          std::find(written.begin(), written.end(), m.name) != written.end())
        directed.emplace_back(m.name);
    throw ConfigError("summary.metric",
                      fmt::format("{} does not move one way under collapse; choose one of the {} family's metrics "
                                  "that does: {}",
                                  ex.summary.metric, first.family->name(), fmt::join(directed, ", ")));
  }
}

// early_warning (sim/analysis/early_warning.h): detectors the family has, a target false-alarm rate in (0, 1), a
// horizon >= 0, and a calibration share that leaves at least one chain on each side at every point.
void check_early_warning(const ConfigReader& r, Experiment& ex) {
  const YAML::Node n = r.node("early_warning");
  if (!n || n.IsNull()) return;
  if (!n.IsMap()) throw ConfigError("early_warning", "expected a mapping such as {detectors: [diversity, canary]}");
  EarlyWarningSettings& s = ex.early_warning;
  s.on = true;
  const PointConfig& first = ex.points.front().config;
  std::vector<std::string> offered;
  for (const auto& d : first.family->detectors()) offered.push_back(d.name);
  if (const YAML::Node d = n["detectors"]; d && !d.IsNull()) {
    if (!d.IsSequence() || d.size() == 0)
      throw ConfigError("early_warning.detectors",
                        "expected a list of detectors, some of " + fmt::format("{}", fmt::join(offered, ", ")));
    for (std::size_t i = 0; i < d.size(); ++i) {
      const std::string path = fmt::format("early_warning.detectors[{}]", i);
      if (!d[i].IsScalar()) throw ConfigError(path, "expected a detector name, got " + scalar_text(d[i]));
      const std::string name = d[i].Scalar();
      if (std::find(offered.begin(), offered.end(), name) == offered.end())
        throw ConfigError(path, fmt::format("no detector \"{}\" (the {} family has {})", name, first.family->name(),
                                            fmt::join(offered, ", ")));
      if (std::find(s.detectors.begin(), s.detectors.end(), name) != s.detectors.end())
        throw ConfigError(path, fmt::format("{} is listed twice", name));
      s.detectors.push_back(name);
    }
  }
  s.false_alarm = r.number(key("early_warning.false_alarm"));
  s.horizon = static_cast<int>(r.integer(key("early_warning.horizon")));
  s.calibration_share = r.number(key("early_warning.calibration_share"));
  s.previous = r.choice(key("early_warning.baseline")) == "previous";
  for (const auto& p : ex.points) {
    const auto cal = static_cast<std::int64_t>(std::floor(s.calibration_share * static_cast<double>(p.config.chains)));
    if (cal < 1 || cal >= p.config.chains)
      throw ConfigError("early_warning.calibration_share",
                        fmt::format("{} of {} chains leaves no chain to {} (each side needs at least one)",
                                    s.calibration_share, p.config.chains, cal < 1 ? "calibrate on" : "evaluate"));
    if (p.config.generations < 2)
      throw ConfigError("early_warning",
                        "needs generations >= 2 (a detector compares a generation with an earlier one)");
  }
}

}  // namespace config_detail
}  // namespace ouro

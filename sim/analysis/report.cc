#include "sim/analysis/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sim/analysis/summary.h"
#include "sim/io/output.h"

namespace ouro {
namespace {

namespace fs = std::filesystem;

// A CSV as written by CsvWriter: a header, then rows; fields with a comma,
// quote or newline are quoted with doubled quotes.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  int column(const std::string& name, const std::string& file) const {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) throw ReportError(fmt::format("{} has no column \"{}\"", file, name));
    return static_cast<int>(it - header.begin());
  }
};

Table read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ReportError(fmt::format("cannot read {}", path));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Table t;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      row.push_back(field), field.clear();
    } else if (c == '\n') {
      row.push_back(field), field.clear();
      t.rows.push_back(row);
      row.clear();
    } else {
      field += c;
    }
  }
  if (t.rows.empty()) throw ReportError(fmt::format("{} is empty", path));
  t.header = t.rows.front();
  t.rows.erase(t.rows.begin());
  return t;
}

double value(const std::string& s) {
  if (s.empty()) return std::numeric_limits<double>::quiet_NaN();
  if (s == "inf") return std::numeric_limits<double>::infinity();
  if (s == "-inf") return -std::numeric_limits<double>::infinity();
  return std::stod(s);
}

// "0.42 [0.40, 0.44]"; an interval without a spread prints its mean only.
std::string with_interval(double mean, double lo, double hi) {
  if (std::isnan(mean)) return "–";
  if (!std::isfinite(lo) || !std::isfinite(hi)) return fmt::format("{:.4g}", mean);
  return fmt::format("{:.4g} [{:.4g}, {:.4g}]", mean, lo, hi);
}

// The early-warning table (sim/analysis/early_warning.h), when the run has one.
std::string early_warning_section(const std::string& dir, const std::vector<std::string>& axes) {
  const std::string path = dir + "/early_warning.csv";
  if (!fs::exists(path)) return "";
  const Table t = read_csv(path);
  auto col = [&](const char* name) { return t.column(name, path); };
  const int c_det = col("detector"), c_metric = col("metric"), c_units = col("units"), c_thr = col("threshold"),
            c_base = col("baseline"), c_h = col("horizon"), c_target = col("target_false_alarm"),
            c_coll = col("collapsed_chains"), c_fa = col("false_alarm_rate"), c_falo = col("false_alarm_lo"),
            c_fahi = col("false_alarm_hi"), c_ti = col("timely_rate"), c_tilo = col("timely_lo"),
            c_tihi = col("timely_hi"), c_late = col("late_rate"), c_miss = col("miss_rate"), c_lq1 = col("lead_q25"),
            c_lq2 = col("lead_q50"), c_lq3 = col("lead_q75"), c_alarm = col("alarm_q50"),
            c_chc = col("chain_collapse_q50"), c_pc = col("collapse_generation");
  if (t.rows.empty()) return "";
  const auto& f = t.rows.front();
  std::string md = fmt::format(
      "\n## Early warning\n\nDetectors see only the generations' own samples and models and a fixed real "
      "validation set, never the truth. Each fires when its score (the move of its statistic from the {} "
      "generation's value, in the units shown) reaches a threshold calibrated on the first part of each point's "
      "chains to a false-alarm rate of {} (early_warning.csv has the counts); the other chains judge it. A chain "
      "collapses at the first generation its summary "
      "metric reaches the threshold; an alarm more than {} generations before that (or in a chain that never "
      "collapses) is false, one within them is timely, one after it late; lead = collapse − alarm generation. "
      "Rates with Wilson 95% intervals; definitions: README, \"Early warning\".\n\n",
      f.at(c_base) == "previous" ? "previous" : "first fitted", f.at(c_target), f.at(c_h));
  md += "|";
  for (const auto& a : axes) md += fmt::format(" {} |", a);
  md +=
      " detector (metric) | threshold | collapsed chains | false alarms | timely | late | missed | lead q25 / median / "
      "q75 | median alarm / chain collapse / point collapse |\n|";
  for (std::size_t a = 0; a < axes.size(); ++a) md += "---|";
  md += "---|---|---|---|---|---|---|---|---|\n";
  auto pct = [](const std::string& v) { return v.empty() ? std::string("–") : fmt::format("{:.1f}%", 100 * value(v)); };
  auto num = [](const std::string& v) { return v.empty() ? std::string("–") : fmt::format("{:.4g}", value(v)); };
  for (const auto& r : t.rows) {
    md += "|";
    for (std::size_t a = 0; a < axes.size(); ++a) md += fmt::format(" {} |", r.at(a));
    md += fmt::format(" {} (`{}`) | {} {} | {} | {} [{}, {}] | {} [{}, {}] | {} | {} | {} / {} / {} | {} / {} / {} |\n",
                      r.at(c_det), r.at(c_metric), r.at(c_thr).empty() ? "never fires" : num(r.at(c_thr)),
                      r.at(c_thr).empty() ? "" : r.at(c_units), r.at(c_coll), pct(r.at(c_fa)), pct(r.at(c_falo)),
                      pct(r.at(c_fahi)), pct(r.at(c_ti)), pct(r.at(c_tilo)), pct(r.at(c_tihi)), pct(r.at(c_late)),
                      pct(r.at(c_miss)), num(r.at(c_lq1)), num(r.at(c_lq2)), num(r.at(c_lq3)), num(r.at(c_alarm)),
                      num(r.at(c_chc)), r.at(c_pc).empty() ? "never" : r.at(c_pc));
  }
  return md;
}

}  // namespace

std::string write_report(const std::string& dir) {
  nlohmann::json manifest;
  {
    std::ifstream in(dir + "/manifest.json");
    if (!in) throw ReportError(fmt::format("{} is not an ouroboros run folder (no manifest.json)", dir));
    try {
      in >> manifest;
    } catch (const std::exception&) {
      throw ReportError(fmt::format("{}/manifest.json is not readable JSON", dir));
    }
  }
  if (manifest.value("status", "") != "complete")
    throw ReportError(fmt::format("the run in {} is not complete (status {}); finish it with `ouroboros resume {}`",
                                  dir, manifest.value("status", "?"), dir));
  const Table points = read_csv(dir + "/summary.csv");
  const Table chains = read_csv(dir + "/summary_chains.csv");
  const std::string sp = dir + "/summary.csv", sc = dir + "/summary_chains.csv";
  const int c_point = points.column("point", sp), c_metric = points.column("metric", sp),
            c_dir = points.column("direction", sp), c_thr = points.column("threshold", sp),
            c_coll = points.column("collapse_generation", sp), c_last = points.column("last_mean", sp),
            c_lo = points.column("last_lo", sp), c_hi = points.column("last_hi", sp),
            c_auc = points.column("auc_mean", sp), c_alo = points.column("auc_lo", sp),
            c_ahi = points.column("auc_hi", sp), c_real = points.column("real_samples", sp),
            c_gen = points.column("generations", sp);
  // The swept keys: the columns before "point".
  const std::vector<std::string> axes(points.header.begin(), points.header.begin() + c_point);

  // Per point, every chain's last value, in chain order.
  std::map<int, std::vector<double>> last_of;
  const int k_point = chains.column("point", sc), k_chain = chains.column("chain", sc),
            k_last = chains.column("last", sc);
  for (const auto& r : chains.rows) {
    auto& v = last_of[std::stoi(r.at(k_point))];
    const auto i = static_cast<std::size_t>(std::stoll(r.at(k_chain)));
    if (v.size() <= i) v.resize(i + 1, std::numeric_limits<double>::quiet_NaN());
    v[i] = value(r.at(k_last));
  }

  // Rank: the last generation's mean, best first (high for a metric that
  // shrinks under collapse, low for one that grows); no value ranks last.
  // A ratio to the truth's value is ranked by the median chain's distance
  // from 1 in ratio, |ln v|: overshooting is no closer to the truth than
  // falling short, and the mean of such a ratio can stay near 1 while most
  // chains have collapsed (a few chains that grew carry it).
  const std::string metric = points.rows.front().at(c_metric), direction = points.rows.front().at(c_dir);
  const bool down = direction == "down", ratio = truth_ratio(metric);
  auto median_log_distance = [&](int p) {
    std::vector<double> d;
    for (double v : last_of[p])
      if (!std::isnan(v)) d.push_back(v > 0.0 ? std::abs(std::log(v)) : std::numeric_limits<double>::infinity());
    if (d.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::sort(d.begin(), d.end());
    const std::size_t m = d.size() / 2;
    return d.size() % 2 ? d[m] : 0.5 * (d[m - 1] + d[m]);
  };
  std::vector<std::size_t> order(points.rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto score = [&](std::size_t i) {
    if (ratio) return -median_log_distance(std::stoi(points.rows[i].at(c_point)));
    const double v = value(points.rows[i].at(c_last));
    if (std::isnan(v)) return -std::numeric_limits<double>::infinity();
    return down ? v : -v;
  };
  auto ranked_before = [&](std::size_t a, std::size_t b) {
    const double sa = score(a), sb = score(b);
    return !std::isnan(sa) && (std::isnan(sb) || sa > sb);
  };
  std::stable_sort(order.begin(), order.end(), ranked_before);
  const int best = std::stoi(points.rows[order.front()].at(c_point));

  std::string md = fmt::format("# Report: {}\n\n", manifest["config"].value("name", dir));
  md += fmt::format(
      "Summary metric `{}` ({}), collapse threshold {}: a point has collapsed at the first generation whose mean "
      "over chains is {} the threshold. {} chains per point, {} generations; backend {}. Definitions: README, "
      "\"Summaries and the report\".\n\n",
      metric,
      ratio  ? "a ratio to the truth's value, which shrinks under collapse: closest to 1 is best, measured per "
               "chain as |ln value|, so that overshooting the truth ranks no better than falling short of it"
      : down ? "shrinks under collapse: higher is better"
             : "grows under collapse: lower is better",
      points.rows.front().at(c_thr), down ? "at or below" : "at or above",
      manifest["points"].empty() ? 0 : manifest["points"][0].value("chains", 0), points.rows.front().at(c_gen),
      manifest.value("backend", "?"));
  md += fmt::format(
      "Ranked by `{}` at the last generation{}. *vs best*: the mean over chains of (this point − the "
      "best point), chain by chain on common random numbers, with its 95% interval; ≈ marks a point "
      "whose interval contains 0 (not distinguishable from the best with these chains).\n\n",
      metric, ratio ? ": the median over chains of |ln value|, smallest first (its own column)" : "");
  md += "| rank |";
  for (const auto& a : axes) md += fmt::format(" {} |", a);
  md += fmt::format(
      " collapse generation | {} at last generation [95% CI] |{} area under curve [95% CI] | real samples "
      "per chain | vs best [95% CI] |\n|---|",
      metric, ratio ? " median chain's \\|ln value\\| |" : "");
  for (std::size_t a = 0; a < axes.size(); ++a) md += "---|";
  md += ratio ? "---|---|---|---|---|---|\n" : "---|---|---|---|---|\n";
  for (std::size_t k = 0; k < order.size(); ++k) {
    const auto& r = points.rows[order[k]];
    const int p = std::stoi(r.at(c_point));
    md += fmt::format("| {} |", k + 1);
    for (std::size_t a = 0; a < axes.size(); ++a) md += fmt::format(" {} |", r.at(a));
    std::string vs = "(best)";
    if (p != best) {
      const Interval d = paired_difference(last_of[p], last_of[best]);
      vs = with_interval(d.mean, d.lo, d.hi) + fmt::format(" (n = {})", d.n);
      if (d.lo <= 0.0 && d.hi >= 0.0) vs = "≈ " + vs;
    }
    md += fmt::format(" {} | {} |{} {} | {} | {} |\n", r.at(c_coll).empty() ? "never" : r.at(c_coll),
                      with_interval(value(r.at(c_last)), value(r.at(c_lo)), value(r.at(c_hi))),
                      ratio ? fmt::format(" {:.4g} |", median_log_distance(p)) : "",
                      with_interval(value(r.at(c_auc)), value(r.at(c_alo)), value(r.at(c_ahi))), r.at(c_real), vs);
  }
  md += early_warning_section(dir, axes);
  for (const char* png : {"collapse.png"})
    if (fs::exists(fs::path(dir) / png)) md += fmt::format("\n![the collapse curves of every point]({})\n", png);
  md += fmt::format("\nWritten by ouroboros {} from {}/summary.csv and summary_chains.csv.\n",
                    manifest.value("ouroboros_version", "?"), dir);
  std::ofstream(dir + "/report.md") << md;
  return md;
}

}  // namespace ouro

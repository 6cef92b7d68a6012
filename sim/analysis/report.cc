#include "sim/analysis/report.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sim/analysis/report_inputs.h"
#include "sim/analysis/summary.h"
#include "sim/io/run_folder.h"

namespace ouro {
namespace {

// The run folder, read and checked (sim/analysis/report_inputs.h).
using report_detail::check_run;
using report_detail::damaged;
using report_detail::Run;
using report_detail::Table;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- the report ------------------------------------------------------------------------------------------------

double value(const std::string& s) {
  if (s.empty()) return kNaN;
  if (s == "inf") return kInf;
  if (s == "-inf") return -kInf;
  double v = kNaN;
  std::from_chars(s.data(), s.data() + s.size(), v);  // checked whole (Fields::value, report_inputs.cc)
  return v;
}

// "0.42 [0.40, 0.44]"; an interval without a spread prints its mean only.
std::string with_interval(double mean, double lo, double hi) {
  if (std::isnan(mean)) return "–";
  if (!std::isfinite(lo) || !std::isfinite(hi)) return fmt::format("{:.4g}", mean);
  return fmt::format("{:.4g} [{:.4g}, {:.4g}]", mean, lo, hi);
}

// "20", or "10–20" when the points differ.
std::string range_text(long long lo, long long hi) {
  return lo == hi ? fmt::format("{}", lo) : fmt::format("{}–{}", lo, hi);
}

// The early-warning table (sim/analysis/early_warning.h), when the run has one.
std::string early_warning_section(const Table& t, const std::vector<std::string>& axes) {
  if (t.rows.empty()) return "";
  auto col = [&](const char* name) { return static_cast<std::size_t>(t.column(name)); };
  const std::size_t c_det = col("detector"), c_metric = col("metric"), c_units = col("units"), c_thr = col("threshold"),
                    c_base = col("baseline"), c_h = col("horizon"), c_target = col("target_false_alarm"),
                    c_coll = col("collapsed_chains"), c_fa = col("false_alarm_rate"), c_falo = col("false_alarm_lo"),
                    c_fahi = col("false_alarm_hi"), c_ti = col("timely_rate"), c_tilo = col("timely_lo"),
                    c_tihi = col("timely_hi"), c_late = col("late_rate"), c_miss = col("miss_rate"),
                    c_lq1 = col("lead_q25"), c_lq2 = col("lead_q50"), c_lq3 = col("lead_q75"),
                    c_alarm = col("alarm_q50"), c_chc = col("chain_collapse_q50"), c_pc = col("collapse_generation");
  const auto& f = t.rows.front().fields;
  std::string md = fmt::format(
      "\n## Early warning\n\nDetectors see only the generations' own samples and models and a fixed real "
      "validation set, never the truth. Each fires when its score (the move of its statistic from the {} "
      "generation's value, in the units shown) reaches a threshold calibrated on the first part of each point's "
      "chains to a false-alarm rate of {} (early_warning.csv has the counts); the other chains judge it. A chain "
      "collapses at the first generation its summary "
      "metric reaches the threshold; an alarm more than {} generations before that (or in a chain that never "
      "collapses) is false, one within them is timely, one after it late; lead = collapse − alarm generation. "
      "Rates with Wilson 95% intervals; definitions: README, \"Early warning\".\n\n",
      f[c_base] == "previous" ? "previous" : "first fitted", f[c_target], f[c_h]);
  md += "|";
  for (const auto& a : axes) md += fmt::format(" {} |", a);
  md +=
      " detector (metric) | threshold | collapsed chains | false alarms | timely | late | missed | lead q25 / median / "
      "q75 | median alarm / chain collapse / point collapse |\n|";
  for (std::size_t a = 0; a < axes.size(); ++a) md += "---|";
  md += "---|---|---|---|---|---|---|---|---|\n";
  auto pct = [](const std::string& v) { return v.empty() ? std::string("–") : fmt::format("{:.1f}%", 100 * value(v)); };
  auto num = [](const std::string& v) { return v.empty() ? std::string("–") : fmt::format("{:.4g}", value(v)); };
  for (const auto& row : t.rows) {
    const auto& r = row.fields;
    md += "|";
    for (std::size_t a = 0; a < axes.size(); ++a) md += fmt::format(" {} |", r[a]);
    md +=
        fmt::format(" {} (`{}`) | {} {} | {} | {} [{}, {}] | {} [{}, {}] | {} | {} | {} / {} / {} | {} / {} / {} |\n",
                    r[c_det], r[c_metric], r[c_thr].empty() ? "never fires" : num(r[c_thr]),
                    r[c_thr].empty() ? "" : r[c_units], r[c_coll], pct(r[c_fa]), pct(r[c_falo]), pct(r[c_fahi]),
                    pct(r[c_ti]), pct(r[c_tilo]), pct(r[c_tihi]), pct(r[c_late]), pct(r[c_miss]), num(r[c_lq1]),
                    num(r[c_lq2]), num(r[c_lq3]), num(r[c_alarm]), num(r[c_chc]), r[c_pc].empty() ? "never" : r[c_pc]);
  }
  return md;
}

}  // namespace

std::string report_markdown(const RunFolderText& in) {
  const Run run = check_run(in);
  const Table& points = run.summary;
  const std::vector<std::string>& axes = run.axes;
  auto col = [&](const char* name) { return static_cast<std::size_t>(points.column(name)); };
  const std::size_t c_point = col("point"), c_metric = col("metric"), c_dir = col("direction"),
                    c_thr = col("threshold"), c_coll = col("collapse_generation"), c_last = col("last_mean"),
                    c_lo = col("last_lo"), c_hi = col("last_hi"), c_auc = col("auc_mean"), c_alo = col("auc_lo"),
                    c_ahi = col("auc_hi"), c_real = col("real_samples"), c_gen = col("generations");
  const std::vector<std::string>& head = points.rows.front().fields;

  // Rank: the last generation's mean, best first (high for a metric that
  // shrinks under collapse, low for one that grows); no value ranks last.
  // A ratio to the truth's value is ranked by the median chain's distance
  // from 1 in ratio, |ln v|: overshooting is no closer to the truth than
  // falling short, and the mean of such a ratio can stay near 1 while most
  // chains have collapsed (a few chains that grew carry it).
  const std::string& metric = head[c_metric];
  const bool down = head[c_dir] == "down", ratio = truth_ratio(metric);
  auto point_of = [&](std::size_t i) { return static_cast<std::size_t>(std::stoll(points.rows[i].fields[c_point])); };
  auto median_log_distance = [&](std::size_t p) {
    std::vector<double> d;
    for (double v : run.points[p].last)
      if (!std::isnan(v)) d.push_back(v > 0.0 ? std::abs(std::log(v)) : kInf);
    if (d.empty()) return kNaN;
    std::sort(d.begin(), d.end());
    const std::size_t m = d.size() / 2;
    return d.size() % 2 ? d[m] : 0.5 * (d[m - 1] + d[m]);
  };
  std::vector<std::size_t> order(points.rows.size());
  std::vector<double> score(points.rows.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    order[i] = i;
    const double v = value(points.rows[i].fields[c_last]);
    score[i] = ratio ? -median_log_distance(point_of(i)) : std::isnan(v) ? -kInf : down ? v : -v;
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return !std::isnan(score[a]) && (std::isnan(score[b]) || score[a] > score[b]);
  });
  const std::size_t best = point_of(order.front());

  long long chains_lo = std::numeric_limits<long long>::max(), chains_hi = 0;
  long long gen_lo = std::numeric_limits<long long>::max(), gen_hi = 0;
  for (std::size_t p = 0; p < run.points.size(); ++p) {
    chains_lo = std::min<long long>(chains_lo, run.manifest.points[p].chains);
    chains_hi = std::max<long long>(chains_hi, run.manifest.points[p].chains);
    const long long g = std::stoll(run.points[p].row->fields[c_gen]);
    gen_lo = std::min(gen_lo, g);
    gen_hi = std::max(gen_hi, g);
  }

  std::string md = fmt::format("# Report: {}\n\n", run.manifest.name);
  md += fmt::format(
      "Summary metric `{}` ({}), collapse threshold {}: a point has collapsed at the first generation whose mean "
      "over chains is {} the threshold. {} chains per point, {} generations; backend {}. Definitions: README, "
      "\"Summaries and the report\".\n\n",
      metric,
      ratio  ? "a ratio to the truth's value, which shrinks under collapse: closest to 1 is best, measured per "
               "chain as |ln value|, so that overshooting the truth ranks no better than falling short of it"
      : down ? "shrinks under collapse: higher is better"
             : "grows under collapse: lower is better",
      head[c_thr], down ? "at or below" : "at or above", range_text(chains_lo, chains_hi), range_text(gen_lo, gen_hi),
      run.manifest.backend);
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
    const auto& r = points.rows[order[k]].fields;
    const std::size_t p = point_of(order[k]);
    md += fmt::format("| {} |", k + 1);
    for (std::size_t a = 0; a < axes.size(); ++a) md += fmt::format(" {} |", r[a]);
    std::string vs = "(best)";
    if (p != best) {
      const Interval d = paired_difference(run.points[p].last, run.points[best].last);
      vs = with_interval(d.mean, d.lo, d.hi) + fmt::format(" (n = {})", d.n);
      if (d.lo <= 0.0 && d.hi >= 0.0) vs = "≈ " + vs;
    }
    md += fmt::format(" {} | {} |{} {} | {} | {} |\n", r[c_coll].empty() ? "never" : r[c_coll],
                      with_interval(value(r[c_last]), value(r[c_lo]), value(r[c_hi])),
                      ratio ? fmt::format(" {:.4g} |", median_log_distance(p)) : "",
                      with_interval(value(r[c_auc]), value(r[c_alo]), value(r[c_ahi])), r[c_real], vs);
  }
  if (run.early) md += early_warning_section(*run.early, axes);
  if (in.has_plot) md += "\n![the collapse curves of every point](collapse.png)\n";
  md += fmt::format("\nWritten by ouroboros {} from {}/summary.csv and summary_chains.csv.\n", run.manifest.version,
                    in.dir);
  return md;
}

std::string write_report(const std::string& dir) {
  const RunFolderText files = read_run_folder(dir);
  // The run's state with its lock (sim/io/run_folder.h): a folder that says running while nobody writes it was left
  // by a process that could not say how it ended.
  const RunState state = read_run_state(dir);
  const std::string why = state.reason.empty() ? "" : " (" + state.reason + ")";
  if (state.status == "running")
    damaged(fmt::format("the run in {} is being written now by process {}; report it once it is complete", dir,
                        state.live.value_or(0)));
  if (state.status == "interrupted")
    damaged(
        fmt::format("the run in {} was interrupted before it finished{}; finish it with `ouroboros resume {}`, "
                    "then report it",
                    dir, why, dir));
  if (state.status == "failed")
    damaged(
        fmt::format("the run in {} failed{} with no checkpoint to resume from; run it again with --force", dir, why));
  const std::string md = report_markdown(files);
  // A temporary file renamed into place: a reader never sees half a report, and a failed write leaves the old one.
  const std::string path = dir + "/report.md", tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) damaged(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
  const bool written = std::fwrite(md.data(), 1, md.size(), f) == md.size();
  const int err = errno;
  if (std::fclose(f) != 0 || !written) {
    std::remove(tmp.c_str());
    damaged(fmt::format("cannot write {}: {}", tmp, std::strerror(written ? errno : err)));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp.c_str());
    damaged(fmt::format("cannot write {}: {}", path, std::strerror(e)));
  }
  return md;
}

}  // namespace ouro

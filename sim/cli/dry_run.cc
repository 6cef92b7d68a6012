#include "sim/cli/dry_run.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include <fmt/format.h>

#include "sim/families/family.h"
#include "sim/io/per_chain_h5.h"

namespace ouro {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

struct Estimate {
  std::optional<double> seconds;  // the point's wall time on this process
  std::string note;               // how it was found, or why there is none
};

// The seconds generations k+1..G take when generation g costs a + b g: the pooled regimes' cost grows with the pool
// (accumulate fits on n g points), replace's does not (b = 0 within noise).
double extrapolate(const std::vector<double>& t, int G) {
  const int k = static_cast<int>(t.size());
  double a = 0.0, b = 0.0;
  if (k >= 3) {  // least squares over g = 2..k (generation 1 warms caches and allocates)
    double sg = 0, st = 0, sgg = 0, sgt = 0, m = 0;
    for (int g = 2; g <= k; ++g, ++m) sg += g, st += t[g - 1], sgg += double(g) * g, sgt += g * t[g - 1];
    const double den = m * sgg - sg * sg;
    b = den > 0 ? std::max(0.0, (m * sgt - sg * st) / den) : 0.0;
    a = (st - b * sg) / m;
    if (a < 0.0) a = 0.0;
  } else {
    a = t.back();
  }
  const double gk = k, gG = G;
  return (gG - gk) * a + b * (gG * (gG + 1.0) / 2.0 - gk * (gk + 1.0) / 2.0);
}

// The point's time on this process: its first chains (at most 32, as many as fit kDryRunBytes; one when a
// generation of one chain takes a quarter of the budget for all of them) run for as many generations as `budget`
// seconds allow (every one when they fit; at least three, or one of a single long chain), the rest extrapolated from
// the measured cost's growth, scaled to the rank's chains.
Estimate calibrate(const PointConfig& c, const PointPlan& plan, const std::string& backend, int threads,
                   double budget) {
  std::int64_t n = std::max<std::int64_t>(1, std::min<std::int64_t>(plan.batch, 32));
  while (n > 1 && plan.fixed_bytes + plan.chain_bytes * static_cast<double>(n) > kDryRunBytes) n /= 2;
  const double need = plan.fixed_bytes + plan.chain_bytes * static_cast<double>(n);
  if (need > kDryRunBytes)
    return {std::nullopt, fmt::format("no estimate: one chain needs {}, more than a dry run uses ({})",
                                      format_bytes(need), format_bytes(kDryRunBytes))};
  if (budget <= 0.0) return {std::nullopt, "no estimate: the dry run's time for calibrations was spent"};
  // A first generation of one chain says whether the point's generations are long (a large data.samples or
  // dimension): then that chain alone is measured, as few generations as the budget allows (at least one), so the
  // dry run takes about one chain-generation at most beyond its budget, not three generations of 32 chains.
  {
    auto probe = make_family_run(c, backend, threads, ChainBlock{0, 1});
    std::vector<double> metrics(metric_names(c).size());
    const auto t0 = Clock::now();
    probe->start(metrics.data());
    probe->advance(1, metrics.data());
    if (seconds(t0, Clock::now()) * static_cast<double>(n) > budget / 4.0) n = 1;
  }
  auto run = make_family_run(c, backend, threads, ChainBlock{0, n});
  std::vector<double> metrics(metric_names(c).size() * static_cast<std::size_t>(n));
  const auto t0 = Clock::now();
  run->start(metrics.data());
  auto last = Clock::now();
  const double start = seconds(t0, last);
  std::vector<double> step;
  for (int g = 1; g <= c.generations; ++g) {
    run->advance(g, metrics.data());
    const auto now = Clock::now();
    step.push_back(seconds(last, now));
    last = now;
    if ((g >= 3 || n == 1) && seconds(t0, now) > budget) break;
  }
  double chain_seconds = start;
  for (double t : step) chain_seconds += t;
  const int measured = static_cast<int>(step.size());
  if (measured < c.generations) chain_seconds += extrapolate(step, c.generations);
  const double per_rank = static_cast<double>(plan.ranks.front().count);
  const std::string how =
      measured == c.generations
          ? fmt::format("measured on {} chain{}", n, n == 1 ? "" : "s")
          : fmt::format("{} of {} generations measured on {} chain{}, the rest extrapolated from their cost's growth",
                        measured, c.generations, n, n == 1 ? "" : "s");
  return {per_rank / static_cast<double>(n) * chain_seconds, how};
}

}  // namespace

std::string dry_run_report(const Experiment& ex, const std::vector<PointPlan>& plans, const RunOptions& opt,
                           int ranks) {
  std::string s = fmt::format("plan: {} sweep point{} on the {} backend, {} rank{}, {} per process\n", ex.points.size(),
                              ex.points.size() == 1 ? "" : "s", opt.backend, ranks, ranks == 1 ? "" : "s",
                              format_bytes(plans.front().budget));
  const auto t0 = Clock::now();
  double total = 0.0;
  std::size_t missing = 0;
  for (std::size_t p = 0; p < ex.points.size(); ++p) {
    const auto& c = ex.points[p].config;
    const auto& pl = plans[p];
    // Each point gets an equal share of what is left of the calibration time.
    const double left = kDryRunSeconds - seconds(t0, Clock::now());
    const Estimate e = calibrate(c, pl, opt.backend, opt.threads, left / static_cast<double>(ex.points.size() - p));
    if (e.seconds) total += *e.seconds;
    else ++missing;
    std::string label;
    for (std::size_t a = 0; a < ex.axes.size(); ++a)
      label += fmt::format("{}{}={}", a ? ", " : "", ex.axes[a].path, ex.points[p].labels[a]);
    s += fmt::format(
        "point {}{}: {} chains x {} generations; per rank {} chains in {} batch{} of {}; memory {} "
        "(backend {} + {} per chain) + {} of per-chain values on rank 0; {}\n",
        p + 1, label.empty() ? "" : " (" + label + ")", c.chains, c.generations, pl.ranks.front().count, pl.batches,
        pl.batches == 1 ? "" : "es", pl.batch,
        format_bytes(pl.fixed_bytes + pl.chain_bytes * static_cast<double>(pl.batch)), format_bytes(pl.fixed_bytes),
        format_bytes(pl.chain_bytes), format_bytes(pl.table_bytes),
        e.seconds ? fmt::format("about {:.1f} s ({})", *e.seconds, e.note) : e.note);
  }
  if (opt.per_chain) {
    double bytes = 0.0, values = 0.0;
    for (const auto& p : ex.points) {
      const int M = static_cast<int>(written_metrics(p.config).size());
      bytes += PerChainH5::point_bytes(p.config.chains, p.config.generations, M);
      values += (p.config.generations + 1.0) * static_cast<double>(p.config.chains) * M;
    }
    s += opt.per_chain_format == "hdf5"
             ? fmt::format("per_chain.h5: at most {} (its values uncompressed; deflate makes it smaller)\n",
                           format_bytes(bytes))
             : fmt::format("per_chain.csv: about {} (about 20 bytes a value, {:.3g} values)\n",
                           format_bytes(20.0 * values), values);
  }
  if (ex.scatter.on) {
    double rows = 0.0;
    int dim = 0;
    for (std::size_t p = 0; p < ex.points.size(); ++p) {
      const auto& c = ex.points[p].config;
      const auto chains = std::min<std::int64_t>(ex.scatter.chains, plans[p].ranks.front().count);
      rows += static_cast<double>(ex.scatter.generations.size() * chains) * ex.scatter.points;
      dim = std::max(dim, c.family->point_dim(c));
    }
    s += fmt::format("scatter.csv: about {} ({:.3g} rows of {} coordinate{}, about 20 bytes each)\n",
                     format_bytes(rows * (20.0 * dim + 10.0)), rows, dim, dim == 1 ? "" : "s");
  }
  if (missing == 0)
    s += fmt::format("estimated run time: about {:.1f} s (from a short calibration on this process)\n", total);
  else if (missing < ex.points.size())
    s += fmt::format("estimated run time: more than {:.1f} s ({} of {} points have no estimate)\n", total, missing,
                     ex.points.size());
  else s += "estimated run time: unknown (no point has an estimate)\n";
  return s;
}

}  // namespace ouro

#include "sim/analysis/early_warning.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "sim/analysis/aggregate.h"
#include "sim/io/output.h"

namespace ouro {

std::vector<DetectorSpec> chosen_detectors(const PointConfig& c, const EarlyWarningSettings& s) {
  const std::vector<DetectorSpec> all = c.family->detectors();
  if (s.detectors.empty()) return all;
  std::vector<DetectorSpec> out;
  for (const auto& name : s.detectors)
    for (const auto& d : all)
      if (d.name == name) out.push_back(d);
  return out;
}

void wilson95(std::int64_t k, std::int64_t n, double& lo, double& hi) {
  if (n <= 0) {
    lo = hi = std::numeric_limits<double>::quiet_NaN();
    return;
  }
  const double z = 1.96, p = static_cast<double>(k) / n, nn = static_cast<double>(n);
  const double centre = (p + z * z / (2 * nn)) / (1 + z * z / nn);
  const double half = z / (1 + z * z / nn) * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn));
  lo = std::max(0.0, centre - half);
  hi = std::min(1.0, centre + half);
}

EarlyWarningTracker::EarlyWarningTracker(const EarlyWarningSettings& s, std::vector<DetectorSpec> detectors,
                                         std::vector<int> metric_index, int summary_index, Direction dir,
                                         double threshold, std::int64_t chains, int generations)
    : s_(s),
      det_(std::move(detectors)),
      index_(std::move(metric_index)),
      summary_index_(summary_index),
      dir_(dir),
      threshold_(threshold),
      chains_(chains),
      generations_(generations),
      collapse_(chains, -1),
      ref_(det_.size() * chains, std::numeric_limits<double>::quiet_NaN()),
      observed_(det_.size() * chains, 0),
      runmax_(det_.size() * chains * (generations + 1), -std::numeric_limits<double>::infinity()) {}

double EarlyWarningTracker::bytes(std::int64_t chains, int generations, int detectors) {
  // The tracker, and evaluate()'s sorted scores of the calibration chains.
  return static_cast<double>(chains) * (4.0 + detectors * (9.0 + 8.0 * (generations + 1)) + 8.0 * generations);
}

void EarlyWarningTracker::add(int g, const double* v) {
  const std::int64_t N = chains_;
  const std::size_t G1 = static_cast<std::size_t>(generations_) + 1;
  const double* truth_metric = v + static_cast<std::size_t>(summary_index_) * N;
  for (std::int64_t i = 0; i < N; ++i) {
    const double x = truth_metric[i];
    const bool beyond = dir_ == Direction::kDown ? x <= threshold_ : x >= threshold_;  // NaN: neither
    if (g >= 1 && collapse_[i] < 0 && beyond) collapse_[i] = g;
  }
  for (std::size_t k = 0; k < det_.size(); ++k) {
    const DetectorSpec& d = det_[k];
    const double* x = v + static_cast<std::size_t>(index_[k]) * N;
    for (std::int64_t i = 0; i < N; ++i) {
      const double f = d.log ? d.scale * std::log(x[i]) : d.scale * x[i];
      double& ref = ref_[k * N + i];
      double* run = runmax_.data() + (k * N + i) * G1;
      if (g >= 1) run[g] = run[g - 1];
      // Generation 0 is the truth, which no practitioner sees; generation 1
      // (the first fit, on real data) is the first baseline.
      if (g >= 2) {
        const double score = d.sign * (f - ref);
        if (!std::isnan(score) && score > run[g]) run[g] = score;
      }
      if (g == 1) observed_[k * N + i] = std::isfinite(f) ? 1 : 0;
      if (g == 1 || (g >= 2 && s_.previous)) ref = f;
    }
  }
}

void EarlyWarningTracker::archive(kernels::StateArchive& ar) {
  ar.vec("ew_collapse", collapse_);
  ar.vec("ew_ref", ref_);
  ar.vec("ew_observed", observed_);
  ar.vec("ew_runmax", runmax_);
}

namespace {

// First generation >= 2 at which chain's running maximum reaches tau, or -1.
int first_alarm(const double* run, int generations, double tau) {
  if (generations < 2 || !(run[generations] >= tau)) return -1;
  int lo = 2, hi = generations;  // run is nondecreasing in g
  while (lo < hi) {
    const int mid = lo + (hi - lo) / 2;
    if (run[mid] >= tau) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

bool is_false_alarm(int alarm, int collapse, int horizon) {
  return alarm >= 0 && (collapse < 0 || alarm < collapse - horizon);
}

}  // namespace

std::vector<DetectorResult> EarlyWarningTracker::evaluate() const {
  const std::int64_t N = chains_;
  const int G = generations_;
  const std::size_t G1 = static_cast<std::size_t>(G) + 1;
  const std::int64_t C = static_cast<std::int64_t>(std::floor(s_.calibration_share * static_cast<double>(N)));
  std::vector<DetectorResult> out;
  for (std::size_t k = 0; k < det_.size(); ++k) {
    const double* run = runmax_.data() + k * N * G1;
    const unsigned char* seen = observed_.data() + k * N;
    std::int64_t cal = 0;
    for (std::int64_t i = 0; i < C; ++i) cal += seen[i];
    auto false_alarm_rate = [&](double tau) {
      std::int64_t fa = 0;
      for (std::int64_t i = 0; i < C; ++i)
        if (seen[i]) fa += is_false_alarm(first_alarm(run + i * G1, G, tau), collapse_[i], s_.horizon);
      return cal > 0 ? static_cast<double>(fa) / static_cast<double>(cal) : 0.0;
    };
    // The false-alarm rate falls as the threshold rises (alarms come later
    // or not at all), and changes only at the scores the calibration chains
    // reached: the threshold is the smallest of those whose rate is within
    // the target (above all of them: never fires).
    std::vector<double> v;
    for (std::int64_t i = 0; i < C; ++i)
      if (seen[i])
        for (int g = 2; g <= G; ++g)
          if (run[i * G1 + g] > -std::numeric_limits<double>::infinity()) v.push_back(run[i * G1 + g]);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    std::size_t lo = 0, hi = v.size();  // answer index in [0, size]; size: never
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (false_alarm_rate(v[mid]) <= s_.false_alarm) hi = mid;
      else lo = mid + 1;
    }
    DetectorResult r;
    r.spec = det_[k];
    const bool never = lo == v.size();
    const double tau = never ? std::numeric_limits<double>::infinity() : v[lo];
    r.fires = !never;
    r.threshold = tau;
    r.calibration_false_alarm = never ? 0.0 : false_alarm_rate(tau);
    r.calibration_chains = cal;
    for (std::int64_t i = 0; i < N; ++i) r.unobserved += seen[i] ? 0 : 1;
    r.evaluation_chains = N - C - (r.unobserved - (C - cal));
    for (std::int64_t i = C; i < N; ++i) {
      if (!seen[i]) continue;
      const int a = never ? -1 : first_alarm(run + i * G1, G, tau);
      const int c = collapse_[i];
      if (a >= 0) r.alarms.push_back(a);
      if (is_false_alarm(a, c, s_.horizon)) ++r.false_alarms;
      if (c < 0) continue;
      ++r.collapsed;
      r.collapses.push_back(c);
      if (a < 0) ++r.misses;
      else if (a > c) ++r.late;
      else if (a >= c - s_.horizon) ++r.timely;
      if (a >= 0) r.leads.push_back(c - a);
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<std::string> early_warning_header(const std::vector<std::string>& axis_paths) {
  std::vector<std::string> h = axis_paths;
  for (const char* c : {"point",
                        "detector",
                        "metric",
                        "units",
                        "baseline",
                        "horizon",
                        "target_false_alarm",
                        "threshold",
                        "fires",
                        "calibration_chains",
                        "calibration_false_alarm",
                        "evaluation_chains",
                        "unobserved_chains",
                        "collapsed_chains",
                        "false_alarm_rate",
                        "false_alarm_lo",
                        "false_alarm_hi",
                        "timely_rate",
                        "timely_lo",
                        "timely_hi",
                        "late_rate",
                        "miss_rate",
                        "miss_lo",
                        "miss_hi",
                        "lead_mean",
                        "lead_lo",
                        "lead_hi",
                        "lead_q25",
                        "lead_q50",
                        "lead_q75",
                        "alarm_q50",
                        "chain_collapse_q50",
                        "collapse_generation"})
    h.emplace_back(c);
  return h;
}

std::vector<std::string> early_warning_row(const std::vector<std::string>& labels, std::size_t point,
                                           const EarlyWarningSettings& s, const DetectorResult& r,
                                           std::optional<int> collapse_generation) {
  auto rate = [](std::int64_t k, std::int64_t n) {
    return n > 0 ? static_cast<double>(k) / static_cast<double>(n) : std::numeric_limits<double>::quiet_NaN();
  };
  auto quantiles = [](const std::vector<double>& v, std::initializer_list<double> qs) {
    std::vector<double> q(qs), out(qs.size(), std::numeric_limits<double>::quiet_NaN());
    if (!v.empty()) quantiles_type7(v, q.data(), out.data(), static_cast<int>(q.size()));
    return out;
  };
  std::vector<double> scratch;
  const Interval lead = interval95(summarize(r.leads.data(), static_cast<std::int64_t>(r.leads.size()), scratch));
  const std::vector<double> lq = quantiles(r.leads, {0.25, 0.5, 0.75});
  double fa_lo, fa_hi, ti_lo, ti_hi, mi_lo, mi_hi;
  wilson95(r.false_alarms, r.evaluation_chains, fa_lo, fa_hi);
  wilson95(r.timely, r.collapsed, ti_lo, ti_hi);
  wilson95(r.misses, r.collapsed, mi_lo, mi_hi);
  std::vector<std::string> row = labels;
  for (const std::string& v : {std::to_string(point), r.spec.name, r.spec.metric, r.spec.units,
                               std::string(s.previous ? "previous" : "first"), std::to_string(s.horizon)})
    row.push_back(v);
  row.push_back(number(s.false_alarm));
  row.push_back(r.fires ? number(r.threshold) : std::string());  // empty: never fires
  row.push_back(r.fires ? "1" : "0");
  row.push_back(std::to_string(r.calibration_chains));
  row.push_back(number(r.calibration_false_alarm));
  row.push_back(std::to_string(r.evaluation_chains));
  row.push_back(std::to_string(r.unobserved));
  row.push_back(std::to_string(r.collapsed));
  for (double v : {rate(r.false_alarms, r.evaluation_chains), fa_lo, fa_hi, rate(r.timely, r.collapsed), ti_lo, ti_hi,
                   rate(r.late, r.collapsed), rate(r.misses, r.collapsed), mi_lo, mi_hi, lead.mean, lead.lo, lead.hi,
                   lq[0], lq[1], lq[2], quantiles(r.alarms, {0.5})[0], quantiles(r.collapses, {0.5})[0]})
    row.push_back(number(v));
  row.push_back(collapse_generation ? std::to_string(*collapse_generation) : std::string());
  return row;
}

}  // namespace ouro

#include "sim/analysis/summary.h"

#include <cmath>
#include <limits>

namespace ouro {

double real_samples_per_chain(const PointConfig& c) {
  // Generation 1 trains on n real samples; every later one draws its
  // real_count afresh (every regime keeps drawing real data), unless the real
  // source is fixed: then generation 1's sample is all there is.
  if (c.generations < 1) return 0.0;
  if (c.real_source == kernels::RealSource::kFixed) return c.samples;
  return static_cast<double>(c.samples) + static_cast<double>(c.generations - 1) * c.real_count;
}

PointSummary::PointSummary(int metric, Direction dir, double threshold, std::int64_t chains)
    : metric_(metric), dir_(dir), threshold_(threshold), prev_(chains), auc_(chains, 0.0) {}

void PointSummary::add(int g, const double* v, const Summary& s) {
  const std::size_t n = prev_.size();
  if (g > 0)
    for (std::size_t i = 0; i < n; ++i) auc_[i] += 0.5 * (prev_[i] + v[i]);  // NaN and inf carry through
  for (std::size_t i = 0; i < n; ++i) prev_[i] = v[i];
  const bool beyond = dir_ == Direction::kDown ? s.mean <= threshold_ : dir_ == Direction::kUp && s.mean >= threshold_;
  if (collapsed_ < 0 && s.chains > 0 && beyond) collapsed_ = g;
  generations_ = g;
  last_ = s;
}

void PointSummary::archive(kernels::StateArchive& ar) {
  ar.value("collapsed", collapsed_);
  ar.value("generations", generations_);
  ar.value("last", last_);
  ar.vec("prev", prev_);
  ar.vec("auc", auc_);
}

std::optional<int> PointSummary::collapse_generation() const {
  if (collapsed_ < 0) return std::nullopt;
  return collapsed_;
}

Interval interval95(const Summary& s) {
  const double h = std::isfinite(s.se) ? 1.96 * s.se : std::numeric_limits<double>::quiet_NaN();
  return Interval{s.mean, s.mean - h, s.mean + h, s.chains};
}

Interval paired_difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) d.push_back(a[i] - b[i]);
  std::vector<double> scratch;
  return interval95(summarize(d.data(), static_cast<std::int64_t>(d.size()), scratch));
}

}  // namespace ouro

#include "sim/aggregate.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ouro {

double quantile_type7(std::vector<double>& v, double q) {
  double out;
  quantiles_type7(v, &q, &out, 1);
  return out;
}

void quantiles_type7(std::vector<double>& v, const double* q, double* out, int k) {
  const std::size_t n = v.size();
  std::size_t start = 0;  // everything before `start` is <= every quantile still to come
  for (int i = 0; i < k; ++i) {
    if (n == 0) {
      out[i] = std::numeric_limits<double>::quiet_NaN();
      continue;
    }
    const double h = (static_cast<double>(n) - 1.0) * q[i];
    const std::size_t lo = static_cast<std::size_t>(std::floor(h));
    std::nth_element(v.begin() + start, v.begin() + lo, v.end());
    const double a = v[lo];
    const double b = lo + 1 < n ? *std::min_element(v.begin() + lo + 1, v.end()) : a;
    out[i] = a + (h - static_cast<double>(lo)) * (b - a);
    start = lo;
  }
}

Summary summarize(const double* values, std::int64_t n, std::vector<double>& scratch) {
  scratch.clear();
  for (std::int64_t i = 0; i < n; ++i)
    if (std::isfinite(values[i])) scratch.push_back(values[i]);
  Summary s{};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.chains = static_cast<std::int64_t>(scratch.size());
  if (s.chains == 0) {
    s.mean = s.se = s.std = s.q05 = s.q50 = s.q95 = nan;
    return s;
  }
  // Two-pass mean and variance, in chain order (deterministic).
  double sum = 0.0;
  for (double x : scratch) sum += x;
  s.mean = sum / s.chains;
  double ss = 0.0;
  for (double x : scratch) ss += (x - s.mean) * (x - s.mean);
  s.std = s.chains > 1 ? std::sqrt(ss / (s.chains - 1)) : nan;
  s.se = s.chains > 1 ? s.std / std::sqrt(static_cast<double>(s.chains)) : nan;
  const double probs[3] = {0.05, 0.50, 0.95};
  double qs[3];
  quantiles_type7(scratch, probs, qs, 3);
  s.q05 = qs[0];
  s.q50 = qs[1];
  s.q95 = qs[2];
  return s;
}

}  // namespace ouro

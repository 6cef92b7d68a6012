// Aggregation of one metric over the chains of a sweep point: the numbers of
// one metrics.csv row.
#pragma once

#include <cstdint>
#include <vector>

namespace ouro {

struct Summary {
  double mean, se, std, q05, q50, q95;
  std::int64_t chains;      // chains with a value; NaN (a degenerate chain) is left out, +-inf stays
  std::int64_t degenerate;  // chains left out (NaN: a failed fit, a metric without a value)
};

// mean; std with n - 1; se = std / sqrt(chains); quantiles by linear
// interpolation between order statistics (Hyndman & Fan 1996, type 7, the
// default of R and numpy). `scratch` holds the non-NaN values afterwards.
Summary summarize(const double* values, std::int64_t n, std::vector<double>& scratch);

// k quantiles of unsorted, NaN-free data by linear interpolation (type 7),
// by exact radix selection on order-preserving integer keys rather than a
// full sort; v is left as it is.
void quantiles_type7(const std::vector<double>& v, const double* q, double* out, int k);

}  // namespace ouro

// The host side of the sample-based metrics (kernels/core/sample_metrics.h): their names and the held-out side,
// computed once per sweep point.
#include "kernels/core/sample_metrics.h"

#include <utility>

namespace ouro::kernels {

const char* sample_metric_name(int k) {
  switch (k) {
    case kSamplePrecision:
      return "precision";
    case kSampleRecall:
      return "recall";
    case kSampleCoverage:
      return "coverage";
    case kSampleEnergy:
      return "energy";
    default:
      return "";
  }
}

HeldoutSide HeldoutSideStore::view() const { return HeldoutSide{x.data(), m, d, radius2.data(), within}; }

HeldoutSideStore make_heldout_side(std::vector<double> x, int d) {
  HeldoutSideStore s;
  s.d = d;
  s.m = d > 0 ? static_cast<std::int64_t>(x.size()) / d : 0;
  s.x = std::move(x);
  s.radius2.assign(s.m, 0.0);
  // Each point's radius and row of distances on its own (any thread); the rows are then added in index order, as
  // sample_metrics adds the model sample's.
  std::vector<double> rows(s.m, 0.0);
  const double* p = s.x.data();
  const std::int64_t m = s.m;
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < m; ++i) s.radius2[i] = neighbour_row(p, m, d, i, true, true, rows[i]);
  double total = 0.0;
  for (std::int64_t i = 0; i < m; ++i) total += rows[i];
  const double md = static_cast<double>(m);
  s.within = m >= 2 ? total / (md * (md - 1.0)) : NAN;
  return s;
}

}  // namespace ouro::kernels

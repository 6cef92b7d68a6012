// Sample-based metrics of a generative model, written once for both backends: precision and recall (Kynkaanniemi,
// Karras, Laine, Lehtinen & Aila 2019, "Improved precision and recall metric for assessing generative models"),
// coverage (Naeem, Oh, Uh, Choi & Yoo 2020, "Reliable fidelity and diversity metrics for generative models") and the
// squared energy distance (Szekely & Rizzo 2013, "Energy statistics: a class of statistics based on distances"),
// between a chain's model sample g_1..g_n (drawn from its fitted model with the model-sample streams) and a fixed
// held-out real sample x_1..x_m, the same for every chain and generation.
//
// With k = kNeighbourK, r2_i the squared distance from x_i to its k-th nearest other held-out point and rg2_j the
// squared distance from g_j to its k-th nearest other model-sample point (a point is never its own neighbour; a
// duplicate at distance 0 is another point):
//   precision = (1/n) #{j : exists i, ||g_j - x_i||^2 <= r2_i}     the model's points inside the real manifold
//   recall    = (1/m) #{i : exists j, ||x_i - g_j||^2 <= rg2_j}    the real points inside the model's manifold
//   coverage  = (1/m) #{i : exists j, ||x_i - g_j||^2 <= r2_i}     the real balls that hold a model point
//   energy    = (2/(n m)) sum_{i,j} ||g_j - x_i|| - (1/(m(m-1))) sum_{i != i'} ||x_i - x_i'||
//               - (1/(n(n-1))) sum_{j != j'} ||g_j - g_j'||
// The k-NN manifolds are those of Kynkaanniemi et al. (k = 5, the paper's choice, also Naeem et al.'s), with unequal
// sample sizes as the paper allows. The energy is the U-statistic form of the squared energy distance 2E|X-Y| -
// E|X-X'| - E|Y-Y'|: unbiased, so it can be negative for close distributions (for two identical samples of n points
// it is -2 W / n, W their mean pairwise distance). Precision, recall and coverage need n >= k + 1 and m >= k + 1 (k
// other points to measure a radius by); energy needs n >= 2 and m >= 2. A metric whose sizes are smaller is NaN (the
// families refuse such configs).
//
// The ball tests compare squared distances (no square root), each a sum over coordinates in order: exact and the
// same bits on every machine. Every sum runs in a fixed sequential order (rows in index order, each row's terms in
// index order), so a value does not depend on the thread count. The distances from one point to a tile of points are
// computed one coordinate at a time over the tile (a loop g++ vectorises); a ball test stops at the first tile with a
// hit (an existence test, exact either way) unless the energy needs the whole row.
//
// Cost per chain and generation: O(n m d) for precision, recall and coverage (their cross passes), O(n^2 d) for the
// model sample's own k-NN radii (recall) and pairwise distances (energy); the held-out side's radii and within-sample
// mean cost O(m^2 d) once per sweep point (make_heldout_side).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/core/portability.h"

namespace ouro::kernels {

inline constexpr int kNeighbourK = 5;  // k of the k-NN radii (Kynkaanniemi et al. 2019; Naeem et al. 2020)

enum SampleMetric : int { kSamplePrecision = 0, kSampleRecall, kSampleCoverage, kSampleEnergy, kSampleMetricCount };
const char* sample_metric_name(int k);  // "precision", "recall", "coverage", "energy"

// The held-out side, computed once per sweep point on the host.
struct HeldoutSide {
  const double* x;  // m points x d, row-major
  std::int64_t m;
  int d;
  const double* radius2;  // m: squared distance from x_i to its k-th nearest OTHER held-out point
  double within;          // mean ||x_i - x_j|| over ordered pairs i != j (a U-statistic)
};

struct HeldoutSideStore {  // host: owns the arrays
  std::vector<double> x, radius2;
  std::int64_t m = 0;
  int d = 0;
  double within = 0.0;
  HeldoutSide view() const;
};

// O(m^2 d), once per point (OpenMP over the points; the same bits at any thread count).
HeldoutSideStore make_heldout_side(std::vector<double> x, int d);

// Points per distance tile.
inline constexpr int kDistanceTile = 32;

// d2[t] = ||q - p_t||^2 for the `count` <= kDistanceTile points p (row-major, d each), each a sum over coordinates
// in order.
OURO_HD OURO_FORCEINLINE void tile_sq_distances(const double* q, const double* p, int count, int d, double* d2) {
  for (int t = 0; t < count; ++t) d2[t] = 0.0;
  for (int a = 0; a < d; ++a) {
    const double qa = q[a];
    for (int t = 0; t < count; ++t) {
      const double v = p[static_cast<std::int64_t>(t) * d + a] - qa;
      d2[t] += v * v;
    }
  }
}

// Point `self` of the `count` points p against all the others: returns the squared distance to its k-th nearest
// other point when want_radius (+inf with fewer than k others), and adds its distances to the others, in index
// order, into row_sum when want_sum.
OURO_HD inline double neighbour_row(const double* p, std::int64_t count, int d, std::int64_t self, bool want_radius,
                                    bool want_sum, double& row_sum) {
  double best[kNeighbourK];  // the k smallest so far, ascending
  for (int r = 0; r < kNeighbourK; ++r) best[r] = INFINITY;
  double d2[kDistanceTile];
  double sum = 0.0;
  const double* q = p + self * d;
  for (std::int64_t l0 = 0; l0 < count; l0 += kDistanceTile) {
    const int len = static_cast<int>(count - l0 < kDistanceTile ? count - l0 : kDistanceTile);
    tile_sq_distances(q, p + l0 * d, len, d, d2);
    for (int t = 0; t < len; ++t) {
      if (l0 + t == self) continue;
      if (want_sum) sum += sqrt(d2[t]);
      if (want_radius && d2[t] < best[kNeighbourK - 1]) {
        int r = kNeighbourK - 1;
        for (; r > 0 && best[r - 1] > d2[t]; --r) best[r] = best[r - 1];
        best[r] = d2[t];
      }
    }
  }
  row_sum += sum;
  return best[kNeighbourK - 1];
}

// The metrics selected by `mask` (bit k for SampleMetric k) of the model sample g (n points x d) against h into
// out[k]; the others are left untouched. scratch: n doubles (the model sample's own k-NN radii).
OURO_HD inline void sample_metrics(const HeldoutSide& h, const double* g, std::int64_t n, unsigned mask,
                                   double* scratch, double* out) {
  const int d = h.d;
  const std::int64_t m = h.m;
  const bool precision = (mask >> kSamplePrecision) & 1u, recall = (mask >> kSampleRecall) & 1u;
  const bool coverage = (mask >> kSampleCoverage) & 1u, energy = (mask >> kSampleEnergy) & 1u;
  const double nd = static_cast<double>(n), md = static_cast<double>(m);
  double d2[kDistanceTile];

  // The model sample against itself: its k-NN radii (recall) and pairwise distances (energy).
  double g_sum = 0.0;
  if (recall || energy)
    for (std::int64_t j = 0; j < n; ++j) {
      const double r2 = neighbour_row(g, n, d, j, recall, energy, g_sum);
      if (recall) scratch[j] = r2;
    }

  if (precision) {
    std::int64_t hits = 0;
    for (std::int64_t j = 0; j < n; ++j) {
      const double* q = g + j * d;
      int hit = 0;
      for (std::int64_t i0 = 0; i0 < m && !hit; i0 += kDistanceTile) {
        const int len = static_cast<int>(m - i0 < kDistanceTile ? m - i0 : kDistanceTile);
        tile_sq_distances(q, h.x + i0 * d, len, d, d2);
        const double* r2 = h.radius2 + i0;
        for (int t = 0; t < len; ++t) hit |= d2[t] <= r2[t] ? 1 : 0;
      }
      hits += hit;
    }
    out[kSamplePrecision] = m >= kNeighbourK + 1 && n >= 1 ? static_cast<double>(hits) / nd : NAN;
  }

  if (recall || coverage || energy) {
    std::int64_t recalled = 0, covered = 0;
    double cross = 0.0;
    for (std::int64_t i = 0; i < m; ++i) {
      const double* q = h.x + i * d;
      const double ri = h.radius2[i];
      int rec = 0, cov = 0;
      double row = 0.0;
      for (std::int64_t j0 = 0; j0 < n; j0 += kDistanceTile) {
        if (!energy && (rec || !recall) && (cov || !coverage)) break;  // nothing left to find in this row
        const int len = static_cast<int>(n - j0 < kDistanceTile ? n - j0 : kDistanceTile);
        tile_sq_distances(q, g + j0 * d, len, d, d2);
        if (energy)
          for (int t = 0; t < len; ++t) row += sqrt(d2[t]);
        if (recall && !rec) {
          const double* rg2 = scratch + j0;
          for (int t = 0; t < len; ++t) rec |= d2[t] <= rg2[t] ? 1 : 0;
        }
        if (coverage && !cov)
          for (int t = 0; t < len; ++t) cov |= d2[t] <= ri ? 1 : 0;
      }
      recalled += rec;
      covered += cov;
      cross += row;
    }
    if (recall) out[kSampleRecall] = n >= kNeighbourK + 1 && m >= 1 ? static_cast<double>(recalled) / md : NAN;
    if (coverage) out[kSampleCoverage] = m >= kNeighbourK + 1 && n >= 1 ? static_cast<double>(covered) / md : NAN;
    if (energy)
      out[kSampleEnergy] = n >= 2 && m >= 2 ? 2.0 * cross / (nd * md) - h.within - g_sum / (nd * (nd - 1.0)) : NAN;
  }
}

}  // namespace ouro::kernels

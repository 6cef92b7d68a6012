// The Gaussian family's per-chain math, written once for both backends.
//
// A chain's model at generation t is N(mu_t, Sigma_t). Generation t's new
// points are drawn point by point (x = m + L z, z from the chain's normal
// streams, kernels/core/normal.h) and reduced on the fly to their sufficient
// statistics in z-space (count, sum z, sum z z^T): z is centred and of unit
// scale, so these sums lose nothing to cancellation, and the map back to
// x-space is exact algebra (mean_x = m + L mean_z, M2_x = L M2_z L^T).
// Groups of points (real draws, synthetic draws, earlier generations' pools)
// are merged with the pairwise update of Chan, Golub & LeVeque (1983,
// "Algorithms for computing the sample variance"), which is stable for pools
// of 10^7 points and more. Only accumulate_subsample needs individual old
// points; it regenerates them from the generation that drew them and their
// counter instead of storing them.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/linalg.h"
#include "kernels/core/normal.h"
#include "kernels/core/portability.h"
#include "kernels/core/quadform.h"
#include "kernels/core/rng.h"
#include "kernels/core/sample_metrics.h"
#include "kernels/training/dedup.h"
#include "kernels/training/regime.h"

namespace ouro::kernels {

enum class Estimator : int { kMle = 0, kUnbiased = 1 };

// Metric slots of the Gaussian family, in metrics.csv order.
enum GaussianMetric : int {
  kVarRatio = 0,
  kDetRatio,
  kMeanSqErr,
  kW2,
  kKl,
  kXent,
  kTailMass,
  kSyntheticShare,
  kDataAge,
  kDrawsPerKept,
  kHeldoutNll,
  kPrecision,  // the sample-based metrics (kernels/core/sample_metrics.h), in SampleMetric order: rows of the
  kRecall,     // block only when metrics.sample_based lists one (gaussian_metric_rows)
  kCoverage,
  kEnergy,
  kNumGaussianMetrics
};
static_assert(kRecall - kPrecision == kSampleRecall && kCoverage - kPrecision == kSampleCoverage &&
                  kEnergy - kPrecision == kSampleEnergy && kNumGaussianMetrics - kPrecision == kSampleMetricCount,
              "the Gaussian family's sample-based slots follow kernels::SampleMetric");

// The rows of a batch's metric block: every slot when sample-based metrics are asked for (sample_mask, bit k for
// SampleMetric k), else those before them, so that a run without them keeps the block (and its memory) it had.
OURO_HD inline int gaussian_metric_rows(unsigned sample_mask) { return sample_mask ? kNumGaussianMetrics : kPrecision; }

// The truth and everything about it that every chain's metrics reuse,
// computed once on the host (sim/families/gaussian/gaussian_truth.cc).
struct GaussianTruth {
  int d;
  double mu[OURO_MAX_DIM];
  double cov[OURO_MAX_DIM * OURO_MAX_DIM];
  double chol[OURO_MAX_DIM * OURO_MAX_DIM];      // L0, Sigma0 = L0 L0^T
  double sqrt_cov[OURO_MAX_DIM * OURO_MAX_DIM];  // Sigma0^{1/2}, symmetric (for W2)
  double trace;                                  // tr Sigma0
  double logdet;                                 // ln det Sigma0
  double tail_r2;                                // squared Mahalanobis radius holding 99% of the truth's mass
  // The fixed held-out set of metrics.heldout real points (heldout_nll) by its
  // mean and a square root R of its covariance (R R^T, divisor H): the mean
  // -ln N(x; mu, Sigma) over the set needs nothing else.
  double heldout_mean[OURO_MAX_DIM];
  double heldout_root[OURO_MAX_DIM * OURO_MAX_DIM];
};

// data.verifier (a filter on synthetic data after Feng et al. 2024): a synthetic
// candidate is plausible when the truth's log-density at it is at least the
// truth's own q-quantile of log-density -- for a Gaussian truth, when its
// squared Mahalanobis radius under the truth is at most the chi-square_d
// quantile at 1 - q -- and is kept with probability phi if plausible, psi if
// not. Kept or not is decided by 32-bit word j of the verify stream against an
// integer threshold (keep iff word < threshold; 2^32 keeps always), so both
// backends take the same decisions. Dropped candidates are replaced by further
// draws, at most max_draw_factor times the synthetic points a generation needs.
struct Verifier : KeepRule {
  double r2_max = 0.0;
};

// data.tail_upsample: a synthetic point in the truth's tail set -- the
// lowest-density q share of the truth: squared Mahalanobis radius under the
// truth above the chi-square_d quantile at 1 - q -- counts `factor` times in
// the fit (a frequency weight: weighted mean and M2, the count being the total
// weight).
struct TailUpsample {
  int on = 0;
  double factor = 1.0;
  double r2_min = 0.0;
};

// Everything one generation step needs besides the per-chain arrays.
struct GaussianStep {
  std::uint32_t seed;
  int d;
  int samples;     // n, new points per generation
  int real_count;  // real draws among them at this generation (n at generation 1)
  int generation;  // t >= 1, the generation being fitted
  Regime regime;
  Estimator estimator;
  RealSource real_source = RealSource::kFresh;
  // data.estimator_weight w (replace): the fitted mean is w * (mean of the
  // generation's real points) + (1 - w) * (mean of its synthetic points)
  // wherever it has both; negative: the pooled mean. The covariance is the
  // pooled estimate either way.
  double mean_weight = -1.0;
  Verifier verifier;  // its max_draw_factor also bounds dedup's refill
  TailUpsample upsample;
  // data.age_decay (accumulate, accumulate_subsample): a point added k
  // generations before the fit weighs decay^k (1: every point alike).
  double age_decay = 1.0;
  // data.dedup: candidates whose grid cell holds a
  // synthetic point kept this generation are dropped (kernels/training/dedup.h); the
  // verifier's max_draw_factor bounds the refill.
  Dedup dedup;
  // Whether the synthetic points go through filtered_zsums.
  OURO_HD bool filtered() const { return verifier.on || upsample.on || dedup.on; }
};

// Running sufficient statistics of a group of points in x-space.
struct Moments {
  double n;
  double mean[OURO_MAX_DIM];
  double m2[OURO_MAX_DIM * OURO_MAX_DIM];  // sum of outer products of deviations
};

OURO_HD inline void moments_clear(int d, Moments& m) {
  m.n = 0.0;
  for (int i = 0; i < d; ++i) m.mean[i] = 0.0;
  for (int i = 0; i < d * d; ++i) m.m2[i] = 0.0;
}

// a <- a u b (Chan, Golub & LeVeque's pairwise merge).
OURO_HD inline void moments_merge(int d, Moments& a, const Moments& b) {
  if (b.n == 0.0) return;
  const double n = a.n + b.n;
  const double wb = b.n / n;
  const double cross = a.n * b.n / n;
  double delta[OURO_MAX_DIM];
  for (int i = 0; i < d; ++i) delta[i] = b.mean[i] - a.mean[i];
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) a.m2[i * d + j] += b.m2[i * d + j] + cross * delta[i] * delta[j];
  for (int i = 0; i < d; ++i) a.mean[i] += wb * delta[i];
  a.n = n;
}

// Sums of z and z z^T over a group of `count` points drawn as x = m + L z,
// mapped to x-space moments.
OURO_HD inline void moments_from_zsums(int d, double count, const double* zsum, const double* zsq, const double* m,
                                       const double* l, Moments& out) {
  out.n = count;
  if (count == 0.0) {
    for (int i = 0; i < d; ++i) out.mean[i] = 0.0;
    for (int i = 0; i < d * d; ++i) out.m2[i] = 0.0;
    return;
  }
  double zbar[OURO_MAX_DIM];
  for (int i = 0; i < d; ++i) zbar[i] = zsum[i] / count;
  affine_lower(d, m, l, zbar, out.mean);
  // M2_z = S_zz - count zbar zbar^T, then M2_x = L M2_z L^T.
  double m2z[OURO_MAX_DIM * OURO_MAX_DIM];
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) m2z[i * d + j] = zsq[i * d + j] - count * zbar[i] * zbar[j];
  double tmp[OURO_MAX_DIM * OURO_MAX_DIM];  // L M2_z
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double s = 0.0;
      for (int k = 0; k <= i; ++k) s += l[i * d + k] * m2z[k * d + j];
      tmp[i * d + j] = s;
    }
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) {
      double s = 0.0;
      for (int k = 0; k <= j; ++k) s += tmp[i * d + k] * l[j * d + k];
      out.m2[i * d + j] = s;
    }
}

// Adds the z-sums of points [i0, i1) of one stream of one generation:
// point i uses normals i*d .. i*d+d-1 (kernels/core/normal.h). Each block is
// computed once for its four normals. This is the generic path (any d, any range) used
// by the cuda kernels and by the cpu backend for d > 1; the cpu backend's
// d = 1 path is a vectorised tiling of the same draws.
OURO_HD inline void accumulate_zsums(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation,
                                     std::uint32_t stream, int d, std::int64_t i0, std::int64_t i1, double* zsum,
                                     double* zsq) {
  if (i1 <= i0) return;
  double z[OURO_MAX_DIM];
  const std::uint64_t m0 = static_cast<std::uint64_t>(i0) * d;
  const std::uint64_t m1 = static_cast<std::uint64_t>(i1) * d;
  int j = 0;
  double quad[4];
  for (std::uint64_t m = m0; m < m1; ++m) {
    if (m == m0 || (m & 3) == 0) box_muller(rng::draw_block(seed, chain, generation, stream, m >> 2), quad);
    z[j] = quad[m & 3];
    if (++j == d) {
      j = 0;
      for (int a = 0; a < d; ++a) {
        zsum[a] += z[a];
        for (int b = 0; b < d; ++b) zsq[a * d + b] += z[a] * z[b];
      }
    }
  }
}

// The d = 1 case of accumulate_zsums without per-point arrays (register
// resident on the device): sums of z and z^2 over normals [i0, i1).
OURO_HD inline void accumulate_zsums_1d(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation,
                                        std::uint32_t stream, std::int64_t i0, std::int64_t i1, double& s1,
                                        double& s2) {
  double quad[4];
  for (std::int64_t m = i0; m < i1; ++m) {
    if (m == i0 || (m & 3) == 0)
      box_muller(rng::draw_block(seed, chain, generation, stream, static_cast<std::uint64_t>(m) >> 2), quad);
    const double z = quad[m & 3];
    s1 += z;
    s2 += z * z;
  }
}

// The truth's squared Mahalanobis radius of x: |L0^{-1} (x - mu0)|^2 by
// forward substitution.
OURO_HD inline double truth_r2(const GaussianTruth& tr, const double* x) {
  const int d = tr.d;
  double y[OURO_MAX_DIM], r2 = 0.0;
  for (int a = 0; a < d; ++a) {
    double v = x[a] - tr.mu[a];
    for (int b = 0; b < a; ++b) v -= tr.chol[a * d + b] * y[b];
    y[a] = v / tr.chol[a * d + a];
    r2 += y[a] * y[a];
  }
  return r2;
}

// data.tail_upsample's weight of a synthetic point at squared truth radius r2.
OURO_HD inline double upsample_weight(const GaussianStep& s, double r2) {
  return (s.upsample.on && r2 > s.upsample.r2_min) ? s.upsample.factor : 1.0;
}

// The synthetic candidates of generation s.generation under the verifier
// and/or dedup. Candidate j = 0, 1, ... is point first + j of the synthetic
// stream (the point that stands there without a filter), x = m + L z, kept or
// dropped as Verifier says (kept always without a verifier), then dropped by
// dedup when its grid cell holds a point kept before it (kernels/training/dedup.h:
// `table` has dedup_table_size(need) slots and `kept_x` room for need * d
// coordinates, scratch; both may be null without dedup); candidates are
// examined in order until `need` are kept or need * max_draw_factor have been
// drawn (any filter but upsampling alone), or f returns false. Calls
// f(z, x, r2) for each kept point in order (r2: its squared Mahalanobis radius
// under the truth) and returns the number of candidates drawn. With phi = psi
// = 1 and no dedup it keeps exactly the points a run without a filter uses.
template <class F>
OURO_HD inline std::int64_t for_each_kept(const GaussianStep& s, std::uint32_t chain, const GaussianTruth& tr,
                                          const double* m, const double* L, std::int64_t first, std::int64_t need,
                                          std::int64_t* table, double* kept_x, F&& f) {
  const int d = s.d;
  const auto gen = static_cast<std::uint32_t>(s.generation);
  const std::int64_t cap = (s.verifier.on || s.dedup.on) ? need * s.verifier.max_draw_factor : need;
  const DedupCells cells{table, dedup_table_size(need), kept_x, d, s.dedup.resolution};
  if (s.dedup.on) cells.clear();
  double z[OURO_MAX_DIM], x[OURO_MAX_DIM], quad[4];
  std::uint64_t quad_block = ~0ull;
  VerifyWords words;
  std::int64_t k = 0, j = 0;
  for (; j < cap && k < need; ++j) {
    const std::uint64_t n0 = static_cast<std::uint64_t>(first + j) * d;
    for (int a = 0; a < d; ++a) {
      const std::uint64_t n = n0 + a;
      if ((n >> 2) != quad_block) {
        quad_block = n >> 2;
        box_muller(rng::draw_block(s.seed, chain, gen, rng::kStreamSyntheticDraw, quad_block), quad);
      }
      z[a] = quad[n & 3];
    }
    for (int a = 0; a < d; ++a) {
      double v = m[a];
      for (int b = 0; b <= a; ++b) v += L[a * d + b] * z[b];
      x[a] = v;
    }
    const double r2 = truth_r2(tr, x);
    if (s.verifier.on) {
      const bool plausible = r2 <= s.verifier.r2_max;
      if (!words.keeps(s.seed, chain, gen, static_cast<std::uint64_t>(j),
                       plausible ? s.verifier.keep_plausible : s.verifier.keep_implausible))
        continue;
    }
    if (s.dedup.on) {
      if (!cells.admit(x, k)) continue;
      for (int a = 0; a < d; ++a) kept_x[k * d + a] = x[a];
    }
    ++k;
    if (!f(static_cast<const double*>(z), static_cast<const double*>(x), r2)) return j + 1;
  }
  return j;
}

// The synthetic points of a generation under the verifier, dedup and/or tail
// upsampling (for_each_kept): adds the kept points' z-sums (in the model's
// z-space, as accumulate_zsums), each weighted by TailUpsample's factor where
// it lies in the truth's tail, and returns how many were kept and drawn and
// their total weight.
OURO_HD inline void filtered_zsums(const GaussianStep& s, std::uint32_t chain, const GaussianTruth& tr, const double* m,
                                   const double* L, std::int64_t first, std::int64_t need, std::int64_t* table,
                                   double* kept_x, double* zsum, double* zsq, double& kept, double& drawn,
                                   double& weight) {
  const int d = s.d;
  double total = 0.0;
  std::int64_t k = 0;
  const std::int64_t j =
      for_each_kept(s, chain, tr, m, L, first, need, table, kept_x, [&](const double* z, const double*, double r2) {
        ++k;
        const double wt = upsample_weight(s, r2);
        total += wt;
        for (int a = 0; a < d; ++a) {
          zsum[a] += wt * z[a];
          for (int b = 0; b < d; ++b) zsq[a * d + b] += wt * z[a] * z[b];
        }
        return true;
      });
  kept = static_cast<double>(k);
  drawn = static_cast<double>(j);
  weight = total;
}

// The fitted covariance from pooled moments, its Cholesky factor, and
// whether the fit is usable (finite and positive definite).
OURO_HD inline bool fit_from_moments(int d, const Moments& pool, Estimator est, double* mu, double* cov, double* chol) {
  const double denom = (est == Estimator::kUnbiased) ? pool.n - 1.0 : pool.n;
  for (int i = 0; i < d; ++i) mu[i] = pool.mean[i];
  for (int i = 0; i < d * d; ++i) cov[i] = pool.m2[i] / denom;
  return cholesky(d, cov, chol);
}

// accumulate_subsample: the training set of generation t is `samples` points
// drawn uniformly without replacement from the pool of every point produced
// in generations 1..t (all of them when the pool is smaller). Without a
// filter generation k added n points, and pool position j is point i = j % n
// of generation k = j / n + 1. Under a filter (data.verifier, data.dedup,
// data.tail_upsample) generation k added its real points and then the
// hist_kept[k * batch + local] synthetic points its filter kept, in order.
// Pool positions are walked in increasing order and chosen by Selection
// (kernels/training/regime.h); a chosen point is regenerated from the model that drew
// it (the truth for real draws, generation k-1's model for synthetic ones),
// a filtered generation by examining its candidates again with its own
// counters (for_each_kept: the same decisions; `table` and `kept_x` are
// dedup's scratch). hist_mu / hist_chol hold every generation's model of
// the batch, generation g of local chain c at (g * batch + c) * d (resp.
// * d * d). Returns the training set's moments (West's weighted update, 1979:
// a chosen point of generation k weighs age_decay^(t - k), times
// TailUpsample's factor for a synthetic one in the truth's tail; the weights
// sum to out.n) and writes its synthetic share and mean data age, each point
// weighted by its age alone.
OURO_HD inline void subsample_moments(const GaussianStep& s, std::uint32_t chain, const GaussianTruth& truth,
                                      const double* hist_mu, const double* hist_chol, const double* hist_kept,
                                      std::int64_t batch, std::int64_t local, std::int64_t* table, double* kept_x,
                                      Moments& out, double& synthetic_share, double& data_age) {
  const int d = s.d;
  const int n = s.samples;
  const int t = s.generation;
  const bool filtered = s.filtered();
  std::int64_t total = 0;
  for (int k = 1; k <= t; ++k) {
    const int real = real_points_of(k, n, s.real_count);
    total += real + (filtered ? static_cast<std::int64_t>(hist_kept[k * batch + local]) : n - real);
  }
  Selection sel{s.seed, chain, static_cast<std::uint32_t>(t), total, total < n ? total : n};
  moments_clear(d, out);
  double points = 0.0, synthetic = 0.0, age = 0.0;
  // A point of generation k weighs age_decay^(t - k) (pow_int: the same bits
  // on both backends), a synthetic one in the truth's tail also the upsampling
  // factor; the composition weighs points by their age alone.
  auto add = [&](const double* x, double tail_weight, int k, bool real) {
    const double aged = pow_int(s.age_decay, t - k), w = aged * tail_weight;
    double delta[OURO_MAX_DIM];
    out.n += w;
    for (int a = 0; a < d; ++a) {
      delta[a] = x[a] - out.mean[a];
      out.mean[a] += delta[a] * w / out.n;
    }
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) out.m2[a * d + b] += w * delta[a] * (x[b] - out.mean[b]);
    points += aged;
    synthetic += real ? 0.0 : aged;
    age += aged * static_cast<double>(t - k);
  };
  // Point i of stream `stream` of generation `drawn`, from the model (m, l).
  auto regenerate = [&](const double* m, const double* l, std::uint32_t drawn, std::uint32_t stream, int i, double* x) {
    double z[OURO_MAX_DIM];
    for (int a = 0; a < d; ++a)
      z[a] = stream_normal(s.seed, chain, drawn, stream, static_cast<std::uint64_t>(i) * d + a);
    affine_lower(d, m, l, z, x);
  };
  double x[OURO_MAX_DIM];
  for (int k = 1; k <= t && !sel.done(); ++k) {
    const int real = real_points_of(k, n, s.real_count);
    for (int i = 0; i < real && !sel.done(); ++i)
      if (sel.next()) {
        regenerate(truth.mu, truth.chol, real_draw_generation(s.real_source, k), rng::kStreamRealDraw, i, x);
        add(x, 1.0, k, true);
      }
    const std::int64_t slot = static_cast<std::int64_t>(k - 1) * batch + local;
    const double* m = hist_mu + slot * d;
    const double* l = hist_chol + slot * d * d;
    if (!filtered) {
      for (int i = real; i < n && !sel.done(); ++i)
        if (sel.next()) {
          regenerate(m, l, static_cast<std::uint32_t>(k), rng::kStreamSyntheticDraw, i, x);
          add(x, 1.0, k, false);
        }
    } else if (hist_kept[k * batch + local] > 0.0 && !sel.done()) {
      GaussianStep sk = s;
      sk.generation = k;
      for_each_kept(sk, chain, truth, m, l, real, n - real, table, kept_x,
                    [&](const double*, const double* xk, double r2) {
                      if (sel.next()) add(xk, upsample_weight(s, r2), k, false);
                      return !sel.done();
                    });
    }
  }
  synthetic_share = synthetic / points;
  data_age = age / points;
}

// Synthetic share and mean data age of the training set under replace and
// accumulate, where they are the same for every chain (age-weighted under
// data.age_decay: regime_composition).
OURO_HD inline void pool_composition(const GaussianStep& s, double& synthetic_share, double& data_age) {
  regime_composition(s.regime, s.samples, s.real_count, s.generation, s.age_decay, synthetic_share, data_age);
}

// The total weight of the accumulated pool after `generations` generations of
// n points under age decay q, seen from the next generation's fit before its
// own points join: n (q + q^2 + ... + q^generations) (n * generations at q = 1).
OURO_HD inline double decayed_pool_weight(double n, double q, int generations) {
  if (q == 1.0) return n * generations;
  return n * q * (1.0 - pow_int(q, generations)) / (1.0 - q);
}

// tr(Sigma^{-1} R R^T) + (m - mu)^T Sigma^{-1} (m - mu) for Sigma = L L^T: the
// mean squared Mahalanobis radius, under N(mu, Sigma), of a distribution or a
// sample with mean m and covariance R R^T, as ||L^{-1} R||_F^2 + ||L^{-1}(m - mu)||^2.
OURO_HD inline double mean_mahalanobis_sq(int d, const double* mu, const double* chol, const double* m,
                                          const double* root) {
  double col[OURO_MAX_DIM], y[OURO_MAX_DIM], s = 0.0;
  for (int j = 0; j < d; ++j) {
    for (int i = 0; i < d; ++i) col[i] = root[i * d + j];
    lower_solve(d, chol, col, y);
    for (int i = 0; i < d; ++i) s += y[i] * y[i];
  }
  for (int i = 0; i < d; ++i) col[i] = m[i] - mu[i];
  lower_solve(d, chol, col, y);
  for (int i = 0; i < d; ++i) s += y[i] * y[i];
  return s;
}

// The Gaussian metrics of one model against the truth (definitions in README), the slots before the sample-based
// ones (gaussian_sample_metrics):
// closed forms for KL(truth || model), cross-entropy and W2 (Givens & Shortt
// 1984 / Olkin & Pukelsheim 1982 for Gaussians), tail mass by
// kernels/core/quadform.h. `ok` false (a failed fit) gives NaN in every metric,
// which the aggregation leaves out (the `chains` column counts the rest).
OURO_HD inline void gaussian_metrics(const GaussianTruth& tr, const double* mu, const double* cov, const double* chol,
                                     bool ok, double synthetic_share, double data_age, double* out,
                                     std::int64_t stride) {
  const int d = tr.d;
  if (!ok) {  // a degenerate chain: left out of every metric's aggregate alike
    for (int k = 0; k < kPrecision; ++k) out[k * stride] = NAN;
    return;
  }
  double trace = 0.0, logdet = 0.0, det_ratio = 1.0, msq = 0.0;
  for (int i = 0; i < d; ++i) {
    trace += cov[i * d + i];
    logdet += 2.0 * log(chol[i * d + i]);
    // det ratio as a product of per-dimension ratios: no exp, and no
    // overflow where det itself would leave the double range.
    const double r = chol[i * d + i] / tr.chol[i * d + i];
    det_ratio *= r * r;
    const double dm = mu[i] - tr.mu[i];
    msq += dm * dm;
  }
  // tr(Sigma^{-1} Sigma0) + (dm)^T Sigma^{-1} dm.
  const double xent_quad = mean_mahalanobis_sq(d, mu, chol, tr.mu, tr.chol);

  // W2^2 = ||dm||^2 + tr S0 + tr S - 2 tr (S0^{1/2} S S0^{1/2})^{1/2}.
  double cross_trace;
  if (d == 1) {
    cross_trace = sqrt(tr.cov[0] * cov[0]);
  } else {
    double a[OURO_MAX_DIM * OURO_MAX_DIM], tmp[OURO_MAX_DIM * OURO_MAX_DIM];
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) {
        double s = 0.0;
        for (int k = 0; k < d; ++k) s += tr.sqrt_cov[i * d + k] * cov[k * d + j];
        tmp[i * d + j] = s;
      }
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) {
        double s = 0.0;
        for (int k = 0; k < d; ++k) s += tmp[i * d + k] * tr.sqrt_cov[k * d + j];
        a[i * d + j] = s;
      }
    double ev[OURO_MAX_DIM], vecs[OURO_MAX_DIM * OURO_MAX_DIM];
    sym_eigen_jacobi(d, a, ev, vecs);
    cross_trace = 0.0;
    for (int i = 0; i < d; ++i) cross_trace += sqrt(ev[i] > 0.0 ? ev[i] : 0.0);
  }
  const double w2sq = msq + tr.trace + trace - 2.0 * cross_trace;

  const double log2pi = 1.8378770664093453;
  out[kVarRatio * stride] = trace / tr.trace;
  out[kDetRatio * stride] = det_ratio;
  out[kMeanSqErr * stride] = msq;
  out[kW2 * stride] = sqrt(w2sq > 0.0 ? w2sq : 0.0);
  out[kKl * stride] = 0.5 * (xent_quad - d + logdet - tr.logdet);
  out[kXent * stride] = 0.5 * (d * log2pi + logdet + xent_quad);
  out[kTailMass * stride] = gaussian_tail_mass(d, tr.mu, tr.chol, mu, cov, tr.tail_r2) / 0.01;
  out[kSyntheticShare * stride] = synthetic_share;
  out[kDataAge * stride] = data_age;
  out[kHeldoutNll * stride] =
      0.5 * (d * log2pi + logdet + mean_mahalanobis_sq(d, mu, chol, tr.heldout_mean, tr.heldout_root));
}

// Points [0, count) of a chain's model sample at `generation` (kernels/core/chain_backend.h) from its model N(mu, L
// L^T): point i is mu + L z, z the normals i*d .. i*d+d-1 of the model-sample stream (kernels/core/normal.h);
// row-major into x.
OURO_HD inline void gaussian_model_sample(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, int d,
                                          const double* mu, const double* chol, std::int64_t count, double* x) {
  double z[OURO_MAX_DIM];
  for (std::int64_t i = 0; i < count; ++i) {
    stream_normals(seed, chain, generation, rng::kStreamModelSample, static_cast<std::uint64_t>(i) * d, d, z);
    affine_lower(d, mu, chol, z, x + i * d);
  }
}

// The arrays of a batch of chains, structure of arrays, in the backend's memory
// (host for cpu, device for cuda). Local chain c of the batch has global id
// chain0 + c, which keys its random streams.
struct GaussianChains {
  std::int64_t batch;
  std::uint32_t chain0;
  double* mu;         // [batch * d]      current model
  double* cov;        // [batch * d * d]
  double* chol;       // [batch * d * d]
  unsigned char* ok;  // [batch]          0 once a fit failed (degenerate chain)
  double* pool_mean;  // [batch * d]      accumulate: moments of every point so far
  double* pool_m2;    // [batch * d * d]
  double* pool_comp;  // [4 * batch]  accumulate with a filter: the pool's total weight, and its
                      // points, synthetic points and points x age, each aged by the decay
  double* hist_mu;    // [(generations + 1) * batch * d]      accumulate_subsample:
  double* hist_chol;  // [(generations + 1) * batch * d * d]  every generation's model,
  double* hist_kept;  // [(generations + 1) * batch]  and under a filter its kept synthetic points
  double* zsum;       // [2 * batch * d]      this generation's z-sums, real then synthetic
  double* zsq;        // [2 * batch * d * d]
  double* kept;       // [3 * batch]  filters: synthetic points kept, candidates drawn, total weight
  double* metrics;    // [gaussian_metric_rows(sample mask) * batch]
};

// Generation 0: every chain is the truth.
OURO_HD inline void start_chain(const GaussianTruth& tr, const GaussianChains& c, std::int64_t i) {
  const int d = tr.d;
  for (int a = 0; a < d; ++a) {
    c.mu[i * d + a] = tr.mu[a];
    c.pool_mean[i * d + a] = 0.0;
  }
  for (int a = 0; a < d * d; ++a) {
    c.cov[i * d * d + a] = tr.cov[a];
    c.chol[i * d * d + a] = tr.chol[a];
    c.pool_m2[i * d * d + a] = 0.0;
  }
  for (int k = 0; k < 4; ++k) c.pool_comp[k * c.batch + i] = 0.0;
  c.ok[i] = 1;
  gaussian_metrics(tr, tr.mu, tr.cov, tr.chol, true, 0.0, 0.0, c.metrics + i, c.batch);
  c.metrics[kDrawsPerKept * c.batch + i] = 1.0;
}

// Fits generation s.generation of local chain i from this generation's
// z-sums (replace, accumulate) or from a regenerated subsample, and writes
// its metrics. Runs after the z-sums of every chain are complete (and under
// a filter, after filtered_zsums has counted the generation's kept points).
// `table` and `kept_x` are dedup's scratch for accumulate_subsample (null
// otherwise).
OURO_HD inline void finish_chain(const GaussianStep& s, const GaussianTruth& tr, const GaussianChains& c,
                                 std::int64_t i, std::int64_t* table = nullptr, double* kept_x = nullptr) {
  const int d = s.d;
  const std::int64_t stride = c.batch;
  double* mu = c.mu + i * d;
  double* cov = c.cov + i * d * d;
  double* chol = c.chol + i * d * d;
  const int t = s.generation;
  Moments train;
  double synthetic_share, data_age, draws_per_kept = 1.0;
  if (s.regime == Regime::kAccumulateSubsample) {
    if (s.filtered()) {
      // This generation's kept synthetic points join the pool.
      const bool synthetic = s.samples > real_points_of(t, s.samples, s.real_count);
      const double kept = synthetic ? c.kept[i] : 0.0;
      c.hist_kept[static_cast<std::int64_t>(t) * c.batch + i] = kept;
      if (synthetic) draws_per_kept = kept > 0.0 ? c.kept[c.batch + i] / kept : INFINITY;
    }
    subsample_moments(s, c.chain0 + static_cast<std::uint32_t>(i), tr, c.hist_mu, c.hist_chol, c.hist_kept, c.batch, i,
                      table, kept_x, train, synthetic_share, data_age);
  } else {
    pool_composition(s, synthetic_share, data_age);
    const double real = real_points_of(t, s.samples, s.real_count);
    double syn = s.samples - real;
    double points = syn;  // this generation's synthetic points
    if (s.filtered() && syn > 0.0) {
      // The kept synthetic points (fewer than asked where the verifier's draw
      // budget ran out) count with their total weight; the composition counts
      // points.
      points = c.kept[i];
      draws_per_kept = points > 0.0 ? c.kept[c.batch + i] / points : INFINITY;
      synthetic_share = points / (real + points);
      syn = c.kept[2 * c.batch + i];
    }
    Moments part;
    moments_from_zsums(d, real, c.zsum + i * d, c.zsq + i * d * d, tr.mu, tr.chol, train);
    moments_from_zsums(d, syn, c.zsum + (c.batch + i) * d, c.zsq + (c.batch + i) * d * d, mu, chol, part);
    double real_mean[OURO_MAX_DIM];
    for (int a = 0; a < d; ++a) real_mean[a] = train.mean[a];
    moments_merge(d, train, part);
    if (s.mean_weight >= 0.0 && real > 0.0 && syn > 0.0)
      for (int a = 0; a < d; ++a) train.mean[a] = s.mean_weight * real_mean[a] + (1.0 - s.mean_weight) * part.mean[a];
    if (s.regime == Regime::kAccumulate) {
      // The pool of generations 1..t-1, each point aged one more generation:
      // its weights (and so its total and M2) scale by the decay, its mean not.
      // Without a filter every generation added n points of weight 1 (the
      // pool's weight in closed form); with one, the weight and the
      // composition are the chain's own: with P points, S synthetic and A
      // their ages summed (all age-weighted), a generation ages them (A <- q (A
      // + P), P <- q P, S <- q S) and adds its own at age 0.
      const double q = s.age_decay;
      double* comp = c.pool_comp;
      Moments pool;
      pool.n = s.filtered() ? q * comp[i] : decayed_pool_weight(s.samples, q, t - 1);
      for (int a = 0; a < d; ++a) pool.mean[a] = c.pool_mean[i * d + a];
      for (int a = 0; a < d * d; ++a) pool.m2[a] = s.age_decay * c.pool_m2[i * d * d + a];
      moments_merge(d, pool, train);
      for (int a = 0; a < d; ++a) c.pool_mean[i * d + a] = pool.mean[a];
      for (int a = 0; a < d * d; ++a) c.pool_m2[i * d * d + a] = pool.m2[a];
      train = pool;
      if (s.filtered()) {
        const std::int64_t b = c.batch;
        comp[i] = pool.n;
        comp[3 * b + i] = q * (comp[3 * b + i] + comp[b + i]);
        comp[b + i] = q * comp[b + i] + real + points;
        comp[2 * b + i] = q * comp[2 * b + i] + points;
        synthetic_share = comp[2 * b + i] / comp[b + i];
        data_age = comp[3 * b + i] / comp[b + i];
      }
    }
  }
  // A degenerate chain stays degenerate: its model cannot be sampled.
  const bool ok = c.ok[i] && fit_from_moments(d, train, s.estimator, mu, cov, chol);
  c.ok[i] = ok ? 1 : 0;
  if (s.regime == Regime::kAccumulateSubsample) {
    const std::int64_t slot = static_cast<std::int64_t>(t) * c.batch + i;
    for (int a = 0; a < d; ++a) c.hist_mu[slot * d + a] = mu[a];
    for (int a = 0; a < d * d; ++a) c.hist_chol[slot * d * d + a] = chol[a];
  }
  gaussian_metrics(tr, mu, cov, chol, ok, synthetic_share, data_age, c.metrics + i, stride);
  if (ok) c.metrics[kDrawsPerKept * stride + i] = draws_per_kept;
}

// The sample-based metrics of `mask` (kernels/core/sample_metrics.h) for local chain i at `generation` (0: the
// truth, which start_chain made every chain's model): its model sample of n points (gaussian_model_sample) into
// `points` (n * d), scratch n doubles, against the held-out side h, into the chain's sample-based rows of the metric
// block (NaN for those not asked for). A degenerate chain's model cannot be sampled: all four are NaN.
OURO_HD inline void gaussian_sample_metrics(std::uint32_t seed, std::uint32_t generation, std::int64_t n, unsigned mask,
                                            const HeldoutSide& h, const GaussianChains& c, std::int64_t i,
                                            double* points, double* scratch) {
  if (!mask) return;  // (the block has no such rows)
  for (int k = 0; k < kSampleMetricCount; ++k) c.metrics[(kPrecision + k) * c.batch + i] = NAN;
  if (!c.ok[i]) return;
  const int d = h.d;
  gaussian_model_sample(seed, c.chain0 + static_cast<std::uint32_t>(i), generation, d, c.mu + i * d, c.chol + i * d * d,
                        n, points);
  double out[kSampleMetricCount];
  sample_metrics(h, points, n, mask, scratch, out);
  for (int k = 0; k < kSampleMetricCount; ++k)
    if ((mask >> k) & 1u) c.metrics[(kPrecision + k) * c.batch + i] = out[k];
}

}  // namespace ouro::kernels

// The linear regression family's per-chain math, written once for both backends.
//
// A chain's model at generation t is (w_t, s_t): labels y = x.w_t + s_t eps for inputs x ~ N(0, Sigma_x), eps ~
// N(0, 1). Generation t's new points are drawn point by point and reduced on the fly to sufficient statistics;
// no point is stored.
//
// Accuracy when the noise is small against the weights. The statistics are kept relative to a reference model,
// the chain's current fit w_ref = w_{t-1}: for each point the residual r = y - x.w_ref, and
//   G = sum x x',  u = sum x r,  v = sum r^2,  n = sum of weights.
// A synthetic point labelled by w_{t-1} has r = s_{t-1} eps exactly (no cancellation at all); a real point has
// r = sigma0 eps - x.e_{t-1} with e = w - w0, both terms of the noise's scale. The fit is an update
// delta = w_t - w_ref solved from G and u, and the residual sum of squares of the fit is
//   RSS = sum (r - x.delta)^2 = v - delta'(2u - G delta),
// whose terms are all of the scale of the training set's residuals, never of ||w||^2: sigma0 = 1e-6 ||w0|| loses
// nothing (tests/kernels/linear_regression). Under accumulate the pool's statistics are carried over into the new
// fit's frame (u <- u - G delta, v <- RSS), so they stay residual statistics generation after generation. The
// chain state is the error e_t = w_t - w0 itself, so the metrics (test error, weight error) are not differences of
// nearly equal numbers either.
//
// Point i of a generation uses normals i (d + 1) .. i (d + 1) + d of its stream (real draws: kStreamRealDraw of
// the generation real_draw_generation names; synthetic: kStreamSyntheticDraw of the generation): the first d are z,
// with x = L z for Sigma_x = L L', the last is eps. Under a fixed design (data.design: fixed) the inputs of point i
// of every generation are generation 1's point i (its z from generation 1's real stream, which drew all n of them)
// and only eps is the point's own.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/normal.h"
#include "kernels/core/portability.h"
#include "kernels/core/rng.h"
#include "kernels/training/regime.h"

namespace ouro::kernels {

// model.estimator: ordinary least squares (minimum-norm where the system is under-determined), or ridge.
enum class RegressionEstimator : int { kOls = 0, kRidge = 1 };
// model.noise: the labelling noise of a fitted model, sigma0 always or the fit's residual standard deviation.
enum class RegressionNoise : int { kFixed = 0, kFitted = 1 };
// data.design: new inputs every generation, or generation 1's inputs relabelled.
enum class Design : int { kFresh = 0, kFixed = 1 };

// Metric slots of the linear regression family, in metrics.csv order.
enum RegressionMetric : int {
  kTestError = 0,
  kWeightErr,
  kNormRatio,
  kNoiseRatio,
  kRegressionSyntheticShare,
  kRegressionDataAge,
  kRegressionDrawsPerKept,
  kNumRegressionMetrics
};

// The truth, on the backend's side (host memory for cpu, device memory for cuda: the arrays are the backend's).
struct RegressionTruth {
  int d;
  double sigma0;       // truth.noise_std
  const double* w0;    // [d]
  const double* cov;   // [d * d] Sigma_x, row-major
  const double* chol;  // [d * d] its lower Cholesky factor
  bool diagonal;       // Sigma_x diagonal: x_a = chol[a, a] z_a
  double w0_norm2;     // ||w0||^2 > 0
};

// data.verifier and data.tail_upsample for labelled points: a synthetic candidate (x, y) is judged by the truth's
// likelihood of its label given x, through its standardised residual under the truth z = (y - x.w0) / sigma0
// (z^2 is chi-square with 1 degree of freedom under the truth). The verifier calls it plausible when
// z^2 <= z2_max (the truth's log-density of the label at least its own q-quantile) and keeps it with probability
// keep_plausible or keep_implausible (the verify stream's word j of candidate j, as every family), drawing further
// candidates until the generation's synthetic points are kept or max_draw_factor times as many were drawn;
// tail_upsample counts a kept point with z^2 > z2_min (the truth's lowest-density q share of labels) `factor` times
// in the fit and in N. The cpu runs both under replace and accumulate.
struct RegressionFilter : KeepRule {
  double z2_max = 0.0;
  int upsample = 0;
  double factor = 1.0, z2_min = 0.0;
  OURO_HD bool any() const { return on || upsample; }
};

// Everything one generation step needs besides the per-chain arrays.
struct RegressionStep {
  std::uint32_t seed;
  int d;
  int samples;     // n, new points per generation
  int real_count;  // real draws among them from generation 2 on
  int generation;  // t >= 1
  Regime regime;
  RealSource real_source;
  Design design;
  RegressionEstimator estimator;
  double ridge;  // lambda: the penalty lambda ||w||^2 on the unscaled sum of squares
  RegressionNoise noise;
  double age_decay;              // accumulate, accumulate_subsample: a point k generations old weighs age_decay^k
  RegressionFilter filter = {};  // data.verifier, data.tail_upsample (cpu, replace and accumulate)
};

// Normal numbers of point i of a generation in its stream.
OURO_HD inline std::uint64_t point_first_normal(int d, std::int64_t i) {
  return static_cast<std::uint64_t>(i) * static_cast<std::uint64_t>(d + 1);
}

// x = L z.
OURO_HD inline void design_inputs(const RegressionTruth& tr, const double* z, double* x) {
  const int d = tr.d;
  if (tr.diagonal) {
    for (int a = 0; a < d; ++a) x[a] = tr.chol[a * d + a] * z[a];
    return;
  }
  for (int a = 0; a < d; ++a) {
    double s = 0.0;
    for (int b = 0; b <= a; ++b) s += tr.chol[a * d + b] * z[b];
    x[a] = s;
  }
}

// One point (x, r) of weight wt into the statistics: G's lower triangle (G[a, b], b <= a), u, v. Each entry is a
// sum in point order, whatever the vector width the compiler picks.
OURO_HD inline void add_point(int d, const double* x, double r, double wt, double* g, double* u, double& v) {
  for (int a = 0; a < d; ++a) {
    const double xa = wt * x[a];
    u[a] += xa * r;
    double* row = g + a * d;
    for (int b = 0; b <= a; ++b) row[b] += xa * x[b];
  }
  v += wt * r * r;
}

// Point i of generation `gen`'s stream `stream`, regenerated: its inputs x and its noise eps (scalar path: one
// Philox block per four normals, as stream_normals).
OURO_HD inline double regenerate_point(const RegressionStep& s, const RegressionTruth& tr, std::uint32_t chain,
                                       std::uint32_t gen, std::uint32_t stream, std::int64_t i, double* z, double* x) {
  const int d = s.d;
  const std::uint64_t m0 = point_first_normal(d, i);
  if (s.design == Design::kFixed) {
    stream_normals(s.seed, chain, 1u, rng::kStreamRealDraw, m0, d, z);
  } else {
    stream_normals(s.seed, chain, gen, stream, m0, d, z);
  }
  design_inputs(tr, z, x);
  return stream_normal(s.seed, chain, gen, stream, m0 + static_cast<std::uint64_t>(d));
}

// The residual against the reference model w0 + e_ref of a point labelled by the model w0 + e_src with noise s_src:
// r = x.(e_src - e_ref) + s_src eps (e_src null: the reference model itself labelled it).
OURO_HD inline double point_residual(int d, const double* x, double eps, double s_src, const double* e_src,
                                     const double* e_ref) {
  double r = 0.0;
  if (e_src != e_ref) {
    for (int a = 0; a < d; ++a) r += x[a] * ((e_src ? e_src[a] : 0.0) - e_ref[a]);
  }
  return r + s_src * eps;
}

// How the fit of one chain (finish_regression_chain and the Cholesky factorisation and solve below) runs on a
// backend, after the policies of the mixture family's EM (kernels/gmm/gmm_em.h). Every thread of a chain runs the
// control flow and computes the scalars; a policy says how a loop whose iterations are independent is spread:
//   each(n, f)        f(k) for k in [0, n)
//   each_upper(n, f)  f(r, c) for 0 <= r <= c < n
//   single(f)         f() once, its bool result seen by every thread
// each step beginning after every thread is done with the previous one and ending before any goes on. No entry is
// written by two iterations of one step and every entry sees the same operations in the same order whatever the
// partition, so the results do not depend on it. The cpu backend's chain is one thread (RegressionSerial), and so is
// the cuda backend's for d <= OURO_MAX_DIM; on its sliced path (larger d, and accumulate_subsample) a chain is a block
// (kernels/linear_regression/linear_regression_cuda.cu).
struct RegressionSerial {
  template <class F>
  OURO_HD void each(int n, F&& f) const {
    for (int k = 0; k < n; ++k) f(k);
  }
  template <class F>
  OURO_HD void each_upper(int n, F&& f) const {
    for (int r = 0; r < n; ++r)
      for (int c = r; c < n; ++c) f(r, c);
  }
  template <class F>
  OURO_HD bool single(F&& f) const {
    return f();
  }
};

// Row a of G's upper triangle from its lower one (column a, which no row writes).
OURO_HD inline void symmetrize_row(int d, double* g, int a) {
  for (int b = a + 1; b < d; ++b) g[a * d + b] = g[b * d + a];
}

// The upper Cholesky factor U of A (full symmetric, row-major; U'U = A) into u, right-looking: step j scales row j
// of U by 1/U[j][j] and subtracts its outer product from the trailing rows, loops over contiguous rows without a
// chain of dependent operations (each entry is updated in the order of j on every backend and policy). Refuses a
// pivot at or below rel_tol times its diagonal entry (a numerically singular matrix, as a system with fewer points
// than dimensions gives): returns false then (on every thread of a policy: they all read the same pivot).
template <class Policy>
OURO_HD inline bool cholesky_upper_relative(const Policy& p, int d, const double* a, double* u, double rel_tol) {
  p.each(d, [&](int r) {
    for (int k = 0; k < d; ++k) u[r * d + k] = a[r * d + k];
  });
  for (int j = 0; j < d; ++j) {
    double* row = u + j * d;
    const double pivot = row[j];
    if (!(pivot > rel_tol * a[j * d + j] && pivot <= 1.7976931348623157e308)) return false;  // also NaN
    const double root = sqrt(pivot), inv = 1.0 / root;
    p.each(d - j, [&](int k) {
      if (k == 0) row[j] = root;
      else row[j + k] *= inv;
    });
    const int m = d - j - 1;
    p.each_upper(m, [&](int r, int c) {
      const int k = j + 1 + r, i = j + 1 + c;
      u[k * d + i] -= row[k] * row[i];
    });
  }
  p.each(d, [&](int r) {
    for (int k = 0; k < r; ++k) u[r * d + k] = 0.0;
  });
  return true;
}

OURO_HD inline bool cholesky_upper_relative(int d, const double* a, double* u, double rel_tol) {
  return cholesky_upper_relative(RegressionSerial{}, d, a, u, rel_tol);
}

// x = (U'U)^{-1} b, in place: U'y = b by columns of U' (rows of U, contiguous), then U x = y by rows (one thread:
// each entry is a dot product in a fixed order).
template <class Policy>
OURO_HD inline void cholesky_upper_solve(const Policy& p, int d, const double* u, double* x) {
  for (int k = 0; k < d; ++k) {
    const double* row = u + k * d;
    const double yk = x[k] / row[k];
    p.each(d - k, [&](int m) {
      if (m == 0) x[k] = yk;
      else x[k + m] -= row[k + m] * yk;
    });
  }
  p.single([&] {
    for (int i = d - 1; i >= 0; --i) {
      const double* row = u + i * d;
      double s = x[i];
      for (int k = i + 1; k < d; ++k) s -= row[k] * x[k];
      x[i] = s / row[i];
    }
    return true;
  });
}

OURO_HD inline void cholesky_upper_solve(int d, const double* u, double* x) {
  cholesky_upper_solve(RegressionSerial{}, d, u, x);
}

// A pivot of the Cholesky factor at or below this share of its diagonal entry marks the system as singular: the
// smallest eigenvalue of a Wishart matrix with n >= d points is of the order of the largest over n^3, far above it,
// while the pivots of a matrix of rank n < d fall to rounding (about 1e-16 of the diagonal).
constexpr double kSingularPivot = 1e-12;

// Row r of the right-hand side and matrix of the fit's update delta = w_t - w_ref, for the frame w_ref = w0 + e_ref:
// OLS  G delta = u;  ridge  (G + lambda I) delta = u - lambda w_ref  (the minimiser of ||X w - y||^2 + lambda ||w||^2).
// g holds G (full); a gets the system's matrix, rhs its right-hand side.
OURO_HD inline void update_system_row(const RegressionStep& s, const RegressionTruth& tr, const double* g,
                                      const double* u, const double* e_ref, double* a, double* rhs, int r) {
  const int d = s.d;
  for (int k = 0; k < d; ++k) a[r * d + k] = g[r * d + k];
  rhs[r] = u[r];
  if (s.estimator == RegressionEstimator::kRidge) {
    a[r * d + r] += s.ridge;
    rhs[r] -= s.ridge * (tr.w0[r] + e_ref[r]);
  }
}

// (G delta)[a].
OURO_HD inline double g_times(int d, const double* g, const double* delta, int a) {
  double gd = 0.0;
  for (int b = 0; b < d; ++b) gd += g[a * d + b] * delta[b];
  return gd;
}

// The residual sum of squares of the update: sum (r - x.delta)^2 = v - delta'(2u - G delta), at least 0 (gd = G delta).
OURO_HD inline double update_rss(int d, const double* gd, const double* u, double v, const double* delta) {
  double q = 0.0;
  for (int a = 0; a < d; ++a) q += delta[a] * (2.0 * u[a] - gd[a]);
  const double rss = v - q;
  return rss > 0.0 ? rss : 0.0;
}

// The metrics of a chain whose model is (w0 + e, s_fit): test_error = e' Sigma_x e, weight_err = ||e||^2,
// norm_ratio = ||w0 + e||^2 / ||w0||^2, noise_ratio = s_fit^2 / sigma0^2. `ok` false (a failed fit) gives NaN in
// every metric, which the aggregation leaves out.
OURO_HD inline void regression_metrics(const RegressionTruth& tr, const double* e, double s_fit, bool ok,
                                       double synthetic_share, double data_age, double* out, std::int64_t stride) {
  const int d = tr.d;
  if (!ok) {
    for (int k = 0; k < kNumRegressionMetrics; ++k) out[k * stride] = NAN;
    return;
  }
  double test = 0.0, werr = 0.0, wnorm = 0.0;
  for (int a = 0; a < d; ++a) {
    double ce = 0.0;
    for (int b = 0; b < d; ++b) ce += tr.cov[a * d + b] * e[b];
    test += e[a] * ce;
    werr += e[a] * e[a];
    const double w = tr.w0[a] + e[a];
    wnorm += w * w;
  }
  out[kTestError * stride] = test;
  out[kWeightErr * stride] = werr;
  out[kNormRatio * stride] = wnorm / tr.w0_norm2;
  out[kNoiseRatio * stride] = (s_fit / tr.sigma0) * (s_fit / tr.sigma0);
  out[kRegressionSyntheticShare * stride] = synthetic_share;
  out[kRegressionDataAge * stride] = data_age;
  out[kRegressionDrawsPerKept * stride] = 1.0;  // (a filtering backend writes its own after the fit)
}

// The arrays of a batch of chains, structure of arrays, in the backend's memory. Local chain c of the batch has
// global id chain0 + c, which keys its random streams.
struct RegressionChains {
  std::int64_t batch;
  std::uint32_t chain0;
  double* e;          // [batch * d]  w_t - w0
  double* s_model;    // [batch]      the model's labelling noise s_t
  double* s_fit;      // [batch]      its fitted residual standard deviation sqrt(RSS/N)
  unsigned char* ok;  // [batch]      0 once a fit failed (not finite)
  double* pool_g;     // [batch * d * d]  accumulate: the pool's statistics in the current fit's frame
  double* pool_u;     // [batch * d]
  double* pool_v;     // [batch]
  double* pool_n;     // [batch]
  double* hist_e;     // [(generations + 1) * batch * d]  accumulate_subsample: every generation's model
  double* hist_s;     // [(generations + 1) * batch]
  double* metrics;    // [kNumRegressionMetrics * batch]
};

// Generation 0: every chain is the truth.
OURO_HD inline void start_regression_chain(const RegressionTruth& tr, const RegressionChains& c, std::int64_t i,
                                           bool subsample) {
  const int d = tr.d;
  for (int a = 0; a < d; ++a) c.e[i * d + a] = 0.0;
  c.s_model[i] = tr.sigma0;
  c.s_fit[i] = tr.sigma0;
  c.ok[i] = 1;
  if (c.pool_g) {
    for (int a = 0; a < d * d; ++a) c.pool_g[i * d * d + a] = 0.0;
    for (int a = 0; a < d; ++a) c.pool_u[i * d + a] = 0.0;
    c.pool_v[i] = 0.0;
    c.pool_n[i] = 0.0;
  }
  if (subsample) {
    for (int a = 0; a < d; ++a) c.hist_e[i * d + a] = 0.0;
    c.hist_s[i] = tr.sigma0;
  }
  regression_metrics(tr, c.e + i * d, tr.sigma0, true, 0.0, 0.0, c.metrics + i, c.batch);
}

// accumulate_subsample: generation t trains on `samples` points drawn uniformly without replacement from the pool
// of every point of generations 1..t (positions by Selection, kernels/training/regime.h; pool position j is point
// j % n of generation j / n + 1). Calls f(k, i, is_real, wt) for each chosen point in order: point i of generation
// k, a real draw or not, weighted by age_decay^(t - k). `Sel` makes the decisions: Selection itself, or on the cpu
// BatchedSelection (kernels/training/batched_selection.h), the same decisions made faster.
template <class Sel = Selection, class F>
OURO_HD inline void subsample_points(const RegressionStep& s, std::uint32_t chain, F&& f) {
  const int samples = s.samples;
  const int t = s.generation;
  const std::int64_t total = static_cast<std::int64_t>(t) * samples;
  Sel sel{s.seed, chain, static_cast<std::uint32_t>(t), total, total < samples ? total : samples};
  for (int k = 1; k <= t && !sel.done(); ++k) {
    const int real = real_points_of(k, samples, s.real_count);
    const double wt = pow_int(s.age_decay, t - k);
    for (int i = 0; i < samples && !sel.done(); ++i) {
      if (!sel.next()) continue;
      f(k, i, i < real, wt);
    }
  }
}

// The composition of a subsampled training set: its synthetic share and mean age, each point weighted by its age
// weight, summed in the points' order.
struct SubsampleTally {
  double points = 0.0, synthetic = 0.0, age = 0.0;
  OURO_HD void add(bool is_real, double wt, int age_generations) {
    points += wt;
    synthetic += is_real ? 0.0 : wt;
    age += wt * static_cast<double>(age_generations);
  }
  OURO_HD double synthetic_share() const { return synthetic / points; }
  OURO_HD double data_age() const { return age / points; }
};

// The subsampled points of subsample_points, each regenerated from its counter and labelled by the model that
// labelled it (the truth for real points, generation k-1's model, from the history, for synthetic points of
// generation k). Adds them, in the frame w0 + e_ref and weighted by their age weights, to (g, u, v, n), and writes
// the training set's synthetic share and mean age.
template <class Sel = Selection>
OURO_HD inline void subsample_statistics(const RegressionStep& s, const RegressionTruth& tr, std::uint32_t chain,
                                         const double* hist_e, const double* hist_s, std::int64_t batch,
                                         std::int64_t local, const double* e_ref, double* z, double* x, double* g,
                                         double* u, double& v, double& n, double& synthetic_share, double& data_age) {
  const int d = s.d;
  SubsampleTally tally;
  subsample_points<Sel>(s, chain, [&](int k, int i, bool is_real, double wt) {
    const std::int64_t slot = static_cast<std::int64_t>(k - 1) * batch + local;
    const double eps =
        is_real ? regenerate_point(s, tr, chain, real_draw_generation(s.real_source, k), rng::kStreamRealDraw, i, z, x)
                : regenerate_point(s, tr, chain, static_cast<std::uint32_t>(k), rng::kStreamSyntheticDraw, i, z, x);
    const double r = is_real ? point_residual(d, x, eps, tr.sigma0, nullptr, e_ref)
                             : point_residual(d, x, eps, hist_s[slot], hist_e + slot * d, e_ref);
    add_point(d, x, r, wt, g, u, v);
    n += wt;
    tally.add(is_real, wt, s.generation - k);
  });
  synthetic_share = tally.synthetic_share();
  data_age = tally.data_age();
}

// Fits generation s.generation of local chain i from its training set's statistics (g: G's lower triangle, u, v,
// n, in the frame of the chain's current model) and writes its metrics. Under accumulate the pool (in the same
// frame, its weights aged by age_decay) joins first, and leaves in the new fit's frame. Scratch: a and l (d * d),
// delta (d). A system whose Cholesky factorisation fails (fewer points than
// dimensions): `singular(a, delta, e_ref)` overwrites the right-hand side in delta with the update: the
// minimum-norm least-squares one for OLS (the frame's model is w0 + e_ref), and returns whether it is finite (the
// backend's own routine: Eigen on the cpu; run once, by policy.single). Each thread of a policy passes its own
// copies of the scalars (v, n, the composition), the same on all of them; the arrays are the chain's, shared.
template <class Policy, class Singular>
OURO_HD inline void finish_regression_chain(const Policy& p, const RegressionStep& s, const RegressionTruth& tr,
                                            const RegressionChains& c, std::int64_t i, double* g, double* u, double v,
                                            double n, double synthetic_share, double data_age, double* a, double* l,
                                            double* delta, Singular&& singular) {
  const int d = s.d;
  double* e = c.e + i * d;
  p.each(d, [&](int r) { symmetrize_row(d, g, r); });
  double* pg = nullptr;
  double* pu = nullptr;
  if (s.regime == Regime::kAccumulate) {
    const double q = s.age_decay;
    pg = c.pool_g + i * d * d;
    pu = c.pool_u + i * d;
    p.each(d, [&](int r) {
      for (int k = r * d; k < (r + 1) * d; ++k) g[k] += q * pg[k];
      u[r] += q * pu[r];
    });
    v += q * c.pool_v[i];
    n += q * c.pool_n[i];
  }
  if (!c.ok[i]) {  // a failed chain stays failed: its model cannot label points
    p.single([&] {
      regression_metrics(tr, e, c.s_fit[i], false, synthetic_share, data_age, c.metrics + i, c.batch);
      return true;
    });
    return;
  }
  p.each(d, [&](int r) { update_system_row(s, tr, g, u, e, a, delta, r); });
  bool ok = true;
  if (cholesky_upper_relative(p, d, a, l, kSingularPivot)) cholesky_upper_solve(p, d, l, delta);
  else ok = p.single([&] { return singular(a, delta, e); });  // (the factorisation wrote l only: a is intact)
  double* gd = l;                                             // G delta, in the factor's room (done with)
  p.each(d, [&](int r) { gd[r] = g_times(d, g, delta, r); });
  const double rss = update_rss(d, gd, u, v, delta);
  const double s_fit = sqrt(rss / n);
  p.each(d, [&](int k) { e[k] += delta[k]; });
  ok = p.single([&] {
    bool finite = ok;
    for (int k = 0; k < d; ++k) finite = finite && std::isfinite(e[k]);
    finite = finite && std::isfinite(s_fit);
    c.ok[i] = finite ? 1 : 0;
    c.s_fit[i] = s_fit;
    c.s_model[i] = s.noise == RegressionNoise::kFitted ? s_fit : tr.sigma0;
    return finite;
  });
  if (pg) {  // the pool, into the new fit's frame: u <- u - G delta, v <- rss
    p.each(d, [&](int r) {
      for (int k = r * d; k < (r + 1) * d; ++k) pg[k] = g[k];
      pu[r] = u[r] - gd[r];
    });
    p.single([&] {
      c.pool_v[i] = rss;
      c.pool_n[i] = n;
      return true;
    });
  }
  if (s.regime == Regime::kAccumulateSubsample) {
    const std::int64_t slot = static_cast<std::int64_t>(s.generation) * c.batch + i;
    p.each(d, [&](int k) { c.hist_e[slot * d + k] = e[k]; });
    p.single([&] {
      c.hist_s[slot] = c.s_model[i];
      return true;
    });
  }
  p.single([&] {
    regression_metrics(tr, e, s_fit, ok, synthetic_share, data_age, c.metrics + i, c.batch);
    return true;
  });
}

// The same on one thread.
template <class Singular>
OURO_HD inline void finish_regression_chain(const RegressionStep& s, const RegressionTruth& tr,
                                            const RegressionChains& c, std::int64_t i, double* g, double* u, double v,
                                            double n, double synthetic_share, double data_age, double* a, double* l,
                                            double* delta, Singular&& singular) {
  finish_regression_chain(RegressionSerial{}, s, tr, c, i, g, u, v, n, synthetic_share, data_age, a, l, delta,
                          singular);
}

}  // namespace ouro::kernels

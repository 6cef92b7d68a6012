// The mixture family's metrics against the truth mixture, written once for both backends: the truth and what every
// chain's metrics reuse, moments, L2 overlaps, the mass outside a Mahalanobis radius (kernels/core/quadform.h) and
// the metric block of one chain. (tail_mass and rare_mode_mass call erfc and the quadratic-form code, whose libm
// calls may differ in the last ulp between backends.)
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/quadform.h"
#include "kernels/core/sample_metrics.h"
#include "kernels/core/shapes.h"
#include "kernels/gmm/gmm_em.h"
#include "kernels/gmm/gmm_mixture.h"

namespace ouro::kernels {

// ---- the truth and the metrics ---------------------------------------------------------------------

// Metric slots of the mixture family, in metrics.csv order; component_std_k
// for k = 1..K follow the fixed slots.
enum GmmMetric : int {
  kGmmVarRatio = 0,
  kGmmTailMass,
  kGmmXent,
  kGmmL2Density,
  kGmmDeadComponents,
  kGmmMinWeight,
  kGmmRareModeMass,
  kGmmEmIters,
  kGmmEmFailures,
  kGmmEmUnconverged,
  kGmmSyntheticShare,
  kGmmDataAge,
  kGmmFitNll,
  kGmmDrawsPerKept,
  kGmmComponentStd1,
  // The sample-based metrics (kernels/core/sample_metrics.h), in SampleMetric order: the family table's entries after
  // component_std_k; their rows follow the K component rows (gmm_sample_row), present only when
  // metrics.sample_based lists one.
  kGmmPrecision,
  kGmmRecall,
  kGmmCoverage,
  kGmmEnergy,
};
static_assert(kGmmRecall - kGmmPrecision == kSampleRecall && kGmmCoverage - kGmmPrecision == kSampleCoverage &&
                  kGmmEnergy - kGmmPrecision == kSampleEnergy,
              "the mixture family's sample-based entries follow kernels::SampleMetric");
OURO_HD inline int gmm_num_metrics(int K) { return kGmmComponentStd1 + K; }
// The rows of a batch's metric block: the fixed slots, the K component rows, and the sample-based metrics' rows when
// some are asked for (sample_mask, bit k for SampleMetric k), so that a run without them keeps the block it had.
OURO_HD inline int gmm_metric_rows(int K, unsigned sample_mask) {
  return gmm_num_metrics(K) + (sample_mask ? kSampleMetricCount : 0);
}
OURO_HD inline int gmm_sample_row(int K, int k) { return gmm_num_metrics(K) + k; }

// The truth and what every chain's metrics reuse, computed once on the host
// (sim/families/gmm/gmm_family.cc). The truth is a mixture (shape.kind
// kNone: K0 components in params) or a shape law (kernels/core/shapes.h:
// K0 = 0, and only mean, cov, chol, trace and dead_weight below are set;
// the rest needs the truth's density in closed form and stays NaN).
struct GmmTruth {
  int K0, d;
  double params[kGmmMaxComponents * (2 + kGmmMaxDim + 2 * kGmmMaxDim * kGmmMaxDim)];  // block of K0
  double mean[kGmmMaxDim];  // the mixture's overall mean and covariance
  double cov[kGmmMaxDim * kGmmMaxDim];
  double chol[kGmmMaxDim * kGmmMaxDim];
  double trace;         // tr of the overall covariance
  double tail_r2;       // squared Mahalanobis radius (overall mean/cov) outside which the truth has 1% of its mass
  int rare;             // the truth's lowest-weight component (the first such)
  double rare_mass;     // the truth's mass within Mahalanobis radius 2 of it (w.r.t. its own covariance)
  double self_overlap;  // integral of p_truth^2
  double dead_weight;   // metrics.dead_weight
  ShapeTruth shape;     // a shape truth (kind kNone for a mixture)
};

OURO_HD inline bool is_shape(const GmmTruth& t) { return t.shape.kind != ShapeKind::kNone; }

OURO_HD inline GmmCView truth_view(const GmmTruth& t) {
  return gmm_view(t.K0, t.d, static_cast<const double*>(t.params));
}

// Real point i of generation `gen` of a chain, drawn from the truth: every real draw of the continuous families
// (training sets, the held-out set) goes through here. A shape truth draws with shape_draw on the real streams, a
// mixture with gmm_draw.
OURO_HD inline void truth_draw(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::int64_t i,
                               const GmmTruth& t, double* x) {
  if (is_shape(t)) shape_draw(seed, chain, gen, rng::kStreamRealComponent, rng::kStreamRealDraw, i, t.shape, x);
  else gmm_draw(seed, chain, gen, true, i, truth_view(t), x);
}

// Points [0, count) of the model sample at generation 0 (kernels/core/chain_backend.h), whose model is the truth:
// a mixture's are gmm_model_sample's, a shape's are shape_draw's on the model-sample streams.
OURO_HD inline void truth_model_sample(std::uint32_t seed, std::uint32_t chain, const GmmTruth& t, std::int64_t count,
                                       double* x) {
  if (!is_shape(t)) {
    gmm_model_sample(seed, chain, 0, truth_view(t), count, x);
    return;
  }
  for (std::int64_t i = 0; i < count; ++i)
    shape_draw(seed, chain, 0, rng::kStreamModelChoice, rng::kStreamModelSample, i, t.shape, x + i * t.d);
}

// Generation 0's parameters as the warm start of generation 1 (used when the
// model has the truth's K0 components): the truth's block, with diagonal
// covariances its diagonal projection.
OURO_HD inline void gmm_warm_start_block(const GmmTruth& t, bool diag, double* out) {
  const int P = gmm_block_size(t.K0, t.d), d = t.d;
  for (int i = 0; i < P; ++i) out[i] = t.params[i];
  if (!diag) return;
  const GmmView v = gmm_view(t.K0, d, out);
  for (int k = 0; k < t.K0; ++k)
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b)
        if (a != b) v.cov[k * d * d + a * d + b] = 0.0;
  gmm_complete(v);
}

// Overall mean and covariance of a mixture: sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T.
OURO_HD inline void gmm_moments(const GmmCView& m, double* mean, double* cov) {
  const int d = m.d;
  for (int a = 0; a < d; ++a) {
    mean[a] = 0.0;
    for (int k = 0; k < m.K; ++k) mean[a] += m.w[k] * m.mu[k * d + a];
  }
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) {
      double s = 0.0;
      for (int k = 0; k < m.K; ++k) {
        const double ea = m.mu[k * d + a] - mean[a], eb = m.mu[k * d + b] - mean[b];
        s += m.w[k] * (m.cov[k * d * d + a * d + b] + ea * eb);
      }
      cov[a * d + b] = s;
    }
}

// Integral of N(x; mu1, S1) N(x; mu2, S2) dx = N(mu1; mu2, S1 + S2).
OURO_HD inline double gauss_overlap(int d, const double* mu1, const double* s1, const double* mu2, const double* s2) {
  double s[kGmmMaxDim * kGmmMaxDim], l[kGmmMaxDim * kGmmMaxDim], e[kGmmMaxDim], y[kGmmMaxDim];
  for (int a = 0; a < d * d; ++a) s[a] = s1[a] + s2[a];
  if (!cholesky(d, s, l)) return NAN;
  for (int a = 0; a < d; ++a) e[a] = mu1[a] - mu2[a];
  lower_solve(d, l, e, y);
  double q = 0.0, logdet_half = 0.0;
  for (int a = 0; a < d; ++a) {
    q += y[a] * y[a];
    logdet_half += log_positive(l[a * d + a]);
  }
  return exp_poly(-0.5 * q - logdet_half - 0.5 * d * kLog2Pi);
}

// Integral of p_a p_b for two mixtures (closed form: sum of pairwise overlaps).
OURO_HD inline double mixture_overlap(const GmmCView& a, const GmmCView& b) {
  const int d = a.d;
  double s = 0.0;
  for (int i = 0; i < a.K; ++i)
    for (int j = 0; j < b.K; ++j)
      s += a.w[i] * b.w[j] * gauss_overlap(d, a.mu + i * d, a.cov + i * d * d, b.mu + j * d, b.cov + j * d * d);
  return s;
}

// Mass of the mixture outside the ellipsoid (x - c)^T (L L^T)^{-1} (x - c) <= r2.
OURO_HD inline double mixture_outside(const GmmCView& m, const double* c, const double* l, double r2) {
  double s = 0.0;
  for (int k = 0; k < m.K; ++k) s += m.w[k] * gaussian_tail_mass(m.d, c, l, m.mu + k * m.d, m.cov + k * m.d * m.d, r2);
  return s;
}

// Every metric of one mixture (definitions in README) into the slots of a
// family with `slots` components (m.K == slots except at generation 0, where
// m is the truth: component_std_k beyond its K0 components is NaN). A failed
// chain (`failed`) has em_failures = 1 and NaN everywhere else, which the
// aggregation leaves out of those metrics. fit_nll is minus the mean
// log-likelihood of the kept fit's last E-step on its training set (EM's own
// number, before its last M-step; NaN for the truth).
OURO_HD inline void gmm_metrics(const GmmTruth& tr, const GmmCView& m, int slots, bool failed, int iters,
                                bool unconverged, double xent, double fit_nll, double synthetic_share, double data_age,
                                double* out, std::int64_t stride) {
  const int K = m.K, d = m.d;
  for (int k = 0; k < gmm_num_metrics(slots); ++k) out[k * stride] = NAN;
  if (failed) {
    out[kGmmEmFailures * stride] = 1.0;
    return;
  }
  double mean[kGmmMaxDim], cov[kGmmMaxDim * kGmmMaxDim];
  gmm_moments(m, mean, cov);
  double trace = 0.0;
  for (int a = 0; a < d; ++a) trace += cov[a * d + a];
  int dead = 0;
  double min_w = INFINITY;
  for (int k = 0; k < K; ++k) {
    dead += m.w[k] < tr.dead_weight ? 1 : 0;
    min_w = m.w[k] < min_w ? m.w[k] : min_w;
  }
  // The metrics that need the truth's density in closed form: a mixture truth only (a shape's stay NaN, unwritten).
  if (!is_shape(tr)) {
    const GmmCView t = truth_view(tr);
    const double l2sq = mixture_overlap(m, m) - 2.0 * mixture_overlap(m, t) + tr.self_overlap;
    const double* rare_mu = t.mu + tr.rare * d;
    const double* rare_l = t.chol + tr.rare * d * d;
    const double rare_in = 1.0 - mixture_outside(m, rare_mu, rare_l, 4.0);
    out[kGmmTailMass * stride] = mixture_outside(m, tr.mean, tr.chol, tr.tail_r2) / 0.01;
    out[kGmmL2Density * stride] = l2sq < 0.0 ? 0.0 : sqrt(l2sq);  // rounding below 0 is 0; NaN stays NaN
    out[kGmmRareModeMass * stride] = rare_in / tr.rare_mass;
  }
  out[kGmmVarRatio * stride] = trace / tr.trace;
  out[kGmmXent * stride] = xent;
  out[kGmmDeadComponents * stride] = dead;
  out[kGmmMinWeight * stride] = min_w;
  out[kGmmEmIters * stride] = iters;
  out[kGmmEmFailures * stride] = 0.0;
  out[kGmmEmUnconverged * stride] = unconverged ? 1.0 : 0.0;
  out[kGmmSyntheticShare * stride] = synthetic_share;
  out[kGmmDataAge * stride] = data_age;
  out[kGmmFitNll * stride] = fit_nll;
  out[kGmmDrawsPerKept * stride] = 1.0;  // a caller with a verifier writes its own
  // Components by decreasing weight (ties: lower index first), so that
  // label switching cannot exchange the columns.
  bool used[kGmmMaxComponents] = {};
  for (int r = 0; r < K && r < slots; ++r) {
    int best = -1;
    for (int k = 0; k < K; ++k)
      if (!used[k] && (best < 0 || m.w[k] > m.w[best])) best = k;
    used[best] = true;
    double tr_k = 0.0;
    for (int a = 0; a < d; ++a) tr_k += m.cov[best * d * d + a * d + a];
    out[(kGmmComponentStd1 + r) * stride] = sqrt(tr_k / d);
  }
}

// Generation 0's metrics, where every chain is the truth, into out (stride 1), on the host: a mixture's are
// gmm_metrics of the truth with its cross-entropy on the held-out set (count points; lanes: kEmLanes doubles of
// scratch); a shape law has no density in closed form, so it has var_ratio 1, draws_per_kept 1, the fit's counters
// and the composition 0, and NaN for the rest (xent, the components' metrics).
inline void gmm_truth_metrics(const GmmTruth& tr, int slots, const double* heldout, std::int64_t count, double* lanes,
                              double* out) {
  if (!is_shape(tr)) {
    const double xent = -mean_loglik_serial(truth_view(tr), false, heldout, count, lanes);
    gmm_metrics(tr, truth_view(tr), slots, false, 0, false, xent, NAN, 0.0, 0.0, out, 1);
    return;
  }
  for (int k = 0; k < gmm_num_metrics(slots); ++k) out[k] = NAN;
  out[kGmmVarRatio] = 1.0;
  for (int k : {kGmmEmIters, kGmmEmFailures, kGmmEmUnconverged, kGmmSyntheticShare, kGmmDataAge}) out[k] = 0.0;
  out[kGmmDrawsPerKept] = 1.0;
}

// The sample-based metrics of `mask` (kernels/core/sample_metrics.h) of a chain's mixture *m at generation `gen`
// (the truth at generation 0, sampled by truth_model_sample; null: a failed chain, whose model cannot be sampled):
// its model sample of n points (gmm_model_sample) into `points` (n * d), scratch n doubles, against the held-out side
// h, into the chain's sample-based rows of a block of a K-component family (`out` the chain's first value, rows
// `stride` apart; NaN for those not asked for, and all four for a failed chain).
OURO_HD inline void gmm_sample_metrics(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, const GmmCView* m,
                                       const GmmTruth& truth, int K, std::int64_t n, unsigned mask,
                                       const HeldoutSide& h, double* points, double* scratch, double* out,
                                       std::int64_t stride) {
  if (!mask) return;  // (the block has no such rows)
  for (int k = 0; k < kSampleMetricCount; ++k) out[gmm_sample_row(K, k) * stride] = NAN;
  if (!m) return;
  if (gen == 0) truth_model_sample(seed, chain, truth, n, points);
  else gmm_model_sample(seed, chain, gen, *m, n, points);
  double v[kSampleMetricCount];
  sample_metrics(h, points, n, mask, scratch, v);
  for (int k = 0; k < kSampleMetricCount; ++k)
    if ((mask >> k) & 1u) out[gmm_sample_row(K, k) * stride] = v[k];
}

}  // namespace ouro::kernels

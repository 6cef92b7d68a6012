// The Gaussian-mixture family's per-chain math, written once for both
// backends: drawing points, EM (expectation-maximisation, Dempster, Laird &
// Rubin 1977) with k-means++ seeding (Arthur & Vassilvitskii 2007), and the
// metrics against the truth mixture.
//
// A chain's model at generation t is a mixture of K Gaussians in d
// dimensions, kept as one flat parameter block (layout below). Generation t's
// training set is materialised point by point from the regime's pool
// (kernels/training/regime.h): a pool point is regenerated from the model that drew it
// and its counter, so only every generation's parameters are stored, never
// old points.
//
// EM's reductions (the E-step's sufficient statistics, the log-likelihood,
// the held-out cross-entropy) have one fixed order on every backend: point i
// belongs to lane i mod kEmLanes, each lane sums its points in increasing
// order, and the lanes are combined by one fixed tree (em_reduce_lanes). The
// cuda backend runs a lane per thread and the cpu backend runs the lanes in
// turn, so both perform the same sequence of IEEE operations: with the
// polynomial exp/log below (no libm) and no FMA contraction, EM's iterates,
// its iteration counts and its convergence decisions are the same on both.
// (The tail-mass metrics call erfc and the quadratic-form code, whose libm
// calls may differ in the last ulp between backends.)
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/elementary.h"
#include "kernels/core/linalg.h"
#include "kernels/core/normal.h"
#include "kernels/core/portability.h"
#include "kernels/core/quadform.h"
#include "kernels/core/rng.h"
#include "kernels/training/dedup.h"
#include "kernels/training/regime.h"

namespace ouro::kernels {

inline constexpr int kGmmMaxDim = 8;
inline constexpr int kGmmMaxComponents = 16;
inline constexpr int kEmLanes = 128;  // fixed reduction lanes (= threads per chain on cuda)
inline constexpr int kEmWarp = 32;
inline constexpr double kLog2Pi = 1.8378770664093454836;

// ---- one mixture's parameters ------------------------------------------------------

// A mixture of K components in d dimensions as one flat block of doubles:
//   w[K] | mu[K*d] | cov[K*d*d] | chol[K*d*d] | lognorm[K]
// cov row-major and symmetric, chol its lower Cholesky factor, and
// lognorm_k = ln w_k - ln det L_k - (d/2) ln 2 pi (the log-density's constant).
OURO_HD inline int gmm_block_size(int K, int d) { return K * (2 + d + 2 * d * d); }

template <class T>
struct GmmViewT {
  int K, d;
  T* w;
  T* mu;
  T* cov;
  T* chol;
  T* lognorm;
};
using GmmView = GmmViewT<double>;
using GmmCView = GmmViewT<const double>;

template <class T>
OURO_HD inline GmmViewT<T> gmm_view(int K, int d, T* p) {
  GmmViewT<T> v;
  v.K = K;
  v.d = d;
  v.w = p;
  v.mu = p + K;
  v.cov = v.mu + K * d;
  v.chol = v.cov + K * d * d;
  v.lognorm = v.chol + K * d * d;
  return v;
}

OURO_HD inline GmmCView as_const(const GmmView& v) { return GmmCView{v.K, v.d, v.w, v.mu, v.cov, v.chol, v.lognorm}; }

// Fills chol and lognorm from w and cov; false if a covariance is not
// numerically positive definite.
OURO_HD inline bool gmm_complete(const GmmView& m) {
  const int d = m.d;
  bool ok = true;
  for (int k = 0; k < m.K; ++k) {
    ok = cholesky(d, m.cov + k * d * d, m.chol + k * d * d) && ok;
    double logdet_half = 0.0;
    for (int a = 0; a < d; ++a) logdet_half += log_positive(m.chol[k * d * d + a * d + a]);
    m.lognorm[k] = log_positive(m.w[k]) - logdet_half - 0.5 * d * kLog2Pi;
  }
  return ok;
}

// ---- drawing points ----------------------------------------------------------------------

// The component of a point from one 32-bit word: component k covers the words
// in [floor(2^32 c_{k-1}), floor(2^32 c_k)), c_k the cumulative weights,
// the last one reaching 2^32. Integer thresholds: a last-bit difference in
// the weights cannot flip a choice unless it moves a threshold.
OURO_HD inline int pick_component(int K, const double* w, std::uint32_t word) {
  double acc = 0.0;
  for (int k = 0; k + 1 < K; ++k) {
    acc += w[k];
    const double t = acc >= 1.0 ? 4294967296.0 : floor(acc * 4294967296.0);
    if (static_cast<double>(word) < t) return k;
  }
  return K - 1;
}

// Point i of generation `gen` of a chain, drawn from the mixture m: real
// draws (from the truth) and synthetic ones use separate component and
// normal streams. Coordinates are normals i*d .. i*d+d-1 of the normal stream,
// the component is word i of the component stream; x = mu_k + L_k z.
OURO_HD inline void gmm_draw(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, bool real, std::int64_t i,
                             const GmmCView& m, double* x) {
  const std::uint32_t comp_stream = real ? rng::kStreamRealComponent : rng::kStreamSyntheticComponent;
  const std::uint32_t normal_stream = real ? rng::kStreamRealDraw : rng::kStreamSyntheticDraw;
  const auto iu = static_cast<std::uint64_t>(i);
  const rng::Block b = rng::draw_block(seed, chain, gen, comp_stream, iu >> 2);
  const int k = pick_component(m.K, m.w, b.v[iu & 3]);
  double z[kGmmMaxDim];
  stream_normals(seed, chain, gen, normal_stream, iu * m.d, m.d, z);
  affine_lower(m.d, m.mu + k * m.d, m.chol + k * m.d * m.d, z, x);
}

// ---- E-step --------------------------------------------------------------------------------

// ln(w_k N(x; mu_k, Sigma_k)) for every component into lp; returns the
// largest. diag: the covariances are diagonal (chol too).
OURO_HD inline double gmm_log_terms(const GmmCView& m, bool diag, const double* x, double* lp) {
  const int d = m.d;
  double top = -INFINITY;
  for (int k = 0; k < m.K; ++k) {
    const double* mu = m.mu + k * d;
    const double* l = m.chol + k * d * d;
    double q = 0.0;
    if (diag) {
      for (int a = 0; a < d; ++a) {
        const double y = (x[a] - mu[a]) / l[a * d + a];
        q += y * y;
      }
    } else {
      double y[kGmmMaxDim];
      for (int a = 0; a < d; ++a) {
        double s = x[a] - mu[a];
        for (int b = 0; b < a; ++b) s -= l[a * d + b] * y[b];
        y[a] = s / l[a * d + a];
        q += y[a] * y[a];
      }
    }
    lp[k] = m.lognorm[k] - 0.5 * q;
    top = lp[k] > top ? lp[k] : top;
  }
  return top;
}

// ln of the log-sum-exp's sum s: s >= 1 whenever the largest term is finite;
// anything else (NaN from a degenerate component) stays NaN rather than
// reaching log_positive, which is defined for positive normal inputs only.
OURO_HD OURO_FORCEINLINE double log_sum(double s) { return s >= 1.0 ? log_positive(s) : NAN; }

// ln p(x) under the mixture (log-sum-exp); lp[k] becomes e^{lp_k - top}.
OURO_HD inline double gmm_log_density(const GmmCView& m, bool diag, const double* x, double* lp) {
  const double top = gmm_log_terms(m, diag, x, lp);
  double s = 0.0;
  for (int k = 0; k < m.K; ++k) {
    lp[k] = exp_poly(lp[k] - top);
    s += lp[k];
  }
  return top + log_sum(s);
}

// Sufficient statistics of one E-step: per component k, at offset
// k (1 + d + d^2): N_k = sum r_ik, S1_k = sum r_ik (x_i - c_k), S2_k = sum
// r_ik (x_i - c_k)(x_i - c_k)^T (lower triangle; the diagonal only for diag
// covariances), with c_k the component's current mean (shifting by it keeps
// the M-step's covariance free of cancellation); the last entry is
// sum ln p(x_i). With frequency weights w_i (data.tail_upsample,
// data.age_decay) every term is weighted: r_ik becomes w_i r_ik and ln p(x_i)
// w_i ln p(x_i) (exactly the unweighted bits when every w_i is 1).
OURO_HD inline int em_stats_size(int K, int d) { return K * (1 + d + d * d) + 1; }

enum class LanePass : int {
  kSoft = 0,  // EM: responsibilities r_ik from the current mixture
  kHard = 1,  // initialisation: r_ik = 1 for the nearest mean (Euclidean; ties to the lowest k)
};

// Lane `lane`'s partial statistics over points lane, lane + kEmLanes, ... of
// X (count x d, row-major), weighted by W[count] (null: every weight 1),
// into acc[em_stats_size].
OURO_HD inline void em_lane_pass(LanePass mode, const GmmCView& m, bool diag, const double* X, const double* W,
                                 std::int64_t count, int lane, double* acc) {
  const int K = m.K, d = m.d;
  const int per = 1 + d + d * d;
  const int S = em_stats_size(K, d);
  for (int s = 0; s < S; ++s) acc[s] = 0.0;
  double lp[kGmmMaxComponents];
  for (std::int64_t i = lane; i < count; i += kEmLanes) {
    const double* x = X + i * d;
    const double w = W ? W[i] : 1.0;
    double inv = w;
    int nearest = 0;
    if (mode == LanePass::kSoft) {
      double s = 0.0;
      const double top = gmm_log_terms(m, diag, x, lp);
      for (int k = 0; k < K; ++k) {
        lp[k] = exp_poly(lp[k] - top);
        s += lp[k];
      }
      acc[S - 1] += w != 0.0 ? w * (top + log_sum(s)) : 0.0;  // (as cpu_estep's lanes past the end)
      inv = w / s;
    } else {
      double best = INFINITY;
      for (int k = 0; k < K; ++k) {
        double q = 0.0;
        for (int a = 0; a < d; ++a) {
          const double e = x[a] - m.mu[k * d + a];
          q += e * e;
        }
        if (q < best) best = q, nearest = k;
      }
    }
    for (int k = 0; k < K; ++k) {
      const double r = mode == LanePass::kSoft ? lp[k] * inv : (k == nearest ? w : 0.0);
      if (r == 0.0) continue;
      double* st = acc + k * per;
      const double* c = m.mu + k * d;
      st[0] += r;
      for (int a = 0; a < d; ++a) {
        const double e = x[a] - c[a];
        const double re = r * e;
        st[1 + a] += re;
        if (diag) {
          st[1 + d + a * d + a] += re * e;
        } else {
          for (int b = 0; b <= a; ++b) st[1 + d + a * d + b] += re * (x[b] - c[b]);
        }
      }
    }
  }
}

// Lane `lane`'s partial sum of ln p(x_i) over points lane, lane + kEmLanes, ...
OURO_HD inline double lane_loglik(const GmmCView& m, bool diag, const double* X, std::int64_t count, int lane) {
  double lp[kGmmMaxComponents];
  double s = 0.0;
  for (std::int64_t i = lane; i < count; i += kEmLanes) s += gmm_log_density(m, diag, X + i * m.d, lp);
  return s;
}

// The fixed combination of kEmLanes lane partials into out[s], lane l's
// partial of statistic s at lanes[l * lane_stride + s * stat_stride]: within
// each group of 32 lanes, v[l] += v[l + h] for h = 16, 8, 4, 2, 1 (the order
// of a warp's shuffle-down reduction), then the four group totals as
// (g0 + g1) + (g2 + g3). `lanes` is overwritten.
OURO_HD inline void em_reduce_lanes(int S, double* lanes, int lane_stride, int stat_stride, double* out) {
  for (int s = 0; s < S; ++s) {
    double* v = lanes + s * stat_stride;
    for (int g = 0; g < kEmLanes; g += kEmWarp)
      for (int h = kEmWarp / 2; h >= 1; h >>= 1)
        for (int l = 0; l < h; ++l) v[(g + l) * lane_stride] += v[(g + l + h) * lane_stride];
    const double g0 = v[0], g1 = v[kEmWarp * lane_stride];
    const double g2 = v[2 * kEmWarp * lane_stride], g3 = v[3 * kEmWarp * lane_stride];
    out[s] = (g0 + g1) + (g2 + g3);
  }
}

// ---- M-step ----------------------------------------------------------------------------------

// New parameters from one E-step's statistics (kernels: the shift c_k is
// the mean in m). As in scikit-learn's GaussianMixture, N_k gets 10 machine
// epsilons (an empty component keeps a tiny weight and a finite mean) and
// every covariance gets the ridge reg_covar on its diagonal. Returns false
// when a covariance is not positive definite (the fit has failed).
OURO_HD inline bool em_mstep(const GmmView& m, bool diag, double reg_covar, const double* stats) {
  const int K = m.K, d = m.d;
  const int per = 1 + d + d * d;
  const double tiny = 10.0 * 2.220446049250313e-16;
  double total = 0.0;
  for (int k = 0; k < K; ++k) total += stats[k * per] + tiny;
  for (int k = 0; k < K; ++k) {
    const double* st = stats + k * per;
    const double nk = st[0] + tiny;
    m.w[k] = nk / total;
    double delta[kGmmMaxDim];
    for (int a = 0; a < d; ++a) delta[a] = st[1 + a] / nk;
    double* cov = m.cov + k * d * d;
    for (int a = 0; a < d; ++a)
      for (int b = 0; b <= a; ++b) {
        double c;
        if (a == b) c = st[1 + d + a * d + a] / nk - delta[a] * delta[a] + reg_covar;
        else c = diag ? 0.0 : st[1 + d + a * d + b] / nk - delta[a] * delta[b];
        cov[a * d + b] = c;
        cov[b * d + a] = c;
      }
    for (int a = 0; a < d; ++a) m.mu[k * d + a] += delta[a];
  }
  return gmm_complete(m);
}

// ---- initialisation -----------------------------------------------------------------------------

enum class EmInit : int { kWarm = 0, kKmeansPP = 1 };

struct EmSettings {
  int max_iter;      // M-steps at most
  double tol;        // stop when the mean log-likelihood changes by less
  double reg_covar;  // ridge added to every covariance's diagonal
  EmInit init;
  int restarts;  // fits per generation; the best final log-likelihood is kept
  bool diag;     // diagonal covariances
};

// Uniform j of restart r's k-means++ seeding (stream kStreamEmInit).
OURO_HD inline double init_uniform(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, int restart, int j) {
  const rng::Block b = rng::draw_block(seed, chain, gen, rng::kStreamEmInit,
                                       static_cast<std::uint64_t>(restart) * kGmmMaxComponents + j);
  return rng::u01_open(b.v[0], b.v[1]);
}

OURO_HD inline double nearest_sq(int d, const double* x, const double* centers, int nc) {
  double best = INFINITY;
  for (int c = 0; c < nc; ++c) {
    double q = 0.0;
    for (int a = 0; a < d; ++a) {
      const double e = x[a] - centers[c * d + a];
      q += e * e;
    }
    best = q < best ? q : best;
  }
  return best;
}

// k-means++ seeding (Arthur & Vassilvitskii 2007): the first centre is a
// uniformly chosen point, each next one a point chosen with probability
// proportional to its squared distance to the nearest centre so far
// (uniformly when all distances are zero). K centres into centers (K x d).
// O(count K^2 d), no scratch memory.
OURO_HD inline void kmeanspp_centers(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, int restart,
                                     const double* X, std::int64_t count, int d, int K, double* centers) {
  for (int c = 0; c < K; ++c) {
    const double u = init_uniform(seed, chain, gen, restart, c);
    std::int64_t pick = -1;
    if (c > 0) {
      double total = 0.0;
      for (std::int64_t i = 0; i < count; ++i) total += nearest_sq(d, X + i * d, centers, c);
      if (total > 0.0 && total < INFINITY) {
        const double target = u * total;
        double run = 0.0;
        for (std::int64_t i = 0; i < count; ++i) {
          const double q = nearest_sq(d, X + i * d, centers, c);
          if (q > 0.0) pick = i;  // the last point with positive weight, should rounding leave target unmet
          run += q;
          if (run > target && q > 0.0) break;
        }
      }
    }
    if (pick < 0) {
      pick = static_cast<std::int64_t>(u * static_cast<double>(count));
      pick = pick >= count ? count - 1 : pick;
    }
    for (int a = 0; a < d; ++a) centers[c * d + a] = X[pick * d + a];
  }
}

// ---- one fit, serially (the cpu backend and the tests) ---------------------------------------------

struct EmOutcome {
  int iters;       // M-steps done
  bool converged;  // |change of the mean log-likelihood| < tol before max_iter
  bool ok;         // finite log-likelihood and positive definite covariances throughout
  double loglik;   // mean log-likelihood of the last E-step
};

// Scratch for em_estep_serial: lanes[kEmLanes * S], stats[S].
struct EmScratch {
  double* lanes;
  double* stats;
};

// One E-step over all lanes, reduced in the fixed order.
OURO_HD inline void em_estep_serial(LanePass mode, const GmmCView& m, bool diag, const double* X, const double* W,
                                    std::int64_t count, const EmScratch& sc) {
  const int S = em_stats_size(m.K, m.d);
  for (int l = 0; l < kEmLanes; ++l) em_lane_pass(mode, m, diag, X, W, count, l, sc.lanes + l * S);
  em_reduce_lanes(S, sc.lanes, S, 1, sc.stats);
}

// Mean ln p(x) over X in the fixed lane order (the same sum on every backend).
OURO_HD inline double mean_loglik_serial(const GmmCView& m, bool diag, const double* X, std::int64_t count,
                                         double* lanes) {
  for (int l = 0; l < kEmLanes; ++l) lanes[l] = lane_loglik(m, diag, X, count, l);
  double total;
  em_reduce_lanes(1, lanes, 1, 1, &total);
  return total / static_cast<double>(count);
}

// How the EM driver below runs on a backend. Every thread of a chain runs
// the driver's control flow; a policy says how a step that must happen once
// is done (single: on one thread, its result seen by all) and how a
// parameter block is copied. The cpu backend's chain is one thread
// (SerialPolicy); the cuda backend's is a block (gmm_cuda.cu).
struct SerialPolicy {
  template <class F>
  OURO_HD bool single(F&& f) const {
    return f();
  }
  OURO_HD void copy(double* dst, const double* src, int n) const {
    for (int i = 0; i < n; ++i) dst[i] = src[i];
  }
};

// k-means++ centres, then one M-step from the hard assignment of every point
// to its nearest centre (scikit-learn's init_params="k-means++" instead starts
// each component from its seed point alone). False if that fails.
// estep(mode, mixture, X, count, stats) computes one E-step's statistics in
// the fixed lane order (em_estep_serial, or a backend's parallel version).
template <class EStep, class Policy>
OURO_HD inline bool kmeanspp_init(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, int restart,
                                  const EmSettings& s, const GmmView& m, const double* X, std::int64_t count,
                                  double* stats, EStep&& estep, const Policy& policy) {
  policy.single([&] {
    kmeanspp_centers(seed, chain, gen, restart, X, count, m.d, m.K, m.mu);
    return true;
  });
  estep(LanePass::kHard, as_const(m), X, count, stats);
  return policy.single([&] { return em_mstep(m, s.diag, s.reg_covar, stats); });
}

// EM from the parameters in m until the mean log-likelihood changes by less
// than tol or max_iter M-steps are done (scikit-learn's loop: E-step, M-step,
// convergence test on the E-step's log-likelihood). The mean is over
// `total`, the points' total weight (their count when unweighted; the
// weights themselves are the estep's). trace, if given, gets each E-step's
// mean log-likelihood (max_iter entries at most).
template <class EStep, class Policy>
OURO_HD inline EmOutcome em_run(const EmSettings& s, const GmmView& m, const double* X, std::int64_t count,
                                double total, double* stats, EStep&& estep, const Policy& policy,
                                double* trace = nullptr) {
  const int S = em_stats_size(m.K, m.d);
  double prev = -INFINITY;
  for (int it = 1; it <= s.max_iter; ++it) {
    estep(LanePass::kSoft, as_const(m), X, count, stats);
    const double ll = stats[S - 1] / total;
    if (trace) trace[it - 1] = ll;
    if (!(ll > -INFINITY && ll < INFINITY)) return EmOutcome{it - 1, false, false, ll};
    if (!policy.single([&] { return em_mstep(m, s.diag, s.reg_covar, stats); })) return EmOutcome{it, false, false, ll};
    if (fabs(ll - prev) < s.tol) return EmOutcome{it, true, true, ll};
    prev = ll;
  }
  return EmOutcome{s.max_iter, false, true, prev};
}

// One generation's fit of one chain: restart 0 from `warm` (the previous
// generation's parameters) when warm_ok, every other restart from k-means++
// seeds (restart r uses seeding stream index r; the seeding ignores
// weights, the M-step from its hard assignment does not); the restart with
// the highest final mean log-likelihood is copied to `best` (a block of m's
// shape). `total` is the points' total weight (see em_run). `have` says
// whether any restart succeeded; the result is that restart's outcome.
template <class EStep, class Policy>
OURO_HD inline EmOutcome em_fit(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, const EmSettings& s,
                                bool warm_ok, const double* warm, double* work, double* best, const double* X,
                                std::int64_t count, double total, double* stats, EStep&& estep, const Policy& policy,
                                int K, int d, bool& have) {
  const int P = gmm_block_size(K, d);
  const GmmView m = gmm_view(K, d, work);
  EmOutcome kept{0, false, false, -INFINITY};
  have = false;
  for (int r = 0; r < s.restarts; ++r) {
    if (r == 0 && warm_ok) policy.copy(work, warm, P);
    else if (!kmeanspp_init(seed, chain, gen, r, s, m, X, count, stats, estep, policy)) continue;
    const EmOutcome out = em_run(s, m, X, count, total, stats, estep, policy);
    if (out.ok && (!have || out.loglik > kept.loglik)) {
      have = true;
      kept = out;
      policy.copy(best, work, P);
    }
  }
  return kept;
}

// The serial E-step (lanes in turn) as an estep for the functions above.
struct SerialEStep {
  bool diag;
  double* lanes;                    // kEmLanes * em_stats_size
  const double* weights = nullptr;  // per point (null: every weight 1)
  OURO_HD void operator()(LanePass mode, const GmmCView& m, const double* X, std::int64_t count, double* stats) const {
    const EmScratch sc{lanes, stats};
    em_estep_serial(mode, m, diag, X, weights, count, sc);
  }
};

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
};
OURO_HD inline int gmm_num_metrics(int K) { return kGmmComponentStd1 + K; }

// The truth mixture and what every chain's metrics reuse, computed once on
// the host (sim/families/gmm/gmm_family.cc).
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
};

OURO_HD inline GmmCView truth_view(const GmmTruth& t) {
  return gmm_view(t.K0, t.d, static_cast<const double*>(t.params));
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
  const GmmCView t = truth_view(tr);
  const double l2sq = mixture_overlap(m, m) - 2.0 * mixture_overlap(m, t) + tr.self_overlap;
  int dead = 0;
  double min_w = INFINITY;
  for (int k = 0; k < K; ++k) {
    dead += m.w[k] < tr.dead_weight ? 1 : 0;
    min_w = m.w[k] < min_w ? m.w[k] : min_w;
  }
  const double* rare_mu = t.mu + tr.rare * d;
  const double* rare_l = t.chol + tr.rare * d * d;
  const double rare_in = 1.0 - mixture_outside(m, rare_mu, rare_l, 4.0);

  out[kGmmVarRatio * stride] = trace / tr.trace;
  out[kGmmTailMass * stride] = mixture_outside(m, tr.mean, tr.chol, tr.tail_r2) / 0.01;
  out[kGmmXent * stride] = xent;
  out[kGmmL2Density * stride] = l2sq < 0.0 ? 0.0 : sqrt(l2sq);  // rounding below 0 is 0; NaN stays NaN
  out[kGmmDeadComponents * stride] = dead;
  out[kGmmMinWeight * stride] = min_w;
  out[kGmmRareModeMass * stride] = rare_in / tr.rare_mass;
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

// ---- one generation of one chain ------------------------------------------------------------------

// data.verifier for mixtures (every regime): a synthetic candidate is plausible
// when the truth's log-density at it is at least log_density_min, the
// truth's q-quantile of its own log-density (estimated on the host from
// truth draws, sim/families/gmm/gmm_family.cc); kept with probability phi if plausible,
// psi if not (VerifyWords). Dropped candidates are replaced by the next ones,
// at most max_draw_factor times the synthetic points a generation needs.
struct GmmVerifier : KeepRule {
  double log_density_min = 0.0;
};

// data.tail_upsample and data.age_decay for mixtures: frequency weights of
// the training points (see gmm_point_weights).
struct GmmWeighting {
  int tail = 0;                   // tail_upsample on
  double tail_factor = 1.0;       // a synthetic point in the truth's tail counts this many times
  double tail_log_density = 0.0;  // the tail: truth log-density below this (its q-quantile)
  double age_decay =
      1.0;  // accumulate, accumulate_subsample: a point added k generations before the fit weighs decay^k
  OURO_HD bool on() const { return tail != 0 || age_decay != 1.0; }
};

// Everything one generation step needs besides the per-chain arrays.
struct GmmStep {
  std::uint32_t seed;
  int K, d;
  int samples;     // n, new points per generation
  int real_count;  // real draws among them from generation 2 on
  int generation;  // t >= 1
  Regime regime;
  RealSource real_source = RealSource::kFresh;
  GmmVerifier verifier;    // its max_draw_factor also bounds dedup's refill
  GmmWeighting weighting;  // data.tail_upsample, data.age_decay
  Dedup dedup;             // kernels/training/dedup.h
  OURO_HD bool filtered() const { return verifier.on || dedup.on; }
};

// Size of generation t's training set.
OURO_HD inline std::int64_t gmm_train_size(const GmmStep& s) {
  return s.regime == Regime::kAccumulate ? static_cast<std::int64_t>(s.generation) * s.samples : s.samples;
}

// Pool position of training point p under replace (generation t's own
// points) and accumulate (every point so far).
OURO_HD inline std::int64_t gmm_pool_position(const GmmStep& s, std::int64_t p) {
  return s.regime == Regime::kReplace ? static_cast<std::int64_t>(s.generation - 1) * s.samples + p : p;
}

// accumulate_subsample: the pool positions of generation t's training set
// (Algorithm S over the t * n pool, kernels/training/regime.h) into pos[n], with the
// set's synthetic share and mean data age (a point of generation k weighing
// age_decay^(t - k)).
OURO_HD inline void gmm_subsample_positions(const GmmStep& s, std::uint32_t chain, std::int64_t* pos,
                                            double& synthetic_share, double& data_age) {
  const int t = s.generation, n = s.samples;
  std::int64_t p = 0;
  double points = 0.0, synthetic = 0.0, age = 0.0;
  for_each_selected(s.seed, chain, static_cast<std::uint32_t>(t), static_cast<std::int64_t>(t) * n, n,
                    [&](std::int64_t j) {
                      pos[p++] = j;
                      const int k = static_cast<int>(j / n) + 1;
                      const double aged = pow_int(s.weighting.age_decay, t - k);
                      points += aged;
                      synthetic += j % n < real_points_of(k, n, s.real_count) ? 0.0 : aged;
                      age += aged * static_cast<double>(t - k);
                    });
  synthetic_share = synthetic / points;
  data_age = age / points;
}

// Pool point j (generation k = j / n + 1, point i = j % n of it) of a chain,
// regenerated: a real draw from the truth or a synthetic draw from
// generation k-1's model, model_of(k - 1). Returns whether it is real.
template <class ModelOf>
OURO_HD inline bool gmm_pool_point(const GmmStep& s, std::uint32_t chain, std::int64_t j, const GmmTruth& tr,
                                   ModelOf&& model_of, double* x) {
  const int k = static_cast<int>(j / s.samples) + 1;
  const std::int64_t i = j % s.samples;
  const bool real = i < real_points_of(k, s.samples, s.real_count);
  if (real) gmm_draw(s.seed, chain, real_draw_generation(s.real_source, k), true, i, truth_view(tr), x);
  else gmm_draw(s.seed, chain, static_cast<std::uint32_t>(k), false, i, gmm_view(s.K, s.d, model_of(k - 1)), x);
  return real;
}

// data.verifier and/or data.dedup: generation t's synthetic
// candidates, the points real, real + 1, ... of its synthetic draws from
// `model` (so that a filter that keeps everything keeps exactly the points
// of a run without it), examined in order; kept ones go to X one after
// another until `need` are kept or need * max_draw_factor were examined.
// The verifier keeps candidate j by its plausibility and word j of the
// verify stream; dedup then drops it when its cell holds a point already
// kept (kernels/training/dedup.h; table: dedup_table_size(need) slots of scratch).
// Returns the number kept; `drawn` gets the number examined.
OURO_HD inline std::int64_t gmm_filtered_points(const GmmStep& s, std::uint32_t chain, const GmmTruth& tr,
                                                const GmmCView& model, std::int64_t real, std::int64_t need, double* X,
                                                std::int64_t* table, std::int64_t& drawn) {
  const auto gen = static_cast<std::uint32_t>(s.generation);
  const GmmCView truth = truth_view(tr);
  const int d = s.d;
  const DedupCells cells{table, dedup_table_size(need), X, d, s.dedup.resolution};
  if (s.dedup.on) cells.clear();
  VerifyWords words;
  double lp[kGmmMaxComponents];
  std::int64_t k = 0, j = 0;
  for (; j < need * s.verifier.max_draw_factor && k < need; ++j) {
    double* x = X + k * d;
    gmm_draw(s.seed, chain, gen, false, real + j, model, x);
    if (s.verifier.on) {
      const bool plausible = gmm_log_density(truth, false, x, lp) >= s.verifier.log_density_min;
      if (!words.keeps(s.seed, chain, gen, static_cast<std::uint64_t>(j),
                       plausible ? s.verifier.keep_plausible : s.verifier.keep_implausible))
        continue;
    }
    if (s.dedup.on && !cells.admit(x, k)) continue;
    ++k;
  }
  drawn = j;
  return k;
}

// The frequency weight of one training point x of generation t, added at
// generation k (real or synthetic): a point added k generations before the fit weighs
// age_decay^k (pow_int: multiplications only, the same bits on both
// backends); a synthetic point whose truth log-density is below
// tail_log_density (the truth's lowest-density q share) counts tail_factor
// times more.
OURO_HD inline double gmm_point_weight(const GmmStep& s, const GmmCView& truth, const double* x, int k, bool real) {
  double lp[kGmmMaxComponents];
  double w = pow_int(s.weighting.age_decay, s.generation - k);
  if (s.weighting.tail && !real && gmm_log_density(truth, false, x, lp) < s.weighting.tail_log_density)
    w *= s.weighting.tail_factor;
  return w;
}

// Frequency weights (gmm_point_weight) of generation t's m training points
// into W, in point order, without a filter: point p is pool position pos[p],
// or gmm_pool_position(s, p) when pos is null. Returns the total weight,
// summed in point order.
OURO_HD inline double gmm_point_weights(const GmmStep& s, const GmmTruth& tr, const double* X, std::int64_t m,
                                        const std::int64_t* pos, double* W) {
  const GmmCView truth = truth_view(tr);
  double total = 0.0;
  for (std::int64_t p = 0; p < m; ++p) {
    const std::int64_t j = pos ? pos[p] : gmm_pool_position(s, p);
    const int k = static_cast<int>(j / s.samples) + 1;
    W[p] = gmm_point_weight(s, truth, X + p * s.d, k, j % s.samples < real_points_of(k, s.samples, s.real_count));
    total += W[p];
  }
  return total;
}

// A training set under data.verifier and/or data.dedup, and what the
// metrics need of it.
struct GmmFilteredSet {
  std::int64_t m = 0;  // training points
  double total = 0.0;  // their total weight (m without weighting)
  double synthetic_share = 0.0, data_age = 0.0;
  double draws_per_kept = 1.0;  // generation t's own candidates per kept point
};

// Materialised pool points of generation t under a filter: n under replace,
// t n at most otherwise (the room X needs).
OURO_HD inline std::int64_t gmm_filtered_room(const GmmStep& s) {
  return s.regime == Regime::kReplace ? s.samples : static_cast<std::int64_t>(s.generation) * s.samples;
}

// Generation t's training set under data.verifier and/or data.dedup, in
// every regime. Generation k's points are its real draws (as without a
// filter) followed by its kept synthetic points, which gmm_filtered_points
// regenerates with generation k's counters and model_of(k - 1): the same
// candidates and decisions generation k took, so a pooled generation is
// rebuilt exactly. replace trains on generation t's points, accumulate on
// those of generations 1..t in order, accumulate_subsample on n of the P
// points of generations 1..t (all of them when P <= n) chosen by Algorithm S
// over P (kernels/training/regime.h), in pool order. X needs gmm_filtered_room(s)
// points; W (null without weighting) gets the weights of gmm_point_weight;
// start (t + 1 entries of scratch) gets where each generation's points begin
// in the pool; table is dedup's scratch for n - real points. Without a
// filter that drops anything (phi = psi = 1, a grid finer than any two
// draws) the set is the one the unfiltered regimes train on, point for
// point. The composition weighs each point by age_decay^(t - k): the share
// of synthetic points and their mean age.
template <class ModelOf>
OURO_HD inline GmmFilteredSet gmm_filtered_train(const GmmStep& s, std::uint32_t chain, const GmmTruth& tr,
                                                 ModelOf&& model_of, double* X, double* W, std::int64_t* start,
                                                 std::int64_t* table) {
  const int t = s.generation, n = s.samples, d = s.d;
  const GmmCView truth = truth_view(tr);
  GmmFilteredSet out;
  std::int64_t P = 0;
  const int first = s.regime == Regime::kReplace ? t : 1;
  for (int k = first; k <= t; ++k) {
    start[k - first] = P;
    const int real = real_points_of(k, n, s.real_count);
    for (int i = 0; i < real; ++i)
      gmm_draw(s.seed, chain, real_draw_generation(s.real_source, k), true, i, truth, X + (P + i) * d);
    P += real;
    if (real < n) {
      GmmStep sk = s;
      sk.generation = k;
      std::int64_t drawn = 0;
      const std::int64_t kept = gmm_filtered_points(sk, chain, tr, gmm_view(s.K, d, model_of(k - 1)), real, n - real,
                                                    X + P * d, table, drawn);
      P += kept;
      if (k == t) out.draws_per_kept = kept > 0 ? static_cast<double>(drawn) / static_cast<double>(kept) : INFINITY;
    }
  }
  start[t - first + 1] = P;
  // The generation and realness of pool point j (j increasing: g only moves up).
  int g = 0;
  auto locate = [&](std::int64_t j, int& k, bool& real) {
    while (j >= start[g + 1]) ++g;
    k = first + g;
    real = j - start[g] < real_points_of(k, n, s.real_count);
  };
  double points = 0.0, synthetic = 0.0, age = 0.0;
  auto take = [&](std::int64_t j, std::int64_t p) {  // pool point j becomes training point p (p <= j)
    int k;
    bool real;
    locate(j, k, real);
    if (p != j)
      for (int a = 0; a < d; ++a) X[p * d + a] = X[j * d + a];
    const double w = W ? gmm_point_weight(s, truth, X + p * d, k, real) : 1.0;
    if (W) W[p] = w;
    out.total += w;
    const double aged = pow_int(s.weighting.age_decay, t - k);
    points += aged;
    synthetic += real ? 0.0 : aged;
    age += aged * (t - k);
  };
  if (s.regime == Regime::kAccumulateSubsample) {
    std::int64_t p = 0;
    for_each_selected(s.seed, chain, static_cast<std::uint32_t>(t), P, n < P ? n : P,
                      [&](std::int64_t j) { take(j, p++); });
    out.m = p;
  } else {
    for (std::int64_t j = 0; j < P; ++j) take(j, j);
    out.m = P;
  }
  out.synthetic_share = out.m > 0 ? synthetic / points : NAN;
  out.data_age = out.m > 0 ? age / points : NAN;
  return out;
}

}  // namespace ouro::kernels

// The steps of EM (expectation-maximisation, Dempster, Laird & Rubin 1977) on one mixture, per reduction lane, written
// once for both backends: the E-step of one lane, the fixed tree that combines the lanes, the M-step, and k-means++
// seeding (Arthur & Vassilvitskii 2007). The reductions have one fixed order on every backend: point i belongs to
// lane i mod kEmLanes, each lane sums its points in increasing order, and the lanes are combined by one fixed tree
// (em_reduce_lanes); the cuda backend runs a lane per thread and the cpu backend the lanes in turn, so both perform
// the same sequence of IEEE operations.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/gmm/gmm_mixture.h"

namespace ouro::kernels {

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

}  // namespace ouro::kernels

// One Gaussian mixture, written once for both backends: its parameters as a flat block, drawing a point with integer
// thresholds, and its log-density (log-sum-exp with the project's polynomial exp and log, kernels/core/elementary.h,
// so both backends compute the same bits).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/elementary.h"
#include "kernels/core/linalg.h"
#include "kernels/core/normal.h"
#include "kernels/core/portability.h"
#include "kernels/core/rng.h"

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

// Point i of generation `gen` of a chain, drawn from the mixture m with a component stream and a normal stream: the
// component is word i of the component stream, the coordinates are normals i*d .. i*d+d-1 of the normal stream, and
// x = mu_k + L_k z.
OURO_HD inline void gmm_draw_streams(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen,
                                     std::uint32_t comp_stream, std::uint32_t normal_stream, std::int64_t i,
                                     const GmmCView& m, double* x) {
  const auto iu = static_cast<std::uint64_t>(i);
  const rng::Block b = rng::draw_block(seed, chain, gen, comp_stream, iu >> 2);
  const int k = pick_component(m.K, m.w, b.v[iu & 3]);
  double z[kGmmMaxDim];
  stream_normals(seed, chain, gen, normal_stream, iu * m.d, m.d, z);
  affine_lower(m.d, m.mu + k * m.d, m.chol + k * m.d * m.d, z, x);
}

// A real draw (from the truth) or a synthetic one: each kind has its own component and normal streams.
OURO_HD inline void gmm_draw(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, bool real, std::int64_t i,
                             const GmmCView& m, double* x) {
  gmm_draw_streams(seed, chain, gen, real ? rng::kStreamRealComponent : rng::kStreamSyntheticComponent,
                   real ? rng::kStreamRealDraw : rng::kStreamSyntheticDraw, i, m, x);
}

// Points [0, count) of a chain's model sample at generation `gen` (kernels/core/chain_backend.h), drawn from the
// mixture m with the model-sample streams (components: rng::kStreamModelChoice), row-major into x.
OURO_HD inline void gmm_model_sample(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, const GmmCView& m,
                                     std::int64_t count, double* x) {
  for (std::int64_t i = 0; i < count; ++i)
    gmm_draw_streams(seed, chain, gen, rng::kStreamModelChoice, rng::kStreamModelSample, i, m, x + i * m.d);
}

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

}  // namespace ouro::kernels

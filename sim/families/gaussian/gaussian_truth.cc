#include "sim/families/gaussian/gaussian_truth.h"

#include <cmath>
#include <vector>

#include <Eigen/Dense>

#include "kernels/core/linalg.h"
#include "kernels/core/quadform.h"
#include "kernels/gaussian/gaussian.h"
#include "sim/families/gaussian/gaussian_family.h"

namespace ouro {

kernels::GaussianTruth make_gaussian_truth(const PointConfig& c) {
  const auto& g = c.settings<GaussianSettings>();
  kernels::GaussianTruth t{};
  const int d = g.dim;
  t.d = d;
  for (int i = 0; i < d; ++i) t.mu[i] = g.truth_mean[i];
  for (int i = 0; i < d * d; ++i) t.cov[i] = g.truth_cov[i];
  kernels::cholesky(d, t.cov, t.chol);  // validated positive definite by the config
  t.trace = 0.0;
  t.logdet = 0.0;
  for (int i = 0; i < d; ++i) {
    t.trace += t.cov[i * d + i];
    t.logdet += 2.0 * std::log(t.chol[i * d + i]);
  }
  Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> cov(t.cov, d, d);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(cov);
  const Eigen::MatrixXd root = eig.operatorSqrt();
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) t.sqrt_cov[i * d + j] = root(i, j);
  // Under the truth the squared Mahalanobis radius is chi-square with d
  // degrees of freedom, so its 99th percentile is the chi-square quantile.
  t.tail_r2 = kernels::chi2_quantile(0.99, d);
  // The held-out set: metrics.heldout real points under a chain id no chain
  // has (the mixture family's convention), summarised by their moments.
  std::vector<double> zsum(d, 0.0), zsq(static_cast<std::size_t>(d) * d, 0.0);
  kernels::accumulate_zsums(c.seed, rng::kHeldoutChain, 0, rng::kStreamRealDraw, d, 0, g.heldout, zsum.data(),
                            zsq.data());
  kernels::Moments h;
  kernels::moments_from_zsums(d, g.heldout, zsum.data(), zsq.data(), t.mu, t.chol, h);
  Eigen::MatrixXd s(d, d);
  for (int i = 0; i < d; ++i) {
    t.heldout_mean[i] = h.mean[i];
    for (int j = 0; j < d; ++j) s(i, j) = h.m2[i * d + j] / g.heldout;
  }
  // The symmetric square root of the positive semi-definite covariance (any
  // R with R R^T = S serves; this one exists even when H <= d).
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> heig(s);
  const Eigen::VectorXd ev = heig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  const Eigen::MatrixXd hroot = heig.eigenvectors() * ev.asDiagonal() * heig.eigenvectors().transpose();
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) t.heldout_root[i * d + j] = hroot(i, j);
  return t;
}

std::vector<double> make_gaussian_heldout(const PointConfig& c, const kernels::GaussianTruth& t) {
  const int d = t.d, h = c.settings<GaussianSettings>().heldout;
  std::vector<double> x(static_cast<std::size_t>(h) * d);
  double z[OURO_MAX_DIM];
  for (std::int64_t i = 0; i < h; ++i) {
    kernels::stream_normals(c.seed, rng::kHeldoutChain, 0, rng::kStreamRealDraw, static_cast<std::uint64_t>(i) * d, d,
                            z);
    kernels::affine_lower(d, t.mu, t.chol, z, x.data() + i * d);
  }
  return x;
}

std::optional<double> gaussian_theory(const PointConfig& c, int metric, int t) {
  using namespace kernels;
  const auto& g = c.settings<GaussianSettings>();
  const double n = c.samples;
  const int d = g.dim;
  double trace0 = 0.0;
  for (int i = 0; i < d; ++i) trace0 += g.truth_cov[i * d + i];
  if (t == 0) {
    switch (metric) {
      case kVarRatio:
      case kDetRatio:
      case kTailMass:
      case kDrawsPerKept:
        return 1.0;
      case kMeanSqErr:
      case kW2:
      case kKl:
      case kSyntheticShare:
      case kDataAge:
        return 0.0;
      default:
        return std::nullopt;
    }
  }
  // A verifier that keeps every candidate with the same probability phi keeps
  // an iid sample of the model: the same law as no verifier, at 1/phi draws
  // per kept point (a negative binomial), as long as the draw budget does not
  // bind: with need synthetic points a generation draws at most need * f
  // candidates, and falls short when Binomial(need * f, phi) < need, whose
  // probability is at most exp(-need f D(1/f || phi)) (Chernoff, D the
  // Bernoulli relative entropy). The theory is given where that bound is below
  // 1e-9. A verifier that prefers plausible points changes every law, and so
  // does dedup (it drops candidates near those kept).
  const bool filtered = (c.verifier || c.tail_upsample || c.dedup) && t >= 2 && c.real_count < c.samples;
  auto budget_may_bind = [&] {
    const double p = c.keep_plausible, need = c.samples - c.real_count, f = c.max_draw_factor;
    if (p >= 1.0) return false;
    const double a = 1.0 / f;
    if (a >= p) return true;
    const double rel = a * std::log(a / p) + (1.0 - a) * std::log((1.0 - a) / (1.0 - p));
    return std::exp(-need * f * rel) > 1e-9;
  };
  const bool same_law =
      !filtered || (!c.dedup && (!c.verifier || (c.keep_plausible == c.keep_implausible && !budget_may_bind())) &&
                    (!c.tail_upsample || c.tail_factor == 1.0));
  if (metric == kDrawsPerKept) {
    if (!filtered || (!c.verifier && !c.dedup)) return 1.0;
    return same_law ? std::optional<double>(1.0 / c.keep_plausible) : std::nullopt;
  }
  if (!same_law) return std::nullopt;
  // The training set's composition is fixed by the regime; under
  // accumulate_subsample it is random, with the pool's values as expectation.
  // (With age decay the subsample's shares are ratios of random weights:
  // none.)
  if (metric == kSyntheticShare || metric == kDataAge) {
    if (c.regime == Regime::kAccumulateSubsample && c.age_decay != 1.0) return std::nullopt;
    const Regime r = c.regime == Regime::kAccumulateSubsample ? Regime::kAccumulate : c.regime;
    const GaussianStep s{c.seed, d,  c.samples, c.real_count, t, r, g.estimator, RealSource::kFresh,
                         -1.0,   {}, {},        c.age_decay,  {}};
    double share, age;
    pool_composition(s, share, age);
    return metric == kSyntheticShare ? share : age;
  }
  if (c.real_fraction != 0.0 || c.age_decay != 1.0) return std::nullopt;
  const double a = (n - 1.0) / n;
  if (c.regime == Regime::kReplace && g.estimator == Estimator::kMle) {
    if (metric == kVarRatio) return std::pow(a, t);
    if (metric == kMeanSqErr) return trace0 * (1.0 - std::pow(a, t));
    if (metric == kDetRatio) {
      double f = 1.0;
      for (int i = 1; i <= d; ++i) f *= 1.0 - i / n;
      return std::pow(f, t);
    }
  }
  if (c.regime == Regime::kReplace && g.estimator == Estimator::kUnbiased) {
    if (metric == kVarRatio) return 1.0;
    if (metric == kMeanSqErr) return t * trace0 / n;
  }
  if (c.regime == Regime::kAccumulate && g.estimator == Estimator::kMle) {
    // E[Sigma_k] = v_k Sigma_0 with v_0 = 1, v_1 = 1 - 1/n, v_k = v_{k-1} (1 - 1/(n k^2)) (README).
    auto v = [&](int k) {
      double f = k == 0 ? 1.0 : 1.0 - 1.0 / n;
      for (int j = 2; j <= k; ++j) f *= 1.0 - 1.0 / (n * j * j);
      return f;
    };
    if (metric == kVarRatio) return v(t);
    if (metric == kMeanSqErr) {
      // The pooled mean moves by (mean of generation k's points - mu_{k-1}) / k,
      // whose conditional variance is tr Sigma_{k-1} / (n k^2), independent of
      // the past: E||mu_t - mu_0||^2 = tr Sigma_0 / n * sum_k v_{k-1} / k^2,
      // below (pi^2/6) tr Sigma_0 / n (cf. Gerstgrasser et al. 2024).
      double sum = 0.0, vk = 1.0;
      for (int k = 1; k <= t; ++k) {
        sum += vk / (static_cast<double>(k) * k);
        vk *= k == 1 ? 1.0 - 1.0 / n : 1.0 - 1.0 / (n * k * k);  // now v_k
      }
      return trace0 / n * sum;
    }
  }
  return std::nullopt;
}

}  // namespace ouro

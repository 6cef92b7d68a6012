// The Gaussian-mixture family in the one loop: its truth (computed once per
// sweep point), metric names, theory column and backends.
#include "sim/families/gmm/gmm_family.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/core/quadform.h"
#include "kernels/core/rng.h"
#include "sim/analysis/aggregate.h"
#include "sim/parallel/backend.h"

namespace ouro {

kernels::GmmTruth make_gmm_truth(const PointConfig& c) {
  using namespace kernels;
  GmmTruth t{};
  const int K0 = static_cast<int>(c.truth_weights.size()), d = c.dim;
  t.K0 = K0;
  t.d = d;
  const GmmView v = gmm_view(K0, d, t.params);
  std::copy(c.truth_weights.begin(), c.truth_weights.end(), v.w);
  std::copy(c.truth_means.begin(), c.truth_means.end(), v.mu);
  std::copy(c.truth_covs.begin(), c.truth_covs.end(), v.cov);
  gmm_complete(v);  // every covariance was checked positive definite by the config
  const GmmCView tv = truth_view(t);
  gmm_moments(tv, t.mean, t.cov);
  cholesky(d, t.cov, t.chol);  // a mixture's covariance is at least its components' average
  t.trace = 0.0;
  for (int a = 0; a < d; ++a) t.trace += t.cov[a * d + a];

  // The 99th percentile of the truth's squared Mahalanobis radius w.r.t. its
  // overall mean and covariance: the mixture's mass outside radius r2 falls
  // from 1 to 0 as r2 grows, so bisection on a bracket finds where it is
  // 0.01, to a relative 1e-12 in r2.
  auto outside = [&](double r2) { return mixture_outside(tv, t.mean, t.chol, r2); };
  double lo = 0.0, hi = chi2_quantile(0.99, d);
  while (outside(hi) > 0.01) lo = hi, hi *= 2.0;
  while (hi - lo > 1e-12 * hi) {
    const double mid = 0.5 * (lo + hi);
    (outside(mid) > 0.01 ? lo : hi) = mid;
  }
  t.tail_r2 = 0.5 * (lo + hi);

  t.rare = static_cast<int>(std::min_element(c.truth_weights.begin(), c.truth_weights.end()) - c.truth_weights.begin());
  t.rare_mass = 1.0 - mixture_outside(tv, tv.mu + t.rare * d, tv.chol + t.rare * d * d, 4.0);
  t.self_overlap = mixture_overlap(tv, tv);
  t.dead_weight = c.dead_weight;
  return t;
}

std::vector<double> make_gmm_heldout(const PointConfig& c, const kernels::GmmTruth& t) {
  std::vector<double> x(static_cast<std::size_t>(c.heldout) * c.dim);
  for (int i = 0; i < c.heldout; ++i)
    kernels::gmm_draw(c.seed, rng::kHeldoutChain, 0, true, i, kernels::truth_view(t), x.data() + i * c.dim);
  return x;
}

double gmm_log_density_quantile(const PointConfig& c, const kernels::GmmTruth& t, double q) {
  // The truth's q-quantile of its own log-density, estimated from 2e5 truth
  // draws under the held-out chain id at generation 1 (the held-out set is
  // generation 0), type-7 interpolation: its standard error is about
  // sqrt(q (1 - q) / 2e5) / f(quantile), a 0.07% error in the share of
  // plausible mass at q = 0.1.
  constexpr int kDraws = 200000;
  std::vector<double> lp(kDraws), x(c.dim), terms(kernels::kGmmMaxComponents);
  for (int i = 0; i < kDraws; ++i) {
    kernels::gmm_draw(c.seed, rng::kHeldoutChain, 1, true, i, kernels::truth_view(t), x.data());
    lp[i] = kernels::gmm_log_density(kernels::truth_view(t), false, x.data(), terms.data());
  }
  double out;
  quantiles_type7(lp, &q, &out, 1);
  return out;
}

std::string gmm_truth_problem(const PointConfig& c) {
  const kernels::GmmTruth t = make_gmm_truth(c);
  if (!std::isfinite(t.self_overlap))
    return "truth.covs: a component is so narrow that the integral of the squared density overflows (l2_density "
           "could not be computed)";
  if (!(t.rare_mass > 1e-9))
    return fmt::format(
        "truth.weights: the lowest-weight component and its surroundings hold {:g} of the mass "
        "(below 1e-9), so rare_mode_mass would be undefined",
        t.rare_mass);
  double smallest = INFINITY;
  for (std::size_t k = 0; k < c.truth_weights.size(); ++k)
    for (int a = 0; a < c.dim; ++a) smallest = std::min(smallest, c.truth_covs[k * c.dim * c.dim + a * c.dim + a]);
  if (c.em.reg_covar > 0.01 * smallest)
    return fmt::format(
        "model.em.reg_covar: the ridge {:g} is not small against the truth's smallest variance {:g} "
        "(it must be at most 1% of it)",
        c.em.reg_covar, smallest);
  return "";
}

std::vector<std::string> gmm_metric_names(const PointConfig& c) {
  std::vector<std::string> names = {"var_ratio",       "tail_mass",      "xent",     "l2_density",    "dead_components",
                                    "min_weight",      "rare_mode_mass", "em_iters", "em_failures",   "em_unconverged",
                                    "synthetic_share", "data_age",       "fit_nll",  "draws_per_kept"};
  for (int k = 1; k <= c.components; ++k) names.push_back(fmt::format("component_std_{}", k));
  return names;
}

std::optional<double> gmm_theory(const PointConfig& c, int metric, int t) {
  using namespace kernels;
  if (t == 0) {
    switch (metric) {
      case kGmmVarRatio:
      case kGmmTailMass:
      case kGmmRareModeMass:
        return 1.0;
      case kGmmL2Density:
      case kGmmEmIters:
      case kGmmEmFailures:
      case kGmmEmUnconverged:
      case kGmmSyntheticShare:
      case kGmmDataAge:
        return 0.0;
      default:
        return std::nullopt;
    }
  }
  // The training set's composition is fixed by the regime; under
  // accumulate_subsample it is random, with the pool's values as expectation.
  // A filter (data.verifier, data.dedup) whose draw budget runs out leaves a
  // generation short of synthetic points, so then there is no closed form.
  // (With age decay the subsample's shares are ratios of random weights.)
  if ((metric == kGmmSyntheticShare || metric == kGmmDataAge) && !c.verifier && !c.dedup &&
      !(c.regime == Regime::kAccumulateSubsample && c.age_decay != 1.0)) {
    const Regime r = c.regime == Regime::kAccumulateSubsample ? Regime::kAccumulate : c.regime;
    double share, age;
    regime_composition(r, c.samples, c.real_count, t, c.age_decay, share, age);
    return metric == kGmmSyntheticShare ? share : age;
  }
  return std::nullopt;
}

double gmm_point_bytes(const PointConfig& c) {
  const double P = kernels::gmm_block_size(c.components, c.dim);
  const double chains = static_cast<double>(c.chains);
  double per_chain = 2 * P + 1 + kernels::gmm_num_metrics(c.components);  // the fit, and the best restart's
  if (c.dedup) per_chain += kernels::dedup_table_size(c.samples);         // dedup's table (cuda: per chain of a slice)
  if (c.regime != kernels::Regime::kReplace) per_chain += c.generations * P;  // model history
  // Per-thread training set (with its weights) and lane partials; under a
  // filter accumulate_subsample materialises its whole pool first.
  const bool pool = c.regime == kernels::Regime::kAccumulate ||
                    (c.regime == kernels::Regime::kAccumulateSubsample && (c.verifier || c.dedup));
  const double train = pool ? static_cast<double>(c.generations) * c.samples : c.samples;
  const double scratch =
      omp_get_max_threads() * (train * (c.dim + 1) + kernels::kEmLanes * kernels::em_stats_size(c.components, c.dim));
  return 8.0 * (per_chain * chains + scratch + static_cast<double>(c.heldout) * c.dim);
}

std::unique_ptr<FamilyRun> make_gmm_run(const PointConfig& c, const std::string& backend, int threads,
                                        ChainBlock block) {
  const kernels::GmmTruth truth = make_gmm_truth(c);
  kernels::GmmBatchSpec spec{truth,
                             make_gmm_heldout(c, truth),
                             c.components,
                             c.em,
                             c.regime,
                             c.real_source,
                             c.generations,
                             c.samples,
                             c.real_count,
                             c.seed,
                             static_cast<std::uint32_t>(block.first),
                             block.count,
                             threads,
                             {},
                             {},
                             {}};
  spec.verifier.max_draw_factor = c.max_draw_factor;  // (bounds dedup's refill too)
  if (c.verifier) {
    spec.verifier.on = 1;
    spec.verifier.keep_plausible = kernels::keep_threshold(c.keep_plausible);
    spec.verifier.keep_implausible = kernels::keep_threshold(c.keep_implausible);
    spec.verifier.log_density_min = gmm_log_density_quantile(c, truth, c.verifier_quantile);
  }
  if (c.tail_upsample) {
    spec.weighting.tail = 1;
    spec.weighting.tail_factor = c.tail_factor;
    spec.weighting.tail_log_density = gmm_log_density_quantile(c, truth, c.tail_quantile);
  }
  spec.weighting.age_decay = c.age_decay;
  if (c.dedup) {
    spec.dedup.on = 1;
    spec.dedup.resolution = c.dedup_resolution;
  }
  return make_gmm_backend(backend, spec);
}

}  // namespace ouro

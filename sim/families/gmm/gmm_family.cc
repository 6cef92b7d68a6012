// The Gaussian-mixture family's row of the family table: its keys, truth (computed once per sweep point), metrics,
// theory column, memory estimate and the backends of kernels/gmm/gmm_backend.h.
#include "sim/families/gmm/gmm_family.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/core/quadform.h"
#include "kernels/core/rng.h"
#include "kernels/training/dedup.h"
#include "sim/analysis/aggregate.h"
#include "sim/families/continuous_truths.h"
#include "sim/families/sample_metrics.h"
#include "sim/parallel/backend.h"

namespace ouro {

kernels::GmmTruth make_gmm_truth(const PointConfig& c) {
  using namespace kernels;
  const auto& g = c.settings<GmmSettings>();
  GmmTruth t{};
  if (g.shape.kind != ShapeKind::kNone) {
    // A shape law: its moments in closed form (kernels/core/shapes.h). It has no density in closed form, so the
    // radius, the rare component and the overlap are not defined: NaN, and nothing computes them.
    t.K0 = 0;
    t.d = g.dim;
    t.shape = g.shape;
    shape_moments(t.shape, t.mean, t.cov);
    cholesky(t.d, t.cov, t.chol);  // every shape's covariance is positive definite
    t.trace = 0.0;
    for (int a = 0; a < t.d; ++a) t.trace += t.cov[a * t.d + a];
    t.tail_r2 = NAN;
    t.rare = -1;
    t.rare_mass = NAN;
    t.self_overlap = NAN;
    t.dead_weight = g.dead_weight;
    return t;
  }
  const int K0 = static_cast<int>(g.truth_weights.size()), d = g.dim;
  t.K0 = K0;
  t.d = d;
  const GmmView v = gmm_view(K0, d, t.params);
  std::copy(g.truth_weights.begin(), g.truth_weights.end(), v.w);
  std::copy(g.truth_means.begin(), g.truth_means.end(), v.mu);
  std::copy(g.truth_covs.begin(), g.truth_covs.end(), v.cov);
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

  t.rare = static_cast<int>(std::min_element(g.truth_weights.begin(), g.truth_weights.end()) - g.truth_weights.begin());
  t.rare_mass = 1.0 - mixture_outside(tv, tv.mu + t.rare * d, tv.chol + t.rare * d * d, 4.0);
  t.self_overlap = mixture_overlap(tv, tv);
  t.dead_weight = g.dead_weight;
  return t;
}

std::vector<double> make_gmm_heldout(const PointConfig& c, const kernels::GmmTruth& t) {
  const auto& g = c.settings<GmmSettings>();
  std::vector<double> x(static_cast<std::size_t>(g.heldout) * g.dim);
  for (int i = 0; i < g.heldout; ++i) kernels::truth_draw(c.seed, rng::kHeldoutChain, 0, i, t, x.data() + i * g.dim);
  return x;
}

double gmm_log_density_quantile(const PointConfig& c, const kernels::GmmTruth& t, double q) {
  // The truth's q-quantile of its own log-density, estimated from 2e5 truth
  // draws under the held-out chain id at generation 1 (the held-out set is
  // generation 0), type-7 interpolation: its standard error is about
  // sqrt(q (1 - q) / 2e5) / f(quantile), a 0.07% error in the share of
  // plausible mass at q = 0.1.
  constexpr int kDraws = 200000;
  std::vector<double> lp(kDraws), x(t.d), terms(kernels::kGmmMaxComponents);
  for (int i = 0; i < kDraws; ++i) {
    kernels::truth_draw(c.seed, rng::kHeldoutChain, 1, i, t, x.data());
    lp[i] = kernels::gmm_log_density(kernels::truth_view(t), false, x.data(), terms.data());
  }
  double out;
  quantiles_type7(lp, &q, &out, 1);
  return out;
}

void mixture_filters(const PointConfig& c, const kernels::GmmTruth& truth, kernels::GmmVerifier& verifier,
                     kernels::GmmWeighting& weighting, kernels::Dedup& dedup) {
  verifier.max_draw_factor = c.max_draw_factor;  // (bounds dedup's refill too)
  if (c.verifier) {
    verifier.on = 1;
    verifier.keep_plausible = kernels::keep_threshold(c.keep_plausible);
    verifier.keep_implausible = kernels::keep_threshold(c.keep_implausible);
    verifier.log_density_min = gmm_log_density_quantile(c, truth, c.verifier_quantile);
  }
  if (c.tail_upsample) {
    weighting.tail = 1;
    weighting.tail_factor = c.tail_factor;
    weighting.tail_log_density = gmm_log_density_quantile(c, truth, c.tail_quantile);
  }
  weighting.age_decay = c.age_decay;
  if (c.dedup) {
    dedup.on = 1;
    dedup.resolution = c.dedup_resolution;
  }
}

namespace {

// Why the truth cannot be measured in double precision, or "" (refused before any work): an L2 self-overlap that
// overflows, a rare component with no mass to speak of, a ridge that is not small against the truth's variances.
std::string gmm_truth_problem(const PointConfig& c) {
  const auto& g = c.settings<GmmSettings>();
  const kernels::GmmTruth t = make_gmm_truth(c);
  if (kernels::is_shape(t)) {
    // The overlap and the rare component are a mixture's only. The smallest variance: the blobs' own, else the
    // law's smallest marginal variance.
    double smallest = g.shape.cluster_std * g.shape.cluster_std;
    if (g.shape.kind != kernels::ShapeKind::kBlobs) {
      smallest = t.cov[0];
      for (int a = 1; a < g.dim; ++a) smallest = std::min(smallest, t.cov[a * g.dim + a]);
    }
    if (g.em.reg_covar > 0.01 * smallest)
      return fmt::format(
          "model.em.reg_covar: the ridge {:g} is not small against the truth's smallest variance {:g} "
          "(it must be at most 1% of it)",
          g.em.reg_covar, smallest);
    return "";
  }
  if (!std::isfinite(t.self_overlap))
    return "truth.covs: a component is so narrow that the integral of the squared density overflows (l2_density "
           "could not be computed)";
  if (!(t.rare_mass > 1e-9))
    return fmt::format(
        "truth.weights: the lowest-weight component and its surroundings hold {:g} of the mass "
        "(below 1e-9), so rare_mode_mass would be undefined",
        t.rare_mass);
  double smallest = INFINITY;
  for (std::size_t k = 0; k < g.truth_weights.size(); ++k)
    for (int a = 0; a < g.dim; ++a) smallest = std::min(smallest, g.truth_covs[k * g.dim * g.dim + a * g.dim + a]);
  if (g.em.reg_covar > 0.01 * smallest)
    return fmt::format(
        "model.em.reg_covar: the ridge {:g} is not small against the truth's smallest variance {:g} "
        "(it must be at most 1% of it)",
        g.em.reg_covar, smallest);
  return "";
}

// The metrics that need the truth's density in closed form, which a shape truth has not.
constexpr const char* kMixtureTruthOnly = "with a mixture truth (not truth.shape)";

constexpr MetricSpec kMetrics[] = {
    {kernels::kGmmVarRatio, "var_ratio", "tr Cov(p_t) / tr S_0, the model's total variance over the truth's",
     Direction::kDown, true, "generation 0"},
    {kernels::kGmmTailMass, "tail_mass",
     "P_{p_t}(r(X)^2 > r_99^2) / 0.01, r the Mahalanobis radius w.r.t. the truth's mean and covariance",
     Direction::kDown, true, "generation 0", false, kMixtureTruthOnly},
    {kernels::kGmmXent, "xent", "mean -ln p_t(x) over a fixed held-out set of metrics.heldout real points",
     Direction::kUp, false, ""},
    {kernels::kGmmL2Density, "l2_density", "(integral of (p_t - p_0)^2)^(1/2), in closed form", Direction::kUp, false,
     "generation 0", false, kMixtureTruthOnly},
    {kernels::kGmmDeadComponents, "dead_components", "components with weight below metrics.dead_weight", Direction::kUp,
     false, ""},
    {kernels::kGmmMinWeight, "min_weight", "the smallest component weight", Direction::kDown, false, ""},
    {kernels::kGmmRareModeMass, "rare_mode_mass",
     "the model's mass within Mahalanobis radius 2 of the truth's lowest-weight component, over the truth's",
     Direction::kDown, true, "generation 0", false, kMixtureTruthOnly},
    {kernels::kGmmEmIters, "em_iters", "M-steps of the kept fit", Direction::kNone, false, "generation 0"},
    {kernels::kGmmEmFailures, "em_failures", "1 if the chain's fit has failed (now or earlier), else 0",
     Direction::kNone, false, "generation 0"},
    {kernels::kGmmEmUnconverged, "em_unconverged", "1 if the kept fit stopped at model.em.max_iter", Direction::kNone,
     false, "generation 0"},
    {kernels::kGmmSyntheticShare, "synthetic_share", "fraction of the training set that is synthetic", Direction::kNone,
     false, "every regime without a filter (under accumulate_subsample its expectation)"},
    {kernels::kGmmDataAge, "data_age",
     "mean over the training set of (generation fitted - generation the point was added)", Direction::kNone, false,
     "every regime without a filter (under accumulate_subsample its expectation)"},
    {kernels::kGmmFitNll, "fit_nll",
     "minus the kept fit's mean log-likelihood on its own training set (EM's log-loss); empty at generation 0",
     Direction::kNone, false, ""},
    {kernels::kGmmDrawsPerKept, "draws_per_kept",
     "synthetic candidates drawn per synthetic point kept under data.verifier or data.dedup", Direction::kNone, false,
     "", false, "with data.verifier or data.dedup"},
    {kernels::kGmmComponentStd1, "component_std_k",
     "sqrt(tr Sigma / d) of the component of k-th largest weight (k = 1..K, ties by index)", Direction::kDown, false,
     "", true},
    sample_metric_spec(kernels::kGmmPrecision, kernels::kSamplePrecision),
    sample_metric_spec(kernels::kGmmRecall, kernels::kSampleRecall),
    sample_metric_spec(kernels::kGmmCoverage, kernels::kSampleCoverage),
    sample_metric_spec(kernels::kGmmEnergy, kernels::kSampleEnergy),
};
static_assert(metrics_in_enum_order(kMetrics) && std::size(kMetrics) == kernels::kGmmEnergy + 1,
              "the mixture metrics' names follow kernels::GmmMetric");

std::vector<KeySpec> make_keys() {
  std::vector<KeySpec> keys = {
      integer_key("model.dim", 1, kernels::kGmmMaxDim, "1",
                  "d, the dimension of the truth and the model (a shape truth's own when not given: 2, or the "
                  "dimension of truth.centers)"),
      required(
          integer_key("model.components", 1, kernels::kGmmMaxComponents, "", "K, the fitted mixture's components")),
      choice_key("model.covariance", {"full", "diag"}, "full", "the components' covariances: full or diagonal"),
      shaped_key("model.em", KeyType::kMapping, "{max_iter, tol, init, restarts, reg_covar}", "",
                 "EM's settings (scikit-learn's GaussianMixture conventions)"),
      integer_key("model.em.max_iter", 1, 100000, "100", "M-steps at most per fit"),
      number_key("model.em.tol", "a tolerance >= 0", 0.0, 1e300, "1e-3",
                 "stop when the mean log-likelihood changes by less between E-steps"),
      choice_key("model.em.init", {"warm", "kmeans++"}, "warm",
                 "start from the previous generation's fit, or seed every fit with k-means++"),
      integer_key("model.em.restarts", 1, 1000, "1", "fits per generation; the best log-likelihood is kept"),
      number_key("model.em.reg_covar", "a ridge >= 0", 0.0, 1e300, "1e-6",
                 "added to every covariance's diagonal (at most 1% of the truth's smallest variance)"),
      shaped_key("truth.weights", KeyType::kList, "1 to 16 weights > 0 summing to 1", "",
                 "the truth's component weights (within 1e-6 of 1; divided by their sum)"),
      shaped_key("truth.means", KeyType::kList, "a list of model.dim numbers per weight", "",
                 "the truth's component means"),
      shaped_key("truth.covs", KeyType::kList,
                 "per weight a model.dim x model.dim symmetric positive definite matrix or a list of variances", "",
                 "the truth's component covariances"),
      integer_key("metrics.heldout", 1, 10000000, "1000",
                  "held-out real points of xent and of the sample-based metrics"),
      number_key("metrics.dead_weight", "a weight in [0, 1]", 0.0, 1.0, "1e-3",
                 "a component below this weight counts in dead_components"),
      sample_based_key(),
  };
  // A shape's law as the truth, after the mixture truth's keys.
  const std::vector<KeySpec> shapes = shape_keys();
  const auto at = std::find_if(keys.begin(), keys.end(), [](const KeySpec& k) { return k.path == "metrics.heldout"; });
  keys.insert(at, shapes.begin(), shapes.end());
  return keys;
}

class GmmFamily final : public Family {
 public:
  const char* name() const override { return "gmm"; }
  FamilyKind kind() const override { return FamilyKind::kContinuous; }
  bool has_points() const override { return true; }
  const char* description() const override {
    return "a mixture of K <= 16 Gaussians in d <= 8 dimensions, fitted by EM";
  }
  const std::vector<KeySpec>& keys() const override {
    static const std::vector<KeySpec> keys = make_keys();
    return keys;
  }

  // model.components, model.covariance, model.em and a truth: {weights, means, covs} or a shape.
  std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig& c) const override {
    auto g = std::make_shared<GmmSettings>();
    const YAML::Node truth = r.node("truth");
    const std::string expected = "{weights: [...], means: [[...], ...], covs: [...]} or {shape: moons, ...}";
    if (!truth || truth.IsNull()) throw ConfigError("truth", "missing; expected " + expected);
    if (!truth.IsMap()) throw ConfigError("truth", "expected " + expected);
    g->shape = read_shape_truth(r);
    const bool shape = g->shape.kind != kernels::ShapeKind::kNone;
    // A shape truth has its own dimension, which model.dim may repeat.
    g->dim = shape && !r.given("model.dim") ? g->shape.d : static_cast<int>(r.integer(key("model.dim")));
    if (shape && g->dim != g->shape.d)
      throw ConfigError("model.dim", fmt::format("expected {} (the dimension of truth.shape {}), got {}", g->shape.d,
                                                 kernels::shape_name(g->shape.kind), g->dim));
    g->components = static_cast<int>(r.integer(key("model.components")));
    g->em.diag = r.choice(key("model.covariance")) == "diag";
    g->em.max_iter = static_cast<int>(r.integer(key("model.em.max_iter")));
    g->em.tol = r.number(key("model.em.tol"));
    g->em.init = r.choice(key("model.em.init")) == "warm" ? kernels::EmInit::kWarm : kernels::EmInit::kKmeansPP;
    g->em.restarts = static_cast<int>(r.integer(key("model.em.restarts")));
    g->em.reg_covar = r.number(key("model.em.reg_covar"));

    if (!shape) {
      MixtureTruthSpec spec = read_mixture_truth(r, g->dim, kernels::kGmmMaxDim);
      g->truth_weights = std::move(spec.weights);
      g->truth_means = std::move(spec.means);
      g->truth_covs = std::move(spec.covs);
    }
    g->heldout = static_cast<int>(r.integer(key("metrics.heldout")));
    g->dead_weight = r.number(key("metrics.dead_weight"));
    g->sample_based = read_sample_based(r);
    check_heldout_size(g->sample_based, g->heldout, "metrics.heldout");
    PointConfig with = c;
    with.family_settings = g;
    if (const std::string problem = gmm_truth_problem(with); !problem.empty()) {
      const auto colon = problem.find(": ");
      throw ConfigError(problem.substr(0, colon), problem.substr(colon + 2));
    }
    return g;
  }

  // data.verifier and data.tail_upsample judge points by the truth's log-density, which a shape truth has not.
  void check(const PointConfig& c) const override {
    const auto& g = c.settings<GmmSettings>();
    check_sample_size(g.sample_based, c.samples);
    if (g.shape.kind == kernels::ShapeKind::kNone) return;
    const char* name = kernels::shape_name(g.shape.kind);
    if (c.verifier)
      throw ConfigError(
          "data.verifier",
          fmt::format("its plausibility test is the truth's log-density, which a shape truth (truth.shape "
                      "{}) has not in closed form",
                      name));
    if (c.tail_upsample)
      throw ConfigError("data.tail_upsample",
                        fmt::format("its tail is where the truth's log-density is lowest, which a shape truth "
                                    "(truth.shape {}) has not in closed form",
                                    name));
  }

  // The sample-based metrics are written when asked for; those that compare with the truth's density in closed
  // form are not written for a shape truth.
  bool writes(const PointConfig& c, const std::string& metric) const override {
    const auto& g = c.settings<GmmSettings>();
    if (const int k = sample_metric_of(metric); k >= 0) return (g.sample_based >> k) & 1u;
    if (g.shape.kind != kernels::ShapeKind::kNone)
      for (const auto& m : kMetrics)
        if (metric == m.name && std::string(m.written) == kMixtureTruthOnly) return false;
    return Family::writes(c, metric);
  }

  std::vector<MetricSpec> metrics() const override { return {std::begin(kMetrics), std::end(kMetrics)}; }

  // The block's rows: the fixed slots, a component_std row per component, then the sample-based metrics' rows when
  // the config asks for one (kernels::gmm_metric_rows).
  std::vector<std::string> metric_names(const PointConfig& c) const override {
    const auto& g = c.settings<GmmSettings>();
    std::vector<std::string> names;
    for (int m = 0; m < kernels::kGmmComponentStd1; ++m) names.emplace_back(kMetrics[m].name);
    for (int k = 1; k <= g.components; ++k) names.push_back(fmt::format("component_std_{}", k));
    if (g.sample_based)
      for (int m = kernels::kGmmPrecision; m <= kernels::kGmmEnergy; ++m) names.emplace_back(kMetrics[m].name);
    return names;
  }

  std::optional<double> theory(const PointConfig& c, int metric, int t) const override {
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
    // The training set's composition is fixed by the regime; under accumulate_subsample it is random, with the
    // pool's values as expectation. A filter (data.verifier, data.dedup) whose draw budget runs out leaves a
    // generation short of synthetic points, so then there is no closed form. (With age decay the subsample's shares
    // are ratios of random weights.)
    if ((metric == kGmmSyntheticShare || metric == kGmmDataAge) && !c.verifier && !c.dedup &&
        !(c.regime == Regime::kAccumulateSubsample && c.age_decay != 1.0)) {
      const Regime r = c.regime == Regime::kAccumulateSubsample ? Regime::kAccumulate : c.regime;
      double share, age;
      regime_composition(r, c.samples, c.real_count, t, c.age_decay, share, age);
      return metric == kGmmSyntheticShare ? share : age;
    }
    return std::nullopt;
  }

  SummarySettings default_summary() const override { return {"var_ratio", 0.5}; }

  std::vector<DetectorSpec> detectors() const override {
    return {{"diversity", "var_ratio", true, 1.0, -1.0, "ln (variance drop)"},
            {"canary", "xent", false, 1.0, 1.0, "nats (validation NLL rise)"},
            // EM's own mean log-loss on the training set: the resubstitution estimate of the mixture's entropy.
            {"entropy", "fit_nll", false, 1.0, -1.0, "nats (entropy drop)"}};
  }

  double point_bytes(const PointConfig& c) const override {
    const auto& g = c.settings<GmmSettings>();
    const double P = kernels::gmm_block_size(g.components, g.dim);
    const double chains = static_cast<double>(c.chains);
    double per_chain =
        2 * P + 1 + kernels::gmm_metric_rows(g.components, g.sample_based);  // the fit, the best restart's
    if (c.dedup) per_chain += kernels::dedup_table_size(c.samples);  // dedup's table (cuda: per chain of a slice)
    if (c.regime != kernels::Regime::kReplace) per_chain += c.generations * P;  // model history
    // Per-thread training set (with its weights) and lane partials; under a filter accumulate_subsample
    // materialises its whole pool first.
    const bool pool = c.regime == kernels::Regime::kAccumulate ||
                      (c.regime == kernels::Regime::kAccumulateSubsample && (c.verifier || c.dedup));
    const double train = pool ? static_cast<double>(c.generations) * c.samples : c.samples;
    double scratch =
        omp_get_max_threads() * (train * (g.dim + 1) + kernels::kEmLanes * kernels::em_stats_size(g.components, g.dim));
    double heldout = static_cast<double>(g.heldout) * g.dim;
    // The sample-based metrics: the held-out side's radii, and a model sample with its radii per thread (cuda: per
    // chain of a slice of at most the scratch budget).
    if (g.sample_based) {
      heldout += g.heldout;
      scratch += omp_get_max_threads() * (c.samples * (g.dim + 1.0));
    }
    return 8.0 * (per_chain * chains + scratch + heldout);
  }

  BackendSupport support(const std::string&) const override {
    // Both backends run every data option but the estimator weight (a Gaussian mean's).
    return {true,
            {DataOption::kVerifier, DataOption::kTailUpsample, DataOption::kAgeDecay, DataOption::kDedup,
             DataOption::kDedupGrid}};
  }

  std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int threads,
                                      ChainBlock block) const override {
    const auto& g = c.settings<GmmSettings>();
    const kernels::GmmTruth truth = make_gmm_truth(c);
    kernels::GmmBatchSpec spec{truth,
                               make_gmm_heldout(c, truth),
                               g.components,
                               g.em,
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
                               {},
                               g.sample_based,
                               {}};
    mixture_filters(c, truth, spec.verifier, spec.weighting, spec.dedup);
    if (g.sample_based) spec.heldout_side = kernels::make_heldout_side(spec.heldout, g.dim);
    return make_gmm_backend(backend, spec);
  }

 private:
  const KeySpec& key(const std::string& path) const { return key_of(keys(), path); }
};

}  // namespace

std::unique_ptr<kernels::GmmBackend> make_gmm_backend(const std::string& backend, const kernels::GmmBatchSpec& spec) {
  return make_backend(backend, spec, &kernels::make_gmm_cpu, OURO_CUDA_FACTORY(kernels::make_gmm_cuda));
}

const Family& gmm_family() {
  static const GmmFamily f;
  return f;
}

}  // namespace ouro

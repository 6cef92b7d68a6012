// The kernel density family's row of the family table: its keys, truth (computed once per sweep point), metrics,
// theory column, memory estimate and the backends of kernels/kde/kde_backend.h.
#include "sim/families/kde/kde_family.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <tuple>

#include <fmt/format.h>

#include "kernels/core/rng.h"
#include "kernels/training/dedup.h"
#include "sim/analysis/aggregate.h"
#include "sim/families/continuous_truths.h"
#include "sim/families/gmm/gmm_family.h"
#include "sim/families/ngram/wright_fisher.h"
#include "sim/families/sample_metrics.h"
#include "sim/parallel/backend.h"

namespace ouro {

namespace {

// The largest n whose ancestors expectation the theory column computes (the Wright-Fisher vectors cost O(n^2) per
// generation: n = 2000 and 100 generations take about 4 10^8 terms, two seconds once per point).
constexpr std::int64_t kAncestorTheoryMaxSamples = 2000;

// The bandwidths accepted, relative to the truth's scale sqrt(tr Sigma_0 / d).
constexpr double kBandwidthScaleMin = 1e-8, kBandwidthScaleMax = 1e8;

bool is_shape(const KdeSettings& k) { return k.shape.kind != kernels::ShapeKind::kNone; }

}  // namespace

kernels::GmmTruth make_kde_truth(const PointConfig& c) {
  using namespace kernels;
  const auto& k = c.settings<KdeSettings>();
  GmmTruth t{};
  t.d = k.dim;
  if (is_shape(k)) {
    t.K0 = 0;
    t.shape = k.shape;
    shape_moments(k.shape, t.mean, t.cov);
  } else {
    const int K0 = static_cast<int>(k.truth_weights.size()), d = k.dim;
    t.K0 = K0;
    const GmmView v = gmm_view(K0, d, t.params);
    std::copy(k.truth_weights.begin(), k.truth_weights.end(), v.w);
    std::copy(k.truth_means.begin(), k.truth_means.end(), v.mu);
    std::copy(k.truth_covs.begin(), k.truth_covs.end(), v.cov);
    gmm_complete(v);  // every covariance was checked positive definite by the config
    gmm_moments(truth_view(t), t.mean, t.cov);
  }
  cholesky(t.d, t.cov, t.chol);
  t.trace = 0.0;
  for (int a = 0; a < t.d; ++a) t.trace += t.cov[a * t.d + a];
  // The mixture family's own truth summaries (its tail radius, rare component, L2 overlap) are not used here.
  t.tail_r2 = NAN;
  t.rare = 0;
  t.rare_mass = NAN;
  t.self_overlap = NAN;
  t.dead_weight = 0.0;
  return t;
}

std::vector<double> make_kde_heldout(const PointConfig& c, const kernels::GmmTruth& t) {
  const auto& k = c.settings<KdeSettings>();
  std::vector<double> x(static_cast<std::size_t>(k.heldout) * k.dim);
  for (int i = 0; i < k.heldout; ++i) kernels::truth_draw(c.seed, rng::kHeldoutChain, 0, i, t, x.data() + i * k.dim);
  return x;
}

std::vector<double> kde_ancestor_expectation(std::int64_t n, int generations) {
  // From generation 2 on, a generation-1 point's descendants are a Wright-Fisher count started at
  // X_2 ~ Binomial(n, 1/n): a word type of probability 1/n in wright_fisher_loss, one generation behind.
  std::vector<double> out{NAN, static_cast<double>(n)};
  if (generations >= 2) {
    const WrightFisherLoss wf = wright_fisher_loss({1.0 / static_cast<double>(n)}, n, generations - 1);
    for (std::size_t s = 1; s < wf.survival.size(); ++s) out.push_back(static_cast<double>(n) * wf.survival[s]);
  }
  return out;
}

namespace {

constexpr MetricSpec kMetrics[] = {
    {kernels::kKdeHeldoutNll, "heldout_nll",
     "mean -ln p_t(x) over a fixed held-out set of metrics.heldout real points (empty at generation 0 for a shape "
     "truth)",
     Direction::kUp, false, ""},
    {kernels::kKdeVarRatio, "var_ratio",
     "tr Cov(p_t) / tr Sigma_0 = (tr S_t + d h_t^2) / tr Sigma_0, S_t the training set's (weighted) MLE covariance",
     Direction::kDown, true, "replace, real_fraction 0, no filter or tail weight"},
    {kernels::kKdeMeanSqErr, "mean_sq_err", "||m_t - mu_0||^2, m_t the training set's (weighted) mean", Direction::kUp,
     false, "replace, real_fraction 0, no filter or tail weight"},
    {kernels::kKdeAncestors, "ancestors",
     "distinct founders (real points: generation 1's, and later generations' fresh ones) of generation t's new points "
     "(generation 1: n)",
     Direction::kDown, false, "replace, real_fraction 0, no filter or tail weight, data.samples <= 2000"},
    {kernels::kKdeBandwidth, "bandwidth", "h_t, the bandwidth of generation t's model (scott, silverman)",
     Direction::kNone, false, "", false, "with model.bandwidth scott or silverman"},
    {kernels::kKdeSyntheticShare, "synthetic_share", "fraction of the training set that is synthetic", Direction::kNone,
     false, "every regime without a filter (under accumulate_subsample its expectation, without age_decay)"},
    {kernels::kKdeDataAge, "data_age",
     "mean over the training set of (generation fitted - generation the point was added)", Direction::kNone, false,
     "every regime without a filter (under accumulate_subsample its expectation, without age_decay)"},
    {kernels::kKdeDrawsPerKept, "draws_per_kept",
     "synthetic candidates drawn per synthetic point kept under data.verifier or data.dedup", Direction::kNone, false,
     "", false, "with data.verifier or data.dedup"},
    sample_metric_spec(kernels::kKdePrecision, kernels::kSamplePrecision),
    sample_metric_spec(kernels::kKdeRecall, kernels::kSampleRecall),
    sample_metric_spec(kernels::kKdeCoverage, kernels::kSampleCoverage),
    sample_metric_spec(kernels::kKdeEnergy, kernels::kSampleEnergy),
};
static_assert(metrics_in_enum_order(kMetrics) && std::size(kMetrics) == kernels::kKdeNumMetrics,
              "the kernel density metrics' names follow kernels::KdeMetric");

std::vector<KeySpec> make_keys() {
  std::vector<KeySpec> keys = {
      shaped_key("model.bandwidth", KeyType::kText, "a number in [1e-100, 1e100], scott or silverman", "1.0",
                 "h of the Gaussian kernel N(0, h^2 I), or a rule re-applied to each generation's training set "
                 "(scikit-learn's: scott m^(-1/(d+4)), silverman (m (d+2)/4)^(-1/(d+4)))"),
      shaped_key("truth.mean", KeyType::kList, "a list of d <= 8 numbers", "",
                 "a Gaussian truth's mean (with truth.cov)"),
      shaped_key("truth.cov", KeyType::kMatrix, "a d x d symmetric positive definite matrix or a list of d variances",
                 "", "a Gaussian truth's covariance"),
      shaped_key("truth.weights", KeyType::kList, "1 to 16 weights > 0 summing to 1", "",
                 "a mixture truth's component weights (within 1e-6 of 1; divided by their sum)"),
      shaped_key("truth.means", KeyType::kList, "a list of d <= 8 numbers per weight", "",
                 "a mixture truth's component means"),
      shaped_key("truth.covs", KeyType::kList, "per weight a d x d symmetric positive definite matrix or variances", "",
                 "a mixture truth's component covariances"),
  };
  for (const KeySpec& k : shape_keys()) keys.push_back(k);
  keys.push_back(integer_key("metrics.heldout", 1, 10000000, "1000",
                             "held-out real points of heldout_nll and of the sample-based metrics"));
  keys.push_back(sample_based_key());
  return keys;
}

// model.bandwidth: a number, scott or silverman.
void read_bandwidth(const ConfigReader& r, const KeySpec& key, KdeSettings& k) {
  const YAML::Node n = r.node("model.bandwidth");
  if (!r.given("model.bandwidth")) {
    k.rule = kernels::BandwidthRule::kFixed;
    k.bandwidth = 1.0;
    return;
  }
  if (!n.IsScalar()) throw ConfigError("model.bandwidth", "expected " + key.expected + ", got " + scalar_text(n));
  const std::string text = n.Scalar();
  if (text == "scott" || text == "silverman") {
    k.rule = text == "scott" ? kernels::BandwidthRule::kScott : kernels::BandwidthRule::kSilverman;
    return;
  }
  const double h = as_number(n, "model.bandwidth", key.expected);
  if (!(h >= 1e-100 && h <= 1e100))
    throw ConfigError("model.bandwidth", fmt::format("expected {}, got {}", key.expected, text));
  k.rule = kernels::BandwidthRule::kFixed;
  k.bandwidth = h;
}

bool uses_verifier_or_dedup(const PointConfig& c) { return c.verifier || c.dedup; }

// Whether the closed forms of the family's page hold: replace, no real data after generation 1, no filter, no tail
// weight (age_decay does nothing under replace).
bool theory_holds(const PointConfig& c) {
  return c.regime == kernels::Regime::kReplace && c.real_count == 0 && !uses_verifier_or_dedup(c) && !c.tail_upsample;
}

class KdeFamily final : public Family {
 public:
  const char* name() const override { return "kde"; }
  FamilyKind kind() const override { return FamilyKind::kContinuous; }
  bool has_points() const override { return true; }
  int point_dim(const PointConfig& c) const override { return c.settings<KdeSettings>().dim; }
  const char* description() const override {
    return "a Gaussian kernel density estimate over its training set, in d <= 8 dimensions";
  }
  const std::vector<KeySpec>& keys() const override {
    static const std::vector<KeySpec> keys = make_keys();
    return keys;
  }

  std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig&) const override {
    auto k = std::make_shared<KdeSettings>();
    read_bandwidth(r, key("model.bandwidth"), *k);
    const YAML::Node truth = r.node("truth");
    const std::string shapes = "a shape {shape, ...}, a Gaussian {mean, cov} or a mixture {weights, means, covs}";
    if (!truth || truth.IsNull()) throw ConfigError("truth", "missing; expected " + shapes);
    if (!truth.IsMap()) throw ConfigError("truth", "expected " + shapes);
    const bool shape = r.given("truth.shape"), mixture = r.given("truth.weights"), gaussian = r.given("truth.mean");
    if (static_cast<int>(shape) + static_cast<int>(mixture) + static_cast<int>(gaussian) != 1)
      throw ConfigError("truth",
                        "expected exactly one of truth.shape, truth.weights (a mixture) and truth.mean (a "
                        "Gaussian)");
    // (Refuses a shape's keys without truth.shape, and a mixture's or Gaussian's beside it.)
    k->shape = read_shape_truth(r);
    if (shape) {
      k->dim = k->shape.d;
    } else if (mixture) {
      for (const char* p : {"truth.mean", "truth.cov"})
        if (r.given(p))
          throw ConfigError(p, "belongs to a Gaussian truth, not to a mixture truth {weights, means, covs}");
      MixtureTruthSpec m = read_mixture_truth(r, -1, kernels::kKdeMaxDim);
      k->dim = m.d;
      k->truth_weights = std::move(m.weights);
      k->truth_means = std::move(m.means);
      k->truth_covs = std::move(m.covs);
    } else {
      for (const char* p : {"truth.means", "truth.covs"})
        if (r.given(p)) throw ConfigError(p, "belongs to a mixture truth, not to a Gaussian truth {mean, cov}");
      std::vector<double> mean = read_numbers(r.node("truth.mean"), "truth.mean");
      const int d = static_cast<int>(mean.size());
      if (d < 1 || d > kernels::kKdeMaxDim)
        throw ConfigError("truth.mean", fmt::format("expected 1 to {} numbers, got {}", kernels::kKdeMaxDim, d));
      if (!r.given("truth.cov"))
        throw ConfigError("truth.cov", fmt::format("missing; expected a {0} x {0} covariance or {0} variances", d));
      std::vector<double> cov = read_covariance(r.node("truth.cov"), "truth.cov", d, true);
      check_scales("truth.cov", "truth.mean", d, mean.data(), cov.data());
      k->dim = d;
      k->truth_weights = {1.0};
      k->truth_means = std::move(mean);
      k->truth_covs = std::move(cov);
    }
    k->heldout = static_cast<int>(r.integer(key("metrics.heldout")));
    k->sample_based = read_sample_based(r);
    check_heldout_size(k->sample_based, k->heldout, "metrics.heldout");
    return k;
  }

  void check(const PointConfig& c) const override {
    const auto& k = c.settings<KdeSettings>();
    if (is_shape(k)) {
      if (c.verifier)
        throw ConfigError("data.verifier",
                          "needs the truth's density, which a shape truth does not have in closed form");
      if (c.tail_upsample)
        throw ConfigError("data.tail_upsample",
                          "needs the truth's density, which a shape truth does not have in closed form");
    }
    check_sample_size(k.sample_based, c.samples);
    // The bandwidths the point will use, against the truth's scale: far outside, the held-out NLL (|x - c|^2 / h^2)
    // or the spread (h^2) overflows the squares of the aggregates.
    const double scale = std::sqrt(make_kde_truth(c).trace / k.dim);
    const double m_max = c.regime == kernels::Regime::kAccumulate ? static_cast<double>(c.generations) * c.samples
                                                                  : static_cast<double>(c.samples);
    const double h_lo = kernels::kde_bandwidth(k.rule, k.bandwidth, static_cast<std::int64_t>(m_max), k.dim);
    const double h_hi = kernels::kde_bandwidth(k.rule, k.bandwidth, std::min<std::int64_t>(c.samples, 1), k.dim);
    if (!(h_lo >= kBandwidthScaleMin * scale && h_hi <= kBandwidthScaleMax * scale))
      throw ConfigError("model.bandwidth",
                        fmt::format("the bandwidth ({:g} to {:g} here) must lie within {:g} and {:g} times the truth's "
                                    "scale sqrt(tr Sigma_0 / d) = {:g}: beyond, the held-out NLL or the spread "
                                    "overflows the squares of the aggregates",
                                    h_lo, h_hi, kBandwidthScaleMin, kBandwidthScaleMax, scale));
  }

  std::vector<MetricSpec> metrics() const override { return {std::begin(kMetrics), std::end(kMetrics)}; }

  bool writes(const PointConfig& c, const std::string& metric) const override {
    const auto& k = c.settings<KdeSettings>();
    if (metric == "bandwidth") return k.rule != kernels::BandwidthRule::kFixed;
    if (const int s = sample_metric_of(metric); s >= 0) return (k.sample_based >> s) & 1u;
    return Family::writes(c, metric);
  }

  std::optional<double> theory(const PointConfig& c, int metric, int t) const override {
    using namespace kernels;
    const auto& k = c.settings<KdeSettings>();
    if (t == 0) {
      switch (metric) {
        case kKdeVarRatio:
          return 1.0;
        case kKdeMeanSqErr:
        case kKdeSyntheticShare:
        case kKdeDataAge:
          return 0.0;
        default:
          return std::nullopt;
      }
    }
    if ((metric == kKdeSyntheticShare || metric == kKdeDataAge) && !uses_verifier_or_dedup(c) &&
        !(c.regime == Regime::kAccumulateSubsample && c.age_decay != 1.0)) {
      const Regime r = c.regime == Regime::kAccumulateSubsample ? Regime::kAccumulate : c.regime;
      double share, age;
      regime_composition(r, c.samples, c.real_count, t, c.age_decay, share, age);
      return metric == kKdeSyntheticShare ? share : age;
    }
    if (!theory_holds(c)) return std::nullopt;
    const double n = c.samples, a = 1.0 - 1.0 / n;
    const double tr0 = make_kde_truth(c).trace;
    const double dh2 = k.dim * std::pow(kde_bandwidth(k.rule, k.bandwidth, c.samples, k.dim), 2);
    // E[tr S_s] = a^s tr Sigma_0 + (n - 1) d h^2 (1 - a^(s - 1)) for s >= 1 (docs/families/kde.md, "Theory").
    auto spread = [&](int s) { return std::pow(a, s) * tr0 + (n - 1.0) * dh2 * (1.0 - std::pow(a, s - 1)); };
    switch (metric) {
      case kKdeVarRatio:
        return (spread(t) + dh2) / tr0;
      case kKdeMeanSqErr: {
        // E||m_t - mu_0||^2 = E||m_{t-1} - mu_0||^2 + (E[tr S_{t-1}] + d h^2) / n, generation 0 being the truth
        // (its spread tr Sigma_0, no kernel).
        double e = tr0 / n;
        for (int s = 1; s < t; ++s) e += (spread(s) + dh2) / n;
        return e;
      }
      case kKdeAncestors: {
        if (c.samples > kAncestorTheoryMaxSamples) return std::nullopt;
        const std::vector<double>& e = ancestors_cached(c.samples, c.generations);
        return t < static_cast<int>(e.size()) ? std::optional<double>(e[t]) : std::nullopt;
      }
      default:
        return std::nullopt;
    }
  }

  // Collapse as coalescence: the first generation whose new points all descend from one generation-1 point (the
  // sample's most recent common ancestor). var_ratio, whose direction across families is down, grows for a KDE.
  SummarySettings default_summary() const override { return {"ancestors", 1.0}; }

  std::vector<DetectorSpec> detectors() const override {
    return {{"diversity", "ancestors", true, 1.0, -1.0, "ln (lineage loss)"},
            {"canary", "heldout_nll", false, 1.0, 1.0, "nats (validation NLL rise)"}};
  }

  double point_bytes(const PointConfig& c) const override {
    const auto& k = c.settings<KdeSettings>();
    const double chains = static_cast<double>(c.chains), n = c.samples, d = k.dim;
    // The largest training set: the pool under accumulate, else n points.
    const double m = c.regime == kernels::Regime::kAccumulate ? static_cast<double>(c.generations) * c.samples : n;
    // A generation's working memory: the new points with their parents, ancestors, flags and ancestors seen (8 d +
    // 14 bytes each), dedup's table, the training set's log-weights, cumulative and relative weights (3 doubles per
    // point), and the model sample of the sample-based metrics with its radii. The cpu keeps one per thread (with
    // the centres by coordinate, d + 1 doubles per point); the cuda backend one per chain, with every held-out
    // point's term: counted per chain, the larger of the two.
    const double sample = k.sample_based ? 8.0 * n * (d + 1.0) : 0.0;
    const double work = (8.0 * d + 14.0) * n + 8.0 * kernels::dedup_table_size(c.samples) + 24.0 * m + sample;
    const double per_chain = chain_bytes(c) + work + 8.0 * (k.heldout + 2.0 + kernels::kKdeNumMetrics);
    const double per_thread = work + 8.0 * m * (d + 1.0);
    return chains * per_chain + omp_get_max_threads() * per_thread + 8.0 * static_cast<double>(k.heldout) * (d + 1.0);
  }

  BackendSupport support(const std::string&) const override {
    // Both backends run the same per-chain code (kernels/kde/kde.h), every data option but the estimator weight (a
    // Gaussian mean's).
    return {true,
            {DataOption::kVerifier, DataOption::kTailUpsample, DataOption::kAgeDecay, DataOption::kDedup,
             DataOption::kDedupGrid}};
  }

  std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int threads,
                                      ChainBlock block) const override {
    return make_kde_backend(backend, make_kde_spec(c, threads, block));
  }

 private:
  const KeySpec& key(const std::string& path) const { return key_of(keys(), path); }

  // The bytes of one chain's stored points: coordinates (8 d), ancestor and generation (4 + 4) and flags (1).
  static double chain_bytes(const PointConfig& c) {
    const auto& k = c.settings<KdeSettings>();
    const double per_point = 8.0 * k.dim + 9.0;
    const double pool =
        c.regime == kernels::Regime::kReplace ? c.samples : static_cast<double>(c.generations) * c.samples;
    const double train = c.regime == kernels::Regime::kAccumulate ? 0.0 : c.samples;
    return per_point * (pool + train);
  }

  static const std::vector<double>& ancestors_cached(std::int64_t n, int generations) {
    static std::mutex mutex;
    static std::map<std::tuple<std::int64_t, int>, std::vector<double>> cache;
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find({n, generations});
    if (it == cache.end())
      it = cache.emplace(std::make_tuple(n, generations), kde_ancestor_expectation(n, generations)).first;
    return it->second;
  }
};

}  // namespace

kernels::KdeBatchSpec make_kde_spec(const PointConfig& c, int threads, ChainBlock block) {
  const auto& k = c.settings<KdeSettings>();
  kernels::KdeBatchSpec spec;
  spec.truth = make_kde_truth(c);
  spec.heldout = make_kde_heldout(c, spec.truth);
  spec.rule = k.rule;
  spec.bandwidth = k.bandwidth;
  spec.regime = c.regime;
  spec.real_source = c.real_source;
  spec.generations = c.generations;
  spec.samples = c.samples;
  spec.real_count = c.real_count;
  spec.seed = c.seed;
  spec.chain_begin = static_cast<std::uint32_t>(block.first);
  spec.batch = block.count;
  spec.threads = threads;
  mixture_filters(c, spec.truth, spec.verifier, spec.weighting, spec.dedup);
  spec.sample_based = k.sample_based;
  if (k.sample_based) spec.side = kernels::make_heldout_side(spec.heldout, k.dim);
  return spec;
}

std::unique_ptr<kernels::ChainBackend> make_kde_backend(const std::string& backend, const kernels::KdeBatchSpec& spec) {
  return make_backend(backend, spec, &kernels::make_kde_cpu, OURO_CUDA_FACTORY(kernels::make_kde_cuda));
}

const Family& kde_family() {
  static const KdeFamily f;
  return f;
}

}  // namespace ouro

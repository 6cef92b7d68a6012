// The Gaussian family's row of the family table: its keys, metrics, theory (sim/families/gaussian/gaussian_truth.cc),
// memory estimate and the backends of kernels/gaussian/gaussian_backend.h.
#include "sim/families/gaussian/gaussian_family.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/core/quadform.h"
#include "kernels/training/dedup.h"
#include "sim/families/continuous_truths.h"
#include "sim/families/gaussian/gaussian_truth.h"
#include "sim/families/sample_metrics.h"
#include "sim/parallel/backend.h"

namespace ouro {
namespace {

using kernels::GaussianMetric;

constexpr MetricSpec kMetrics[] = {
    {kernels::kVarRatio, "var_ratio", "tr Sigma_t / tr Sigma_0", Direction::kDown, true,
     "generation 0; replace (mle, unbiased) and accumulate (mle) without real data"},
    {kernels::kDetRatio, "det_ratio", "det Sigma_t / det Sigma_0", Direction::kDown, true,
     "generation 0; replace (mle) without real data"},
    {kernels::kMeanSqErr, "mean_sq_err", "||mu_t - mu_0||^2", Direction::kUp, false,
     "generation 0; replace (mle, unbiased) and accumulate (mle) without real data"},
    {kernels::kW2, "w2", "the 2-Wasserstein distance between truth and model (not squared)", Direction::kUp, false,
     "generation 0"},
    {kernels::kKl, "kl", "KL(truth || model_t), nats", Direction::kUp, false, "generation 0"},
    {kernels::kXent, "xent", "cross-entropy of the truth under model_t (the expected held-out NLL): H(truth) + kl",
     Direction::kUp, false, ""},
    {kernels::kTailMass, "tail_mass",
     "P_model(r(X) > r_99) / 0.01: the model's mass beyond the truth's 99% Mahalanobis radius, over the truth's",
     Direction::kDown, true, "generation 0"},
    {kernels::kSyntheticShare, "synthetic_share", "fraction of the training set that is synthetic", Direction::kNone,
     false, "every regime without a filter (under accumulate_subsample its expectation)"},
    {kernels::kDataAge, "data_age",
     "mean over the training set of (generation fitted - generation the point was added)", Direction::kNone, false,
     "every regime without a filter (under accumulate_subsample its expectation)"},
    {kernels::kDrawsPerKept, "draws_per_kept",
     "synthetic candidates drawn per synthetic point kept under data.verifier or data.dedup", Direction::kNone, false,
     "under a verifier that keeps every candidate alike", false, "with data.verifier or data.dedup"},
    {kernels::kHeldoutNll, "heldout_nll",
     "mean -ln N(x; mu_t, Sigma_t) over a fixed held-out set of metrics.heldout real points", Direction::kUp, false,
     ""},
    sample_metric_spec(kernels::kPrecision, kernels::kSamplePrecision),
    sample_metric_spec(kernels::kRecall, kernels::kSampleRecall),
    sample_metric_spec(kernels::kCoverage, kernels::kSampleCoverage),
    sample_metric_spec(kernels::kEnergy, kernels::kSampleEnergy),
};
static_assert(metrics_in_enum_order(kMetrics) && std::size(kMetrics) == kernels::kNumGaussianMetrics,
              "the Gaussian metrics' names follow kernels::GaussianMetric");

std::vector<KeySpec> make_keys() {
  return {
      integer_key("model.dim", 1, OURO_MAX_DIM, "1", "d, the dimension of the truth and the model"),
      choice_key("model.estimator", {"mle", "unbiased"}, "mle",
                 "the fitted covariance: maximum likelihood M2/N, or unbiased M2/(N - 1)"),
      shaped_key("truth.mean", KeyType::kList, "a list of model.dim numbers", "",
                 "the truth's mean mu_0 (with truth.isotropic: default all 0)"),
      shaped_key("truth.cov", KeyType::kMatrix, "a model.dim x model.dim symmetric positive definite matrix", "",
                 "the truth's covariance Sigma_0"),
      number_key("truth.isotropic", "a variance > 0", 0.0, 1e300, "",
                 "instead of truth.cov: Sigma_0 = this variance times the identity"),
      integer_key("metrics.heldout", 1, 10000000, "1000",
                  "held-out real points of heldout_nll and of the sample-based metrics"),
      sample_based_key(),
  };
}

class GaussianRun final : public FamilyRun {
 public:
  GaussianRun(const PointConfig& c, const std::string& backend, int threads, ChainBlock block)
      : c_(c), g_(c_.settings<GaussianSettings>()) {
    kernels::GaussianBatchSpec spec{make_gaussian_truth(c),
                                    c.regime,
                                    c.generations,
                                    static_cast<std::uint32_t>(block.first),
                                    block.count,
                                    threads,
                                    c.seed,
                                    c.samples,
                                    g_.sample_based,
                                    {}};
    if (g_.sample_based) spec.heldout_side = kernels::make_heldout_side(make_gaussian_heldout(c, spec.truth), g_.dim);
    backend_ = make_gaussian_backend(backend, spec);
    if (c.verifier) {
      verifier_.on = 1;
      verifier_.keep_plausible = kernels::keep_threshold(c.keep_plausible);
      verifier_.keep_implausible = kernels::keep_threshold(c.keep_implausible);
      verifier_.r2_max = kernels::chi2_quantile(1.0 - c.verifier_quantile, g_.dim);
    }
    verifier_.max_draw_factor = c.max_draw_factor;  // (bounds dedup's refill too)
    dedup_.on = c.dedup ? 1 : 0;
    dedup_.resolution = c.dedup_resolution;
    if (c.tail_upsample) {
      upsample_.on = 1;
      upsample_.factor = c.tail_factor;
      upsample_.r2_min = kernels::chi2_quantile(1.0 - c.tail_quantile, g_.dim);
    }
  }
  void start(double* metrics) override { backend_->start(metrics); }
  void advance(int generation, double* metrics) override {
    const kernels::GaussianStep step{c_.seed,   g_.dim,       c_.samples,     c_.real_count,       generation,
                                     c_.regime, g_.estimator, c_.real_source, c_.estimator_weight, verifier_,
                                     upsample_, c_.age_decay, dedup_};
    backend_->advance(step, metrics);
  }
  std::vector<kernels::WorkerRange> workers() const override { return backend_->workers(); }
  void state(kernels::StateArchive& ar) override { backend_->state(ar); }
  bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) override {
    return backend_->model_sample(chain, count, x);
  }
  int point_dim() const override { return backend_->point_dim(); }

 private:
  PointConfig c_;
  const GaussianSettings& g_;
  kernels::Verifier verifier_;
  kernels::TailUpsample upsample_;
  kernels::Dedup dedup_;
  std::unique_ptr<kernels::GaussianBackend> backend_;
};

class GaussianFamily final : public Family {
 public:
  const char* name() const override { return "gaussian"; }
  FamilyKind kind() const override { return FamilyKind::kContinuous; }
  bool has_points() const override { return true; }
  const char* description() const override {
    return "a Gaussian N(mu, Sigma) in d <= 16 dimensions, fitted by maximum likelihood or with the unbiased "
           "covariance";
  }
  const std::vector<KeySpec>& keys() const override {
    static const std::vector<KeySpec> keys = make_keys();
    return keys;
  }

  std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig&) const override {
    auto g = std::make_shared<GaussianSettings>();
    g->dim = static_cast<int>(r.integer(key("model.dim")));
    g->estimator =
        r.choice(key("model.estimator")) == "unbiased" ? kernels::Estimator::kUnbiased : kernels::Estimator::kMle;
    const int d = g->dim;
    // truth: {mean, cov} or {isotropic: s}.
    const std::string shape = "{mean: [...], cov: [[...]]} or {isotropic: variance}";
    const YAML::Node truth = r.node("truth");
    if (!truth || truth.IsNull()) throw ConfigError("truth", "missing; expected " + shape);
    if (!truth.IsMap()) throw ConfigError("truth", "expected " + shape);
    if (truth["isotropic"]) {
      if (truth["cov"]) throw ConfigError("truth.isotropic", "give either truth.isotropic or truth.cov, not both");
      const double s = as_number(truth["isotropic"], "truth.isotropic", "a variance > 0");
      if (!(s > 0.0)) throw ConfigError("truth.isotropic", fmt::format("expected a variance > 0, got {}", s));
      g->truth_cov.assign(d * d, 0.0);
      for (int i = 0; i < d; ++i) g->truth_cov[i * d + i] = s;
      g->truth_mean.assign(d, 0.0);
      if (truth["mean"]) g->truth_mean = read_numbers(truth["mean"], "truth.mean");
    } else {
      if (!r.given("truth.mean")) throw ConfigError("truth.mean", "missing; expected a list of model.dim numbers");
      g->truth_mean = read_numbers(r.node("truth.mean"), "truth.mean");
      if (!r.given("truth.cov"))
        throw ConfigError("truth.cov", "missing; expected a model.dim x model.dim symmetric positive definite matrix");
      g->truth_cov = read_covariance(r.node("truth.cov"), "truth.cov", d, false);
    }
    if (static_cast<int>(g->truth_mean.size()) != d)
      throw ConfigError("truth.mean", fmt::format("expected {} numbers (model.dim), got {}", d, g->truth_mean.size()));
    check_scales("truth", "truth.mean", d, g->truth_mean.data(), g->truth_cov.data());
    g->heldout = static_cast<int>(r.integer(key("metrics.heldout")));
    g->sample_based = read_sample_based(r);
    check_heldout_size(g->sample_based, g->heldout, "metrics.heldout");
    return g;
  }

  int min_samples(const PointConfig& c) const override { return std::max(2, c.settings<GaussianSettings>().dim + 1); }

  void check(const PointConfig& c) const override {
    check_sample_size(c.settings<GaussianSettings>().sample_based, c.samples);
  }

  std::vector<MetricSpec> metrics() const override { return {std::begin(kMetrics), std::end(kMetrics)}; }

  // The block's rows: the sample-based metrics' only when the config asks for one.
  std::vector<std::string> metric_names(const PointConfig& c) const override {
    std::vector<std::string> names;
    for (int m = 0; m < kernels::gaussian_metric_rows(c.settings<GaussianSettings>().sample_based); ++m)
      names.emplace_back(kMetrics[m].name);
    return names;
  }

  bool writes(const PointConfig& c, const std::string& metric) const override {
    if (const int k = sample_metric_of(metric); k >= 0) return (c.settings<GaussianSettings>().sample_based >> k) & 1u;
    return Family::writes(c, metric);
  }

  std::optional<double> theory(const PointConfig& c, int metric, int generation) const override {
    return gaussian_theory(c, metric, generation);
  }

  SummarySettings default_summary() const override { return {"var_ratio", 0.5}; }

  std::vector<DetectorSpec> detectors() const override {
    // What a practitioner sees of generation t: the spread of its samples (the fitted variance is their sample
    // variance up to the estimator's factor, and a ratio of var_ratio's values is a ratio of variances: the truth's
    // scale cancels), the negative log-likelihood of a fixed real validation set, and the model's entropy.
    return {{"diversity", "var_ratio", true, 1.0, -1.0, "ln (variance drop)"},
            {"canary", "heldout_nll", false, 1.0, 1.0, "nats (validation NLL rise)"},
            // The Gaussian's entropy is (1/2) ln det Sigma + const, and a ratio of det_ratio's values is a ratio of
            // determinants.
            {"entropy", "det_ratio", true, 0.5, -1.0, "nats (entropy drop)"}};
  }

  double point_bytes(const PointConfig& c) const override {
    const double d = c.settings<GaussianSettings>().dim, chains = static_cast<double>(c.chains);
    double per_chain = 3 * d * d + 2 * d            // mu, cov, chol, pooled mean and M2
                       + 2 * d + 2 * d * d + 1 + 2  // z-sums, degenerate flag, verifier counts
                       + 4                          // the pool's weight and composition (filters)
                       + kernels::gaussian_metric_rows(c.settings<GaussianSettings>().sample_based);
    if (c.regime == kernels::Regime::kAccumulateSubsample) per_chain += (c.generations + 1.0) * (d + d * d + 1);
    // data.dedup's table and kept points: per chain, an upper bound on both backends (the cpu keeps one per thread,
    // the cuda backend one per chain of a slice of at most 1 GiB of them).
    if (c.dedup) per_chain += kernels::dedup_table_size(c.samples) + c.samples * d;
    // The sample-based metrics: the held-out side (points and radii), and a model sample with its radii per thread
    // (cuda: per chain of a slice of at most the scratch budget).
    const auto& g = c.settings<GaussianSettings>();
    const double fixed =
        g.sample_based ? (g.heldout + omp_get_max_threads() * static_cast<double>(c.samples)) * (d + 1.0) : 0.0;
    return 8.0 * (per_chain * chains + fixed);
  }

  BackendSupport support(const std::string&) const override {
    // Both backends run every data option.
    return {true,
            {DataOption::kEstimatorWeight, DataOption::kVerifier, DataOption::kTailUpsample, DataOption::kAgeDecay,
             DataOption::kDedup, DataOption::kDedupGrid}};
  }

  std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int threads,
                                      ChainBlock block) const override {
    return std::make_unique<GaussianRun>(c, backend, threads, block);
  }

 private:
  const KeySpec& key(const std::string& path) const { return key_of(keys(), path); }
};

}  // namespace

std::unique_ptr<kernels::GaussianBackend> make_gaussian_backend(const std::string& backend,
                                                                const kernels::GaussianBatchSpec& spec) {
  return make_backend(backend, spec, &kernels::make_gaussian_cpu, OURO_CUDA_FACTORY(kernels::make_gaussian_cuda));
}

const Family& gaussian_family() {
  static const GaussianFamily f;
  return f;
}

}  // namespace ouro

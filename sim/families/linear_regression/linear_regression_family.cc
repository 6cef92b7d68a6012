// The linear regression family's row of the family table: its keys, metrics, theory, memory estimate and the
// backends of kernels/linear_regression/linear_regression_backend.h.
#include "sim/families/linear_regression/linear_regression_family.h"

#include <algorithm>
#include <cmath>
#include <iterator>

// GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code for the eigen-solver of
// check_conditioning (a false positive in the library's intrinsics, silenced where they are included).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Dense>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#include <fmt/format.h>

#include "kernels/core/linalg.h"
#include "kernels/core/quadform.h"
#include "sim/parallel/backend.h"

namespace ouro {
namespace {

using kernels::RegressionMetric;

constexpr MetricSpec kMetrics[] = {
    {kernels::kTestError, "test_error",
     "(w_t - w0)' Sigma_x (w_t - w0): the excess squared error on fresh inputs over the truth's, exact", Direction::kUp,
     false,
     "generations 0 and 1; ols without real data or age decay or filter, data.samples > d + 1: replace (either noise, "
     "either design) and accumulate (noise fixed, design fixed)"},
    {kernels::kWeightErr, "weight_err", "||w_t - w0||^2", Direction::kUp, false, "as test_error"},
    {kernels::kNormRatio, "norm_ratio", "||w_t||^2 / ||w0||^2", Direction::kNone, true, "as test_error"},
    {kernels::kNoiseRatio, "noise_ratio",
     "s_t^2 / sigma0^2, s_t^2 = RSS / N the fit's residual variance on its training set of N points (written under "
     "either model.noise)",
     Direction::kDown, true,
     "generations 0 and 1; ols without real data or age decay or filter, data.samples > d + 1: replace (either "
     "noise, either design)"},
    {kernels::kRegressionSyntheticShare, "synthetic_share", "fraction of the training set that is synthetic",
     Direction::kNone, false,
     "every regime without a filter (under accumulate_subsample its expectation, without age decay)"},
    {kernels::kRegressionDataAge, "data_age",
     "mean over the training set of (generation fitted - generation the point was added)", Direction::kNone, false,
     "every regime without a filter (under accumulate_subsample its expectation, without age decay)"},
    {kernels::kRegressionDrawsPerKept, "draws_per_kept",
     "synthetic candidates drawn per synthetic point kept under data.verifier", Direction::kNone, false,
     "generations 0 and 1", false, "with data.verifier"},
};
static_assert(metrics_in_enum_order(kMetrics) && std::size(kMetrics) == kernels::kNumRegressionMetrics,
              "the linear regression metrics' names follow kernels::RegressionMetric");

std::vector<KeySpec> make_keys() {
  return {
      choice_key("model.estimator", {"ols", "ridge"}, "ols",
                 "ordinary least squares (the minimum-norm solution when under-determined), or ridge"),
      number_key("model.ridge", "a number in [0, 1e100]", 0.0, 1e100, "0",
                 "lambda of ridge: the fit minimises ||X w - y||^2 + lambda ||w||^2 (the sum of squares, not its mean: "
                 "lambda is not scaled by the training set's size)"),
      choice_key("model.noise", {"fixed", "fitted"}, "fixed",
                 "the noise a fitted model labels with: sigma0 always, or its residual standard deviation sqrt(RSS/N)"),
      shaped_key("truth.weights", KeyType::kList,
                 fmt::format("a list of d numbers (1 <= d <= {}), or {{dim: d, norm: r}}", kMaxRegressionDim), "",
                 "w0; {dim: d, norm: r} is r (1, 1, ..., 1) / sqrt(d) (r: 1 when not given); entries within 1e50, norm "
                 "at least "
                 "1e-50"),
      shaped_key(
          "truth.design_cov", KeyType::kMatrix,
          "a d x d symmetric positive definite matrix (variances in [1e-50, 1e50], condition number at most 1e12), or "
          "{isotropic: variance}",
          "{isotropic: 1.0}", "Sigma_x: inputs x ~ N(0, Sigma_x)"),
      number_key("truth.noise_std", "a number in [1e-50, 1e50]", 1e-50, 1e50, "1",
                 "sigma0: real labels y = x.w0 + sigma0 eps"),
      choice_key("data.design", {"fresh", "fixed"}, "fresh",
                 "new inputs every generation, or generation 1's inputs relabelled by every later generation"),
  };
}

// truth.weights: a list of d numbers, or {dim: d, norm: r}.
std::vector<double> read_weights(const ConfigReader& r) {
  const std::string shape =
      fmt::format("a list of d numbers (1 <= d <= {}), or {{dim: d, norm: r}}", kMaxRegressionDim);
  if (!r.given("truth.weights")) throw ConfigError("truth.weights", "missing; expected " + shape);
  const YAML::Node n = r.node("truth.weights");
  std::vector<double> w;
  if (n.IsMap()) {
    for (const auto& kv : n) {
      const std::string k = kv.first.Scalar();
      if (k != "dim" && k != "norm")
        throw ConfigError("truth.weights." + k, "unknown key (truth.weights takes {dim: d, norm: r})");
    }
    if (!n["dim"]) throw ConfigError("truth.weights.dim", "missing; expected an integer in [1, 256]");
    const double dim = as_number(n["dim"], "truth.weights.dim", "an integer in [1, 256]");
    if (!(dim >= 1 && dim <= kMaxRegressionDim && dim == std::floor(dim)))
      throw ConfigError("truth.weights.dim", fmt::format("expected an integer in [1, {}], got {}", kMaxRegressionDim,
                                                         scalar_text(n["dim"])));
    const double norm = n["norm"] ? as_number(n["norm"], "truth.weights.norm", "a number > 0") : 1.0;
    if (!(norm >= 1e-50 && norm <= 1e50))
      throw ConfigError("truth.weights.norm", fmt::format("expected a number in [1e-50, 1e50], got {}", norm));
    const int d = static_cast<int>(dim);
    w.assign(d, norm / std::sqrt(static_cast<double>(d)));
  } else {
    if (!n.IsSequence()) throw ConfigError("truth.weights", "expected " + shape + ", got " + scalar_text(n));
    w = read_numbers(n, "truth.weights");
    if (w.empty() || static_cast<int>(w.size()) > kMaxRegressionDim)
      throw ConfigError("truth.weights", fmt::format("expected 1 to {} numbers, got {}", kMaxRegressionDim, w.size()));
    double norm2 = 0.0;
    for (double x : w) {
      if (!(std::abs(x) <= 1e50)) throw ConfigError("truth.weights", fmt::format("{} is outside [-1e50, 1e50]", x));
      norm2 += x * x;
    }
    if (!(norm2 >= 1e-100))
      throw ConfigError("truth.weights", fmt::format("has norm {} (at least 1e-50 is needed: norm_ratio is a ratio to "
                                                     "||w0||^2)",
                                                     std::sqrt(norm2)));
  }
  return w;
}

// truth.design_cov: {isotropic: v} or a d x d symmetric positive definite matrix.
std::vector<double> read_design_cov(const ConfigReader& r, int d, bool& diagonal) {
  const std::string expected = fmt::format(
      "a {0} x {0} symmetric positive definite matrix (d = {0}, the length of "
      "truth.weights), or {{isotropic: variance}}",
      d);
  std::vector<double> m(static_cast<std::size_t>(d) * d, 0.0);
  diagonal = true;
  if (!r.given("truth.design_cov")) {
    for (int i = 0; i < d; ++i) m[i * d + i] = 1.0;
    return m;
  }
  const YAML::Node n = r.node("truth.design_cov");
  if (n.IsMap()) {
    for (const auto& kv : n)
      if (kv.first.Scalar() != "isotropic")
        throw ConfigError("truth.design_cov." + kv.first.Scalar(), "unknown key (expected " + expected + ")");
    if (!n["isotropic"]) throw ConfigError("truth.design_cov.isotropic", "missing; expected a variance > 0");
    const double v = as_number(n["isotropic"], "truth.design_cov.isotropic", "a variance > 0");
    if (!(v >= 1e-50 && v <= 1e50))
      throw ConfigError("truth.design_cov.isotropic", fmt::format("expected a variance in [1e-50, 1e50], got {}", v));
    for (int i = 0; i < d; ++i) m[i * d + i] = v;
    return m;
  }
  if (!n.IsSequence() || static_cast<int>(n.size()) != d)
    throw ConfigError("truth.design_cov", fmt::format("expected {}, got {}", expected, scalar_text(n)));
  for (int i = 0; i < d; ++i) {
    const auto row = read_numbers(n[i], fmt::format("truth.design_cov[{}]", i));
    if (static_cast<int>(row.size()) != d)
      throw ConfigError(fmt::format("truth.design_cov[{}]", i),
                        fmt::format("expected {} numbers (d, the length of truth.weights), got {}", d, row.size()));
    for (int j = 0; j < d; ++j) m[i * d + j] = row[j];
  }
  for (int i = 0; i < d; ++i) {
    const double v = m[i * d + i];
    if (!(v >= 1e-50 && v <= 1e50))
      throw ConfigError("truth.design_cov", fmt::format("variance {} in dimension {} is outside [1e-50, 1e50]", v, i));
    for (int j = 0; j < i; ++j) {
      const double a = m[i * d + j], b = m[j * d + i];
      if (std::abs(a - b) > 1e-12 * std::max(std::abs(a), std::abs(b)))
        throw ConfigError("truth.design_cov",
                          fmt::format("not symmetric: [{0}][{1}] = {2} but [{1}][{0}] = {3}", i, j, a, b));
      if (a != 0.0) diagonal = false;
    }
  }
  std::vector<double> l(m.size());
  if (!kernels::cholesky(d, m.data(), l.data())) throw ConfigError("truth.design_cov", "not positive definite");
  return m;
}

// tr(A^{-1}) of a symmetric positive definite d x d matrix, column by column of A^{-1}.
double trace_inverse(int d, const std::vector<double>& a) {
  std::vector<double> u(static_cast<std::size_t>(d) * d), col(d);
  kernels::cholesky_upper_relative(d, a.data(), u.data(), 0.0);  // (validated positive definite)
  double trace = 0.0;
  for (int j = 0; j < d; ++j) {
    std::fill(col.begin(), col.end(), 0.0);
    col[j] = 1.0;
    kernels::cholesky_upper_solve(d, u.data(), col.data());
    trace += col[j];
  }
  return trace;
}

// Scales whose results double precision cannot carry are refused: a design whose least-squares fits lose their
// digits to rounding (condition number above 1e12: at 2e15 the fits measurably left their closed forms, at 2e14
// they held), and weight errors (sigma0^2 tr(Sigma_x^{-1}) per generation, and that over ||w0||^2 in norm_ratio)
// so large that the aggregates' sums of squares would overflow.
void check_conditioning(const RegressionSettings& g) {
  const int d = g.dim();
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> cov(
      g.design_cov.data(), d, d);
  const Eigen::VectorXd ev = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(cov, Eigen::EigenvaluesOnly).eigenvalues();
  const double cond = ev.maxCoeff() / ev.minCoeff();
  if (!(cond <= 1e12))
    throw ConfigError("truth.design_cov",
                      fmt::format("has condition number {:.3g} (largest over smallest eigenvalue); above 1e12 the "
                                  "least-squares fits lose their digits to rounding",
                                  cond));
  double norm2 = 0.0;
  for (double w : g.weights) norm2 += w * w;
  const double step = g.noise_std * g.noise_std * g.design_trace_inverse;  // E weight_err after one generation
  if (!(step <= 1e100 && step / norm2 <= 1e100))
    throw ConfigError("truth.noise_std",
                      fmt::format("{} is too large for these inputs and weights: a generation's weight error, "
                                  "sigma0^2 tr(design_cov^-1) = {:.3g}, and its ratio to ||w0||^2 must stay below "
                                  "1e100 for the aggregates' sums of squares",
                                  g.noise_std, step));
}

class RegressionRun final : public FamilyRun {
 public:
  RegressionRun(const PointConfig& c, const std::string& backend, int threads, ChainBlock block)
      : c_(c), g_(c_.settings<RegressionSettings>()) {
    const kernels::RegressionBatchSpec spec{make_regression_truth(c),
                                            c.regime,
                                            c.generations,
                                            static_cast<std::uint32_t>(block.first),
                                            block.count,
                                            threads};
    backend_ = make_regression_backend(backend, spec);
    // The truth's standardised label residual z is N(0, 1): z^2 is chi-square with one degree of freedom, whose
    // (1 - q)-quantile bounds the plausible labels (the verifier) and starts the tail (upsampling).
    if (c.verifier) {
      filter_.on = 1;
      filter_.keep_plausible = kernels::keep_threshold(c.keep_plausible);
      filter_.keep_implausible = kernels::keep_threshold(c.keep_implausible);
      filter_.z2_max = kernels::chi2_quantile(1.0 - c.verifier_quantile, 1);
    }
    filter_.max_draw_factor = c.max_draw_factor;
    if (c.tail_upsample) {
      filter_.upsample = 1;
      filter_.factor = c.tail_factor;
      filter_.z2_min = kernels::chi2_quantile(1.0 - c.tail_quantile, 1);
    }
  }
  void start(double* metrics) override { backend_->start(metrics); }
  void advance(int generation, double* metrics) override {
    const kernels::RegressionStep step{c_.seed,   g_.dim(),       c_.samples, c_.real_count, generation,
                                       c_.regime, c_.real_source, g_.design,  g_.estimator,  g_.ridge,
                                       g_.noise,  c_.age_decay,   filter_};
    backend_->advance(step, metrics);
  }
  std::vector<kernels::WorkerRange> workers() const override { return backend_->workers(); }
  void state(kernels::StateArchive& ar) override { backend_->state(ar); }

 private:
  PointConfig c_;
  const RegressionSettings& g_;
  kernels::RegressionFilter filter_;
  std::unique_ptr<kernels::RegressionBackend> backend_;
};

class RegressionFamily final : public Family {
 public:
  const char* name() const override { return "linear_regression"; }
  FamilyKind kind() const override { return FamilyKind::kLabelled; }
  const char* description() const override {
    return "linear regression y = x.w + s eps with Gaussian inputs in d <= 256 dimensions, refitted by ordinary least "
           "squares or ridge to the previous generation's labels";
  }
  const std::vector<KeySpec>& keys() const override {
    static const std::vector<KeySpec> keys = make_keys();
    return keys;
  }

  std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig&) const override {
    auto g = std::make_shared<RegressionSettings>();
    g->estimator = r.choice(key("model.estimator")) == "ridge" ? kernels::RegressionEstimator::kRidge
                                                               : kernels::RegressionEstimator::kOls;
    g->ridge = r.number(key("model.ridge"));
    if (g->estimator == kernels::RegressionEstimator::kOls && g->ridge != 0.0)
      throw ConfigError(
          "model.ridge",
          fmt::format("is {} but model.estimator is ols (set model.estimator: ridge for a penalty)", g->ridge));
    if (g->estimator == kernels::RegressionEstimator::kRidge && !(g->ridge > 0.0))
      throw ConfigError("model.ridge", "must be > 0 with model.estimator ridge (ridge with lambda 0 is ols)");
    g->noise =
        r.choice(key("model.noise")) == "fitted" ? kernels::RegressionNoise::kFitted : kernels::RegressionNoise::kFixed;
    g->weights = read_weights(r);
    g->design_cov = read_design_cov(r, g->dim(), g->design_diagonal);
    g->noise_std = r.number(key("truth.noise_std"));
    g->design_trace_inverse = trace_inverse(g->dim(), g->design_cov);
    check_conditioning(*g);
    g->design = r.choice(key("data.design")) == "fixed" ? kernels::Design::kFixed : kernels::Design::kFresh;
    return g;
  }

  int min_samples(const PointConfig&) const override { return 1; }

  std::vector<MetricSpec> metrics() const override { return {std::begin(kMetrics), std::end(kMetrics)}; }

  std::optional<double> theory(const PointConfig& c, int metric, int generation) const override {
    return regression_theory(c, metric, generation);
  }

  // 1.0 is the excess risk equal to the noise variance at sigma0 = 1; a config of another noise scale sets
  // summary.threshold.
  SummarySettings default_summary() const override { return {"test_error", 1.0}; }

  std::vector<DetectorSpec> detectors() const override {
    // What a practitioner sees of generation t: the residual variance of its fit on its own training set (a ratio of
    // noise_ratio's values is a ratio of residual variances: sigma0 cancels), and its error on fresh real inputs
    // (test_error, the excess over sigma0^2 of the mean squared error on a large real validation set).
    return {{"diversity", "noise_ratio", true, 1.0, -1.0, "ln (residual variance drop)"},
            {"canary", "test_error", false, 1.0, 1.0, "excess squared error (validation error rise)"}};
  }

  double point_bytes(const PointConfig& c) const override {
    const double d = c.settings<RegressionSettings>().dim(), chains = static_cast<double>(c.chains);
    double per_chain = d + 3 + kernels::kNumRegressionMetrics;  // e, s_model, s_fit, ok, the metric block
    if (c.regime == kernels::Regime::kAccumulate) per_chain += d * d + d + 2 + 3;  // (+ a filter's composition)
    if (c.regime == kernels::Regime::kAccumulateSubsample) per_chain += (c.generations + 1.0) * (d + 1);
    return 8.0 * per_chain * chains;
  }

  BackendSupport support(const std::string& backend) const override {
    // Dedup on a grid over (x, y) is not built for this family; the filters that judge a point by its label's
    // likelihood under the truth (data.verifier, data.tail_upsample) run on the cpu.
    if (backend == "cpu") return {true, {DataOption::kAgeDecay, DataOption::kVerifier, DataOption::kTailUpsample}};
    return {backend == "cuda", {DataOption::kAgeDecay}};
  }

  void check(const PointConfig& c) const override {
    for (const auto& [on, key] : {std::pair<bool, const char*>{c.verifier, "data.verifier"},
                                  std::pair<bool, const char*>{c.tail_upsample, "data.tail_upsample"}})
      if (on && c.regime == kernels::Regime::kAccumulateSubsample)
        throw ConfigError(key, "is built for data.regime replace and accumulate in the linear_regression family");
    if (c.verifier && c.settings<RegressionSettings>().design == kernels::Design::kFixed)
      throw ConfigError("data.verifier",
                        "needs data.design fresh: a fixed design has one input per point, and the verifier's refill "
                        "draws further candidates");
  }

  // The cuda backend has no minimum-norm solve: a point whose training sets can be rank-deficient runs on the cpu
  // only. They are: fewer points than dimensions, or as many (a square design, singular now and then at d = 32),
  // and accumulate_subsample picking the same inputs twice (a fixed design, or a fixed real sample among them).
  std::string backend_gap(const PointConfig& c, const std::string& backend) const override {
    if (backend == "cuda") {
      const auto& g = c.settings<RegressionSettings>();
      if (c.samples <= g.dim()) return "data.samples at or below d (a minimum-norm fit of a rank-deficient system)";
      if (c.regime == kernels::Regime::kAccumulateSubsample &&
          (g.design == kernels::Design::kFixed || (c.real_source == kernels::RealSource::kFixed && c.real_count > 0)))
        return "accumulate_subsample over repeated inputs (a fixed design or fixed real data: minimum-norm fits of "
               "rank-deficient systems)";
    }
    return Family::backend_gap(c, backend);
  }

  std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int threads,
                                      ChainBlock block) const override {
    return std::make_unique<RegressionRun>(c, backend, threads, block);
  }

 private:
  const KeySpec& key(const std::string& path) const { return key_of(keys(), path); }
};

}  // namespace

kernels::RegressionTruthData make_regression_truth(const PointConfig& c) {
  const auto& g = c.settings<RegressionSettings>();
  kernels::RegressionTruthData t;
  t.d = g.dim();
  t.sigma0 = g.noise_std;
  t.w0 = g.weights;
  t.cov = g.design_cov;
  t.chol.assign(t.cov.size(), 0.0);
  kernels::cholesky(t.d, t.cov.data(), t.chol.data());  // validated positive definite by the config
  t.diagonal = g.design_diagonal;
  t.w0_norm2 = 0.0;
  for (double w : t.w0) t.w0_norm2 += w * w;
  return t;
}

std::optional<double> regression_theory(const PointConfig& c, int metric, int t) {
  using namespace kernels;
  const auto& g = c.settings<RegressionSettings>();
  if (t == 0) {
    switch (metric) {
      case kNormRatio:
      case kNoiseRatio:
      case kRegressionDrawsPerKept:
        return 1.0;
      default:
        return 0.0;
    }
  }
  if (metric == kRegressionDrawsPerKept) return t <= 1 ? std::optional<double>(1.0) : std::nullopt;
  // A filter changes every law from generation 2 on (generation 1 has no synthetic points).
  if ((c.verifier || c.tail_upsample) && t >= 2) return std::nullopt;
  if (metric == kRegressionSyntheticShare || metric == kRegressionDataAge) {
    if (c.regime == Regime::kAccumulateSubsample && c.age_decay != 1.0) return std::nullopt;
    const Regime r = c.regime == Regime::kAccumulateSubsample ? Regime::kAccumulate : c.regime;
    double share, age;
    regime_composition(r, c.samples, c.real_count, t, c.age_decay, share, age);
    return metric == kRegressionSyntheticShare ? share : age;
  }
  // The closed forms (docs/families/linear_regression.md): OLS, no real data after generation 1, no age decay, and
  // T = data.samples > d + 1 (so that E (X'X)^{-1} = Sigma_x^{-1} / (T - d - 1), the inverse Wishart mean).
  const int d = g.dim();
  const double n = c.samples;
  // (Generation 1 fits n real points in every regime, whatever the later generations' real data and age decay.)
  if (g.estimator != RegressionEstimator::kOls || !(n > d + 1.0)) return std::nullopt;
  if (t > 1 && (c.real_count != 0 || c.age_decay != 1.0)) return std::nullopt;
  const double sigma2 = g.noise_std * g.noise_std;
  // tr(M Sigma_x^{-1}) for M = Sigma_x (test_error: d) and M = I (weight_err: tr Sigma_x^{-1}).
  const double tr_inv = g.design_trace_inverse;
  double w0_norm2 = 0.0;
  for (double w : g.weights) w0_norm2 += w * w;
  // Sum over generations of the expected labelling variance, s_{k-1}^2 / sigma0^2, each generation's update adding
  // s_{k-1}^2 tr(M (X'X)^{-1}) in expectation.
  double steps;
  if (t == 1 || c.regime == Regime::kReplace) {  // (generation 1 is the same fit to n real points in every regime)
    const double q = (n - d) / n;
    steps = g.noise == RegressionNoise::kFixed ? t : (1.0 - std::pow(q, t)) / (1.0 - q);
    if (metric == kNoiseRatio) return g.noise == RegressionNoise::kFixed ? q : std::pow(q, t);
  } else if (c.regime == Regime::kAccumulate && g.noise == RegressionNoise::kFixed && g.design == Design::kFixed) {
    // e_t = sum_k a_k / k with independent zero-mean updates a_k (Gerstgrasser et al. 2024).
    steps = 0.0;
    for (int k = 1; k <= t; ++k) steps += 1.0 / (static_cast<double>(k) * k);
    if (metric == kNoiseRatio) return std::nullopt;
  } else {
    return std::nullopt;
  }
  const double per_step = sigma2 / (n - d - 1.0);
  switch (metric) {
    case kTestError:
      return per_step * d * steps;
    case kWeightErr:
      return per_step * tr_inv * steps;
    case kNormRatio:
      return 1.0 + per_step * tr_inv * steps / w0_norm2;
    default:
      return std::nullopt;
  }
}

std::unique_ptr<kernels::RegressionBackend> make_regression_backend(const std::string& backend,
                                                                    const kernels::RegressionBatchSpec& spec) {
  return make_backend(backend, spec, &kernels::make_regression_cpu, OURO_CUDA_FACTORY(kernels::make_regression_cuda));
}

const Family& linear_regression_family() {
  static const RegressionFamily f;
  return f;
}

}  // namespace ouro

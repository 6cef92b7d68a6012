// Config loading: every refusal names the key's path and what was expected.
#include <gtest/gtest.h>

#include <string>

#include <fmt/format.h>

#include "sim/engine/config.h"
#include "sim/families/gaussian/gaussian_family.h"
#include "sim/families/gmm/gmm_family.h"
#include "tests/sim/engine/base_config.h"

namespace {

using ouro::ConfigError;
using ouro::load_experiment_text;
using ouro::test::kBase;

// Expects a ConfigError whose path is `path` and whose message contains `text`.
void expect_refused(const std::string& yaml, const std::vector<std::string>& sets, const std::string& path,
                    const std::string& text) {
  try {
    load_experiment_text(yaml, sets);
    ADD_FAILURE() << "accepted; expected refusal at " << path;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path(), path) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(Config, BaseConfigParses) {
  const auto ex = load_experiment_text(kBase, {});
  ASSERT_EQ(ex.points.size(), 1u);
  const auto& c = ex.points[0].config;
  EXPECT_EQ(c.seed, 3u);
  EXPECT_EQ(c.chains, 10);
  EXPECT_EQ(c.samples, 20);
  EXPECT_EQ(c.real_count, 0);
}

TEST(Config, TypoGetsNearestKey) {
  expect_refused(std::string(kBase) + "data2: 1\n", {}, "data2", "did you mean data?");
  expect_refused(R"(
chains: 10
generations: 5
model: {family: gaussian}
truth: {isotropic: 1.0}
data: {sampels: 20}
)",
                 {}, "data.sampels", "did you mean data.samples?");
}

// reproduction: a paper's claims (experiments/papers/): any mapping is carried
// along untouched; it is never swept or set from the command line.
TEST(Config, ReproductionSectionIsCarriedButNeverSweptOrSet) {
  const std::string with = std::string(kBase) + "reproduction: {paper: P, claims: [{source: S, metric: m}]}\n";
  const auto ex = load_experiment_text(with, {});
  ASSERT_EQ(ex.points.size(), 1u);
  EXPECT_EQ(ex.resolved["reproduction"]["paper"].as<std::string>(), "P");
  expect_refused(std::string(kBase) + "reproduction: [1, 2]\n", {}, "reproduction", "expected a mapping");
  expect_refused(with + "sweep: {reproduction: [a, b]}\n", {}, "sweep.reproduction", "cannot be swept");
  expect_refused(with, {"reproduction=x"}, "reproduction", "cannot be set");
}

TEST(Config, OutOfRangeValuesNameTheKey) {
  expect_refused(kBase, {"data.samples=-5"}, "data.samples", "expected an integer in [2,");
  expect_refused(kBase, {"chains=-1"}, "chains", "expected an integer in [1,");
  expect_refused(kBase, {"data.real_fraction=1.5"}, "data.real_fraction", "[0, 1]");
  expect_refused(kBase, {"data.regime=replce"}, "data.regime", "did you mean replace?");
  expect_refused(kBase, {"model.estimator=biased"}, "model.estimator", "one of mle unbiased");
  expect_refused(kBase, {"generations=ten"}, "generations", "expected an integer");
  expect_refused(kBase, {"seed=2.5"}, "seed", "expected an integer");
}

TEST(Config, CovarianceMustBeSymmetricPositiveDefinite) {
  expect_refused(kBase, {"model.dim=2", "truth.mean=[0, 0]", "truth.cov=[[1, 0.5], [0.4, 1]]"}, "truth.cov",
                 "not symmetric");
  expect_refused(kBase, {"model.dim=2", "truth.mean=[0, 0]", "truth.cov=[[1, 2], [2, 1]]"}, "truth.cov",
                 "not positive definite");
  expect_refused(kBase, {"model.dim=2", "truth.mean=[0, 0]"}, "truth.cov", "2 x 2");
  expect_refused(kBase, {"model.dim=2", "truth.cov=[[1, 0], [0, 1]]"}, "truth.mean", "expected 2 numbers");
}

TEST(Config, SamplesMustExceedTheDimension) {
  // With n <= d the sample covariance is singular.
  expect_refused(kBase, {"model.dim=3", "truth={isotropic: 1.0}", "data.samples=3"}, "data.samples",
                 "an integer in [4,");
}

TEST(Config, IsotropicTruthExpandsToTheModelDimension) {
  const auto ex = load_experiment_text(kBase, {"model.dim=3", "truth={isotropic: 2.0}"});
  const auto& c = ex.points[0].config.settings<ouro::GaussianSettings>();
  ASSERT_EQ(c.truth_cov.size(), 9u);
  EXPECT_EQ(c.truth_cov[0], 2.0);
  EXPECT_EQ(c.truth_cov[1], 0.0);
  EXPECT_EQ(c.truth_mean, std::vector<double>(3, 0.0));
}

TEST(Config, SweepIsACrossProductFirstAxisSlowest) {
  const auto ex = load_experiment_text(std::string(kBase) + R"(
sweep:
  data.samples: [10, 100]
  data.regime: [replace, accumulate, accumulate_subsample]
)",
                                       {});
  ASSERT_EQ(ex.axes.size(), 2u);
  ASSERT_EQ(ex.points.size(), 6u);
  EXPECT_EQ(ex.points[0].labels, (std::vector<std::string>{"10", "replace"}));
  EXPECT_EQ(ex.points[1].labels, (std::vector<std::string>{"10", "accumulate"}));
  EXPECT_EQ(ex.points[5].labels, (std::vector<std::string>{"100", "accumulate_subsample"}));
  EXPECT_EQ(ex.points[5].config.samples, 100);
  EXPECT_EQ(ex.points[5].config.regime, ouro::kernels::Regime::kAccumulateSubsample);
}

TEST(Config, SetOnASweptKeyFixesItAndRemovesTheAxis) {
  const auto ex = load_experiment_text(
      std::string(kBase) + "sweep: {data.samples: [10, 100], data.real_fraction: [0, 0.5]}\n", {"data.samples=30"});
  ASSERT_EQ(ex.axes.size(), 1u);
  EXPECT_EQ(ex.axes[0].path, "data.real_fraction");
  ASSERT_EQ(ex.points.size(), 2u);
  EXPECT_EQ(ex.points[1].config.samples, 30);
  EXPECT_EQ(ex.points[1].config.real_count, 15);
}

TEST(Config, BadSweepValueNamesThePoint) {
  expect_refused(std::string(kBase) + "sweep: {data.samples: [10, -1]}\n", {}, "data.samples",
                 "at sweep point data.samples=-1");
}

TEST(Config, UnknownSweepKeyAndBadSet) {
  expect_refused(std::string(kBase) + "sweep: {data.sample: [10]}\n", {}, "sweep.data.sample",
                 "did you mean data.samples?");
  expect_refused(kBase, {"nonsense"}, "--set nonsense", "key.path=value");
  expect_refused(kBase, {"data.smaples=3"}, "data.smaples", "did you mean data.samples?");
}

TEST(Config, RealCountRoundsHalfAwayFromZero) {
  EXPECT_EQ(load_experiment_text(kBase, {"data.samples=10", "data.real_fraction=0.25"}).points[0].config.real_count, 3);
  EXPECT_EQ(load_experiment_text(kBase, {"data.samples=10", "data.real_fraction=0.24"}).points[0].config.real_count, 2);
}

TEST(Config, MissingRequiredKeys) {
  expect_refused("generations: 3\nmodel: {family: gaussian}\ntruth: {isotropic: 1}\ndata: {samples: 5}\n", {}, "chains",
                 "missing");
  expect_refused("chains: 3\ngenerations: 3\nmodel: {family: gaussian}\ndata: {samples: 5}\n", {}, "truth", "missing");
}

const char* kGmm = R"(
seed: 3
chains: 10
generations: 5
model: {family: gmm, components: 2, dim: 2}
truth:
  weights: [0.7, 0.3]
  means: [[0, 0], [3, 3]]
  covs: [[1, 2], [[1, 0.2], [0.2, 0.5]]]
data: {samples: 50}
)";

TEST(Config, GmmParsesWithDefaults) {
  const auto ex = load_experiment_text(kGmm, {});
  EXPECT_STREQ(ex.points.front().config.family->name(), "gmm");
  const auto& c = ex.points.front().config.settings<ouro::GmmSettings>();
  EXPECT_EQ(c.components, 2);
  EXPECT_EQ(c.em.max_iter, 100);
  EXPECT_EQ(c.em.tol, 1e-3);
  EXPECT_EQ(c.em.reg_covar, 1e-6);
  EXPECT_EQ(c.em.restarts, 1);
  EXPECT_FALSE(c.em.diag);
  EXPECT_EQ(c.heldout, 1000);
  EXPECT_EQ(c.dead_weight, 1e-3);
  // A list of variances is a diagonal covariance.
  EXPECT_EQ(c.truth_covs, (std::vector<double>{1, 0, 0, 2, 1, 0.2, 0.2, 0.5}));
}

TEST(Config, GmmRefusalsNameTheKey) {
  expect_refused(kGmm, {"model.components=0"}, "model.components", "expected an integer in [1, 16]");
  expect_refused(kGmm, {"model.components=17"}, "model.components", "expected an integer in [1, 16]");
  expect_refused(kGmm, {"model.dim=9"}, "model.dim", "expected an integer in [1, 8]");
  expect_refused(kGmm, {"model.covariance=spherical"}, "model.covariance", "one of full diag");
  expect_refused(kGmm, {"model.em.init=random"}, "model.em.init", "one of warm kmeans++");
  expect_refused(kGmm, {"model.em.tol=-1"}, "model.em.tol", "tolerance >= 0");
  expect_refused(kGmm, {"model.em.restarts=0"}, "model.em.restarts", "expected an integer in [1,");
  expect_refused(kGmm, {"truth.weights=[0.7, 0.4]"}, "truth.weights", "sum to 1.1");
  expect_refused(kGmm, {"truth.weights=[1.2, -0.2]"}, "truth.weights[1]", "weight > 0");
  expect_refused(kGmm, {"truth.means=[[0, 0]]"}, "truth.means", "expected 2 means");
  expect_refused(kGmm, {"truth.means=[[0, 0], [1]]"}, "truth.means[1]", "expected 2 numbers");
  expect_refused(kGmm, {"truth.covs=[[1, 2], [[1, 2], [2, 1]]]"}, "truth.covs[1]", "not positive definite");
  expect_refused(kGmm, {"truth.covs=[[1, 2], [0, 1]]"}, "truth.covs[1]", "not positive definite");
  expect_refused(kGmm, {"truth.covs=[[1, 2], [1e-200, 1]]"}, "truth.covs[1]", "outside [1e-100, 1e100]");
  expect_refused(kGmm, {"metrics.dead_weight=2"}, "metrics.dead_weight", "weight in [0, 1]");
  expect_refused(kGmm, {"metrics.heldout=0"}, "metrics.heldout", "expected an integer in [1,");
  // Truths that cannot be measured in double precision, and a ridge that is
  // not small against the truth.
  expect_refused(kGmm, {"truth.weights=[1.0e-300, 1]", "truth.means=[[50, 50], [0, 0]]"}, "truth.weights",
                 "rare_mode_mass would be undefined");
  expect_refused(kGmm, {"model.em.reg_covar=0.1"}, "model.em.reg_covar", "not small against");
  expect_refused(
      kGmm,
      {"model.dim=8", "model.em.reg_covar=0", "truth.means=[[0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]]",
       "truth.covs=[[1e-80, 1e-80, 1e-80, 1e-80, 1e-80, 1e-80, 1e-80, 1e-80], [1, 1, 1, 1, 1, 1, 1, 1]]"},
      "truth.covs", "overflows");
  // Keys of the other family are refused, not ignored.
  expect_refused(kGmm, {"model.estimator=mle"}, "model.estimator",
                 "applies to model.family gaussian or linear_regression only");
  expect_refused(kGmm, {"truth.mean=[0, 0]"}, "truth.mean", "applies to model.family gaussian or kde only");
  expect_refused(kBase, {"model.components=2"}, "model.components", "applies to model.family gmm only");
  expect_refused(kBase, {"metrics.dead_weight=0.01"}, "metrics.dead_weight", "applies to model.family gmm only");
}

TEST(Config, PlotSectionNamesExistingMetrics) {
  EXPECT_NO_THROW(load_experiment_text(kGmm, {"plot.metrics=[rare_mode_mass, component_std_2]", "plot.center=median"}));
  expect_refused(kGmm, {"plot.metrics=[rare_mode_mas]"}, "plot.metrics[0]", "did you mean rare_mode_mass?");
  expect_refused(kGmm, {"plot.metrics=[component_std_3]"}, "plot.metrics[0]", "no metric");
  expect_refused(kGmm, {"plot.center=mode"}, "plot.center", "one of mean median");
  expect_refused(std::string(kGmm) + "sweep: {plot.center: [mean, median]}\n", {}, "sweep.plot.center",
                 "cannot be swept");
}

const char* kNgram = R"(
seed: 3
chains: 2
generations: 2
model: {family: ngram, order: 1}
truth: {zipf: {vocab: 100, exponent: 1.1}}
data: {samples: 50}
)";

TEST(Config, NgramRefusalsNameTheKey) {
  EXPECT_NO_THROW(load_experiment_text(kNgram, {}));
  expect_refused(kNgram, {"model.order=0"}, "model.order", "expected an integer in [1, 3]");
  expect_refused(kNgram, {"model.order=4"}, "model.order", "expected an integer in [1, 3]");
  expect_refused(kNgram, {"sampler.top_p=0"}, "sampler.top_p", "(0, 1]");
  expect_refused(kNgram, {"sampler.top_p=1.5"}, "sampler.top_p", "(0, 1]");
  expect_refused(kNgram, {"model.smoothing=laplace"}, "model.smoothing", "one of mle add_k kneser_ney");
  expect_refused(kNgram, {"truth={corpus: /nonexistent/text.txt}"}, "truth.corpus", "cannot read corpus file");
  expect_refused(kNgram, {"truth={corpus: /dev/null}"}, "truth.corpus", "not a regular file");
  expect_refused(kNgram, {"truth={corpus: /tmp}"}, "truth.corpus", "not a regular file");
  expect_refused(kNgram, {"model.k=2"}, "model.k", "applies to smoothing add_k only");
  expect_refused(kNgram, {"metrics.tail_count=3"}, "metrics.tail_count", "applies to a corpus truth only");
  expect_refused(kNgram, {"truth={corpus: kjv}", "metrics.heldout=50"}, "metrics.heldout",
                 "applies to a zipf truth only");
  expect_refused(kNgram, {"truth={corpus: kjv}", "metrics.tail_count=0"}, "metrics.tail_count",
                 "expected an integer in [1,");
  expect_refused(kNgram, {"truth={corpus: kjv, zipf: {vocab: 5, exponent: 1}}"}, "truth", "exactly one of");
  expect_refused(kNgram, {"model.order=3"}, "model.order", "a zipf truth is of order 1 or 2");
  expect_refused(kNgram, {"model.order=2", "truth.zipf.vocab=6000"}, "truth.zipf.vocab", "at most 5000");
  expect_refused(kNgram, {"model.dim=2"}, "model.dim", "applies to model.family gaussian or gmm only");
  expect_refused(kBase, {"sampler.top_k=5"}, "sampler", "applies to model.family ngram only");
}

}  // namespace

// A sweep's size is bounded before it is multiplied out: five axes of ten
// values (10^5 points) would take the memory of 10^5 validated points, and
// enough axes would wrap the product to 0 points, accepting unchecked values.
TEST(Config, HugeSweepsAreRefusedBeforeExpansion) {
  std::string axes = "sweep:\n";
  for (const char* key : {"seed", "chains", "generations", "data.samples", "data.real_fraction"}) {
    axes += std::string("  ") + key + ": [";
    for (int v = 0; v < 10; ++v) {
      const bool share = std::string(key) == "data.real_fraction";
      axes += (v ? ", " : "") + (share ? "0." + std::to_string(v) : std::to_string(v + 2));
    }
    axes += "]\n";
  }
  expect_refused(std::string(kBase) + axes, {}, "sweep", "at most 10000");
}

// The largest sweep allowed is validated whole, point by point: 100 x 100 values over two keys, and one axis of
// 10^4 values (whose list the validation of each point must not copy), each point heard of by the progress callback.
TEST(Config, LargestSweepIsValidated) {
  std::string samples, fractions, seeds;
  for (int i = 0; i < 100; ++i) {
    samples += (i ? ", " : "") + std::to_string(20 + i);
    fractions += fmt::format("{}{:.2f}", i ? ", " : "", i / 100.0);
  }
  for (int i = 0; i < 10000; ++i) seeds += (i ? ", " : "") + std::to_string(1000 + i);
  std::size_t heard = 0, total = 0;
  const auto ex = load_experiment_text(
      std::string(kBase) + "sweep: {data.samples: [" + samples + "], data.real_fraction: [" + fractions + "]}\n", {},
      [&](std::size_t done, std::size_t all) {
        EXPECT_EQ(done, heard + 1);
        heard = done, total = all;
      });
  ASSERT_EQ(ex.points.size(), 10000u);
  EXPECT_EQ(heard, 10000u);
  EXPECT_EQ(total, 10000u);
  EXPECT_EQ(ex.points[101].labels, (std::vector<std::string>{"21", "0.01"}));
  EXPECT_EQ(ex.points[101].config.samples, 21);
  EXPECT_EQ(ex.points[101].config.real_count, ouro::kernels::real_count(0.01, 21));
  EXPECT_EQ(ex.points[9999].config.samples, 119);
  EXPECT_EQ(ex.points[9999].config.real_fraction, 0.99);
  // A bad value anywhere is still found, and named with its point.
  expect_refused(std::string(kBase) + "sweep: {data.samples: [" + samples + "], data.real_fraction: [" +
                     fractions.substr(0, fractions.rfind(',')) + ", 1.5]}\n",
                 {}, "data.real_fraction", "at sweep point data.samples=20, data.real_fraction=1.5");

  const auto one = load_experiment_text(std::string(kBase) + "sweep: {seed: [" + seeds + "]}\n", {});
  ASSERT_EQ(one.points.size(), 10000u);
  EXPECT_EQ(one.points[0].config.seed, 1000u);
  EXPECT_EQ(one.points[9999].config.seed, 10999u);
  EXPECT_EQ(one.resolved["sweep"]["seed"].size(), 10000u);
}

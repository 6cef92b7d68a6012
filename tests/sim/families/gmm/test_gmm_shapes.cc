// The mixture family on a shape truth (truth.shape, kernels/core/shapes.h): reading and refusing its keys, the
// truth's moments and draws, the metrics it writes, a run's invariance to the thread count, and an oracle for
// generation 1's total variance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/gmm/gmm.h"
#include "sim/families/gmm/gmm_family.h"
#include "sim/io/yaml_reader.h"
#include "tests/support/backend_test.h"
#include "tests/support/cli.h"

namespace {

using namespace ouro;

const std::string kTop = "seed: 3\nchains: 4\ngenerations: 2\n";
const std::string kHead = kTop + "data: {samples: 50}\nmodel: {family: gmm, components: 3}\n";

PointConfig load(const std::string& yaml) { return load_experiment_text(yaml, {}).points.front().config; }

// The key a refused config names ("" when it is accepted).
std::string refused_key(const std::string& yaml) {
  try {
    load_experiment_text(yaml, {});
  } catch (const ConfigError& e) {
    return e.path();
  }
  return "";
}

TEST(GmmShapes, ShapeKeysAreRead) {
  const PointConfig moons = load(kHead + "truth: {shape: moons, noise: 0.1}\n");
  const auto& g = moons.settings<GmmSettings>();
  EXPECT_EQ(g.shape.kind, kernels::ShapeKind::kMoons);
  EXPECT_EQ(g.shape.noise, 0.1);
  EXPECT_EQ(g.dim, 2);  // model.dim from the shape
  const PointConfig circles = load(kHead + "truth: {shape: circles}\n");
  const auto& c = circles.settings<GmmSettings>();
  EXPECT_EQ(c.shape.factor, 0.8);  // scikit-learn's default
  EXPECT_EQ(c.shape.noise, 0.0);
  EXPECT_EQ(load(kHead + "truth: {shape: circles, factor: 0.3}\n").settings<GmmSettings>().shape.factor, 0.3);
  EXPECT_EQ(load(kHead + "truth: {shape: swiss_roll, noise: 0.5}\n").settings<GmmSettings>().shape.kind,
            kernels::ShapeKind::kSwissRoll);
  const PointConfig blobs = load(kHead + "truth: {shape: blobs, centers: [[0, 0, 0], [5, 1, 2]], cluster_std: 0.5}\n");
  const auto& b = blobs.settings<GmmSettings>();
  EXPECT_EQ(b.dim, 3);
  EXPECT_EQ(b.shape.d, 3);
  EXPECT_EQ(b.shape.centers, 2);
  EXPECT_EQ(b.shape.cluster_std, 0.5);
  EXPECT_EQ(b.shape.center[3], 5.0);
  EXPECT_EQ(b.shape.center[5], 2.0);
  // model.dim may repeat the shape's dimension.
  EXPECT_EQ(refused_key(kTop + "data: {samples: 50}\nmodel: {family: gmm, components: 3, dim: 2}\n"
                               "truth: {shape: moons}\n"),
            "");
  // A mixture truth is read as before.
  EXPECT_EQ(load(kHead + "truth: {weights: [1], means: [[0]], covs: [[1]]}\n").settings<GmmSettings>().shape.kind,
            kernels::ShapeKind::kNone);
}

TEST(GmmShapes, EveryRefusalNamesItsKey) {
  const std::string mix = "weights: [1], means: [[0, 0]], covs: [[1, 1]]";
  const std::string dim = kTop + "data: {samples: 50}\nmodel: {family: gmm, components: 3, dim: ";
  std::string many;
  for (int k = 0; k < 17; ++k) many += std::string(k ? ", " : "") + "[" + std::to_string(k) + "]";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {kHead + "truth: {shape: hearts}\n", "truth.shape"},
      {kHead + "truth: {shape: moons, noise: -0.1}\n", "truth.noise"},
      {kHead + "truth: {shape: moons, noise: 1e60}\n", "truth.noise"},
      {kHead + "truth: {shape: blobs}\n", "truth.centers"},
      {kHead + "truth: {shape: blobs, centers: []}\n", "truth.centers"},
      {kHead + "truth: {shape: blobs, centers: [" + many + "]}\n", "truth.centers"},
      {kHead + "truth: {shape: blobs, centers: [[0, 0], [1, 1, 1]]}\n", "truth.centers[1]"},
      {kHead + "truth: {shape: blobs, centers: [[0, 0, 0, 0, 0, 0, 0, 0, 0]]}\n", "truth.centers[0]"},
      {kHead + "truth: {shape: blobs, centers: [[0], [x]]}\n", "truth.centers[1][0]"},
      {kHead + "truth: {shape: blobs, centers: [[0], [1e20]]}\n", "truth.centers[1]"},  // 1e20 sd from 0
      {kHead + "truth: {shape: blobs, centers: [[0]], cluster_std: 0}\n", "truth.cluster_std"},
      {kHead + "truth: {shape: blobs, centers: [[0]], cluster_std: 1e60}\n", "truth.cluster_std"},
      {kHead + "truth: {shape: circles, factor: 1}\n", "truth.factor"},
      {kHead + "truth: {shape: circles, factor: 0}\n", "truth.factor"},
      {kHead + "truth: {shape: moons, factor: 0.5}\n", "truth.factor"},
      {kHead + "truth: {shape: circles, centers: [[0, 0]]}\n", "truth.centers"},
      {kHead + "truth: {shape: moons, cluster_std: 1}\n", "truth.cluster_std"},
      {kHead + "truth: {shape: blobs, centers: [[0]], noise: 0.1}\n", "truth.noise"},
      {kHead + "truth: {shape: moons, weights: [1]}\n", "truth.weights"},
      {kHead + "truth: {shape: moons, means: [[0, 0]]}\n", "truth.means"},
      {kHead + "truth: {shape: moons, covs: [[1, 1]]}\n", "truth.covs"},
      {kHead + "truth: {" + mix + ", noise: 0.1}\n", "truth.noise"},
      {kHead + "truth: {" + mix + ", centers: [[0, 0]]}\n", "truth.centers"},
      {dim + "3}\ntruth: {shape: moons}\n", "model.dim"},
      {dim + "2}\ntruth: {shape: blobs, centers: [[0, 0, 0]]}\n", "model.dim"},
      {kTop + "model: {family: gmm, components: 3}\ntruth: {shape: moons}\n"
              "data: {samples: 50, verifier: {keep_plausible: 1, keep_implausible: 0.5, quantile: 0.1}}\n",
       "data.verifier"},
      {kTop + "model: {family: gmm, components: 3}\ntruth: {shape: moons}\n"
              "data: {samples: 50, tail_upsample: {factor: 2, quantile: 0.1}}\n",
       "data.tail_upsample"},
      {kTop + "data: {samples: 50}\nmodel: {family: gmm, components: 3, em: {reg_covar: 1e-3}}\n"
              "truth: {shape: blobs, centers: [[0], [1]], cluster_std: 0.01}\n",
       "model.em.reg_covar"},
  };
  for (const auto& [yaml, key] : cases) EXPECT_EQ(refused_key(yaml), key) << yaml;
}

// Through the command line: exit 2 and the key named.
TEST(GmmShapes, CliRefusesWithExitTwo) {
  const auto dir = test::temp_dir("gmm-shapes-cli");
  const auto factor = test::write_config(dir, kHead + "truth: {shape: moons, factor: 0.5}\n");
  test::Result r = test::run("validate " + factor.string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("truth.factor: applies to circles only"), std::string::npos) << r.out;
  const auto verifier = test::write_config(
      dir, kTop +
               "model: {family: gmm, components: 3}\ntruth: {shape: circles}\n"
               "data: {samples: 50, verifier: {keep_plausible: 1, keep_implausible: 0.5, quantile: 0.1}}\n");
  r = test::run("validate " + verifier.string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("data.verifier"), std::string::npos) << r.out;
  test::fs::remove_all(dir);
}

// The truth of a shape: its closed-form moments, no density-based quantities, and every real draw (training sets
// and the held-out set) from shape_draw on the real streams; a mixture truth draws with gmm_draw as before.
TEST(GmmShapes, TruthMomentsAndDraws) {
  const PointConfig c = load(kHead + "truth: {shape: swiss_roll, noise: 0.3}\nmetrics: {heldout: 50}\n");
  const kernels::GmmTruth t = make_gmm_truth(c);
  double mean[2], cov[4];
  kernels::shape_moments(c.settings<GmmSettings>().shape, mean, cov);
  EXPECT_EQ(t.K0, 0);
  EXPECT_EQ(t.d, 2);
  for (int a = 0; a < 2; ++a) EXPECT_EQ(t.mean[a], mean[a]);
  for (int a = 0; a < 4; ++a) EXPECT_EQ(t.cov[a], cov[a]);
  EXPECT_EQ(t.trace, cov[0] + cov[3]);
  EXPECT_TRUE(std::isnan(t.tail_r2) && std::isnan(t.rare_mass) && std::isnan(t.self_overlap));
  // chol is the covariance's factor.
  EXPECT_NEAR(t.chol[0] * t.chol[0], cov[0], 1e-12 * cov[0]);
  EXPECT_NEAR(t.chol[2] * t.chol[0], cov[2], 1e-12 * cov[0]);

  double x[2], y[2];
  for (std::int64_t i : {0, 1, 5, 999}) {
    kernels::truth_draw(c.seed, 7, 2, i, t, x);
    kernels::shape_draw(c.seed, 7, 2, rng::kStreamRealComponent, rng::kStreamRealDraw, i, t.shape, y);
    EXPECT_EQ(x[0], y[0]);
    EXPECT_EQ(x[1], y[1]);
  }
  const std::vector<double> held = make_gmm_heldout(c, t);
  ASSERT_EQ(held.size(), 100u);
  for (int i = 0; i < 50; ++i) {
    kernels::truth_draw(c.seed, rng::kHeldoutChain, 0, i, t, x);
    EXPECT_EQ(held[2 * i], x[0]);
    EXPECT_EQ(held[2 * i + 1], x[1]);
  }

  const PointConfig m = load(kTop +
                             "data: {samples: 50}\nmodel: {family: gmm, components: 2, dim: 2}\n"
                             "truth: {weights: [0.3, 0.7], means: [[0, 0], [3, 1]], covs: [[1, 2], [0.5, 0.5]]}\n");
  const kernels::GmmTruth mt = make_gmm_truth(m);
  EXPECT_FALSE(kernels::is_shape(mt));
  for (std::int64_t i : {0, 1, 2, 3, 4, 1000}) {
    kernels::truth_draw(m.seed, 7, 2, i, mt, x);
    kernels::gmm_draw(m.seed, 7, 2, true, i, kernels::truth_view(mt), y);
    EXPECT_EQ(x[0], y[0]);
    EXPECT_EQ(x[1], y[1]);
  }
}

// What a shape truth's run writes: no metric that needs the truth's density in closed form.
TEST(GmmShapes, DensityMetricsAreNotWritten) {
  const std::vector<std::string> shape = written_metric_names(load(kHead + "truth: {shape: moons}\n"));
  for (const char* m : {"tail_mass", "l2_density", "rare_mode_mass"})
    EXPECT_EQ(std::count(shape.begin(), shape.end(), m), 0) << m;
  for (const char* m : {"var_ratio", "xent", "dead_components", "min_weight", "fit_nll", "component_std_3"})
    EXPECT_EQ(std::count(shape.begin(), shape.end(), m), 1) << m;
  const std::vector<std::string> mixture =
      written_metric_names(load(kTop + "data: {samples: 50}\nmodel: {family: gmm, components: 1}\n"
                                       "truth: {weights: [1], means: [[0]], covs: [[1]]}\n"));
  for (const char* m : {"tail_mass", "l2_density", "rare_mode_mass"})
    EXPECT_EQ(std::count(mixture.begin(), mixture.end(), m), 1) << m;
}

// Generation 1 fits n real points. EM's M-step makes the mixture's overall mean and covariance the training set's
// (biased) sample mean and covariance plus reg_covar I, whatever the responsibilities (sum_k w_k (Sigma_k + mu_k
// mu_k^T) = (1/n) sum_i x_i x_i^T + reg I), so var_ratio at generation 1 is tr S_n / tr Sigma + d reg / tr Sigma,
// with expectation (n - 1)/n + d reg / tr Sigma, tr Sigma from the closed form. Claim: the mean over 400 chains is
// within z = 5 of it (its standard error from the chains, 0.0018 to 0.0027 here). A truth trace off by 2% (a wrong
// moment) moves the mean by 0.02, 7 to 11 standard errors.
TEST(GmmShapes, GenerationOneVarianceMatchesTheClosedForm) {
  const std::vector<std::string> truths = {
      "{shape: moons, noise: 0.1}", "{shape: circles, factor: 0.5, noise: 0.05}", "{shape: swiss_roll, noise: 0.5}",
      "{shape: blobs, centers: [[0, 0, 0], [4, 1, 1], [1, 5, -2]], cluster_std: 1}"};
  for (const std::string& truth : truths) {
    const std::string yaml =
        "seed: 5\nchains: 400\ngenerations: 1\nmodel: {family: gmm, components: 4}\ntruth: " + truth +
        "\ndata: {samples: 200}\n";
    const auto c = test::run_family(yaml, "cpu", 2);
    const kernels::GmmTruth t = make_gmm_truth(c.config);
    const int n = 200;
    const double expected = (n - 1.0) / n + t.d * 1e-6 / t.trace;
    const Summary& s = c.at(1, "var_ratio");
    EXPECT_LT(std::abs(s.mean - expected) / s.se, 5.0) << truth << ": mean " << s.mean << " se " << s.se;
    EXPECT_EQ(c.at(0, "var_ratio").mean, 1.0);
    EXPECT_EQ(c.at(1, "em_failures").mean, 0.0);
  }
}

// The pooled regimes regenerate old real points from their counters (truth_draw at the generation that drew them).
// With real data only (real_fraction 1), generation 3's training set is 3n iid shape points under accumulate and
// n distinct ones of them under accumulate_subsample, so by the M-step identity above var_ratio has expectation
// (m - 1)/m + d reg / tr Sigma with m = 3n or n. Claim: the mean over 1000 chains within z = 5 of it (se 0.0016
// under accumulate, 0.0029 under accumulate_subsample). A pool whose old real points were redrawn at the wrong
// generation would still pass this, but one that repeated one generation's draws (m = n under accumulate) moves the
// mean by 2/(3n) = 0.013, 8 standard errors at n = 50; the exact pool is checked point by point by
// test_gmm_strategies' regeneration tests, which run this code with a mixture truth.
TEST(GmmShapes, PooledRegimesOnRealDataMatchTheClosedForm) {
  const int n = 50;
  for (const std::string regime : {"accumulate", "accumulate_subsample"}) {
    const std::string yaml =
        "seed: 8\nchains: 1000\ngenerations: 3\nmodel: {family: gmm, components: 3}\n"
        "truth: {shape: circles, factor: 0.5, noise: 0.1}\n"
        "data: {samples: 50, real_fraction: 1, regime: " +
        regime + "}\n";
    const auto c = test::run_family(yaml, "cpu", 2);
    const kernels::GmmTruth t = make_gmm_truth(c.config);
    const double m = regime == "accumulate" ? 3.0 * n : n;
    const double expected = (m - 1.0) / m + t.d * 1e-6 / t.trace;
    const Summary& s = c.at(3, "var_ratio");
    EXPECT_LT(std::abs(s.mean - expected) / s.se, 5.0) << regime << ": mean " << s.mean << " se " << s.se;
    EXPECT_EQ(c.at(3, "em_failures").mean, 0.0);
  }
}

// Every regime with the options a shape truth allows (data.dedup on a grid, data.age_decay) and synthetic data: the
// same per-chain values on 1 and 2 threads, and fits that do not fail.
TEST(GmmShapes, RegimesWithDedupAndAgeDecayAreThreadInvariant) {
  for (const std::string regime : {"replace", "accumulate", "accumulate_subsample"}) {
    const std::string yaml =
        "seed: 9\nchains: 16\ngenerations: 4\nmodel: {family: gmm, components: 4}\n"
        "truth: {shape: swiss_roll, noise: 0.3}\n"
        "data: {samples: 150, real_fraction: 0.2, regime: " +
        regime + ", dedup: true, dedup_resolution: 0.01" + (regime == "replace" ? "" : ", age_decay: 0.8") + "}\n";
    const auto one = test::run_family(yaml, "cpu", 1, true);
    const auto two = test::run_family(yaml, "cpu", 2, true);
    ASSERT_EQ(one.values.size(), two.values.size());
    for (std::size_t g = 0; g < one.values.size(); ++g)
      for (std::size_t k = 0; k < one.values[g].size(); ++k) {
        const double a = one.values[g][k], b = two.values[g][k];
        ASSERT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << regime << " generation " << g << " slot " << k;
      }
    EXPECT_EQ(one.at(4, "em_failures").mean, 0.0) << regime;
    EXPECT_TRUE(std::isfinite(one.at(4, "var_ratio").mean)) << regime;
  }
}

std::string read_file(const test::fs::path& p) { return test::slurp(p); }

// A run on moons (K = 6, 2-D) through the command line at 1 and 2 threads: the same metrics.csv bytes, and no rows
// of the density metrics.
TEST(GmmShapes, RunIsTheSameOnOneAndTwoThreads) {
  const auto dir = test::temp_dir("gmm-shapes-threads");
  const auto cfg = test::write_config(dir,
                                      "name: moons\nseed: 4\nchains: 24\ngenerations: 4\n"
                                      "model: {family: gmm, components: 6}\n"
                                      "truth: {shape: moons, noise: 0.05}\n"
                                      "data: {samples: 300, regime: replace}\n");
  const test::Result one =
      test::run("run " + cfg.string() + " --backend cpu --threads 1 --no-progress --out " + (dir / "t1").string());
  ASSERT_EQ(one.code, 0) << one.out;
  const test::Result two =
      test::run("run " + cfg.string() + " --backend cpu --threads 2 --no-progress --out " + (dir / "t2").string());
  ASSERT_EQ(two.code, 0) << two.out;
  const std::string a = read_file(dir / "t1" / "metrics.csv"), b = read_file(dir / "t2" / "metrics.csv");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  std::set<std::string> metrics;
  std::istringstream in(a);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line.rfind("generation,metric,", 0), 0u) << line;
  while (std::getline(in, line)) {
    const auto c1 = line.find(','), c2 = line.find(',', c1 + 1);
    metrics.insert(line.substr(c1 + 1, c2 - c1 - 1));
  }
  for (const char* m : {"tail_mass", "l2_density", "rare_mode_mass"}) EXPECT_EQ(metrics.count(m), 0u) << m;
  for (const char* m : {"var_ratio", "xent", "component_std_6"}) EXPECT_EQ(metrics.count(m), 1u) << m;
  test::fs::remove_all(dir);
}

}  // namespace

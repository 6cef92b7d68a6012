// The linear regression family against an independent brute-force reference written here: every point stored,
// labels y = x.w + s eps formed as such, training sets built as lists of points, the fit by a textbook elimination
// of the normal equations in long double, the residual sum of squares from the stored residuals. It shares with the
// engine only the definitions of what a chain draws: the random numbers (kernels/core/normal.h's stream_normal, point
// i of a generation taking normals i (d + 1) .. i (d + 1) + d of its stream), accumulate_subsample's selection rule
// (kernels/training/regime.h's for_each_selected), the filters' thresholds (kernels/core/quadform.h's chi2_quantile)
// and the config's real-point count; how it fits is not.
//
// Tolerance: 1e-9 relative (and 1e-12 absolute, for values near 0). The engine sums in double in another order and
// solves by Cholesky; its rounding error over a few hundred points and d <= 5 is around 1e-14 relative, so 1e-9
// leaves a wide margin and still fails on any error of the method (a wrong label, noise, point, pool or penalty
// moves a value by 1e-3 or more).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/core/quadform.h"
#include "kernels/linear_regression/linear_regression.h"
#include "sim/families/linear_regression/linear_regression_family.h"
#include "tests/support/backend_test.h"
#include "tests/support/cli.h"
#include "tests/support/elimination.h"
#include "tests/support/run_outputs.h"

namespace {

using namespace ouro;
using ouro::test::run_family;
using Real = long double;

struct Point {
  std::vector<Real> x;
  Real y;
  int generation;
  bool real;
  Real weight = 1;  // data.tail_upsample's frequency weight
};

// The textbook elimination (tests/support/elimination.h).
std::vector<Real> solve(int d, const std::vector<Real>& a, const std::vector<Real>& b) {
  return test::eliminate(d, a, b);
}

// Every generation's metrics of one chain, [generation][metric] in kernels::RegressionMetric order.
std::vector<std::vector<double>> reference_chain(const PointConfig& c, std::uint32_t chain) {
  using namespace kernels;
  const auto& g = c.settings<RegressionSettings>();
  const int d = g.dim(), n = c.samples;
  const Real sigma0 = g.noise_std;
  std::vector<Real> chol(static_cast<std::size_t>(d) * d, 0);
  for (int i = 0; i < d; ++i)  // the design's Cholesky factor, textbook
    for (int j = 0; j <= i; ++j) {
      Real s = g.design_cov[i * d + j];
      for (int k = 0; k < j; ++k) s -= chol[i * d + k] * chol[j * d + k];
      chol[i * d + j] = i == j ? std::sqrt(s) : s / chol[j * d + j];
    }
  std::vector<Real> w0(g.weights.begin(), g.weights.end()), w = w0;
  Real s_model = sigma0, s_fit = sigma0;
  std::vector<Point> pool;
  std::vector<std::vector<double>> out;
  auto metrics = [&](Real share, Real age, Real draws_per_kept) {
    Real test = 0, werr = 0, norm = 0, norm0 = 0;
    for (int a = 0; a < d; ++a) {
      for (int b = 0; b < d; ++b) test += (w[a] - w0[a]) * g.design_cov[a * d + b] * (w[b] - w0[b]);
      werr += (w[a] - w0[a]) * (w[a] - w0[a]);
      norm += w[a] * w[a];
      norm0 += w0[a] * w0[a];
    }
    out.push_back({static_cast<double>(test), static_cast<double>(werr), static_cast<double>(norm / norm0),
                   static_cast<double>(s_fit * s_fit / (sigma0 * sigma0)), static_cast<double>(share),
                   static_cast<double>(age), static_cast<double>(draws_per_kept)});
  };
  metrics(0, 0, 1);
  for (int t = 1; t <= c.generations; ++t) {
    std::vector<Point> fresh;
    const int real = t == 1 ? n : c.real_count;
    Real drawn = 0, kept = 0;
    // Without a filter candidate i < n is point i; with one, synthetic candidates go on past n until n - real are
    // kept or the verifier's budget, max_draw_factor (n - real) candidates, is spent.
    const bool filtered = (c.verifier || c.tail_upsample) && real < n;
    const long cap = c.verifier && filtered ? static_cast<long>(n - real) * c.max_draw_factor : n - real;
    for (long i = 0; i < (filtered ? real + cap : n) && !(filtered && kept == n - real); ++i) {
      const bool is_real = i < real;
      const std::uint32_t gen = is_real ? (c.real_source == RealSource::kFixed ? 1u : static_cast<std::uint32_t>(t))
                                        : static_cast<std::uint32_t>(t);
      const std::uint32_t stream = is_real ? rng::kStreamRealDraw : rng::kStreamSyntheticDraw;
      const std::uint64_t m0 = static_cast<std::uint64_t>(i) * (d + 1);
      std::vector<Real> z(d), x(d, 0);
      for (int a = 0; a < d; ++a)
        z[a] = g.design == Design::kFixed ? stream_normal(c.seed, chain, 1u, rng::kStreamRealDraw, m0 + a)
                                          : stream_normal(c.seed, chain, gen, stream, m0 + a);
      const Real eps = stream_normal(c.seed, chain, gen, stream, m0 + d);
      for (int a = 0; a < d; ++a)
        for (int b = 0; b <= a; ++b) x[a] += chol[a * d + b] * z[b];
      Real y = (is_real ? sigma0 : s_model) * eps;
      for (int a = 0; a < d; ++a) y += x[a] * (is_real ? w0[a] : w[a]);
      Real weight = 1;
      if (filtered && !is_real) {
        // The truth's standardised residual of the label; the verifier keeps candidate j = i - real when word j of
        // its verify stream is below the keep probability's threshold.
        Real r0 = y;
        for (int a = 0; a < d; ++a) r0 -= x[a] * w0[a];
        const double z2 = static_cast<double>((r0 / sigma0) * (r0 / sigma0));
        const std::uint64_t j = static_cast<std::uint64_t>(i - real);
        ++drawn;
        if (c.verifier) {
          const double p = z2 <= chi2_quantile(1.0 - c.verifier_quantile, 1) ? c.keep_plausible : c.keep_implausible;
          const std::uint32_t word =
              rng::draw_block(c.seed, chain, static_cast<std::uint32_t>(t), rng::kStreamVerify, j / 4).v[j % 4];
          // (the keep rule of every family: word < round(p 2^32), kernels/training/regime.h)
          if (!(static_cast<std::uint64_t>(word) < static_cast<std::uint64_t>(std::llround(std::ldexp(p, 32)))))
            continue;
        }
        if (c.tail_upsample && z2 > chi2_quantile(1.0 - c.tail_quantile, 1)) weight = c.tail_factor;
        ++kept;
      }
      fresh.push_back({x, y, t, is_real, weight});
    }
    std::vector<Point> train;
    if (c.regime == Regime::kReplace) {
      train = fresh;
    } else {
      pool.insert(pool.end(), fresh.begin(), fresh.end());
      if (c.regime == Regime::kAccumulate) {
        train = pool;
      } else {
        const auto total = static_cast<std::int64_t>(pool.size());
        for_each_selected(c.seed, chain, static_cast<std::uint32_t>(t), total, std::min<std::int64_t>(total, n),
                          [&](std::int64_t j) { train.push_back(pool[j]); });
      }
    }
    std::vector<Real> a(static_cast<std::size_t>(d) * d, 0), b(d, 0);
    Real weight = 0, points = 0, synthetic = 0, age = 0;
    for (const Point& p : train) {
      const Real wt = std::pow(static_cast<Real>(c.age_decay), t - p.generation) * p.weight;
      for (int i = 0; i < d; ++i) {
        b[i] += wt * p.x[i] * p.y;
        for (int j = 0; j < d; ++j) a[i * d + j] += wt * p.x[i] * p.x[j];
      }
      // (the composition counts points, each by its age weight alone)
      const Real aged = std::pow(static_cast<Real>(c.age_decay), t - p.generation);
      weight += wt;
      points += aged;
      synthetic += p.real ? 0 : aged;
      age += aged * (t - p.generation);
    }
    if (g.estimator == RegressionEstimator::kRidge)
      for (int i = 0; i < d; ++i) a[i * d + i] += g.ridge;
    if (g.estimator == RegressionEstimator::kOls && static_cast<int>(train.size()) < d) {
      // Fewer points than dimensions: the minimum-norm solution w = X'(X X')^{-1} y (unweighted).
      const int m = static_cast<int>(train.size());
      std::vector<Real> k(static_cast<std::size_t>(m) * m, 0), ys(m);
      for (int i = 0; i < m; ++i) {
        ys[i] = train[i].y;
        for (int j = 0; j < m; ++j)
          for (int q = 0; q < d; ++q) k[i * m + j] += train[i].x[q] * train[j].x[q];
      }
      const auto alpha = solve(m, k, ys);
      w.assign(d, 0);
      for (int i = 0; i < m; ++i)
        for (int q = 0; q < d; ++q) w[q] += train[i].x[q] * alpha[i];
    } else {
      w = solve(d, a, b);
    }
    Real rss = 0;
    for (const Point& p : train) {
      Real r = p.y;
      for (int i = 0; i < d; ++i) r -= p.x[i] * w[i];
      rss += std::pow(static_cast<Real>(c.age_decay), t - p.generation) * p.weight * r * r;
    }
    s_fit = std::sqrt(rss / weight);
    s_model = g.noise == RegressionNoise::kFitted ? s_fit : sigma0;
    metrics(synthetic / points, age / points, filtered ? (kept > 0 ? drawn / kept : INFINITY) : 1);
  }
  return out;
}

// Runs the config on the cpu backend and compares every chain's every metric with the reference.
void expect_matches_reference(const std::string& yaml, double rel_tol = 1e-9) {
  const auto run = run_family(yaml, "cpu", 0, true);
  const PointConfig& c = run.config;
  const auto chains = static_cast<std::size_t>(c.chains);
  int shown = 0;
  for (std::uint32_t chain = 0; chain < c.chains; ++chain) {
    const auto ref = reference_chain(c, chain);
    for (int t = 0; t <= c.generations; ++t)
      for (int m = 0; m < kernels::kNumRegressionMetrics; ++m) {
        const double got = run.values[t][m * chains + chain], want = ref[t][m];
        const bool ok = std::abs(got - want) <= rel_tol * std::abs(want) + 1e-12;
        if (!ok && shown++ < 10)
          ADD_FAILURE() << "chain " << chain << " generation " << t << " " << run.names[m] << ": engine " << got
                        << ", reference " << want;
      }
  }
}

std::string config(const std::string& model, const std::string& truth, const std::string& data, int chains = 6,
                   int generations = 6) {
  return "name: reference\nseed: 77\nchains: " + std::to_string(chains) +
         "\ngenerations: " + std::to_string(generations) + "\nmodel: {family: linear_regression" + model +
         "}\ntruth: " + truth + "\ndata: " + data + "\n";
}

const char* kTruth =
    "{weights: [1.0, -0.5, 0.25], design_cov: [[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]], "
    "noise_std: 0.7}";

TEST(RegressionReference, ReplaceWithFreshRealData) {
  expect_matches_reference(config(", noise: fitted", kTruth, "{samples: 12, regime: replace, real_fraction: 0.25}"));
}

TEST(RegressionReference, ReplaceFixedDesignWithRealData) {
  expect_matches_reference(
      config(", noise: fitted", kTruth, "{samples: 12, regime: replace, real_fraction: 0.25, design: fixed}"));
}

TEST(RegressionReference, AccumulateWithAgeDecay) {
  expect_matches_reference(config("", kTruth, "{samples: 10, regime: accumulate, real_fraction: 0.2, age_decay: 0.7}"));
}

TEST(RegressionReference, AccumulateSubsample) {
  expect_matches_reference(
      config(", noise: fitted", kTruth, "{samples: 9, regime: accumulate_subsample, real_fraction: 0.3}"));
  expect_matches_reference(config("", kTruth,
                                  "{samples: 9, regime: accumulate_subsample, real_source: fixed, real_fraction: 0.3, "
                                  "design: fixed, age_decay: 0.8}"));
}

TEST(RegressionReference, Ridge) {
  expect_matches_reference(
      config(", estimator: ridge, ridge: 3.5, noise: fitted", kTruth, "{samples: 8, regime: replace}"));
  expect_matches_reference(config(", estimator: ridge, ridge: 0.5", kTruth, "{samples: 8, regime: accumulate}"));
}

// data.verifier and data.tail_upsample: candidates judged by the truth's standardised residual of their label, kept
// by the verify stream's words, weighted in the fit and in N; draws_per_kept the candidates drawn per point kept.
TEST(RegressionReference, VerifierAndTailUpsample) {
  expect_matches_reference(config(", noise: fitted", kTruth,
                                  "{samples: 12, regime: replace, real_fraction: 0.25, verifier: {keep_plausible: "
                                  "0.9, keep_implausible: 0.2, quantile: 0.3}, max_draw_factor: 3}"));
  expect_matches_reference(
      config("", kTruth,
             "{samples: 10, regime: accumulate, age_decay: 0.8, verifier: {keep_plausible: 1.0, "
             "keep_implausible: 0.1, quantile: 0.2}, tail_upsample: {factor: 3.0, quantile: 0.2}}"));
  expect_matches_reference(config(", noise: fitted", kTruth,
                                  "{samples: 10, regime: replace, design: fixed, tail_upsample: {factor: 0.5, "
                                  "quantile: 0.4}}"));
}

// More points than one of the cpu's tiles holds (4096 / (d + 1) = 1024 at d = 3): tiles that start past point 0,
// padded to four lanes, a fixed design's noise in later tiles, and the verifier's refill running into a next tile.
TEST(RegressionReference, SeveralTiles) {
  const std::string truth =
      "{weights: [1.0, -0.5, 0.25], design_cov: [[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, "
      "0.5]], noise_std: 0.7}";
  expect_matches_reference(
      config(", noise: fitted", truth,
             "{samples: 1500, regime: replace, real_fraction: 0.1, verifier: {keep_plausible: 0.9, "
             "keep_implausible: 0.2, quantile: 0.3}, max_draw_factor: 2}",
             3, 3));
  expect_matches_reference(config(
      "", truth, "{samples: 1100, regime: accumulate, design: fixed, real_source: fixed, real_fraction: 0.1}", 3, 3));
}

// Fewer points than dimensions: OLS is the minimum-norm least-squares fit (an eigen-decomposition of X'X on the
// cpu, here the dual form X'(X X')^{-1} y). It interpolates its training set: the residual variance is 0 (within
// rounding: the absolute tolerance), and with fitted noise every later generation relabels without noise.
// Tolerance 1e-7 relative: the engine's pseudo-inverse goes through X'X, whose nonzero eigenvalues spread as the
// square of X's singular values (with 4 points in 5 dimensions the smallest can be 1e-4 of the largest), so its
// error grows to about 1e-9 (the largest seen here) where the full-rank solve stays near 1e-14.
TEST(RegressionReference, UnderDeterminedFitIsTheMinimumNormOne) {
  const std::string truth = "{weights: [1.0, -0.5, 0.25, 0.1, 2.0], noise_std: 0.3}";
  expect_matches_reference(config("", truth, "{samples: 3, regime: replace}"), 1e-7);
  expect_matches_reference(config(", noise: fitted", truth, "{samples: 4, regime: replace, design: fixed}"), 1e-7);
}

// Ridge with a penalty lost to rounding on an under-determined system is the minimum-norm fit, as lambda -> 0 of
// ridge is: along G's null space the exact ridge update (u_k - lambda w_k) / (0 + lambda) is -w_k, whatever lambda.
// (The engine takes the singular path for both; the values agree to the eigen-solver's rounding.)
TEST(RegressionReference, RidgeLostToRoundingIsTheMinimumNormFit) {
  const std::string truth = "{weights: [1.0, -0.5, 0.25, 0.1, 2.0], noise_std: 0.3}";
  const auto ols = run_family(config("", truth, "{samples: 3, regime: replace}"), "cpu", 0, true);
  const auto ridge =
      run_family(config(", estimator: ridge, ridge: 1.0e-30", truth, "{samples: 3, regime: replace}"), "cpu", 0, true);
  const auto chains = static_cast<std::size_t>(ols.config.chains);
  for (int t = 1; t <= ols.config.generations; ++t)
    for (std::size_t i = 0; i < chains; ++i) {
      const double a = ols.values[t][kernels::kWeightErr * chains + i];
      const double b = ridge.values[t][kernels::kWeightErr * chains + i];
      EXPECT_NEAR(b, a, 1e-9 * a) << "generation " << t << " chain " << i;
    }
}

// Labels with noise a millionth of the weights: the engine keeps residual statistics in its current fit's frame,
// so the test error (of the noise's scale squared, 1e-12 here) and the residual variance keep their relative
// accuracy. Sums of y^2 and x y would lose about 12 digits of the 16 to cancellation in RSS = y'y - w'X'y; the
// reference works in long double (19 digits) from stored residuals. Tolerance 1e-7 relative: the engine's own error
// grows with the design's condition number over the generations, near 1e-12 here.
TEST(RegressionReference, SmallNoiseKeepsItsAccuracy) {
  const std::string truth = "{weights: [1.0, -0.5, 0.25], design_cov: {isotropic: 1.0}, noise_std: 1.0e-6}";
  expect_matches_reference(config(", noise: fitted", truth, "{samples: 12, regime: replace}"), 1e-7);
  expect_matches_reference(config("", truth, "{samples: 12, regime: accumulate}"), 1e-7);
}

// The engine's metrics.csv is the same bytes on 1 and 2 threads (each chain is computed whole by one thread).
TEST(RegressionReference, ThreadCountDoesNotChangeOutput) {
  const auto dir = test::temp_dir("regression-threads");
  const auto cfg = test::write_config(
      dir,
      config(", noise: fitted", kTruth, "{samples: 20, regime: accumulate_subsample, real_fraction: 0.1}", 101, 8));
  for (int threads : {1, 2}) {
    const auto r = test::run("run " + cfg.string() + " --no-progress --threads " + std::to_string(threads) + " --out " +
                             (dir / ("t" + std::to_string(threads))).string());
    ASSERT_EQ(r.code, 0) << r.out;
  }
  test::expect_same_output(dir / "t1", dir / "t2", "1 and 2 threads");
}

}  // namespace

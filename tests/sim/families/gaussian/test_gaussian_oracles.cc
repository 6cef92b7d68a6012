// Statistical oracles for the Gaussian family: the engine's mean curves
// against closed-form expectations (README, "Theory") and against an
// independent brute-force simulation written here with plain loops and the
// standard library's generator (no code shared with the engine).
//
// Tolerance. Each check compares a mean over C chains with its expectation
// in units of the standard error (z-score). We allow |z| < kZ = 4.5: with at
// most ~10 checks per test the chance that correct code fails is below
// 10 * 6.8e-6 < 1e-4. Runs are deterministic (fixed seed), so a pass is
// reproducible; the bound says a correct engine is unlikely to have drawn a
// failing seed.
//
// Power. Each test also names a planted bug and checks that its predicted
// curve lies more than 2 kZ standard errors from the correct one at some
// checked generation: an engine with that bug would sit near the bug's curve
// and so fail the |z| < kZ check. (The bugs were also planted in the engine by
// hand while writing these tests; each made its test fail.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>

#include "tests/support/backend_test.h"

namespace {

using namespace ouro;
using namespace ouro::kernels;
using ouro::test::BackendTest;
using ouro::test::run_curves;

constexpr double kZ = 4.5;

// Checks metric m of `curves` against `theory(t)` at `gens`, and that the
// planted bug's curve `bug(t)` would have been caught.
void check_oracle(const test::Curves& curves, int m, const std::vector<int>& gens,
                  const std::function<double(int)>& theory, const std::function<double(int)>& bug,
                  const char* bug_name) {
  double power = 0.0;
  for (int t : gens) {
    const Summary& s = curves.gen[t][m];
    EXPECT_LT(std::abs(test::zscore(s, theory(t))), kZ)
        << "generation " << t << ": mean " << s.mean << " se " << s.se << " theory " << theory(t);
    power = std::max(power, std::abs(theory(t) - bug(t)) / s.se);
  }
  EXPECT_GT(power, 2 * kZ) << "the test cannot tell the planted bug (" << bug_name << ") from correct code";
}

std::string gaussian_yaml(int chains, int generations, int dim, int n, const char* regime, const char* estimator,
                          double real_fraction = 0.0, const char* truth = "{isotropic: 1.0}") {
  return "name: oracle\nseed: 2024\nchains: " + std::to_string(chains) +
         "\ngenerations: " + std::to_string(generations) + "\nmodel: {family: gaussian, dim: " + std::to_string(dim) +
         ", estimator: " + estimator + "}\ntruth: " + truth + "\ndata: {samples: " + std::to_string(n) +
         ", regime: " + regime + ", real_fraction: " + std::to_string(real_fraction) + "}\n";
}

class GaussianOracle : public BackendTest {};

// E[var_ratio_t] = ((n-1)/n)^t and E[mean_sq_err_t] = tr(S0)(1 - ((n-1)/n)^t):
// each MLE fit scales the expected variance by (n-1)/n (Shumailov et al.
// 2024). Planted bug: n - 1 in place of n in the MLE denominator.
TEST_P(GaussianOracle, ReplaceMleVarianceShrinksGeometrically) {
  const int n = 10;
  const auto c = run_curves(
      gaussian_yaml(20000, 20, 2, n, "replace", "mle", 0.0, "{mean: [1, -1], cov: [[2, 0.5], [0.5, 1]]}"), GetParam());
  const double a = (n - 1.0) / n, tr0 = 3.0;
  const std::vector<int> gens = {1, 2, 5, 10, 20};
  check_oracle(
      c, kVarRatio, gens, [&](int t) { return std::pow(a, t); }, [&](int) { return 1.0; }, "n - 1 in the MLE");
  check_oracle(
      c, kMeanSqErr, gens, [&](int t) { return tr0 * (1 - std::pow(a, t)); }, [&](int t) { return tr0 * t / n; },
      "n - 1 in the MLE");
  // Planted bug: off-by-one generation (generation t reports t - 1 fits).
  check_oracle(
      c, kVarRatio, gens, [&](int t) { return std::pow(a, t); }, [&](int t) { return std::pow(a, t - 1); },
      "off-by-one generation");
}

// E[det_ratio_t] = (prod_{i=1..d} (1 - i/n))^t: det of a Wishart_{n-1}(S, I)/n
// matrix has expectation det S prod_{i=1..d} (n - i)/n (Anderson, An
// Introduction to Multivariate Statistical Analysis, 3rd ed., 7.5.3).
// Planted bug: treating the dimensions as independent, ((n-1)/n)^{d t}.
TEST_P(GaussianOracle, ReplaceMleDeterminantShrinks) {
  const int n = 12, d = 3;
  const auto c = run_curves(gaussian_yaml(20000, 8, d, n, "replace", "mle"), GetParam());
  double f = 1.0;
  for (int i = 1; i <= d; ++i) f *= 1.0 - static_cast<double>(i) / n;
  check_oracle(
      c, kDetRatio, {1, 2, 4, 8}, [&](int t) { return std::pow(f, t); },
      [&](int t) { return std::pow((n - 1.0) / n, d * t); }, "independent dimensions");
}

// Unbiased fits keep E[var_ratio_t] = 1 while the mean random-walks:
// E[mean_sq_err_t] = t tr(S0)/n. Planted bug: n in place of n - 1.
TEST_P(GaussianOracle, ReplaceUnbiasedVarianceIsAMartingale) {
  const int n = 10;
  const auto c = run_curves(gaussian_yaml(20000, 20, 1, n, "replace", "unbiased"), GetParam());
  const std::vector<int> gens = {1, 2, 5, 10, 20};
  check_oracle(
      c, kVarRatio, gens, [](int) { return 1.0; }, [&](int t) { return std::pow((n - 1.0) / n, t); },
      "n in the unbiased estimator");
  check_oracle(
      c, kMeanSqErr, gens, [&](int t) { return t * 1.0 / n; }, [&](int t) { return (t - 1) * 1.0 / n; },
      "off-by-one generation");
}

// accumulate, MLE: E[var_ratio_t] = (1 - 1/n) prod_{j=2..t} (1 - 1/(n j^2))
// (derivation in README; bounded away from zero, cf. Gerstgrasser et al. 2024).
// Planted bug: fitting only the newest points (replace).
TEST_P(GaussianOracle, AccumulateMleVarianceIsBounded) {
  const int n = 10;
  const auto c = run_curves(gaussian_yaml(20000, 12, 1, n, "accumulate", "mle"), GetParam());
  auto theory = [&](int t) {
    double v = 1.0 - 1.0 / n;
    for (int j = 2; j <= t; ++j) v *= 1.0 - 1.0 / (n * j * j);
    return v;
  };
  check_oracle(
      c, kVarRatio, {1, 2, 4, 8, 12}, theory, [&](int t) { return std::pow((n - 1.0) / n, t); },
      "replace instead of accumulate");
  // The mean's error: e_t = e_{t-1} + (mean of generation t's points - mu_{t-1}) / t, so
  // E e_t^2 = sum_{k=1..t} E[var_{k-1}] / (n k^2) <= (pi^2/6) / n (Gerstgrasser et al. 2024's
  // bound, here for the mean of a Gaussian); replace would give 1 - ((n-1)/n)^t.
  auto mse = [&](int t) {
    double sum = 0.0;
    for (int k = 1; k <= t; ++k) sum += (k == 1 ? 1.0 : theory(k - 1)) / (k * k);
    return sum / n;
  };
  check_oracle(
      c, kMeanSqErr, {1, 2, 4, 8, 12}, mse, [&](int t) { return 1.0 - std::pow((n - 1.0) / n, t); },
      "replace instead of accumulate");
  EXPECT_LT(mse(12), M_PI * M_PI / 6.0 / n);
  // Composition: no real data after generation 1, pool grows by n each time.
  for (int t : {1, 3, 12}) {
    // The same value in every chain; the mean over 20000 chains rounds.
    EXPECT_NEAR(c.gen[t][kDataAge].mean, 0.5 * (t - 1), 1e-9);
    EXPECT_NEAR(c.gen[t][kSyntheticShare].mean, (t - 1.0) / t, 1e-9);
  }
}

// ---- brute-force reference ---------------------------------------------------

// One-dimensional recursive fitting written directly from the definitions:
// pool of actual points, subsample by partial Fisher-Yates, MLE fits.
// `with_replacement` plants the subsampling bug.
std::vector<std::vector<double>> reference_var_ratio(int chains, int generations, int n, const std::string& regime,
                                                     double real_fraction, bool with_replacement, bool ignore_real,
                                                     std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> z(0.0, 1.0);
  const int real_later = static_cast<int>(std::lround(real_fraction * n));
  std::vector<std::vector<double>> out(generations + 1);
  for (int ch = 0; ch < chains; ++ch) {
    double mu = 0.0, sd = 1.0;
    std::vector<double> pool;
    out[0].push_back(1.0);
    for (int t = 1; t <= generations; ++t) {
      std::vector<double> fresh;
      const int real = (t == 1) ? n : (ignore_real ? 0 : real_later);
      for (int i = 0; i < n; ++i) fresh.push_back(i < real ? z(g) : mu + sd * z(g));
      std::vector<double> train;
      if (regime == "replace") {
        train = fresh;
      } else {
        pool.insert(pool.end(), fresh.begin(), fresh.end());
        if (regime == "accumulate") {
          train = pool;
        } else if (with_replacement) {
          std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
          for (int i = 0; i < n; ++i) train.push_back(pool[pick(g)]);
        } else {
          std::vector<double> p = pool;
          for (int i = 0; i < n; ++i) {
            std::uniform_int_distribution<std::size_t> pick(i, p.size() - 1);
            std::swap(p[i], p[pick(g)]);
            train.push_back(p[i]);
          }
        }
      }
      double m = 0.0;
      for (double x : train) m += x;
      m /= train.size();
      double v = 0.0;
      for (double x : train) v += (x - m) * (x - m);
      v /= train.size();
      mu = m;
      sd = std::sqrt(v);
      out[t].push_back(v);
    }
  }
  return out;
}

Summary summary_of(std::vector<double> v) {
  std::vector<double> scratch;
  return summarize(v.data(), static_cast<std::int64_t>(v.size()), scratch);
}

// Engine vs reference: two independent means, z = diff / sqrt(se1^2 + se2^2).
void check_against_reference(const test::Curves& c, const std::vector<std::vector<double>>& ref,
                             const std::vector<std::vector<double>>& bug, const std::vector<int>& gens,
                             const char* bug_name) {
  double power = 0.0;
  for (int t : gens) {
    const Summary e = c.gen[t][kVarRatio], r = summary_of(ref[t]), b = summary_of(bug[t]);
    const double se = std::sqrt(e.se * e.se + r.se * r.se);
    EXPECT_LT(std::abs(e.mean - r.mean) / se, kZ)
        << "generation " << t << ": engine " << e.mean << " reference " << r.mean;
    power = std::max(power, std::abs(e.mean - b.mean) / std::sqrt(e.se * e.se + b.se * b.se));
  }
  EXPECT_GT(power, 2 * kZ) << "the test cannot tell the planted bug (" << bug_name << ") from correct code";
}

TEST_P(GaussianOracle, AccumulateSubsampleMatchesBruteForce) {
  const int chains = 20000, G = 6, n = 10;
  const auto c = run_curves(gaussian_yaml(chains, G, 1, n, "accumulate_subsample", "mle"), GetParam());
  const auto ref = reference_var_ratio(chains, G, n, "accumulate_subsample", 0.0, false, false, 11);
  const auto bug = reference_var_ratio(chains, G, n, "accumulate_subsample", 0.0, true, false, 12);
  check_against_reference(c, ref, bug, {1, 2, 3, 6}, "subsampling with replacement");
  // Expected composition of a uniform subsample is the pool's.
  for (int t : {2, 6}) {
    EXPECT_LT(std::abs(test::zscore(c.gen[t][kSyntheticShare], (t - 1.0) / t)), kZ);
    EXPECT_LT(std::abs(test::zscore(c.gen[t][kDataAge], 0.5 * (t - 1))), kZ);
  }
}

// Old generations' real and synthetic points must both be regenerated from
// the right source: accumulate and accumulate_subsample with fresh real data.
// Planted bug: real draws ignored after generation 1.
TEST_P(GaussianOracle, AccumulateRegimesWithRealDataMatchBruteForce) {
  const int chains = 20000, G = 6, n = 10;
  for (const char* regime : {"accumulate", "accumulate_subsample"}) {
    const auto c = run_curves(gaussian_yaml(chains, G, 1, n, regime, "mle", 0.3), GetParam());
    const auto ref = reference_var_ratio(chains, G, n, regime, 0.3, false, false, 41);
    const auto bug = reference_var_ratio(chains, G, n, regime, 0.3, false, true, 42);
    check_against_reference(c, ref, bug, {1, 2, 4, 6}, "real draws ignored after generation 1");
  }
}

TEST_P(GaussianOracle, FreshRealFractionMatchesBruteForce) {
  const int chains = 20000, G = 10, n = 10;
  const auto c = run_curves(gaussian_yaml(chains, G, 1, n, "replace", "mle", 0.3), GetParam());
  const auto ref = reference_var_ratio(chains, G, n, "replace", 0.3, false, false, 21);
  const auto bug = reference_var_ratio(chains, G, n, "replace", 0.3, false, true, 22);
  check_against_reference(c, ref, bug, {1, 2, 5, 10}, "real draws ignored after generation 1");
  EXPECT_NEAR(c.gen[5][kSyntheticShare].mean, 0.7, 1e-9);
}

TEST_P(GaussianOracle, GenerationZeroIsTheTruth) {
  const auto c = run_curves(gaussian_yaml(100, 1, 2, 10, "replace", "mle"), GetParam());
  const test::Row& r0 = c.gen[0];
  EXPECT_NEAR(r0[kVarRatio].mean, 1.0, 1e-14);
  EXPECT_NEAR(r0[kDetRatio].mean, 1.0, 1e-14);
  EXPECT_EQ(r0[kMeanSqErr].mean, 0.0);
  EXPECT_NEAR(r0[kKl].mean, 0.0, 1e-14);
  EXPECT_NEAR(r0[kTailMass].mean, 1.0, 1e-6);
  EXPECT_EQ(r0[kSyntheticShare].mean, 0.0);
  EXPECT_EQ(r0[kDataAge].mean, 0.0);
  EXPECT_EQ(r0[kVarRatio].std, 0.0);
}

// tail_mass in d = 2 (the quadratic-form path of kernels/core/quadform.h) at generation 1 against a
// brute-force reference: fit n = 10 points of N(0, I) by MLE, then estimate
// the fitted model's mass outside the truth's 99% circle (radius^2 =
// -2 ln 0.01 in 2-D) from 400 fresh model draws per chain. The mean over
// chains exceeds 1: a model fitted to 10 points has random, elongated
// ellipses, so on average it puts more mass far out than the truth (the
// predictive distribution has heavier tails). Two independent means, z < 4.5.
// Planted bug: the 1-D radius (chi-square quantile with one degree of
// freedom) in place of the 2-D one.
//
// Afterwards the typical chain loses its tails: the median tail mass falls
// towards 0 as the fitted covariance shrinks. (The mean over chains does not:
// the model's mean wanders, and the few chains whose collapsed model sits
// outside the truth's ellipse have tail_mass up to 100.)
TEST_P(GaussianOracle, TailMassMatchesBruteForceThenDecays) {
  const int chains = 4000, n = 10;
  const auto c = run_curves(gaussian_yaml(chains, 30, 2, n, "replace", "mle"), GetParam());
  auto reference = [&](double r2, std::uint64_t seed) {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> z;
    std::vector<double> per_chain;
    for (int ch = 0; ch < chains; ++ch) {
      double x[10][2], m[2] = {0, 0};
      for (auto& p : x) {
        p[0] = z(g);
        p[1] = z(g);
        m[0] += p[0] / n;
        m[1] += p[1] / n;
      }
      double s00 = 0, s01 = 0, s11 = 0;
      for (auto& p : x) {
        s00 += (p[0] - m[0]) * (p[0] - m[0]) / n;
        s01 += (p[0] - m[0]) * (p[1] - m[1]) / n;
        s11 += (p[1] - m[1]) * (p[1] - m[1]) / n;
      }
      const double l00 = std::sqrt(s00), l10 = s01 / l00, l11 = std::sqrt(s11 - l10 * l10);
      int out = 0;
      for (int k = 0; k < 400; ++k) {
        const double z0 = z(g), z1 = z(g);
        const double a = m[0] + l00 * z0, b = m[1] + l10 * z0 + l11 * z1;
        out += a * a + b * b > r2;
      }
      per_chain.push_back(out / 400.0 / 0.01);
    }
    return summary_of(per_chain);
  };
  const Summary e = c.gen[1][kTailMass];
  const Summary r = reference(-2.0 * std::log(0.01), 31);
  const Summary bug = reference(6.634896601021214, 32);
  EXPECT_LT(std::abs(e.mean - r.mean) / std::sqrt(e.se * e.se + r.se * r.se), kZ)
      << "engine " << e.mean << " reference " << r.mean;
  EXPECT_GT(std::abs(e.mean - bug.mean) / std::sqrt(e.se * e.se + bug.se * bug.se), 2 * kZ);
  EXPECT_LT(c.gen[30][kTailMass].q50, 0.01 * c.gen[1][kTailMass].q50);
}

INSTANTIATE_TEST_SUITE_P(Backends, GaussianOracle, ::testing::Values("cpu", "cuda"), test::backend_name);

}  // namespace

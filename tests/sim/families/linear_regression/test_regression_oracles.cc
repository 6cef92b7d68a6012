// Statistical oracles for the linear regression family: the engine's mean curves against the closed forms of
// docs/families/linear_regression.md, at settings the docs' experiments do not use (d = 4, T = 30, sigma0 = 0.5, a
// correlated design), with T > d + 3 so that test_error has a finite variance.
//
// Tolerance. Each check compares a mean over C = 20000 chains with its expectation in units of its standard error
// (z-score). We allow |z| < kZ = 4.5: with fewer than 40 checks in this file the chance that correct code fails one
// is below 40 * 6.8e-6 < 3e-4. Runs are deterministic (fixed seeds), so a pass is reproducible.
//
// Power. Each check names a planted bug and asserts that the bug's predicted curve lies more than 2 kZ standard
// errors from the correct one at some checked generation, so an engine with the bug would fail the |z| < kZ check;
// the fixed-design bug is also run (a fresh design where a fixed one was asked) and shown to fail, and RSS / (N - d)
// was planted in the engine by hand while writing these tests: both replace oracles failed.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kernels/linear_regression/linear_regression.h"
#include "tests/support/backend_test.h"
#include "tests/support/oracle.h"

namespace {

using namespace ouro;
using ouro::test::FamilyCurves;
using ouro::test::run_family;

constexpr double kZ = 4.5;
constexpr int kChains = 20000, kDim = 4, kSamples = 30;
constexpr double kSigma = 0.5;
// tr(Sigma_x^{-1}) of kDesign: the block [[2, 0.3], [0.3, 1]] has inverse trace 3/1.91, then 1/0.5 + 1/1.
constexpr double kTraceInverse = 3.0 / 1.91 + 2.0 + 1.0;
const char* kDesign = "[[2.0, 0.3, 0.0, 0.0], [0.3, 1.0, 0.0, 0.0], [0.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]]";

std::string oracle_yaml(const std::string& noise, const std::string& regime, const std::string& design, int generations,
                        std::uint32_t seed) {
  return "name: oracle\nseed: " + std::to_string(seed) + "\nchains: " + std::to_string(kChains) +
         "\ngenerations: " + std::to_string(generations) + "\nmodel: {family: linear_regression, noise: " + noise +
         "}\ntruth: {weights: [1.0, -0.5, 0.25, 2.0], design_cov: " + kDesign +
         ", noise_std: " + std::to_string(kSigma) + "}\ndata: {samples: " + std::to_string(kSamples) +
         ", regime: " + regime + ", design: " + design + "}\n";
}

// Within kZ standard errors (tests/support/oracle.h).
void check_oracle(const FamilyCurves& c, const std::string& name, const std::vector<int>& gens,
                  const std::function<double(int)>& theory, const std::function<double(int)>& bug,
                  const char* bug_name) {
  test::check_oracle(c, name, gens, theory, bug, bug_name, kZ);
}
using test::check_theory_column;

const double kStep = kSigma * kSigma / (kSamples - kDim - 1.0);  // sigma0^2 / (T - d - 1)

// Replace, fixed noise, either design: each generation adds an independent update of expected size
// sigma0^2 tr(M (X'X)^{-1}) = sigma0^2 tr(M Sigma_x^{-1}) / (T - d - 1) (the inverse Wishart mean), so
// E test_error_t = t sigma0^2 d / (T - d - 1) (Dohmatob et al. 2024) and E weight_err_t = t sigma0^2 tr(Sigma_x^{-1})
// / (T - d - 1). Planted bugs: an off-by-one generation; RSS / (N - d) in place of RSS / N (noise_ratio).
TEST(RegressionOracle, ReplaceFixedNoiseGrowsLinearly) {
  for (const char* design : {"fresh", "fixed"}) {
    SCOPED_TRACE(design);
    const auto c = run_family(oracle_yaml("fixed", "replace", design, 12, 101), "cpu");
    const std::vector<int> gens = {1, 2, 5, 12};
    auto test_error = [](int t) { return t * kStep * kDim; };
    check_oracle(
        c, "test_error", gens, test_error, [](int t) { return (t - 1) * kStep * kDim; }, "off-by-one generation");
    check_oracle(
        c, "weight_err", gens, [](int t) { return t * kStep * kTraceInverse; },
        [](int t) { return (t - 1) * kStep * kTraceInverse; }, "off-by-one generation");
    // The residual variance on n points with d fitted weights: sigma0^2 chi^2_{T-d} / T.
    const double q = (kSamples - kDim) / static_cast<double>(kSamples);
    check_oracle(
        c, "noise_ratio", gens, [&](int) { return q; }, [](int) { return 1.0; }, "RSS / (N - d) in place of RSS / N");
    check_theory_column(c, "test_error", gens, test_error);
  }
}

// Replace, fitted noise: RSS_t = s_{t-1}^2 chi^2_{T-d}, independent of the past, so ln noise_ratio_t is a sum of t
// independent ln(chi^2_{T-d} / T), each of mean psi((T-d)/2) + ln(2/T) (the log-chi-square mean). The log is tested
// rather than noise_ratio itself, whose mean q^t is carried by rare chains. E test_error_t = sigma0^2 T (1 - q^t) /
// (T - d - 1). Planted bugs: RSS / (N - d) (the unbiased residual variance) in place of RSS / N; an off-by-one
// generation.
TEST(RegressionOracle, ReplaceFittedNoiseShrinksGeometrically) {
  for (const char* design : {"fresh", "fixed"}) {
    SCOPED_TRACE(design);
    const auto c = run_family(oracle_yaml("fitted", "replace", design, 20, 202), "cpu", 0, true);
    const std::vector<int> gens = {1, 2, 5, 10, 20};
    const double T = kSamples, d = kDim;
    auto digamma = [](double x) {  // psi(x) by recurrence and the asymptotic series (at x = 13, the value used
                                   // here, the first term left out is 5.5e-14)
      double r = 0.0;
      while (x < 6.0) r -= 1.0 / x++;
      const double f = 1.0 / (x * x);
      return r + std::log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f / 240)));
    };
    const double mean_log = digamma((T - d) / 2.0) + std::log(2.0 / T);
    const double bug_log = digamma((T - d) / 2.0) + std::log(2.0 / (T - d));
    const int m = c.metric("noise_ratio");
    const auto chains = static_cast<std::size_t>(kChains);
    double power = 0.0;
    for (int t : gens) {
      std::vector<double> logs(chains);
      for (std::size_t i = 0; i < chains; ++i) logs[i] = std::log(c.values[t][m * chains + i]);
      std::vector<double> scratch;
      const Summary s = summarize(logs.data(), kChains, scratch);
      EXPECT_LT(std::abs(test::zscore(s, t * mean_log)), kZ)
          << "generation " << t << ": mean ln noise_ratio " << s.mean << " se " << s.se << " theory " << t * mean_log;
      power = std::max(power, std::abs(t * (mean_log - bug_log)) / s.se);
    }
    EXPECT_GT(power, 2 * kZ) << "the test cannot tell RSS / (N - d) from RSS / N";
    const double q = (T - d) / T;
    auto test_error = [&](int t) { return kSigma * kSigma * T * (1.0 - std::pow(q, t)) / (T - d - 1.0); };
    check_oracle(
        c, "test_error", gens, test_error, [&](int t) { return t * kStep * kDim; }, "labels with sigma0 (noise fixed)");
    check_oracle(
        c, "test_error", gens, test_error,
        [&](int t) { return kSigma * kSigma * T * (1.0 - std::pow(q, t - 1)) / (T - d - 1.0); },
        "off-by-one generation");
    check_theory_column(c, "test_error", gens, test_error);
    check_theory_column(c, "noise_ratio", gens, [&](int t) { return std::pow(q, t); });
  }
}

// Accumulate with a fixed design and fixed noise: the pool's fit is the mean of the generations' fits to the same
// inputs, so e_t = sum_{k<=t} a_k / k with independent updates a_k, and E test_error_t = sigma0^2 d / (T - d - 1)
// sum_{k<=t} 1/k^2 < (pi^2/6) times generation 1's (Gerstgrasser et al. 2024). Planted bugs: the replace curve (the
// pool not kept); a fresh design where a fixed one was asked, run here and shown to fail the check.
TEST(RegressionOracle, AccumulateFixedDesignIsBounded) {
  const auto c = run_family(oracle_yaml("fixed", "accumulate", "fixed", 20, 303), "cpu");
  const std::vector<int> gens = {1, 2, 5, 20};
  auto h2 = [](int t) {
    double s = 0.0;
    for (int k = 1; k <= t; ++k) s += 1.0 / (static_cast<double>(k) * k);
    return s;
  };
  auto test_error = [&](int t) { return kStep * kDim * h2(t); };
  check_oracle(
      c, "test_error", gens, test_error, [&](int t) { return t * kStep * kDim; }, "the pool not kept");
  check_oracle(
      c, "weight_err", gens, [&](int t) { return kStep * kTraceInverse * h2(t); },
      [&](int t) { return kStep * kTraceInverse * h2(t - 1); }, "off-by-one generation");
  check_theory_column(c, "test_error", gens, test_error);

  const auto fresh = run_family(oracle_yaml("fixed", "accumulate", "fresh", 20, 303), "cpu");
  double worst = 0.0;
  for (int t : gens) worst = std::max(worst, std::abs(test::zscore(fresh.at(t, "test_error"), test_error(t))));
  EXPECT_GT(worst, kZ) << "a fresh design passes the fixed-design oracle: the check has no power against it";
}

}  // namespace

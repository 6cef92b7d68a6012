// Statistical oracles for the kernel density family: the engine's mean curves against the closed forms of
// docs/families/kde.md ("Theory"), for replace without real data at a fixed bandwidth, on a correlated 2-D Gaussian
// truth and on the two moons.
//
// Tolerance. Each check compares a mean over C = 20000 chains with its expectation in units of its standard error
// (z-score) and allows |z| < kZ = 4.5: with fewer than 40 checks in this file the chance that correct code fails one
// is below 40 * 6.8e-6 < 3e-4. Runs are deterministic (fixed seeds), so a pass is reproducible.
//
// Power. Each check names a planted bug and asserts that the bug's predicted curve lies more than 2 kZ standard
// errors from the correct one at some checked generation, so an engine with that bug would fail the |z| < kZ check.
// (A parent index off by one keeps every pick uniform, so no expectation can see it: test_kde_reference.cc catches
// it chain by chain.)
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tests/support/backend_test.h"
#include "tests/support/oracle.h"

namespace {

using namespace ouro;
using ouro::test::FamilyCurves;
using ouro::test::run_family;

constexpr double kZ = 4.5;
constexpr int kChains = 20000, kSamples = 20;
constexpr double kH = 0.3;

std::string gaussian_yaml(int generations) {
  return "name: oracle\nseed: 7\nchains: " + std::to_string(kChains) + "\ngenerations: " + std::to_string(generations) +
         "\nmodel: {family: kde, bandwidth: " + std::to_string(kH) +
         "}\ntruth: {mean: [1.0, -1.0], cov: [[1.0, 0.3], [0.3, 0.5]]}\nmetrics: {heldout: 50}\ndata: {samples: " +
         std::to_string(kSamples) + "}\n";
}

// The closed forms, computed here by their recursions (not by the engine's formulas):
//   E[tr S_1] = a tr Sigma_0, E[tr S_t] = a (E[tr S_{t-1}] + d h^2), a = 1 - 1/n;
//   E||m_1 - mu_0||^2 = tr Sigma_0 / n, E||m_t - mu_0||^2 = E||m_{t-1} - mu_0||^2 + (E[tr S_{t-1}] + d h^2) / n;
//   E[ancestors_t] = n P(X_t > 0), X_1 = 1, X_{s+1} ~ Binomial(n, X_s / n), by its distribution on 0..n.
struct Closed {
  std::vector<double> spread, mse, ancestors;
};
Closed closed_forms(double tr0, int d, double h, int n, int generations, double kernel_in_spread = 1.0) {
  Closed c;
  const double a = 1.0 - 1.0 / n, dh2 = d * h * h;
  c.spread = {tr0, a * tr0};
  c.mse = {0.0, tr0 / n};
  for (int t = 2; t <= generations; ++t) {
    c.spread.push_back(a * (c.spread[t - 1] + kernel_in_spread * dh2));
    c.mse.push_back(c.mse[t - 1] + (c.spread[t - 1] + dh2) / n);
  }
  std::vector<long double> dist(n + 1, 0.0L);
  dist[1] = 1.0L;
  c.ancestors = {NAN, static_cast<double>(n)};
  for (int t = 2; t <= generations; ++t) {
    std::vector<long double> next(n + 1, 0.0L);
    for (int x = 1; x <= n; ++x) {
      if (dist[x] == 0.0L) continue;
      const long double p = static_cast<long double>(x) / n;
      for (int k = 0; k <= n; ++k) {
        const long double ln_pmf = std::lgamma(n + 1.0L) - std::lgamma(k + 1.0L) - std::lgamma(n - k + 1.0L) +
                                   (k > 0 ? k * std::log(p) : 0.0L) + (n - k > 0 ? (n - k) * std::log1p(-p) : 0.0L);
        next[k] += dist[x] * std::exp(ln_pmf);
      }
    }
    next[0] += dist[0];
    dist = next;
    c.ancestors.push_back(static_cast<double>(n * (1.0L - dist[0])));
  }
  return c;
}

// Within kZ standard errors (tests/support/oracle.h).
void check_oracle(const FamilyCurves& c, const std::string& name, const std::vector<int>& gens,
                  const std::function<double(int)>& theory, const std::function<double(int)>& bug,
                  const char* bug_name) {
  test::check_oracle(c, name, gens, theory, bug, bug_name, kZ);
}
using test::check_theory_column;

void check_family(const FamilyCurves& c, double tr0, int d, const std::vector<int>& gens) {
  const int G = gens.back();
  const Closed ok = closed_forms(tr0, d, kH, kSamples, G);
  const Closed no_kernel = closed_forms(tr0, d, kH, kSamples, G, 0.0);  // planted: h^2 not added to the spread
  const double dh2 = d * kH * kH;
  auto var_ratio = [&](int t) { return (ok.spread[t] + dh2) / tr0; };
  check_oracle(
      c, "var_ratio", gens, var_ratio, [&](int t) { return (no_kernel.spread[t] + dh2) / tr0; },
      "the bandwidth not added to the spread of the draws");
  check_oracle(
      c, "mean_sq_err", gens, [&](int t) { return ok.mse[t]; },
      [&](int t) { return ok.mse[t] - (t - 1) * dh2 / kSamples; }, "the kernel's variance left out of the mean's walk");
  // Ancestors: a planted bug that draws from generation 1's points every time (no genealogy) keeps about
  // n (1 - (1 - 1/n)^n) of them.
  check_oracle(
      c, "ancestors", gens, [&](int t) { return ok.ancestors[t]; },
      [&](int t) { return t == 1 ? kSamples : kSamples * (1.0 - std::pow(1.0 - 1.0 / kSamples, kSamples)); },
      "parents always picked among generation 1's points");
  check_theory_column(c, "var_ratio", gens, var_ratio, 1e-12);
  check_theory_column(
      c, "mean_sq_err", gens, [&](int t) { return ok.mse[t]; }, 1e-12);
  check_theory_column(
      c, "ancestors", gens, [&](int t) { return ok.ancestors[t]; }, 1e-9);
}

TEST(KdeOracle, GaussianTruthSpreadMeanAndAncestors) {
  const auto c = run_family(gaussian_yaml(30), "cpu");
  check_family(c, 1.5, 2, {1, 2, 5, 12, 30});
}

// The two moons (truth.noise 0.1): tr Sigma_0 = 3/4 + 9/16 - 1/pi + 2 (0.1)^2 (docs/families/kde.md).
TEST(KdeOracle, MoonsSpreadMeanAndAncestors) {
  const std::string yaml =
      "name: oracle\nseed: 9\nchains: " + std::to_string(kChains) +
      "\ngenerations: 20\nmodel: {family: kde, bandwidth: " + std::to_string(kH) +
      "}\ntruth: {shape: moons, noise: 0.1}\nmetrics: {heldout: 50}\ndata: {samples: " + std::to_string(kSamples) +
      "}\n";
  const auto c = run_family(yaml, "cpu");
  check_family(c, 0.75 + 9.0 / 16.0 - 1.0 / M_PI + 0.02, 2, {1, 3, 8, 20});
}

}  // namespace

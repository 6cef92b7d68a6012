// The mixture family through the loop's family interface, on every backend:
// collapse of component spreads and of a rare mode (Shumailov et al. 2024,
// Nature 631:755, section on Gaussian mixtures), the rescue by accumulating
// data (Gerstgrasser et al. 2024), invariance to the thread count, and cpu vs
// cuda.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tests/support/backend_test.h"

namespace {

using namespace ouro;

class Gmm : public test::BackendTest {};

// Two equal, well-separated components, n = 1000 per generation, replace:
// each component is refitted to ~500 of its own synthetic points, so its
// variance shrinks like a Gaussian's under MLE, by about (1 - 1/500) per
// generation (0.67 after 200), while its log-spread random-walks (sd ~0.45
// after 200). Claim: the mean of component_std_k over 200 chains at
// generation 200 is below generation 1's by more than 4.5 standard errors,
// for both components.
TEST_P(Gmm, ComponentSpreadsShrinkUnderReplace) {
  const std::string yaml =
      "seed: 2\nchains: 200\ngenerations: 200\n"
      "model: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.5, 0.5], means: [[0, 0], [8, 0]], covs: [[1, 1], [[1, 0.4], [0.4, 0.6]]]}\n"
      "data: {samples: 1000, regime: replace}\n";
  const auto c = test::run_family(yaml, GetParam());
  for (const char* m : {"component_std_1", "component_std_2"}) {
    const Summary& a = c.at(1, m);
    const Summary& b = c.at(200, m);
    const double z = (a.mean - b.mean) / std::sqrt(a.se * a.se + b.se * b.se);
    EXPECT_GT(z, 4.5) << m << ": generation 1 " << a.mean << ", generation 200 " << b.mean;
  }
  EXPECT_EQ(c.at(200, "em_failures").mean, 0.0);
}

// A rare mode (weight 0.02, ~20 points per generation) under replace: its
// weight is a martingale that is absorbed at ~0, so the mean of
// rare_mode_mass stays near 1 (a few chains where the mode grew carry it)
// while most chains lose the mode. Claim: at generation 100 more than half
// of the 400 chains keep less than 10% of the rare mode's mass (the share's
// binomial z against 1/2 exceeds 4.5; about 70% do, z ~ 8). Under accumulate (all data kept), the
// mode survives: after 30 generations more than half of the chains keep more
// than half of its mass (same test).
double share(const test::FamilyCurves& c, int t, const std::string& metric, bool below, double level) {
  const int m = c.metric(metric);
  const std::int64_t n = c.config.chains;
  double k = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = c.values[t][m * n + i];
    k += (below ? v < level : v > level) ? 1 : 0;
  }
  return k / static_cast<double>(n);
}

const char* kRare =
    "seed: 3\nchains: CHAINS\ngenerations: GENS\nmodel: {family: gmm, components: 2, dim: 2}\n"
    "truth: {weights: [0.98, 0.02], means: [[0, 0], [4, 4]], covs: [[1, 1], [0.5, 0.5]]}\n"
    "data: {samples: 1000, regime: REGIME}\n";

std::string rare(const char* chains, const char* gens, const char* regime) {
  std::string s = kRare;
  s.replace(s.find("CHAINS"), 6, chains);
  s.replace(s.find("GENS"), 4, gens);
  s.replace(s.find("REGIME"), 6, regime);
  return s;
}

TEST_P(Gmm, RareModeDiesUnderReplaceAndSurvivesUnderAccumulate) {
  {
    const auto c = test::run_family(rare("400", "100", "replace"), GetParam(), 0, true);
    const double p = share(c, 100, "rare_mode_mass", true, 0.1);
    EXPECT_GT((p - 0.5) / std::sqrt(0.25 / 400), 4.5) << "replace: share of chains below 0.1 is " << p;
    EXPECT_LT(c.at(100, "rare_mode_mass").q50, c.at(1, "rare_mode_mass").q50);
  }
  {
    const auto c = test::run_family(rare("100", "30", "accumulate"), GetParam(), 0, true);
    const double p = share(c, 30, "rare_mode_mass", false, 0.5);
    EXPECT_GT((p - 0.5) / std::sqrt(0.25 / 100), 4.5) << "accumulate: share of chains above 0.5 is " << p;
    EXPECT_EQ(c.at(30, "dead_components").mean, 0.0);
  }
}

// The generation-0 row is the truth itself: exact values where they are
// defined so (the radius is found to a relative 1e-12, so tail_mass is 1 to
// ~1e-10).
TEST_P(Gmm, GenerationZeroIsTheTruth) {
  const auto c = test::run_family(rare("10", "1", "replace"), GetParam());
  EXPECT_EQ(c.at(0, "var_ratio").mean, 1.0);
  EXPECT_NEAR(c.at(0, "tail_mass").mean, 1.0, 1e-9);
  EXPECT_EQ(c.at(0, "rare_mode_mass").mean, 1.0);
  EXPECT_EQ(c.at(0, "l2_density").mean, 0.0);
  EXPECT_EQ(c.at(0, "min_weight").mean, 0.02);
  EXPECT_EQ(c.at(0, "component_std_2").mean, std::sqrt(0.5));
}

INSTANTIATE_TEST_SUITE_P(Backends, Gmm, ::testing::Values("cpu", "cuda"), test::backend_name);

// A three-component mixture with real data, in one regime, for the
// comparisons of runs below.
std::string three_components(const char* regime, int chains, int generations, int samples, const char* em) {
  return "seed: 9\nchains: " + std::to_string(chains) + "\ngenerations: " + std::to_string(generations) +
         "\nmodel: {family: gmm, components: 3, dim: 2, em: " + em +
         "}\n"
         "truth: {weights: [0.6, 0.3, 0.1], means: [[0, 0], [3, 0], [0, 3]], covs: [[1, 1], [0.5, 0.5], [0.3, 0.3]]}\n"
         "data: {samples: " +
         std::to_string(samples) + ", real_fraction: 0.25, regime: " + regime + "}\n";
}

// Every chain is handled whole by one thread, in a fixed order: per-chain
// values are bit-identical for 1 and 2 threads, in every regime, with
// restarts from k-means++ seeds and real data, a verifier, frequency weights,
// dedup.
TEST(GmmCpu, BitIdenticalForOneAndTwoThreads) {
  for (const char* regime : {"replace", "accumulate", "accumulate_subsample",
                             "replace, verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}",
                             "accumulate, age_decay: 0.7, tail_upsample: {factor: 3, quantile: 0.05}",
                             "replace, dedup: true, dedup_resolution: 0.3",
                             "accumulate_subsample, dedup: true, dedup_resolution: 0.3, "
                             "verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}"}) {
    const std::string yaml = three_components(regime, 40, 6, 150, "{init: kmeans++, restarts: 2}");
    const auto one = test::run_family(yaml, "cpu", 1, true);
    const auto two = test::run_family(yaml, "cpu", 2, true);
    for (std::size_t t = 0; t < one.values.size(); ++t)
      for (std::size_t i = 0; i < one.values[t].size(); ++i) {
        const double a = one.values[t][i], b = two.values[t][i];
        ASSERT_TRUE((std::isnan(a) && std::isnan(b)) || a == b)
            << regime << " generation " << t << " value " << i << ": " << a << " vs " << b;
      }
  }
}

// cpu vs cuda on the same chains. EM's reductions have the same order on
// both (kernels/gmm/gmm.h), sampling and EM use no libm, and neither build
// contracts to FMA: every metric is expected bit-identical except
// tail_mass and rare_mode_mass, whose quadratic-form and erfc evaluations
// use each platform's libm (agreement to 1e-9, the accuracy of that code).
TEST(GmmCpuVsCuda, SameChainsSameNumbers) {
  if (const std::string why = test::cuda_missing(); !why.empty()) GTEST_SKIP() << why;
  // Then replace with data.verifier (one thread per chain examines the
  // candidates on cuda), frequency weights (data.tail_upsample,
  // data.age_decay; thread 0 computes them on cuda), dedup (thread 0), and
  // the filters in the pooling regimes (thread 0 rebuilds every generation).
  // A 2 MB scratch budget sends the 500 chains through in slices of a few
  // dozen (training sets, positions, dedup's tables).
  const test::SmallCudaScratch small("2000000");
  for (const char* regime : {"replace", "accumulate", "accumulate_subsample",
                             "replace, verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}",
                             "replace, verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}, "
                             "tail_upsample: {factor: 4, quantile: 0.1}",
                             "accumulate, age_decay: 0.7, tail_upsample: {factor: 3, quantile: 0.05}",
                             "replace, dedup: true, dedup_resolution: 0.3",
                             "accumulate, age_decay: 0.7, dedup: true, dedup_resolution: 0.3, "
                             "verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}, "
                             "tail_upsample: {factor: 3, quantile: 0.05}",
                             "accumulate_subsample, age_decay: 0.7, "
                             "verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}"}) {
    const std::string yaml = three_components(regime, 500, 8, 300, "{restarts: 2}");
    const auto cpu = test::run_family(yaml, "cpu", 0, true);
    const auto gpu = test::run_family(yaml, "cuda", 0, true);
    const std::int64_t n = cpu.config.chains;
    int shown = 0;
    for (std::size_t t = 0; t < cpu.values.size(); ++t)
      for (std::size_t i = 0; i < cpu.values[t].size(); ++i) {
        const double a = cpu.values[t][i], b = gpu.values[t][i];
        if (std::isnan(a) && std::isnan(b)) continue;
        const std::string& name = cpu.names[i / n];
        const double tol = (name == "tail_mass" || name == "rare_mode_mass") ? 1e-9 : 0.0;
        if (!(std::abs(a - b) <= tol) && shown++ < 10)
          ADD_FAILURE() << regime << " generation " << t << " " << name << " chain " << i % n << ": cpu " << a
                        << " cuda " << b;
      }
  }
}

}  // namespace

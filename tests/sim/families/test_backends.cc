// cpu vs cuda on the same chains: the same draws and the same math, so the
// per-chain metrics agree up to floating-point rounding (different summation
// order in the reductions). Skipped where no CUDA device exists.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "sim/families/gaussian/gaussian_family.h"
#include "sim/io/checkpoint.h"
#include "tests/support/backend_test.h"

namespace {

using namespace ouro;

void compare(const std::string& yaml) {
  if (const std::string why = test::cuda_missing(); !why.empty()) GTEST_SKIP() << why;
  const auto cpu = test::run_family(yaml, "cpu", 0, true);
  const auto gpu = test::run_family(yaml, "cuda", 0, true);
  test::expect_same_chain_values(cpu, gpu, [&](int metric, double a, double b) {
    // Mixed tolerance: relative 1e-9 (rounding differences grow slowly
    // through generations of refitting), absolute 1e-12 near zero. The
    // d > 1 tail mass comes from an adaptive quadrature that stops at a
    // relative 1e-8 (kernels/core/quadform.h): a last-bit difference in its
    // input can move its result by that much, so it gets 1e-7.
    const bool tail = metric == kernels::kTailMass && cpu.config.settings<GaussianSettings>().dim > 1;
    return std::abs(a - b) <= 1e-12 + (tail ? 1e-7 : 1e-9) * std::abs(a);
  });
}

const char* kBase =
    "seed: 5\nchains: 3000\ngenerations: 15\nmodel: {family: gaussian, dim: DIM, estimator: mle}\n"
    "truth: {isotropic: 1.5}\ndata: {samples: 37, regime: REGIME, real_fraction: 0.2}\n";

std::string cfg(const char* dim, const char* regime) {
  std::string s = kBase;
  s.replace(s.find("DIM"), 3, dim);
  s.replace(s.find("REGIME"), 6, regime);
  return s;
}

TEST(CpuVsCuda, Replace1D) { compare(cfg("1", "replace")); }
TEST(CpuVsCuda, Accumulate3D) { compare(cfg("3", "accumulate")); }
TEST(CpuVsCuda, AccumulateSubsample2D) { compare(cfg("2", "accumulate_subsample")); }

// The synthetic-data filters (verifier with its refill, tail upsampling,
// dedup on a grid of 0.3): the same candidates kept with the same weights on
// both backends, under replace, under accumulate with age decay (the pool's
// per-chain weight and composition) and under accumulate_subsample with age
// decay (chosen points regenerated through their generation's filter), with
// dedup's tables in slices of about 100 chains (a 100 kB scratch budget).
TEST(CpuVsCuda, Filters1DAnd2D) {
  const test::SmallCudaScratch small("100000");
  for (const char* regime : {"replace", "accumulate", "accumulate_subsample"})
    for (const char* dim : {"1", "2"})
      for (const bool dedup : {false, true}) {
        std::string s = cfg(dim, regime);
        s.replace(
            s.find("real_fraction: 0.2}"), 19,
            std::string("real_fraction: 0.2, verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}, "
                        "tail_upsample: {factor: 2, quantile: 0.1}") +
                (dedup ? ", dedup: true, dedup_resolution: 0.3" : "") +
                (std::string(regime) != "replace" ? ", age_decay: 0.8}" : "}"));
        compare(s);
      }
}

// The linear regression family. Both backends draw the same normals and form the same per-point products; they sum
// G = X'X, u = X'r and v = r'r in other orders (the cpu a tile's points in four fixed lanes; cuda a warp's lanes
// and a shuffle tree at d <= 16, the points in order over tiles of 256 above) and subtract a real point's residual
// terms in another order. A sum of n <= 300 terms (the accumulate pool's up to 1800) then differs by about
// sqrt(n) 1e-16 relative, below 1e-14; the fit multiplies that by the condition number of the system (about 14
// here: d = 40 in n = 300 points, Sigma_x of condition 3), and the generations add theirs (each fit starts from
// the last): about 1e-12 after six generations. A relative 1e-9 leaves a thousandfold margin, and is still far
// below any real disagreement (a different point or weight moves a metric by its whole scale); 1e-12 absolute for
// the exact zeros (generation 0, data_age under replace).
bool regression_agree(double a, double b) { return std::abs(a - b) <= 1e-12 + 1e-9 * std::abs(a); }

// Sigma_x[i][j] = 0.5^|i - j| (condition number below 3): a full factor, so the inputs are L z, not a scaling.
std::string ar1_cov(int d) {
  std::string s = "[";
  for (int i = 0; i < d; ++i) {
    s += i ? ", [" : "[";
    for (int j = 0; j < d; ++j) {
      char v[32];
      std::snprintf(v, sizeof v, "%s%.17g", j ? ", " : "", std::pow(0.5, std::abs(i - j)));
      s += v;
    }
    s += "]";
  }
  return s + "]";
}

// Fitted noise, a fifth of the new points real; accumulate on a fixed design and with age decay, accumulate_subsample
// with age decay.
std::string regression_cfg(int d, const std::string& regime, int chains, int samples, bool full_cov) {
  std::string data = "{samples: " + std::to_string(samples) + ", regime: " + regime + ", real_fraction: 0.2";
  if (regime == "accumulate") data += ", design: fixed, age_decay: 0.8";
  if (regime == "accumulate_subsample") data += ", age_decay: 0.8";
  return "seed: 21\nchains: " + std::to_string(chains) +
         "\ngenerations: 6\nmodel: {family: linear_regression, noise: fitted}\n"
         "truth: {weights: {dim: " +
         std::to_string(d) + ", norm: 2}, noise_std: 0.5" + (full_cov ? ", design_cov: " + ar1_cov(d) : "") +
         "}\ndata: " + data + "}\n";
}

void compare_regression(const std::string& yaml) {
  if (const std::string why = test::cuda_missing(); !why.empty()) GTEST_SKIP() << why;
  const auto cpu = test::run_family(yaml, "cpu", 0, true);
  const auto gpu = test::run_family(yaml, "cuda", 0, true);
  test::expect_same_chain_values(cpu, gpu, [](int, double a, double b) { return regression_agree(a, b); });
}

// d = 3: replace and accumulate on cuda's warp-per-chain path (accumulate with a full Sigma_x), accumulate_subsample
// on its sliced path.
TEST(CpuVsCuda, Regression3D) {
  compare_regression(regression_cfg(3, "replace", 500, 37, false));
  compare_regression(regression_cfg(3, "accumulate", 500, 37, true));
  compare_regression(regression_cfg(3, "accumulate_subsample", 500, 37, false));
}

// d = 40: the sliced path, a diagonal Sigma_x (replace) and a full one (the batched product x = L z), generation 1's
// 300 real points in two tiles, slices of a few chains (a 1 MB scratch budget).
TEST(CpuVsCuda, Regression40D) {
  const test::SmallCudaScratch small("1000000");
  compare_regression(regression_cfg(40, "replace", 64, 300, false));
  compare_regression(regression_cfg(40, "accumulate", 64, 300, true));
  compare_regression(regression_cfg(40, "accumulate_subsample", 64, 300, true));
}

// A checkpoint of one backend resumes on the other: saved after generation 3, restored into a fresh run of the other
// backend, the remaining generations agree with the first backend's run that never stopped.
TEST(CpuVsCuda, RegressionCheckpointAcrossBackends) {
  if (const std::string why = test::cuda_missing(); !why.empty()) GTEST_SKIP() << why;
  namespace fs = std::filesystem;
  const fs::path p = fs::temp_directory_path() / ("ouroboros-regression-" + std::to_string(getpid()) + ".bin");
  for (const int d : {3, 40})
    for (const char* regime : {"accumulate", "accumulate_subsample"})
      for (const bool cpu_first : {true, false}) {
        const std::string yaml = regression_cfg(d, regime, 24, d == 3 ? 37 : 300, true);
        const Experiment ex = load_experiment_text(yaml, {});
        const PointConfig& c = ex.points.front().config;
        const std::size_t M = metric_names(c).size();
        const ChainBlock block{2, c.chains - 2};
        std::vector<double> a(M * block.count), b(M * block.count);
        auto whole = make_family_run(c, cpu_first ? "cpu" : "cuda", 0, block);
        whole->start(a.data());
        for (int g = 1; g <= 3; ++g) whole->advance(g, a.data());
        write_checkpoint(p, {{"format", kCheckpointFormat}}, [&](kernels::StateArchive& ar) { whole->state(ar); });
        auto other = make_family_run(c, cpu_first ? "cuda" : "cpu", 0, block);
        {
          CheckpointReader r(p);
          other->state(r);
          r.finish();
        }
        for (int g = 4; g <= c.generations; ++g) {
          whole->advance(g, a.data());
          other->advance(g, b.data());
          for (std::size_t k = 0; k < a.size(); ++k) {
            if (std::isnan(a[k]) && std::isnan(b[k])) continue;
            ASSERT_TRUE(regression_agree(a[k], b[k]))
                << "d " << d << " " << regime << (cpu_first ? " cpu then cuda" : " cuda then cpu") << ": generation "
                << g << " value " << k << ": " << a[k] << " vs " << b[k];
          }
        }
        EXPECT_EQ(other->workers().front().first_chain, 2);
      }
  fs::remove(p);
}

}  // namespace

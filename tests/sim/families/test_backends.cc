// cpu vs cuda on the same chains: the same draws and the same math, so the
// per-chain metrics agree up to floating-point rounding (different summation
// order in the reductions). Skipped where no CUDA device exists.
#include <gtest/gtest.h>

#include <cmath>

#include "sim/families/gaussian/gaussian_family.h"
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

}  // namespace

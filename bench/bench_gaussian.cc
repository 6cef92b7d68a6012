// Google Benchmark cases for the Gaussian family's generation step: one
// generation of `chains` chains with n points each, on each backend present.
// Reported: samples/s (points drawn and reduced per second). Each case first
// validates the step it times: generation 1's mean var_ratio must match its
// expectation (n-1)/n within 5 standard errors.
#include <benchmark/benchmark.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/core/quadform.h"
#include "kernels/gaussian/gaussian_backend.h"
#include "sim/analysis/aggregate.h"
#include "sim/engine/config.h"
#include "sim/families/gaussian/gaussian_family.h"
#include "sim/families/gaussian/gaussian_truth.h"
#include "sim/parallel/backend.h"

namespace {

using namespace ouro;

PointConfig config(std::int64_t chains, int n, kernels::Regime regime, int dim) {
  std::string yaml = "seed: 1\nchains: " + std::to_string(chains) +
                     "\ngenerations: 1000\nmodel: {family: gaussian, dim: " + std::to_string(dim) +
                     "}\ntruth: {isotropic: 1.0}\ndata: {samples: " + std::to_string(n) +
                     ", regime: " + regime_name(regime) + "}\n";
  return load_experiment_text(yaml, {}).points.front().config;
}

void validate(const std::vector<double>& metrics, std::int64_t chains, int n) {
  std::vector<double> scratch;
  const Summary s = summarize(metrics.data() + kernels::kVarRatio * chains, chains, scratch);
  const double expected = (n - 1.0) / n;
  if (std::abs(s.mean - expected) > 5 * s.se)
    throw std::runtime_error("generation step failed validation: var_ratio " + std::to_string(s.mean));
}

void BM_GenerationStep(benchmark::State& state, const std::string& backend, kernels::Regime regime, int dim) {
  if (backend == "cuda" && cuda_devices() == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const std::int64_t chains = state.range(0);
  const int n = static_cast<int>(state.range(1));
  const PointConfig c = config(chains, n, regime, dim);
  const auto& g_settings = c.settings<GaussianSettings>();
  kernels::GaussianBatchSpec spec{
      make_gaussian_truth(c), c.regime, c.generations, 0, c.chains, 0, c.seed, c.samples, 0, {}};
  auto b = make_gaussian_backend(backend, spec);
  std::vector<double> metrics(static_cast<std::size_t>(kernels::kNumGaussianMetrics) * chains);
  b->start(metrics.data());
  b->advance(kernels::GaussianStep{c.seed,
                                   g_settings.dim,
                                   c.samples,
                                   c.real_count,
                                   1,
                                   c.regime,
                                   g_settings.estimator,
                                   c.real_source,
                                   -1.0,
                                   {},
                                   {},
                                   1.0,
                                   {}},
             metrics.data());
  validate(metrics, chains, n);
  int g = 2;
  for (auto _ : state) {
    b->advance(kernels::GaussianStep{c.seed,
                                     g_settings.dim,
                                     c.samples,
                                     c.real_count,
                                     g,
                                     c.regime,
                                     g_settings.estimator,
                                     c.real_source,
                                     -1.0,
                                     {},
                                     {},
                                     1.0,
                                     {}},
               metrics.data());
    if (++g > c.generations) {  // start over rather than run past the planned generations
      state.PauseTiming();
      b->start(metrics.data());
      g = 1;
      state.ResumeTiming();
    }
  }
  state.counters["samples/s"] =
      benchmark::Counter(static_cast<double>(chains) * n * dim, benchmark::Counter::kIsIterationInvariantRate);
}

// The sampler alone: normals per second on one cpu thread.
void BM_NormalStream(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  std::uint32_t gen = 0;
  for (auto _ : state) {
    double s1 = 0, s2 = 0;
    kernels::cpu_zsums_1d(1, 2, ++gen, rng::kStreamSyntheticDraw, 0, n, s1, s2);
    benchmark::DoNotOptimize(s1);
    benchmark::DoNotOptimize(s2);
  }
  state.counters["normals/s"] =
      benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate);
}

// The d > 1 tail-mass evaluation (kernels/core/quadform.h), the costliest metric:
// the simulator's typical call, a 2-D model somewhat narrower than the truth
// and shifted, at the truth's 99th-percentile radius.
void BM_TailMass2D(benchmark::State& state) {
  const double lam[2] = {0.6, 0.9}, del[2] = {0.8, -0.4};
  const double x = 9.210340371976182;
  double i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(kernels::quadform_survival(2, lam, del, x * (1 + 1e-12 * ++i)));
  state.counters["calls/s"] = benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_TailMass2D)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_NormalStream)->Arg(100)->Arg(128)->Arg(1 << 16)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_GenerationStep, cpu_replace_1d, std::string("cpu"), kernels::Regime::kReplace, 1)
    ->Args({10000, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_GenerationStep, cpu_accumulate_1d, std::string("cpu"), kernels::Regime::kAccumulate, 1)
    ->Args({10000, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_GenerationStep, cpu_replace_2d, std::string("cpu"), kernels::Regime::kReplace, 2)
    ->Args({10000, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_GenerationStep, cuda_replace_1d, std::string("cuda"), kernels::Regime::kReplace, 1)
    ->Args({10000, 100})
    ->Args({100000, 1000})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_GenerationStep, cuda_replace_2d, std::string("cuda"), kernels::Regime::kReplace, 2)
    ->Args({100000, 100})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();

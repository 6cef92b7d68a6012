// Google Benchmark cases for the linear regression family's generation step: one generation of `chains` chains
// with T points each in d dimensions, on each backend present. Reported: points/s (points drawn and reduced per
// second; each point is d + 1 normals). Each case first validates the step it times: generation 1's mean
// test_error must match sigma0^2 d / (T - d - 1) within 5 standard errors.
#include <benchmark/benchmark.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/linear_regression/linear_regression_backend.h"
#include "sim/analysis/aggregate.h"
#include "sim/engine/config.h"
#include "sim/families/linear_regression/linear_regression_family.h"
#include "sim/parallel/backend.h"

namespace {

using namespace ouro;

PointConfig config(std::int64_t chains, int n, int dim, const char* regime, const char* design) {
  const std::string yaml =
      "seed: 1\nchains: " + std::to_string(chains) +
      "\ngenerations: 1000\nmodel: {family: linear_regression}\ntruth: {weights: {dim: " + std::to_string(dim) +
      ", norm: 1.0}}\ndata: {samples: " + std::to_string(n) + ", regime: " + regime + ", design: " + design + "}\n";
  return load_experiment_text(yaml, {}).points.front().config;
}

kernels::RegressionStep step(const PointConfig& c, int generation) {
  const auto& g = c.settings<RegressionSettings>();
  return {c.seed,        g.dim(),  c.samples,   c.real_count, generation, c.regime,
          c.real_source, g.design, g.estimator, g.ridge,      g.noise,    c.age_decay};
}

void BM_RegressionStep(benchmark::State& state, const std::string& backend, const char* regime, const char* design) {
  if (backend == "cuda" && cuda_devices() == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const std::int64_t chains = state.range(0);
  const int n = static_cast<int>(state.range(1)), dim = static_cast<int>(state.range(2));
  const PointConfig c = config(chains, n, dim, regime, design);
  kernels::RegressionBatchSpec spec{make_regression_truth(c), c.regime, c.generations, 0, c.chains, 0};
  auto b = make_regression_backend(backend, spec);
  std::vector<double> metrics(static_cast<std::size_t>(kernels::kNumRegressionMetrics) * chains), scratch;
  b->start(metrics.data());
  b->advance(step(c, 1), metrics.data());
  const Summary s = summarize(metrics.data() + kernels::kTestError * chains, chains, scratch);
  const double expected = static_cast<double>(dim) / (n - dim - 1.0);
  if (std::abs(s.mean - expected) > 5 * s.se)
    throw std::runtime_error("generation step failed validation: test_error " + std::to_string(s.mean));
  int g = 2;
  for (auto _ : state) {
    b->advance(step(c, g), metrics.data());
    if (++g > c.generations) {  // start over rather than run past the planned generations
      state.PauseTiming();
      b->start(metrics.data());
      g = 1;
      state.ResumeTiming();
    }
  }
  state.counters["points/s"] =
      benchmark::Counter(static_cast<double>(chains) * n, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

// {chains, T, d}: the side-by-side experiment's step (bench/side_by_side_regression.sh), then larger d.
BENCHMARK_CAPTURE(BM_RegressionStep, cpu_replace_fresh, std::string("cpu"), "replace", "fresh")
    ->Args({10000, 100, 10})
    ->Args({1000, 400, 100})
    ->Args({100, 1000, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_RegressionStep, cpu_replace_fixed, std::string("cpu"), "replace", "fixed")
    ->Args({10000, 100, 10})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_RegressionStep, cpu_accumulate_fixed, std::string("cpu"), "accumulate", "fixed")
    ->Args({10000, 100, 10})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_RegressionStep, cuda_replace_fresh, std::string("cuda"), "replace", "fresh")
    ->Args({10000, 100, 10})
    ->Args({100000, 100, 10})
    ->Args({1000, 400, 100})
    ->Args({1000, 1000, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();

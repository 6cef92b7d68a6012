// Google Benchmark cases for the kernel density family.
//   BM_KdeHeldoutNll: the held-out NLL's n-body sum alone (M held-out points against m centres, one thread);
//     reported: pair evaluations/s. Validated first against a direct long-double sum (relative 1e-12).
//   BM_KdeGeneration: one generation of `chains` chains of the moons experiment (n = 1000 points, h = 0.5,
//     2000 held-out points, replace) on each backend present, all threads; reported: pair evaluations/s and
//     chain-generations/s (the unit of bench/side_by_side_kde.sh). Validated first: generation 1's mean var_ratio
//     against its theory within 5 standard errors.
#include <benchmark/benchmark.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/kde/kde_backend.h"
#include "sim/analysis/aggregate.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"
#include "sim/families/kde/kde_family.h"
#include "sim/parallel/backend.h"

namespace {

using namespace ouro;

void BM_KdeHeldoutNll(benchmark::State& state) {
  const std::int64_t M = state.range(0), m = state.range(1);
  const int d = static_cast<int>(state.range(2));
  std::vector<double> x(M * d), c(m * d);
  for (std::int64_t i = 0; i < M * d; ++i) x[i] = std::sin(0.37 * i);
  for (std::int64_t j = 0; j < m * d; ++j) c[j] = std::cos(0.53 * j);
  const double h = 0.5;
  {
    long double nll = 0.0L;
    for (std::int64_t i = 0; i < M; ++i) {
      long double p = 0.0L;
      for (std::int64_t j = 0; j < m; ++j) {
        long double r2 = 0.0L;
        for (int a = 0; a < d; ++a) r2 += (x[i * d + a] - c[j * d + a]) * (x[i * d + a] - c[j * d + a]);
        p += std::exp(-r2 / (2.0L * h * h)) / std::pow(2.0L * M_PIl * h * h, d / 2.0L) / m;
      }
      nll -= std::log(p) / M;
    }
    const double got = kernels::cpu_kde_heldout_nll(x.data(), M, c.data(), nullptr, m, d, h);
    if (std::abs(got - static_cast<double>(nll)) > 1e-12 * std::abs(static_cast<double>(nll)))
      throw std::runtime_error("BM_KdeHeldoutNll: the kernel disagrees with the direct sum");
  }
  for (auto _ : state) benchmark::DoNotOptimize(kernels::cpu_kde_heldout_nll(x.data(), M, c.data(), nullptr, m, d, h));
  state.counters["pairs/s"] =
      benchmark::Counter(static_cast<double>(M) * m * state.iterations(), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_KdeHeldoutNll)
    ->Args({2000, 1000, 2})
    ->Args({2000, 1000, 8})
    ->Args({2000, 10000, 2})
    ->Unit(benchmark::kMillisecond);

void BM_KdeGeneration(benchmark::State& state, const std::string& backend) {
  if (backend == "cuda" && cuda_devices() == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const std::int64_t chains = state.range(0);
  const std::string yaml = "seed: 1\nchains: " + std::to_string(chains) +
                           "\ngenerations: 1000\nmodel: {family: kde, bandwidth: 0.5}\ntruth: {shape: moons, noise: "
                           "0.1}\nmetrics: {heldout: 2000}\ndata: {samples: 1000}\n";
  const PointConfig c = load_experiment_text(yaml, {}).points.front().config;
  auto b = make_kde_backend(backend, make_kde_spec(c, 0, ChainBlock{0, chains}));
  std::vector<double> metrics(static_cast<std::size_t>(kernels::kKdeNumMetrics) * chains), scratch;
  b->start(metrics.data());
  b->advance(1, metrics.data());
  const Summary s = summarize(metrics.data() + kernels::kKdeVarRatio * chains, chains, scratch);
  const double expected = *theory(c, kernels::kKdeVarRatio, 1);
  if (std::abs(s.mean - expected) > 5 * s.se)
    throw std::runtime_error("BM_KdeGeneration: generation 1's var_ratio is off its theory");
  int g = 1;
  for (auto _ : state) b->advance(++g, metrics.data());
  const double gens = static_cast<double>(chains) * state.iterations();
  state.counters["chain-generations/s"] = benchmark::Counter(gens, benchmark::Counter::kIsRate);
  state.counters["pairs/s"] = benchmark::Counter(gens * 2000.0 * 1000.0, benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_KdeGeneration, cpu, std::string("cpu"))->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_KdeGeneration, cuda, std::string("cuda"))->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// Google Benchmark cases for the mixture family.
//   BM_EStep       one E-step (responsibilities and sufficient statistics) of
//                  one chain on one cpu thread: the vectorised cpu_estep and
//                  the serial lane order it reproduces; points x components / s
//   BM_Generation  one generation (training set, EM with its iterations,
//                  metrics) of `chains` chains, K = 4, d = 2, n = 1000, replace,
//                  on each backend present; chain-generations / s and the
//                  mean EM iterations (so that speed cannot come from doing
//                  fewer iterations)
// The cuda backend uses register-resident lanes (one thread per lane, one
// block per chain); there is no cuBLAS path for large d.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/gmm/gmm.h"
#include "kernels/gmm/gmm_backend.h"
#include "sim/analysis/aggregate.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"
#include "sim/families/gmm/gmm_family.h"
#include "sim/parallel/backend.h"

namespace {

using namespace ouro;

// The sources' folder: compiled in, overridable from the environment for a
// build folder carried to another machine (scripts/gpu_check.sh).
std::string source_dir() {
  const char* v = std::getenv("OUROBOROS_SOURCE_DIR");
  return v && *v ? v : OUROBOROS_SOURCE_DIR;
}

PointConfig bench_config(std::int64_t chains) {
  Experiment ex = load_experiment(source_dir() + "/experiments/gmm/bench_k4.yaml",
                                  {"chains=" + std::to_string(chains), "generations=1000"});
  return ex.points.front().config;
}

void BM_EStep(benchmark::State& state, bool vectorised) {
  const PointConfig c = bench_config(1);
  const kernels::GmmTruth truth = make_gmm_truth(c);
  const kernels::GmmCView m = kernels::truth_view(truth);
  const std::int64_t n = state.range(0);
  const int d = c.settings<GmmSettings>().dim;
  std::vector<double> x(n * d);
  for (std::int64_t i = 0; i < n; ++i) kernels::gmm_draw(1, 0, 1, true, i, m, x.data() + i * d);
  const int S = kernels::em_stats_size(m.K, m.d);
  std::vector<double> lanes(kernels::kEmLanes * S), stats(S);
  for (auto _ : state) {
    if (vectorised)
      kernels::cpu_estep(kernels::CpuPass::kSoft, m, false, x.data(), nullptr, n, lanes.data(), stats.data());
    else
      kernels::em_estep_serial(kernels::LanePass::kSoft, m, false, x.data(), nullptr, n,
                               kernels::EmScratch{lanes.data(), stats.data()});
    benchmark::DoNotOptimize(stats.data());
  }
  state.counters["points*components/s"] =
      benchmark::Counter(static_cast<double>(n) * m.K, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Generation(benchmark::State& state, const std::string& backend) {
  if (backend == "cuda" && cuda_devices() == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const std::int64_t chains = state.range(0);
  const PointConfig c = bench_config(chains);
  const auto names = metric_names(c);
  auto run = make_family_run(c, backend, 0, ouro::ChainBlock{0, c.chains});
  std::vector<double> metrics(names.size() * chains), scratch;
  run->start(metrics.data());
  int g = 1;
  double iters = 0.0, steps = 0.0;
  for (auto _ : state) {
    run->advance(g, metrics.data());
    state.PauseTiming();
    const Summary s = summarize(metrics.data() + kernels::kGmmEmIters * chains, chains, scratch);
    const Summary f = summarize(metrics.data() + kernels::kGmmEmFailures * chains, chains, scratch);
    if (f.mean != 0.0) throw std::runtime_error("EM failed in the benchmark");
    iters += s.mean;
    steps += 1.0;
    if (++g > c.generations) {  // start over rather than run past the planned generations
      run->start(metrics.data());
      g = 1;
    }
    state.ResumeTiming();
  }
  state.counters["chain-generations/s"] =
      benchmark::Counter(static_cast<double>(chains), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["mean_em_iters"] = iters / steps;
}

}  // namespace

BENCHMARK_CAPTURE(BM_EStep, cpu_vectorised, true)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_EStep, serial_lanes, false)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Generation, cpu, std::string("cpu"))->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Generation, cuda, std::string("cuda"))
    ->Arg(1000)
    ->Arg(10000)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

BENCHMARK_MAIN();

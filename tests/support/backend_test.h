// Test support: run a config's first sweep point on a backend and keep every
// generation's aggregates; skip cuda where it cannot run.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/gaussian/gaussian.h"
#include "sim/analysis/aggregate.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"
#include "sim/families/gaussian/gaussian_truth.h"
#include "sim/parallel/backend.h"

namespace ouro::test {

using Row = std::array<Summary, kernels::kNumGaussianMetrics>;

struct Curves {
  PointConfig config;
  std::vector<Row> gen;                     // gen[t][metric]
  std::vector<std::vector<double>> values;  // values[t] = [metric][chain] of the last run
};

// Any family's curves through the loop's family interface: gen[t][metric]
// (metric in metric_names order), and every generation's per-chain values
// when keep_values.
struct FamilyCurves {
  PointConfig config;
  std::vector<std::string> names;
  std::vector<std::vector<Summary>> gen;
  std::vector<std::vector<double>> values;
  int metric(const std::string& name) const {
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i] == name) return static_cast<int>(i);
    ADD_FAILURE() << "no metric " << name;
    return 0;
  }
  const Summary& at(int t, const std::string& name) const { return gen[t][metric(name)]; }
};

inline FamilyCurves run_family(const std::string& yaml, const std::string& backend, int threads = 0,
                               bool keep_values = false) {
  const Experiment ex = load_experiment_text(yaml, {});
  FamilyCurves out;
  out.config = ex.points.front().config;
  const PointConfig& c = out.config;
  out.names = metric_names(c);
  const int M = static_cast<int>(out.names.size());
  auto run = make_family_run(c, backend, threads, ChainBlock{0, c.chains});
  std::vector<double> m(static_cast<std::size_t>(M) * c.chains), scratch;
  for (int g = 0; g <= c.generations; ++g) {
    if (g == 0) run->start(m.data());
    else run->advance(g, m.data());
    std::vector<Summary> row;
    for (int k = 0; k < M; ++k) row.push_back(summarize(m.data() + k * c.chains, c.chains, scratch));
    out.gen.push_back(row);
    if (keep_values) out.values.push_back(m);
  }
  return out;
}

// A Gaussian config's curves, each generation's row indexed by the
// GaussianMetric slots (run_family's order for that family).
inline Curves run_curves(const std::string& yaml, const std::string& backend, int threads = 0,
                         bool keep_values = false) {
  FamilyCurves f = run_family(yaml, backend, threads, keep_values);
  Curves out{f.config, {}, std::move(f.values)};
  for (const auto& g : f.gen) {
    Row row;
    for (std::size_t k = 0; k < g.size() && k < row.size(); ++k) row[k] = g[k];  // (the sample-based only if asked)
    out.gen.push_back(row);
  }
  return out;
}

// Why this build or machine cannot run the cuda backend, or empty.
inline std::string cuda_missing() {
  if (!cuda_built()) return "this build has no cuda backend";
  if (cuda_devices() == 0) return "no CUDA device on this machine";
  return "";
}

// Parameterises a test over backends; cuda instances skip (visibly) where
// this build has no cuda backend or the machine no device.
class BackendTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "cuda" && !cuda_missing().empty()) GTEST_SKIP() << cuda_missing();
  }
};

// Names each instance by its backend (Suite.Test/cuda), so that
// --gtest_filter='*cuda*' selects every cuda instance (scripts/gpu_check.sh).
inline std::string backend_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

// The cuda backends' scratch budget (kernels/cuda/cuda_info.h) shrunk for a scope,
// so that the chains go through the kernels in many slices.
struct SmallCudaScratch {
  explicit SmallCudaScratch(const char* bytes) { setenv("OUROBOROS_CUDA_SCRATCH_BYTES", bytes, 1); }
  ~SmallCudaScratch() { unsetenv("OUROBOROS_CUDA_SCRATCH_BYTES"); }
  SmallCudaScratch(const SmallCudaScratch&) = delete;
  SmallCudaScratch& operator=(const SmallCudaScratch&) = delete;
};

// Compares two runs of the same chains value by value (values[t][metric *
// chains + chain], as run_family keeps them): agree(metric, a, b) judges a
// pair (two NaN always agree); the first ten disagreements are reported.
template <class Agree>
void expect_same_chain_values(const FamilyCurves& cpu, const FamilyCurves& gpu, Agree&& agree) {
  ASSERT_EQ(cpu.values.size(), gpu.values.size());
  const auto chains = static_cast<std::size_t>(cpu.config.chains);
  int shown = 0;
  std::size_t mismatches = 0;
  for (std::size_t t = 0; t < cpu.values.size(); ++t)
    for (std::size_t i = 0; i < cpu.values[t].size(); ++i) {
      const double a = cpu.values[t][i], b = gpu.values[t][i];
      if ((std::isnan(a) && std::isnan(b)) || agree(static_cast<int>(i / chains), a, b)) continue;
      ++mismatches;
      if (shown++ < 10)
        ADD_FAILURE() << "generation " << t << " metric " << cpu.names[i / chains] << " chain " << i % chains
                      << ": cpu " << a << " cuda " << b;
    }
  EXPECT_EQ(mismatches, 0u);
}

// The z-score of an observed mean against an expectation.
inline double zscore(const Summary& s, double expected) { return (s.mean - expected) / s.se; }

}  // namespace ouro::test

// The small interface between the loop (sim/) and a backend's launch code for the linear regression family. Plain
// C++: sim/ never includes CUDA headers; the cuda implementation lives in linear_regression_cuda.cu and only nvcc
// compiles it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/core/chain_backend.h"
#include "kernels/linear_regression/linear_regression.h"

namespace ouro::kernels {

// The truth on the host; each backend keeps its own copy of the arrays and views them as a RegressionTruth.
struct RegressionTruthData {
  int d = 1;
  double sigma0 = 1.0;
  std::vector<double> w0;    // [d]
  std::vector<double> cov;   // [d * d] Sigma_x, symmetric positive definite
  std::vector<double> chol;  // [d * d] its lower Cholesky factor
  bool diagonal = false;
  double w0_norm2 = 1.0;
  // A view of these arrays (valid while they live).
  RegressionTruth view() const { return {d, sigma0, w0.data(), cov.data(), chol.data(), diagonal, w0_norm2}; }
};

// One batch of chains of one sweep point, resident on a backend for all generations.
struct RegressionBatchSpec {
  RegressionTruthData truth;
  Regime regime;
  int generations;
  std::uint32_t chain_begin;  // global id of the batch's first chain
  std::int64_t batch;         // number of chains
  int threads;                // cpu: OpenMP threads (0 = all); cuda: ignored
};

class RegressionBackend {
 public:
  virtual ~RegressionBackend() = default;
  // Generation 0 (every chain is the truth); metrics to h_metrics as [kNumRegressionMetrics][batch].
  virtual void start(double* h_metrics) = 0;
  // Fits generation step.generation (>= 1) from the previous one.
  virtual void advance(const RegressionStep& step, double* h_metrics) = 0;
  virtual std::vector<WorkerRange> workers() const = 0;
  // As ChainBackend::state (kernels/core/chain_backend.h).
  virtual void state(StateArchive& ar) = 0;
};

// The cpu backend's vectorised normals first .. first + count - 1 of one stream: the same values as
// stream_normals (exposed for its test).
void cpu_stream_normals(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::uint32_t stream,
                        std::uint64_t first, std::int64_t count, double* out);

// Normals first, first + stride, ..., count of them, of one stream: the same values as stream_normal (a fixed
// design's noise, one normal of each point's d + 1).
void cpu_strided_normals(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::uint32_t stream,
                         std::uint64_t first, std::uint64_t stride, std::int64_t count, double* out);

std::unique_ptr<RegressionBackend> make_regression_cpu(const RegressionBatchSpec& spec);
// Defined only in builds with the cuda backend (OUROBOROS_HAVE_CUDA).
std::unique_ptr<RegressionBackend> make_regression_cuda(const RegressionBatchSpec& spec);

}  // namespace ouro::kernels

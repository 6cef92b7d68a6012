// The small interface between the loop (sim/) and a backend's launch code for
// the Gaussian family. Plain C++: sim/ never includes CUDA headers; the cuda
// implementation lives in gaussian_cuda.cu and only nvcc compiles it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/core/chain_backend.h"
#include "kernels/gaussian/gaussian.h"

namespace ouro::kernels {

// One batch of chains of one sweep point, resident on a backend for all
// generations.
struct GaussianBatchSpec {
  GaussianTruth truth;
  Regime regime;
  int generations;
  std::uint32_t chain_begin;  // global id of the batch's first chain
  std::int64_t batch;         // number of chains
  int threads;                // cpu: OpenMP threads (0 = all); cuda: ignored
  // The model sample's streams and size (kernels/core/chain_backend.h), and the sample-based metrics
  // (kernels/core/sample_metrics.h) asked for: bit k for SampleMetric k, against the held-out side (empty when none).
  std::uint32_t seed = 0;
  int samples = 0;  // n, the model sample's points (data.samples)
  unsigned sample_metrics = 0;
  HeldoutSideStore heldout_side;
};

class GaussianBackend {
 public:
  virtual ~GaussianBackend() = default;
  // Generation 0 (every chain is the truth); metrics to h_metrics as
  // [gaussian_metric_rows(spec.sample_metrics)][batch].
  virtual void start(double* h_metrics) = 0;
  // Fits generation step.generation (>= 1) from the previous one.
  virtual void advance(const GaussianStep& step, double* h_metrics) = 0;
  virtual std::vector<WorkerRange> workers() const = 0;
  // As ChainBackend::state (kernels/core/chain_backend.h).
  virtual void state(StateArchive& ar) = 0;
  // As ChainBackend::model_sample and point_dim: N(mu_t, Sigma_t) of local chain `chain` at the last generation
  // done by start() or advance() (gaussian_model_sample; a backend restored from a checkpoint knows its generation
  // from its next advance()); a degenerate chain's points are NaN.
  virtual bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) = 0;
  virtual int point_dim() const = 0;
};

// The cpu backend's vectorised d = 1 z-sums over normals [i0, i1) of one
// stream: the same draws as accumulate_zsums_1d (exposed for its test).
void cpu_zsums_1d(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::uint32_t stream,
                  std::int64_t i0, std::int64_t i1, double& zsum, double& zsq);

std::unique_ptr<GaussianBackend> make_gaussian_cpu(const GaussianBatchSpec& spec);
// Defined only in builds with the cuda backend (OUROBOROS_HAVE_CUDA).
std::unique_ptr<GaussianBackend> make_gaussian_cuda(const GaussianBatchSpec& spec);

}  // namespace ouro::kernels

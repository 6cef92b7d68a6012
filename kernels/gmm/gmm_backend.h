// The interface between the loop (sim/) and a backend's launch code for the
// Gaussian-mixture family. Plain C++: the cuda implementation lives in
// gmm_cuda.cu and only nvcc compiles it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/core/chain_backend.h"
#include "kernels/gmm/gmm.h"

namespace ouro::kernels {

// One batch of chains of one sweep point, resident on a backend for all
// generations.
struct GmmBatchSpec {
  GmmTruth truth;
  std::vector<double> heldout;  // metrics.heldout real points (x d), the same for every chain
  int K;                        // model components
  EmSettings em;
  Regime regime;
  RealSource real_source;
  int generations;
  int samples;
  int real_count;
  std::uint32_t seed;
  std::uint32_t chain_begin;  // global id of the batch's first chain
  std::int64_t batch;         // number of chains
  int threads;                // cpu: OpenMP threads (0 = all); cuda: ignored
  GmmVerifier verifier;       // data.verifier
  GmmWeighting weighting;     // data.tail_upsample, data.age_decay
  Dedup dedup;                // data.dedup
  // The sample-based metrics (kernels/core/sample_metrics.h) asked for: bit k for SampleMetric k, each chain's model
  // sample of `samples` points against the held-out side (empty when none).
  unsigned sample_metrics = 0;
  HeldoutSideStore heldout_side;
};

// Metrics as [gmm_metric_rows(K, sample_metrics)][batch]. model_sample (kernels/core/chain_backend.h) draws the
// truth's mixture at generation 0 and the chain's fit after (gmm_model_sample), NaN for a failed chain, at the last
// generation done by start() or advance() (a backend restored from a checkpoint knows its generation from its next
// advance()).
using GmmBackend = ChainBackend;

// The cpu backend's vectorised E-step: the statistics of em_estep_serial
// (bit-identical; exposed for its test), or only the log-likelihood sum
// (stats[em_stats_size - 1]), with weights W (null: every weight 1).
// acc: kEmLanes * em_stats_size doubles.
enum class CpuPass : int { kSoft, kHard, kLoglikOnly };
void cpu_estep(CpuPass pass, const GmmCView& m, bool diag, const double* X, const double* W, std::int64_t count,
               double* acc, double* stats);

std::unique_ptr<GmmBackend> make_gmm_cpu(const GmmBatchSpec& spec);
// Defined only in builds with the cuda backend (OUROBOROS_HAVE_CUDA).
std::unique_ptr<GmmBackend> make_gmm_cuda(const GmmBatchSpec& spec);

}  // namespace ouro::kernels

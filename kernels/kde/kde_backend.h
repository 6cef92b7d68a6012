// The interface between the loop (sim/) and a backend's launch code for the kernel density family. Plain C++: the
// cuda implementation lives in kde_cuda.cu and only nvcc compiles it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/core/chain_backend.h"
#include "kernels/core/sample_metrics.h"
#include "kernels/kde/kde.h"

namespace ouro::kernels {

// One batch of chains of one sweep point, resident on a backend for all generations.
struct KdeBatchSpec {
  GmmTruth truth;               // a mixture (a Gaussian is one component) or a shape (truth.shape)
  std::vector<double> heldout;  // metrics.heldout real points (x d), the same for every chain
  BandwidthRule rule = BandwidthRule::kFixed;
  double bandwidth = 1.0;  // the fixed h
  Regime regime = Regime::kReplace;
  RealSource real_source = RealSource::kFresh;
  int generations = 1;
  int samples = 2;
  int real_count = 0;
  std::uint32_t seed = 1;
  std::uint32_t chain_begin = 0;  // global id of the batch's first chain
  std::int64_t batch = 0;         // number of chains
  int threads = 0;                // cpu: OpenMP threads (0 = all); cuda: ignored
  GmmVerifier verifier;           // data.verifier (mixture truths)
  GmmWeighting weighting;         // data.tail_upsample (mixture truths), data.age_decay
  Dedup dedup;                    // data.dedup
  unsigned sample_based = 0;      // metrics.sample_based: bit k for SampleMetric k
  HeldoutSideStore side;          // the held-out side of the sample-based metrics (when asked for)
};

// The points a chain stores: the pool of every point so far under accumulate and accumulate_subsample, the newest
// generation's under replace.
inline std::int64_t kde_pool_capacity(const KdeBatchSpec& s) {
  return s.regime == Regime::kReplace ? s.samples : static_cast<std::int64_t>(s.generations) * s.samples;
}
// The training set a chain stores besides its pool (none under accumulate, whose training set is the pool).
inline std::int64_t kde_train_capacity(const KdeBatchSpec& s) {
  return s.regime == Regime::kAccumulate ? 0 : s.samples;
}

// Generation t's step of a batch (the per-chain code's settings).
inline KdeStep kde_step(const KdeBatchSpec& spec, int t) {
  KdeStep s{};
  s.seed = spec.seed;
  s.d = spec.truth.d;
  s.samples = spec.samples;
  s.real_count = spec.real_count;
  s.generation = t;
  s.regime = spec.regime;
  s.real_source = spec.real_source;
  s.rule = spec.rule;
  s.bandwidth = spec.bandwidth;
  s.verifier = spec.verifier;
  s.weighting = spec.weighting;
  s.dedup = spec.dedup;
  return s;
}

// Generation 0's metrics, the same in every chain (the model is the truth), into out[kKdeNumMetrics]: the truth's
// held-out NLL (NaN for a shape, whose density has no closed form), var_ratio 1, mean_sq_err, synthetic_share and
// data_age 0, NaN for the rest (the sample-based metrics are each chain's own).
inline void kde_truth_metrics(const KdeBatchSpec& spec, double* out) {
  for (int k = 0; k < kKdeNumMetrics; ++k) out[k] = NAN;
  if (!is_shape(spec.truth)) {
    const GmmCView tv = truth_view(spec.truth);
    double lp[kGmmMaxComponents], s = 0.0;
    const std::int64_t M = static_cast<std::int64_t>(spec.heldout.size()) / spec.truth.d;
    for (std::int64_t i = 0; i < M; ++i) s -= gmm_log_density(tv, false, spec.heldout.data() + i * spec.truth.d, lp);
    out[kKdeHeldoutNll] = s / static_cast<double>(M);
  }
  out[kKdeVarRatio] = 1.0;
  out[kKdeMeanSqErr] = 0.0;
  out[kKdeSyntheticShare] = 0.0;
  out[kKdeDataAge] = 0.0;
}

// mean -ln p(x) over the M held-out points x (row-major, M x d) of the kernel density estimate with centres c
// (m x d) and log-weights lw (null: equal weights) at bandwidth h, as the cpu backend computes it (exposed for its
// tests): per held-out point the largest log-term first, then the sum of exp(term - largest) in eight fixed lanes
// (j mod 8) combined in a fixed tree, so the bits do not depend on the vector width.
double cpu_kde_heldout_nll(const double* x, std::int64_t M, const double* c, const double* lw, std::int64_t m, int d,
                           double h);

std::unique_ptr<ChainBackend> make_kde_cpu(const KdeBatchSpec& spec);
// Defined only in builds with the cuda backend (OUROBOROS_HAVE_CUDA).
std::unique_ptr<ChainBackend> make_kde_cuda(const KdeBatchSpec& spec);

}  // namespace ouro::kernels

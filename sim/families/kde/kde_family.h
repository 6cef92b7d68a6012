// The kernel density family (model.family: kde): Gaussian kernel density estimates retrained on their own samples,
// against a Gaussian, mixture or shape truth (docs/families/kde.md).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/kde/kde_backend.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"

namespace ouro {

// What the family reads of its own keys.
struct KdeSettings : FamilySettings {
  int dim = 2;  // the truth's dimension
  kernels::BandwidthRule rule = kernels::BandwidthRule::kFixed;
  double bandwidth = 1.0;             // model.bandwidth, when a number
  kernels::ShapeTruth shape;          // a shape truth (kind kNone: a mixture truth)
  std::vector<double> truth_weights;  // a mixture truth (a Gaussian truth is one component)
  std::vector<double> truth_means;
  std::vector<double> truth_covs;
  int heldout = 1000;         // metrics.heldout
  unsigned sample_based = 0;  // metrics.sample_based: bit k for kernels::SampleMetric k
};

// The truth as the kernels see it (a mixture; computed once per point).
kernels::GmmTruth make_kde_truth(const PointConfig& c);
// The fixed held-out set: metrics.heldout real points (x dim, row-major), the same for every chain
// (kernels/core/rng.h, kHeldoutChain).
std::vector<double> make_kde_heldout(const PointConfig& c, const kernels::GmmTruth& truth);
// E[ancestors_t] for t = 0..generations under replace without real data: n P(X_t > 0) for the binomial chain
// X_1 = 1, X_{s+1} ~ Binomial(n, X_s / n), exactly (sim/families/ngram/wright_fisher.h); shorter where the exact
// computation's budget ends.
std::vector<double> kde_ancestor_expectation(std::int64_t n, int generations);

// The backend of a batch of chains (the cpu or the cuda one), for the benchmarks and tests that drive it directly.
std::unique_ptr<kernels::ChainBackend> make_kde_backend(const std::string& backend, const kernels::KdeBatchSpec& spec);
// The batch spec of a point's chains [first, first + count).
kernels::KdeBatchSpec make_kde_spec(const PointConfig& c, int threads, ChainBlock block);

}  // namespace ouro

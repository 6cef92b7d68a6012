// The Gaussian-mixture family (model.family: gmm): mixtures of K <= 16 Gaussians in d <= 8 dimensions fitted by EM,
// against a mixture truth or a toy shape's law (docs/families/gmm.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/gmm/gmm_backend.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"

namespace ouro {

// What the family reads of its own keys.
struct GmmSettings : FamilySettings {
  int dim = 1;         // model.dim
  int components = 0;  // model.components: K of the fitted mixtures
  kernels::EmSettings em{100, 1e-3, 1e-6, kernels::EmInit::kWarm, 1, false};  // model.covariance, model.em
  kernels::ShapeTruth shape;          // a shape truth (truth.shape; kind kNone: the mixture truth below)
  std::vector<double> truth_weights;  // K0, summing to 1
  std::vector<double> truth_means;    // K0 * dim
  std::vector<double> truth_covs;     // K0 * dim * dim, each symmetric positive definite
  int heldout = 1000;                 // metrics.heldout: held-out real points of xent and the sample-based metrics
  double dead_weight = 1e-3;          // metrics.dead_weight
  unsigned sample_based = 0;          // metrics.sample_based: bit k for kernels::SampleMetric k
};

// The truth and what every chain's metrics reuse: its overall moments, and for a mixture the 99% radius, the rare
// component and its mass, the L2 self-overlap.
kernels::GmmTruth make_gmm_truth(const PointConfig& c);

// The fixed held-out set: metrics.heldout real points (x dim, row-major), the same for every chain
// (kernels/core/rng.h, kHeldoutChain).
std::vector<double> make_gmm_heldout(const PointConfig& c, const kernels::GmmTruth& truth);
// The truth's q-quantile of its own log-density (data.verifier's plausibility bound), estimated from truth draws.
double gmm_log_density_quantile(const PointConfig& c, const kernels::GmmTruth& truth, double q);
// The filters and weights of a point whose truth is a mixture or a shape (data.verifier, data.max_draw_factor,
// data.tail_upsample, data.age_decay, data.dedup), as the mixture and kernel density kernels take them.
void mixture_filters(const PointConfig& c, const kernels::GmmTruth& truth, kernels::GmmVerifier& verifier,
                     kernels::GmmWeighting& weighting, kernels::Dedup& dedup);

// The backend of a batch of chains (the cpu or the cuda one), for the benchmarks and tests that drive it directly.
std::unique_ptr<kernels::GmmBackend> make_gmm_backend(const std::string& backend, const kernels::GmmBatchSpec& spec);

}  // namespace ouro

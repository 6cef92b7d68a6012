// The Gaussian family (model.family: gaussian): N(mu, Sigma) in d <= 16 dimensions fitted by maximum likelihood or
// with the unbiased covariance, against a Gaussian truth (docs/families/gaussian.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/gaussian/gaussian_backend.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"

namespace ouro {

// What the family reads of its own keys.
struct GaussianSettings : FamilySettings {
  int dim = 1;                                              // model.dim
  kernels::Estimator estimator = kernels::Estimator::kMle;  // model.estimator
  std::vector<double> truth_mean;                           // dim
  std::vector<double> truth_cov;                            // dim * dim, row-major, symmetric positive definite
  int heldout = 1000;         // metrics.heldout: real points of heldout_nll and the sample-based metrics
  unsigned sample_based = 0;  // metrics.sample_based: bit k for kernels::SampleMetric k
};

// The backend of a batch of chains (the cpu or the cuda one), for the benchmarks and tests that drive it directly.
std::unique_ptr<kernels::GaussianBackend> make_gaussian_backend(const std::string& backend,
                                                                const kernels::GaussianBatchSpec& spec);

}  // namespace ouro

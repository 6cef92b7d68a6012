// The linear regression family (model.family: linear_regression): y = x.w + s eps with Gaussian inputs, refitted by
// ordinary least squares or ridge to labels its previous generation made (docs/families/linear_regression.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/linear_regression/linear_regression_backend.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"

namespace ouro {

// The largest dimension the family runs.
constexpr int kMaxRegressionDim = 256;

// What the family reads of its own keys.
struct RegressionSettings : FamilySettings {
  kernels::RegressionEstimator estimator = kernels::RegressionEstimator::kOls;  // model.estimator
  double ridge = 0.0;                                                           // model.ridge
  kernels::RegressionNoise noise = kernels::RegressionNoise::kFixed;            // model.noise
  std::vector<double> weights;                                                  // truth.weights: w0, d numbers
  std::vector<double> design_cov;                    // truth.design_cov: d * d, row-major, symmetric positive definite
  bool design_diagonal = false;                      // design_cov is diagonal
  double design_trace_inverse = 0.0;                 // tr(design_cov^{-1}), for the theory column
  double noise_std = 1.0;                            // truth.noise_std: sigma0
  kernels::Design design = kernels::Design::kFresh;  // data.design
  int dim() const { return static_cast<int>(weights.size()); }
};

// The truth of a point as the backends take it.
kernels::RegressionTruthData make_regression_truth(const PointConfig& c);

// The theory column (docs/families/linear_regression.md derives each closed form).
std::optional<double> regression_theory(const PointConfig& c, int metric, int generation);

// The backend of a batch of chains (the cpu or the cuda one), for the benchmarks and tests that drive it directly.
std::unique_ptr<kernels::RegressionBackend> make_regression_backend(const std::string& backend,
                                                                    const kernels::RegressionBatchSpec& spec);

}  // namespace ouro

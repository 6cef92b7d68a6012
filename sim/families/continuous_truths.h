// Reading the truths of the continuous families from a config: covariance matrices, the scales double precision
// can hold, and the toy shapes' laws (kernels/core/shapes.h). Shared by the continuous families.
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "kernels/core/shapes.h"
#include "sim/io/config_keys.h"

namespace ouro {

class ConfigReader;  // sim/io/yaml_reader.h

// A mixture truth as a config gives it: K0 <= 16 weights summing to 1, K0 means of d numbers and K0 symmetric
// positive definite covariances (row-major).
struct MixtureTruthSpec {
  int d = 0;
  std::vector<double> weights, means, covs;
};

// Reads truth.weights, truth.means and truth.covs (a covariance may be a list of d variances). d < 0: the dimension
// is the first mean's length, at most max_dim. ConfigError naming the key otherwise.
MixtureTruthSpec read_mixture_truth(const ConfigReader& r, int d, int max_dim);

// A symmetric positive definite d x d matrix, or (allow_diagonal) a list of d positive variances for a diagonal
// one; row-major. ConfigError naming `path` otherwise.
std::vector<double> read_covariance(const YAML::Node& n, const std::string& path, int d, bool allow_diagonal);

// Scales far outside these overflow the sums of squares or lose the mean against its spread in double precision:
// every variance in [1e-100, 1e100], every mean within 1e12 standard deviations of 0.
void check_scales(const std::string& var_path, const std::string& mean_path, int d, const double* mean,
                  const double* cov);

// The keys of a shape truth (truth.shape, truth.noise, truth.factor, truth.centers, truth.cluster_std), which every
// family that takes one lists among its keys.
std::vector<KeySpec> shape_keys();

// The shape truth of a config: kind kNone when truth.shape is absent (and then no shape key may be given). Refused
// (ConfigError naming the key): an unknown shape, a key of another shape, a mixture's or Gaussian's truth key
// (truth.weights, means, covs, mean, cov) beside truth.shape, blobs without centres or with centres of unequal
// dimensions, more than kShapeMaxCenters centres or a dimension above kShapeMaxDim, and scales outside those
// check_scales allows (a noise or cluster_std whose variance is above 1e100, a centre more than 1e12 cluster_std
// from 0).
kernels::ShapeTruth read_shape_truth(const ConfigReader& r);

}  // namespace ouro

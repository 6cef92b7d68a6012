// Reading the truths of the continuous families from a config: covariance matrices and the scales double precision
// can hold. Shared by the Gaussian and mixture families.
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace ouro {

// A symmetric positive definite d x d matrix, or (allow_diagonal) a list of d positive variances for a diagonal
// one; row-major. ConfigError naming `path` otherwise.
std::vector<double> read_covariance(const YAML::Node& n, const std::string& path, int d, bool allow_diagonal);

// Scales far outside these overflow the sums of squares or lose the mean against its spread in double precision:
// every variance in [1e-100, 1e100], every mean within 1e12 standard deviations of 0.
void check_scales(const std::string& var_path, const std::string& mean_path, int d, const double* mean,
                  const double* cov);

}  // namespace ouro

#include "sim/families/continuous_truths.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/core/linalg.h"
#include "sim/io/yaml_reader.h"

namespace ouro {

std::vector<double> read_covariance(const YAML::Node& n, const std::string& path, int d, bool allow_diagonal) {
  const std::string expected = fmt::format("a {0} x {0} symmetric positive definite matrix{1}", d,
                                           allow_diagonal ? fmt::format(" or a list of {} variances", d) : "");
  if (!n.IsSequence() || static_cast<int>(n.size()) != d)
    throw ConfigError(path, fmt::format("expected {} (model.dim = {}), got {}", expected, d, scalar_text(n)));
  std::vector<double> m;
  if (allow_diagonal && d > 0 && n[0].IsScalar()) {
    const auto v = read_numbers(n, path);
    m.assign(d * d, 0.0);
    for (int i = 0; i < d; ++i) m[i * d + i] = v[i];
  } else {
    for (int i = 0; i < d; ++i) {
      auto row = read_numbers(n[i], fmt::format("{}[{}]", path, i));
      if (static_cast<int>(row.size()) != d)
        throw ConfigError(fmt::format("{}[{}]", path, i),
                          fmt::format("expected {} numbers (model.dim), got {}", d, row.size()));
      m.insert(m.end(), row.begin(), row.end());
    }
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < i; ++j) {
        const double a = m[i * d + j], b = m[j * d + i];
        if (std::abs(a - b) > 1e-12 * std::max(std::abs(a), std::abs(b)))
          throw ConfigError(path, fmt::format("not symmetric: [{0}][{1}] = {2} but [{1}][{0}] = {3}", i, j, a, b));
      }
  }
  std::vector<double> l(d * d);
  if (!kernels::cholesky(d, m.data(), l.data())) throw ConfigError(path, "not positive definite");
  return m;
}

void check_scales(const std::string& var_path, const std::string& mean_path, int d, const double* mean,
                  const double* cov) {
  for (int i = 0; i < d; ++i) {
    const double v = cov[i * d + i];
    if (!(v >= 1e-100 && v <= 1e100))
      throw ConfigError(var_path, fmt::format("variance {} in dimension {} is outside [1e-100, 1e100]", v, i));
    if (std::abs(mean[i]) > 1e12 * std::sqrt(v))
      throw ConfigError(
          mean_path, fmt::format("mean {} in dimension {} is more than 1e12 standard deviations from 0", mean[i], i));
  }
}

}  // namespace ouro

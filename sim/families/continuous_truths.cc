#include "sim/families/continuous_truths.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "kernels/core/linalg.h"
#include "kernels/gmm/gmm_mixture.h"
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

std::vector<KeySpec> shape_keys() {
  return {
      choice_key("truth.shape", {"moons", "circles", "swiss_roll", "blobs"}, "",
                 "scikit-learn's toy shapes as iid laws (docs/families/gmm.md, shape truths); absent: another truth"),
      number_key("truth.noise", "a standard deviation in [0, 1e50]", 0.0, 1e50, "0",
                 "moons, circles, swiss_roll: the isotropic Gaussian noise added to every point"),
      number_key("truth.factor", "a radius in (0, 1)", 1e-9, 1.0 - 1e-9, "0.8", "circles: the inner circle's radius"),
      shaped_key("truth.centers", KeyType::kList,
                 fmt::format("1 to {} points, each a list of 1 to {} numbers, all of one dimension",
                             kernels::kShapeMaxCenters, kernels::kShapeMaxDim),
                 "", "blobs: the centres (required for blobs; their dimension is the truth's)"),
      number_key("truth.cluster_std", "a standard deviation in [1e-50, 1e50]", 1e-50, 1e50, "1.0",
                 "blobs: the standard deviation of every coordinate around its centre"),
  };
}

kernels::ShapeTruth read_shape_truth(const ConfigReader& r) {
  using kernels::ShapeKind;
  static const std::vector<KeySpec> keys = shape_keys();
  kernels::ShapeTruth s{};
  if (!r.given("truth.shape")) {
    for (const char* k : {"truth.noise", "truth.factor", "truth.centers", "truth.cluster_std"})
      if (r.given(k)) throw ConfigError(k, "applies to a shape truth only (truth.shape), which this config has not");
    return s;
  }
  const std::string name = r.choice(key_of(keys, "truth.shape"));
  s.kind = name == "moons"     ? ShapeKind::kMoons
           : name == "circles" ? ShapeKind::kCircles
           : name == "blobs"   ? ShapeKind::kBlobs
                               : ShapeKind::kSwissRoll;
  for (const char* k : {"truth.weights", "truth.means", "truth.covs", "truth.mean", "truth.cov"})
    if (r.given(k))
      throw ConfigError(k, fmt::format("a mixture's or Gaussian's truth key, given with truth.shape ({}): a truth is "
                                       "one or the other",
                                       name));
  const bool blobs = s.kind == ShapeKind::kBlobs;
  auto only = [&](const char* k, bool applies, const char* shapes) {
    if (!applies && r.given(k))
      throw ConfigError(k, fmt::format("applies to {} only (truth.shape is {})", shapes, name));
  };
  only("truth.noise", !blobs, "moons, circles and swiss_roll (blobs: truth.cluster_std)");
  only("truth.factor", s.kind == ShapeKind::kCircles, "circles");
  only("truth.centers", blobs, "blobs");
  only("truth.cluster_std", blobs, "blobs");
  if (!blobs) {
    s.d = 2;
    s.noise = r.number(key_of(keys, "truth.noise"));
    if (s.kind == ShapeKind::kCircles) s.factor = r.number(key_of(keys, "truth.factor"));
    return s;
  }
  const std::string expected = key_of(keys, "truth.centers").expected;
  if (!r.given("truth.centers"))
    throw ConfigError("truth.centers", "missing (blobs need their centres); expected " + expected);
  const YAML::Node centers = r.node("truth.centers");
  if (!centers.IsSequence() || centers.size() < 1 ||
      centers.size() > static_cast<std::size_t>(kernels::kShapeMaxCenters))
    throw ConfigError("truth.centers", fmt::format("expected {}, got {}", expected, scalar_text(centers)));
  s.centers = static_cast<int>(centers.size());
  s.cluster_std = r.number(key_of(keys, "truth.cluster_std"));
  std::vector<double> var;
  for (int k = 0; k < s.centers; ++k) {
    const std::string path = fmt::format("truth.centers[{}]", k);
    const std::vector<double> c = read_numbers(centers[k], path);
    const int d = static_cast<int>(c.size());
    if (k == 0) {
      if (d < 1 || d > kernels::kShapeMaxDim)
        throw ConfigError(path, fmt::format("expected 1 to {} numbers, got {}", kernels::kShapeMaxDim, d));
      s.d = d;
      var.assign(d * d, 0.0);
      for (int a = 0; a < d; ++a) var[a * d + a] = s.cluster_std * s.cluster_std;
    } else if (d != s.d) {
      throw ConfigError(path, fmt::format("expected {} numbers (the dimension of truth.centers[0]), got {}", s.d, d));
    }
    check_scales("truth.cluster_std", path, s.d, c.data(), var.data());
    std::copy(c.begin(), c.end(), s.center + k * s.d);
  }
  return s;
}

MixtureTruthSpec read_mixture_truth(const ConfigReader& r, int d, int max_dim) {
  const std::string shape = "{weights: [...], means: [[...], ...], covs: [...]}";
  const YAML::Node truth = r.node("truth");
  if (!truth || truth.IsNull()) throw ConfigError("truth", "missing; expected " + shape);
  if (!truth.IsMap()) throw ConfigError("truth", "expected " + shape);
  MixtureTruthSpec out;
  if (!r.given("truth.weights")) throw ConfigError("truth.weights", "missing; expected a list of component weights");
  out.weights = read_numbers(r.node("truth.weights"), "truth.weights");
  const int K0 = static_cast<int>(out.weights.size());
  if (K0 < 1 || K0 > kernels::kGmmMaxComponents)
    throw ConfigError("truth.weights", fmt::format("expected 1 to {} weights, got {}", kernels::kGmmMaxComponents, K0));
  double sum = 0.0;
  for (int k = 0; k < K0; ++k) {
    if (!(out.weights[k] > 0.0))
      throw ConfigError(fmt::format("truth.weights[{}]", k),
                        fmt::format("expected a weight > 0, got {}", out.weights[k]));
    sum += out.weights[k];
  }
  if (std::abs(sum - 1.0) > 1e-6) throw ConfigError("truth.weights", fmt::format("weights sum to {}, expected 1", sum));
  for (auto& w : out.weights) w /= sum;
  const std::string dims = d < 0 ? "numbers" : fmt::format("{} numbers", d);
  const char* which = d < 0 ? "the truth's dimension" : "model.dim";
  if (!r.given("truth.means"))
    throw ConfigError("truth.means", fmt::format("missing; expected {} lists of {}", K0, dims));
  if (!r.given("truth.covs")) throw ConfigError("truth.covs", fmt::format("missing; expected {} covariances", K0));
  const YAML::Node means = r.node("truth.means"), covs = r.node("truth.covs");
  if (!means.IsSequence() || static_cast<int>(means.size()) != K0)
    throw ConfigError("truth.means", fmt::format("expected {} means (one per weight), got {}", K0, scalar_text(means)));
  if (!covs.IsSequence() || static_cast<int>(covs.size()) != K0)
    throw ConfigError("truth.covs",
                      fmt::format("expected {} covariances (one per weight), got {}", K0, scalar_text(covs)));
  for (int k = 0; k < K0; ++k) {
    const std::string mp = fmt::format("truth.means[{}]", k), cp = fmt::format("truth.covs[{}]", k);
    const auto mu = read_numbers(means[k], mp);
    if (d < 0) {
      d = static_cast<int>(mu.size());
      if (d < 1 || d > max_dim)
        throw ConfigError(mp, fmt::format("expected 1 to {} numbers (the truth's dimension), got {}", max_dim, d));
    }
    if (static_cast<int>(mu.size()) != d)
      throw ConfigError(mp, fmt::format("expected {} numbers ({}), got {}", d, which, mu.size()));
    const auto cov = read_covariance(covs[k], cp, d, true);
    check_scales(cp, mp, d, mu.data(), cov.data());
    out.means.insert(out.means.end(), mu.begin(), mu.end());
    out.covs.insert(out.covs.end(), cov.begin(), cov.end());
  }
  out.d = d;
  return out;
}

}  // namespace ouro

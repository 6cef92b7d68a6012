#include "sim/families/sample_metrics.h"

#include <fmt/format.h>

#include "sim/io/yaml_reader.h"

namespace ouro {

KeySpec sample_based_key() {
  return shaped_key(kSampleBasedKey, KeyType::kList, "a list of precision, recall, coverage, energy", "[]",
                    "the sample-based metrics to compute each generation, between a model sample of data.samples "
                    "points and the held-out set (docs/metrics.md)");
}

int sample_metric_of(const std::string& name) {
  for (int k = 0; k < kernels::kSampleMetricCount; ++k)
    if (name == kernels::sample_metric_name(k)) return k;
  return -1;
}

unsigned read_sample_based(const ConfigReader& r) {
  const YAML::Node n = r.node(kSampleBasedKey);
  if (!n || n.IsNull()) return 0;
  const std::string names = "precision, recall, coverage, energy";
  if (!n.IsSequence())
    throw ConfigError(kSampleBasedKey, fmt::format("expected a list of some of {}, got {}", names, scalar_text(n)));
  unsigned mask = 0;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const std::string path = fmt::format("{}[{}]", kSampleBasedKey, i);
    if (!n[i].IsScalar()) throw ConfigError(path, fmt::format("expected one of {}, got {}", names, scalar_text(n[i])));
    const int k = sample_metric_of(n[i].Scalar());
    if (k < 0)
      throw ConfigError(path, fmt::format("no sample-based metric \"{}\" (expected one of {})", n[i].Scalar(), names));
    if ((mask >> k) & 1u) throw ConfigError(path, fmt::format("{} is listed twice", n[i].Scalar()));
    mask |= 1u << k;
  }
  return mask;
}

int sample_based_min_points(unsigned mask) {
  constexpr unsigned knn =
      (1u << kernels::kSamplePrecision) | (1u << kernels::kSampleRecall) | (1u << kernels::kSampleCoverage);
  if (mask & knn) return kernels::kNeighbourK + 1;
  return (mask >> kernels::kSampleEnergy) & 1u ? 2 : 0;
}

namespace {

// What the metrics of `mask` need of a side's size, in words.
std::string why(unsigned mask) {
  return sample_based_min_points(mask) == 2
             ? "energy's within-sample mean needs a pair of points"
             : fmt::format("the k-NN radii of precision, recall and coverage need k = {} other points",
                           kernels::kNeighbourK);
}

}  // namespace

void check_heldout_size(unsigned mask, std::int64_t heldout, const std::string& heldout_key) {
  const int need = sample_based_min_points(mask);
  if (heldout < need)
    throw ConfigError(heldout_key, fmt::format("{} points are too few for the held-out side of {}: at least {} ({})",
                                               heldout, kSampleBasedKey, need, why(mask)));
  if (mask && heldout > kSampleBasedMaxHeldout)
    throw ConfigError(heldout_key,
                      fmt::format("{} points are too many for {}: at most {} (the held-out side's nearest-neighbour "
                                  "radii cost M^2 distances, and every chain and generation M n more)",
                                  heldout, kSampleBasedKey, kSampleBasedMaxHeldout));
}

void check_sample_size(unsigned mask, int samples) {
  const int need = sample_based_min_points(mask);
  if (samples < need)
    throw ConfigError("data.samples", fmt::format("{} points are too few for the model sample of {}: at least {} ({})",
                                                  samples, kSampleBasedKey, need, why(mask)));
}

}  // namespace ouro

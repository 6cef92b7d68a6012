#include "sim/family.h"

#include "sim/gaussian_family.h"
#include "sim/gaussian_truth.h"
#include "sim/gmm_family.h"

namespace ouro {

std::vector<std::string> metric_names(const PointConfig& c) {
  return c.family == "gmm" ? gmm_metric_names(c) : gaussian_metric_names();
}

std::optional<double> theory(const PointConfig& c, int metric, int generation) {
  return c.family == "gmm" ? gmm_theory(c, metric, generation) : gaussian_theory(c, metric, generation);
}

double estimate_point_bytes(const PointConfig& c) {
  return c.family == "gmm" ? gmm_point_bytes(c) : gaussian_point_bytes(c);
}

std::unique_ptr<FamilyRun> make_family_run(const PointConfig& c, const std::string& backend, int threads) {
  return c.family == "gmm" ? make_gmm_run(c, backend, threads) : make_gaussian_run(c, backend, threads);
}

}  // namespace ouro

#include "sim/families/family.h"

#include "sim/families/gaussian/gaussian_family.h"
#include "sim/families/gaussian/gaussian_truth.h"
#include "sim/families/gmm/gmm_family.h"
#include "sim/families/ngram/ngram_family.h"

namespace ouro {

std::vector<std::string> metric_names(const PointConfig& c) {
  if (c.family == "ngram") return ngram_metric_names();
  return c.family == "gmm" ? gmm_metric_names(c) : gaussian_metric_names();
}

std::optional<double> theory(const PointConfig& c, int metric, int generation) {
  // The closed forms assume fresh real data; reused real points are another
  // process (no theory column beyond generation 1).
  if (c.real_source == kernels::RealSource::kFixed && c.real_count > 0 && generation > 1) return std::nullopt;
  // Nor do they cover a weighted mean.
  if (c.estimator_weight >= 0.0 && c.real_count > 0 && c.real_count < c.samples && generation > 1) return std::nullopt;
  if (c.family == "ngram") return ngram_theory(c, metric, generation);
  return c.family == "gmm" ? gmm_theory(c, metric, generation) : gaussian_theory(c, metric, generation);
}

double estimate_point_bytes(const PointConfig& c) {
  if (c.family == "ngram") return ngram_point_bytes(c);
  return c.family == "gmm" ? gmm_point_bytes(c) : gaussian_point_bytes(c);
}

std::unique_ptr<FamilyRun> make_family_run(const PointConfig& c, const std::string& backend, int threads,
                                           ChainBlock block) {
  if (c.family == "ngram") return make_ngram_run(c, backend, threads, block);
  return c.family == "gmm" ? make_gmm_run(c, backend, threads, block) : make_gaussian_run(c, backend, threads, block);
}

}  // namespace ouro

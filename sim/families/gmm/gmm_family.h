// The Gaussian-mixture family's entries for sim/families/family.h, and its truth.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/gmm/gmm.h"
#include "sim/families/family.h"

namespace ouro {

// The truth mixture and what every chain's metrics reuse (overall moments,
// the 99% radius, the rare component and its mass, the L2 self-overlap).
kernels::GmmTruth make_gmm_truth(const PointConfig& c);

// The fixed held-out set: metrics.heldout real points (x dim, row-major),
// the same for every chain (kernels/core/rng.h, kHeldoutChain).
std::vector<double> make_gmm_heldout(const PointConfig& c, const kernels::GmmTruth& truth);
// The truth's q-quantile of its own log-density (data.verifier's plausibility
// bound), estimated from truth draws.
double gmm_log_density_quantile(const PointConfig& c, const kernels::GmmTruth& truth, double q);

// Why the truth cannot be measured in double precision, or "" (checked by
// the config, so the run is refused before any work): an L2 self-overlap
// that overflows, a rare component with no mass to speak of, a ridge that is
// not small against the truth's variances.
std::string gmm_truth_problem(const PointConfig& c);

std::vector<std::string> gmm_metric_names(const PointConfig& c);
std::optional<double> gmm_theory(const PointConfig& c, int metric, int generation);
double gmm_point_bytes(const PointConfig& c);
std::unique_ptr<FamilyRun> make_gmm_run(const PointConfig& c, const std::string& backend, int threads,
                                        ChainBlock block);

}  // namespace ouro

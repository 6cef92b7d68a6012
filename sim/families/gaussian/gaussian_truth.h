// The Gaussian truth of a sweep point and the closed-form expectations
// ("theory" column of metrics.csv) that the literature gives for it.
#pragma once

#include <optional>
#include <vector>

#include "kernels/gaussian/gaussian.h"
#include "sim/engine/config.h"

namespace ouro {

// Everything about the truth that metrics reuse, computed once on the host.
kernels::GaussianTruth make_gaussian_truth(const PointConfig& c);

// The fixed held-out set of heldout_nll as points: metrics.heldout real draws (x dim, row-major) of generation 0
// under the held-out chain id (kernels/core/rng.h, kHeldoutChain), the set the truth's heldout moments summarise; the
// sample-based metrics' held-out side.
std::vector<double> make_gaussian_heldout(const PointConfig& c, const kernels::GaussianTruth& truth);

// E[metric at generation t] where a closed form is known (README, "Theory"),
// else nothing. Covered: real_fraction = 0 with
//   replace, mle:       var_ratio ((n-1)/n)^t, mean_sq_err tr(S0)(1 - ((n-1)/n)^t),
//                       det_ratio (prod_{i=1..d} (1 - i/n))^t
//   replace, unbiased:  var_ratio 1, mean_sq_err t tr(S0)/n
//   accumulate, mle:    var_ratio (1 - 1/n) prod_{j=2..t} (1 - 1/(n j^2))
// and, for every regime, synthetic_share and data_age where they do not
// depend on the chain.
std::optional<double> gaussian_theory(const PointConfig& c, int metric, int generation);

}  // namespace ouro

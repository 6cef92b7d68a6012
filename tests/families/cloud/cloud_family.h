// A family defined only in the test suite whose models draw points: an isotropic Gaussian cloud N(m, s^2 I) in d <= 3
// dimensions, refitted each generation from n draws of the previous fit (m the draws' mean, s^2 their mean squared
// distance from it per coordinate: maximum likelihood). Under replace without real data s^2 shrinks by (1 - 1/n) a
// generation in expectation, so the cloud visibly contracts; real data (data.real_fraction) holds it near the truth,
// N(0, s_0^2 I).
//
// It exists to test what the engine does with a model's points (plot.scatter, scatter.csv) without depending on any
// built-in family: its model sample of chain c at generation t is m_t + s_t z, z the normals of c's model-sample stream
// at t (rng::kStreamModelSample), so a point depends only on (seed, chain, generation) and the chain's fit, which a
// checkpoint restores.
//
// Metrics: var_ratio (s_t^2 / s_0^2) and mean_sq_err (||m_t||^2). Regime replace only, no data options.
#pragma once

#include "sim/families/family.h"

namespace ouro::test {

const Family& cloud_family();

}  // namespace ouro::test

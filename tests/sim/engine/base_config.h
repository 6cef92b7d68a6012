// The smallest valid config the engine's config tests start from: one Gaussian point, every data key at its usual
// value, no sweep.
#pragma once

namespace ouro::test {

inline constexpr const char* kBase = R"(
name: t
seed: 3
chains: 10
generations: 5
model: {family: gaussian, dim: 1, estimator: mle}
truth: {mean: [0.0], cov: [[1.0]]}
data: {samples: 20, regime: replace, real_fraction: 0.0}
)";

}  // namespace ouro::test

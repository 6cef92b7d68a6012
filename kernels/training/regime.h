// The data regimes shared by every family: which points make up generation
// t's training set, written once for both backends.
//
// Generation k >= 1 produces `samples` new points: point i < real_points_of(k)
// is a real draw (from the truth, stream kStreamRealDraw), the rest are
// synthetic draws from generation k-1's model (kStreamSyntheticDraw).
//   replace               trains generation t on generation t's points
//   accumulate            on every point of generations 1..t
//   accumulate_subsample  on `samples` points drawn without replacement from
//                         that pool (positions chosen by Algorithm S below)
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/portability.h"
#include "kernels/core/rng.h"

namespace ouro::kernels {

enum class Regime : int { kReplace = 0, kAccumulate = 1, kAccumulateSubsample = 2 };

// Where generation k's real points come from (data.real_source): fresh draws
// from the truth at every generation, or one fixed real sample drawn once —
// generation 1's n real points, of which every later generation reuses the
// first real_count (the same points each time).
enum class RealSource : int { kFresh = 0, kFixed = 1 };

// The generation whose real draws (counter and all) generation k's real
// points are.
OURO_HD inline std::uint32_t real_draw_generation(RealSource source, int k) {
  return source == RealSource::kFixed ? 1u : static_cast<std::uint32_t>(k);
}

// Uniform in (0,1) number j of the subsample stream (two per block).
OURO_HD inline double subsample_uniform(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation,
                                        std::uint64_t j) {
  const rng::Block b = rng::draw_block(seed, chain, generation, rng::kStreamSubsample, j >> 1);
  return (j & 1) ? rng::u01_open(b.v[2], b.v[3]) : rng::u01_open(b.v[0], b.v[1]);
}

// The real points among a generation's `samples` new points from generation 2
// on: round(real_fraction * samples), halves away from zero. Every family and
// backend takes this count from here (through the config's real_count).
inline int real_count(double real_fraction, int samples) {
  return static_cast<int>(std::lround(real_fraction * samples));
}

// Real draws among generation k's new points: all n at k = 1, then
// `real_count` from k = 2 on.
OURO_HD inline int real_points_of(int k, int samples, int real_count) { return k == 1 ? samples : real_count; }

// Selection sampling (Knuth, TAOCP vol. 2, 3.4.2, Algorithm S): `take`
// distinct positions of [0, total), every subset equally likely, decided in
// increasing order. Candidate j is taken with probability (still needed) /
// (total - j), decided by uniform j of the chain's subsample stream of this
// generation: O(total) work, no memory. next() decides the next position.
struct Selection {
  std::uint32_t seed, chain, generation;
  std::int64_t total, needed, j = 0;
  OURO_HD bool done() const { return needed == 0 || j >= total; }
  OURO_HD bool next() {
    const double u = subsample_uniform(seed, chain, generation, static_cast<std::uint64_t>(j));
    const bool take = static_cast<double>(total - j) * u < static_cast<double>(needed);
    needed -= take ? 1 : 0;
    ++j;
    return take;
  }
};

// Calls f(j) for the positions Selection takes, in increasing order.
template <class F>
OURO_HD inline void for_each_selected(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation,
                                      std::int64_t total, std::int64_t take, F&& f) {
  Selection sel{seed, chain, generation, total, take};
  while (!sel.done()) {
    const std::int64_t j = sel.j;
    if (sel.next()) f(j);
  }
}

// q^k for an integer k >= 0 by repeated squaring: multiplications only, so
// both backends compute the same bits (libm's pow and CUDA's may differ in
// the last place).
OURO_HD inline double pow_int(double q, int k) {
  double r = 1.0;
  while (k > 0) {
    if (k & 1) r *= q;
    q *= q;
    k >>= 1;
  }
  return r;
}

// Synthetic share and mean data age (generations between a point's drawing
// and generation t) of the training set under replace and accumulate, where
// they are the same for every chain; under accumulate_subsample they are
// the expectation of the per-chain values. Under accumulate with
// data.age_decay q < 1 both are weighted by age: generation k's points weigh
// q^(t-k).
OURO_HD inline void regime_composition(Regime regime, int samples, int real_count, int t, double age_decay,
                                       double& synthetic_share, double& data_age) {
  if (regime == Regime::kReplace) {
    synthetic_share = static_cast<double>(samples - real_points_of(t, samples, real_count)) / samples;
    data_age = 0.0;
    return;
  }
  const double q = age_decay;
  if (regime == Regime::kAccumulate && q != 1.0) {
    // With S0 = sum_{j<t} q^j = (1 - q^t)/(1 - q) and S1 = sum_{j<t} j q^j =
    // q (1 - t q^(t-1) + (t-1) q^t)/(1 - q)^2, the synthetic share is
    // (n - r)(S0 - q^(t-1)) / (n S0) (generation 1 is all real) and the mean
    // age S1 / S0.
    const double qt = pow_int(q, t), qt1 = pow_int(q, t - 1);
    const double s0 = (1.0 - qt) / (1.0 - q);
    const double s1 = q * (1.0 - t * qt1 + (t - 1.0) * qt) / ((1.0 - q) * (1.0 - q));
    synthetic_share = static_cast<double>(samples - real_count) * (s0 - qt1) / (static_cast<double>(samples) * s0);
    data_age = s1 / s0;
    return;
  }
  // Generation 1 adds only real points, every later one samples - real_count
  // synthetic ones.
  const double synthetic = static_cast<double>(t - 1) * (samples - real_count);
  synthetic_share = synthetic / (static_cast<double>(t) * samples);
  data_age = 0.5 * (t - 1);  // every generation adds the same number of points
}

// data.verifier's settings that every family shares: on, the keep
// probabilities as integer thresholds (keep_threshold below), and the draw
// budget (at most max_draw_factor times the synthetic points a generation
// needs). Each family adds its own plausibility bound.
struct KeepRule {
  int on = 0;
  std::uint64_t keep_plausible = 0, keep_implausible = 0;
  int max_draw_factor = 10;
};

// The integer threshold of a keep probability p: keep iff a 32-bit word is
// below round(p * 2^32) (2^32 for p = 1 keeps always).
inline std::uint64_t keep_threshold(double p) { return static_cast<std::uint64_t>(std::llround(std::ldexp(p, 32))); }

// data.verifier's keep decision for candidate j (every family): word j of
// the verify stream of (seed, chain, generation) against the integer
// threshold of the candidate's class (keep iff word < threshold; 2^32 keeps
// always), so every backend decides alike. Caches the current block of four
// words for candidates examined in order.
struct VerifyWords {
  std::uint64_t block = ~0ull;
  rng::Block words{};
  OURO_HD bool keeps(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint64_t j,
                     std::uint64_t threshold) {
    if ((j >> 2) != block) {
      block = j >> 2;
      words = rng::draw_block(seed, chain, gen, rng::kStreamVerify, block);
    }
    return words.v[j & 3] < threshold;
  }
};

}  // namespace ouro::kernels

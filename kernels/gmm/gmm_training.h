// One generation's training set of one mixture chain, written once for both backends: the regime's pool
// (kernels/training/regime.h), a pool point regenerated from the model that drew it and its counter (only every
// generation's parameters are stored, never old points), and the filters and weights of data.verifier,
// data.tail_upsample, data.age_decay and data.dedup.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/gmm/gmm_metrics.h"
#include "kernels/training/dedup.h"
#include "kernels/training/regime.h"

namespace ouro::kernels {

// ---- one generation of one chain ------------------------------------------------------------------

// data.verifier for mixtures (every regime): a synthetic candidate is plausible
// when the truth's log-density at it is at least log_density_min, the
// truth's q-quantile of its own log-density (estimated on the host from
// truth draws, sim/families/gmm/gmm_family.cc); kept with probability phi if plausible,
// psi if not (VerifyWords). Dropped candidates are replaced by the next ones,
// at most max_draw_factor times the synthetic points a generation needs.
struct GmmVerifier : KeepRule {
  double log_density_min = 0.0;
};

// data.tail_upsample and data.age_decay for mixtures: frequency weights of
// the training points (see gmm_point_weights).
struct GmmWeighting {
  int tail = 0;                   // tail_upsample on
  double tail_factor = 1.0;       // a synthetic point in the truth's tail counts this many times
  double tail_log_density = 0.0;  // the tail: truth log-density below this (its q-quantile)
  double age_decay =
      1.0;  // accumulate, accumulate_subsample: a point added k generations before the fit weighs decay^k
  OURO_HD bool on() const { return tail != 0 || age_decay != 1.0; }
};

// Everything one generation step needs besides the per-chain arrays.
struct GmmStep {
  std::uint32_t seed;
  int K, d;
  int samples;     // n, new points per generation
  int real_count;  // real draws among them from generation 2 on
  int generation;  // t >= 1
  Regime regime;
  RealSource real_source = RealSource::kFresh;
  GmmVerifier verifier;    // its max_draw_factor also bounds dedup's refill
  GmmWeighting weighting;  // data.tail_upsample, data.age_decay
  Dedup dedup;             // kernels/training/dedup.h
  OURO_HD bool filtered() const { return verifier.on || dedup.on; }
};

// Size of generation t's training set.
OURO_HD inline std::int64_t gmm_train_size(const GmmStep& s) {
  return s.regime == Regime::kAccumulate ? static_cast<std::int64_t>(s.generation) * s.samples : s.samples;
}

// Pool position of training point p under replace (generation t's own
// points) and accumulate (every point so far).
OURO_HD inline std::int64_t gmm_pool_position(const GmmStep& s, std::int64_t p) {
  return s.regime == Regime::kReplace ? static_cast<std::int64_t>(s.generation - 1) * s.samples + p : p;
}

// accumulate_subsample: the pool positions of generation t's training set
// (Algorithm S over the t * n pool, kernels/training/regime.h) into pos[n], with the
// set's synthetic share and mean data age (a point of generation k weighing
// age_decay^(t - k)).
OURO_HD inline void gmm_subsample_positions(const GmmStep& s, std::uint32_t chain, std::int64_t* pos,
                                            double& synthetic_share, double& data_age) {
  const int t = s.generation, n = s.samples;
  std::int64_t p = 0;
  double points = 0.0, synthetic = 0.0, age = 0.0;
  for_each_selected(s.seed, chain, static_cast<std::uint32_t>(t), static_cast<std::int64_t>(t) * n, n,
                    [&](std::int64_t j) {
                      pos[p++] = j;
                      const int k = static_cast<int>(j / n) + 1;
                      const double aged = pow_int(s.weighting.age_decay, t - k);
                      points += aged;
                      synthetic += j % n < real_points_of(k, n, s.real_count) ? 0.0 : aged;
                      age += aged * static_cast<double>(t - k);
                    });
  synthetic_share = synthetic / points;
  data_age = age / points;
}

// Pool point j (generation k = j / n + 1, point i = j % n of it) of a chain,
// regenerated: a real draw from the truth or a synthetic draw from
// generation k-1's model, model_of(k - 1). Returns whether it is real.
template <class ModelOf>
OURO_HD inline bool gmm_pool_point(const GmmStep& s, std::uint32_t chain, std::int64_t j, const GmmTruth& tr,
                                   ModelOf&& model_of, double* x) {
  const int k = static_cast<int>(j / s.samples) + 1;
  const std::int64_t i = j % s.samples;
  const bool real = i < real_points_of(k, s.samples, s.real_count);
  if (real) truth_draw(s.seed, chain, real_draw_generation(s.real_source, k), i, tr, x);
  else gmm_draw(s.seed, chain, static_cast<std::uint32_t>(k), false, i, gmm_view(s.K, s.d, model_of(k - 1)), x);
  return real;
}

// data.verifier and/or data.dedup: generation t's synthetic
// candidates, the points real, real + 1, ... of its synthetic draws from
// `model` (so that a filter that keeps everything keeps exactly the points
// of a run without it), examined in order; kept ones go to X one after
// another until `need` are kept or need * max_draw_factor were examined.
// The verifier keeps candidate j by its plausibility and word j of the
// verify stream; dedup then drops it when its cell holds a point already
// kept (kernels/training/dedup.h; table: dedup_table_size(need) slots of scratch).
// Returns the number kept; `drawn` gets the number examined.
OURO_HD inline std::int64_t gmm_filtered_points(const GmmStep& s, std::uint32_t chain, const GmmTruth& tr,
                                                const GmmCView& model, std::int64_t real, std::int64_t need, double* X,
                                                std::int64_t* table, std::int64_t& drawn) {
  const auto gen = static_cast<std::uint32_t>(s.generation);
  const GmmCView truth = truth_view(tr);
  const int d = s.d;
  const DedupCells cells{table, dedup_table_size(need), X, d, s.dedup.resolution};
  if (s.dedup.on) cells.clear();
  VerifyWords words;
  double lp[kGmmMaxComponents];
  std::int64_t k = 0, j = 0;
  for (; j < need * s.verifier.max_draw_factor && k < need; ++j) {
    double* x = X + k * d;
    gmm_draw(s.seed, chain, gen, false, real + j, model, x);
    if (s.verifier.on) {
      const bool plausible = gmm_log_density(truth, false, x, lp) >= s.verifier.log_density_min;
      if (!words.keeps(s.seed, chain, gen, static_cast<std::uint64_t>(j),
                       plausible ? s.verifier.keep_plausible : s.verifier.keep_implausible))
        continue;
    }
    if (s.dedup.on && !cells.admit(x, k)) continue;
    ++k;
  }
  drawn = j;
  return k;
}

// The frequency weight of one training point x of generation t, added at
// generation k (real or synthetic): a point added k generations before the fit weighs
// age_decay^k (pow_int: multiplications only, the same bits on both
// backends); a synthetic point whose truth log-density is below
// tail_log_density (the truth's lowest-density q share) counts tail_factor
// times more.
OURO_HD inline double gmm_point_weight(const GmmStep& s, const GmmCView& truth, const double* x, int k, bool real) {
  double lp[kGmmMaxComponents];
  double w = pow_int(s.weighting.age_decay, s.generation - k);
  if (s.weighting.tail && !real && gmm_log_density(truth, false, x, lp) < s.weighting.tail_log_density)
    w *= s.weighting.tail_factor;
  return w;
}

// Frequency weights (gmm_point_weight) of generation t's m training points
// into W, in point order, without a filter: point p is pool position pos[p],
// or gmm_pool_position(s, p) when pos is null. Returns the total weight,
// summed in point order.
OURO_HD inline double gmm_point_weights(const GmmStep& s, const GmmTruth& tr, const double* X, std::int64_t m,
                                        const std::int64_t* pos, double* W) {
  const GmmCView truth = truth_view(tr);
  double total = 0.0;
  for (std::int64_t p = 0; p < m; ++p) {
    const std::int64_t j = pos ? pos[p] : gmm_pool_position(s, p);
    const int k = static_cast<int>(j / s.samples) + 1;
    W[p] = gmm_point_weight(s, truth, X + p * s.d, k, j % s.samples < real_points_of(k, s.samples, s.real_count));
    total += W[p];
  }
  return total;
}

// A training set under data.verifier and/or data.dedup, and what the
// metrics need of it.
struct GmmFilteredSet {
  std::int64_t m = 0;  // training points
  double total = 0.0;  // their total weight (m without weighting)
  double synthetic_share = 0.0, data_age = 0.0;
  double draws_per_kept = 1.0;  // generation t's own candidates per kept point
};

// Materialised pool points of generation t under a filter: n under replace,
// t n at most otherwise (the room X needs).
OURO_HD inline std::int64_t gmm_filtered_room(const GmmStep& s) {
  return s.regime == Regime::kReplace ? s.samples : static_cast<std::int64_t>(s.generation) * s.samples;
}

// Generation t's training set under data.verifier and/or data.dedup, in
// every regime. Generation k's points are its real draws (as without a
// filter) followed by its kept synthetic points, which gmm_filtered_points
// regenerates with generation k's counters and model_of(k - 1): the same
// candidates and decisions generation k took, so a pooled generation is
// rebuilt exactly. replace trains on generation t's points, accumulate on
// those of generations 1..t in order, accumulate_subsample on n of the P
// points of generations 1..t (all of them when P <= n) chosen by Algorithm S
// over P (kernels/training/regime.h), in pool order. X needs gmm_filtered_room(s)
// points; W (null without weighting) gets the weights of gmm_point_weight;
// start (t + 1 entries of scratch) gets where each generation's points begin
// in the pool; table is dedup's scratch for n - real points. Without a
// filter that drops anything (phi = psi = 1, a grid finer than any two
// draws) the set is the one the unfiltered regimes train on, point for
// point. The composition weighs each point by age_decay^(t - k): the share
// of synthetic points and their mean age.
template <class ModelOf>
OURO_HD inline GmmFilteredSet gmm_filtered_train(const GmmStep& s, std::uint32_t chain, const GmmTruth& tr,
                                                 ModelOf&& model_of, double* X, double* W, std::int64_t* start,
                                                 std::int64_t* table) {
  const int t = s.generation, n = s.samples, d = s.d;
  const GmmCView truth = truth_view(tr);
  GmmFilteredSet out;
  std::int64_t P = 0;
  const int first = s.regime == Regime::kReplace ? t : 1;
  for (int k = first; k <= t; ++k) {
    start[k - first] = P;
    const int real = real_points_of(k, n, s.real_count);
    for (int i = 0; i < real; ++i)
      truth_draw(s.seed, chain, real_draw_generation(s.real_source, k), i, tr, X + (P + i) * d);
    P += real;
    if (real < n) {
      GmmStep sk = s;
      sk.generation = k;
      std::int64_t drawn = 0;
      const std::int64_t kept = gmm_filtered_points(sk, chain, tr, gmm_view(s.K, d, model_of(k - 1)), real, n - real,
                                                    X + P * d, table, drawn);
      P += kept;
      if (k == t) out.draws_per_kept = kept > 0 ? static_cast<double>(drawn) / static_cast<double>(kept) : INFINITY;
    }
  }
  start[t - first + 1] = P;
  // The generation and realness of pool point j (j increasing: g only moves up).
  int g = 0;
  auto locate = [&](std::int64_t j, int& k, bool& real) {
    while (j >= start[g + 1]) ++g;
    k = first + g;
    real = j - start[g] < real_points_of(k, n, s.real_count);
  };
  double points = 0.0, synthetic = 0.0, age = 0.0;
  auto take = [&](std::int64_t j, std::int64_t p) {  // pool point j becomes training point p (p <= j)
    int k;
    bool real;
    locate(j, k, real);
    if (p != j)
      for (int a = 0; a < d; ++a) X[p * d + a] = X[j * d + a];
    const double w = W ? gmm_point_weight(s, truth, X + p * d, k, real) : 1.0;
    if (W) W[p] = w;
    out.total += w;
    const double aged = pow_int(s.weighting.age_decay, t - k);
    points += aged;
    synthetic += real ? 0.0 : aged;
    age += aged * (t - k);
  };
  if (s.regime == Regime::kAccumulateSubsample) {
    std::int64_t p = 0;
    for_each_selected(s.seed, chain, static_cast<std::uint32_t>(t), P, n < P ? n : P,
                      [&](std::int64_t j) { take(j, p++); });
    out.m = p;
  } else {
    for (std::int64_t j = 0; j < P; ++j) take(j, j);
    out.m = P;
  }
  out.synthetic_share = out.m > 0 ? synthetic / points : NAN;
  out.data_age = out.m > 0 ? age / points : NAN;
  return out;
}

}  // namespace ouro::kernels

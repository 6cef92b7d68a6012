// The kernel density family's per-chain math, written once for both backends.
//
// The model of generation t is the Gaussian kernel density estimate over its training set T_t (points c_j with
// frequency weights w_j, bandwidth h_t):
//   p_t(x) = sum_j w_j N(x; c_j, h_t^2 I) / sum_j w_j.
// Generation 1 trains on n real points; generation t >= 2 on its regime's training set (kernels/training/regime.h)
// of new points: real draws from the truth and synthetic draws from p_{t-1}. Drawing point i from p_{t-1} picks a
// centre (uniformly, or in proportion to its weight under data.age_decay or data.tail_upsample) with word block i
// of the choice stream, and adds h_{t-1} z with z the normals i*d .. i*d+d-1 of the normal stream. Every point
// remembers the real point it descends from (its founder: a real point is its own, kde_founder), so the genealogy
// of a chain can be counted (the `ancestors` metric).
//
// Points are stored, not regenerated: a synthetic point of generation k is its parent plus noise, and its parent
// another stored point, so regenerating it would replay the whole chain.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/elementary.h"
#include "kernels/core/normal.h"
#include "kernels/core/portability.h"
#include "kernels/core/rng.h"
#include "kernels/gmm/gmm_training.h"
#include "kernels/training/dedup.h"
#include "kernels/training/regime.h"

namespace ouro::kernels {

inline constexpr int kKdeMaxDim = kGmmMaxDim;  // the truths' limit (mixtures and blobs: 8)

// Metric slots of the kernel density family, in metrics.csv order.
enum KdeMetric : int {
  kKdeHeldoutNll = 0,
  kKdeVarRatio,
  kKdeMeanSqErr,
  kKdeAncestors,
  kKdeBandwidth,
  kKdeSyntheticShare,
  kKdeDataAge,
  kKdeDrawsPerKept,
  kKdePrecision,  // the sample-based metrics (kernels/core/sample_metrics.h), in SampleMetric order
  kKdeRecall,
  kKdeCoverage,
  kKdeEnergy,
  kKdeNumMetrics,
};

// model.bandwidth: a fixed h, or scikit-learn's scalar rules re-applied to each generation's m training points
// (Scott 1992: m^(-1/(d+4)); Silverman 1986: (m (d + 2) / 4)^(-1/(d+4)); the factor alone, not scaled by the
// data's spread, as scikit-learn's KernelDensity does).
enum class BandwidthRule : int { kFixed = 0, kScott = 1, kSilverman = 2 };

// The bandwidth of a generation with m training points (the project's polynomial exp and log: the same bits on
// both backends).
OURO_HD inline double kde_bandwidth(BandwidthRule rule, double fixed, std::int64_t m, int d) {
  if (rule == BandwidthRule::kFixed) return fixed;
  if (m <= 0) return NAN;  // (an empty training set has no rule's bandwidth)
  const double base = rule == BandwidthRule::kScott ? static_cast<double>(m) : static_cast<double>(m) * (d + 2) / 4.0;
  return exp_poly(-log_positive(base) / (d + 4));
}

// The high 64 bits of a 64 x 64-bit product: a uniform pick among m from 64 random bits (bias below m 2^-64).
OURO_HD OURO_FORCEINLINE std::uint64_t mulhi64(std::uint64_t a, std::uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  __extension__ using u128 = unsigned __int128;
  return static_cast<std::uint64_t>((static_cast<u128>(a) * b) >> 64);
#endif
}

// Point flags.
inline constexpr std::uint8_t kKdeReal = 1;  // a real draw
inline constexpr std::uint8_t kKdeTail = 2;  // a synthetic point in the truth's tail (data.tail_upsample)

// Everything one generation step needs besides the per-chain arrays.
struct KdeStep {
  std::uint32_t seed;
  int d;
  int samples;     // n, new points per generation
  int real_count;  // real draws among them from generation 2 on
  int generation;  // t >= 1
  Regime regime;
  RealSource real_source = RealSource::kFresh;
  BandwidthRule rule = BandwidthRule::kFixed;
  double bandwidth = 1.0;  // the fixed h
  GmmVerifier verifier;    // data.verifier (mixture truths); its max_draw_factor also bounds dedup's refill
  GmmWeighting weighting;  // data.tail_upsample, data.age_decay
  Dedup dedup;
  OURO_HD bool filtered() const { return verifier.on || dedup.on; }
  OURO_HD bool weighted() const { return weighting.on(); }
};

// The model a generation draws from: m centres (row-major, m x d), their cumulative weights (null: all weights
// equal), and the bandwidth.
struct KdeModel {
  const double* centres;
  const double* cumulative;      // cumulative[j] = w_0 + ... + w_j, summed in index order
  const std::int64_t* ancestor;  // each centre's founder (kde_founder)
  std::int64_t m;
  int d;
  double h;
};

// The centre that 64 random bits pick: uniformly (u m 2^-64 rounded down), or the first j with
// cumulative[j] > v cumulative[m - 1], v the uniform in (0, 1) of the bits.
OURO_HD inline std::int64_t kde_pick(const KdeModel& model, std::uint64_t bits) {
  if (!model.cumulative) return static_cast<std::int64_t>(mulhi64(bits, static_cast<std::uint64_t>(model.m)));
  const double target = rng::u01_from_bits(bits) * model.cumulative[model.m - 1];
  std::int64_t lo = 0, hi = model.m - 1;  // the answer lies in [lo, hi]
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (model.cumulative[mid] > target) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// Point i of generation `gen` of a chain drawn from `model`: the centre picked by words 0 and 1 of block i of
// choice_stream, plus h times normals i*d .. i*d+d-1 of normal_stream. Returns the centre's index.
OURO_HD inline std::int64_t kde_draw(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen,
                                     std::uint32_t choice_stream, std::uint32_t normal_stream, std::int64_t i,
                                     const KdeModel& model, double* x) {
  const rng::Block b = rng::draw_block(seed, chain, gen, choice_stream, static_cast<std::uint64_t>(i));
  const std::int64_t p = kde_pick(model, (static_cast<std::uint64_t>(b.v[0]) << 32) | b.v[1]);
  double z[kKdeMaxDim];
  stream_normals(seed, chain, gen, normal_stream, static_cast<std::uint64_t>(i) * model.d, model.d, z);
  const double* c = model.centres + p * model.d;
  for (int a = 0; a < model.d; ++a) x[a] = fma(model.h, z[a], c[a]);
  return p;
}

// The log frequency weight of a training point of generation t added at generation k: (t - k) ln(age_decay), plus
// ln(tail_factor) for a synthetic point in the truth's tail. (Logarithms, so that a point many generations old
// weighs a tiny amount rather than zero: the held-out density shifts by the largest term.)
OURO_HD inline double kde_log_weight(const KdeStep& s, int born, std::uint8_t flags) {
  double lw = 0.0;
  if (s.weighting.age_decay != 1.0) lw = (s.generation - born) * log_positive(s.weighting.age_decay);
  if (s.weighting.tail && (flags & kKdeTail)) lw += log_positive(s.weighting.tail_factor);
  return lw;
}

// Whether a synthetic point lies in the truth's tail (data.tail_upsample; mixture truths).
OURO_HD inline bool kde_in_tail(const KdeStep& s, const GmmTruth& truth, const double* x) {
  if (!s.weighting.tail) return false;
  double lp[kGmmMaxComponents];
  return gmm_log_density(truth_view(truth), false, x, lp) < s.weighting.tail_log_density;
}

// Generation t's filtered synthetic points (data.verifier and/or data.dedup): candidates real, real + 1, ... of
// its synthetic draws from `model` (so that a filter that keeps everything keeps the points of a run without it),
// examined in order; kept ones go to x (and their parents to parent) until `need` are kept or need *
// max_draw_factor were examined. The verifier keeps candidate j by the truth's log-density and word j of the
// verify stream; dedup drops one whose grid cell holds a point already kept (table: dedup_table_size(need) slots).
// Returns the number kept; `drawn` gets the number examined.
OURO_HD inline std::int64_t kde_filtered_points(const KdeStep& s, std::uint32_t chain, const GmmTruth& truth,
                                                const KdeModel& model, std::int64_t real, std::int64_t need, double* x,
                                                std::int64_t* parent, std::int64_t* table, std::int64_t& drawn) {
  const auto gen = static_cast<std::uint32_t>(s.generation);
  const int d = s.d;
  const DedupCells cells{table, dedup_table_size(need), x, d, s.dedup.resolution};
  if (s.dedup.on) cells.clear();
  VerifyWords words;
  double lp[kGmmMaxComponents];
  std::int64_t k = 0, j = 0;
  for (; j < need * s.verifier.max_draw_factor && k < need; ++j) {
    double* y = x + k * d;
    const std::int64_t p =
        kde_draw(s.seed, chain, gen, rng::kStreamSyntheticComponent, rng::kStreamSyntheticDraw, real + j, model, y);
    if (s.verifier.on) {
      const bool plausible = gmm_log_density(truth_view(truth), false, y, lp) >= s.verifier.log_density_min;
      if (!words.keeps(s.seed, chain, gen, static_cast<std::uint64_t>(j),
                       plausible ? s.verifier.keep_plausible : s.verifier.keep_implausible))
        continue;
    }
    if (s.dedup.on && !cells.admit(y, k)) continue;
    parent[k] = p;
    ++k;
  }
  drawn = j;
  return k;
}

// The mean and the trace of the covariance (MLE, divided by the total weight) of m points with weights w (null:
// equal), summed in index order; the mean into mean[d].
OURO_HD inline double kde_weighted_spread(const double* x, const double* w, std::int64_t m, int d, double* mean) {
  double total = 0.0;
  for (int a = 0; a < d; ++a) mean[a] = 0.0;
  for (std::int64_t j = 0; j < m; ++j) {
    const double wj = w ? w[j] : 1.0;
    total += wj;
    for (int a = 0; a < d; ++a) mean[a] += wj * x[j * d + a];
  }
  for (int a = 0; a < d; ++a) mean[a] /= total;
  double ss = 0.0;
  for (std::int64_t j = 0; j < m; ++j) {
    const double wj = w ? w[j] : 1.0;
    for (int a = 0; a < d; ++a) {
      const double e = x[j * d + a] - mean[a];
      ss += wj * e * e;
    }
  }
  return ss / total;
}

// ---- one chain's generation, written once for both backends ---------------------------------------------------

// One chain's stored points: coordinates (x d), founder (kde_founder), flags and the generation that added each.
struct KdePoints {
  double* x;
  std::int64_t* anc;
  std::uint8_t* flags;
  std::int32_t* born;
};

// One chain's working memory for a generation (n = samples new points; m the largest training set).
struct KdeScratch {
  double* fresh;         // n x d: the generation's new points
  std::int64_t* parent;  // n: their centres in the previous model
  std::int64_t* anc;     // n: their founders
  std::uint8_t* flags;   // n: their flags
  double* lw;            // m: the log-weights of a training set
  double* cumulative;    // m: its cumulative weights
  std::int64_t* table;   // dedup_table_size(n): dedup's table
};

// The log-weights of training set v (m points) under generation s.generation into lw; null when every weight is
// equal.
OURO_HD inline const double* kde_log_weights(const KdeStep& s, const KdePoints& v, std::int64_t m, double* lw) {
  if (!s.weighted()) return nullptr;
  for (std::int64_t j = 0; j < m; ++j) lw[j] = kde_log_weight(s, v.born[j], v.flags[j]);
  return lw;
}

// The largest of m log-weights.
OURO_HD inline double kde_top(const double* lw, std::int64_t m) {
  double top = -INFINITY;
  for (std::int64_t j = 0; j < m; ++j) top = lw[j] > top ? lw[j] : top;
  return top;
}

// The model of generation s.generation over training set v (m points): cumulative weights (in index order, each
// exp(lw_j - largest)) when weighted, and the bandwidth.
OURO_HD inline KdeModel kde_model(const KdeStep& s, const KdePoints& v, std::int64_t m, const KdeScratch& sc) {
  const double* lw = kde_log_weights(s, v, m, sc.lw);
  const double* cumulative = nullptr;
  if (lw) {
    const double top = kde_top(lw, m);
    double acc = 0.0;
    for (std::int64_t j = 0; j < m; ++j) sc.cumulative[j] = acc += exp_poly(lw[j] - top);
    cumulative = sc.cumulative;
  }
  return KdeModel{v.x, cumulative, v.anc, m, s.d, kde_bandwidth(s.rule, s.bandwidth, m, s.d)};
}

// The founder of real point r of generation t: every real point starts a lineage of its own, numbered
// (t - 1) n + r (generation 1's points 0 .. n - 1); a point of a fixed real sample is generation 1's point r. A
// synthetic point inherits its parent's founder.
OURO_HD inline std::int64_t kde_founder(const KdeStep& s, int t, int r) {
  const int k = s.real_source == RealSource::kFixed ? 1 : t;
  return static_cast<std::int64_t>(k - 1) * s.samples + r;
}

// The number of distinct values among v[0 .. count), which it sorts (heapsort: in place, O(count log count), the
// same steps on both backends).
OURO_HD inline double kde_distinct(std::int64_t* v, std::int64_t count) {
  auto sift = [&](std::int64_t root, std::int64_t end) {
    while (2 * root + 1 < end) {
      std::int64_t child = 2 * root + 1;
      if (child + 1 < end && v[child] < v[child + 1]) ++child;
      if (!(v[root] < v[child])) return;
      const std::int64_t tmp = v[root];
      v[root] = v[child];
      v[child] = tmp;
      root = child;
    }
  };
  for (std::int64_t i = count / 2 - 1; i >= 0; --i) sift(i, count);
  for (std::int64_t end = count - 1; end > 0; --end) {
    const std::int64_t tmp = v[0];
    v[0] = v[end];
    v[end] = tmp;
    sift(0, end);
  }
  double distinct = 0.0;
  for (std::int64_t i = 0; i < count; ++i) distinct += (i == 0 || v[i] != v[i - 1]) ? 1.0 : 0.0;
  return distinct;
}

// Generation t's new points into sc.fresh, sc.anc and sc.flags: its real draws (point i of the real stream of the
// generation real_source names; a generation-1 point is its own ancestor, and fixed real data reuses generation 1's
// points), then its synthetic draws from `prev` (generation t - 1's model; unused at t = 1), filtered under
// data.verifier or data.dedup. Returns the number of new points; draws_per_kept gets the candidates drawn per
// synthetic point kept (1 without a filter, NaN without synthetic points).
OURO_HD inline std::int64_t kde_new_points(const KdeStep& s, std::uint32_t chain, const GmmTruth& truth,
                                           const KdeModel& prev, const KdeScratch& sc, double& draws_per_kept) {
  const int t = s.generation, n = s.samples, d = s.d;
  const int real = real_points_of(t, n, s.real_count);
  for (int r = 0; r < real; ++r) {
    truth_draw(s.seed, chain, real_draw_generation(s.real_source, t), r, truth, sc.fresh + r * d);
    sc.anc[r] = kde_founder(s, t, r);
    sc.flags[r] = kKdeReal;
  }
  draws_per_kept = NAN;
  // No synthetic points without a model to draw them from: a generation whose filters kept nothing left an empty
  // training set (under replace without real data), and the chain goes on with real points only, if any.
  if (real >= n || prev.m == 0) return real;
  double* out = sc.fresh + static_cast<std::int64_t>(real) * d;
  std::int64_t kept;
  if (s.filtered()) {
    std::int64_t drawn = 0;
    kept = kde_filtered_points(s, chain, truth, prev, real, n - real, out, sc.parent, sc.table, drawn);
    draws_per_kept = kept > 0 ? static_cast<double>(drawn) / static_cast<double>(kept) : NAN;  // (none kept)
  } else {
    kept = n - real;
    for (std::int64_t j = 0; j < kept; ++j)
      sc.parent[j] = kde_draw(s.seed, chain, static_cast<std::uint32_t>(t), rng::kStreamSyntheticComponent,
                              rng::kStreamSyntheticDraw, real + j, prev, out + j * d);
    draws_per_kept = 1.0;
  }
  for (std::int64_t j = 0; j < kept; ++j) {
    sc.anc[real + j] = prev.ancestor[sc.parent[j]];
    sc.flags[real + j] = kde_in_tail(s, truth, out + j * d) ? kKdeTail : 0;
  }
  return real + kept;
}

// Stores generation t's `added` new points (sc) in the pool (after the pool's pool_m points under the pooling
// regimes; in place of them under replace), then builds the training set: the pool itself under accumulate (train
// is not touched), a copy of it under replace, and under accumulate_subsample min(n, pool size) of its points
// chosen by Algorithm S (kernels/training/regime.h), in pool order. Returns the training set's size.
OURO_HD inline std::int64_t kde_store(const KdeStep& s, std::uint32_t chain, const KdeScratch& sc, std::int64_t added,
                                      const KdePoints& pool, std::int64_t& pool_m, const KdePoints& train) {
  const int d = s.d;
  const std::int64_t at = s.regime == Regime::kReplace ? 0 : pool_m;
  for (std::int64_t j = 0; j < added; ++j) {
    for (int a = 0; a < d; ++a) pool.x[(at + j) * d + a] = sc.fresh[j * d + a];
    pool.anc[at + j] = sc.anc[j];
    pool.flags[at + j] = sc.flags[j];
    pool.born[at + j] = s.generation;
  }
  pool_m = at + added;
  if (s.regime == Regime::kAccumulate) return pool_m;
  std::int64_t m = 0;
  auto take = [&](std::int64_t j) {
    for (int a = 0; a < d; ++a) train.x[m * d + a] = pool.x[j * d + a];
    train.anc[m] = pool.anc[j];
    train.flags[m] = pool.flags[j];
    train.born[m] = pool.born[j];
    ++m;
  };
  if (s.regime == Regime::kReplace) {
    for (std::int64_t j = 0; j < pool_m; ++j) take(j);
  } else {
    const std::int64_t want = pool_m < s.samples ? pool_m : s.samples;
    for_each_selected(s.seed, chain, static_cast<std::uint32_t>(s.generation), pool_m, want, take);
  }
  return m;
}

// What a chain's metrics need of generation t's model besides the held-out NLL.
struct KdeChainStats {
  double spread = NAN;       // tr S_t, the training set's weighted MLE covariance trace
  double mean_sq_err = NAN;  // ||m_t - mu_0||^2
  double ancestors = 0.0;    // distinct founders among the generation's new points
  double synthetic_share = NAN, data_age = NAN;
  double bandwidth = NAN;
  double log_total = NAN;  // ln sum_j exp(lw_j) (ln m without weights): the density's normaliser
};

// The statistics of training set v (m points) of generation s.generation, whose new points' founders are
// sc.anc[0 .. added). lw: the training set's log-weights (kde_log_weights; null: equal); w: m doubles of scratch
// for the weights relative to the largest.
OURO_HD inline KdeChainStats kde_chain_stats(const KdeStep& s, const GmmTruth& truth, const KdePoints& v,
                                             std::int64_t m, const double* lw, double* w, const KdeScratch& sc,
                                             std::int64_t added) {
  const int d = s.d, t = s.generation;
  KdeChainStats out;
  out.bandwidth = kde_bandwidth(s.rule, s.bandwidth, m, d);
  if (m > 0) {
    double top = 0.0;
    if (lw) {
      top = kde_top(lw, m);
      for (std::int64_t j = 0; j < m; ++j) w[j] = exp_poly(lw[j] - top);
    }
    double mean[kKdeMaxDim];
    out.spread = kde_weighted_spread(v.x, lw ? w : nullptr, m, d, mean);
    double err = 0.0;
    for (int a = 0; a < d; ++a) err += (mean[a] - truth.mean[a]) * (mean[a] - truth.mean[a]);
    out.mean_sq_err = err;
    if (lw) {
      double sum = 0.0;
      for (std::int64_t j = 0; j < m; ++j) sum += w[j];
      out.log_total = top + log_positive(sum);
    } else {
      out.log_total = log_positive(static_cast<double>(m));
    }
    // The composition, each point weighing age_decay^(t - k), taken relative to the youngest point (the ratios are
    // the same, and points many generations old cannot all underflow to weight 0).
    int youngest = v.born[0];
    for (std::int64_t j = 1; j < m; ++j) youngest = v.born[j] > youngest ? v.born[j] : youngest;
    double points = 0.0, synthetic = 0.0, age = 0.0;
    for (std::int64_t j = 0; j < m; ++j) {
      const double aged = pow_int(s.weighting.age_decay, youngest - v.born[j]);
      points += aged;
      synthetic += (v.flags[j] & kKdeReal) ? 0.0 : aged;
      age += aged * (t - v.born[j]);
    }
    out.synthetic_share = synthetic / points;
    out.data_age = age / points;
  }
  // Distinct founders among the generation's new points (their parents' indices are no longer needed: sorted in
  // sc.parent).
  for (std::int64_t j = 0; j < added; ++j) sc.parent[j] = sc.anc[j];
  out.ancestors = kde_distinct(sc.parent, added);
  return out;
}

// The held-out NLL's term of one held-out point x: ln sum_j exp(lw_j - |x - c_j|^2 / (2 h^2)) given the largest
// term `top`, the sum in eight lanes (j mod 8, each in increasing j) added in a fixed tree: the order of the cpu
// backend's vectorised loop, written for one thread (the cuda backend's).
inline constexpr int kKdeLanes = 8;
OURO_HD inline double kde_lane_tree(const double* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace ouro::kernels

// The n-gram family's metrics of one chain (kernels/ngram/ngram_backend.h's
// NgramMetric slots), as pieces both backends assemble in the same order:
// sums over the n-gram types of a counted text, taken per chunk of types
// (kNgramChunks fixed chunks, summed in parallel where the backend can) and
// then over the chunks in order, so that no bit depends on the thread count,
// and the closing formulas. Definitions: README, "N-gram language models".
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/portability.h"
#include "kernels/ngram/ngram.h"

namespace ouro::kernels {

// Metric slots of the n-gram family, in metrics.csv order.
enum NgramMetric : int {
  kNgHeldoutPpl = 0,
  kNgZeroProbRate,
  kNgTailPpl,
  kNgSupport,
  kNgVocabSurvival,
  kNgMissingMass,
  kNgEntropy,
  kNgGiniSimpson,
  kNgKl,
  kNgTv,
  kNgKlInfChains,
  kNgTailMass,
  kNgDistinct2,
  kNgCutSentences,
  kNgDrawsPerKept,
  kNgSyntheticShare,
  kNgDataAge,
  kNumNgramMetrics
};

inline constexpr int kNgramChunks = 64;

// Types [first, last) of chunk ch of `types`.
OURO_HD inline std::uint64_t chunk_first(std::uint64_t types, int ch) {
  return types * static_cast<std::uint64_t>(ch) / kNgramChunks;
}

// The held-out text scored by a model: per type, its count n and the
// model's probability p of it.
struct HeldoutSums {
  double all, zeros, bits, nz, tail_bits, tail_nz;

  OURO_HD static HeldoutSums zero() { return HeldoutSums{0.0, 0.0, 0.0, 0.0, 0.0, 0.0}; }
  OURO_HD void add(double p, double n, bool tail) {
    all += n;
    if (p > 0.0) {
      const double b = -log2(p);
      bits += n * b, nz += n;
      if (tail) tail_bits += n * b, tail_nz += n;
    } else {
      zeros += n;
    }
  }
  OURO_HD void add(const HeldoutSums& o) {
    all += o.all, zeros += o.zeros, bits += o.bits, nz += o.nz, tail_bits += o.tail_bits, tail_nz += o.tail_nz;
  }
};

// The model's own sample scored by the model: per type (forced sentence
// ends left out), its count n and probability p; tail counts the types
// ending in a tail word.
struct SampleSums {
  double bits, n, tail;

  OURO_HD static SampleSums zero() { return SampleSums{0.0, 0.0, 0.0}; }
  OURO_HD void add(double p, double count, bool in_tail) {
    bits += count * -log2(p);
    n += count;
    tail += in_tail ? count : 0.0;
  }
  OURO_HD void add(const SampleSums& o) { bits += o.bits, n += o.n, tail += o.tail; }
};

// heldout_ppl, zero_prob_rate, tail_ppl (perplexity over the tokens of
// non-zero probability; logs base 2).
OURO_HD inline void finish_heldout(const HeldoutSums& h, double* out, std::int64_t stride) {
  out[kNgHeldoutPpl * stride] = h.nz > 0.0 ? exp2(h.bits / h.nz) : NAN;
  out[kNgZeroProbRate * stride] = h.zeros / h.all;
  out[kNgTailPpl * stride] = h.tail_nz > 0.0 ? exp2(h.tail_bits / h.tail_nz) : NAN;
}

// vocab_survival and missing_mass: the truth's word types (word[w]) with
// non-zero unigram probability in the model (all of them when `all_alive`:
// a smoothed model, or the truth itself), and the truth's mass on the rest.
OURO_HD inline void vocab_alive(const NgramView& m, const unsigned char* word, const double* truth_p, bool all_alive,
                                double& survival, double& missing) {
  double alive = 0.0, words = 0.0;
  missing = 0.0;
  for (std::uint32_t w = 0; w < m.V; ++w) {
    if (!word[w]) continue;
    words += 1.0;
    const bool lives = all_alive || m.uni[w] > 0.0;
    alive += lives ? 1.0 : 0.0;
    missing += lives ? 0.0 : truth_p[w];
  }
  survival = alive / words;
}

// support: the number of n-gram types with non-zero probability before the
// sampler's cut. Smoothed: every word after every context that can occur
// (order 3: the V^2 - V + 1 pairs other than (u, <s>) with u != <s>); mle:
// the model's types.
OURO_HD inline double model_support(const NgramView& m) {
  const double V = m.V;
  if (m.smoothing != Smoothing::kMle) return m.order == 3 ? V * (V * V - V + 1.0) : (m.order == 2 ? V * V : V);
  return m.order == 1 ? m.uni_types : static_cast<double>(m.top.ctx_start[m.top.contexts]);
}

// Order 1's comparisons with the truth p0: gini_simpson (1 - sum p^2),
// tail_mass (the model's mass on the tail set over the truth's, `in_tail`
// per word) and, for a known truth (`exact`), kl = KL(p0 || p) in bits
// (inf once a true type has p = 0) and tv. prob(w) is the model's p(w).
template <class Prob, class InTail>
OURO_HD void unigram_compare(Prob prob, std::uint32_t V, const double* truth_p, InTail in_tail, bool exact,
                             double& gini, double& kl, double& tv, double& tail_mass) {
  double sq = 0.0, tail_model = 0.0, tail_truth = 0.0;
  kl = exact ? 0.0 : NAN;
  tv = exact ? 0.0 : NAN;
  for (std::uint32_t w = 0; w < V; ++w) {
    const double p = prob(w), p0 = truth_p[w];
    sq += p * p;
    if (in_tail(w)) tail_model += p, tail_truth += p0;
    if (exact) {
      if (p0 > 0.0) kl += p > 0.0 ? p0 * log2(p0 / p) : INFINITY;
      tv += 0.5 * fabs(p0 - p);
    }
  }
  gini = 1.0 - sq;
  tail_mass = tail_model / tail_truth;
}

// A Markov-chain truth's comparisons, as rates per token under its
// stationary law pi: kl = sum_v pi(v) sum_w p0(w|v) log2(p0(w|v) / p(w|v))
// (inf once a true transition has p = 0) and tv = sum_v pi(v) TV(p0(.|v),
// p(.|v)). truth(v, w) and prob(v, w) give p0 and the model's p.
// markov_row is context v's inner sum (a backend may take the rows in
// parallel), markov_combine adds the rows in order of v.
template <class Truth, class Prob>
OURO_HD void markov_row(Truth truth, Prob prob, std::uint32_t V, std::uint32_t v, double& klv, double& tvv) {
  klv = 0.0;
  tvv = 0.0;
  for (std::uint32_t w = 0; w < V; ++w) {
    const double p0 = truth(v, w), p = prob(v, w);
    if (p0 > 0.0) klv += p > 0.0 ? p0 * log2(p0 / p) : INFINITY;
    tvv += 0.5 * fabs(p0 - p);
  }
}

OURO_HD inline void markov_combine(const double* klv, const double* tvv, std::uint32_t V, const double* pi, double& kl,
                                   double& tv) {
  kl = 0.0;
  tv = 0.0;
  for (std::uint32_t v = 0; v < V; ++v) {
    kl += pi[v] * klv[v];
    tv += pi[v] * tvv[v];
  }
}

// Both steps at once, the rows one after another (the cpu backend).
template <class Truth, class Prob>
OURO_HD void markov_compare(Truth truth, Prob prob, std::uint32_t V, const double* pi, double& kl, double& tv) {
  kl = 0.0;
  tv = 0.0;
  for (std::uint32_t v = 0; v < V; ++v) {
    double klv, tvv;
    markov_row(truth, prob, V, v, klv, tvv);
    kl += pi[v] * klv;
    tv += pi[v] * tvv;
  }
}

// The truth's mass on the tail set.
template <class InTail>
OURO_HD double truth_tail_mass(std::uint32_t V, const double* truth_p, InTail in_tail) {
  double tail_truth = 0.0;
  for (std::uint32_t w = 0; w < V; ++w) tail_truth += in_tail(w) ? truth_p[w] : 0.0;
  return tail_truth;
}

}  // namespace ouro::kernels

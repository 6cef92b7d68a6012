// The n-gram family's per-token math: a fitted model of order 1 or 2 as flat
// count tables, its probability under each smoothing, and exact sampling.
//
// Token ids: 0..V-1 are the predicted vocabulary (for text: 0 the end marker
// </s>, 1 <unk>, then words); the begin marker <s> is the context id V.
//
// Smoothing (README, "N-gram language models"; Chen & Goodman 1999):
//   mle         p(w | v) = c(v w) / c(v)
//   add_k       p(w | v) = (c(v w) + k) / (c(v) + k V)
//   kneser_ney  interpolated, fixed discount D (Kneser & Ney 1995):
//               p(w | v) = max(c(v w) - D, 0) / c(v) + D T(v) / c(v) p_c(w),
//               p_c(w)   = max(N(. w) - D, 0) / N(. .) + D T_c / N(. .) / V,
//               T(v) the number of word types seen after v, N(. w) the
//               number of contexts w was seen after, N(. .) the number of
//               bigram types, T_c the number of w with N(. w) > 0; an unseen
//               context uses p_c. Order 1: p(w) = max(c(w) - D, 0) / N +
//               D T / N / V.
// Sampling with the sampler at its defaults (temperature 1, no top-k/top-p)
// is exact and O(log) per token: each smoothed distribution is a mixture of
// a (discounted) count table and a simpler distribution, so a uniform picks
// the component and then the token by binary search in cumulative tables.
// Every decision compares a uniform times a total with cumulative sums built
// by the same sequence of additions, so it does not depend on the backend.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/portability.h"
#include "kernels/rng.h"

namespace ouro::kernels {

enum class Smoothing : int { kMle = 0, kAddK = 1, kKneserNey = 2 };

// A fitted model of one chain: pointers into flat arrays (host or device).
struct NgramView {
  int order;  // 1 or 2
  Smoothing smoothing;
  double k;         // add_k
  double discount;  // kneser_ney
  std::uint32_t V;  // predicted vocabulary size
  // order 1 (and the order-2 continuation distribution): per token id
  const double* uni;      // [V] counts c(w) (order 1) or continuation counts N(. w) (order 2)
  const double* uni_cum;  // [V] inclusive prefix sums of uni
  const double* uni_cumd; // [V] inclusive prefix sums of max(uni - D, 0) (kneser_ney)
  double uni_total;       // sum of uni
  double uni_types;       // number of w with uni > 0
  // order 2: contexts (sorted ids) and their entries (sorted by word)
  std::uint32_t contexts;
  const std::uint32_t* ctx;        // [contexts]
  const std::uint64_t* ctx_start;  // [contexts + 1] into the entries
  const double* ctx_total;         // [contexts] c(v)
  const std::uint32_t* ent_w;      // [entries]
  const double* ent_c;             // [entries] c(v w)
  const double* ent_cum;           // [entries] inclusive prefix of c within its context
  const double* ent_cumd;          // [entries] inclusive prefix of max(c - D, 0) within its context
  const std::int32_t* ctx_of;      // [V + 1] index of context v, or -1 (a dense lookup; may be null)
};

// First index i in [lo, hi) with a[i] > x (hi - 1 if none: guards rounding).
OURO_HD inline std::uint64_t first_above(const double* a, std::uint64_t lo, std::uint64_t hi, double x) {
  std::uint64_t l = lo, h = hi - 1;
  while (l < h) {
    const std::uint64_t m = l + (h - l) / 2;
    if (a[m] > x) h = m;
    else l = m + 1;
  }
  return l;
}

// Index of context v among the model's contexts, or -1.
OURO_HD inline std::int64_t find_context(const NgramView& m, std::uint32_t v) {
  if (m.ctx_of) return v <= m.V ? m.ctx_of[v] : -1;
  std::int64_t l = 0, h = static_cast<std::int64_t>(m.contexts) - 1;
  while (l <= h) {
    const std::int64_t mid = l + (h - l) / 2;
    if (m.ctx[mid] == v) return mid;
    if (m.ctx[mid] < v) l = mid + 1;
    else h = mid - 1;
  }
  return -1;
}

// c(v w) for context index ci.
OURO_HD inline double entry_count(const NgramView& m, std::int64_t ci, std::uint32_t w) {
  std::uint64_t l = m.ctx_start[ci], h = m.ctx_start[ci + 1];
  while (l < h) {
    const std::uint64_t mid = l + (h - l) / 2;
    if (m.ent_w[mid] == w) return m.ent_c[mid];
    if (m.ent_w[mid] < w) l = mid + 1;
    else h = mid;
  }
  return 0.0;
}

// The order-1 distribution (order 1) or the continuation distribution
// (order 2, kneser_ney), under the model's smoothing.
OURO_HD inline double unigram_prob(const NgramView& m, std::uint32_t w) {
  const double c = m.uni[w], n = m.uni_total;
  switch (m.smoothing) {
    case Smoothing::kMle: return n > 0.0 ? c / n : 0.0;
    case Smoothing::kAddK: return (c + m.k) / (n + m.k * m.V);
    default: {
      if (!(n > 0.0)) return 1.0 / m.V;
      const double d = m.discount;
      return (c > d ? c - d : 0.0) / n + d * m.uni_types / n / m.V;
    }
  }
}

// p(w | context v); v is ignored for order 1. Unseen contexts: mle gives 0,
// add_k the uniform distribution, kneser_ney the continuation distribution.
OURO_HD inline double ngram_prob(const NgramView& m, std::uint32_t v, std::uint32_t w) {
  if (m.order == 1) return unigram_prob(m, w);
  const std::int64_t ci = find_context(m, v);
  const double cv = ci >= 0 ? m.ctx_total[ci] : 0.0;
  const double cvw = ci >= 0 ? entry_count(m, ci, w) : 0.0;
  switch (m.smoothing) {
    case Smoothing::kMle: return cv > 0.0 ? cvw / cv : 0.0;
    case Smoothing::kAddK: return (cvw + m.k) / (cv + m.k * m.V);
    default: {
      const double pc = unigram_prob(m, w);
      if (!(cv > 0.0)) return pc;
      const double d = m.discount;
      const double types = static_cast<double>(m.ctx_start[ci + 1] - m.ctx_start[ci]);
      return (cvw > d ? cvw - d : 0.0) / cv + d * types / cv * pc;
    }
  }
}

// A token from the order-1 (or continuation) distribution, given uniforms
// u, u2 in (0, 1).
OURO_HD inline std::uint32_t sample_unigram(const NgramView& m, double u, double u2) {
  const double n = m.uni_total;
  const auto uniform = [&](double x) {
    const double j = floor(x * m.V);
    return static_cast<std::uint32_t>(j < m.V - 1 ? j : m.V - 1);
  };
  switch (m.smoothing) {
    case Smoothing::kMle: return static_cast<std::uint32_t>(first_above(m.uni_cum, 0, m.V, floor(u * n)));
    case Smoothing::kAddK: {
      const double x = u * (n + m.k * m.V);
      return x < n ? static_cast<std::uint32_t>(first_above(m.uni_cum, 0, m.V, floor(x))) : uniform(u2);
    }
    default: {
      if (!(n > 0.0)) return uniform(u2);
      const double kept = m.uni_cumd[m.V - 1];  // n - D T, up to rounding
      const double x = u * n;
      return x < kept ? static_cast<std::uint32_t>(first_above(m.uni_cumd, 0, m.V, x)) : uniform(u2);
    }
  }
}

// A token w ~ p(. | v) at the sampler's defaults, from uniforms u, u2, u3.
OURO_HD inline std::uint32_t sample_next(const NgramView& m, std::uint32_t v, double u, double u2, double u3) {
  if (m.order == 1) return sample_unigram(m, u, u2);
  const std::int64_t ci = find_context(m, v);
  const double cv = ci >= 0 ? m.ctx_total[ci] : 0.0;
  const std::uint64_t lo = ci >= 0 ? m.ctx_start[ci] : 0, hi = ci >= 0 ? m.ctx_start[ci + 1] : 0;
  switch (m.smoothing) {
    case Smoothing::kMle:
      // An unseen context cannot be reached by sampling from an mle model
      // (every token it emits was seen followed by something); </s> if it is.
      return cv > 0.0 ? m.ent_w[first_above(m.ent_cum, lo, hi, floor(u * cv))] : 0u;
    case Smoothing::kAddK: {
      const double x = u * (cv + m.k * m.V);
      if (x < cv) return m.ent_w[first_above(m.ent_cum, lo, hi, floor(x))];
      const double j = floor(u2 * m.V);
      return static_cast<std::uint32_t>(j < m.V - 1 ? j : m.V - 1);
    }
    default: {
      if (cv > 0.0) {
        const double x = u * cv;
        if (x < m.ent_cumd[hi - 1]) return m.ent_w[first_above(m.ent_cumd, lo, hi, x)];
      }
      return sample_unigram(m, u2, u3);
    }
  }
}

// Sentences are at most kMaxSentence tokens long (a longer one is cut and
// ended with </s>; the cut is counted).
inline constexpr std::uint32_t kMaxSentence = 4096;

// The uniforms of token i of sentence j of a generation's stream: u and u2
// from block 2 (j * kMaxSentence + i), and a third, only for kneser_ney's
// second fall-back, from the next block.
OURO_HD inline std::uint64_t token_block(std::uint64_t sentence, std::uint32_t i) {
  return 2 * (sentence * kMaxSentence + i);
}
OURO_HD inline void token_uniforms(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint32_t stream,
                                   std::uint64_t sentence, std::uint32_t i, bool third, double& u, double& u2,
                                   double& u3) {
  const rng::Block b = rng::draw_block(seed, chain, gen, stream, token_block(sentence, i));
  u = rng::u01_open(b.v[0], b.v[1]);
  u2 = rng::u01_open(b.v[2], b.v[3]);
  u3 = 0.5;
  if (third) {
    const rng::Block c = rng::draw_block(seed, chain, gen, stream, token_block(sentence, i) + 1);
    u3 = rng::u01_open(c.v[0], c.v[1]);
  }
}

}  // namespace ouro::kernels

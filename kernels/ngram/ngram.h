// The n-gram family's per-token math: a fitted model of order 1, 2 or 3 as
// flat count tables, its probability under each smoothing, and exact sampling.
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
//               D T / N / V. Order 3 interpolates three levels: the
//               trigram counts, the continuation counts N(. v w) (distinct u
//               before v w) per context v, and N(. w) over bigram types.
// Sampling with the sampler at its defaults (temperature 1, no top-k/top-p)
// is exact and O(log) per token: each smoothed distribution is a mixture of
// a (discounted) count table and a simpler distribution, so a uniform picks
// the component and then the token: from a context's counts (mle, add_k)
// by its alias table, O(1); otherwise by binary search in cumulative tables.
// Every decision compares a uniform times a total with integers or with
// cumulative sums built by the same sequence of additions, so it does not
// depend on the backend.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/elementary.h"
#include "kernels/core/portability.h"
#include "kernels/core/rng.h"

namespace ouro::kernels {

enum class Smoothing : int { kMle = 0, kAddK = 1, kKneserNey = 2 };

// One bucket of a context's alias table (see pick_alias): bucket k of a
// context is shared by the context's entry k (its own) and one other entry.
struct AliasBucket {
  std::uint64_t keep;        // units of the bucket's capacity C that go to the own entry
  std::uint32_t own, alias;  // the two entries' words
};

// A draw from a context's counts, as a cell of its alias table: 2 (lo + k)
// + 1 for bucket k's own entry, 2 (lo + k) for its alias; kNoCell for a
// token not drawn from the top level's counts (see sample_next).
inline constexpr std::uint64_t kNoCell = ~std::uint64_t{0};

// One level of a model: its contexts (sorted keys) and, per context, the
// words seen after it (sorted) with their counts.
struct NgramLevel {
  std::uint64_t contexts;
  const std::uint64_t* ctx;          // [contexts] context keys
  const std::uint64_t* ctx_start;    // [contexts + 1] into the entries
  const double* ctx_total;           // [contexts] c(context)
  const std::uint32_t* ent_w;        // [entries]
  const double* ent_c;               // [entries] c(context w)
  const double* ent_cum;             // [entries] inclusive prefix of c within its context
  const double* ent_cumd;            // [entries] inclusive prefix of max(c - D, 0) within its context
  const std::int32_t* ctx_of;        // [V + 1] dense index of single-token contexts, or null
  const AliasBucket* alias;          // [entries] per context its alias table (see pick_alias), or null
  const std::uint32_t* alias_entry;  // [entries] bucket k's alias entry, from the context's first (or null)
};

// A fitted model of one chain: pointers into flat arrays (host or device).
// Context keys: order 2, the previous token v (<s> = V); order 3, the two
// previous tokens u v as u (V + 1) + v.
struct NgramView {
  int order;  // 1, 2 or 3
  Smoothing smoothing;
  double k;         // add_k
  double discount;  // kneser_ney
  std::uint32_t V;  // predicted vocabulary size
  // Order 1: the counts c(w). Orders 2 and 3: continuation counts N(. w),
  // the number of distinct contexts w was seen after (at the level below
  // the top), the lowest level of kneser_ney.
  const double* uni;       // [V]
  const double* uni_cum;   // [V] inclusive prefix sums of uni
  const double* uni_cumd;  // [V] inclusive prefix sums of max(uni - D, 0)
  double uni_total;        // sum of uni
  double uni_types;        // number of w with uni > 0
  NgramLevel top;          // orders 2 and 3: the model's own counts
  NgramLevel mid;          // order 3, kneser_ney: N(. v w) per context v
};

// The context before a sentence's first token, and after token w.
OURO_HD inline std::uint64_t start_context(int order, std::uint32_t V) {
  return order == 3 ? static_cast<std::uint64_t>(V) * (V + 1) + V : (order == 2 ? V : 0);
}
OURO_HD inline std::uint64_t next_context(int order, std::uint32_t V, std::uint64_t ctx, std::uint32_t w) {
  return order == 3 ? (ctx % (V + 1)) * (V + 1) + w : (order == 2 ? w : 0);
}

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

// A word of a context's counts (entries [lo, hi)), drawn with probability
// exactly c(v w) / c(v): its alias table (Walker 1977, built as in Vose
// 1991) picks a bucket with uniform a and decides inside it with uniform b.
// A context with T entries and total count C has T buckets of capacity C;
// bucket k holds the context's entry k with `keep` units and entry
// alias_entry[k] with the other C - keep, and entry e holds c(v w) T of the
// T C units in all (built from the integer counts with integer arithmetic).
// Both decisions are integer comparisons after one rounding of a uniform
// times an integer, so they cannot differ between backends, and a draw
// reads one bucket, which holds both words: one cache miss per token instead
// of a search's chain of dependent ones. `cell` is set to the cell drawn
// (see kNoCell), from which the sample is counted without a sort.
OURO_HD inline std::uint32_t pick_alias(const NgramLevel& L, std::uint64_t lo, std::uint64_t hi, double total, double a,
                                        double b, std::uint64_t& cell) {
  const double T = static_cast<double>(hi - lo);
  double k = floor(a * T);
  k = k < T - 1 ? k : T - 1;
  const std::uint64_t bucket = lo + static_cast<std::uint64_t>(k);
  double y = floor(b * total);
  y = y < total - 1 ? y : total - 1;
  // A select without a branch: the comparison is a coin flip to a branch
  // predictor, and a mispredicted branch would stall the draws of other
  // sentences interleaved with this one (ngram_cpu.cc).
  const std::uint32_t own = static_cast<std::uint64_t>(y) < L.alias[bucket].keep ? 1u : 0u;
  cell = 2 * bucket + own;
  return L.alias[bucket].alias ^ ((L.alias[bucket].own ^ L.alias[bucket].alias) & (0u - own));
}

// An mle draw from a context's alias table (entries [lo, hi), total count
// cv), as sample_next makes it: </s> for a context with no count (an mle
// model cannot reach one by sampling: every token it emits was seen followed
// by something).
OURO_HD inline std::uint32_t mle_alias_next(const NgramLevel& L, std::uint64_t lo, std::uint64_t hi, double cv,
                                            double a, double b, std::uint64_t& cell) {
  if (!(cv > 0.0)) return 0u;
  return pick_alias(L, lo, hi, cv, a, b, cell);
}

// Index of a context in a level, or -1.
OURO_HD inline std::int64_t find_context(const NgramLevel& L, std::uint32_t V, std::uint64_t key) {
  if (L.ctx_of) return key <= V ? L.ctx_of[key] : -1;
  std::int64_t l = 0, h = static_cast<std::int64_t>(L.contexts) - 1;
  while (l <= h) {
    const std::int64_t mid = l + (h - l) / 2;
    if (L.ctx[mid] == key) return mid;
    if (L.ctx[mid] < key) l = mid + 1;
    else h = mid - 1;
  }
  return -1;
}

// c(context w) for context index ci.
OURO_HD inline double entry_count(const NgramLevel& L, std::int64_t ci, std::uint32_t w) {
  std::uint64_t l = L.ctx_start[ci], h = L.ctx_start[ci + 1];
  while (l < h) {
    const std::uint64_t mid = l + (h - l) / 2;
    if (L.ent_w[mid] == w) return L.ent_c[mid];
    if (L.ent_w[mid] < w) l = mid + 1;
    else h = mid;
  }
  return 0.0;
}

// The lowest level: order 1's distribution, or the continuation
// distribution of kneser_ney.
OURO_HD inline double unigram_prob(const NgramView& m, std::uint32_t w) {
  const double c = m.uni[w], n = m.uni_total;
  switch (m.smoothing) {
    case Smoothing::kMle:
      return n > 0.0 ? c / n : 0.0;
    case Smoothing::kAddK:
      return (c + m.k) / (n + m.k * m.V);
    default: {
      if (!(n > 0.0)) return 1.0 / m.V;
      const double d = m.discount;
      return (c > d ? c - d : 0.0) / n + d * m.uni_types / n / m.V;
    }
  }
}

// Interpolated Kneser-Ney at one level: the discounted counts of the
// context, plus the discounted mass times the level below (`lower`).
OURO_HD inline double kn_level(const NgramLevel& L, std::uint32_t V, double d, std::uint64_t key, std::uint32_t w,
                               double lower) {
  const std::int64_t ci = find_context(L, V, key);
  if (ci < 0) return lower;
  const double cv = L.ctx_total[ci], cvw = entry_count(L, ci, w);
  const double types = static_cast<double>(L.ctx_start[ci + 1] - L.ctx_start[ci]);
  return (cvw > d ? cvw - d : 0.0) / cv + d * types / cv * lower;
}

// p(w | context); the context is ignored for order 1. Unseen contexts: mle
// gives 0, add_k the uniform distribution, kneser_ney the level below.
OURO_HD inline double ngram_prob(const NgramView& m, std::uint64_t ctx, std::uint32_t w) {
  if (m.order == 1) return unigram_prob(m, w);
  if (m.smoothing == Smoothing::kKneserNey) {
    double p = unigram_prob(m, w);
    if (m.order == 3) p = kn_level(m.mid, m.V, m.discount, ctx % (m.V + 1), w, p);
    return kn_level(m.top, m.V, m.discount, ctx, w, p);
  }
  const std::int64_t ci = find_context(m.top, m.V, ctx);
  const double cv = ci >= 0 ? m.top.ctx_total[ci] : 0.0;
  const double cvw = ci >= 0 ? entry_count(m.top, ci, w) : 0.0;
  if (m.smoothing == Smoothing::kMle) return cv > 0.0 ? cvw / cv : 0.0;
  return (cvw + m.k) / (cv + m.k * m.V);
}

// The uniforms of one token: u picks at the top level, u2 one level down,
// u3 and u4 below that (kneser_ney's fall-backs only).
struct TokenUniforms {
  double u, u2, u3, u4;
};

OURO_HD inline std::uint32_t uniform_token(const NgramView& m, double x) {
  const double j = floor(x * m.V);
  return static_cast<std::uint32_t>(j < m.V - 1 ? j : m.V - 1);
}

// A token from the lowest level, with uniforms a (component) and b (uniform part).
OURO_HD inline std::uint32_t sample_unigram(const NgramView& m, double a, double b) {
  const double n = m.uni_total;
  switch (m.smoothing) {
    // (With whole counts "cumulative count > a n" and "> floor(a n)" pick the
    // same token; weighted counts need the former.)
    case Smoothing::kMle:
      return static_cast<std::uint32_t>(first_above(m.uni_cum, 0, m.V, a * n));
    case Smoothing::kAddK: {
      const double x = a * (n + m.k * m.V);
      return x < n ? static_cast<std::uint32_t>(first_above(m.uni_cum, 0, m.V, x)) : uniform_token(m, b);
    }
    default: {
      if (!(n > 0.0)) return uniform_token(m, b);
      const double x = a * n;
      return x < m.uni_cumd[m.V - 1] ? static_cast<std::uint32_t>(first_above(m.uni_cumd, 0, m.V, x))
                                     : uniform_token(m, b);
    }
  }
}

// Kneser-Ney at one level: the token from the context's discounted counts
// when the uniform falls in their mass, else -1 (go one level down).
OURO_HD inline std::int64_t kn_pick(const NgramLevel& L, std::uint32_t V, std::uint64_t key, double u) {
  const std::int64_t ci = find_context(L, V, key);
  if (ci < 0) return -1;
  const std::uint64_t lo = L.ctx_start[ci], hi = L.ctx_start[ci + 1];
  const double x = u * L.ctx_total[ci];
  return x < L.ent_cumd[hi - 1] ? static_cast<std::int64_t>(L.ent_w[first_above(L.ent_cumd, lo, hi, x)]) : -1;
}

// A token w ~ p(. | context) at the sampler's defaults; `cell` is set to
// the alias cell it was drawn from when it came from the top level's counts
// (mle, add_k; see pick_alias), else kNoCell.
OURO_HD inline std::uint32_t sample_next(const NgramView& m, std::uint64_t ctx, const TokenUniforms& r,
                                         std::uint64_t& cell) {
  cell = kNoCell;
  if (m.order == 1) return sample_unigram(m, r.u, r.u2);
  if (m.smoothing == Smoothing::kKneserNey) {
    std::int64_t w = kn_pick(m.top, m.V, ctx, r.u);
    if (w >= 0) return static_cast<std::uint32_t>(w);
    if (m.order == 3) {
      w = kn_pick(m.mid, m.V, ctx % (m.V + 1), r.u2);
      if (w >= 0) return static_cast<std::uint32_t>(w);
      return sample_unigram(m, r.u3, r.u4);
    }
    return sample_unigram(m, r.u2, r.u3);
  }
  const std::int64_t ci = find_context(m.top, m.V, ctx);
  const double cv = ci >= 0 ? m.top.ctx_total[ci] : 0.0;
  const std::uint64_t lo = ci >= 0 ? m.top.ctx_start[ci] : 0, hi = ci >= 0 ? m.top.ctx_start[ci + 1] : 0;
  // Weighted counts that are not whole numbers have no alias tables: the
  // entry whose cumulative count first exceeds u c(v), by binary search.
  if (m.smoothing == Smoothing::kMle) {
    if (m.top.alias) return mle_alias_next(m.top, lo, hi, cv, r.u, r.u2, cell);
    // (Without alias tables, the same rule: </s> for a context with no count.)
    if (!(cv > 0.0)) return 0u;
    return m.top.ent_w[first_above(m.top.ent_cum, lo, hi, r.u * cv)];
  }
  // add_k: the counts' share of the mass, or a uniform word. Given x < c(v),
  // x / c(v) is uniform in [0, 1): the bucket's uniform.
  const double x = r.u * (cv + m.k * m.V);
  if (!(x < cv)) return uniform_token(m, r.u2);
  if (!m.top.alias) return m.top.ent_w[first_above(m.top.ent_cum, lo, hi, x)];
  return pick_alias(m.top, lo, hi, cv, x / cv, r.u2, cell);
}

OURO_HD inline std::uint32_t sample_next(const NgramView& m, std::uint64_t ctx, const TokenUniforms& r) {
  std::uint64_t cell;
  return sample_next(m, ctx, r, cell);
}

// The sampler's cut of one context (sampler: {temperature, top_k, top_p}):
// its candidate words (p > 0), n of them in decreasing order of p (ties by
// word), p(i) the probability of the i-th. Keeps the first top_k (0: all),
// weighs each by the temperature T, q = (p / p_first)^(1/T) = exp((ln p -
// ln p_first) / T) (with log_positive and exp_poly, so that both backends
// compute the same bits; the first weight is 1, so however low T is not
// every weight can underflow; one below e^-708 becomes 0), then keeps the
// smallest prefix whose weight reaches top_p of the kept weight (Holtzman et
// al. 2020). Writes the running sums of the weights to cum and returns the
// number kept; a token is the first kept word whose running sum exceeds u
// times the last.
template <class Prob>
OURO_HD std::uint64_t sampler_cut(Prob p, std::uint64_t n, int top_k, double temperature, double top_p, double* cum) {
  if (top_k > 0 && n > static_cast<std::uint64_t>(top_k)) n = static_cast<std::uint64_t>(top_k);
  const bool tempered = temperature != 1.0 && n > 0;
  const double log_first = tempered ? log_positive(p(0)) : 0.0;
  auto weight = [&](std::uint64_t i) {
    return tempered ? exp_poly((log_positive(p(i)) - log_first) / temperature) : p(i);
  };
  double mass = 0.0;
  for (std::uint64_t i = 0; i < n; ++i) mass += weight(i);
  double run = 0.0;
  for (std::uint64_t i = 0; i < n; ++i) {
    run += weight(i);
    cum[i] = run;
    if (run >= top_p * mass) return i + 1;
  }
  return n;
}

// Building a fitted model's tables, one context (or the lowest level) at a
// time: the same sequence of operations on both backends, so that every
// table is bit for bit the same.

// One context's cumulative tables from its entries' counts c[0, T): the
// inclusive prefix sums of c (cum) and of max(c - D, 0) (cumd). Returns
// c(v), the last of cum.
OURO_HD inline double build_context(const double* c, std::uint64_t T, double d, double* cum, double* cumd) {
  double run = 0.0, rund = 0.0;
  for (std::uint64_t e = 0; e < T; ++e) {
    run = (e == 0 ? 0.0 : run) + c[e];
    rund = (e == 0 ? 0.0 : rund) + (c[e] > d ? c[e] - d : 0.0);
    cum[e] = run;
    cumd[e] = rund;
  }
  return run;
}

// Whether a context of T entries with total count C can have an alias
// table: every count a whole number below 2^53 (the caller checks the
// counts) and C T < 2^64.
OURO_HD inline bool alias_fits(double C, std::uint64_t T) {
  return C < 0x1.0p53 && static_cast<std::uint64_t>(C) <= ~std::uint64_t{0} / T;
}

// One context's alias table (see pick_alias) from its words w[0, T) and
// whole counts c[0, T) with total C, in integers: bucket capacity C, entry
// e's units c(v e) T. Buckets under capacity ("small") are topped up from
// one over it ("large") until all are full (Vose 1991). Scratch: units[T],
// and stack[T], which holds the small buckets from its front and the large
// ones from its back.
OURO_HD inline void build_alias(const std::uint32_t* w, const double* c, std::uint64_t T, double total,
                                AliasBucket* alias, std::uint32_t* alias_entry, std::uint64_t* units,
                                std::uint32_t* stack) {
  const auto C = static_cast<std::uint64_t>(total);
  std::uint64_t small = 0, large = 0;  // stack[0, small) and stack[T - large, T)
  for (std::uint64_t b = 0; b < T; ++b) {
    units[b] = static_cast<std::uint64_t>(c[b]) * T;
    if (units[b] < C) stack[small++] = static_cast<std::uint32_t>(b);
    else stack[T - 1 - large++] = static_cast<std::uint32_t>(b);
  }
  while (small > 0 && large > 0) {
    const std::uint32_t a = stack[--small], b = stack[T - large];
    alias[a] = AliasBucket{units[a], w[a], w[b]};
    alias_entry[a] = b;
    units[b] -= C - units[a];
    if (units[b] < C) --large, stack[small++] = b;
  }
  // What is left is exactly full (the units add up to T C).
  auto full = [&](std::uint32_t b) { alias[b] = AliasBucket{C, w[b], w[b]}, alias_entry[b] = b; };
  for (std::uint64_t k = 0; k < small; ++k) full(stack[k]);
  for (std::uint64_t k = T - large; k < T; ++k) full(stack[k]);
}

// The lowest level's tables from its counts uni[V]: inclusive prefix sums
// of uni and of max(uni - D, 0), the total and the number of types.
OURO_HD inline void build_lowest(const double* uni, std::uint32_t V, double d, double* cum, double* cumd, double& total,
                                 double& types) {
  double run = 0.0, rund = 0.0;
  types = 0.0;
  for (std::uint32_t w = 0; w < V; ++w) {
    run += uni[w];
    rund += uni[w] > d ? uni[w] - d : 0.0;
    cum[w] = run;
    cumd[w] = rund;
    types += uni[w] > 0.0 ? 1.0 : 0.0;
  }
  total = run;
}

// Sentences are at most kMaxSentence tokens long (a longer one is cut and
// ended with </s>; the cut is counted).
inline constexpr std::uint32_t kMaxSentence = 4096;

// The uniforms of token i of sentence j of a generation's stream: u and u2
// from block 2 (j * kMaxSentence + i), u3 and u4 (kneser_ney's lower
// fall-backs only) from the next block.
OURO_HD inline std::uint64_t token_block(std::uint64_t sentence, std::uint32_t i) {
  return 2 * (sentence * kMaxSentence + i);
}
OURO_HD inline TokenUniforms token_uniforms(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen,
                                            std::uint32_t stream, std::uint64_t sentence, std::uint32_t i, bool more) {
  const rng::Block b = rng::draw_block(seed, chain, gen, stream, token_block(sentence, i));
  TokenUniforms r{rng::u01_open(b.v[0], b.v[1]), rng::u01_open(b.v[2], b.v[3]), 0.5, 0.5};
  if (more) {
    const rng::Block c = rng::draw_block(seed, chain, gen, stream, token_block(sentence, i) + 1);
    r.u3 = rng::u01_open(c.v[0], c.v[1]);
    r.u4 = rng::u01_open(c.v[2], c.v[3]);
  }
  return r;
}

}  // namespace ouro::kernels

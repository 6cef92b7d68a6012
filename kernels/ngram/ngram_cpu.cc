// The cpu backend of the n-gram family: OpenMP over chains, each chain's
// generation done whole by one thread. A generation t: compose the training
// text (real sentences drawn from the corpus, synthetic sentences drawn from
// generation t-1's model), count its n-grams (sort and reduce), build model
// t's tables, measure it against the held-out text and the truth, and draw
// the sample from model t that generation t+1 trains on (also used for the
// sample-based metrics of generation t).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kernels/core/philox_batch.h"
#include "kernels/core/state.h"
#include "kernels/ngram/ngram_backend.h"

namespace ouro::kernels {
namespace {

// FNV-1a over a sentence's token ids (data.dedup's set of sentences).
struct SentenceHash {
  std::size_t operator()(const std::vector<std::uint32_t>& v) const {
    std::uint64_t h = 1469598103934665603ull;
    for (std::uint32_t w : v) h = (h ^ w) * 1099511628211ull;
    return static_cast<std::size_t>(h);
  }
};

// The uniforms of N tokens, lane by lane (TokenUniforms' fields as arrays).
template <int N>
struct UniformLanes {
  alignas(64) double u[N], u2[N], u3[N], u4[N];
  TokenUniforms at(int k) const { return TokenUniforms{u[k], u2[k], u3[k], u4[k]}; }
};

// The uniforms of N tokens at once (token_uniforms, kernels/ngram/ngram.h), token
// k given by its block (token_block), the blocks made together
// (philox_blocks) and turned into doubles in a loop g++ vectorises: the same
// numbers as token_uniforms, bit for bit.
class TokenBatch {
 public:
  TokenBatch(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, bool more)
      : keys_(seed, chain), gen_(gen), stream_(stream), more_(more) {}

  // The tokens at blocks block[k], k < N (u3 and u4 only with `more`: as
  // token_uniforms leaves them without it, the caller sets them once).
  template <int N>
  void fill(const std::uint64_t* block, UniformLanes<N>& x) const {
    half<N>(block, 0, x.u, x.u2);
    if (more_) half<N>(block, 1, x.u3, x.u4);
  }

 private:
  // Blocks block[k] + offset as the uniforms a, b (u, u2 or u3, u4).
  template <int N>
  void half(const std::uint64_t* block, std::uint64_t offset, double* a, double* b) const {
    alignas(64) std::uint64_t w0[N], w1[N], w2[N], w3[N];
    rng::philox_blocks<N>(block, offset, stream_, gen_, keys_, w0, w1, w2, w3);
#pragma omp simd
    for (int k = 0; k < N; ++k) {
      a[k] = rng::u01_open_words(w0[k], w1[k]);
      b[k] = rng::u01_open_words(w2[k], w3[k]);
    }
  }

  rng::PhiloxKeys keys_;
  std::uint32_t gen_, stream_;
  bool more_;
};

// The uniforms of consecutive tokens of one sequence, a tile of kTile at
// a time (a zipf truth's stream of single tokens).
class TokenTile {
 public:
  explicit TokenTile(const TokenBatch& batch) : batch_(batch) {
    for (int k = 0; k < kTile; ++k) u_.u3[k] = u_.u4[k] = 0.5;  // (as token_uniforms leaves them without `more`)
  }

  TokenUniforms at(std::uint64_t sentence, std::uint32_t i) {
    // (i - i0_ wraps past kTile for i < i0_; no sentence is number 2^64 - 1.)
    if (sentence != sentence_ || i - i0_ >= kTile) {
      sentence_ = sentence, i0_ = i;
      std::uint64_t block[kTile];
      for (std::uint32_t k = 0; k < kTile; ++k) block[k] = token_block(sentence, i + k);
      batch_.fill<kTile>(block, u_);
    }
    return u_.at(static_cast<int>(i - i0_));
  }

 private:
  static constexpr int kTile = 16;
  const TokenBatch& batch_;
  std::uint64_t sentence_ = ~std::uint64_t{0};  // none yet
  std::uint32_t i0_ = 0;
  UniformLanes<kTile> u_;
};

// n-gram counts of a text: order 1 dense per token, order 2 sorted keys
// context * (V + 1) + word (context V is <s>) with their counts.
struct Counts {
  std::vector<double> uni;
  std::vector<std::uint64_t> key;
  std::vector<double> c;
};

// Sorts keys below 2^bits (LSD radix sort): passes of at most 11-bit
// digits, so that a histogram and a pass's write positions stay in the
// first-level cache, O(n) per pass. With several threads each sorts a
// contiguous share into places given by the histograms of every share
// before it: the same stable order, so the result does not depend on the
// thread count.
void radix_sort(std::vector<std::uint64_t>& keys, int bits, std::vector<std::uint64_t>& tmp, int threads) {
  const std::size_t n = keys.size();
  tmp.resize(n);
  const int passes = std::max(1, (bits + 10) / 11), digit = (bits + passes - 1) / passes;
  const std::uint64_t mask = (std::uint64_t{1} << digit) - 1;
  const std::size_t buckets = std::size_t{1} << digit;
  if (n < (std::size_t{1} << 16)) threads = 1;  // not worth a team
  std::vector<std::size_t> count(buckets * static_cast<std::size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    const auto T = static_cast<std::size_t>(omp_get_num_threads()), me = static_cast<std::size_t>(omp_get_thread_num());
    const std::size_t i0 = n * me / T, i1 = n * (me + 1) / T;
    std::size_t* mine = count.data() + me * buckets;
    for (int shift = 0; shift < bits; shift += digit) {
      std::fill(mine, mine + buckets, 0);
      for (std::size_t i = i0; i < i1; ++i) ++mine[(keys[i] >> shift) & mask];
#pragma omp barrier
#pragma omp single
      {
        std::size_t run = 0;
        for (std::size_t d = 0; d < buckets; ++d)
          for (std::size_t t = 0; t < T; ++t) {
            const std::size_t here = count[t * buckets + d];
            count[t * buckets + d] = run;
            run += here;
          }
      }  // (implied barrier)
      for (std::size_t i = i0; i < i1; ++i) tmp[mine[(keys[i] >> shift) & mask]++] = keys[i];
#pragma omp barrier
#pragma omp single
      keys.swap(tmp);
    }
  }
}

// Bits needed for a packed key of n tokens (each < V + 1).
int key_bits(std::uint32_t V, int n = 2) {
  return static_cast<int>(std::ceil(n * std::log2(static_cast<double>(V) + 1.0)));
}

// Sorted keys -> unique keys and their counts.
void run_lengths(const std::vector<std::uint64_t>& keys, Counts& out) {
  std::size_t unique = 0;
  for (std::size_t i = 0; i < keys.size(); ++i) unique += (i == 0 || keys[i] != keys[i - 1]) ? 1 : 0;
  out.key.resize(unique);
  out.c.resize(unique);
  std::size_t u = 0;
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    out.key[u] = keys[i];
    out.c[u++] = static_cast<double>(j - i);
    i = j;
  }
}

// The n-gram counts of a text (every token with its context, the first
// from <s>), on `threads` threads.
void count_text(int order, std::uint32_t V, const TokenText& text, Counts& out, int threads) {
  if (order == 1) {
    out.uni.assign(V, 0.0);
    for (std::uint32_t w : text.tokens) out.uni[w] += 1.0;
    return;
  }
  // Keys context * (V + 1) + word, the context starting at <s> (<s> <s> for
  // order 3): key i is token i's. The buffers are kept per thread: fresh
  // ones cost a page fault per 4 KiB every generation.
  // (The loop below reads them through `key`: inside a team, the name of a
  // thread_local would be each thread's own.)
  static thread_local std::vector<std::uint64_t> keys, tmp;
  keys.resize(text.tokens.size());
  std::uint64_t* const key = keys.data();
  const auto sentences = static_cast<std::int64_t>(text.sentences());
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::int64_t s = 0; s < sentences; ++s) {
    std::uint64_t ctx = start_context(order, V);
    for (std::uint64_t i = text.start[s]; i < text.start[s + 1]; ++i) {
      const std::uint32_t w = text.tokens[i];
      key[i] = ctx * (V + 1) + w;
      ctx = next_context(order, V, ctx, w);
    }
  }
  radix_sort(keys, key_bits(V, order), tmp, threads);
  run_lengths(keys, out);
}

// a += b (accumulate).
void add_counts(int order, Counts& a, const Counts& b) {
  if (order == 1) {
    if (a.uni.empty()) a.uni.assign(b.uni.size(), 0.0);
    for (std::size_t i = 0; i < b.uni.size(); ++i) a.uni[i] += b.uni[i];
    return;
  }
  Counts m;
  std::size_t i = 0, j = 0;
  while (i < a.key.size() || j < b.key.size()) {
    if (j == b.key.size() || (i < a.key.size() && a.key[i] < b.key[j])) {
      m.key.push_back(a.key[i]), m.c.push_back(a.c[i]), ++i;
    } else if (i == a.key.size() || b.key[j] < a.key[i]) {
      m.key.push_back(b.key[j]), m.c.push_back(b.c[j]), ++j;
    } else {
      m.key.push_back(a.key[i]), m.c.push_back(a.c[i] + b.c[j]), ++i, ++j;
    }
  }
  a = std::move(m);
}

// One level's tables (see NgramLevel), from sorted keys context * (V + 1) + w,
// on `threads` threads (contexts apart; the tables do not depend on how many).
struct Level {
  std::vector<std::uint64_t> ctx, ctx_start;
  std::vector<std::uint32_t> ent_w, alias_entry;
  std::vector<AliasBucket> alias;
  std::vector<std::int32_t> ctx_of;
  std::vector<double> ctx_total, ent_c, ent_cum, ent_cumd;
  // Scratch of the build, kept for the next one (fresh pages cost a fault each).
  std::vector<std::uint64_t> ent_ctx, units;
  std::vector<std::uint32_t> stack;

  void build(const Counts& counts, std::uint32_t V, double d, bool dense, bool with_alias, int threads) {
    const std::size_t n = counts.key.size();
    const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
    ent_ctx.resize(n);
    ent_w.resize(n);
    ent_c.resize(n);
    const auto entries = static_cast<std::int64_t>(n);
    if (n < (std::size_t{1} << 14)) threads = 1;  // not worth a team
#pragma omp parallel for schedule(static) num_threads(threads)
    for (std::int64_t i = 0; i < entries; ++i) {
      const std::uint64_t v = counts.key[i] / V1;
      ent_ctx[i] = v;
      ent_w[i] = static_cast<std::uint32_t>(counts.key[i] - v * V1);
      ent_c[i] = counts.c[i];
    }
    ctx.clear(), ctx_start.clear();
    for (std::size_t i = 0; i < n; ++i)
      if (i == 0 || ent_ctx[i] != ent_ctx[i - 1]) ctx.push_back(ent_ctx[i]), ctx_start.push_back(i);
    ctx_start.push_back(n);
    const auto contexts = static_cast<std::int64_t>(ctx.size());
    ctx_total.resize(ctx.size());
    ent_cum.resize(n);
    ent_cumd.resize(n);
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads)
    for (std::int64_t ci = 0; ci < contexts; ++ci) {
      const std::uint64_t lo = ctx_start[ci];
      ctx_total[ci] = build_context(&ent_c[lo], ctx_start[ci + 1] - lo, d, &ent_cum[lo], &ent_cumd[lo]);
    }
    // Alias tables where every count is a whole number (weighted counts,
    // from data.tail_upsample or data.age_decay, need not be: then sampling
    // searches the cumulative counts).
    alias.clear();
    alias_entry.clear();
    with_alias = with_alias &&
                 std::all_of(ent_c.begin(), ent_c.end(), [](double c) { return c == std::floor(c) && c < 0x1.0p53; });
    for (std::size_t ci = 0; with_alias && ci < ctx.size(); ++ci)
      with_alias = alias_fits(ctx_total[ci], ctx_start[ci + 1] - ctx_start[ci]);
    if (with_alias) {
      alias.resize(n);
      alias_entry.resize(n);
      units.resize(n);
      stack.resize(n);
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads)
      for (std::int64_t ci = 0; ci < contexts; ++ci) {
        const std::uint64_t lo = ctx_start[ci];
        build_alias(&ent_w[lo], &ent_c[lo], ctx_start[ci + 1] - lo, ctx_total[ci], &alias[lo], &alias_entry[lo],
                    &units[lo], &stack[lo]);
      }
    }
    ctx_of.clear();
    if (dense) {
      ctx_of.assign(V + 1, -1);
      for (std::size_t i = 0; i < ctx.size(); ++i) ctx_of[ctx[i]] = static_cast<std::int32_t>(i);
    }
  }

  NgramLevel view() const {
    return NgramLevel{ctx.size(),
                      ctx.data(),
                      ctx_start.data(),
                      ctx_total.data(),
                      ent_w.data(),
                      ent_c.data(),
                      ent_cum.data(),
                      ent_cumd.data(),
                      ctx_of.empty() ? nullptr : ctx_of.data(),
                      alias.empty() ? nullptr : alias.data(),
                      alias_entry.empty() ? nullptr : alias_entry.data()};
  }
};

// A model's tables (see NgramView).
struct Model {
  std::vector<double> uni, uni_cum, uni_cumd;
  double uni_total = 0.0, uni_types = 0.0;
  Level top, mid;

  void build(const NgramBatchSpec& s, const Counts& counts, int threads) {
    const double d = s.discount;
    const std::uint32_t V = s.V;
    if (s.order == 1) {
      uni = counts.uni;
    } else {
      // Alias tables where counts are sampled directly (mle, add_k).
      top.build(counts, V, d, s.order == 2, s.smoothing != Smoothing::kKneserNey, threads);
      // The level below the top: continuation counts N(. v w), the number of
      // distinct u seen before v w (order 3, kneser_ney), and N(. w) over the
      // lowest context level's types.
      const Level* lowest = &top;
      if (s.order == 3 && s.smoothing == Smoothing::kKneserNey) {
        std::vector<std::uint64_t> keys;
        keys.reserve(top.ent_w.size());
        for (std::size_t ci = 0; ci + 1 < top.ctx_start.size(); ++ci)
          for (std::uint64_t e = top.ctx_start[ci]; e < top.ctx_start[ci + 1]; ++e)
            keys.push_back((top.ctx[ci] % (V + 1)) * (V + 1) + top.ent_w[e]);
        std::vector<std::uint64_t> tmp;
        radix_sort(keys, key_bits(V, 2), tmp, threads);
        Counts cont;
        run_lengths(keys, cont);
        mid.build(cont, V, d, true, false, threads);
        lowest = &mid;
      }
      uni.assign(V, 0.0);
      for (std::uint32_t w : lowest->ent_w) uni[w] += 1.0;
    }
    uni_cum.resize(V);
    uni_cumd.resize(V);
    build_lowest(uni.data(), V, d, uni_cum.data(), uni_cumd.data(), uni_total, uni_types);
  }

  NgramView view(const NgramBatchSpec& s) const {
    return NgramView{s.order,        s.smoothing,     s.k,       s.discount, s.V,        uni.data(),
                     uni_cum.data(), uni_cumd.data(), uni_total, uni_types,  top.view(), mid.view()};
  }
};

// The sampler's cut of p(. | v) (sampler_cut, kernels/ngram/ngram.h) over the
// whole vocabulary (O(V log V) per context, cached for the generation).
struct Cut {
  std::vector<std::uint32_t> w;
  std::vector<double> cum;
};

Cut make_cut(const NgramView& m, std::uint64_t v, const SamplerSettings& s) {
  std::vector<std::pair<double, std::uint32_t>> q;
  auto add = [&](std::uint32_t w) {
    const double p = ngram_prob(m, v, w);
    if (p > 0.0) q.emplace_back(p, w);
  };
  const std::int64_t ci = m.order >= 2 ? find_context(m.top, m.V, v) : -1;
  if (m.smoothing == Smoothing::kMle && ci >= 0) {
    // Only the context's observed continuations have probability > 0.
    for (std::uint64_t e = m.top.ctx_start[ci]; e < m.top.ctx_start[ci + 1]; ++e) add(m.top.ent_w[e]);
  } else {
    for (std::uint32_t w = 0; w < m.V; ++w) add(w);
  }
  // Words in increasing order, so ties of p stay in word order.
  std::stable_sort(q.begin(), q.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  Cut cut;
  cut.cum.resize(q.size());
  const std::uint64_t kept = sampler_cut([&](std::uint64_t i) { return q[i].first; }, q.size(), s.top_k, s.temperature,
                                         s.top_p, cut.cum.data());
  cut.cum.resize(kept);
  for (std::uint64_t i = 0; i < kept; ++i) cut.w.push_back(q[i].second);
  return cut;
}

// The state and scratch of one chain.
struct Chain {
  Counts pool;                   // accumulate: every generation's counts so far
  Model own;                     // the chain's model from generation 1 on
  const Model* model = nullptr;  // the current model: the shared generation-0 model, then `own`
  TokenText sample;              // drawn from the current model: the next generation's synthetic text
  Counts sample_counts;  // order 2, text: the sample's bigram counts (reused when it is the whole next training text)
  double cut_sentences = 0.0;
  double draws_per_kept = 1.0;            // tokens drawn per token kept in the sample (data.dedup)
  std::vector<unsigned char> sample_cut;  // per sentence of the sample: cut at kMaxSentence (its last </s> forced)
  // Per token of the sample, the alias cell it was drawn from (mle text;
  // kNoCell32 for none), for measure's counting of the sample (count_cells)
  // right after the draw: transient, not archived.
  std::vector<std::uint32_t> sample_cell;
  double pool_tokens = 0.0, pool_synthetic = 0.0;  // accumulate composition
  std::vector<double> tokens_of;                   // accumulate: tokens added at each generation
  struct PoolText {
    TokenText text;              // a generation's new text
    std::size_t real_sentences;  // its first sentences are real
  };
  std::vector<PoolText> pool_texts;  // accumulate_subsample
};

inline constexpr std::uint32_t kNoCell32 = ~std::uint32_t{0};

// The counts of a text drawn from a model with top level `top`, from the
// alias cells its tokens were drawn from (mle: every drawn token is one of
// the model's n-grams), in the model's sorted order: what count_text gives,
// without a sort. False if some token has no cell (kNoCell32).
bool count_cells(const Level& top, std::uint32_t V, const std::vector<std::uint32_t>& cells, Counts& out) {
  const std::size_t entries = top.ent_w.size();
  static thread_local std::vector<std::uint32_t> hist, count;
  hist.assign(2 * entries, 0);
  for (std::uint32_t x : cells) {
    if (x == kNoCell32) return false;
    ++hist[x];
  }
  // Bucket b's own cell counts its entry b, its alias cell the entry
  // alias_entry[b] of the same context.
  count.assign(entries, 0);
  for (std::size_t ci = 0; ci < top.ctx.size(); ++ci)
    for (std::uint64_t b = top.ctx_start[ci]; b < top.ctx_start[ci + 1]; ++b) {
      count[b] += hist[2 * b + 1];
      count[top.ctx_start[ci] + top.alias_entry[b]] += hist[2 * b];
    }
  std::size_t types = 0;
  for (std::uint32_t n : count) types += n > 0 ? 1 : 0;
  out.key.resize(types);
  out.c.resize(types);
  std::size_t u = 0;
  const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
  for (std::size_t ci = 0; ci < top.ctx.size(); ++ci)
    for (std::uint64_t e = top.ctx_start[ci]; e < top.ctx_start[ci + 1]; ++e)
      if (count[e] > 0) out.key[u] = top.ctx[ci] * V1 + top.ent_w[e], out.c[u++] = count[e];
  return true;
}

class NgramCpu final : public NgramBackend {
 public:
  explicit NgramCpu(const NgramBatchSpec& spec) : s_(spec) {
    threads_ = spec.threads > 0 ? spec.threads : omp_get_max_threads();
    // Fewer chains than threads: chains one after another, each using every
    // thread inside (its sentences are independent given their counters).
    outer_ = spec.batch >= threads_ ? threads_ : 1;
    inner_ = outer_ == 1 ? threads_ : 1;
    chains_.resize(spec.batch);
    count_text(s_.order, s_.V, s_.heldout, heldout_counts_, threads_);
    if (!s_.zipf) {
      // Generation 0 of a corpus: the model of the configured order and
      // smoothing fitted to the whole training split; shared, read-only, by
      // every chain at generation 0, and the verifier's reference.
      Counts counts;
      count_text(s_.order, s_.V, s_.train, counts, threads_);
      model0_.build(s_, counts, threads_);
      if (s_.verifier.on) sentence_logp_min_ = reference_quantile();
    }
  }

  void start(double* h_metrics) override {
    // Generation 0: the truth (zipf) or model0_ (a corpus; built with the
    // backend).
    std::vector<WorkerRange> seen(threads_);
    for_chains([&](std::int64_t i) {
      note_chain(seen[omp_get_thread_num()],
                 inner_ > 1 ? fmt_threads(inner_) : "omp-thread-" + std::to_string(omp_get_thread_num()),
                 s_.chain_begin + i);
      Chain& c = chains_[i];
      c.model = &model0_;
      const std::uint32_t chain = s_.chain_begin + static_cast<std::uint32_t>(i);
      draw_sample(c, chain, 1, /*truth=*/s_.zipf);
      measure(c, 0, 0.0, 0.0, h_metrics + i);
    });
    workers_ = seen;
  }

  void advance(int t, double* h_metrics) override {
    for_chains([&](std::int64_t i) { generation(i, t, h_metrics + i); });
  }

  std::vector<WorkerRange> workers() const override { return workers_; }

  // Per chain, what the next generation reads: the sample of the current
  // model (and its counts), the accumulated pool (counts or texts) and its
  // composition. The model itself is rebuilt from the next training text
  // before it is used, so it is not kept.
  void state(StateArchive& ar) override {
    auto text = [](StateArchive& a, TokenText& t) {
      a.vec("tokens", t.tokens);
      a.vec("start", t.start);
    };
    auto counts = [](StateArchive& a, Counts& k) {
      a.vec("uni", k.uni);
      a.vec("key", k.key);
      a.vec("c", k.c);
    };
    ar.each("chains", chains_, [&](StateArchive& a, Chain& c) {
      counts(a, c.pool);
      text(a, c.sample);
      counts(a, c.sample_counts);
      a.value("cut_sentences", c.cut_sentences);
      a.value("draws_per_kept", c.draws_per_kept);
      a.vec("sample_cut", c.sample_cut);
      a.value("pool_tokens", c.pool_tokens);
      a.value("pool_synthetic", c.pool_synthetic);
      a.vec("tokens_of", c.tokens_of);
      a.each("pool_texts", c.pool_texts, [&](StateArchive& b, Chain::PoolText& p) {
        text(b, p.text);
        std::uint64_t real = p.real_sentences;
        b.value("real_sentences", real);
        p.real_sentences = static_cast<std::size_t>(real);
      });
      if (a.loading()) c.model = nullptr;  // rebuilt by the next generation before any use
    });
    ar.workers(workers_);
  }

 private:
  // f(i) for every chain i: in parallel over chains, or, with fewer chains
  // than threads, one after another outside any parallel region, so that a
  // chain's own parallel loops start first-level teams (a nested team can
  // cost a thread start per region).
  template <class F>
  void for_chains(F&& f) {
    if (outer_ == 1) {
      for (std::int64_t i = 0; i < s_.batch; ++i) f(i);
      return;
    }
#pragma omp parallel for schedule(static) num_threads(outer_)
    for (std::int64_t i = 0; i < s_.batch; ++i) f(i);
  }

  // Generation t of chain i.
  void generation(std::int64_t i, int t, double* out) {
    Chain& c = chains_[i];
    const std::uint32_t chain = s_.chain_begin + static_cast<std::uint32_t>(i);
    const auto gen = static_cast<std::uint32_t>(t);
    const std::uint32_t real_gen = real_draw_generation(s_.real_source, t);
    // The training text: real sentences first, then synthetic ones from the
    // previous model's sample, each part filled up to its token target
    // (whole sentences; the last may overshoot).
    const double n = s_.samples;
    const double real_target = t == 1 ? n : static_cast<double>(s_.real_count);
    TokenText text;
    text.start.push_back(0);
    double real_tokens = 0.0;
    std::size_t real_sentences = 0;
    bool text_is_sample = false;
    if (s_.zipf) {
      // Real tokens (a sequence from <s> for a Markov chain), then the first
      // synthetic ones of the sample, as two sequences.
      std::uint32_t ctx = s_.V;
      for (std::uint64_t j = 0; j < static_cast<std::uint64_t>(real_target); ++j) {
        ctx = truth_token(chain, real_gen, rng::kStreamRealDraw, j, ctx);
        text.tokens.push_back(ctx);
      }
      if (!text.tokens.empty()) text.start.push_back(text.tokens.size()), real_sentences = 1;
      real_tokens = real_target;
      // The sample's sequences in order, the last one cut at the target.
      const std::uint64_t syn = s_.samples - static_cast<std::uint64_t>(real_target);
      for (std::size_t sj = 0; sj < c.sample.sentences(); ++sj) {
        const std::uint64_t have = text.tokens.size() - static_cast<std::uint64_t>(real_target);
        if (have >= syn) break;
        const std::uint64_t len = std::min<std::uint64_t>(c.sample.start[sj + 1] - c.sample.start[sj], syn - have);
        text.tokens.insert(text.tokens.end(), c.sample.tokens.begin() + c.sample.start[sj],
                           c.sample.tokens.begin() + c.sample.start[sj] + len);
        text.start.push_back(text.tokens.size());
      }
    } else {
      const std::uint64_t S = s_.train.sentences();
      for (std::uint64_t j = 0; real_tokens < real_target; ++j) {
        const rng::Block b = rng::draw_block(s_.seed, chain, real_gen, rng::kStreamRealDraw, j);
        const auto pick =
            static_cast<std::uint64_t>(std::floor(rng::u01_open(b.v[0], b.v[1]) * static_cast<double>(S)));
        const std::uint64_t sj = pick < S ? pick : S - 1;
        text.tokens.insert(text.tokens.end(), s_.train.tokens.begin() + s_.train.start[sj],
                           s_.train.tokens.begin() + s_.train.start[sj + 1]);
        text.start.push_back(text.tokens.size());
        real_tokens += static_cast<double>(s_.train.start[sj + 1] - s_.train.start[sj]);
        ++real_sentences;
      }
      if (real_tokens == 0.0 && s_.order == 2 && s_.regime != Regime::kAccumulateSubsample) {
        // The training text is the whole sample (drawn until n tokens),
        // already counted when it was measured.
        text_is_sample = true;
      } else {
        for (std::uint64_t j = 0; static_cast<double>(text.tokens.size()) < n && j < c.sample.sentences(); ++j) {
          text.tokens.insert(text.tokens.end(), c.sample.tokens.begin() + c.sample.start[j],
                             c.sample.tokens.begin() + c.sample.start[j + 1]);
          text.start.push_back(text.tokens.size());
        }
      }
    }
    double share, age;
    if (s_.regime == Regime::kAccumulateSubsample) {
      // The new text joins the pool (kept: every generation's text, O(t n)
      // tokens per chain); the training text is pool sentences in the order
      // of uniform keys from the subsample stream (uniformly without
      // replacement) until it holds n tokens.
      if (s_.zipf) {
        // Order-1 Zipf samples are single tokens: the pool holds them one by one.
        TokenText tokens;
        tokens.tokens = std::move(text.tokens);
        tokens.start.resize(tokens.tokens.size() + 1);
        for (std::size_t k = 0; k < tokens.start.size(); ++k) tokens.start[k] = k;
        text = std::move(tokens);
        real_sentences = static_cast<std::size_t>(real_tokens);
      }
      c.pool_texts.push_back(Chain::PoolText{std::move(text), real_sentences});
      struct Ref {
        double key;
        std::uint32_t k;
        std::uint64_t j;
      };
      std::vector<Ref> refs;
      std::uint64_t g = 0;
      for (std::uint32_t k = 0; k < c.pool_texts.size(); ++k)
        for (std::uint64_t j = 0; j < c.pool_texts[k].text.sentences(); ++j, ++g)
          refs.push_back(Ref{subsample_uniform(s_.seed, chain, gen, g), k, j});
      // (Stable: equal uniforms, which 52 bits make rare but not impossible
      // in a pool of 10^7 sentences, keep pool order, as the cuda backend's
      // radix sort keeps them.)
      std::stable_sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) { return a.key < b.key; });
      // data.age_decay: a sentence of generation k + 1 weighs q^(t - 1 - k),
      // in the counts and in the composition (tokens weighted by age).
      const double q = s_.age_decay;
      TokenText train;
      train.start.push_back(0);
      std::vector<unsigned char> is_synthetic;  // per sentence of train
      std::vector<std::uint32_t> from_text;     // per sentence of train: its pool text
      double tokens = 0.0, synthetic = 0.0, weighted_age = 0.0;
      for (const Ref& r : refs) {
        if (static_cast<double>(train.tokens.size()) >= n) break;
        const TokenText& from = c.pool_texts[r.k].text;
        const double len = static_cast<double>(from.start[r.j + 1] - from.start[r.j]);
        train.tokens.insert(train.tokens.end(), from.tokens.begin() + from.start[r.j],
                            from.tokens.begin() + from.start[r.j + 1]);
        train.start.push_back(train.tokens.size());
        is_synthetic.push_back(r.j >= c.pool_texts[r.k].real_sentences ? 1 : 0);
        from_text.push_back(r.k);
        const double a = pow_int(q, t - 1 - static_cast<int>(r.k));
        tokens += a * len;
        synthetic += is_synthetic.back() ? a * len : 0.0;
        weighted_age += a * (t - 1 - static_cast<int>(r.k)) * len;
      }
      share = synthetic / tokens;
      age = weighted_age / tokens;
      Counts counts;
      if (q == 1.0) {
        count_training(
            train, [&](std::size_t sj) { return is_synthetic[sj] != 0; }, counts);
      } else {
        // Each generation's sentences counted apart, then weighted and added.
        for (std::uint32_t k = 0; k < c.pool_texts.size(); ++k) {
          TokenText part;
          part.start.push_back(0);
          std::vector<unsigned char> part_synthetic;
          for (std::size_t sj = 0; sj < train.sentences(); ++sj) {
            if (from_text[sj] != k) continue;
            part.tokens.insert(part.tokens.end(), train.tokens.begin() + train.start[sj],
                               train.tokens.begin() + train.start[sj + 1]);
            part.start.push_back(part.tokens.size());
            part_synthetic.push_back(is_synthetic[sj]);
          }
          if (part.sentences() == 0) continue;
          Counts ck;
          count_training(
              part, [&](std::size_t sj) { return part_synthetic[sj] != 0; }, ck);
          scale_counts(ck, pow_int(q, t - 1 - static_cast<int>(k)));
          add_counts(s_.order, counts, ck);
        }
      }
      c.own.build(s_, counts, inner_);
      c.model = &c.own;
      draw_sample(c, chain, gen + 1, false);
      measure(c, t, share, age, out);
      return;
    }
    const double total = static_cast<double>(text_is_sample ? c.sample.tokens.size() : text.tokens.size());
    Counts counts;
    if (text_is_sample) {
      counts = std::move(c.sample_counts);
      upweight_tail(counts);  // (all of it synthetic)
    } else {
      count_training(
          text, [&](std::size_t sj) { return sj >= real_sentences; }, counts);
    }
    if (s_.regime == Regime::kAccumulate) {
      // data.age_decay: the pool's counts and composition age by one
      // generation (weight times decay) before the new text joins.
      const double q = s_.age_decay;
      if (q != 1.0) scale_counts(c.pool, q);
      add_counts(s_.order, c.pool, counts);
      c.tokens_of.push_back(total);
      c.pool_tokens = q * c.pool_tokens + total;
      c.pool_synthetic = q * c.pool_synthetic + (total - real_tokens);
      double weighted = 0.0;
      for (int k = 1; k <= t; ++k) weighted += pow_int(q, t - k) * (t - k) * c.tokens_of[k - 1];
      share = c.pool_synthetic / c.pool_tokens;
      age = weighted / c.pool_tokens;
      c.own.build(s_, c.pool, inner_);
    } else {
      share = (total - real_tokens) / total;
      age = 0.0;
      c.own.build(s_, counts, inner_);
    }
    c.model = &c.own;
    draw_sample(c, chain, gen + 1, false);
    measure(c, t, share, age, out);
  }

  // The counts of a training text, its synthetic sentences' tail tokens
  // weighted by data.tail_upsample's factor (synthetic(sj): whether sentence
  // sj is synthetic). Without upsampling: count_text.
  template <class IsSynthetic>
  void count_training(const TokenText& text, IsSynthetic&& synthetic, Counts& out) const {
    if (s_.tail_factor == 1.0) {
      count_text(s_.order, s_.V, text, out, inner_);
      return;
    }
    TokenText part[2];  // real, synthetic
    for (auto& p : part) p.start.push_back(0);
    for (std::size_t sj = 0; sj < text.sentences(); ++sj) {
      TokenText& p = part[synthetic(sj) ? 1 : 0];
      p.tokens.insert(p.tokens.end(), text.tokens.begin() + text.start[sj], text.tokens.begin() + text.start[sj + 1]);
      p.start.push_back(p.tokens.size());
    }
    Counts syn;
    count_text(s_.order, s_.V, part[0], out, inner_);
    count_text(s_.order, s_.V, part[1], syn, inner_);
    upweight_tail(syn);
    add_counts(s_.order, out, syn);
  }

  // data.tail_upsample: the counts of tail tokens (n-grams ending in one)
  // times the factor. The tail as tail_mass counts it: a corpus's <unk>,
  // which the truth never says, is not upweighted.
  void upweight_tail(Counts& k) const {
    const double f = s_.tail_factor;
    if (f == 1.0) return;
    if (s_.order == 1) {
      for (std::size_t w = 0; w < k.uni.size(); ++w) k.uni[w] *= in_tail_mass(static_cast<std::uint32_t>(w)) ? f : 1.0;
      return;
    }
    const std::uint64_t V1 = static_cast<std::uint64_t>(s_.V) + 1;
    for (std::size_t e = 0; e < k.key.size(); ++e)
      k.c[e] *= in_tail_mass(static_cast<std::uint32_t>(k.key[e] % V1)) ? f : 1.0;
  }

  static void scale_counts(Counts& k, double q) {
    for (double& x : k.uni) x *= q;
    for (double& x : k.c) x *= q;
  }

  // Token j of a zipf truth's stream (one block per token), after context
  // ctx for a Markov chain: the Zipf rank, mapped by the context's permutation.
  std::uint32_t truth_token(std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, std::uint64_t j,
                            std::uint32_t ctx) const {
    const rng::Block b = rng::draw_block(s_.seed, chain, gen, stream, j);
    const double u = rng::u01_open(b.v[0], b.v[1]);
    const auto r = static_cast<std::uint32_t>(first_above(s_.truth_cum.data(), 0, s_.V, u * s_.truth_cum[s_.V - 1]));
    return s_.order == 2 ? s_.truth_perm[static_cast<std::size_t>(ctx) * s_.V + r] : r;
  }

  // The sample of the chain's current model (or of the zipf truth itself at
  // generation 0): `samples` tokens, whole sentences for text.
  void draw_sample(Chain& c, std::uint32_t chain, std::uint32_t gen, bool truth) {
    TokenText& out = c.sample;
    out.start.assign(1, 0);
    c.cut_sentences = 0.0;
    c.draws_per_kept = 1.0;
    c.sample_cut.clear();
    const NgramView m = c.model->view(s_);
    const bool third = s_.smoothing == Smoothing::kKneserNey;
    std::unordered_map<std::uint64_t, Cut> cuts;  // the sampler's cuts, per context visited in this sample
    const bool plain = s_.sampler.plain();        // (asked once, not per token)
    const TokenBatch batch(s_.seed, chain, gen, rng::kStreamSyntheticDraw, third);
    // The token after context v with uniforms r.
    auto next = [&](const TokenUniforms& r, std::uint64_t v, std::uint64_t& cell) {
      const double u = r.u;
      cell = kNoCell;
      if (plain) return sample_next(m, v, r, cell);
      auto it = cuts.find(v);
      if (it == cuts.end()) it = cuts.emplace(v, make_cut(m, v, s_.sampler)).first;
      const Cut& cut = it->second;
      return cut.w[first_above(cut.cum.data(), 0, cut.w.size(), u * cut.cum.back())];
    };
    if (s_.zipf) {
      out.tokens.clear();
      c.sample_cell.clear();
      // One sequence from <s>. A Markov model fitted by mle can reach a
      // context it never saw followed (the end of its training sequences):
      // a new sequence then starts at <s>.
      // data.verifier (order 1): token j is candidate j, kept or dropped by
      // its truth probability and word j of the verify stream.
      const bool verify = s_.verifier.on && !truth;
      const auto n = static_cast<std::uint64_t>(s_.samples);
      const std::uint64_t budget = verify ? n * static_cast<std::uint64_t>(s_.verifier.max_draw_factor) : n;
      VerifyWords words;
      TokenTile tile(batch);
      std::uint64_t cell;
      std::uint32_t ctx = s_.V;
      std::uint64_t j = 0;
      // Order 2 (a Markov chain truth): candidate j is token w after context
      // v, plausible when p0(w | v) >= plausible_min_p. A dropped token ends
      // its sequence in the text (so that no pair of the text skips it) while
      // the model's chain goes on from it; the next kept token opens a new
      // sequence, counted after <s> as every sequence's first token is.
      // (Restarting the chain at <s> instead could loop: an mle model fitted
      // to one long sequence has a single continuation of <s>.)
      for (; j < budget && out.tokens.size() < n; ++j) {
        if (!truth && s_.order == 2 && s_.smoothing == Smoothing::kMle && find_context(m.top, s_.V, ctx) < 0) {
          out.start.push_back(out.tokens.size());
          ctx = s_.V;
        }
        const std::uint32_t v = ctx;
        ctx = truth ? truth_token(chain, gen, rng::kStreamSyntheticDraw, j, ctx)
                    : next(tile.at(j / kMaxSentence, static_cast<std::uint32_t>(j % kMaxSentence)), ctx, cell);
        if (verify) {
          const double p0 = s_.order == 2 ? s_.truth_cond[static_cast<std::size_t>(v) * s_.V + ctx] : s_.truth_p[ctx];
          if (!words.keeps(s_.seed, chain, gen, j,
                           p0 >= s_.plausible_min_p ? s_.verifier.keep_plausible : s_.verifier.keep_implausible)) {
            if (s_.order == 2 && out.start.back() != out.tokens.size()) out.start.push_back(out.tokens.size());
            continue;
          }
        }
        out.tokens.push_back(ctx);
      }
      if (verify) c.draws_per_kept = out.tokens.empty() ? INFINITY : static_cast<double>(j) / out.tokens.size();
      out.start.push_back(out.tokens.size());
      return;
    }
    // Sentences j0 + r, r < round, into buf[r] (its tokens; cut: cut at
    // kMaxSentence tokens, its last </s> forced), kLanes of them in flight
    // on one thread, a token of each in turn (their uniforms made together,
    // TokenBatch): each token's lookups are dependent cache misses, and
    // independent sentences let them overlap. A lane takes the round's next
    // sentences from a counter shared by the threads, kGrab at a time, so
    // that the threads finish a round together whatever the sentences'
    // lengths; `mine` lists the sentences a thread drew. A sentence's tokens
    // depend only on its own counters, so who draws it, and in which order,
    // changes nothing drawn.
    constexpr int kLanes = 8;
    constexpr std::uint64_t kGrab = 4;
    // A drawn sentence's tokens and, for mle text, each token's alias cell
    // (see count_cells), a cache line per sentence (sentences next to each
    // other may be drawn by different threads); its length and cut flag also
    // in compact arrays, which the thread that lays out the text reads.
    struct alignas(64) SentenceBuf {
      std::vector<std::uint32_t> tokens, cells;
    };
    std::vector<SentenceBuf> buf;
    std::vector<std::uint32_t> buf_len;
    std::vector<unsigned char> buf_cut;
    const bool by_cell = s_.order >= 2 && s_.smoothing == Smoothing::kMle && plain && !c.model->top.alias.empty() &&
                         c.model->top.ent_w.size() < kNoCell32 / 2;
    std::atomic<std::uint64_t> next_sentence{0};
    // mle order 2 with alias tables (the plain sampler): per context v <= V
    // its entries and total count in one place, so that a token looks its
    // context up once instead of in three dependent loads (ctx_of, then
    // ctx_start and ctx_total); a context never seen followed has none (and
    // a total of 0: mle_alias_next draws </s> there).
    struct DirectContext {
      std::uint64_t lo, entries;
      double total;
    };
    const bool direct = by_cell && s_.order == 2 && m.top.ctx_of != nullptr;
    std::vector<DirectContext> direct_context(direct ? s_.V + 1 : 0, DirectContext{0, 0, 0.0});
    for (std::uint32_t v = 0; direct && v <= s_.V; ++v) {
      const std::int64_t ci = m.top.ctx_of[v];
      if (ci >= 0)
        direct_context[v] =
            DirectContext{m.top.ctx_start[ci], m.top.ctx_start[ci + 1] - m.top.ctx_start[ci], m.top.ctx_total[ci]};
    }
    // Per thread and lane, the sentence being drawn (its tokens, then cells).
    std::vector<std::uint32_t> scratch(static_cast<std::size_t>(inner_) * kLanes * 2 * kMaxSentence);
    auto draw_round = [&](std::uint64_t j0, std::uint64_t round, std::vector<std::uint32_t>& mine) {
      std::uint32_t* const lane_scratch =
          &scratch[static_cast<std::size_t>(omp_get_thread_num()) * kLanes * 2 * kMaxSentence];
      std::uint64_t r_of[kLanes], v[kLanes], block[kLanes];
      std::uint32_t i[kLanes];
      bool on[kLanes];
      UniformLanes<kLanes> u;
      for (int l = 0; l < kLanes; ++l) u.u3[l] = u.u4[l] = 0.5;  // (as token_uniforms leaves them without `more`)
      std::uint64_t grabbed = 0, grabbed_end = 0;
      int live = 0;
      auto begin = [&](int l) {
        if (grabbed == grabbed_end) {
          grabbed = next_sentence.fetch_add(kGrab, std::memory_order_relaxed);
          grabbed_end = std::min(grabbed + kGrab, round);
          grabbed = std::min(grabbed, round);
        }
        on[l] = grabbed < grabbed_end;
        block[l] = 0;  // (a lane without a sentence draws uniforms nobody reads)
        if (!on[l]) return;
        r_of[l] = grabbed++, v[l] = start_context(s_.order, s_.V), i[l] = 0, ++live;
        block[l] = token_block(j0 + r_of[l], 0);
        mine.push_back(static_cast<std::uint32_t>(r_of[l]));
      };
      // A finished sentence: lane l's scratch into its buffer.
      auto end = [&](int l, unsigned char cut) {
        SentenceBuf& b = buf[r_of[l]];
        const std::uint32_t* tokens = lane_scratch + static_cast<std::size_t>(l) * 2 * kMaxSentence;
        b.tokens.assign(tokens, tokens + i[l]);
        if (by_cell) b.cells.assign(tokens + kMaxSentence, tokens + kMaxSentence + i[l]);
        buf_len[r_of[l]] = i[l];
        buf_cut[r_of[l]] = cut;
        --live;
        begin(l);
      };
      for (int l = 0; l < kLanes; ++l) begin(l);
      while (live > 0) {
        batch.fill<kLanes>(block, u);
        for (int l = 0; l < kLanes; ++l) {
          if (!on[l]) continue;
          std::uint32_t* const tokens = lane_scratch + static_cast<std::size_t>(l) * 2 * kMaxSentence;
          if (i[l] == kMaxSentence - 1) {  // cut: end the sentence
            tokens[i[l]] = 0;
            tokens[kMaxSentence + i[l]++] = kNoCell32;
            end(l, 1);
            continue;
          }
          std::uint64_t cell = kNoCell;
          std::uint32_t w;
          if (direct) {  // sample_next's mle draw, its context found in one lookup
            const DirectContext& d = direct_context[v[l]];
            w = mle_alias_next(m.top, d.lo, d.lo + d.entries, d.total, u.u[l], u.u2[l], cell);
          } else {
            w = next(u.at(l), v[l], cell);
          }
          tokens[i[l]] = w;
          tokens[kMaxSentence + i[l]++] = cell == kNoCell ? kNoCell32 : static_cast<std::uint32_t>(cell);
          if (w == 0) {
            end(l, 0);
          } else {
            v[l] = next_context(s_.order, s_.V, v[l], w);
            block[l] = token_block(j0 + r_of[l], i[l]);
          }
        }
      }
    };
    // Sentences j = 0, 1, ... until the text holds `samples` tokens, drawn in
    // rounds (in parallel when the sampler is plain: the cut cache is shared)
    // and laid out in order, so the text depends neither on the thread count
    // nor on the rounds' sizes. A round holds about the sentences still
    // needed (judged by the mean length so far), at most kRoundMax: what the
    // size changes is only the sentences drawn in vain after the last one.
    // One thread decides which of the round's sentences join the text and
    // where (at[r]); then each thread copies the sentences it drew.
    constexpr std::uint64_t kRoundMax = 512;
    constexpr std::uint64_t kNotKept = ~std::uint64_t{0};
    const int threads = plain ? inner_ : 1;
    buf.resize(kRoundMax);
    buf_len.resize(kRoundMax);
    buf_cut.resize(kRoundMax);
    std::vector<std::uint64_t> at(kRoundMax);
    std::vector<std::vector<std::uint32_t>> mine(static_cast<std::size_t>(threads));
    // data.dedup: the sentences kept so far (examined in order, so the
    // sample does not depend on the thread count either), and the tokens
    // drawn, kept or not, against the budget.
    std::unordered_set<std::vector<std::uint32_t>, SentenceHash> seen;
    const double budget = static_cast<double>(s_.max_draw_factor) * s_.samples;
    double drawn = 0.0;
    // data.verifier (a corpus; the samples that later generations train on):
    // sentence j is kept by its log-probability under the generation-0 model
    // and word j of the verify stream, examined in order like dedup (the
    // verifier first).
    const bool verify = s_.verifier.on && gen >= 2;
    VerifyWords words;
    std::vector<double> logp(verify ? kRoundMax : 0);
    const NgramView reference = model0_.view(s_);
    // Whether the text, at `tokens` tokens, takes another sentence.
    auto more = [&](std::size_t tokens) {
      return static_cast<double>(tokens) < s_.samples && (!(s_.dedup || verify) || drawn < budget);
    };
    // The text's tokens (and cells) are written in place: sized once for
    // `samples` tokens and the last sentence's overshoot (below kMaxSentence),
    // which leaves the previous sample's tokens in place (no fill of the
    // whole text each generation), and cut to `size` at the end.
    const std::size_t most = static_cast<std::size_t>(std::ceil(s_.samples)) + kMaxSentence;
    out.tokens.resize(most);
    c.sample_cell.resize(by_cell ? most : 0);
    std::size_t size = 0;
    for (std::uint64_t j0 = 0, round = 0; more(size); j0 += round) {
      const double kept = static_cast<double>(out.start.size() - 1);
      const double mean_len = kept > 0.0 ? static_cast<double>(size) / kept : 16.0;
      const double need = std::ceil((s_.samples - static_cast<double>(size)) / mean_len);
      round = static_cast<std::uint64_t>(std::clamp(need, 1.0, static_cast<double>(kRoundMax)));
      next_sentence.store(0, std::memory_order_relaxed);
#pragma omp parallel num_threads(threads)
      {
        std::vector<std::uint32_t>& my = mine[static_cast<std::size_t>(omp_get_thread_num())];
        my.clear();
        draw_round(j0, round, my);
#pragma omp barrier
        if (verify) {
#pragma omp for schedule(static)
          for (std::int64_t r = 0; r < static_cast<std::int64_t>(round); ++r)
            logp[r] = sentence_log_prob(reference, buf[r].tokens);
        }
#pragma omp single
        {
          std::fill(at.begin(), at.begin() + static_cast<std::ptrdiff_t>(round), kNotKept);
          for (std::uint64_t r = 0; r < round && more(size); ++r) {
            drawn += buf_len[r];
            if (verify &&
                !words.keeps(s_.seed, chain, gen, j0 + r,
                             logp[r] >= sentence_logp_min_ ? s_.verifier.keep_plausible : s_.verifier.keep_implausible))
              continue;
            if (s_.dedup && !seen.insert(buf[r].tokens).second) continue;
            at[r] = size;
            size += buf_len[r];
            out.start.push_back(size);
            c.cut_sentences += buf_cut[r];
            c.sample_cut.push_back(buf_cut[r]);
          }
        }  // (implied barrier)
        for (const std::uint32_t r : my) {
          if (at[r] == kNotKept) continue;
          const SentenceBuf& b = buf[r];
          std::copy(b.tokens.begin(), b.tokens.end(), out.tokens.begin() + static_cast<std::ptrdiff_t>(at[r]));
          if (by_cell)
            std::copy(b.cells.begin(), b.cells.end(), c.sample_cell.begin() + static_cast<std::ptrdiff_t>(at[r]));
        }
      }
    }
    out.tokens.resize(size);
    if (by_cell) c.sample_cell.resize(size);
    if (s_.dedup || verify)
      c.draws_per_kept = out.tokens.empty() ? INFINITY : drawn / static_cast<double>(out.tokens.size());
  }

  // ln p(sentence) under a model: its tokens from <s>, </s> included (-inf
  // when the model gives a token probability 0).
  double sentence_log_prob(const NgramView& m, const std::vector<std::uint32_t>& sentence) const {
    std::uint64_t v = start_context(s_.order, s_.V);
    double lp = 0.0;
    for (std::uint32_t w : sentence) {
      lp += std::log(ngram_prob(m, v, w));
      v = next_context(s_.order, s_.V, v, w);
    }
    return lp;
  }

  // The generation-0 model's verifier_quantile-quantile of ln p over the
  // training split's sentences: the value at rank floor(q S) of the S sorted
  // values (at most a share q of them lies strictly below it).
  double reference_quantile() const {
    const NgramView m = model0_.view(s_);
    const auto S = static_cast<std::int64_t>(s_.train.sentences());
    std::vector<double> lp(S);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t sj = 0; sj < S; ++sj) {
      const std::vector<std::uint32_t> sentence(s_.train.tokens.begin() + s_.train.start[sj],
                                                s_.train.tokens.begin() + s_.train.start[sj + 1]);
      lp[sj] = sentence_log_prob(m, sentence);
    }
    std::sort(lp.begin(), lp.end());
    return lp[std::min<std::int64_t>(S - 1, static_cast<std::int64_t>(std::floor(s_.verifier_quantile * S)))];
  }

  void measure(Chain& c, int t, double share, double age, double* out) {
    const std::int64_t stride = s_.batch;
    const NgramView m = c.model->view(s_);
    const bool truth0 = s_.zipf && t == 0;  // generation 0 of a zipf truth is the truth itself
    const bool markov = s_.zipf && s_.order == 2;
    auto truth_prob = [&](std::uint64_t v, std::uint32_t w) {
      return markov ? s_.truth_cond[v * s_.V + w] : s_.truth_p[w];
    };
    auto prob = [&](std::uint64_t v, std::uint32_t w) { return truth0 ? truth_prob(v, w) : ngram_prob(m, v, w); };
    const std::uint32_t V = s_.V;
    // Held-out text, scored once per n-gram type (its count times the
    // type's score; counted once, in the constructor), summed over a fixed
    // set of type chunks (in parallel when the chain has the threads to
    // itself), the chunks then added in order: the sums do not depend on the
    // thread count.
    std::vector<HeldoutSums> hc(kNgramChunks, HeldoutSums::zero());
    over_types(heldout_counts_,
               [&](int k, std::uint64_t v, std::uint32_t w, double n) { hc[k].add(prob(v, w), n, s_.tail[w] != 0); });
    HeldoutSums held = HeldoutSums::zero();
    for (const HeldoutSums& a : hc) held.add(a);
    finish_heldout(held, out, stride);
    // Support and surviving word types (before the sampler's cut).
    const bool smoothed = s_.smoothing != Smoothing::kMle;
    double survival, missing;
    vocab_alive(m, s_.word.data(), s_.truth_p.data(), truth0 || smoothed, survival, missing);
    out[kNgSupport * stride] = truth0 ? (markov ? static_cast<double>(V) * V : V) : model_support(m);
    out[kNgVocabSurvival * stride] = survival;
    out[kNgMissingMass * stride] = missing;
    // Unigram-level comparisons with the truth (order 1).
    double gini = NAN, kl = NAN, tv = NAN, tail_mass = NAN;
    auto in_tail = [&](std::uint32_t w) { return in_tail_mass(w); };
    if (s_.order == 1)
      unigram_compare([&](std::uint32_t w) { return prob(0, w); }, V, s_.truth_p.data(), in_tail, s_.zipf, gini, kl, tv,
                      tail_mass);
    if (markov) markov_compare(truth_prob, prob, V, s_.truth_p.data(), kl, tv);  // (pi = truth_p)
    // Sample-based metrics: entropy rate, distinct bigrams, tail share
    // (orders 2 and 3). The sample is counted once (order 2 text: the counts
    // are kept, the next generation trains on exactly this text under
    // replace without real data) and scored per type like the held-out text.
    // A cut sentence's last token is the forced </s>, not a draw: left out.
    Counts local;
    Counts& sc = s_.order == 2 && !s_.zipf ? c.sample_counts : local;
    if (!count_cells(c, sc)) count_text(s_.order, V, c.sample, sc, inner_);
    const std::vector<std::uint64_t> forced = forced_ends(c);
    std::vector<SampleSums> oc(kNgramChunks, SampleSums::zero());
    over_types(sc, [&](int k, std::uint64_t v, std::uint32_t w, double n) {
      if (!forced.empty() && w == 0) {
        const std::uint64_t key = v * (V + 1);
        n -= static_cast<double>(std::upper_bound(forced.begin(), forced.end(), key) -
                                 std::lower_bound(forced.begin(), forced.end(), key));
        if (n == 0.0) return;
      }
      oc[k].add(prob(v, w), n, in_tail_mass(w));
    });
    SampleSums own = SampleSums::zero();
    for (const SampleSums& a : oc) own.add(a);
    // distinct_2: bigrams inside sequences (not from <s>). Order 2 text: the
    // sample's own counts; otherwise the sample's token pairs, sorted.
    double distinct = 0.0, pairs = 0.0;
    if (s_.order == 2 && !s_.zipf) {
      for (std::size_t e = 0; e < sc.key.size(); ++e)
        if (sc.key[e] / (V + 1) != V) distinct += 1.0, pairs += sc.c[e];
    } else {
      std::vector<std::uint64_t> bigrams;
      for (std::size_t sj = 0; sj < c.sample.sentences(); ++sj)
        for (std::uint64_t i = c.sample.start[sj] + 1; i < c.sample.start[sj + 1]; ++i)
          bigrams.push_back(static_cast<std::uint64_t>(c.sample.tokens[i - 1]) * (V + 1) + c.sample.tokens[i]);
      std::vector<std::uint64_t> tmp;
      radix_sort(bigrams, key_bits(V), tmp, inner_);
      distinct = static_cast<double>(std::unique(bigrams.begin(), bigrams.end()) - bigrams.begin());
      pairs = static_cast<double>(bigrams.size());
    }
    if (s_.order >= 2) tail_mass = (own.tail / own.n) / truth_tail_mass(V, s_.truth_p.data(), in_tail);
    out[kNgEntropy * stride] = own.bits / own.n;
    out[kNgGiniSimpson * stride] = gini;
    out[kNgKl * stride] = kl;
    out[kNgTv * stride] = tv;
    out[kNgKlInfChains * stride] = s_.zipf ? (std::isinf(kl) ? 1.0 : 0.0) : NAN;
    out[kNgTailMass * stride] = tail_mass;
    out[kNgDistinct2 * stride] = pairs > 0.0 ? distinct / pairs : NAN;
    out[kNgCutSentences * stride] = c.cut_sentences;
    out[kNgDrawsPerKept * stride] = c.draws_per_kept;
    out[kNgSyntheticShare * stride] = share;
    out[kNgDataAge * stride] = age;
  }

  // Calls f(chunk, context, token, count) for every n-gram type of a
  // counted text (order 1: every token with a count, context 0), the types
  // split into kNgramChunks fixed chunks processed in parallel when the chain has
  // the threads to itself (callers sum per chunk, then over chunks in order:
  // no bit depends on the thread count).
  template <class F>
  void over_types(const Counts& k, F&& f) const {
    const std::uint32_t V = s_.V;
    const std::size_t types = s_.order == 1 ? k.uni.size() : k.key.size();
#pragma omp parallel for schedule(static) num_threads(inner_)
    for (int ch = 0; ch < kNgramChunks; ++ch) {
      const std::size_t e0 = chunk_first(types, ch), e1 = chunk_first(types, ch + 1);
      for (std::size_t e = e0; e < e1; ++e) {
        if (s_.order == 1) {
          if (k.uni[e] > 0.0) f(ch, 0, static_cast<std::uint32_t>(e), k.uni[e]);
        } else {
          f(ch, k.key[e] / (V + 1), static_cast<std::uint32_t>(k.key[e] % (V + 1)), k.c[e]);
        }
      }
    }
  }

  // The sample's counts from its alias cells (count_cells): false when
  // some token has none or none were kept.
  bool count_cells(const Chain& c, Counts& out) const {
    return !c.sample_cell.empty() && c.sample_cell.size() == c.sample.tokens.size() &&
           ouro::kernels::count_cells(c.model->top, s_.V, c.sample_cell, out);
  }

  // The keys (context, </s>) of the sample's cut sentences' forced last
  // tokens, sorted, one per cut sentence.
  std::vector<std::uint64_t> forced_ends(const Chain& c) const {
    std::vector<std::uint64_t> keys;
    for (std::size_t sj = 0; sj < c.sample_cut.size(); ++sj) {
      if (!c.sample_cut[sj]) continue;
      std::uint64_t v = start_context(s_.order, s_.V);
      for (std::uint64_t i = c.sample.start[sj]; i + 1 < c.sample.start[sj + 1]; ++i)
        v = next_context(s_.order, s_.V, v, c.sample.tokens[i]);
      keys.push_back(v * (s_.V + 1));
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }

  // The tail set as tail_mass counts it: without <unk> for a corpus (the
  // truth gives it no mass; a smoothed model does).
  bool in_tail_mass(std::uint32_t w) const { return s_.tail[w] && (s_.zipf || w != kUnkId); }
  static constexpr std::uint32_t kUnkId = 1;

  static std::string fmt_threads(int n) { return "omp-threads-0-" + std::to_string(n - 1); }

  NgramBatchSpec s_;
  Model model0_;  // generation 0 of a corpus truth, shared by every chain; the verifier's reference
  double sentence_logp_min_ = -INFINITY;  // data.verifier (corpus): the plausibility bound
  Counts heldout_counts_;                 // the held-out text's n-gram counts (scored per type)
  int threads_, outer_, inner_;
  std::vector<Chain> chains_;
  std::vector<WorkerRange> workers_;
};

}  // namespace

std::unique_ptr<NgramBackend> make_ngram_cpu(const NgramBatchSpec& spec) { return std::make_unique<NgramCpu>(spec); }

struct NgramFit::Tables {
  Model model;
};

NgramFit::NgramFit(const NgramBatchSpec& spec, const TokenText& text) : tables_(new Tables), spec_(&spec) {
  Counts counts;
  count_text(spec.order, spec.V, text, counts, 1);
  tables_->model.build(spec, counts, 1);
}

NgramFit::~NgramFit() = default;

NgramView NgramFit::view() const { return tables_->model.view(*spec_); }

bool NgramFit::count_drawn(const std::vector<std::uint64_t>& cells, std::vector<std::uint64_t>& key,
                           std::vector<double>& c) const {
  std::vector<std::uint32_t> narrow;
  for (std::uint64_t x : cells) narrow.push_back(x == kNoCell ? kNoCell32 : static_cast<std::uint32_t>(x));
  Counts counts;
  if (!count_cells(tables_->model.top, spec_->V, narrow, counts)) return false;
  key = std::move(counts.key);
  c = std::move(counts.c);
  return true;
}

void NgramFit::count(const NgramBatchSpec& spec, const TokenText& text, std::vector<std::uint64_t>& key,
                     std::vector<double>& c) {
  Counts counts;
  count_text(spec.order, spec.V, text, counts, 1);
  key = std::move(counts.key);
  c = std::move(counts.c);
}

}  // namespace ouro::kernels

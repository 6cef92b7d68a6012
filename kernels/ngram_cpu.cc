// The cpu backend of the n-gram family: OpenMP over chains, each chain's
// generation done whole by one thread. A generation t: compose the training
// text (real sentences drawn from the corpus, synthetic sentences drawn from
// generation t-1's model), count its n-grams (sort and reduce), build model
// t's tables, measure it against the held-out text and the truth, and draw
// the sample from model t that generation t+1 trains on (also used for the
// sample-based metrics of generation t).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kernels/ngram_backend.h"
#include "kernels/state.h"

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

// n-gram counts of a text: order 1 dense per token, order 2 sorted keys
// context * (V + 1) + word (context V is <s>) with their counts.
struct Counts {
  std::vector<double> uni;
  std::vector<std::uint64_t> key;
  std::vector<double> c;
};

// Sorts keys below 2^bits (LSD radix sort, 16-bit digits): the counting
// step's sort of packed (context, word) keys, O(n) per digit.
void radix_sort(std::vector<std::uint64_t>& keys, int bits, std::vector<std::uint64_t>& tmp) {
  tmp.resize(keys.size());
  std::vector<std::size_t> count(1 << 16);
  for (int shift = 0; shift < bits; shift += 16) {
    std::fill(count.begin(), count.end(), 0);
    for (auto k : keys) ++count[(k >> shift) & 0xFFFF];
    std::size_t run = 0;
    for (auto& c : count) {
      const std::size_t here = c;
      c = run;
      run += here;
    }
    for (auto k : keys) tmp[count[(k >> shift) & 0xFFFF]++] = k;
    keys.swap(tmp);
  }
}

// Bits needed for a packed key of n tokens (each < V + 1).
int key_bits(std::uint32_t V, int n = 2) {
  return static_cast<int>(std::ceil(n * std::log2(static_cast<double>(V) + 1.0)));
}

// Sorted keys -> unique keys and their counts.
void run_lengths(const std::vector<std::uint64_t>& keys, Counts& out) {
  out.key.clear();
  out.c.clear();
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    out.key.push_back(keys[i]);
    out.c.push_back(static_cast<double>(j - i));
    i = j;
  }
}

void count_text(int order, std::uint32_t V, const TokenText& text, std::uint64_t first_sentence,
                std::uint64_t end_sentence, bool bos, Counts& out) {
  if (order == 1) {
    out.uni.assign(V, 0.0);
    for (std::uint64_t i = text.start[first_sentence]; i < text.start[end_sentence]; ++i) out.uni[text.tokens[i]] += 1.0;
    return;
  }
  // Keys context * (V + 1) + word, the context starting at <s> (<s> <s> for
  // order 3); without `bos` the first token(s) of a sequence are context only.
  std::vector<std::uint64_t> keys;
  keys.reserve(text.start[end_sentence] - text.start[first_sentence]);
  for (std::uint64_t s = first_sentence; s < end_sentence; ++s) {
    std::uint64_t ctx = start_context(order, V);
    for (std::uint64_t i = text.start[s]; i < text.start[s + 1]; ++i) {
      const std::uint32_t w = text.tokens[i];
      if (bos || i >= text.start[s] + static_cast<std::uint64_t>(order - 1)) keys.push_back(ctx * (V + 1) + w);
      ctx = next_context(order, V, ctx, w);
    }
  }
  std::vector<std::uint64_t> tmp;
  radix_sort(keys, key_bits(V, order), tmp);
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

// One level's tables (see NgramLevel), from sorted keys context * (V + 1) + w.
struct Level {
  std::vector<std::uint64_t> ctx, ctx_start;
  std::vector<std::uint32_t> ent_w, guide;
  std::vector<std::int32_t> ctx_of;
  std::vector<double> ctx_total, ent_c, ent_cum, ent_cumd;

  void build(const Counts& counts, std::uint32_t V, double d, bool dense) {
    ctx.clear(), ent_w.clear(), ctx_start.clear(), ctx_total.clear(), ent_c.clear(), ent_cum.clear(), ent_cumd.clear();
    for (std::size_t i = 0; i < counts.key.size(); ++i) {
      const std::uint64_t v = counts.key[i] / (V + 1);
      const auto w = static_cast<std::uint32_t>(counts.key[i] % (V + 1));
      const double c = counts.c[i];
      if (ctx.empty() || ctx.back() != v) {
        ctx.push_back(v);
        ctx_start.push_back(ent_w.size());
        ctx_total.push_back(0.0);
      }
      const bool first = ent_w.size() == ctx_start.back();
      ent_w.push_back(w);
      ent_c.push_back(c);
      ctx_total.back() += c;
      ent_cum.push_back((first ? 0.0 : ent_cum.back()) + c);
      ent_cumd.push_back((first ? 0.0 : ent_cumd.back()) + (c > d ? c - d : 0.0));
    }
    ctx_start.push_back(ent_w.size());
    // Guide tables (pick_count): bucket b of a context with T entries and
    // total c starts at its first entry whose cumulative count exceeds b c / T.
    guide.resize(ent_w.size());
    for (std::size_t ci = 0; ci < ctx.size(); ++ci) {
      const std::uint64_t lo = ctx_start[ci], hi = ctx_start[ci + 1];
      const double T = static_cast<double>(hi - lo), c = ctx_total[ci];
      std::uint64_t e = lo;
      for (std::uint64_t b = 0; b < hi - lo; ++b) {
        const double edge = static_cast<double>(b) * c / T;
        while (e + 1 < hi && ent_cum[e] <= edge) ++e;
        guide[lo + b] = static_cast<std::uint32_t>(e - lo);
      }
    }
    ctx_of.clear();
    if (dense) {
      ctx_of.assign(V + 1, -1);
      for (std::size_t i = 0; i < ctx.size(); ++i) ctx_of[ctx[i]] = static_cast<std::int32_t>(i);
    }
  }

  NgramLevel view() const {
    return NgramLevel{ctx.size(),   ctx.data(),     ctx_start.data(), ctx_total.data(),
                      ent_w.data(), ent_c.data(),   ent_cum.data(),   ent_cumd.data(),
                      ctx_of.empty() ? nullptr : ctx_of.data(), guide.empty() ? nullptr : guide.data()};
  }
};

// A model's tables (see NgramView).
struct Model {
  std::vector<double> uni, uni_cum, uni_cumd;
  double uni_total = 0.0, uni_types = 0.0;
  Level top, mid;

  void build(const NgramBatchSpec& s, const Counts& counts) {
    const double d = s.discount;
    const std::uint32_t V = s.V;
    if (s.order == 1) {
      uni = counts.uni;
    } else {
      top.build(counts, V, d, s.order == 2);
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
        radix_sort(keys, key_bits(V, 2), tmp);
        Counts cont;
        run_lengths(keys, cont);
        mid.build(cont, V, d, true);
        lowest = &mid;
      }
      uni.assign(V, 0.0);
      for (std::uint32_t w : lowest->ent_w) uni[w] += 1.0;
    }
    uni_cum.resize(V);
    uni_cumd.resize(V);
    double run = 0.0, rund = 0.0;
    uni_types = 0.0;
    for (std::uint32_t w = 0; w < V; ++w) {
      run += uni[w];
      rund += uni[w] > d ? uni[w] - d : 0.0;
      uni_cum[w] = run;
      uni_cumd[w] = rund;
      uni_types += uni[w] > 0.0 ? 1.0 : 0.0;
    }
    uni_total = run;
  }

  NgramView view(const NgramBatchSpec& s) const {
    return NgramView{s.order,        s.smoothing, s.k,       s.discount, s.V,        uni.data(), uni_cum.data(),
                     uni_cumd.data(), uni_total,  uni_types, top.view(), mid.view()};
  }
};

// The sampler's cut of p(. | v): temperature, then top-k, then top-p, over
// the whole vocabulary (O(V log V) per context, cached for the generation).
struct Cut {
  std::vector<std::uint32_t> w;
  std::vector<double> cum;
};

Cut make_cut(const NgramView& m, std::uint64_t v, const SamplerSettings& s) {
  // Temperature: q = (p / p_max)^(1/T), computed from logarithms so that a
  // low temperature cannot underflow every q of a context to 0.
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
  if (s.temperature != 1.0 && !q.empty()) {
    double top = 0.0;
    for (const auto& e : q) top = std::max(top, e.first);
    const double log_top = std::log(top);
    for (auto& e : q) e.first = std::exp((std::log(e.first) - log_top) / s.temperature);
  }
  std::stable_sort(q.begin(), q.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  if (s.top_k > 0 && q.size() > static_cast<std::size_t>(s.top_k)) q.resize(s.top_k);
  double total = 0.0;
  for (const auto& e : q) total += e.first;
  Cut cut;
  double run = 0.0;
  for (const auto& e : q) {
    run += e.first;
    cut.w.push_back(e.second);
    cut.cum.push_back(run);
    if (run >= s.top_p * total) break;  // the smallest prefix holding top_p of the mass
  }
  return cut;
}

// The state and scratch of one chain.
struct Chain {
  Counts pool;        // accumulate: every generation's counts so far
  Model own;          // the chain's model from generation 1 on
  const Model* model = nullptr;  // the current model: the shared generation-0 model, then `own`
  TokenText sample;   // drawn from the current model: the next generation's synthetic text
  Counts sample_counts;  // order 2, text: the sample's bigram counts (reused when it is the whole next training text)
  double cut_sentences = 0.0;
  double draws_per_kept = 1.0;  // tokens drawn per token kept in the sample (data.dedup)
  std::vector<unsigned char> sample_cut;  // per sentence of the sample: cut at kMaxSentence (its last </s> forced)
  double pool_tokens = 0.0, pool_synthetic = 0.0;  // accumulate composition
  std::vector<double> tokens_of;  // accumulate: tokens added at each generation
  struct PoolText {
    TokenText text;             // a generation's new text
    std::size_t real_sentences;  // its first sentences are real
  };
  std::vector<PoolText> pool_texts;  // accumulate_subsample
};

class NgramCpu final : public NgramBackend {
 public:
  explicit NgramCpu(const NgramBatchSpec& spec) : s_(spec) {
    threads_ = spec.threads > 0 ? spec.threads : omp_get_max_threads();
    // Fewer chains than threads: chains one after another, each using every
    // thread inside (its sentences are independent given their counters).
    outer_ = spec.batch >= threads_ ? threads_ : 1;
    inner_ = outer_ == 1 ? threads_ : 1;
    chains_.resize(spec.batch);
  }

  void start(double* h_metrics) override {
    // Generation 0: the truth (zipf) or the model of the configured order and
    // smoothing fitted to the whole training split (a corpus).
    Counts counts;
    if (!s_.zipf) {
      count_text(s_.order, s_.V, s_.train, 0, s_.train.sentences(), true, counts);
      model0_.build(s_, counts);  // shared, read-only, by every chain at generation 0
    }
    std::vector<WorkerRange> seen(threads_);
#pragma omp parallel for schedule(static) num_threads(outer_)
    for (std::int64_t i = 0; i < s_.batch; ++i) {
      note_chain(seen[omp_get_thread_num()],
                 inner_ > 1 ? fmt_threads(inner_) : "omp-thread-" + std::to_string(omp_get_thread_num()),
                 s_.chain_begin + i);
      Chain& c = chains_[i];
      c.model = &model0_;
      const std::uint32_t chain = s_.chain_begin + static_cast<std::uint32_t>(i);
      draw_sample(c, chain, 1, /*truth=*/s_.zipf);
      measure(c, 0, 0.0, 0.0, h_metrics + i);
    }
    workers_ = seen;
  }

  void advance(int t, double* h_metrics) override {
#pragma omp parallel for schedule(static) num_threads(outer_)
    for (std::int64_t i = 0; i < s_.batch; ++i) generation(i, t, h_metrics + i);
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
    const double real_target = t == 1 ? n : std::round(s_.real_fraction * n);
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
        const auto pick = static_cast<std::uint64_t>(std::floor(rng::u01_open(b.v[0], b.v[1]) * static_cast<double>(S)));
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
      struct Ref { double key; std::uint32_t k; std::uint64_t j; };
      std::vector<Ref> refs;
      std::uint64_t g = 0;
      for (std::uint32_t k = 0; k < c.pool_texts.size(); ++k)
        for (std::uint64_t j = 0; j < c.pool_texts[k].text.sentences(); ++j, ++g)
          refs.push_back(Ref{subsample_uniform(s_.seed, chain, gen, g), k, j});
      std::sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) { return a.key < b.key; });
      TokenText train;
      train.start.push_back(0);
      double synthetic = 0.0, weighted_age = 0.0;
      for (const Ref& r : refs) {
        if (static_cast<double>(train.tokens.size()) >= n) break;
        const TokenText& from = c.pool_texts[r.k].text;
        const double len = static_cast<double>(from.start[r.j + 1] - from.start[r.j]);
        train.tokens.insert(train.tokens.end(), from.tokens.begin() + from.start[r.j], from.tokens.begin() + from.start[r.j + 1]);
        train.start.push_back(train.tokens.size());
        synthetic += r.j >= c.pool_texts[r.k].real_sentences ? len : 0.0;
        weighted_age += (t - 1 - static_cast<int>(r.k)) * len;
      }
      const double total = static_cast<double>(train.tokens.size());
      share = synthetic / total;
      age = weighted_age / total;
      Counts counts;
      count_text(s_.order, s_.V, train, 0, train.sentences(), true, counts);
      c.own.build(s_, counts);
      c.model = &c.own;
      draw_sample(c, chain, gen + 1, false);
      measure(c, t, share, age, out);
      return;
    }
    const double total = static_cast<double>(text_is_sample ? c.sample.tokens.size() : text.tokens.size());
    Counts counts;
    if (text_is_sample) counts = std::move(c.sample_counts);
    else count_text(s_.order, s_.V, text, 0, text.sentences(), true, counts);
    if (s_.regime == Regime::kAccumulate) {
      add_counts(s_.order, c.pool, counts);
      c.tokens_of.push_back(total);
      c.pool_tokens += total;
      c.pool_synthetic += total - real_tokens;
      double weighted = 0.0;
      for (int k = 1; k <= t; ++k) weighted += (t - k) * c.tokens_of[k - 1];
      share = c.pool_synthetic / c.pool_tokens;
      age = weighted / c.pool_tokens;
      c.own.build(s_, c.pool);
    } else {
      share = (total - real_tokens) / total;
      age = 0.0;
      c.own.build(s_, counts);
    }
    c.model = &c.own;
    draw_sample(c, chain, gen + 1, false);
    measure(c, t, share, age, out);
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
    out.tokens.clear();
    out.start.assign(1, 0);
    c.cut_sentences = 0.0;
    c.draws_per_kept = 1.0;
    c.sample_cut.clear();
    const NgramView m = c.model->view(s_);
    const bool third = s_.smoothing == Smoothing::kKneserNey;
    std::unordered_map<std::uint64_t, Cut> cuts;  // the sampler's cuts, per context visited in this sample
    auto next = [&](std::uint64_t v, std::uint64_t j, std::uint32_t i) {
      const TokenUniforms r = token_uniforms(s_.seed, chain, gen, rng::kStreamSyntheticDraw, j, i, third);
      const double u = r.u;
      if (s_.sampler.plain()) return sample_next(m, v, r);
      auto it = cuts.find(v);
      if (it == cuts.end()) it = cuts.emplace(v, make_cut(m, v, s_.sampler)).first;
      const Cut& cut = it->second;
      return cut.w[first_above(cut.cum.data(), 0, cut.w.size(), u * cut.cum.back())];
    };
    if (s_.zipf) {
      // One sequence from <s>. A Markov model fitted by mle can reach a
      // context it never saw followed (the end of its training sequences):
      // a new sequence then starts at <s>.
      // data.verifier (order 1): token j is candidate j, kept or dropped by
      // its truth probability and word j of the verify stream.
      const bool verify = s_.verifier && !truth;
      const auto n = static_cast<std::uint64_t>(s_.samples);
      const std::uint64_t budget = verify ? n * static_cast<std::uint64_t>(s_.max_draw_factor) : n;
      VerifyWords words;
      std::uint32_t ctx = s_.V;
      std::uint64_t j = 0;
      for (; j < budget && out.tokens.size() < n; ++j) {
        if (!truth && s_.order == 2 && s_.smoothing == Smoothing::kMle && find_context(m.top, s_.V, ctx) < 0) {
          out.start.push_back(out.tokens.size());
          ctx = s_.V;
        }
        ctx = truth ? truth_token(chain, gen, rng::kStreamSyntheticDraw, j, ctx)
                    : next(ctx, j / kMaxSentence, static_cast<std::uint32_t>(j % kMaxSentence));
        if (verify && !words.keeps(s_.seed, chain, gen, j,
                                   s_.truth_p[ctx] >= s_.plausible_min_p ? s_.keep_plausible : s_.keep_implausible))
          continue;
        out.tokens.push_back(ctx);
      }
      if (verify) c.draws_per_kept = out.tokens.empty() ? INFINITY : static_cast<double>(j) / out.tokens.size();
      out.start.push_back(out.tokens.size());
      return;
    }
    // Sentence j into buf; true if it was cut at kMaxSentence tokens.
    auto sentence = [&](std::uint64_t j, std::vector<std::uint32_t>& buf) {
      std::uint64_t v = start_context(s_.order, s_.V);  // <s>
      for (std::uint32_t i = 0;; ++i) {
        if (i == kMaxSentence - 1) {  // cut: end the sentence
          buf.push_back(0);
          return true;
        }
        const std::uint32_t w = next(v, j, i);
        buf.push_back(w);
        if (w == 0) return false;
        v = next_context(s_.order, s_.V, v, w);
      }
    };
    // Sentences j = 0, 1, ... until the text holds `samples` tokens, drawn in
    // rounds of a fixed number of sentences, in parallel when the sampler is
    // plain (the cut cache is shared); appended in order, so the text does not
    // depend on the thread count.
    const int threads = s_.sampler.plain() ? inner_ : 1;
    const std::uint64_t kRound = threads > 1 ? 512 : 1;  // one at a time on one thread: nothing drawn in vain
    std::vector<std::vector<std::uint32_t>> buf(kRound);
    std::vector<unsigned char> was_cut(kRound);
    // data.dedup: the sentences kept so far (examined in order, so the
    // sample does not depend on the thread count either), and the tokens
    // drawn, kept or not, against the budget.
    std::unordered_set<std::vector<std::uint32_t>, SentenceHash> seen;
    const double budget = static_cast<double>(s_.max_draw_factor) * s_.samples;
    double drawn = 0.0;
    auto more = [&] {
      return static_cast<double>(out.tokens.size()) < s_.samples && (!s_.dedup || drawn < budget);
    };
    for (std::uint64_t j0 = 0; more(); j0 += kRound) {
#pragma omp parallel for schedule(static) num_threads(threads)
      for (std::uint64_t r = 0; r < kRound; ++r) {
        buf[r].clear();
        was_cut[r] = sentence(j0 + r, buf[r]) ? 1 : 0;
      }
      for (std::uint64_t r = 0; r < kRound && more(); ++r) {
        drawn += static_cast<double>(buf[r].size());
        if (s_.dedup && !seen.insert(buf[r]).second) continue;
        out.tokens.insert(out.tokens.end(), buf[r].begin(), buf[r].end());
        out.start.push_back(out.tokens.size());
        c.cut_sentences += was_cut[r];
        c.sample_cut.push_back(was_cut[r]);
      }
    }
    if (s_.dedup) c.draws_per_kept = out.tokens.empty() ? INFINITY : drawn / static_cast<double>(out.tokens.size());
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
    // Held-out text, summed over a fixed set of sentence chunks (in
    // parallel when the chain has the threads to itself), the chunks then
    // added in order: the sums do not depend on the thread count.
    struct Held { double all = 0, zeros = 0, bits = 0, nz = 0, tail_bits = 0, tail_nz = 0; };
    std::vector<Held> hc(kChunks);
    over_tokens(s_.heldout, nullptr, [&](int k, std::uint64_t v, std::uint32_t, std::uint32_t w, bool) {
      Held& a = hc[k];
      const double p = prob(v, w);
      a.all += 1.0;
      if (p > 0.0) {
        const double b = -std::log2(p);
        a.bits += b, a.nz += 1.0;
        if (s_.tail[w]) a.tail_bits += b, a.tail_nz += 1.0;
      } else {
        a.zeros += 1.0;
      }
    });
    double all = 0.0, zeros = 0.0, bits = 0.0, nz = 0.0, tail_bits = 0.0, tail_nz = 0.0;
    for (const Held& a : hc)
      all += a.all, zeros += a.zeros, bits += a.bits, nz += a.nz, tail_bits += a.tail_bits, tail_nz += a.tail_nz;
    out[kNgHeldoutPpl * stride] = nz > 0.0 ? std::exp2(bits / nz) : NAN;
    out[kNgZeroProbRate * stride] = zeros / all;
    out[kNgTailPpl * stride] = tail_nz > 0.0 ? std::exp2(tail_bits / tail_nz) : NAN;
    // Support and surviving word types (before the sampler's cut).
    const bool smoothed = s_.smoothing != Smoothing::kMle;
    double support, alive = 0.0, words = 0.0, missing = 0.0;
    if (truth0) support = markov ? static_cast<double>(V) * V : V;
    // Smoothed: every word after every context that can occur (order 3: the
    // V^2 - V + 1 pairs other than (u, <s>) with u != <s>).
    else if (smoothed) support = s_.order == 3 ? V * (static_cast<double>(V) * V - V + 1.0) : std::pow(static_cast<double>(V), s_.order);
    else support = s_.order == 1 ? m.uni_types : static_cast<double>(c.model->top.ent_w.size());
    for (std::uint32_t w = 0; w < V; ++w) {
      if (!s_.word[w]) continue;
      words += 1.0;
      const bool lives = truth0 || smoothed || m.uni[w] > 0.0;
      alive += lives ? 1.0 : 0.0;
      missing += lives ? 0.0 : s_.truth_p[w];
    }
    out[kNgSupport * stride] = support;
    out[kNgVocabSurvival * stride] = alive / words;
    out[kNgMissingMass * stride] = missing;
    // Unigram-level comparisons with the truth (order 1).
    double gini = NAN, kl = NAN, tv = NAN, tail_mass = NAN;
    if (s_.order == 1) {
      double sq = 0.0, tail_model = 0.0, tail_truth = 0.0;
      kl = s_.zipf ? 0.0 : NAN;
      tv = s_.zipf ? 0.0 : NAN;
      for (std::uint32_t w = 0; w < V; ++w) {
        const double p = prob(0, w), p0 = s_.truth_p[w];
        sq += p * p;
        if (in_tail_mass(w)) tail_model += p, tail_truth += p0;
        if (s_.zipf) {
          if (p0 > 0.0) kl += p > 0.0 ? p0 * std::log2(p0 / p) : INFINITY;
          tv += 0.5 * std::abs(p0 - p);
        }
      }
      gini = 1.0 - sq;
      tail_mass = tail_model / tail_truth;
    }
    if (markov) {
      // Rates per token under the truth's stationary law pi:
      // KL = sum_v pi(v) sum_w p0(w|v) log2(p0(w|v) / p_t(w|v)), TV likewise.
      kl = 0.0;
      tv = 0.0;
      for (std::uint32_t v = 0; v < V; ++v) {
        double klv = 0.0, tvv = 0.0;
        for (std::uint32_t w = 0; w < V; ++w) {
          const double p0 = truth_prob(v, w), p = prob(v, w);
          if (p0 > 0.0) klv += p > 0.0 ? p0 * std::log2(p0 / p) : INFINITY;
          tvv += 0.5 * std::abs(p0 - p);
        }
        kl += s_.truth_p[v] * klv;
        tv += s_.truth_p[v] * tvv;
      }
    }
    // Sample-based metrics: entropy rate, distinct bigrams, tail share
    // (orders 2 and 3); chunked like the held-out sums. A cut sentence's
    // last token is the forced </s>, not a draw: left out.
    struct Own { double bits = 0, n = 0, tail = 0; std::vector<std::uint64_t> bigrams; };
    std::vector<Own> oc(kChunks);
    const bool own_bigrams = !(s_.order == 2 && !s_.zipf);  // else counted from the sample's counts below
    over_tokens(c.sample, &c.sample_cut, [&](int k, std::uint64_t v, std::uint32_t prev, std::uint32_t w, bool first) {
      Own& a = oc[k];
      a.bits += -std::log2(prob(v, w));
      a.n += 1.0;
      a.tail += in_tail_mass(w) ? 1.0 : 0.0;
      if (own_bigrams && !first) a.bigrams.push_back(static_cast<std::uint64_t>(prev) * (V + 1) + w);
    });
    double ent_bits = 0.0, ent_n = 0.0, tail_tokens = 0.0;
    std::vector<std::uint64_t> bigrams;
    for (const Own& a : oc) {
      ent_bits += a.bits, ent_n += a.n, tail_tokens += a.tail;
      bigrams.insert(bigrams.end(), a.bigrams.begin(), a.bigrams.end());
    }
    double distinct = 0.0, pairs = 0.0;
    if (s_.order == 2 && !s_.zipf) {
      // Count the sample once: distinct_2 from its counts (bigrams inside
      // sentences, i.e. not from <s>), and the counts kept for the next
      // generation, which trains on exactly this text under replace without
      // real data.
      count_text(2, V, c.sample, 0, c.sample.sentences(), true, c.sample_counts);
      for (std::size_t e = 0; e < c.sample_counts.key.size(); ++e)
        if (c.sample_counts.key[e] / (V + 1) != V) distinct += 1.0, pairs += c.sample_counts.c[e];
    } else {
      std::vector<std::uint64_t> tmp;
      radix_sort(bigrams, key_bits(V), tmp);
      distinct = static_cast<double>(std::unique(bigrams.begin(), bigrams.end()) - bigrams.begin());
      pairs = static_cast<double>(bigrams.size());
    }
    if (s_.order >= 2) {
      double tail_truth = 0.0;
      for (std::uint32_t w = 0; w < V; ++w) tail_truth += in_tail_mass(w) ? s_.truth_p[w] : 0.0;
      tail_mass = (tail_tokens / ent_n) / tail_truth;
    }
    out[kNgEntropy * stride] = ent_bits / ent_n;
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

  // Calls f(chunk, context, previous token, token, first in its sentence)
  // for every token of a text, the sentences split into kChunks fixed
  // chunks processed in parallel when the chain has the threads to itself
  // (callers sum per chunk, then over chunks in order: no bit depends on the
  // thread count). `cut` marks sentences whose last token is left out.
  static constexpr int kChunks = 64;
  template <class F>
  void over_tokens(const TokenText& x, const std::vector<unsigned char>* cut, F&& f) const {
    const std::uint32_t V = s_.V;
#pragma omp parallel for schedule(static) num_threads(inner_)
    for (int k = 0; k < kChunks; ++k) {
      const std::size_t s0 = x.sentences() * k / kChunks, s1 = x.sentences() * (k + 1) / kChunks;
      for (std::size_t sj = s0; sj < s1; ++sj) {
        std::uint64_t v = start_context(s_.order, V);
        std::uint32_t prev = V;
        const bool drop = cut && sj < cut->size() && (*cut)[sj];
        const std::uint64_t end = x.start[sj + 1] - (drop ? 1 : 0);
        for (std::uint64_t i = x.start[sj]; i < end; ++i) {
          const std::uint32_t w = x.tokens[i];
          f(k, v, prev, w, i == x.start[sj]);
          v = next_context(s_.order, V, v, w);
          prev = w;
        }
      }
    }
  }

  // The tail set as tail_mass counts it: without <unk> for a corpus (the
  // truth gives it no mass; a smoothed model does).
  bool in_tail_mass(std::uint32_t w) const { return s_.tail[w] && (s_.zipf || w != kUnkId); }
  static constexpr std::uint32_t kUnkId = 1;

  static std::string fmt_threads(int n) { return "omp-threads-0-" + std::to_string(n - 1); }

  NgramBatchSpec s_;
  Model model0_;  // generation 0 of a corpus truth, shared by every chain
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
  count_text(spec.order, spec.V, text, 0, text.sentences(), true, counts);
  tables_->model.build(spec, counts);
}

NgramFit::~NgramFit() = default;

NgramView NgramFit::view() const { return tables_->model.view(*spec_); }

}  // namespace ouro::kernels

// The n-gram cpu backend's sample phase (kernels/ngram/ngram_cpu.h): a chain's sample from its model, `samples`
// tokens in whole sentences drawn in parallel rounds (or a Zipf truth's token sequence), with the sampler's cut and
// the filters (data.verifier, data.dedup); the verifier's reference quantile.
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "kernels/core/philox_batch.h"
#include "kernels/ngram/ngram_cpu.h"

namespace ouro::kernels::ngram_cpu {

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

// The token after context v with uniforms r: sample_next's exact draw or, with the sampler's cut, a draw from the cut
// distribution (each context's cut made once per sample: not thread-safe, so a cut sampler draws on one thread).
class NextToken {
 public:
  NextToken(const NgramView& m, const SamplerSettings& s) : m_(m), s_(s), plain_(s.plain()) {}
  bool plain() const { return plain_; }  // (asked once, not per token)
  std::uint32_t operator()(const TokenUniforms& r, std::uint64_t v, std::uint64_t& cell) {
    const double u = r.u;
    cell = kNoCell;
    if (plain_) return sample_next(m_, v, r, cell);
    auto it = cuts_.find(v);
    if (it == cuts_.end()) it = cuts_.emplace(v, make_cut(m_, v, s_)).first;
    const Cut& cut = it->second;
    return cut.w[first_above(cut.cum.data(), 0, cut.w.size(), u * cut.cum.back())];
  }

 private:
  const NgramView& m_;
  const SamplerSettings& s_;
  const bool plain_;
  std::unordered_map<std::uint64_t, Cut> cuts_;  // the sampler's cuts, per context visited in this sample
};

// Sentences j0 + r, r < round, drawn into buf[r] (its tokens; cut: cut at kMaxSentence tokens, its last </s>
// forced), kLanes of them in flight on one thread, a token of each in turn (their uniforms made together,
// TokenBatch): each token's lookups are dependent cache misses, and independent sentences let them overlap. A lane
// takes the round's next sentences from a counter shared by the threads, kGrab at a time, so that the threads finish
// a round together whatever the sentences' lengths; `mine` lists the sentences a thread drew. A sentence's tokens
// depend only on its own counters, so who draws it, and in which order, changes nothing drawn.
class SentenceRounds {
 public:
  static constexpr int kLanes = 8;
  static constexpr std::uint64_t kGrab = 4;
  static constexpr std::uint64_t kRoundMax = 512;  // sentences of a round, at most

  // A drawn sentence's tokens and, for mle text, each token's alias cell (see count_cells), a cache line per
  // sentence (sentences next to each other may be drawn by different threads); its length and cut flag also in
  // compact arrays, which the thread that lays out the text reads.
  struct alignas(64) SentenceBuf {
    std::vector<std::uint32_t> tokens, cells;
  };
  std::vector<SentenceBuf> buf = std::vector<SentenceBuf>(kRoundMax);
  std::vector<std::uint32_t> buf_len = std::vector<std::uint32_t>(kRoundMax);
  std::vector<unsigned char> buf_cut = std::vector<unsigned char>(kRoundMax);

  // by_cell: record each token's alias cell (mle text with alias tables, the plain sampler).
  SentenceRounds(const NgramBatchSpec& s, const NgramView& m, const TokenBatch& batch, NextToken& next, bool by_cell,
                 int threads)
      : s_(s),
        m_(m),
        batch_(batch),
        next_(next),
        by_cell_(by_cell),
        direct_(by_cell && s.order == 2 && m.top.ctx_of != nullptr),
        scratch_(static_cast<std::size_t>(threads) * kLanes * 2 * kMaxSentence) {
    // mle order 2 with alias tables (the plain sampler): per context v <= V its entries and total count in one
    // place, so that a token looks its context up once instead of in three dependent loads (ctx_of, then ctx_start
    // and ctx_total); a context never seen followed has none (and a total of 0: mle_alias_next draws </s> there).
    direct_context_.assign(direct_ ? s.V + 1 : 0, DirectContext{0, 0, 0.0});
    for (std::uint32_t v = 0; direct_ && v <= s.V; ++v) {
      const std::int64_t ci = m.top.ctx_of[v];
      if (ci >= 0)
        direct_context_[v] =
            DirectContext{m.top.ctx_start[ci], m.top.ctx_start[ci + 1] - m.top.ctx_start[ci], m.top.ctx_total[ci]};
    }
  }

  // A new round: its sentences are taken from the start.
  void reset() { next_sentence_.store(0, std::memory_order_relaxed); }

  // This thread's share of the round's sentences (called by every thread of the team).
  void draw(std::uint64_t j0, std::uint64_t round, std::vector<std::uint32_t>& mine) {
    std::uint32_t* const lane_scratch =
        &scratch_[static_cast<std::size_t>(omp_get_thread_num()) * kLanes * 2 * kMaxSentence];
    std::uint64_t r_of[kLanes], v[kLanes], block[kLanes];
    std::uint32_t i[kLanes];
    bool on[kLanes];
    UniformLanes<kLanes> u;
    for (int l = 0; l < kLanes; ++l) u.u3[l] = u.u4[l] = 0.5;  // (as token_uniforms leaves them without `more`)
    std::uint64_t grabbed = 0, grabbed_end = 0;
    int live = 0;
    auto begin = [&](int l) {
      if (grabbed == grabbed_end) {
        grabbed = next_sentence_.fetch_add(kGrab, std::memory_order_relaxed);
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
      if (by_cell_) b.cells.assign(tokens + kMaxSentence, tokens + kMaxSentence + i[l]);
      buf_len[r_of[l]] = i[l];
      buf_cut[r_of[l]] = cut;
      --live;
      begin(l);
    };
    for (int l = 0; l < kLanes; ++l) begin(l);
    while (live > 0) {
      batch_.fill<kLanes>(block, u);
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
        if (direct_) {  // sample_next's mle draw, its context found in one lookup
          const DirectContext& d = direct_context_[v[l]];
          w = mle_alias_next(m_.top, d.lo, d.lo + d.entries, d.total, u.u[l], u.u2[l], cell);
        } else {
          w = next_(u.at(l), v[l], cell);
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
  }

 private:
  struct DirectContext {
    std::uint64_t lo, entries;
    double total;
  };
  const NgramBatchSpec& s_;
  const NgramView& m_;
  const TokenBatch& batch_;
  NextToken& next_;
  const bool by_cell_, direct_;
  std::vector<DirectContext> direct_context_;
  std::vector<std::uint32_t> scratch_;  // per thread and lane, the sentence being drawn (its tokens, then cells)
  std::atomic<std::uint64_t> next_sentence_{0};
};

}  // namespace

// The sample of the chain's current model (or of the zipf truth itself at generation 0): `samples` tokens, whole
// sentences for text.
void NgramCpu::draw_sample(Chain& c, std::uint32_t chain, std::uint32_t gen, bool truth) {
  c.sample.start.assign(1, 0);
  c.cut_sentences = 0.0;
  c.draws_per_kept = 1.0;
  c.sample_cut.clear();
  if (s_.zipf) draw_token_sequence(c, chain, gen, truth);
  else draw_sentences(c, chain, gen);
}

// A Zipf truth's sample: one sequence of `samples` tokens.
void NgramCpu::draw_token_sequence(Chain& c, std::uint32_t chain, std::uint32_t gen, bool truth) {
  TokenText& out = c.sample;
  const NgramView m = c.model->view(s_);
  NextToken next(m, s_.sampler);
  const TokenBatch batch(s_.seed, chain, gen, rng::kStreamSyntheticDraw, s_.smoothing == Smoothing::kKneserNey);
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
}

// A corpus truth's sample: sentences j = 0, 1, ... of the model until it holds `samples` tokens, drawn in rounds (in
// parallel when the sampler is plain: the cut cache is shared otherwise) and laid out in order, so the text depends
// neither on the thread count nor on the rounds' sizes. A round holds about the sentences still needed (judged by
// the mean length so far), at most SentenceRounds::kRoundMax: what the size changes is only the sentences drawn in
// vain after the last one. One thread decides which of the round's sentences join the text and where (at[r]); then
// each thread copies the sentences it drew.
void NgramCpu::draw_sentences(Chain& c, std::uint32_t chain, std::uint32_t gen) {
  TokenText& out = c.sample;
  const NgramView m = c.model->view(s_);
  NextToken next(m, s_.sampler);
  const TokenBatch batch(s_.seed, chain, gen, rng::kStreamSyntheticDraw, s_.smoothing == Smoothing::kKneserNey);
  const bool by_cell = s_.order >= 2 && s_.smoothing == Smoothing::kMle && next.plain() &&
                       !c.model->top.alias.empty() && c.model->top.ent_w.size() < kNoCell32 / 2;
  SentenceRounds rounds(s_, m, batch, next, by_cell, inner_);
  constexpr std::uint64_t kRoundMax = SentenceRounds::kRoundMax;
  constexpr std::uint64_t kNotKept = ~std::uint64_t{0};
  const int threads = next.plain() ? inner_ : 1;
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
    rounds.reset();
#pragma omp parallel num_threads(threads)
    {
      std::vector<std::uint32_t>& my = mine[static_cast<std::size_t>(omp_get_thread_num())];
      my.clear();
      rounds.draw(j0, round, my);
#pragma omp barrier
      if (verify) {
#pragma omp for schedule(static)
        for (std::int64_t r = 0; r < static_cast<std::int64_t>(round); ++r)
          logp[r] = sentence_log_prob(reference, rounds.buf[r].tokens);
      }
#pragma omp single
      {
        std::fill(at.begin(), at.begin() + static_cast<std::ptrdiff_t>(round), kNotKept);
        for (std::uint64_t r = 0; r < round && more(size); ++r) {
          drawn += rounds.buf_len[r];
          if (verify &&
              !words.keeps(s_.seed, chain, gen, j0 + r,
                           logp[r] >= sentence_logp_min_ ? s_.verifier.keep_plausible : s_.verifier.keep_implausible))
            continue;
          if (s_.dedup && !seen.insert(rounds.buf[r].tokens).second) continue;
          at[r] = size;
          size += rounds.buf_len[r];
          out.start.push_back(size);
          c.cut_sentences += rounds.buf_cut[r];
          c.sample_cut.push_back(rounds.buf_cut[r]);
        }
      }  // (implied barrier)
      for (const std::uint32_t r : my) {
        if (at[r] == kNotKept) continue;
        const SentenceRounds::SentenceBuf& b = rounds.buf[r];
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
double NgramCpu::sentence_log_prob(const NgramView& m, const std::vector<std::uint32_t>& sentence) const {
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
double NgramCpu::reference_quantile() const {
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

}  // namespace ouro::kernels::ngram_cpu

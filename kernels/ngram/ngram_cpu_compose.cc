// The n-gram cpu backend's compose phase (kernels/ngram/ngram_cpu.h): a chain's generation t, from its training text
// (real sentences, then the previous model's sample, under the regime) to its counts, model, sample and metrics.
#include "kernels/ngram/ngram_cpu.h"

namespace ouro::kernels::ngram_cpu {

// Token j of a zipf truth's stream (one block per token), after context
// ctx for a Markov chain: the Zipf rank, mapped by the context's permutation.
std::uint32_t NgramCpu::truth_token(std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, std::uint64_t j,
                                    std::uint32_t ctx) const {
  const rng::Block b = rng::draw_block(s_.seed, chain, gen, stream, j);
  const double u = rng::u01_open(b.v[0], b.v[1]);
  const auto r = static_cast<std::uint32_t>(first_above(s_.truth_cum.data(), 0, s_.V, u * s_.truth_cum[s_.V - 1]));
  return s_.order == 2 ? s_.truth_perm[static_cast<std::size_t>(ctx) * s_.V + r] : r;
}

// The counts of a training text, its synthetic sentences' tail tokens
// weighted by data.tail_upsample's factor (synthetic(sj): whether sentence
// sj is synthetic). Without upsampling: count_text.
template <class IsSynthetic>
void NgramCpu::count_training(const TokenText& text, IsSynthetic&& synthetic, Counts& out) const {
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

// Generation t of chain i.
void NgramCpu::generation(std::int64_t i, int t, double* out) {
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

}  // namespace ouro::kernels::ngram_cpu

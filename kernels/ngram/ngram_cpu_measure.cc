// The n-gram cpu backend's measure phase (kernels/ngram/ngram_cpu.h): model t against the held-out text and the
// truth, and its sample's statistics, summed over fixed chunks of n-gram types (kernels/ngram/ngram_metrics.h).
#include "kernels/ngram/ngram_cpu.h"

namespace ouro::kernels::ngram_cpu {

// Calls f(chunk, context, token, count) for every n-gram type of a
// counted text (order 1: every token with a count, context 0), the types
// split into kNgramChunks fixed chunks processed in parallel when the chain has
// the threads to itself (callers sum per chunk, then over chunks in order:
// no bit depends on the thread count).
template <class F>
void NgramCpu::over_types(const Counts& k, F&& f) const {
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

// The keys (context, </s>) of the sample's cut sentences' forced last
// tokens, sorted, one per cut sentence.
std::vector<std::uint64_t> NgramCpu::forced_ends(const Chain& c) const {
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

void NgramCpu::measure(Chain& c, int t, double share, double age, double* out) {
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

}  // namespace ouro::kernels::ngram_cpu

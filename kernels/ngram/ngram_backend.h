// The interface between the loop (sim/) and the n-gram family's launch code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/core/chain_backend.h"
#include "kernels/ngram/ngram.h"
#include "kernels/ngram/ngram_metrics.h"
#include "kernels/training/regime.h"

namespace ouro::kernels {

struct SamplerSettings {
  double temperature = 1.0;
  int top_k = 0;       // 0: no cut
  double top_p = 1.0;  // 1: no cut
  bool plain() const { return temperature == 1.0 && top_k == 0 && top_p == 1.0; }
};

// Sentences as token ids, each ending with the end marker 0, concatenated.
struct TokenText {
  std::vector<std::uint32_t> tokens;
  std::vector<std::uint64_t> start;  // size = sentences + 1
  std::size_t sentences() const { return start.empty() ? 0 : start.size() - 1; }
};

// One batch of chains of one sweep point.
struct NgramBatchSpec {
  int order;  // 1 or 2
  Smoothing smoothing;
  double k, discount;
  SamplerSettings sampler;
  std::uint32_t V;  // predicted vocabulary size (ids 0..V-1; <s> is V)
  // The truth: a corpus (sentences of its training split) or, when `zipf`, an
  // order-1 distribution whose samples are single tokens.
  bool zipf;
  TokenText train;                // corpus: training sentences (real draws)
  std::vector<double> truth_p;    // [V] zipf: the truth; corpus: training unigram frequencies
  std::vector<double> truth_cum;  // [V] zipf: inclusive prefix sums of truth_p (sampling)
  // zipf, order 2 (a Zipfian Markov chain): p0(w | v) for contexts v = 0..V
  // (V = <s>), row-major, and each row's tokens by decreasing probability;
  // truth_p is then the chain's stationary distribution.
  std::vector<double> truth_cond;         // [(V + 1) * V]
  std::vector<std::uint32_t> truth_perm;  // [(V + 1) * V] rank -> token
  std::vector<unsigned char> word;        // [V] 1 for the truth's word types (vocab_survival counts these)
  std::vector<unsigned char> tail;        // [V] 1 for the tail set (tail_ppl; tail_mass leaves <unk> out)
  TokenText heldout;                      // corpus: held-out sentences; zipf: one "sentence" of held-out tokens
  Regime regime;
  RealSource real_source;
  int generations;
  int samples;     // tokens per generation
  int real_count;  // tokens filled with real sentences from generation 2 on (kernels::real_count)
  // data.dedup (corpus truths): a synthetic sentence identical to one
  // already in the sample is dropped and drawing goes on, until the sample
  // holds `samples` tokens or max_draw_factor * samples tokens were drawn.
  bool dedup = false;
  int max_draw_factor = 10;
  // data.verifier. Order-1 zipf truths: a synthetic token w is plausible when
  // p0(w) >= plausible_min_p; order 2 (a Markov chain): token w after v when
  // p0(w | v) >= plausible_min_p. Corpus truths: a synthetic sentence is
  // plausible when its log-probability under the generation-0 model (the
  // configured model fitted to the whole training split) is at least that
  // model's verifier_quantile-quantile over the training split's own
  // sentences. Kept with the integer thresholds of kernels/training/regime.h
  // (VerifyWords), the next token or sentence drawn in its place, until
  // `samples` tokens are kept or verifier.max_draw_factor * samples drawn.
  KeepRule verifier;
  double plausible_min_p = 0.0;
  double verifier_quantile = 0.0;
  // Frequency weights of the training text's counts. data.tail_upsample: a
  // synthetic token of the tail set (`tail`) counts tail_factor times (1:
  // off). data.age_decay (accumulate, accumulate_subsample): the counts of
  // text added k generations before the fit weigh age_decay^k.
  double tail_factor = 1.0;
  double age_decay = 1.0;
  std::uint32_t seed;
  std::uint32_t chain_begin;
  std::int64_t batch;
  int threads;
};

// Metrics as [kNumNgramMetrics][batch].
using NgramBackend = ChainBackend;

std::unique_ptr<NgramBackend> make_ngram_cpu(const NgramBatchSpec& spec);
// Defined only in builds with the cuda backend (OUROBOROS_HAVE_CUDA).
std::unique_ptr<NgramBackend> make_ngram_cuda(const NgramBatchSpec& spec);

// What the cuda backend does not run yet (empty: it runs the spec): it
// covers corpus truths (orders 1-3) and Zipf truths (unigram, Markov), every
// smoothing, the sampler (temperature, top_k, top_p) for order-1 models and
// mle models of order 2 and 3, every regime with any real_fraction, without
// age_decay.
inline std::string ngram_cuda_unsupported(const NgramBatchSpec& s) {
  if (!s.sampler.plain() && s.order >= 2 && s.smoothing != Smoothing::kMle)
    return "the sampler's temperature, top_k and top_p for smoothed models of order 2 and 3";
  // (The config refuses this pairing too: a Markov chain's text is one
  // sequence, whose tokens make no pool of sentences.)
  if (s.regime == Regime::kAccumulateSubsample && s.zipf && s.order == 2)
    return "data.regime accumulate_subsample for a Zipfian Markov-chain truth";
  if (s.dedup) return "data.dedup";
  if (s.verifier.on) return "data.verifier";
  if (s.tail_factor != 1.0) return "data.tail_upsample";
  if (s.age_decay != 1.0) return "data.age_decay";
  return "";
}

// The model of the spec's order and smoothing fitted to a text (whole
// sentences, counted from <s>), on the host: what the cpu backend builds each
// generation, exposed for tests and benchmarks.
class NgramFit {
 public:
  NgramFit(const NgramBatchSpec& spec, const TokenText& text);
  ~NgramFit();
  NgramView view() const;

  // The n-gram counts of a text (sorted keys context * (V + 1) + w, orders
  // 2 and 3), as the cpu backend counts a training text.
  static void count(const NgramBatchSpec& spec, const TokenText& text, std::vector<std::uint64_t>& key,
                    std::vector<double>& c);
  // The same counts of a text drawn from this model (mle), from the alias
  // cells sample_next reported for its tokens in order, as the cpu backend
  // counts its samples; false if some token has no cell.
  bool count_drawn(const std::vector<std::uint64_t>& cells, std::vector<std::uint64_t>& key,
                   std::vector<double>& c) const;

 private:
  struct Tables;
  std::unique_ptr<Tables> tables_;
  const NgramBatchSpec* spec_;
};

}  // namespace ouro::kernels

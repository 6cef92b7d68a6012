// The cpu backend of the n-gram family, shared by its files: OpenMP over chains, each chain's generation done whole
// by one thread (or, with fewer chains than threads, chains one after another, each using every thread inside). A
// generation t, a file for each phase:
//
//   compose  (ngram_cpu_compose.cc)  the training text: real sentences drawn from the corpus, synthetic ones from
//            generation t-1's sample, under the regime (the pool of counts, or of texts under accumulate_subsample);
//   count    (ngram_cpu_count.cc)    its n-grams, by a radix sort of packed keys and a run-length pass;
//   fit      (ngram_cpu_fit.cc)      model t's tables (kernels/ngram/ngram.h's levels, alias tables per context);
//   sample   (ngram_cpu_sample.cc)   the sample from model t that generation t+1 trains on, whole sentences drawn
//            in parallel rounds, with the sampler's cut and the filters (data.verifier, data.dedup);
//   measure  (ngram_cpu_measure.cc)  model t against the held-out text and the truth, and its sample's statistics.
//
// ngram_cpu.cc holds the backend that runs them (NgramCpu: start, advance, state) and NgramFit. No bit of the output
// depends on the thread count: sums run over fixed chunks, sentences depend only on their counters.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "kernels/ngram/ngram_backend.h"

namespace ouro::kernels::ngram_cpu {

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
void radix_sort(std::vector<std::uint64_t>& keys, int bits, std::vector<std::uint64_t>& tmp, int threads);

// Bits needed for a packed key of n tokens (each < V + 1).
inline int key_bits(std::uint32_t V, int n = 2) {
  return static_cast<int>(std::ceil(n * std::log2(static_cast<double>(V) + 1.0)));
}

// Sorted keys -> unique keys and their counts.
void run_lengths(const std::vector<std::uint64_t>& keys, Counts& out);

// The n-gram counts of a text (whole sentences, counted from <s>), sorted.
void count_text(int order, std::uint32_t V, const TokenText& text, Counts& out, int threads);

// a += b (the union of their types, counts added).
void add_counts(int order, Counts& a, const Counts& b);

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

  void build(const Counts& counts, std::uint32_t V, double d, bool dense, bool with_alias, int threads);

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

  void build(const NgramBatchSpec& s, const Counts& counts, int threads);

  NgramView view(const NgramBatchSpec& s) const {
    return NgramView{s.order,        s.smoothing,     s.k,       s.discount, s.V,        uni.data(),
                     uni_cum.data(), uni_cumd.data(), uni_total, uni_types,  top.view(), mid.view()};
  }
};

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
bool count_cells(const Level& top, std::uint32_t V, const std::vector<std::uint32_t>& cells, Counts& out);

// The backend: its state and the steps of a generation, each defined in the file of its phase.
class NgramCpu final : public NgramBackend {
 public:
  explicit NgramCpu(const NgramBatchSpec& spec);
  void start(double* h_metrics) override;
  void advance(int t, double* h_metrics) override;
  std::vector<WorkerRange> workers() const override { return workers_; }
  void state(StateArchive& ar) override;

 private:
  // f(i) for every chain i: in parallel over chains, or, with fewer chains
  // than threads, one after another outside any parallel region, so that a
  // chain's own parallel loops start first-level teams (a nested team can
  // cost a thread start per region).
  template <class F>
  void for_chains(F&& f);
  // compose (ngram_cpu_compose.cc)
  void generation(std::int64_t i, int t, double* out);
  template <class IsSynthetic>
  void count_training(const TokenText& text, IsSynthetic&& synthetic, Counts& out) const;
  std::uint32_t truth_token(std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, std::uint64_t j,
                            std::uint32_t ctx) const;
  // count (ngram_cpu_count.cc)
  void upweight_tail(Counts& k) const;
  static void scale_counts(Counts& k, double q);
  bool count_cells(const Chain& c, Counts& out) const;
  // sample (ngram_cpu_sample.cc)
  void draw_sample(Chain& c, std::uint32_t chain, std::uint32_t gen, bool truth);
  void draw_token_sequence(Chain& c, std::uint32_t chain, std::uint32_t gen, bool truth);
  void draw_sentences(Chain& c, std::uint32_t chain, std::uint32_t gen);
  double sentence_log_prob(const NgramView& m, const std::vector<std::uint32_t>& sentence) const;
  double reference_quantile() const;
  // measure (ngram_cpu_measure.cc)
  void measure(Chain& c, int t, double share, double age, double* out);
  template <class F>
  void over_types(const Counts& k, F&& f) const;
  std::vector<std::uint64_t> forced_ends(const Chain& c) const;

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

}  // namespace ouro::kernels::ngram_cpu

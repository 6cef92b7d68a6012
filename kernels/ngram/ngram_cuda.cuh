// The cuda backend of the n-gram family, shared by its files: every chain of a batch at once, one generation as a
// fixed sequence of launches with no per-chain host work, in five phases, a file each:
//
//   compose  (ngram_cuda_compose.cu)  each chain's training text as n-gram keys (context (V + 1) + w): real
//            sentences of the corpus (a warp per chain picks 32 at a time with the real-draw stream and copies their
//            keys) and the first sentences of the previous model's sample; under accumulate_subsample, the pool of
//            every generation's text and the training text drawn from it;
//   count    (ngram_cuda_count.cu)    a segmented radix sort of every chain's keys (CUB) and a run-length pass:
//            each chain's sorted n-gram types and counts (under accumulate merged into the chain's pool of counts);
//   fit      (ngram_cuda_fit.cu)      the model's tables per context (build_context, build_alias of
//            kernels/ngram/ngram.h, the code the cpu backend runs), the lowest level per chain (build_lowest), order
//            3 kneser_ney's middle level by one more sort;
//   sample   (ngram_cuda_sample.cu)   sentences drawn in rounds, a thread per sentence (sample_next): a first pass
//            draws only the lengths, a pass per chain accepts sentences in order until `samples` tokens, and the
//            accepted ones are drawn again and written as keys at their offsets (the counters make the second draw
//            the same); the sampler's cut of each context;
//   measure  (ngram_cuda_measure.cu)  a block of kNgramChunks threads per chain sums its chunk of the held-out types
//            and of the sample's types with the shared pieces of kernels/ngram/ngram_metrics.h, thread 0 adds the
//            chunks in order and closes the metrics.
//
// ngram_cuda.cu holds the backend that runs them (NgramCuda: start, advance, state). The tokens drawn, the counts
// and the tables are the cpu backend's bit for bit (the same counters, the same integer sampling decisions, sums of
// whole numbers); the metrics agree to rounding (device log2/exp2).
//
// Scope: corpus truths of order 1-3 and Zipf truths (unigram; Markov chain, one sequence per chain drawn by one
// thread), every smoothing, the sampler's cut (temperature, top_k, top_p) for order-1 models and mle models of
// order 2 and 3, every regime (any real_fraction) without age_decay. The rest is refused before any work
// (ngram_cuda_unsupported, kernels/ngram/ngram_backend.h).
//
// Only nvcc compiles this header. Kernels live in the file of their phase; what two phases share is here.
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/core/elementary.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/ngram/ngram_backend.h"

namespace ouro::kernels::ngram_cuda {

constexpr int kThreads = 256;
constexpr std::uint64_t kNone = ~std::uint64_t{0};

inline unsigned blocks_for(std::uint64_t n) {
  return static_cast<unsigned>(std::max<std::uint64_t>(1, (n + kThreads - 1) / kThreads));
}

// Kernels with a thread per chain that each run a long serial loop go in
// blocks of one warp, so that a few hundred chains spread over every
// multiprocessor instead of sharing one.
constexpr int kSerialThreads = 32;
inline unsigned serial_blocks(std::uint64_t chains) {
  return static_cast<unsigned>(std::max<std::uint64_t>(1, (chains + kSerialThreads - 1) / kSerialThreads));
}

template <class T>
DeviceBuffer<T> upload(const std::vector<T>& v) {
  DeviceBuffer<T> b(v.size());
  if (!v.empty()) OURO_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return b;
}
template <class T>
std::vector<T> download(const DeviceBuffer<T>& b, std::size_t n) {
  std::vector<T> v(n);
  if (n) OURO_CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

// Makes b hold at least n elements (its contents are not kept).
template <class T>
inline void ensure(DeviceBuffer<T>& b, std::size_t n) {
  if (b.size() < n) b = DeviceBuffer<T>(n);
}

// rank = the exclusive prefix sum of head over [0, span) (CUB), with
// scratch in temp.
void exclusive_sum(const DeviceBuffer<std::uint64_t>& head, DeviceBuffer<std::uint64_t>& rank, std::uint64_t span,
                   DeviceBuffer<unsigned char>& temp);

inline int key_bits(std::uint32_t V, int order) {
  return static_cast<int>(std::ceil(order * std::log2(static_cast<double>(V) + 1.0)));
}

// The chain whose region [begin[b], begin[b] + size[b]) holds index i, or
// -1 when i lies in no region (begin ascending).
inline __device__ std::int64_t chain_of(const std::uint64_t* begin, const std::uint64_t* size, std::int64_t B,
                                        std::uint64_t i) {
  std::int64_t lo = 0, hi = B - 1;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    if (begin[mid] <= i) lo = mid;
    else hi = mid - 1;
  }
  return i >= begin[lo] && i < begin[lo] + size[lo] ? lo : -1;
}

// Sorts each region [begin[b], begin[b] + size[b]) of keys_in into keys_out
// (values along when given; stable) on the low `bits` bits of the keys.
// Few regions: each by CUB's device-wide radix sort (a segmented sort gives
// a segment one thread block, which leaves a GPU idle when one chain holds
// 10^6 keys). Many: CUB's segmented radix sort, which counts items in int,
// in slices of chains whose span stays below 2^31, each slice's offsets
// relative to its first region.
template <class Value>
void segmented_sort(const std::uint64_t* keys_in, std::uint64_t* keys_out, const Value* values_in, Value* values_out,
                    const std::vector<std::uint64_t>& begin, const std::vector<std::uint64_t>& size, int bits,
                    DeviceBuffer<unsigned char>& temp);

// For each region [begin[b], begin[b] + size[b]) of sorted keys with run heads `head` and their exclusive prefix sum
// `rank`: its number of unique keys.
void unique_sizes(const std::uint64_t* head, const std::uint64_t* rank, const std::uint64_t* begin,
                  const std::uint64_t* size, std::int64_t B, std::uint64_t* unique);

// Counts: per chain region, sorted unique keys and their counts.
struct Counted {
  DeviceBuffer<std::uint64_t> key;
  DeviceBuffer<double> c;
  DeviceBuffer<std::uint64_t> begin, size;  // [B]
  std::vector<std::uint64_t> h_begin, h_size;
};

// The counting machinery of one backend: scratch reused every generation.

// The counting machinery of one backend: scratch reused every generation (ngram_cuda_count.cu).
class Counter {
 public:
  // Sorts every region of `keys` (clobbered) and writes its unique keys and counts to `out` (same regions, sizes =
  // the number of types).
  void count(DeviceBuffer<std::uint64_t>& keys, std::uint64_t span, const std::vector<std::uint64_t>& begin,
             const std::vector<std::uint64_t>& size, int bits, Counted& out);
  // Sorts every region of `keys` into sorted() (the same regions).
  void sort(DeviceBuffer<std::uint64_t>& keys, std::uint64_t span, const std::vector<std::uint64_t>& begin,
            const std::vector<std::uint64_t>& size, int bits);
  // Unique keys and counts of regions already sorted.
  void runs(const std::uint64_t* sorted, std::uint64_t span, DeviceBuffer<std::uint64_t>& d_begin,
            DeviceBuffer<std::uint64_t>& d_size, std::int64_t B, Counted& out);
  DeviceBuffer<std::uint64_t>& sorted() { return sorted_; }

 private:
  DeviceBuffer<std::uint64_t> sorted_, head_, rank_, start_, d_begin_, d_size_;
  DeviceBuffer<unsigned char> temp_;
};

// One level of every chain's model: chain b's entries at [begin[b],
// begin[b] + size[b]) of the entry arrays, its contexts at the same offset of
// the context arrays, and ctx_start at offset begin[b] + b (one more slot per
// chain), relative to the chain's first entry.
struct LevelArrays {
  DeviceBuffer<std::uint64_t> ctx, ctx_start, contexts;
  DeviceBuffer<double> ctx_total, ent_c, ent_cum, ent_cumd;
  DeviceBuffer<std::uint32_t> ent_w, alias_entry, stack;
  DeviceBuffer<std::uint64_t> units;
  DeviceBuffer<AliasBucket> alias;
  DeviceBuffer<std::int32_t> ctx_of;  // [B (V + 1)] when dense
  DeviceBuffer<std::uint64_t> begin;  // [B] the counts' regions, copied: the counts may be recounted before use
};

struct ModelArrays {
  int order;
  Smoothing smoothing;
  double k, discount;
  std::uint32_t V;
  const double *uni, *uni_cum, *uni_cumd, *uni_total, *uni_types;  // [B V], [B]
  struct Level {
    const std::uint64_t *ctx, *ctx_start, *contexts, *begin;
    const double *ctx_total, *ent_c, *ent_cum, *ent_cumd;
    const std::uint32_t *ent_w, *alias_entry;
    const AliasBucket* alias;
    const std::int32_t* ctx_of;
  } top, mid;
  bool shared;  // one model for every chain (generation 0 of a corpus)
};

inline __device__ NgramLevel level_view(const ModelArrays::Level& L, std::int64_t b, std::uint32_t V) {
  if (!L.ctx)
    return NgramLevel{0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  const std::uint64_t e = L.begin ? L.begin[b] : 0, cs = L.begin ? e + static_cast<std::uint64_t>(b) : 0;
  return NgramLevel{L.contexts[L.begin ? b : 0],
                    L.ctx + e,
                    L.ctx_start + cs,
                    L.ctx_total + e,
                    L.ent_w + e,
                    L.ent_c + e,
                    L.ent_cum + e,
                    L.ent_cumd + e,
                    L.ctx_of ? L.ctx_of + (L.begin ? static_cast<std::uint64_t>(b) * (V + 1) : 0) : nullptr,
                    L.alias ? L.alias + e : nullptr,
                    L.alias_entry ? L.alias_entry + e : nullptr};
}

inline __device__ NgramView chain_view(const ModelArrays& m, std::int64_t b) {
  const std::int64_t c = m.shared ? 0 : b;
  const std::uint64_t u = static_cast<std::uint64_t>(c) * m.V;
  return NgramView{m.order,
                   m.smoothing,
                   m.k,
                   m.discount,
                   m.V,
                   m.uni + u,
                   m.uni_cum + u,
                   m.uni_cumd + u,
                   m.uni_total[c],
                   m.uni_types[c],
                   level_view(m.top, c, m.V),
                   level_view(m.mid, c, m.V)};
}

// The sampler's cut (sampler_cut, kernels/ngram/ngram.h; see build_cuts): of an
// mle model of order 2 or 3, per entry of the top level, the context's words
// by decreasing count (ties by word) and their running weights, and at each
// context's first entry the number kept; of an order-1 model, the same for
// its one context in V slots per chain.
struct CutView {
  const std::uint32_t* w;
  const double* cum;
  const std::uint32_t* len;
};

struct DrawParams {
  ModelArrays model;
  std::uint32_t seed, chain_begin, gen, V;
  int order;
  bool third;   // kneser_ney: the uniforms of the lower fall-backs
  CutView cut;  // w null: the plain sampler
};

// The next token after context v: sample_next, or with the sampler's cut the
// first kept word whose running weight exceeds u times the kept weight (the

// Token j of a Zipf truth's stream (one block per token): the rank whose
// cumulative probability first exceeds a uniform times the total.
inline __device__ std::uint32_t zipf_token(const double* truth_cum, std::uint32_t V, std::uint32_t seed,
                                           std::uint32_t chain, std::uint32_t gen, std::uint32_t stream,
                                           std::uint64_t j) {
  const rng::Block b = rng::draw_block(seed, chain, gen, stream, j);
  const double u = rng::u01_open(b.v[0], b.v[1]);
  return static_cast<std::uint32_t>(first_above(truth_cum, 0, V, u * truth_cum[V - 1]));
}

// The sample of n independent tokens, a thread per token: from the truth
// (generation 0's sample) or from each chain's model, token j with the
// uniforms of "sentence" j / kMaxSentence, position j % kMaxSentence (as the

// One sentence of a chain's pool.
struct PoolRef {
  std::uint64_t at;    // its first token in its generation's buffer
  std::uint32_t len;   // its tokens
  std::uint32_t k;     // its generation - 1 (the pool text it belongs to)
  std::uint32_t real;  // 1: a real sentence (it starts in the text's real part)
  std::uint32_t unused;
};

// Where the sentences of a new text start: every token of a Zipf truth's

// The backend: its state and the steps of a generation, each defined in the file of its phase.
class NgramCuda final : public NgramBackend {
 public:
  explicit NgramCuda(const NgramBatchSpec& spec);
  void start(double* h_metrics) override;
  void advance(int t, double* h_metrics) override;
  std::vector<WorkerRange> workers() const override;
  void state(StateArchive& ar) override;

 private:
  // compose (ngram_cuda_compose.cu)
  const std::uint64_t* compose(int t, std::uint64_t real_target, DeviceBuffer<std::uint64_t>& size,
                               DeviceBuffer<double>& real, std::uint64_t& stride);
  void subsample(int t, const std::uint64_t* new_text, std::uint64_t stride, const DeviceBuffer<std::uint64_t>& size,
                 const DeviceBuffer<double>& real, const std::vector<std::uint64_t>& tokens, std::vector<double>& share,
                 std::vector<double>& age);
  void set_pool_list(DeviceBuffer<PoolRef> list, const std::vector<std::uint64_t>& begin,
                     const std::vector<std::uint64_t>& size);
  void draw_training_text(int t, std::uint64_t refs, std::vector<double>& share, std::vector<double>& age);
  // count (ngram_cuda_count.cu)
  void count_sample();
  void merge_pool(const Counted& add);
  // fit (ngram_cuda_fit.cu)
  struct HostLevel;
  void upload_model0(const NgramView& h);
  ModelArrays::Level upload_level(const NgramLevel& L, HostLevel& d);
  ModelArrays::Level build_level(const Counted& k, LevelArrays& L, bool dense, bool with_alias);
  void fit(const Counted& k);
  // sample (ngram_cuda_sample.cu)
  struct Cuts;
  void build_cuts(const ModelArrays& model, std::uint64_t span, std::int64_t chains, Cuts& out);
  void build_unigram_cuts(const ModelArrays& model, std::int64_t chains, Cuts& out);
  void build_level_cuts(const ModelArrays::Level& L, std::uint64_t span, std::int64_t chains, Cuts& out);
  void draw(const ModelArrays& model, std::uint32_t gen, bool truth, const CutView& cut);
  // measure (ngram_cuda_measure.cu)
  void measure(const ModelArrays& model, double* h_metrics, bool truth0);

  struct Pool {
    double tokens = 0.0, synthetic = 0.0;
    std::vector<double> tokens_of;
  };
  struct HostLevel {
    DeviceBuffer<std::uint64_t> ctx, ctx_start, contexts;
    DeviceBuffer<double> ctx_total, ent_c, ent_cum, ent_cumd;
    DeviceBuffer<std::uint32_t> ent_w, alias_entry;
    DeviceBuffer<AliasBucket> alias;
    DeviceBuffer<std::int32_t> ctx_of;
  };
  // The sampler's cut of every context of the model (of `chains` chains;
  // span: the entries of its top level).
  struct Cuts {
    DeviceBuffer<std::uint64_t> keys, sorted;
    DeviceBuffer<std::uint32_t> w, len, words, sorted_words;
    DeviceBuffer<double> cum;
    CutView view() const { return CutView{w.get(), cum.get(), len.get()}; }
  };
  NgramBatchSpec s_;
  std::int64_t B_;
  std::uint64_t sample_stride_ = 0, text_stride_ = 0, forced_cap_ = 0;
  int bits_ = 0;
  Counter counter_;
  Counted sample_counts_, text_counts_, mid_counts_, pool_;
  DeviceBuffer<std::uint64_t> train_keys_, train_start_, held_key_, sample_, sample_len_, forced_, text_, mid_keys_,
      scratch_, round_at_, head_, rank_;
  DeviceBuffer<std::uint32_t> round_len_, truth_perm_;
  DeviceBuffer<unsigned> forced_n_;
  DeviceBuffer<unsigned char> word_, tail_, temp_;
  DeviceBuffer<double> held_c_, truth_p_, truth_cum_, truth_cond_, row_kl_, row_tv_, cut_, share_, age_, distinct_,
      pairs_, metrics_, uni_, uni_cum_, uni_cumd_, uni_total_, uni_types_, sample_dense_;
  std::vector<Pool> chains_;
  // accumulate_subsample: every generation's new texts (compact), each
  // chain's list of its pool's sentences, and the sort's scratch.
  std::vector<DeviceBuffer<std::uint64_t>> pool_gen_;
  std::vector<std::uint64_t> pool_gen_size_, ref_begin_, ref_size_;
  DeviceBuffer<PoolRef> pool_refs_;
  DeviceBuffer<std::uint64_t> d_ref_begin_, d_ref_size_, sub_key_, sub_sorted_, sub_g_, sub_g_sorted_, sub_len_,
      sub_before_;
  // Generation 0 (shared by every chain) and model t.
  std::unique_ptr<NgramFit> model0_fit_;
  DeviceBuffer<double> m0_uni_, m0_uni_cum_, m0_uni_cumd_, m0_scalars_;
  HostLevel m0_top_, m0_mid_;
  ModelArrays model0_arrays_{}, model_arrays_{};
  std::uint64_t model0_entries_ = 0, top_span_ = 0;
  int cut_count_bits_ = 0;           // the sampler's cut: bits of a count in its sort keys (the rest hold the word)
  Cuts sampler_cut0_, sampler_cut_;  // of the generation-0 model, of model t
  LevelArrays top_, mid_;
};

}  // namespace ouro::kernels::ngram_cuda

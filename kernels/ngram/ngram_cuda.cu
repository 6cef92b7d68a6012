// The cuda backend of the n-gram family: every chain of a batch at once, one
// generation as a fixed sequence of launches with no per-chain host work:
//
//   compose   each chain's training text as n-gram keys (context (V + 1) + w):
//             real sentences of the corpus (a warp per chain picks 32 at a
//             time with the real-draw stream and copies their keys) and the
//             first sentences of the previous model's sample;
//   count     a segmented radix sort of every chain's keys (CUB) and a
//             run-length pass: each chain's sorted n-gram types and counts
//             (under accumulate merged into the chain's pool of counts);
//   fit       the model's tables per context (build_context, build_alias of
//             kernels/ngram/ngram.h, the code the cpu backend runs), the lowest
//             level per chain (build_lowest), order 3 kneser_ney's middle
//             level by one more sort;
//   sample    sentences drawn in rounds, a thread per sentence (sample_next):
//             a first pass draws only the lengths, a pass per chain accepts
//             sentences in order until `samples` tokens, and the accepted
//             ones are drawn again and written as keys at their offsets (the
//             counters make the second draw the same);
//   measure   a block of kNgramChunks threads per chain sums its chunk of the
//             held-out types and of the sample's types with the shared pieces
//             of kernels/ngram/ngram_metrics.h, thread 0 adds the chunks in order
//             and closes the metrics.
//
// The tokens drawn, the counts and the tables are the cpu backend's bit for
// bit (the same counters, the same integer sampling decisions, sums of whole
// numbers); the metrics agree to rounding (device log2/exp2).
//
// Scope: corpus truths of order 1-3 and Zipf truths (unigram; Markov chain,
// one sequence per chain drawn by one thread), every smoothing, the
// sampler's cut (temperature, top_k, top_p) for order-1 models and mle
// models of order 2 and 3, every regime (any real_fraction) without
// age_decay. The rest is refused before any work
// (ngram_cuda_unsupported, kernels/ngram/ngram_backend.h).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <cub/device/device_segmented_sort.cuh>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/core/elementary.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/ngram/ngram_backend.h"

namespace ouro::kernels {
namespace {

constexpr int kThreads = 256;
constexpr std::uint64_t kNone = ~std::uint64_t{0};

unsigned blocks_for(std::uint64_t n) {
  return static_cast<unsigned>(std::max<std::uint64_t>(1, (n + kThreads - 1) / kThreads));
}

// Kernels with a thread per chain that each run a long serial loop go in
// blocks of one warp, so that a few hundred chains spread over every
// multiprocessor instead of sharing one.
constexpr int kSerialThreads = 32;
unsigned serial_blocks(std::uint64_t chains) {
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
void ensure(DeviceBuffer<T>& b, std::size_t n) {
  if (b.size() < n) b = DeviceBuffer<T>(n);
}

// rank = the exclusive prefix sum of head over [0, span) (CUB), with
// scratch in temp.
void exclusive_sum(const DeviceBuffer<std::uint64_t>& head, DeviceBuffer<std::uint64_t>& rank, std::uint64_t span,
                   DeviceBuffer<unsigned char>& temp) {
  std::size_t bytes = 0;
  OURO_CUDA_CHECK(
      cub::DeviceScan::ExclusiveSum(nullptr, bytes, head.get(), rank.get(), static_cast<std::int64_t>(span)));
  ensure(temp, bytes);
  OURO_CUDA_CHECK(
      cub::DeviceScan::ExclusiveSum(temp.get(), bytes, head.get(), rank.get(), static_cast<std::int64_t>(span)));
}

int key_bits(std::uint32_t V, int order) {
  return static_cast<int>(std::ceil(order * std::log2(static_cast<double>(V) + 1.0)));
}

// The chain whose region [begin[b], begin[b] + size[b]) holds index i, or
// -1 when i lies in no region (begin ascending).
__device__ std::int64_t chain_of(const std::uint64_t* begin, const std::uint64_t* size, std::int64_t B,
                                 std::uint64_t i) {
  std::int64_t lo = 0, hi = B - 1;
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    if (begin[mid] <= i) lo = mid;
    else hi = mid - 1;
  }
  return i >= begin[lo] && i < begin[lo] + size[lo] ? lo : -1;
}

// ---- counting: segmented sort and run lengths ---------------------------------

__global__ void heads_kernel(const std::uint64_t* key, const std::uint64_t* begin, const std::uint64_t* size,
                             std::int64_t B, std::uint64_t span, std::uint64_t* head) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  head[i] = b >= 0 && (i == begin[b] || key[i] != key[i - 1]) ? 1 : 0;
}

// Unique keys of each region and their counts, at the region's start:
// run u of region b starts at sorted index i (head), so its count is the
// next head's index (or the region's end) minus i.
__global__ void runs_kernel(const std::uint64_t* key, const std::uint64_t* head, const std::uint64_t* rank,
                            const std::uint64_t* begin, const std::uint64_t* size, std::int64_t B, std::uint64_t span,
                            std::uint64_t* out_key, std::uint64_t* out_start) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span || !head[i]) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  const std::uint64_t u = begin[b] + (rank[i] - rank[begin[b]]);
  out_key[u] = key[i];
  out_start[u] = i;
}

__global__ void unique_size_kernel(const std::uint64_t* head, const std::uint64_t* rank, const std::uint64_t* begin,
                                   const std::uint64_t* size, std::int64_t B, std::uint64_t* unique) {
  const std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  const std::uint64_t lo = begin[b], hi = begin[b] + size[b];
  unique[b] = size[b] == 0 ? 0 : rank[hi - 1] + head[hi - 1] - rank[lo];
}

__global__ void run_counts_kernel(const std::uint64_t* start, const std::uint64_t* begin, const std::uint64_t* size,
                                  const std::uint64_t* unique, std::int64_t B, std::uint64_t span, double* count) {
  const std::uint64_t u = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (u >= span) return;
  const std::int64_t b = chain_of(begin, unique, B, u);
  if (b < 0) return;
  const std::uint64_t next = u + 1 < begin[b] + unique[b] ? start[u + 1] : begin[b] + size[b];
  count[u] = static_cast<double>(next - start[u]);
}

// Sorts each region [begin[b], begin[b] + size[b]) of keys_in into keys_out
// (values along when given; stable) on the low `bits` bits of the keys.
// Few regions: each by CUB's device-wide radix sort (a segmented sort gives
// a segment one thread block, which leaves a GPU idle when one chain holds
// 10^6 keys). Many: CUB's segmented radix sort, which counts items in int,
// in slices of chains whose span stays below 2^31, each slice's offsets
// relative to its first region.
constexpr std::size_t kFewRegions = 8;

template <class Value>
void segmented_sort(const std::uint64_t* keys_in, std::uint64_t* keys_out, const Value* values_in, Value* values_out,
                    const std::vector<std::uint64_t>& begin, const std::vector<std::uint64_t>& size, int bits,
                    DeviceBuffer<unsigned char>& temp) {
  const std::size_t B = begin.size();
  auto two_passes = [&](auto&& sort) {  // the first asks for the scratch size
    std::size_t bytes = 0;
    OURO_CUDA_CHECK(sort(nullptr, bytes));
    ensure(temp, bytes);
    bytes = temp.size();
    OURO_CUDA_CHECK(sort(temp.get(), bytes));
  };
  if (B <= kFewRegions) {
    for (std::size_t b = 0; b < B; ++b) {
      const std::uint64_t at = begin[b], items = size[b];
      if (items == 0) continue;
      two_passes([&](void* scratch, std::size_t& bytes) {
        return values_in ? cub::DeviceRadixSort::SortPairs(scratch, bytes, keys_in + at, keys_out + at, values_in + at,
                                                           values_out + at, items, 0, bits)
                         : cub::DeviceRadixSort::SortKeys(scratch, bytes, keys_in + at, keys_out + at, items, 0, bits);
      });
    }
    return;
  }
  constexpr std::uint64_t kMaxSpan = (std::uint64_t{1} << 31) - 1;
  for (std::size_t c0 = 0, c1; c0 < B; c0 = c1) {
    c1 = c0 + 1;
    while (c1 < B && begin[c1] + size[c1] - begin[c0] <= kMaxSpan) ++c1;
    if (begin[c1 - 1] + size[c1 - 1] - begin[c0] > kMaxSpan)
      throw std::runtime_error("the ngram cuda backend: one chain's keys (text or pool) exceed 2^31");
    std::vector<std::uint64_t> lo(c1 - c0), hi(c1 - c0);
    for (std::size_t b = c0; b < c1; ++b) lo[b - c0] = begin[b] - begin[c0], hi[b - c0] = lo[b - c0] + size[b];
    const DeviceBuffer<std::uint64_t> d_lo = upload(lo), d_hi = upload(hi);
    const int items = static_cast<int>(hi.back()), segments = static_cast<int>(c1 - c0);
    const std::uint64_t at = begin[c0];
    two_passes([&](void* scratch, std::size_t& bytes) {
      return values_in ? cub::DeviceSegmentedRadixSort::SortPairs(scratch, bytes, keys_in + at, keys_out + at,
                                                                  values_in + at, values_out + at, items, segments,
                                                                  d_lo.get(), d_hi.get(), 0, bits)
                       : cub::DeviceSegmentedRadixSort::SortKeys(scratch, bytes, keys_in + at, keys_out + at, items,
                                                                 segments, d_lo.get(), d_hi.get(), 0, bits);
    });
  }
}

// Counts: per chain region, sorted unique keys and their counts.
struct Counted {
  DeviceBuffer<std::uint64_t> key;
  DeviceBuffer<double> c;
  DeviceBuffer<std::uint64_t> begin, size;  // [B]
  std::vector<std::uint64_t> h_begin, h_size;
};

// The counting machinery of one backend: scratch reused every generation.
class Counter {
 public:
  // Sorts every region of `keys` (clobbered) and writes its unique keys and
  // counts to `out` (same regions, sizes = the number of types).
  void count(DeviceBuffer<std::uint64_t>& keys, std::uint64_t span, const std::vector<std::uint64_t>& begin,
             const std::vector<std::uint64_t>& size, int bits, Counted& out) {
    sort(keys, span, begin, size, bits);
    runs(sorted_.get(), span, d_begin_, d_size_, static_cast<std::int64_t>(begin.size()), out);
  }

  // Sorts every region of `keys` into sorted() (the same regions).
  void sort(DeviceBuffer<std::uint64_t>& keys, std::uint64_t span, const std::vector<std::uint64_t>& begin,
            const std::vector<std::uint64_t>& size, int bits) {
    ensure(sorted_, span);
    d_begin_ = upload(begin), d_size_ = upload(size);
    segmented_sort<double>(keys.get(), sorted_.get(), nullptr, nullptr, begin, size, bits, temp_);
  }

  // Unique keys and counts of regions already sorted.
  void runs(const std::uint64_t* sorted, std::uint64_t span, DeviceBuffer<std::uint64_t>& d_begin,
            DeviceBuffer<std::uint64_t>& d_size, std::int64_t B, Counted& out) {
    ensure(head_, span);
    ensure(rank_, span);
    ensure(start_, span);
    heads_kernel<<<blocks_for(span), kThreads>>>(sorted, d_begin.get(), d_size.get(), B, span, head_.get());
    exclusive_sum(head_, rank_, span, temp_);
    if (out.key.size() < span) out.key = DeviceBuffer<std::uint64_t>(span), out.c = DeviceBuffer<double>(span);
    runs_kernel<<<blocks_for(span), kThreads>>>(sorted, head_.get(), rank_.get(), d_begin.get(), d_size.get(), B, span,
                                                out.key.get(), start_.get());
    // (Kept in place when their size is right: a fitted level refers to them.)
    if (out.begin.size() != static_cast<std::size_t>(B)) out.begin = DeviceBuffer<std::uint64_t>(B);
    OURO_CUDA_CHECK(cudaMemcpy(out.begin.get(), d_begin.get(), B * sizeof(std::uint64_t), cudaMemcpyDeviceToDevice));
    if (out.size.size() != static_cast<std::size_t>(B)) out.size = DeviceBuffer<std::uint64_t>(B);
    unique_size_kernel<<<blocks_for(B), kThreads>>>(head_.get(), rank_.get(), d_begin.get(), d_size.get(), B,
                                                    out.size.get());
    run_counts_kernel<<<blocks_for(span), kThreads>>>(start_.get(), d_begin.get(), d_size.get(), out.size.get(), B,
                                                      span, out.c.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    out.h_begin = download(out.begin, B);
    out.h_size = download(out.size, B);
  }

  DeviceBuffer<std::uint64_t>& sorted() { return sorted_; }

 private:
  DeviceBuffer<std::uint64_t> sorted_, head_, rank_, start_, d_begin_, d_size_;
  DeviceBuffer<unsigned char> temp_;
};

// ---- the model's tables -------------------------------------------------------

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

__device__ NgramLevel level_view(const ModelArrays::Level& L, std::int64_t b, std::uint32_t V) {
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

__device__ NgramView chain_view(const ModelArrays& m, std::int64_t b) {
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

// Entries: words, counts, context heads.
__global__ void entries_kernel(const std::uint64_t* key, const double* c, const std::uint64_t* begin,
                               const std::uint64_t* size, std::int64_t B, std::uint64_t span, std::uint32_t V,
                               std::uint32_t* ent_w, double* ent_c, std::uint64_t* head) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  if (b < 0) {
    head[i] = 0;
    return;
  }
  ent_w[i] = static_cast<std::uint32_t>(key[i] % (V + 1));
  ent_c[i] = c[i];
  head[i] = i == begin[b] || key[i] / (V + 1) != key[i - 1] / (V + 1) ? 1 : 0;
}

__global__ void contexts_kernel(const std::uint64_t* key, const std::uint64_t* head, const std::uint64_t* rank,
                                const std::uint64_t* begin, const std::uint64_t* size, std::int64_t B,
                                std::uint64_t span, std::uint32_t V, std::uint64_t* ctx, std::uint64_t* ctx_start,
                                std::int32_t* ctx_of) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span || !head[i]) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  const std::uint64_t c = rank[i] - rank[begin[b]], v = key[i] / (V + 1);
  ctx[begin[b] + c] = v;
  ctx_start[begin[b] + b + c] = i - begin[b];
  if (ctx_of) ctx_of[static_cast<std::uint64_t>(b) * (V + 1) + v] = static_cast<std::int32_t>(c);
}

__global__ void context_ends_kernel(const std::uint64_t* head, const std::uint64_t* rank, const std::uint64_t* begin,
                                    const std::uint64_t* size, std::int64_t B, std::uint64_t* ctx_start,
                                    std::uint64_t* contexts) {
  const std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  const std::uint64_t lo = begin[b], n = size[b];
  const std::uint64_t C = n == 0 ? 0 : rank[lo + n - 1] + head[lo + n - 1] - rank[lo];
  contexts[b] = C;
  ctx_start[lo + b + C] = n;
}

// One thread per context (its head entry): build_context and build_alias.
__global__ void tables_kernel(const std::uint64_t* head, const std::uint64_t* rank, const std::uint64_t* begin,
                              const std::uint64_t* size, std::int64_t B, std::uint64_t span, double d,
                              const std::uint64_t* ctx_start, const std::uint32_t* ent_w, const double* ent_c,
                              double* ent_cum, double* ent_cumd, double* ctx_total, AliasBucket* alias,
                              std::uint32_t* alias_entry, std::uint64_t* units, std::uint32_t* stack) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span || !head[i]) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  const std::uint64_t c = rank[i] - rank[begin[b]];
  const std::uint64_t T = ctx_start[begin[b] + b + c + 1] - (i - begin[b]);
  const double total = build_context(ent_c + i, T, d, ent_cum + i, ent_cumd + i);
  ctx_total[begin[b] + c] = total;
  if (alias) build_alias(ent_w + i, ent_c + i, T, total, alias + i, alias_entry + i, units + i, stack + i);
}

// The lowest level's counts: order 1 the counts themselves; otherwise one
// per entry of the lowest context level (continuation counts; whole
// numbers, so the order of the atomic additions changes nothing).
__global__ void lowest_counts_kernel(const std::uint64_t* key, const double* c, const std::uint64_t* begin,
                                     const std::uint64_t* size, std::int64_t B, std::uint64_t span, std::uint32_t V,
                                     bool direct, double* uni) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  if (b < 0) return;
  const std::uint64_t w = key[i] % (V + 1);
  if (direct) uni[static_cast<std::uint64_t>(b) * V + w] = c[i];
  else atomicAdd(&uni[static_cast<std::uint64_t>(b) * V + w], 1.0);
}

__global__ void lowest_kernel(std::int64_t B, std::uint32_t V, double d, const double* uni, double* cum, double* cumd,
                              double* total, double* types) {
  const std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  const std::uint64_t o = static_cast<std::uint64_t>(b) * V;
  build_lowest(uni + o, V, d, cum + o, cumd + o, total[b], types[b]);
}

// Order 3's middle level keys: (v, w) of every trigram type (u v w).
__global__ void mid_keys_kernel(const std::uint64_t* key, const std::uint64_t* begin, const std::uint64_t* size,
                                std::int64_t B, std::uint64_t span, std::uint64_t V1, std::uint64_t* out) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span) return;
  out[i] = chain_of(begin, size, B, i) >= 0 ? key[i] % (V1 * V1) : 0;
}

// ---- sampling -------------------------------------------------------------------

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
// cpu's make_cut and draw, from the same numbers).
__device__ std::uint32_t choose(const DrawParams& p, const NgramView& m, std::int64_t b, std::uint64_t v,
                                const TokenUniforms& r) {
  if (!p.cut.w) return sample_next(m, v, r);
  std::uint64_t e = 0, lo, hi;
  if (p.order == 1) {
    lo = static_cast<std::uint64_t>(p.model.shared ? 0 : b) * p.V;
    hi = lo + p.cut.len[lo];
  } else {
    const std::int64_t ci = find_context(m.top, p.V, v);
    if (ci < 0) return 0u;  // (unreachable: an mle model emits only words seen followed)
    e = p.model.top.begin && !p.model.shared ? p.model.top.begin[b] : 0;
    lo = m.top.ctx_start[ci];
    hi = lo + p.cut.len[e + lo];
  }
  return p.cut.w[e + first_above(p.cut.cum + e, lo, hi, r.u * p.cut.cum[e + hi - 1])];
}

// Sentence j of chain b from its model: emit(context, token) for each token
// (the last a forced </s> when the sentence is cut at kMaxSentence, as on the
// cpu); returns its length.
template <class Emit>
__device__ std::uint32_t draw_sentence(const DrawParams& p, const NgramView& m, std::int64_t b, std::uint64_t j,
                                       Emit emit) {
  std::uint64_t v = start_context(p.order, p.V);
  for (std::uint32_t i = 0;; ++i) {
    if (i == kMaxSentence - 1) {
      emit(v, 0u);
      return kMaxSentence;
    }
    const TokenUniforms r = token_uniforms(p.seed, p.chain_begin + static_cast<std::uint32_t>(b), p.gen,
                                           rng::kStreamSyntheticDraw, j, i, p.third);
    const std::uint32_t w = choose(p, m, b, v, r);
    emit(v, w);
    if (w == 0) return i + 1;
    v = next_context(p.order, p.V, v, w);
  }
}

__global__ void lengths_kernel(DrawParams p, std::int64_t B, std::uint64_t R, const std::uint64_t* next_j,
                               const unsigned char* done, std::uint32_t* len) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * R) return;
  const std::int64_t b = static_cast<std::int64_t>(t / R);
  if (done[b]) return;
  const NgramView m = chain_view(p.model, b);
  len[t] = draw_sentence(p, m, b, next_j[b] + t % R, [](std::uint64_t, std::uint32_t) {});
}

// Per chain, the round's sentences in order while the sample holds fewer
// than `samples` tokens: each accepted one's offset (kNone: not taken).
__global__ void accept_kernel(std::int64_t B, std::uint64_t R, std::uint64_t samples, const std::uint32_t* len,
                              std::uint64_t* next_j, unsigned char* done, std::uint64_t* have, std::uint64_t* sentences,
                              double* cut, std::uint64_t* offset) {
  const std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  if (done[b]) {
    for (std::uint64_t r = 0; r < R; ++r) offset[static_cast<std::uint64_t>(b) * R + r] = kNone;
    return;
  }
  for (std::uint64_t r = 0; r < R; ++r) {
    const std::uint64_t t = static_cast<std::uint64_t>(b) * R + r;
    if (have[b] >= samples) {
      offset[t] = kNone;
      continue;
    }
    offset[t] = have[b];
    have[b] += len[t];
    sentences[b] += 1;
    cut[b] += len[t] == kMaxSentence ? 1.0 : 0.0;
  }
  next_j[b] += R;
  done[b] = have[b] >= samples ? 1 : 0;
}

__global__ void write_kernel(DrawParams p, std::int64_t B, std::uint64_t R, std::uint64_t stride,
                             const std::uint64_t* next_j, const std::uint64_t* offset, std::uint64_t* keys,
                             std::uint64_t* forced, std::uint64_t forced_cap, unsigned* forced_n) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * R || offset[t] == kNone) return;
  const std::int64_t b = static_cast<std::int64_t>(t / R);
  const NgramView m = chain_view(p.model, b);
  std::uint64_t* out = keys + static_cast<std::uint64_t>(b) * stride + offset[t];
  std::uint32_t i = 0;
  const std::uint64_t V1 = static_cast<std::uint64_t>(p.V) + 1;
  // (next_j was advanced past this round by accept_kernel.)
  const std::uint32_t n =
      draw_sentence(p, m, b, next_j[b] - R + t % R, [&](std::uint64_t v, std::uint32_t w) { out[i++] = v * V1 + w; });
  if (n == kMaxSentence) {
    const unsigned k = atomicAdd(&forced_n[b], 1u);
    if (k < forced_cap) forced[static_cast<std::uint64_t>(b) * forced_cap + k] = out[n - 1];
  }
}

// ---- the sampler's cut (mle, orders 2 and 3) ------------------------------------

// Context g of all chains (g from chain b's first context ctx_off[b]): the
// segment of its entries in the level's arrays.
__global__ void cut_segments_kernel(const std::uint64_t* ctx_off, const std::uint64_t* contexts, std::int64_t B,
                                    std::uint64_t total, const std::uint64_t* begin, const std::uint64_t* ctx_start,
                                    std::uint64_t* seg_begin, std::uint64_t* seg_end, std::uint64_t* seg_ctx) {
  const std::uint64_t g = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (g >= total) return;
  const std::int64_t b = chain_of(ctx_off, contexts, B, g);
  const std::uint64_t c = g - ctx_off[b], e = begin ? begin[b] : 0;
  const std::uint64_t* cs = ctx_start + e + static_cast<std::uint64_t>(b);
  seg_begin[g] = e + cs[c];
  seg_end[g] = e + cs[c + 1];
  seg_ctx[g] = e + c;  // its c(v) in ctx_total
}

// Sort keys: decreasing count, then increasing word (the cpu's stable sort
// by decreasing p = c / c(v) over words in increasing order; distinct counts
// below 2^53 give distinct p).
__global__ void cut_keys_kernel(const std::uint64_t* seg_begin, const std::uint64_t* seg_end, std::uint64_t total,
                                const std::uint32_t* ent_w, const double* ent_c, int wbits, std::uint64_t cmax,
                                std::uint64_t* keys) {
  const std::uint64_t g = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (g >= total) return;
  for (std::uint64_t i = seg_begin[g]; i < seg_end[g]; ++i)
    keys[i] = ((cmax - static_cast<std::uint64_t>(ent_c[i])) << wbits) | ent_w[i];
}

// Per context: sampler_cut over its words in sorted order, p = c / c(v)
// as ngram_prob gives it.
__global__ void cut_kernel(const std::uint64_t* seg_begin, const std::uint64_t* seg_end, const std::uint64_t* seg_ctx,
                           std::uint64_t total, const std::uint64_t* sorted, const double* ctx_total, int wbits,
                           std::uint64_t cmax, SamplerSettings sampler, std::uint32_t* cut_w, double* cut_cum,
                           std::uint32_t* cut_len) {
  const std::uint64_t g = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (g >= total) return;
  const std::uint64_t lo = seg_begin[g];
  const double C = ctx_total[seg_ctx[g]];
  const std::uint64_t kept =
      sampler_cut([&](std::uint64_t i) { return static_cast<double>(cmax - (sorted[lo + i] >> wbits)) / C; },
                  seg_end[g] - lo, sampler.top_k, sampler.temperature, sampler.top_p, cut_cum + lo);
  for (std::uint64_t i = 0; i < kept; ++i)
    cut_w[lo + i] = static_cast<std::uint32_t>(sorted[lo + i] & ((std::uint64_t{1} << wbits) - 1));
  cut_len[lo] = static_cast<std::uint32_t>(kept);
}

// An order-1 model's cut, per chain c (V slots at c V): sort keys that put
// the words in decreasing order of p (the complement of p's bits; positive
// doubles order as their bits do), words with p = 0 last (kNone).
__global__ void unigram_cut_keys_kernel(ModelArrays model, std::int64_t chains, std::uint64_t* key,
                                        std::uint32_t* word) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(chains) * model.V) return;
  const std::int64_t c = static_cast<std::int64_t>(t / model.V);
  const auto w = static_cast<std::uint32_t>(t % model.V);
  const double p = ngram_prob(chain_view(model, c), 0, w);
  key[t] = p > 0.0 ? ~bits_of(p) : kNone;
  word[t] = w;
}

// Then sampler_cut per chain over its words with p > 0, in sorted order.
__global__ void unigram_cut_kernel(std::int64_t chains, std::uint32_t V, const std::uint64_t* sorted,
                                   const std::uint32_t* word, SamplerSettings sampler, std::uint32_t* cut_w,
                                   double* cut_cum, std::uint32_t* cut_len) {
  const std::int64_t c = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (c >= chains) return;
  const std::uint64_t lo = static_cast<std::uint64_t>(c) * V;
  std::uint64_t n = 0;
  while (n < V && sorted[lo + n] != kNone) ++n;
  const std::uint64_t kept = sampler_cut([&](std::uint64_t i) { return double_of(~sorted[lo + i]); }, n, sampler.top_k,
                                         sampler.temperature, sampler.top_p, cut_cum + lo);
  for (std::uint64_t i = 0; i < kept; ++i) cut_w[lo + i] = word[lo + i];
  cut_len[lo] = static_cast<std::uint32_t>(kept);
}

// ---- composing the training text ------------------------------------------------

// A warp per chain: real sentences j = 0, 1, ... of the real-draw stream
// (32 at a time, one per lane) until the real part holds `target` tokens,
// their keys copied from the corpus's; then the first sentences of the
// sample until the text holds `n` tokens. size[b] = the text's tokens,
// real[b] = its real tokens.
__global__ void compose_kernel(std::int64_t B, std::uint32_t seed, std::uint32_t chain_begin, std::uint32_t real_gen,
                               std::uint64_t target, std::uint64_t n, const std::uint64_t* train_keys,
                               const std::uint64_t* train_start, std::uint64_t S, const std::uint64_t* sample,
                               const std::uint64_t* sample_len, std::uint64_t sample_stride, std::uint32_t V,
                               std::uint64_t stride, std::uint64_t* text, std::uint64_t* size, double* real) {
  const std::int64_t b = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const unsigned lane = threadIdx.x % 32;
  if (b >= B) return;
  std::uint64_t* out = text + static_cast<std::uint64_t>(b) * stride;
  const std::uint32_t chain = chain_begin + static_cast<std::uint32_t>(b);
  std::uint64_t have = 0;  // the same in every lane
  for (std::uint64_t j0 = 0; have < target; j0 += 32) {
    const rng::Block blk = rng::draw_block(seed, chain, real_gen, rng::kStreamRealDraw, j0 + lane);
    const auto pick = static_cast<std::uint64_t>(floor(rng::u01_open(blk.v[0], blk.v[1]) * static_cast<double>(S)));
    const std::uint64_t sj = pick < S ? pick : S - 1;
    const std::uint64_t len = train_start[sj + 1] - train_start[sj];
    // Lane l's sentence comes after those of lanes < l and is taken while
    // the tokens before it fall short of the target (as the cpu's loop
    // takes sentence j while the real part is short): lanes 0..top.
    std::uint64_t through = len;  // inclusive prefix sum over the lanes
    for (int o = 1; o < 32; o <<= 1) {
      const std::uint64_t x = __shfl_up_sync(0xffffffffu, through, o);
      if (lane >= static_cast<unsigned>(o)) through += x;
    }
    const bool take = have + through - len < target;
    const unsigned taken = __ballot_sync(0xffffffffu, take);  // lane 0 at least: have < target
    const int top = 31 - __clz(static_cast<int>(taken));
    for (int l = 0; l <= top; ++l) {
      const std::uint64_t s0 = __shfl_sync(0xffffffffu, train_start[sj], l);
      const std::uint64_t sl = __shfl_sync(0xffffffffu, len, l);
      const std::uint64_t at = have + __shfl_sync(0xffffffffu, through - len, l);
      for (std::uint64_t k = lane; k < sl; k += 32) out[at + k] = train_keys[s0 + k];
    }
    have += __shfl_sync(0xffffffffu, through, top);
  }
  const std::uint64_t real_tokens = have;
  // The synthetic part: the sample's sentences while the text is short of n
  // (a prefix ending at a sentence end: the first </s> at or after n - real).
  std::uint64_t take = 0;
  if (real_tokens < n) {
    const std::uint64_t* s = sample + static_cast<std::uint64_t>(b) * sample_stride;
    std::uint64_t p = n - real_tokens - 1;
    const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
    while (p + 1 < sample_len[b] && s[p] % V1 != 0) ++p;  // (the sample ends with </s>)
    take = p + 1;
    for (std::uint64_t k = lane; k < take; k += 32) out[real_tokens + k] = s[k];
  }
  if (lane == 0) size[b] = real_tokens + take, real[b] = static_cast<double>(real_tokens);
}

// ---- Zipf unigram truths: single tokens ---------------------------------------

// Token j of a Zipf truth's stream (one block per token): the rank whose
// cumulative probability first exceeds a uniform times the total.
__device__ std::uint32_t zipf_token(const double* truth_cum, std::uint32_t V, std::uint32_t seed, std::uint32_t chain,
                                    std::uint32_t gen, std::uint32_t stream, std::uint64_t j) {
  const rng::Block b = rng::draw_block(seed, chain, gen, stream, j);
  const double u = rng::u01_open(b.v[0], b.v[1]);
  return static_cast<std::uint32_t>(first_above(truth_cum, 0, V, u * truth_cum[V - 1]));
}

// The sample of n independent tokens, a thread per token: from the truth
// (generation 0's sample) or from each chain's model, token j with the
// uniforms of "sentence" j / kMaxSentence, position j % kMaxSentence (as the
// cpu backend draws one long sequence).
__global__ void zipf_sample_kernel(DrawParams p, const double* truth_cum, std::int64_t B, std::uint64_t n,
                                   std::uint64_t stride, std::uint64_t* keys) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * n) return;
  const std::int64_t b = static_cast<std::int64_t>(t / n);
  const std::uint64_t j = t % n;
  const std::uint32_t chain = p.chain_begin + static_cast<std::uint32_t>(b);
  std::uint32_t w;
  if (truth_cum) {
    w = zipf_token(truth_cum, p.V, p.seed, chain, p.gen, rng::kStreamSyntheticDraw, j);
  } else {
    const NgramView m = chain_view(p.model, b);
    w = choose(p, m, b, 0,
               token_uniforms(p.seed, chain, p.gen, rng::kStreamSyntheticDraw, j / kMaxSentence,
                              static_cast<std::uint32_t>(j % kMaxSentence), p.third));
  }
  keys[static_cast<std::uint64_t>(b) * stride + j] = w;  // (order 1: the key is the token)
}

// The training text of n tokens: real tokens 0..target-1 from the truth's
// real-draw stream, then the sample's first n - target. (A Zipf truth's
// sample and text are both n tokens per chain: one stride for both.)
__global__ void zipf_compose_kernel(const double* truth_cum, std::uint32_t V, std::uint32_t seed,
                                    std::uint32_t chain_begin, std::uint32_t real_gen, std::int64_t B, std::uint64_t n,
                                    std::uint64_t target, const std::uint64_t* sample, std::uint64_t stride,
                                    std::uint64_t* text) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * n) return;
  const std::uint64_t b = t / n, i = t % n;
  text[b * stride + i] = i < target ? zipf_token(truth_cum, V, seed, chain_begin + static_cast<std::uint32_t>(b),
                                                 real_gen, rng::kStreamRealDraw, i)
                                    : sample[b * stride + i - target];
}

// ---- Zipfian Markov-chain truths (order 2): one sequence per chain -------------

// The sample of n tokens as one Markov sequence per chain, a thread per
// chain (each token depends on the last): from the truth (token = the
// context's permutation of a Zipf rank) or from the chain's model, where an
// mle model that reaches a context it never saw followed starts a new
// sequence at <s> (as the cpu's draw does). Keys carry each token's context.
__global__ void markov_sample_kernel(DrawParams p, const double* truth_cum, const std::uint32_t* truth_perm, bool mle,
                                     std::int64_t B, std::uint64_t n, std::uint64_t stride, std::uint64_t* keys) {
  const std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  const std::uint32_t chain = p.chain_begin + static_cast<std::uint32_t>(b), V = p.V;
  const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
  const NgramView m = truth_cum ? NgramView{} : chain_view(p.model, b);
  std::uint64_t* out = keys + static_cast<std::uint64_t>(b) * stride;
  std::uint32_t ctx = V;
  for (std::uint64_t j = 0; j < n; ++j) {
    if (!truth_cum && mle && find_context(m.top, V, ctx) < 0) ctx = V;
    const std::uint32_t v = ctx;
    if (truth_cum)
      ctx = truth_perm[static_cast<std::uint64_t>(ctx) * V +
                       zipf_token(truth_cum, V, p.seed, chain, p.gen, rng::kStreamSyntheticDraw, j)];
    else
      ctx = choose(p, m, b, ctx,
                   token_uniforms(p.seed, chain, p.gen, rng::kStreamSyntheticDraw, j / kMaxSentence,
                                  static_cast<std::uint32_t>(j % kMaxSentence), p.third));
    out[j] = v * V1 + ctx;
  }
}

// The training text: `target` real tokens as one sequence from <s> (the
// truth's real-draw stream), then the sample's first n - target keys (its
// sequences in order, the last one cut), a thread per chain (one stride,
// n, for the sample and the text).
__global__ void markov_compose_kernel(const double* truth_cum, const std::uint32_t* truth_perm, std::uint32_t V,
                                      std::uint32_t seed, std::uint32_t chain_begin, std::uint32_t real_gen,
                                      std::int64_t B, std::uint64_t n, std::uint64_t target,
                                      const std::uint64_t* sample, std::uint64_t stride, std::uint64_t* text) {
  const std::int64_t b = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (b >= B) return;
  const std::uint32_t chain = chain_begin + static_cast<std::uint32_t>(b);
  const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
  std::uint64_t* out = text + static_cast<std::uint64_t>(b) * stride;
  std::uint32_t ctx = V;
  for (std::uint64_t j = 0; j < target; ++j) {
    const std::uint32_t v = ctx;
    ctx = truth_perm[static_cast<std::uint64_t>(ctx) * V +
                     zipf_token(truth_cum, V, seed, chain, real_gen, rng::kStreamRealDraw, j)];
    out[j] = v * V1 + ctx;
  }
  for (std::uint64_t j = target; j < n; ++j) out[j] = sample[static_cast<std::uint64_t>(b) * stride + j - target];
}

// ---- accumulate: merging the pool -----------------------------------------------

// Copies the pool's counts and the new ones of each chain, one after the
// other, into the chain's region of the merge buffer (pool first: the sort
// is stable, so equal keys add as pool + new, as on the cpu).
__global__ void gather_kernel(const std::uint64_t* pk, const double* pc, const std::uint64_t* pb,
                              const std::uint64_t* ps, const std::uint64_t* nk, const double* nc,
                              const std::uint64_t* nb, const std::uint64_t* ns, const std::uint64_t* mb, std::int64_t B,
                              std::uint64_t* mk, double* mc) {
  const std::int64_t b = blockIdx.y * static_cast<std::int64_t>(gridDim.z) + blockIdx.z;
  if (b >= B) return;
  const std::uint64_t np = ps ? ps[b] : 0;
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < np + ns[b];
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    if (i < np) mk[mb[b] + i] = pk[pb[b] + i], mc[mb[b] + i] = pc[pb[b] + i];
    else mk[mb[b] + i] = nk[nb[b] + i - np], mc[mb[b] + i] = nc[nb[b] + i - np];
  }
}

// Sorted (key, count) pairs of each region -> unique keys with summed counts.
__global__ void merge_runs_kernel(const std::uint64_t* key, const double* c, const std::uint64_t* head,
                                  const std::uint64_t* rank, const std::uint64_t* begin, const std::uint64_t* size,
                                  std::int64_t B, std::uint64_t span, std::uint64_t* out_key, double* out_c) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span || !head[i]) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  const std::uint64_t u = begin[b] + (rank[i] - rank[begin[b]]);
  double sum = c[i];
  for (std::uint64_t k = i + 1; k < begin[b] + size[b] && key[k] == key[i]; ++k) sum += c[k];
  out_key[u] = key[i];
  out_c[u] = sum;
}

// ---- accumulate_subsample: the pool of sentences --------------------------------
//
// Every generation's new text is kept, compact (every chain's tokens one
// after the other, in a buffer of its own), and each chain has a list of its
// pool's sentences in order of (generation, position): the list index g is
// the subsample stream's word for that sentence. The training text is the
// pool's sentences in increasing order of their uniforms (ties by g, as the
// cpu's stable sort takes them) while it holds fewer than `samples` tokens.

// One sentence of a chain's pool.
struct PoolRef {
  std::uint64_t at;    // its first token in its generation's buffer
  std::uint32_t len;   // its tokens
  std::uint32_t k;     // its generation - 1 (the pool text it belongs to)
  std::uint32_t real;  // 1: a real sentence (it starts in the text's real part)
  std::uint32_t unused;
};

// Where the sentences of a new text start: every token of a Zipf truth's
// text (`each_token`), else the first token and every token after an end.
__global__ void sentence_heads_kernel(const std::uint64_t* text, const std::uint64_t* size, std::uint64_t stride,
                                      std::int64_t B, std::uint64_t V1, bool each_token, std::uint64_t* head) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * stride) return;
  const std::uint64_t b = t / stride, i = t % stride;
  head[t] = i < size[b] && (each_token || i == 0 || text[t - 1] % V1 == 0) ? 1 : 0;
}

// The new text of every chain copied, compact, to its generation's buffer
// (chain b's at off[b]).
__global__ void pool_tokens_kernel(const std::uint64_t* text, const std::uint64_t* size, std::uint64_t stride,
                                   std::int64_t B, const std::uint64_t* off, std::uint64_t* out) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * stride) return;
  const std::uint64_t b = t / stride, i = t % stride;
  if (i < size[b]) out[off[b] + i] = text[t];
}

// The pool's old list of chain b moved to its new place (old regions
// [old_begin[b], + old_size[b]) to new_begin[b]).
__global__ void pool_move_kernel(const PoolRef* old, const std::uint64_t* old_begin, const std::uint64_t* old_size,
                                 std::int64_t B, std::uint64_t span, const std::uint64_t* new_begin, PoolRef* out) {
  const std::uint64_t u = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (u >= span) return;
  const std::int64_t b = chain_of(old_begin, old_size, B, u);
  if (b >= 0) out[new_begin[b] + (u - old_begin[b])] = old[u];
}

// The new text's sentences appended to each chain's list (after its
// old_size[b] old ones): sentence j starts at a head, its rank j among the
// chain's heads, and ends with its end marker (a Zipf truth's: one token).
__global__ void pool_append_kernel(const std::uint64_t* text, const std::uint64_t* size, const double* real,
                                   std::uint64_t stride, std::int64_t B, std::uint64_t V1, bool each_token,
                                   const std::uint64_t* head, const std::uint64_t* rank, const std::uint64_t* off,
                                   std::uint32_t k, const std::uint64_t* new_begin, const std::uint64_t* old_size,
                                   PoolRef* out) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * stride || !head[t]) return;
  const std::uint64_t b = t / stride, i = t % stride;
  std::uint64_t end = i + 1;
  if (!each_token)
    while (end < size[b] && text[b * stride + end - 1] % V1 != 0) ++end;
  const std::uint64_t j = rank[t] - rank[b * stride];
  out[new_begin[b] + old_size[b] + j] =
      PoolRef{off[b] + i, static_cast<std::uint32_t>(end - i), k, static_cast<double>(i) < real[b] ? 1u : 0u, 0u};
}

// Sort keys: the bits of sentence g's subsample uniform (positive doubles
// order as their bits do), with g along.
__global__ void subsample_keys_kernel(const std::uint64_t* begin, const std::uint64_t* size, std::int64_t B,
                                      std::uint64_t span, std::uint32_t seed, std::uint32_t chain_begin,
                                      std::uint32_t gen, std::uint64_t* key, std::uint64_t* g_of) {
  const std::uint64_t u = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (u >= span) return;
  const std::int64_t b = chain_of(begin, size, B, u);
  if (b < 0) return;
  const std::uint64_t g = u - begin[b];
  key[u] = bits_of(subsample_uniform(seed, chain_begin + static_cast<std::uint32_t>(b), gen, g));
  g_of[u] = g;
}

// The tokens of each sentence in sorted order (0 outside every region).
__global__ void sorted_lengths_kernel(const PoolRef* refs, const std::uint64_t* begin, const std::uint64_t* size,
                                      std::int64_t B, std::uint64_t span, const std::uint64_t* g_of,
                                      std::uint64_t* len) {
  const std::uint64_t u = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (u >= span) return;
  const std::int64_t b = chain_of(begin, size, B, u);
  len[u] = b >= 0 ? refs[begin[b] + g_of[u]].len : 0;
}

// The training text: sentence u of the sorted order is taken while the
// tokens before it (before[u] - before[first of its chain]) fall short of
// n, and copied there; its tokens, synthetic tokens and token-weighted age
// are added to the chain's sums (whole numbers below 2^53, so the order of
// the additions changes no bit).
__global__ void subsample_take_kernel(const PoolRef* refs, const std::uint64_t* begin, const std::uint64_t* size,
                                      std::int64_t B, std::uint64_t span, const std::uint64_t* g_of,
                                      const std::uint64_t* before, std::uint64_t n,
                                      const std::uint64_t* const* gen_tokens, std::uint32_t t, std::uint64_t stride,
                                      std::uint64_t* text, double* sums) {
  const std::uint64_t u = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (u >= span) return;
  const std::int64_t b = chain_of(begin, size, B, u);
  if (b < 0) return;
  const std::uint64_t at = before[u] - before[begin[b]];
  if (at >= n) return;
  const PoolRef r = refs[begin[b] + g_of[u]];
  const std::uint64_t* from = gen_tokens[r.k] + r.at;
  std::uint64_t* to = text + static_cast<std::uint64_t>(b) * stride + at;
  for (std::uint32_t i = 0; i < r.len; ++i) to[i] = from[i];
  double* sum = sums + 3 * static_cast<std::uint64_t>(b);
  atomicAdd(&sum[0], static_cast<double>(r.len));
  if (!r.real) atomicAdd(&sum[1], static_cast<double>(r.len));
  atomicAdd(&sum[2], static_cast<double>(t - 1 - r.k) * r.len);
}

// ---- metrics --------------------------------------------------------------------

struct MeasureParams {
  ModelArrays model;
  std::uint32_t V;
  int order;
  bool smoothed;
  bool zipf;    // a Zipf truth: exact kl and tv, <unk> is an ordinary word
  bool truth0;  // generation 0 of a Zipf truth: the "model" is the truth itself
  // held-out types (order 1: every word, its count possibly 0)
  const std::uint64_t* held_key;
  const double* held_c;
  std::uint64_t held_types;
  const unsigned char *word, *tail;
  const double* truth_p;
  const double* truth_cond;  // a Markov-chain truth: p0(w | v) [(V + 1) V], else null
  double *row_kl, *row_tv;   // a Markov-chain truth: markov_rows_kernel's rows [B V]
  // the sample's types per chain (order 1: dense counts [B V])
  const std::uint64_t *sample_key, *sample_begin, *sample_size;
  const double* sample_c;
  const double* sample_dense;
  const std::uint64_t* forced;
  const unsigned* forced_n;
  std::uint64_t forced_cap;
  const double* distinct;           // [B] distinct bigrams (orders 1 and 3)
  const double* pairs;              // [B]
  const double *cut, *share, *age;  // [B]
  double* out;
  std::int64_t B;
};

// The tail set as tail_mass counts it: without a corpus's <unk> (id 1),
// which the truth never says.
__device__ bool in_tail_mass(const MeasureParams& p, std::uint32_t w) { return p.tail[w] && (p.zipf || w != 1); }

// The model chain b is measured on (at generation 0 of a Zipf truth, a
// stand-in whose uni is unused: the truth answers for it).
__device__ NgramView measured_view(const MeasureParams& p, std::int64_t b) {
  const NgramLevel none{0, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
  return p.truth0 ? NgramView{1, Smoothing::kMle, 0.0, 0.0, p.V, nullptr, nullptr, nullptr, 0.0, 0.0, none, none}
                  : chain_view(p.model, b);
}
__device__ double truth_prob(const MeasureParams& p, std::uint64_t v, std::uint32_t w) {
  return p.truth_cond ? p.truth_cond[v * p.V + w] : p.truth_p[w];
}
__device__ double measured_prob(const MeasureParams& p, const NgramView& m, std::uint64_t v, std::uint32_t w) {
  return p.truth0 ? truth_prob(p, v, w) : ngram_prob(m, v, w);
}

// A Markov-chain truth's kl and tv rows (markov_row), a thread per (chain,
// context): V^2 probabilities per chain, which one thread per chain would
// take far too long over.
__global__ void markov_rows_kernel(MeasureParams p, double* row_kl, double* row_tv) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(p.B) * p.V) return;
  const std::int64_t b = static_cast<std::int64_t>(t / p.V);
  const NgramView m = measured_view(p, b);
  markov_row([&](std::uint64_t v, std::uint32_t w) { return truth_prob(p, v, w); },
             [&](std::uint64_t v, std::uint32_t w) { return measured_prob(p, m, v, w); }, p.V,
             static_cast<std::uint32_t>(t % p.V), row_kl[t], row_tv[t]);
}

__global__ void __launch_bounds__(kNgramChunks) measure_kernel(MeasureParams p) {
  const std::int64_t b = blockIdx.x;
  const int ch = threadIdx.x;
  __shared__ HeldoutSums held[kNgramChunks];
  __shared__ SampleSums own[kNgramChunks];
  const std::uint32_t V = p.V;
  const NgramView m = measured_view(p, b);
  auto prob = [&](std::uint64_t v, std::uint32_t w) { return measured_prob(p, m, v, w); };
  const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
  HeldoutSums h = HeldoutSums::zero();
  for (std::uint64_t e = chunk_first(p.held_types, ch); e < chunk_first(p.held_types, ch + 1); ++e) {
    const double n = p.held_c[e];
    if (n == 0.0) continue;  // (order 1's words with no count)
    const std::uint32_t w = static_cast<std::uint32_t>(p.held_key[e] % V1);
    h.add(prob(p.held_key[e] / V1, w), n, p.tail[w] != 0);
  }
  held[ch] = h;
  SampleSums s = SampleSums::zero();
  const std::uint64_t lo = p.sample_begin[b];
  const std::uint64_t types = p.order == 1 ? V : p.sample_size[b];
  const unsigned nf = min(p.forced_n[b], static_cast<unsigned>(p.forced_cap));
  for (std::uint64_t e = chunk_first(types, ch); e < chunk_first(types, ch + 1); ++e) {
    std::uint64_t key;
    double n;
    if (p.order == 1) key = e, n = p.sample_dense[static_cast<std::uint64_t>(b) * V + e];
    else key = p.sample_key[lo + e], n = p.sample_c[lo + e];
    if (n == 0.0) continue;
    const std::uint32_t w = static_cast<std::uint32_t>(key % V1);
    if (w == 0 && !p.zipf)
      for (unsigned k = 0; k < nf; ++k)
        n -= p.forced[static_cast<std::uint64_t>(b) * p.forced_cap + k] == key ? 1.0 : 0.0;
    if (n == 0.0) continue;
    s.add(prob(key / V1, w), n, in_tail_mass(p, w));
  }
  own[ch] = s;
  __syncthreads();
  if (ch != 0) return;
  const std::int64_t stride = p.B;
  double* out = p.out + b;
  HeldoutSums ht = HeldoutSums::zero();
  SampleSums st = SampleSums::zero();
  for (int k = 0; k < kNgramChunks; ++k) ht.add(held[k]), st.add(own[k]);
  finish_heldout(ht, out, stride);
  double survival, missing;
  vocab_alive(m, p.word, p.truth_p, p.smoothed || p.truth0, survival, missing);
  out[kNgSupport * stride] = p.truth0 ? (p.truth_cond ? static_cast<double>(V) * V : V) : model_support(m);
  out[kNgVocabSurvival * stride] = survival;
  out[kNgMissingMass * stride] = missing;
  auto in_tail = [&](std::uint32_t w) { return in_tail_mass(p, w); };
  double gini = NAN, kl = NAN, tv = NAN, tail_mass = NAN;
  if (p.order == 1)
    unigram_compare([&](std::uint32_t w) { return prob(0, w); }, V, p.truth_p, in_tail, p.zipf, gini, kl, tv,
                    tail_mass);
  else tail_mass = (st.tail / st.n) / truth_tail_mass(V, p.truth_p, in_tail);
  if (p.truth_cond)  // (pi = truth_p)
    markov_combine(p.row_kl + static_cast<std::uint64_t>(b) * V, p.row_tv + static_cast<std::uint64_t>(b) * V, V,
                   p.truth_p, kl, tv);
  double distinct = 0.0, pairs = 0.0;
  if (p.order == 2) {
    for (std::uint64_t e = 0; e < p.sample_size[b]; ++e)
      if (p.sample_key[lo + e] / V1 != V) distinct += 1.0, pairs += p.sample_c[lo + e];
  } else {
    distinct = p.distinct[b], pairs = p.pairs[b];
  }
  out[kNgEntropy * stride] = st.bits / st.n;
  out[kNgGiniSimpson * stride] = gini;
  out[kNgKl * stride] = kl;
  out[kNgTv * stride] = tv;
  out[kNgKlInfChains * stride] = p.zipf ? (isinf(kl) ? 1.0 : 0.0) : NAN;
  out[kNgTailMass * stride] = tail_mass;
  out[kNgDistinct2 * stride] = pairs > 0.0 ? distinct / pairs : NAN;
  out[kNgCutSentences * stride] = p.cut[b];
  out[kNgDrawsPerKept * stride] = 1.0;
  out[kNgSyntheticShare * stride] = p.share[b];
  out[kNgDataAge * stride] = p.age[b];
}

// Bigram keys of the sample inside sentences (v w with v not <s>: the
// previous key's word, when it is not an end), kNone otherwise.
// (A Zipf truth's sample is one sequence: every consecutive pair counts.)
__global__ void bigram_keys_kernel(const std::uint64_t* sample, const std::uint64_t* len, std::uint64_t stride,
                                   std::int64_t B, std::uint64_t V1, bool one_sequence, std::uint64_t* out) {
  const std::uint64_t t = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (t >= static_cast<std::uint64_t>(B) * stride) return;
  const std::uint64_t b = t / stride, i = t % stride;
  if (i >= len[b]) return;
  const std::uint64_t prev = i > 0 ? sample[t - 1] % V1 : 0;
  out[t] = i > 0 && (one_sequence || prev != 0) ? prev * V1 + sample[t] % V1 : kNone;
}

__global__ void distinct_kernel(const std::uint64_t* sorted, const std::uint64_t* len, std::uint64_t stride,
                                std::int64_t B, double* distinct, double* pairs) {
  const std::int64_t b = blockIdx.x;
  const std::uint64_t* s = sorted + static_cast<std::uint64_t>(b) * stride;
  unsigned long long d = 0, n = 0;
  for (std::uint64_t i = threadIdx.x; i < len[b]; i += blockDim.x) {
    if (s[i] == kNone) continue;
    n += 1;
    d += i == 0 || s[i] != s[i - 1] ? 1 : 0;
  }
  __shared__ unsigned long long sd, sn;
  if (threadIdx.x == 0) sd = 0, sn = 0;
  __syncthreads();
  atomicAdd(&sd, d);
  atomicAdd(&sn, n);
  __syncthreads();
  if (threadIdx.x == 0) distinct[b] = static_cast<double>(sd), pairs[b] = static_cast<double>(sn);
}

__global__ void dense_kernel(const std::uint64_t* key, const double* c, const std::uint64_t* begin,
                             const std::uint64_t* size, std::int64_t B, std::uint64_t span, std::uint32_t V,
                             double* dense) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= span) return;
  const std::int64_t b = chain_of(begin, size, B, i);
  if (b >= 0) dense[static_cast<std::uint64_t>(b) * V + key[i] % (static_cast<std::uint64_t>(V) + 1)] = c[i];
}

}  // namespace

// ---- the backend ---------------------------------------------------------------

namespace {

class NgramCuda final : public NgramBackend {
 public:
  explicit NgramCuda(const NgramBatchSpec& spec) : s_(spec), B_(spec.batch) {
    if (B_ < 1) throw std::invalid_argument("the ngram cuda backend: a batch needs at least one chain");
    const std::string no = ngram_cuda_unsupported(spec);
    if (!no.empty())
      throw std::invalid_argument("the ngram cuda backend does not support " + no + " yet; use --backend cpu");
    const std::uint32_t V = s_.V;
    const std::uint64_t V1 = static_cast<std::uint64_t>(V) + 1;
    // The corpus's training split as keys (every token with its context).
    std::vector<std::uint64_t> tk(s_.train.tokens.size());
    std::uint64_t longest = 0;
    for (std::size_t sj = 0; sj < s_.train.sentences(); ++sj) {
      std::uint64_t v = start_context(s_.order, V);
      longest = std::max<std::uint64_t>(longest, s_.train.start[sj + 1] - s_.train.start[sj]);
      for (std::uint64_t i = s_.train.start[sj]; i < s_.train.start[sj + 1]; ++i) {
        tk[i] = v * V1 + s_.train.tokens[i];
        v = next_context(s_.order, V, v, s_.train.tokens[i]);
      }
    }
    train_keys_ = upload(tk);
    train_start_ = upload(s_.train.start);
    // A text of n tokens in whole sentences overshoots by less than its
    // longest sentence; the training text has two parts. A Zipf truth's
    // texts are n single tokens.
    const auto n = static_cast<std::uint64_t>(s_.samples);
    sample_stride_ = s_.zipf ? n : n + std::max<std::uint64_t>(kMaxSentence, longest);
    text_stride_ = s_.zipf ? n : n + 2 * std::max<std::uint64_t>(kMaxSentence, longest);
    if (s_.zipf) truth_cum_ = upload(s_.truth_cum);
    if (s_.zipf && s_.order == 2) truth_cond_ = upload(s_.truth_cond), truth_perm_ = upload(s_.truth_perm);
    const double most = static_cast<double>(text_stride_) * (s_.regime == Regime::kAccumulate ? s_.generations : 1);
    if (!alias_fits(most, V1))
      throw std::invalid_argument("the ngram cuda backend: counts too large for exact alias tables");
    // The sampler's cut sorts (count, word) in 64-bit keys.
    const double largest = std::max(most, static_cast<double>(s_.train.tokens.size()));
    cut_count_bits_ = static_cast<int>(std::ceil(std::log2(largest + 2.0)));
    if (!s_.sampler.plain() && s_.order >= 2 && cut_count_bits_ + key_bits(V, 1) > 64)
      throw std::invalid_argument("the ngram cuda backend: counts too large for the sampler's cut");
    forced_cap_ = n / kMaxSentence + 2;
    bits_ = key_bits(V, s_.order);
    // Held-out types, scored by every chain (order 1: every word).
    std::vector<std::uint64_t> hk;
    std::vector<double> hc;
    NgramFit::count(s_, s_.heldout, hk, hc);
    if (s_.order == 1) {
      hk.resize(V);
      hc.assign(V, 0.0);
      for (std::uint32_t w : s_.heldout.tokens) hc[w] += 1.0;
      std::iota(hk.begin(), hk.end(), std::uint64_t{0});
    }
    held_key_ = upload(hk);
    held_c_ = upload(hc);
    word_ = upload(s_.word);
    tail_ = upload(s_.tail);
    truth_p_ = upload(s_.truth_p);
    // Per chain state.
    sample_ = DeviceBuffer<std::uint64_t>(static_cast<std::uint64_t>(B_) * sample_stride_);
    sample_len_ = DeviceBuffer<std::uint64_t>(B_);
    forced_ = DeviceBuffer<std::uint64_t>(static_cast<std::uint64_t>(B_) * forced_cap_);
    forced_n_ = DeviceBuffer<unsigned>(B_);
    cut_ = DeviceBuffer<double>(B_);
    share_ = DeviceBuffer<double>(B_);
    age_ = DeviceBuffer<double>(B_);
    distinct_ = DeviceBuffer<double>(B_);
    pairs_ = DeviceBuffer<double>(B_);
    metrics_ = DeviceBuffer<double>(static_cast<std::uint64_t>(kNumNgramMetrics) * B_);
    uni_ = DeviceBuffer<double>(static_cast<std::uint64_t>(B_) * V);
    uni_cum_ = DeviceBuffer<double>(static_cast<std::uint64_t>(B_) * V);
    uni_cumd_ = DeviceBuffer<double>(static_cast<std::uint64_t>(B_) * V);
    uni_total_ = DeviceBuffer<double>(B_);
    uni_types_ = DeviceBuffer<double>(B_);
    if (s_.order == 1) sample_dense_ = DeviceBuffer<double>(static_cast<std::uint64_t>(B_) * V);
    // Generation 0 of a corpus: the model fitted to the whole training split
    // (built on the host by the cpu backend's code, shared by every chain).
    // Of a Zipf truth: the truth itself.
    if (!s_.zipf) {
      model0_fit_ = std::make_unique<NgramFit>(s_, s_.train);
      upload_model0(model0_fit_->view());
      if (!s_.sampler.plain()) build_cuts(model0_arrays_, model0_entries_, 1, sampler_cut0_);
    }
  }

  void start(double* h_metrics) override {
    OURO_CUDA_CHECK(cudaMemset(share_.get(), 0, B_ * sizeof(double)));
    OURO_CUDA_CHECK(cudaMemset(age_.get(), 0, B_ * sizeof(double)));
    draw(model0_arrays_, 1, s_.zipf, sampler_cut0_.view());
    measure(model0_arrays_, h_metrics, s_.zipf);
  }

  void advance(int t, double* h_metrics) override {
    const std::uint64_t n = static_cast<std::uint64_t>(s_.samples);
    const auto real_target = static_cast<std::uint64_t>(t == 1 ? s_.samples : s_.real_count);
    // Generation t's new text: real sentences (tokens) and the first of the
    // previous model's sample, composed in text_; or, without real data,
    // the whole sample (drawn until n tokens), already counted.
    const std::uint64_t* new_text = sample_.get();
    std::uint64_t stride = sample_stride_;
    DeviceBuffer<std::uint64_t> size(B_);
    DeviceBuffer<double> real(B_);
    OURO_CUDA_CHECK(cudaMemcpy(size.get(), sample_len_.get(), B_ * sizeof(std::uint64_t), cudaMemcpyDeviceToDevice));
    if (real_target > 0) {
      ensure(text_, static_cast<std::uint64_t>(B_) * text_stride_);
      new_text = text_.get(), stride = text_stride_;
    }
    if (real_target > 0 && s_.zipf) {
      if (s_.order == 1)
        zipf_compose_kernel<<<blocks_for(B_ * n), kThreads>>>(
            truth_cum_.get(), s_.V, s_.seed, s_.chain_begin, real_draw_generation(s_.real_source, t), B_, n,
            std::min(real_target, n), sample_.get(), text_stride_, text_.get());
      else
        markov_compose_kernel<<<serial_blocks(B_), kSerialThreads>>>(
            truth_cum_.get(), truth_perm_.get(), s_.V, s_.seed, s_.chain_begin, real_draw_generation(s_.real_source, t),
            B_, n, std::min(real_target, n), sample_.get(), text_stride_, text_.get());
      OURO_CUDA_CHECK(cudaGetLastError());
      const std::vector<std::uint64_t> h_size(B_, n);
      const std::vector<double> h_real(B_, static_cast<double>(std::min(real_target, n)));
      OURO_CUDA_CHECK(cudaMemcpy(size.get(), h_size.data(), B_ * sizeof(std::uint64_t), cudaMemcpyHostToDevice));
      OURO_CUDA_CHECK(cudaMemcpy(real.get(), h_real.data(), B_ * sizeof(double), cudaMemcpyHostToDevice));
    } else if (real_target > 0) {
      const unsigned blocks = static_cast<unsigned>((B_ * 32 + kThreads - 1) / kThreads);
      compose_kernel<<<blocks, kThreads>>>(B_, s_.seed, s_.chain_begin, real_draw_generation(s_.real_source, t),
                                           real_target, n, train_keys_.get(), train_start_.get(), s_.train.sentences(),
                                           sample_.get(), sample_len_.get(), sample_stride_, s_.V, text_stride_,
                                           text_.get(), size.get(), real.get());
      OURO_CUDA_CHECK(cudaGetLastError());
    } else {
      OURO_CUDA_CHECK(cudaMemset(real.get(), 0, B_ * sizeof(double)));
    }
    const std::vector<std::uint64_t> tokens = download(size, B_);
    const std::vector<double> h_real = download(real, B_);
    std::vector<double> share(B_), age(B_, 0.0);
    const Counted* train = &sample_counts_;
    if (s_.regime == Regime::kAccumulateSubsample) {
      subsample(t, new_text, stride, size, real, tokens, share, age);
      train = &text_counts_;
    } else {
      if (real_target > 0) {
        std::vector<std::uint64_t> begin(B_);
        for (std::int64_t b = 0; b < B_; ++b) begin[b] = static_cast<std::uint64_t>(b) * text_stride_;
        counter_.count(text_, static_cast<std::uint64_t>(B_) * text_stride_, begin, tokens, bits_, text_counts_);
        train = &text_counts_;
      }
      // The composition (synthetic_share, data_age) on the host: B numbers.
      std::vector<double> total(B_);
      for (std::int64_t b = 0; b < B_; ++b) total[b] = static_cast<double>(tokens[b]);
      if (s_.regime == Regime::kAccumulate) {
        if (chains_.empty()) chains_.resize(B_);
        for (std::int64_t b = 0; b < B_; ++b) {
          Pool& c = chains_[b];
          c.tokens_of.push_back(total[b]);
          c.tokens = c.tokens + total[b];
          c.synthetic = c.synthetic + (total[b] - h_real[b]);
          double weighted = 0.0;
          for (int k = 1; k <= t; ++k) weighted += (t - k) * c.tokens_of[k - 1];
          share[b] = c.synthetic / c.tokens;
          age[b] = weighted / c.tokens;
        }
        merge_pool(*train);
        train = &pool_;
      } else {
        for (std::int64_t b = 0; b < B_; ++b) share[b] = (total[b] - h_real[b]) / total[b];
      }
    }
    OURO_CUDA_CHECK(cudaMemcpy(share_.get(), share.data(), B_ * sizeof(double), cudaMemcpyHostToDevice));
    OURO_CUDA_CHECK(cudaMemcpy(age_.get(), age.data(), B_ * sizeof(double), cudaMemcpyHostToDevice));
    fit(*train);
    if (!s_.sampler.plain()) build_cuts(model_arrays_, top_span_, B_, sampler_cut_);
    draw(model_arrays_, t + 1, false, sampler_cut_.view());
    measure(model_arrays_, h_metrics, false);
  }

  std::vector<WorkerRange> workers() const override {
    return {WorkerRange{cuda_worker_name(), s_.chain_begin, static_cast<std::int64_t>(s_.chain_begin) + B_ - 1, B_}};
  }

  // What the next generation reads: the sample (its keys; its counts are
  // recounted on load), the pool of counts and the composition.
  void state(StateArchive& ar) override {
    std::vector<std::uint64_t> len = download(sample_len_, B_), keys;
    if (!ar.loading())
      for (std::int64_t b = 0; b < B_; ++b) {
        const std::size_t at = keys.size();
        keys.resize(at + len[b]);
        OURO_CUDA_CHECK(cudaMemcpy(keys.data() + at, sample_.get() + static_cast<std::uint64_t>(b) * sample_stride_,
                                   len[b] * sizeof(std::uint64_t), cudaMemcpyDeviceToHost));
      }
    ar.vec("sample_len", len);
    ar.vec("sample_keys", keys);
    std::vector<std::uint64_t> pk, ps;
    std::vector<double> pc;
    if (!ar.loading() && !pool_.h_size.empty()) {
      ps = pool_.h_size;
      for (std::int64_t b = 0; b < B_; ++b) {
        const std::size_t at = pk.size();
        pk.resize(at + ps[b]);
        pc.resize(at + ps[b]);
        OURO_CUDA_CHECK(
            cudaMemcpy(pk.data() + at, pool_.key.get() + pool_.h_begin[b], ps[b] * 8, cudaMemcpyDeviceToHost));
        OURO_CUDA_CHECK(
            cudaMemcpy(pc.data() + at, pool_.c.get() + pool_.h_begin[b], ps[b] * 8, cudaMemcpyDeviceToHost));
      }
    }
    ar.vec("pool_size", ps);
    ar.vec("pool_key", pk);
    ar.vec("pool_c", pc);
    ar.each("chains", chains_, [&](StateArchive& a, Pool& c) {
      a.value("pool_tokens", c.tokens);
      a.value("pool_synthetic", c.synthetic);
      a.vec("tokens_of", c.tokens_of);
    });
    // accumulate_subsample: every generation's texts and each chain's list.
    std::uint64_t gens = pool_gen_.size();
    ar.count("subsample_texts", gens);
    if (ar.loading()) pool_gen_.clear(), pool_gen_size_.clear();
    for (std::uint64_t k = 0; k < gens; ++k) {
      std::vector<std::uint64_t> text;
      if (!ar.loading()) text = download(pool_gen_[k], pool_gen_size_[k]);
      ar.vec("subsample_text", text);
      if (ar.loading()) pool_gen_size_.push_back(text.size()), pool_gen_.push_back(upload(text));
    }
    std::vector<std::uint64_t> list_size = ref_size_;
    std::vector<PoolRef> list;
    if (!ar.loading() && !ref_size_.empty()) list = download(pool_refs_, ref_begin_.back() + ref_size_.back());
    ar.vec("subsample_list_size", list_size);
    ar.vec("subsample_list", list);
    if (!ar.loading()) return;
    const auto sum = [](const std::vector<std::uint64_t>& v) {
      return std::accumulate(v.begin(), v.end(), std::uint64_t{0});
    };
    if (len.size() != static_cast<std::size_t>(B_) || (!ps.empty() && ps.size() != static_cast<std::size_t>(B_)) ||
        (!chains_.empty() && chains_.size() != static_cast<std::size_t>(B_)))
      throw std::runtime_error("checkpoint: the n-gram sample or pool has another batch");
    if (keys.size() != sum(len) || pk.size() != sum(ps) || pc.size() != pk.size())
      throw std::runtime_error("checkpoint: the n-gram sample or pool arrays disagree in size");
    if ((!list_size.empty() && list_size.size() != static_cast<std::size_t>(B_)) || list.size() != sum(list_size))
      throw std::runtime_error("checkpoint: the n-gram subsample pool's list disagrees in size");
    // (A sentence taken at n - 1 tokens must fit the training text's room,
    // text_stride_.)
    for (const PoolRef& r : list)
      if (r.k >= pool_gen_size_.size() || r.at + r.len > pool_gen_size_[r.k] ||
          r.len > text_stride_ - static_cast<std::uint64_t>(s_.samples) + 1)
        throw std::runtime_error("checkpoint: the n-gram subsample pool's list points outside its texts");
    if (!list_size.empty()) {
      std::vector<std::uint64_t> begin(B_, 0);
      for (std::int64_t b = 1; b < B_; ++b) begin[b] = begin[b - 1] + list_size[b - 1];
      set_pool_list(upload(list), begin, list_size);
    }
    std::uint64_t at = 0;
    for (std::int64_t b = 0; b < B_; ++b) {
      if (len[b] > sample_stride_) throw std::runtime_error("checkpoint: an n-gram sample is longer than its room");
      OURO_CUDA_CHECK(cudaMemcpy(sample_.get() + static_cast<std::uint64_t>(b) * sample_stride_, keys.data() + at,
                                 len[b] * sizeof(std::uint64_t), cudaMemcpyHostToDevice));
      at += len[b];
    }
    OURO_CUDA_CHECK(cudaMemcpy(sample_len_.get(), len.data(), B_ * sizeof(std::uint64_t), cudaMemcpyHostToDevice));
    count_sample();
    if (!ps.empty()) {
      pool_.h_size = ps;
      pool_.h_begin.assign(B_, 0);
      for (std::int64_t b = 1; b < B_; ++b) pool_.h_begin[b] = pool_.h_begin[b - 1] + ps[b - 1];
      pool_.key = upload(pk);
      pool_.c = upload(pc);
      pool_.begin = upload(pool_.h_begin);
      pool_.size = upload(pool_.h_size);
    }
  }

 private:
  struct Pool {
    double tokens = 0.0, synthetic = 0.0;
    std::vector<double> tokens_of;
  };

  void upload_model0(const NgramView& h) {
    const std::uint32_t V = s_.V;
    m0_uni_ = upload(std::vector<double>(h.uni, h.uni + V));
    m0_uni_cum_ = upload(std::vector<double>(h.uni_cum, h.uni_cum + V));
    m0_uni_cumd_ = upload(std::vector<double>(h.uni_cumd, h.uni_cumd + V));
    m0_scalars_ = upload(std::vector<double>{h.uni_total, h.uni_types});
    model0_arrays_ = ModelArrays{s_.order,
                                 s_.smoothing,
                                 s_.k,
                                 s_.discount,
                                 V,
                                 m0_uni_.get(),
                                 m0_uni_cum_.get(),
                                 m0_uni_cumd_.get(),
                                 m0_scalars_.get(),
                                 m0_scalars_.get() + 1,
                                 {},
                                 {},
                                 true};
    if (s_.order >= 2) model0_arrays_.top = upload_level(h.top, m0_top_);
    if (s_.order >= 2) model0_entries_ = h.top.ctx_start[h.top.contexts];
    if (s_.order == 3 && s_.smoothing == Smoothing::kKneserNey) model0_arrays_.mid = upload_level(h.mid, m0_mid_);
  }

  struct HostLevel {
    DeviceBuffer<std::uint64_t> ctx, ctx_start, contexts;
    DeviceBuffer<double> ctx_total, ent_c, ent_cum, ent_cumd;
    DeviceBuffer<std::uint32_t> ent_w, alias_entry;
    DeviceBuffer<AliasBucket> alias;
    DeviceBuffer<std::int32_t> ctx_of;
  };

  ModelArrays::Level upload_level(const NgramLevel& L, HostLevel& d) {
    const std::uint64_t C = L.contexts, E = C ? L.ctx_start[C] : 0;
    d.ctx = upload(std::vector<std::uint64_t>(L.ctx, L.ctx + C));
    d.ctx_start = upload(std::vector<std::uint64_t>(L.ctx_start, L.ctx_start + C + 1));
    d.contexts = upload(std::vector<std::uint64_t>{C});
    d.ctx_total = upload(std::vector<double>(L.ctx_total, L.ctx_total + C));
    d.ent_w = upload(std::vector<std::uint32_t>(L.ent_w, L.ent_w + E));
    d.ent_c = upload(std::vector<double>(L.ent_c, L.ent_c + E));
    d.ent_cum = upload(std::vector<double>(L.ent_cum, L.ent_cum + E));
    d.ent_cumd = upload(std::vector<double>(L.ent_cumd, L.ent_cumd + E));
    if (L.alias) {
      d.alias = upload(std::vector<AliasBucket>(L.alias, L.alias + E));
      d.alias_entry = upload(std::vector<std::uint32_t>(L.alias_entry, L.alias_entry + E));
    }
    if (L.ctx_of) d.ctx_of = upload(std::vector<std::int32_t>(L.ctx_of, L.ctx_of + s_.V + 1));
    return ModelArrays::Level{d.ctx.get(),
                              d.ctx_start.get(),
                              d.contexts.get(),
                              nullptr,
                              d.ctx_total.get(),
                              d.ent_c.get(),
                              d.ent_cum.get(),
                              d.ent_cumd.get(),
                              d.ent_w.get(),
                              L.alias ? d.alias_entry.get() : nullptr,
                              L.alias ? d.alias.get() : nullptr,
                              L.ctx_of ? d.ctx_of.get() : nullptr};
  }

  // The sampler's cut of every context of the model (of `chains` chains;
  // span: the entries of its top level).
  struct Cuts {
    DeviceBuffer<std::uint64_t> keys, sorted;
    DeviceBuffer<std::uint32_t> w, len, words, sorted_words;
    DeviceBuffer<double> cum;
    CutView view() const { return CutView{w.get(), cum.get(), len.get()}; }
  };

  void build_cuts(const ModelArrays& model, std::uint64_t span, std::int64_t chains, Cuts& out) {
    if (s_.order == 1) build_unigram_cuts(model, chains, out);
    else build_level_cuts(model.top, span, chains, out);
  }

  // Order 1: every word of each chain's one context, sorted by decreasing
  // probability (a segment of V per chain), then a thread per chain.
  void build_unigram_cuts(const ModelArrays& model, std::int64_t chains, Cuts& out) {
    const std::uint64_t span = static_cast<std::uint64_t>(chains) * s_.V;
    ensure(out.keys, span), ensure(out.sorted, span), ensure(out.words, span), ensure(out.sorted_words, span);
    ensure(out.w, span), ensure(out.len, span), ensure(out.cum, span);
    unigram_cut_keys_kernel<<<blocks_for(span), kThreads>>>(model, chains, out.keys.get(), out.words.get());
    std::vector<std::uint64_t> begin(chains), size(chains, s_.V);
    for (std::int64_t c = 0; c < chains; ++c) begin[c] = static_cast<std::uint64_t>(c) * s_.V;
    segmented_sort(out.keys.get(), out.sorted.get(), out.words.get(), out.sorted_words.get(), begin, size, 64, temp_);
    unigram_cut_kernel<<<serial_blocks(chains), kSerialThreads>>>(
        chains, s_.V, out.sorted.get(), out.sorted_words.get(), s_.sampler, out.w.get(), out.cum.get(), out.len.get());
    OURO_CUDA_CHECK(cudaGetLastError());
  }

  // Orders 2 and 3 (mle): each context's entries sorted by decreasing count
  // (CUB's segmented sort, a segment per context), then a thread per context.
  void build_level_cuts(const ModelArrays::Level& L, std::uint64_t span, std::int64_t chains, Cuts& out) {
    std::vector<std::uint64_t> contexts(chains), off(chains);
    OURO_CUDA_CHECK(cudaMemcpy(contexts.data(), L.contexts, chains * sizeof(std::uint64_t), cudaMemcpyDeviceToHost));
    std::uint64_t total = 0;
    for (std::int64_t b = 0; b < chains; ++b) off[b] = total, total += contexts[b];
    const DeviceBuffer<std::uint64_t> d_off = upload(off), d_contexts = upload(contexts);
    DeviceBuffer<std::uint64_t> seg_begin(total), seg_end(total), seg_ctx(total);
    ensure(out.keys, span), ensure(out.sorted, span), ensure(out.w, span), ensure(out.len, span), ensure(out.cum, span);
    const std::uint64_t cmax = (std::uint64_t{1} << cut_count_bits_) - 1;
    const int wbits = 64 - cut_count_bits_;
    cut_segments_kernel<<<blocks_for(total), kThreads>>>(d_off.get(), d_contexts.get(), chains, total, L.begin,
                                                         L.ctx_start, seg_begin.get(), seg_end.get(), seg_ctx.get());
    cut_keys_kernel<<<blocks_for(total), kThreads>>>(seg_begin.get(), seg_end.get(), total, L.ent_w, L.ent_c, wbits,
                                                     cmax, out.keys.get());
    for (int pass = 0; pass < 2; ++pass) {  // the first asks for the scratch size
      std::size_t bytes = pass ? temp_.size() : 0;
      OURO_CUDA_CHECK(cub::DeviceSegmentedSort::SortKeys(
          pass ? temp_.get() : nullptr, bytes, out.keys.get(), out.sorted.get(), static_cast<std::int64_t>(span),
          static_cast<std::int64_t>(total), seg_begin.get(), seg_end.get()));
      if (!pass) ensure(temp_, bytes);
    }
    cut_kernel<<<blocks_for(total), kThreads>>>(seg_begin.get(), seg_end.get(), seg_ctx.get(), total, out.sorted.get(),
                                                L.ctx_total, wbits, cmax, s_.sampler, out.w.get(), out.cum.get(),
                                                out.len.get());
    OURO_CUDA_CHECK(cudaGetLastError());
  }

  // One level's tables from counted regions.
  ModelArrays::Level build_level(const Counted& k, LevelArrays& L, bool dense, bool with_alias) {
    const std::uint64_t span = k.key.size();
    ensure(L.ctx, span), ensure(L.ctx_start, span + B_), ensure(L.contexts, B_), ensure(L.ctx_total, span),
        ensure(L.ent_c, span);
    ensure(L.ent_cum, span), ensure(L.ent_cumd, span), ensure(L.ent_w, span);
    if (with_alias) ensure(L.alias, span), ensure(L.alias_entry, span), ensure(L.units, span), ensure(L.stack, span);
    if (dense) {
      ensure(L.ctx_of, static_cast<std::uint64_t>(B_) * (s_.V + 1));
      OURO_CUDA_CHECK(
          cudaMemset(L.ctx_of.get(), 0xFF, static_cast<std::uint64_t>(B_) * (s_.V + 1) * sizeof(std::int32_t)));
    }
    ensure(head_, span), ensure(rank_, span), ensure(L.begin, B_);
    OURO_CUDA_CHECK(cudaMemcpy(L.begin.get(), k.begin.get(), B_ * sizeof(std::uint64_t), cudaMemcpyDeviceToDevice));
    const std::uint32_t V = s_.V;
    entries_kernel<<<blocks_for(span), kThreads>>>(k.key.get(), k.c.get(), k.begin.get(), k.size.get(), B_, span, V,
                                                   L.ent_w.get(), L.ent_c.get(), head_.get());
    exclusive_sum(head_, rank_, span, temp_);
    contexts_kernel<<<blocks_for(span), kThreads>>>(k.key.get(), head_.get(), rank_.get(), k.begin.get(), k.size.get(),
                                                    B_, span, V, L.ctx.get(), L.ctx_start.get(),
                                                    dense ? L.ctx_of.get() : nullptr);
    context_ends_kernel<<<blocks_for(B_), kThreads>>>(head_.get(), rank_.get(), k.begin.get(), k.size.get(), B_,
                                                      L.ctx_start.get(), L.contexts.get());
    tables_kernel<<<blocks_for(span), kThreads>>>(
        head_.get(), rank_.get(), k.begin.get(), k.size.get(), B_, span, s_.discount, L.ctx_start.get(), L.ent_w.get(),
        L.ent_c.get(), L.ent_cum.get(), L.ent_cumd.get(), L.ctx_total.get(), with_alias ? L.alias.get() : nullptr,
        L.alias_entry.get(), L.units.get(), L.stack.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    return ModelArrays::Level{L.ctx.get(),
                              L.ctx_start.get(),
                              L.contexts.get(),
                              L.begin.get(),
                              L.ctx_total.get(),
                              L.ent_c.get(),
                              L.ent_cum.get(),
                              L.ent_cumd.get(),
                              L.ent_w.get(),
                              with_alias ? L.alias_entry.get() : nullptr,
                              with_alias ? L.alias.get() : nullptr,
                              dense ? L.ctx_of.get() : nullptr};
  }

  // Model t of every chain from its training counts.
  void fit(const Counted& k) {
    const std::uint32_t V = s_.V;
    const std::uint64_t span = k.key.size();
    model_arrays_ = ModelArrays{
        s_.order,         s_.smoothing,     s_.k, s_.discount, V,    uni_.get(), uni_cum_.get(), uni_cumd_.get(),
        uni_total_.get(), uni_types_.get(), {},   {},          false};
    OURO_CUDA_CHECK(cudaMemset(uni_.get(), 0, static_cast<std::uint64_t>(B_) * V * sizeof(double)));
    const Counted* lowest = &k;
    if (s_.order >= 2) {
      model_arrays_.top = build_level(k, top_, s_.order == 2, s_.smoothing != Smoothing::kKneserNey);
      top_span_ = span;
      if (s_.order == 3 && s_.smoothing == Smoothing::kKneserNey) {
        ensure(mid_keys_, span);
        mid_keys_kernel<<<blocks_for(span), kThreads>>>(k.key.get(), k.begin.get(), k.size.get(), B_, span,
                                                        static_cast<std::uint64_t>(V) + 1, mid_keys_.get());
        counter_.count(mid_keys_, span, k.h_begin, k.h_size, key_bits(V, 2), mid_counts_);
        model_arrays_.mid = build_level(mid_counts_, mid_, true, false);
        lowest = &mid_counts_;
      }
    }
    const std::uint64_t lspan = lowest->key.size();
    lowest_counts_kernel<<<blocks_for(lspan), kThreads>>>(lowest->key.get(), lowest->c.get(), lowest->begin.get(),
                                                          lowest->size.get(), B_, lspan, V, s_.order == 1, uni_.get());
    lowest_kernel<<<blocks_for(B_), kThreads>>>(B_, V, s_.discount, uni_.get(), uni_cum_.get(), uni_cumd_.get(),
                                                uni_total_.get(), uni_types_.get());
    OURO_CUDA_CHECK(cudaGetLastError());
  }

  // The sample of every chain's model (generation `gen`'s counters), then
  // its counts.
  void draw(const ModelArrays& model, std::uint32_t gen, bool truth, const CutView& cut) {
    const DrawParams p{model, s_.seed, s_.chain_begin, gen, s_.V, s_.order, s_.smoothing == Smoothing::kKneserNey, cut};
    const auto n = static_cast<std::uint64_t>(s_.samples);
    if (s_.zipf) {  // n tokens, from the truth or the model
      if (s_.order == 1)
        zipf_sample_kernel<<<blocks_for(B_ * n), kThreads>>>(p, truth ? truth_cum_.get() : nullptr, B_, n,
                                                             sample_stride_, sample_.get());
      else
        markov_sample_kernel<<<serial_blocks(B_), kSerialThreads>>>(p, truth ? truth_cum_.get() : nullptr,
                                                                    truth_perm_.get(), s_.smoothing == Smoothing::kMle,
                                                                    B_, n, sample_stride_, sample_.get());
      OURO_CUDA_CHECK(cudaGetLastError());
      const std::vector<std::uint64_t> len(B_, n);
      OURO_CUDA_CHECK(cudaMemcpy(sample_len_.get(), len.data(), B_ * sizeof(std::uint64_t), cudaMemcpyHostToDevice));
      OURO_CUDA_CHECK(cudaMemset(cut_.get(), 0, B_ * sizeof(double)));
      OURO_CUDA_CHECK(cudaMemset(forced_n_.get(), 0, B_ * sizeof(unsigned)));
      count_sample();
      return;
    }
    DeviceBuffer<std::uint64_t> next_j(B_), sentences(B_);
    DeviceBuffer<unsigned char> done(B_);
    OURO_CUDA_CHECK(cudaMemset(next_j.get(), 0, B_ * 8));
    OURO_CUDA_CHECK(cudaMemset(sentences.get(), 0, B_ * 8));
    OURO_CUDA_CHECK(cudaMemset(done.get(), 0, B_));
    OURO_CUDA_CHECK(cudaMemset(sample_len_.get(), 0, B_ * 8));
    OURO_CUDA_CHECK(cudaMemset(cut_.get(), 0, B_ * sizeof(double)));
    OURO_CUDA_CHECK(cudaMemset(forced_n_.get(), 0, B_ * sizeof(unsigned)));
    // Rounds of R sentences per chain, R about what the chain still needs
    // by the mean length so far (16 tokens before any is known).
    const std::uint64_t max_round =
        std::max<std::uint64_t>(16, (std::uint64_t{1} << 26) / static_cast<std::uint64_t>(B_));
    std::vector<std::uint64_t> have(B_, 0), count(B_, 0);
    for (;;) {
      std::uint64_t short_by = 0, tokens = 0, sents = 0;
      for (std::int64_t b = 0; b < B_; ++b) {
        short_by = std::max<std::uint64_t>(short_by, have[b] < n ? n - have[b] : 0);
        tokens += have[b], sents += count[b];
      }
      if (short_by == 0) break;
      const double mean = sents ? static_cast<double>(tokens) / sents : 16.0;
      const std::uint64_t R =
          std::clamp<std::uint64_t>(static_cast<std::uint64_t>(std::ceil(short_by / mean)) + 16, 16, max_round);
      ensure(round_len_, B_ * R);
      ensure(round_at_, B_ * R);
      lengths_kernel<<<blocks_for(B_ * R), kThreads>>>(p, B_, R, next_j.get(), done.get(), round_len_.get());
      accept_kernel<<<blocks_for(B_), kThreads>>>(B_, R, n, round_len_.get(), next_j.get(), done.get(),
                                                  sample_len_.get(), sentences.get(), cut_.get(), round_at_.get());
      write_kernel<<<blocks_for(B_ * R), kThreads>>>(p, B_, R, sample_stride_, next_j.get(), round_at_.get(),
                                                     sample_.get(), forced_.get(), forced_cap_, forced_n_.get());
      OURO_CUDA_CHECK(cudaGetLastError());
      have = download(sample_len_, B_);
      count = download(sentences, B_);
    }
    count_sample();
  }

  // The sample's counts (and, for orders 1 and 3, its distinct bigrams).
  void count_sample() {
    const std::uint64_t span = static_cast<std::uint64_t>(B_) * sample_stride_;
    std::vector<std::uint64_t> begin(B_);
    for (std::int64_t b = 0; b < B_; ++b) begin[b] = static_cast<std::uint64_t>(b) * sample_stride_;
    const std::vector<std::uint64_t> len = download(sample_len_, B_);
    counter_.count(sample_, span, begin, len, bits_, sample_counts_);
    if (s_.order == 1) {
      OURO_CUDA_CHECK(cudaMemset(sample_dense_.get(), 0, static_cast<std::uint64_t>(B_) * s_.V * sizeof(double)));
      dense_kernel<<<blocks_for(span), kThreads>>>(sample_counts_.key.get(), sample_counts_.c.get(),
                                                   sample_counts_.begin.get(), sample_counts_.size.get(), B_, span,
                                                   s_.V, sample_dense_.get());
    }
    if (s_.order != 2) {
      ensure(scratch_, span);
      bigram_keys_kernel<<<blocks_for(span), kThreads>>>(sample_.get(), sample_len_.get(), sample_stride_, B_,
                                                         static_cast<std::uint64_t>(s_.V) + 1, s_.zipf, scratch_.get());
      // (On the low key_bits(V, 2) bits kNone is all ones, above every
      // bigram key, so it still sorts last.)
      counter_.sort(scratch_, span, begin, len, key_bits(s_.V, 2));
      distinct_kernel<<<static_cast<unsigned>(B_), kThreads>>>(counter_.sorted().get(), sample_len_.get(),
                                                               sample_stride_, B_, distinct_.get(), pairs_.get());
    }
    OURO_CUDA_CHECK(cudaGetLastError());
  }

  // accumulate_subsample: generation t's new text (chain b's `tokens[b]` at
  // b * stride of new_text, its first real[b] tokens real) joins the pool;
  // the training text is drawn from the pool into text_ and counted into
  // text_counts_; share and age are its composition, chain by chain.
  void subsample(int t, const std::uint64_t* new_text, std::uint64_t stride, const DeviceBuffer<std::uint64_t>& size,
                 const DeviceBuffer<double>& real, const std::vector<std::uint64_t>& tokens, std::vector<double>& share,
                 std::vector<double>& age) {
    const std::uint64_t V1 = static_cast<std::uint64_t>(s_.V) + 1, span = static_cast<std::uint64_t>(B_) * stride;
    const bool each_token = s_.zipf;  // (an order-1 Zipf truth; config refuses a Markov chain here)
    // The new text's sentences: where each starts, and how many per chain.
    ensure(head_, span), ensure(rank_, span);
    sentence_heads_kernel<<<blocks_for(span), kThreads>>>(new_text, size.get(), stride, B_, V1, each_token,
                                                          head_.get());
    exclusive_sum(head_, rank_, span, temp_);
    std::vector<std::uint64_t> text_begin(B_);
    for (std::int64_t b = 0; b < B_; ++b) text_begin[b] = static_cast<std::uint64_t>(b) * stride;
    const DeviceBuffer<std::uint64_t> d_text_begin = upload(text_begin);
    DeviceBuffer<std::uint64_t> count(B_);
    unique_size_kernel<<<blocks_for(B_), kThreads>>>(head_.get(), rank_.get(), d_text_begin.get(), size.get(), B_,
                                                     count.get());
    const std::vector<std::uint64_t> sentences = download(count, B_);
    // Its tokens, compact, in the generation's own buffer.
    std::vector<std::uint64_t> off(B_);
    std::uint64_t total = 0;
    for (std::int64_t b = 0; b < B_; ++b) off[b] = total, total += tokens[b];
    const DeviceBuffer<std::uint64_t> d_off = upload(off);
    pool_gen_.emplace_back(total);
    pool_gen_size_.push_back(total);
    pool_tokens_kernel<<<blocks_for(span), kThreads>>>(new_text, size.get(), stride, B_, d_off.get(),
                                                       pool_gen_.back().get());
    // Each chain's list of sentences: the old one moved, the new ones after it.
    std::vector<std::uint64_t> old(B_, 0), begin(B_), list_size(B_);
    if (!ref_size_.empty()) old = ref_size_;
    std::uint64_t refs = 0;
    for (std::int64_t b = 0; b < B_; ++b) begin[b] = refs, list_size[b] = old[b] + sentences[b], refs += list_size[b];
    DeviceBuffer<PoolRef> list(refs);
    const DeviceBuffer<std::uint64_t> d_begin = upload(begin), d_old = upload(old);
    if (!ref_size_.empty()) {
      const std::uint64_t old_span = ref_begin_.back() + ref_size_.back();
      pool_move_kernel<<<blocks_for(old_span), kThreads>>>(pool_refs_.get(), d_ref_begin_.get(), d_ref_size_.get(), B_,
                                                           old_span, d_begin.get(), list.get());
    }
    pool_append_kernel<<<blocks_for(span), kThreads>>>(
        new_text, size.get(), real.get(), stride, B_, V1, each_token, head_.get(), rank_.get(), d_off.get(),
        static_cast<std::uint32_t>(t - 1), d_begin.get(), d_old.get(), list.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    set_pool_list(std::move(list), begin, list_size);
    draw_training_text(t, refs, share, age);
  }

  // The pool's list of sentences (regions begin[b], size[b]).
  void set_pool_list(DeviceBuffer<PoolRef> list, const std::vector<std::uint64_t>& begin,
                     const std::vector<std::uint64_t>& size) {
    pool_refs_ = std::move(list);
    ref_begin_ = begin, ref_size_ = size;
    d_ref_begin_ = upload(begin), d_ref_size_ = upload(size);
  }

  // The training text of generation t from the pool's `refs` sentences:
  // sorted by their uniforms, taken while short of n tokens, copied to
  // text_ and counted.
  void draw_training_text(int t, std::uint64_t refs, std::vector<double>& share, std::vector<double>& age) {
    ensure(sub_key_, refs), ensure(sub_sorted_, refs), ensure(sub_g_, refs), ensure(sub_g_sorted_, refs);
    subsample_keys_kernel<<<blocks_for(refs), kThreads>>>(d_ref_begin_.get(), d_ref_size_.get(), B_, refs, s_.seed,
                                                          s_.chain_begin, static_cast<std::uint32_t>(t), sub_key_.get(),
                                                          sub_g_.get());
    segmented_sort(sub_key_.get(), sub_sorted_.get(), sub_g_.get(), sub_g_sorted_.get(), ref_begin_, ref_size_, 64,
                   temp_);
    ensure(sub_len_, refs), ensure(sub_before_, refs);
    sorted_lengths_kernel<<<blocks_for(refs), kThreads>>>(pool_refs_.get(), d_ref_begin_.get(), d_ref_size_.get(), B_,
                                                          refs, sub_g_sorted_.get(), sub_len_.get());
    exclusive_sum(sub_len_, sub_before_, refs, temp_);
    std::vector<const std::uint64_t*> gens;
    for (const auto& g : pool_gen_) gens.push_back(g.get());
    const DeviceBuffer<const std::uint64_t*> d_gens = upload(gens);
    ensure(text_, static_cast<std::uint64_t>(B_) * text_stride_);
    DeviceBuffer<double> sums(3 * static_cast<std::uint64_t>(B_));
    OURO_CUDA_CHECK(cudaMemset(sums.get(), 0, sums.size() * sizeof(double)));
    subsample_take_kernel<<<blocks_for(refs), kThreads>>>(
        pool_refs_.get(), d_ref_begin_.get(), d_ref_size_.get(), B_, refs, sub_g_sorted_.get(), sub_before_.get(),
        static_cast<std::uint64_t>(s_.samples), d_gens.get(), static_cast<std::uint32_t>(t), text_stride_, text_.get(),
        sums.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    const std::vector<double> h = download(sums, sums.size());
    std::vector<std::uint64_t> begin(B_), train(B_);
    for (std::int64_t b = 0; b < B_; ++b) {
      begin[b] = static_cast<std::uint64_t>(b) * text_stride_;
      train[b] = static_cast<std::uint64_t>(h[3 * b]);
      share[b] = h[3 * b + 1] / h[3 * b];
      age[b] = h[3 * b + 2] / h[3 * b];
    }
    counter_.count(text_, static_cast<std::uint64_t>(B_) * text_stride_, begin, train, bits_, text_counts_);
  }

  // accumulate: pool += this generation's counts.
  void merge_pool(const Counted& add) {
    std::vector<std::uint64_t> mb(B_), ms(B_);
    std::uint64_t span = 0;
    for (std::int64_t b = 0; b < B_; ++b) {
      mb[b] = span;
      ms[b] = (pool_.h_size.empty() ? 0 : pool_.h_size[b]) + add.h_size[b];
      span += ms[b];
    }
    DeviceBuffer<std::uint64_t> d_mb = upload(mb), d_ms = upload(ms), mk(span), mk2(span);
    DeviceBuffer<double> mc(span), mc2(span);
    const dim3 grid(std::max<unsigned>(1, static_cast<unsigned>(std::min<std::uint64_t>(64, span / B_ / kThreads + 1))),
                    static_cast<unsigned>((B_ + 1023) / 1024), static_cast<unsigned>(std::min<std::int64_t>(B_, 1024)));
    const bool have_pool = !pool_.h_size.empty();
    gather_kernel<<<grid, kThreads>>>(have_pool ? pool_.key.get() : nullptr, have_pool ? pool_.c.get() : nullptr,
                                      have_pool ? pool_.begin.get() : nullptr, have_pool ? pool_.size.get() : nullptr,
                                      add.key.get(), add.c.get(), add.begin.get(), add.size.get(), d_mb.get(), B_,
                                      mk.get(), mc.get());
    segmented_sort(mk.get(), mk2.get(), mc.get(), mc2.get(), mb, ms, bits_, temp_);
    ensure(head_, span);
    ensure(rank_, span);
    heads_kernel<<<blocks_for(span), kThreads>>>(mk2.get(), d_mb.get(), d_ms.get(), B_, span, head_.get());
    exclusive_sum(head_, rank_, span, temp_);
    merge_runs_kernel<<<blocks_for(span), kThreads>>>(mk2.get(), mc2.get(), head_.get(), rank_.get(), d_mb.get(),
                                                      d_ms.get(), B_, span, mk.get(), mc.get());
    DeviceBuffer<std::uint64_t> unique(B_);
    unique_size_kernel<<<blocks_for(B_), kThreads>>>(head_.get(), rank_.get(), d_mb.get(), d_ms.get(), B_,
                                                     unique.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    // The merged pool, its regions at the merge buffer's (with room to spare).
    pool_.key = std::move(mk);
    pool_.c = std::move(mc);
    pool_.begin = std::move(d_mb);
    pool_.size = std::move(unique);
    pool_.h_begin = mb;
    pool_.h_size = download(pool_.size, B_);
  }

  void measure(const ModelArrays& model, double* h_metrics, bool truth0) {
    MeasureParams p{model,
                    s_.V,
                    s_.order,
                    s_.smoothing != Smoothing::kMle,
                    s_.zipf,
                    truth0,
                    held_key_.get(),
                    held_c_.get(),
                    held_key_.size(),
                    word_.get(),
                    tail_.get(),
                    truth_p_.get(),
                    truth_cond_.get(),
                    nullptr,
                    nullptr,
                    sample_counts_.key.get(),
                    sample_counts_.begin.get(),
                    sample_counts_.size.get(),
                    sample_counts_.c.get(),
                    sample_dense_.get(),
                    forced_.get(),
                    forced_n_.get(),
                    forced_cap_,
                    distinct_.get(),
                    pairs_.get(),
                    cut_.get(),
                    share_.get(),
                    age_.get(),
                    metrics_.get(),
                    B_};
    if (truth_cond_.get()) {
      const std::uint64_t rows = static_cast<std::uint64_t>(B_) * s_.V;
      ensure(row_kl_, rows), ensure(row_tv_, rows);
      p.row_kl = row_kl_.get(), p.row_tv = row_tv_.get();
      markov_rows_kernel<<<blocks_for(rows), kThreads>>>(p, row_kl_.get(), row_tv_.get());
    }
    measure_kernel<<<static_cast<unsigned>(B_), kNgramChunks>>>(p);
    OURO_CUDA_CHECK(cudaGetLastError());
    OURO_CUDA_CHECK(cudaMemcpy(h_metrics, metrics_.get(),
                               static_cast<std::uint64_t>(kNumNgramMetrics) * B_ * sizeof(double),
                               cudaMemcpyDeviceToHost));
  }

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

}  // namespace

std::unique_ptr<NgramBackend> make_ngram_cuda(const NgramBatchSpec& spec) { return std::make_unique<NgramCuda>(spec); }

}  // namespace ouro::kernels

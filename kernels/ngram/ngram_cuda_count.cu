// The n-gram cuda backend's count phase (kernels/ngram/ngram_cuda.cuh): every chain's keys sorted in its region
// (CUB) and run-length counted; under accumulate the counts merged into each chain's pool; the sample's counts and
// distinct bigrams.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>

#include "kernels/ngram/ngram_cuda.cuh"

namespace ouro::kernels::ngram_cuda {
namespace {

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
template void segmented_sort<double>(const std::uint64_t*, std::uint64_t*, const double*, double*,
                                     const std::vector<std::uint64_t>&, const std::vector<std::uint64_t>&, int,
                                     DeviceBuffer<unsigned char>&);
template void segmented_sort<std::uint32_t>(const std::uint64_t*, std::uint64_t*, const std::uint32_t*, std::uint32_t*,
                                            const std::vector<std::uint64_t>&, const std::vector<std::uint64_t>&, int,
                                            DeviceBuffer<unsigned char>&);
template void segmented_sort<std::uint64_t>(const std::uint64_t*, std::uint64_t*, const std::uint64_t*, std::uint64_t*,
                                            const std::vector<std::uint64_t>&, const std::vector<std::uint64_t>&, int,
                                            DeviceBuffer<unsigned char>&);

void unique_sizes(const std::uint64_t* head, const std::uint64_t* rank, const std::uint64_t* begin,
                  const std::uint64_t* size, std::int64_t B, std::uint64_t* unique) {
  unique_size_kernel<<<blocks_for(B), kThreads>>>(head, rank, begin, size, B, unique);
  OURO_CUDA_CHECK(cudaGetLastError());
}

void Counter::count(DeviceBuffer<std::uint64_t>& keys, std::uint64_t span, const std::vector<std::uint64_t>& begin,
                    const std::vector<std::uint64_t>& size, int bits, Counted& out) {
  sort(keys, span, begin, size, bits);
  runs(sorted_.get(), span, d_begin_, d_size_, static_cast<std::int64_t>(begin.size()), out);
}

void Counter::sort(DeviceBuffer<std::uint64_t>& keys, std::uint64_t span, const std::vector<std::uint64_t>& begin,
                   const std::vector<std::uint64_t>& size, int bits) {
  ensure(sorted_, span);
  d_begin_ = upload(begin), d_size_ = upload(size);
  segmented_sort<double>(keys.get(), sorted_.get(), nullptr, nullptr, begin, size, bits, temp_);
}

void Counter::runs(const std::uint64_t* sorted, std::uint64_t span, DeviceBuffer<std::uint64_t>& d_begin,
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
  run_counts_kernel<<<blocks_for(span), kThreads>>>(start_.get(), d_begin.get(), d_size.get(), out.size.get(), B, span,
                                                    out.c.get());
  OURO_CUDA_CHECK(cudaGetLastError());
  out.h_begin = download(out.begin, B);
  out.h_size = download(out.size, B);
}

// The sample's counts (and, for orders 1 and 3, its distinct bigrams).
void NgramCuda::count_sample() {
  const std::uint64_t span = static_cast<std::uint64_t>(B_) * sample_stride_;
  std::vector<std::uint64_t> begin(B_);
  for (std::int64_t b = 0; b < B_; ++b) begin[b] = static_cast<std::uint64_t>(b) * sample_stride_;
  const std::vector<std::uint64_t> len = download(sample_len_, B_);
  counter_.count(sample_, span, begin, len, bits_, sample_counts_);
  if (s_.order == 1) {
    OURO_CUDA_CHECK(cudaMemset(sample_dense_.get(), 0, static_cast<std::uint64_t>(B_) * s_.V * sizeof(double)));
    dense_kernel<<<blocks_for(span), kThreads>>>(sample_counts_.key.get(), sample_counts_.c.get(),
                                                 sample_counts_.begin.get(), sample_counts_.size.get(), B_, span, s_.V,
                                                 sample_dense_.get());
  }
  if (s_.order != 2) {
    ensure(scratch_, span);
    bigram_keys_kernel<<<blocks_for(span), kThreads>>>(sample_.get(), sample_len_.get(), sample_stride_, B_,
                                                       static_cast<std::uint64_t>(s_.V) + 1, s_.zipf, scratch_.get());
    // (On the low key_bits(V, 2) bits kNone is all ones, above every
    // bigram key, so it still sorts last.)
    counter_.sort(scratch_, span, begin, len, key_bits(s_.V, 2));
    distinct_kernel<<<static_cast<unsigned>(B_), kThreads>>>(counter_.sorted().get(), sample_len_.get(), sample_stride_,
                                                             B_, distinct_.get(), pairs_.get());
  }
  OURO_CUDA_CHECK(cudaGetLastError());
}

// accumulate: pool += this generation's counts.
void NgramCuda::merge_pool(const Counted& add) {
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
  unique_size_kernel<<<blocks_for(B_), kThreads>>>(head_.get(), rank_.get(), d_mb.get(), d_ms.get(), B_, unique.get());
  OURO_CUDA_CHECK(cudaGetLastError());
  // The merged pool, its regions at the merge buffer's (with room to spare).
  pool_.key = std::move(mk);
  pool_.c = std::move(mc);
  pool_.begin = std::move(d_mb);
  pool_.size = std::move(unique);
  pool_.h_begin = mb;
  pool_.h_size = download(pool_.size, B_);
}

}  // namespace ouro::kernels::ngram_cuda

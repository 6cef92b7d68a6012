// The n-gram cuda backend's compose phase (kernels/ngram/ngram_cuda.cuh): each chain's new text of a generation (real
// sentences, or a Zipf truth's tokens, then the first of the previous model's sample), and under
// accumulate_subsample the pool of every generation's text and the training text drawn from it.
#include "kernels/ngram/ngram_cuda.cuh"

namespace ouro::kernels::ngram_cuda {
namespace {

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

// ---- accumulate_subsample: the pool of sentences --------------------------------
//
// Every generation's new text is kept, compact (every chain's tokens one
// after the other, in a buffer of its own), and each chain has a list of its
// pool's sentences in order of (generation, position): the list index g is
// the subsample stream's word for that sentence. The training text is the
// pool's sentences in increasing order of their uniforms (ties by g, as the
// cpu's stable sort takes them) while it holds fewer than `samples` tokens.

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

}  // namespace

// Generation t's new text: its real_target real tokens (whole sentences of the corpus, or a Zipf truth's tokens) and
// then the first of the previous model's sample, composed in text_; or, without real data, the whole sample (drawn
// until n tokens), already counted. Returns where it is (chain b at b * stride); size[b] = its tokens, real[b] = its
// real ones.
const std::uint64_t* NgramCuda::compose(int t, std::uint64_t real_target, DeviceBuffer<std::uint64_t>& size,
                                        DeviceBuffer<double>& real, std::uint64_t& stride) {
  const std::uint64_t n = static_cast<std::uint64_t>(s_.samples);
  const std::uint64_t* new_text = sample_.get();
  stride = sample_stride_;
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
  return new_text;
}

// accumulate_subsample: generation t's new text (chain b's `tokens[b]` at
// b * stride of new_text, its first real[b] tokens real) joins the pool;
// the training text is drawn from the pool into text_ and counted into
// text_counts_; share and age are its composition, chain by chain.
void NgramCuda::subsample(int t, const std::uint64_t* new_text, std::uint64_t stride,
                          const DeviceBuffer<std::uint64_t>& size, const DeviceBuffer<double>& real,
                          const std::vector<std::uint64_t>& tokens, std::vector<double>& share,
                          std::vector<double>& age) {
  const std::uint64_t V1 = static_cast<std::uint64_t>(s_.V) + 1, span = static_cast<std::uint64_t>(B_) * stride;
  const bool each_token = s_.zipf;  // (an order-1 Zipf truth; config refuses a Markov chain here)
  // The new text's sentences: where each starts, and how many per chain.
  ensure(head_, span), ensure(rank_, span);
  sentence_heads_kernel<<<blocks_for(span), kThreads>>>(new_text, size.get(), stride, B_, V1, each_token, head_.get());
  exclusive_sum(head_, rank_, span, temp_);
  std::vector<std::uint64_t> text_begin(B_);
  for (std::int64_t b = 0; b < B_; ++b) text_begin[b] = static_cast<std::uint64_t>(b) * stride;
  const DeviceBuffer<std::uint64_t> d_text_begin = upload(text_begin);
  DeviceBuffer<std::uint64_t> count(B_);
  unique_sizes(head_.get(), rank_.get(), d_text_begin.get(), size.get(), B_, count.get());
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
void NgramCuda::set_pool_list(DeviceBuffer<PoolRef> list, const std::vector<std::uint64_t>& begin,
                              const std::vector<std::uint64_t>& size) {
  pool_refs_ = std::move(list);
  ref_begin_ = begin, ref_size_ = size;
  d_ref_begin_ = upload(begin), d_ref_size_ = upload(size);
}

// The training text of generation t from the pool's `refs` sentences:
// sorted by their uniforms, taken while short of n tokens, copied to
// text_ and counted.
void NgramCuda::draw_training_text(int t, std::uint64_t refs, std::vector<double>& share, std::vector<double>& age) {
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

}  // namespace ouro::kernels::ngram_cuda

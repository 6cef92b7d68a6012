// The n-gram cuda backend's sample phase (kernels/ngram/ngram_cuda.cuh): every chain's sample of `samples` tokens
// in whole sentences, drawn in rounds a thread per sentence (lengths first, then the accepted sentences again,
// written at their offsets); a Zipf truth's tokens a thread per token, a Markov chain's sequence a thread per chain;
// and the sampler's cut (top_k, temperature, top_p) of every context.
#include <cub/device/device_segmented_sort.cuh>

#include "kernels/ngram/ngram_cuda.cuh"

namespace ouro::kernels::ngram_cuda {
namespace {

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

}  // namespace

void NgramCuda::build_cuts(const ModelArrays& model, std::uint64_t span, std::int64_t chains, Cuts& out) {
  if (s_.order == 1) build_unigram_cuts(model, chains, out);
  else build_level_cuts(model.top, span, chains, out);
}

// Order 1: every word of each chain's one context, sorted by decreasing
// probability (a segment of V per chain), then a thread per chain.
void NgramCuda::build_unigram_cuts(const ModelArrays& model, std::int64_t chains, Cuts& out) {
  const std::uint64_t span = static_cast<std::uint64_t>(chains) * s_.V;
  ensure(out.keys, span), ensure(out.sorted, span), ensure(out.words, span), ensure(out.sorted_words, span);
  ensure(out.w, span), ensure(out.len, span), ensure(out.cum, span);
  unigram_cut_keys_kernel<<<blocks_for(span), kThreads>>>(model, chains, out.keys.get(), out.words.get());
  std::vector<std::uint64_t> begin(chains), size(chains, s_.V);
  for (std::int64_t c = 0; c < chains; ++c) begin[c] = static_cast<std::uint64_t>(c) * s_.V;
  segmented_sort(out.keys.get(), out.sorted.get(), out.words.get(), out.sorted_words.get(), begin, size, 64, temp_);
  unigram_cut_kernel<<<serial_blocks(chains), kSerialThreads>>>(chains, s_.V, out.sorted.get(), out.sorted_words.get(),
                                                                s_.sampler, out.w.get(), out.cum.get(), out.len.get());
  OURO_CUDA_CHECK(cudaGetLastError());
}

// Orders 2 and 3 (mle): each context's entries sorted by decreasing count
// (CUB's segmented sort, a segment per context), then a thread per context.
void NgramCuda::build_level_cuts(const ModelArrays::Level& L, std::uint64_t span, std::int64_t chains, Cuts& out) {
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
  cut_keys_kernel<<<blocks_for(total), kThreads>>>(seg_begin.get(), seg_end.get(), total, L.ent_w, L.ent_c, wbits, cmax,
                                                   out.keys.get());
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

// The sample of every chain's model (generation `gen`'s counters), then
// its counts.
void NgramCuda::draw(const ModelArrays& model, std::uint32_t gen, bool truth, const CutView& cut) {
  const DrawParams p{model, s_.seed, s_.chain_begin, gen, s_.V, s_.order, s_.smoothing == Smoothing::kKneserNey, cut};
  const auto n = static_cast<std::uint64_t>(s_.samples);
  if (s_.zipf) {  // n tokens, from the truth or the model
    if (s_.order == 1)
      zipf_sample_kernel<<<blocks_for(B_ * n), kThreads>>>(p, truth ? truth_cum_.get() : nullptr, B_, n, sample_stride_,
                                                           sample_.get());
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
    accept_kernel<<<blocks_for(B_), kThreads>>>(B_, R, n, round_len_.get(), next_j.get(), done.get(), sample_len_.get(),
                                                sentences.get(), cut_.get(), round_at_.get());
    write_kernel<<<blocks_for(B_ * R), kThreads>>>(p, B_, R, sample_stride_, next_j.get(), round_at_.get(),
                                                   sample_.get(), forced_.get(), forced_cap_, forced_n_.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    have = download(sample_len_, B_);
    count = download(sentences, B_);
  }
  count_sample();
}

}  // namespace ouro::kernels::ngram_cuda

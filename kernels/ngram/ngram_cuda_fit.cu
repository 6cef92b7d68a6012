// The n-gram cuda backend's fit phase (kernels/ngram/ngram_cuda.cuh): each chain's model tables from its counts, a
// thread per context running the cpu backend's build_context and build_alias (kernels/ngram/ngram.h), a thread per
// chain its lowest level; and generation 0 of a corpus, the model the cpu fitted, uploaded once.
#include "kernels/ngram/ngram_cuda.cuh"

namespace ouro::kernels::ngram_cuda {
namespace {

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

}  // namespace

void NgramCuda::upload_model0(const NgramView& h) {
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

ModelArrays::Level NgramCuda::upload_level(const NgramLevel& L, HostLevel& d) {
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

// One level's tables from counted regions.
ModelArrays::Level NgramCuda::build_level(const Counted& k, LevelArrays& L, bool dense, bool with_alias) {
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
void NgramCuda::fit(const Counted& k) {
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

}  // namespace ouro::kernels::ngram_cuda

// The n-gram cuda backend's measure phase (kernels/ngram/ngram_cuda.cuh): a block of kNgramChunks threads per chain
// sums its chunk of the held-out types and of the sample's types with kernels/ngram/ngram_metrics.h, in the cpu's
// order, and thread 0 closes the metrics; a Markov-chain truth's kl and tv rows a thread per (chain, context).
#include "kernels/ngram/ngram_cuda.cuh"

namespace ouro::kernels::ngram_cuda {
namespace {

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

}  // namespace

void NgramCuda::measure(const ModelArrays& model, double* h_metrics, bool truth0) {
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

}  // namespace ouro::kernels::ngram_cuda

// The n-gram family's cuda backend (kernels/ngram/ngram_cuda.cuh has its phases): a generation of every chain of
// the batch is compose, count, fit, sample and measure.
#include "kernels/ngram/ngram_cuda.cuh"

namespace ouro::kernels::ngram_cuda {

NgramCuda::NgramCuda(const NgramBatchSpec& spec) : s_(spec), B_(spec.batch) {
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

void NgramCuda::start(double* h_metrics) {
  OURO_CUDA_CHECK(cudaMemset(share_.get(), 0, B_ * sizeof(double)));
  OURO_CUDA_CHECK(cudaMemset(age_.get(), 0, B_ * sizeof(double)));
  draw(model0_arrays_, 1, s_.zipf, sampler_cut0_.view());
  measure(model0_arrays_, h_metrics, s_.zipf);
}

void NgramCuda::advance(int t, double* h_metrics) {
  const auto real_target = static_cast<std::uint64_t>(t == 1 ? s_.samples : s_.real_count);
  DeviceBuffer<std::uint64_t> size(B_);
  DeviceBuffer<double> real(B_);
  std::uint64_t stride = 0;
  const std::uint64_t* new_text = compose(t, real_target, size, real, stride);
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

std::vector<WorkerRange> NgramCuda::workers() const {
  return {WorkerRange{cuda_worker_name(), s_.chain_begin, static_cast<std::int64_t>(s_.chain_begin) + B_ - 1, B_}};
}

// What the next generation reads: the sample (its keys; its counts are
// recounted on load), the pool of counts and the composition.
void NgramCuda::state(StateArchive& ar) {
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
      OURO_CUDA_CHECK(cudaMemcpy(pc.data() + at, pool_.c.get() + pool_.h_begin[b], ps[b] * 8, cudaMemcpyDeviceToHost));
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

}  // namespace ouro::kernels::ngram_cuda

namespace ouro::kernels {

std::unique_ptr<NgramBackend> make_ngram_cuda(const NgramBatchSpec& spec) {
  return std::make_unique<ngram_cuda::NgramCuda>(spec);
}

}  // namespace ouro::kernels

// The n-gram family's cpu backend (kernels/ngram/ngram_cpu.h has its phases), and NgramFit, the model of one text
// that tests, benchmarks and the cuda backend's generation 0 use.
#include "kernels/ngram/ngram_cpu.h"

namespace ouro::kernels::ngram_cpu {

NgramCpu::NgramCpu(const NgramBatchSpec& spec) : s_(spec) {
  threads_ = spec.threads > 0 ? spec.threads : omp_get_max_threads();
  // Fewer chains than threads: chains one after another, each using every
  // thread inside (its sentences are independent given their counters).
  outer_ = spec.batch >= threads_ ? threads_ : 1;
  inner_ = outer_ == 1 ? threads_ : 1;
  chains_.resize(spec.batch);
  count_text(s_.order, s_.V, s_.heldout, heldout_counts_, threads_);
  if (!s_.zipf) {
    // Generation 0 of a corpus: the model of the configured order and
    // smoothing fitted to the whole training split; shared, read-only, by
    // every chain at generation 0, and the verifier's reference.
    Counts counts;
    count_text(s_.order, s_.V, s_.train, counts, threads_);
    model0_.build(s_, counts, threads_);
    if (s_.verifier.on) sentence_logp_min_ = reference_quantile();
  }
}

// f(i) for every chain i: in parallel over chains, or, with fewer chains
// than threads, one after another outside any parallel region, so that a
// chain's own parallel loops start first-level teams (a nested team can
// cost a thread start per region).
template <class F>
void NgramCpu::for_chains(F&& f) {
  if (outer_ == 1) {
    for (std::int64_t i = 0; i < s_.batch; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(outer_)
  for (std::int64_t i = 0; i < s_.batch; ++i) f(i);
}

void NgramCpu::start(double* h_metrics) {
  // Generation 0: the truth (zipf) or model0_ (a corpus; built with the
  // backend).
  std::vector<WorkerRange> seen(threads_);
  for_chains([&](std::int64_t i) {
    note_chain(seen[omp_get_thread_num()],
               inner_ > 1 ? fmt_threads(inner_) : "omp-thread-" + std::to_string(omp_get_thread_num()),
               s_.chain_begin + i);
    Chain& c = chains_[i];
    c.model = &model0_;
    const std::uint32_t chain = s_.chain_begin + static_cast<std::uint32_t>(i);
    draw_sample(c, chain, 1, /*truth=*/s_.zipf);
    measure(c, 0, 0.0, 0.0, h_metrics + i);
  });
  workers_ = seen;
}

void NgramCpu::advance(int t, double* h_metrics) {
  for_chains([&](std::int64_t i) { generation(i, t, h_metrics + i); });
}

// Per chain, what the next generation reads: the sample of the current
// model (and its counts), the accumulated pool (counts or texts) and its
// composition. The model itself is rebuilt from the next training text
// before it is used, so it is not kept.
void NgramCpu::state(StateArchive& ar) {
  auto text = [](StateArchive& a, TokenText& t) {
    a.vec("tokens", t.tokens);
    a.vec("start", t.start);
  };
  auto counts = [](StateArchive& a, Counts& k) {
    a.vec("uni", k.uni);
    a.vec("key", k.key);
    a.vec("c", k.c);
  };
  ar.each("chains", chains_, [&](StateArchive& a, Chain& c) {
    counts(a, c.pool);
    text(a, c.sample);
    counts(a, c.sample_counts);
    a.value("cut_sentences", c.cut_sentences);
    a.value("draws_per_kept", c.draws_per_kept);
    a.vec("sample_cut", c.sample_cut);
    a.value("pool_tokens", c.pool_tokens);
    a.value("pool_synthetic", c.pool_synthetic);
    a.vec("tokens_of", c.tokens_of);
    a.each("pool_texts", c.pool_texts, [&](StateArchive& b, Chain::PoolText& p) {
      text(b, p.text);
      std::uint64_t real = p.real_sentences;
      b.value("real_sentences", real);
      p.real_sentences = static_cast<std::size_t>(real);
    });
    if (a.loading()) c.model = nullptr;  // rebuilt by the next generation before any use
  });
  ar.workers(workers_);
}

}  // namespace ouro::kernels::ngram_cpu

namespace ouro::kernels {

using ngram_cpu::Counts;
using ngram_cpu::kNoCell32;

std::unique_ptr<NgramBackend> make_ngram_cpu(const NgramBatchSpec& spec) {
  return std::make_unique<ngram_cpu::NgramCpu>(spec);
}

struct NgramFit::Tables {
  ngram_cpu::Model model;
};
NgramFit::NgramFit(const NgramBatchSpec& spec, const TokenText& text) : tables_(new Tables), spec_(&spec) {
  Counts counts;
  ngram_cpu::count_text(spec.order, spec.V, text, counts, 1);
  tables_->model.build(spec, counts, 1);
}

NgramFit::~NgramFit() = default;

NgramView NgramFit::view() const { return tables_->model.view(*spec_); }

bool NgramFit::count_drawn(const std::vector<std::uint64_t>& cells, std::vector<std::uint64_t>& key,
                           std::vector<double>& c) const {
  std::vector<std::uint32_t> narrow;
  for (std::uint64_t x : cells) narrow.push_back(x == kNoCell ? kNoCell32 : static_cast<std::uint32_t>(x));
  Counts counts;
  if (!ngram_cpu::count_cells(tables_->model.top, spec_->V, narrow, counts)) return false;
  key = std::move(counts.key);
  c = std::move(counts.c);
  return true;
}

void NgramFit::count(const NgramBatchSpec& spec, const TokenText& text, std::vector<std::uint64_t>& key,
                     std::vector<double>& c) {
  Counts counts;
  ngram_cpu::count_text(spec.order, spec.V, text, counts, 1);
  key = std::move(counts.key);
  c = std::move(counts.c);
}

}  // namespace ouro::kernels

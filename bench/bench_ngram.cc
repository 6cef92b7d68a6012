// Google Benchmark cases for the n-gram family, on the mle bigram model of
// the King James text (experiments/ngram/bench_kjv_bigram.yaml; the text is
// extracted by scripts/setup.sh). Rates are tokens per second.
//   BM_LoadCorpus   reading and tokenising the King James text (load_corpus:
//                   the tokenizer, the vocabulary, the split), every run's
//                   first step
//   BM_Sample       the shared per-token sampler (sample_next with
//                   token_uniforms, kernels/ngram/ngram.h: the alias-table draw every
//                   backend makes per token), whole sentences one after
//                   another on one thread; the cpu backend interleaves 8
//                   sentences per thread on top of this
//   BM_CountSort    NgramFit::count of a drawn text: packed keys, radix sort,
//                   reduce (how a training text is counted)
//   BM_CountCells   NgramFit::count_drawn of the same text from the alias
//                   cells its tokens were drawn from (how an mle sample is
//                   counted, without a sort)
//   BM_Generation   one generation of the cpu backend (draw, count, fit,
//                   metrics) for `chains` chains of 10^5 tokens each, on all
//                   threads
//   BM_GenerationCuda  the same on the cuda backend, for 10^2 and 10^3
//                   chains (skipped without a device)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ngram/ngram.h"
#include "kernels/ngram/ngram_backend.h"
#include "sim/engine/config.h"
#include "sim/families/family.h"
#include "sim/families/ngram/corpus.h"
#include "sim/families/ngram/ngram_family.h"
#include "sim/parallel/backend.h"

namespace {

using namespace ouro;

// The sources' folder: compiled in, overridable from the environment for a
// build folder carried to another machine (scripts/gpu_check.sh).
std::string source_dir() {
  const char* v = std::getenv("OUROBOROS_SOURCE_DIR");
  return v && *v ? v : OUROBOROS_SOURCE_DIR;
}

bool have_kjv(benchmark::State& state) {
  if (std::filesystem::exists(source_dir() + "/data/kjv.txt")) return true;
  state.SkipWithError("no data/kjv.txt (scripts/setup.sh extracts it)");
  return false;
}

PointConfig bench_config(std::int64_t chains, std::int64_t samples) {
  const Experiment ex = load_experiment(
      source_dir() + "/experiments/ngram/bench_kjv_bigram.yaml",
      {"chains=" + std::to_string(chains), "generations=100000", "data.samples=" + std::to_string(samples)});
  return ex.points.front().config;
}

// The KJV bigram model fitted to the training split, and a text of at least
// `tokens` tokens drawn from it (whole sentences) with each token's alias cell.
struct Drawn {
  kernels::NgramBatchSpec spec;
  std::unique_ptr<kernels::NgramFit> fit;
  kernels::TokenText text;
  std::vector<std::uint64_t> cells;
};

// Draws whole sentences from `m` until `tokens` tokens; returns the count.
std::int64_t draw_sentences(const kernels::NgramView& m, std::int64_t tokens, kernels::TokenText* text,
                            std::vector<std::uint64_t>* cells) {
  std::int64_t drawn = 0;
  for (std::uint64_t j = 0; drawn < tokens; ++j) {
    std::uint64_t ctx = kernels::start_context(m.order, m.V);
    for (std::uint32_t i = 0; i < kernels::kMaxSentence; ++i) {
      std::uint64_t cell;
      const std::uint32_t w =
          kernels::sample_next(m, ctx, kernels::token_uniforms(1, 0, 2, rng::kStreamSyntheticDraw, j, i, false), cell);
      ++drawn;
      if (text) text->tokens.push_back(w);
      if (cells) cells->push_back(cell);
      if (w == 0) break;  // </s>
      ctx = kernels::next_context(m.order, m.V, ctx, w);
    }
    if (text) text->start.push_back(text->tokens.size());
  }
  return drawn;
}

// (On the heap: the fit refers to the spec, which must not move.)
std::unique_ptr<Drawn> drawn_text(std::int64_t tokens) {
  auto d = std::make_unique<Drawn>();
  d->spec = make_ngram_spec(bench_config(1, 100000), 1);
  d->fit = std::make_unique<kernels::NgramFit>(d->spec, d->spec.train);
  d->text.start.push_back(0);
  draw_sentences(d->fit->view(), tokens, &d->text, &d->cells);
  return d;
}

void BM_LoadCorpus(benchmark::State& state) {
  if (!have_kjv(state)) return;
  std::int64_t tokens = 0;
  for (auto _ : state) {
    const Corpus c = load_corpus(source_dir() + "/data/kjv.txt");
    tokens += static_cast<std::int64_t>(c.train.tokens.size() + c.heldout.tokens.size());
    benchmark::DoNotOptimize(c.vocab.data());
  }
  state.SetItemsProcessed(tokens);
}

void BM_Sample(benchmark::State& state) {
  if (!have_kjv(state)) return;
  const auto d = drawn_text(1);
  const kernels::NgramView m = d->fit->view();
  std::int64_t tokens = 0;
  for (auto _ : state) tokens += draw_sentences(m, state.range(0), nullptr, nullptr);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

void BM_CountSort(benchmark::State& state) {
  if (!have_kjv(state)) return;
  const auto d = drawn_text(state.range(0));
  std::vector<std::uint64_t> key;
  std::vector<double> c;
  for (auto _ : state) {
    kernels::NgramFit::count(d->spec, d->text, key, c);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(d->text.tokens.size()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["types"] = static_cast<double>(key.size());
}

void BM_CountCells(benchmark::State& state) {
  if (!have_kjv(state)) return;
  const auto d = drawn_text(state.range(0));
  std::vector<std::uint64_t> key;
  std::vector<double> c;
  for (auto _ : state) {
    if (!d->fit->count_drawn(d->cells, key, c)) {
      state.SkipWithError("a drawn token has no alias cell");
      return;
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(d->cells.size()), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["types"] = static_cast<double>(key.size());
}

void generation(benchmark::State& state, const std::string& backend) {
  if (!have_kjv(state)) return;
  const std::int64_t chains = state.range(0), samples = 100000;
  const PointConfig c = bench_config(chains, samples);
  auto run = make_family_run(c, backend, 0, ChainBlock{0, c.chains});
  std::vector<double> metrics(metric_names(c).size() * chains);
  run->start(metrics.data());
  int g = 1;
  for (auto _ : state) run->advance(g++, metrics.data());
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(chains * samples), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Generation(benchmark::State& state) { generation(state, "cpu"); }

void BM_GenerationCuda(benchmark::State& state) {
  if (!cuda_built() || cuda_devices() == 0) {
    state.SkipWithError("no cuda backend or no CUDA device");
    return;
  }
  generation(state, "cuda");
}

}  // namespace

BENCHMARK(BM_LoadCorpus)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Sample)->Arg(1 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CountSort)->Arg(1 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CountCells)->Arg(1 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Generation)->Arg(1)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GenerationCuda)->Arg(100)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();

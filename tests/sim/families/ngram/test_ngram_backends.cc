// The n-gram family on cpu and cuda: the same chains draw the same tokens
// and count the same n-grams, so every metric that is a function of integer
// counts (support, vocab_survival, zero_prob_rate, missing_mass, distinct_2,
// cut_sentences, the composition) is bit-identical, and the rest (logs of
// probabilities summed in the same order) agrees to rounding. Skipped where
// no CUDA device exists. Also: what the cuda backend does not run yet is
// named, and refused before any work.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "sim/families/ngram/ngram_family.h"
#include "tests/support/backend_test.h"

namespace {

using namespace ouro;
namespace fs = std::filesystem;

// A corpus of 600 sentences over 200 words (lengths 1 to 12, word choices
// from a fixed linear congruential sequence, so that rare words and rare
// bigrams exist), and with `long_sentence` one sentence of 6000 copies of
// one word: an mle bigram model then loops on that word for thousands of
// tokens, and sentences are cut at kMaxSentence.
std::string corpus_file(bool long_sentence) {
  const fs::path p = fs::temp_directory_path() /
                     ("ouroboros-ngram-backends-" + std::to_string(long_sentence) + "-" + std::to_string(getpid()));
  std::ofstream out(p);
  std::uint64_t x = 12345;
  auto next = [&] { return (x = x * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int s = 0; s < 600; ++s) {
    const int len = 1 + static_cast<int>(next() % 12);
    for (int i = 0; i < len; ++i) {
      // Word k with probability falling in k (the fourth power of a uniform):
      // the highest of the 200 are seen a few times at most.
      const double u = static_cast<double>(next() % 1000000) / 1e6;
      out << (i ? " " : "") << "w" << static_cast<int>(200 * u * u * u * u);
    }
    out << "\n";
  }
  if (long_sentence) {
    for (int i = 0; i < 6000; ++i) out << (i ? " " : "") << "loop";
    out << "\n";
  }
  return p.string();
}

std::string config(const std::string& corpus, int order, const char* smoothing, const char* regime, double real) {
  return "seed: 9\nchains: 37\ngenerations: 6\nmodel: {family: ngram, order: " + std::to_string(order) +
         ", smoothing: " + smoothing + "}\ntruth: {corpus: " + corpus + "}\ndata: {samples: 3000, regime: " + regime +
         ", real_fraction: " + std::to_string(real) + "}\nmetrics: {tail_count: 3}\n";
}

bool exact_metric(const std::string& name) {
  for (const char* m : {"support", "vocab_survival", "zero_prob_rate", "missing_mass", "distinct_2", "cut_sentences",
                        "draws_per_kept", "synthetic_share", "data_age", "kl_inf_chains"})
    if (name == m) return true;
  return false;
}

void compare(const std::string& yaml) {
  if (const std::string why = test::cuda_missing(); !why.empty()) GTEST_SKIP() << why;
  const auto cpu = test::run_family(yaml, "cpu", 0, true);
  const auto gpu = test::run_family(yaml, "cuda", 0, true);
  test::expect_same_chain_values(cpu, gpu, [&](int metric, double a, double b) {
    // Integer functions of the counts: equal. The rest: the same sums of
    // -log2 p in the same order, the logs possibly a last bit apart
    // (device and host libm), so a relative 1e-12.
    // (kl is inf on both once a true type dies: a == b.)
    return a == b || (!exact_metric(cpu.names[metric]) && std::abs(a - b) <= 1e-12 * std::abs(a));
  });
}

// Every order and smoothing, under replace without real data (the whole
// sample is the next training text) and with a real fraction (real
// sentences picked by a warp per chain, then a prefix of the sample).
TEST(NgramCpuVsCuda, ReplaceEveryOrderAndSmoothing) {
  const std::string corpus = corpus_file(false);
  for (int order : {1, 2, 3})
    for (const char* smoothing : {"mle", "add_k", "kneser_ney"})
      for (double real : {0.0, 0.25}) {
        SCOPED_TRACE(std::to_string(order) + " " + smoothing + " " + std::to_string(real));
        compare(config(corpus, order, smoothing, "replace", real));
      }
}

// accumulate: the pool of counts merged each generation.
TEST(NgramCpuVsCuda, Accumulate) {
  const std::string corpus = corpus_file(false);
  for (int order : {1, 2, 3})
    for (const char* smoothing : {"mle", "kneser_ney"}) {
      SCOPED_TRACE(std::to_string(order) + " " + smoothing);
      compare(config(corpus, order, smoothing, "accumulate", 0.1));
    }
}

// accumulate_subsample: every generation's text kept, the training text
// drawn from it by the subsample stream's uniforms (a segmented sort per
// chain on the device), the composition per chain; corpus truths of every
// order and a Zipf unigram truth (its pool holds single tokens).
TEST(NgramCpuVsCuda, AccumulateSubsample) {
  const std::string corpus = corpus_file(false);
  for (int order : {1, 2, 3})
    for (const char* smoothing : {"mle", "kneser_ney"})
      for (double real : {0.0, 0.2}) {
        SCOPED_TRACE(std::to_string(order) + " " + smoothing + " " + std::to_string(real));
        compare(config(corpus, order, smoothing, "accumulate_subsample", real));
      }
  compare(config(corpus_file(true), 2, "mle", "accumulate_subsample", 0.0));  // cut sentences in the pool
  for (double real : {0.0, 0.2}) {
    SCOPED_TRACE("zipf " + std::to_string(real));
    compare(
        "seed: 4\nchains: 200\ngenerations: 8\nmodel: {family: ngram, order: 1, smoothing: mle}\n"
        "truth: {zipf: {vocab: 300, exponent: 1.1}}\nmetrics: {heldout: 2000}\ndata: {samples: 500, regime: "
        "accumulate_subsample, real_fraction: " +
        std::to_string(real) + "}\n");
  }
}

// A batch of at most 8 chains sorts each chain's keys with a device-wide
// radix sort instead of the segmented one: the same order, stable alike.
TEST(NgramCpuVsCuda, FewChains) {
  const std::string corpus = corpus_file(false);
  for (const char* regime : {"replace", "accumulate", "accumulate_subsample"}) {
    SCOPED_TRACE(regime);
    std::string yaml = config(corpus, 3, "kneser_ney", regime, 0.2);
    yaml.replace(yaml.find("chains: 37"), 10, "chains: 3");
    compare(yaml);
  }
}

// Sentences cut at kMaxSentence (their forced </s> left out of the entropy),
// and a sample that overshoots its target by thousands of tokens.
TEST(NgramCpuVsCuda, CutSentences) {
  const std::string corpus = corpus_file(true);
  for (const char* regime : {"replace", "accumulate"}) {
    SCOPED_TRACE(regime);
    compare(config(corpus, 2, "mle", regime, 0.0));
  }
}

// The sampler's cut on mle models of order 2 and 3: top_p, top_k, the
// temperature and all three (contexts' words sorted by count on the device,
// sampler_cut per context); on order-1 models of every smoothing (each
// chain's words sorted by probability).
TEST(NgramCpuVsCuda, SamplerCuts) {
  const std::string corpus = corpus_file(false);
  const char* samplers[] = {"{top_p: 0.9}", "{top_k: 2}", "{temperature: 0.6}",
                            "{temperature: 1.7, top_k: 4, top_p: 0.6}"};
  for (int order : {2, 3})
    for (const char* sampler : samplers)
      for (const char* regime : {"replace", "accumulate"}) {
        SCOPED_TRACE(std::to_string(order) + " " + sampler + " " + regime);
        compare(config(corpus, order, "mle", regime, 0.2) + "sampler: " + sampler + "\n");
      }
  for (const char* smoothing : {"mle", "add_k", "kneser_ney"})
    for (const char* sampler : samplers) {
      SCOPED_TRACE(std::string("order 1 ") + smoothing + " " + sampler);
      compare(config(corpus, 1, smoothing, "replace", 0.2) + "sampler: " + sampler + "\n");
    }
}

// Zipf truths: unigram (single tokens; exact kl and tv, kl_inf_chains) and
// Markov chains (one sequence per chain, drawn a token at a time; rates of
// kl and tv under the stationary law). Generation 0 is the truth itself,
// then every smoothing under replace with and without real tokens, and
// accumulate.
TEST(NgramCpuVsCuda, ZipfTruths) {
  for (int order : {1, 2})
    for (const char* smoothing : {"mle", "add_k", "kneser_ney"})
      for (const char* regime : {"replace", "accumulate"})
        for (double real : {0.0, 0.2}) {
          SCOPED_TRACE(std::to_string(order) + " " + smoothing + " " + regime + " " + std::to_string(real));
          compare("seed: 4\nchains: 200\ngenerations: 8\nmodel: {family: ngram, order: " + std::to_string(order) +
                  ", smoothing: " + smoothing + "}\ntruth: {zipf: {vocab: " + (order == 1 ? "300" : "60") +
                  ", exponent: 1.1}}\nmetrics: {heldout: 2000}\ndata: {samples: 500, regime: " + regime +
                  ", real_fraction: " + std::to_string(real) + "}\n");
        }
  // The models draw through the sampler's cut (the truth at generation 0
  // does not).
  for (int order : {1, 2})
    compare("seed: 4\nchains: 100\ngenerations: 6\nmodel: {family: ngram, order: " + std::to_string(order) +
            ", smoothing: mle}\ntruth: {zipf: {vocab: 60, exponent: 1.1}}\nmetrics: {heldout: 2000}\ndata: {samples: "
            "500, regime: replace}\nsampler: {temperature: 0.8, top_k: 5, top_p: 0.8}\n");
}

// What the cuda backend does not run yet is named (and main refuses an
// explicit --backend cuda for it with exit 2, or runs auto on the cpu).
TEST(NgramCuda, NamesWhatItDoesNotRunYet) {
  auto gap = [](const std::string& yaml) {
    const PointConfig c = load_experiment_text(yaml, {}).points[0].config;
    return c.family->backend_gap(c, "cuda");
  };
  const std::string corpus = corpus_file(false);
  EXPECT_EQ(gap(config(corpus, 2, "mle", "replace", 0.1)), "");
  EXPECT_EQ(gap(config(corpus, 3, "kneser_ney", "accumulate", 0.0)), "");
  const std::string zipf =
      "seed: 1\nchains: 2\ngenerations: 2\nmodel: {family: ngram, order: 1, smoothing: mle}\n"
      "truth: {zipf: {vocab: 50, exponent: 1.1}}\ndata: {samples: 100}\n";
  EXPECT_EQ(gap(zipf), "");
  std::string markov = zipf;
  markov.replace(markov.find("order: 1"), 8, "order: 2");
  EXPECT_EQ(gap(markov), "");
  EXPECT_EQ(gap(config(corpus, 2, "mle", "replace", 0.0) + "sampler: {top_p: 0.9, top_k: 3}\n"), "");
  EXPECT_EQ(gap(config(corpus, 2, "mle", "replace", 0.0) + "sampler: {temperature: 0.7}\n"), "");
  EXPECT_EQ(gap(config(corpus, 1, "kneser_ney", "replace", 0.0) + "sampler: {top_p: 0.9}\n"), "");
  EXPECT_NE(gap(config(corpus, 2, "add_k", "replace", 0.0) + "sampler: {top_k: 2}\n").find("smoothed"),
            std::string::npos);
  EXPECT_NE(gap(config(corpus, 3, "kneser_ney", "replace", 0.0) + "sampler: {temperature: 2}\n").find("temperature"),
            std::string::npos);
  EXPECT_EQ(gap(config(corpus, 2, "mle", "accumulate_subsample", 0.0)), "");
  std::string decay = config(corpus, 2, "mle", "accumulate", 0.0);
  decay.replace(decay.find("real_fraction"), 0, "age_decay: 0.5, ");
  EXPECT_EQ(gap(decay), "data.age_decay");
  std::string dedup = config(corpus, 2, "mle", "replace", 0.0);
  dedup.replace(dedup.find("real_fraction"), 0, "dedup: true, ");
  EXPECT_EQ(gap(dedup), "data.dedup");
}

}  // namespace

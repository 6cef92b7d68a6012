// The n-gram family's strategies (docs/strategies.md): the verifier on Zipf, Markov and corpus truths, dedup of
// sentences, tail weights and age decay, by chains replayed by hand and exact consequences of their rules.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/core/quadform.h"
#include "kernels/core/rng.h"
#include "kernels/gmm/gmm.h"
#include "kernels/ngram/ngram.h"
#include "sim/analysis/summary.h"
#include "sim/engine/config.h"
#include "sim/families/gmm/gmm_family.h"
#include "sim/families/ngram/ngram_family.h"
#include "tests/sim/families/strategies_support.h"
#include "tests/support/backend_test.h"

namespace {

using namespace ouro;
using namespace ouro::test;
namespace fs = std::filesystem;

// The verifier and tail weights on a Zipfian Markov chain truth (V = 40,
// order 2, mle), replayed by hand for generations 1 and 2: generation 1
// fits the chain's real sequence (its tokens drawn as the backend draws
// them); its sample is drawn token by token with the same uniforms
// (kernels::sample_next on the same fitted tables, NgramFit). With the
// verifier (phi = 1, psi = 0, q = 0.3) token w after context v is kept when
// p0(w | v) reaches the truth's 0.3-quantile of its own pairs, a dropped
// token ending its sequence (the model's chain goes on from it). With
// tail_upsample (factor 2.5) every pair of the sample ending in a tail token
// counts 2.5. Generation 2's mle model is the replay's counts c(v w) / c(v);
// its tv rate against the truth agrees with the run to 1e-12 in each of 5
// chains (and so does draws_per_kept); the replay without the strategy (the
// planted bug) differs in every chain.
TEST(NgramStrategies, MarkovStrategiesReplayExactly) {
  const std::uint32_t n = 3000;
  for (const auto& [extra, verifier, factor] : std::vector<std::tuple<std::string, bool, double>>{
           {"verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 0.3}", true, 1.0},
           {"tail_upsample: {factor: 2.5}", false, 2.5}}) {
    const std::string yaml =
        "seed: 9\nchains: 5\ngenerations: 2\nmodel: {family: ngram, order: 2, smoothing: mle}\n"
        "truth: {zipf: {vocab: 40, exponent: 1.1}}\nmetrics: {tail_share: 0.3}\n"
        "data: {samples: 3000, regime: replace, " +
        extra + "}\n";
    const FamilyCurves c = run_family(yaml, "cpu", 0, true);
    const kernels::NgramBatchSpec spec = make_ngram_spec(c.config, 1);
    const std::uint32_t V = spec.V;
    if (verifier) {
      ASSERT_GT(spec.plausible_min_p, 0.0);
    }
    const int tv = c.metric("tv"), dpk = c.metric("draws_per_kept");
    int differs = 0;
    for (std::uint32_t ch = 0; ch < 5; ++ch)
      for (const bool applied : {true, false}) {
        kernels::TokenText real;
        real.start = {0};
        std::uint32_t ctx = V;
        for (std::uint32_t j = 0; j < n; ++j) {
          const rng::Block b = rng::draw_block(9, ch, 1, rng::kStreamRealDraw, j);
          const double u = rng::u01_open(b.v[0], b.v[1]);
          const auto r =
              static_cast<std::uint32_t>(kernels::first_above(spec.truth_cum.data(), 0, V, u * spec.truth_cum[V - 1]));
          ctx = spec.truth_perm[static_cast<std::size_t>(ctx) * V + r];
          real.tokens.push_back(ctx);
        }
        real.start.push_back(n);
        const kernels::NgramFit fit1(spec, real);
        const kernels::NgramView m = fit1.view();
        kernels::TokenText sample;
        sample.start = {0};
        kernels::VerifyWords words;
        ctx = V;
        std::uint64_t j = 0;
        for (; j < 10ull * n && sample.tokens.size() < n; ++j) {
          if (kernels::find_context(m.top, V, ctx) < 0) {
            sample.start.push_back(sample.tokens.size());
            ctx = V;
          }
          const std::uint32_t v = ctx;
          ctx = kernels::sample_next(
              m, ctx,
              kernels::token_uniforms(9, ch, 2, rng::kStreamSyntheticDraw, j / kernels::kMaxSentence,
                                      static_cast<std::uint32_t>(j % kernels::kMaxSentence), false));
          const bool plausible = spec.truth_cond[static_cast<std::size_t>(v) * V + ctx] >= spec.plausible_min_p;
          if (verifier && applied &&
              !words.keeps(9, ch, 2, j, plausible ? kernels::keep_threshold(1.0) : kernels::keep_threshold(0.0))) {
            if (sample.start.back() != sample.tokens.size()) sample.start.push_back(sample.tokens.size());
            continue;
          }
          sample.tokens.push_back(ctx);
        }
        sample.start.push_back(sample.tokens.size());
        // Generation 2: the sample's pairs (each sequence from <s>), weighted.
        std::vector<double> count(static_cast<std::size_t>(V + 1) * V, 0.0);
        for (std::size_t sj = 0; sj + 1 < sample.start.size(); ++sj) {
          std::uint32_t prev = V;
          for (std::uint64_t i = sample.start[sj]; i < sample.start[sj + 1]; ++i) {
            const std::uint32_t w = sample.tokens[i];
            count[static_cast<std::size_t>(prev) * V + w] += spec.tail[w] && applied ? factor : 1.0;
            prev = w;
          }
        }
        double rate = 0.0;
        for (std::uint32_t v = 0; v < V; ++v) {
          double total = 0.0, tvv = 0.0;
          for (std::uint32_t w = 0; w < V; ++w) total += count[static_cast<std::size_t>(v) * V + w];
          for (std::uint32_t w = 0; w < V; ++w) {
            const double p = total > 0.0 ? count[static_cast<std::size_t>(v) * V + w] / total : 0.0;
            tvv += 0.5 * std::abs(spec.truth_cond[static_cast<std::size_t>(v) * V + w] - p);
          }
          rate += spec.truth_p[v] * tvv;
        }
        if (applied) {
          EXPECT_NEAR(c.values[2][tv * 5 + ch], rate, 1e-12) << extra << " chain " << ch;
          EXPECT_NEAR(c.values[1][dpk * 5 + ch], verifier ? static_cast<double>(j) / sample.tokens.size() : 1.0, 1e-12)
              << extra << " chain " << ch;
          if (verifier) {
            EXPECT_GT(static_cast<double>(j) / sample.tokens.size(), 1.1);  // tokens were dropped
          }
        } else {
          differs += std::abs(c.values[2][tv * 5 + ch] - rate) > 1e-9;
        }
      }
    EXPECT_EQ(differs, 5) << extra << ": the strategy should change every chain's fit";
  }
}

// The n-gram verifier (order-1 zipf truth): with phi = 1, psi = 0 and no real
// data after generation 1, every trained token from generation 2 on is
// plausible (truth probability at least that of the type where the mass of
// the least probable types reaches q), so no implausible type can be alive:
// vocab_survival * V <= the plausible types, in every chain (without the
// verifier some chain exceeds it: the check has power). phi = psi = 1 is no
// verifier, bit for bit; phi = psi = 1/2 costs 2 draws per kept token
// (negative binomial), |z| < 4.5.
TEST(NgramStrategies, NgramVerifierKeepsPlausibleTokens) {
  const std::string yaml =
      "seed: 8\nchains: 40\ngenerations: 3\nmodel: {family: ngram, order: 1, smoothing: mle}\n"
      "truth: {zipf: {vocab: 1000, exponent: 1.1}}\ndata: {samples: 20000, regime: replace";
  const std::vector<double> p = make_ngram_spec(load_experiment_text(yaml + "}\n", {}).points[0].config, 1).truth_p;
  double below = 0.0, pmin = 0.0;
  for (int w = 999; w >= 0; --w)
    if ((below += p[w]) >= 0.1) {
      pmin = p[w];
      break;
    }
  int plausible = 0;
  for (double q : p) plausible += q >= pmin;
  const FamilyCurves on =
      run_family(yaml + ", verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 0.1}}\n", "cpu", 2, true);
  const FamilyCurves off = run_family(yaml + "}\n", "cpu", 2, true);
  const int k = on.metric("vocab_survival");
  const std::int64_t N = on.config.chains;
  bool exceeded = false;
  for (int g = 2; g <= 3; ++g)
    for (std::int64_t i = 0; i < N; ++i) {
      EXPECT_LE(std::llround(on.values[g][k * N + i] * 1000), plausible) << "generation " << g << " chain " << i;
      exceeded |= std::llround(off.values[g][k * N + i] * 1000) > plausible;
    }
  EXPECT_TRUE(exceeded) << "without the verifier no chain keeps more than the " << plausible << " plausible types";
  const FamilyCurves all =
      run_family(yaml + ", verifier: {keep_plausible: 1, keep_implausible: 1, quantile: 0.1}}\n", "cpu", 2, true);
  for (int g = 0; g <= 3; ++g) EXPECT_TRUE(same_bits(all.values[g], off.values[g])) << "generation " << g;
  const FamilyCurves half =
      run_family(yaml + ", verifier: {keep_plausible: 0.5, keep_implausible: 0.5, quantile: 0.1}}\n", "cpu", 2, false);
  EXPECT_LT(std::abs(zscore(half.at(3, "draws_per_kept"), 2.0)), 4.5);
}

// data.dedup on a corpus whose model can say three sentences only ("a",
// "b", "c", two tokens each with </s>): a sample keeps each at most once, so
// drawing stops at the budget of max_draw_factor * samples = 200 tokens
// (exactly: every sentence has 2 tokens) with 6 tokens kept, or 4 or 2 in a
// chain whose generation-1 real sample missed a sentence (then its model
// cannot say it). Without dedup nothing is dropped. The same on 1 and 2
// threads, bit for bit.
TEST(NgramStrategies, DedupKeepsEachSentenceOnce) {
  const fs::path dir = fs::temp_directory_path() / ("ouroboros-dedup-" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "abc.txt");
    for (int j = 0; j < 20; ++j) f << "abc"[j % 3] << "\n";  // lines 9 and 19 are held out
  }
  const std::string yaml =
      "seed: 4\nchains: 40\ngenerations: 3\nmodel: {family: ngram, order: 2, smoothing: mle}\n"
      "truth: {corpus: " +
      (dir / "abc.txt").string() +
      "}\nmetrics: {tail_count: 6}\n"
      "data: {samples: 20, regime: replace, ";
  const FamilyCurves on = run_family(yaml + "dedup: true, max_draw_factor: 10}\n", "cpu", 2, true);
  const FamilyCurves on1 = run_family(yaml + "dedup: true, max_draw_factor: 10}\n", "cpu", 1, true);
  const FamilyCurves off = run_family(yaml + "dedup: false}\n", "cpu", 2, true);
  const int k = on.metric("draws_per_kept");
  const std::int64_t N = on.config.chains;
  int fewer = 0;
  for (int g = 0; g <= 3; ++g)
    for (std::int64_t i = 0; i < N; ++i) {
      const double v = on.values[g][k * N + i];
      if (g == 0) {
        EXPECT_EQ(v, 200.0 / 6.0) << "chain " << i;  // the corpus model says all three
      }
      EXPECT_TRUE(v == 200.0 / 6.0 || v == 200.0 / 4.0 || v == 200.0 / 2.0)
          << "generation " << g << " chain " << i << ": " << v;
      fewer += v != 200.0 / 6.0;
      EXPECT_EQ(off.values[g][k * N + i], 1.0);
    }
  // P(a real sample of 10 sentences from 18 lines misses a letter) = 5%:
  // some chain of 40 shows it (the check sees both cases) with probability 0.87.
  for (int g = 0; g <= 3; ++g) EXPECT_TRUE(same_bits(on.values[g], on1.values[g])) << "generation " << g;
  std::printf("chain-generations keeping fewer than three sentences: %d\n", fewer);
  fs::remove_all(dir);
}

// data.verifier on a corpus: its training split is 18 verses "a b" and 2
// "c d" (with every 10th line held out), so the generation-0 mle bigram model
// gives "a b" probability 0.9 and "c d" 0.1, and with quantile 0.2 the
// plausibility bound is ln 0.9 (the split's 20 sentences sorted, rank
// floor(0.2 * 20) = 4, past the two "c d"): "c d" is implausible. With phi = 1, psi = 0 no
// synthetic "c d" survives, so from generation 2 on every chain has lost c
// and d (vocab_survival exactly 1/2); without the verifier most chains keep
// them at generation 2. phi = psi = 1 runs bit for bit as no verifier.
TEST(NgramStrategies, CorpusVerifierDropsImplausibleSentences) {
  const fs::path dir = fs::temp_directory_path() / ("ouroboros-corpus-verifier-" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "abcd.txt");
    for (int j = 0; j < 22; ++j) f << (j == 3 || j == 14 || j == 9 ? "c d" : "a b") << "\n";  // line 9 (c d) held out
  }
  const std::string yaml =
      "seed: 4\nchains: 40\ngenerations: 3\nmodel: {family: ngram, order: 2, smoothing: mle}\n"
      "truth: {corpus: " +
      (dir / "abcd.txt").string() +
      "}\n"
      "data: {samples: 60, regime: replace";
  const FamilyCurves strict =
      run_family(yaml + ", verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 0.2}}\n", "cpu", 0, true);
  const FamilyCurves off = run_family(yaml + "}\n", "cpu", 0, true);
  const FamilyCurves all =
      run_family(yaml + ", verifier: {keep_plausible: 1, keep_implausible: 1, quantile: 0.2}}\n", "cpu", 0, true);
  const int k = strict.metric("vocab_survival");
  int kept_by_some = 0;
  for (int ch = 0; ch < 40; ++ch) {
    for (int t = 2; t <= 3; ++t) EXPECT_EQ(strict.values[t][k * 40 + ch], 0.5) << "generation " << t << " chain " << ch;
    kept_by_some += off.values[2][k * 40 + ch] == 1.0;
  }
  EXPECT_GT(kept_by_some, 20) << "without the verifier c and d should mostly survive generation 2";
  // Generation 1's sample (generation 2's training text) is the filtered one:
  // the dropped sentences were drawn; later models cannot say "c d".
  EXPECT_GT(strict.at(1, "draws_per_kept").mean, 1.0);
  EXPECT_EQ(strict.at(2, "draws_per_kept").mean, 1.0);
  expect_same_values(off, all, "phi = psi = 1");
  // The sample is filtered as it is drawn, so the accumulating regimes filter
  // the same way (the dropped sentences show in draws_per_kept), while
  // generation 1's real verses keep c and d alive in the pool.
  const FamilyCurves pooled = run_family(
      "seed: 4\nchains: 40\ngenerations: 3\nmodel: {family: ngram, order: 2, smoothing: mle}\n"
      "truth: {corpus: " +
          (dir / "abcd.txt").string() +
          "}\n"
          "data: {samples: 60, regime: accumulate, verifier: {keep_plausible: 1, keep_implausible: 0, quantile: "
          "0.2}}\n",
      "cpu", 0, true);
  EXPECT_GT(pooled.at(1, "draws_per_kept").mean, 1.0);
  EXPECT_EQ(pooled.at(3, "vocab_survival").mean, strict.at(1, "vocab_survival").mean);
  fs::remove_all(dir);
}

// N-gram frequency weights against the chain replayed by hand: an order-1
// Zipf truth (V = 60, exponent 1.1; the tail is the least probable types
// holding 20% of the mass), mle, 200 tokens per generation, no real data
// after generation 1. Generation 1's text is 200 truth draws (as the backend
// draws them); generation t >= 2's is the previous model's sample (token j:
// the first type whose cumulative count exceeds u_j times the total, u_j from
// token j's uniforms), every synthetic tail token counting `factor` times;
// under accumulate the pool's earlier counts are multiplied by the decay once
// per generation; under accumulate_subsample generation t counts the 200
// tokens of the pool (every generation's text, in order) with the smallest
// keys of its subsample stream, a token of generation k weighing
// decay^(t - k). gini_simpson and tail_mass agree with the replay to 1e-12 at
// every generation in each of 20 chains, and synthetic_share and data_age
// (tokens weighted by age) under the subsample; the replay without weights
// (the planted bug) differs in most.
TEST(NgramStrategies, NgramWeightsReplayExactly) {
  const int V = 60, n = 200, chains = 20, generations = 5;
  for (const auto& [regime, extra, factor, decay] : std::vector<std::tuple<std::string, std::string, double, double>>{
           {"replace", "tail_upsample: {factor: 4}", 4.0, 1.0},
           {"accumulate", "tail_upsample: {factor: 2.5}, age_decay: 0.5", 2.5, 0.5},
           {"accumulate_subsample", "tail_upsample: {factor: 2.5}, age_decay: 0.5", 2.5, 0.5}}) {
    const std::string yaml =
        "seed: 8\nchains: 20\ngenerations: 5\nmodel: {family: ngram, order: 1, smoothing: mle}\n"
        "truth: {zipf: {vocab: 60, exponent: 1.1}}\nmetrics: {tail_share: 0.2}\n"
        "data: {samples: 200, regime: " +
        regime + ", " + extra + "}\n";
    const FamilyCurves c = run_family(yaml, "cpu", 0, true);
    const kernels::NgramBatchSpec spec = make_ngram_spec(c.config, 1);
    const int gini = c.metric("gini_simpson"), tail = c.metric("tail_mass"), share = c.metric("synthetic_share"),
              age = c.metric("data_age");
    double tail_truth = 0.0;
    for (int w = 0; w < V; ++w) tail_truth += spec.tail[w] ? spec.truth_p[w] : 0.0;
    int differs = 0;
    for (int ch = 0; ch < chains; ++ch)
      for (const bool weighted : {true, false}) {
        std::vector<double> pool(V, 0.0), sample;
        std::vector<std::vector<int>> texts;  // every generation's tokens (the subsample's pool)
        for (int t = 1; t <= generations; ++t) {
          std::vector<int> text;
          if (t == 1) {
            for (int j = 0; j < n; ++j) {
              const rng::Block b = rng::draw_block(8, ch, 1, rng::kStreamRealDraw, j);
              const double u = rng::u01_open(b.v[0], b.v[1]);
              text.push_back(
                  static_cast<int>(kernels::first_above(spec.truth_cum.data(), 0, V, u * spec.truth_cum[V - 1])));
            }
          } else {
            for (double w : sample) text.push_back(static_cast<int>(w));
          }
          texts.push_back(text);
          // A token of generation k weighs decay^(t - k), and a synthetic tail token `factor` more.
          auto weight = [&, factor = factor, decay = decay](int w, int k) {
            return (weighted ? std::pow(decay, t - k) : 1.0) * (k >= 2 && spec.tail[w] && weighted ? factor : 1.0);
          };
          std::vector<double> counts(V, 0.0);
          for (int w : text) counts[w] += weight(w, t);
          for (int w = 0; w < V; ++w) pool[w] = (weighted ? decay : 1.0) * pool[w] + counts[w];
          std::vector<double> fit = regime == "replace" ? counts : pool;
          if (regime == "accumulate_subsample") {
            struct Ref {
              double key;
              int k, w;
            };
            std::vector<Ref> refs;
            std::uint64_t g = 0;
            for (int k = 1; k <= t; ++k)
              for (int w : texts[k - 1]) refs.push_back({kernels::subsample_uniform(8, ch, t, g++), k, w});
            std::sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) { return a.key < b.key; });
            std::fill(fit.begin(), fit.end(), 0.0);
            double tokens = 0.0, synthetic = 0.0, ages = 0.0;
            for (int i = 0; i < n; ++i) {
              const Ref& r = refs[i];
              fit[r.w] += weight(r.w, r.k);
              const double a = weighted ? std::pow(decay, t - r.k) : 1.0;
              tokens += a, synthetic += r.k >= 2 ? a : 0.0, ages += a * (t - r.k);
            }
            if (weighted) {
              EXPECT_NEAR(c.values[t][share * chains + ch], synthetic / tokens, 1e-12) << "generation " << t;
              EXPECT_NEAR(c.values[t][age * chains + ch], ages / tokens, 1e-12) << "generation " << t;
            }
          }
          std::vector<double> cum(V);
          double run = 0.0, sq = 0.0, tail_model = 0.0;
          for (int w = 0; w < V; ++w) cum[w] = run += fit[w];
          for (int w = 0; w < V; ++w) {
            const double p = fit[w] / run;
            sq += p * p;
            tail_model += spec.tail[w] ? p : 0.0;
          }
          const double got_gini = c.values[t][gini * chains + ch], got_tail = c.values[t][tail * chains + ch];
          if (weighted) {
            EXPECT_NEAR(got_gini, 1.0 - sq, 1e-12) << regime << " generation " << t << " chain " << ch;
            EXPECT_NEAR(got_tail, tail_model / tail_truth, 1e-12) << regime << " generation " << t << " chain " << ch;
          } else if (t >= 2) {
            differs += std::abs(got_tail - tail_model / tail_truth) > 1e-9;
          }
          // The model's sample: the next generation's training text.
          sample.clear();
          for (int j = 0; j < n; ++j) {
            const kernels::TokenUniforms r = kernels::token_uniforms(
                8, ch, t + 1, rng::kStreamSyntheticDraw, j / kernels::kMaxSentence, j % kernels::kMaxSentence, false);
            sample.push_back(static_cast<double>(kernels::first_above(cum.data(), 0, V, r.u * run)));
          }
        }
      }
    EXPECT_GT(differs, chains) << regime << ": the weights barely changed the fits: the check has little power";
  }
}

}  // namespace

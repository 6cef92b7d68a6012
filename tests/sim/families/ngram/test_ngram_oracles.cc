// The n-gram family against exact and published results: Wright-Fisher
// heterozygosity (Gini-Simpson) under multinomial resampling, the exact loss
// of word types (each type's count a binomial chain; not Suresh et al.'s 2024
// Poisson approximation), monotone support
// under mle replace, add_k keeping every type, normalised smoothed
// distributions, the sampler's cuts, thread invariance, refusals. The
// Zipf and support oracles run on every backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kernels/ngram/ngram.h"
#include "kernels/ngram/ngram_backend.h"
#include "sim/families/ngram/corpus.h"
#include "sim/families/ngram/ngram_family.h"
#include "sim/families/ngram/wright_fisher.h"
#include "tests/support/backend_test.h"

namespace {

using namespace ouro;

std::string zipf(const std::string& extra, int V, double s, int n, int chains, int gens) {
  return "seed: 4\nchains: " + std::to_string(chains) + "\ngenerations: " + std::to_string(gens) +
         "\nmodel: {family: ngram, order: 1" + extra + "}\ntruth: {zipf: {vocab: " + std::to_string(V) +
         ", exponent: " + std::to_string(s) + "}}\ndata: {samples: " + std::to_string(n) + ", regime: replace}\n";
}

// The oracles below run on every backend (the cuda instances skip without
// a device).
class NgramOracleOn : public test::BackendTest {};
INSTANTIATE_TEST_SUITE_P(Backends, NgramOracleOn, ::testing::Values("cpu", "cuda"), test::backend_name);

// Under mle and replace, generation t+1 is n tokens drawn from generation t's
// frequencies (Wright-Fisher), and E[1 - sum p_{t+1}^2 | p_t] = (1 - 1/n)(1 -
// sum p_t^2) exactly, so E[gini_simpson_t] = gini_simpson_0 (1 - 1/n)^t (the
// theory column). 2000 chains, |z| < 4.5 at every generation.
TEST_P(NgramOracleOn, GiniSimpsonDecaysExactly) {
  const auto c = test::run_family(zipf(", smoothing: mle", 200, 1.1, 50, 2000, 20), GetParam());
  for (int t = 1; t <= 20; ++t) {
    const auto th = theory(c.config, kernels::kNgGiniSimpson, t);
    ASSERT_TRUE(th.has_value());
    const Summary& s = c.at(t, "gini_simpson");
    EXPECT_LT(std::abs(s.mean - *th) / s.se, 4.5) << "generation " << t << ": " << s.mean << " vs " << *th;
  }
  // The decay is visible: with n = 50 the theory falls by 1 - (49/50)^20 = 33%.
  EXPECT_LT(c.at(20, "gini_simpson").mean, 0.75 * c.at(0, "gini_simpson").mean);
}

// Suresh, Thangaraj & Khandavally (2024): a type of probability p is alive at generation t with probability about
// 1 - exp(-n p g_t), g_1 = 1, g_{t+1} = 1 - exp(-g_t), each binomial resampling replaced by a Poisson law. Not an
// expectation: the planted bug of the tests below.
double suresh_survival(const std::vector<double>& p, int n, int t) {
  double g = 1.0;
  for (int k = 1; k < t; ++k) g = 1.0 - std::exp(-g);
  double alive = 0.0;
  for (double q : p) alive += 1.0 - std::exp(-n * q * g);
  return alive / static_cast<double>(p.size());
}

std::vector<double> zipf_law(int V, double s) {
  std::vector<double> p(V);
  double z = 0.0;
  for (int r = V; r >= 1; --r) z += std::pow(r, -s);
  for (int r = 1; r <= V; ++r) p[r - 1] = std::pow(r, -s) / z;
  return p;
}

// n! / prod c_w! prod q_w^c_w, exactly up to rounding for n <= 20 (0^0 = 1).
double multinomial(const std::vector<int>& c, const std::vector<double>& q) {
  double f = 1.0;
  int n = 0;
  for (std::size_t w = 0; w < c.size(); ++w)
    for (int i = 1; i <= c[w]; ++i) f *= static_cast<double>(++n) / i * q[w];
  return f;
}

// Every vector of V counts summing to n.
void count_vectors(int V, int n, std::vector<int>& cur, std::vector<std::vector<int>>& out) {
  if (static_cast<int>(cur.size()) == V - 1) {
    cur.push_back(n);
    out.push_back(cur);
    cur.pop_back();
    return;
  }
  for (int k = 0; k <= n; ++k) {
    cur.push_back(k);
    count_vectors(V, n - k, cur, out);
    cur.pop_back();
  }
}

// The expectations of vocab_survival and missing_mass by brute force: the whole population's law over every vector
// of counts, pushed through multinomial resampling (generation 1 from the truth, then from the counts / n), with no
// use of the per-type binomial chains that sim/families/ngram/wright_fisher.h reduces it to. Against it, the exact
// computation agrees to 1e-12 at every generation: both sum a few thousand positive products of factors exact to
// rounding, so they differ by about 1e-15; an error of the chains' reduction or of the binomial terms is far larger
// (the Poisson approximation, the planted bug, is off by more than 1e-3 at some generation of each case). The cases:
// distinct probabilities, equal ones (computed once and shared), a type of probability 0 (dead from generation 1).
TEST(NgramOracle, WrightFisherLossMatchesEnumeration) {
  struct Case {
    std::vector<double> p;
    int n, T;
  };
  for (const Case& k :
       {Case{{0.5, 0.3, 0.2}, 5, 8}, Case{{0.25, 0.25, 0.25, 0.25}, 4, 6}, Case{{0.7, 0.2, 0.1, 0.0}, 6, 5}}) {
    const int V = static_cast<int>(k.p.size());
    std::vector<std::vector<int>> states;
    std::vector<int> cur;
    count_vectors(V, k.n, cur, states);
    std::vector<double> law(states.size()), next(states.size());
    for (std::size_t i = 0; i < states.size(); ++i) law[i] = multinomial(states[i], k.p);
    const WrightFisherLoss exact = wright_fisher_loss(k.p, k.n, k.T);
    ASSERT_EQ(exact.survival.size(), static_cast<std::size_t>(k.T + 1));
    EXPECT_EQ(exact.survival[0], 1.0);
    EXPECT_EQ(exact.missing[0], 0.0);
    double bug = 0.0;
    for (int t = 1; t <= k.T; ++t) {
      double survival = 0.0, missing = 0.0;
      for (std::size_t i = 0; i < states.size(); ++i)
        for (int w = 0; w < V; ++w) {
          survival += states[i][w] > 0 ? law[i] / V : 0.0;
          missing += states[i][w] == 0 ? law[i] * k.p[w] : 0.0;
        }
      SCOPED_TRACE(::testing::Message() << "n " << k.n << " V " << V << " generation " << t);
      EXPECT_NEAR(exact.survival[t], survival, 1e-12);
      EXPECT_NEAR(exact.missing[t], missing, 1e-12);
      bug = std::max(bug, std::abs(suresh_survival(k.p, k.n, t) - survival));
      // Generation t + 1 resamples n tokens from the frequencies counts / n.
      std::fill(next.begin(), next.end(), 0.0);
      for (std::size_t i = 0; i < states.size(); ++i) {
        std::vector<double> q(V);
        for (int w = 0; w < V; ++w) q[w] = static_cast<double>(states[i][w]) / k.n;
        for (std::size_t j = 0; j < states.size(); ++j) next[j] += law[i] * multinomial(states[j], q);
      }
      law.swap(next);
    }
    EXPECT_GT(bug, 1e-3) << "the planted bug is not distinguishable";
  }
}

// Known answers at a large n: a type of probability 1/100 with n = 2000 (count 20) is alive at generation 40 with
// probability 0.61632, and with n = 4000 at generation 80 with 0.62433 (experiments/papers/suresh2024_forgetting.yaml,
// quoted to 5 digits, from iterating the chain's (n + 1) x (n + 1) transition matrix in full: a computation without
// this code's truncations). Generation 1 is (1 - p)^n in closed form. A budget that ends the computation early gives
// the first generations' values (to rounding: the binomial windows start elsewhere), or generation 1 alone.
TEST(NgramOracle, WrightFisherLossKnownAnswers) {
  EXPECT_NEAR(wright_fisher_loss({0.01}, 2000, 40).survival[40], 0.61632, 5e-6);
  EXPECT_NEAR(wright_fisher_loss({0.01}, 4000, 80).survival[80], 0.62433, 5e-6);
  const std::vector<double> p = zipf_law(50, 0.8);
  const WrightFisherLoss full = wright_fisher_loss(p, 60, 40);
  double missing1 = 0.0;
  for (double q : p) missing1 += q * std::pow(1.0 - q, 60);
  EXPECT_NEAR(full.missing[1], missing1, 1e-14);
  const WrightFisherLoss part = wright_fisher_loss(p, 60, 40, 1e4), first = wright_fisher_loss(p, 60, 40, 1.0);
  ASSERT_GT(part.survival.size(), 2u);
  ASSERT_LT(part.survival.size(), full.survival.size());
  for (std::size_t t = 0; t < part.survival.size(); ++t) {
    EXPECT_NEAR(part.survival[t], full.survival[t], 1e-14) << "generation " << t;
    EXPECT_NEAR(part.missing[t], full.missing[t], 1e-14) << "generation " << t;
  }
  ASSERT_EQ(first.survival.size(), 2u);
  EXPECT_EQ(first.survival[1], full.survival[1]);
  EXPECT_EQ(first.missing[1], full.missing[1]);
}

// The theory column of vocab_survival and missing_mass is the exact expectation: 2000 chains of V = 50 types
// (Zipf, exponent 0.8) refitted to n = 60 tokens for 40 generations, every generation's mean within 4 standard
// errors of it (80 checks, each failing by chance with probability 6e-5 for a correct theory: 0.5% at most
// together, and the seed is fixed; the largest |z| is 2.4). Power: at generation 40 Suresh et al.'s approximation
// gives 0.0534 against the exact 0.0604, 15 standard errors (4e-4 each) from the chains' mean.
TEST_P(NgramOracleOn, TypeLossIsTheExactWrightFisherExpectation) {
  const int V = 50, n = 60, gens = 40;
  const double s = 0.8;
  const auto c = test::run_family(zipf(", smoothing: mle", V, s, n, 2000, gens), GetParam());
  for (int t = 1; t <= gens; ++t)
    for (const char* m : {"vocab_survival", "missing_mass"}) {
      const auto th = theory(c.config, c.metric(m), t);
      ASSERT_TRUE(th.has_value()) << m << " generation " << t;
      const Summary& v = c.at(t, m);
      EXPECT_LT(std::abs(v.mean - *th), 4.0 * v.se)
          << m << " generation " << t << ": " << v.mean << " vs " << *th << " (se " << v.se << ")";
    }
  const double exact = *theory(c.config, kernels::kNgVocabSurvival, gens);
  EXPECT_NEAR(exact, 0.0603547, 1e-7);
  const Summary& last = c.at(gens, "vocab_survival");
  EXPECT_GT(std::abs(last.mean - suresh_survival(zipf_law(V, s), n, gens)), 4.0 * last.se)
      << "the planted bug is not distinguishable";
}

// missing_mass, the truth's mass on dead types. Generation 1 is n independent
// draws from the truth, so a type of probability p is unseen with probability
// (1 - p)^n exactly and E[missing_mass_1] = sum p (1 - p)^n. 4000 chains, |z| < 4.5.
// Power: the unweighted share of dead types (1 - E[vocab_survival_1]) is the
// planted bug, more than 2 * 4.5 standard errors away. Per chain the mass is 0
// exactly when every type is alive, and it never falls under mle replace.
TEST_P(NgramOracleOn, MissingMassIsExactAtGenerationOne) {
  const int V = 100, n = 200;
  const double s = 1.1;
  const auto c = test::run_family(zipf(", smoothing: mle", V, s, n, 4000, 5), GetParam(), 0, true);
  double z = 0.0, expected = 0.0, dead_share = 0.0;
  for (int r = 1; r <= V; ++r) z += std::pow(r, -s);
  for (int r = 1; r <= V; ++r) {
    const double p = std::pow(r, -s) / z;
    expected += p * std::pow(1.0 - p, n);
    dead_share += std::pow(1.0 - p, n) / V;
  }
  const Summary& m = c.at(1, "missing_mass");
  EXPECT_LT(std::abs(m.mean - expected) / m.se, 4.5) << m.mean << " vs " << expected;
  EXPECT_GT(std::abs(m.mean - dead_share) / m.se, 9.0) << "the planted bug is not distinguishable";
  EXPECT_EQ(c.at(0, "missing_mass").mean, 0.0);
  const int mm = c.metric("missing_mass"), vs = c.metric("vocab_survival");
  const std::int64_t chains = c.config.chains;
  for (std::size_t t = 1; t < c.values.size(); ++t)
    for (std::int64_t i = 0; i < chains; ++i) {
      const double mass = c.values[t][mm * chains + i], alive = c.values[t][vs * chains + i];
      EXPECT_EQ(mass == 0.0, alive == 1.0) << "generation " << t << " chain " << i;
      if (t >= 2) {
        EXPECT_GE(mass, c.values[t - 1][mm * chains + i]) << "generation " << t << " chain " << i;
      }
    }
}

// accumulate_subsample on single tokens: the training set is n tokens drawn
// without replacement from every token so far, so its synthetic share and
// mean age have the pool's values as expectation (the theory column):
// |z| < 4.5 over 300 chains at every generation.
TEST(NgramOracle, AccumulateSubsampleComposition) {
  std::string yaml = zipf(", smoothing: mle", 100, 1.1, 200, 300, 6);
  yaml.replace(yaml.find("regime: replace"), 15, "regime: accumulate_subsample");
  const auto c = test::run_family(yaml, "cpu");
  for (int t = 2; t <= 6; ++t)
    for (const char* m : {"synthetic_share", "data_age"}) {
      const double th = *theory(c.config, c.metric(m), t);
      const Summary& s = c.at(t, m);
      EXPECT_LT(std::abs(s.mean - th) / s.se, 4.5) << m << " generation " << t << ": " << s.mean << " vs " << th;
    }
}

// With mle and no real data, a type that is gone never comes back, so the
// support of every chain never grows (checked per chain, unigram and bigram).
TEST_P(NgramOracleOn, MleSupportNeverGrowsUnderReplace) {
  for (const std::string& yaml :
       {zipf(", smoothing: mle", 300, 1.1, 200, 50, 15),
        std::string("seed: 2\nchains: 4\ngenerations: 6\nmodel: {family: ngram, order: 2, smoothing: mle}\n"
                    "truth: {corpus: kjv}\ndata: {samples: 20000, regime: replace}\n")}) {
    const auto c = test::run_family(yaml, GetParam(), 0, true);
    const int m = c.metric("support");
    const std::int64_t n = c.config.chains;
    for (std::size_t t = 2; t < c.values.size(); ++t)
      for (std::int64_t i = 0; i < n; ++i)
        EXPECT_LE(c.values[t][m * n + i], c.values[t - 1][m * n + i]) << "generation " << t << " chain " << i;
    EXPECT_LT(c.at(static_cast<int>(c.values.size()) - 1, "support").mean, c.at(1, "support").mean);
  }
}

// add_k gives every type probability > 0: nothing is forgotten.
TEST_P(NgramOracleOn, AddKKeepsEveryTypeAlive) {
  const auto c = test::run_family(zipf(", smoothing: add_k, k: 0.5", 300, 1.1, 200, 20, 10), GetParam());
  for (int t = 0; t <= 10; ++t) {
    EXPECT_EQ(c.at(t, "vocab_survival").mean, 1.0);
    EXPECT_EQ(c.at(t, "zero_prob_rate").mean, 0.0);
    EXPECT_EQ(c.at(t, "kl_inf_chains").mean, 0.0);
  }
}

// Per-chain values are bit-identical for 1 and 2 threads: with many chains
// (each whole on one thread; bigram on the King James text, kneser_ney, real
// data and accumulate; the sampler's cuts on an mle bigram and on a smoothed
// unigram; weighted counts: tail upsampling with real data, age decay) and
// with one chain (its sentences drawn in parallel rounds, its sums over fixed
// chunks; also with the text verifier and dedup under accumulate_subsample).
TEST(NgramCpu, BitIdenticalForOneAndTwoThreads) {
  for (const std::string& yaml :
       {std::string("seed: 6\nchains: 6\ngenerations: 3\ntruth: {corpus: kjv}\n"
                    "model: {family: ngram, order: 2, smoothing: kneser_ney}\ndata: {samples: 5000, regime: "
                    "accumulate, real_fraction: 0.2}\n"),
        std::string("seed: 6\nchains: 6\ngenerations: 3\ntruth: {corpus: kjv}\n"
                    "model: {family: ngram, order: 2, smoothing: mle}\nsampler: {top_p: 0.9, temperature: 0.8}\ndata: "
                    "{samples: 3000}\n"),
        zipf(", smoothing: add_k}\nsampler: {top_p: 0.8, top_k: 50", 300, 1.1, 500, 6, 4),
        std::string("seed: 6\nchains: 4\ngenerations: 3\ntruth: {corpus: kjv}\n"
                    "model: {family: ngram, order: 2, smoothing: mle}\n"
                    "data: {samples: 4000, regime: accumulate, real_fraction: 0.2, tail_upsample: {factor: 2.5}, "
                    "age_decay: 0.7}\n"),
        std::string("seed: 6\nchains: 1\ngenerations: 3\ntruth: {corpus: kjv}\n"
                    "model: {family: ngram, order: 2, smoothing: mle}\n"
                    "data: {samples: 20000, regime: accumulate_subsample, real_fraction: 0.1, dedup: true, "
                    "verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.1}}\n"),
        std::string(
            "seed: 6\nchains: 1\ngenerations: 3\ntruth: {corpus: kjv}\n"
            "model: {family: ngram, order: 2, smoothing: mle}\ndata: {samples: 50000, real_fraction: 0.1}\n")}) {
    const auto one = test::run_family(yaml, "cpu", 1, true);
    const auto two = test::run_family(yaml, "cpu", 2, true);
    for (std::size_t t = 0; t < one.values.size(); ++t)
      for (std::size_t i = 0; i < one.values[t].size(); ++i) {
        const double a = one.values[t][i], b = two.values[t][i];
        ASSERT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << "generation " << t << " value " << i;
      }
  }
}

// The Zipfian Markov chain truth: every row a distribution (the Zipf law
// over its own permutation), the stationary law invariant (pi P = pi to
// 1e-12), generation 0 the truth itself (kl = tv = 0); a smoothed model keeps
// its KL finite, an mle one loses transitions at once.
TEST(NgramOracle, ZipfMarkovTruth) {
  const std::string yaml = zipf(", smoothing: add_k", 150, 1.1, 5000, 10, 3);
  std::string markov = yaml;
  markov.replace(markov.find("order: 1"), 8, "order: 2");
  const PointConfig c = load_experiment_text(markov, {}).points.front().config;
  const kernels::NgramBatchSpec spec = make_ngram_spec(c, 1);
  const std::uint32_t V = spec.V;
  std::vector<double> next(V, 0.0);
  double total = 0.0;
  for (std::uint32_t v = 0; v <= V; ++v) {
    double row = 0.0;
    for (std::uint32_t w = 0; w < V; ++w) row += spec.truth_cond[static_cast<std::size_t>(v) * V + w];
    EXPECT_NEAR(row, 1.0, 1e-12) << "context " << v;
  }
  for (std::uint32_t v = 0; v < V; ++v) {
    total += spec.truth_p[v];
    for (std::uint32_t w = 0; w < V; ++w)
      next[w] += spec.truth_p[v] * spec.truth_cond[static_cast<std::size_t>(v) * V + w];
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
  for (std::uint32_t w = 0; w < V; ++w) EXPECT_NEAR(next[w], spec.truth_p[w], 1e-12);
  const auto smooth = test::run_family(markov, "cpu");
  EXPECT_EQ(smooth.at(0, "kl").mean, 0.0);
  EXPECT_EQ(smooth.at(0, "tv").mean, 0.0);
  EXPECT_EQ(smooth.at(3, "kl_inf_chains").mean, 0.0);
  EXPECT_GT(smooth.at(3, "kl").mean, smooth.at(1, "kl").mean);  // drifting away
  std::string mle = markov;
  mle.replace(mle.find("add_k"), 5, "mle");
  EXPECT_EQ(test::run_family(mle, "cpu").at(1, "kl_inf_chains").mean,
            1.0);  // 5000 tokens miss some of 150^2 transitions
}

// A small bigram model from explicit counts, to check the distributions.
struct Toy {
  std::vector<double> uni, uni_cum, uni_cumd, ctx_total, ent_c, ent_cum, ent_cumd;
  std::vector<std::uint64_t> ctx, ctx_start;
  std::vector<std::uint32_t> ent_w;
  std::vector<kernels::AliasBucket> alias;
  std::vector<std::uint32_t> alias_entry;
  kernels::NgramView view(kernels::Smoothing sm) {
    // V = 5; contexts 2 and 5 (= <s>): c(<s> 2) = 3, c(<s> 3) = 1,
    // c(2 0) = 2, c(2 2) = 1, c(2 4) = 1.
    ctx = {2, 5};
    ctx_start = {0, 3, 5};
    ent_w = {0, 2, 4, 2, 3};
    ent_c = {2, 1, 1, 3, 1};
    ctx_total = {4, 4};
    ent_cum = {2, 3, 4, 3, 4};
    ent_cumd = {1.25, 1.5, 1.75, 2.25, 2.5};  // discount 0.75
    uni = {1, 0, 2, 1, 1};                    // continuation counts N(. w)
    uni_cum = {1, 1, 3, 4, 5};
    uni_cumd = {0.25, 0.25, 1.5, 1.75, 2.0};
    // Alias tables by hand (buckets of capacity c(v), word w holding
    // c(v w) T units): context 2, T = 3, units 6, 3, 3 for words 0, 2, 4:
    // buckets {0: 4 of 4}, {2: 3, then 0}, {4: 3, then 0}; context <s>,
    // T = 2, units 6, 2: {2: 4 of 4}, {3: 2, then 2}. Alias entries counted
    // from the context's first.
    alias = {{4, 0, 0}, {3, 2, 0}, {3, 4, 0}, {4, 2, 2}, {2, 3, 2}};
    alias_entry = {0, 0, 0, 0, 0};
    const kernels::NgramLevel top{2,
                                  ctx.data(),
                                  ctx_start.data(),
                                  ctx_total.data(),
                                  ent_w.data(),
                                  ent_c.data(),
                                  ent_cum.data(),
                                  ent_cumd.data(),
                                  nullptr,
                                  alias.data(),
                                  alias_entry.data()};
    return kernels::NgramView{
        2, sm, 0.5, 0.75, 5, uni.data(), uni_cum.data(), uni_cumd.data(), 5.0, 4.0, top, kernels::NgramLevel{}};
  }
};

TEST(NgramMath, SmoothedDistributionsSumToOne) {
  Toy toy;
  for (auto sm : {kernels::Smoothing::kMle, kernels::Smoothing::kAddK, kernels::Smoothing::kKneserNey}) {
    const kernels::NgramView m = toy.view(sm);
    for (std::uint32_t v : {2u, 5u, 3u}) {  // seen, seen (<s>), unseen context
      double sum = 0.0;
      for (std::uint32_t w = 0; w < 5; ++w) sum += kernels::ngram_prob(m, v, w);
      if (sm == kernels::Smoothing::kMle && v == 3u) EXPECT_EQ(sum, 0.0);
      else EXPECT_NEAR(sum, 1.0, 1e-15) << "smoothing " << static_cast<int>(sm) << " context " << v;
    }
  }
  // Kneser-Ney by hand: p(4 | 2) = (1 - 0.75)/4 + 0.75*3/4 * p_c(4),
  // p_c(4) = (1 - 0.75)/5 + 0.75*4/5/5.
  const double pc4 = 0.25 / 5 + 0.75 * 4 / 5 / 5;
  EXPECT_NEAR(kernels::ngram_prob(toy.view(kernels::Smoothing::kKneserNey), 2, 4), 0.25 / 4 + 0.75 * 3 / 4 * pc4,
              1e-15);
}

// The first n training sentences of a corpus.
kernels::TokenText first_sentences(const Corpus& corpus, std::size_t n) {
  kernels::TokenText text;
  text.start.push_back(0);
  for (std::size_t sj = 0; sj < n; ++sj) {
    text.tokens.insert(text.tokens.end(), corpus.train.tokens.begin() + corpus.train.start[sj],
                       corpus.train.tokens.begin() + corpus.train.start[sj + 1]);
    text.start.push_back(text.tokens.size());
  }
  return text;
}

// An mle model of the given order over a corpus's vocabulary.
kernels::NgramBatchSpec mle_spec(const Corpus& corpus, int order) {
  kernels::NgramBatchSpec spec;
  spec.order = order;
  spec.smoothing = kernels::Smoothing::kMle;
  spec.V = static_cast<std::uint32_t>(corpus.vocab.size());
  return spec;
}

// Fitted to real text (5000 King James verses), every order and smoothing
// gives a distribution over the V predictable tokens that sums to 1 (mle: or
// 0 for an unseen context), for contexts seen at every level, seen only below
// the top, and unseen; and sampling at the defaults follows it (2e5 draws at
// a seen and an unseen context, every token with p > 1e-3 within 4.5
// binomial standard errors, tokens with p = 0 never drawn).
TEST(NgramMath, FittedModelsAreNormalisedAndSampledExactly) {
  const Corpus& corpus = load_corpus_cached(kjv_path());
  const kernels::TokenText text = first_sentences(corpus, 5000);
  const std::uint32_t V = static_cast<std::uint32_t>(corpus.vocab.size());
  auto id = [&](const std::string& word) {
    return static_cast<std::uint32_t>(std::find(corpus.vocab.begin(), corpus.vocab.end(), word) - corpus.vocab.begin());
  };
  const std::uint32_t the = id("the"), lord = id("lord");  // "the lord": a context seen at every order
  std::vector<unsigned char> present(corpus.vocab.size(), 0);
  for (auto w : text.tokens) present[w] = 1;
  const auto absent = static_cast<std::uint32_t>(std::find(present.begin() + 2, present.end(), 0) - present.begin());
  for (int order : {1, 2, 3})
    for (auto sm : {kernels::Smoothing::kMle, kernels::Smoothing::kAddK, kernels::Smoothing::kKneserNey}) {
      kernels::NgramBatchSpec spec;
      spec.order = order;
      spec.smoothing = sm;
      spec.k = 0.5;
      spec.discount = 0.75;
      spec.V = V;
      const kernels::NgramFit fit(spec, text);
      const kernels::NgramView m = fit.view();
      const std::uint64_t bos = kernels::start_context(order, V);
      const std::uint64_t seen = kernels::next_context(order, V, kernels::next_context(order, V, bos, the), lord);
      const std::uint64_t unseen =
          kernels::next_context(order, V, kernels::next_context(order, V, bos, absent), absent);
      // Order 3: "<absent> the" is unseen at the top level, "the" is seen below.
      const std::uint64_t partly = kernels::next_context(order, V, kernels::next_context(order, V, bos, absent), the);
      for (std::uint64_t ctx : {bos, seen, partly, unseen}) {
        if (sm == kernels::Smoothing::kMle && order == 3 && ctx == partly) continue;  // unseen for mle
        double sum = 0.0;
        for (std::uint32_t w = 0; w < V; ++w) sum += kernels::ngram_prob(m, ctx, w);
        if (sm == kernels::Smoothing::kMle && order > 1 && ctx == unseen) EXPECT_EQ(sum, 0.0);
        else
          EXPECT_NEAR(sum, 1.0, 1e-12) << "order " << order << " smoothing " << static_cast<int>(sm) << " context "
                                       << ctx;
      }
      for (std::uint64_t ctx : {seen, partly, unseen}) {
        if (sm == kernels::Smoothing::kMle && order > 1 && (ctx == unseen || (order == 3 && ctx == partly))) continue;
        const int draws = 200000;
        std::vector<double> count(V, 0.0);
        for (int j = 0; j < draws; ++j)
          count[kernels::sample_next(m, ctx, kernels::token_uniforms(8, 1, 1, 2, j, 0, true))] += 1.0;
        for (std::uint32_t w = 0; w < V; ++w) {
          const double p = kernels::ngram_prob(m, ctx, w);
          if (p == 0.0) {
            EXPECT_EQ(count[w], 0.0) << "order " << order << " token " << w;
          } else if (p > 1e-3) {
            EXPECT_LT(std::abs(count[w] - draws * p) / std::sqrt(draws * p * (1 - p)), 4.5)
                << "order " << order << " smoothing " << static_cast<int>(sm) << " token " << w;
          }
        }
      }
    }
}

// The alias tables that sample a context's counts (mle, add_k) are exact:
// fitted to 5000 King James verses at orders 2 and 3, every context's
// buckets give word w exactly c(v w) T of the T c(v) units (T its word
// types), and no bucket keeps more than its capacity or names an entry
// outside its context. Sampling through them is checked above; this checks
// the builder on every context, the largest (thousands of types, skewed
// counts) included.
TEST(NgramMath, AliasTablesHoldEveryCountExactly) {
  const Corpus& corpus = load_corpus_cached(kjv_path());
  const kernels::TokenText text = first_sentences(corpus, 5000);
  for (int order : {2, 3}) {
    const kernels::NgramBatchSpec spec = mle_spec(corpus, order);
    const kernels::NgramFit fit(spec, text);
    const kernels::NgramLevel& L = fit.view().top;
    ASSERT_NE(L.alias, nullptr);
    std::uint64_t largest = 0;
    for (std::uint64_t ci = 0; ci < L.contexts; ++ci) {
      const std::uint64_t lo = L.ctx_start[ci], hi = L.ctx_start[ci + 1], T = hi - lo;
      const auto C = static_cast<std::uint64_t>(L.ctx_total[ci]);
      largest = std::max(largest, T);
      std::map<std::uint32_t, std::uint64_t> units;
      for (std::uint64_t b = lo; b < hi; ++b) {
        ASSERT_LE(L.alias[b].keep, C);
        ASSERT_LT(L.alias_entry[b], T);
        // The bucket's words are its own entry's and its alias entry's.
        ASSERT_EQ(L.alias[b].own, L.ent_w[b]);
        ASSERT_EQ(L.alias[b].alias, L.ent_w[lo + L.alias_entry[b]]);
        units[L.alias[b].own] += L.alias[b].keep;
        units[L.alias[b].alias] += C - L.alias[b].keep;
      }
      for (std::uint64_t e = lo; e < hi; ++e) {
        ASSERT_EQ(units[L.ent_w[e]], static_cast<std::uint64_t>(L.ent_c[e]) * T)
            << "order " << order << " context " << L.ctx[ci] << " word " << L.ent_w[e];
      }
    }
    EXPECT_GT(largest, 500u) << "order " << order;  // the test reaches large contexts
  }
}

// The cpu backend counts an mle model's sample from the alias cells its
// tokens were drawn from, without a sort: the counts must be exactly those
// of counting the text. 2000 sentences drawn from mle fits of orders 2 and
// 3 to 5000 King James verses; every key and count compared.
TEST(NgramMath, SampleCountsFromAliasCellsEqualCountingTheText) {
  const Corpus& corpus = load_corpus_cached(kjv_path());
  const kernels::TokenText text = first_sentences(corpus, 5000);
  for (int order : {2, 3}) {
    const kernels::NgramBatchSpec spec = mle_spec(corpus, order);
    const kernels::NgramFit fit(spec, text);
    const kernels::NgramView m = fit.view();
    kernels::TokenText sample;
    sample.start.push_back(0);
    std::vector<std::uint64_t> cells;
    for (std::uint64_t j = 0; j < 2000; ++j) {
      std::uint64_t ctx = kernels::start_context(order, spec.V);
      for (std::uint32_t i = 0; i + 1 < kernels::kMaxSentence; ++i) {
        std::uint64_t cell;
        const std::uint32_t w = kernels::sample_next(m, ctx, kernels::token_uniforms(5, 1, 1, 2, j, i, false), cell);
        sample.tokens.push_back(w);
        cells.push_back(cell);
        if (w == 0) break;
        ctx = kernels::next_context(order, spec.V, ctx, w);
      }
      ASSERT_EQ(sample.tokens.back(), 0u);  // no sentence reaches the cut here
      sample.start.push_back(sample.tokens.size());
    }
    std::vector<std::uint64_t> key, key_drawn;
    std::vector<double> c, c_drawn;
    kernels::NgramFit::count(spec, sample, key, c);
    ASSERT_TRUE(fit.count_drawn(cells, key_drawn, c_drawn));
    EXPECT_EQ(key_drawn, key) << "order " << order;
    EXPECT_EQ(c_drawn, c) << "order " << order;
    EXPECT_GT(key.size(), 10000u);  // many types, shared and not
    // A token without a cell (a cut sentence's forced end) is refused.
    cells.back() = kernels::kNoCell;
    EXPECT_FALSE(fit.count_drawn(cells, key_drawn, c_drawn));
  }
}

// Sampling at the defaults draws from ngram_prob: 2e5 draws per context,
// every token's frequency within 4.5 binomial standard errors, with the
// alias tables and with the binary search used for weighted counts.
TEST(NgramMath, SamplingMatchesTheDistribution) {
  Toy toy;
  for (auto sm : {kernels::Smoothing::kMle, kernels::Smoothing::kAddK, kernels::Smoothing::kKneserNey})
    for (const bool alias : {true, false}) {  // without: the binary search of weighted counts
      kernels::NgramView m = toy.view(sm);
      if (!alias) m.top.alias = nullptr;
      for (std::uint32_t v : {2u, 5u}) {
        const int draws = 200000;
        std::vector<double> count(5, 0.0);
        for (int j = 0; j < draws; ++j)
          count[kernels::sample_next(m, v, kernels::token_uniforms(3, 1, 1, 2, j, 0, true))] += 1.0;
        for (std::uint32_t w = 0; w < 5; ++w) {
          const double p = kernels::ngram_prob(m, v, w);
          const double se = std::sqrt(draws * p * (1 - p));
          if (p == 0.0) {
            EXPECT_EQ(count[w], 0.0);
          } else {
            EXPECT_LT(std::abs(count[w] - draws * p) / se, 4.5)
                << "smoothing " << static_cast<int>(sm) << " alias " << alias << " " << v << " " << w;
          }
        }
      }
    }
}

// The sampler's cut rule (sampler_cut) on a context of five words in
// decreasing order of p (dyadic, so sums are exact): top_k keeps the first
// k; top_p keeps the smallest prefix reaching that share of the kept weight;
// the temperature weighs word i by (p_i / p_0)^(1/T) (log_positive and
// exp_poly: within 1e-14 of std::pow's value); weights lost in the sum's
// rounding, or underflowing to 0, leave a greedy cut, never NaN.
TEST(NgramSampler, CutRule) {
  const double p[] = {0.5, 0.25, 0.125, 0.0625, 0.0625};
  const auto prob = [&](std::uint64_t i) { return p[i]; };
  double cum[5];
  EXPECT_EQ(kernels::sampler_cut(prob, 5, 0, 1.0, 1.0, cum), 5u);
  const double running[] = {0.5, 0.75, 0.875, 0.9375, 1.0};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(cum[i], running[i]);
  EXPECT_EQ(kernels::sampler_cut(prob, 5, 2, 1.0, 1.0, cum), 2u);
  EXPECT_EQ(cum[1], 0.75);
  EXPECT_EQ(kernels::sampler_cut(prob, 5, 0, 1.0, 0.75, cum), 2u);  // 0.75 reaches 0.75
  EXPECT_EQ(kernels::sampler_cut(prob, 5, 0, 1.0, 0.76, cum), 3u);
  EXPECT_EQ(kernels::sampler_cut(prob, 5, 4, 1.0, 0.9, cum), 3u);  // 0.875 >= 0.9 * 0.9375
  for (const double T : {0.5, 2.0, 0.25}) {
    ASSERT_EQ(kernels::sampler_cut(prob, 5, 0, T, 1.0, cum), 5u) << T;
    double ref = 0.0;
    for (int i = 0; i < 5; ++i) {
      ref += std::pow(p[i] / p[0], 1.0 / T);
      EXPECT_NEAR(cum[i], ref, 1e-14 * ref) << "T " << T << " word " << i;
    }
  }
  // T = 1e-3: 2^-1000 = 1e-301 for the second word, e^-2079 (0) for the
  // third on: nothing but the first word is left in the sum.
  EXPECT_EQ(kernels::sampler_cut(prob, 5, 0, 0.001, 1.0, cum), 1u);
  EXPECT_EQ(cum[0], 1.0);
  EXPECT_EQ(kernels::sampler_cut(prob, 0, 3, 0.5, 0.9, cum), 0u);
}

// top_k = 1 always emits the most probable continuation; a tiny top_p too.
TEST(NgramSampler, TopKOneAndTinyTopPAreGreedy) {
  for (const char* sampler : {"{top_k: 1}", "{top_p: 0.001}"}) {
    const std::string yaml = std::string("seed: 6\nchains: 2\ngenerations: 2\ntruth: {corpus: kjv}\n") +
                             "model: {family: ngram, order: 2, smoothing: mle}\nsampler: " + sampler +
                             "\ndata: {samples: 2000}\n";
    const auto c = test::run_family(yaml, "cpu");
    // A greedy sampler from <s> repeats one deterministic path: the sample's
    // bigrams are nearly all repeats; its tokens are the most probable ones,
    // so their entropy is finite and below the unrestricted sampler's.
    EXPECT_LT(c.at(1, "distinct_2").mean, 0.05) << sampler;
    EXPECT_TRUE(std::isfinite(c.at(1, "entropy").mean)) << sampler;
    EXPECT_LT(c.at(0, "entropy").mean, 3.0) << sampler;  // the unrestricted model's is 5.4 bits
  }
}

}  // namespace

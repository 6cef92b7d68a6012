// Mitigation strategies (README, "Mitigation strategies") on every family,
// regime and backend: real-data sources and caps, estimator weighting, the
// verifier, tail upsampling, age decay and dedup, checked by exact
// consequences of their rules and against references written from the
// definitions (a statistical check states its tolerance where it is made),
// and the refusals of bad values.
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
#include "tests/support/backend_test.h"

namespace {

using namespace ouro;
using namespace ouro::test;
namespace fs = std::filesystem;

class Strategies : public BackendTest {};

// Every metric of every chain, generation g.
const std::vector<double>& values_at(const FamilyCurves& c, int g) { return c.values.at(g); }

// Normal m of a chain's stream, as the engine draws it (kernels/core/normal.h):
// number m mod 4 of Box-Muller block m / 4. For references written from the
// definitions.
double stream_normal(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, int m) {
  double quad[4];
  kernels::box_muller(rng::draw_block(seed, chain, gen, stream, static_cast<std::uint64_t>(m) >> 2), quad);
  return quad[m & 3];
}

bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// The values of the metrics that depend on the fitted model alone (not on
// the generation's own sample, not on how EM got there), [metric][chain].
std::vector<double> model_metrics(const FamilyCurves& c, int g) {
  static const std::vector<std::string> model_only = {
      "var_ratio",    "det_ratio",   "mean_sq_err",    "w2",       "kl",      "xent",
      "tail_mass",    "heldout_ppl", "zero_prob_rate", "tail_ppl", "support", "vocab_survival",
      "gini_simpson", "tv"};
  // (For text, tail_mass is measured on the generation's own sample.)
  const auto* ngram = dynamic_cast<const NgramSettings*>(c.config.family_settings.get());
  const bool text = ngram != nullptr && !ngram->corpus.empty();
  std::vector<double> out;
  const std::size_t n = static_cast<std::size_t>(c.config.chains);
  for (std::size_t m = 0; m < c.names.size(); ++m)
    if (std::find(model_only.begin(), model_only.end(), c.names[m]) != model_only.end() &&
        !(text && c.names[m] == "tail_mass"))
      out.insert(out.end(), c.values.at(g).begin() + m * n, c.values.at(g).begin() + (m + 1) * n);
  return out;
}

// Configs whose training set is all real data from generation 2 on
// (real_fraction 1): with a fixed real source it is generation 1's real sample
// every time, so a chain's fitted model — and every metric of the model —
// repeats exactly; with fresh real data it does not. (Not the mixtures: EM
// starts from the previous fit or a generation's own k-means++ draw, so the
// same data need not give the same bits.)
std::vector<std::string> all_real(const std::string& backend) {
  std::vector<std::string> out = {
      "seed: 3\nchains: 20\ngenerations: 4\nmodel: {family: gaussian, dim: 2}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 15, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n",
      "seed: 3\nchains: 20\ngenerations: 4\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 15, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n"};
  if (backend == "cpu") {
    out.push_back(
        "seed: 3\nchains: 5\ngenerations: 4\nmodel: {family: ngram, order: 1}\n"
        "truth: {zipf: {vocab: 80, exponent: 1.1}}\nmetrics: {heldout: 300}\n"
        "data: {samples: 300, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n");
    out.push_back(
        "seed: 3\nchains: 3\ngenerations: 3\nmodel: {family: ngram, order: 2}\ntruth: {corpus: kjv}\n"
        "data: {samples: 2000, regime: replace, real_fraction: 1.0, real_source: SOURCE}\n");
  }
  return out;
}

std::string with_source(std::string yaml, const char* source) {
  yaml.replace(yaml.find("SOURCE"), 6, source);
  return yaml;
}

TEST_P(Strategies, FixedRealSourceReusesGenerationOnesRealSample) {
  for (const std::string& yaml : all_real(GetParam())) {
    const FamilyCurves fixed = run_family(with_source(yaml, "fixed"), GetParam(), 0, true);
    for (int g = 2; g <= fixed.config.generations; ++g)
      EXPECT_TRUE(same_bits(model_metrics(fixed, g), model_metrics(fixed, 1))) << "generation " << g << "\n" << yaml;
    const FamilyCurves fresh = run_family(with_source(yaml, "fresh"), GetParam(), 0, true);
    EXPECT_TRUE(same_bits(values_at(fresh, 1), values_at(fixed, 1))) << "generation 1 is the same real sample";
    EXPECT_FALSE(same_bits(model_metrics(fresh, 2), model_metrics(fresh, 1))) << "fresh data must differ:\n" << yaml;
  }
}

// synthetic_cap c raises the real share to 1 - c: a run with real_fraction
// 0.1 and cap 0.7 is, chain for chain, the run with real_fraction 0.3.
TEST_P(Strategies, SyntheticCapRaisesTheRealShare) {
  const std::string base =
      "seed: 5\nchains: 30\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 2.0}\n"
      "data: {samples: 20, regime: accumulate, ";
  const FamilyCurves capped = run_family(base + "real_fraction: 0.1, synthetic_cap: 0.7}\n", GetParam(), 0, true);
  const FamilyCurves plain = run_family(base + "real_fraction: 0.3}\n", GetParam(), 0, true);
  EXPECT_EQ(capped.config.real_count, 6);
  for (int g = 0; g <= 5; ++g) EXPECT_TRUE(same_bits(values_at(capped, g), values_at(plain, g))) << g;
  // A cap above the synthetic share changes nothing.
  const FamilyCurves loose = run_family(base + "real_fraction: 0.3, synthetic_cap: 0.9}\n", GetParam(), 0, true);
  for (int g = 0; g <= 5; ++g) EXPECT_TRUE(same_bits(values_at(loose, g), values_at(plain, g))) << g;
}

// estimator_weight w = 1 (replace): the fitted mean is the mean of the
// generation's r fresh real points alone, whatever the chain's history, so
// E[mean_sq_err_t] = tr(Sigma_0) / r exactly at every t >= 2 (here 2 / 10).
// 4000 chains: mean_sq_err is 0.2 chi^2_1, sd 0.2 sqrt(2), se 0.0045; |z| <
// 4.5 at each of 4 generations. Power: the pooled mean (no weight) and the
// synthetic mean alone (w = 0) carry the drift of earlier generations and sit
// far from 0.2 by generation 10.
TEST_P(Strategies, EstimatorWeightOneFitsTheRealMean) {
  const std::string base =
      "seed: 8\nchains: 4000\ngenerations: 10\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 2.0}\n"
      "data: {samples: 20, regime: replace, real_fraction: 0.5";
  const FamilyCurves real_only = run_family(base + ", estimator_weight: 1}\n", GetParam());
  for (int t : {2, 4, 7, 10}) EXPECT_LT(std::abs(zscore(real_only.at(t, "mean_sq_err"), 0.2)), 4.5) << t;
  const FamilyCurves pooled = run_family(base + "}\n", GetParam());
  const FamilyCurves synthetic_only = run_family(base + ", estimator_weight: 0}\n", GetParam());
  EXPECT_GT(std::abs(zscore(pooled.at(10, "mean_sq_err"), 0.2)), 10.0);
  EXPECT_GT(std::abs(zscore(synthetic_only.at(10, "mean_sq_err"), 0.2)), 10.0);
  // The covariance is the pooled estimate whatever the weight of the mean:
  // generation 2's spread is the same bits with w = 1 and without.
  EXPECT_EQ(real_only.at(2, "var_ratio").mean, pooled.at(2, "var_ratio").mean);
}

// data.verifier (Gaussians, replace). Three exact consequences of its rule:
//  - phi = psi = 1 keeps every candidate, which is the point a run without a
//    verifier uses: the same model in every chain, up to the order of the
//    sums (the cpu's 1-D path tiles them), and draws_per_kept 1;
//  - phi = psi keeps an iid sample of the model, so the law is the one
//    without a verifier: var_ratio and mean_sq_err follow the replace theory
//    ((n-1)/n)^t and 1 - ((n-1)/n)^t (4000 chains, |z| < 4.5), at 1/phi draws
//    per kept point (the theory column, |z| < 4.5);
//  - phi = 1, psi = 0 keeps only plausible points, inside the truth's central
//    interval |x| <= r (r^2 the chi-square_1 quantile at 1 - q): every fitted
//    mean lies inside it and every fitted variance is at most r^2, in every
//    chain and generation. Power: without the verifier some chains leave it.
TEST_P(Strategies, VerifierKeepsWhatItsRuleSays) {
  const std::string base =
      "seed: 5\nchains: 4000\ngenerations: 12\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 20, regime: replace";
  auto with = [&](double phi, double psi) {
    return base + ", verifier: {keep_plausible: " + std::to_string(phi) + ", keep_implausible: " + std::to_string(psi) +
           ", quantile: 0.1}}\n";
  };
  const FamilyCurves none = run_family(base + "}\n", GetParam(), 0, true);
  const FamilyCurves all = run_family(with(1.0, 1.0), GetParam(), 0, true);
  for (int t : {1, 2, 12}) {
    EXPECT_NEAR(all.at(t, "var_ratio").mean, none.at(t, "var_ratio").mean, 1e-12 * none.at(t, "var_ratio").mean);
    EXPECT_EQ(all.at(t, "draws_per_kept").mean, 1.0);
  }
  const FamilyCurves half = run_family(with(0.5, 0.5), GetParam());
  const double a = 19.0 / 20.0;
  for (int t : {2, 6, 12}) {
    EXPECT_LT(std::abs(zscore(half.at(t, "var_ratio"), std::pow(a, t))), 4.5) << t;
    EXPECT_LT(std::abs(zscore(half.at(t, "mean_sq_err"), 1.0 - std::pow(a, t))), 4.5) << t;
    EXPECT_LT(std::abs(zscore(half.at(t, "draws_per_kept"), 2.0)), 4.5) << t;
  }
  const FamilyCurves strict = run_family(with(1.0, 0.0), GetParam(), 0, true);
  const double r2 = kernels::chi2_quantile(0.9, 1);
  const int mse = strict.metric("mean_sq_err"), var = strict.metric("var_ratio");
  const std::int64_t n = strict.config.chains;
  bool none_left = false;
  for (int t = 2; t <= 12; ++t)
    for (std::int64_t i = 0; i < n; ++i) {
      EXPECT_LE(strict.values[t][mse * n + i], r2) << "generation " << t << " chain " << i;
      EXPECT_LE(strict.values[t][var * n + i], r2) << "generation " << t << " chain " << i;
      none_left = none_left || none.values[t][mse * n + i] > r2;
    }
  EXPECT_TRUE(none_left) << "no chain left the interval without the verifier: the check has no power";
  // At generation 2 the model (generation 1's fit) is near the truth, whose
  // plausible share is 1 - q = 0.9: about 1/0.9 draws per kept point (the
  // fits of generation 1 spread it by a few percent).
  EXPECT_NEAR(strict.at(2, "draws_per_kept").mean, 1.0 / 0.9, 0.05);
}

// data.tail_upsample against a reference written from the definitions, chain
// by chain: generation 1 is the MLE fit of the chain's n real draws (normals
// 0..n-1 of its real stream, generation 1, from a N(0, 1) truth); generation
// 2's n synthetic points are x = mu_1 + sd_1 z with z normals 0..n-1 of its
// synthetic stream, generation 2, and a point with x^2 above the chi-square_1
// quantile at 1 - q counts `factor` times in the weighted MLE mean and
// variance. Generation 2's var_ratio and mean_sq_err agree with the reference
// to 1e-10 (relative) in each of 60 chains; the unweighted reference (the
// planted bug: upsampling ignored) differs in most of them.
TEST_P(Strategies, TailUpsampleWeightsTheTruthsTail) {
  const int n = 40, chains = 60;
  const double q = 0.2, factor = 5.0;
  const FamilyCurves c = run_family(
      "seed: 12\nchains: 60\ngenerations: 2\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 40, regime: replace, tail_upsample: {factor: 5, quantile: 0.2}}\n",
      GetParam(), 0, true);
  const double r2_min = kernels::chi2_quantile(1.0 - q, 1);
  auto normal = [](std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, int m) {
    return stream_normal(12, chain, gen, stream, m);
  };
  const int var = c.metric("var_ratio"), mse = c.metric("mean_sq_err");
  int differs = 0;
  for (int ch = 0; ch < chains; ++ch) {
    double s1 = 0.0, s2 = 0.0;
    for (int i = 0; i < n; ++i) s1 += normal(ch, 1, rng::kStreamRealDraw, i);
    const double mu1 = s1 / n;
    for (int i = 0; i < n; ++i) s2 += std::pow(normal(ch, 1, rng::kStreamRealDraw, i) - mu1, 2);
    const double sd1 = std::sqrt(s2 / n);
    auto fit = [&](double f, double& mean, double& variance) {
      double w = 0.0, wx = 0.0, wxx = 0.0;
      std::vector<double> x(n), wt(n);
      for (int i = 0; i < n; ++i) {
        x[i] = mu1 + sd1 * normal(ch, 2, rng::kStreamSyntheticDraw, i);
        wt[i] = x[i] * x[i] > r2_min ? f : 1.0;
        w += wt[i];
        wx += wt[i] * x[i];
      }
      mean = wx / w;
      for (int i = 0; i < n; ++i) wxx += wt[i] * (x[i] - mean) * (x[i] - mean);
      variance = wxx / w;
    };
    double mean, variance, mean0, variance0;
    fit(factor, mean, variance);
    fit(1.0, mean0, variance0);
    const double got_var = c.values[2][var * chains + ch], got_mse = c.values[2][mse * chains + ch];
    EXPECT_NEAR(got_var, variance, 1e-10 * variance) << "chain " << ch;
    EXPECT_NEAR(std::sqrt(got_mse), std::abs(mean), 1e-10 * sd1) << "chain " << ch;
    differs += std::abs(got_var - variance0) > 1e-6 * variance0;
  }
  EXPECT_GT(differs, chains / 2) << "upsampling barely changed the fits: the check has little power";
}

// data.age_decay under accumulate against a reference written from the
// definitions, chain by chain: every point drawn so far is kept (generation
// 1's from the N(0, 1) truth, generation k's from generation k-1's fit, with
// the chain's normals), a point of generation k weighs q^(t-k) in the fit of
// generation t (weighted MLE mean and variance), and the composition is the
// weighted share of synthetic points and weighted mean age. 40 chains x 6
// generations, 1e-9 relative. Planted bug: the unweighted pool (q ignored),
// which differs in most chains.
TEST_P(Strategies, AgeDecayWeighsOldData) {
  const int n = 20, chains = 40, generations = 6;
  const double q = 0.6;
  const FamilyCurves c = run_family(
      "seed: 21\nchains: 40\ngenerations: 6\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 20, regime: accumulate, age_decay: 0.6}\n",
      GetParam(), 0, true);
  auto normal = [](std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, int m) {
    return stream_normal(21, chain, gen, stream, m);
  };
  const int var = c.metric("var_ratio"), mse = c.metric("mean_sq_err"), age = c.metric("data_age"),
            share = c.metric("synthetic_share");
  int differs = 0;
  for (int ch = 0; ch < chains; ++ch) {
    std::vector<std::vector<double>> points;  // points[k - 1]: generation k's
    double mu = 0.0, sd = 1.0;
    for (int t = 1; t <= generations; ++t) {
      std::vector<double> x(n);
      for (int i = 0; i < n; ++i)
        x[i] = t == 1 ? normal(ch, 1, rng::kStreamRealDraw, i) : mu + sd * normal(ch, t, rng::kStreamSyntheticDraw, i);
      points.push_back(x);
      auto fit = [&](double decay, double& mean, double& variance, double& mean_age, double& syn_share) {
        double w = 0.0, wx = 0.0, wxx = 0.0, wage = 0.0, wsyn = 0.0;
        for (int k = 1; k <= t; ++k)
          for (double v : points[k - 1]) {
            const double wk = std::pow(decay, t - k);
            w += wk, wx += wk * v, wage += wk * (t - k), wsyn += k >= 2 ? wk : 0.0;
          }
        mean = wx / w;
        for (int k = 1; k <= t; ++k)
          for (double v : points[k - 1]) wxx += std::pow(decay, t - k) * (v - mean) * (v - mean);
        variance = wxx / w;
        mean_age = wage / w;
        syn_share = wsyn / w;
      };
      double mean, variance, mean_age, syn_share, m0, v0, a0, s0;
      fit(q, mean, variance, mean_age, syn_share);
      fit(1.0, m0, v0, a0, s0);
      const auto at = [&](int metric) { return c.values[t][metric * chains + ch]; };
      EXPECT_NEAR(at(var), variance, 1e-9 * variance) << "generation " << t << " chain " << ch;
      EXPECT_NEAR(std::sqrt(at(mse)), std::abs(mean), 1e-9 * sd) << "generation " << t << " chain " << ch;
      EXPECT_NEAR(at(age), mean_age, 1e-12) << "generation " << t;
      EXPECT_NEAR(at(share), syn_share, 1e-12) << "generation " << t;
      differs += t >= 3 && std::abs(at(var) - v0) > 1e-6 * v0;
      mu = mean;
      sd = std::sqrt(variance);
    }
  }
  EXPECT_GT(differs, chains) << "the decay barely changed the fits: the check has little power";
}

// The Gaussian synthetic-data filters written out from their definitions,
// for one 1-D chain with a N(0, 1) truth and the MLE fit (n points a
// generation, `real` of them fresh real draws from generation 2 on):
// generation k's synthetic candidates are x = mu + sd z, z the normals real,
// real + 1, ... of its synthetic stream (mu, sd: generation k-1's fit);
// candidate j is kept by the verifier when word j of the verify stream is
// below round(phi 2^32) for x^2 within the chi-square_1 quantile at 1 - q and
// round(psi 2^32) otherwise; dedup then drops it when floor(x / r + 1/2)
// is the cell of a candidate kept before it in the generation; candidates are
// examined until n - real are kept or 10 (n - real) drawn. A kept x^2 beyond
// the quantile at 1 - tail_q counts tail_factor times; under accumulate
// every point of generation k weighs decay^(t - k) in generation t's fit,
// and the composition is the age-weighted share of synthetic points and mean
// age over points; under accumulate_subsample generation t trains on the
// min(n, P) of the P points kept so far that Algorithm S chooses
// (kernels::for_each_selected over positions in generation order).
// `filtered` false gives the planted bug: every candidate kept with weight 1,
// and no decay.
struct FilterRule {
  bool accumulate = false;
  bool subsample = false;  // with accumulate
  double decay = 1.0;
  bool verify = false;
  double phi = 1.0, psi = 1.0, verifier_q = 0.5;
  double tail_factor = 1.0, tail_q = 0.5;
  double dedup_r = 0.0;  // 0: no dedup
};
struct ReferenceFit {
  double mean, variance, share, age, draws_per_kept;
};
std::vector<ReferenceFit> reference_filtered_chain(std::uint32_t seed, std::uint32_t ch, int n, int real,
                                                   int generations, const FilterRule& rule, bool filtered) {
  const double r2_max = kernels::chi2_quantile(1.0 - rule.verifier_q, 1);
  const double r2_min = kernels::chi2_quantile(1.0 - rule.tail_q, 1);
  struct Point {
    double x, w;
    int k;
    bool synthetic;
  };
  std::vector<Point> pool;
  std::vector<ReferenceFit> fits(generations + 1);
  double mu = 0.0, sd = 1.0;
  for (int t = 1; t <= generations; ++t) {
    if (!rule.accumulate) pool.clear();
    const int reals = t == 1 ? n : real;
    for (int i = 0; i < reals; ++i)
      pool.push_back({stream_normal(seed, ch, t, rng::kStreamRealDraw, i), 1.0, t, false});
    kernels::VerifyWords words;
    std::set<double> cells;
    int kept = 0, j = 0;
    for (; t >= 2 && kept < n - real && j < 10 * (n - real); ++j) {
      const double x = mu + sd * stream_normal(seed, ch, t, rng::kStreamSyntheticDraw, real + j);
      if (filtered && rule.verify &&
          !words.keeps(seed, ch, t, j, kernels::keep_threshold(x * x <= r2_max ? rule.phi : rule.psi)))
        continue;
      if (filtered && rule.dedup_r > 0.0 && !cells.insert(std::floor(x / rule.dedup_r + 0.5)).second) continue;
      pool.push_back({x, filtered && x * x > r2_min ? rule.tail_factor : 1.0, t, true});
      ++kept;
    }
    std::vector<Point> train = pool;
    if (rule.subsample) {
      train.clear();
      const auto P = static_cast<std::int64_t>(pool.size());
      kernels::for_each_selected(seed, ch, t, P, std::min<std::int64_t>(n, P),
                                 [&](std::int64_t j) { train.push_back(pool[j]); });
    }
    double w = 0.0, wx = 0.0, wxx = 0.0, pts = 0.0, syn = 0.0, ages = 0.0;
    const double decay = filtered ? rule.decay : 1.0;
    for (const Point& p : train) {
      const double wk = std::pow(decay, t - p.k);
      w += wk * p.w, wx += wk * p.w * p.x;
      pts += wk, syn += p.synthetic ? wk : 0.0, ages += wk * (t - p.k);
    }
    const double mean = wx / w;
    for (const Point& p : train) wxx += std::pow(decay, t - p.k) * p.w * (p.x - mean) * (p.x - mean);
    fits[t] = {mean, wxx / w, syn / pts, ages / pts, t >= 2 ? static_cast<double>(j) / kept : 1.0};
    mu = mean;
    sd = std::sqrt(wxx / w);
  }
  return fits;
}

// Checks every chain and generation >= 2 of a 1-D Gaussian run (seed 23, n =
// 20 with 5 fresh real points) against reference_filtered_chain to 1e-9
// relative (fits) and 1e-12 (composition; draws_per_kept exactly), and
// returns in how many chain-generations from the third on the planted bug
// (the unfiltered pool) differs from the run.
int expect_filter_rule(const FamilyCurves& c, const FilterRule& rule, const std::string& what) {
  const int chains = static_cast<int>(c.config.chains), generations = c.config.generations;
  const int var = c.metric("var_ratio"), mse = c.metric("mean_sq_err"), age = c.metric("data_age"),
            share = c.metric("synthetic_share"), dpk = c.metric("draws_per_kept");
  int differs = 0;
  for (int ch = 0; ch < chains; ++ch) {
    const auto ref = reference_filtered_chain(23, ch, 20, 5, generations, rule, true);
    const auto bug = reference_filtered_chain(23, ch, 20, 5, generations, rule, false);
    for (int t = 2; t <= generations; ++t) {
      const auto at = [&](int metric) { return c.values[t][metric * chains + ch]; };
      const ReferenceFit& f = ref[t];
      EXPECT_NEAR(at(var), f.variance, 1e-9 * f.variance) << what << ", generation " << t << " chain " << ch;
      EXPECT_NEAR(std::sqrt(at(mse)), std::abs(f.mean), 1e-9 * std::sqrt(f.variance))
          << what << ", generation " << t << " chain " << ch;
      EXPECT_NEAR(at(share), f.share, 1e-12) << what << ", generation " << t << " chain " << ch;
      EXPECT_NEAR(at(age), f.age, 1e-12) << what << ", generation " << t << " chain " << ch;
      EXPECT_EQ(at(dpk), f.draws_per_kept) << what << ", generation " << t << " chain " << ch;
      if (t >= 3) differs += std::abs(at(var) - bug[t].variance) > 1e-6 * bug[t].variance;
    }
  }
  return differs;
}

// The verifier and tail upsampling under accumulate with age decay 0.6
// (phi = 1, psi = 0.3, q = 0.2; factor 3 beyond the 0.1 tail), against the
// rule written out (reference_filtered_chain), 30 chains x 5 generations.
// Planted bug: the unfiltered pool, which differs in most chains.
TEST_P(Strategies, FiltersUnderAccumulatePoolTheKeptPoints) {
  const FamilyCurves c = run_family(
      "seed: 23\nchains: 30\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 20, regime: accumulate, real_fraction: 0.25, age_decay: 0.6, "
      "verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}, tail_upsample: {factor: 3, quantile: "
      "0.1}}\n",
      GetParam(), 0, true);
  FilterRule rule;
  rule.accumulate = true, rule.decay = 0.6;
  rule.verify = true, rule.phi = 1.0, rule.psi = 0.3, rule.verifier_q = 0.2;
  rule.tail_factor = 3.0, rule.tail_q = 0.1;
  EXPECT_GT(expect_filter_rule(c, rule, "verifier + tail, accumulate"), 30)
      << "the filters barely changed the fits: the check has little power";
}

// Gaussian dedup (kernels/training/dedup.h through filtered_zsums) against the rule
// written out, 30 chains x 5 generations each: on a grid of 0.2 about a
// quarter of the 15 synthetic candidates a generation repeat a cell (the
// planted bug, no dedup, then differs in most chains); under replace and
// under accumulate with decay 0.7; with the verifier judging first; and on
// a grid of 1e3, where every candidate falls in one cell, so one synthetic
// point is kept and the whole budget (150 draws) is spent.
TEST_P(Strategies, GaussianDedupKeepsWhatItsRuleSays) {
  const std::string base =
      "seed: 23\nchains: 30\ngenerations: 5\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 20, real_fraction: 0.25, dedup: true";
  for (const std::string extra :
       {", dedup_resolution: 0.2, regime: replace", ", dedup_resolution: 0.2, regime: accumulate, age_decay: 0.7",
        ", dedup_resolution: 0.2, regime: replace, "
        "verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}",
        ", dedup_resolution: 1000, regime: replace"}) {
    const FamilyCurves c = run_family(base + extra + "}\n", GetParam(), 0, true);
    FilterRule rule;
    rule.accumulate = c.config.regime == kernels::Regime::kAccumulate;
    rule.decay = c.config.age_decay;
    rule.dedup_r = c.config.dedup_resolution;
    rule.verify = c.config.verifier, rule.phi = 1.0, rule.psi = 0.3, rule.verifier_q = 0.2;
    const int differs = expect_filter_rule(c, rule, extra);
    if (rule.dedup_r == 1000.0) {
      for (int t = 2; t <= 5; ++t) EXPECT_EQ(c.at(t, "draws_per_kept").mean, 150.0) << "generation " << t;
    } else {
      EXPECT_GT(differs, 30) << extra << ": dedup barely changed the fits: the check has little power";
    }
  }
}

// The Gaussian filters and age decay under accumulate_subsample (a chosen
// synthetic point is regenerated by examining its generation's candidates
// again), against the rule written out, 30 chains x 6 generations: the
// verifier with tail upsampling, dedup on a grid of 0.2 with the verifier,
// the verifier with age decay 0.6, age decay alone (the unfiltered
// subsample, weighted), and dedup on a grid of 1e3, where every generation
// keeps one synthetic point of its 15 (the pool's generations are then of
// unequal size; the whole budget of 150 draws is spent). Planted bug: the
// unweighted, unfiltered pool, which differs in most chains.
TEST_P(Strategies, FiltersUnderAccumulateSubsampleRegenerateTheKeptPoints) {
  const std::string base =
      "seed: 23\nchains: 30\ngenerations: 6\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1.0}\n"
      "data: {samples: 20, regime: accumulate_subsample, real_fraction: 0.25";
  const std::string verifier = ", verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}";
  for (const std::string& extra :
       {verifier + ", tail_upsample: {factor: 3, quantile: 0.1}", verifier + ", dedup: true, dedup_resolution: 0.2",
        verifier + ", age_decay: 0.6", std::string(", age_decay: 0.6"),
        std::string(", dedup: true, dedup_resolution: 1000")}) {
    const FamilyCurves c = run_family(base + extra + "}\n", GetParam(), 0, true);
    FilterRule rule;
    rule.accumulate = rule.subsample = true;
    rule.decay = c.config.age_decay;
    rule.verify = c.config.verifier, rule.phi = 1.0, rule.psi = 0.3, rule.verifier_q = 0.2;
    if (c.config.tail_upsample) rule.tail_factor = 3.0, rule.tail_q = 0.1;
    rule.dedup_r = c.config.dedup ? c.config.dedup_resolution : 0.0;
    const int differs = expect_filter_rule(c, rule, extra);
    if (rule.dedup_r == 1000.0) {
      for (int t = 2; t <= 6; ++t) EXPECT_EQ(c.at(t, "draws_per_kept").mean, 150.0) << "generation " << t;
    }
    EXPECT_GT(differs, 30) << extra << ": the filters barely changed the fits";
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, Strategies, ::testing::Values("cpu", "cuda"), test::backend_name);

// The mixture verifier (kernels/gmm/gmm.h, gmm_filtered_points) against the
// rule written out here: candidate j is synthetic draw real + j of the
// generation, plausible when the truth's log-density there reaches the
// truth's q-quantile, kept iff word j of the verify stream is below
// round(phi * 2^32) (plausible) or round(psi * 2^32); kept points in order,
// until need are kept or need * max_draw_factor examined. Then: the estimated
// quantile leaves a share q of fresh truth draws implausible, and phi = psi =
// 1 runs bit for bit as no verifier.
TEST(Strategies, MixtureVerifierKeepsWhatItsRuleSays) {
  const std::string yaml =
      "seed: 5\nchains: 6\ngenerations: 4\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.6, 0.4], means: [[0, 0], [4, 1]], covs: [[1, 1], [1, 2]]}\n"
      "data: {samples: 50, regime: replace, real_fraction: 0.2";
  const PointConfig c =
      load_experiment_text(yaml + ", verifier: {keep_plausible: 0.9, keep_implausible: 0.2, quantile: 0.3}}\n", {})
          .points.front()
          .config;
  const kernels::GmmTruth tr = make_gmm_truth(c);
  const double ll_min = gmm_log_density_quantile(c, tr, 0.3);
  kernels::GmmStep s{c.seed, 2, 2, c.samples, c.real_count, 2, c.regime, c.real_source, {}, {}, {}};
  s.verifier.on = 1;
  s.verifier.keep_plausible = kernels::keep_threshold(0.9);
  s.verifier.keep_implausible = kernels::keep_threshold(0.2);
  s.verifier.log_density_min = ll_min;
  s.verifier.max_draw_factor = 10;
  // A model unlike the truth: the truth's block with its means moved.
  std::vector<double> block(tr.params, tr.params + kernels::gmm_block_size(2, 2));
  kernels::GmmView mv = kernels::gmm_view(2, 2, block.data());
  mv.mu[0] += 1.5;
  mv.mu[3] -= 1.0;
  const kernels::GmmCView model = kernels::as_const(mv);
  const std::int64_t real = c.real_count, need = c.samples - real;
  std::vector<double> X(need * 2);
  std::int64_t drawn = 0;
  const std::int64_t kept = kernels::gmm_filtered_points(s, 3, tr, model, real, need, X.data(), nullptr, drawn);
  std::vector<double> ref;
  double lp[kernels::kGmmMaxComponents];
  std::int64_t j = 0;
  for (; j < need * 10 && static_cast<std::int64_t>(ref.size()) < need * 2; ++j) {
    double x[2];
    kernels::gmm_draw(c.seed, 3, 2, false, real + j, model, x);
    const bool plausible = kernels::gmm_log_density(kernels::truth_view(tr), false, x, lp) >= ll_min;
    const std::uint32_t word = rng::draw_block(c.seed, 3, 2, rng::kStreamVerify, j >> 2).v[j & 3];
    const double p = plausible ? 0.9 : 0.2;
    if (word < std::llround(p * 4294967296.0)) ref.insert(ref.end(), x, x + 2);
  }
  ASSERT_EQ(kept * 2, static_cast<std::int64_t>(ref.size()));
  EXPECT_EQ(kept, need);
  EXPECT_EQ(drawn, j);
  EXPECT_GT(drawn, kept);  // the rule drops some (psi = 0.2 on the implausible third)
  EXPECT_EQ(std::memcmp(X.data(), ref.data(), ref.size() * sizeof(double)), 0);

  // The quantile: 10^5 fresh truth draws (another chain id), implausible with
  // probability q = 0.3 up to the estimate's own error (2e5 draws): se of the
  // share sqrt(0.21 (1/1e5 + 1/2e5)) = 0.0018, |z| < 4.5.
  int low = 0;
  for (int i = 0; i < 100000; ++i) {
    double x[2];
    kernels::gmm_draw(c.seed, 12345, 1, true, i, kernels::truth_view(tr), x);
    low += kernels::gmm_log_density(kernels::truth_view(tr), false, x, lp) < ll_min;
  }
  EXPECT_NEAR(low / 1e5, 0.3, 4.5 * std::sqrt(0.21 * (1 / 1e5 + 1 / 2e5)));

  // phi = psi = 1 keeps every candidate: the run of no verifier, bit for bit.
  const FamilyCurves off = run_family(yaml + "}\n", "cpu", 2, true);
  const FamilyCurves on =
      run_family(yaml + ", verifier: {keep_plausible: 1, keep_implausible: 1, quantile: 0.3}}\n", "cpu", 2, true);
  for (int g = 0; g <= 4; ++g) EXPECT_TRUE(same_bits(on.values[g], off.values[g])) << "generation " << g;
}

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
TEST(Strategies, MarkovStrategiesReplayExactly) {
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
TEST(Strategies, NgramVerifierKeepsPlausibleTokens) {
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

// Mixtures: a real point of a later generation is, under a fixed source, the
// same point of generation 1 (bit for bit), and under a fresh one another.
TEST(Strategies, MixtureRealPointsComeFromGenerationOneWhenFixed) {
  const Experiment ex = load_experiment_text(
      "seed: 3\nchains: 1\ngenerations: 4\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.6, 0.4], means: [[0, 0], [4, 1]], covs: [[1, 1], [1, 2]]}\n"
      "data: {samples: 50, regime: accumulate, real_fraction: 0.2}\n",
      {});
  const PointConfig& c = ex.points.front().config;
  const kernels::GmmTruth tr = make_gmm_truth(c);
  auto no_model = [](int) -> const double* { return nullptr; };
  for (auto source : {kernels::RealSource::kFixed, kernels::RealSource::kFresh}) {
    const kernels::GmmStep s{c.seed, 2, 2, c.samples, c.real_count, 4, c.regime, source, {}, {}, {}};
    for (int k = 2; k <= 4; ++k)
      for (int i = 0; i < c.real_count; ++i) {
        double first[2], later[2];
        ASSERT_TRUE(kernels::gmm_pool_point(s, 7, i, tr, no_model, first));
        ASSERT_TRUE(
            kernels::gmm_pool_point(s, 7, static_cast<std::int64_t>(k - 1) * c.samples + i, tr, no_model, later));
        const bool same = std::memcmp(first, later, sizeof first) == 0;
        EXPECT_EQ(same, source == kernels::RealSource::kFixed) << "generation " << k << " point " << i;
      }
  }
}

// data.dedup on a corpus whose model can say three sentences only ("a",
// "b", "c", two tokens each with </s>): a sample keeps each at most once, so
// drawing stops at the budget of max_draw_factor * samples = 200 tokens
// (exactly: every sentence has 2 tokens) with 6 tokens kept, or 4 or 2 in a
// chain whose generation-1 real sample missed a sentence (then its model
// cannot say it). Without dedup nothing is dropped. The same on 1 and 2
// threads, bit for bit.
TEST(Strategies, DedupKeepsEachSentenceOnce) {
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

TEST(Strategies, RealSamplesConsumedFollowTheSource) {
  const std::string base =
      "seed: 1\nchains: 2\ngenerations: 10\nmodel: {family: gaussian}\ntruth: {isotropic: 1}\n"
      "data: {samples: 100, real_fraction: 0.25";
  EXPECT_EQ(real_samples_per_chain(load_experiment_text(base + "}\n", {}).points[0].config), 100 + 9 * 25);
  EXPECT_EQ(real_samples_per_chain(load_experiment_text(base + ", real_source: fixed}\n", {}).points[0].config), 100);
}

// Every per-chain value of two runs bit for bit (NaN matching NaN).
void expect_same_values(const FamilyCurves& a, const FamilyCurves& b, const std::string& what) {
  SCOPED_TRACE(what);
  test::expect_same_chain_values(a, b, [](int, double x, double y) { return x == y; });
}

// The rule tests' mixture: two 2-D components (0.6, 0.4), the config's
// data section as given, and the truth's q-quantile of its own log-density.
std::tuple<PointConfig, kernels::GmmTruth, double> two_component_case(const std::string& data, double q) {
  const PointConfig c = load_experiment_text(
                            "seed: 5\nchains: 2\ngenerations: 6\nmodel: {family: gmm, components: 2, dim: 2}\n"
                            "truth: {weights: [0.6, 0.4], means: [[0, 0], [4, 1]], covs: [[1, 1], [1, 2]]}\n"
                            "data: {" +
                                data + "}\n",
                            {})
                            .points.front()
                            .config;
  const kernels::GmmTruth tr = make_gmm_truth(c);
  return {c, tr, gmm_log_density_quantile(c, tr, q)};
}

// data.verifier on a corpus: its training split is 18 verses "a b" and 2
// "c d" (with every 10th line held out), so the generation-0 mle bigram model
// gives "a b" probability 0.9 and "c d" 0.1, and with quantile 0.2 the
// plausibility bound is ln 0.9 (the split's 20 sentences sorted, rank
// floor(0.2 * 20) = 4, past the two "c d"): "c d" is implausible. With phi = 1, psi = 0 no
// synthetic "c d" survives, so from generation 2 on every chain has lost c
// and d (vocab_survival exactly 1/2); without the verifier most chains keep
// them at generation 2. phi = psi = 1 runs bit for bit as no verifier.
TEST(Strategies, CorpusVerifierDropsImplausibleSentences) {
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

// Mixture dedup (kernels/gmm/gmm.h, gmm_filtered_points) against the rule
// written out: candidate j is synthetic draw real + j of the generation; it
// is dropped when its cell (each coordinate rounded to the grid: floor(x / r
// + 1/2)) equals the cell of a point already kept; kept points in order until
// need are kept or need * max_draw_factor examined. On a grid of 0.5 about a
// third of 150 candidates from a tight model repeat a cell (the check has
// power); on a grid of 1e3 all fall in one cell, so one point is kept and the
// whole budget is drawn; with the verifier on as well, both rules apply.
TEST(Strategies, MixtureDedupKeepsWhatItsRuleSays) {
  const auto [c, tr, ll_min] = two_component_case(
      "samples: 150, regime: replace, real_fraction: 0.2, dedup: true, dedup_resolution: 0.5, "
      "verifier: {keep_plausible: 1, keep_implausible: 0.3, quantile: 0.2}",
      0.2);
  // A tight model: the truth's block with its covariances shrunk 25 times.
  std::vector<double> block(tr.params, tr.params + kernels::gmm_block_size(2, 2));
  kernels::GmmView mv = kernels::gmm_view(2, 2, block.data());
  for (int a = 0; a < 8; ++a) mv.cov[a] /= 25.0;
  ASSERT_TRUE(kernels::gmm_complete(mv));
  const kernels::GmmCView model = kernels::as_const(mv);
  const std::int64_t real = c.real_count, need = c.samples - real;
  for (const auto& [resolution, verify] :
       std::vector<std::pair<double, bool>>{{0.5, false}, {1e3, false}, {0.5, true}}) {
    kernels::GmmStep s{c.seed, 2, 2, c.samples, c.real_count, 2, c.regime, c.real_source, {}, {}, {}};
    s.verifier.max_draw_factor = 10;
    s.dedup.on = 1;
    s.dedup.resolution = resolution;
    if (verify) {
      s.verifier.on = 1;
      s.verifier.keep_plausible = kernels::keep_threshold(1.0);
      s.verifier.keep_implausible = kernels::keep_threshold(0.3);
      s.verifier.log_density_min = ll_min;
    }
    std::vector<double> X(need * 2);
    std::vector<std::int64_t> table(kernels::dedup_table_size(need));
    std::int64_t drawn = 0;
    const std::int64_t kept = kernels::gmm_filtered_points(s, 3, tr, model, real, need, X.data(), table.data(), drawn);
    std::vector<double> ref;
    std::set<std::pair<std::int64_t, std::int64_t>> cells;
    double lp[kernels::kGmmMaxComponents];
    std::int64_t j = 0, repeats = 0;
    for (; j < need * 10 && static_cast<std::int64_t>(ref.size()) < need * 2; ++j) {
      double x[2];
      kernels::gmm_draw(c.seed, 3, 2, false, real + j, model, x);
      if (verify) {
        const bool plausible = kernels::gmm_log_density(kernels::truth_view(tr), false, x, lp) >= ll_min;
        const rng::Block b = rng::draw_block(c.seed, 3, 2, rng::kStreamVerify, static_cast<std::uint64_t>(j) / 4);
        if (!(b.v[j % 4] < (plausible ? kernels::keep_threshold(1.0) : kernels::keep_threshold(0.3)))) continue;
      }
      const auto cell = std::make_pair(static_cast<std::int64_t>(std::floor(x[0] / resolution + 0.5)),
                                       static_cast<std::int64_t>(std::floor(x[1] / resolution + 0.5)));
      if (!cells.insert(cell).second) {
        ++repeats;
        continue;
      }
      ref.insert(ref.end(), x, x + 2);
    }
    ASSERT_EQ(kept * 2, static_cast<std::int64_t>(ref.size())) << "resolution " << resolution << " verify " << verify;
    EXPECT_EQ(drawn, j);
    for (std::size_t i = 0; i < ref.size(); ++i) EXPECT_EQ(X[i], ref[i]) << "coordinate " << i;
    if (resolution == 1e3) {
      EXPECT_EQ(kept, 1);
      EXPECT_EQ(drawn, need * 10);
    } else {
      EXPECT_GT(repeats, need / 4) << "too few repeated cells: the check has little power";
    }
  }
}

// A grid finer than any two draws (1e-9) drops nothing: 2-D Gaussians with
// dedup on run bit for bit as without it (the same candidates, summed in the
// same order; in 1-D the cpu tiles the unfiltered sums, so only 2-D is
// bitwise).
TEST(Strategies, GaussianDedupOnAFineGridChangesNothing) {
  const std::string base =
      "seed: 6\nchains: 20\ngenerations: 4\nmodel: {family: gaussian, dim: 2}\n"
      "truth: {isotropic: 1.0}\ndata: {samples: 40, real_fraction: 0.2, regime: accumulate";
  const FamilyCurves off = run_family(base + "}\n", "cpu", 0, true);
  const FamilyCurves on = run_family(base + ", dedup: true, dedup_resolution: 1.0e-9}\n", "cpu", 0, true);
  expect_same_values(off, on, "Gaussian dedup on a fine grid");
}

// Mixture frequency weights (kernels/gmm/gmm.h, gmm_point_weights) against the
// rule written out: at generation 4 (n = 30, 6 real points per generation
// from generation 2, tail_upsample factor 3 below the truth's 0.1-quantile
// of log-density), pool point j belongs to generation k = j / n + 1, is real
// when j % n < (k == 1 ? n : 6), and weighs 0.7^(4 - k) under accumulate and
// accumulate_subsample with age_decay 0.7 (1 under replace, where every
// point is generation 4's), times 3 when it is synthetic and in the truth's
// tail. Under accumulate_subsample the points are the pool positions
// gmm_subsample_positions chooses, and its composition is the age-weighted
// share of synthetic points and mean age. std::pow and the truth's density
// written out here: 1e-15 relative.
TEST(Strategies, MixtureWeightsFollowTheirRule) {
  const auto [c, tr, ll_min] = two_component_case(
      "samples: 30, regime: accumulate, real_fraction: 0.2, age_decay: 0.7, tail_upsample: {factor: 3, quantile: 0.1}",
      0.1);
  using kernels::Regime;
  for (const auto regime : {Regime::kAccumulate, Regime::kReplace, Regime::kAccumulateSubsample}) {
    kernels::GmmStep s{c.seed, 2, 2, c.samples, c.real_count, 4, regime, c.real_source, {}, {}, {}};
    s.weighting.tail = 1;
    s.weighting.tail_factor = 3.0;
    s.weighting.tail_log_density = ll_min;
    s.weighting.age_decay = regime == Regime::kReplace ? 1.0 : 0.7;
    const std::int64_t m = kernels::gmm_train_size(s);
    std::vector<double> X(m * 2), W(m);
    std::vector<std::int64_t> pos(m);
    double share = 0.0, age = 0.0;
    const bool subsample = regime == Regime::kAccumulateSubsample;
    if (subsample) kernels::gmm_subsample_positions(s, 1, pos.data(), share, age);
    else
      for (std::int64_t p = 0; p < m; ++p) pos[p] = kernels::gmm_pool_position(s, p);
    auto model_of = [&](int) { return static_cast<const double*>(tr.params); };  // any model will do
    for (std::int64_t p = 0; p < m; ++p) kernels::gmm_pool_point(s, 1, pos[p], tr, model_of, X.data() + 2 * p);
    const double total = kernels::gmm_point_weights(s, tr, X.data(), m, subsample ? pos.data() : nullptr, W.data());
    double ref_total = 0.0, points = 0.0, synthetic = 0.0, ages = 0.0;
    int tail_synthetic = 0, tail_real = 0;
    double lp[kernels::kGmmMaxComponents];
    for (std::int64_t p = 0; p < m; ++p) {
      const std::int64_t j = pos[p];
      const int k = static_cast<int>(j / c.samples) + 1;
      const bool real = j % c.samples < (k == 1 ? c.samples : c.real_count);
      const bool tail = kernels::gmm_log_density(kernels::truth_view(tr), false, X.data() + 2 * p, lp) < ll_min;
      const double a = std::pow(s.weighting.age_decay, 4 - k), ref = a * (!real && tail ? 3.0 : 1.0);
      EXPECT_NEAR(W[p], ref, 1e-15 * ref) << "point " << p;
      ref_total += ref;
      points += a, synthetic += real ? 0.0 : a, ages += a * (4 - k);
      tail_synthetic += !real && tail;
      tail_real += real && tail;
    }
    EXPECT_NEAR(total, ref_total, 1e-13 * ref_total);
    if (subsample) {
      EXPECT_NEAR(share, synthetic / points, 1e-14);
      EXPECT_NEAR(age, ages / points, 1e-14);
    }
    EXPECT_GT(tail_synthetic, 0);  // the rule's branches are all reached
    if (regime == Regime::kAccumulate) {
      EXPECT_GT(tail_real, 0);
    }
  }
}

// Weights of one change nothing: tail_upsample with factor 1 (weights on,
// every one 1) runs bit for bit as no weighting, for mixtures under replace
// with a verifier and under accumulate_subsample.
TEST(Strategies, MixtureUnitWeightsChangeNothing) {
  const std::string base =
      "seed: 6\nchains: 12\ngenerations: 4\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.7, 0.3], means: [[0, 0], [3, 2]], covs: [[1, 1], [0.5, 0.5]]}\n"
      "data: {samples: 80, real_fraction: 0.2, ";
  for (const std::string regime :
       {"regime: replace, verifier: {keep_plausible: 1, keep_implausible: 0.5, quantile: 0.2}",
        "regime: accumulate_subsample"}) {
    const FamilyCurves off = run_family(base + regime + "}\n", "cpu", 0, true);
    const FamilyCurves on =
        run_family(base + regime + ", tail_upsample: {factor: 1, quantile: 0.2}}\n", "cpu", 0, true);
    expect_same_values(off, on, regime);
  }
}

// Mixture filters in the pooling regimes (kernels/gmm/gmm.h, gmm_filtered_train)
// against the rule written out: at generation 5 (n = 40, 8 real points from
// generation 2), generation k's points are its real draws (gmm_draw of its
// real stream) then its kept synthetic candidates (gmm_filtered_points with
// generation k's counters and generation k-1's model, here the truth with its
// covariances scaled by 1 + k/4 so that a wrong model shows); accumulate
// trains on every generation's points in order, accumulate_subsample on the
// P pooled points chosen by Algorithm S over P (n of them). A point of
// generation k weighs age_decay^(5 - k) (0.7, both regimes), times 3 when synthetic
// and in the truth's 0.1 tail; the composition is the age-weighted share of
// synthetic points and mean age. With the verifier (phi 1, psi 0.3), dedup
// on a grid of 1 and a draw budget of twice the points needed, the
// generations fall short by different numbers of points (checked), so a
// misplaced generation boundary shows. Points bit for bit,
// weights to 1e-15, totals and composition to 1e-13.
TEST(Strategies, MixtureFiltersRebuildEveryPooledGeneration) {
  const auto [c, tr, ll_min] = two_component_case(
      "samples: 40, regime: accumulate, real_fraction: 0.2, verifier: {keep_plausible: 1, keep_implausible: 0.3, "
      "quantile: 0.2}, dedup: true, dedup_resolution: 0.4",
      0.2);
  const double tail_min = gmm_log_density_quantile(c, tr, 0.1);
  const int t = 5, n = c.samples, P0 = kernels::gmm_block_size(2, 2);
  std::vector<std::vector<double>> models;
  for (int k = 0; k <= t; ++k) {
    std::vector<double> block(tr.params, tr.params + P0);
    kernels::GmmView mv = kernels::gmm_view(2, 2, block.data());
    for (int a = 0; a < 8; ++a) mv.cov[a] *= 1.0 + k / 4.0;
    EXPECT_TRUE(kernels::gmm_complete(mv));
    models.push_back(block);
  }
  auto model_of = [&](int k) { return static_cast<const double*>(models[k].data()); };
  for (const auto regime : {kernels::Regime::kAccumulate, kernels::Regime::kAccumulateSubsample}) {
    kernels::GmmStep s{c.seed, 2, 2, n, c.real_count, t, regime, c.real_source, {}, {}, {}};
    s.verifier.on = 1;
    s.verifier.keep_plausible = kernels::keep_threshold(1.0);
    s.verifier.keep_implausible = kernels::keep_threshold(0.3);
    s.verifier.log_density_min = ll_min;
    s.verifier.max_draw_factor = 2;
    s.dedup.on = 1;
    s.dedup.resolution = 1.0;
    s.weighting.tail = 1;
    s.weighting.tail_factor = 3.0;
    s.weighting.tail_log_density = tail_min;
    s.weighting.age_decay = 0.7;
    const std::int64_t room = kernels::gmm_filtered_room(s);
    ASSERT_EQ(room, static_cast<std::int64_t>(t) * n);
    std::vector<double> X(room * 2), W(room);
    std::vector<std::int64_t> start(t + 1), table(kernels::dedup_table_size(n));
    const kernels::GmmFilteredSet set =
        kernels::gmm_filtered_train(s, 2, tr, model_of, X.data(), W.data(), start.data(), table.data());

    // The rule, generation by generation.
    struct Point {
      double x[2];
      int k;
      bool real;
    };
    std::vector<Point> pool;
    std::set<std::int64_t> kept_counts;
    double dpk = 1.0;
    for (int k = 1; k <= t; ++k) {
      const int real = k == 1 ? n : c.real_count;
      for (int i = 0; i < real; ++i) {
        Point p{{0, 0}, k, true};
        kernels::gmm_draw(c.seed, 2, k, true, i, kernels::truth_view(tr), p.x);
        pool.push_back(p);
      }
      if (real == n) continue;
      kernels::GmmStep sk = s;
      sk.generation = k;
      std::vector<double> Y((n - real) * 2);
      std::int64_t drawn = 0;
      const std::int64_t kept = kernels::gmm_filtered_points(sk, 2, tr, kernels::gmm_view(2, 2, model_of(k - 1)), real,
                                                             n - real, Y.data(), table.data(), drawn);
      for (std::int64_t q = 0; q < kept; ++q) pool.push_back({{Y[2 * q], Y[2 * q + 1]}, k, false});
      kept_counts.insert(kept);
      if (k == t) dpk = static_cast<double>(drawn) / kept;
    }
    EXPECT_GT(kept_counts.size(), 1u) << "every generation kept as many points: the check has little power";
    std::vector<std::int64_t> chosen;
    const auto P = static_cast<std::int64_t>(pool.size());
    if (regime == kernels::Regime::kAccumulate)
      for (std::int64_t j = 0; j < P; ++j) chosen.push_back(j);
    else
      kernels::for_each_selected(c.seed, 2, t, P, std::min<std::int64_t>(n, P),
                                 [&](std::int64_t j) { chosen.push_back(j); });
    ASSERT_EQ(set.m, static_cast<std::int64_t>(chosen.size()));
    double total = 0.0, pts = 0.0, syn = 0.0, age = 0.0, lp[kernels::kGmmMaxComponents];
    for (std::size_t p = 0; p < chosen.size(); ++p) {
      const Point& q = pool[chosen[p]];
      EXPECT_EQ(X[2 * p], q.x[0]) << "point " << p;
      EXPECT_EQ(X[2 * p + 1], q.x[1]) << "point " << p;
      const bool tail = kernels::gmm_log_density(kernels::truth_view(tr), false, q.x, lp) < tail_min;
      const double a = std::pow(s.weighting.age_decay, t - q.k), w = a * (!q.real && tail ? 3.0 : 1.0);
      EXPECT_NEAR(W[p], w, 1e-15 * w) << "point " << p;
      total += w, pts += a, syn += q.real ? 0.0 : a, age += a * (t - q.k);
    }
    EXPECT_NEAR(set.total, total, 1e-13 * total);
    EXPECT_NEAR(set.synthetic_share, syn / pts, 1e-13);
    EXPECT_NEAR(set.data_age, age / pts, 1e-13);
    EXPECT_EQ(set.draws_per_kept, dpk);
  }
}

// Mixture filters that drop nothing run bit for bit as no filter in every
// regime (the candidates are the same draws; under accumulate and
// accumulate_subsample the rebuilt pool is the unfiltered pool, point for
// point): dedup on a grid finer than any two draws (1e-9), alone and with a
// verifier of phi = psi = 1.
TEST(Strategies, MixtureFiltersThatDropNothingChangeNothing) {
  const std::string base =
      "seed: 6\nchains: 12\ngenerations: 4\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.7, 0.3], means: [[0, 0], [3, 2]], covs: [[1, 1], [0.5, 0.5]]}\n"
      "data: {samples: 60, real_fraction: 0.2, ";
  for (const std::string regime : {"regime: replace", "regime: accumulate", "regime: accumulate_subsample"}) {
    const FamilyCurves off = run_family(base + regime + "}\n", "cpu", 0, true);
    for (const std::string filters : {", dedup: true, dedup_resolution: 1.0e-9",
                                      ", verifier: {keep_plausible: 1, keep_implausible: 1, quantile: 0.2}, "
                                      "dedup: true, dedup_resolution: 1.0e-9"}) {
      const FamilyCurves on = run_family(base + regime + filters + "}\n", "cpu", 0, true);
      expect_same_values(off, on, regime + filters);
    }
  }
}

// tail_upsample keeps a rare mode (2% of the truth's mass, all of it in the
// truth's lowest-density 5%) alive under replace: without it the mode is
// nearly gone (rare_mode_mass < 0.1) by generation 30 in most of 80 chains;
// with factor 3 in none, because each generation counts the mode's points
// three times. (It overshoots: the median chain's mode ends with 33 times
// its true mass; README.) Measured at this size: 55 of 80 chains without, 2
// with; the bounds (30 and 8) are more than 4 binomial standard errors from
// both.
TEST(Strategies, MixtureTailUpsampleKeepsARareMode) {
  const std::string base =
      "seed: 11\nchains: 80\ngenerations: 30\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.98, 0.02], means: [[0, 0], [4, 4]], covs: [[1, 1], [0.5, 0.5]]}\n"
      "data: {samples: 300, regime: replace";
  const FamilyCurves off = run_family(base + "}\n", "cpu", 0, true);
  const FamilyCurves on = run_family(base + ", tail_upsample: {factor: 3, quantile: 0.05}}\n", "cpu", 0, true);
  auto dead = [](const FamilyCurves& c) {
    const int k = c.metric("rare_mode_mass");
    int n = 0;
    for (int ch = 0; ch < 80; ++ch) n += c.values[30][k * 80 + ch] < 0.1;
    return n;
  };
  EXPECT_GT(dead(off), 30) << "the mode should die without upsampling";
  EXPECT_LT(dead(on), 8) << "the mode should live with upsampling";
  EXPECT_GT(on.at(30, "rare_mode_mass").q50, 1.0);  // and it overshoots
}

// The age-weighted composition of a mixture's accumulated pool: generation
// k's 30 points weigh 0.6^(t - k), generation 1's all real, later ones 6
// real; synthetic_share and data_age summed here point by point, 1e-12.
TEST(Strategies, MixtureAgeDecayWeighsTheComposition) {
  const FamilyCurves c = run_family(
      "seed: 3\nchains: 3\ngenerations: 5\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.7, 0.3], means: [[0, 0], [3, 2]], covs: [[1, 1], [0.5, 0.5]]}\n"
      "data: {samples: 30, regime: accumulate, real_fraction: 0.2, age_decay: 0.6}\n",
      "cpu", 0, true);
  for (int t = 1; t <= 5; ++t) {
    double w = 0.0, syn = 0.0, age = 0.0;
    for (int k = 1; k <= t; ++k) {
      const double wk = std::pow(0.6, t - k);
      w += 30 * wk;
      syn += (k == 1 ? 0 : 24) * wk;
      age += 30 * wk * (t - k);
    }
    EXPECT_NEAR(c.at(t, "synthetic_share").mean, syn / w, 1e-12) << "generation " << t;
    EXPECT_NEAR(c.at(t, "data_age").mean, age / w, 1e-12) << "generation " << t;
  }
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
TEST(Strategies, NgramWeightsReplayExactly) {
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
          auto weight = [&](int w, int k) {
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

TEST(Strategies, BadValuesAreRefused) {
  const std::string base =
      "seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: gaussian}\ntruth: {isotropic: 1}\n"
      "data: {samples: 10";
  for (const auto& [extra, path] : std::vector<std::pair<std::string, std::string>>{
           {", real_source: stale}\n", "data.real_source"},
           {", synthetic_cap: 1.5}\n", "data.synthetic_cap"},
           {", estimator_weight: 1.2}\n", "data.estimator_weight"},
           {", regime: accumulate, estimator_weight: 0.618}\n", "data.estimator_weight"},
           {", verifier: {keep_plausible: 1, keep_implausible: 0}}\n", "data.verifier.quantile"},
           {", verifier: {keep_plausible: 0, keep_implausible: 0, quantile: 0.1}}\n", "data.verifier"},
           {", verifier: {keep_plausible: 1.5, keep_implausible: 0, quantile: 0.1}}\n", "data.verifier.keep_plausible"},
           {", verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 1}}\n", "data.verifier.quantile"},
           {", max_draw_factor: 5}\n", "data.max_draw_factor"},
           {", verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 0.1}, max_draw_factor: 0}\n",
            "data.max_draw_factor"},
           {", tail_upsample: {factor: 3}}\n", "data.tail_upsample.quantile"},
           {", tail_upsample: {factor: 0, quantile: 0.1}}\n", "data.tail_upsample.factor"},
           {", age_decay: 0.5}\n", "data.age_decay"},
           {", regime: accumulate, age_decay: 0}\n", "data.age_decay"},
           {", regime: accumulate, age_decay: 1.5}\n", "data.age_decay"},
           {", dedup: true}\n", "data.dedup_resolution"},
           {", dedup: true, dedup_resolution: -1}\n", "data.dedup_resolution"},
           {", regime: accumulate_subsample, dedup: true, dedup_resolution: 0}\n", "data.dedup_resolution"}}) {
    try {
      load_experiment_text(base + extra, {});
      ADD_FAILURE() << extra << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.path(), path) << e.what();
    }
  }
  // Mixtures weigh their points in every regime (tail_upsample) and under
  // accumulate (age_decay); n-grams weigh their tail token set, no quantile.
  const std::string gmm =
      "seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: gmm, components: 2, dim: 2}\n"
      "truth: {weights: [0.5, 0.5], means: [[0, 0], [3, 0]], covs: [[1, 1], [1, 1]]}\n"
      "data: {samples: 50";
  EXPECT_NO_THROW(
      load_experiment_text(gmm + ", regime: accumulate_subsample, tail_upsample: {factor: 2, quantile: 0.1}}\n", {}));
  EXPECT_NO_THROW(load_experiment_text(gmm + ", regime: accumulate, age_decay: 0.5}\n", {}));
  EXPECT_NO_THROW(load_experiment_text(gmm + ", regime: accumulate_subsample, age_decay: 0.5}\n", {}));
  // Their filters work in every regime.
  EXPECT_NO_THROW(load_experiment_text(gmm + ", regime: accumulate, dedup: true, dedup_resolution: 0.1}\n", {}));
  EXPECT_NO_THROW(load_experiment_text(
      gmm + ", regime: accumulate_subsample, verifier: {keep_plausible: 1, keep_implausible: 0, quantile: 0.1}}\n",
      {}));
  for (const auto& [yaml, path] : std::vector<std::pair<std::string, std::string>>{
           {gmm + ", age_decay: 0.5}\n", "data.age_decay"},
           {gmm + ", dedup: true}\n", "data.dedup_resolution"},
           {gmm + ", dedup: true, dedup_resolution: 0}\n", "data.dedup_resolution"},
           {gmm + ", dedup_resolution: 0.1}\n", "data.dedup_resolution"},
           {"seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: ngram, order: 1}\ntruth: {zipf: {vocab: 50, exponent: "
            "1.1}}\n"
            "data: {samples: 50, tail_upsample: {factor: 2, quantile: 0.1}}\n",
            "data.tail_upsample.quantile"},
           {"seed: 1\nchains: 2\ngenerations: 3\nmodel: {family: ngram, order: 1}\ntruth: {zipf: {vocab: 50, exponent: "
            "1.1}}\n"
            "data: {samples: 50, tail_upsample: {}}\n",
            "data.tail_upsample.factor"}}) {
    try {
      load_experiment_text(yaml, {});
      ADD_FAILURE() << yaml << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.path(), path) << e.what();
    }
  }
}

}  // namespace

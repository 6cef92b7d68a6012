// The Gaussian family's strategies on every backend (docs/strategies.md): estimator weighting, the verifier, tail
// upsampling, age decay and dedup under every regime, by exact consequences of their rules and against a reference
// that keeps every point (reference_filtered_chain), each statistical check with its tolerance.
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

class GaussianStrategies : public BackendTest {};

// estimator_weight w = 1 (replace): the fitted mean is the mean of the
// generation's r fresh real points alone, whatever the chain's history, so
// E[mean_sq_err_t] = tr(Sigma_0) / r exactly at every t >= 2 (here 2 / 10).
// 4000 chains: mean_sq_err is 0.2 chi^2_1, sd 0.2 sqrt(2), se 0.0045; |z| <
// 4.5 at each of 4 generations. Power: the pooled mean (no weight) and the
// synthetic mean alone (w = 0) carry the drift of earlier generations and sit
// far from 0.2 by generation 10.
TEST_P(GaussianStrategies, EstimatorWeightOneFitsTheRealMean) {
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
TEST_P(GaussianStrategies, VerifierKeepsWhatItsRuleSays) {
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
TEST_P(GaussianStrategies, TailUpsampleWeightsTheTruthsTail) {
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
TEST_P(GaussianStrategies, AgeDecayWeighsOldData) {
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
TEST_P(GaussianStrategies, FiltersUnderAccumulatePoolTheKeptPoints) {
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
TEST_P(GaussianStrategies, GaussianDedupKeepsWhatItsRuleSays) {
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
TEST_P(GaussianStrategies, FiltersUnderAccumulateSubsampleRegenerateTheKeptPoints) {
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

// A grid finer than any two draws (1e-9) drops nothing: 2-D Gaussians with
// dedup on run bit for bit as without it (the same candidates, summed in the
// same order; in 1-D the cpu tiles the unfiltered sums, so only 2-D is
// bitwise).
TEST(GaussianStrategies, GaussianDedupOnAFineGridChangesNothing) {
  const std::string base =
      "seed: 6\nchains: 20\ngenerations: 4\nmodel: {family: gaussian, dim: 2}\n"
      "truth: {isotropic: 1.0}\ndata: {samples: 40, real_fraction: 0.2, regime: accumulate";
  const FamilyCurves off = run_family(base + "}\n", "cpu", 0, true);
  const FamilyCurves on = run_family(base + ", dedup: true, dedup_resolution: 1.0e-9}\n", "cpu", 0, true);
  expect_same_values(off, on, "Gaussian dedup on a fine grid");
}

INSTANTIATE_TEST_SUITE_P(Backends, GaussianStrategies, ::testing::Values("cpu", "cuda"), test::backend_name);

}  // namespace

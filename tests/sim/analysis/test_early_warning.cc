// Early warning (sim/analysis/early_warning.h): the calibration and the judgement on
// hand-made trajectories whose answers are worked out in the comments, then
// on real runs: the calibrated false-alarm rate holds on chains the
// calibration never saw, and bad settings are refused before any work.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/core/rng.h"
#include "kernels/gaussian/gaussian.h"
#include "sim/analysis/early_warning.h"
#include "sim/engine/config.h"
#include "sim/families/gaussian/gaussian_truth.h"
#include "tests/support/cli.h"

namespace ouro {
namespace {

namespace fs = std::filesystem;
using test::run;
using test::slurp;
using test::temp_dir;
using test::write_config;

// Eight chains, generations 0..6, two metrics: [0] the truth-aware summary
// metric y (collapse when y >= 1), [1] the detector's statistic x, read with
// score = x_g - x_ref. Chains 0-3 calibrate, 4-7 are judged; horizon 1.
struct Chain {
  int collapse;           // -1: never
  std::vector<double> x;  // generations 0..6
};
const std::vector<Chain> kChains = {
    // Calibration. Scores reached (baseline generation 1):
    {4, {0, 0, 0, 1, 2, 3, 3}},           // 0, 1, 2, 3 from generation 2 on
    {-1, {0, 0, 0, 0.5, 0.5, 0.5, 0.5}},  // 0, 0.5: never collapses
    {3, {0, 0, 2, 2, 2, 2, 2}},           // 2 at generation 2
    {6, {0, 0, 0, 0, 0, 0, 5}},           // 5 at generation 6
    // Judged.
    {5, {0, 0, 0, 0, 1, 1, 1}},           // alarm at 4: timely (5 - 1 <= 4 <= 5), lead 1
    {2, {0, 0, 0, 0, 0, 0, 1}},           // alarm at 6: late, lead -4
    {5, {0, 0, 0, 0, 0, 0, 0}},           // no alarm: a miss
    {-1, {0, 0, 0.2, 0.4, 0.6, 0.8, 1}},  // first: alarm at 4, false; previous: steps of 0.2, none
};

std::vector<DetectorResult> evaluate(bool previous, std::vector<Chain> chains = kChains) {
  EarlyWarningSettings s;
  s.on = true;
  s.false_alarm = 0.25;
  s.horizon = 1;
  s.calibration_share = 0.5;
  s.previous = previous;
  const std::int64_t N = static_cast<std::int64_t>(chains.size());
  const int G = 6;
  DetectorSpec d{"canary", "x", false, 1.0, 1.0, "units"};
  EarlyWarningTracker t(s, {d}, {1}, 0, Direction::kUp, 1.0, N, G);
  std::vector<double> v(2 * N);
  for (int g = 0; g <= G; ++g) {
    for (std::int64_t i = 0; i < N; ++i) {
      const Chain& c = chains[i];
      v[i] = c.collapse >= 0 && g >= c.collapse ? 1.0 : 0.0;
      v[N + i] = c.x[g];
    }
    t.add(g, v.data());
  }
  return t.evaluate();
}

// The counts of one result: evaluation chains, collapsed, timely, late,
// missed, false alarms; the threshold is 0.5 in every case below.
void expect_counts(const DetectorResult& r, std::vector<std::int64_t> want) {
  EXPECT_EQ(r.threshold, 0.5);
  EXPECT_EQ((std::vector<std::int64_t>{r.evaluation_chains, r.collapsed, r.timely, r.late, r.misses, r.false_alarms}),
            want);
}

TEST(EarlyWarning, CalibratesToTheSmallestThresholdWithinTheTarget) {
  // Candidate thresholds are the calibration scores {0, 0.5, 1, 2, 3, 5}.
  // At 0 chains 0, 1 and 3 alarm at generation 2, too early (2 < 4 - 1,
  // never, 2 < 6 - 1): 3/4. At 0.5 chain 0 alarms at 3 (not < 3), chain 1 at
  // 3 (it never collapses: false), chain 2 at 2 (not < 2), chain 3 at 6:
  // 1/4 = the target. So the threshold is 0.5.
  const auto r = evaluate(false);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].calibration_false_alarm, 0.25);
  EXPECT_EQ(r[0].calibration_chains, 4);
  // One false alarm: chain 7's drift reaches 0.6 at generation 4.
  expect_counts(r[0], {4, 3, 1, 1, 1, 1});
  EXPECT_EQ(r[0].leads, (std::vector<double>{1, -4}));
  EXPECT_EQ(r[0].alarms, (std::vector<double>{4, 6, 4}));
  EXPECT_EQ(r[0].collapses, (std::vector<double>{5, 2, 5}));
}

TEST(EarlyWarning, PreviousBaselineComparesConsecutiveGenerations) {
  // Step by step the calibration scores are {0, 0.5, 1, 2, 5} and the same
  // rule gives 0.5 again; chain 7 now moves 0.2 per generation and never
  // alarms, the others alarm as before.
  expect_counts(evaluate(true)[0], {4, 3, 1, 1, 1, 0});
}

// The Gaussian canary's statistic: heldout_nll from the held-out set's
// moments equals the mean of -ln N(x; mu, Sigma) over its points, drawn here
// from their definition (metrics.heldout real points under the held-out
// chain id, stream of real draws, generation 0).
TEST(EarlyWarning, GaussianHeldoutNllIsTheMeanOverThePoints) {
  const Experiment ex = load_experiment_text(R"(
name: nll
seed: 9
chains: 1
generations: 1
model: {family: gaussian, dim: 2}
truth: {mean: [1.0, -2.0], cov: [[2.0, 0.6], [0.6, 1.0]]}
data: {samples: 10}
metrics: {heldout: 301}
)",
                                             {});
  const PointConfig& c = ex.points.front().config;
  const kernels::GaussianTruth tr = make_gaussian_truth(c);
  const double mu[2] = {0.7, -1.5}, cov[4] = {0.5, -0.1, -0.1, 0.8};
  double chol[4];
  ASSERT_TRUE(kernels::cholesky(2, cov, chol));
  double out[kernels::kNumGaussianMetrics];
  kernels::gaussian_metrics(tr, mu, cov, chol, true, 0.0, 0.0, out, 1);
  const double det = cov[0] * cov[3] - cov[1] * cov[2];
  double sum = 0.0;
  for (int h = 0; h < 301; ++h) {
    double z[2], x[2];
    for (int a = 0; a < 2; ++a) {
      double quad[4];
      const std::uint64_t m = 2 * static_cast<std::uint64_t>(h) + a;
      kernels::box_muller(rng::draw_block(9, rng::kHeldoutChain, 0, rng::kStreamRealDraw, m >> 2), quad);
      z[a] = quad[m & 3];
    }
    x[0] = 1.0 + tr.chol[0] * z[0] - mu[0];
    x[1] = -2.0 + tr.chol[2] * z[0] + tr.chol[3] * z[1] - mu[1];
    const double q = (cov[3] * x[0] * x[0] - 2 * cov[1] * x[0] * x[1] + cov[0] * x[1] * x[1]) / det;
    sum += 0.5 * (2 * std::log(2 * M_PI) + std::log(det) + q);
  }
  EXPECT_NEAR(out[kernels::kHeldoutNll], sum / 301, 1e-12 * std::abs(sum / 301));
}

// A chain whose statistic has no value at generation 1 (a failed fit) cannot
// be watched: chain 6 (the miss above) is left out and counted.
TEST(EarlyWarning, UnobservableChainsAreLeftOut) {
  std::vector<Chain> chains = kChains;
  chains[6].x[1] = std::nan("");
  const auto r = evaluate(false, chains);
  EXPECT_EQ(r[0].unobserved, 1);
  expect_counts(r[0], {3, 2, 1, 1, 0, 1});
}

TEST(EarlyWarning, WilsonInterval) {
  double lo, hi;
  wilson95(0, 100, lo, hi);
  EXPECT_EQ(lo, 0.0);
  EXPECT_NEAR(hi, 0.0370, 5e-4);  // 1.96^2 / (100 + 1.96^2)
  wilson95(50, 100, lo, hi);
  EXPECT_NEAR(lo, 0.4038, 5e-4);
  EXPECT_NEAR(hi, 0.5962, 5e-4);
}

// early_warning.csv as {detector: {column: value}}.
std::map<std::string, std::map<std::string, std::string>> read_early(const fs::path& file) {
  std::stringstream in(slurp(file));
  std::string line;
  std::getline(in, line);
  auto split = [](const std::string& l) {
    std::vector<std::string> f;
    std::stringstream ss(l);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    if (!l.empty() && l.back() == ',') f.emplace_back();
    return f;
  };
  const auto header = split(line);
  std::map<std::string, std::map<std::string, std::string>> out;
  while (std::getline(in, line)) {
    const auto f = split(line);
    std::map<std::string, std::string> row;
    for (std::size_t k = 0; k < header.size() && k < f.size(); ++k) row[header[k]] = f[k];
    out[row["detector"]] = row;
  }
  return out;
}

// A 1-D Gaussian under replace with n = 50 loses its variance in all but a
// handful of chains within 400 generations. 4000 chains, 2000 of them
// calibrating each detector to a 5% false-alarm rate.
TEST(EarlyWarning, CalibratedRateHoldsOnChainsTheCalibrationNeverSaw) {
  const fs::path dir = temp_dir("early");
  const fs::path cfg = write_config(dir, R"(
name: early
seed: 11
chains: 4000
generations: 400
model: {family: gaussian, dim: 1}
truth: {mean: [0.0], cov: [[1.0]]}
data: {samples: 50, regime: replace}
summary: {metric: var_ratio, threshold: 0.5}
early_warning: {false_alarm: 0.05, horizon: 5}
)");
  const test::Result r = run("run " + cfg.string() + " --backend cpu --no-progress --out " + (dir / "out").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const auto rows = read_early(dir / "out" / "early_warning.csv");
  ASSERT_EQ(rows.size(), 3u);
  for (const auto& [name, row] : rows) {
    SCOPED_TRACE(name);
    const double Nc = std::stod(row.at("calibration_chains")), Ne = std::stod(row.at("evaluation_chains"));
    EXPECT_EQ(Nc, 2000);
    EXPECT_EQ(Ne, 2000);
    // The smallest threshold within the target: one calibration chain fewer
    // alarming falsely would put the rate above it (scores are continuous).
    EXPECT_LE(std::stod(row.at("calibration_false_alarm")), 0.05);
    EXPECT_GT(std::stod(row.at("calibration_false_alarm")), 0.05 - 1 / Nc - 1e-12);
    EXPECT_EQ(row.at("fires"), "1");
    EXPECT_EQ(row.at("unobserved_chains"), "0");
    // The evaluation chains are independent of the calibration ones: their
    // false-alarm rate differs from the target by the binomial noise of both
    // samples, sd sqrt(a (1 - a) (1/Nc + 1/Ne)) = 0.0069; |z| < 4.5, plus one
    // calibration chain's worth (1/Nc) for the step of the empirical rate.
    const double fa = std::stod(row.at("false_alarm_rate"));
    EXPECT_NEAR(fa, 0.05, 4.5 * std::sqrt(0.05 * 0.95 * (1 / Nc + 1 / Ne)) + 1 / Nc);
    // Power: a detector that never fired would miss every collapse. With
    // n = 50, ln of the variance drifts by E ln(chi2_49 / 50) = -0.0407 per
    // generation (sd 0.204): after 400 generations by -16.3 (sd 4.1), so a
    // chain is above half its variance at the end, uncollapsed, with
    // probability 6e-5, and a detector's statistic (the log-variance drop from
    // generation 1, or the validation NLL, which grows without bound as the
    // variance goes to 0) is short of its threshold about as rarely: 0.13
    // such chains expected of 2000; at most 3 is a bound broken with
    // probability 1e-5.
    EXPECT_GE(std::stod(row.at("collapsed_chains")), Ne - 3);
    EXPECT_LE(std::stod(row.at("miss_rate")) * std::stod(row.at("collapsed_chains")), 3.5);
  }
  // In one dimension the entropy is half the log-variance: the same alarms at
  // half the threshold (var_ratio and det_ratio are computed differently and
  // may differ in the last bit, which could only show if two chains' scores
  // fell within an ulp of each other).
  const auto& div = rows.at("diversity");
  const auto& ent = rows.at("entropy");
  EXPECT_NEAR(std::stod(div.at("threshold")), 2 * std::stod(ent.at("threshold")),
              1e-12 * std::stod(div.at("threshold")));
  for (const char* k : {"false_alarm_rate", "timely_rate", "late_rate", "miss_rate", "lead_mean", "alarm_q50"})
    EXPECT_EQ(div.at(k), ent.at(k)) << k;
  // The report carries the table.
  ASSERT_EQ(run("report " + (dir / "out").string()).code, 0);
  const std::string md = slurp(dir / "out" / "report.md");
  EXPECT_NE(md.find("## Early warning"), std::string::npos);
  EXPECT_NE(md.find("diversity (`var_ratio`)"), std::string::npos);
  fs::remove_all(dir);
}

TEST(EarlyWarning, BadSettingsAreRefusedBeforeAnyWork) {
  const std::string base = R"(
name: bad
seed: 1
chains: 10
generations: 5
model: {family: gaussian, dim: 1}
truth: {mean: [0.0], cov: [[1.0]]}
data: {samples: 20}
)";
  struct Case {
    std::string extra, key, words;
  };
  const std::vector<Case> cases = {
      {"early_warning: {detectors: [perplexity]}", "early_warning.detectors[0]", "no detector \"perplexity\""},
      {"early_warning: {detectors: [canary, canary]}", "early_warning.detectors[1]", "listed twice"},
      {"early_warning: {false_alarm: 0}", "early_warning.false_alarm", "a rate in (0, 1)"},
      {"early_warning: {calibration_share: 0.05}", "early_warning.calibration_share", "no chain to calibrate on"},
      {"early_warning: {baseline: last}", "early_warning.baseline", "first"},
      {"early_warning: {horizon: -1}", "early_warning.horizon", "expected an integer"},
      {"early_warning: [canary]", "early_warning", "expected a mapping"},
      {"early_warning: {}\nsweep: {early_warning.horizon: [1, 2]}", "sweep.early_warning.horizon", "cannot be swept"},
  };
  const fs::path dir = temp_dir("early-bad");
  for (const Case& k : cases) {
    SCOPED_TRACE(k.extra);
    const fs::path cfg = write_config(dir, base + k.extra + "\n");
    const test::Result r = run("run " + cfg.string() + " --no-progress --out " + (dir / "out").string());
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find(k.key), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(k.words), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "out")) << "work was done before the refusal";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ouro

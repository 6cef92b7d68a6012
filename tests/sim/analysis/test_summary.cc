// Summaries per sweep point (sim/analysis/summary.h) and the ranked report: the
// definitions on hand-made curves, the paired interval against an
// independent computation, the files a run writes, and config refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "sim/analysis/aggregate.h"
#include "sim/analysis/summary.h"
#include "sim/engine/config.h"
#include "tests/support/cli.h"

namespace {

using namespace ouro;

Summary of(const std::vector<double>& v) {
  std::vector<double> scratch;
  return summarize(v.data(), static_cast<std::int64_t>(v.size()), scratch);
}

// Two chains over generations 0..3; the mean crosses 0.5 downward at
// generation 2 (0.5 itself counts: "at or below").
TEST(Summary, CollapseGenerationAndAreaFollowTheirDefinitions) {
  const std::vector<std::vector<double>> gen = {{1.0, 1.0}, {0.8, 0.6}, {0.6, 0.4}, {0.2, 0.0}};
  PointSummary s(0, Direction::kDown, 0.5, 2);
  for (int g = 0; g < 4; ++g) s.add(g, gen[g].data(), of(gen[g]));
  ASSERT_TRUE(s.collapse_generation().has_value());
  EXPECT_EQ(*s.collapse_generation(), 2);
  // Trapezoids, unit spacing: chain 0: (1+.8)/2 + (.8+.6)/2 + (.6+.2)/2 = 2.0.
  EXPECT_DOUBLE_EQ(s.chain_auc()[0], 2.0);
  EXPECT_DOUBLE_EQ(s.chain_auc()[1], 0.5 * (1.0 + 0.6) + 0.5 * (0.6 + 0.4) + 0.5 * (0.4 + 0.0));
  EXPECT_DOUBLE_EQ(s.last().mean, 0.1);
  // The same curve read as a metric that grows: never at or above 1.5.
  PointSummary up(0, Direction::kUp, 1.5, 2);
  for (int g = 0; g < 4; ++g) up.add(g, gen[g].data(), of(gen[g]));
  EXPECT_FALSE(up.collapse_generation().has_value());
}

// A chain that degenerates (NaN) has no area; an infinite value keeps an
// infinite area (never a NaN in its place).
TEST(Summary, DegenerateAndInfiniteChainsStayHonest) {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::vector<double>> gen = {{0.0, 0.0, 0.0}, {1.0, nan, inf}};
  PointSummary s(0, Direction::kUp, 0.5, 3);
  for (int g = 0; g < 2; ++g) s.add(g, gen[g].data(), of(gen[g]));
  EXPECT_EQ(s.chain_auc()[0], 0.5);
  EXPECT_TRUE(std::isnan(s.chain_auc()[1]));
  EXPECT_EQ(s.chain_auc()[2], inf);
  EXPECT_EQ(*s.collapse_generation(), 1);
}

// The paired interval: the mean and standard error of the per-chain
// differences, over the chains where both values are finite.
TEST(Summary, PairedDifferenceIsTheIntervalOfTheDifferences) {
  const std::vector<double> a = {1.0, 2.0, 3.0, 4.0, std::numeric_limits<double>::quiet_NaN()};
  const std::vector<double> b = {0.5, 1.0, 2.0, 2.5, 1.0};
  const Interval d = paired_difference(a, b);
  // Differences 0.5, 1, 1, 1.5: mean 1, sd sqrt(1/6), se sd/2.
  EXPECT_EQ(d.n, 4);
  EXPECT_DOUBLE_EQ(d.mean, 1.0);
  EXPECT_NEAR(d.hi - d.mean, 1.96 * std::sqrt(1.0 / 6.0) / 2.0, 1e-15);
}

TEST(Summary, DirectionsOfTheHeadlineMetrics) {
  EXPECT_EQ(collapse_direction("var_ratio"), Direction::kDown);
  EXPECT_EQ(collapse_direction("vocab_survival"), Direction::kDown);
  EXPECT_EQ(collapse_direction("component_std_3"), Direction::kDown);
  EXPECT_EQ(collapse_direction("kl"), Direction::kUp);
  EXPECT_EQ(collapse_direction("heldout_ppl"), Direction::kUp);
  EXPECT_EQ(collapse_direction("synthetic_share"), Direction::kNone);
}

const char* kBase = R"(
name: summary
seed: 2
chains: 500
generations: 30
model: {family: gaussian, dim: 1}
truth: {isotropic: 1.0}
data: {samples: 10, regime: replace}
summary: {metric: var_ratio, threshold: 0.5}
sweep:
  data.real_fraction: [0, 0.5]
)";

// A run writes one summary row per point and one per chain; the report ranks
// fresh real data above none, with a paired interval that excludes 0.
TEST(Summary, RunWritesSummariesAndTheReportRanksThePoints) {
  using namespace ouro::test;
  const fs::path dir = temp_dir("summary");
  const fs::path cfg = write_config(dir, kBase);
  const Result r = run("run " + cfg.string() + " --backend cpu --no-progress --out " + (dir / "o").string());
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string s = slurp(dir / "o" / "summary.csv");
  EXPECT_EQ(s.substr(0, s.find('\n')),
            "data.real_fraction,point,metric,direction,threshold,generations,collapse_generation,last_mean,last_lo,"
            "last_hi,auc_mean,auc_lo,auc_hi,chains,degenerate_chains,real_samples");
  const std::string first = s.substr(s.find('\n') + 1, s.find('\n', s.find('\n') + 1) - s.find('\n') - 1);
  EXPECT_EQ(first.rfind("0,0,var_ratio,down,0.5,30,", 0), 0u) << first;
  const int cg = std::stoi(first.substr(std::string("0,0,var_ratio,down,0.5,30,").size()));
  // Exactly the definition: the first generation whose var_ratio mean in
  // metrics.csv is at or below 0.5.
  std::istringstream rows(slurp(dir / "o" / "metrics.csv"));
  int expected = -1;
  for (std::string line; std::getline(rows, line) && expected < 0;) {
    if (line.rfind("0,", 0) != 0 || line.find(",var_ratio,") == std::string::npos) continue;
    const auto g0 = line.find(',') + 1;
    const int g = std::stoi(line.substr(g0));
    const auto m0 = line.find(",var_ratio,") + 11;
    if (std::stod(line.substr(m0)) <= 0.5) expected = g;
  }
  EXPECT_EQ(cg, expected);
  // And where theory puts it: replace with no real data has E[var_ratio_t] =
  // (1 - 1/n)^t = 0.9^t (MLE), 0.531 at t = 6 and 0.478 at t = 7. With 500
  // chains the mean's standard error there is about 0.035 (the per-chain
  // spread grows like sqrt(1.2^t - 1) of the mean), so t = 5 or t = 9 would be
  // 2 to 3 standard errors from expectation: a window of 6..8.
  EXPECT_GE(cg, 6);
  EXPECT_LE(cg, 8);
  std::size_t lines = 0;
  for (char c : slurp(dir / "o" / "summary_chains.csv")) lines += c == '\n';
  EXPECT_EQ(lines, 1u + 2 * 500);
  const Result rep = run("report " + (dir / "o").string());
  ASSERT_EQ(rep.code, 0) << rep.out;
  const std::string md = slurp(dir / "o" / "report.md");
  const auto one = md.find("| 1 | 0.5 |"), two = md.find("| 2 | 0 |");
  ASSERT_NE(one, std::string::npos) << md;
  ASSERT_NE(two, std::string::npos) << md;
  EXPECT_EQ(md.find("≈", two), std::string::npos) << "the paired interval should exclude 0:\n" << md;
  // Not a run folder, or not complete: refused.
  EXPECT_EQ(run("report " + dir.string()).code, 2);
  fs::remove_all(dir);
}

// A ratio to the truth's value ranks by the median chain's |ln value|, not
// by the mean: a run folder written here with three points of 5 chains
// each -- one that overshoots (every chain at 20), one whose mean is 1.0
// although three of its chains have collapsed to 0.001 (two carry it at
// 2.4985), one that stays near the truth (0.8 to 1.1). Ranked: near, then
// overshoot (|ln 20| = 3.0), then the collapsed one (|ln 0.001| = 6.9).
// Ranked by the mean, the overshoot would come first ("higher is better"),
// and by |ln mean| the collapsed one (its mean is exactly 1).
TEST(Summary, RatioMetricsRankByTheMedianChainsDistanceFromTheTruth) {
  using namespace ouro::test;
  const fs::path dir = temp_dir("ratio_rank");
  std::ofstream(dir / "manifest.json")
      << R"({"status": "complete", "backend": "cpu", "ouroboros_version": "test", "config": {"name": "ratio"},)"
      << R"( "points": [{"chains": 5}, {"chains": 5}, {"chains": 5}]})";
  const std::vector<std::vector<double>> chains = {
      {20, 20, 20, 20, 20}, {0.001, 0.001, 0.001, 2.4985, 2.4985}, {0.8, 0.9, 1.0, 1.05, 1.1}};
  std::ofstream sum(dir / "summary.csv"), per(dir / "summary_chains.csv");
  sum << "case,point,metric,direction,threshold,generations,collapse_generation,last_mean,last_lo,last_hi,auc_mean,"
         "auc_lo,auc_hi,chains,degenerate_chains,real_samples\n";
  per << "case,point,chain,last,auc\n";
  const char* names[] = {"overshoot", "collapsed", "near"};
  for (int p = 0; p < 3; ++p) {
    double mean = 0.0;
    for (double v : chains[p]) mean += v / 5.0;
    sum << names[p] << "," << p << ",rare_mode_mass,down,0.5,10,," << mean << "," << mean << "," << mean
        << ",1,1,1,5,0,100\n";
    for (int i = 0; i < 5; ++i) per << names[p] << "," << p << "," << i << "," << chains[p][i] << ",1\n";
  }
  sum.close();
  per.close();
  const Result rep = run("report " + dir.string());
  ASSERT_EQ(rep.code, 0) << rep.out;
  const std::string md = slurp(dir / "report.md");
  const auto near = md.find("| 1 | near |"), over = md.find("| 2 | overshoot |"), coll = md.find("| 3 | collapsed |");
  EXPECT_NE(near, std::string::npos) << md;
  EXPECT_NE(over, std::string::npos) << md;
  EXPECT_NE(coll, std::string::npos) << md;
  EXPECT_NE(md.find("| 2.996 |"), std::string::npos) << md;  // |ln 20|, the median chain of "overshoot"
  fs::remove_all(dir);
}

TEST(Summary, ConfigRefusals) {
  auto refused = [](const std::string& set, const std::string& expect) {
    try {
      load_experiment_text(kBase, {set});
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << set << " was accepted";
  };
  refused("summary.metric=vocab_survival", "no metric \"vocab_survival\"");
  refused("summary.metric=synthetic_share", "does not move one way under collapse");
  refused("summary={metric: kl}", "summary.threshold: missing");
  refused("summary={threshold: 2}", "summary.metric: missing");
  refused("summary.threshold=abc", "summary.threshold");
  // The family's default when absent.
  const Experiment ex = load_experiment_text(kBase, {"summary={}"});
  EXPECT_EQ(ex.summary.metric, "var_ratio");
  EXPECT_EQ(ex.summary.threshold, 0.5);
}

}  // namespace

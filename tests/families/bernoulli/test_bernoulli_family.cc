// The family table proved by a family it has never heard of: the Bernoulli family of this folder joins the table
// from the test suite alone, and the command line serves it end to end (validate, keys, metrics, run with its
// summary and early warning, report), in this process.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "sim/cli/cli.h"
#include "sim/families/family.h"
#include "tests/families/bernoulli/bernoulli_family.h"
#include "tests/support/cli.h"

namespace {

using namespace ouro;
namespace fs = std::filesystem;

const bool kRegistered = (register_family(test::bernoulli_family()), true);

struct Cli {
  int code;
  std::string out, err;
};

// The command line in this process, with its stdout and stderr.
Cli cli(std::vector<std::string> args) {
  args.insert(args.begin(), "ouroboros");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  const int code = run_cli(static_cast<int>(args.size()), argv.data());
  Cli r{code, testing::internal::GetCapturedStdout(), testing::internal::GetCapturedStderr()};
  return r;
}

const char* kConfig = R"(
name: coin
seed: 11
chains: 4000
generations: 8
model: {family: bernoulli}
truth: {p: 0.3}
data: {samples: 20, regime: replace}
early_warning: {horizon: 2}
)";

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> row;
    std::stringstream ss(line);
    std::string cell;
    while (std::getline(ss, cell, ',')) row.push_back(cell);
    if (!line.empty() && line.back() == ',') row.emplace_back();
    rows.push_back(row);
  }
  return rows;
}

TEST(TestFamily, JoinsTheTableFromTheTestsAlone) {
  ASSERT_TRUE(kRegistered);
  ASSERT_NE(find_family("bernoulli"), nullptr);
  for (const Family* f : builtin_families()) EXPECT_STRNE(f->name(), "bernoulli");
}

TEST(TestFamily, ValidateKeysAndMetrics) {
  const fs::path dir = test::temp_dir("bernoulli-validate");
  const auto cfg = test::write_config(dir, kConfig);
  const Cli v = cli({"validate", cfg.string()});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.out.find("valid"), std::string::npos);
  const Cli keys = cli({"keys", "bernoulli"});
  EXPECT_EQ(keys.code, 0) << keys.err;
  EXPECT_NE(keys.out.find("truth.p"), std::string::npos);
  EXPECT_NE(keys.out.find("model.alpha"), std::string::npos);
  EXPECT_EQ(keys.out.find("model.components"), std::string::npos);  // another family's
  const Cli all = cli({"keys"});
  std::string families = "one of";  // the built-in families, then the registered one
  for (const Family* f : builtin_families()) families += std::string(" ") + f->name();
  EXPECT_NE(all.out.find(families + " bernoulli"), std::string::npos) << all.out;
  const Cli metrics = cli({"metrics", "bernoulli"});
  EXPECT_EQ(metrics.code, 0) << metrics.err;
  EXPECT_NE(metrics.out.find("p_hat"), std::string::npos);
  EXPECT_NE(metrics.out.find("(1 - 1/n)^t"), std::string::npos);
}

// Bad input is refused before any work, naming the key: another family's key, a data option the family does not
// offer, and what its own check refuses.
TEST(TestFamily, RefusesWhatItDoesNotOffer) {
  const fs::path dir = test::temp_dir("bernoulli-refuse");
  const auto cfg = test::write_config(dir, kConfig);
  const Cli dim = cli({"validate", cfg.string(), "--set", "model.dim=2"});
  EXPECT_EQ(dim.code, 2);
  EXPECT_NE(dim.err.find("model.dim: applies to model.family gaussian or gmm only (this config has bernoulli)"),
            std::string::npos)
      << dim.err;
  const Cli dedup = cli({"validate", cfg.string(), "--set", "data.dedup=true"});
  EXPECT_EQ(dedup.code, 2);
  EXPECT_NE(dedup.err.find("data.dedup: applies to model.family gaussian or gmm or ngram or kde only"),
            std::string::npos)
      << dedup.err;
  const Cli regime = cli({"validate", cfg.string(), "--set", "data.regime=accumulate_subsample"});
  EXPECT_EQ(regime.code, 2);
  EXPECT_NE(regime.err.find("runs replace and accumulate"), std::string::npos) << regime.err;
  const Cli p = cli({"validate", cfg.string(), "--set", "truth.p=1.5"});
  EXPECT_EQ(p.code, 2);
  EXPECT_NE(p.err.find("truth.p: expected a probability in (0, 1), got 1.5"), std::string::npos) << p.err;
}

// run writes every table the loop writes for a built-in family, with the family's own metrics and its theory
// column; the summary, early warning and the report follow.
TEST(TestFamily, RunsSummarisesWarnsAndReports) {
  const fs::path dir = test::temp_dir("bernoulli-run");
  const auto cfg = test::write_config(dir, kConfig);
  const fs::path out = dir / "out";
  const Cli run = cli({"run", cfg.string(), "--out", out.string(), "--no-progress", "--threads", "1"});
  ASSERT_EQ(run.code, 0) << run.err;

  // The mean over 4000 chains of var_ratio and p_hat against their exact expectations, at every generation: within
  // 4 standard errors (a two-sided z of 4 has probability 6e-5 under the truth, so 16 comparisons flake with
  // probability 1e-3; the seed is fixed, so the outcome is deterministic). A planted bug of one point too few per
  // generation, (1 - 1/19)^t, differs from (1 - 1/20)^t by 0.004 t, which is 2.5 se at t = 8.
  const auto rows = read_csv(out / "metrics.csv");
  ASSERT_FALSE(rows.empty());
  const auto& h = rows.front();
  auto col = [&](const char* name) {
    return static_cast<std::size_t>(std::find(h.begin(), h.end(), name) - h.begin());
  };
  int checked = 0;
  for (std::size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    const std::string metric = row[col("metric")];
    const int g = std::stoi(row[col("generation")]);
    if (metric == "fixed" || g == 0) continue;
    ASSERT_FALSE(row[col("theory")].empty()) << metric << " at " << g;
    const double mean = std::stod(row[col("mean")]), se = std::stod(row[col("se")]);
    const double theory = std::stod(row[col("theory")]);
    EXPECT_LE(std::abs(mean - theory), 4.0 * se) << metric << " at generation " << g;
    if (metric == "var_ratio") EXPECT_NEAR(theory, std::pow(1.0 - 1.0 / 20, g), 1e-15);
    ++checked;
  }
  EXPECT_EQ(checked, 16);

  const auto summary = read_csv(out / "summary.csv");
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_NE(std::find(summary[1].begin(), summary[1].end(), "var_ratio"), summary[1].end());
  EXPECT_EQ(read_csv(out / "summary_chains.csv").size(), 4001u);
  const auto early = read_csv(out / "early_warning.csv");
  ASSERT_EQ(early.size(), 2u);  // the family's one detector
  EXPECT_NE(std::find(early[1].begin(), early[1].end(), "diversity"), early[1].end());

  const Cli report = cli({"report", out.string()});
  ASSERT_EQ(report.code, 0) << report.err;
  const std::string md = test::slurp(out / "report.md");
  EXPECT_NE(md.find("var_ratio"), std::string::npos);
  EXPECT_NE(md.find("diversity"), std::string::npos);
}

}  // namespace

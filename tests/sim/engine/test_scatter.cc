// plot.scatter and scatter.csv, with the test suite's cloud family (tests/families/cloud/), whose model sample is
// known: m_t + s_t z, z the chain's model-sample normals at generation t. The config's refusals are checked in this
// process (the family registered here); runs go through ouroboros_test_families, the program with the test families
// in its table: the file's header and rows, the chains and generations written (every point read back to the bit at
// generation 0, and as the chain's own fit at later ones), the same bytes at 1 and 2 threads, the same rows in
// memory batches, and resume after SIGKILL, SIGTERM or a full disk to the bytes of a run that was never stopped.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/core/normal.h"
#include "kernels/core/rng.h"
#include "sim/engine/config.h"
#include "tests/families/cloud/cloud_family.h"
#include "tests/support/cli.h"
#include "tests/support/run_outputs.h"

namespace {

using namespace ouro::test;
using nlohmann::json;

const bool kRegistered = (ouro::register_family(cloud_family()), true);

const std::string kFamiliesBinary = from_env("OUROBOROS_TEST_FAMILIES_BINARY", OUROBOROS_TEST_FAMILIES_BINARY);

Result run_families(const std::string& args) { return run_command(kFamiliesBinary + " " + args); }

// Four points: 1-D and 2-D clouds, of 2 and 5 chains; three chains drawn at three generations, given out of order.
const char* kCloud = R"(
name: scatter
seed: 7
chains: 5
generations: 4
model: {family: cloud, dim: 2}
truth: {scale: 1.5}
data: {samples: 6}
plot: {scatter: {chains: 3, generations: [4, 0, 2], points: 7}}
sweep:
  model.dim: [1, 2]
  chains: [2, 5]
)";

std::string opts(const fs::path& out) { return " --backend cpu --no-progress --per-chain --out " + out.string(); }

using Table = std::vector<std::vector<std::string>>;

// A CSV without quoted fields, header first; a trailing empty field kept.
Table read_csv(const fs::path& p) {
  Table rows;
  std::istringstream in(slurp(p));
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> row;
    std::size_t at = 0;
    for (std::size_t comma; (comma = line.find(',', at)) != std::string::npos; at = comma + 1)
      row.push_back(line.substr(at, comma - at));
    row.push_back(line.substr(at));
    rows.push_back(row);
  }
  return rows;
}

// Expects a ConfigError whose path is `path` and whose message contains `text`.
void expect_refused(const std::string& yaml, const std::vector<std::string>& sets, const std::string& path,
                    const std::string& text) {
  try {
    ouro::load_experiment_text(yaml, sets);
    ADD_FAILURE() << "accepted; expected refusal at " << path;
  } catch (const ouro::ConfigError& e) {
    EXPECT_EQ(e.path(), path) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(ScatterConfig, ReadsItsKeysWithTheirDefaults) {
  ASSERT_TRUE(kRegistered);
  const auto ex = ouro::load_experiment_text(kCloud, {});
  EXPECT_TRUE(ex.scatter.on);
  EXPECT_EQ(ex.scatter.chains, 3);
  EXPECT_EQ(ex.scatter.points, 7);
  EXPECT_EQ(ex.scatter.generations, (std::vector<int>{0, 2, 4}));
  EXPECT_TRUE(ex.scatter.at(2));
  EXPECT_FALSE(ex.scatter.at(1));
  const auto d = ouro::load_experiment_text(kCloud, {"plot.scatter={generations: [1]}"});
  EXPECT_EQ(d.scatter.chains, 3);
  EXPECT_EQ(d.scatter.points, 500);
  EXPECT_EQ(d.scatter.generations, (std::vector<int>{1}));
  EXPECT_FALSE(ouro::load_experiment_text(kCloud, {"plot.scatter=null"}).scatter.on);
  const auto s = ouro::load_experiment_text(kCloud, {"plot.scatter.chains=16", "plot.scatter.points=100000"});
  EXPECT_EQ(s.scatter.chains, 16);
  EXPECT_EQ(s.scatter.points, 100000);
}

TEST(ScatterConfig, RefusesWhatItCannotDraw) {
  ASSERT_TRUE(kRegistered);
  const std::string g = "plot.scatter.generations";
  expect_refused(kCloud, {"plot.scatter={chains: 2}"}, g, "missing");
  expect_refused(kCloud, {g + "=[]"}, g, "non-empty list");
  expect_refused(kCloud, {g + "=3"}, g, "non-empty list");
  expect_refused(kCloud, {g + "=[0, 5]"}, g + "[1]", "generation 5 is past the run's last, generation 4");
  expect_refused(kCloud, {g + "=[1, 2, 1]"}, g + "[2]", "generation 1 is listed twice");
  expect_refused(kCloud, {g + "=[-1]"}, g + "[0]", "an integer in [0, generations]");
  expect_refused(kCloud, {g + "=[1.5]"}, g + "[0]", "an integer in [0, generations]");
  expect_refused(kCloud, {g + "=[one]"}, g + "[0]", "a generation");
  expect_refused(kCloud, {g + "=[[1]]"}, g + "[0]", "a generation");
  // A sweep of generations: every point must have every generation drawn.
  expect_refused(kCloud, {"sweep.generations=[6, 3]", g + "=[0, 4]"}, g + "[1]",
                 "past the run's last, generation 3 (at sweep point model.dim=1, chains=2, generations=3)");
  expect_refused(kCloud, {"plot.scatter.chains=0"}, "plot.scatter.chains", "an integer in [1, 16]");
  expect_refused(kCloud, {"plot.scatter.chains=17"}, "plot.scatter.chains", "an integer in [1, 16]");
  expect_refused(kCloud, {"plot.scatter.points=0"}, "plot.scatter.points", "an integer in [1, 100000]");
  expect_refused(kCloud, {"plot.scatter.points=100001"}, "plot.scatter.points", "an integer in [1, 100000]");
  expect_refused(kCloud, {"plot.scatter=[0, 1]"}, "plot.scatter", "expected a mapping");
  expect_refused(std::string(kCloud) + "  plot.scatter.points: [5, 6]\n", {}, "sweep.plot.scatter.points",
                 "plot settings cannot be swept");
  expect_refused(kCloud, {"plot.scatter={generations: [1], colours: 3}"}, "plot.scatter.colours", "unknown key");
  // A family whose models have no points (an n-gram model's are sentences).
  expect_refused(R"(
chains: 3
generations: 2
model: {family: ngram, order: 2, smoothing: mle}
truth: {zipf: {vocab: 50, exponent: 1.1}}
data: {samples: 400}
plot: {scatter: {generations: [1]}}
)",
                 {}, "plot.scatter", "the ngram family's models draw no points");
}

TEST(ScatterConfig, TheFamilyTableSaysWhichFamiliesHavePoints) {
  ASSERT_TRUE(kRegistered);
  for (const char* name : {"gaussian", "gmm", "cloud"}) EXPECT_TRUE(ouro::find_family(name)->has_points()) << name;
  for (const char* name : {"ngram", "linear_regression"}) EXPECT_FALSE(ouro::find_family(name)->has_points()) << name;
  // The dimension, asked of a one-chain run by default.
  const auto ex = ouro::load_experiment_text(kCloud, {});
  EXPECT_EQ(ex.points[0].config.family->point_dim(ex.points[0].config), 1);
  EXPECT_EQ(ex.points[3].config.family->point_dim(ex.points[3].config), 2);
}

// Rows of scatter.csv: (point, generation, chain) -> the chain's points, in the file's order.
struct Scatter {
  std::vector<std::string> header;
  std::vector<std::tuple<int, int, int>> order;  // each (point, generation, chain) as first met
  std::map<std::tuple<int, int, int>, std::vector<std::vector<std::string>>> points;  // its coordinates' text
};

Scatter read_scatter(const fs::path& file, std::size_t axes) {
  const Table t = read_csv(file);
  Scatter s;
  s.header = t.at(0);
  for (std::size_t r = 1; r < t.size(); ++r) {
    EXPECT_EQ(t[r].size(), s.header.size()) << "line " << r + 1;
    const auto key =
        std::make_tuple(std::stoi(t[r].at(axes)), std::stoi(t[r].at(axes + 1)), std::stoi(t[r].at(axes + 2)));
    if (s.points.count(key) == 0) s.order.push_back(key);
    s.points[key].emplace_back(t[r].begin() + static_cast<std::ptrdiff_t>(axes) + 3, t[r].end());
  }
  return s;
}

// The header, the rows' order and count, and every point against the chain's model: at generation 0 the truth's
// sample s_0 z to the bit; later, x - s_t z is the chain's mean m_t for every point of the chain (s_t and ||m_t||^2
// from per_chain.csv), so the points come from that chain's fit at that generation and from its own normals.
TEST(Scatter, WritesTheChosenChainsAndGenerations) {
  ASSERT_TRUE(kRegistered);
  const fs::path dir = temp_dir("scatter-rows");
  const fs::path cfg = write_config(dir, kCloud);
  const Result r = run_families("run " + cfg.string() + opts(dir / "run"));
  ASSERT_EQ(r.code, 0) << r.out;
  const Scatter s = read_scatter(dir / "run" / "scatter.csv", 2);
  EXPECT_EQ(s.header, (std::vector<std::string>{"model.dim", "chains", "point", "generation", "chain", "x_1", "x_2"}));
  // Points in order, generations ascending within a point, chains ascending within a generation; min(3, chains).
  std::vector<std::tuple<int, int, int>> expected;
  const int chains_of[] = {2, 5, 2, 5}, dim_of[] = {1, 1, 2, 2};
  for (int p = 0; p < 4; ++p)
    for (int g : {0, 2, 4})
      for (int c = 0; c < std::min(3, chains_of[p]); ++c) expected.emplace_back(p, g, c);
  EXPECT_EQ(s.order, expected);

  // per_chain.csv: (point's labels, generation, chain) -> var_ratio, mean_sq_err.
  const Table pc = read_csv(dir / "run" / "per_chain.csv");
  ASSERT_EQ(pc[0],
            (std::vector<std::string>{"model.dim", "chains", "generation", "chain", "var_ratio", "mean_sq_err"}));
  std::map<std::tuple<int, int, int>, std::pair<double, double>> fit;  // (point, generation, chain)
  for (std::size_t i = 1; i < pc.size(); ++i) {
    const int p = (std::stoi(pc[i][0]) - 1) * 2 + (pc[i][1] == "5" ? 1 : 0);
    fit[{p, std::stoi(pc[i][2]), std::stoi(pc[i][3])}] = {std::stod(pc[i][4]), std::stod(pc[i][5])};
  }
  const double s0 = 1.5;
  for (const auto& [key, rows] : s.points) {
    const auto [p, g, c] = key;
    const int d = dim_of[p];
    ASSERT_EQ(rows.size(), 7u);
    const double scale = s0 * std::sqrt(fit.at(key).first);
    std::vector<double> mean(d, 0.0);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      ASSERT_EQ(rows[i].size(), 2u);
      if (d == 1) {
        EXPECT_EQ(rows[i][1], "") << "a 1-D point has no second coordinate";
      }
      for (int k = 0; k < d; ++k) {
        const double x = std::stod(rows[i][k]);
        const double z = ouro::kernels::stream_normal(7, static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(g),
                                                      ouro::rng::kStreamModelSample, i * d + k);
        if (g == 0) {
          EXPECT_EQ(x, s0 * z) << "point " << p << " chain " << c << " row " << i;
          continue;
        }
        const double m = x - scale * z;
        if (i == 0) mean[k] = m;
        EXPECT_NEAR(m, mean[k], 1e-9 * (1.0 + std::abs(x))) << "point " << p << " generation " << g << " chain " << c;
      }
    }
    if (g > 0) {
      double msq = 0.0;
      for (double m : mean) msq += m * m;
      EXPECT_NEAR(msq, fit.at(key).second, 1e-8 * (1.0 + msq))
          << "point " << p << " generation " << g << " chain " << c;
    }
  }
  // 1 vs 2 threads: the same bytes.
  for (const char* threads : {"1", "2"}) {
    const fs::path out = dir / (std::string("threads") + threads);
    ASSERT_EQ(run_families("run " + cfg.string() + opts(out) + " --threads " + threads).code, 0);
    EXPECT_TRUE(slurp(out / "scatter.csv") == slurp(dir / "run" / "scatter.csv")) << threads << " threads";
    expect_same_output(dir / "run", out, std::string(threads) + " threads");
  }
  // The report reads the folder as it reads any other (scatter.csv is not its business).
  const Result report = run_families("report " + (dir / "run").string());
  EXPECT_EQ(report.code, 0) << report.out;
  EXPECT_TRUE(fs::exists(dir / "run" / "report.md"));
  // A run without plot.scatter in the same folder (--force) leaves no scatter.csv of the earlier run.
  ASSERT_EQ(run_families("run " + cfg.string() + opts(dir / "run") + " --force --set plot.scatter=null").code, 0);
  EXPECT_FALSE(fs::exists(dir / "run" / "scatter.csv"));
  fs::remove_all(dir);
}

// Memory batches: each batch writes its own chains' rows as its generations finish, so the rows are those of a run
// with every chain resident, in batch order; the other tables are the same bytes.
TEST(Scatter, MemoryBatchesWriteTheSameRows) {
  ASSERT_TRUE(kRegistered);
  const fs::path dir = temp_dir("scatter-batches");
  const fs::path cfg = write_config(dir, kCloud);
  ASSERT_EQ(run_families("run " + cfg.string() + opts(dir / "whole")).code, 0);
  const Result b = run_families("run " + cfg.string() + opts(dir / "batched") + " --max-memory 900");
  ASSERT_EQ(b.code, 0) << b.out;
  int most = 0;
  const json m = manifest_of(dir / "batched");
  for (const auto& p : m["points"]) most = std::max(most, p["batches"].get<int>());
  EXPECT_GE(most, 3) << "the budget no longer forces batches";
  expect_same_output(dir / "whole", dir / "batched", "memory batches", false);
  Table whole = read_csv(dir / "whole" / "scatter.csv"), batched = read_csv(dir / "batched" / "scatter.csv");
  EXPECT_EQ(whole.size(), 1u + 7 * 3 * (2 + 3 + 2 + 3));
  EXPECT_NE(whole, batched) << "the batches no longer split the drawn chains";
  std::sort(whole.begin() + 1, whole.end());
  std::sort(batched.begin() + 1, batched.end());
  EXPECT_EQ(whole, batched);
  fs::remove_all(dir);
}

// Stopped anywhere (SIGKILL between checkpoints, SIGTERM, a full disk in the middle of a generation's scatter rows,
// where the checkpoint holds rows still to write and the restored backend draws them again), in one batch and in
// several, a resumed run ends with the bytes of a run that was never stopped.
TEST(Scatter, ResumeGivesTheSameBytes) {
  ASSERT_TRUE(kRegistered);
  const fs::path dir = temp_dir("scatter-resume");
  const fs::path cfg = write_config(dir, kCloud);
  for (const std::string& extra : {std::string(), std::string(" --max-memory 900")}) {
    fs::remove_all(dir / "whole");
    ASSERT_EQ(run_families("run " + cfg.string() + opts(dir / "whole") + extra).code, 0);
    // 4 points of 5 steps each (20 in one batch, 30 in batches), checkpoints at generations 2 and 4. (A full disk
    // from 5% of the bytes on: the first few hundred are the tables' headers, before any checkpoint.)
    for (const char* fault : {"kill@3", "kill@7", "kill@14", "term@4", "term@12"}) {
      const fs::path out = dir / fault;
      fs::remove_all(out);
      const Result stopped = run_command(std::string("OUROBOROS_FAULT=") + fault + " " + kFamiliesBinary + " run " +
                                         cfg.string() + opts(out) + extra + " --checkpoint-every 2");
      ASSERT_NE(stopped.code, 0) << fault << extra;
      const Result resumed = run_families("resume " + out.string() + " --no-progress");
      ASSERT_EQ(resumed.code, 0) << fault << extra << ": " << resumed.out;
      expect_same_output(dir / "whole", out, std::string(fault) + extra);
      fs::remove_all(out);
    }
    std::uintmax_t total = 0;
    for (const char* f : {"metrics.csv", "per_chain.csv", "summary.csv", "summary_chains.csv", "scatter.csv"})
      total += fs::file_size(dir / "whole" / f);
    const std::uintmax_t scatter = fs::file_size(dir / "whole" / "scatter.csv");
    ASSERT_GT(scatter * 3, total) << "the scatter's rows no longer make a good share of the bytes";
    int drawn = 0;  // stopped in the rows of generation 0 or 2, which draws scatter rows still to write
    for (const double share : {0.05, 0.1, 0.23, 0.37, 0.5, 0.64, 0.78, 0.9, 0.995}) {
      const auto limit = static_cast<std::uintmax_t>(share * static_cast<double>(total));
      const fs::path out = dir / ("full" + std::to_string(limit));
      fs::remove_all(out);
      const Result r = run_command("OUROBOROS_FAULT=enospc@" + std::to_string(limit) + " " + kFamiliesBinary + " run " +
                                   cfg.string() + opts(out) + extra);
      ASSERT_EQ(r.code, 1) << "limit " << limit << " of " << total << extra << ": " << r.out;
      ASSERT_EQ(manifest_of(out)["status"], "interrupted") << limit;
      const Table rows = read_csv(out / "scatter.csv");
      for (std::size_t i = 1; i < rows.size(); ++i) ASSERT_EQ(rows[i].size(), rows[0].size()) << limit << " line " << i;
      const int g = manifest_of(out)["stopped_at"]["generation"].get<int>();
      drawn += g == 0 || g == 2 ? 1 : 0;
      const Result resumed = run_families("resume " + out.string() + " --no-progress");
      ASSERT_EQ(resumed.code, 0) << limit << extra << ": " << resumed.out;
      expect_same_output(dir / "whole", out, "full disk after " + std::to_string(limit) + " bytes" + extra);
      fs::remove_all(out);
    }
    EXPECT_GE(drawn, 4) << extra;
  }
  fs::remove_all(dir);
}

// --dry-run says how large scatter.csv will be.
TEST(Scatter, DryRunEstimatesTheFile) {
  ASSERT_TRUE(kRegistered);
  const fs::path dir = temp_dir("scatter-dry");
  const fs::path cfg = write_config(dir, kCloud);
  const Result r = run_families("run " + cfg.string() + " --dry-run --out " + (dir / "run").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("scatter.csv: about"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("210 rows of 2 coordinates"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace

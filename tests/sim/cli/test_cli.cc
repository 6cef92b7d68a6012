// The ouroboros binary end to end: bit-identical output for any thread count,
// the manifest's record of who did what, and exit code 2 with the key's path
// for bad input.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "kernels/gaussian/gaussian.h"
#include "tests/support/cli.h"

namespace {

using namespace ouro::test;

const char* kSweep = R"(
name: determinism
seed: 7
chains: 301
generations: 6
model: {family: gaussian, dim: 1, estimator: mle}
truth: {isotropic: 2.0}
data: {samples: 11, regime: replace, real_fraction: 0.0}
sweep:
  model.dim: [1, 2]
  data.regime: [replace, accumulate, accumulate_subsample]
  data.real_fraction: [0, 0.3]
)";

// Every chain is computed whole by one thread in a fixed order, so the thread
// count cannot change a bit of metrics.csv; the manifest must show that both
// threads of the 2-thread run did work (otherwise the test proves nothing).
TEST(Cli, OutputIsBitIdenticalForOneAndTwoThreads) {
  const fs::path dir = temp_dir("threads");
  const fs::path cfg = write_config(dir, kSweep);
  const Result one =
      run("run " + cfg.string() + " --backend cpu --threads 1 --no-progress --out " + (dir / "t1").string());
  ASSERT_EQ(one.code, 0) << one.out;
  const Result two =
      run("run " + cfg.string() + " --backend cpu --threads 2 --no-progress --out " + (dir / "t2").string());
  ASSERT_EQ(two.code, 0) << two.out;
  const std::string a = slurp(dir / "t1" / "metrics.csv"), b = slurp(dir / "t2" / "metrics.csv");
  EXPECT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << "metrics.csv differs between 1 and 2 threads";

  const auto manifest = nlohmann::json::parse(slurp(dir / "t2" / "manifest.json"));
  EXPECT_EQ(manifest["status"], "complete");
  EXPECT_EQ(manifest["threads"], 2);
  EXPECT_EQ(manifest["rng"]["layout_version"], 1);
  for (const auto& point : manifest["points"]) {
    ASSERT_EQ(point["workers"].size(), 2u) << point.dump();
    std::int64_t total = 0;
    for (const auto& w : point["workers"]) {
      EXPECT_GT(w["chains"].get<std::int64_t>(), 0) << point.dump();
      total += w["chains"].get<std::int64_t>();
    }
    EXPECT_EQ(total, 301);
  }
  fs::remove_all(dir);
}

TEST(Cli, MetricsCsvHasTheDocumentedColumnsAndRows) {
  const fs::path dir = temp_dir("columns");
  const fs::path cfg = write_config(dir, kSweep);
  const Result r =
      run("run " + cfg.string() + " --backend cpu --no-progress --set model.dim=1 --set data.real_fraction=0 --out " +
          (dir / "o").string());
  ASSERT_EQ(r.code, 0) << r.out;
  std::ifstream f(dir / "o" / "metrics.csv");
  std::string header;
  std::getline(f, header);
  EXPECT_EQ(header, "data.regime,generation,metric,mean,se,std,q05,q50,q95,chains,degenerate_chains,theory");
  int rows = 0;
  for (std::string line; std::getline(f, line);) ++rows;
  // points x generations (0..6) x the Gaussian family's metrics but draws_per_kept (written only with a filter) and
  // the sample-based ones (only when metrics.sample_based lists them)
  EXPECT_EQ(rows, 3 * 7 *
                      (static_cast<int>(ouro::kernels::kNumGaussianMetrics) - 1 -
                       static_cast<int>(ouro::kernels::kSampleMetricCount)));
  EXPECT_EQ(slurp(dir / "o" / "metrics.csv").find("draws_per_kept"), std::string::npos);
  EXPECT_EQ(slurp(dir / "o" / "metrics.csv").find(",recall,"), std::string::npos);
  EXPECT_NE(r.out.find((dir / "o").string()), std::string::npos) << "summary must name the output folder";
  fs::remove_all(dir);
}

struct BadInput {
  std::string args;
  std::string expect;  // text that must appear on stderr
};

TEST(Cli, BadInputExitsWithCodeTwoAndNamesTheProblem) {
  const fs::path dir = temp_dir("bad");
  const fs::path cfg = write_config(dir, kSweep);
  const std::string c = cfg.string();
  const fs::path ngram_cfg = dir / "ngram.yaml";
  std::ofstream(ngram_cfg) << "chains: 2\ngenerations: 2\nmodel: {family: ngram, order: 1}\n"
                              "truth: {zipf: {vocab: 50, exponent: 1}}\ndata: {samples: 20}\n";
  const std::string g = ngram_cfg.string();
  // Corpora that are not text: twelve good lines (216 bytes), then a NUL byte or a byte that is never UTF-8.
  std::string lines;
  for (int i = 0; i < 12; ++i) lines += "In the beginning.\n";
  const std::string nul = (dir / "nul.txt").string(), binary = (dir / "binary.txt").string();
  std::ofstream(nul) << lines << std::string("ab\0c\n", 5);
  std::ofstream(binary) << lines << "caf\xC3\xA9 \xFF\n";
  const BadInput cases[] = {
      {"run " + c + " --set data.samples=-3", "data.samples"},
      {"run " + c + " --set data.real_fraction=2", "data.real_fraction"},
      {"run " + c + " --set data.sampls=3", "did you mean data.samples?"},
      {"run " + c + " --set model.dim=2 --set \"truth={mean: [0, 0], cov: [[1, 2], [2, 1]]}\"", "truth.cov"},
      {"run " + c + " --set generations=abc", "generations"},
      {"validate " + c + " --set chains=0", "chains"},
      {"run " + (dir / "missing.yaml").string(), "cannot read config file"},
      {"run " + c + " --backend gpu", "--backend"},
      {"run " + c + " --threads -1", "--threads"},
      {"frobnicate", "subcommand"},
      {"run " + c + " --set chains=4000000000 --set model.dim=2", "every chain's values of every generation"},
      {"run " + c + " --set seed=", "gives no value"},
      {"run " + c + " --set data.regime.x=1", "data.regime"},
      {"run " + c + " --set \"truth={isotropic: 1e300}\"", "outside [1e-100, 1e100]"},
      // A metric the configuration does not write (draws_per_kept without a filter) named for the plot.
      {"run " + c + " --set \"plot.metrics=[var_ratio, draws_per_kept]\"", "draws_per_kept does not apply"},
      // The n-gram family's refusals (a bad corpus path, a corpus that is not
      // text, named with the offset of its first bad byte, a directory, an
      // order outside 1..3, top_p outside (0, 1]).
      {"run " + g + " --set \"truth={corpus: /nonexistent.txt}\"", "cannot read corpus file"},
      {"run " + g + " --set \"truth={corpus: /dev/null}\"", "not a regular file"},
      {"validate " + g + " --set \"truth={corpus: " + nul + "}\"",
       "is not text: a NUL byte at byte offset 218 (line 13)"},
      {"validate " + g + " --set \"truth={corpus: " + binary + "}\"",
       "is not text: not valid UTF-8 (byte 0xFF: never used in UTF-8) at byte offset 222 (line 13)"},
      {"validate " + g + " --set \"truth={corpus: " + dir.string() + "}\"", "a directory, not a regular file"},
      {"run " + g + " --set model.order=4", "model.order"},
      {"run " + g + " --set sampler.top_p=0", "sampler.top_p"},
      {"run " + g + " --backend cuda", "--backend"},
  };
  for (const auto& bad : cases) {
    const bool is_run = bad.args.rfind("run ", 0) == 0;
    const Result r = run(bad.args + (is_run ? " --out " + (dir / "never").string() : std::string()));
    EXPECT_EQ(r.code, 2) << bad.args << "\n" << r.out;
    EXPECT_NE(r.out.find(bad.expect), std::string::npos) << bad.args << "\n" << r.out;
    EXPECT_FALSE(fs::exists(dir / "never")) << "work was done before refusing: " << bad.args;
  }
  fs::remove_all(dir);
}

TEST(Cli, RefusesToOverwriteAnOutputFolderWithoutForce) {
  const fs::path dir = temp_dir("force");
  const fs::path cfg = write_config(dir, kSweep);
  const std::string base = "run " + cfg.string() +
                           " --backend cpu --no-progress --set generations=1 --set chains=5 --out " +
                           (dir / "o").string();
  ASSERT_EQ(run(base).code, 0);
  const Result again = run(base);
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.out.find("--force"), std::string::npos) << again.out;
  EXPECT_EQ(run(base + " --force").code, 0);
  fs::remove_all(dir);
}

TEST(Cli, ValidateHelpAndVersion) {
  const Result v = run("validate " + kSourceDir + "/experiments/quickstart.yaml");
  EXPECT_EQ(v.code, 0) << v.out;
  EXPECT_NE(v.out.find("valid"), std::string::npos);
  const Result h = run("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("run"), std::string::npos);
  const Result ver = run("--version");
  EXPECT_EQ(ver.code, 0);
  EXPECT_NE(ver.out.find("ouroboros 0."), std::string::npos);
}

// Every config shipped under experiments/ passes `ouroboros validate` (a
// renamed key or a strategy refused in some regime would otherwise surface
// only when a user runs it). Corpus configs need the KJV text that
// scripts/setup.sh extracts; without it they are left out, and the test says so.
TEST(Cli, EveryShippedExperimentValidates) {
  int checked = 0, skipped = 0;
  for (const auto& e : fs::recursive_directory_iterator(kSourceDir + "/experiments")) {
    if (e.path().extension() != ".yaml") continue;
    std::ifstream in(e.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find("corpus: kjv") != std::string::npos && !fs::exists(kSourceDir + "/data/kjv.txt")) {
      ++skipped;
      continue;
    }
    const Result v = run("validate " + e.path().string());
    EXPECT_EQ(v.code, 0) << e.path() << ": " << v.out;
    ++checked;
  }
  EXPECT_GT(checked, 20);
  if (skipped) std::cout << skipped << " corpus configs left out: no data/kjv.txt (run scripts/setup.sh)\n";
}

// Degenerate mixtures: more components than points (K = 6, n = 4), with the
// default ridge (a finite fit) and without (every fit fails: em_failures = 1,
// the other metrics have no chains). metrics.csv never holds a NaN; a sweep
// over model.components also gives each point its own component_std columns.
TEST(Cli, DegenerateMixturesNeverWriteNan) {
  const fs::path dir = temp_dir("gmm-degenerate");
  const fs::path cfg = write_config(dir, R"(
seed: 1
chains: 20
generations: 3
model: {family: gmm, components: 6, dim: 2, em: {init: kmeans++}}
truth: {weights: [0.5, 0.5], means: [[0, 0], [3, 3]], covs: [[1, 1], [1, 1]]}
data: {samples: 4}
sweep: {model.em.reg_covar: [1.0e-6, 0], model.components: [6, 2]}
)");
  const Result r = run("run " + cfg.string() + " --out " + (dir / "out").string() + " --no-progress --per-chain");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string csv = slurp(dir / "out" / "metrics.csv");
  EXPECT_EQ(csv.find("nan"), std::string::npos);
  EXPECT_EQ(csv.find("NaN"), std::string::npos);
  std::istringstream lines(csv);
  std::string line;
  int failures_rows = 0;
  while (std::getline(lines, line)) {
    // reg_covar,components,generation,metric,mean,...
    if (line.rfind("1.0e-6,6,3,em_failures,", 0) == 0) {
      EXPECT_EQ(line.rfind("1.0e-6,6,3,em_failures,0,", 0), 0u) << line;
      ++failures_rows;
    }
    if (line.rfind("0,6,3,em_failures,", 0) == 0) {
      EXPECT_EQ(line.rfind("0,6,3,em_failures,1,", 0), 0u) << line;
      ++failures_rows;
    }
    if (line.rfind("1.0e-6,2,", 0) == 0) {
      EXPECT_EQ(line.find("component_std_3"), std::string::npos);
    }
  }
  EXPECT_EQ(failures_rows, 2);
  const std::string per_chain = slurp(dir / "out" / "per_chain.csv");
  EXPECT_NE(per_chain.find("component_std_6"), std::string::npos);
  EXPECT_EQ(per_chain.find("nan"), std::string::npos);
}

}  // namespace

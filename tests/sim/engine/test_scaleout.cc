// Scale-out and reliability end to end, through the binary: the same bytes
// in metrics.csv and per_chain.csv whatever the split of the chains (memory
// batches, MPI ranks), after a SIGKILL and `resume`, after a SIGTERM and
// `resume`; damaged or foreign checkpoints refused with exit code 2 and the
// run folder left as it was; the memory plan and its refusals.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/gaussian/gaussian.h"
#include "tests/support/cli.h"
#include "tests/support/run_outputs.h"

namespace {

using namespace ouro::test;
using nlohmann::json;

// Four points that keep state between generations (pooled moments, model
// history), in 1-D and 2-D.
const char* kGaussian = R"(
name: scaleout-gaussian
seed: 3
chains: 97
generations: 7
model: {family: gaussian, dim: 1}
truth: {isotropic: 1.5}
data: {samples: 9, regime: accumulate, real_fraction: 0.2}
sweep:
  model.dim: [1, 2]
  data.regime: [accumulate, accumulate_subsample]
)";

const char* kMixture = R"(
name: scaleout-gmm
seed: 4
chains: 13
generations: 5
model: {family: gmm, components: 2, dim: 1, em: {max_iter: 20}}
truth: {weights: [0.7, 0.3], means: [[0], [3]], covs: [[1], [0.5]]}
data: {samples: 60, regime: accumulate, real_fraction: 0.2}
early_warning: {horizon: 1}
)";

// A Zipfian Markov chain: per-chain state is the pooled counts and a sample.
const char* kNgram = R"(
name: scaleout-ngram
seed: 5
chains: 11
generations: 6
model: {family: ngram, order: 2, smoothing: mle}
truth: {zipf: {vocab: 50, exponent: 1.1}}
metrics: {heldout: 500}
data: {samples: 400, regime: accumulate, real_fraction: 0.1}
early_warning: {horizon: 1, detectors: [canary, diversity]}
)";

std::string opts(const fs::path& out) { return " --backend cpu --no-progress --per-chain --out " + out.string(); }

int max_batches(const json& m) {
  int most = 0;
  for (const auto& p : m["points"]) most = std::max(most, p["batches"].get<int>());
  return most;
}

// Chains run in several batches (a small --max-memory): every chain's values
// are kept until the last batch has them, and the files are those of a run
// with every chain resident.
TEST(ScaleOut, MemoryBatchesGiveTheSameBytes) {
  const fs::path dir = temp_dir("batches");
  struct Case {
    const char* yaml;
    const char* budget;  // small enough for several batches, chosen from --dry-run
  };
  // (The mixture's cpu backend keeps little per chain, less than the values
  // rank 0 would keep for batches: it never needs them.)
  for (const Case& k : {Case{kGaussian, "84K"}, Case{kNgram, "600K"}}) {
    const fs::path cfg = write_config(dir, k.yaml);
    fs::remove_all(dir / "whole");
    fs::remove_all(dir / "batched");
    const Result a = run("run " + cfg.string() + opts(dir / "whole"));
    ASSERT_EQ(a.code, 0) << a.out;
    ASSERT_EQ(max_batches(manifest_of(dir / "whole")), 1);
    const Result b = run("run " + cfg.string() + opts(dir / "batched") + " --max-memory " + k.budget);
    ASSERT_EQ(b.code, 0) << b.out;
    EXPECT_GE(max_batches(manifest_of(dir / "batched")), 3) << "the budget no longer forces batches:\n" << k.yaml;
    expect_same_output(dir / "whole", dir / "batched", std::string("batches of ") + k.yaml);
  }
  fs::remove_all(dir);
}

// Every rank of K = 1, 2, 3 did work, and rank 0 wrote the bytes of a single
// process (also with batches on each rank).
TEST(ScaleOut, MpiRanksGiveTheSameBytes) {
  if (!mpi_available()) GTEST_SKIP() << "this build has no MPI, or mpirun is not on the PATH";
  const fs::path dir = temp_dir("mpi");
  for (const char* yaml : {kGaussian, kNgram}) {
    const fs::path cfg = write_config(dir, yaml);
    fs::remove_all(dir / "single");
    ASSERT_EQ(run("run " + cfg.string() + opts(dir / "single")).code, 0);
    for (int K : {1, 2, 3}) {
      for (const char* budget : {"", " --max-memory 600K"}) {
        if (*budget && yaml != kNgram) continue;
        const fs::path out = dir / ("k" + std::to_string(K));
        fs::remove_all(out);
        const Result r = run_mpi(K, "run " + cfg.string() + opts(out) + " --threads 1" + budget);
        ASSERT_EQ(r.code, 0) << r.out;
        const json m = manifest_of(out);
        EXPECT_EQ(m["ranks"], K);
        for (const auto& p : m["points"]) {
          std::vector<std::int64_t> chains(K, 0);
          for (const auto& w : p["workers"]) chains.at(w["rank"].get<int>()) += w["chains"].get<std::int64_t>();
          for (int rank = 0; rank < K; ++rank) EXPECT_GT(chains[rank], 0) << "rank " << rank << " did no work";
          std::int64_t total = 0;
          for (auto c : chains) total += c;
          EXPECT_EQ(total, p["chains"].get<std::int64_t>());
        }
        expect_same_output(dir / "single", out, "K = " + std::to_string(K) + budget);
      }
    }
  }
  fs::remove_all(dir);
}

// A run killed with SIGKILL between two checkpoints, or after the last one,
// resumes to the bytes of a run that was never killed: every family, several
// points, several batches.
TEST(Resume, AfterSigkillTheOutputIsBitIdentical) {
  const fs::path dir = temp_dir("sigkill");
  struct Case {
    const char* yaml;
    const char* extra;
    std::vector<int> kill_steps;  // generation steps (over points and batches) after which the process dies
  };
  // Gaussian: points of 8 steps (the last in 9 batches: 96 steps in all),
  // checkpoints at generations 3 and 6: step 5 lies between two, step 12
  // right after one, step 96 (the last) after the last one. Mixture: 6 steps,
  // checkpoints at generations 2 and 4. N-gram: 4 batches of 7 steps,
  // checkpoints at generations 2, 4, 6 of each; step 28 writes the last.
  const std::vector<Case> cases = {{kGaussian, " --checkpoint-every 3 --max-memory 84K", {5, 12, 96}},
                                   {kMixture, " --checkpoint-every 2", {4, 6}},
                                   {kNgram, " --checkpoint-every 2 --max-memory 600K", {4, 11, 27, 28}}};
  for (const Case& k : cases) {
    const fs::path cfg = write_config(dir, k.yaml);
    fs::remove_all(dir / "whole");
    ASSERT_EQ(run("run " + cfg.string() + opts(dir / "whole") + k.extra).code, 0);
    EXPECT_FALSE(fs::exists(dir / "whole" / "checkpoint")) << "a complete run keeps no checkpoint";
    for (int step : k.kill_steps) {
      const fs::path out = dir / ("killed" + std::to_string(step));
      fs::remove_all(out);
      const Result killed = run_command("OUROBOROS_FAULT=kill@" + std::to_string(step) + " " + kBinary + " run " +
                                        cfg.string() + opts(out) + k.extra);
      ASSERT_EQ(killed.code, 128 + 9) << "step " << step << ": " << killed.out;
      ASSERT_EQ(manifest_of(out)["status"], "running");
      const Result resumed = run("resume " + out.string() + " --no-progress");
      ASSERT_EQ(resumed.code, 0) << resumed.out;
      const json m = manifest_of(out);
      EXPECT_EQ(m["status"], "complete");
      EXPECT_EQ(m["resumed"].size(), 1u);
      expect_same_output(dir / "whole", out, "killed after step " + std::to_string(step) + " of\n" + k.yaml);
      fs::remove_all(out);
    }
  }
  fs::remove_all(dir);
}

// SIGTERM: the run stops at the next generation boundary with exit code 143,
// every finished generation on disk and a checkpoint written (no
// --checkpoint-every needed); resume finishes it to the same bytes.
TEST(Resume, SigtermStopsCleanlyAndResumes) {
  const fs::path dir = temp_dir("sigterm");
  const fs::path cfg = write_config(dir, kGaussian);
  ASSERT_EQ(run("run " + cfg.string() + opts(dir / "whole")).code, 0);
  const Result stopped = run_command("OUROBOROS_FAULT=term@10 " + kBinary + " run " + cfg.string() + opts(dir / "t"));
  ASSERT_EQ(stopped.code, 128 + 15) << stopped.out;
  EXPECT_NE(stopped.out.find("ouroboros resume"), std::string::npos) << stopped.out;
  const json m = manifest_of(dir / "t");
  EXPECT_EQ(m["status"], "interrupted");
  // Stopped after step 11: point 1 (0-based), generation 2; its rows are on
  // disk: 8 generations of point 0 and 3 of point 1, every Gaussian metric each but draws_per_kept (no filter) and
  // the sample-based ones (not asked for).
  EXPECT_EQ(m["stopped_at"]["point"], 1);
  EXPECT_EQ(m["stopped_at"]["generation"], 2);
  std::ifstream f(dir / "t" / "metrics.csv");
  int lines = 0;
  for (std::string line; std::getline(f, line);) ++lines;
  EXPECT_EQ(lines, 1 + (8 + 3) * (static_cast<int>(ouro::kernels::kNumGaussianMetrics) - 1 -
                                  static_cast<int>(ouro::kernels::kSampleMetricCount)));
  const Result resumed = run("resume " + (dir / "t").string() + " --no-progress");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  expect_same_output(dir / "whole", dir / "t", "after SIGTERM");
  fs::remove_all(dir);
}

// Appends the checkpoint format's hash (FNV-1a, 64-bit) to a file's bytes:
// an independent writer of the documented format, for forging a checkpoint
// of another version that is otherwise intact.
std::string with_hash(std::string bytes) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ULL;
  bytes.append(reinterpret_cast<const char*>(&h), sizeof h);
  return bytes;
}

// What a refused resume must leave exactly as it was.
const char* const kRunFiles[] = {"metrics.csv", "per_chain.csv", "summary.csv", "summary_chains.csv", "manifest.json"};

// Damaged and foreign checkpoints are refused before any work, with exit
// code 2 and a message naming the problem; the run folder is left as it was.
TEST(Resume, DamagedOrForeignCheckpointsAreRefused) {
  const fs::path dir = temp_dir("refuse");
  const fs::path cfg = write_config(dir, kMixture);
  const std::string kill = "OUROBOROS_FAULT=kill@4 " + kBinary + " run " + cfg.string();
  ASSERT_EQ(run_command(kill + opts(dir / "base") + " --checkpoint-every 2").code, 128 + 9);
  ASSERT_EQ(run_command(kill + opts(dir / "other") + " --checkpoint-every 2 --set seed=99").code, 128 + 9);
  const std::string ckpt = "checkpoint/ckpt-1-rank0.bin";
  ASSERT_TRUE(fs::exists(dir / "base" / ckpt));

  auto refused = [&](const std::string& name, auto&& damage, const std::string& expect) {
    const fs::path out = dir / name;
    fs::copy(dir / "base", out, fs::copy_options::recursive);
    damage(out);
    std::vector<std::string> before;
    for (const char* f : kRunFiles) before.push_back(slurp(out / f));
    const Result r = run("resume " + out.string() + " --no-progress");
    EXPECT_EQ(r.code, 2) << name << ": " << r.out;
    EXPECT_NE(r.out.find(expect), std::string::npos) << name << ": " << r.out;
    for (std::size_t i = 0; i < before.size(); ++i)
      EXPECT_TRUE(slurp(out / kRunFiles[i]) == before[i]) << name << ": " << kRunFiles[i] << " was touched";
  };
  refused(
      "truncated", [&](const fs::path& out) { fs::resize_file(out / ckpt, fs::file_size(out / ckpt) / 2); },
      "corrupted or truncated");
  refused(
      "flipped",
      [&](const fs::path& out) {
        std::string b = slurp(out / ckpt);
        b[b.size() / 2] = static_cast<char>(b[b.size() / 2] ^ 1);
        std::ofstream(out / ckpt, std::ios::binary | std::ios::trunc) << b;
      },
      "corrupted or truncated");
  refused(
      "foreign",
      [&](const fs::path& out) {
        fs::remove_all(out / "checkpoint");
        fs::copy(dir / "other" / "checkpoint", out / "checkpoint");
      },
      "another config");
  refused(
      "version",
      [&](const fs::path& out) {
        // Header: 8 bytes magic, u64 length, JSON; rewritten with another version.
        const std::string b = slurp(out / ckpt);
        std::uint64_t len = 0;
        std::memcpy(&len, b.data() + 8, sizeof len);
        json h = json::parse(b.substr(16, len));
        h["version"] = "0.0.1 (an older build)";
        const std::string text = h.dump();
        const std::uint64_t n = text.size();
        std::string forged = b.substr(0, 8) + std::string(reinterpret_cast<const char*>(&n), sizeof n) + text +
                             b.substr(16 + len, b.size() - 16 - len - 8);
        std::ofstream(out / ckpt, std::ios::binary | std::ios::trunc) << with_hash(forged);
      },
      "was written by ouroboros 0.0.1");
  refused(
      "none", [&](const fs::path& out) { fs::remove_all(out / "checkpoint"); }, "no checkpoint to go on from");
  if (mpi_available()) {
    const fs::path out = dir / "ranks";
    fs::copy(dir / "base", out, fs::copy_options::recursive);
    const Result r = run_mpi(2, "resume " + out.string() + " --no-progress");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("same number of ranks"), std::string::npos) << r.out;
  }
  // A folder reused with --force: the earlier run's checkpoint is gone and
  // never taken for the new run's (which stopped before its first).
  {
    const fs::path out = dir / "reused";
    fs::copy(dir / "base", out, fs::copy_options::recursive);
    ASSERT_EQ(run_command("OUROBOROS_FAULT=kill@1 " + kBinary + " run " + cfg.string() + opts(out) +
                          " --checkpoint-every 5 --force")
                  .code,
              128 + 9);
    const Result r = run("resume " + out.string() + " --no-progress");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no checkpoint to go on from"), std::string::npos) << r.out;
  }
  // The undamaged copy resumes.
  EXPECT_EQ(run("resume " + (dir / "base").string() + " --no-progress").code, 0);
  fs::remove_all(dir);
}

// Under MPI: a run killed mid-way resumes to the same bytes; a damaged
// checkpoint of one rank (not rank 0) is refused on every rank, with its
// reason printed, before rank 0 touches the folder.
TEST(Resume, MpiRunsResumeAndRefuseTogether) {
  if (!mpi_available()) GTEST_SKIP() << "this build has no MPI, or mpirun is not on the PATH";
  const fs::path dir = temp_dir("mpiresume");
  const fs::path cfg = write_config(dir, kNgram);
  const std::string extra = " --threads 1 --checkpoint-every 2 --max-memory 600K";
  ASSERT_EQ(run("run " + cfg.string() + opts(dir / "whole") + extra).code, 0);
  const Result killed = run_mpi(2, "run " + cfg.string() + opts(dir / "k") + extra);  // (reference for K = 2)
  ASSERT_EQ(killed.code, 0) << killed.out;
  expect_same_output(dir / "whole", dir / "k", "K = 2");
  fs::remove_all(dir / "k");
  const Result r = run_command(
      "OUROBOROS_FAULT=kill@9 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
      "mpirun --oversubscribe -n 2 " +
      kBinary + " run " + cfg.string() + opts(dir / "k") + extra);
  ASSERT_NE(r.code, 0) << r.out;
  fs::copy(dir / "k", dir / "bad", fs::copy_options::recursive);
  const Result resumed = run_mpi(2, "resume " + (dir / "k").string() + " --no-progress --threads 1");
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  expect_same_output(dir / "whole", dir / "k", "K = 2, killed and resumed");

  std::string seq;
  {
    const json latest = json::parse(slurp(dir / "bad" / "checkpoint" / "latest.json"));
    seq = std::to_string(latest["seq"].get<int>());
  }
  const fs::path ckpt = dir / "bad" / "checkpoint" / ("ckpt-" + seq + "-rank1.bin");
  std::string b = slurp(ckpt);
  ASSERT_GT(b.size(), 100u);
  b[b.size() / 2] = static_cast<char>(b[b.size() / 2] ^ 1);
  std::ofstream(ckpt, std::ios::binary | std::ios::trunc) << b;
  std::vector<std::string> before;
  for (const char* f : kRunFiles) before.push_back(slurp(dir / "bad" / f));
  const Result refused = run_mpi(2, "resume " + (dir / "bad").string() + " --no-progress --threads 1");
  EXPECT_NE(refused.code, 0) << refused.out;
  EXPECT_NE(refused.out.find("rank 1: checkpoint"), std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("corrupted or truncated"), std::string::npos) << refused.out;
  for (std::size_t i = 0; i < before.size(); ++i)
    EXPECT_TRUE(slurp(dir / "bad" / kRunFiles[i]) == before[i]) << kRunFiles[i] << " was touched";
  fs::remove_all(dir);
}

TEST(Plan, DryRunPrintsThePlanAndWritesNothing) {
  const fs::path dir = temp_dir("dryrun");
  const fs::path cfg = write_config(dir, kNgram);
  const Result r = run("run " + cfg.string() + " --dry-run --max-memory 1800K --out " + (dir / "o").string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("in 4 batches of 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("estimated run time"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "o"));
  const Result bad = run("run " + cfg.string() + " --max-memory lots --out " + (dir / "o").string());
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("--max-memory"), std::string::npos) << bad.out;
  const Result tiny = run("run " + cfg.string() + " --max-memory 10K --out " + (dir / "o").string());
  EXPECT_EQ(tiny.code, 2);
  EXPECT_NE(tiny.out.find("chains: a batch of even one chain"), std::string::npos) << tiny.out;
  EXPECT_FALSE(fs::exists(dir / "o"));
  fs::remove_all(dir);
}

// The peak resident memory, in bytes, of the binary run with `args` (its output discarded), and its exit code.
std::pair<long, int> peak_memory(const std::vector<std::string>& args) {
  const pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv{const_cast<char*>(kBinary.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
    execv(kBinary.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  struct rusage use {};
  wait4(pid, &status, 0, &use);
  return {use.ru_maxrss * 1024L, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)};
}

// A dry run stays small whatever the config: a Zipf vocabulary of 10^8 types (about 4 GiB a chain) is planned
// without building a chain, within the 256 MiB the dry run promises (the calibration would need over 10 GiB), with
// the reason it has no estimate; a folder that already has files is refused as the run would refuse it.
TEST(Plan, DryRunStaysSmallAndChecksTheOutputFolder) {
  const fs::path dir = temp_dir("dryrun-small");
  const fs::path cfg = write_config(dir, R"(
name: huge-zipf
chains: 10
generations: 5
model: {family: ngram, order: 1, smoothing: mle}
truth: {zipf: {vocab: 100000000, exponent: 1.1}}
data: {samples: 1000}
)");
  const auto [bytes, code] = peak_memory({"run", cfg.string(), "--dry-run", "--threads", "1"});
  ASSERT_EQ(code, 0);
  EXPECT_LT(bytes, 256L << 20) << "peak resident memory of the dry run";
  const Result r = run("run " + cfg.string() + " --dry-run --threads 1");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("no estimate: one chain needs"), std::string::npos) << r.out;
  fs::create_directories(dir / "used");
  std::ofstream(dir / "used" / "metrics.csv") << "x\n";
  const Result used = run("run " + cfg.string() + " --dry-run --out " + (dir / "used").string());
  EXPECT_EQ(used.code, 2) << used.out;
  EXPECT_NE(used.out.find("already has files"), std::string::npos) << used.out;
  fs::remove_all(dir);
}

}  // namespace

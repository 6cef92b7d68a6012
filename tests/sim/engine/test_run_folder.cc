// The run folder through the binary: one writer at a time (its lock), a status that says how the run ended
// (complete, interrupted with a checkpoint, failed), a full disk that keeps every whole generation and resumes to
// the bytes of an uninterrupted run, checkpoints by wall time, resume's refusal of a corpus that changed, and paths
// that are not what they should be (a device, a FIFO, a directory) refused with exit code 2.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/support/cli.h"
#include "tests/support/run_outputs.h"

namespace {

using namespace ouro::test;
using nlohmann::json;

// Three points of 7 steps each (generations 0..6), a pooled regime whose state matters between generations.
const char* kGaussian = R"(
name: run-folder
seed: 11
chains: 40
generations: 6
model: {family: gaussian, dim: 1}
truth: {isotropic: 2.0}
data: {samples: 12, regime: accumulate, real_fraction: 0.25}
sweep:
  data.samples: [12, 20, 30]
)";

std::string opts(const fs::path& out) { return " --backend cpu --no-progress --per-chain --out " + out.string(); }

std::string with_env(const std::string& env, const std::string& args) { return env + " " + kBinary + " " + args; }

// Every line of a table ends in a newline and has the header's number of fields (none of them holds a comma).
void expect_whole_rows(const fs::path& file) {
  const std::string text = slurp(file);
  ASSERT_FALSE(text.empty()) << file;
  EXPECT_EQ(text.back(), '\n') << file << " ends in a half-written row";
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);
  const auto fields = std::count(line.begin(), line.end(), ',');
  for (int n = 2; std::getline(in, line); ++n)
    ASSERT_EQ(std::count(line.begin(), line.end(), ','), fields) << file << " line " << n << ": " << line;
}

std::uintmax_t table_bytes(const fs::path& run) {
  std::uintmax_t n = 0;
  for (const char* f : {"metrics.csv", "per_chain.csv", "summary.csv", "summary_chains.csv"})
    n += fs::file_size(run / f);
  return n;
}

// A full disk (an injected ENOSPC after N bytes of tables) anywhere in the run: the run ends with exit code 1 and
// status interrupted, every table holds whole rows, and resume finishes it to the bytes of a run with room.
TEST(RunFolder, FullDiskKeepsWholeGenerationsAndResumesToTheSameBytes) {
  const fs::path dir = temp_dir("enospc");
  const fs::path cfg = write_config(dir, kGaussian);
  ASSERT_EQ(run("run " + cfg.string() + opts(dir / "whole")).code, 0);
  const std::uintmax_t total = table_bytes(dir / "whole");
  // Points in the rows of metrics.csv and per_chain.csv, and in the point summaries of the last point.
  for (const double share : {0.02, 0.3, 0.55, 0.8, 0.97, 0.999}) {
    const auto limit = static_cast<std::uintmax_t>(share * static_cast<double>(total));
    const fs::path out = dir / ("full" + std::to_string(limit));
    const Result r =
        run_command(with_env("OUROBOROS_FAULT=enospc@" + std::to_string(limit), "run " + cfg.string()) + opts(out));
    ASSERT_EQ(r.code, 1) << "limit " << limit << " of " << total << ": " << r.out;
    EXPECT_NE(r.out.find("disk is full"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ouroboros resume"), std::string::npos) << r.out;
    const json m = manifest_of(out);
    EXPECT_EQ(m["status"], "interrupted");
    EXPECT_NE(m["status_reason"].get<std::string>().find("No space left on device"), std::string::npos);
    for (const char* f : {"metrics.csv", "per_chain.csv", "summary.csv", "summary_chains.csv"})
      expect_whole_rows(out / f);
    const Result report = run("report " + out.string());
    EXPECT_NE(report.code, 0) << "report accepted an interrupted run";
    EXPECT_NE(report.out.find("resume"), std::string::npos) << report.out;
    const Result resumed = run("resume " + out.string() + " --no-progress");
    ASSERT_EQ(resumed.code, 0) << resumed.out;
    EXPECT_EQ(manifest_of(out)["status"], "complete");
    expect_same_output(dir / "whole", out, "full disk after " + std::to_string(limit) + " bytes");
  }
  fs::remove_all(dir);
}

// When the checkpoint cannot be written either (the manifest neither), the half row is still removed, and the
// folder, left saying running with nobody holding it, is read as failed: resume refuses it with the reason.
TEST(RunFolder, FullDiskWithoutRoomForACheckpointFails) {
  const fs::path dir = temp_dir("enospc-all");
  const fs::path cfg = write_config(dir, kGaussian);
  const fs::path out = dir / "run";
  const Result r = run_command(with_env("OUROBOROS_FAULT=enospc-all@20000", "run " + cfg.string()) + opts(out));
  ASSERT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no checkpoint"), std::string::npos) << r.out;
  for (const char* f : {"metrics.csv", "per_chain.csv"}) expect_whole_rows(out / f);
  EXPECT_EQ(manifest_of(out)["status"], "running");
  const Result resumed = run("resume " + out.string());
  EXPECT_EQ(resumed.code, 2) << resumed.out;
  EXPECT_NE(resumed.out.find("failed"), std::string::npos) << resumed.out;
  EXPECT_NE(resumed.out.find("--force"), std::string::npos) << resumed.out;
  fs::remove_all(dir);
}

// SIGHUP (a closed terminal) stops the run at a generation boundary like SIGINT and SIGTERM: status interrupted,
// the signal named, and resume finishes it to the same bytes.
TEST(RunFolder, SighupStopsTheRunResumably) {
  const fs::path dir = temp_dir("sighup");
  const fs::path cfg = write_config(dir, kGaussian);
  ASSERT_EQ(run("run " + cfg.string() + opts(dir / "whole")).code, 0);
  const Result r = run_command(with_env("OUROBOROS_FAULT=hup@9", "run " + cfg.string()) + opts(dir / "hup"));
  ASSERT_EQ(r.code, 128 + SIGHUP) << r.out;
  const json m = manifest_of(dir / "hup");
  EXPECT_EQ(m["status"], "interrupted");
  EXPECT_EQ(m["status_reason"], "stopped by SIGHUP");
  ASSERT_EQ(run("resume " + (dir / "hup").string() + " --no-progress").code, 0);
  expect_same_output(dir / "whole", dir / "hup", "after SIGHUP");
  fs::remove_all(dir);
}

// Checkpoints by wall time, on by default (300 s): with a tiny interval a run killed with SIGKILL has one to resume
// from; with 0 it has none, and resume says the run failed.
TEST(RunFolder, CheckpointsByWallTime) {
  const fs::path dir = temp_dir("timed");
  const fs::path cfg = write_config(dir, kGaussian);
  ASSERT_EQ(run("run " + cfg.string() + opts(dir / "whole")).code, 0);
  EXPECT_EQ(manifest_of(dir / "whole")["run_options"]["checkpoint_every_seconds"], 300.0);

  const std::string kill = with_env("OUROBOROS_FAULT=kill@10", "run " + cfg.string());
  ASSERT_EQ(run_command(kill + opts(dir / "timed") + " --checkpoint-every-seconds 0.000001").code, 128 + SIGKILL);
  EXPECT_TRUE(fs::exists(dir / "timed" / "checkpoint" / "latest.json"));
  ASSERT_EQ(run("resume " + (dir / "timed").string() + " --no-progress").code, 0);
  expect_same_output(dir / "whole", dir / "timed", "killed, with checkpoints by time");

  ASSERT_EQ(run_command(kill + opts(dir / "none") + " --checkpoint-every-seconds 0").code, 128 + SIGKILL);
  EXPECT_EQ(manifest_of(dir / "none")["status"], "running");
  const Result resumed = run("resume " + (dir / "none").string());
  EXPECT_EQ(resumed.code, 2) << resumed.out;
  EXPECT_NE(resumed.out.find("no checkpoint"), std::string::npos) << resumed.out;
  fs::remove_all(dir);
}

// One writer per folder: while a run is alive (held stopped with SIGSTOP, so the test does not race it), a second
// run into its folder, with or without --force, and a resume of it are refused with exit code 2 naming its pid, and
// report says it is being written; the first run then completes with its own files.
TEST(RunFolder, ASecondWriterIsRefusedWhileTheFirstIsAlive) {
  const fs::path dir = temp_dir("lock");
  const fs::path cfg = write_config(dir, kGaussian);
  const fs::path out = dir / "shared";
  ASSERT_EQ(std::system((kBinary + " run " + cfg.string() + opts(out) + " --set chains=3000 --set generations=60 > " +
                         (dir / "first.log").string() + " 2>&1 &")
                            .c_str()),
            0);
  long pid = 0;
  for (int i = 0; i < 600 && pid == 0; ++i) {  // up to a minute for the first run to take its lock
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (fs::exists(out / "manifest.json")) pid = std::atol(slurp(out / ".lock").c_str());
  }
  ASSERT_GT(pid, 0) << slurp(dir / "first.log");
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGSTOP), 0);
  const std::string holder = "process " + std::to_string(pid);
  for (const std::string& args :
       {"run " + cfg.string() + opts(out), "run " + cfg.string() + opts(out) + " --force", "resume " + out.string()}) {
    const Result r = run(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.out;
    EXPECT_NE(r.out.find(holder), std::string::npos) << args << ": " << r.out;
  }
  const Result report = run("report " + out.string());
  EXPECT_EQ(report.code, 1) << report.out;
  EXPECT_NE(report.out.find("being written now by " + holder), std::string::npos) << report.out;
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGCONT), 0);
  for (int i = 0; i < 1200 && kill(static_cast<pid_t>(pid), 0) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const json m = manifest_of(out);
  EXPECT_EQ(m["status"], "complete") << slurp(dir / "first.log");
  EXPECT_NE(slurp(out / "config.yaml").find("chains: 3000"), std::string::npos);
  EXPECT_EQ(m["config"]["chains"], 3000);
  fs::remove_all(dir);
}

// resume refuses a corpus whose content changed since the run started, naming it; restored, the run resumes.
TEST(RunFolder, ResumeRefusesACorpusThatChanged) {
  const fs::path dir = temp_dir("corpus");
  const fs::path corpus = dir / "text.txt";
  {
    std::ofstream f(corpus);
    for (int i = 0; i < 300; ++i) f << "the cat sat on the mat number " << i << " today\n";
  }
  const fs::path cfg = write_config(dir,
                                    "name: corpus-change\nchains: 8\ngenerations: 6\n"
                                    "model: {family: ngram, order: 2, smoothing: mle}\n"
                                    "truth: {corpus: " +
                                        corpus.string() + "}\ndata: {samples: 500}\n");
  const fs::path out = dir / "run";
  ASSERT_EQ(
      run_command(with_env("OUROBOROS_FAULT=kill@4", "run " + cfg.string()) + opts(out) + " --checkpoint-every 1").code,
      128 + SIGKILL);
  const json inputs = manifest_of(out)["inputs"];
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0]["path"], corpus.string());
  const std::string original = slurp(corpus);
  std::ofstream(corpus, std::ios::app) << "a new line\n";
  const Result refused = run("resume " + out.string());
  EXPECT_EQ(refused.code, 2) << refused.out;
  EXPECT_NE(refused.out.find(corpus.string() + " changed"), std::string::npos) << refused.out;
  std::ofstream(corpus, std::ios::trunc) << original;
  const Result resumed = run("resume " + out.string() + " --no-progress");
  EXPECT_EQ(resumed.code, 0) << resumed.out;
  fs::remove_all(dir);
}

// Paths that cannot be what they name are refused with exit code 2 and a message, never a crash or a hang: an
// output folder that is a device, a FIFO or below a file; a config that is a directory or a FIFO; a resume folder
// whose config.yaml is a directory.
TEST(RunFolder, PathsThatAreNotWhatTheyNameAreRefused) {
  const fs::path dir = temp_dir("paths");
  const fs::path cfg = write_config(dir, kGaussian);
  const fs::path fifo = dir / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::ofstream(dir / "file") << "x";
  struct Case {
    std::string args, expect;
  };
  const std::vector<Case> cases = {
      {"run " + cfg.string() + " --out /dev/null --force", "/dev/null exists and is not a directory"},
      {"run " + cfg.string() + " --out " + fifo.string(), "is not a directory"},
      {"run " + cfg.string() + " --out " + (dir / "file" / "run").string(), "is not a directory"},
      {"run " + cfg.string() + " --dry-run --out /dev/null", "is not a directory"},
      {"validate " + dir.string(), "is a directory"},
      {"validate " + fifo.string(), "not a regular file"},
      {"run " + dir.string(), "is a directory"},
      {"resume " + fifo.string(), "is not a directory"},
      {"resume " + dir.string(), "not an ouroboros run folder"},
      {"run " + cfg.string() + " --threads 1025 --out " + (dir / "t").string(), "--threads"},
  };
  for (const Case& c : cases) {
    const Result r = run_command("timeout 60 " + kBinary + " " + c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.out;
    EXPECT_NE(r.out.find(c.expect), std::string::npos) << c.args << ": " << r.out;
  }
  EXPECT_FALSE(fs::exists(dir / ".lock")) << "resume made a lock file in a folder that is not a run's";
  // A run folder whose config.yaml is a directory.
  ASSERT_EQ(run("run " + cfg.string() + opts(dir / "r")).code, 0);
  json m = manifest_of(dir / "r");
  m["status"] = "interrupted";
  std::ofstream(dir / "r" / "manifest.json") << m.dump();
  fs::remove(dir / "r" / "config.yaml");
  fs::create_directory(dir / "r" / "config.yaml");
  const Result r = run("resume " + (dir / "r").string());
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("is a directory"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace

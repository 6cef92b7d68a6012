// ouroboros command line: `run` an experiment config, `validate` one without
// running it. Bad input (an unknown option, a config error) exits with code 2
// before any work is done.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "sim/analysis/report.h"
#include "sim/engine/config.h"
#include "sim/engine/run.h"
#include "sim/families/family.h"
#include "sim/families/ngram/ngram_family.h"
#include "sim/io/checkpoint.h"
#include "sim/io/provenance.h"
#include "sim/parallel/backend.h"
#include "sim/parallel/comm.h"

namespace {

constexpr int kExitBadInput = 2;

std::string default_out_dir(const std::string& name) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return fmt::format("runs/{}-{}", name, stamp);
}

std::string describe_points(const ouro::Experiment& ex) {
  std::string s = fmt::format("{} sweep point{}", ex.points.size(), ex.points.size() == 1 ? "" : "s");
  for (const auto& a : ex.axes) s += fmt::format("\n  {}: {}", a.path, fmt::join(a.labels, ", "));
  return s;
}

// Seconds the point would take on this process: a short calibration (the
// first chains of its first batch for up to two generations), extrapolated
// linearly in chains and generations. A rough guide for planning, not a
// promise: the first generations of a chain may cost less than later ones.
double calibrate_seconds(const ouro::PointConfig& c, const ouro::PointPlan& plan, const std::string& backend,
                         int threads) {
  using Clock = std::chrono::steady_clock;
  const std::int64_t n = std::max<std::int64_t>(1, std::min<std::int64_t>(plan.batch, 32));
  const int gens = std::min(c.generations, 2);
  auto run = ouro::make_family_run(c, backend, threads, ouro::ChainBlock{0, n});
  std::vector<double> metrics(ouro::metric_names(c).size() * n);
  const auto t0 = Clock::now();
  run->start(metrics.data());
  const auto t1 = Clock::now();
  for (int g = 1; g <= gens; ++g) run->advance(g, metrics.data());
  const auto t2 = Clock::now();
  const double start = std::chrono::duration<double>(t1 - t0).count();
  const double step = gens ? std::chrono::duration<double>(t2 - t1).count() / gens : 0.0;
  const double per_rank = static_cast<double>(plan.ranks.front().count);
  return per_rank / static_cast<double>(n) * (start + c.generations * step);
}

}  // namespace

std::string dry_run_report(const ouro::Experiment& ex, const std::vector<ouro::PointPlan>& plans,
                           const ouro::RunOptions& opt, int ranks) {
  std::string s = fmt::format("plan: {} sweep point{} on the {} backend, {} rank{}, {} per process\n", ex.points.size(),
                              ex.points.size() == 1 ? "" : "s", opt.backend, ranks, ranks == 1 ? "" : "s",
                              ouro::format_bytes(plans.front().budget));
  double total = 0.0;
  for (std::size_t p = 0; p < ex.points.size(); ++p) {
    const auto& c = ex.points[p].config;
    const auto& pl = plans[p];
    const double seconds = calibrate_seconds(c, pl, opt.backend, opt.threads);
    total += seconds;
    std::string label;
    for (std::size_t a = 0; a < ex.axes.size(); ++a)
      label += fmt::format("{}{}={}", a ? ", " : "", ex.axes[a].path, ex.points[p].labels[a]);
    s += fmt::format(
        "point {}{}: {} chains x {} generations; per rank {} chains in {} batch{} of {}; memory {} "
        "(backend {} + {} per chain) + {} of per-chain values on rank 0; about {:.1f} s\n",
        p + 1, label.empty() ? "" : " (" + label + ")", c.chains, c.generations, pl.ranks.front().count, pl.batches,
        pl.batches == 1 ? "" : "es", pl.batch,
        ouro::format_bytes(pl.fixed_bytes + pl.chain_bytes * static_cast<double>(pl.batch)),
        ouro::format_bytes(pl.fixed_bytes), ouro::format_bytes(pl.chain_bytes), ouro::format_bytes(pl.table_bytes),
        seconds);
  }
  s += fmt::format("estimated run time: about {:.1f} s (from a short calibration on this process)\n", total);
  return s;
}

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  ouro::request_stop();
}

int main(int argc, char** argv) {
  const ouro::Comm& comm = ouro::Comm::world(&argc, &argv);
  const bool root = comm.root();
  CLI::App app{
      "ouroboros: a GPU laboratory for model-collapse research.\n"
      "Runs recursive-training experiments (a model refitted on samples of its previous\n"
      "generation) for many independent chains, from a YAML config."};
  app.set_version_flag("--version",
                       fmt::format("ouroboros {} ({})", ouro::provenance::version(), ouro::provenance::git_commit()));
  app.require_subcommand(1);

  std::string config_path, out_dir, backend = "auto", max_memory, resume_dir;
  std::vector<std::string> sets;
  int threads = 0, checkpoint_every = 0;
  bool per_chain = false, no_progress = false, force = false, dry_run = false;

  CLI::App* run = app.add_subcommand("run", "run an experiment and write metrics.csv, manifest.json");
  run->add_option("config", config_path, "experiment config (YAML)")->required();
  run->add_option("--set", sets, "override a config key: --set data.samples=100 (repeatable)");
  run->add_option("--out", out_dir, "output folder (default: runs/NAME-TIMESTAMP)");
  run->add_option("--backend", backend, "auto (cuda when a device is present, else cpu), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  run->add_option("--threads", threads, "cpu threads (default: all cores)")->check(CLI::NonNegativeNumber);
  run->add_flag("--per-chain", per_chain, "also write every chain's values to per_chain.csv");
  run->add_flag("--no-progress", no_progress, "no progress bar on stderr");
  run->add_flag("--force", force, "write into an output folder that already has files");
  run->add_option("--checkpoint-every", checkpoint_every,
                  "write every chain's state every G generations, for `ouroboros resume` (default: only when "
                  "stopped by SIGINT/SIGTERM)")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--max-memory", max_memory,
                  "memory one process may use, e.g. 8G (default: 80% of what the device or host has free); chains "
                  "are run in batches that fit");
  run->add_flag("--dry-run", dry_run, "print the plan (batches, memory, a runtime estimate) and stop");

  std::string report_dir;
  CLI::App* report =
      app.add_subcommand("report", "write DIR/report.md: the sweep points ranked, with paired intervals");
  report->add_option("dir", report_dir, "a complete run's output folder")->required();

  CLI::App* resume = app.add_subcommand("resume", "continue a stopped or killed run from its last checkpoint");
  resume->add_option("dir", resume_dir, "the run's output folder")->required();
  resume->add_option("--threads", threads, "cpu threads (default: all cores)")->check(CLI::NonNegativeNumber);
  resume->add_flag("--no-progress", no_progress, "no progress bar on stderr");

  CLI::App* validate = app.add_subcommand("validate", "check a config without running it");
  validate->add_option("config", config_path, "experiment config (YAML)")->required();
  validate->add_option("--set", sets, "override a config key (repeatable)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  }

  if (report->parsed()) {
    if (!root) return 0;
    try {
      ouro::write_report(report_dir);
    } catch (const ouro::ReportError& e) {
      std::fprintf(stderr, "ouroboros: report: %s\n", e.what());
      return kExitBadInput;
    }
    std::printf("ouroboros: %s/report.md\n", report_dir.c_str());
    return 0;
  }

  namespace fs = std::filesystem;
  // Only rank 0 speaks; every rank reaches the same verdict on bad input.
  auto say = [root](const std::string& msg) {
    if (root) std::fprintf(stderr, "ouroboros: %s\n", msg.c_str());
  };
  nlohmann::json recorded;  // resume: the run's manifest
  if (resume->parsed()) {
    config_path = resume_dir + "/config.yaml";
    try {
      std::ifstream in(resume_dir + "/manifest.json");
      if (!in) throw std::runtime_error("missing");
      in >> recorded;
      (void)recorded.at("run_options").at("backend");
    } catch (const std::exception&) {
      say(fmt::format("resume: {} is not an ouroboros run folder (no readable manifest.json)", resume_dir));
      return kExitBadInput;
    }
    if (!fs::exists(config_path)) {
      say(fmt::format("resume: {} is missing", config_path));
      return kExitBadInput;
    }
    if (recorded.is_object() && recorded["status"].is_string() && recorded["status"] == "complete") {
      if (root) std::printf("ouroboros: %s is complete; nothing to resume\n", resume_dir.c_str());
      return 0;
    }
  }

  ouro::Experiment ex;
  try {
    ex = ouro::load_experiment(config_path, sets);
  } catch (const ouro::ConfigError& e) {
    say(fmt::format("config error: {}", e.what()));
    return kExitBadInput;
  }

  if (validate->parsed()) {
    if (root) std::printf("%s: valid (%s)\n", config_path.c_str(), describe_points(ex).c_str());
    return 0;
  }

  ouro::RunOptions opt;
  opt.config_path = config_path;
  opt.sets = sets;
  opt.backend = backend;
  opt.threads = threads;
  opt.per_chain = per_chain;
  opt.progress = !no_progress;
  opt.checkpoint_every = checkpoint_every;
  opt.out_dir = out_dir.empty() ? default_out_dir(ex.points.front().config.name) : out_dir;
  if (resume->parsed()) {
    try {
      const auto& ro = recorded.at("run_options");
      backend = ro.at("backend").get<std::string>();
      opt.per_chain = ro.at("per_chain").get<bool>();
      opt.checkpoint_every = ro.at("checkpoint_every").get<int>();
      opt.max_memory = ro.at("max_memory_bytes").get<double>();
      opt.config_path = recorded.at("command").at("config").get<std::string>();
    } catch (const std::exception& e) {
      say(fmt::format("resume: {}/manifest.json lacks the run options resume needs ({})", resume_dir, e.what()));
      return kExitBadInput;
    }
    opt.out_dir = resume_dir;
    opt.resume = true;
  }
  try {
    if (!max_memory.empty()) opt.max_memory = ouro::parse_bytes(max_memory);
    ouro::cuda_select_device(comm.local_rank());  // one GPU per rank on a node
    opt.backend = ouro::resolve_backend(backend);
  } catch (const std::invalid_argument& e) {
    say(e.what());
    return kExitBadInput;
  }
  // The n-gram family's cuda backend runs part of its settings so far
  // (ngram_cuda_gap): a point outside them runs the whole experiment on the
  // cpu under auto, and refuses an explicit --backend cuda before any work.
  if (opt.backend == "cuda")
    for (const auto& p : ex.points) {
      if (p.config.family != "ngram") continue;
      const std::string gap = ouro::ngram_cuda_gap(p.config);
      if (gap.empty()) continue;
      if (backend == "cuda") {
        std::string where;
        for (std::size_t a = 0; a < ex.axes.size(); ++a)
          where += fmt::format("{}{}={}", a ? ", " : " (at sweep point ", ex.axes[a].path, p.labels[a]);
        say(fmt::format("--backend cuda: the ngram cuda backend does not run {} yet{}; use --backend cpu", gap,
                        where.empty() ? "" : where + ")"));
        return kExitBadInput;
      }
      opt.backend = "cpu";
      break;
    }
  // Folder checks on rank 0 only (it alone writes), the verdict shared.
  const bool occupied =
      comm.any(root && !opt.resume && !dry_run && fs::exists(opt.out_dir) && !fs::is_empty(opt.out_dir) && !force);
  if (occupied) {
    say(fmt::format("output folder {} already has files; choose another --out or pass --force", opt.out_dir));
    return kExitBadInput;
  }
  if (opt.backend == "cpu" && threads > 0) omp_set_num_threads(threads);
  std::vector<ouro::PointPlan> plans;
  try {
    plans = ouro::plan_run(ex, opt);
    opt.max_memory = plans.front().budget;  // the run plans with exactly this budget
  } catch (const ouro::ConfigError& e) {
    say(fmt::format("config error: {}", e.what()));
    return kExitBadInput;
  }

  if (dry_run) {
    try {
      if (root) std::printf("%s", dry_run_report(ex, plans, opt, comm.size()).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ouroboros: --dry-run: the calibration failed: %s\n", e.what());
      return 1;
    }
    return 0;
  }

  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  try {
    const ouro::RunResult r = ouro::run_experiment(ex, opt);
    if (r.interrupted) {
      g_signal = static_cast<int>(-comm.min(-static_cast<double>(g_signal)));  // the signal any rank received
      say(
          fmt::format("stopped by signal {} at a generation boundary; every finished generation is in {}/metrics.csv "
                      "and `ouroboros resume {}` continues the run",
                      static_cast<int>(g_signal), r.out_dir, r.out_dir));
      return 128 + static_cast<int>(g_signal);
    }
    const std::string where = r.backend == "cpu"
                                  ? fmt::format("cpu, {} threads", threads > 0 ? threads : omp_get_max_threads())
                                  : fmt::format("cuda, {}", ouro::cuda_device_name());
    const auto& first = ex.points.front().config;
    if (root)
      std::printf("ouroboros: %zu sweep point%s x %d generations x %lld chains on %s%s in %.2f s -> %s/metrics.csv\n",
                  ex.points.size(), ex.points.size() == 1 ? "" : "s", first.generations,
                  static_cast<long long>(first.chains), where.c_str(),
                  comm.size() > 1 ? fmt::format(" x {} ranks", comm.size()).c_str() : "", r.wall_seconds,
                  r.out_dir.c_str());
  } catch (const ouro::CheckpointError& e) {
    say(fmt::format("resume: {}", e.what()));
    if (comm.mpi()) comm.abort(kExitBadInput);
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ouroboros: run failed%s: %s\n",
                 comm.size() > 1 ? fmt::format(" on rank {}", comm.rank()).c_str() : "", e.what());
    if (comm.mpi()) comm.abort(1);
    return 1;
  }
  return 0;
}

#include "sim/cli/cli.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sim/analysis/report.h"
#include "sim/cli/dry_run.h"
#include "sim/cli/reference.h"
#include "sim/engine/config.h"
#include "sim/engine/run.h"
#include "sim/io/checkpoint.h"
#include "sim/io/per_chain_h5.h"
#include "sim/io/provenance.h"
#include "sim/io/run_folder.h"
#include "sim/parallel/backend.h"
#include "sim/parallel/comm.h"

namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  ouro::request_stop(sig);
}

}  // namespace

namespace ouro {
namespace {

namespace fs = std::filesystem;
constexpr int kExitBadInput = 2;
constexpr int kMaxThreads = 1024;

// Everything the command line can say.
struct Args {
  std::string config_path, out_dir, backend = "auto", max_memory, resume_dir, report_dir, family,
                                    per_chain_format = "csv";
  std::vector<std::string> sets;
  int threads = 0, checkpoint_every = 0;
  double checkpoint_seconds = 300.0;
  bool per_chain = false, no_progress = false, force = false, dry_run = false, markdown = false;
  CLI::App *run = nullptr, *report = nullptr, *resume = nullptr, *validate = nullptr, *keys = nullptr,
           *metrics = nullptr;
};

void add_subcommands(CLI::App& app, Args& a) {
  a.run = app.add_subcommand("run", "run an experiment and write metrics.csv, manifest.json");
  a.run->add_option("config", a.config_path, "experiment config (YAML)")->required();
  a.run->add_option("--set", a.sets, "override a config key: --set data.samples=100 (repeatable)");
  a.run->add_option("--out", a.out_dir, "output folder (default: runs/NAME-TIMESTAMP)");
  a.run->add_option("--backend", a.backend, "auto (cuda when a device is present, else cpu), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  a.run->add_option("--threads", a.threads, "cpu threads (default: all cores; at most 1024)")
      ->check(CLI::Range(0, kMaxThreads));
  a.run->add_flag("--per-chain", a.per_chain, "also write every chain's values to per_chain.csv");
  a.run
      ->add_option("--per-chain-format", a.per_chain_format,
                   "csv (per_chain.csv) or hdf5 (per_chain.h5: chunked, compressed; implies --per-chain)")
      ->check(CLI::IsMember({"csv", "hdf5"}));
  a.run->add_flag("--no-progress", a.no_progress, "no progress bar on stderr");
  a.run->add_flag("--force", a.force, "write into an output folder that already has files");
  a.run
      ->add_option("--checkpoint-every", a.checkpoint_every,
                   "also write every chain's state every G generations, for `ouroboros resume` (default: 0, by "
                   "time only)")
      ->check(CLI::NonNegativeNumber);
  a.run
      ->add_option("--checkpoint-every-seconds", a.checkpoint_seconds,
                   "write every chain's state every S seconds of wall time, for `ouroboros resume` (default: 300; 0: "
                   "only when stopped by a signal or a failed write)")
      ->check(CLI::NonNegativeNumber);
  a.run->add_option("--max-memory", a.max_memory,
                    "memory one process may use, e.g. 8G (default: 80% of what the device or host has free); chains "
                    "are run in batches that fit");
  a.run->add_flag("--dry-run", a.dry_run, "print the plan (batches, memory, a runtime estimate) and stop");

  a.report = app.add_subcommand("report", "write DIR/report.md: the sweep points ranked, with paired intervals");
  a.report->add_option("dir", a.report_dir, "a complete run's output folder")->required();

  a.resume = app.add_subcommand("resume", "continue a stopped or killed run from its last checkpoint");
  a.resume->add_option("dir", a.resume_dir, "the run's output folder")->required();
  a.resume->add_option("--threads", a.threads, "cpu threads (default: all cores; at most 1024)")
      ->check(CLI::Range(0, kMaxThreads));
  a.resume->add_flag("--no-progress", a.no_progress, "no progress bar on stderr");

  a.validate = app.add_subcommand("validate", "check a config without running it");
  a.validate->add_option("config", a.config_path, "experiment config (YAML)")->required();
  a.validate->add_option("--set", a.sets, "override a config key (repeatable)");

  a.keys = app.add_subcommand("keys", "list every config key: type, default, allowed values, meaning");
  a.keys->add_option("family", a.family, "only the keys every config has and this family's");
  a.keys->add_flag("--markdown", a.markdown, "as Markdown: with no family, the whole of docs/config.md");

  a.metrics = app.add_subcommand("metrics", "list a family's metrics: definition, collapse direction, theory column");
  a.metrics->add_option("family", a.family, "the model family")->required();
  a.metrics->add_flag("--markdown", a.markdown, "as a Markdown table");
}

std::string default_out_dir(const std::string& name) {
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return fmt::format("runs/{}-{}", name, stamp);
}

std::string describe_points(const Experiment& ex) {
  std::string s = fmt::format("{} sweep point{}", ex.points.size(), ex.points.size() == 1 ? "" : "s");
  for (const auto& a : ex.axes) s += fmt::format("\n  {}: {}", a.path, fmt::join(a.labels, ", "));
  return s;
}

// Only rank 0 speaks; every rank reaches the same verdict on bad input.
void say(const Comm& comm, const std::string& msg) {
  if (comm.root()) std::fprintf(stderr, "ouroboros: %s\n", msg.c_str());
}

int report_command(const Comm& comm, const Args& a) {
  if (!comm.root()) return 0;
  try {
    write_report(a.report_dir);
  } catch (const RunFolderError& e) {  // a run folder that is damaged or not complete: the folder, not the argument
    std::fprintf(stderr, "ouroboros: report: %s\n", e.what());
    return 1;
  } catch (const ReportError& e) {
    std::fprintf(stderr, "ouroboros: report: %s\n", e.what());
    return kExitBadInput;
  }
  std::printf("ouroboros: %s/report.md\n", a.report_dir.c_str());
  return 0;
}

// `keys [FAMILY]` and `metrics FAMILY`.
int reference_command(const Comm& comm, const Args& a) {
  const Family* family = nullptr;
  if (!a.family.empty() && (family = find_family(a.family)) == nullptr) {
    std::vector<std::string> names;
    for (const Family* f : family_table()) names.emplace_back(f->name());
    say(comm, fmt::format("no model family \"{}\" (there are {})", a.family, fmt::join(names, ", ")));
    return kExitBadInput;
  }
  if (!comm.root()) return 0;
  const TextFormat format = a.markdown ? TextFormat::kMarkdown : TextFormat::kPlain;
  std::string text;
  if (a.metrics->parsed()) text = metrics_reference(*family, format);
  else if (a.markdown && family == nullptr) text = config_reference(builtin_families());  // docs/config.md
  else text = keys_reference(family_table(), family, format);
  std::fputs(text.c_str(), stdout);
  return 0;
}

// resume DIR: the run's manifest and config.yaml; an exit code when there is nothing to go on with. The caller
// holds the folder's lock.
std::optional<int> read_resumed_run(const Comm& comm, Args& a, nlohmann::json& recorded) {
  a.config_path = a.resume_dir + "/config.yaml";
  std::string problem = regular_file_problem(a.resume_dir + "/manifest.json", "the run's manifest");
  if (problem.empty()) {
    try {
      std::ifstream in(a.resume_dir + "/manifest.json");
      in >> recorded;
      (void)recorded.at("run_options").at("backend");
    } catch (const std::exception&) {
      problem = "its manifest.json is not readable";
    }
  }
  if (!problem.empty()) {
    say(comm, fmt::format("resume: {} is not an ouroboros run folder ({})", a.resume_dir, problem));
    return kExitBadInput;
  }
  if (const std::string p = regular_file_problem(a.config_path, "the run's config"); !p.empty()) {
    say(comm, fmt::format("resume: {}", p));
    return kExitBadInput;
  }
  const RunState state = read_run_state(a.resume_dir);
  if (state.status == "complete") {
    if (comm.root()) std::printf("ouroboros: %s is complete; nothing to resume\n", a.resume_dir.c_str());
    return 0;
  }
  if (state.status == "failed") {
    say(comm, fmt::format("resume: the run in {} failed ({}) with no checkpoint to go on from; run it again with "
                          "--force",
                          a.resume_dir, state.reason.empty() ? "no reason recorded" : state.reason));
    return kExitBadInput;
  }
  return std::nullopt;
}

// Rank 0 takes the output folder's lock (created when absent) for the rest of the process; every rank gets the
// verdict. An exit code when the folder is not usable or another process holds it.
std::optional<int> lock_out_dir(const Comm& comm, const std::string& dir, std::unique_ptr<RunFolderLock>& lock) {
  std::string problem;
  if (comm.root()) {
    try {
      lock = std::make_unique<RunFolderLock>(dir);
    } catch (const std::exception& e) {
      problem = e.what();
    }
  }
  if (comm.any(!problem.empty())) {
    say(comm, problem);
    return kExitBadInput;
  }
  return std::nullopt;
}

// The run's options: from the command line, or for a resumed run from its manifest.
std::optional<int> run_options(const Comm& comm, Args& a, const Experiment& ex, const nlohmann::json& recorded,
                               RunOptions& opt) {
  opt.config_path = a.config_path;
  opt.sets = a.sets;
  opt.backend = a.backend;
  opt.threads = a.threads;
  opt.per_chain = a.per_chain || a.run->count("--per-chain-format") > 0;
  opt.per_chain_format = a.per_chain_format;
  opt.progress = !a.no_progress;
  opt.checkpoint_every = a.checkpoint_every;
  opt.checkpoint_seconds = a.checkpoint_seconds;
  opt.out_dir = a.out_dir.empty() ? default_out_dir(ex.points.front().config.name) : a.out_dir;
  if (a.resume->parsed()) {
    try {
      const auto& ro = recorded.at("run_options");
      a.backend = ro.at("backend").get<std::string>();
      opt.per_chain = ro.at("per_chain").get<bool>();
      opt.per_chain_format = ro.value("per_chain_format", "csv");
      opt.checkpoint_every = ro.at("checkpoint_every").get<int>();
      opt.checkpoint_seconds = ro.value("checkpoint_every_seconds", 300.0);
      opt.max_memory = ro.at("max_memory_bytes").get<double>();
      opt.config_path = recorded.at("command").at("config").get<std::string>();
    } catch (const std::exception& e) {
      say(comm,
          fmt::format("resume: {}/manifest.json lacks the run options resume needs ({})", a.resume_dir, e.what()));
      return kExitBadInput;
    }
    opt.out_dir = a.resume_dir;
    opt.resume = true;
  }
  if (opt.per_chain && opt.per_chain_format == "hdf5" && !hdf5_built()) {
    say(comm, "--per-chain-format hdf5: this ouroboros was built without HDF5 (Debian: libhdf5-dev; then build again)");
    return kExitBadInput;
  }
  try {
    if (!a.max_memory.empty()) opt.max_memory = parse_bytes(a.max_memory);
    cuda_select_device(comm.local_rank());  // one GPU per rank on a node
    opt.backend = resolve_backend(a.backend);
  } catch (const std::invalid_argument& e) {
    say(comm, e.what());
    return kExitBadInput;
  }
  // A family's cuda backend may run part of its settings (Family::backend_gap): a point outside them runs the whole
  // experiment on the cpu under auto, and refuses an explicit --backend cuda before any work.
  if (opt.backend == "cuda")
    for (const auto& p : ex.points) {
      const std::string gap = p.config.family->backend_gap(p.config, "cuda");
      if (gap.empty()) continue;
      if (a.backend == "cuda") {
        std::string where;
        for (std::size_t i = 0; i < ex.axes.size(); ++i)
          where += fmt::format("{}{}={}", i ? ", " : " (at sweep point ", ex.axes[i].path, p.labels[i]);
        const std::string what =
            p.config.family->support("cuda").runs
                ? fmt::format("the {} family's cuda backend does not run {} yet", p.config.family->name(), gap)
                : fmt::format("the {} family has no cuda backend", p.config.family->name());
        say(comm, fmt::format("--backend cuda: {}{}; use --backend cpu", what, where.empty() ? "" : where + ")"));
        return kExitBadInput;
      }
      opt.backend = "cpu";
      break;
    }
  return std::nullopt;
}

// Folder checks on rank 0 only (it alone writes), the verdict shared: the output folder can be one, nobody else
// writes it, and it is empty unless --force. A real run takes the lock first (kept in `lock`); a dry run only looks.
std::optional<int> claim_out_dir(const Comm& comm, const Args& a, const RunOptions& opt,
                                 std::unique_ptr<RunFolderLock>& lock) {
  if (opt.resume) return std::nullopt;  // locked before its folder was read
  std::string problem = comm.root() ? out_dir_problem(opt.out_dir) : "";
  if (comm.any(!problem.empty())) {
    say(comm, problem);
    return kExitBadInput;
  }
  if (a.dry_run) {
    if (comm.root())
      if (const auto pid = lock_holder(opt.out_dir))
        problem = fmt::format("{} is in use by process {}", opt.out_dir, *pid);
    if (comm.any(!problem.empty())) {
      say(comm, problem);
      return kExitBadInput;
    }
  } else if (const auto refused = lock_out_dir(comm, opt.out_dir, lock)) {
    return refused;
  }
  if (comm.any(comm.root() && !a.force && has_files(opt.out_dir))) {
    say(comm, fmt::format("output folder {} already has files; choose another --out or pass --force", opt.out_dir));
    return kExitBadInput;
  }
  return std::nullopt;
}

// Runs the experiment to its end or to a stop signal.
int run_command(const Comm& comm, const Args& a, const Experiment& ex, const RunOptions& opt) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);  // a closed terminal stops the run as SIGINT does, resumable
  try {
    const RunResult r = run_experiment(ex, opt);
    if (r.interrupted) {
      g_signal = static_cast<int>(-comm.min(-static_cast<double>(g_signal)));  // the signal any rank received
      if (g_signal != 0) {
        say(comm, r.status == "failed" && comm.root()
                      ? fmt::format("stopped by signal {}, but {}: every finished generation is in {}/metrics.csv, "
                                    "with no checkpoint to resume from",
                                    static_cast<int>(g_signal), r.reason, r.out_dir)
                      : fmt::format("stopped by signal {} at a generation boundary; every finished generation is in "
                                    "{}/metrics.csv and `ouroboros resume {}` continues the run",
                                    static_cast<int>(g_signal), r.out_dir, r.out_dir));
        return 128 + static_cast<int>(g_signal);
      }
      say(comm, r.status == "interrupted"
                    ? fmt::format("the run stopped: {}. Every finished generation is in {}/metrics.csv; once the "
                                  "cause is fixed, `ouroboros resume {}` continues the run",
                                  r.reason, r.out_dir, r.out_dir)
                    : fmt::format("the run failed: {}. Every finished generation is in {}/metrics.csv; there is no "
                                  "checkpoint to resume from",
                                  r.reason, r.out_dir));
      return 1;
    }
    const std::string where = r.backend == "cpu"
                                  ? fmt::format("cpu, {} threads", a.threads > 0 ? a.threads : omp_get_max_threads())
                                  : fmt::format("cuda, {}", cuda_device_name());
    const auto& first = ex.points.front().config;
    if (comm.root())
      std::printf("ouroboros: %zu sweep point%s x %d generations x %lld chains on %s%s in %.2f s -> %s/metrics.csv\n",
                  ex.points.size(), ex.points.size() == 1 ? "" : "s", first.generations,
                  static_cast<long long>(first.chains), where.c_str(),
                  comm.size() > 1 ? fmt::format(" x {} ranks", comm.size()).c_str() : "", r.wall_seconds,
                  r.out_dir.c_str());
  } catch (const CheckpointError& e) {
    say(comm, fmt::format("resume: {}", e.what()));
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

}  // namespace

int run_cli(int argc, char** argv) {
  const Comm& comm = Comm::world(&argc, &argv);
  CLI::App app{
      "ouroboros: a GPU laboratory for model-collapse research.\n"
      "Runs recursive-training experiments (a model refitted on samples of its previous\n"
      "generation) for many independent chains, from a YAML config."};
  app.set_version_flag("--version", fmt::format("ouroboros {} ({})", provenance::version(), provenance::git_commit()));
  app.require_subcommand(1);
  Args a;
  add_subcommands(app, a);
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
  if (a.report->parsed()) return report_command(comm, a);
  if (a.keys->parsed() || a.metrics->parsed()) return reference_command(comm, a);

  nlohmann::json recorded;              // resume: the run's manifest
  std::unique_ptr<RunFolderLock> lock;  // rank 0: the output folder's, to the end of the process
  if (a.resume->parsed()) {
    if (const std::string p = comm.root() ? out_dir_problem(a.resume_dir) : ""; comm.any(!p.empty())) {
      say(comm, fmt::format("resume: {}", p));
      return kExitBadInput;
    }
    if (comm.any(comm.root() && !fs::is_directory(a.resume_dir))) {
      say(comm, fmt::format("resume: there is no run folder {}", a.resume_dir));
      return kExitBadInput;
    }
    // A folder that is not a run's is refused before its lock file would be made in it.
    if (const std::string p = comm.root() ? regular_file_problem(a.resume_dir + "/manifest.json", "the manifest") : "";
        comm.any(!p.empty())) {
      say(comm, fmt::format("resume: {} is not an ouroboros run folder ({})", a.resume_dir, p));
      return kExitBadInput;
    }
    if (const auto refused = lock_out_dir(comm, a.resume_dir, lock)) return *refused;
    if (const auto done = read_resumed_run(comm, a, recorded)) return *done;
  } else if (const std::string p = regular_file_problem(a.config_path, "config file"); !p.empty()) {
    say(comm, fmt::format("config error: {}", p));
    return kExitBadInput;
  }
  Experiment ex;
  try {
    ex = load_experiment(a.config_path, a.sets, comm.root() ? terminal_progress() : ValidationProgress());
  } catch (const ConfigError& e) {
    say(comm, fmt::format("config error: {}", e.what()));
    return kExitBadInput;
  }
  if (a.validate->parsed()) {
    if (comm.root()) std::printf("%s: valid (%s)\n", a.config_path.c_str(), describe_points(ex).c_str());
    return 0;
  }

  RunOptions opt;
  if (const auto refused = run_options(comm, a, ex, recorded, opt)) return *refused;
  if (opt.backend == "cpu" && a.threads > 0) {
    const unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0 && static_cast<unsigned>(a.threads) > cores)
      say(comm, fmt::format("warning: --threads {} is more than this machine's {} cores; more threads than cores "
                            "makes a run slower, not faster",
                            a.threads, cores));
    omp_set_num_threads(a.threads);
  }
  std::vector<PointPlan> plans;
  try {
    plans = plan_run(ex, opt);
    opt.max_memory = plans.front().budget;  // the run plans with exactly this budget
  } catch (const ConfigError& e) {
    say(comm, fmt::format("config error: {}", e.what()));
    return kExitBadInput;
  }
  if (const auto refused = claim_out_dir(comm, a, opt, lock)) return *refused;
  if (a.dry_run) {
    try {
      if (comm.root()) std::printf("%s", dry_run_report(ex, plans, opt, comm.size()).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ouroboros: --dry-run: the calibration failed: %s\n", e.what());
      return 1;
    }
    return 0;
  }
  return run_command(comm, a, ex, opt);
}

}  // namespace ouro

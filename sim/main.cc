// ouroboros command line: `run` an experiment config, `validate` one without
// running it. Bad input (an unknown option, a config error) exits with code 2
// before any work is done.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "sim/backend.h"
#include "sim/config.h"
#include "sim/family.h"
#include "sim/provenance.h"
#include "sim/run.h"

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

// A run whose largest sweep point needs more than 80% of this machine's
// memory is refused before any work; the message names the point's size.
std::string memory_problem(const ouro::Experiment& ex) {
  double need = 0.0;
  const ouro::PointConfig* biggest = nullptr;
  for (const auto& p : ex.points) {
    const double bytes = ouro::estimate_point_bytes(p.config);
    if (bytes > need) need = bytes, biggest = &p.config;
  }
  const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  if (!biggest || need <= 0.8 * have) return {};
  const bool history = biggest->regime == ouro::kernels::Regime::kAccumulateSubsample;
  return fmt::format("chains: {} chains of this point need about {:.1f} GiB of memory, more than this machine can "
                     "give ({:.1f} GiB); lower chains{}",
                     biggest->chains, need / 1073741824.0, have / 1073741824.0,
                     history ? ", generations or model.dim" : " or model.dim");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ouroboros: a GPU laboratory for model-collapse research.\n"
               "Runs recursive-training experiments (a model refitted on samples of its previous\n"
               "generation) for many independent chains, from a YAML config."};
  app.set_version_flag("--version", fmt::format("ouroboros {} ({})", ouro::provenance::version(),
                                                ouro::provenance::git_commit()));
  app.require_subcommand(1);

  std::string config_path, out_dir, backend = "auto";
  std::vector<std::string> sets;
  int threads = 0;
  bool per_chain = false, no_progress = false, force = false;

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

  ouro::Experiment ex;
  try {
    ex = ouro::load_experiment(config_path, sets);
  } catch (const ouro::ConfigError& e) {
    std::fprintf(stderr, "ouroboros: config error: %s\n", e.what());
    return kExitBadInput;
  }

  if (validate->parsed()) {
    std::printf("%s: valid (%s)\n", config_path.c_str(), describe_points(ex).c_str());
    return 0;
  }

  ouro::RunOptions opt;
  opt.config_path = config_path;
  opt.sets = sets;
  opt.backend = backend;
  opt.threads = threads;
  opt.per_chain = per_chain;
  opt.progress = !no_progress;
  opt.out_dir = out_dir.empty() ? default_out_dir(ex.points.front().config.name) : out_dir;
  try {
    opt.backend = ouro::resolve_backend(backend);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "ouroboros: %s\n", e.what());
    return kExitBadInput;
  }
  // The n-gram family has only the cpu backend so far: auto runs it there,
  // an explicit --backend cuda is refused before any work.
  const bool has_ngram = std::any_of(ex.points.begin(), ex.points.end(),
                                     [](const auto& p) { return p.config.family == "ngram"; });
  if (has_ngram && opt.backend == "cuda") {
    if (backend == "cuda") {
      std::fprintf(stderr, "ouroboros: --backend cuda: the ngram family has no cuda backend yet; use --backend cpu\n");
      return kExitBadInput;
    }
    opt.backend = "cpu";
  }
  namespace fs = std::filesystem;
  if (fs::exists(opt.out_dir) && !fs::is_empty(opt.out_dir) && !force) {
    std::fprintf(stderr, "ouroboros: output folder %s already has files; choose another --out or pass --force\n",
                 opt.out_dir.c_str());
    return kExitBadInput;
  }
  if (const std::string problem = memory_problem(ex); !problem.empty()) {
    std::fprintf(stderr, "ouroboros: config error: %s\n", problem.c_str());
    return kExitBadInput;
  }
  if (opt.backend == "cpu" && threads > 0) omp_set_num_threads(threads);

  try {
    const ouro::RunResult r = ouro::run_experiment(ex, opt);
    const std::string where = r.backend == "cpu"
                                  ? fmt::format("cpu, {} threads", threads > 0 ? threads : omp_get_max_threads())
                                  : fmt::format("cuda, {}", ouro::cuda_device_name());
    const auto& first = ex.points.front().config;
    std::printf("ouroboros: %zu sweep point%s x %d generations x %lld chains on %s in %.2f s -> %s/metrics.csv\n",
                ex.points.size(), ex.points.size() == 1 ? "" : "s", first.generations,
                static_cast<long long>(first.chains), where.c_str(), r.wall_seconds, r.out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ouroboros: run failed: %s\n", e.what());
    return 1;
  }
  return 0;
}

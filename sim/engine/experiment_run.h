// The run of one experiment (sim/engine/run.h), the class behind run_experiment: its declaration and the helpers
// its parts share. Its steps are defined in three files by what they do: run.cc (the loop over points, batches and
// generations), run_outputs.cc (the manifest and the tables, and how a run that stops records why),
// run_checkpoint.cc (checkpoints written and read back by resume). Internal to sim/engine/.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>
#include <omp.h>
#include <nlohmann/json.hpp>

#include "kernels/core/rng.h"
#include "sim/analysis/aggregate.h"
#include "sim/analysis/early_warning.h"
#include "sim/analysis/summary.h"
#include "sim/engine/run.h"
#include "sim/families/family.h"
#include "sim/io/checkpoint.h"
#include "sim/io/output.h"
#include "sim/io/per_chain_h5.h"
#include "sim/io/provenance.h"
#include "sim/parallel/backend.h"
#include "sim/parallel/comm.h"

namespace ouro::run_detail {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

class Progress {
 public:
  Progress(bool enabled, std::size_t total) : on_(enabled && isatty(STDERR_FILENO)), total_(total) {}
  void tick(std::size_t point, std::size_t points, int g, int G) {
    ++done_;
    if (!on_) return;
    const auto now = Clock::now();
    if (done_ != total_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const int width = 30;
    const int filled = static_cast<int>(width * done_ / total_);
    std::fprintf(stderr, "\r[%s%s] point %zu/%zu  generation %d/%d  %s ", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), point + 1, points, g, G, eta(now).c_str());
    if (done_ == total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

  // Time left, from the steps done so far at their mean pace ("ETA 1h02m", "ETA 41s"; "" before the first second).
  std::string eta(Clock::time_point now) const {
    const double spent = std::chrono::duration<double>(now - start_).count();
    if (done_ == total_) return fmt::format("done in {}", duration_text(spent));
    if (spent < 1.0) return std::string(16, ' ');
    return fmt::format("ETA {:<12}", duration_text(spent * static_cast<double>(total_ - done_) / done_));
  }
  static std::string duration_text(double s) {
    const auto t = static_cast<long>(s + 0.5);
    if (t < 60) return fmt::format("{}s", t);
    if (t < 3600) return fmt::format("{}m{:02}s", t / 60, t % 60);
    return fmt::format("{}h{:02}m", t / 3600, t % 3600 / 60);
  }

 private:
  bool on_;
  std::size_t total_, done_ = 0;
  Clock::time_point start_ = Clock::now(), last_{};
};

// The signal that asked the run to stop (request_stop), 0 while none did.
int stop_signal();

// FNV-1a (64-bit) of the config text, in hex: ties a checkpoint to its config.
inline std::string fingerprint(const std::string& text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ULL;
  return fmt::format("{:016x}", h);
}

// The files a run reads (corpora), each with its size and FNV-1a hash: in manifest.json and every checkpoint, so that
// resume refuses a corpus that changed since the run started.
inline nlohmann::json input_digests(const Experiment& ex) {
  std::vector<std::string> paths;
  for (const auto& p : ex.points)
    for (const auto& f : p.config.family->input_files(p.config))
      if (std::find(paths.begin(), paths.end(), f) == paths.end()) paths.push_back(f);
  nlohmann::json all = nlohmann::json::array();
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::uint64_t h = 14695981039346656037ULL, n = 0;
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      const auto got = static_cast<std::size_t>(in.gcount());
      for (std::size_t i = 0; i < got; ++i) h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ULL;
      n += got;
    }
    all.push_back({{"path", path}, {"bytes", n}, {"fnv1a64", in.bad() ? "unreadable" : fmt::format("{:016x}", h)}});
  }
  return all;
}

inline const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "a signal";
  }
}

inline std::string version_text() { return provenance::version() + " (" + provenance::git_commit() + ")"; }

inline std::string checkpoint_path(const std::string& dir, std::uint64_t seq, int rank) {
  return fmt::format("{}/ckpt-{}-rank{}.bin", dir, seq, rank);
}

// Wall time per stage of the loop, for manifest.json (carried through checkpoints).
struct StageSeconds {
  double backend = 0.0, gather = 0.0, aggregate = 0.0, write = 0.0, checkpoint = 0.0;
  nlohmann::json json() const {
    return {{"sample_fit_metrics", backend},
            {"gather", gather},
            {"aggregate", aggregate},
            {"write", write},
            {"checkpoint", checkpoint}};
  }
  void read(const nlohmann::json& j) {
    backend = j.at("sample_fit_metrics");
    gather = j.at("gather");
    aggregate = j.at("aggregate");
    write = j.at("write");
    checkpoint = j.at("checkpoint");
  }
};

// Fault injection for the tests (tests/sim/engine/): OUROBOROS_FAULT=kill@S, term@S or hup@S sends this process
// SIGKILL, SIGTERM or SIGHUP right after its S-th generation step (counted over points and batches, after that
// step's rows and any checkpoint are written; a SIGTERM then stops the run at the next step's boundary).
struct Fault {
  int signal = 0;
  long step = 0;
  long steps = 0;
  Fault() {
    if (const char* f = std::getenv("OUROBOROS_FAULT")) {
      const std::string spec = f;
      const auto at = spec.find('@');
      if (at != std::string::npos) {
        step = std::atol(spec.c_str() + at + 1);
        const std::string kind = spec.substr(0, at);
        signal = kind == "kill" ? SIGKILL : kind == "term" ? SIGTERM : kind == "hup" ? SIGHUP : 0;
      }
    }
  }
  void after_step() {
    if (signal && ++steps == step) std::raise(signal);
  }
};

// One sweep point in progress: its metrics, rank 0's table of every chain's values, its summary and early-warning
// view.
struct PointRun {
  std::size_t index;
  const SweepPoint& point;
  const PointPlan& plan;
  std::vector<std::string> names;  // every metric the backend computes (metric_names)
  std::vector<int> written;        // the positions in names of those the outputs have (written_metrics)
  std::vector<int> column;         // metric m's column in per_chain.csv (written ones)
  int M;
  std::int64_t N;
  bool whole;                 // a rank's chains are one batch: a generation is summarised as soon as it is done
  std::vector<double> table;  // rank 0: [metric][chain] of one generation, or [g][metric][chain] of every one
  int summary_metric;         // summary.metric's index
  PointSummary summary;       // rank 0
  std::unique_ptr<EarlyWarningTracker> early;  // rank 0, with early_warning
  nlohmann::json workers = nlohmann::json::array();

  std::size_t MN() const { return static_cast<std::size_t>(M) * N; }
  double* slot(int g) { return table.data() + (whole ? 0 : static_cast<std::size_t>(g) * MN()); }
};

// The run of one experiment: rank 0 writes every file; every rank runs its chains. The steps, in the order
// run() takes them: find where a resumed run goes on, open the outputs, then per sweep point and batch of chains
// every generation (advance, gather, record, checkpoint when due), then the point's summaries, and the manifest.
class ExperimentRun {
 public:
  ExperimentRun(const Experiment& ex, const RunOptions& opt)
      : ex_(ex),
        opt_(opt),
        comm_(Comm::world()),
        root_(comm_.root()),
        plans_(plan_run(ex, opt)),
        config_path_(opt.out_dir + "/config.yaml"),
        ckdir_(opt.out_dir + "/checkpoint"),
        manifest_path_(opt.out_dir + "/manifest.json") {
    result_.backend = opt.backend;
    result_.out_dir = opt.out_dir;
    // A resumed run compares the checkpoint's hash with config.yaml's bytes as they are on disk (the experiment was
    // loaded from them).
    text_ = config_text(ex);
    if (opt.resume) {
      std::ifstream in(config_path_, std::ios::binary);
      text_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    // Metric names of every point (families, and a mixture's component count, may differ between points);
    // per_chain.csv has a column for each written name that any point has, empty where a point lacks it.
    for (const auto& p : ex.points) {
      point_names_.push_back(metric_names(p.config));
      for (const auto& n : written_metric_names(p.config))
        if (std::find(all_names_.begin(), all_names_.end(), n) == all_names_.end()) all_names_.push_back(n);
    }
    for (const auto& a : ex.axes) axis_paths_.push_back(a.path);
    inputs_ = input_digests(ex);
    // scatter.csv has a column per coordinate of the points with the most (rank 0 writes it).
    if (root_ && ex.scatter.on)
      for (const auto& p : ex.points) {
        const int d = p.config.family->point_dim(p.config);
        if (d < 1)
          throw std::logic_error(fmt::format("the {} family has points, but its backend gives them no dimension",
                                             p.config.family->name()));
        scatter_dim_ = std::max(scatter_dim_, d);
      }
  }

  RunResult run();

 private:
  // Where a resumed run goes on: the checkpoint set latest.json names. Every rank checks its own file; all agree on
  // the verdict before rank 0 touches anything in the folder.
  struct Resume {
    std::unique_ptr<CheckpointReader> reader;
    std::size_t point = 0;
    int batch = 0, generation = 0;
    nlohmann::json header;  // this rank's
  };

  // A resumed run before it reached the batch its checkpoint stopped in.
  bool resuming() const { return resume_.has_value() && resume_->reader != nullptr; }

  // The run's identity (manifest.json's run_id), in every checkpoint header: a checkpoint left by an earlier run in
  // a folder reused with --force is never taken for this run's.
  std::string manifest_run_id() const;

  void read_checkpoint();

  // Why a checkpoint's input files are not those of this run: the first file that moved, changed or vanished.
  std::string changed_inputs(const nlohmann::json& saved) const;

  // Rank 0: manifest.json (status running) and the tables, new, or for a resumed run cut back to the lengths its
  // checkpoint recorded.
  void open_outputs();

  void write_new_manifest();

  // Every batch of sweep point p; false when a stop signal ended the run.
  bool run_point(std::size_t p);

  // Batch b of a point, every generation (and after the point's last batch, its summaries); false when stopped.
  bool run_batch(PointRun& pr, int b);

  // Rank 0: each rank's values of generation g, [metric][its chains], into the point's [metric][chain].
  void collect(PointRun& pr, int b, int g, const std::vector<double>& gathered);

  // Rank 0: generation g's values of every metric summarised over the chains (in parallel: metrics are summarised
  // independently, so without changing a bit; handed out one at a time because the constant ones, synthetic_share and
  // data_age, cost nothing and would unbalance a static split).
  std::vector<Summary> summarize_generation(PointRun& pr, int g);

  // Rank 0, once batch b has generation g: on the point's last batch (every chain has generation g) the point's
  // summary and early-warning view fed and the rows appended to metrics.csv (and per_chain.csv); on any batch the
  // scatter rows of its chains (plot.scatter). False when a write failed: the tables are cut back to before
  // generation g's rows.
  bool record_generation(PointRun& pr, int b, int g, FamilyRun* backend);

  // Whether batch b's generation g has rows to write: every generation of the last batch, the scatter's of any.
  bool has_rows(const PointRun& pr, int b, int g) const {
    return b == pr.plan.batches - 1 || (scatter_ && ex_.scatter.at(g));
  }

  // Rank 0: generation g's rows of batch b (the metrics' when `summaries` holds the generation's, on the last batch;
  // the scatter's), then the tables marked as whole up to here.
  void write_rows(PointRun& pr, int b, int g, const std::vector<Summary>& summaries, FamilyRun* backend);

  // Rank 0: scatter.csv's rows of generation g when plot.scatter draws it: plot.scatter.points points from the
  // model of each chain among [0, plot.scatter.chains) that this rank's batch b holds.
  void write_scatter(PointRun& pr, int b, int g, FamilyRun* backend);

  // Rank 0, after a failed write: every table cut back to its last whole block (the half-written row removed), and
  // the reason kept for the manifest.
  void write_failed(const WriteError& e);

  // Every rank's state after generation g of batch b, then the set committed (checkpoint/latest.json). `unwritten`:
  // generation g's rows are not in the tables (a failed write); rank 0 keeps its values, and resume writes them.
  // False when a file could not be written: the new set is removed, the previous one (if any) stays the last.
  bool checkpoint(PointRun& pr, int b, int g, FamilyRun* backend, bool unwritten);

  // Whether a committed checkpoint set is there to resume from.
  bool resumable() const;

  // The status after a failure the loop did not handle (rank 0, best effort: the disk may be full): interrupted when
  // a checkpoint is there to go on from, else failed.
  void record_failure(const std::string& what);

  // The run stopped at batch b, generation g of point p: by a signal or a failed write (stop_reason_, rank 0). The
  // manifest says where and why, and whether resume can go on (a checkpoint is there).
  void stopped(std::size_t p, int b, int g);

  // Rank 0, after a point's last batch: its summary.csv row, every chain's summary, its early-warning rows, then the
  // tables marked whole. False when a write failed (the tables cut back to before the point's summaries).
  bool write_point_summary(PointRun& pr);

  // The point in manifest.json: its seed, chains, and which rank and worker ran which of them.
  void record_point(PointRun& pr);

  // The manifest marked complete; the checkpoints, no longer needed, deleted (they can be as large as the state of
  // every chain).
  void finish();

  const Clock::time_point t_start_ = Clock::now();
  Clock::time_point last_checkpoint_ = t_start_;
  const Experiment& ex_;
  const RunOptions& opt_;
  const Comm& comm_;
  const bool root_;
  std::vector<PointPlan> plans_;
  const std::string config_path_, ckdir_, manifest_path_;
  std::string text_;  // config.yaml's bytes
  std::vector<std::string> axis_paths_, all_names_;
  std::vector<std::vector<std::string>> point_names_;
  std::optional<Resume> resume_;
  std::uint64_t seq_ = 0;  // the last checkpoint set's number
  std::string run_id_;
  nlohmann::json inputs_;    // input_digests()
  std::string stop_reason_;  // rank 0: why the run stops early, when not a signal
  RunResult result_;
  nlohmann::json manifest_;
  nlohmann::json plan_json_ = nlohmann::json::array();
  nlohmann::json points_json_ = nlohmann::json::array();
  std::unique_ptr<CsvWriter> csv_, per_chain_, summary_csv_, summary_chains_, early_csv_, scatter_;
  int scatter_dim_ = 0;  // rank 0: scatter.csv's coordinates, the most any point's points have
  std::unique_ptr<PerChainH5> per_chain_h5_;
  bool h5() const { return opt_.per_chain_format == "hdf5"; }
  std::string h5_path() const { return opt_.out_dir + "/per_chain.h5"; }
  StageSeconds stages_;
  std::unique_ptr<Progress> progress_;
  Fault fault_;
};

}  // namespace ouro::run_detail

#include "sim/engine/run.h"

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
#include <thread>

#include <fmt/format.h>
#include <omp.h>
#include <nlohmann/json.hpp>

#include "kernels/core/rng.h"
#include "sim/analysis/aggregate.h"
#include "sim/analysis/early_warning.h"
#include "sim/analysis/summary.h"
#include "sim/families/family.h"
#include "sim/io/checkpoint.h"
#include "sim/io/output.h"
#include "sim/io/per_chain_h5.h"
#include "sim/io/provenance.h"
#include "sim/parallel/backend.h"
#include "sim/parallel/comm.h"

namespace ouro {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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

volatile std::sig_atomic_t g_stop = 0;

// FNV-1a (64-bit) of the config text, in hex: ties a checkpoint to its config.
std::string fingerprint(const std::string& text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ULL;
  return fmt::format("{:016x}", h);
}

// The files a run reads (corpora), each with its size and FNV-1a hash: in manifest.json and every checkpoint, so that
// resume refuses a corpus that changed since the run started.
nlohmann::json input_digests(const Experiment& ex) {
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

const char* signal_name(int sig) {
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

std::string version_text() { return provenance::version() + " (" + provenance::git_commit() + ")"; }

std::string checkpoint_path(const std::string& dir, std::uint64_t seq, int rank) {
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
  }

  RunResult run() {
    if (opt_.resume) read_checkpoint();  // a refusal leaves the folder as it was
    try {
      open_outputs();
      for (std::size_t p = 0; p < ex_.points.size(); ++p) {
        if (resuming() && p < resume_->point) continue;
        if (!run_point(p)) return result_;  // stopped (a signal, a failed write); the manifest says why
      }
      finish();
    } catch (const std::exception& e) {
      record_failure(e.what());
      throw;
    }
    return result_;
  }

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
  std::string manifest_run_id() const {
    std::ifstream in(manifest_path_);
    nlohmann::json m;
    in >> m;
    return m.at("run_id").get<std::string>();
  }

  void read_checkpoint() {
    std::string problem;
    Resume r;
    try {
      run_id_ = manifest_run_id();
      std::ifstream in(ckdir_ + "/latest.json");
      nlohmann::json latest;
      try {
        in >> latest;
        seq_ = latest.at("seq").get<std::uint64_t>();
      } catch (const std::exception&) {
        throw CheckpointError(
            fmt::format("{} holds no checkpoint (the run stopped before its first one: run it "
                        "again with --force)",
                        opt_.out_dir));
      }
      const std::string file = checkpoint_path(ckdir_, seq_, comm_.rank());
      r.reader = std::make_unique<CheckpointReader>(file);
      const nlohmann::json& h = r.reader->header();
      if (h.value("version", "") != version_text())
        throw CheckpointError(fmt::format("checkpoint {} was written by ouroboros {}; this is {}", file,
                                          h.value("version", "?"), version_text()));
      if (h.value("config", "") != fingerprint(text_))
        throw CheckpointError(fmt::format("checkpoint {} belongs to another config than {}", file, config_path_));
      if (h.value("rng_layout", -1) != static_cast<int>(rng::kRngLayoutVersion))
        throw CheckpointError(
            fmt::format("checkpoint {} was written with random-stream layout {}; this ouroboros has "
                        "layout {}",
                        file, h.value("rng_layout", -1), rng::kRngLayoutVersion));
      if (h.contains("inputs") && h["inputs"] != inputs_) throw CheckpointError(changed_inputs(h["inputs"]));
      if (h.value("run", "") != run_id_)
        throw CheckpointError(
            fmt::format("checkpoint {} belongs to another run than {}/manifest.json (an earlier "
                        "run in this folder?)",
                        file, opt_.out_dir));
      if (h.value("ranks", 0) != comm_.size() || h.value("rank", -1) != comm_.rank())
        throw CheckpointError(
            fmt::format("checkpoint {} was written by rank {} of {}; resume with the same number "
                        "of ranks (mpirun -n {})",
                        file, h.value("rank", -1), h.value("ranks", 0), h.value("ranks", 0)));
      // The chains' batches as they were run (the plan of this process may differ: another thread count, another
      // machine's memory).
      const nlohmann::json& hp = h.at("plans");
      if (!hp.is_array() || hp.size() != plans_.size())
        throw CheckpointError(fmt::format("checkpoint {} has the plans of another sweep", file));
      for (std::size_t p = 0; p < plans_.size(); ++p) {
        const auto batch = hp[p].at(0).get<std::int64_t>();
        const int batches = hp[p].at(1).get<int>();
        if (batch < 1 || batches < 1 || batch * batches < plans_[p].ranks.front().count)
          throw CheckpointError(fmt::format("checkpoint {} has a damaged plan", file));
        plans_[p].batch = batch;
        plans_[p].batches = batches;
      }
      r.point = h.at("point").get<std::size_t>();
      r.batch = h.at("batch").get<int>();
      r.generation = h.at("generation").get<int>();
      if (r.point >= plans_.size() || r.batch >= plans_[r.point].batches || r.generation < 0 ||
          r.generation > ex_.points[r.point].config.generations)
        throw CheckpointError(fmt::format("checkpoint {} has a damaged position", file));
      r.header = h;
    } catch (const CheckpointError& e) {
      problem = e.what();
    } catch (const std::exception& e) {
      problem = fmt::format("{}: unreadable run state ({})", opt_.out_dir, e.what());
    }
    if (comm_.any(!problem.empty())) {
      if (!problem.empty() && !root_)
        std::fprintf(stderr, "ouroboros: resume, rank %d: %s\n", comm_.rank(), problem.c_str());
      throw CheckpointError(problem.empty() ? "another rank's checkpoint was refused (its message above)" : problem);
    }
    resume_ = std::move(r);
  }

  // Why a checkpoint's input files are not those of this run: the first file that moved, changed or vanished.
  std::string changed_inputs(const nlohmann::json& saved) const {
    for (const auto& was : saved) {
      const std::string path = was.value("path", "");
      const auto now = std::find_if(inputs_.begin(), inputs_.end(),
                                    [&](const nlohmann::json& f) { return f.value("path", "") == path; });
      if (now == inputs_.end())
        return fmt::format("the run read {}, which this config no longer names (was the corpus moved?)", path);
      if (*now != was)
        return fmt::format(
            "{} changed since the run started ({} bytes, FNV-1a {} then; {} bytes, {} now); restore it "
            "or start the run again with --force",
            path, was.value("bytes", 0), was.value("fnv1a64", "?"), now->value("bytes", 0), now->value("fnv1a64", "?"));
    }
    return "the run's input files are not those of this config";
  }

  // Rank 0: manifest.json (status running) and the tables, new, or for a resumed run cut back to the lengths its
  // checkpoint recorded.
  void open_outputs() {
    for (const auto& pl : plans_) plan_json_.push_back({pl.batch, pl.batches});
    if (root_) {
      if (resume_) {
        const nlohmann::json& saved = resume_->header;
        std::ifstream in(manifest_path_);
        in >> manifest_;
        manifest_["resumed"].push_back({{"checkpoint", seq_},
                                        {"point", resume_->point},
                                        {"batch", resume_->batch},
                                        {"generation", resume_->generation}});
        result_.rows = saved.at("rows").get<std::size_t>();
        points_json_ = saved.at("points");
        stages_.read(saved.at("stage_seconds"));
        auto reopen = [&](const char* file, const char* bytes) {
          return std::make_unique<CsvWriter>(opt_.out_dir + "/" + file, saved.at(bytes).get<std::uint64_t>());
        };
        csv_ = reopen("metrics.csv", "metrics_bytes");
        summary_csv_ = reopen("summary.csv", "summary_bytes");
        summary_chains_ = reopen("summary_chains.csv", "summary_chains_bytes");
        if (opt_.per_chain && !h5()) per_chain_ = reopen("per_chain.csv", "per_chain_bytes");
        if (opt_.per_chain && h5()) per_chain_h5_ = std::make_unique<PerChainH5>(h5_path(), axis_paths_, true);
        if (ex_.early_warning.on) early_csv_ = reopen("early_warning.csv", "early_warning_bytes");
      } else {
        fs::create_directories(opt_.out_dir);
        // An earlier run's files, in a folder reused with --force: none of them may pass for this run's.
        fs::remove_all(ckdir_);
        for (const char* f : {"per_chain.csv", "per_chain.h5", "early_warning.csv", "report.md"})
          fs::remove(fs::path(opt_.out_dir) / f);
        write_file_atomic(config_path_, text_);
        std::random_device entropy;
        run_id_ = fmt::format("{:08x}{:08x}", entropy(), entropy());
        write_new_manifest();
        csv_ = std::make_unique<CsvWriter>(opt_.out_dir + "/metrics.csv", metrics_header(axis_paths_));
        summary_csv_ = std::make_unique<CsvWriter>(opt_.out_dir + "/summary.csv", summary_header(axis_paths_));
        std::vector<std::string> h = axis_paths_;
        for (const char* c : {"point", "chain", "last", "auc"}) h.emplace_back(c);
        summary_chains_ = std::make_unique<CsvWriter>(opt_.out_dir + "/summary_chains.csv", h);
        if (opt_.per_chain && h5()) per_chain_h5_ = std::make_unique<PerChainH5>(h5_path(), axis_paths_, false);
        if (opt_.per_chain && !h5()) {
          std::vector<std::string> header = axis_paths_;
          header.emplace_back("generation");
          header.emplace_back("chain");
          for (const auto& n : all_names_) header.push_back(n);
          per_chain_ = std::make_unique<CsvWriter>(opt_.out_dir + "/per_chain.csv", header);
        }
        if (ex_.early_warning.on)
          early_csv_ =
              std::make_unique<CsvWriter>(opt_.out_dir + "/early_warning.csv", early_warning_header(axis_paths_));
      }
      manifest_["status"] = "running";
      manifest_.erase("status_reason");
      write_json_atomic(manifest_path_, manifest_);
    }
    comm_.barrier();  // the folder and manifest exist before any rank writes a checkpoint into it
    if (!root_ && !resume_) run_id_ = manifest_run_id();
    std::size_t total_steps = 0;
    for (std::size_t p = 0; p < ex_.points.size(); ++p)
      total_steps += static_cast<std::size_t>(plans_[p].batches) * (ex_.points[p].config.generations + 1);
    progress_ = std::make_unique<Progress>(opt_.progress && root_, total_steps);
  }

  void write_new_manifest() {
    manifest_["run_id"] = run_id_;
    manifest_["ouroboros_version"] = provenance::version();
    manifest_["git_commit"] = provenance::git_commit();
    manifest_["command"] = {{"config", opt_.config_path}, {"set", opt_.sets}};
    manifest_["config"] = yaml_to_json(ex_.resolved);
    manifest_["seed"] = ex_.points.front().config.seed;
    manifest_["rng"] = {{"generator", "Philox4x32-10"},
                        {"layout_version", rng::kRngLayoutVersion},
                        {"key", "seed, chain"},
                        {"counter", "index_lo, index_hi, stream, generation"}};
    manifest_["backend"] = result_.backend;
    manifest_["device"] = result_.backend == "cuda" ? cuda_device_name() : provenance::cpu_model();
    manifest_["cpu_model"] = provenance::cpu_model();
    manifest_["dependencies"] = provenance::dependencies();
    if (cuda_built()) manifest_["dependencies"]["cuda_runtime"] = cuda_runtime_version();
    manifest_["ranks"] = comm_.size();
    manifest_["inputs"] = inputs_;
    manifest_["run_options"] = {{"backend", opt_.backend},
                                {"per_chain", opt_.per_chain},
                                {"per_chain_format", opt_.per_chain_format},
                                {"checkpoint_every", opt_.checkpoint_every},
                                {"checkpoint_every_seconds", opt_.checkpoint_seconds},
                                {"max_memory_bytes", plans_.front().budget}};
  }

  // Every batch of sweep point p; false when a stop signal ended the run.
  bool run_point(std::size_t p) {
    const SweepPoint& point = ex_.points[p];
    const PointConfig& c = point.config;
    const std::vector<std::string>& names = point_names_[p];
    const int M = static_cast<int>(names.size());
    const int sm = static_cast<int>(std::find(names.begin(), names.end(), ex_.summary.metric) - names.begin());
    const bool whole = plans_[p].batches == 1;
    PointRun pr{
        p,
        point,
        plans_[p],
        names,
        written_metrics(c),
        std::vector<int>(M),
        M,
        c.chains,
        whole,
        std::vector<double>(root_ ? (whole ? 1 : c.generations + 1) * static_cast<std::size_t>(M) * c.chains : 0),
        sm,
        PointSummary(sm, collapse_direction(ex_.summary.metric), ex_.summary.threshold, root_ ? c.chains : 0),
        nullptr};
    for (int m : pr.written)
      pr.column[m] = static_cast<int>(std::find(all_names_.begin(), all_names_.end(), names[m]) - all_names_.begin());
    if (per_chain_h5_) per_chain_h5_->point(p, point.labels, written_metric_names(c), c.chains, c.generations, c.seed);
    if (root_ && ex_.early_warning.on) {
      std::vector<DetectorSpec> detectors = chosen_detectors(c, ex_.early_warning);
      std::vector<int> index;
      for (const auto& d : detectors)
        index.push_back(static_cast<int>(std::find(names.begin(), names.end(), d.metric) - names.begin()));
      pr.early = std::make_unique<EarlyWarningTracker>(ex_.early_warning, std::move(detectors), std::move(index), sm,
                                                       collapse_direction(ex_.summary.metric), ex_.summary.threshold,
                                                       c.chains, c.generations);
    }
    for (int b = 0; b < pr.plan.batches; ++b) {
      if (resuming() && p == resume_->point && b < resume_->batch) continue;
      if (!run_batch(pr, b)) return false;
    }
    return true;
  }

  // Batch b of a point, every generation (and after the point's last batch, its summaries); false when stopped.
  bool run_batch(PointRun& pr, int b) {
    const PointConfig& c = pr.point.config;
    const ChainBlock block = pr.plan.block(comm_.rank(), b);
    auto t0 = Clock::now();
    std::unique_ptr<FamilyRun> backend;
    if (block.count > 0) backend = make_family_run(c, opt_.backend, opt_.threads, block);
    stages_.backend += seconds_since(t0);
    std::vector<double> local(static_cast<std::size_t>(pr.M) * block.count), gathered;
    std::vector<std::int64_t> counts(comm_.size());
    for (int r = 0; r < comm_.size(); ++r) counts[r] = pr.M * pr.plan.block(r, b).count;
    int g0 = 0;
    if (resuming()) {  // this is the batch the checkpoint stopped in
      CheckpointReader& reader = *resume_->reader;
      const bool pending = root_ && resume_->header.value("pending_rows", false);
      if (root_ && (!pr.whole || pending)) reader.vec("table", pr.table);
      if (root_) pr.summary.archive(reader);
      if (pr.early) pr.early->archive(reader);
      if (backend) backend->state(reader);
      reader.finish();
      resume_->reader.reset();
      if (root_) pr.workers = resume_->header.at("point_workers");
      g0 = resume_->generation + 1;
      // The rows of the checkpoint's generation that a failed write left out (their summaries are in the state).
      if (pending) write_rows(pr, resume_->generation, summarize_generation(pr, resume_->generation));
    }
    for (int g = g0; g <= c.generations; ++g) {
      t0 = Clock::now();
      if (backend) {
        if (g == 0) backend->start(local.data());
        else backend->advance(g, local.data());
      }
      stages_.backend += seconds_since(t0);
      t0 = Clock::now();
      comm_.gather(local, counts, gathered);
      stages_.gather += seconds_since(t0);
      bool unwritten = false;  // rank 0: generation g's rows could not be written (a full disk)
      if (root_) {
        collect(pr, b, g, gathered);
        if (b == pr.plan.batches - 1) unwritten = !record_generation(pr, g);  // every chain has generation g
        progress_->tick(pr.index, ex_.points.size(), g, c.generations);
      }
      const bool failed = comm_.any(unwritten);
      const bool stop = comm_.any(g_stop != 0);
      const bool timed =
          comm_.any(root_ && opt_.checkpoint_seconds > 0 && seconds_since(last_checkpoint_) >= opt_.checkpoint_seconds);
      const bool due = g > 0 && (timed || (opt_.checkpoint_every > 0 && g % opt_.checkpoint_every == 0));
      const bool saved = (due || stop || failed) && checkpoint(pr, b, g, backend.get(), failed);
      if ((due || stop || failed) && !saved) {
        stopped(pr.index, b, g);
        return false;
      }
      fault_.after_step();
      if (stop || failed) {
        stopped(pr.index, b, g);
        return false;
      }
    }
    // The point's summaries once its last batch is done; a failed write stops the run here, resumable to write them
    // again.
    if (b == pr.plan.batches - 1) {
      bool unwritten = false;
      if (root_) unwritten = !write_point_summary(pr);
      if (comm_.any(unwritten)) {
        checkpoint(pr, b, c.generations, backend.get(), false);
        stopped(pr.index, b, c.generations);
        return false;
      }
    }
    // Which worker of which rank ran which chains of this batch.
    nlohmann::json mine = nlohmann::json::array();
    if (backend)
      for (const auto& w : backend->workers())
        mine.push_back({{"rank", comm_.rank()},
                        {"batch", b},
                        {"worker", w.worker},
                        {"first_chain", w.first_chain},
                        {"last_chain", w.last_chain},
                        {"chains", w.chains}});
    const std::vector<std::string> all = comm_.gather_text(mine.dump());
    if (root_)
      for (const auto& t : all)
        for (const auto& w : nlohmann::json::parse(t)) pr.workers.push_back(w);
    if (b == pr.plan.batches - 1) record_point(pr);
    return true;
  }

  // Rank 0: each rank's values of generation g, [metric][its chains], into the point's [metric][chain].
  void collect(PointRun& pr, int b, int g, const std::vector<double>& gathered) {
    double* slot = pr.slot(g);
    std::size_t at = 0;
    for (int r = 0; r < comm_.size(); ++r) {
      const ChainBlock rb = pr.plan.block(r, b);
      for (int m = 0; m < pr.M; ++m, at += rb.count)
        std::copy(gathered.begin() + at, gathered.begin() + at + rb.count,
                  slot + static_cast<std::size_t>(m) * pr.N + rb.first);
    }
  }

  // Rank 0: generation g's values of every metric summarised over the chains (in parallel: metrics are summarised
  // independently, so without changing a bit; handed out one at a time because the constant ones, synthetic_share and
  // data_age, cost nothing and would unbalance a static split).
  std::vector<Summary> summarize_generation(PointRun& pr, int g) {
    const std::int64_t N = pr.N;
    const double* slot = pr.slot(g);
    const int threads = opt_.threads > 0 ? opt_.threads : omp_get_max_threads();
    std::vector<int> needed = pr.written;
    if (std::find(needed.begin(), needed.end(), pr.summary_metric) == needed.end()) needed.push_back(pr.summary_metric);
    std::vector<Summary> summaries(pr.M);
    const int K = static_cast<int>(needed.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int k = 0; k < K; ++k) {
      thread_local std::vector<double> scratch;
      const int m = needed[k];
      summaries[m] = summarize(slot + static_cast<std::size_t>(m) * N, N, scratch);
    }
    return summaries;
  }

  // Rank 0, once every chain has generation g: the point's summary and early-warning view fed, the rows appended to
  // metrics.csv (and per_chain.csv). False when a write failed: the tables are cut back to generation g - 1.
  bool record_generation(PointRun& pr, int g) {
    auto t0 = Clock::now();
    const std::vector<Summary> summaries = summarize_generation(pr, g);
    const double* slot = pr.slot(g);
    pr.summary.add(g, slot + static_cast<std::size_t>(pr.summary_metric) * pr.N, summaries[pr.summary_metric]);
    if (pr.early) pr.early->add(g, slot);
    stages_.aggregate += seconds_since(t0);
    try {
      write_rows(pr, g, summaries);
    } catch (const WriteError& e) {
      write_failed(e);
      return false;
    }
    return true;
  }

  // Rank 0: generation g's rows, then the tables marked as whole up to here.
  void write_rows(PointRun& pr, int g, const std::vector<Summary>& summaries) {
    auto t0 = Clock::now();
    const std::int64_t N = pr.N;
    const double* slot = pr.slot(g);
    for (int m : pr.written)
      csv_->row(metrics_row(pr.point.labels, g, pr.names[m], summaries[m], theory(pr.point.config, m, g)));
    if (per_chain_) {
      for (std::int64_t i = 0; i < N; ++i) {
        std::vector<std::string> r = pr.point.labels;
        r.push_back(std::to_string(g));
        r.push_back(std::to_string(i));
        r.resize(r.size() + all_names_.size());
        for (int m : pr.written)
          r[pr.point.labels.size() + 2 + pr.column[m]] = number(slot[static_cast<std::size_t>(m) * N + i]);
        per_chain_->row(r);
      }
    }
    if (per_chain_h5_) {
      std::vector<double> values;
      values.reserve(pr.written.size() * static_cast<std::size_t>(N));
      for (int m : pr.written)
        values.insert(values.end(), slot + static_cast<std::size_t>(m) * N, slot + static_cast<std::size_t>(m + 1) * N);
      per_chain_h5_->write(pr.index, g, values);
    }
    csv_->mark();
    if (per_chain_) per_chain_->mark();
    result_.rows += pr.written.size();
    stages_.write += seconds_since(t0);
  }

  // Rank 0, after a failed write: every table cut back to its last whole block (the half-written row removed), and
  // the reason kept for the manifest.
  void write_failed(const WriteError& e) {
    stop_reason_ = e.disk_full() ? fmt::format("the disk is full ({})", e.what()) : e.what();
    for (CsvWriter* w : {csv_.get(), per_chain_.get(), summary_csv_.get(), summary_chains_.get(), early_csv_.get()})
      if (w) w->rollback();
  }

  // Every rank's state after generation g of batch b, then the set committed (checkpoint/latest.json). `unwritten`:
  // generation g's rows are not in the tables (a failed write); rank 0 keeps its values, and resume writes them.
  // False when a file could not be written: the new set is removed, the previous one (if any) stays the last.
  bool checkpoint(PointRun& pr, int b, int g, FamilyRun* backend, bool unwritten) {
    const auto tc = Clock::now();
    ++seq_;
    nlohmann::json h = {{"format", kCheckpointFormat},
                        {"version", version_text()},
                        {"config", fingerprint(text_)},
                        {"rng_layout", rng::kRngLayoutVersion},
                        {"inputs", inputs_},
                        {"run", run_id_},
                        {"rank", comm_.rank()},
                        {"ranks", comm_.size()},
                        {"plans", plan_json_},
                        {"point", pr.index},
                        {"batch", b},
                        {"generation", g},
                        {"seq", seq_}};
    const std::string file = checkpoint_path(ckdir_, seq_, comm_.rank());
    std::string problem;
    try {
      fs::create_directories(ckdir_);
      if (root_) {
        h["rows"] = result_.rows;
        h["pending_rows"] = unwritten;
        // On disk before the checkpoint that records their lengths.
        for (CsvWriter* w : {csv_.get(), summary_csv_.get(), summary_chains_.get(), per_chain_.get(), early_csv_.get()})
          if (w) w->sync();
        h["metrics_bytes"] = csv_->bytes();
        h["summary_bytes"] = summary_csv_->bytes();
        h["summary_chains_bytes"] = summary_chains_->bytes();
        h["per_chain_bytes"] = per_chain_ ? per_chain_->bytes() : 0;
        h["early_warning_bytes"] = early_csv_ ? early_csv_->bytes() : 0;
        h["points"] = points_json_;
        h["point_workers"] = pr.workers;
        h["stage_seconds"] = stages_.json();
      }
      write_checkpoint(file, h, [&](kernels::StateArchive& ar) {
        if (root_ && (!pr.whole || unwritten)) ar.vec("table", pr.table);
        if (root_) pr.summary.archive(ar);
        if (pr.early) pr.early->archive(ar);
        if (backend) backend->state(ar);
      });
    } catch (const std::exception& e) {  // a write error, or no room for the folder
      problem = e.what();
    }
    // Every rank's file is in place (or one failed): commit the set.
    if (!comm_.any(!problem.empty()) && root_) {
      try {
        write_file_atomic(
            ckdir_ + "/latest.json",
            nlohmann::json{{"seq", seq_}, {"point", pr.index}, {"batch", b}, {"generation", g}}.dump() + "\n");
      } catch (const std::exception& e) {
        problem = e.what();
      }
    }
    std::error_code ec;
    if (comm_.any(!problem.empty())) {
      fs::remove(file, ec);
      --seq_;
      if (root_) {
        const std::string why = problem.empty() ? "another rank could not write its checkpoint" : problem;
        stop_reason_ = stop_reason_.empty()
                           ? fmt::format("a checkpoint could not be written ({})", why)
                           : fmt::format("{}, and then no checkpoint could be written ({})", stop_reason_, why);
      }
      stages_.checkpoint += seconds_since(tc);
      return false;
    }
    if (seq_ > 1) fs::remove(checkpoint_path(ckdir_, seq_ - 1, comm_.rank()), ec);
    last_checkpoint_ = Clock::now();
    stages_.checkpoint += seconds_since(tc);
    return true;
  }

  // Whether a committed checkpoint set is there to resume from.
  bool resumable() const {
    std::error_code ec;
    return fs::is_regular_file(ckdir_ + "/latest.json", ec);
  }

  // The status after a failure the loop did not handle (rank 0, best effort: the disk may be full): interrupted when
  // a checkpoint is there to go on from, else failed.
  void record_failure(const std::string& what) {
    result_.interrupted = true;
    result_.status = resumable() ? "interrupted" : "failed";
    result_.reason = what;
    if (!root_ || manifest_.is_null()) return;
    manifest_["status"] = result_.status;
    manifest_["status_reason"] = what;
    try {
      write_json_atomic(manifest_path_, manifest_);
    } catch (const std::exception&) {
      // The manifest keeps saying running; read_run_state() reads a running folder nobody holds as it is.
    }
  }

  // The run stopped at batch b, generation g of point p: by a signal or a failed write (stop_reason_, rank 0). The
  // manifest says where and why, and whether resume can go on (a checkpoint is there).
  void stopped(std::size_t p, int b, int g) {
    result_.interrupted = true;
    result_.wall_seconds = seconds_since(t_start_);
    if (!root_) return;
    result_.status = resumable() ? "interrupted" : "failed";
    result_.reason =
        stop_reason_.empty() ? fmt::format("stopped by {}", signal_name(static_cast<int>(g_stop))) : stop_reason_;
    manifest_["status"] = result_.status;
    manifest_["status_reason"] = result_.reason;
    manifest_["stopped_at"] = {{"point", p}, {"batch", b}, {"generation", g}};
    manifest_["rows"] = result_.rows;
    try {
      write_json_atomic(manifest_path_, manifest_);
    } catch (const std::exception&) {
      // As in record_failure().
    }
  }

  // Rank 0, after a point's last batch: its summary.csv row, every chain's summary, its early-warning rows, then the
  // tables marked whole. False when a write failed (the tables cut back to before the point's summaries).
  bool write_point_summary(PointRun& pr) {
    const PointConfig& c = pr.point.config;
    try {
      summary_csv_->row(summary_row(pr.point.labels, pr.index, pr.names[pr.summary_metric], pr.summary,
                                    real_samples_per_chain(c), c.generations));
      for (std::int64_t i = 0; i < pr.N; ++i) {
        std::vector<std::string> r = pr.point.labels;
        for (const std::string& v : {std::to_string(pr.index), std::to_string(i), number(pr.summary.chain_last()[i]),
                                     number(pr.summary.chain_auc()[i])})
          r.push_back(v);
        summary_chains_->row(r);
      }
      if (pr.early)
        for (const auto& r : pr.early->evaluate())
          early_csv_->row(
              early_warning_row(pr.point.labels, pr.index, ex_.early_warning, r, pr.summary.collapse_generation()));
      summary_csv_->mark();
      summary_chains_->mark();
      if (early_csv_) early_csv_->mark();
    } catch (const WriteError& e) {
      write_failed(e);
      return false;
    }
    return true;
  }

  // The point in manifest.json: its seed, chains, and which rank and worker ran which of them.
  void record_point(PointRun& pr) {
    const PointConfig& c = pr.point.config;
    nlohmann::json pj;
    for (std::size_t a = 0; a < ex_.axes.size(); ++a) pj[ex_.axes[a].path] = pr.point.labels[a];
    nlohmann::json ranks = nlohmann::json::array();
    for (int r = 0; r < comm_.size(); ++r)
      ranks.push_back({{"rank", r}, {"first_chain", pr.plan.ranks[r].first}, {"chains", pr.plan.ranks[r].count}});
    points_json_.push_back({{"point", pj},
                            {"seed", c.seed},
                            {"chains", c.chains},
                            {"ranks", ranks},
                            {"batch_chains", pr.plan.batch},
                            {"batches", pr.plan.batches},
                            {"workers", pr.workers}});
  }

  // The manifest marked complete; the checkpoints, no longer needed, deleted (they can be as large as the state of
  // every chain).
  void finish() {
    result_.wall_seconds = seconds_since(t_start_);
    if (root_) {
      manifest_["threads"] = result_.backend == "cpu" ? (opt_.threads > 0 ? opt_.threads : omp_get_max_threads()) : 0;
      manifest_["points"] = points_json_;
      manifest_["wall_seconds"] = result_.wall_seconds;
      manifest_["stage_seconds"] = stages_.json();
      manifest_["rows"] = result_.rows;
      manifest_["status"] = "complete";
      write_json_atomic(manifest_path_, manifest_);
    }
    comm_.barrier();
    if (root_) {
      std::error_code ec;
      fs::remove_all(ckdir_, ec);
    }
  }

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
  std::unique_ptr<CsvWriter> csv_, per_chain_, summary_csv_, summary_chains_, early_csv_;
  std::unique_ptr<PerChainH5> per_chain_h5_;
  bool h5() const { return opt_.per_chain_format == "hdf5"; }
  std::string h5_path() const { return opt_.out_dir + "/per_chain.h5"; }
  StageSeconds stages_;
  std::unique_ptr<Progress> progress_;
  Fault fault_;
};

}  // namespace

std::vector<PointPlan> plan_run(const Experiment& ex, const RunOptions& opt) {
  const Comm& comm = Comm::world();
  // Every rank plans with the same budget (the smallest any rank has), so all run the same batches in lockstep.
  const double budget =
      comm.min(opt.max_memory > 0 ? opt.max_memory : default_memory_budget(opt.backend, comm.local_size()));
  const bool device = opt.backend == "cuda";
  const double host = device ? comm.min(default_memory_budget("cpu", comm.local_size())) : budget;
  std::vector<PointPlan> plans;
  for (const auto& p : ex.points) {
    // Rank 0 also holds the early-warning detectors' view of every chain.
    const double early =
        ex.early_warning.on
            ? EarlyWarningTracker::bytes(p.config.chains, p.config.generations,
                                         static_cast<int>(chosen_detectors(p.config, ex.early_warning).size()))
            : 0.0;
    plans.push_back(plan_point(p.config, comm.size(), budget, device, host, early));
  }
  return plans;
}

std::string config_text(const Experiment& ex) {
  YAML::Emitter e;
  e << ex.resolved;
  return std::string(e.c_str()) + "\n";
}

void request_stop(int signal) { g_stop = signal > 0 ? signal : SIGTERM; }

RunResult run_experiment(const Experiment& ex, const RunOptions& opt) { return ExperimentRun(ex, opt).run(); }

}  // namespace ouro

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
#include "sim/io/provenance.h"
#include "sim/parallel/backend.h"
#include "sim/parallel/comm.h"

namespace ouro {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& v : n) j.push_back(yaml_to_json(v));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      try {
        std::size_t pos = 0;
        const double v = std::stod(s, &pos);
        if (pos == s.size()) {
          if (s.find_first_of(".eE") == std::string::npos) return nlohmann::json(static_cast<long long>(v));
          return nlohmann::json(v);
        }
      } catch (...) {
      }
      return s;
    }
    default:
      return nullptr;
  }
}

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
    std::fprintf(stderr, "\r[%s%s] point %zu/%zu  generation %d/%d", std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), point + 1, points, g, G);
    if (done_ == total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  bool on_;
  std::size_t total_, done_ = 0;
  Clock::time_point last_{};
};

volatile std::sig_atomic_t g_stop = 0;

// FNV-1a (64-bit) of the config text, in hex: ties a checkpoint to its config.
std::string fingerprint(const std::string& text) {
  std::uint64_t h = 14695981039346656037ULL;
  for (unsigned char ch : text) h = (h ^ ch) * 1099511628211ULL;
  return fmt::format("{:016x}", h);
}

std::string version_text() { return provenance::version() + " (" + provenance::git_commit() + ")"; }

std::string checkpoint_path(const std::string& dir, std::uint64_t seq, int rank) {
  return fmt::format("{}/ckpt-{}-rank{}.bin", dir, seq, rank);
}

}  // namespace

std::vector<PointPlan> plan_run(const Experiment& ex, const RunOptions& opt) {
  const Comm& comm = Comm::world();
  // Every rank plans with the same budget (the smallest any rank has), so
  // all run the same batches in lockstep.
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

void request_stop() { g_stop = 1; }

RunResult run_experiment(const Experiment& ex, const RunOptions& opt) {
  const auto t_start = Clock::now();
  const Comm& comm = Comm::world();
  const bool root = comm.root();
  RunResult result;
  result.backend = opt.backend;
  result.out_dir = opt.out_dir;
  std::vector<PointPlan> plans = plan_run(ex, opt);
  const std::string config_path = opt.out_dir + "/config.yaml";
  // A resumed run compares the checkpoint's hash with config.yaml's bytes as
  // they are on disk (the experiment was loaded from them).
  std::string text = config_text(ex);
  if (opt.resume) {
    std::ifstream in(config_path, std::ios::binary);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string ckdir = opt.out_dir + "/checkpoint";
  const std::string manifest_path = opt.out_dir + "/manifest.json";

  std::vector<std::string> axis_paths;
  for (const auto& a : ex.axes) axis_paths.push_back(a.path);
  // Metric names of every point (families, and a mixture's component count,
  // may differ between points); per_chain.csv has a column for each name
  // that any point has, empty where a point lacks it.
  std::vector<std::vector<std::string>> point_names;
  std::vector<std::string> all_names;
  for (const auto& p : ex.points) {
    point_names.push_back(metric_names(p.config));
    for (const auto& n : point_names.back())
      if (std::find(all_names.begin(), all_names.end(), n) == all_names.end()) all_names.push_back(n);
  }
  std::vector<std::string> per_chain_header = axis_paths;
  per_chain_header.emplace_back("generation");
  per_chain_header.emplace_back("chain");
  for (const auto& n : all_names) per_chain_header.push_back(n);

  // Where a resumed run goes on: the checkpoint set latest.json names.
  std::unique_ptr<CheckpointReader> reader;
  std::size_t resume_point = 0;
  int resume_batch = 0, resume_generation = 0;
  std::uint64_t seq = 0;
  nlohmann::json saved;  // rank 0's header of that checkpoint
  // The run's identity (manifest.json's run_id), in every checkpoint header:
  // a checkpoint left by an earlier run in a folder reused with --force is
  // never taken for this run's.
  std::string run_id;
  auto manifest_run_id = [&] {
    std::ifstream in(manifest_path);
    nlohmann::json m;
    in >> m;
    return m.at("run_id").get<std::string>();
  };
  if (opt.resume) {
    // Every rank checks its own file; all agree on the verdict before rank 0
    // touches anything in the folder.
    std::string problem;
    try {
      run_id = manifest_run_id();
      std::ifstream in(ckdir + "/latest.json");
      nlohmann::json latest;
      try {
        in >> latest;
        seq = latest.at("seq").get<std::uint64_t>();
      } catch (const std::exception&) {
        throw CheckpointError(
            fmt::format("{} holds no checkpoint (the run stopped before its first one: run it "
                        "again with --force)",
                        opt.out_dir));
      }
      const std::string file = checkpoint_path(ckdir, seq, comm.rank());
      reader = std::make_unique<CheckpointReader>(file);
      const nlohmann::json& h = reader->header();
      if (h.value("version", "") != version_text())
        throw CheckpointError(fmt::format("checkpoint {} was written by ouroboros {}; this is {}", file,
                                          h.value("version", "?"), version_text()));
      if (h.value("config", "") != fingerprint(text))
        throw CheckpointError(fmt::format("checkpoint {} belongs to another config than {}", file, config_path));
      if (h.value("run", "") != run_id)
        throw CheckpointError(
            fmt::format("checkpoint {} belongs to another run than {}/manifest.json (an earlier "
                        "run in this folder?)",
                        file, opt.out_dir));
      if (h.value("ranks", 0) != comm.size() || h.value("rank", -1) != comm.rank())
        throw CheckpointError(
            fmt::format("checkpoint {} was written by rank {} of {}; resume with the same number "
                        "of ranks (mpirun -n {})",
                        file, h.value("rank", -1), h.value("ranks", 0), h.value("ranks", 0)));
      // The chains' batches as they were run (the plan of this process may
      // differ: another thread count, another machine's memory).
      const nlohmann::json& hp = h.at("plans");
      if (!hp.is_array() || hp.size() != plans.size())
        throw CheckpointError(fmt::format("checkpoint {} has the plans of another sweep", file));
      for (std::size_t p = 0; p < plans.size(); ++p) {
        const auto batch = hp[p].at(0).get<std::int64_t>();
        const int batches = hp[p].at(1).get<int>();
        if (batch < 1 || batches < 1 || batch * batches < plans[p].ranks.front().count)
          throw CheckpointError(fmt::format("checkpoint {} has a damaged plan", file));
        plans[p].batch = batch;
        plans[p].batches = batches;
      }
      resume_point = h.at("point").get<std::size_t>();
      resume_batch = h.at("batch").get<int>();
      resume_generation = h.at("generation").get<int>();
      if (resume_point >= plans.size() || resume_batch >= plans[resume_point].batches || resume_generation < 0 ||
          resume_generation > ex.points[resume_point].config.generations)
        throw CheckpointError(fmt::format("checkpoint {} has a damaged position", file));
      saved = h;
    } catch (const CheckpointError& e) {
      problem = e.what();
    } catch (const std::exception& e) {
      problem = fmt::format("{}: unreadable run state ({})", opt.out_dir, e.what());
    }
    if (comm.any(!problem.empty())) {
      if (!problem.empty() && !root)
        std::fprintf(stderr, "ouroboros: resume, rank %d: %s\n", comm.rank(), problem.c_str());
      throw CheckpointError(problem.empty() ? "another rank's checkpoint was refused (its message above)" : problem);
    }
  }
  nlohmann::json plan_json = nlohmann::json::array();
  for (const auto& pl : plans) plan_json.push_back({pl.batch, pl.batches});

  nlohmann::json manifest;
  std::unique_ptr<CsvWriter> csv, per_chain, summary_csv, summary_chains, early_csv;
  nlohmann::json points_json = nlohmann::json::array();
  double t_backend = 0.0, t_gather = 0.0, t_aggregate = 0.0, t_write = 0.0, t_checkpoint = 0.0;
  if (root) {
    if (opt.resume) {
      std::ifstream in(manifest_path);
      in >> manifest;
      manifest["resumed"].push_back(
          {{"checkpoint", seq}, {"point", resume_point}, {"batch", resume_batch}, {"generation", resume_generation}});
      result.rows = saved.at("rows").get<std::size_t>();
      points_json = saved.at("points");
      const auto& st = saved.at("stage_seconds");
      t_backend = st.at("sample_fit_metrics");
      t_gather = st.at("gather");
      t_aggregate = st.at("aggregate");
      t_write = st.at("write");
      t_checkpoint = st.at("checkpoint");
      csv = std::make_unique<CsvWriter>(opt.out_dir + "/metrics.csv", saved.at("metrics_bytes").get<std::uint64_t>());
      summary_csv =
          std::make_unique<CsvWriter>(opt.out_dir + "/summary.csv", saved.at("summary_bytes").get<std::uint64_t>());
      summary_chains = std::make_unique<CsvWriter>(opt.out_dir + "/summary_chains.csv",
                                                   saved.at("summary_chains_bytes").get<std::uint64_t>());
      if (opt.per_chain)
        per_chain = std::make_unique<CsvWriter>(opt.out_dir + "/per_chain.csv",
                                                saved.at("per_chain_bytes").get<std::uint64_t>());
      if (ex.early_warning.on)
        early_csv = std::make_unique<CsvWriter>(opt.out_dir + "/early_warning.csv",
                                                saved.at("early_warning_bytes").get<std::uint64_t>());
    } else {
      fs::create_directories(opt.out_dir);
      fs::remove_all(ckdir);  // an earlier run's, in a folder reused with --force
      write_file_atomic(config_path, text);
      std::random_device entropy;
      run_id = fmt::format("{:08x}{:08x}", entropy(), entropy());
      manifest["run_id"] = run_id;
      manifest["ouroboros_version"] = provenance::version();
      manifest["git_commit"] = provenance::git_commit();
      manifest["command"] = {{"config", opt.config_path}, {"set", opt.sets}};
      manifest["config"] = yaml_to_json(ex.resolved);
      manifest["seed"] = ex.points.front().config.seed;
      manifest["rng"] = {{"generator", "Philox4x32-10"},
                         {"layout_version", rng::kRngLayoutVersion},
                         {"key", "seed, chain"},
                         {"counter", "index_lo, index_hi, stream, generation"}};
      manifest["backend"] = result.backend;
      manifest["device"] = result.backend == "cuda" ? cuda_device_name() : provenance::cpu_model();
      manifest["cpu_model"] = provenance::cpu_model();
      manifest["dependencies"] = provenance::dependencies();
      if (cuda_built()) manifest["dependencies"]["cuda_runtime"] = cuda_runtime_version();
      manifest["ranks"] = comm.size();
      manifest["run_options"] = {{"backend", opt.backend},
                                 {"per_chain", opt.per_chain},
                                 {"checkpoint_every", opt.checkpoint_every},
                                 {"max_memory_bytes", plans.front().budget}};
      csv = std::make_unique<CsvWriter>(opt.out_dir + "/metrics.csv", metrics_header(axis_paths));
      summary_csv = std::make_unique<CsvWriter>(opt.out_dir + "/summary.csv", summary_header(axis_paths));
      std::vector<std::string> h = axis_paths;
      for (const char* c : {"point", "chain", "last", "auc"}) h.emplace_back(c);
      summary_chains = std::make_unique<CsvWriter>(opt.out_dir + "/summary_chains.csv", h);
      if (opt.per_chain) per_chain = std::make_unique<CsvWriter>(opt.out_dir + "/per_chain.csv", per_chain_header);
      if (ex.early_warning.on)
        early_csv = std::make_unique<CsvWriter>(opt.out_dir + "/early_warning.csv", early_warning_header(axis_paths));
    }
    manifest["status"] = "running";
    write_json_atomic(manifest_path, manifest);
  }
  comm.barrier();  // the folder and manifest exist before any rank writes a checkpoint into it
  if (!root && !opt.resume) run_id = manifest_run_id();
  auto stage_seconds = [&] {
    return nlohmann::json{{"sample_fit_metrics", t_backend},
                          {"gather", t_gather},
                          {"aggregate", t_aggregate},
                          {"write", t_write},
                          {"checkpoint", t_checkpoint}};
  };

  std::size_t total_steps = 0;
  for (std::size_t p = 0; p < ex.points.size(); ++p)
    total_steps += static_cast<std::size_t>(plans[p].batches) * (ex.points[p].config.generations + 1);
  Progress progress(opt.progress && root, total_steps);
  const int aggregate_threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  // Fault injection for the tests (tests/sim/engine/test_scaleout.cc):
  // OUROBOROS_FAULT=kill@S or term@S sends this process SIGKILL or SIGTERM
  // right after its S-th generation step (counted over points and batches,
  // after that step's rows and any checkpoint are written; a SIGTERM then
  // stops the run at the next step's boundary).
  int fault_signal = 0;
  long fault_step = 0;
  if (const char* f = std::getenv("OUROBOROS_FAULT")) {
    const std::string spec = f;
    const auto at = spec.find('@');
    if (at != std::string::npos) {
      fault_step = std::atol(spec.c_str() + at + 1);
      fault_signal = spec.compare(0, at, "kill") == 0 ? SIGKILL : spec.compare(0, at, "term") == 0 ? SIGTERM : 0;
    }
  }
  long steps = 0;

  for (std::size_t p = 0; p < ex.points.size(); ++p) {
    if (reader && p < resume_point) continue;
    const SweepPoint& point = ex.points[p];
    const PointConfig& c = point.config;
    const PointPlan& plan = plans[p];
    const std::vector<std::string>& names = point_names[p];
    const int M = static_cast<int>(names.size());
    const std::int64_t N = c.chains;
    const std::size_t MN = static_cast<std::size_t>(M) * N;
    std::vector<int> column(M);  // metric m's column in per_chain.csv
    for (int m = 0; m < M; ++m)
      column[m] = static_cast<int>(std::find(all_names.begin(), all_names.end(), names[m]) - all_names.begin());
    // Rank 0's values of every chain: one generation's when a rank's chains
    // are one batch, else every generation's until the last batch has run.
    const bool whole = plan.batches == 1;
    std::vector<double> table(root ? (whole ? 1 : c.generations + 1) * MN : 0);
    // The point's summary (rank 0): its metric's curve, chain by chain.
    const int sm = static_cast<int>(std::find(names.begin(), names.end(), ex.summary.metric) - names.begin());
    PointSummary summary(sm, collapse_direction(ex.summary.metric), ex.summary.threshold, root ? N : 0);
    // The early-warning detectors' view of every chain (rank 0).
    std::unique_ptr<EarlyWarningTracker> early;
    if (root && ex.early_warning.on) {
      std::vector<DetectorSpec> detectors = chosen_detectors(c, ex.early_warning);
      std::vector<int> index;
      for (const auto& d : detectors)
        index.push_back(static_cast<int>(std::find(names.begin(), names.end(), d.metric) - names.begin()));
      early = std::make_unique<EarlyWarningTracker>(ex.early_warning, std::move(detectors), std::move(index), sm,
                                                    collapse_direction(ex.summary.metric), ex.summary.threshold, N,
                                                    c.generations);
    }
    nlohmann::json point_workers = nlohmann::json::array();

    for (int b = 0; b < plan.batches; ++b) {
      if (reader && p == resume_point && b < resume_batch) continue;
      const ChainBlock block = plan.block(comm.rank(), b);
      auto t0 = Clock::now();
      std::unique_ptr<FamilyRun> backend;
      if (block.count > 0) backend = make_family_run(c, opt.backend, opt.threads, block);
      t_backend += seconds_since(t0);
      std::vector<double> local(static_cast<std::size_t>(M) * block.count), gathered;
      std::vector<std::int64_t> counts(comm.size());
      for (int r = 0; r < comm.size(); ++r) counts[r] = M * plan.block(r, b).count;
      int g0 = 0;
      if (reader) {  // this is the batch the checkpoint stopped in
        if (root && !whole) reader->vec("table", table);
        if (root) summary.archive(*reader);
        if (early) early->archive(*reader);
        if (backend) backend->state(*reader);
        reader->finish();
        reader.reset();
        if (root) point_workers = saved.at("point_workers");
        g0 = resume_generation + 1;
      }
      auto checkpoint = [&](int g) {
        const auto tc = Clock::now();
        fs::create_directories(ckdir);
        ++seq;
        nlohmann::json h = {{"format", kCheckpointFormat},
                            {"version", version_text()},
                            {"config", fingerprint(text)},
                            {"run", run_id},
                            {"rank", comm.rank()},
                            {"ranks", comm.size()},
                            {"plans", plan_json},
                            {"point", p},
                            {"batch", b},
                            {"generation", g},
                            {"seq", seq}};
        if (root) {
          h["rows"] = result.rows;
          // On disk before the checkpoint that records their lengths.
          csv->sync();
          summary_csv->sync();
          summary_chains->sync();
          if (per_chain) per_chain->sync();
          if (early_csv) early_csv->sync();
          h["metrics_bytes"] = csv->bytes();
          h["summary_bytes"] = summary_csv->bytes();
          h["summary_chains_bytes"] = summary_chains->bytes();
          h["per_chain_bytes"] = per_chain ? per_chain->bytes() : 0;
          h["early_warning_bytes"] = early_csv ? early_csv->bytes() : 0;
          h["points"] = points_json;
          h["point_workers"] = point_workers;
          h["stage_seconds"] = stage_seconds();
        }
        write_checkpoint(checkpoint_path(ckdir, seq, comm.rank()), h, [&](kernels::StateArchive& ar) {
          if (root && !whole) ar.vec("table", table);
          if (root) summary.archive(ar);
          if (early) early->archive(ar);
          if (backend) backend->state(ar);
        });
        comm.barrier();  // every rank's file is in place: commit the set
        if (root)
          write_file_atomic(ckdir + "/latest.json",
                            nlohmann::json{{"seq", seq}, {"point", p}, {"batch", b}, {"generation", g}}.dump() + "\n");
        comm.barrier();
        std::error_code ec;
        if (seq > 1) fs::remove(checkpoint_path(ckdir, seq - 1, comm.rank()), ec);
        t_checkpoint += seconds_since(tc);
      };

      for (int g = g0; g <= c.generations; ++g) {
        t0 = Clock::now();
        if (backend) {
          if (g == 0) backend->start(local.data());
          else backend->advance(g, local.data());
        }
        t_backend += seconds_since(t0);
        t0 = Clock::now();
        comm.gather(local, counts, gathered);
        t_gather += seconds_since(t0);
        if (root) {
          // Each rank's values, [metric][its chains], into [metric][chain].
          double* slot = table.data() + (whole ? 0 : static_cast<std::size_t>(g) * MN);
          std::size_t at = 0;
          for (int r = 0; r < comm.size(); ++r) {
            const ChainBlock rb = plan.block(r, b);
            for (int m = 0; m < M; ++m, at += rb.count)
              std::copy(gathered.begin() + at, gathered.begin() + at + rb.count,
                        slot + static_cast<std::size_t>(m) * N + rb.first);
          }
          if (b == plan.batches - 1) {  // every chain has generation g
            t0 = Clock::now();
            // Metrics are summarised independently, so in parallel without
            // changing a bit; handed out one at a time because the constant
            // ones (synthetic_share, data_age) cost nothing and would
            // unbalance a static split.
            std::vector<Summary> summaries(M);
#pragma omp parallel for schedule(dynamic, 1) num_threads(aggregate_threads)
            for (int m = 0; m < M; ++m) {
              thread_local std::vector<double> scratch;
              summaries[m] = summarize(slot + static_cast<std::size_t>(m) * N, N, scratch);
            }
            summary.add(g, slot + static_cast<std::size_t>(sm) * N, summaries[sm]);
            if (early) early->add(g, slot);
            std::vector<std::vector<std::string>> rows;
            for (int m = 0; m < M; ++m)
              rows.push_back(metrics_row(point.labels, g, names[m], summaries[m], theory(c, m, g)));
            t_aggregate += seconds_since(t0);
            t0 = Clock::now();
            for (const auto& r : rows) csv->row(r);
            csv->flush();
            result.rows += rows.size();
            if (per_chain) {
              for (std::int64_t i = 0; i < N; ++i) {
                std::vector<std::string> r = point.labels;
                r.push_back(std::to_string(g));
                r.push_back(std::to_string(i));
                r.resize(r.size() + all_names.size());
                for (int m = 0; m < M; ++m)
                  r[point.labels.size() + 2 + column[m]] = number(slot[static_cast<std::size_t>(m) * N + i]);
                per_chain->row(r);
              }
              per_chain->flush();
            }
            t_write += seconds_since(t0);
          }
          progress.tick(p, ex.points.size(), g, c.generations);
        }
        const bool stop = comm.any(g_stop != 0);
        const bool due = opt.checkpoint_every > 0 && g > 0 && g % opt.checkpoint_every == 0;
        if (due || stop) checkpoint(g);
        if (fault_signal && ++steps == fault_step) std::raise(fault_signal);
        if (stop) {
          result.interrupted = true;
          result.wall_seconds = seconds_since(t_start);
          if (root) {
            manifest["status"] = "interrupted";
            manifest["stopped_at"] = {{"point", p}, {"batch", b}, {"generation", g}};
            manifest["rows"] = result.rows;
            write_json_atomic(manifest_path, manifest);
          }
          return result;
        }
      }

      // Which worker of which rank ran which chains of this batch.
      nlohmann::json mine = nlohmann::json::array();
      if (backend)
        for (const auto& w : backend->workers())
          mine.push_back({{"rank", comm.rank()},
                          {"batch", b},
                          {"worker", w.worker},
                          {"first_chain", w.first_chain},
                          {"last_chain", w.last_chain},
                          {"chains", w.chains}});
      const std::vector<std::string> all = comm.gather_text(mine.dump());
      if (root)
        for (const auto& t : all)
          for (const auto& w : nlohmann::json::parse(t)) point_workers.push_back(w);
    }

    nlohmann::json pj;
    for (std::size_t a = 0; a < ex.axes.size(); ++a) pj[ex.axes[a].path] = point.labels[a];
    nlohmann::json ranks = nlohmann::json::array();
    for (int r = 0; r < comm.size(); ++r)
      ranks.push_back({{"rank", r}, {"first_chain", plan.ranks[r].first}, {"chains", plan.ranks[r].count}});
    if (root) {
      summary_csv->row(summary_row(point.labels, p, names[sm], summary, real_samples_per_chain(c), c.generations));
      for (std::int64_t i = 0; i < N; ++i) {
        std::vector<std::string> r = point.labels;
        for (const std::string& v :
             {std::to_string(p), std::to_string(i), number(summary.chain_last()[i]), number(summary.chain_auc()[i])})
          r.push_back(v);
        summary_chains->row(r);
      }
      summary_csv->flush();
      summary_chains->flush();
      if (early) {
        for (const auto& r : early->evaluate())
          early_csv->row(early_warning_row(point.labels, p, ex.early_warning, r, summary.collapse_generation()));
        early_csv->flush();
      }
    }
    points_json.push_back({{"point", pj},
                           {"seed", c.seed},
                           {"chains", c.chains},
                           {"ranks", ranks},
                           {"batch_chains", plan.batch},
                           {"batches", plan.batches},
                           {"workers", point_workers}});
  }

  result.wall_seconds = seconds_since(t_start);
  if (root) {
    manifest["threads"] = result.backend == "cpu" ? (opt.threads > 0 ? opt.threads : omp_get_max_threads()) : 0;
    manifest["points"] = points_json;
    manifest["wall_seconds"] = result.wall_seconds;
    manifest["stage_seconds"] = stage_seconds();
    manifest["rows"] = result.rows;
    manifest["status"] = "complete";
    write_json_atomic(manifest_path, manifest);
  }
  // A complete run needs no checkpoint (they can be as large as the state of
  // every chain).
  comm.barrier();
  if (root) {
    std::error_code ec;
    fs::remove_all(ckdir, ec);
  }
  return result;
}

}  // namespace ouro

#include "sim/engine/run.h"

#include <csignal>

#include "sim/engine/experiment_run.h"

namespace ouro {
namespace run_detail {

namespace {
volatile std::sig_atomic_t g_stop = 0;
}  // namespace

int stop_signal() { return static_cast<int>(g_stop); }

RunResult ExperimentRun::run() {
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

bool ExperimentRun::run_point(std::size_t p) {
  const SweepPoint& point = ex_.points[p];
  const PointConfig& c = point.config;
  const std::vector<std::string>& names = point_names_[p];
  const int M = static_cast<int>(names.size());
  const int sm = static_cast<int>(std::find(names.begin(), names.end(), ex_.summary.metric) - names.begin());
  const bool whole = plans_[p].batches == 1;
  PointRun pr{p,
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

bool ExperimentRun::run_batch(PointRun& pr, int b) {
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
    // The rows of the checkpoint's generation that a failed write left out (their summaries are in the state; the
    // backend, restored at that generation, draws the scatter's points again).
    if (pending)
      write_rows(pr, b, resume_->generation,
                 b == pr.plan.batches - 1 ? summarize_generation(pr, resume_->generation) : std::vector<Summary>(),
                 backend.get());
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
      if (has_rows(pr, b, g)) unwritten = !record_generation(pr, b, g, backend.get());
      progress_->tick(pr.index, ex_.points.size(), g, c.generations);
    }
    const bool failed = comm_.any(unwritten);
    const bool stop = comm_.any(stop_signal() != 0);
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

void ExperimentRun::collect(PointRun& pr, int b, int g, const std::vector<double>& gathered) {
  double* slot = pr.slot(g);
  std::size_t at = 0;
  for (int r = 0; r < comm_.size(); ++r) {
    const ChainBlock rb = pr.plan.block(r, b);
    for (int m = 0; m < pr.M; ++m, at += rb.count)
      std::copy(gathered.begin() + at, gathered.begin() + at + rb.count,
                slot + static_cast<std::size_t>(m) * pr.N + rb.first);
  }
}

std::vector<Summary> ExperimentRun::summarize_generation(PointRun& pr, int g) {
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

bool ExperimentRun::record_generation(PointRun& pr, int b, int g, FamilyRun* backend) {
  std::vector<Summary> summaries;
  if (b == pr.plan.batches - 1) {  // every chain has generation g
    auto t0 = Clock::now();
    summaries = summarize_generation(pr, g);
    const double* slot = pr.slot(g);
    pr.summary.add(g, slot + static_cast<std::size_t>(pr.summary_metric) * pr.N, summaries[pr.summary_metric]);
    if (pr.early) pr.early->add(g, slot);
    stages_.aggregate += seconds_since(t0);
  }
  try {
    write_rows(pr, b, g, summaries, backend);
  } catch (const WriteError& e) {
    write_failed(e);
    return false;
  }
  return true;
}

}  // namespace run_detail

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

void request_stop(int signal) { run_detail::g_stop = signal > 0 ? signal : SIGTERM; }

RunResult run_experiment(const Experiment& ex, const RunOptions& opt) {
  return run_detail::ExperimentRun(ex, opt).run();
}

}  // namespace ouro

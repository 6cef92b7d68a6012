// ExperimentRun (sim/engine/experiment_run.h): what rank 0 writes: the manifest, the tables (metrics.csv, the
// per-chain file, scatter.csv, the point summaries), and the status of a run that stops before its end.
#include "sim/engine/experiment_run.h"

namespace ouro::run_detail {

void ExperimentRun::open_outputs() {
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
      if (ex_.scatter.on) scatter_ = reopen("scatter.csv", "scatter_bytes");
    } else {
      fs::create_directories(opt_.out_dir);
      // An earlier run's files, in a folder reused with --force: none of them may pass for this run's.
      fs::remove_all(ckdir_);
      for (const char* f : {"per_chain.csv", "per_chain.h5", "early_warning.csv", "scatter.csv", "report.md"})
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
      if (ex_.scatter.on) {
        std::vector<std::string> header = axis_paths_;
        for (const char* c : {"point", "generation", "chain"}) header.emplace_back(c);
        for (int k = 1; k <= scatter_dim_; ++k) header.push_back(fmt::format("x_{}", k));
        scatter_ = std::make_unique<CsvWriter>(opt_.out_dir + "/scatter.csv", header);
      }
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

void ExperimentRun::write_new_manifest() {
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

void ExperimentRun::write_rows(PointRun& pr, int b, int g, const std::vector<Summary>& summaries, FamilyRun* backend) {
  auto t0 = Clock::now();
  const std::int64_t N = pr.N;
  const double* slot = pr.slot(g);
  const bool metrics = !summaries.empty();
  if (metrics)
    for (int m : pr.written)
      csv_->row(metrics_row(pr.point.labels, g, pr.names[m], summaries[m], theory(pr.point.config, m, g)));
  if (per_chain_ && metrics) {
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
  write_scatter(pr, b, g, backend);
  // (The HDF5 file last: every table that a failed write cuts back is written before it.)
  if (per_chain_h5_ && metrics) {
    std::vector<double> values;
    values.reserve(pr.written.size() * static_cast<std::size_t>(N));
    for (int m : pr.written)
      values.insert(values.end(), slot + static_cast<std::size_t>(m) * N, slot + static_cast<std::size_t>(m + 1) * N);
    per_chain_h5_->write(pr.index, g, values);
  }
  csv_->mark();
  if (per_chain_) per_chain_->mark();
  if (scatter_) scatter_->mark();
  if (metrics) result_.rows += pr.written.size();
  stages_.write += seconds_since(t0);
}

void ExperimentRun::write_scatter(PointRun& pr, int b, int g, FamilyRun* backend) {
  if (!scatter_ || !ex_.scatter.at(g) || !backend) return;
  const ChainBlock block = pr.plan.block(comm_.rank(), b);
  const std::int64_t end = std::min<std::int64_t>(block.first + block.count, ex_.scatter.chains);
  const std::int64_t P = ex_.scatter.points;
  const int d = backend->point_dim();
  const std::size_t at = pr.point.labels.size() + 3;  // the first coordinate's column
  std::vector<double> x;
  std::vector<std::string> r(at + static_cast<std::size_t>(scatter_dim_));
  std::copy(pr.point.labels.begin(), pr.point.labels.end(), r.begin());
  r[at - 3] = std::to_string(pr.index);
  r[at - 2] = std::to_string(g);
  for (std::int64_t chain = block.first; chain < end; ++chain) {
    x.clear();
    if (!backend->model_sample(chain - block.first, P, x) || d < 1 || d > scatter_dim_ ||
        x.size() != static_cast<std::size_t>(P * d))
      throw std::logic_error(
          fmt::format("the {} family's backend drew no model sample of {} points of dimension "
                      "{} (of at most {}) for scatter.csv",
                      pr.point.config.family->name(), P, d, scatter_dim_));
    r[at - 1] = std::to_string(chain);
    for (std::int64_t i = 0; i < P; ++i) {
      for (int k = 0; k < d; ++k) r[at + k] = number(x[static_cast<std::size_t>(i * d + k)]);
      scatter_->row(r);
    }
  }
}

void ExperimentRun::write_failed(const WriteError& e) {
  stop_reason_ = e.disk_full() ? fmt::format("the disk is full ({})", e.what()) : e.what();
  for (CsvWriter* w :
       {csv_.get(), per_chain_.get(), summary_csv_.get(), summary_chains_.get(), early_csv_.get(), scatter_.get()})
    if (w) w->rollback();
}

void ExperimentRun::record_failure(const std::string& what) {
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

void ExperimentRun::stopped(std::size_t p, int b, int g) {
  result_.interrupted = true;
  result_.wall_seconds = seconds_since(t_start_);
  if (!root_) return;
  result_.status = resumable() ? "interrupted" : "failed";
  result_.reason = stop_reason_.empty() ? fmt::format("stopped by {}", signal_name(stop_signal())) : stop_reason_;
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

bool ExperimentRun::write_point_summary(PointRun& pr) {
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

void ExperimentRun::record_point(PointRun& pr) {
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

void ExperimentRun::finish() {
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

}  // namespace ouro::run_detail

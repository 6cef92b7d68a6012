// ExperimentRun (sim/engine/experiment_run.h): checkpoints, written by every rank and committed by rank 0, and read
// back by a resumed run after checking what the run depends on.
#include "sim/engine/experiment_run.h"

namespace ouro::run_detail {

std::string ExperimentRun::manifest_run_id() const {
  std::ifstream in(manifest_path_);
  nlohmann::json m;
  in >> m;
  return m.at("run_id").get<std::string>();
}

void ExperimentRun::read_checkpoint() {
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

std::string ExperimentRun::changed_inputs(const nlohmann::json& saved) const {
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

bool ExperimentRun::checkpoint(PointRun& pr, int b, int g, FamilyRun* backend, bool unwritten) {
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
      for (CsvWriter* w :
           {csv_.get(), summary_csv_.get(), summary_chains_.get(), per_chain_.get(), early_csv_.get(), scatter_.get()})
        if (w) w->sync();
      h["metrics_bytes"] = csv_->bytes();
      h["summary_bytes"] = summary_csv_->bytes();
      h["summary_chains_bytes"] = summary_chains_->bytes();
      h["per_chain_bytes"] = per_chain_ ? per_chain_->bytes() : 0;
      h["early_warning_bytes"] = early_csv_ ? early_csv_->bytes() : 0;
      h["scatter_bytes"] = scatter_ ? scatter_->bytes() : 0;
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

bool ExperimentRun::resumable() const {
  std::error_code ec;
  return fs::is_regular_file(ckdir_ + "/latest.json", ec);
}

}  // namespace ouro::run_detail

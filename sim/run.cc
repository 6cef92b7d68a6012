#include "sim/run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "kernels/rng.h"
#include "sim/aggregate.h"
#include "sim/backend.h"
#include "sim/family.h"
#include "sim/output.h"
#include "sim/provenance.h"

namespace ouro {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

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

}  // namespace

RunResult run_experiment(const Experiment& ex, const RunOptions& opt) {
  const auto t_start = Clock::now();
  RunResult result;
  result.backend = resolve_backend(opt.backend);
  result.out_dir = opt.out_dir;
  fs::create_directories(opt.out_dir);

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

  nlohmann::json manifest;
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
  manifest["status"] = "running";
  const std::string manifest_path = opt.out_dir + "/manifest.json";
  write_json_atomic(manifest_path, manifest);

  CsvWriter csv(opt.out_dir + "/metrics.csv", metrics_header(axis_paths));
  std::unique_ptr<CsvWriter> per_chain;
  if (opt.per_chain) {
    std::vector<std::string> h = axis_paths;
    h.emplace_back("generation");
    h.emplace_back("chain");
    for (const auto& n : all_names) h.push_back(n);
    per_chain = std::make_unique<CsvWriter>(opt.out_dir + "/per_chain.csv", h);
  }

  std::size_t total_steps = 0;
  for (const auto& p : ex.points) total_steps += p.config.generations + 1;
  Progress progress(opt.progress, total_steps);

  double t_backend = 0.0, t_aggregate = 0.0, t_write = 0.0;
  nlohmann::json points_json = nlohmann::json::array();
  const int aggregate_threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  for (std::size_t p = 0; p < ex.points.size(); ++p) {
    const SweepPoint& point = ex.points[p];
    const PointConfig& c = point.config;
    const std::vector<std::string>& names = point_names[p];
    const int M = static_cast<int>(names.size());
    std::vector<int> column(M);  // metric m's column in per_chain.csv
    for (int m = 0; m < M; ++m)
      column[m] = static_cast<int>(std::find(all_names.begin(), all_names.end(), names[m]) - all_names.begin());
    auto t0 = Clock::now();
    auto backend = make_family_run(c, result.backend, opt.threads);
    std::vector<double> metrics(static_cast<std::size_t>(M) * c.chains);
    backend->start(metrics.data());
    t_backend += seconds_since(t0);

    for (int g = 0; g <= c.generations; ++g) {
      if (g > 0) {
        t0 = Clock::now();
        backend->advance(g, metrics.data());
        t_backend += seconds_since(t0);
      }
      t0 = Clock::now();
      // Metrics are summarised independently, so in parallel without
      // changing a bit; handed out one at a time because the constant ones
      // (synthetic_share, data_age) cost nothing and would unbalance a
      // static split.
      std::vector<Summary> summaries(M);
#pragma omp parallel for schedule(dynamic, 1) num_threads(aggregate_threads)
      for (int m = 0; m < M; ++m) {
        thread_local std::vector<double> scratch;
        summaries[m] = summarize(metrics.data() + static_cast<std::size_t>(m) * c.chains, c.chains, scratch);
      }
      std::vector<std::vector<std::string>> rows;
      for (int m = 0; m < M; ++m) rows.push_back(metrics_row(point.labels, g, names[m], summaries[m], theory(c, m, g)));
      t_aggregate += seconds_since(t0);
      t0 = Clock::now();
      for (const auto& r : rows) csv.row(r);
      csv.flush();
      result.rows += rows.size();
      if (per_chain) {
        for (std::int64_t i = 0; i < c.chains; ++i) {
          std::vector<std::string> r = point.labels;
          r.push_back(std::to_string(g));
          r.push_back(std::to_string(i));
          r.resize(r.size() + all_names.size());
          for (int m = 0; m < M; ++m)
            r[point.labels.size() + 2 + column[m]] = number(metrics[static_cast<std::size_t>(m) * c.chains + i]);
          per_chain->row(r);
        }
        per_chain->flush();
      }
      t_write += seconds_since(t0);
      progress.tick(p, ex.points.size(), g, c.generations);
    }

    nlohmann::json pj;
    for (std::size_t a = 0; a < ex.axes.size(); ++a) pj[ex.axes[a].path] = point.labels[a];
    nlohmann::json workers = nlohmann::json::array();
    for (const auto& w : backend->workers())
      workers.push_back({{"worker", w.worker}, {"first_chain", w.first_chain}, {"last_chain", w.last_chain},
                         {"chains", w.chains}});
    points_json.push_back({{"point", pj}, {"seed", c.seed}, {"chains", c.chains}, {"workers", workers}});
  }

  result.wall_seconds = seconds_since(t_start);
  manifest["threads"] = result.backend == "cpu" ? (opt.threads > 0 ? opt.threads : omp_get_max_threads()) : 0;
  manifest["points"] = points_json;
  manifest["wall_seconds"] = result.wall_seconds;
  manifest["stage_seconds"] = {{"sample_fit_metrics", t_backend}, {"aggregate", t_aggregate}, {"write", t_write}};
  manifest["rows"] = result.rows;
  manifest["status"] = "complete";
  write_json_atomic(manifest_path, manifest);
  return result;
}

}  // namespace ouro

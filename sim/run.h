// The one loop: for every sweep point, start every chain at the truth, then
// for g = 1..G fit generation g on the backend, aggregate each metric over the
// chains and append the rows to metrics.csv (DESIGN.md, "the one loop").
#pragma once

#include <string>
#include <vector>

#include "sim/config.h"

namespace ouro {

struct RunOptions {
  std::string config_path;        // for the manifest
  std::vector<std::string> sets;  // for the manifest
  std::string out_dir;            // created; must not exist or be empty
  std::string backend = "auto";
  int threads = 0;                // cpu: 0 = all cores
  bool per_chain = false;
  bool progress = true;           // progress bar on stderr (only if it is a terminal)
};

struct RunResult {
  std::string out_dir;
  std::string backend;
  double wall_seconds = 0.0;
  std::size_t rows = 0;
};

RunResult run_experiment(const Experiment& ex, const RunOptions& opt);

}  // namespace ouro

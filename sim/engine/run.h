// The one loop: for every sweep point, start every chain at the truth, then
// for g = 1..G fit generation g on the backend, aggregate each metric over the
// chains and append the rows to metrics.csv (DESIGN.md, "the one loop").
//
// A point's chains are split across the ranks of an MPI job and, on each
// rank, into batches that fit its memory (sim/engine/plan.h); rank 0 gathers every
// chain's values and writes every file. Since randomness is keyed by (seed,
// chain), the files do not depend on the split. Checkpoints (every
// `checkpoint_seconds` of wall time and every `checkpoint_every` generations,
// and when a stop is requested or a write fails) hold every chain's state, so
// `resume` continues a killed run to the same bytes. A failed write of the
// tables (a full disk) cuts them back to the last whole generation and stops
// the run with a checkpoint that holds the rows not yet written.
#pragma once

#include <string>
#include <vector>

#include "sim/engine/config.h"
#include "sim/engine/plan.h"

namespace ouro {

struct RunOptions {
  std::string config_path;        // for the manifest
  std::vector<std::string> sets;  // for the manifest
  std::string out_dir;            // created; must not exist or be empty
  std::string backend = "auto";
  int threads = 0;  // cpu: 0 = all cores
  bool per_chain = false;
  std::string per_chain_format = "csv";  // csv (per_chain.csv) or hdf5 (per_chain.h5, sim/io/per_chain_h5.h)
  bool progress = true;                  // progress bar on stderr (only if it is a terminal)
  int checkpoint_every = 0;              // generations between checkpoints; 0: none by count
  // Wall seconds between checkpoints, on rank 0's clock (it decides for every rank); 0: none by time. A run stopped
  // by a signal or a failed write checkpoints whatever these say.
  double checkpoint_seconds = 300.0;
  double max_memory = 0.0;  // bytes one process may use; 0: default_memory_budget
  bool resume = false;      // continue out_dir's run from its last checkpoint
};

struct RunResult {
  std::string out_dir;
  std::string backend;
  double wall_seconds = 0.0;
  std::size_t rows = 0;
  bool interrupted = false;         // stopped before the end (a signal, a failed write): see status
  std::string status = "complete";  // complete | interrupted (resumable) | failed (sim/io/run_folder.h)
  std::string reason;               // why it stopped early
};

// The plan of every sweep point for this job's ranks (ConfigError when a
// point cannot fit), for the smallest budget of any rank (a collective: every
// rank calls it). opt.backend must be resolved.
std::vector<PointPlan> plan_run(const Experiment& ex, const RunOptions& opt);

RunResult run_experiment(const Experiment& ex, const RunOptions& opt);

// The config as run (after --set): written to DIR/config.yaml, read back by
// resume; its hash ties checkpoints to it.
std::string config_text(const Experiment& ex);

// Asks a running experiment to stop at the next generation boundary after a checkpoint (async-signal-safe: for
// the SIGINT, SIGTERM and SIGHUP handlers); `signal` is named in the manifest's status_reason.
void request_stop(int signal);

}  // namespace ouro

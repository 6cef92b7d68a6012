// What every family's backend offers the loop (one batch of chains of one
// sweep point, resident on the backend for all generations), and which chains
// each of its workers ran (an OpenMP thread, a CUDA device), recorded in
// manifest.json so a reader can see how work was split.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ouro::kernels {

class StateArchive;  // kernels/core/state.h

struct WorkerRange {
  std::string worker;
  std::int64_t first_chain;  // global ids, inclusive
  std::int64_t last_chain;
  std::int64_t chains;
};

// Records that `worker` ran global chain `chain` (chains arrive in increasing
// order per worker, as under an OpenMP static schedule).
inline void note_chain(WorkerRange& w, const std::string& worker, std::int64_t chain) {
  if (w.chains == 0) {
    w.worker = worker;
    w.first_chain = chain;
  }
  w.last_chain = chain;
  ++w.chains;
}

class ChainBackend {
 public:
  virtual ~ChainBackend() = default;
  // Generation 0 (every chain is the truth); metrics as [metric][chain].
  virtual void start(double* h_metrics) = 0;
  // Fits generation `generation` (>= 1) of every chain from the previous one.
  virtual void advance(int generation, double* h_metrics) = 0;
  virtual std::vector<WorkerRange> workers() const = 0;
  // Saves, or restores into a backend built from the same spec on which
  // start() was not called, everything advance() needs to go on from the
  // last generation done (a checkpoint; kernels/core/state.h).
  virtual void state(StateArchive& ar) = 0;
  // The model sample of batch chain `chain` (0-based within the batch) at the last generation done (the truth's at
  // generation 0): `count` points of dimension point_dim(), drawn from the chain's model with the model-sample
  // streams (rng::kStreamModelSample, rng::kStreamModelChoice) of that generation, row-major into x. The points the
  // sample-based metrics compare with the held-out set, and the scatter of scripts/plot_collapse.py. A backend
  // whose family has no points in R^d returns false (the default).
  virtual bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) {
    (void)chain, (void)count, (void)x;
    return false;
  }
  virtual int point_dim() const { return 0; }
};

}  // namespace ouro::kernels

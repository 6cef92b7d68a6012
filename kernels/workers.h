// Which chains each worker of a backend ran (an OpenMP thread, a CUDA
// device), recorded in manifest.json so a reader can see how work was split.
#pragma once

#include <cstdint>
#include <string>

namespace ouro::kernels {

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

}  // namespace ouro::kernels

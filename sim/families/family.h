// The part of the one loop (sim/engine/run.cc) that differs between model families:
// each family names its metrics, gives their closed-form expectations where
// the literature has them, estimates its memory, and runs one sweep point's
// chains on a backend. The loop itself never looks at the family.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kernels/core/chain_backend.h"
#include "sim/engine/config.h"

namespace ouro {

// One sweep point's chains of one family, resident on one backend: the
// backends of the mixture and n-gram families are runs as they are; the
// Gaussian one is wrapped (its step carries the point's settings).
using FamilyRun = kernels::ChainBackend;

// The point's metric names, in metrics.csv order.
std::vector<std::string> metric_names(const PointConfig& c);

// E[metric at generation t] where a closed form is known, else nothing
// (the "theory" column; README, "Theory").
std::optional<double> theory(const PointConfig& c, int metric, int generation);

// Memory one sweep point needs (backend state, model history, scratch, the
// per-chain metric block), in bytes: checked against the machine before any
// work. (Splitting chains into batches that fit is planned; until then a
// point must fit whole.)
double estimate_point_bytes(const PointConfig& c);

// A block of a point's chains, global ids [first, first + count): what one
// MPI rank runs, or one memory batch of it. The ids key the random streams,
// so a chain's values do not depend on which block ran it.
struct ChainBlock {
  std::int64_t first = 0;
  std::int64_t count = 0;
};

// backend: "cpu" or "cuda" (resolved); threads: cpu OpenMP threads, 0 = all.
std::unique_ptr<FamilyRun> make_family_run(const PointConfig& c, const std::string& backend, int threads,
                                           ChainBlock block);

}  // namespace ouro

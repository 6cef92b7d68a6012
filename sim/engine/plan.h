// Memory planning: how a sweep point's chains are split across the ranks of
// a run and, on each rank, into batches that fit the memory it may use.
//
// A batch is resident on the backend for all of its generations; batches run
// one after another, so the backend's memory is fixed + per_chain * batch.
// With one batch per rank, each generation's values are summarised as soon
// as they exist; with more, rank 0 keeps every chain's values of every
// generation of the point (table_bytes, host memory) until the last batch
// has produced them. Every rank runs the same number of batches, so ranks
// meet at each (batch, generation) and send their values to rank 0 at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/engine/config.h"
#include "sim/families/family.h"

namespace ouro {

struct PointPlan {
  std::int64_t chains = 0;
  std::vector<ChainBlock> ranks;  // each rank's chains (contiguous, balanced)
  std::int64_t batch = 0;         // chains per batch (the last may hold fewer)
  int batches = 1;                // per rank
  double fixed_bytes = 0.0;       // backend memory independent of the chain count
  double chain_bytes = 0.0;       // backend memory per resident chain
  double table_bytes = 0.0;       // rank 0: the per-chain values it keeps
  double budget = 0.0;            // what one process may use
  // Rank r's batch b (count 0 when the rank has fewer chains than that).
  ChainBlock block(int rank, int b) const;
};

// Throws ConfigError (path "chains") when not even one chain per batch fits,
// or (device memory) when rank 0's values do not fit host_bytes.
PointPlan plan_point(const PointConfig& c, int ranks, double budget_bytes, bool device_memory, double host_bytes,
                     double root_bytes = 0.0);

// What one process may use by default: the device's free memory (cuda), or
// the host's available memory shared by the ranks on this node (cpu); 80% of
// either, leaving room for what the estimate does not see.
double default_memory_budget(const std::string& backend, int ranks_on_node);

// "8G", "512M", "1.5GiB", "2e9", "4096K" -> bytes (K, M, G, T are powers of
// 1024 with or without "iB"). Throws std::invalid_argument naming the text.
double parse_bytes(const std::string& text);

std::string format_bytes(double bytes);

}  // namespace ouro

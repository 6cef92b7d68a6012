#include "sim/engine/plan.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "sim/parallel/backend.h"

namespace ouro {

ChainBlock PointPlan::block(int rank, int b) const {
  const ChainBlock& r = ranks[rank];
  const std::int64_t first = static_cast<std::int64_t>(b) * batch;
  const std::int64_t count = std::max<std::int64_t>(0, std::min(batch, r.count - first));
  return ChainBlock{r.first + std::min(first, r.count), count};
}

PointPlan plan_point(const PointConfig& c, int ranks, double budget_bytes, bool device_memory, double host_bytes,
                     double root_bytes) {
  PointPlan p;
  p.chains = c.chains;
  p.budget = budget_bytes;
  // Chains split as evenly as possible, the first ranks taking one more.
  for (int r = 0; r < ranks; ++r) {
    const std::int64_t base = c.chains / ranks, extra = c.chains % ranks;
    const std::int64_t first = r * base + std::min<std::int64_t>(r, extra);
    p.ranks.push_back(ChainBlock{first, base + (r < extra ? 1 : 0)});
  }
  // The estimates are linear in the chain count.
  PointConfig one = c, two = c;
  one.chains = 1;
  two.chains = 2;
  const double e1 = estimate_point_bytes(one), e2 = estimate_point_bytes(two);
  p.chain_bytes = e2 - e1;
  p.fixed_bytes = e1 - p.chain_bytes;
  const std::int64_t most = p.ranks.front().count;  // the largest rank's chains
  const double values = static_cast<double>(metric_names(c).size()) * static_cast<double>(c.chains) * 8.0;
  // On the cpu backend the table shares the host memory with the chains.
  auto fits = [&](std::int64_t batch, double table) {
    return p.fixed_bytes + p.chain_bytes * static_cast<double>(batch) + (device_memory ? 0.0 : table) <= budget_bytes;
  };
  p.batch = std::max<std::int64_t>(most, 1);
  p.batches = 1;
  p.table_bytes = 2.0 * values + root_bytes;  // one generation, and its gathered copy
  // Rank 0's values live in host memory; on the cpu backend fits() counts them.
  auto check_host = [&] {
    if (device_memory && p.table_bytes > host_bytes)
      throw ConfigError("chains", fmt::format("the per-chain values rank 0 keeps in host memory (every generation's "
                                              "when chains run in batches, and the early-warning detectors' view) "
                                              "need {}, more than the {} of host memory this process may use; lower "
                                              "chains or generations",
                                              format_bytes(p.table_bytes), format_bytes(host_bytes)));
  };
  if (fits(p.batch, p.table_bytes)) {
    check_host();
    return p;
  }
  p.table_bytes = values * (c.generations + 1.0) + values + root_bytes;
  const double room = budget_bytes - p.fixed_bytes - (device_memory ? 0.0 : p.table_bytes);
  const auto batch = static_cast<std::int64_t>(std::floor(room / std::max(p.chain_bytes, 1.0)));
  if (batch < 1)
    throw ConfigError("chains", fmt::format("a batch of even one chain of this point needs {} of memory, plus {} for "
                                            "every chain's values of every generation (rank 0 keeps them when chains "
                                            "run in batches): more than the {} this process may use; raise "
                                            "--max-memory, or lower chains, data.samples or generations",
                                            format_bytes(p.fixed_bytes + p.chain_bytes), format_bytes(p.table_bytes),
                                            format_bytes(budget_bytes)));
  p.batches = static_cast<int>((most + batch - 1) / batch);
  p.batch = (most + p.batches - 1) / p.batches;  // balanced batches
  check_host();
  return p;
}

double default_memory_budget(const std::string& backend, int ranks_on_node) {
  if (backend == "cuda") return 0.8 * cuda_free_bytes();
  double available = 0.0;
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  double kib = 0.0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") available = kib * 1024.0;
  if (available <= 0.0)
    available = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  return 0.8 * available / std::max(ranks_on_node, 1);
}

double parse_bytes(const std::string& text) {
  std::size_t pos = 0;
  double v = 0.0;
  try {
    v = std::stod(text, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  std::string unit = text.substr(pos);
  unit.erase(std::remove_if(unit.begin(), unit.end(), [](unsigned char ch) { return std::isspace(ch); }), unit.end());
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (unit.size() == 3 && unit.substr(1) == "IB") unit = unit.substr(0, 1);
  if (unit == "B") unit.clear();
  double scale = 0.0;
  if (unit.empty()) scale = 1.0;
  else if (unit == "K") scale = 1024.0;
  else if (unit == "M") scale = 1024.0 * 1024.0;
  else if (unit == "G") scale = 1024.0 * 1024.0 * 1024.0;
  else if (unit == "T") scale = 1024.0 * 1024.0 * 1024.0 * 1024.0;
  if (pos == 0 || scale == 0.0 || !(v > 0.0) || !std::isfinite(v))
    throw std::invalid_argument(
        fmt::format("--max-memory: expected a positive size such as 8G, 512M or 2e9, got "
                    "\"{}\"",
                    text));
  return v * scale;
}

std::string format_bytes(double b) {
  if (b >= 1024.0 * 1024.0 * 1024.0) return fmt::format("{:.2f} GiB", b / (1024.0 * 1024.0 * 1024.0));
  if (b >= 1024.0 * 1024.0) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024.0));
  return fmt::format("{:.0f} KiB", b / 1024.0);
}

}  // namespace ouro

// `ouroboros run --dry-run`: the plan of every sweep point (batches, memory) and a runtime estimate from a short
// calibration on this process, within a bounded time and memory (kDryRunSeconds, kDryRunBytes) whatever the config.
#pragma once

#include <string>
#include <vector>

#include "sim/engine/config.h"
#include "sim/engine/plan.h"
#include "sim/engine/run.h"

namespace ouro {

inline constexpr double kDryRunSeconds = 4.0;                // the calibrations of every point together
inline constexpr double kDryRunBytes = 192.0 * 1024 * 1024;  // what one calibration may plan to use

// The plan and estimate as printed. opt.backend must be resolved.
std::string dry_run_report(const Experiment& ex, const std::vector<PointPlan>& plans, const RunOptions& opt, int ranks);

}  // namespace ouro

// Early warning of collapse (README, "Early warning"): detectors that see
// only what a practitioner sees -- statistics of the generations' own samples
// and models, and a small fixed real validation set, never the truth -- fire
// when their statistic has moved a threshold away from a baseline. The
// threshold of each detector is calibrated on one share of a point's chains
// (which have their own random streams: separate seeds in effect) to a target
// false-alarm rate, and judged on the other share against each chain's true
// collapse generation (the first generation t >= 1 -- generation 0 is the
// truth -- at which that chain's summary.metric is at or beyond
// summary.threshold). A chain whose statistic has no finite value at
// generation 1 (a failed fit) cannot be watched: it is left out of both sides
// and counted as unobserved.
//
// The run ends at generation G: a chain that has not collapsed by then counts
// as never collapsing, so an alarm in its last `horizon` generations counts as
// false even if the collapse would have come just after. Run well past the
// collapses of interest.
//
// Definitions, per evaluation chain i with collapse generation c_i (or none)
// and first alarm a_i (or none):
//   false alarm  a_i exists and (c_i is none, or a_i < c_i - horizon)
//   timely       c_i exists and c_i - horizon <= a_i <= c_i
//   late         c_i exists and a_i > c_i
//   miss         c_i exists and no alarm within the run
//   lead         c_i - a_i where both exist (negative: a lag)
// false_alarm_rate is over all evaluation chains; timely, late and miss rates
// are over the evaluation chains that collapse.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "sim/analysis/summary.h"
#include "sim/engine/config.h"

namespace ouro {

// (Each family's detectors, DetectorSpec, are rows of the family table:
// sim/families/family.h.)

// The detectors an experiment asked for (early_warning.detectors), in that
// order; every detector of the point's family when it named none.
std::vector<DetectorSpec> chosen_detectors(const PointConfig& c, const EarlyWarningSettings& s);

// One detector's outcome at one sweep point.
struct DetectorResult {
  DetectorSpec spec;
  double threshold = 0.0;  // the calibrated score threshold (meaningful when fires)
  bool fires = true;       // false: no threshold met the target; the detector never fires
  double calibration_false_alarm = 0.0;
  std::int64_t calibration_chains = 0, evaluation_chains = 0, collapsed = 0;
  std::int64_t unobserved = 0;  // chains left out of both sides (no finite generation-1 statistic)
  std::int64_t false_alarms = 0, timely = 0, late = 0, misses = 0;
  std::vector<double> leads;      // c_i - a_i over evaluation chains with both
  std::vector<double> alarms;     // a_i over evaluation chains with an alarm
  std::vector<double> collapses;  // c_i over evaluation chains that collapse
};

// Collects one point's chains generation by generation (rank 0) and evaluates
// the detectors once the last generation is in.
class EarlyWarningTracker {
 public:
  // metric_index[k]: the column of detector k's metric in the point's metric
  // block; summary_index: that of summary.metric.
  EarlyWarningTracker(const EarlyWarningSettings& s, std::vector<DetectorSpec> detectors, std::vector<int> metric_index,
                      int summary_index, Direction dir, double threshold, std::int64_t chains, int generations);
  // Generation g's values of every metric, [metric][chain].
  void add(int g, const double* values);
  // Saved in checkpoints, so a resumed run evaluates the same.
  void archive(kernels::StateArchive& ar);
  std::vector<DetectorResult> evaluate() const;

  // Bytes the tracker holds for a point (for the memory check).
  static double bytes(std::int64_t chains, int generations, int detectors);

 private:
  EarlyWarningSettings s_;
  std::vector<DetectorSpec> det_;
  std::vector<int> index_;
  int summary_index_;
  Direction dir_;
  double threshold_;
  std::int64_t chains_;
  int generations_;
  std::vector<std::int32_t> collapse_;   // [chain], -1 until it collapses
  std::vector<double> ref_;              // [detector][chain], f(x) at the baseline
  std::vector<unsigned char> observed_;  // [detector][chain], 1 when generation 1's f(x) is finite
  // [detector][chain][generation]: the running maximum of the score up to g
  // (-inf before the first score), so the first alarm at a threshold is a
  // binary search.
  std::vector<double> runmax_;
};

// early_warning.csv: one row per sweep point and detector (columns in README).
std::vector<std::string> early_warning_header(const std::vector<std::string>& axis_paths);
std::vector<std::string> early_warning_row(const std::vector<std::string>& labels, std::size_t point,
                                           const EarlyWarningSettings& s, const DetectorResult& r,
                                           std::optional<int> collapse_generation);

// Wilson's 95% interval for k successes in n trials (Wilson 1927).
void wilson95(std::int64_t k, std::int64_t n, double& lo, double& hi);

}  // namespace ouro

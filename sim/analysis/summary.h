// Per sweep point, one number-line summary of a collapse curve (summary.csv)
// and the per-chain values that let two points be compared chain by chain
// (summary_chains.csv): sweep points share their random streams (common
// random numbers), so chain i of one strategy and chain i of another saw the
// same draws up to where the strategies differ, and their difference has a
// paired interval far narrower than the two intervals side by side.
//
// Definitions (README, "Summaries and the report"):
//   collapse_generation  the first generation g at which the mean over
//                        chains of summary.metric is at or beyond
//                        summary.threshold in the metric's collapse
//                        direction (<= for a metric that shrinks under
//                        collapse, >= for one that grows); empty if never
//   last                 the metric at the last generation: mean and its
//                        95% interval mean +- 1.96 se
//   auc                  per chain, the area under the metric's curve over
//                        generations 0..G (trapezoid rule, unit spacing);
//                        its mean and 95% interval
//   real_samples         real samples each chain drew over the run (tokens
//                        for n-grams, as configured)
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "sim/analysis/aggregate.h"
#include "sim/engine/config.h"

namespace ouro {

// (A metric's collapse direction, and whether it is a ratio to the truth's
// own value, are the family table's: sim/families/family.h.)

// Real samples one chain draws over the run under the point's regime.
double real_samples_per_chain(const PointConfig& c);

// Accumulates one point's summary as its generations arrive in order.
class PointSummary {
 public:
  PointSummary(int metric, Direction dir, double threshold, std::int64_t chains);
  // Generation g's values of every chain ([chain], the summary metric only)
  // and their aggregate.
  void add(int g, const double* values, const Summary& s);
  // Saved in checkpoints, so a resumed run writes the same summary.
  void archive(kernels::StateArchive& ar);

  int metric() const { return metric_; }
  double threshold() const { return threshold_; }
  std::optional<int> collapse_generation() const;
  const Summary& last() const { return last_; }
  const std::vector<double>& chain_last() const { return prev_; }
  const std::vector<double>& chain_auc() const { return auc_; }

 private:
  int metric_;
  Direction dir_;
  double threshold_;
  int collapsed_ = -1;
  int generations_ = 0;
  Summary last_{};
  std::vector<double> prev_, auc_;
};

// The 95% interval of a mean (mean +- 1.96 se); of nothing when se is not finite.
struct Interval {
  double mean, lo, hi;
  std::int64_t n;
};
Interval interval95(const Summary& s);
// The mean difference a[i] - b[i] over the chains where both are finite
// (paired), with its 95% interval.
Interval paired_difference(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace ouro

// `ouroboros report DIR`: DIR/report.md, the sweep points of a finished run
// ranked by their summary metric at the last generation, each with its
// collapse generation, area under the curve, real data used and its paired
// difference from the best point (sim/analysis/summary.h), and the run's plots.
#pragma once

#include <stdexcept>
#include <string>

namespace ouro {

class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes DIR/report.md and returns its text; ReportError when DIR is not a
// complete run with summaries.
std::string write_report(const std::string& dir);

}  // namespace ouro

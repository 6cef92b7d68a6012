// `ouroboros report DIR`: DIR/report.md, the sweep points of a finished run
// ranked by their summary metric at the last generation, each with its
// collapse generation, area under the curve, real data used and its paired
// difference from the best point (sim/analysis/summary.h), and the run's plots.
//
// Every file the report reads is checked before anything is ranked: each is a
// regular file, each CSV has the header its writer writes and every row as
// many fields, every number reads back whole (empty, inf and -inf only where
// the writer writes them, sim/io/output.h's number()), summary.csv has one row
// per sweep point of manifest.json and summary_chains.csv one per chain of
// each, and the manifest says the run is complete.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace ouro {

// DIR is not a run folder (no such folder, or no manifest.json in it): the
// argument is wrong.
class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// DIR is a run folder the report cannot use: the run is not complete, or a
// file is missing, cut short or damaged. The message names the file, the line
// and what was expected there.
class RunFolderError : public ReportError {
 public:
  using ReportError::ReportError;
};

// The files of a run folder the report reads, as text.
struct RunFolderText {
  std::string dir;                           // the folder, for messages and as the title when the config has no name
  std::string manifest;                      // manifest.json
  std::string summary;                       // summary.csv
  std::string summary_chains;                // summary_chains.csv
  std::optional<std::string> early_warning;  // early_warning.csv, when the folder has one (read when the run's
                                             // config has an early_warning section)
  bool has_plot = false;                     // collapse.png is there
};

// DIR's files (regular files only: each is checked before it is opened, so a
// folder, FIFO or device in a file's place is refused, never read).
RunFolderText read_run_folder(const std::string& dir);

// The report's text from a run folder's files, every file checked first
// (RunFolderError when one is damaged).
std::string report_markdown(const RunFolderText& run);

// Writes DIR/report.md (a temporary file renamed into place) and returns its
// text.
std::string write_report(const std::string& dir);

}  // namespace ouro

// The report's inputs (sim/analysis/report.h): a run folder's files read, and every one checked against its
// writer's format and manifest.json before anything is ranked; a damaged file is a RunFolderError naming the file,
// the line and what was expected there. The checked run is what report.cc ranks and writes; these types are its
// own, not part of the report's API.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "sim/analysis/report.h"

namespace ouro {
namespace report_detail {

// Throws RunFolderError(what).
[[noreturn]] void damaged(const std::string& what);

// ---- CSV as CsvWriter writes it (sim/io/output.h) -------------------------------------------------------------

struct Row {
  std::size_t line;  // where the row starts in its file (the header is line 1)
  std::vector<std::string> fields;
};

struct Table {
  std::string file;
  std::vector<std::string> header;
  std::vector<Row> rows;
  int column(const std::string& name) const {
    return static_cast<int>(std::find(header.begin(), header.end(), name) - header.begin());
  }
};

// ---- manifest.json ---------------------------------------------------------------------------------------------

struct ManifestPoint {
  std::int64_t chains;
  std::optional<std::map<std::string, std::string>> labels;  // its swept keys' values, when the manifest lists them
};

struct Manifest {
  std::string name, backend, version;
  std::vector<ManifestPoint> points;
  bool early_warning = false;  // the config has an early_warning section
};

// ---- the run, checked --------------------------------------------------------------------------------------------

struct Point {
  const Row* row = nullptr;  // its summary.csv row
  std::vector<double> last;  // every chain's last value, in chain order
};

struct Run {
  Manifest manifest;
  Table summary;
  std::vector<std::string> axes;
  std::vector<Point> points;  // by point index
  std::optional<Table> early;
};

// manifest.json, summary.csv, summary_chains.csv and (when the run's config has an early_warning section)
// early_warning.csv, each checked and all checked against each other; RunFolderError at the first damage.
Run check_run(const RunFolderText& in);

}  // namespace report_detail
}  // namespace ouro

// What a run writes: metrics.csv (tidy, one row per sweep point x generation x
// metric, appended and flushed as generations finish), optionally
// per_chain.csv, and manifest.json (provenance).
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "sim/analysis/aggregate.h"

namespace ouro {

// A write that failed: the file, the call and errno (ENOSPC for a full disk).
class WriteError : public std::runtime_error {
 public:
  WriteError(const std::string& what, int err) : std::runtime_error(what), err_(err) {}
  int error() const { return err_; }
  bool disk_full() const;  // ENOSPC or EDQUOT

 private:
  int err_;
};

// A CSV file that is flushed after every block of rows, so an interrupted run keeps every generation it finished.
// Every failed write is a WriteError. mark() records the length of the last whole block (a generation's rows);
// rollback() cuts the file back to it, removing a half-written block after a failure.
class CsvWriter {
 public:
  CsvWriter(const std::string& path, const std::vector<std::string>& header);
  // Continues a file written by an earlier process (a resumed run): cut back to its first `bytes` bytes (what that
  // process had flushed at its last checkpoint), then appended to.
  CsvWriter(const std::string& path, std::uint64_t bytes);
  ~CsvWriter();
  CsvWriter(const CsvWriter&) = delete;
  CsvWriter& operator=(const CsvWriter&) = delete;
  void row(const std::vector<std::string>& fields);
  void flush();
  std::uint64_t bytes() const;  // written so far (after flush(): in the file)
  // flush(), then fsync: on disk before a checkpoint records the length.
  void sync();
  // flush(), then the length is the end of a whole block.
  void mark();
  std::uint64_t marked() const { return mark_; }
  // The file cut back to the last mark (what was buffered or half-written after it dropped), open to append.
  void rollback();

 private:
  void open_append();
  std::FILE* f_ = nullptr;
  std::string path_;
  std::uint64_t mark_ = 0;
};

// Fault injection for the tests (tests/sim/engine/test_run_folder.cc), from the environment: OUROBOROS_FAULT=
// enospc@N makes the tables' writes (CsvWriter) fail with ENOSPC once this process has written N bytes through
// them, the last row half-written; enospc-all@N makes checkpoints' writes fail too from then on. Unset: never.
bool injected_disk_full(std::uint64_t more_bytes);  // counts the bytes; true when this write must fail
bool injected_disk_full_everywhere();               // enospc-all, once the tables' writes have failed

// Shortest text that reads back as the same double; "" for NaN, inf/-inf.
std::string number(double v);
std::string number(std::optional<double> v);

std::vector<std::string> metrics_header(const std::vector<std::string>& axis_paths);
std::vector<std::string> metrics_row(const std::vector<std::string>& labels, int generation, const std::string& metric,
                                     const Summary& s, std::optional<double> theory);

// summary.csv (sim/analysis/summary.h): one row per sweep point.
class PointSummary;
std::vector<std::string> summary_header(const std::vector<std::string>& axis_paths);
std::vector<std::string> summary_row(const std::vector<std::string>& labels, std::size_t point,
                                     const std::string& metric, const PointSummary& s, double real_samples,
                                     int generations);

// A YAML tree as JSON (the config in manifest.json): numbers as numbers (integers when written without a point or
// exponent), everything else as text.
nlohmann::json yaml_to_json(const YAML::Node& n);

// Writes JSON to path atomically (temporary file, then rename).
void write_json_atomic(const std::string& path, const nlohmann::json& j);

}  // namespace ouro

#include "sim/io/output.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

#include "sim/analysis/summary.h"

namespace ouro {

namespace {

// OUROBOROS_FAULT=enospc@N or enospc-all@N (sim/io/output.h).
struct DiskFault {
  std::uint64_t limit = 0;
  bool armed = false, everywhere = false, tripped = false;
  std::uint64_t written = 0;
  DiskFault() {
    const char* f = std::getenv("OUROBOROS_FAULT");
    if (!f) return;
    const std::string spec = f;
    for (const char* kind : {"enospc-all@", "enospc@"}) {
      const std::string k = kind;
      if (spec.compare(0, k.size(), k) == 0) {
        armed = true;
        everywhere = k == "enospc-all@";
        limit = std::strtoull(spec.c_str() + k.size(), nullptr, 10);
        return;
      }
    }
  }
};

DiskFault& disk_fault() {
  static DiskFault f;
  return f;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

bool injected_disk_full(std::uint64_t more_bytes) {
  DiskFault& f = disk_fault();
  if (!f.armed) return false;
  if (f.tripped || f.written + more_bytes > f.limit) return f.tripped = true;
  f.written += more_bytes;
  return false;
}

bool injected_disk_full_everywhere() {
  const DiskFault& f = disk_fault();
  return f.armed && f.everywhere && f.tripped;
}

bool WriteError::disk_full() const { return err_ == ENOSPC || err_ == EDQUOT; }

CsvWriter::CsvWriter(const std::string& path, const std::vector<std::string>& header) : path_(path) {
  f_ = std::fopen(path.c_str(), "w");
  if (!f_) throw WriteError(fmt::format("cannot write {}: {}", path, errno_text(errno)), errno);
  row(header);
  mark();
}

CsvWriter::CsvWriter(const std::string& path, std::uint64_t bytes) : path_(path), mark_(bytes) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size < bytes)
    throw std::runtime_error(
        fmt::format("{} is shorter than its checkpoint says ({} of {} bytes)", path, ec ? 0 : size, bytes));
  open_append();
}

// Cut to mark_, then open to append.
void CsvWriter::open_append() {
  if (::truncate(path_.c_str(), static_cast<off_t>(mark_)) != 0)
    throw WriteError(fmt::format("cannot cut {} back to {} bytes: {}", path_, mark_, errno_text(errno)), errno);
  f_ = std::fopen(path_.c_str(), "ab");
  if (!f_) throw WriteError(fmt::format("cannot write {}: {}", path_, errno_text(errno)), errno);
}

void CsvWriter::sync() {
  flush();
  if (::fsync(fileno(f_)) != 0)
    throw WriteError(fmt::format("fsync of {} failed: {}", path_, errno_text(errno)), errno);
}

std::uint64_t CsvWriter::bytes() const {
  const long at = std::ftell(f_);
  if (at < 0) throw std::runtime_error(fmt::format("cannot tell the size of {}", path_));
  return static_cast<std::uint64_t>(at);
}

void CsvWriter::mark() {
  flush();
  mark_ = bytes();
}

void CsvWriter::rollback() {
  if (f_) std::fclose(f_);  // what it could not flush is dropped with it
  f_ = nullptr;
  open_append();
}

CsvWriter::~CsvWriter() {
  if (f_) std::fclose(f_);
}

void CsvWriter::row(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) line += ',';
    const std::string& v = fields[i];
    if (v.find_first_of(",\"\n") != std::string::npos) {
      line += '"';
      for (char c : v) line += (c == '"') ? std::string("\"\"") : std::string(1, c);
      line += '"';
    } else {
      line += v;
    }
  }
  line += '\n';
  if (injected_disk_full(line.size())) {  // half the row reaches the file, as on a disk that filled up
    std::fwrite(line.data(), 1, line.size() / 2, f_);
    std::fflush(f_);
    throw WriteError(fmt::format("write to {} failed: {}", path_, errno_text(ENOSPC)), ENOSPC);
  }
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size())
    throw WriteError(fmt::format("write to {} failed: {}", path_, errno_text(errno)), errno);
}

void CsvWriter::flush() {
  if (std::fflush(f_) != 0) throw WriteError(fmt::format("flush of {} failed: {}", path_, errno_text(errno)), errno);
}

// NaN (no value: no chains, or a spread of infinities) is an empty cell;
// infinities are written as inf / -inf.
std::string number(double v) {
  if (std::isnan(v)) return {};
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}
std::string number(std::optional<double> v) { return v ? number(*v) : std::string(); }

std::vector<std::string> metrics_header(const std::vector<std::string>& axis_paths) {
  std::vector<std::string> h = axis_paths;
  for (const char* c :
       {"generation", "metric", "mean", "se", "std", "q05", "q50", "q95", "chains", "degenerate_chains", "theory"})
    h.emplace_back(c);
  return h;
}

std::vector<std::string> metrics_row(const std::vector<std::string>& labels, int generation, const std::string& metric,
                                     const Summary& s, std::optional<double> theory) {
  std::vector<std::string> r = labels;
  r.push_back(std::to_string(generation));
  r.push_back(metric);
  for (double v : {s.mean, s.se, s.std, s.q05, s.q50, s.q95}) r.push_back(number(v));
  r.push_back(std::to_string(s.chains));
  r.push_back(std::to_string(s.degenerate));
  r.push_back(number(theory));
  return r;
}

std::vector<std::string> summary_header(const std::vector<std::string>& axis_paths) {
  std::vector<std::string> h = axis_paths;
  for (const char* c :
       {"point", "metric", "direction", "threshold", "generations", "collapse_generation", "last_mean", "last_lo",
        "last_hi", "auc_mean", "auc_lo", "auc_hi", "chains", "degenerate_chains", "real_samples"})
    h.emplace_back(c);
  return h;
}

std::vector<std::string> summary_row(const std::vector<std::string>& labels, std::size_t point,
                                     const std::string& metric, const PointSummary& s, double real_samples,
                                     int generations) {
  std::vector<double> auc = s.chain_auc();
  std::vector<double> scratch;
  const Interval last = interval95(s.last());
  const Summary a = summarize(auc.data(), static_cast<std::int64_t>(auc.size()), scratch);
  const Interval area = interval95(a);
  std::vector<std::string> r = labels;
  r.push_back(std::to_string(point));
  r.push_back(metric);
  r.push_back(direction_name(collapse_direction(metric)));
  r.push_back(number(s.threshold()));
  r.push_back(std::to_string(generations));
  const auto cg = s.collapse_generation();
  r.push_back(cg ? std::to_string(*cg) : std::string());
  for (double v : {last.mean, last.lo, last.hi, area.mean, area.lo, area.hi}) r.push_back(number(v));
  r.push_back(std::to_string(s.last().chains));
  r.push_back(std::to_string(s.last().degenerate));
  r.push_back(number(real_samples));
  return r;
}

void write_json_atomic(const std::string& path, const nlohmann::json& j) {
  const std::string tmp = path + ".tmp";
  {
    if (injected_disk_full_everywhere())
      throw WriteError(fmt::format("cannot write {}: {}", tmp, errno_text(ENOSPC)), ENOSPC);
    std::ofstream f(tmp);
    if (!f) throw WriteError(fmt::format("cannot write {}: {}", tmp, errno_text(errno)), errno);
    f << j.dump(2) << '\n';
    f.close();
    if (!f) throw WriteError(fmt::format("write to {} failed: {}", tmp, errno_text(errno)), errno);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw WriteError(fmt::format("cannot rename {} to {}: {}", tmp, path, errno_text(errno)), errno);
}

nlohmann::json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& v : n) j.push_back(yaml_to_json(v));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      try {
        std::size_t pos = 0;
        const double v = std::stod(s, &pos);
        if (pos == s.size()) {
          if (s.find_first_of(".eE") == std::string::npos) return nlohmann::json(static_cast<long long>(v));
          return nlohmann::json(v);
        }
      } catch (...) {
      }
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace ouro

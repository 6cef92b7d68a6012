#include "sim/analysis/report_inputs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sim/analysis/early_warning.h"
#include "sim/io/output.h"

namespace ouro {
namespace report_detail {

[[noreturn]] void damaged(const std::string& what) { throw RunFolderError(what); }

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Text from a file as a message shows it: quoted, cut at `max` characters,
// quotes, backslashes and bytes outside printable ASCII as \xNN.
std::string shown(const std::string& s, std::size_t max = 40) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < max; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out + (s.size() > max ? "...\"" : "\"");
}

// ---- the files: regular files only, checked before they are opened ------------------------------------------

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// The whole of a regular file; nullopt when it does not exist. A folder, FIFO
// or device in its place is refused before it is opened (a FIFO would block
// the read, a device never end it), and checked again on the open descriptor.
std::optional<std::string> read_regular(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::nullopt;
    damaged(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  auto not_regular = [&](mode_t mode) {
    damaged(fmt::format("{} is {}, not a regular file: the run folder is damaged", path, file_kind(mode)));
  };
  if (!S_ISREG(st.st_mode)) not_regular(st.st_mode);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) damaged(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  std::string text;
  const auto fail = [&](const std::string& what) {
    ::close(fd);
    damaged(what);
  };
  if (::fstat(fd, &st) != 0) fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    not_regular(st.st_mode);
  }
  char buf[1 << 16];
  for (;;) {
    const ssize_t k = ::read(fd, buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    if (k == 0) break;
    text.append(buf, static_cast<std::size_t>(k));
  }
  ::close(fd);
  return text;
}

std::string read_required(const std::string& path) {
  auto text = read_regular(path);
  if (!text) damaged(fmt::format("{} is missing: the run folder is damaged", path));
  return std::move(*text);
}

// ---- CSV as CsvWriter writes it (sim/io/output.h) -------------------------------------------------------------

// Every line ends with a newline (a last line without one was cut short); a
// field with a comma, quote or newline is quoted with its quotes doubled, and
// no other field holds a quote; every row has the header's number of fields.
Table parse_csv(const std::string& text, const std::string& file) {
  if (text.empty()) damaged(fmt::format("{} is empty (expected a header line, then a row per line)", file));
  Table t{file, {}, {}};
  enum class At { kStart, kPlain, kQuoted, kClosed } at = At::kStart;
  std::vector<std::string> fields;
  std::string field;
  std::size_t line = 1, start = 1;
  bool header = true;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (at == At::kQuoted) {
      if (c != '"') {
        line += c == '\n';
        field += c;
      } else if (i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else {
        at = At::kClosed;
      }
    } else if (c == ',' || c == '\n') {
      fields.push_back(std::move(field));
      field.clear();
      at = At::kStart;
      if (c == ',') continue;
      if (header) {
        t.header = std::move(fields);
        header = false;
      } else {
        if (fields.size() != t.header.size())
          damaged(fmt::format("{} line {}: {} fields, expected {} (one per column of the header)", file, start,
                              fields.size(), t.header.size()));
        t.rows.push_back(Row{start, std::move(fields)});
      }
      fields.clear();
      start = ++line;
    } else if (at == At::kClosed) {
      damaged(fmt::format("{} line {}: {} after a quoted field (expected a comma or the end of the line)", file, line,
                          shown(std::string(1, c))));
    } else if (c == '"') {
      if (at == At::kPlain) damaged(fmt::format("{} line {}: a quote inside an unquoted field", file, line));
      at = At::kQuoted;
    } else {
      field += c;
      at = At::kPlain;
    }
  }
  if (at == At::kQuoted)
    damaged(fmt::format("{} line {}: a quoted field is never closed (the file is cut short)", file, start));
  if (at != At::kStart || !fields.empty())
    damaged(fmt::format("{} line {}: cut short (the last line has no end of line)", file, line));
  return t;
}

// The header: the swept keys (the columns before `tail`'s first), then
// exactly `tail`. Returns the swept keys.
std::vector<std::string> check_header(const Table& t, const std::vector<std::string>& tail) {
  const auto at = std::find(t.header.begin(), t.header.end(), tail.front());
  if (at == t.header.end() || !std::equal(at, t.header.end(), tail.begin(), tail.end())) {
    std::string got;
    for (const auto& h : t.header) got += (got.empty() ? "" : ",") + h;
    damaged(fmt::format("{} line 1: the header is {}; expected the swept keys, then {}", t.file, shown(got, 300),
                        fmt::join(tail, ",")));
  }
  std::vector<std::string> axes(t.header.begin(), at);
  for (std::size_t a = 0; a < axes.size(); ++a)
    if (axes[a].empty() || std::find(axes.begin(), axes.begin() + a, axes[a]) != axes.begin() + a)
      damaged(fmt::format("{} line 1: column {} is {} (expected a swept key, each once)", t.file, a + 1,
                          axes[a].empty() ? "empty" : "a repeated " + shown(axes[a])));
  return axes;
}

// One row's fields, read as the writer writes them.
struct Fields {
  const Table& t;
  const Row& r;

  const std::string& text(int c) const { return r.fields[static_cast<std::size_t>(c)]; }
  [[noreturn]] void bad(int c, const std::string& expected) const {
    damaged(fmt::format("{} line {}, column {}: {}, expected {}", t.file, r.line, t.header[static_cast<std::size_t>(c)],
                        shown(text(c)), expected));
  }
  // A decimal as fmt writes a double: digits, a point, an exponent (no
  // spaces, no + sign, no hex, no nan or inf spelled out).
  static bool decimal(const std::string& s, double& v) {
    if (s.empty() || s.find_first_not_of("0123456789.eE+-") != std::string::npos) return false;
    const char* end = s.data() + s.size();
    const auto res = std::from_chars(s.data(), end, v);
    return res.ec == std::errc() && res.ptr == end && std::isfinite(v);
  }
  // A number as number() writes it (sim/io/output.h): empty for no value
  // (NaN), inf, -inf, or a decimal.
  double value(int c) const {
    const std::string& s = text(c);
    if (s.empty()) return kNaN;
    if (s == "inf") return kInf;
    if (s == "-inf") return -kInf;
    double v;
    if (!decimal(s, v)) bad(c, "a number, inf, -inf or nothing");
    return v;
  }
  double finite(int c, double lo = -kInf) const {
    double v;
    if (!decimal(text(c), v) || v < lo) bad(c, lo == -kInf ? "a number" : fmt::format("a number at least {}", lo));
    return v;
  }
  // A count or index as std::to_string writes it: digits only; `why` says
  // where its bounds come from.
  long long integer(int c, long long lo, long long hi, const std::string& why = "") const {
    const std::string& s = text(c);
    long long v = -1;
    if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
      const auto res = std::from_chars(s.data(), s.data() + s.size(), v);
      if (res.ec != std::errc() || res.ptr != s.data() + s.size()) v = -1;
    }
    if (v < lo || v > hi) bad(c, fmt::format("a whole number from {} to {}{}", lo, hi, why));
    return v;
  }
  std::optional<long long> optional_integer(int c, long long lo, long long hi, const std::string& why = "") const {
    if (text(c).empty()) return std::nullopt;
    return integer(c, lo, hi, why);
  }
  const std::string& word(int c, std::initializer_list<const char*> allowed) const {
    for (const char* a : allowed)
      if (text(c) == a) return text(c);
    std::string list;
    for (const char* a : allowed) list += fmt::format("{}{}", list.empty() ? "" : " or ", a);
    bad(c, list);
  }
  const std::string& nonempty(int c) const {
    if (text(c).empty()) bad(c, "a name");
    return text(c);
  }
};

// ---- manifest.json ---------------------------------------------------------------------------------------------

std::string json_text(const nlohmann::json& j, const char* key, const std::string& fallback) {
  const auto it = j.find(key);
  if (it == j.end()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return fallback;
}

// A positive integer under key, or 0.
std::int64_t json_count(const nlohmann::json* j, const char* key) {
  if (j == nullptr) return 0;
  const auto it = j->find(key);
  if (it == j->end()) return 0;
  if (it->is_number_unsigned()) {
    const auto v = it->get<std::uint64_t>();
    return v <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ? static_cast<std::int64_t>(v) : 0;
  }
  if (it->is_number_integer()) return std::max<std::int64_t>(0, it->get<std::int64_t>());
  return 0;
}

Manifest read_manifest(const std::string& text, const std::string& dir) {
  const std::string file = dir + "/manifest.json";
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    damaged(fmt::format("{} is not valid JSON ({})", file, e.what()));
  }
  if (!m.is_object()) damaged(fmt::format("{}: expected a JSON object, found {}", file, m.type_name()));
  const auto status = m.find("status");
  if (status == m.end() || !status->is_string())
    damaged(fmt::format("{} has no \"status\" (expected \"complete\", written when a run finishes)", file));
  const std::string st = status->get<std::string>();
  if (st == "interrupted")
    damaged(
        fmt::format("the run in {} was interrupted before it finished (manifest.json: status interrupted); "
                    "finish it with `ouroboros resume {}`, then report it",
                    dir, dir));
  if (st == "running")
    damaged(
        fmt::format("the run in {} has not finished (manifest.json: status running): it is being written now, or "
                    "the process writing it was killed; report it once it is complete",
                    dir));
  if (st != "complete") damaged(fmt::format("{}: status {}, expected \"complete\" (a finished run)", file, shown(st)));

  Manifest out;
  const auto config = m.find("config");
  const nlohmann::json* cfg = config != m.end() && config->is_object() ? &*config : nullptr;
  out.name = cfg ? json_text(*cfg, "name", dir) : dir;
  out.backend = json_text(m, "backend", "?");
  out.version = json_text(m, "ouroboros_version", "?");
  if (cfg) {
    const auto ew = cfg->find("early_warning");
    out.early_warning = ew != cfg->end() && !ew->is_null();
  }
  const auto points = m.find("points");
  if (points == m.end() || !points->is_array() || points->empty())
    damaged(fmt::format(
        "{} has no \"points\" list (expected one entry per sweep point, written when the run completes)", file));
  for (std::size_t i = 0; i < points->size(); ++i) {
    const nlohmann::json& p = (*points)[i];
    if (!p.is_object()) damaged(fmt::format("{}: points[{}] is {}, expected an object", file, i, p.type_name()));
    ManifestPoint mp{json_count(&p, "chains"), std::nullopt};
    if (mp.chains == 0) mp.chains = json_count(cfg, "chains");
    if (mp.chains == 0)
      damaged(fmt::format("{}: points[{}] has no chain count (\"chains\": a positive integer, there or in the config)",
                          file, i));
    if (const auto labels = p.find("point"); labels != p.end()) {
      if (!labels->is_object() && !labels->is_null())  // null: a run without a sweep
        damaged(
            fmt::format("{}: points[{}].point is {}, expected the swept keys' values", file, i, labels->type_name()));
      mp.labels.emplace();
      for (const auto& [key, v] : labels->items()) {
        if (!v.is_string())
          damaged(fmt::format("{}: points[{}].point.{} is {}, expected text", file, i, key, v.type_name()));
        (*mp.labels)[key] = v.get<std::string>();
      }
    }
    out.points.push_back(std::move(mp));
  }
  return out;
}

// ---- the run, checked --------------------------------------------------------------------------------------------

// The swept keys' values of a row (its first axes.size() fields) are its
// point's: `what` names where the point's values come from.
void check_labels(const Fields& f, const std::vector<std::string>& axes, const Row& of, const std::string& what) {
  for (std::size_t a = 0; a < axes.size(); ++a)
    if (f.r.fields[a] != of.fields[a]) f.bad(static_cast<int>(a), fmt::format("{} ({})", shown(of.fields[a]), what));
}

void check_summary(Run& run) {
  const Table& t = run.summary;
  const auto& mp = run.manifest.points;
  const std::vector<std::string> tail = summary_header({});
  run.axes = check_header(t, tail);
  const int c_point = t.column("point"), c_metric = t.column("metric"), c_dir = t.column("direction"),
            c_thr = t.column("threshold"), c_gen = t.column("generations"), c_coll = t.column("collapse_generation"),
            c_chains = t.column("chains"), c_deg = t.column("degenerate_chains"), c_real = t.column("real_samples");
  if (t.rows.empty())
    damaged(fmt::format("{} has no rows (expected one per sweep point: {} in manifest.json)", t.file, mp.size()));
  run.points.assign(mp.size(), Point{});
  const Row& first = t.rows.front();
  for (const Row& r : t.rows) {
    const Fields f{t, r};
    const auto p = static_cast<std::size_t>(f.integer(c_point, 0, static_cast<long long>(mp.size()) - 1,
                                                      fmt::format(" (manifest.json lists {} points)", mp.size())));
    if (run.points[p].row)
      damaged(fmt::format("{} line {}: point {} again (first on line {})", t.file, r.line, p, run.points[p].row->line));
    run.points[p].row = &r;
    if (mp[p].labels) {
      if (mp[p].labels->size() != run.axes.size())
        damaged(fmt::format("{} line 1: {} swept keys, manifest.json's points[{}] has {}", t.file, run.axes.size(), p,
                            mp[p].labels->size()));
      for (std::size_t a = 0; a < run.axes.size(); ++a) {
        const auto it = mp[p].labels->find(run.axes[a]);
        if (it == mp[p].labels->end())
          damaged(fmt::format("{} line 1: the swept key {} is not among manifest.json's points[{}].point", t.file,
                              shown(run.axes[a]), p));
        if (it->second != r.fields[a])
          f.bad(static_cast<int>(a), fmt::format("{} (manifest.json, points[{}])", shown(it->second), p));
      }
    }
    // One summary metric, direction and threshold for the run (summary: cannot be swept).
    f.nonempty(c_metric);
    f.word(c_dir, {"down", "up"});
    f.finite(c_thr);
    for (int c : {c_metric, c_dir, c_thr})
      if (f.text(c) != first.fields[static_cast<std::size_t>(c)])
        f.bad(c, fmt::format("{} as on line {} (one summary for the run)",
                             shown(first.fields[static_cast<std::size_t>(c)]), first.line));
    const long long g = f.integer(c_gen, 1, std::numeric_limits<int>::max());
    f.optional_integer(c_coll, 0, g, " (this row's generations), or nothing");
    for (const char* c : {"last_mean", "last_lo", "last_hi", "auc_mean", "auc_lo", "auc_hi"}) f.value(t.column(c));
    const std::string of_manifest = fmt::format(" (manifest.json, points[{}])", p);
    const long long n = f.integer(c_chains, 0, mp[p].chains, of_manifest),
                    d = f.integer(c_deg, 0, mp[p].chains, of_manifest);
    if (n + d != mp[p].chains)
      damaged(
          fmt::format("{} line {}: chains {} and degenerate_chains {} add up to {}, expected {} (manifest.json, "
                      "points[{}])",
                      t.file, r.line, n, d, n + d, mp[p].chains, p));
    f.finite(c_real, 0.0);
  }
  for (std::size_t p = 0; p < mp.size(); ++p)
    if (!run.points[p].row)
      damaged(
          fmt::format("{} has no row for point {} (manifest.json lists {} points, 0 to {}): the file is cut short "
                      "or from another run",
                      t.file, p, mp.size(), mp.size() - 1));
}

void check_summary_chains(Run& run, const Table& t) {
  std::vector<std::string> tail = run.axes;
  for (const char* c : {"point", "chain", "last", "auc"}) tail.emplace_back(c);
  if (t.header != tail) {
    std::string got;
    for (const auto& h : t.header) got += (got.empty() ? "" : ",") + h;
    damaged(
        fmt::format("{} line 1: the header is {}; expected {} (summary.csv's swept keys, then point,chain,last,auc)",
                    t.file, shown(got, 300), fmt::join(tail, ",")));
  }
  const int c_point = t.column("point"), c_chain = t.column("chain"), c_last = t.column("last"),
            c_auc = t.column("auc");
  const Table& s = run.summary;
  // Rows per point first: a point's chains are then as many as its rows, however large the manifest says.
  std::vector<std::vector<const Row*>> of(run.points.size());
  for (const Row& r : t.rows) {
    const Fields f{t, r};
    const auto p = static_cast<std::size_t>(f.integer(c_point, 0, static_cast<long long>(run.points.size()) - 1));
    check_labels(f, run.axes, *run.points[p].row,
                 fmt::format("summary.csv line {}, point {}", run.points[p].row->line, p));
    of[p].push_back(&r);
  }
  for (std::size_t p = 0; p < run.points.size(); ++p) {
    const std::int64_t chains = run.manifest.points[p].chains;
    if (static_cast<std::int64_t>(of[p].size()) != chains)
      damaged(
          fmt::format("{} has {} rows for point {}, expected {} (one per chain, manifest.json): the file is cut "
                      "short or damaged",
                      t.file, of[p].size(), p, chains));
    Point& pt = run.points[p];
    pt.last.assign(static_cast<std::size_t>(chains), kNaN);
    std::vector<std::size_t> line(pt.last.size(), 0);
    std::int64_t none = 0;
    for (const Row* r : of[p]) {
      const Fields f{t, *r};
      const auto i = static_cast<std::size_t>(
          f.integer(c_chain, 0, chains - 1, fmt::format(" (point {} has {} chains, manifest.json)", p, chains)));
      if (line[i])
        damaged(fmt::format("{} line {}: point {} chain {} again (first on line {})", t.file, r->line, p, i, line[i]));
      line[i] = r->line;
      pt.last[i] = f.value(c_last);
      f.value(c_auc);
      none += std::isnan(pt.last[i]);
    }
    const Fields sf{s, *pt.row};
    const long long degenerate = sf.integer(s.column("degenerate_chains"), 0, chains);
    if (none != degenerate)
      damaged(
          fmt::format("{}: point {} has {} chains without a last value, summary.csv line {} says degenerate_chains "
                      "{}",
                      t.file, p, none, pt.row->line, degenerate));
  }
}

void check_early_warning(Run& run, const Table& t) {
  const std::vector<std::string> axes = check_header(t, early_warning_header({}));
  if (axes != run.axes)
    damaged(fmt::format("{} line 1: swept keys {}, summary.csv has {}", t.file, fmt::join(axes, ","),
                        fmt::join(run.axes, ",")));
  std::vector<std::vector<std::string>> detectors(run.points.size());
  std::vector<std::size_t> first_line(run.points.size(), 0);
  for (const Row& r : t.rows) {
    const Fields f{t, r};
    const auto p =
        static_cast<std::size_t>(f.integer(t.column("point"), 0, static_cast<long long>(run.points.size()) - 1));
    check_labels(f, run.axes, *run.points[p].row,
                 fmt::format("summary.csv line {}, point {}", run.points[p].row->line, p));
    const std::string& name = f.nonempty(t.column("detector"));
    if (std::find(detectors[p].begin(), detectors[p].end(), name) != detectors[p].end())
      damaged(fmt::format("{} line {}: point {}'s detector {} again", t.file, r.line, p, shown(name)));
    detectors[p].push_back(name);
    if (!first_line[p]) first_line[p] = r.line;
    f.nonempty(t.column("metric"));
    f.word(t.column("baseline"), {"first", "previous"});
    f.integer(t.column("horizon"), 0, std::numeric_limits<int>::max());
    f.finite(t.column("target_false_alarm"), 0.0);
    f.word(t.column("fires"), {"0", "1"});
    for (const char* c : {"calibration_chains", "evaluation_chains", "unobserved_chains", "collapsed_chains"})
      f.integer(t.column(c), 0, run.manifest.points[p].chains);
    for (const char* c : {"threshold",        "calibration_false_alarm",
                          "false_alarm_rate", "false_alarm_lo",
                          "false_alarm_hi",   "timely_rate",
                          "timely_lo",        "timely_hi",
                          "late_rate",        "miss_rate",
                          "miss_lo",          "miss_hi",
                          "lead_mean",        "lead_lo",
                          "lead_hi",          "lead_q25",
                          "lead_q50",         "lead_q75",
                          "alarm_q50",        "chain_collapse_q50"})
      f.value(t.column(c));
    f.optional_integer(t.column("collapse_generation"), 0, std::numeric_limits<int>::max());
  }
  // Every point judged by the same detectors, in the same order.
  for (std::size_t p = 0; p < run.points.size(); ++p) {
    if (detectors[p].empty())
      damaged(
          fmt::format("{} has no rows for point {} (expected one per detector for every sweep point): the file is "
                      "cut short or damaged",
                      t.file, p));
    if (detectors[p] != detectors[0])
      damaged(fmt::format("{} line {}: point {}'s detectors are {}, point 0's {} (the same for every point)", t.file,
                          first_line[p], p, fmt::join(detectors[p], ", "), fmt::join(detectors[0], ", ")));
  }
}

}  // namespace

Run check_run(const RunFolderText& in) {
  Run run;
  run.manifest = read_manifest(in.manifest, in.dir);
  run.summary = parse_csv(in.summary, in.dir + "/summary.csv");
  check_summary(run);
  check_summary_chains(run, parse_csv(in.summary_chains, in.dir + "/summary_chains.csv"));
  // early_warning.csv is the run's only when its config has an early_warning section (a folder reused with --force
  // may keep an earlier run's).
  if (run.manifest.early_warning) {
    if (!in.early_warning)
      damaged(
          fmt::format("{}/early_warning.csv is missing (the run's config has an early_warning section): the run "
                      "folder is damaged",
                      in.dir));
    run.early = parse_csv(*in.early_warning, in.dir + "/early_warning.csv");
    check_early_warning(run, *run.early);
  }
  return run;
}

}  // namespace report_detail

RunFolderText read_run_folder(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) throw ReportError(fmt::format("no folder {}", dir));
  if (!S_ISDIR(st.st_mode)) throw ReportError(fmt::format("{} is not a folder (expected a run's output folder)", dir));
  RunFolderText run;
  run.dir = dir;
  auto manifest = report_detail::read_regular(dir + "/manifest.json");
  if (!manifest) throw ReportError(fmt::format("{} is not an ouroboros run folder (no manifest.json)", dir));
  run.manifest = std::move(*manifest);
  run.summary = report_detail::read_required(dir + "/summary.csv");
  run.summary_chains = report_detail::read_required(dir + "/summary_chains.csv");
  run.early_warning = report_detail::read_regular(dir + "/early_warning.csv");
  run.has_plot = ::stat((dir + "/collapse.png").c_str(), &st) == 0 && S_ISREG(st.st_mode);
  return run;
}

}  // namespace ouro

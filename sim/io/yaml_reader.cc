#include "sim/io/yaml_reader.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>

namespace ouro {
namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The default of a key, or a refusal when a config must give it.
[[noreturn]] void missing(const KeySpec& k, const std::string& expected) {
  throw ConfigError(k.path, "missing; expected " + expected);
}

// Where a key's two instances are: " (lines 4 and 9)", or " (line 4, columns 8 and 20)" on one line.
std::string two_places(const YAML::Mark& a, const YAML::Mark& b) {
  if (a.is_null() || b.is_null()) return "";
  if (a.line == b.line) return fmt::format(" (line {}, columns {} and {})", a.line + 1, a.column + 1, b.column + 1);
  return fmt::format(" (lines {} and {})", a.line + 1, b.line + 1);
}

// `seen` holds the positions of the mappings and lists walked already: an alias is the node it names (the same
// mark), walked once, so a document of nested aliases is not walked exponentially often. `open` holds those being
// walked (the node's ancestors): an alias to one of them inside it is a cycle, which every later reader of the
// config would follow forever, and is refused.
void walk_duplicates(const YAML::Node& node, const std::string& at, const std::string& where, std::set<int>& seen,
                     std::set<int>& open) {
  if (!node.IsMap() && !node.IsSequence()) return;
  const YAML::Mark m = node.Mark();
  if (!m.is_null() && open.count(m.pos))
    throw ConfigError(at.empty() ? "<top level>" : at,
                      "is an alias of a mapping or list that contains it (a cycle: the value would never end)");
  if (!m.is_null() && !seen.insert(m.pos).second) return;
  struct Open {  // m is walked until this scope ends
    std::set<int>& open;
    int pos;
    bool on;
    ~Open() {
      if (on) open.erase(pos);
    }
  } mark_open{open, m.pos, !m.is_null() && open.insert(m.pos).second};
  if (node.IsSequence()) {
    std::size_t i = 0;
    for (const auto& v : node) walk_duplicates(v, fmt::format("{}[{}]", at, i++), where, seen, open);
    return;
  }
  std::map<std::string, YAML::Mark> keys;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) continue;  // (refused as a key elsewhere)
    const std::string path = join_path(at, kv.first.Scalar());
    const auto [it, fresh] = keys.emplace(kv.first.Scalar(), kv.first.Mark());
    if (!fresh)
      throw ConfigError(path, "given twice" + (where.empty() ? two_places(it->second, kv.first.Mark()) : " " + where));
    walk_duplicates(kv.second, path, where, seen, open);
  }
}

}  // namespace

void refuse_duplicate_keys(const YAML::Node& node, const std::string& at, const std::string& where) {
  std::set<int> seen, open;
  walk_duplicates(node, at, where, seen, open);
}

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::vector<std::string> split_path(const std::string& path) {
  // (As std::getline splits: a trailing '.' adds no empty part. No stream: a lookup's cost is mostly this.)
  std::vector<std::string> parts;
  for (std::size_t at = 0; at < path.size();) {
    const std::size_t dot = std::min(path.find('.', at), path.size());
    parts.push_back(path.substr(at, dot - at));
    at = dot + 1;
  }
  return parts;
}

std::string join_path(const std::string& section, const std::string& key) {
  return section.empty() ? key : section + "." + key;
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

YAML::Node find_node(const YAML::Node& root, const std::string& path) {
  // (reset() rebinds the handle; assigning a node would write into the tree. Lookups go through a const node,
  // whose operator[] does not insert.)
  YAML::Node cur;
  cur.reset(root);
  std::string part;
  for (std::size_t at = 0; at < path.size();) {  // each part, as split_path() splits (without its vector)
    const std::size_t dot = std::min(path.find('.', at), path.size());
    part.assign(path, at, dot - at);
    at = dot + 1;
    const YAML::Node& here = cur;
    if (!here.IsMap()) return YAML::Node();
    const YAML::Node next = here[part];
    if (!next) return YAML::Node();
    cur.reset(next);
  }
  return cur;
}

void assign_node(YAML::Node root, const std::string& path, const YAML::Node& value) {
  const auto parts = split_path(path);
  std::vector<YAML::Node> chain{root};
  std::string prefix;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    prefix += (i ? "." : "") + parts[i];
    YAML::Node next = chain.back()[parts[i]];
    if (!next.IsDefined() || next.IsNull()) {
      chain.back()[parts[i]] = YAML::Node(YAML::NodeType::Map);
      next = chain.back()[parts[i]];
    }
    if (!next.IsMap()) throw ConfigError(prefix, "expected a mapping of keys, got " + scalar_text(next));
    chain.push_back(next);
  }
  chain.back()[parts.back()] = value;
}

double as_number(const YAML::Node& n, const std::string& path, const std::string& expected) {
  if (!n.IsScalar()) throw ConfigError(path, fmt::format("expected {}, got {}", expected, scalar_text(n)));
  try {
    const double v = n.as<double>();
    if (!std::isfinite(v)) throw YAML::Exception(YAML::Mark(), "not finite");
    return v;
  } catch (const YAML::Exception&) {
    throw ConfigError(path, fmt::format("expected {}, got \"{}\"", expected, n.Scalar()));
  }
}

std::vector<double> read_numbers(const YAML::Node& n, const std::string& path) {
  if (!n.IsSequence()) throw ConfigError(path, fmt::format("expected a list of numbers, got {}", scalar_text(n)));
  std::vector<double> v;
  for (std::size_t i = 0; i < n.size(); ++i) v.push_back(as_number(n[i], fmt::format("{}[{}]", path, i), "a number"));
  return v;
}

bool ConfigReader::given(const std::string& path) const {
  const YAML::Node n = node(path);
  return n && !n.IsNull();
}

std::int64_t ConfigReader::integer(const KeySpec& k) const { return integer(k, k.lo); }

std::int64_t ConfigReader::integer(const KeySpec& k, double lo) const {
  const std::string expected = lo == k.lo ? k.expected : integer_key(k.path, lo, k.hi, "", "").expected;
  const YAML::Node n = node(k.path);
  if (!n || n.IsNull()) {
    if (k.fallback.empty()) missing(k, expected);
    return std::stoll(k.fallback);
  }
  const double v = as_number(n, k.path, expected);
  if (v != std::floor(v) || v < lo || v > k.hi)
    throw ConfigError(k.path, fmt::format("expected {}, got {}", expected, n.Scalar()));
  return static_cast<std::int64_t>(v);
}

double ConfigReader::number(const KeySpec& k) const {
  const YAML::Node n = node(k.path);
  if (!n || n.IsNull()) {
    if (k.fallback.empty()) missing(k, k.expected);
    return std::stod(k.fallback);
  }
  const double v = as_number(n, k.path, k.expected);
  if (!(v >= k.lo && v <= k.hi)) throw ConfigError(k.path, fmt::format("expected {}, got {}", k.expected, n.Scalar()));
  return v;
}

std::string ConfigReader::choice(const KeySpec& k) const {
  const YAML::Node n = node(k.path);
  if (!n || n.IsNull()) {
    if (k.fallback.empty()) missing(k, k.expected);
    return k.fallback;
  }
  if (!n.IsScalar()) throw ConfigError(k.path, fmt::format("expected {}, got {}", k.expected, scalar_text(n)));
  const std::string v = n.Scalar();
  if (std::find(k.choices.begin(), k.choices.end(), v) == k.choices.end())
    throw ConfigError(k.path,
                      fmt::format("expected {}, got \"{}\" (did you mean {}?)", k.expected, v, nearest(v, k.choices)));
  return v;
}

bool ConfigReader::flag(const KeySpec& k) const {
  const YAML::Node n = node(k.path);
  if (!n || n.IsNull()) {
    if (k.fallback.empty()) missing(k, k.expected);
    return k.fallback == "true";
  }
  const std::string v = n.IsScalar() ? n.Scalar() : "";
  if (v != "true" && v != "false") throw ConfigError(k.path, "expected true or false, got " + scalar_text(n));
  return v == "true";
}

}  // namespace ouro

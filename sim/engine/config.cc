#include "sim/engine/config.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sim/engine/config_checks.h"

namespace ouro {
namespace {

namespace fs = std::filesystem;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTiny = std::numeric_limits<double>::denorm_min();  // the lower bound of an open (0, ...

std::vector<KeySpec> make_common_keys() {
  std::vector<std::string> families;
  for (const Family* f : family_table()) families.emplace_back(f->name());
  return {
      shaped_key("name", KeyType::kText, "letters, digits, '-', '_' or '.'", "experiment",
                 "names the run; the default output folder is runs/NAME-TIMESTAMP"),
      integer_key("seed", 0, 4294967295.0, "1", "the seed of every random stream (Philox key word 0)"),
      required(integer_key("chains", 1, 4294967295.0, "", "independent replicate chains per sweep point")),
      required(integer_key("generations", 1, 1000000, "", "fitted generations after the truth (generation 0)")),
      required(choice_key("model.family", families, "", "the model family: its own keys are listed with it")),
      required(integer_key("data.samples", 2, 100000000, "",
                           "n, the new points of each generation (tokens for a text family); a family may need more")),
      choice_key("data.regime", {"replace", "accumulate", "accumulate_subsample"}, "replace",
                 "what a generation trains on: its new points, every point so far, or n of them drawn without "
                 "replacement"),
      number_key("data.real_fraction", "a fraction in [0, 1]", 0.0, 1.0, "0",
                 "share of each generation's new points (from generation 2 on) drawn from the truth"),
      choice_key("data.real_source", {"fresh", "fixed"}, "fresh",
                 "fresh real draws every generation, or generation 1's real sample reused"),
      number_key("data.synthetic_cap", "a share in [0, 1]", 0.0, 1.0, "1",
                 "most synthetic share of the new points: the real share is max(real_fraction, 1 - cap)"),
      number_key("data.estimator_weight", "a weight in [0, 1]", 0.0, 1.0, "",
                 "the weight of the real points' mean in the fitted mean (replace; off when absent)"),
      shaped_key("data.verifier", KeyType::kMapping, "{keep_plausible, keep_implausible, quantile}", "",
                 "keeps a synthetic candidate with a probability that depends on its plausibility under the truth "
                 "(off when absent)"),
      number_key("data.verifier.keep_plausible", "a probability in [0, 1]", 0.0, 1.0, "",
                 "keep probability of a candidate at least as likely as the truth's own quantile"),
      number_key("data.verifier.keep_implausible", "a probability in [0, 1]", 0.0, 1.0, "",
                 "keep probability of a less likely candidate"),
      number_key("data.verifier.quantile", "a share in (0, 1)", 1e-9, 1.0 - 1e-9, "",
                 "q: a candidate is plausible when the truth's log-density at it is at least its own q-quantile"),
      integer_key("data.max_draw_factor", 1, 1000, "10",
                  "candidates drawn per needed point, at most, under data.verifier or data.dedup"),
      shaped_key("data.tail_upsample", KeyType::kMapping, "{factor, quantile}", "",
                 "synthetic points in the truth's tail count factor times in the fit (off when absent)"),
      number_key("data.tail_upsample.factor", "a weight in [1e-6, 1e6]", 1e-6, 1e6, "",
                 "the weight of a synthetic tail point"),
      number_key("data.tail_upsample.quantile", "a share in (0, 1)", 1e-9, 1.0 - 1e-9, "",
                 "continuous and labelled families: the tail is the truth's lowest-density share q"),
      number_key("data.age_decay", "a decay in (0, 1]", 1e-6, 1.0, "1",
                 "data added k generations before the fit weighs decay^k (accumulate, accumulate_subsample)"),
      bool_key("data.dedup", "false", "drops a synthetic sample that repeats one already kept"),
      number_key("data.dedup_resolution", "a grid spacing in [1e-12, 1e12]", 1e-12, 1e12, "",
                 "continuous families: the grid points are rounded to before they are compared"),
      shaped_key("plot.metrics", KeyType::kList, "a list of metric names", "",
                 "the panels of scripts/plot_collapse.py (default: the family's own choice)"),
      choice_key("plot.center", {"mean", "median"}, "mean", "the line the plot draws over chains"),
      shaped_key("plot.scatter", KeyType::kMapping, "{chains, generations, points}", "",
                 "writes scatter.csv: points drawn from a few chains' models at chosen generations, which the plot "
                 "draws beside the curves (off when absent)"),
      integer_key("plot.scatter.chains", 1, 16, "3",
                  "the chains drawn: ids 0 .. chains - 1 (those among them that rank 0 runs, under MPI)"),
      shaped_key("plot.scatter.generations", KeyType::kList, "a list of distinct generations in [0, generations]", "",
                 "the generations drawn (needed with plot.scatter)"),
      integer_key("plot.scatter.points", 1, 100000, "500", "points drawn from each chain's model at each of them"),
      shaped_key("summary.metric", KeyType::kText, "a metric that moves one way under collapse", "",
                 "the metric of summary.csv and the report (default: the family's)"),
      number_key("summary.threshold", "a finite number", -1e300, 1e300, "",
                 "the value of summary.metric that counts as collapse (needed with summary.metric)"),
      shaped_key("early_warning.detectors", KeyType::kList, "a list of the family's detectors", "",
                 "the detectors to calibrate and judge (default: every detector of the family)"),
      number_key("early_warning.false_alarm", "a rate in (0, 1)", 1e-300, 0.999999, "0.05",
                 "target false-alarm rate of the calibration"),
      integer_key("early_warning.horizon", 0, 1000000, "5",
                  "an alarm more than this many generations before collapse is false"),
      number_key("early_warning.calibration_share", "a share in (0, 1)", 1e-300, 0.999999, "0.5",
                 "chains [0, share * chains) calibrate the thresholds, the rest judge them"),
      choice_key("early_warning.baseline", {"first", "previous"}, "first",
                 "a score compares generation t with generation 1, or with generation t - 1"),
      shaped_key("sweep", KeyType::kMapping, "{key.path: [values], ...}", "",
                 "a cross product of values; every point runs in the same invocation"),
      shaped_key("reproduction", KeyType::kMapping, "{paper, source, claims, reduced}", "",
                 "a paper's claims about this experiment, checked by scripts/reproduce.py; never read by the engine"),
  };
}

bool at_or_under(const std::string& key, const std::string& path) {
  return key == path || (key.size() > path.size() && key.compare(0, path.size(), path) == 0 && key[path.size()] == '.');
}

// The data option a common key belongs to, if any.
std::optional<DataOption> option_of(const std::string& path) {
  for (DataOption o : {DataOption::kEstimatorWeight, DataOption::kVerifier, DataOption::kTailUpsample,
                       DataOption::kAgeDecay, DataOption::kDedup, DataOption::kDedupGrid})
    if (at_or_under(path, data_option_key(o))) return o;
  return std::nullopt;
}

// The families a given key or section belongs to: those with a key at or under it, or, for a data option, those
// whose cpu backend offers it. Empty for a key every config has.
std::vector<const Family*> find_owners(const std::string& path) {
  std::vector<const Family*> out;
  if (const auto o = option_of(path)) {
    for (const Family* f : family_table())
      if (f->support("cpu").offers(*o)) out.push_back(f);
    return out;
  }
  for (const auto& k : common_keys())
    if (at_or_under(k.path, path)) return out;
  for (const Family* f : family_table())
    for (const auto& k : f->keys())
      if (at_or_under(k.path, path)) {
        out.push_back(f);
        break;
      }
  return out;
}

// The keys of the union of the common keys and every family's (each once, in that order), and what the reader asks
// of them, worked out once for the family table as it is.
struct KeyIndex {
  std::vector<KeySpec> all;
  std::set<std::string> sections;   // paths whose value is a mapping of further keys ("" is the top level)
  std::vector<std::string> leaves;  // the keys a value can be given to (--set, sweep)
  std::map<std::string, std::vector<std::string>> children;  // section -> the paths valid directly under it
  std::map<std::string, std::vector<const Family*>> owners;  // each such path -> find_owners()

  KeyIndex() {
    all = common_keys();
    for (const Family* f : family_table())
      for (const auto& k : f->keys())
        if (std::none_of(all.begin(), all.end(), [&](const KeySpec& a) { return a.path == k.path; })) all.push_back(k);
    sections.insert("");
    for (const auto& k : all) {
      if (k.type == KeyType::kMapping) sections.insert(k.path);
      for (auto dot = k.path.find('.'); dot != std::string::npos; dot = k.path.find('.', dot + 1))
        sections.insert(k.path.substr(0, dot));
    }
    for (const auto& k : all)
      if (sections.count(k.path) == 0) leaves.push_back(k.path);
    for (const auto& section : sections)
      for (const auto& k : all) {
        if (!section.empty() && !(at_or_under(k.path, section) && k.path != section)) continue;
        const std::string rest = section.empty() ? k.path : k.path.substr(section.size() + 1);
        const std::string child = join_path(section, rest.substr(0, rest.find('.')));
        auto& list = children[section];
        if (std::find(list.begin(), list.end(), child) == list.end()) list.push_back(child);
      }
    for (const auto& [section, list] : children)
      for (const auto& child : list) owners.emplace(child, find_owners(child));
  }
};

const KeyIndex& key_index() {
  static std::unique_ptr<KeyIndex> index;
  static std::size_t families = 0;
  if (!index || families != family_table().size()) {
    index = std::make_unique<KeyIndex>();
    families = family_table().size();
  }
  return *index;
}

bool is_section(const std::string& path) { return key_index().sections.count(path) > 0; }
const std::vector<std::string>& leaf_paths() { return key_index().leaves; }

bool is_leaf_path(const std::string& path) {
  const auto& leaves = leaf_paths();
  return std::find(leaves.begin(), leaves.end(), path) != leaves.end();
}

// The names valid directly under a section, as paths.
const std::vector<std::string>& children(const std::string& section) { return key_index().children.at(section); }

[[noreturn]] void unknown_key(const std::string& path, const std::vector<std::string>& candidates) {
  throw ConfigError(path, fmt::format("unknown key (did you mean {}?)", nearest(path, candidates)));
}

void check_keys(const YAML::Node& node, const std::string& section) {
  if (!node.IsMap()) throw ConfigError(section.empty() ? "<top level>" : section, "expected a mapping");
  const std::vector<std::string> siblings = children(section);
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) throw ConfigError(section.empty() ? "<top level>" : section, "keys must be plain names");
    const std::string path = join_path(section, kv.first.as<std::string>());
    if (std::find(siblings.begin(), siblings.end(), path) == siblings.end()) unknown_key(path, siblings);
    // (sweep's keys are paths, checked when the sweep is read; the reproduction section is only carried; a section
    // given as null is absent, as every reader takes it.)
    if (path != "sweep" && path != "reproduction" && is_section(path) && !kv.second.IsNull())
      check_keys(kv.second, path);
  }
}

// find_owners(), worked out once per path.
std::vector<const Family*> owners(const std::string& path) {
  const auto& known = key_index().owners;
  const auto it = known.find(path);
  return it != known.end() ? it->second : find_owners(path);
}

// A key that belongs to other families is refused in this one's config, naming its owners.
void refuse_foreign_keys(const YAML::Node& node, const std::string& section, const Family& family) {
  for (const auto& kv : node) {
    const std::string path = join_path(section, kv.first.as<std::string>());
    if (path == "sweep" || path == "reproduction" || kv.second.IsNull()) continue;
    const auto who = owners(path);
    if (!who.empty() && std::find(who.begin(), who.end(), &family) == who.end()) {
      std::vector<std::string> names;
      for (const Family* f : who) names.emplace_back(f->name());
      throw ConfigError(path, fmt::format("applies to model.family {} only (this config has {})",
                                          fmt::join(names, " or "), family.name()));
    }
    if (kv.second.IsMap()) refuse_foreign_keys(kv.second, path, family);
  }
}

const KeySpec& key(const std::string& path) { return key_of(common_keys(), path); }

// ---- one point ---------------------------------------------------------------

// The data section (every family): the training set, then the strategies.
void read_data(const ConfigReader& r, PointConfig& c) {
  const Family& family = *c.family;
  c.samples = static_cast<int>(r.integer(key("data.samples"), family.min_samples(c)));
  const std::string regime = r.choice(key("data.regime"));
  c.regime = regime == "accumulate"             ? kernels::Regime::kAccumulate
             : regime == "accumulate_subsample" ? kernels::Regime::kAccumulateSubsample
                                                : kernels::Regime::kReplace;
  c.real_fraction = r.number(key("data.real_fraction"));
  // Mitigations on the real data (docs/strategies.md): a cap on the synthetic share raises the real share to
  // 1 - cap where it is lower; a fixed real source reuses generation 1's real sample.
  c.synthetic_cap = r.number(key("data.synthetic_cap"));
  c.real_fraction = std::max(c.real_fraction, 1.0 - c.synthetic_cap);
  c.real_source =
      r.choice(key("data.real_source")) == "fixed" ? kernels::RealSource::kFixed : kernels::RealSource::kFresh;
  c.real_count = kernels::real_count(c.real_fraction, c.samples);
  if (r.given("data.estimator_weight")) {
    c.estimator_weight = r.number(key("data.estimator_weight"));
    if (c.regime != kernels::Regime::kReplace)
      throw ConfigError("data.estimator_weight",
                        "is defined for data.regime replace (one generation's real and "
                        "synthetic points) only");
  }
  // The verifier: every key given, a keep probability somewhere above 0.
  if (r.given("data.verifier")) {
    for (const char* k : {"keep_plausible", "keep_implausible", "quantile"})
      if (!r.given(std::string("data.verifier.") + k))
        throw ConfigError(std::string("data.verifier.") + k,
                          "missing (the verifier needs keep_plausible, "
                          "keep_implausible and quantile)");
    c.verifier = true;
    c.keep_plausible = r.number(key("data.verifier.keep_plausible"));
    c.keep_implausible = r.number(key("data.verifier.keep_implausible"));
    c.verifier_quantile = r.number(key("data.verifier.quantile"));
    for (const auto& [k, p] : {std::pair<const char*, double>{"keep_plausible", c.keep_plausible},
                               std::pair<const char*, double>{"keep_implausible", c.keep_implausible}})
      if (p > 0.0 && p < std::ldexp(1.0, -32))
        throw ConfigError(std::string("data.verifier.") + k,
                          fmt::format("{} is below 2^-32, the resolution of the keep decision (use 0 or more)", p));
    if (c.keep_plausible == 0.0 && c.keep_implausible == 0.0)
      throw ConfigError("data.verifier", "keeps nothing (keep_plausible and keep_implausible are both 0)");
  }
  c.max_draw_factor = static_cast<int>(r.integer(key("data.max_draw_factor")));
  if (r.given("data.tail_upsample")) {
    // A continuous or labelled family's tail is its truth's lowest-density share (of points, of labels given their
    // inputs); a text family weighs the token set of its tail metrics, with no quantile.
    const bool quantile = family.kind() != FamilyKind::kText;
    if (!quantile && r.given("data.tail_upsample.quantile"))
      throw ConfigError("data.tail_upsample.quantile",
                        fmt::format("does not apply to model.family {}, whose tail is the token set of its tail "
                                    "metrics (metrics.tail_count for a corpus, metrics.tail_share for zipf)",
                                    family.name()));
    for (const char* k : {"factor", "quantile"})
      if (!r.given(std::string("data.tail_upsample.") + k) && (quantile || std::string(k) == "factor"))
        throw ConfigError(std::string("data.tail_upsample.") + k, quantile ? "missing (tail_upsample needs factor and "
                                                                             "quantile)"
                                                                           : "missing (tail_upsample needs a factor)");
    c.tail_upsample = true;
    c.tail_factor = r.number(key("data.tail_upsample.factor"));
    if (quantile) c.tail_quantile = r.number(key("data.tail_upsample.quantile"));
  }
  c.age_decay = r.number(key("data.age_decay"));
  if (c.age_decay != 1.0 && c.regime == kernels::Regime::kReplace)
    throw ConfigError("data.age_decay",
                      "weighs old data, which data.regime replace does not keep (use accumulate or "
                      "accumulate_subsample)");
  c.dedup = r.flag(key("data.dedup"));
  // Continuous points repeat only after rounding: to the grid of spacing dedup_resolution.
  if (c.dedup && family.support("cpu").offers(DataOption::kDedupGrid) && !r.given("data.dedup_resolution"))
    throw ConfigError("data.dedup_resolution",
                      "missing (a continuous sample is a duplicate of another only after "
                      "rounding; give the grid spacing)");
  if (r.given("data.dedup_resolution")) {
    if (!c.dedup) throw ConfigError("data.dedup_resolution", "is the grid of data.dedup, which is off");
    c.dedup_resolution = r.number(key("data.dedup_resolution"));
  }
  if (!c.verifier && !c.dedup && r.given("data.max_draw_factor"))
    throw ConfigError("data.max_draw_factor",
                      "bounds the refill of filtered data; it needs data.verifier or data.dedup");
  // The pool of accumulate_subsample holds generations * samples points; their positions must fit the selection
  // counter.
  if (c.regime == kernels::Regime::kAccumulateSubsample && static_cast<double>(c.generations) * c.samples > 9.0e15)
    throw ConfigError("generations", "generations * data.samples is too large for accumulate_subsample");
}

PointConfig parse_point(const YAML::Node& root) {
  const ConfigReader r(root);
  PointConfig c;
  {
    const YAML::Node n = r.node("name");
    if (n && !n.IsNull() && !n.IsScalar()) throw ConfigError("name", "expected a name, got " + scalar_text(n));
    c.name = (n && n.IsScalar()) ? n.Scalar() : key("name").fallback;
    for (char ch : c.name)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
        throw ConfigError("name", fmt::format("expected letters, digits, '-', '_' or '.', got \"{}\"", c.name));
  }
  c.seed = static_cast<std::uint32_t>(r.integer(key("seed")));
  c.chains = r.integer(key("chains"));
  c.generations = static_cast<int>(r.integer(key("generations")));
  c.family = find_family(r.choice(key("model.family")));
  refuse_foreign_keys(root, "", *c.family);
  c.family_settings = c.family->read(r, c);
  read_data(r, c);
  c.family->check(c);
  return c;
}

// ---- paths -------------------------------------------------------------------

// One value of a path-valued key, made absolute against `base` when it is a relative path (not one of the key's
// words, such as kjv); lexically normal, so the config records it without "./" or "a/../".
void resolve_path(YAML::Node n, const KeySpec& k, const fs::path& base) {
  if (!n || !n.IsScalar() || n.Scalar().empty()) return;  // (refused, if at all, by the key's reader)
  if (std::find(k.choices.begin(), k.choices.end(), n.Scalar()) != k.choices.end()) return;
  const fs::path p(n.Scalar());
  if (p.is_relative()) n = (base / p).lexically_normal().string();
}

// The relative paths of `node`, the value at `at` ("" for the whole config, "sweep" or "sweep.KEY" for a sweep or an
// axis), against `base`: every path-valued key's value, and every value of its sweep axis.
void resolve_paths(const YAML::Node& node, const std::string& at, const fs::path& base) {
  for (const auto& k : key_index().all) {
    if (k.type != KeyType::kPath) continue;
    if (at.empty() || at_or_under(k.path, at))
      resolve_path(at == k.path ? node : find_node(node, at.empty() ? k.path : k.path.substr(at.size() + 1)), k, base);
    // An axis is an entry of the sweep mapping whose key holds dots: looked up as one key, not walked as a path.
    YAML::Node sweep = at.empty() ? find_node(node, "sweep") : at == "sweep" ? node : YAML::Node();
    YAML::Node axis = at == "sweep." + k.path ? node : YAML::Node();
    if (sweep && sweep.IsMap())
      if (const YAML::Node values = static_cast<const YAML::Node&>(sweep)[k.path]; values) axis.reset(values);
    if (axis && axis.IsSequence())
      for (YAML::Node v : axis) resolve_path(v, k, base);
  }
}

// ---- --set ---------------------------------------------------------------------

// The paths a sweep mapping has axes for.
std::vector<std::string> swept_paths(const YAML::Node& root) {
  std::vector<std::string> out;
  const YAML::Node sweep = find_node(root, "sweep");
  if (sweep && sweep.IsMap())
    for (const auto& kv : sweep)
      if (kv.first.IsScalar()) out.push_back(kv.first.Scalar());
  return out;
}

// --set overrides, in order (the rules: load_experiment in config.h). A relative path in a value is read against the
// current folder, where the command was typed.
void apply_sets(YAML::Node root, const std::vector<std::string>& sets) {
  const fs::path here = fs::current_path();
  for (const auto& s : sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError("--set " + s, "expected key.path=value");
    const std::string path = s.substr(0, eq);
    const bool axis = path.rfind("sweep.", 0) == 0;
    if (axis && path.size() == 6) throw ConfigError(path, "expected sweep.key.path=[values]");
    if (!axis && !is_leaf_path(path) && !(is_section(path) && !path.empty())) unknown_key(path, leaf_paths());
    if (path == "reproduction" || path.rfind("reproduction.", 0) == 0)
      throw ConfigError(path, "the reproduction section cannot be set from the command line");
    if (s.find_first_not_of(" \t", eq + 1) == std::string::npos)
      throw ConfigError(path, "--set " + s + " gives no value");
    YAML::Node value;
    try {
      value = YAML::Load(s.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw ConfigError(path, fmt::format("cannot parse --set value \"{}\": {}", s.substr(eq + 1), e.msg));
    }
    refuse_duplicate_keys(value, path, "in --set " + s);
    resolve_paths(value, path, here);
    if (axis) {
      // An axis: its key holds dots, so it is one entry of the sweep mapping (checked with the sweep: read_sweep).
      const YAML::Node sweep = find_node(root, "sweep");
      if (sweep && !sweep.IsNull() && !sweep.IsMap())
        throw ConfigError("sweep", "expected a mapping of key.path: [values], got " + scalar_text(sweep));
      if (!sweep || sweep.IsNull()) root["sweep"] = YAML::Node(YAML::NodeType::Map);
      root["sweep"][path.substr(6)] = value;
      continue;
    }
    // A mapping that holds a swept key would be overridden in part by the sweep: refused, naming the way to say
    // which was meant.
    if (path != "sweep")
      for (const auto& swept : swept_paths(root))
        if (swept != path && at_or_under(swept, path)) {
          const YAML::Node given = find_node(value, swept.substr(path.size() + 1));
          const std::string v = given && given.IsScalar() ? given.Scalar() : "VALUE";
          throw ConfigError(path, fmt::format("sets a mapping that holds {}, which is swept (sweep.{}) and would be "
                                              "overridden by the sweep: use --set {}={} to fix that key, or "
                                              "--set sweep.{}=[{}] to change its values",
                                              swept, swept, swept, v, swept, v));
        }
    assign_node(root, path, value);
    if (YAML::Node sweep = find_node(root, "sweep"); path != "sweep" && sweep && sweep.IsMap()) sweep.remove(path);
  }
}

// sweep: {key.path: [values]}: an axis per key.
std::vector<SweepAxis> read_sweep(const YAML::Node& root) {
  std::vector<SweepAxis> axes;
  const YAML::Node sweep = root["sweep"];
  if (!sweep) return axes;
  if (!sweep.IsMap() && !sweep.IsNull()) throw ConfigError("sweep", "expected a mapping of key.path: [values]");
  if (!sweep.IsMap()) return axes;
  for (const auto& kv : sweep) {
    const std::string path = kv.first.as<std::string>();
    if (path == "reproduction" || path.rfind("reproduction.", 0) == 0)
      throw ConfigError("sweep." + path, "the reproduction section cannot be swept");
    if (!is_leaf_path(path) || path == "name") unknown_key("sweep." + path, leaf_paths());
    if (path.rfind("plot.", 0) == 0) throw ConfigError("sweep." + path, "plot settings cannot be swept");
    if (path.rfind("summary.", 0) == 0)
      throw ConfigError("sweep." + path, "summary settings cannot be swept (one definition for every point)");
    if (path.rfind("early_warning.", 0) == 0)
      throw ConfigError("sweep." + path, "early_warning settings cannot be swept (one definition for every point)");
    if (!kv.second.IsSequence() || kv.second.size() == 0)
      throw ConfigError("sweep." + path, "expected a non-empty list of values");
    SweepAxis axis{path, {}};
    for (const auto& v : kv.second) axis.labels.push_back(scalar_text(v));
    axes.push_back(axis);
  }
  return axes;
}

// The cross product, first axis slowest, each point validated. Its size is bounded before anything is multiplied
// out: a few lines of YAML can ask for 10^8 points (validating them would exhaust memory, not refuse the config),
// and 32 axes of 4 values would wrap a size_t product to 0 points, accepting a config none of whose values was
// checked. The points share one copy of the config less its sweep, into which each point assigns its value of every
// axis (the readers only read it): a copy per point of the whole config, whose sweep lists can hold 10^4 values,
// made the largest sweeps take minutes.
std::vector<SweepPoint> expand_sweep(const YAML::Node& root, const std::vector<SweepAxis>& axes,
                                     const ValidationProgress& progress) {
  constexpr std::size_t kMaxSweepPoints = 10000;
  std::size_t total = 1;
  for (const auto& a : axes) {
    if (a.labels.size() > kMaxSweepPoints / total) {
      double asked = 1.0;
      for (const auto& b : axes) asked *= static_cast<double>(b.labels.size());
      throw ConfigError("sweep",
                        fmt::format("{:.4g} points; at most {} in one run (split the sweep)", asked, kMaxSweepPoints));
    }
    total *= a.labels.size();
  }
  YAML::Node point = YAML::Clone(root);
  point.remove("sweep");
  std::vector<std::vector<YAML::Node>> values(axes.size());  // [axis][k]
  if (!axes.empty()) {
    const YAML::Node sweep = find_node(root, "sweep");
    for (std::size_t a = 0; a < axes.size(); ++a)
      for (const auto& v : static_cast<const YAML::Node&>(sweep)[axes[a].path]) values[a].push_back(v);
  }
  std::vector<SweepPoint> points;
  points.reserve(total);
  for (std::size_t p = 0; p < total; ++p) {
    std::vector<std::string> labels(axes.size());
    std::size_t rest = p;
    for (std::size_t a = axes.size(); a-- > 0;) {
      const std::size_t k = rest % axes[a].labels.size();
      rest /= axes[a].labels.size();
      labels[a] = axes[a].labels[k];
      assign_node(point, axes[a].path, values[a][k]);
    }
    try {
      points.push_back(SweepPoint{labels, parse_point(point)});
    } catch (const ConfigError& e) {
      if (axes.empty()) throw;
      std::string where;
      for (std::size_t a = 0; a < axes.size(); ++a)
        where += fmt::format("{}{}={}", a ? ", " : "", axes[a].path, labels[a]);
      throw ConfigError(e.path(),
                        std::string(e.what()).substr(e.path().size() + 2) + " (at sweep point " + where + ")");
    }
    if (progress) progress(p + 1, total);
  }
  return points;
}

// `base`: the folder relative paths in the config are read against.
Experiment build(YAML::Node root, const std::vector<std::string>& sets, const fs::path& base,
                 const ValidationProgress& progress) {
  if (!root.IsMap()) throw ConfigError("<top level>", "expected a mapping of config keys");
  refuse_duplicate_keys(root, "");
  apply_sets(root, sets);
  resolve_paths(root, "", base);
  check_keys(root, "");
  // reproduction: a paper's claims about this experiment (experiments/papers/), read by scripts/reproduce.py,
  // carried into the manifest, never read by the engine; only its shape is checked here.
  if (const YAML::Node rep = root["reproduction"]; rep && !rep.IsMap())
    throw ConfigError("reproduction", "expected a mapping (paper, source, claims; see experiments/papers/)");
  Experiment ex;
  ex.axes = read_sweep(root);
  ex.resolved = YAML::Clone(root);
  ex.points = expand_sweep(root, ex.axes, progress);
  const ConfigReader r(root);
  config_detail::check_plot(r, ex);
  config_detail::check_scatter(r, ex);
  config_detail::check_summary(r, ex);
  config_detail::check_early_warning(r, ex);
  return ex;
}

// Any yaml-cpp exception that escapes the checks above (an odd document shape) is still a refusal of the config,
// never a crash.
Experiment build_checked(YAML::Node root, const std::vector<std::string>& sets, const fs::path& base,
                         const ValidationProgress& progress) {
  try {
    return build(root, sets, base, progress);
  } catch (const YAML::Exception& e) {
    throw ConfigError("", fmt::format("unexpected config structure: {}", e.what()));
  }
}

}  // namespace

const std::vector<KeySpec>& common_keys() {
  // (Made again when a family joins the table: model.family's choices name every family.)
  static std::vector<KeySpec> keys;
  static std::size_t families = 0;
  if (keys.empty() || families != family_table().size()) {
    keys = make_common_keys();
    families = family_table().size();
  }
  return keys;
}

Experiment load_experiment_text(const std::string& yaml_text, const std::vector<std::string>& sets,
                                const ValidationProgress& progress) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("", fmt::format("not valid YAML: {}", e.what()));
  }
  return build_checked(root, sets, fs::current_path(), progress);
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& sets,
                           const ValidationProgress& progress) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError("", fmt::format("cannot read config file \"{}\"", path));
  } catch (const YAML::Exception& e) {
    throw ConfigError("", fmt::format("{} is not valid YAML: {}", path, e.what()));
  }
  return build_checked(root, sets, fs::absolute(path).parent_path(), progress);
}

ValidationProgress terminal_progress() {
  if (!isatty(STDERR_FILENO)) return {};
  // The line shown is ended when the last copy of the printer goes, so that a refusal met halfway starts a line of
  // its own.
  struct Line {
    using Clock = std::chrono::steady_clock;
    Clock::time_point start = Clock::now(), last = start;
    bool open = false;
    ~Line() {
      if (open) std::fprintf(stderr, "\n");
    }
  };
  auto line = std::make_shared<Line>();
  return [line](std::size_t done, std::size_t total) {
    const auto now = Line::Clock::now();
    if (now - line->start < std::chrono::seconds(1) ||
        (done != total && now - line->last < std::chrono::milliseconds(200)))
      return;
    line->last = now;
    line->open = done != total;
    std::fprintf(stderr, "\rvalidated %zu/%zu sweep points%s", done, total, done == total ? "\n" : "");
    std::fflush(stderr);
  };
}

const char* regime_name(kernels::Regime r) {
  switch (r) {
    case kernels::Regime::kAccumulate:
      return "accumulate";
    case kernels::Regime::kAccumulateSubsample:
      return "accumulate_subsample";
    default:
      return "replace";
  }
}

}  // namespace ouro

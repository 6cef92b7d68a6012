#include "sim/engine/config.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "kernels/core/linalg.h"
#include "kernels/gmm/gmm.h"
#include "sim/analysis/early_warning.h"
#include "sim/analysis/summary.h"
#include "sim/families/family.h"
#include "sim/families/gmm/gmm_family.h"
#include "sim/families/ngram/corpus.h"

namespace ouro {
namespace {

// The keys a config may hold. A leaf's text says what it expects; sweep is
// special (its keys are paths of leaves).
const std::map<std::string, std::vector<std::string>>& schema() {
  static const std::map<std::string, std::vector<std::string>> s = {
      {"",
       {"name", "seed", "chains", "generations", "model", "truth", "data", "sampler", "metrics", "plot", "summary",
        "sweep", "early_warning", "reproduction"}},
      {"model",
       {"family", "dim", "estimator", "components", "covariance", "em", "order", "smoothing", "k", "discount"}},
      {"model.em", {"max_iter", "tol", "init", "restarts", "reg_covar"}},
      {"truth", {"mean", "cov", "isotropic", "weights", "means", "covs", "corpus", "zipf"}},
      {"truth.zipf", {"vocab", "exponent"}},
      {"sampler", {"temperature", "top_k", "top_p"}},
      {"data",
       {"samples", "regime", "real_fraction", "real_source", "synthetic_cap", "estimator_weight", "verifier",
        "max_draw_factor", "tail_upsample", "age_decay", "dedup", "dedup_resolution"}},
      {"data.tail_upsample", {"factor", "quantile"}},
      {"data.verifier", {"keep_plausible", "keep_implausible", "quantile"}},
      {"metrics", {"heldout", "dead_weight", "tail_count", "tail_share"}},
      {"plot", {"metrics", "center"}},
      {"summary", {"metric", "threshold"}},
      {"early_warning", {"detectors", "false_alarm", "horizon", "calibration_share", "baseline"}},
  };
  return s;
}

bool is_section(const std::string& path) { return schema().count(path) > 0; }

std::vector<std::string> leaf_paths() {
  std::vector<std::string> out;
  for (const auto& [section, keys] : schema())
    for (const auto& k : keys) {
      const std::string p = section.empty() ? k : section + "." + k;
      if (!is_section(p) && p != "sweep") out.push_back(p);
    }
  return out;
}

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

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

std::string join(const std::string& section, const std::string& key) {
  return section.empty() ? key : section + "." + key;
}

[[noreturn]] void unknown_key(const std::string& path, const std::vector<std::string>& candidates) {
  throw ConfigError(path, fmt::format("unknown key (did you mean {}?)", nearest(path, candidates)));
}

void check_keys(const YAML::Node& node, const std::string& section) {
  if (!node.IsMap()) throw ConfigError(section.empty() ? "<top level>" : section, "expected a mapping");
  std::vector<std::string> siblings;
  for (const auto& k : schema().at(section)) siblings.push_back(join(section, k));
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) throw ConfigError(section.empty() ? "<top level>" : section, "keys must be plain names");
    const std::string key = kv.first.as<std::string>();
    const std::string path = join(section, key);
    if (std::find(siblings.begin(), siblings.end(), path) == siblings.end()) unknown_key(path, siblings);
    if (is_section(path)) check_keys(kv.second, path);
  }
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  return parts;
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  YAML::Emitter e;
  e << YAML::Flow << n;
  return e.c_str();
}

// yaml-cpp's operator[] on a non-const node inserts; these walk without
// changing the tree.
YAML::Node find(const YAML::Node& root, const std::string& path) {
  YAML::Node cur = YAML::Clone(root);
  for (const auto& part : split_path(path)) {
    if (!cur.IsMap() || !cur[part]) return YAML::Node();
    cur = cur[part];
  }
  return cur;
}

void assign(YAML::Node root, const std::string& path, const YAML::Node& value) {
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

bool is_leaf_path(const std::string& path) {
  const auto leaves = leaf_paths();
  return std::find(leaves.begin(), leaves.end(), path) != leaves.end();
}

// ---- typed reads -----------------------------------------------------------

YAML::Node required(const YAML::Node& root, const std::string& path, const std::string& expected) {
  YAML::Node n = find(root, path);
  if (!n || n.IsNull()) throw ConfigError(path, "missing; expected " + expected);
  return n;
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

std::int64_t read_int(const YAML::Node& root, const std::string& path, std::int64_t lo, std::int64_t hi,
                      std::int64_t fallback, bool has_default) {
  const std::string expected = hi == std::numeric_limits<std::int64_t>::max()
                                   ? fmt::format("an integer >= {}", lo)
                                   : fmt::format("an integer in [{}, {}]", lo, hi);
  YAML::Node n = find(root, path);
  if (!n || n.IsNull()) {
    if (has_default) return fallback;
    throw ConfigError(path, "missing; expected " + expected);
  }
  const double v = as_number(n, path, expected);
  if (v != std::floor(v) || v < static_cast<double>(lo) || v > static_cast<double>(hi))
    throw ConfigError(path, fmt::format("expected {}, got {}", expected, n.Scalar()));
  return static_cast<std::int64_t>(v);
}

std::string read_enum(const YAML::Node& root, const std::string& path, const std::vector<std::string>& allowed,
                      const std::string& fallback) {
  YAML::Node n = find(root, path);
  std::string expected = "one of";
  for (const auto& a : allowed) expected += " " + a;
  if (!n || n.IsNull()) {
    if (!fallback.empty()) return fallback;
    throw ConfigError(path, "missing; expected " + expected);
  }
  if (!n.IsScalar()) throw ConfigError(path, fmt::format("expected {}, got {}", expected, scalar_text(n)));
  const std::string v = n.Scalar();
  if (std::find(allowed.begin(), allowed.end(), v) == allowed.end())
    throw ConfigError(path,
                      fmt::format("expected {}, got \"{}\" (did you mean {}?)", expected, v, nearest(v, allowed)));
  return v;
}

std::vector<double> read_vector(const YAML::Node& n, const std::string& path) {
  if (!n.IsSequence()) throw ConfigError(path, fmt::format("expected a list of numbers, got {}", scalar_text(n)));
  std::vector<double> v;
  for (std::size_t i = 0; i < n.size(); ++i) v.push_back(as_number(n[i], fmt::format("{}[{}]", path, i), "a number"));
  return v;
}

// A symmetric positive definite d x d matrix, or (allow_diagonal) a list of
// d positive variances for a diagonal one; row-major into out.
std::vector<double> read_covariance(const YAML::Node& n, const std::string& path, int d, bool allow_diagonal) {
  const std::string expected = fmt::format("a {0} x {0} symmetric positive definite matrix{1}", d,
                                           allow_diagonal ? fmt::format(" or a list of {} variances", d) : "");
  if (!n.IsSequence() || static_cast<int>(n.size()) != d)
    throw ConfigError(path, fmt::format("expected {} (model.dim = {}), got {}", expected, d, scalar_text(n)));
  std::vector<double> m;
  if (allow_diagonal && d > 0 && n[0].IsScalar()) {
    const auto v = read_vector(n, path);
    m.assign(d * d, 0.0);
    for (int i = 0; i < d; ++i) m[i * d + i] = v[i];
  } else {
    for (int i = 0; i < d; ++i) {
      auto row = read_vector(n[i], fmt::format("{}[{}]", path, i));
      if (static_cast<int>(row.size()) != d)
        throw ConfigError(fmt::format("{}[{}]", path, i),
                          fmt::format("expected {} numbers (model.dim), got {}", d, row.size()));
      m.insert(m.end(), row.begin(), row.end());
    }
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < i; ++j) {
        const double a = m[i * d + j], b = m[j * d + i];
        if (std::abs(a - b) > 1e-12 * std::max(std::abs(a), std::abs(b)))
          throw ConfigError(path, fmt::format("not symmetric: [{0}][{1}] = {2} but [{1}][{0}] = {3}", i, j, a, b));
      }
  }
  std::vector<double> l(d * d);
  if (!kernels::cholesky(d, m.data(), l.data())) throw ConfigError(path, "not positive definite");
  return m;
}

// Scales far outside these overflow the sums of squares or lose the mean
// against its spread in double precision.
void check_scales(const std::string& var_path, const std::string& mean_path, int d, const double* mean,
                  const double* cov) {
  for (int i = 0; i < d; ++i) {
    const double v = cov[i * d + i];
    if (!(v >= 1e-100 && v <= 1e100))
      throw ConfigError(var_path, fmt::format("variance {} in dimension {} is outside [1e-100, 1e100]", v, i));
    if (std::abs(mean[i]) > 1e12 * std::sqrt(v))
      throw ConfigError(
          mean_path, fmt::format("mean {} in dimension {} is more than 1e12 standard deviations from 0", mean[i], i));
  }
}

std::string kjv_path_or_error() {
  try {
    return kjv_path();
  } catch (const CorpusError& e) {
    throw ConfigError("truth.corpus", e.what());
  }
}

// Keys that belong to one family only are refused in the other's config.
void refuse_other_family(const YAML::Node& root, const std::string& family) {
  static const std::vector<std::pair<std::string, std::string>> owned = {{"model.estimator", "gaussian"},
                                                                         {"truth.mean", "gaussian"},
                                                                         {"truth.cov", "gaussian"},
                                                                         {"truth.isotropic", "gaussian"},
                                                                         {"model.components", "gmm"},
                                                                         {"model.covariance", "gmm"},
                                                                         {"model.em", "gmm"},
                                                                         {"truth.weights", "gmm"},
                                                                         {"truth.means", "gmm"},
                                                                         {"truth.covs", "gmm"},
                                                                         {"metrics.heldout", "gaussian gmm ngram"},
                                                                         {"metrics.dead_weight", "gmm"},
                                                                         {"model.order", "ngram"},
                                                                         {"model.smoothing", "ngram"},
                                                                         {"model.k", "ngram"},
                                                                         {"model.discount", "ngram"},
                                                                         {"truth.corpus", "ngram"},
                                                                         {"truth.zipf", "ngram"},
                                                                         {"sampler", "ngram"},
                                                                         {"metrics.tail_count", "ngram"},
                                                                         {"metrics.tail_share", "ngram"},
                                                                         {"model.dim", "gaussian gmm"},
                                                                         {"data.estimator_weight", "gaussian"},
                                                                         {"data.verifier", "gaussian gmm ngram"},
                                                                         {"data.max_draw_factor", "gaussian gmm ngram"},
                                                                         {"data.dedup", "gaussian gmm ngram"},
                                                                         {"data.dedup_resolution", "gaussian gmm"},
                                                                         {"data.tail_upsample", "gaussian gmm ngram"},
                                                                         {"data.age_decay", "gaussian gmm ngram"}};
  for (const auto& [path, owners] : owned) {
    const YAML::Node n = find(root, path);
    if (n && !n.IsNull() && (" " + owners + " ").find(" " + family + " ") == std::string::npos) {
      std::string who = owners;
      for (std::size_t at = who.find(' '); at != std::string::npos; at = who.find(' ', at + 4))
        who.replace(at, 1, " or ");
      throw ConfigError(path, fmt::format("applies to model.family {} only (this config has {})", who, family));
    }
  }
}

double read_number(const YAML::Node& root, const std::string& path, double lo, double hi, double fallback,
                   const std::string& expected) {
  YAML::Node n = find(root, path);
  if (!n || n.IsNull()) return fallback;
  const double v = as_number(n, path, expected);
  if (!(v >= lo && v <= hi)) throw ConfigError(path, fmt::format("expected {}, got {}", expected, n.Scalar()));
  return v;
}

void parse_gaussian_truth(const YAML::Node& root, PointConfig& c) {
  const int d = c.dim;
  // truth: {mean, cov} or {isotropic: s}.
  YAML::Node truth = required(root, "truth", "{mean: [...], cov: [[...]]} or {isotropic: variance}");
  if (!truth.IsMap()) throw ConfigError("truth", "expected {mean: [...], cov: [[...]]} or {isotropic: variance}");
  if (truth["isotropic"]) {
    if (truth["cov"]) throw ConfigError("truth.isotropic", "give either truth.isotropic or truth.cov, not both");
    const double s = as_number(truth["isotropic"], "truth.isotropic", "a variance > 0");
    if (!(s > 0.0)) throw ConfigError("truth.isotropic", fmt::format("expected a variance > 0, got {}", s));
    c.truth_cov.assign(d * d, 0.0);
    for (int i = 0; i < d; ++i) c.truth_cov[i * d + i] = s;
    c.truth_mean.assign(d, 0.0);
    if (truth["mean"]) c.truth_mean = read_vector(truth["mean"], "truth.mean");
  } else {
    c.truth_mean = read_vector(required(root, "truth.mean", "a list of model.dim numbers"), "truth.mean");
    c.truth_cov =
        read_covariance(required(root, "truth.cov", "a model.dim x model.dim symmetric positive definite matrix"),
                        "truth.cov", d, false);
  }
  if (static_cast<int>(c.truth_mean.size()) != d)
    throw ConfigError("truth.mean", fmt::format("expected {} numbers (model.dim), got {}", d, c.truth_mean.size()));
  check_scales("truth", "truth.mean", d, c.truth_mean.data(), c.truth_cov.data());
  c.heldout = static_cast<int>(read_int(root, "metrics.heldout", 1, 10000000, 1000, true));
}

// The mixture family: model.components, model.covariance, model.em and a truth
// {weights, means, covs}.
void parse_gmm(const YAML::Node& root, PointConfig& c) {
  const int d = c.dim;
  c.components = static_cast<int>(read_int(root, "model.components", 1, kernels::kGmmMaxComponents, 0, false));
  c.em.diag = read_enum(root, "model.covariance", {"full", "diag"}, "full") == "diag";
  c.em.max_iter = static_cast<int>(read_int(root, "model.em.max_iter", 1, 100000, 100, true));
  c.em.tol = read_number(root, "model.em.tol", 0.0, 1e300, 1e-3, "a tolerance >= 0");
  c.em.init = read_enum(root, "model.em.init", {"warm", "kmeans++"}, "warm") == "warm" ? kernels::EmInit::kWarm
                                                                                       : kernels::EmInit::kKmeansPP;
  c.em.restarts = static_cast<int>(read_int(root, "model.em.restarts", 1, 1000, 1, true));
  c.em.reg_covar = read_number(root, "model.em.reg_covar", 0.0, 1e300, 1e-6, "a ridge >= 0");

  const std::string shape = "{weights: [...], means: [[...], ...], covs: [...]}";
  YAML::Node truth = required(root, "truth", shape);
  if (!truth.IsMap()) throw ConfigError("truth", "expected " + shape);
  c.truth_weights = read_vector(required(root, "truth.weights", "a list of component weights"), "truth.weights");
  const int K0 = static_cast<int>(c.truth_weights.size());
  if (K0 < 1 || K0 > kernels::kGmmMaxComponents)
    throw ConfigError("truth.weights", fmt::format("expected 1 to {} weights, got {}", kernels::kGmmMaxComponents, K0));
  double sum = 0.0;
  for (int k = 0; k < K0; ++k) {
    if (!(c.truth_weights[k] > 0.0))
      throw ConfigError(fmt::format("truth.weights[{}]", k),
                        fmt::format("expected a weight > 0, got {}", c.truth_weights[k]));
    sum += c.truth_weights[k];
  }
  if (std::abs(sum - 1.0) > 1e-6) throw ConfigError("truth.weights", fmt::format("weights sum to {}, expected 1", sum));
  for (auto& w : c.truth_weights) w /= sum;
  YAML::Node means = required(root, "truth.means", fmt::format("{} lists of {} numbers", K0, d));
  YAML::Node covs = required(root, "truth.covs", fmt::format("{} covariances", K0));
  if (!means.IsSequence() || static_cast<int>(means.size()) != K0)
    throw ConfigError("truth.means", fmt::format("expected {} means (one per weight), got {}", K0, scalar_text(means)));
  if (!covs.IsSequence() || static_cast<int>(covs.size()) != K0)
    throw ConfigError("truth.covs",
                      fmt::format("expected {} covariances (one per weight), got {}", K0, scalar_text(covs)));
  for (int k = 0; k < K0; ++k) {
    const std::string mp = fmt::format("truth.means[{}]", k), cp = fmt::format("truth.covs[{}]", k);
    const auto mu = read_vector(means[k], mp);
    if (static_cast<int>(mu.size()) != d)
      throw ConfigError(mp, fmt::format("expected {} numbers (model.dim), got {}", d, mu.size()));
    const auto cov = read_covariance(covs[k], cp, d, true);
    check_scales(cp, mp, d, mu.data(), cov.data());
    c.truth_means.insert(c.truth_means.end(), mu.begin(), mu.end());
    c.truth_covs.insert(c.truth_covs.end(), cov.begin(), cov.end());
  }
  c.heldout = static_cast<int>(read_int(root, "metrics.heldout", 1, 10000000, 1000, true));
  c.dead_weight = read_number(root, "metrics.dead_weight", 0.0, 1.0, 1e-3, "a weight in [0, 1]");
  if (const std::string problem = gmm_truth_problem(c); !problem.empty()) {
    const auto colon = problem.find(": ");
    throw ConfigError(problem.substr(0, colon), problem.substr(colon + 2));
  }
}

// The n-gram family: model.order, model.smoothing, a corpus or zipf truth,
// the sampler.
void parse_ngram(const YAML::Node& root, PointConfig& c) {
  c.order = static_cast<int>(read_int(root, "model.order", 1, 3, 1, true));
  c.smoothing = read_enum(root, "model.smoothing", {"mle", "add_k", "kneser_ney"}, "mle");
  if (const YAML::Node n = find(root, "model.k"); n && !n.IsNull() && c.smoothing != "add_k")
    throw ConfigError("model.k", "applies to smoothing add_k only");
  if (const YAML::Node n = find(root, "model.discount"); n && !n.IsNull() && c.smoothing != "kneser_ney")
    throw ConfigError("model.discount", "applies to smoothing kneser_ney only");
  c.add_k = read_number(root, "model.k", 1e-300, 1e300, 1.0, "a pseudo-count k > 0");
  if (!(c.add_k > 0.0)) throw ConfigError("model.k", "expected a pseudo-count k > 0");
  c.discount = read_number(root, "model.discount", 0.0, 1.0, 0.75, "a discount in (0, 1]");
  if (!(c.discount > 0.0)) throw ConfigError("model.discount", "expected a discount in (0, 1]");
  c.temperature = read_number(root, "sampler.temperature", 1e-3, 1e3, 1.0, "a temperature in [0.001, 1000]");
  c.top_k = static_cast<int>(read_int(root, "sampler.top_k", 0, 100000000, 0, true));
  c.top_p = read_number(root, "sampler.top_p", 0.0, 1.0, 1.0, "a probability in (0, 1]");
  if (!(c.top_p > 0.0)) throw ConfigError("sampler.top_p", "expected a probability in (0, 1], got 0");
  c.tail_count = static_cast<int>(read_int(root, "metrics.tail_count", 1, 1000000000, 5, true));
  c.tail_share = read_number(root, "metrics.tail_share", 0.0, 1.0, 0.1, "a share in (0, 1)");
  if (!(c.tail_share > 0.0 && c.tail_share < 1.0))
    throw ConfigError("metrics.tail_share", "expected a share in (0, 1)");
  c.heldout = static_cast<int>(read_int(root, "metrics.heldout", 1, 100000000, 10000, true));

  const std::string shape = "{corpus: kjv}, {corpus: PATH} or {zipf: {vocab: V, exponent: s}}";
  YAML::Node truth = required(root, "truth", shape);
  if (!truth.IsMap()) throw ConfigError("truth", "expected " + shape);
  const YAML::Node corpus = find(root, "truth.corpus"), zipf = find(root, "truth.zipf");
  if ((corpus && !corpus.IsNull()) == (zipf && !zipf.IsNull()))
    throw ConfigError("truth", "expected exactly one of truth.corpus and truth.zipf");
  if (corpus && !corpus.IsNull()) {
    if (!corpus.IsScalar() || corpus.Scalar().empty())
      throw ConfigError("truth.corpus", "expected kjv or the path of a text file, got " + scalar_text(corpus));
    const std::string path = corpus.Scalar() == "kjv" ? kjv_path_or_error() : corpus.Scalar();
    try {
      load_corpus_cached(path);  // refused now (exit 2), not after the run has started
    } catch (const CorpusError& e) {
      throw ConfigError("truth.corpus", e.what());
    }
    c.corpus = path;
    const Corpus& text = load_corpus_cached(path);
    const double V = static_cast<double>(text.vocab.size());
    if (std::pow(V + 1.0, c.order) >= 9.2e18)
      throw ConfigError("model.order", fmt::format("a vocabulary of {} types is too large for order {} (packed keys)",
                                                   text.vocab.size(), c.order));
    bool tail = false;
    for (std::size_t w = 2; w < text.train_count.size() && !tail; ++w)
      tail = text.train_count[w] <= static_cast<std::uint64_t>(c.tail_count);
    if (!tail)
      throw ConfigError(
          "metrics.tail_count",
          fmt::format("no word of the corpus occurs at most {} times in training: the tail set would be empty",
                      c.tail_count));
    for (const char* key : {"metrics.heldout", "metrics.tail_share"})
      if (const YAML::Node n = find(root, key); n && !n.IsNull())
        throw ConfigError(key,
                          "applies to a zipf truth only (a corpus has its own held-out text and a tail set by count)");
  } else {
    c.zipf_vocab = static_cast<int>(read_int(root, "truth.zipf.vocab", 2, 100000000, 0, false));
    c.zipf_exponent = read_number(root, "truth.zipf.exponent", 0.0, 100.0, 1.0, "an exponent in (0, 100]");
    if (!(c.zipf_exponent > 0.0)) throw ConfigError("truth.zipf.exponent", "expected an exponent in (0, 100]");
    if (c.order == 3) throw ConfigError("model.order", "a zipf truth is of order 1 or 2 (a Zipfian Markov chain)");
    if (c.order == 2 && find(root, "data.regime") && find(root, "data.regime").IsScalar() &&
        find(root, "data.regime").Scalar() == "accumulate_subsample")
      throw ConfigError(
          "data.regime",
          "accumulate_subsample is not implemented for a Zipfian Markov chain truth (one sequence per generation)");
    if (const YAML::Node n = find(root, "metrics.tail_count"); n && !n.IsNull())
      throw ConfigError("metrics.tail_count",
                        "applies to a corpus truth only (a zipf truth's tail set is by metrics.tail_share)");
    if (c.order == 2 && c.zipf_vocab > 5000)
      throw ConfigError(
          "truth.zipf.vocab",
          fmt::format("at most 5000 types for a Zipfian Markov chain (its table is V^2), got {}", c.zipf_vocab));
  }
}

// ---- one point ---------------------------------------------------------------

PointConfig parse_point(const YAML::Node& root) {
  PointConfig c;
  {
    YAML::Node n = find(root, "name");
    if (n && !n.IsNull() && !n.IsScalar()) throw ConfigError("name", "expected a name, got " + scalar_text(n));
    c.name = (n && n.IsScalar()) ? n.Scalar() : "experiment";
    for (char ch : c.name)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
        throw ConfigError("name", fmt::format("expected letters, digits, '-', '_' or '.', got \"{}\"", c.name));
  }
  c.seed = static_cast<std::uint32_t>(read_int(root, "seed", 0, 0xFFFFFFFFll, 1, true));
  c.chains = read_int(root, "chains", 1, 0xFFFFFFFFll, 0, false);
  c.generations = static_cast<int>(read_int(root, "generations", 1, 1000000, 0, false));
  c.family = read_enum(root, "model.family", {"gaussian", "gmm", "ngram"}, "");
  refuse_other_family(root, c.family);
  c.dim =
      static_cast<int>(read_int(root, "model.dim", 1, c.family == "gmm" ? kernels::kGmmMaxDim : OURO_MAX_DIM, 1, true));
  c.estimator = read_enum(root, "model.estimator", {"mle", "unbiased"}, "mle") == "unbiased"
                    ? kernels::Estimator::kUnbiased
                    : kernels::Estimator::kMle;

  if (c.family == "gaussian") parse_gaussian_truth(root, c);
  else if (c.family == "gmm") parse_gmm(root, c);
  else parse_ngram(root, c);

  const std::int64_t min_samples = c.family == "gaussian" ? std::max(2, c.dim + 1) : 2;
  c.samples = static_cast<int>(read_int(root, "data.samples", min_samples, 100000000, 0, false));
  const std::string regime =
      read_enum(root, "data.regime", {"replace", "accumulate", "accumulate_subsample"}, "replace");
  c.regime = regime == "accumulate"             ? kernels::Regime::kAccumulate
             : regime == "accumulate_subsample" ? kernels::Regime::kAccumulateSubsample
                                                : kernels::Regime::kReplace;
  {
    YAML::Node n = find(root, "data.real_fraction");
    c.real_fraction = (n && !n.IsNull()) ? as_number(n, "data.real_fraction", "a fraction in [0, 1]") : 0.0;
    if (c.real_fraction < 0.0 || c.real_fraction > 1.0)
      throw ConfigError("data.real_fraction", fmt::format("expected a fraction in [0, 1], got {}", c.real_fraction));
  }
  // Mitigations on the real data (README, "Mitigation strategies"): a cap on
  // the synthetic share raises the real share to 1 - cap where it is lower;
  // a fixed real source reuses generation 1's real sample.
  c.synthetic_cap = read_number(root, "data.synthetic_cap", 0.0, 1.0, 1.0, "a share in [0, 1]");
  c.real_fraction = std::max(c.real_fraction, 1.0 - c.synthetic_cap);
  c.real_source = read_enum(root, "data.real_source", {"fresh", "fixed"}, "fresh") == "fixed"
                      ? kernels::RealSource::kFixed
                      : kernels::RealSource::kFresh;
  c.real_count = static_cast<int>(std::lround(c.real_fraction * c.samples));
  c.estimator_weight = read_number(root, "data.estimator_weight", 0.0, 1.0, -1.0, "a weight in [0, 1]");
  if (c.estimator_weight >= 0.0 && c.regime != kernels::Regime::kReplace)
    throw ConfigError("data.estimator_weight",
                      "is defined for data.regime replace (one generation's real and "
                      "synthetic points) only");
  // The verifier (README, "Mitigation strategies"): every key given, a keep
  // probability somewhere above 0; every family and regime.
  if (const YAML::Node v = find(root, "data.verifier"); v && !v.IsNull()) {
    for (const char* key : {"keep_plausible", "keep_implausible", "quantile"})
      if (const YAML::Node k = find(root, std::string("data.verifier.") + key); !k || k.IsNull())
        throw ConfigError(std::string("data.verifier.") + key,
                          "missing (the verifier needs keep_plausible, "
                          "keep_implausible and quantile)");
    c.verifier = true;
    c.keep_plausible = read_number(root, "data.verifier.keep_plausible", 0.0, 1.0, 1.0, "a probability in [0, 1]");
    c.keep_implausible = read_number(root, "data.verifier.keep_implausible", 0.0, 1.0, 1.0, "a probability in [0, 1]");
    c.verifier_quantile = read_number(root, "data.verifier.quantile", 1e-9, 1.0 - 1e-9, 0.0, "a share in (0, 1)");
    for (const auto& [key, p] : {std::pair<const char*, double>{"keep_plausible", c.keep_plausible},
                                 std::pair<const char*, double>{"keep_implausible", c.keep_implausible}})
      if (p > 0.0 && p < std::ldexp(1.0, -32))
        throw ConfigError(std::string("data.verifier.") + key,
                          fmt::format("{} is below 2^-32, the resolution of the keep decision (use 0 or more)", p));
    if (c.keep_plausible == 0.0 && c.keep_implausible == 0.0)
      throw ConfigError("data.verifier", "keeps nothing (keep_plausible and keep_implausible are both 0)");
    // (Every regime: an n-gram sample is filtered as it is drawn; a
    // mixture's pooled generations, and the points a Gaussian's subsample
    // chooses, are rebuilt with their filters; Gaussians pool the kept
    // points' statistics under accumulate.)
  }
  c.max_draw_factor = static_cast<int>(read_int(root, "data.max_draw_factor", 1, 1000, 10, true));
  if (const YAML::Node u = find(root, "data.tail_upsample"); u && !u.IsNull()) {
    // N-grams weigh the tail token set of the metrics (metrics.tail_count,
    // metrics.tail_share): no quantile. The continuous families need one.
    const bool ngram = c.family == "ngram";
    for (const char* key : {"factor", "quantile"}) {
      const YAML::Node k = find(root, std::string("data.tail_upsample.") + key);
      const bool given = k && !k.IsNull();
      if (ngram && given && std::string(key) == "quantile")
        throw ConfigError("data.tail_upsample.quantile",
                          "does not apply to n-grams, whose tail is the token set of "
                          "metrics.tail_count (corpus) or metrics.tail_share (zipf)");
      if (!given && !(ngram && std::string(key) == "quantile"))
        throw ConfigError(
            std::string("data.tail_upsample.") + key,
            ngram ? "missing (tail_upsample needs a factor)" : "missing (tail_upsample needs factor and quantile)");
    }
    c.tail_upsample = true;
    c.tail_factor = read_number(root, "data.tail_upsample.factor", 1e-6, 1e6, 1.0, "a weight in [1e-6, 1e6]");
    if (!ngram)
      c.tail_quantile = read_number(root, "data.tail_upsample.quantile", 1e-9, 1.0 - 1e-9, 0.0, "a share in (0, 1)");
  }
  c.age_decay = read_number(root, "data.age_decay", 1e-6, 1.0, 1.0, "a decay in (0, 1]");
  if (c.age_decay != 1.0 && c.regime == kernels::Regime::kReplace)
    throw ConfigError("data.age_decay",
                      "weighs old data, which data.regime replace does not keep (use accumulate or "
                      "accumulate_subsample)");
  if (const YAML::Node n = find(root, "data.dedup"); n && !n.IsNull()) {
    const std::string v = n.IsScalar() ? n.Scalar() : "";
    if (v != "true" && v != "false") throw ConfigError("data.dedup", "expected true or false, got " + scalar_text(n));
    c.dedup = v == "true";
    if (c.dedup && c.family == "ngram" && c.corpus.empty())
      throw ConfigError("data.dedup",
                        "drops repeated synthetic sentences, and a zipf truth's samples are single "
                        "tokens, not sentences (use a corpus truth)");
    if (c.dedup && c.family != "ngram") {
      // Continuous points repeat only after rounding: to the grid of spacing
      // dedup_resolution.
      if (const YAML::Node r = find(root, "data.dedup_resolution"); !r || r.IsNull())
        throw ConfigError("data.dedup_resolution",
                          "missing (a continuous sample is a duplicate of another only after "
                          "rounding; give the grid spacing)");
    }
  }
  if (const YAML::Node r = find(root, "data.dedup_resolution"); r && !r.IsNull()) {
    if (!c.dedup) throw ConfigError("data.dedup_resolution", "is the grid of data.dedup, which is off");
    c.dedup_resolution =
        read_number(root, "data.dedup_resolution", 1e-12, 1e12, 0.0, "a grid spacing in [1e-12, 1e12]");
  }
  if (!c.verifier && !c.dedup && find(root, "data.max_draw_factor") && !find(root, "data.max_draw_factor").IsNull())
    throw ConfigError("data.max_draw_factor",
                      "bounds the refill of filtered data; it needs data.verifier or data.dedup");
  // The pool of accumulate_subsample holds generations * samples points; their
  // positions must fit the selection counter.
  if (c.regime == kernels::Regime::kAccumulateSubsample && static_cast<double>(c.generations) * c.samples > 9.0e15)
    throw ConfigError("generations", "generations * data.samples is too large for accumulate_subsample");
  return c;
}

// plot: {metrics: [names], center: mean|median}, read by
// scripts/plot_collapse.py from manifest.json; checked here so that a typo
// in a metric's name is refused before the run, not after it.
void check_plot(const YAML::Node& root, const Experiment& ex) {
  read_enum(root, "plot.center", {"mean", "median"}, "mean");
  const YAML::Node m = find(root, "plot.metrics");
  if (!m || m.IsNull()) return;
  if (!m.IsSequence()) throw ConfigError("plot.metrics", "expected a list of metric names, got " + scalar_text(m));
  std::vector<std::string> known;
  for (const auto& p : ex.points)
    for (const auto& n : metric_names(p.config))
      if (std::find(known.begin(), known.end(), n) == known.end()) known.push_back(n);
  for (std::size_t i = 0; i < m.size(); ++i) {
    const std::string path = fmt::format("plot.metrics[{}]", i);
    if (!m[i].IsScalar()) throw ConfigError(path, "expected a metric name, got " + scalar_text(m[i]));
    const std::string name = m[i].Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end())
      throw ConfigError(
          path, fmt::format("no metric \"{}\" in this experiment (did you mean {}?)", name, nearest(name, known)));
  }
}

// summary: {metric, threshold} (sim/analysis/summary.h): one metric that every point
// has and that moves one way under collapse, and a finite threshold; the
// family's default when absent.
void check_summary(const YAML::Node& root, Experiment& ex) {
  auto given = [&](const char* path) {
    const YAML::Node n = find(root, path);
    return n && !n.IsNull();
  };
  const YAML::Node m = find(root, "summary.metric");
  if (!given("summary.metric")) {
    if (given("summary.threshold")) throw ConfigError("summary.metric", "missing (summary.threshold needs it)");
    ex.summary = default_summary(ex.points.front().config);
  } else {
    if (!m.IsScalar()) throw ConfigError("summary.metric", "expected a metric name, got " + scalar_text(m));
    ex.summary.metric = m.Scalar();
    if (!given("summary.threshold"))
      throw ConfigError("summary.threshold", "missing (the value that counts as collapse)");
    ex.summary.threshold = read_number(root, "summary.threshold", -1e300, 1e300, 0.0, "a finite number");
  }
  for (const auto& p : ex.points) {
    const auto names = metric_names(p.config);
    if (std::find(names.begin(), names.end(), ex.summary.metric) == names.end())
      throw ConfigError("summary.metric",
                        fmt::format("no metric \"{}\" in this experiment's {} points (did you mean "
                                    "{}?)",
                                    ex.summary.metric, p.config.family, nearest(ex.summary.metric, names)));
  }
  if (collapse_direction(ex.summary.metric) == Direction::kNone)
    throw ConfigError("summary.metric", fmt::format("{} does not move one way under collapse; choose a metric such as "
                                                    "var_ratio, tail_mass, vocab_survival, kl or heldout_ppl",
                                                    ex.summary.metric));
}

// early_warning (sim/analysis/early_warning.h): detectors the family has, a target
// false-alarm rate in (0, 1), a horizon >= 0, and a calibration share that
// leaves at least one chain on each side at every point.
void check_early_warning(const YAML::Node& root, Experiment& ex) {
  const YAML::Node n = find(root, "early_warning");
  if (!n || n.IsNull()) return;
  if (!n.IsMap()) throw ConfigError("early_warning", "expected a mapping such as {detectors: [diversity, canary]}");
  EarlyWarningSettings& s = ex.early_warning;
  s.on = true;
  const PointConfig& first = ex.points.front().config;
  std::vector<std::string> offered;
  for (const auto& d : family_detectors(first)) offered.push_back(d.name);
  if (const YAML::Node d = n["detectors"]; d && !d.IsNull()) {
    if (!d.IsSequence() || d.size() == 0)
      throw ConfigError("early_warning.detectors",
                        "expected a list of detectors, some of " + fmt::format("{}", fmt::join(offered, ", ")));
    for (std::size_t i = 0; i < d.size(); ++i) {
      const std::string path = fmt::format("early_warning.detectors[{}]", i);
      if (!d[i].IsScalar()) throw ConfigError(path, "expected a detector name, got " + scalar_text(d[i]));
      const std::string name = d[i].Scalar();
      if (std::find(offered.begin(), offered.end(), name) == offered.end())
        throw ConfigError(path, fmt::format("no detector \"{}\" (the {} family has {})", name, first.family,
                                            fmt::join(offered, ", ")));
      if (std::find(s.detectors.begin(), s.detectors.end(), name) != s.detectors.end())
        throw ConfigError(path, fmt::format("{} is listed twice", name));
      s.detectors.push_back(name);
    }
  }
  s.false_alarm = read_number(root, "early_warning.false_alarm", 1e-300, 0.999999, 0.05, "a rate in (0, 1)");
  s.horizon = static_cast<int>(read_int(root, "early_warning.horizon", 0, 1000000, 5, true));
  s.calibration_share =
      read_number(root, "early_warning.calibration_share", 1e-300, 0.999999, 0.5, "a share in (0, 1)");
  s.previous = read_enum(root, "early_warning.baseline", {"first", "previous"}, "first") == "previous";
  for (const auto& p : ex.points) {
    const auto cal = static_cast<std::int64_t>(std::floor(s.calibration_share * static_cast<double>(p.config.chains)));
    if (cal < 1 || cal >= p.config.chains)
      throw ConfigError("early_warning.calibration_share",
                        fmt::format("{} of {} chains leaves no chain to {} (each side needs at least one)",
                                    s.calibration_share, p.config.chains, cal < 1 ? "calibrate on" : "evaluate"));
    if (p.config.generations < 2)
      throw ConfigError("early_warning",
                        "needs generations >= 2 (a detector compares a generation with an earlier one)");
  }
}

Experiment build(YAML::Node root, const std::vector<std::string>& sets) {
  if (!root.IsMap()) throw ConfigError("<top level>", "expected a mapping of config keys");
  // --set overrides, each fixing (and un-sweeping) its key.
  for (const auto& s : sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw ConfigError("--set " + s, "expected key.path=value");
    const std::string path = s.substr(0, eq);
    if (!is_leaf_path(path) && !(is_section(path) && !path.empty())) unknown_key(path, leaf_paths());
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
    assign(root, path, value);
    if (root["sweep"] && root["sweep"].IsMap() && root["sweep"][path]) root["sweep"].remove(path);
  }
  check_keys(root, "");
  // reproduction: a paper's claims about this experiment (experiments/papers/),
  // read by scripts/reproduce.py, carried into the manifest, never read by the
  // engine; only its shape is checked here.
  if (const YAML::Node r = root["reproduction"]; r && !r.IsMap())
    throw ConfigError("reproduction", "expected a mapping (paper, source, claims; see experiments/papers/)");

  Experiment ex;
  if (YAML::Node sweep = root["sweep"]) {
    if (!sweep.IsMap() && !sweep.IsNull()) throw ConfigError("sweep", "expected a mapping of key.path: [values]");
    if (sweep.IsMap())
      for (const auto& kv : sweep) {
        const std::string path = kv.first.as<std::string>();
        if (!is_leaf_path(path) || path == "name") unknown_key("sweep." + path, leaf_paths());
        if (path.rfind("plot.", 0) == 0) throw ConfigError("sweep." + path, "plot settings cannot be swept");
        if (path == "reproduction") throw ConfigError("sweep." + path, "the reproduction section cannot be swept");
        if (path.rfind("summary.", 0) == 0)
          throw ConfigError("sweep." + path, "summary settings cannot be swept (one definition for every point)");
        if (path.rfind("early_warning.", 0) == 0)
          throw ConfigError("sweep." + path, "early_warning settings cannot be swept (one definition for every point)");
        if (!kv.second.IsSequence() || kv.second.size() == 0)
          throw ConfigError("sweep." + path, "expected a non-empty list of values");
        SweepAxis axis{path, {}};
        for (const auto& v : kv.second) axis.labels.push_back(scalar_text(v));
        ex.axes.push_back(axis);
      }
  }
  ex.resolved = YAML::Clone(root);

  // Cross product, first axis slowest. Its size is bounded before anything is
  // multiplied out: a few lines of YAML can ask for 10^8 points (validating
  // them would exhaust memory, not refuse the config), and 32 axes of 4 values
  // would wrap a size_t product to 0 points, accepting a config none of whose
  // values was checked.
  constexpr std::size_t kMaxSweepPoints = 10000;
  std::size_t total = 1;
  for (const auto& a : ex.axes) {
    if (a.labels.size() > kMaxSweepPoints / total) {
      double asked = 1.0;
      for (const auto& b : ex.axes) asked *= static_cast<double>(b.labels.size());
      throw ConfigError("sweep",
                        fmt::format("{:.4g} points; at most {} in one run (split the sweep)", asked, kMaxSweepPoints));
    }
    total *= a.labels.size();
  }
  for (std::size_t p = 0; p < total; ++p) {
    YAML::Node point = YAML::Clone(root);
    point.remove("sweep");
    std::vector<std::string> labels(ex.axes.size());
    std::size_t rest = p;
    for (std::size_t a = ex.axes.size(); a-- > 0;) {
      const std::size_t k = rest % ex.axes[a].labels.size();
      rest /= ex.axes[a].labels.size();
      labels[a] = ex.axes[a].labels[k];
      assign(point, ex.axes[a].path, YAML::Clone(root["sweep"][ex.axes[a].path][k]));
    }
    try {
      ex.points.push_back(SweepPoint{labels, parse_point(point)});
    } catch (const ConfigError& e) {
      if (ex.axes.empty()) throw;
      std::string where;
      for (std::size_t a = 0; a < ex.axes.size(); ++a)
        where += fmt::format("{}{}={}", a ? ", " : "", ex.axes[a].path, labels[a]);
      throw ConfigError(e.path(),
                        std::string(e.what()).substr(e.path().size() + 2) + " (at sweep point " + where + ")");
    }
  }
  check_plot(root, ex);
  check_summary(root, ex);
  check_early_warning(root, ex);
  return ex;
}

}  // namespace

namespace {

// Any yaml-cpp exception that escapes the checks above (an odd document
// shape) is still a refusal of the config, never a crash.
Experiment build_checked(YAML::Node root, const std::vector<std::string>& sets) {
  try {
    return build(root, sets);
  } catch (const YAML::Exception& e) {
    throw ConfigError("", fmt::format("unexpected config structure: {}", e.what()));
  }
}

}  // namespace

Experiment load_experiment_text(const std::string& yaml_text, const std::vector<std::string>& sets) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("", fmt::format("not valid YAML: {}", e.what()));
  }
  return build_checked(root, sets);
}

Experiment load_experiment(const std::string& path, const std::vector<std::string>& sets) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError("", fmt::format("cannot read config file \"{}\"", path));
  } catch (const YAML::Exception& e) {
    throw ConfigError("", fmt::format("{} is not valid YAML: {}", path, e.what()));
  }
  return build_checked(root, sets);
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

const char* estimator_name(kernels::Estimator e) { return e == kernels::Estimator::kUnbiased ? "unbiased" : "mle"; }

}  // namespace ouro

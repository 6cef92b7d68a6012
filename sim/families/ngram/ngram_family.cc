// The n-gram family's row of the family table: its keys, truths, metrics, theory column, memory estimate and the
// backends of kernels/ngram/ngram_backend.h.
#include "sim/families/ngram/ngram_family.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

#include <fmt/format.h>

#include "sim/families/ngram/corpus.h"
#include "sim/families/ngram/wright_fisher.h"
#include "sim/parallel/backend.h"

namespace ouro {

namespace {

// p_r proportional to r^-s, r = 1..V (token id r - 1).
std::vector<double> zipf_probabilities(int V, double s) {
  std::vector<double> p(V);
  double z = 0.0;
  for (int r = V; r >= 1; --r) z += std::pow(static_cast<double>(r), -s);  // small terms first
  for (int r = 1; r <= V; ++r) p[r - 1] = std::pow(static_cast<double>(r), -s) / z;
  return p;
}

}  // namespace

namespace {

// The settings of a spec, without its truth's tables (no corpus is read).
kernels::NgramBatchSpec ngram_settings(const PointConfig& c) {
  using namespace kernels;
  const auto& g = c.settings<NgramSettings>();
  NgramBatchSpec s;
  s.order = g.order;
  s.smoothing = g.smoothing == "add_k"        ? Smoothing::kAddK
                : g.smoothing == "kneser_ney" ? Smoothing::kKneserNey
                                              : Smoothing::kMle;
  s.k = g.add_k;
  s.discount = g.discount;
  s.sampler = SamplerSettings{g.temperature, g.top_k, g.top_p};
  s.regime = c.regime;
  s.real_source = c.real_source;
  s.generations = c.generations;
  s.samples = c.samples;
  s.real_count = c.real_count;
  s.dedup = c.dedup;
  s.max_draw_factor = c.max_draw_factor;
  s.verifier.on = c.verifier ? 1 : 0;
  s.verifier.keep_plausible = kernels::keep_threshold(c.keep_plausible);
  s.verifier.keep_implausible = kernels::keep_threshold(c.keep_implausible);
  s.verifier.max_draw_factor = c.max_draw_factor;
  s.verifier_quantile = c.verifier_quantile;
  s.tail_factor = c.tail_upsample ? c.tail_factor : 1.0;
  s.age_decay = c.age_decay;
  s.zipf = g.corpus.empty();
  return s;
}

}  // namespace

kernels::NgramBatchSpec make_ngram_spec(const PointConfig& c, int threads) {
  using namespace kernels;
  const auto& g = c.settings<NgramSettings>();
  NgramBatchSpec s = ngram_settings(c);
  s.seed = c.seed;
  s.chain_begin = 0;
  s.batch = c.chains;
  s.threads = threads;
  s.zipf = g.corpus.empty();
  if (!s.zipf) {
    const Corpus& corpus = load_corpus_cached(g.corpus);
    s.V = static_cast<std::uint32_t>(corpus.vocab.size());
    s.train = corpus.train;
    s.heldout = corpus.heldout;
    double total = 0.0;
    for (auto k : corpus.train_count) total += static_cast<double>(k);
    s.truth_p.resize(s.V);
    s.word.assign(s.V, 0);
    s.tail.assign(s.V, 0);
    for (std::uint32_t w = 0; w < s.V; ++w) {
      s.truth_p[w] = static_cast<double>(corpus.train_count[w]) / total;
      s.word[w] = w >= 2 ? 1 : 0;  // not </s>, not <unk>
      // The tail: word types seen at most tail_count times in training, and
      // <unk> (held-out words never seen).
      s.tail[w] =
          (w == kUnkToken || (w >= 2 && corpus.train_count[w] <= static_cast<std::uint64_t>(g.tail_count))) ? 1 : 0;
    }
    return s;
  }
  s.V = static_cast<std::uint32_t>(g.zipf_vocab);
  const std::uint32_t V = s.V;
  s.truth_p = zipf_probabilities(g.zipf_vocab, g.zipf_exponent);
  s.truth_cum.resize(V);
  double run = 0.0;
  for (std::uint32_t w = 0; w < V; ++w) s.truth_cum[w] = run += s.truth_p[w];
  if (c.verifier) {
    // The truth's q-quantile of its own log-probability, exactly: the
    // probability of the type at which the mass of the least probable types,
    // taken from the bottom, first reaches q (Zipf probabilities fall with
    // the rank). Types at least that probable are plausible.
    double below = 0.0;
    for (std::uint32_t w = V; w-- > 0;) {
      below += s.truth_p[w];
      if (below >= c.verifier_quantile) {
        s.plausible_min_p = s.truth_p[w];
        break;
      }
    }
  }
  if (g.order == 2) {
    // A Zipfian Markov chain: the next-token distribution of context v is the
    // Zipf law over its own permutation of the vocabulary (Fisher-Yates with
    // the truth's stream, key (seed, kHeldoutChain), generation v).
    s.truth_perm.resize(static_cast<std::size_t>(V + 1) * V);
    s.truth_cond.resize(static_cast<std::size_t>(V + 1) * V);
    for (std::uint32_t v = 0; v <= V; ++v) {
      std::uint32_t* perm = s.truth_perm.data() + static_cast<std::size_t>(v) * V;
      for (std::uint32_t r = 0; r < V; ++r) perm[r] = r;
      for (std::uint32_t i = V - 1; i > 0; --i) {
        const rng::Block b = rng::draw_block(c.seed, rng::kHeldoutChain, v, rng::kStreamTruth, i);
        const auto j = static_cast<std::uint32_t>(std::floor(rng::u01_open(b.v[0], b.v[1]) * (i + 1.0)));
        std::swap(perm[i], perm[j < i ? j : i]);
      }
      for (std::uint32_t r = 0; r < V; ++r) s.truth_cond[static_cast<std::size_t>(v) * V + perm[r]] = s.truth_p[r];
    }
    // Its stationary distribution (power iteration; the chain is irreducible
    // and aperiodic, every transition having probability > 0).
    std::vector<double> pi(V, 1.0 / V), next(V);
    for (int it = 0; it < 10000; ++it) {
      std::fill(next.begin(), next.end(), 0.0);
      for (std::uint32_t v = 0; v < V; ++v)
        for (std::uint32_t w = 0; w < V; ++w) next[w] += pi[v] * s.truth_cond[static_cast<std::size_t>(v) * V + w];
      double change = 0.0;
      for (std::uint32_t w = 0; w < V; ++w) change += std::abs(next[w] - pi[w]);
      pi.swap(next);
      if (change < 1e-14) break;
    }
    s.truth_p = pi;
    if (c.verifier) {
      // The truth's q-quantile of its own log p0(w | v) under the stationary
      // pairs (pi(v) p0(w | v)), exactly: the conditional probability at
      // which the mass of the least probable pairs, from the bottom, first
      // reaches q.
      std::vector<std::pair<double, double>> pairs;  // (p0(w | v), pi(v) p0(w | v))
      pairs.reserve(static_cast<std::size_t>(V) * V);
      for (std::uint32_t v = 0; v < V; ++v)
        for (std::uint32_t w = 0; w < V; ++w) {
          const double p = s.truth_cond[static_cast<std::size_t>(v) * V + w];
          pairs.emplace_back(p, pi[v] * p);
        }
      std::sort(pairs.begin(), pairs.end());
      double below = 0.0;
      for (const auto& [p, mass_vw] : pairs) {
        below += mass_vw;
        if (below >= c.verifier_quantile) {
          s.plausible_min_p = p;
          break;
        }
      }
    }
  }
  s.word.assign(s.V, 1);
  // The tail: the lowest-probability types (under the stationary law for a
  // Markov chain) that together hold tail_share of the mass (the fewest from
  // the bottom whose mass reaches it).
  s.tail.assign(V, 0);
  std::vector<std::uint32_t> by_p(V);
  for (std::uint32_t w = 0; w < V; ++w) by_p[w] = w;
  std::stable_sort(by_p.begin(), by_p.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return s.truth_p[a] < s.truth_p[b]; });
  double mass = 0.0;
  for (std::uint32_t k = 0; k < V && mass < g.tail_share; ++k) {
    s.tail[by_p[k]] = 1;
    mass += s.truth_p[by_p[k]];
  }
  // The held-out sample: generation 0's real draws under the reserved chain
  // id (a sequence from <s> for a Markov chain).
  s.heldout.start = {0};
  std::uint32_t ctx = V;
  for (int j = 0; j < g.heldout; ++j) {
    const rng::Block b = rng::draw_block(c.seed, rng::kHeldoutChain, 0, rng::kStreamRealDraw, j);
    const double u = rng::u01_open(b.v[0], b.v[1]);
    const auto r = static_cast<std::uint32_t>(first_above(s.truth_cum.data(), 0, V, u * run));
    const std::uint32_t w = g.order == 2 ? s.truth_perm[static_cast<std::size_t>(ctx) * V + r] : r;
    s.heldout.tokens.push_back(w);
    ctx = w;
  }
  s.heldout.start.push_back(s.heldout.tokens.size());
  return s;
}

namespace {

std::optional<double> ngram_theory(const PointConfig& c, int metric, int t) {
  using namespace kernels;
  const auto& g = c.settings<NgramSettings>();
  const bool zipf = g.corpus.empty();
  if (!zipf) return std::nullopt;  // text: sentence lengths make every quantity random
  const double n = c.samples;
  if (metric == kNgSyntheticShare || metric == kNgDataAge) {
    if (t == 0) return 0.0;
    if (c.verifier) return std::nullopt;  // a sample may fall short of n tokens when the draw budget binds
    // (With age decay the subsample's shares are ratios of random weights.)
    if (c.regime == Regime::kAccumulateSubsample && c.age_decay != 1.0) return std::nullopt;
    double share, age;
    regime_composition(c.regime, c.samples, c.real_count, t, c.age_decay, share, age);
    return metric == kNgSyntheticShare ? share : age;
  }
  if (t == 0) {
    if (metric == kNgKl || metric == kNgTv || metric == kNgKlInfChains || metric == kNgZeroProbRate ||
        metric == kNgMissingMass)
      return 0.0;
    if (metric == kNgVocabSurvival || metric == kNgTailMass) return 1.0;
  }
  // (Weights and filters change the resampling law: no closed form then.)
  const bool wright_fisher = g.smoothing == "mle" && c.regime == Regime::kReplace && c.real_fraction == 0.0 &&
                             g.order == 1 && g.temperature == 1.0 && g.top_k == 0 && g.top_p == 1.0 &&
                             !c.tail_upsample && !c.verifier;
  if (!wright_fisher) return std::nullopt;
  if (metric == kNgGiniSimpson) {
    // E[1 - sum p_t^2] = (1 - sum p_0^2)(1 - 1/n)^t for multinomial resampling
    // of n tokens per generation (each generation's heterozygosity shrinks by 1 - 1/n).
    double sq = 0.0;
    for (double q : zipf_probabilities(g.zipf_vocab, g.zipf_exponent)) sq += q * q;
    return (1.0 - sq) * std::pow(1.0 - 1.0 / n, t);
  }
  if ((metric == kNgVocabSurvival || metric == kNgMissingMass) && t >= 1) {
    // Exact: each type's count is a binomial chain absorbed at 0, c_1 ~ Binomial(n, p_w), c_{t+1} ~ Binomial(n,
    // c_t / n), and E[vocab_survival_t] = 1 - (1/V) sum_w P(c_t = 0), E[missing_mass_t] = sum_w p_w P(c_t = 0)
    // (sim/families/ngram/wright_fisher.h; not Suresh et al.'s 2024 Poisson approximation). Computed once per
    // truth, n and length: theory is asked for every generation and metric.
    static std::mutex mutex;
    static std::map<std::tuple<int, double, double, int>, WrightFisherLoss> cache;
    std::lock_guard<std::mutex> lock(mutex);
    const auto key = std::make_tuple(g.zipf_vocab, g.zipf_exponent, n, c.generations);
    auto it = cache.find(key);
    if (it == cache.end()) {
      const auto p = zipf_probabilities(g.zipf_vocab, g.zipf_exponent);
      it = cache.emplace(key, wright_fisher_loss(p, c.samples, c.generations)).first;
    }
    const WrightFisherLoss& loss = it->second;
    if (static_cast<std::size_t>(t) >= loss.survival.size()) return std::nullopt;  // beyond the budget
    return metric == kNgMissingMass ? loss.missing[t] : loss.survival[t];
  }
  return std::nullopt;
}

double ngram_point_bytes(const PointConfig& c) {
  const auto& g = c.settings<NgramSettings>();
  // Per chain: the training text and the sample (4-byte tokens, 8-byte
  // sentence starts), their counts and the model's tables (at most one entry
  // per token of its training text and level, ~90 bytes each with the alias
  // table and the sort's scratch), the sample's alias cells, per-token arrays
  // of the vocabulary; the pool under accumulate (counts, and the model built
  // from all of them) and accumulate_subsample (the text itself). A corpus
  // adds its generation-0 model once (shared) and its text.
  // The cuda backend's arrays (kernels/ngram/ngram_cuda.cu) come to about as
  // much per token: the sample and training text as 8-byte keys, the sort's
  // and run-length pass's scratch (32 bytes), three count tables (48) and
  // the model's tables (84 per entry, 56 more for order 3's middle level).
  const double n = c.samples, G = c.generations;
  double V = g.zipf_vocab, shared = 0.0;
  if (!g.corpus.empty()) {
    const Corpus& corpus = load_corpus_cached(g.corpus);
    V = static_cast<double>(corpus.vocab.size());
    const double train = static_cast<double>(corpus.train.tokens.size());
    shared = 16.0 * train + 90.0 * train * g.order;
  } else if (g.order == 2) {
    shared = 12.0 * (V + 1.0) * V;  // the Markov chain's tables
  }
  const double entries =
      (c.regime == kernels::Regime::kAccumulate ? std::min(n * G, 1e9) : n) * g.order;  // the model's, at most
  double per_chain = 2.0 * n * 12.0 + 8.0 * n + 90.0 * entries + 40.0 * V;
  if (c.regime == kernels::Regime::kAccumulate) per_chain += 16.0 * entries;  // the pool's counts
  // accumulate_subsample keeps every generation's text (a token, and per
  // sentence its start: 12 bytes a token of text) and sorts its sentences
  // every generation (cuda: 24 bytes for its entry in the chain's list, twice
  // while it grows, and ~64 for the sort). A Zipf truth's sentences are
  // single tokens: ~120 bytes each on cuda at the peak, ~40 on the cpu.
  if (c.regime == kernels::Regime::kAccumulateSubsample) per_chain += (g.corpus.empty() ? 120.0 : 12.0) * n * G;
  // The sampler's cut of an order-1 model: its V words sorted with their
  // weights (cuda: seven arrays of V and the sort's scratch).
  const bool cut = g.temperature != 1.0 || g.top_k != 0 || g.top_p != 1.0;
  if (cut && g.order == 1) per_chain += 56.0 * V;
  return per_chain * static_cast<double>(c.chains) + shared;
}

constexpr double kTiny = std::numeric_limits<double>::denorm_min();  // the lower bound of an open (0, ...

constexpr MetricSpec kMetrics[] = {
    {kernels::kNgHeldoutPpl, "heldout_ppl", "2^(mean -log2 p(w | v)) over the held-out tokens with p > 0",
     Direction::kUp, false, ""},
    {kernels::kNgZeroProbRate, "zero_prob_rate", "share of held-out tokens with p = 0", Direction::kUp, false,
     "generation 0 of a zipf truth"},
    {kernels::kNgTailPpl, "tail_ppl", "heldout_ppl over the held-out tokens of the tail set", Direction::kUp, false,
     ""},
    {kernels::kNgSupport, "support", "n-gram types with probability > 0 in the fitted model, before the sampler's cut",
     Direction::kDown, false, ""},
    {kernels::kNgVocabSurvival, "vocab_survival", "share of the truth's word types the model can still produce",
     Direction::kDown, false,
     "generation 0 of a zipf truth; under gini_simpson's conditions every generation (each type's count a "
     "binomial chain)"},
    {kernels::kNgMissingMass, "missing_mass", "the truth's probability mass on the word types the model cannot produce",
     Direction::kUp, false,
     "generation 0 of a zipf truth; under gini_simpson's conditions every generation (each type's count a "
     "binomial chain)"},
    {kernels::kNgEntropy, "entropy", "mean -log2 p(w | v) under the model over the generation's own sample",
     Direction::kDown, false, ""},
    {kernels::kNgGiniSimpson, "gini_simpson", "order 1: 1 - sum p(w)^2", Direction::kDown, false,
     "zipf truth, order 1, mle, replace, no real data, default sampler (Wright-Fisher)", false, "with model.order 1"},
    {kernels::kNgKl, "kl", "zipf truths: KL(truth || model_t) in bits (the rate of a Markov chain)", Direction::kUp,
     false, "generation 0 of a zipf truth", false, "with a zipf truth"},
    {kernels::kNgTv, "tv", "zipf truths: total variation between truth and model (the rate of a Markov chain)",
     Direction::kUp, false, "generation 0 of a zipf truth", false, "with a zipf truth"},
    {kernels::kNgKlInfChains, "kl_inf_chains", "zipf truths: 1 for a chain whose kl is infinite (a type has died)",
     Direction::kUp, false, "generation 0 of a zipf truth", false, "with a zipf truth"},
    {kernels::kNgTailMass, "tail_mass", "the model's mass on the tail set over the truth's", Direction::kDown, true,
     "generation 0 of a zipf truth"},
    {kernels::kNgDistinct2, "distinct_2", "distinct bigrams over bigrams in the generation's sample", Direction::kDown,
     false, ""},
    {kernels::kNgCutSentences, "cut_sentences", "sentences of the sample cut at 4096 tokens", Direction::kNone, false,
     "", false, "with a corpus truth (a zipf truth's samples are not sentences)"},
    {kernels::kNgDrawsPerKept, "draws_per_kept",
     "tokens drawn per token kept in the sample under data.dedup or "
     "data.verifier",
     Direction::kNone, false, "", false, "with data.verifier or data.dedup"},
    {kernels::kNgSyntheticShare, "synthetic_share", "share of the training text's tokens that are synthetic",
     Direction::kNone, false, "zipf truths without a verifier"},
    {kernels::kNgDataAge, "data_age", "mean age in generations of the training text's tokens", Direction::kNone, false,
     "zipf truths without a verifier"},
};
static_assert(metrics_in_enum_order(kMetrics) && std::size(kMetrics) == kernels::kNumNgramMetrics,
              "the n-gram metrics' names follow kernels::NgramMetric");

std::vector<KeySpec> make_keys() {
  return {
      integer_key("model.order", 1, 3, "1", "n of the n-gram model: the previous n - 1 tokens are its context"),
      choice_key("model.smoothing", {"mle", "add_k", "kneser_ney"}, "mle",
                 "relative counts, add-k pseudo-counts, or interpolated Kneser-Ney"),
      number_key("model.k", "a pseudo-count k > 0", 1e-300, 1e300, "1", "add_k's pseudo-count"),
      number_key("model.discount", "a discount in (0, 1]", kTiny, 1.0, "0.75", "kneser_ney's fixed discount D"),
      number_key("sampler.temperature", "a temperature in [0.001, 1000]", 1e-3, 1e3, "1",
                 "a token's weight is (p / p_max)^(1 / temperature)"),
      integer_key("sampler.top_k", 0, 100000000, "0", "sample among the k most probable tokens only (0: all)"),
      number_key("sampler.top_p", "a probability in (0, 1]", kTiny, 1.0, "1",
                 "sample from the smallest prefix holding this share of the weight (nucleus sampling)"),
      path_key("truth.corpus", {"kjv"}, "a text file, one sentence per line", "",
               "a corpus truth: its training split is the real data, its held-out split the held-out text"),
      shaped_key("truth.zipf", KeyType::kMapping, "{vocab: V, exponent: s}", "",
                 "instead of a corpus: p(r) proportional to r^-s (order 1), or a Zipfian Markov chain (order 2)"),
      required(integer_key("truth.zipf.vocab", 2, 100000000, "", "V, the word types (at most 5000 for order 2)")),
      number_key("truth.zipf.exponent", "an exponent in (0, 100]", kTiny, 100.0, "1", "s, Zipf's exponent"),
      integer_key("metrics.heldout", 1, 100000000, "10000", "zipf truths: held-out tokens drawn once"),
      integer_key("metrics.tail_count", 1, 1000000000, "5",
                  "corpus truths: the tail set is the word types seen at most this often in training, and <unk>"),
      number_key("metrics.tail_share", "a share in (0, 1)", kTiny, 1.0 - 1e-16, "0.1",
                 "zipf truths: the tail set is the least probable types holding this share of the mass"),
  };
}

std::string kjv_path_or_error() {
  try {
    return kjv_path();
  } catch (const CorpusError& e) {
    throw ConfigError("truth.corpus", e.what());
  }
}

class NgramFamily final : public Family {
 public:
  const char* name() const override { return "ngram"; }
  FamilyKind kind() const override { return FamilyKind::kText; }
  const char* description() const override {
    return "an n-gram language model of order 1 to 3 (mle, add-k or interpolated Kneser-Ney) of a corpus or a Zipf "
           "law";
  }
  const std::vector<KeySpec>& keys() const override {
    static const std::vector<KeySpec> keys = make_keys();
    return keys;
  }

  // model.order, model.smoothing, a corpus or zipf truth, the sampler.
  std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig&) const override {
    auto g = std::make_shared<NgramSettings>();
    g->order = static_cast<int>(r.integer(key("model.order")));
    g->smoothing = r.choice(key("model.smoothing"));
    if (r.given("model.k") && g->smoothing != "add_k") throw ConfigError("model.k", "applies to smoothing add_k only");
    if (r.given("model.discount") && g->smoothing != "kneser_ney")
      throw ConfigError("model.discount", "applies to smoothing kneser_ney only");
    g->add_k = r.number(key("model.k"));
    g->discount = r.number(key("model.discount"));
    g->temperature = r.number(key("sampler.temperature"));
    g->top_k = static_cast<int>(r.integer(key("sampler.top_k")));
    g->top_p = r.number(key("sampler.top_p"));
    g->tail_count = static_cast<int>(r.integer(key("metrics.tail_count")));
    g->tail_share = r.number(key("metrics.tail_share"));
    g->heldout = static_cast<int>(r.integer(key("metrics.heldout")));

    const std::string shape = "{corpus: kjv}, {corpus: PATH} or {zipf: {vocab: V, exponent: s}}";
    const YAML::Node truth = r.node("truth");
    if (!truth || truth.IsNull()) throw ConfigError("truth", "missing; expected " + shape);
    if (!truth.IsMap()) throw ConfigError("truth", "expected " + shape);
    if (r.given("truth.corpus") == r.given("truth.zipf"))
      throw ConfigError("truth", "expected exactly one of truth.corpus and truth.zipf");
    if (r.given("truth.corpus")) {
      const YAML::Node corpus = r.node("truth.corpus");
      if (!corpus.IsScalar() || corpus.Scalar().empty())
        throw ConfigError("truth.corpus", "expected kjv or the path of a text file, got " + scalar_text(corpus));
      const std::string path = corpus.Scalar() == "kjv" ? kjv_path_or_error() : corpus.Scalar();
      try {
        load_corpus_cached(path);  // refused now (exit 2), not after the run has started
      } catch (const CorpusError& e) {
        throw ConfigError("truth.corpus", e.what());
      }
      g->corpus = path;
      const Corpus& text = load_corpus_cached(path);
      const double V = static_cast<double>(text.vocab.size());
      if (std::pow(V + 1.0, g->order) >= 9.2e18)
        throw ConfigError("model.order", fmt::format("a vocabulary of {} types is too large for order {} (packed "
                                                     "keys)",
                                                     text.vocab.size(), g->order));
      bool tail = false;
      for (std::size_t w = 2; w < text.train_count.size() && !tail; ++w)
        tail = text.train_count[w] <= static_cast<std::uint64_t>(g->tail_count);
      if (!tail)
        throw ConfigError(
            "metrics.tail_count",
            fmt::format("no word of the corpus occurs at most {} times in training: the tail set would be empty",
                        g->tail_count));
      for (const char* k : {"metrics.heldout", "metrics.tail_share"})
        if (r.given(k))
          throw ConfigError(k,
                            "applies to a zipf truth only (a corpus has its own held-out text and a tail set by "
                            "count)");
    } else {
      g->zipf_vocab = static_cast<int>(r.integer(key("truth.zipf.vocab")));
      g->zipf_exponent = r.number(key("truth.zipf.exponent"));
      if (g->order == 3) throw ConfigError("model.order", "a zipf truth is of order 1 or 2 (a Zipfian Markov chain)");
      if (r.given("metrics.tail_count"))
        throw ConfigError("metrics.tail_count",
                          "applies to a corpus truth only (a zipf truth's tail set is by metrics.tail_share)");
      if (g->order == 2 && g->zipf_vocab > 5000)
        throw ConfigError(
            "truth.zipf.vocab",
            fmt::format("at most 5000 types for a Zipfian Markov chain (its table is V^2), got {}", g->zipf_vocab));
    }
    return g;
  }

  void check(const PointConfig& c) const override {
    const auto& g = c.settings<NgramSettings>();
    if (g.corpus.empty() && g.order == 2 && c.regime == kernels::Regime::kAccumulateSubsample)
      throw ConfigError(
          "data.regime",
          "accumulate_subsample is not implemented for a Zipfian Markov chain truth (one sequence per generation)");
    if (g.corpus.empty() && c.dedup)
      throw ConfigError("data.dedup",
                        "drops repeated synthetic sentences, and a zipf truth's samples are single "
                        "tokens, not sentences (use a corpus truth)");
  }

  std::vector<std::string> input_files(const PointConfig& c) const override {
    const auto& g = c.settings<NgramSettings>();
    if (g.corpus.empty()) return {};
    return {std::filesystem::absolute(g.corpus).lexically_normal().string()};
  }

  std::vector<MetricSpec> metrics() const override { return {std::begin(kMetrics), std::end(kMetrics)}; }

  // MetricSpec::written: gini_simpson is a unigram's; kl, tv and kl_inf_chains compare with a truth known in closed
  // form (a zipf truth); cut_sentences counts sentences, which a zipf truth's samples are not.
  bool writes(const PointConfig& c, const std::string& metric) const override {
    const auto& g = c.settings<NgramSettings>();
    if (metric == "gini_simpson") return g.order == 1;
    if (metric == "kl" || metric == "tv" || metric == "kl_inf_chains") return g.corpus.empty();
    if (metric == "cut_sentences") return !g.corpus.empty();
    return Family::writes(c, metric);
  }

  std::optional<double> theory(const PointConfig& c, int metric, int generation) const override {
    return ngram_theory(c, metric, generation);
  }

  SummarySettings default_summary() const override { return {"vocab_survival", 0.5}; }

  std::vector<DetectorSpec> detectors() const override {
    return {{"diversity", "distinct_2", true, 1.0, -1.0, "ln (distinct-2 drop)"},
            // log2 of the held-out perplexity is the mean held-out NLL in bits.
            {"canary", "heldout_ppl", true, 1.0 / std::log(2.0), 1.0, "bits (held-out NLL rise)"},
            {"entropy", "entropy", false, 1.0, -1.0, "bits (entropy drop)"}};
  }

  double point_bytes(const PointConfig& c) const override { return ngram_point_bytes(c); }

  BackendSupport support(const std::string& backend) const override {
    // The cuda backend runs no data option yet (kernels::ngram_cuda_unsupported).
    if (backend == "cuda") return {true, {}};
    return {true, {DataOption::kVerifier, DataOption::kTailUpsample, DataOption::kAgeDecay, DataOption::kDedup}};
  }

  std::string backend_gap(const PointConfig& c, const std::string& backend) const override {
    return backend == "cuda" ? kernels::ngram_cuda_unsupported(ngram_settings(c)) : Family::backend_gap(c, backend);
  }

  std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int threads,
                                      ChainBlock block) const override {
    kernels::NgramBatchSpec spec = make_ngram_spec(c, threads);
    spec.chain_begin = static_cast<std::uint32_t>(block.first);
    spec.batch = block.count;
    return make_backend(backend, spec, &kernels::make_ngram_cpu, OURO_CUDA_FACTORY(kernels::make_ngram_cuda));
  }

 private:
  const KeySpec& key(const std::string& path) const { return key_of(keys(), path); }
};

}  // namespace

const Family& ngram_family() {
  static const NgramFamily f;
  return f;
}

}  // namespace ouro

// The n-gram family in the one loop: its truths, metric names, theory column
// and backend.
#include "sim/families/ngram/ngram_family.h"

#include <cmath>
#include <stdexcept>

#include "sim/families/ngram/corpus.h"

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
  NgramBatchSpec s;
  s.order = c.order;
  s.smoothing = c.smoothing == "add_k"        ? Smoothing::kAddK
                : c.smoothing == "kneser_ney" ? Smoothing::kKneserNey
                                              : Smoothing::kMle;
  s.k = c.add_k;
  s.discount = c.discount;
  s.sampler = SamplerSettings{c.temperature, c.top_k, c.top_p};
  s.regime = c.regime;
  s.real_source = c.real_source;
  s.generations = c.generations;
  s.samples = c.samples;
  s.real_fraction = c.real_fraction;
  s.dedup = c.dedup;
  s.max_draw_factor = c.max_draw_factor;
  s.verifier.on = c.verifier ? 1 : 0;
  s.verifier.keep_plausible = kernels::keep_threshold(c.keep_plausible);
  s.verifier.keep_implausible = kernels::keep_threshold(c.keep_implausible);
  s.verifier.max_draw_factor = c.max_draw_factor;
  s.verifier_quantile = c.verifier_quantile;
  s.tail_factor = c.tail_upsample ? c.tail_factor : 1.0;
  s.age_decay = c.age_decay;
  s.zipf = c.corpus.empty();
  return s;
}

}  // namespace

std::string ngram_cuda_gap(const PointConfig& c) { return kernels::ngram_cuda_unsupported(ngram_settings(c)); }

kernels::NgramBatchSpec make_ngram_spec(const PointConfig& c, int threads) {
  using namespace kernels;
  NgramBatchSpec s = ngram_settings(c);
  s.seed = c.seed;
  s.chain_begin = 0;
  s.batch = c.chains;
  s.threads = threads;
  s.zipf = c.corpus.empty();
  if (!s.zipf) {
    const Corpus& corpus = load_corpus_cached(c.corpus);
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
          (w == kUnkToken || (w >= 2 && corpus.train_count[w] <= static_cast<std::uint64_t>(c.tail_count))) ? 1 : 0;
    }
    return s;
  }
  s.V = static_cast<std::uint32_t>(c.zipf_vocab);
  const std::uint32_t V = s.V;
  s.truth_p = zipf_probabilities(c.zipf_vocab, c.zipf_exponent);
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
  if (c.order == 2) {
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
  for (std::uint32_t k = 0; k < V && mass < c.tail_share; ++k) {
    s.tail[by_p[k]] = 1;
    mass += s.truth_p[by_p[k]];
  }
  // The held-out sample: generation 0's real draws under the reserved chain
  // id (a sequence from <s> for a Markov chain).
  s.heldout.start = {0};
  std::uint32_t ctx = V;
  for (int j = 0; j < c.heldout; ++j) {
    const rng::Block b = rng::draw_block(c.seed, rng::kHeldoutChain, 0, rng::kStreamRealDraw, j);
    const double u = rng::u01_open(b.v[0], b.v[1]);
    const auto r = static_cast<std::uint32_t>(first_above(s.truth_cum.data(), 0, V, u * run));
    const std::uint32_t w = c.order == 2 ? s.truth_perm[static_cast<std::size_t>(ctx) * V + r] : r;
    s.heldout.tokens.push_back(w);
    ctx = w;
  }
  s.heldout.start.push_back(s.heldout.tokens.size());
  return s;
}

std::vector<std::string> ngram_metric_names() {
  return {"heldout_ppl",
          "zero_prob_rate",
          "tail_ppl",
          "support",
          "vocab_survival",
          "missing_mass",
          "entropy",
          "gini_simpson",
          "kl",
          "tv",
          "kl_inf_chains",
          "tail_mass",
          "distinct_2",
          "cut_sentences",
          "draws_per_kept",
          "synthetic_share",
          "data_age"};
}

std::optional<double> ngram_theory(const PointConfig& c, int metric, int t) {
  using namespace kernels;
  const bool zipf = c.corpus.empty();
  if (!zipf) return std::nullopt;  // text: sentence lengths make every quantity random
  const double n = c.samples;
  if (metric == kNgSyntheticShare || metric == kNgDataAge) {
    if (t == 0) return 0.0;
    if (c.verifier) return std::nullopt;  // a sample may fall short of n tokens when the draw budget binds
    // (With age decay the subsample's shares are ratios of random weights.)
    if (c.regime == Regime::kAccumulateSubsample && c.age_decay != 1.0) return std::nullopt;
    double share, age;
    regime_composition(c.regime, c.samples, static_cast<int>(std::round(c.real_fraction * n)), t, c.age_decay, share,
                       age);
    return metric == kNgSyntheticShare ? share : age;
  }
  if (t == 0) {
    if (metric == kNgKl || metric == kNgTv || metric == kNgKlInfChains || metric == kNgZeroProbRate ||
        metric == kNgMissingMass)
      return 0.0;
    if (metric == kNgVocabSurvival || metric == kNgTailMass) return 1.0;
  }
  // (Weights and filters change the resampling law: no closed form then.)
  const bool wright_fisher = c.smoothing == "mle" && c.regime == Regime::kReplace && c.real_fraction == 0.0 &&
                             c.order == 1 && c.temperature == 1.0 && c.top_k == 0 && c.top_p == 1.0 &&
                             !c.tail_upsample && !c.verifier;
  if (!wright_fisher) return std::nullopt;
  const auto p = zipf_probabilities(c.zipf_vocab, c.zipf_exponent);
  if (metric == kNgGiniSimpson) {
    // E[1 - sum p_t^2] = (1 - sum p_0^2)(1 - 1/n)^t for multinomial resampling
    // of n tokens per generation (each generation's heterozygosity shrinks by 1 - 1/n).
    double sq = 0.0;
    for (double q : p) sq += q * q;
    return (1.0 - sq) * std::pow(1.0 - 1.0 / n, t);
  }
  if ((metric == kNgVocabSurvival || metric == kNgMissingMass) && t >= 1) {
    // Suresh et al. 2024: P(type of probability p alive at t) ~ 1 - exp(-n p g_t),
    // g_1 = 1, g_{t+1} = 1 - exp(-g_t) (a Poisson approximation, not exact);
    // the missing mass weighs each type's death by its true probability.
    double g = 1.0;
    for (int k = 1; k < t; ++k) g = 1.0 - std::exp(-g);
    double alive = 0.0, missing = 0.0;
    for (double q : p) {
      const double dead = std::exp(-n * q * g);
      alive += 1.0 - dead;
      missing += q * dead;
    }
    return metric == kNgMissingMass ? missing : alive / static_cast<double>(p.size());
  }
  return std::nullopt;
}

double ngram_point_bytes(const PointConfig& c) {
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
  double V = c.zipf_vocab, shared = 0.0;
  if (!c.corpus.empty()) {
    const Corpus& corpus = load_corpus_cached(c.corpus);
    V = static_cast<double>(corpus.vocab.size());
    const double train = static_cast<double>(corpus.train.tokens.size());
    shared = 16.0 * train + 90.0 * train * c.order;
  } else if (c.order == 2) {
    shared = 12.0 * (V + 1.0) * V;  // the Markov chain's tables
  }
  const double entries =
      (c.regime == kernels::Regime::kAccumulate ? std::min(n * G, 1e9) : n) * c.order;  // the model's, at most
  double per_chain = 2.0 * n * 12.0 + 8.0 * n + 90.0 * entries + 40.0 * V;
  if (c.regime == kernels::Regime::kAccumulate) per_chain += 16.0 * entries;  // the pool's counts
  // accumulate_subsample keeps every generation's text (a token, and per
  // sentence its start: 12 bytes a token of text) and sorts its sentences
  // every generation (cuda: 24 bytes for its entry in the chain's list, twice
  // while it grows, and ~64 for the sort). A Zipf truth's sentences are
  // single tokens: ~120 bytes each on cuda at the peak, ~40 on the cpu.
  if (c.regime == kernels::Regime::kAccumulateSubsample) per_chain += (c.corpus.empty() ? 120.0 : 12.0) * n * G;
  // The sampler's cut of an order-1 model: its V words sorted with their
  // weights (cuda: seven arrays of V and the sort's scratch).
  const bool cut = c.temperature != 1.0 || c.top_k != 0 || c.top_p != 1.0;
  if (cut && c.order == 1) per_chain += 56.0 * V;
  return per_chain * static_cast<double>(c.chains) + shared;
}

std::unique_ptr<FamilyRun> make_ngram_run(const PointConfig& c, const std::string& backend, int threads,
                                          ChainBlock block) {
  kernels::NgramBatchSpec spec = make_ngram_spec(c, threads);
  spec.chain_begin = static_cast<std::uint32_t>(block.first);
  spec.batch = block.count;
#if OUROBOROS_HAVE_CUDA
  if (backend == "cuda") return kernels::make_ngram_cuda(spec);
#endif
  if (backend != "cpu") throw std::invalid_argument("backend " + backend + " is not available in this build");
  return kernels::make_ngram_cpu(spec);
}

}  // namespace ouro

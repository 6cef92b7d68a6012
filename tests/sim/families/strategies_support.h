// What the strategy tests of every family share (tests/sim/families/*/test_*_strategies.cc and
// tests/sim/families/test_strategies.cc): a run's values, references' normals, bit-for-bit comparisons.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/core/rng.h"
#include "sim/families/ngram/ngram_family.h"
#include "tests/support/backend_test.h"

namespace ouro::test {

// Every metric of every chain, generation g.
inline const std::vector<double>& values_at(const FamilyCurves& c, int g) { return c.values.at(g); }

// Normal m of a chain's stream, as the engine draws it (kernels/core/normal.h):
// number m mod 4 of Box-Muller block m / 4. For references written from the
// definitions.
inline double stream_normal(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, int m) {
  double quad[4];
  kernels::box_muller(rng::draw_block(seed, chain, gen, stream, static_cast<std::uint64_t>(m) >> 2), quad);
  return quad[m & 3];
}

inline bool same_bits(const std::vector<double>& a, const std::vector<double>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0;
}

// The values of the metrics that depend on the fitted model alone (not on
// the generation's own sample, not on how EM got there), [metric][chain].
inline std::vector<double> model_metrics(const FamilyCurves& c, int g) {
  static const std::vector<std::string> model_only = {
      "var_ratio",    "det_ratio",   "mean_sq_err",    "w2",       "kl",      "xent",
      "tail_mass",    "heldout_ppl", "zero_prob_rate", "tail_ppl", "support", "vocab_survival",
      "gini_simpson", "tv"};
  // (For text, tail_mass is measured on the generation's own sample.)
  const auto* ngram = dynamic_cast<const NgramSettings*>(c.config.family_settings.get());
  const bool text = ngram != nullptr && !ngram->corpus.empty();
  std::vector<double> out;
  const std::size_t n = static_cast<std::size_t>(c.config.chains);
  for (std::size_t m = 0; m < c.names.size(); ++m)
    if (std::find(model_only.begin(), model_only.end(), c.names[m]) != model_only.end() &&
        !(text && c.names[m] == "tail_mass"))
      out.insert(out.end(), c.values.at(g).begin() + m * n, c.values.at(g).begin() + (m + 1) * n);
  return out;
}

// Every per-chain value of two runs bit for bit (NaN matching NaN).
inline void expect_same_values(const FamilyCurves& a, const FamilyCurves& b, const std::string& what) {
  SCOPED_TRACE(what);
  test::expect_same_chain_values(a, b, [](int, double x, double y) { return x == y; });
}

}  // namespace ouro::test

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "sim/analysis/aggregate.h"

namespace {

using ouro::summarize;

TEST(Summarize, MatchesNumpyOnASmallSample) {
  // numpy: mean 3.5, std(ddof=1) 1.8708286933869707,
  // quantile(x, [.05, .5, .95]) = 1.25, 3.5, 5.75 (linear).
  const std::vector<double> x = {6, 1, 5, 2, 4, 3};
  std::vector<double> scratch;
  const auto s = summarize(x.data(), 6, scratch);
  EXPECT_DOUBLE_EQ(s.mean, 3.5);
  EXPECT_DOUBLE_EQ(s.std, 1.8708286933869707);
  EXPECT_DOUBLE_EQ(s.se, 1.8708286933869707 / std::sqrt(6.0));
  EXPECT_DOUBLE_EQ(s.q05, 1.25);
  EXPECT_DOUBLE_EQ(s.q50, 3.5);
  EXPECT_DOUBLE_EQ(s.q95, 5.75);
  EXPECT_EQ(s.chains, 6);
}

TEST(Summarize, LeavesOutDegenerateChainsAndKeepsInfinities) {
  // NaN marks a degenerate chain and is left out; an infinite value is a
  // real result (dropping it would bias the mean low) and stays.
  const std::vector<double> x = {1, NAN, 3};
  std::vector<double> scratch;
  const auto s = summarize(x.data(), 3, scratch);
  EXPECT_EQ(s.chains, 2);
  EXPECT_DOUBLE_EQ(s.mean, 2.0);
  const std::vector<double> y = {1, INFINITY, 3, NAN};
  const auto t = summarize(y.data(), 4, scratch);
  EXPECT_EQ(t.chains, 3);
  EXPECT_EQ(t.mean, INFINITY);
  EXPECT_EQ(t.q95, INFINITY);
  EXPECT_DOUBLE_EQ(t.q05, 1.2);
  // Quantiles on and between infinite values are infinite, never NaN (an
  // interpolation inf - inf or 0 * inf would be).
  const std::vector<double> z = {1, INFINITY, INFINITY, INFINITY, 2};
  const auto u = summarize(z.data(), 5, scratch);
  EXPECT_EQ(u.q50, INFINITY);
  EXPECT_EQ(u.q95, INFINITY);
  EXPECT_DOUBLE_EQ(u.q05, 1.2);
  const std::vector<double> w = {-INFINITY, 0, 1};
  EXPECT_EQ(summarize(w.data(), 3, scratch).q05, -INFINITY);
}

TEST(Summarize, ConstantColumnsAreExact) {
  const std::vector<double> x(20001, 0.35);
  std::vector<double> scratch;
  const auto s = summarize(x.data(), 20001, scratch);
  EXPECT_EQ(s.mean, 0.35);
  EXPECT_EQ(s.std, 0.0);
  EXPECT_EQ(s.q50, 0.35);
}

TEST(Summarize, AllDegenerateGivesNaNAndZeroChains) {
  const std::vector<double> x = {NAN, NAN};
  std::vector<double> scratch;
  const auto s = summarize(x.data(), 2, scratch);
  EXPECT_EQ(s.chains, 0);
  EXPECT_TRUE(std::isnan(s.mean));
}

}  // namespace

namespace {

// The selection-based quantiles against a full sort, on sizes where the
// interpolation neighbour and the narrowing between quantiles matter.
TEST(Quantiles, AgreeWithFullSortInterpolation) {
  std::mt19937_64 g(1);
  std::normal_distribution<double> nd;
  for (std::size_t n : {1u, 2u, 3u, 20u, 21u, 1001u, 10000u, 20001u}) {
    std::vector<double> v(n);
    for (auto& x : v) x = nd(g);
    // Large samples: heavy tails of both signs, exact zeros, ties, tiny and
    // subnormal values, which exercise every level of the radix selection.
    if (n >= 10000)
      for (std::size_t i = 0; i < n; ++i) {
        if (i % 7 == 0) v[i] = 0.0;
        if (i % 11 == 0) v[i] = 3.25;
        if (i % 13 == 0) v[i] = std::exp(40 * nd(g));
        if (i % 17 == 0) v[i] = -std::exp(40 * nd(g));
        if (i % 19 == 0) v[i] = 4.9e-324 * (i % 5);
      }
    std::vector<double> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    const double q[5] = {0.0, 0.05, 0.5, 0.95, 1.0};
    double out[5];
    ouro::quantiles_type7(v, q, out, 5);
    for (int i = 0; i < 5; ++i) {
      const double h = (n - 1.0) * q[i];
      const std::size_t lo = static_cast<std::size_t>(h);
      const double expect = lo + 1 < n ? sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
      EXPECT_DOUBLE_EQ(out[i], expect) << "n " << n << " q " << q[i];
    }
  }
}

}  // namespace

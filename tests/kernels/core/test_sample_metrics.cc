// The sample-based metrics (kernels/core/sample_metrics.h) against a brute-force reference written here: every
// squared distance listed, each point's k-th nearest other point found by sorting its full list, the ball tests
// and the energy's three means by plain loops. On random samples (several d, n != m, tiles of 32 crossed) and on
// integer grids (ties and duplicates: every squared distance is an exact integer, so the ball tests must agree
// exactly); known values for identical and for far-apart samples; NaN below the sizes the metrics need; the held-out
// side's bits at one and two threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/core/sample_metrics.h"

namespace {

using namespace ouro::kernels;

constexpr int K = 5;  // Kynkaanniemi et al.'s k, restated here
constexpr double kEps = std::numeric_limits<double>::epsilon();

// ---- the reference --------------------------------------------------------------------------------

double ref_dist2(const std::vector<double>& p, std::size_t i, const std::vector<double>& q, std::size_t j, int d) {
  double s = 0.0;
  for (int a = 0; a < d; ++a) {
    const double v = p[i * d + a] - q[j * d + a];
    s += v * v;
  }
  return s;
}

// The squared distance from each point to its K-th nearest other point: the full list sorted.
std::vector<double> ref_radii(const std::vector<double>& p, int d) {
  const std::size_t n = p.size() / d;
  std::vector<double> r(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> all;
    for (std::size_t j = 0; j < n; ++j)
      if (j != i) all.push_back(ref_dist2(p, i, p, j, d));
    std::sort(all.begin(), all.end());
    r[i] = all[K - 1];
  }
  return r;
}

// Mean distance over ordered pairs of distinct points (long double sums).
long double ref_within(const std::vector<double>& p, int d) {
  const std::size_t n = p.size() / d;
  long double s = 0.0L;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < n; ++j)
      if (i != j) s += std::sqrt(static_cast<long double>(ref_dist2(p, i, p, j, d)));
  return s / (static_cast<long double>(n) * (n - 1));
}

struct Ref {
  double precision, recall, coverage, energy;
  double scale;  // the mean cross distance (the energy's size of terms)
};

Ref reference(const std::vector<double>& x, const std::vector<double>& g, int d) {
  const std::size_t m = x.size() / d, n = g.size() / d;
  const std::vector<double> rx = ref_radii(x, d), rg = ref_radii(g, d);
  int precise = 0, recalled = 0, covered = 0;
  for (std::size_t j = 0; j < n; ++j) {
    bool in = false;
    for (std::size_t i = 0; i < m; ++i) in = in || ref_dist2(g, j, x, i, d) <= rx[i];
    precise += in;
  }
  long double cross = 0.0L;
  for (std::size_t i = 0; i < m; ++i) {
    bool rec = false, cov = false;
    for (std::size_t j = 0; j < n; ++j) {
      const double e = ref_dist2(x, i, g, j, d);
      rec = rec || e <= rg[j];
      cov = cov || e <= rx[i];
      cross += std::sqrt(static_cast<long double>(e));
    }
    recalled += rec;
    covered += cov;
  }
  cross /= static_cast<long double>(n) * m;
  Ref r;
  r.precision = static_cast<double>(precise) / n;
  r.recall = static_cast<double>(recalled) / m;
  r.coverage = static_cast<double>(covered) / m;
  r.energy = static_cast<double>(2.0L * cross - ref_within(x, d) - ref_within(g, d));
  r.scale = static_cast<double>(cross);
  return r;
}

// ---- the code under test ----------------------------------------------------------------------

constexpr unsigned kAll = (1u << kSampleMetricCount) - 1;

std::vector<double> measure(const HeldoutSideStore& h, const std::vector<double>& g, unsigned mask = kAll) {
  const std::int64_t n = static_cast<std::int64_t>(g.size()) / h.d;
  std::vector<double> out(kSampleMetricCount, 42.0), scratch(n);
  sample_metrics(h.view(), g.data(), n, mask, scratch.data(), out.data());
  return out;
}

std::vector<double> normals(std::mt19937_64& rng, std::size_t count, double mean = 0.0) {
  std::normal_distribution<double> z(mean, 1.0);
  std::vector<double> v(count);
  for (auto& x : v) x = z(rng);
  return v;
}

std::vector<double> grid(std::mt19937_64& rng, std::size_t count, int levels) {
  std::uniform_int_distribution<int> u(0, levels - 1);
  std::vector<double> v(count);
  for (auto& x : v) x = u(rng);
  return v;
}

// Every metric agrees with the reference, and each metric asked alone (the ball tests then stop at their first
// hit) gives the bits it has among all four (where the energy makes every row whole).
void expect_matches(const std::vector<double>& x, const std::vector<double>& g, int d, const std::string& what) {
  const HeldoutSideStore h = make_heldout_side(x, d);
  const std::vector<double> all = measure(h, g);
  const Ref r = reference(x, g, d);
  EXPECT_EQ(all[kSamplePrecision], r.precision) << what;
  EXPECT_EQ(all[kSampleRecall], r.recall) << what;
  EXPECT_EQ(all[kSampleCoverage], r.coverage) << what;
  // The implementation sums n m cross distances and n^2 + m^2 within ones in doubles, in order: each sum's relative
  // error is below (terms) * eps, at most 1e4 * 2.2e-16 = 2.2e-12 of the mean distance here, and the energy adds
  // three of them; 1e-11 of the mean cross distance bounds that, where a wrong term or mean would be off by 1e-3 of it
  // or more (one of the 36 to 10^4 terms). (On a grid every distance is a square root of an integer: the same bound.)
  EXPECT_NEAR(all[kSampleEnergy], r.energy, 1e-11 * r.scale) << what;
  for (int k = 0; k < kSampleMetricCount; ++k) {
    const std::vector<double> one = measure(h, g, 1u << k);
    EXPECT_EQ(one[k], all[k]) << what << " " << sample_metric_name(k) << " alone";
    for (int other = 0; other < kSampleMetricCount; ++other) {
      if (other != k) EXPECT_EQ(one[other], 42.0) << what << ": " << sample_metric_name(other) << " was written";
    }
  }
}

TEST(SampleMetrics, MatchRandomSamplesBruteForce) {
  std::mt19937_64 rng(20190906);
  for (const int d : {1, 2, 3, 7})
    for (const auto& [n, m] : std::vector<std::pair<int, int>>{{6, 6}, {40, 75}, {100, 33}, {6, 200}, {64, 64}}) {
      // The model sample shifted by half a standard deviation: every metric strictly between its extremes.
      const std::vector<double> x = normals(rng, static_cast<std::size_t>(m) * d);
      const std::vector<double> g = normals(rng, static_cast<std::size_t>(n) * d, 0.5);
      expect_matches(x, g, d, "d " + std::to_string(d) + " n " + std::to_string(n) + " m " + std::to_string(m));
    }
}

TEST(SampleMetrics, MatchGridSamplesWithTiesBruteForce) {
  std::mt19937_64 rng(20200209);
  // Coordinates in {0, 1, 2} (three levels): in d = 1 and 2 most points have duplicates, so radii of 0 and balls
  // whose boundaries pass through other points are the rule; the comparisons are of exact integers.
  for (const int d : {1, 2, 3})
    for (const auto& [n, m] : std::vector<std::pair<int, int>>{{7, 12}, {50, 37}, {33, 90}}) {
      const std::vector<double> x = grid(rng, static_cast<std::size_t>(m) * d, 3);
      const std::vector<double> g = grid(rng, static_cast<std::size_t>(n) * d, 4);
      expect_matches(x, g, d, "grid d " + std::to_string(d) + " n " + std::to_string(n) + " m " + std::to_string(m));
    }
}

// g = x: every model point is a held-out point (inside its own ball, at distance 0) and the reverse, so precision,
// recall and coverage are 1. The energy's cross term (2/n^2) S counts the n zero self-distances that the two
// U-statistics leave out (each S / (n (n - 1)), S the sum over ordered pairs of distinct points), so
//   energy = 2 S / n^2 - 2 S / (n (n - 1)) = -2 S / (n^2 (n - 1)) = -(2 / n) W,   W = S / (n (n - 1)) = within.
// Computed: the cross sum and both within sums are the same sum of the same terms in the same order (the same bits),
// so only the final division and two subtractions round, each by half an ulp of at most 2 W: within 16 eps W.
TEST(SampleMetrics, IdenticalSamplesHaveKnownValues) {
  std::mt19937_64 rng(7);
  for (const int d : {1, 2, 5})
    for (const bool on_grid : {false, true}) {
      const int n = 50;
      const std::vector<double> x = on_grid ? grid(rng, n * d, 3) : normals(rng, n * d);
      const HeldoutSideStore h = make_heldout_side(x, d);
      const std::vector<double> v = measure(h, x);
      EXPECT_EQ(v[kSamplePrecision], 1.0);
      EXPECT_EQ(v[kSampleRecall], 1.0);
      EXPECT_EQ(v[kSampleCoverage], 1.0);
      EXPECT_LT(v[kSampleEnergy], 0.0);
      EXPECT_NEAR(v[kSampleEnergy], -2.0 * h.within / n, 16 * kEps * h.within) << "d " << d;
    }
}

// Held-out points on a line at integer positions a_i in [0, 10], model points at 1000 + b_j, b_j in [0, 10]: no
// ball (radius at most 10) reaches the other side, so precision, recall and coverage are 0, and every cross distance
// is 1000 + b_j - a_i, so the energy is 2 (1000 + mean b - mean a) - W_x - W_g with W the mean |difference| over
// ordered pairs, all integer sums here. Every distance and sum the code forms is an integer below 2^53 (exact); only
// its three divisions and two subtractions round, each by half an ulp of at most 2 * 1010: within 8 eps 2020.
TEST(SampleMetrics, FarApartSamplesHaveKnownValues) {
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<int> u(0, 10);
  for (const int d : {1, 3}) {
    const int m = 40, n = 23;
    std::vector<double> x(m * d, 0.0), g(n * d, 0.0);
    std::vector<long long> a(m), b(n);
    for (int i = 0; i < m; ++i) x[i * d] = static_cast<double>(a[i] = u(rng));
    for (int j = 0; j < n; ++j) g[j * d] = 1000.0 + static_cast<double>(b[j] = u(rng));
    long long sa = 0, sb = 0, wa = 0, wb = 0;
    for (int i = 0; i < m; ++i) sa += a[i];
    for (int j = 0; j < n; ++j) sb += b[j];
    for (int i = 0; i < m; ++i)
      for (int k = 0; k < m; ++k) wa += std::llabs(a[i] - a[k]);
    for (int j = 0; j < n; ++j)
      for (int k = 0; k < n; ++k) wb += std::llabs(b[j] - b[k]);
    const long double expected =
        2.0L * (1000.0L + static_cast<long double>(sb) / n - static_cast<long double>(sa) / m) -
        static_cast<long double>(wa) / (m * (m - 1.0L)) - static_cast<long double>(wb) / (n * (n - 1.0L));
    const std::vector<double> v = measure(make_heldout_side(x, d), g);
    EXPECT_EQ(v[kSamplePrecision], 0.0);
    EXPECT_EQ(v[kSampleRecall], 0.0);
    EXPECT_EQ(v[kSampleCoverage], 0.0);
    EXPECT_NEAR(v[kSampleEnergy], static_cast<double>(expected), 8 * kEps * 2020.0) << "d " << d;
  }
}

// Precision and coverage need k + 1 held-out points (k others to measure a held-out radius by), recall k + 1 model
// points, the energy two of each: below that the metric is NaN, not a count against infinite balls.
TEST(SampleMetrics, TooFewPointsGiveNaN) {
  std::mt19937_64 rng(3);
  const int d = 2;
  const std::vector<double> big = normals(rng, 20 * d), five = normals(rng, 5 * d), one = normals(rng, d);
  std::vector<double> v = measure(make_heldout_side(five, d), big);
  EXPECT_TRUE(std::isnan(v[kSamplePrecision]));
  EXPECT_TRUE(std::isnan(v[kSampleCoverage]));
  EXPECT_FALSE(std::isnan(v[kSampleRecall]));
  EXPECT_FALSE(std::isnan(v[kSampleEnergy]));
  v = measure(make_heldout_side(big, d), five);
  EXPECT_FALSE(std::isnan(v[kSamplePrecision]));
  EXPECT_FALSE(std::isnan(v[kSampleCoverage]));
  EXPECT_TRUE(std::isnan(v[kSampleRecall]));
  EXPECT_FALSE(std::isnan(v[kSampleEnergy]));
  v = measure(make_heldout_side(big, d), one);
  EXPECT_TRUE(std::isnan(v[kSampleEnergy]));
  v = measure(make_heldout_side(one, d), big);
  EXPECT_TRUE(std::isnan(v[kSampleEnergy]));
}

// The held-out side against the reference (radii exactly, the within-sample mean to rounding), and its bits the same
// at one and two OpenMP threads.
TEST(SampleMetrics, HeldoutSideMatchesReferenceAtAnyThreadCount) {
  std::mt19937_64 rng(5);
  const int d = 3, m = 301;
  const std::vector<double> x = normals(rng, m * d);
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  const HeldoutSideStore one = make_heldout_side(x, d);
  omp_set_num_threads(2);
  const HeldoutSideStore two = make_heldout_side(x, d);
  omp_set_num_threads(before);
  EXPECT_EQ(one.m, m);
  EXPECT_EQ(one.radius2, two.radius2);
  EXPECT_EQ(one.within, two.within);
  EXPECT_EQ(one.radius2, ref_radii(x, d));
  // m (m - 1) = 9e4 terms summed in doubles: relative error below 9e4 eps = 2e-11.
  EXPECT_NEAR(one.within, static_cast<double>(ref_within(x, d)), 2e-11 * one.within);
}

TEST(SampleMetrics, Names) {
  EXPECT_STREQ(sample_metric_name(kSamplePrecision), "precision");
  EXPECT_STREQ(sample_metric_name(kSampleRecall), "recall");
  EXPECT_STREQ(sample_metric_name(kSampleCoverage), "coverage");
  EXPECT_STREQ(sample_metric_name(kSampleEnergy), "energy");
  EXPECT_EQ(kNeighbourK, K);
}

}  // namespace

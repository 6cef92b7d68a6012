// The Gaussian family's shared per-chain math: sufficient statistics, their
// merge, the subsample selection, and the agreement of the cpu backend's
// vectorised sampling loop with the generic one.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>
#include <set>
#include <vector>

#include "kernels/gaussian/gaussian.h"
#include "kernels/gaussian/gaussian_backend.h"

namespace {

using namespace ouro::kernels;

TEST(ZSums, VectorisedCpuLoopDrawsTheSameNormalsAsTheGenericOne) {
  // Odd and even boundaries, a range shorter than a tile and one spanning many.
  for (auto [i0, i1] :
       std::vector<std::pair<std::int64_t, std::int64_t>>{{0, 1}, {1, 2}, {3, 10}, {0, 100}, {7, 1001}, {0, 4096}}) {
    double a1 = 0, a2 = 0, b1 = 0, b2 = 0;
    cpu_zsums_1d(9, 4, 3, ouro::rng::kStreamSyntheticDraw, i0, i1, a1, a2);
    accumulate_zsums_1d(9, 4, 3, ouro::rng::kStreamSyntheticDraw, i0, i1, b1, b2);
    // Same draws, different summation order: agreement to rounding.
    EXPECT_NEAR(a1, b1, 1e-12 * (i1 - i0)) << i0 << ".." << i1;
    EXPECT_NEAR(a2, b2, 1e-12 * b2) << i0 << ".." << i1;
    double g1 = 0, g2 = 0;
    accumulate_zsums(9, 4, 3, ouro::rng::kStreamSyntheticDraw, 1, i0, i1, &g1, &g2);
    EXPECT_NEAR(g1, b1, 1e-12 * (i1 - i0));
  }
}

TEST(ZSums, PointsOfDimensionDUseConsecutiveNormals) {
  const int d = 3;
  double sum[3] = {}, sq[9] = {};
  accumulate_zsums(1, 2, 1, 1, d, 5, 7, sum, sq);  // points 5 and 6
  for (int a = 0; a < d; ++a) {
    const double z5 = stream_normal(1, 2, 1, 1, 5 * d + a), z6 = stream_normal(1, 2, 1, 1, 6 * d + a);
    EXPECT_DOUBLE_EQ(sum[a], z5 + z6);
  }
  EXPECT_DOUBLE_EQ(sq[0 * 3 + 2], stream_normal(1, 2, 1, 1, 15) * stream_normal(1, 2, 1, 1, 17) +
                                      stream_normal(1, 2, 1, 1, 18) * stream_normal(1, 2, 1, 1, 20));
}

// Moments of a pool of 10^7 points with a mean of 10^6 and unit variance,
// merged in generation-sized groups, against a two-pass reference in long
// double: the merge must keep the variance to 1e-9 relative, where naive
// sums of x and x^2 in double lose every digit (cancellation of 10^12).
TEST(Moments, PairwiseMergeOfALargeOffsetPoolKeepsTheVariance) {
  std::mt19937_64 g(3);
  std::normal_distribution<double> nd(1e6, 1.0);
  const int groups = 1000, per = 10000;
  Moments pool;
  moments_clear(1, pool);
  long double sum = 0;
  std::vector<double> all;
  all.reserve(static_cast<std::size_t>(groups) * per);
  for (int k = 0; k < groups; ++k) {
    Moments m;
    moments_clear(1, m);
    for (int i = 0; i < per; ++i) {
      const double x = nd(g);
      all.push_back(x);
      sum += x;
      m.n += 1;
      const double delta = x - m.mean[0];
      m.mean[0] += delta / m.n;
      m.m2[0] += delta * (x - m.mean[0]);
    }
    moments_merge(1, pool, m);
  }
  const long double mean = sum / all.size();
  long double m2 = 0;
  for (double x : all) m2 += (x - mean) * (x - mean);
  EXPECT_NEAR(pool.mean[0], static_cast<double>(mean), 1e-9);
  EXPECT_NEAR(pool.m2[0] / static_cast<double>(m2), 1.0, 1e-9);
}

TEST(Moments, FromZSumsIsTheExactAffineMap) {
  // x = m + L z for three 2-D points: compare with the moments of x directly.
  const int d = 2;
  const double m[2] = {1.0, -2.0}, l[4] = {2.0, 0.0, 0.5, 1.5};
  const double zs[3][2] = {{0.1, -0.3}, {1.2, 0.4}, {-0.7, 0.9}};
  double zsum[2] = {}, zsq[4] = {};
  Eigen::Matrix2d S = Eigen::Matrix2d::Zero();
  Eigen::Vector2d mean = Eigen::Vector2d::Zero();
  std::vector<Eigen::Vector2d> xs;
  for (auto& z : zs) {
    for (int a = 0; a < d; ++a) {
      zsum[a] += z[a];
      for (int b = 0; b < d; ++b) zsq[a * d + b] += z[a] * z[b];
    }
    Eigen::Vector2d x(m[0] + l[0] * z[0], m[1] + l[2] * z[0] + l[3] * z[1]);
    xs.push_back(x);
    mean += x / 3.0;
  }
  for (auto& x : xs) S += (x - mean) * (x - mean).transpose();
  Moments out;
  moments_from_zsums(d, 3.0, zsum, zsq, m, l, out);
  for (int a = 0; a < d; ++a) EXPECT_NEAR(out.mean[a], mean(a), 1e-14);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) EXPECT_NEAR(out.m2[a * d + b], S(a, b), 1e-13);
}

TEST(Subsample, SelectsExactlyTakeDistinctPositionsInOrder) {
  for (std::int64_t total : {10, 57, 1000})
    for (std::int64_t take : {1, 5, 10}) {
      std::vector<std::int64_t> got;
      for_each_selected(1, 2, 3, total, take, [&](std::int64_t j) { got.push_back(j); });
      ASSERT_EQ(static_cast<std::int64_t>(got.size()), take);
      for (std::size_t i = 1; i < got.size(); ++i) EXPECT_LT(got[i - 1], got[i]);
      EXPECT_GE(got.front(), 0);
      EXPECT_LT(got.back(), total);
    }
}

// Every position is included with probability take/total. Over 20000 chains,
// each position's inclusion count is Binomial(20000, 0.25); the test allows
// z = 5 for each of the 40 positions (family-wise false-failure rate
// 40 * 5.7e-7 ~ 2e-5). Selection with replacement or a bias towards early
// positions (e.g. probability needed/total instead of needed/(total - j))
// fails it.
TEST(Subsample, EveryPositionIsEquallyLikely) {
  const std::int64_t total = 40, take = 10;
  const int chains = 20000;
  std::vector<int> count(total, 0);
  for (int c = 0; c < chains; ++c)
    for_each_selected(5, static_cast<std::uint32_t>(c), 2, total, take, [&](std::int64_t j) { ++count[j]; });
  const double p = static_cast<double>(take) / total;
  const double se = std::sqrt(chains * p * (1 - p));
  for (std::int64_t j = 0; j < total; ++j) EXPECT_NEAR(count[j], chains * p, 5 * se) << "position " << j;
}

TEST(Metrics, TruthAgainstItselfGivesRatiosOneAndErrorsZero) {
  GaussianTruth tr{};
  tr.d = 2;
  const double cov[4] = {2.0, 0.3, 0.3, 1.0};
  for (int i = 0; i < 4; ++i) tr.cov[i] = cov[i];
  tr.mu[0] = 1.0;
  tr.mu[1] = -1.0;
  cholesky(2, tr.cov, tr.chol);
  Eigen::Matrix2d C;
  C << 2.0, 0.3, 0.3, 1.0;
  Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> es(C);
  Eigen::Matrix2d root = es.operatorSqrt();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) tr.sqrt_cov[i * 2 + j] = root(i, j);
  tr.trace = 3.0;
  tr.logdet = std::log(C.determinant());
  tr.tail_r2 = chi2_quantile(0.99, 2);
  double out[kNumGaussianMetrics];
  gaussian_metrics(tr, tr.mu, tr.cov, tr.chol, true, 0.0, 0.0, out, 1);
  EXPECT_NEAR(out[kVarRatio], 1.0, 1e-14);
  EXPECT_NEAR(out[kDetRatio], 1.0, 1e-14);
  EXPECT_EQ(out[kMeanSqErr], 0.0);
  EXPECT_NEAR(out[kW2], 0.0, 1e-7);  // sqrt of a rounding-level difference
  EXPECT_NEAR(out[kKl], 0.0, 1e-14);
  // xent of a Gaussian with itself is its entropy: d/2 ln(2 pi e) + ln det / 2.
  EXPECT_NEAR(out[kXent], std::log(2 * M_PI * M_E) + 0.5 * std::log(C.determinant()), 1e-13);
  EXPECT_NEAR(out[kTailMass], 1.0, 1e-6);
}

TEST(Metrics, OneDimensionalClosedFormsByHand) {
  GaussianTruth tr{};
  tr.d = 1;
  tr.mu[0] = 0.0;
  tr.cov[0] = 1.0;
  tr.chol[0] = 1.0;
  tr.sqrt_cov[0] = 1.0;
  tr.trace = 1.0;
  tr.logdet = 0.0;
  tr.tail_r2 = chi2_quantile(0.99, 1);
  const double mu = 0.5, var = 0.25, sd = 0.5;
  double out[kNumGaussianMetrics];
  gaussian_metrics(tr, &mu, &var, &sd, true, 0.7, 1.5, out, 1);
  EXPECT_DOUBLE_EQ(out[kVarRatio], 0.25);
  EXPECT_NEAR(out[kDetRatio], 0.25, 1e-15);
  EXPECT_DOUBLE_EQ(out[kMeanSqErr], 0.25);
  EXPECT_NEAR(out[kW2], std::sqrt(0.25 + 0.25), 1e-15);  // sqrt(dm^2 + (s - s0)^2)
  EXPECT_NEAR(out[kKl], std::log(0.5) + (1.0 + 0.25) / (2 * 0.25) - 0.5, 1e-14);
  EXPECT_NEAR(out[kXent], 0.5 * std::log(2 * M_PI * 0.25) + (1.0 + 0.25) / (2 * 0.25), 1e-14);
  const double r = 2.5758293035489004;
  const double p =
      0.5 * std::erfc((r - mu) / (sd * std::sqrt(2.0))) + 0.5 * std::erfc((r + mu) / (sd * std::sqrt(2.0)));
  EXPECT_NEAR(out[kTailMass], p / 0.01, 1e-10);
  EXPECT_EQ(out[kSyntheticShare], 0.7);
  EXPECT_EQ(out[kDataAge], 1.5);
}

}  // namespace

namespace {

// kl, xent and w2 in d = 3 against Eigen, from the textbook formulas with
// explicit inverses, determinants and matrix square roots (no code shared
// with kernels/gaussian/gaussian.h), for non-commuting covariances.
TEST(Metrics, ThreeDimensionalClosedFormsAgainstEigen) {
  using Eigen::Matrix3d;
  using Eigen::Vector3d;
  Matrix3d S0, S;
  S0 << 2.0, 0.3, 0.1, 0.3, 1.0, -0.2, 0.1, -0.2, 0.5;
  S << 0.7, -0.1, 0.2, -0.1, 1.4, 0.3, 0.2, 0.3, 0.9;
  const Vector3d m0(1.0, -2.0, 0.5), m(0.4, -1.5, 1.1);
  GaussianTruth tr{};
  tr.d = 3;
  for (int i = 0; i < 3; ++i) {
    tr.mu[i] = m0(i);
    for (int j = 0; j < 3; ++j) tr.cov[i * 3 + j] = S0(i, j);
  }
  ASSERT_TRUE(cholesky(3, tr.cov, tr.chol));
  const Matrix3d root0 = Eigen::SelfAdjointEigenSolver<Matrix3d>(S0).operatorSqrt();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) tr.sqrt_cov[i * 3 + j] = root0(i, j);
  tr.trace = S0.trace();
  tr.logdet = std::log(S0.determinant());
  tr.tail_r2 = chi2_quantile(0.99, 3);
  double mu[3], cov[9], chol[9];
  for (int i = 0; i < 3; ++i) {
    mu[i] = m(i);
    for (int j = 0; j < 3; ++j) cov[i * 3 + j] = S(i, j);
  }
  ASSERT_TRUE(cholesky(3, cov, chol));
  double out[kNumGaussianMetrics];
  gaussian_metrics(tr, mu, cov, chol, true, 0.0, 0.0, out, 1);
  const Vector3d dm = m - m0;
  const Matrix3d Si = S.inverse();
  const double kl = 0.5 * ((Si * S0).trace() + dm.dot(Si * dm) - 3 + std::log(S.determinant() / S0.determinant()));
  const double xent = 0.5 * (3 * std::log(2 * M_PI) + std::log(S.determinant()) + (Si * S0).trace() + dm.dot(Si * dm));
  const Matrix3d cross = Eigen::SelfAdjointEigenSolver<Matrix3d>(root0 * S * root0).operatorSqrt();
  const double w2 = std::sqrt(dm.squaredNorm() + S0.trace() + S.trace() - 2 * cross.trace());
  EXPECT_NEAR(out[kKl], kl, 1e-12);
  EXPECT_NEAR(out[kXent], xent, 1e-12);
  EXPECT_NEAR(out[kW2], w2, 1e-12);
  EXPECT_NEAR(out[kVarRatio], S.trace() / S0.trace(), 1e-14);
  EXPECT_NEAR(out[kDetRatio], S.determinant() / S0.determinant(), 1e-13);
  EXPECT_NEAR(out[kMeanSqErr], dm.squaredNorm(), 1e-14);
}

}  // namespace

// The linear regression family's per-chain math: the cpu backend's vectorised normals against the scalar stream,
// and the Cholesky factorisation and solve of the fit against a textbook elimination.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/linear_regression/linear_regression_backend.h"
#include "tests/support/elimination.h"

namespace {

using namespace ouro::kernels;
using ouro::test::eliminate;

// cpu_stream_normals is the same draws as stream_normals, bit for bit, at every offset and length (tiles of 128
// normals, blocks of four: starts and ends inside both).
TEST(RegressionMath, CpuNormalsAreTheStreamsNormals) {
  for (std::uint64_t first : {0ull, 1ull, 3ull, 127ull, 130ull, 1000003ull})
    for (int count : {1, 2, 5, 11, 128, 129, 700}) {
      std::vector<double> fast(count), slow(count);
      cpu_stream_normals(7u, 12u, 3u, ouro::rng::kStreamSyntheticDraw, first, count, fast.data());
      stream_normals(7u, 12u, 3u, ouro::rng::kStreamSyntheticDraw, first, count, slow.data());
      for (int k = 0; k < count; ++k)
        ASSERT_EQ(fast[k], slow[k]) << "first " << first << " count " << count << " k " << k;
    }
}

// cpu_strided_normals is stream_normal at first, first + stride, ..., bit for bit.
TEST(RegressionMath, StridedNormalsAreTheStreamsNormals) {
  for (std::uint64_t first : {0ull, 3ull, 130ull})
    for (std::uint64_t stride : {1ull, 2ull, 5ull, 11ull, 257ull})
      for (int count : {1, 31, 32, 33, 100}) {
        std::vector<double> fast(count);
        cpu_strided_normals(9u, 4u, 2u, ouro::rng::kStreamRealDraw, first, stride, count, fast.data());
        for (int k = 0; k < count; ++k)
          ASSERT_EQ(fast[k], stream_normal(9u, 4u, 2u, ouro::rng::kStreamRealDraw, first + k * stride))
              << "first " << first << " stride " << stride << " k " << k;
      }
}

// The fit's solve (cholesky_upper_relative, cholesky_upper_solve) on Gram matrices of n >= d Gaussian points, d up
// to 256, against the elimination: relative error below 1e-10 (double rounding times the condition number, which
// for n = 2d points stays below about 10^3).
TEST(RegressionMath, CholeskySolvesGramSystems) {
  std::mt19937_64 gen(11);
  std::normal_distribution<double> normal;
  for (int d : {1, 2, 3, 10, 40, 256}) {
    const int n = 2 * d + 1;
    std::vector<double> x(static_cast<std::size_t>(n) * d), a(static_cast<std::size_t>(d) * d, 0.0), b(d), u(a.size());
    for (auto& v : x) v = normal(gen);
    for (auto& v : b) v = normal(gen);
    for (int p = 0; p < n; ++p)
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) a[i * d + j] += x[p * d + i] * x[p * d + j];
    ASSERT_TRUE(cholesky_upper_relative(d, a.data(), u.data(), kSingularPivot)) << "d " << d;
    std::vector<double> sol = b;
    cholesky_upper_solve(d, u.data(), sol.data());
    const auto ref = eliminate(d, {a.begin(), a.end()}, {b.begin(), b.end()});
    long double err = 0, norm = 0;
    for (int i = 0; i < d; ++i) {
      err = std::max(err, std::fabs(sol[i] - ref[i]));
      norm = std::max(norm, std::fabs(ref[i]));
    }
    EXPECT_LT(static_cast<double>(err / norm), 1e-10) << "d " << d;
  }
}

// A Gram matrix of fewer points than dimensions is singular: the factorisation refuses it (the backends then take
// the minimum-norm solution), where a test against the pivot's sign alone would accept rounding noise.
TEST(RegressionMath, CholeskyRefusesRankDeficientSystems) {
  std::mt19937_64 gen(5);
  std::normal_distribution<double> normal;
  for (int d : {2, 5, 40}) {
    const int n = d - 1;
    std::vector<double> x(static_cast<std::size_t>(n) * d), a(static_cast<std::size_t>(d) * d, 0.0), u(a.size());
    for (auto& v : x) v = normal(gen);
    for (int p = 0; p < n; ++p)
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) a[i * d + j] += x[p * d + i] * x[p * d + j];
    EXPECT_FALSE(cholesky_upper_relative(d, a.data(), u.data(), kSingularPivot)) << "d " << d;
  }
}

}  // namespace

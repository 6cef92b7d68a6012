// The shared Box-Muller sampler: its log and sin/cos against libm, and the
// moments of the normals it produces.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/core/normal.h"

namespace {

using namespace ouro;

TEST(Normal, LogWithinTwoUlpOfLibm) {
  std::mt19937_64 g(7);
  double worst = 0.0;
  auto check = [&](double u) {
    const double ref = std::log(u);
    worst = std::max(worst, std::abs(kernels::log_positive(u) - ref) / std::abs(ref));
  };
  for (int i = 0; i < 2000000; ++i) check(kernels::u01_word(g() >> 32));
  for (int i = 0; i < 200000; ++i)
    check(rng::u01_open(static_cast<std::uint32_t>(g()), static_cast<std::uint32_t>(g())));
  // The smallest and largest uniforms too.
  for (double u : {0x1.0p-33, 0x1.0p-53, 0.5, 1.0 - 0x1.0p-33}) check(u);
  EXPECT_LT(worst, 2 * 2.3e-16);
}

TEST(Normal, SinCosWithinFourUlpOfLibm) {
  std::mt19937_64 g(8);
  double worst = 0.0;
  for (std::uint64_t i = 0; i < 2000000; ++i) {
    const std::uint64_t k = i < 8 ? (i * 0x20000000ull) + (i & 1) * 0x1FFFFFFFull : g() >> 32;  // quadrant edges first
    const long double v = (k + 0.5L) / 4294967296.0L;                                           // (k + 1/2) 2^-32
    const long double a = 2.0L * 3.141592653589793238462643383279502884L * v;
    double s, c;
    kernels::sincos_2pi_word(k, s, c);
    worst = std::max(worst, static_cast<double>(std::fabs(s - std::sin(a))));
    worst = std::max(worst, static_cast<double>(std::fabs(c - std::cos(a))));
  }
  EXPECT_LT(worst, 4 * 2.3e-16);
}

TEST(Normal, UniformWordIsTheCentreOfItsCell) {
  EXPECT_EQ(kernels::u01_word(0), 0x1.0p-33);
  EXPECT_EQ(kernels::u01_word(0xFFFFFFFFull), 1.0 - 0x1.0p-33);
  EXPECT_EQ(kernels::u01_word(0x80000000ull), 0.5 + 0x1.0p-33);
}

TEST(Normal, StreamNormalIsTheDocumentedQuarterOfItsBlock) {
  const auto b = rng::draw_block(3, 4, 5, rng::kStreamRealDraw, 7);
  double z[4];
  kernels::box_muller(b, z);
  for (int q = 0; q < 4; ++q) EXPECT_EQ(kernels::stream_normal(3, 4, 5, rng::kStreamRealDraw, 28 + q), z[q]);
  // Pair order: words 0, 1 are (radius, angle) of z[0] = r cos, z[1] = r sin.
  const double r = std::sqrt(-2.0 * std::log(kernels::u01_word(b.v[0])));
  const double a = 2.0 * M_PI * kernels::u01_word(b.v[1]);
  EXPECT_NEAR(z[0], r * std::cos(a), 1e-14);
  EXPECT_NEAR(z[1], r * std::sin(a), 1e-14);
}

// Moments of 4e6 normals of one stream. Tolerances are z = 5 standard errors
// of each sample moment (se of the mean 1/sqrt(N), of the variance
// sqrt(2/N), of the fourth moment sqrt(96/N)), so a correct sampler fails with
// probability below 1e-6; a sampler that drops the sqrt(-2 ln u) radius, uses
// one uniform for both angles, or returns the same half of each block fails
// by hundreds of standard errors.
TEST(Normal, StreamMomentsAreStandardNormal) {
  const std::int64_t n = 4000000;
  double s1 = 0, s2 = 0, s4 = 0, tail = 0;
  for (std::int64_t m = 0; m < n; ++m) {
    const double z = kernels::stream_normal(3, 5, 1, rng::kStreamSyntheticDraw, static_cast<std::uint64_t>(m));
    s1 += z;
    s2 += z * z;
    s4 += z * z * z * z;
    tail += std::abs(z) > 2.5758293035489004 ? 1.0 : 0.0;
  }
  const double N = static_cast<double>(n);
  EXPECT_NEAR(s1 / N, 0.0, 5.0 / std::sqrt(N));
  EXPECT_NEAR(s2 / N, 1.0, 5.0 * std::sqrt(2.0 / N));
  EXPECT_NEAR(s4 / N, 3.0, 5.0 * std::sqrt(96.0 / N));
  // P(|Z| > z_0.995) = 0.01: binomial se sqrt(0.01 * 0.99 / N).
  EXPECT_NEAR(tail / N, 0.01, 5.0 * std::sqrt(0.0099 / N));
}

TEST(Normal, NeighbouringChainsAreUncorrelated) {
  // Correlation of the same stream position across consecutive chain keys;
  // se 1/sqrt(N), z = 5.
  const int n = 1000000;
  double sxy = 0;
  for (int m = 0; m < n; ++m) sxy += kernels::stream_normal(1, 100, 2, 1, m) * kernels::stream_normal(1, 101, 2, 1, m);
  EXPECT_NEAR(sxy / n, 0.0, 5.0 / std::sqrt(static_cast<double>(n)));
}

}  // namespace

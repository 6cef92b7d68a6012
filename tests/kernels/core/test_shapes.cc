// The toy shapes' laws (kernels/core/shapes.h): sin/cos of 2 pi v against libm and against the word sampler's
// bits, the closed-form moments against quadrature of each law's definition, the draws' moments against the closed
// forms, and the documented use of the random streams.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/core/shapes.h"

namespace {

using namespace ouro;
using kernels::ShapeKind;
using kernels::ShapeTruth;

constexpr long double kPiL = 3.141592653589793238462643383279502884L;

std::uint64_t bits(double x) {
  std::uint64_t b;
  std::memcpy(&b, &x, 8);
  return b;
}

// sin and cos of 2 pi v within 4 ulp of 1 (absolute; the values are in [-1, 1]) of the long double reference, over
// random v at 53-bit resolution and the quadrant edges and their neighbours.
TEST(ShapeSinCos, WithinFourUlpOfLibm) {
  std::vector<double> vs;
  for (int q = 0; q < 4; ++q) {
    const double edge = q / 4.0;
    vs.push_back(edge);
    vs.push_back(std::nextafter(edge, 1.0));
    if (q > 0) vs.push_back(std::nextafter(edge, 0.0));
    vs.push_back(edge + 0.125);  // the fold
    vs.push_back(std::nextafter(edge + 0.125, 0.0));
    vs.push_back(std::nextafter(edge + 0.125, 1.0));
  }
  vs.push_back(std::nextafter(1.0, 0.0));
  vs.push_back(0x1.0p-60);
  std::mt19937_64 g(11);
  for (int i = 0; i < 2000000; ++i)
    vs.push_back(rng::u01_open(static_cast<std::uint32_t>(g() >> 32), static_cast<std::uint32_t>(g())));
  double worst = 0.0;
  for (const double v : vs) {
    const long double a = 2.0L * kPiL * static_cast<long double>(v);
    double s, c;
    kernels::sincos_2pi(v, s, c);
    worst = std::max(worst, static_cast<double>(std::fabs(s - std::sin(a))));
    worst = std::max(worst, static_cast<double>(std::fabs(c - std::cos(a))));
  }
  EXPECT_LT(worst, 4 * 2.3e-16);
}

// sincos_2pi and sincos_2pi_word share one polynomial core: at the word's own angle uniform (k + 1/2) 2^-32 the two
// give the same bits.
TEST(ShapeSinCos, SameBitsAsTheWordSamplerAtItsAngles) {
  std::mt19937_64 g(12);
  for (std::uint64_t i = 0; i < 200000; ++i) {
    const std::uint64_t k = i < 8 ? (i / 2) * 0x40000000ull + (i & 1) * 0x3FFFFFFFull : g() >> 32;
    double s1, c1, s2, c2;
    kernels::sincos_2pi_word(k, s1, c1);
    kernels::sincos_2pi(kernels::u01_word(k), s2, c2);
    ASSERT_EQ(bits(s1), bits(s2)) << "word " << k;
    ASSERT_EQ(bits(c1), bits(c2)) << "word " << k;
  }
}

// The word sampler's bits, recorded before its polynomial core was factored out (the normal sampler's outputs, and
// so every run's, depend on them).
TEST(ShapeSinCos, WordSamplerKnownAnswers) {
  const std::uint64_t known[][3] = {
      {0x00000000ull, 0x3E0921FB54442D18ull, 0x3FF0000000000000ull},
      {0x00000001ull, 0x3E22D97C7F3321D2ull, 0x3FF0000000000000ull},
      {0x3FFFFFFFull, 0x3FF0000000000000ull, 0x3E0921FB54442D18ull},
      {0x40000000ull, 0x3FF0000000000000ull, 0xBE0921FB54442D18ull},
      {0x7FFFFFFFull, 0x3E0921FB54442D18ull, 0xBFF0000000000000ull},
      {0x80000000ull, 0xBE0921FB54442D18ull, 0xBFF0000000000000ull},
      {0xBFFFFFFFull, 0xBFF0000000000000ull, 0xBE0921FB54442D18ull},
      {0xC0000000ull, 0xBFF0000000000000ull, 0x3E0921FB54442D18ull},
      {0xFFFFFFFFull, 0xBE0921FB54442D18ull, 0x3FF0000000000000ull},
      {0x12345678ull, 0x3FDBA74AFBE524ACull, 0x3FECDBCFE2F533CDull},
      {0x9E3779B9ull, 0xBFE59D9DD254352Full, 0xBFE798869E0D87E8ull},
      {0x2AAAAAAAull, 0x3FEBB67AE8478B58ull, 0x3FE00000001D0553ull},
  };
  for (const auto& row : known) {
    double s, c;
    kernels::sincos_2pi_word(row[0], s, c);
    EXPECT_EQ(bits(s), row[1]) << "word " << row[0];
    EXPECT_EQ(bits(c), row[2]) << "word " << row[0];
  }
}

ShapeTruth moons(double noise) {
  ShapeTruth s{};
  s.kind = ShapeKind::kMoons;
  s.noise = noise;
  return s;
}
ShapeTruth circles(double factor, double noise) {
  ShapeTruth s{};
  s.kind = ShapeKind::kCircles;
  s.factor = factor;
  s.noise = noise;
  return s;
}
ShapeTruth swiss_roll(double noise) {
  ShapeTruth s{};
  s.kind = ShapeKind::kSwissRoll;
  s.noise = noise;
  return s;
}
// Four centres in 3-D.
ShapeTruth blobs(double cluster_std) {
  ShapeTruth s{};
  s.kind = ShapeKind::kBlobs;
  s.d = 3;
  s.centers = 4;
  s.cluster_std = cluster_std;
  const double c[] = {0, 0, 0, 4, 1, -2, -3, 5, 1, 2, -2, 6};
  std::copy(std::begin(c), std::end(c), s.center);
  return s;
}

// Each law's mean and covariance from its definition, by the midpoint rule over its angle (2e5 nodes; error
// O(h^2 max|f''|), below 1e-8 relative here) with each branch weighted by its probability, or directly from the
// centres for blobs; noise added last.
void reference_moments(const ShapeTruth& s, std::vector<double>& mean, std::vector<double>& cov) {
  const int d = s.d;
  std::vector<long double> m1(d, 0.0L), m2(d * d, 0.0L);
  auto add = [&](const long double* p, long double w) {
    for (int a = 0; a < d; ++a) {
      m1[a] += w * p[a];
      for (int b = 0; b < d; ++b) m2[a * d + b] += w * p[a] * p[b];
    }
  };
  const int n = 200000;
  for (int j = 0; j < n && s.kind != ShapeKind::kBlobs; ++j) {
    const long double f = (j + 0.5L) / n;
    if (s.kind == ShapeKind::kMoons) {
      const long double th = kPiL * f;
      const long double up[2] = {std::cos(th), std::sin(th)}, lo[2] = {1.0L - std::cos(th), 0.5L - std::sin(th)};
      add(up, 0.5L / n);
      add(lo, 0.5L / n);
    } else if (s.kind == ShapeKind::kCircles) {
      const long double th = 2.0L * kPiL * f;
      const long double outer[2] = {std::cos(th), std::sin(th)};
      const long double inner[2] = {s.factor * std::cos(th), s.factor * std::sin(th)};
      add(outer, 0.5L / n);
      add(inner, 0.5L / n);
    } else {
      const long double t = 1.5L * kPiL + 3.0L * kPiL * f;
      const long double p[2] = {t * std::cos(t), t * std::sin(t)};
      add(p, 1.0L / n);
    }
  }
  if (s.kind == ShapeKind::kBlobs) {
    for (int k = 0; k < s.centers; ++k) {
      long double p[kernels::kShapeMaxDim];
      for (int a = 0; a < d; ++a) p[a] = s.center[k * d + a];
      add(p, 1.0L / s.centers);
    }
  }
  const long double var = s.kind == ShapeKind::kBlobs ? static_cast<long double>(s.cluster_std) * s.cluster_std
                                                      : static_cast<long double>(s.noise) * s.noise;
  mean.assign(d, 0.0);
  cov.assign(d * d, 0.0);
  for (int a = 0; a < d; ++a) mean[a] = static_cast<double>(m1[a]);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b)
      cov[a * d + b] = static_cast<double>(m2[a * d + b] - m1[a] * m1[b] + (a == b ? var : 0.0L));
}

TEST(ShapeMoments, ClosedFormsMatchQuadratureOfEachLaw) {
  for (const ShapeTruth& s :
       {moons(0.0), moons(0.3), circles(0.8, 0.0), circles(0.3, 0.1), swiss_roll(0.0), swiss_roll(1.5), blobs(0.7)}) {
    std::vector<double> mean(s.d), cov(s.d * s.d), rmean, rcov;
    kernels::shape_moments(s, mean.data(), cov.data());
    reference_moments(s, rmean, rcov);
    const double scale = s.kind == ShapeKind::kSwissRoll ? 50.0 : 1.0;  // the roll's second moments are ~50
    for (int a = 0; a < s.d; ++a) EXPECT_NEAR(mean[a], rmean[a], 1e-8 * scale) << kernels::shape_name(s.kind) << a;
    for (int a = 0; a < s.d * s.d; ++a)
      EXPECT_NEAR(cov[a], rcov[a], 1e-8 * scale) << kernels::shape_name(s.kind) << " cov " << a;
  }
}

// z-scores of the draws' first and raw second moments against the closed forms: each is the sample mean of n iid
// values x_a or x_a x_b, against E x_a = mean_a and E x_a x_b = cov_ab + mean_a mean_b, its standard error the
// values' sample standard deviation over sqrt(n).
std::vector<double> moment_z(const ShapeTruth& drawn, const ShapeTruth& law, std::int64_t n) {
  const int d = drawn.d;
  std::vector<double> mean(d), cov(d * d);
  kernels::shape_moments(law, mean.data(), cov.data());
  std::vector<double> s1(d + d * d, 0.0), s2(d + d * d, 0.0);
  double x[kernels::kShapeMaxDim];
  for (std::int64_t i = 0; i < n; ++i) {
    kernels::shape_draw(21, 3, 1, rng::kStreamRealComponent, rng::kStreamRealDraw, i, drawn, x);
    for (int a = 0; a < d; ++a) {
      s1[a] += x[a];
      s2[a] += x[a] * x[a];
      for (int b = 0; b < d; ++b) {
        const double v = x[a] * x[b];
        s1[d + a * d + b] += v;
        s2[d + a * d + b] += v * v;
      }
    }
  }
  std::vector<double> z;
  const double N = static_cast<double>(n);
  for (int k = 0; k < d + d * d; ++k) {
    const double expect = k < d ? mean[k] : cov[k - d] + mean[(k - d) / d] * mean[(k - d) % d];
    const double m = s1[k] / N, var = s2[k] / N - m * m;
    z.push_back((m - expect) / std::sqrt(var / N));
  }
  return z;
}

// 1e6 draws per shape; every moment within z = 5 (a correct sampler fails one of the 7 x <= 12 moments with
// probability below 1e-5). The same check rejects draws from the wrong law: circles of factor 0.8 against the
// moments of factor 0.5 (the covariance 0.41 against 0.3125) by hundreds of standard errors.
TEST(ShapeDraw, MomentsMatchTheClosedForms) {
  const std::int64_t n = 1000000;
  for (const ShapeTruth& s :
       {moons(0.0), moons(0.2), circles(0.5, 0.0), circles(0.8, 0.1), swiss_roll(0.0), swiss_roll(1.0), blobs(0.7)})
    for (const double z : moment_z(s, s, n)) EXPECT_LT(std::abs(z), 5.0) << kernels::shape_name(s.kind);
  double worst = 0.0;
  for (const double z : moment_z(circles(0.8, 0.1), circles(0.5, 0.1), n)) worst = std::max(worst, std::abs(z));
  EXPECT_GT(worst, 100.0);
}

// Without noise, a circles point lies on radius 1 or factor (to rounding), and each radius takes half the points
// (binomial z < 5 over 2e5 draws).
TEST(ShapeDraw, CirclesLieOnTheirTwoRadii) {
  const ShapeTruth s = circles(0.3, 0.0);
  const int n = 200000;
  int outer = 0;
  for (int i = 0; i < n; ++i) {
    double x[2];
    kernels::shape_draw(5, 6, 7, rng::kStreamRealComponent, rng::kStreamRealDraw, i, s, x);
    const double r = std::hypot(x[0], x[1]);
    const bool is_outer = std::abs(r - 1.0) < 1e-14;
    ASSERT_TRUE(is_outer || std::abs(r - 0.3) < 1e-14) << "radius " << r;
    outer += is_outer ? 1 : 0;
  }
  EXPECT_LT(std::abs(outer - n / 2.0) / std::sqrt(n / 4.0), 5.0);
}

// The documented randomness, rebuilt by hand with libm: word block i of the choice stream (word 0 the branch or
// centre, words 1 and 2 the uniform), normals i*d .. i*d+d-1 of the normal stream.
TEST(ShapeDraw, PointIsItsDocumentedWordsAndNormals) {
  const std::uint32_t seed = 9, chain = 4, gen = 2, cs = rng::kStreamModelChoice, ns = rng::kStreamModelSample;
  for (std::int64_t i : {0, 1, 2, 3, 4, 77, 1000003}) {
    const rng::Block b = rng::draw_block(seed, chain, gen, cs, static_cast<std::uint64_t>(i));
    const long double u = (static_cast<long double>((static_cast<std::uint64_t>(b.v[1]) << 32 | b.v[2]) >> 12) + 0.5L) /
                          4503599627370496.0L;  // (k + 1/2) 2^-52 of the top 52 bits
    const bool first = b.v[0] < 2147483648u;
    double x[kernels::kShapeMaxDim];
    const auto m = static_cast<std::uint64_t>(2 * i);
    const double z0 = kernels::stream_normal(seed, chain, gen, ns, m);
    const double z1 = kernels::stream_normal(seed, chain, gen, ns, m + 1);
    kernels::shape_draw(seed, chain, gen, cs, ns, i, moons(0.25), x);
    const long double th = kPiL * u;
    EXPECT_NEAR(x[0], (first ? std::cos(th) : 1.0L - std::cos(th)) + 0.25L * z0, 1e-14);
    EXPECT_NEAR(x[1], (first ? std::sin(th) : 0.5L - std::sin(th)) + 0.25L * z1, 1e-14);
    kernels::shape_draw(seed, chain, gen, cs, ns, i, circles(0.4, 0.5), x);
    const long double r = first ? 1.0L : 0.4L, ph = 2.0L * kPiL * u;
    EXPECT_NEAR(x[0], r * std::cos(ph) + 0.5L * z0, 1e-14);
    EXPECT_NEAR(x[1], r * std::sin(ph) + 0.5L * z1, 1e-14);
    kernels::shape_draw(seed, chain, gen, cs, ns, i, swiss_roll(2.0), x);
    const long double t = 1.5L * kPiL + 3.0L * kPiL * u;
    EXPECT_NEAR(x[0], t * std::cos(t) + 2.0L * z0, 1e-12);
    EXPECT_NEAR(x[1], t * std::sin(t) + 2.0L * z1, 1e-12);
    const ShapeTruth bl = blobs(0.7);
    kernels::shape_draw(seed, chain, gen, cs, ns, i, bl, x);
    const int k = static_cast<int>(std::floor(static_cast<long double>(b.v[0]) * bl.centers / 4294967296.0L));
    for (int a = 0; a < 3; ++a) {
      const double z = kernels::stream_normal(seed, chain, gen, ns, static_cast<std::uint64_t>(3 * i + a));
      EXPECT_NEAR(x[a], bl.center[k * 3 + a] + 0.7 * z, 1e-14);
    }
  }
}

// A point depends on (seed, chain, generation, index, streams) only: the same on every call, whatever was drawn
// before, and different when any of them changes.
TEST(ShapeDraw, PointIsAFunctionOfItsCounterOnly) {
  for (const ShapeTruth& s : {moons(0.1), circles(0.5, 0.1), swiss_roll(0.1), blobs(1.0)}) {
    const int d = s.d;
    auto draw = [&](std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint32_t cs, std::uint32_t ns,
                    std::int64_t i) {
      std::vector<double> x(d);
      kernels::shape_draw(seed, chain, gen, cs, ns, i, s, x.data());
      return x;
    };
    const auto ref = draw(1, 2, 3, rng::kStreamRealComponent, rng::kStreamRealDraw, 10);
    for (std::int64_t i = 20; i >= 0; --i) draw(1, 2, 3, rng::kStreamRealComponent, rng::kStreamRealDraw, i);
    EXPECT_EQ(draw(1, 2, 3, rng::kStreamRealComponent, rng::kStreamRealDraw, 10), ref);
    EXPECT_NE(draw(9, 2, 3, rng::kStreamRealComponent, rng::kStreamRealDraw, 10), ref);
    EXPECT_NE(draw(1, 9, 3, rng::kStreamRealComponent, rng::kStreamRealDraw, 10), ref);
    EXPECT_NE(draw(1, 2, 9, rng::kStreamRealComponent, rng::kStreamRealDraw, 10), ref);
    EXPECT_NE(draw(1, 2, 3, rng::kStreamRealComponent, rng::kStreamRealDraw, 11), ref);
    EXPECT_NE(draw(1, 2, 3, rng::kStreamModelChoice, rng::kStreamRealDraw, 10), ref);
    EXPECT_NE(draw(1, 2, 3, rng::kStreamRealComponent, rng::kStreamModelSample, 10), ref);
  }
}

// Blobs pick each centre with probability 1/K (floor(word K / 2^32)): over 4e5 draws with K = 3 (which 2^32 does
// not divide) each centre's count is within z = 5 of n/3; with cluster_std tiny every point is at its centre.
TEST(ShapeDraw, BlobsPickCentresUniformly) {
  ShapeTruth s{};
  s.kind = ShapeKind::kBlobs;
  s.d = 1;
  s.centers = 3;
  s.cluster_std = 1e-12;
  s.center[0] = -10.0;
  s.center[1] = 0.0;
  s.center[2] = 10.0;
  const int n = 400000;
  int count[3] = {0, 0, 0};
  for (int i = 0; i < n; ++i) {
    double x;
    kernels::shape_draw(3, 1, 1, rng::kStreamRealComponent, rng::kStreamRealDraw, i, s, &x);
    const int k = static_cast<int>(std::lround(x / 10.0)) + 1;
    ASSERT_NEAR(x, s.center[k], 1e-10);
    ++count[k];
  }
  for (int k = 0; k < 3; ++k) EXPECT_LT(std::abs(count[k] - n / 3.0) / std::sqrt(n * (1.0 / 3) * (2.0 / 3)), 5.0);
}

}  // namespace

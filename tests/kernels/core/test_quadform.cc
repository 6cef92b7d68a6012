// kernels/core/quadform.h: Jacobi against Eigen; chi-square against closed forms;
// quadratic-form tails (Imhof's formula on a deformed contour) against closed
// forms (chi-square, Erlang/hypoexponential sums, Poisson mixtures of
// chi-squares, erfc), against Imhof's real-line integral evaluated by brute
// force, and against Monte Carlo; the Gaussian tail mass built on them.
//
// Monte Carlo checks use 4e6 draws and a tolerance of z = 4 binomial standard
// errors: the false-failure rate is 2 Phi(-4) ~ 6e-5 per check (seeds are fixed,
// so a run either always passes or always fails).
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/core/linalg.h"
#include "kernels/core/quadform.h"

namespace {

using namespace ouro::kernels;

constexpr double kPi = 3.14159265358979323846;

double phi(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// ---------------------------------------------------------------------------
// Jacobi

void check_jacobi(int d, const Eigen::MatrixXd& A) {
  double a[OURO_MAX_DIM * OURO_MAX_DIM], ev[OURO_MAX_DIM], vec[OURO_MAX_DIM * OURO_MAX_DIM];
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) a[i * d + j] = A(i, j);
  sym_eigen_jacobi(d, a, ev, vec);
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(A);
  const double scale = es.eigenvalues().cwiseAbs().maxCoeff();
  for (int i = 0; i < d; ++i) {
    if (i > 0) {
      EXPECT_LE(ev[i - 1], ev[i]) << "ascending order";
    }
    EXPECT_NEAR(ev[i], es.eigenvalues()(i), 1e-13 * scale) << "d " << d << " i " << i;
  }
  Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> V(vec, d, d);
  const Eigen::VectorXd L = Eigen::Map<Eigen::VectorXd>(ev, d);
  EXPECT_LT((V * L.asDiagonal() * V.transpose() - A).norm(), 1e-12 * A.norm()) << "d " << d;
  EXPECT_LT((V.transpose() * V - Eigen::MatrixXd::Identity(d, d)).norm(), 1e-12) << "d " << d;
}

TEST(Jacobi, MatchesEigenOnRandomSpdMatrices) {
  std::mt19937_64 g(4);
  std::normal_distribution<double> nd;
  for (int rep = 0; rep < 20; ++rep)
    for (int d = 2; d <= 8; ++d) {
      Eigen::MatrixXd B(d, d);
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) B(i, j) = nd(g);
      check_jacobi(d, B * B.transpose() + 0.1 * Eigen::MatrixXd::Identity(d, d));
    }
}

TEST(Jacobi, IllConditionedRepeatedAndLargest) {
  std::mt19937_64 g(5);
  std::normal_distribution<double> nd;
  // Q diag Q^T with eigenvalues spread over 1e-6..1e6, and with repeats.
  for (int d : {3, 8, OURO_MAX_DIM}) {
    Eigen::MatrixXd B(d, d);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) B(i, j) = nd(g);
    const Eigen::HouseholderQR<Eigen::MatrixXd> qr(B);
    const Eigen::MatrixXd Q = qr.householderQ();
    Eigen::VectorXd spread(d), repeated(d);
    for (int i = 0; i < d; ++i) {
      spread(i) = std::pow(10.0, -6.0 + 12.0 * i / (d - 1));
      repeated(i) = i < d / 2 ? 2.0 : 5.0;
    }
    check_jacobi(d, Q * spread.asDiagonal() * Q.transpose());
    check_jacobi(d, Q * repeated.asDiagonal() * Q.transpose());
  }
  // Already diagonal (no rotation at all) and the zero matrix.
  check_jacobi(4, Eigen::Vector4d(3.0, -1.0, 2.0, 0.5).asDiagonal().toDenseMatrix());
  double z[4] = {0, 0, 0, 0}, ev[2], vec[4];
  sym_eigen_jacobi(2, z, ev, vec);
  EXPECT_EQ(ev[0], 0.0);
  EXPECT_EQ(ev[1], 0.0);
  EXPECT_EQ(vec[0], 1.0);
  EXPECT_EQ(vec[3], 1.0);
}

// ---------------------------------------------------------------------------
// Chi-square

TEST(ChiSquare, ClosedForms) {
  for (double x : {1e-6, 0.1, 1.0, 3.0, 6.634896601021214, 20.0, 80.0, 300.0, 1400.0}) {
    // Relative 1e-14, growing with x past ~30 because the prefactor
    // e^{a ln x - x - lgamma(a)} inherits the rounding of its exponent (~x ulp).
    const double rel = 1e-14 * std::max(1.0, x / 30);
    const double q2 = std::exp(-x / 2);
    EXPECT_NEAR(chi2_survival(x, 2), q2, rel * q2) << x;
    EXPECT_NEAR(chi2_cdf(x, 2), -std::expm1(-x / 2), 1e-14) << x;
    // dof 1 and 3 through erfc; erfc's own relative accuracy is ~1e-15.
    const double q1 = std::erfc(std::sqrt(x / 2));
    EXPECT_NEAR(chi2_survival(x, 1), q1, rel * q1 + 1e-300) << x;
    const double q3 = std::erfc(std::sqrt(x / 2)) + std::sqrt(2 * x / kPi) * std::exp(-x / 2);
    EXPECT_NEAR(chi2_survival(x, 3), q3, rel * q3 + 1e-300) << x;
    // dof 4: e^{-x/2} (1 + x/2).
    const double q4 = std::exp(-x / 2) * (1 + x / 2);
    EXPECT_NEAR(chi2_survival(x, 4), q4, rel * q4) << x;
  }
  EXPECT_NEAR(chi2_survival(6.634896601021214, 1), 0.01, 1e-14);
  EXPECT_NEAR(chi2_survival(9.210340371976182, 2), 0.01, 1e-14);
  EXPECT_EQ(chi2_survival(0.0, 3), 1.0);
  EXPECT_EQ(chi2_survival(-1.0, 3), 1.0);
}

TEST(ChiSquare, QuantileInvertsSurvival) {
  EXPECT_NEAR(chi2_quantile(0.99, 1), 6.634896601021214, 1e-12 * 6.634896601021214);
  EXPECT_NEAR(chi2_quantile(0.99, 2), 9.210340371976182, 1e-12 * 9.210340371976182);
  EXPECT_NEAR(chi2_quantile(0.5, 2), 2 * std::log(2.0), 1e-14);
  for (int dof = 1; dof <= 16; ++dof) {
    EXPECT_NEAR(chi2_survival(chi2_quantile(0.99, dof), dof), 0.01, 1e-13) << dof;
    for (double p : {1e-12, 1e-6, 0.01, 0.3, 0.5, 0.9, 0.999, 1 - 1e-9}) {
      const double x = chi2_quantile(p, dof);
      // Relative 1e-10 on whichever tail is the smaller.
      if (p <= 0.5) EXPECT_NEAR(chi2_cdf(x, dof), p, 1e-10 * p) << dof << " " << p;
      else EXPECT_NEAR(chi2_survival(x, dof), 1 - p, 1e-10 * (1 - p)) << dof << " " << p;
    }
  }
  EXPECT_EQ(chi2_quantile(0.0, 3), 0.0);
  EXPECT_TRUE(std::isinf(chi2_quantile(1.0, 3)));
}

// ---------------------------------------------------------------------------
// References for quadratic forms

// lambda * noncentral chi^2_k(nu) > x, nu = sum delta^2: the Poisson(nu/2)
// mixture of central chi^2_{k+2i} (exact; summed until the weights vanish).
double noncentral_equal_reference(int k, double lambda, double nu, double x) {
  if (nu == 0.0) return chi2_survival(x / lambda, k);
  const double m = nu / 2;
  const int imax = static_cast<int>(m + 15 * std::sqrt(m) + 40);  // Poisson tail beyond: < 1e-30
  double s = 0.0;
  for (int i = 0; i <= imax; ++i) {
    const double lw = -m + i * std::log(m) - std::lgamma(i + 1.0);
    s += std::exp(lw) * chi2_survival(x / lambda, k + 2 * i);
  }
  return s;
}

// sum_i lambda_i (Z_{2i}^2 + Z_{2i+1}^2) > x with distinct lambda_i: a sum of
// exponentials with rates r_i = 1 / (2 lambda_i) (hypoexponential),
// P = sum_i prod_{j != i} r_j / (r_j - r_i) e^{-r_i x}.
double hypoexponential_reference(int m, const double* lam, double x) {
  double s = 0.0;
  for (int i = 0; i < m; ++i) {
    double c = 1.0;
    const double ri = 0.5 / lam[i];
    for (int j = 0; j < m; ++j)
      if (j != i) {
        const double rj = 0.5 / lam[j];
        c *= rj / (rj - ri);
      }
    s += c * std::exp(-ri * x);
  }
  return s;
}

// Imhof's real-line integral as printed (Imhof 1961), composite
// Simpson on [0, U] with U from Imhof's truncation bound
//   T_U = 1 / (pi k U^k prod lambda^{1/2} exp(1/2 sum delta^2 lambda^2 U^2 / (1 + lambda^2 U^2))) < tol,
// k = d/2. Slow (about 1e6 evaluations), only for the cross-check.
double imhof_bruteforce(int d, const double* lam, const double* del, double x, double tol) {
  auto integrand = [&](double u) {
    if (u == 0.0) {
      double s = -x / 2;
      for (int j = 0; j < d; ++j) s += 0.5 * lam[j] * (1 + del[j] * del[j]);
      return s;
    }
    double theta = -x * u / 2, lrho = 0.0;
    for (int j = 0; j < d; ++j) {
      const double lu = lam[j] * u, dd = del[j] * del[j];
      theta += 0.5 * (std::atan(lu) + dd * lu / (1 + lu * lu));
      lrho += 0.25 * std::log1p(lu * lu) + 0.5 * dd * lu * lu / (1 + lu * lu);
    }
    return std::sin(theta) / (u * std::exp(lrho));
  };
  const double k = d / 2.0;
  double prodsqrt = 1.0;
  for (int j = 0; j < d; ++j) prodsqrt *= std::sqrt(lam[j]);
  double U = 1.0;
  for (;; U *= 1.1) {
    double e = 0.0;
    for (int j = 0; j < d; ++j) {
      const double lu = lam[j] * U;
      e += 0.5 * del[j] * del[j] * lu * lu / (1 + lu * lu);
    }
    if (1.0 / (kPi * k * std::pow(U, k) * prodsqrt * std::exp(e)) < tol) break;
  }
  // Step: 1/40 of the oscillation period 4 pi / x and of the smallest 1/lambda.
  double lmax = 0.0;
  for (int j = 0; j < d; ++j) lmax = std::max(lmax, lam[j]);
  const double h0 = std::min(4 * kPi / x, 1.0 / lmax) / 40;
  const long n = 2 * static_cast<long>(std::ceil(U / h0 / 2));
  const double h = U / n;
  double s = integrand(0.0) + integrand(U);
  for (long i = 1; i < n; ++i) s += (i % 2 ? 4.0 : 2.0) * integrand(i * h);
  return 0.5 + s * h / 3 / kPi;
}

double monte_carlo_tail(int d, const double* lam, const double* del, double x, int n, unsigned seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> nd;
  long hit = 0;
  for (int i = 0; i < n; ++i) {
    double q = 0;
    for (int j = 0; j < d; ++j) {
      const double z = nd(g) + del[j];
      q += lam[j] * z * z;
    }
    hit += q > x;
  }
  return static_cast<double>(hit) / n;
}

// x values spanning tail probabilities from 0.99 down to 1e-10 for the
// reference function ref(x) (bisection on a log scale).
template <class F>
std::vector<double> x_spanning(F ref, double scale) {
  std::vector<double> xs;
  for (double p : {0.99, 0.9, 0.5, 0.1, 1e-2, 1e-4, 1e-6, 1e-8, 1e-10}) {
    double lo = 0.0, hi = scale;
    while (ref(hi) > p) hi *= 2;
    for (int i = 0; i < 70; ++i) {
      const double mid = 0.5 * (lo + hi);
      (ref(mid) > p ? lo : hi) = mid;
    }
    xs.push_back(0.5 * (lo + hi));
  }
  return xs;
}

// ---------------------------------------------------------------------------
// Quadratic forms: closed forms

// The accuracy required of quadform_survival (absolute).
constexpr double kAbsTol = 1e-7;
// The accuracy it achieves in these tests (the header states it).
constexpr double kMeasuredTol = 1e-11;

TEST(QuadForm, CentralOneTwoThreeDimensionsAgainstChiSquare) {
  double worst = 0.0;
  for (double lam : {1e-3, 0.01, 0.3, 1.0, 7.0, 1e3}) {
    for (int d = 1; d <= 3; ++d) {
      auto ref = [&](double x) {
        const double y = x / lam;
        if (d == 1) return chi2_survival(y, 1);
        if (d == 2) return std::exp(-y / 2);
        return std::erfc(std::sqrt(y / 2)) + std::sqrt(2 * y / kPi) * std::exp(-y / 2);
      };
      const double l[3] = {lam, lam, lam}, z[3] = {0, 0, 0};
      for (double x : x_spanning(ref, lam)) {
        const double p = quadform_survival(d, l, z, x), r = ref(x);
        EXPECT_NEAR(p, r, kAbsTol) << "d " << d << " lambda " << lam << " x " << x;
        EXPECT_NEAR(p, r, kMeasuredTol) << "d " << d << " lambda " << lam << " x " << x;
        EXPECT_NEAR(p, r, 1e-9 * r) << "relative, d " << d << " lambda " << lam << " x " << x;
        worst = std::max(worst, std::fabs(p - r));
      }
    }
  }
  std::printf("[          ] central d=1..3 closed forms: worst abs error %.2e\n", worst);
}

TEST(QuadForm, NoncentralOneDimensionAgainstErfc) {
  double worst = 0.0;
  for (double lam : {0.01, 0.3, 1.0, 7.0})
    for (double delta : {0.0, 0.7, -2.0, 5.0, 30.0}) {
      // P(lambda (Z + delta)^2 > x) = Phi(-sqrt(x/lambda) - delta) + 1 - Phi(sqrt(x/lambda) - delta).
      auto ref = [&](double x) {
        const double r = std::sqrt(x / lam);
        return 0.5 * std::erfc((r + delta) / std::sqrt(2.0)) + 0.5 * std::erfc((r - delta) / std::sqrt(2.0));
      };
      const double l1[1] = {lam}, z1[1] = {delta};
      for (double x : x_spanning(ref, lam)) {
        const double p = quadform_survival(1, l1, z1, x), r = ref(x);
        EXPECT_NEAR(p, r, kMeasuredTol) << lam << " " << delta << " " << x;
        EXPECT_NEAR(p, r, 1e-9 * r) << lam << " " << delta << " " << x;
        worst = std::max(worst, std::fabs(p - r));
      }
    }
  std::printf("[          ] noncentral d=1 vs erfc: worst abs error %.2e\n", worst);
}

TEST(QuadForm, NoncentralEqualWeightsAgainstPoissonMixture) {
  double worst = 0.0;
  std::mt19937_64 g(21);
  std::uniform_real_distribution<double> u(-1, 1);
  for (int d : {2, 3, 5, 8, 16})
    for (double lam : {0.05, 1.0, 20.0})
      for (double nu : {0.5, 4.0, 40.0, 400.0}) {
        // Spread the noncentrality nu over the coordinates at random.
        double l[OURO_MAX_DIM], del[OURO_MAX_DIM], w[OURO_MAX_DIM], ws = 0;
        for (int j = 0; j < d; ++j) ws += (w[j] = u(g) * u(g));
        for (int j = 0; j < d; ++j) {
          l[j] = lam;
          del[j] = (u(g) < 0 ? -1 : 1) * std::sqrt(nu * std::fabs(w[j]) / std::fabs(ws) / d * d);
        }
        double nu_actual = 0;
        for (int j = 0; j < d; ++j) nu_actual += del[j] * del[j];
        auto ref = [&](double x) { return noncentral_equal_reference(d, lam, nu_actual, x); };
        for (double x : x_spanning(ref, lam)) {
          const double p = quadform_survival(d, l, del, x), r = ref(x);
          EXPECT_NEAR(p, r, kMeasuredTol) << d << " " << lam << " " << nu << " " << x;
          EXPECT_NEAR(p, r, 1e-9 * r) << d << " " << lam << " " << nu << " " << x;
          worst = std::max(worst, std::fabs(p - r));
        }
      }
  std::printf("[          ] noncentral equal weights vs Poisson mixture: worst abs error %.2e\n", worst);
}

// Unequal weights with spreads up to 1e3: pairs of equal weights give the
// hypoexponential closed form.
TEST(QuadForm, UnequalWeightsAgainstHypoexponential) {
  double worst = 0.0;
  std::mt19937_64 g(22);
  std::uniform_real_distribution<double> u(0, 1);
  int cases = 0;
  for (int rep = 0; rep < 60; ++rep) {
    const int m = 2 + rep % 3;  // d = 4, 6, 8
    const double spread = std::max(std::pow(10.0, 3.0 * u(g)), std::pow(1.5, m));
    double lam[4];
    // Distinct, at least 30% apart (keeps the alternating closed form well conditioned).
    for (;;) {
      for (int i = 0; i < m; ++i) lam[i] = std::pow(spread, u(g));
      lam[0] = 1.0;
      lam[m - 1] = spread;
      bool ok = true;
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < i; ++j) ok = ok && std::fabs(std::log(lam[i] / lam[j])) > std::log(1.3);
      if (ok) break;
    }
    double l[8], z[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int i = 0; i < m; ++i) l[2 * i] = l[2 * i + 1] = lam[i];
    auto ref = [&](double x) { return hypoexponential_reference(m, lam, x); };
    for (double x : x_spanning(ref, spread)) {
      const double p = quadform_survival(2 * m, l, z, x), r = ref(x);
      EXPECT_NEAR(p, r, kMeasuredTol) << "m " << m << " spread " << spread << " x " << x;
      // Relative 1e-8 (the closed form's alternating sum carries ~1e-15 absolute).
      EXPECT_NEAR(p, r, 1e-8 * r + 1e-14) << "m " << m << " spread " << spread << " x " << x;
      worst = std::max(worst, std::fabs(p - r));
      ++cases;
    }
  }
  std::printf("[          ] unequal weights (spread <= 1e3) vs hypoexponential: %d cases, worst abs error %.2e\n",
              cases, worst);
}

// Far tails: relative accuracy survives down to the double range.
TEST(QuadForm, FarTailsKeepRelativeAccuracy) {
  const double l2[2] = {1.0, 1.0}, z2[2] = {0, 0};
  for (double x : {100.0, 400.0, 1000.0, 1400.0}) {
    const double r = std::exp(-x / 2);
    EXPECT_NEAR(quadform_survival(2, l2, z2, x), r, 1e-9 * r) << x;
  }
  // Beyond the double range: exactly 0, not NaN.
  EXPECT_EQ(quadform_survival(2, l2, z2, 1e5), 0.0);
  EXPECT_EQ(quadform_survival(2, l2, z2, 1e300), 0.0);
  // Deep in the lower tail: P(Q > x) = 1 - x/2 + ... for d = 2.
  EXPECT_NEAR(quadform_survival(2, l2, z2, 1e-9), std::exp(-0.5e-9), 1e-15);
  EXPECT_EQ(quadform_survival(2, l2, z2, 1e-300), 1.0);
}

// Imhof's formula as printed, integrated by brute force along the real line,
// agrees with the contour evaluation (the two are the same integral by Cauchy's
// theorem) for unequal, noncentral forms that have no closed form.
TEST(QuadForm, AgreesWithImhofRealLineIntegral) {
  struct Case {
    int d;
    double lam[6], del[6], x;
  };
  const Case cases[] = {
      {4, {0.5, 0.7, 1.1, 2.0}, {0.3, 0.0, -1.0, 0.5}, 13.28},
      {4, {0.05, 0.3, 1.0, 3.0}, {2.0, 0.2, 0.0, 0.4}, 3.0},
      {6, {0.01, 0.1, 0.4, 1.0, 2.5, 10.0}, {3.0, 0.5, 0.0, 0.2, 0.0, 0.1}, 40.0},
      {6, {1.0, 1.5, 2.0, 2.5, 3.0, 3.5}, {0, 0, 0, 0, 0, 0}, 8.0},
  };
  for (const Case& c : cases) {
    const double ref = imhof_bruteforce(c.d, c.lam, c.del, c.x, 1e-10);
    EXPECT_NEAR(quadform_survival(c.d, c.lam, c.del, c.x), ref, 1e-8) << "d " << c.d << " x " << c.x;
  }
}

TEST(QuadForm, UnequalNoncentralMatchesMonteCarlo) {
  struct Case {
    int d;
    double lam[4], del[4], x;
  };
  const Case cases[] = {{2, {0.2, 3.0}, {0.5, -1.0}, 9.21},
                        {3, {0.2, 1.0, 3.0}, {0.5, -1.0, 0.3}, 9.0},
                        {3, {1.0, 1.0, 0.05}, {0, 0, 4.0}, 2.0},
                        {4, {0.5, 0.7, 1.1, 2.0}, {0, 0.2, 0, 0}, 13.28},
                        {2, {10.0, 0.3}, {0, 0}, 9.21},
                        {2, {0.05, 0.08}, {1.0, 1.0}, 0.5},
                        {4, {1e-3, 0.1, 0.5, 1.0}, {20.0, 1.0, 0.0, 0.5}, 4.0}};
  const int n = 4000000;
  unsigned seed = 9;
  for (const Case& c : cases) {
    const double mc = monte_carlo_tail(c.d, c.lam, c.del, c.x, n, seed++);
    const double p = quadform_survival(c.d, c.lam, c.del, c.x);
    const double se = std::sqrt(std::max(p * (1 - p), 1e-12) / n);
    EXPECT_NEAR(p, mc, 4 * se) << "d " << c.d << " x " << c.x;
  }
}

// P(l1 Z1^2 + l2 Z2^2 > x) by a midpoint rule over z1 in [-10, 10] of the
// exact conditional tail in z2 (2e5 nodes; error ~1e-8 from the kink where
// the conditional tail reaches 1).
double central_2d_reference(double l1, double l2, double x) {
  double ref = 0.0;
  const int m = 200000;
  for (int i = 0; i < m; ++i) {
    const double z1 = -10.0 + (i + 0.5) * 20.0 / m;
    const double rest = x - l1 * z1 * z1;
    const double tail = rest <= 0 ? 1.0 : std::erfc(std::sqrt(rest / l2 / 2));
    ref += tail * std::exp(-0.5 * z1 * z1) / std::sqrt(2 * kPi) * (20.0 / m);
  }
  return ref;
}

// P(l1 (Z1 + d1)^2 + l2 (Z2 + d2)^2 > x) as the integral over z1 of the exact
// conditional tail in z2 (erfc), by a midpoint rule over z1 in -d1 +- ... 12
// standard deviations (4e5 nodes; the kink where the conditional tail reaches
// 1 limits it to ~1e-9).
double noncentral_2d_reference(double l1, double d1, double l2, double d2, double x) {
  double ref = 0.0;
  const int m = 400000;
  const double lo = -12.0, hi = 12.0, h = (hi - lo) / m;
  for (int i = 0; i < m; ++i) {
    const double z1 = lo + (i + 0.5) * h;
    const double rest = x - l1 * (z1 + d1) * (z1 + d1);
    double tail = 1.0;
    if (rest > 0) {
      const double r = std::sqrt(rest / l2);
      tail = 0.5 * std::erfc((r + d2) / std::sqrt(2.0)) + 0.5 * std::erfc((r - d2) / std::sqrt(2.0));
    }
    ref += tail * std::exp(-0.5 * z1 * z1) / std::sqrt(2 * kPi) * h;
  }
  return ref;
}

// A nearly collapsed direction with a large offset (lambda -> 0 with lambda
// delta^2 fixed): the essential singularity of its transform is strong and
// the contour flattens; still accurate, at a higher cost.
TEST(QuadForm, NearlyCollapsedDirectionWithLargeOffset) {
  for (double lt : {1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-13}) {
    const double b = 2.0;  // lambda delta^2 = 4
    const double lam[2] = {lt, 1.0}, del[2] = {b / std::sqrt(lt), 0.3};
    for (double x : {4.5, 6.0, 12.0}) {
      quadform_detail::QuadformStats st;
      const double q[2] = {del[0] * del[0], del[1] * del[1]};
      const double p = quadform_detail::survival(2, lam, q, x, &st);
      EXPECT_NEAR(p, noncentral_2d_reference(lt, del[0], 1.0, del[1], x), 1e-8)
          << "lambda " << lt << " x " << x << " nodes " << st.nodes;
      EXPECT_TRUE(st.converged) << lt << " " << x;
    }
  }
}

TEST(QuadForm, HighAnisotropyAndExtremeScales) {
  const double zero[2] = {0, 0};
  // A collapsed model far inside the radius: settled by the Chernoff bound.
  const double small[2] = {1e-6, 2e-6};
  EXPECT_EQ(quadform_survival(2, small, zero, 9.21), 0.0);
  // A wide model: P(Q <= x) ~ x / (2 sqrt(l1 l2)) = 2.66e-4.
  const double big[2] = {1e4, 3e4};
  EXPECT_NEAR(quadform_survival(2, big, zero, 9.21), central_2d_reference(1e4, 3e4, 9.21), 1e-7);
  for (double l2 : {20.0, 25.0, 1e3}) {
    const double lam[2] = {1.0, l2};
    for (double x : {5.0, 15.0, 60.0, 4000.0})
      EXPECT_NEAR(quadform_survival(2, lam, zero, x), central_2d_reference(1.0, l2, x), 1e-7) << l2 << " " << x;
  }
}

// Zero-variance directions, constants, infinities: never NaN for non-NaN input.
TEST(QuadForm, DegenerateInputs) {
  // lambda = 0 contributes nothing.
  const double l0[2] = {0.0, 1.0}, d0[2] = {5.0, 0.0};
  EXPECT_NEAR(quadform_survival(2, l0, d0, 2.0), chi2_survival(2.0, 1), 1e-12);
  // A vanishing weight with a diverging offset tends to the constant lambda delta^2 = 4.
  const double lt[2] = {1e-40, 1.0}, dt[2] = {2e20, 0.0};
  EXPECT_NEAR(quadform_survival(2, lt, dt, 6.0), chi2_survival(2.0, 1), 1e-12);
  // ... and the limit is continuous: a tiny weight (a normal with mean
  // 4 + 1e-20 and variance 1.6e-19, integrated out) gives the same.
  const double ls[2] = {1e-20, 1.0}, ds[2] = {2e10, 0.0};
  EXPECT_NEAR(quadform_survival(2, ls, ds, 6.0), chi2_survival(2.0, 1), 1e-12);
  // Only constants.
  const double lc[1] = {0.0}, dc[1] = {1.0};
  EXPECT_EQ(quadform_survival(1, lc, dc, 1.0), 0.0);
  EXPECT_EQ(quadform_survival(0, lc, dc, 1.0), 0.0);
  EXPECT_EQ(quadform_survival(0, lc, dc, -1.0), 1.0);
  const double lz[1] = {1e-40}, dz[1] = {1e20};  // constant 1e0
  EXPECT_EQ(quadform_survival(1, lz, dz, 0.5), 1.0);
  EXPECT_EQ(quadform_survival(1, lz, dz, 2.0), 0.0);
  // x <= 0: Q > 0 almost surely.
  const double l1[2] = {1.0, 2.0}, d1[2] = {0.1, 0.2};
  EXPECT_EQ(quadform_survival(2, l1, d1, 0.0), 1.0);
  EXPECT_EQ(quadform_survival(2, l1, d1, -3.0), 1.0);
  // Infinities.
  const double li[2] = {INFINITY, 1.0}, di[2] = {0.0, INFINITY};
  EXPECT_EQ(quadform_survival(2, li, d1, 3.0), 1.0);
  EXPECT_EQ(quadform_survival(2, l1, di, 3.0), 1.0);
  EXPECT_EQ(quadform_survival(2, l1, d1, INFINITY), 0.0);
  // Negative weight (rounding of a zero eigenvalue) is treated as zero.
  const double ln[2] = {-1e-17, 1.0};
  EXPECT_NEAR(quadform_survival(2, ln, d0, 2.0), chi2_survival(2.0, 1), 1e-12);
  // NaN in, NaN out (a failed fit stays visible).
  EXPECT_TRUE(std::isnan(quadform_survival(2, l1, d1, NAN)));
  // Huge noncentrality: the distribution is concentrated around lambda delta^2.
  const double lh[1] = {1.0}, dh[1] = {1e4};
  const double xh = 1e8 + 2e4 * 1.0;  // one standard deviation (2 lambda delta) above
  EXPECT_NEAR(quadform_survival(1, lh, dh, xh), 0.5 * std::erfc((std::sqrt(xh) - 1e4) / std::sqrt(2.0)), 1e-9);
}

// Randomised sweep over the regime the simulator meets (d 1..16, spreads up to
// 1e3, noncentralities up to delta^2 ~ 1e3, probabilities 1e-12..1): values in
// [0, 1], convergence, cost, and monotonicity in x.
TEST(QuadForm, RandomSweepCostAndSanity) {
  std::mt19937_64 g(23);
  std::uniform_real_distribution<double> u(0, 1);
  long nodes = 0, maxnodes = 0, calls = 0, unconverged = 0;
  for (int it = 0; it < 4000; ++it) {
    const int d = 1 + it % 16;
    double lam[OURO_MAX_DIM], del[OURO_MAX_DIM];
    const double spread = std::pow(10.0, 3 * u(g));
    double mean = 0, var = 0;
    for (int j = 0; j < d; ++j) {
      lam[j] = std::pow(spread, u(g));
      del[j] = u(g) < 0.3 ? 0.0 : 30 * u(g) * u(g) * (u(g) < 0.5 ? -1 : 1);
      mean += lam[j] * (1 + del[j] * del[j]);
      var += 2 * lam[j] * lam[j] * (1 + 2 * del[j] * del[j]);
    }
    double prev = 1.0;
    for (double k : {-2.0, 0.0, 2.0, 5.0, 10.0}) {
      const double x = std::max(mean + k * std::sqrt(var), 1e-3 * mean);
      double q[OURO_MAX_DIM], l[OURO_MAX_DIM];
      for (int j = 0; j < d; ++j) {
        l[j] = lam[j];
        q[j] = del[j] * del[j];
      }
      quadform_detail::QuadformStats st;
      const double p = quadform_detail::survival(d, l, q, x, &st);
      ASSERT_TRUE(p >= 0.0 && p <= 1.0) << p;
      EXPECT_LE(p, prev + 1e-12) << "monotone in x";
      EXPECT_NEAR(p, quadform_survival(d, lam, del, x), 0.0);
      prev = p;
      nodes += st.nodes;
      maxnodes = std::max<long>(maxnodes, st.nodes);
      unconverged += !st.converged;
      ++calls;
    }
  }
  EXPECT_EQ(unconverged, 0);
  EXPECT_LT(static_cast<double>(nodes) / calls, 120.0);
  std::printf("[          ] %ld calls: %.1f integrand evaluations per call on average, %ld at most\n", calls,
              static_cast<double>(nodes) / calls, maxnodes);
}

// ---------------------------------------------------------------------------
// Gaussian tail mass

TEST(TailMass, OneDimensionIsErfc) {
  const double mu0[1] = {0.5}, L0[1] = {2.0}, mu[1] = {0.5}, cov[1] = {4.0};
  EXPECT_NEAR(gaussian_tail_mass(1, mu0, L0, mu, cov, chi2_quantile(0.99, 1)), 0.01, 1e-12);
  const double m2[1] = {1.5}, c2[1] = {1.0};
  const double r = std::sqrt(chi2_quantile(0.99, 1));
  EXPECT_NEAR(gaussian_tail_mass(1, mu0, L0, m2, c2, r * r),
              phi((0.5 - r * 2 - 1.5) / 1.0) + 1 - phi((0.5 + r * 2 - 1.5) / 1.0), 1e-14);
  // A point mass (zero variance) inside and outside the radius.
  const double c0[1] = {0.0}, m3[1] = {0.5 + 2.0 * r * 1.01};
  EXPECT_EQ(gaussian_tail_mass(1, mu0, L0, m2, c0, r * r), 0.0);
  EXPECT_EQ(gaussian_tail_mass(1, mu0, L0, m3, c0, r * r), 1.0);
}

TEST(TailMass, ModelEqualToTruthGivesOnePercent) {
  std::mt19937_64 g(31);
  std::normal_distribution<double> nd;
  for (int d = 2; d <= OURO_MAX_DIM; ++d) {
    Eigen::MatrixXd B(d, d);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) B(i, j) = nd(g);
    const Eigen::MatrixXd S = B * B.transpose() + 0.5 * Eigen::MatrixXd::Identity(d, d);
    double s[OURO_MAX_DIM * OURO_MAX_DIM], L[OURO_MAX_DIM * OURO_MAX_DIM], m[OURO_MAX_DIM];
    for (int i = 0; i < d; ++i) {
      m[i] = nd(g);
      for (int j = 0; j < d; ++j) s[i * d + j] = S(i, j);
    }
    ASSERT_TRUE(cholesky(d, s, L));
    EXPECT_NEAR(gaussian_tail_mass(d, m, L, m, s, chi2_quantile(0.99, d)), 0.01, 1e-9) << "d " << d;
  }
}

// A rotated, shifted, anisotropic model against Monte Carlo (z = 4), in 2-D
// and 3-D.
TEST(TailMass, RotatedModelMatchesMonteCarlo) {
  struct Case {
    int d;
    double mu0[3], S0[9], mu[3], S[9];
  };
  const Case cases[] = {
      {2, {0, 0}, {2.0, 0.8, 0.8, 1.0}, {0.7, -0.4}, {0.5, -0.3, -0.3, 1.5}},
      {3,
       {1, 2, 3},
       {2, 0.3, 0.1, 0.3, 1, 0.2, 0.1, 0.2, 0.5},
       {1.5, 1.8, 3.1},
       {0.3, 0.05, 0, 0.05, 2.0, -0.4, 0, -0.4, 0.4}},
  };
  const int n = 4000000;
  unsigned seed = 10;
  for (const Case& c : cases) {
    const int d = c.d;
    double L0[9], L[9];
    ASSERT_TRUE(cholesky(d, c.S0, L0));
    ASSERT_TRUE(cholesky(d, c.S, L));
    const double r2 = chi2_quantile(0.99, d);
    Eigen::MatrixXd S0m(d, d);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) S0m(i, j) = c.S0[i * d + j];
    const Eigen::MatrixXd S0inv = S0m.inverse();
    std::mt19937_64 g(seed++);
    std::normal_distribution<double> nd;
    long hit = 0;
    Eigen::VectorXd z(d), x(d);
    for (int k = 0; k < n; ++k) {
      for (int i = 0; i < d; ++i) z(i) = nd(g);
      for (int i = 0; i < d; ++i) {
        double s = c.mu[i] - c.mu0[i];
        for (int j = 0; j <= i; ++j) s += L[i * d + j] * z(j);
        x(i) = s;
      }
      hit += x.dot(S0inv * x) > r2;
    }
    const double p = gaussian_tail_mass(d, c.mu0, L0, c.mu, c.S, r2);
    EXPECT_NEAR(p, static_cast<double>(hit) / n, 4 * std::sqrt(p * (1 - p) / n)) << "d " << d;
  }
}

// The whitening and eigen-decomposition agree with the same construction done
// with Eigen, for random 5-D models.
TEST(TailMass, MatchesEigenConstruction) {
  std::mt19937_64 g(32);
  std::normal_distribution<double> nd;
  const int d = 5;
  for (int rep = 0; rep < 10; ++rep) {
    Eigen::MatrixXd B(d, d), C(d, d);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) {
        B(i, j) = nd(g);
        C(i, j) = 0.5 * nd(g);
      }
    const Eigen::MatrixXd S0 = B * B.transpose() + Eigen::MatrixXd::Identity(d, d);
    const Eigen::MatrixXd S = C * C.transpose() + 0.05 * Eigen::MatrixXd::Identity(d, d);
    Eigen::VectorXd mu0(d), mu(d);
    for (int i = 0; i < d; ++i) {
      mu0(i) = nd(g);
      mu(i) = mu0(i) + 0.5 * nd(g);
    }
    const Eigen::MatrixXd L0m = S0.llt().matrixL();
    const Eigen::MatrixXd W =
        L0m.triangularView<Eigen::Lower>().solve(L0m.triangularView<Eigen::Lower>().solve(S).transpose());
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(0.5 * (W + W.transpose()));
    const Eigen::VectorXd m = L0m.triangularView<Eigen::Lower>().solve(mu - mu0);
    const Eigen::VectorXd b = es.eigenvectors().transpose() * m;
    double lam[d], del[d], s0[d * d], s[d * d], L0[d * d], a0[d], a[d];
    for (int j = 0; j < d; ++j) {
      lam[j] = es.eigenvalues()(j);
      del[j] = b(j) / std::sqrt(lam[j]);
      a0[j] = mu0(j);
      a[j] = mu(j);
      for (int k = 0; k < d; ++k) {
        s0[j * d + k] = S0(j, k);
        s[j * d + k] = S(j, k);
      }
    }
    ASSERT_TRUE(cholesky(d, s0, L0));
    const double r2 = chi2_quantile(0.99, d);
    EXPECT_NEAR(gaussian_tail_mass(d, a0, L0, a, s, r2), quadform_survival(d, lam, del, r2), 1e-10);
  }
}

// A singular model covariance (rank 1 in 2-D, a fully collapsed direction):
// the tail mass is the 1-D one along the surviving direction.
TEST(TailMass, SingularModelCovariance) {
  const double mu0[2] = {0, 0}, L0[4] = {1, 0, 0, 1};  // truth: standard normal
  const double mu[2] = {0.5, 1.2};
  const double cov[4] = {2.0, 0, 0, 0};  // variance only along the first axis
  const double r2 = chi2_quantile(0.99, 2);
  // X = (0.5 + sqrt2 Z, 1.2): radius^2 = (0.5 + sqrt2 Z)^2 + 1.44 > r2.
  const double l1[1] = {2.0}, d1[1] = {0.5 / std::sqrt(2.0)};
  const double expect = quadform_survival(1, l1, d1, r2 - 1.44);
  const double p = gaussian_tail_mass(2, mu0, L0, mu, cov, r2);
  EXPECT_NEAR(p, expect, 1e-12);
  // Fully collapsed to a point.
  const double zero[4] = {0, 0, 0, 0}, far[2] = {3.0, 0.5};
  EXPECT_EQ(gaussian_tail_mass(2, mu0, L0, mu, zero, r2), 0.0);
  EXPECT_EQ(gaussian_tail_mass(2, mu0, L0, far, zero, r2), 1.0);
}

}  // namespace

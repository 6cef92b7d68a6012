// Tail mass of a Gaussian model outside the truth's 99% Mahalanobis ellipsoid,
// and the small pieces it needs, written once for both backends (g++ host code
// and nvcc device code; no allocation, no exceptions, fixed-size workspaces of
// OURO_MAX_DIM).
//
// If X ~ N(mu, Sigma) and the truth is N(mu0, Sigma0), the squared truth
// Mahalanobis radius (X-mu0)^T Sigma0^{-1} (X-mu0) is, after whitening with
// Sigma0 and rotating to the eigenbasis of the whitened model covariance, a
// positive definite quadratic form in normal variables
//     Q = sum_j lambda_j (Z_j + delta_j)^2,   Z_j iid N(0,1),
// whose distribution function has no closed form. Imhof (1961, Biometrika
// 48:419-426, "Computing the distribution of quadratic forms in normal
// variables") gives it as a one-dimensional integral,
//     P(Q > x) = 1/2 + (1/pi) int_0^inf sin(theta(u)) / (u rho(u)) du,
//     theta(u) = 1/2 sum_j [atan(lambda_j u) + delta_j^2 lambda_j u / (1 + lambda_j^2 u^2)] - x u / 2,
//     rho(u)   = prod_j (1 + lambda_j^2 u^2)^{1/4} exp(1/2 sum_j delta_j^2 lambda_j^2 u^2 / (1 + lambda_j^2 u^2)),
// which is what quadform_survival computes.
//
// Why not Imhof's real-line integral as it stands: its integrand oscillates
// with period 4 pi / x and decays only like u^{-1-d/2}, and Imhof's truncation
// bound |T_U| <= 1 / (pi k U^k prod_j lambda_j^{1/2}
// exp(1/2 sum_j delta_j^2 lambda_j^2 U^2 / (1 + lambda_j^2 U^2))), k = d/2,
// asks for U ~ 3e6 / lambda when d = 2 and the error is to stay below 1e-7:
// millions of integrand evaluations per call. The same integral is therefore
// evaluated along a deformed contour through a saddle point (the approach of
// Rice 1980, SIAM J. Sci. Stat. Comput. 1:438-448), on which the integrand
// decays like a Gaussian and the trapezoidal rule converges exponentially
// (Trefethen & Weideman 2014, SIAM Review 56:385):
//   * Imhof's integrand is Im[phi(u/2) e^{-iux/2}] / u with phi the
//     characteristic function of Q; with s = -iu/2 his integral is the
//     Bromwich inversion of the Laplace transform L(s) = E e^{-sQ}
//     = prod_j (1 + 2 lambda_j s)^{-1/2} exp(-delta_j^2 lambda_j s / (1 + 2 lambda_j s)):
//       P(Q > x) = -(1/2 pi i) int_{c-i inf}^{c+i inf} e^{sx} L(s) / s ds,  -1/(2 lambda_max) < c < 0,
//       P(Q <= x) = (1/2 pi i) int_{c-i inf}^{c+i inf} e^{sx} L(s) / s ds,  c > 0
//     (Imhof's 1/2 is the half residue of the pole at s = 0 on his path c = 0;
//     his integrand's finite limit at u -> 0 is this pole's principal value).
//   * L is analytic off the real half-line s <= -1/(2 lambda_max), so by
//     Cauchy's theorem the vertical line may be bent into the parabola
//     s(y) = c - a y^2 + i y, which crosses the real axis only at c and then
//     bends left, where |e^{sx}| = e^{cx - a x y^2} falls off like a Gaussian.
//   * c is the saddle point of psi(s) = s x + log L(s) - log|s| on the real
//     axis (psi' = 0), found by safeguarded Newton; the tail P(Q > x) is
//     integrated directly when x >= E Q (no cancellation against 1, so tails
//     down to 1e-300 keep their relative accuracy) and P(Q <= x) otherwise.
//     sigma = psi''(c)^{-1/2} is the width of the integrand at the saddle;
//     both the pole at 0 and the branch point at -1/(2 lambda_max) are at
//     least 0.7 sigma away from c (psi'' >= 1/c^2 and >= 1/(2 eps^2) with
//     eps the distance to the branch point), which sets the step size.
//   * a matches the curvature of the steepest-descent path at c,
//     a = -psi'''/(6 psi''), kept >= 0.1/sigma (the path must bend left) and,
//     for P(Q <= x), <= 1/(2c) (|s| never nearer the pole than c). A
//     noncentral term exp(delta^2/(2 w)), w = 1 + 2 lambda s, has an
//     essential singularity at w = 0 and grows towards it from Re w > 0; a is
//     lowered (bisection) until the growth of all such terms along the
//     parabola is provably at most half of the decay e^{-a x y^2} (the exact
//     supremum over y of Re(1/w(y)) - 1/w(0) relative to a y^2 is closed form).
//   * Symmetry (the integrand at -y is minus the conjugate of that at y)
//     folds the integral onto y >= 0; y = sigma l sinh(t/l) with l = 8 keeps
//     nodes sigma-spaced at the saddle and spreads them geometrically in the
//     far tail. The trapezoidal rule in t starts at step 0.5 (sigma units),
//     truncates where |integrand| < 1e-14 of its maximum, and halves the step
//     (reusing every node) until two successive sums agree to 1e-8 relative
//     (at most 5 halvings); the trapezoidal error for analytic integrands
//     squares when the step halves, so the accepted sum is far better than
//     the 1e-8 agreement.
//   * A nearly collapsed direction far off-centre (lambda_j -> 0 with
//     lambda_j delta_j^2 fixed, delta_j >~ 30, variance below 1e-4 of the
//     rest's) has an essential singularity too strong for any parabola; it is
//     replaced by a normal with its mean and variance and integrated out by
//     3-point Gauss-Hermite quadrature (quadform_detail::survival).
//
// Accuracy, measured by tests/kernels/core/test_quadform.cc against closed forms
// (chi-square; Erlang/hypoexponential sums for unequal weights with spreads up
// to 1e3; the Poisson mixture of chi-squares for noncentral equal weights,
// d up to 16, sum delta^2 up to 400; erfc for d = 1), against Imhof's
// real-line integral evaluated by brute force, and against Monte Carlo, for x
// spanning tail probabilities 0.99 .. 1e-10: absolute error below 1e-12
// (requirement: 1e-7), relative error below 1e-9, down to probabilities of
// 1e-300. Over 20000 random forms (d 1..16, spreads up to 1e3, delta up to
// 30, x from 0.03 E Q to 10 standard deviations above the mean) checked
// against the same contour integral at 25x the resolution (development
// scans, not in the test suite): worst absolute error 6e-12. Where the
// normal replacement above is used (delta up to 100 in those scans), the
// absolute error stays below 4e-9, the relative error in far tails
// (P < 1e-6) can reach 1e-4.
//
// Cost: a Newton solve for the saddle (~10 iterations of O(d)), then 20-60
// integrand evaluations (mean ~40, p99 ~130, worst seen ~260; hard cap
// 400 * 2^5), each O(d) complex log/atan2/division plus one complex
// exponential; three times that when the normal replacement applies.
// Measured on the development host (x86-64, g++ -O2, one core): ~4.4 us per
// call for d = 2 (36 evaluations), i.e. ~45 ms per 1e4 chains.
#pragma once

#include <cmath>

#include "kernels/core/portability.h"

namespace ouro::kernels {

// ---------------------------------------------------------------------------
// Symmetric eigen-decomposition by cyclic Jacobi rotations (Jacobi 1846; the
// threshold strategy and the rotation update that loses least accuracy are
// those of Numerical Recipes, 3rd ed., sec. 11.1). a: d x d symmetric,
// row-major, destroyed (its upper triangle is driven to zero). evals: the d
// eigenvalues in ascending order. evecs: d x d row-major, column k the unit
// eigenvector of evals[k]. Deterministic: fixed sweep order, at most 50 sweeps
// (quadratic convergence needs fewer than 10 for d <= 16); the loop stops once
// the off-diagonal sum is exactly zero, which the underflow rule below reaches.
OURO_HD inline void sym_eigen_jacobi(int d, double* a, double* evals, double* evecs) {
  double b[OURO_MAX_DIM], z[OURO_MAX_DIM];
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j < d; ++j) evecs[i * d + j] = (i == j) ? 1.0 : 0.0;
    b[i] = evals[i] = a[i * d + i];
    z[i] = 0.0;
  }
  for (int sweep = 0; sweep < 50; ++sweep) {
    double sm = 0.0;
    for (int p = 0; p < d - 1; ++p)
      for (int q = p + 1; q < d; ++q) sm += ::fabs(a[p * d + q]);
    if (!(sm > 0.0)) break;  // converged (or NaN input: leave as is)
    // First sweeps rotate only large elements (cheaper, same result).
    const double tresh = sweep < 3 ? 0.2 * sm / (d * d) : 0.0;
    for (int p = 0; p < d - 1; ++p) {
      for (int q = p + 1; q < d; ++q) {
        const double apq = a[p * d + q];
        const double g = 100.0 * ::fabs(apq);
        // After 4 sweeps an element below the rounding of both diagonal
        // entries can no longer change them: set it to zero.
        if (sweep > 3 && ::fabs(evals[p]) + g == ::fabs(evals[p]) && ::fabs(evals[q]) + g == ::fabs(evals[q])) {
          a[p * d + q] = 0.0;
        } else if (::fabs(apq) > tresh) {
          double h = evals[q] - evals[p];
          double t;
          if (::fabs(h) + g == ::fabs(h)) {
            t = apq / h;  // theta^2 would overflow: t = 1/(2 theta)
          } else {
            const double theta = 0.5 * h / apq;
            t = 1.0 / (::fabs(theta) + ::sqrt(1.0 + theta * theta));
            if (theta < 0.0) t = -t;
          }
          const double c = 1.0 / ::sqrt(1.0 + t * t);
          const double s = t * c;
          const double tau = s / (1.0 + c);
          h = t * apq;
          z[p] -= h;
          z[q] += h;
          evals[p] -= h;
          evals[q] += h;
          a[p * d + q] = 0.0;
          // a' = J^T a J on the upper triangle; v' = v J.
          for (int j = 0; j < p; ++j) {
            const double gg = a[j * d + p], hh = a[j * d + q];
            a[j * d + p] = gg - s * (hh + gg * tau);
            a[j * d + q] = hh + s * (gg - hh * tau);
          }
          for (int j = p + 1; j < q; ++j) {
            const double gg = a[p * d + j], hh = a[j * d + q];
            a[p * d + j] = gg - s * (hh + gg * tau);
            a[j * d + q] = hh + s * (gg - hh * tau);
          }
          for (int j = q + 1; j < d; ++j) {
            const double gg = a[p * d + j], hh = a[q * d + j];
            a[p * d + j] = gg - s * (hh + gg * tau);
            a[q * d + j] = hh + s * (gg - hh * tau);
          }
          for (int j = 0; j < d; ++j) {
            const double gg = evecs[j * d + p], hh = evecs[j * d + q];
            evecs[j * d + p] = gg - s * (hh + gg * tau);
            evecs[j * d + q] = hh + s * (gg - hh * tau);
          }
        }
      }
    }
    // Diagonal updates are accumulated in z and added once per sweep (less
    // rounding than updating evals alone).
    for (int p = 0; p < d; ++p) {
      b[p] += z[p];
      evals[p] = b[p];
      z[p] = 0.0;
    }
  }
  // Ascending order (selection sort: d is small, and it is deterministic).
  for (int i = 0; i < d - 1; ++i) {
    int k = i;
    for (int j = i + 1; j < d; ++j)
      if (evals[j] < evals[k]) k = j;
    if (k != i) {
      const double t = evals[i];
      evals[i] = evals[k];
      evals[k] = t;
      for (int r = 0; r < d; ++r) {
        const double u = evecs[r * d + i];
        evecs[r * d + i] = evecs[r * d + k];
        evecs[r * d + k] = u;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Chi-square distribution through the regularized incomplete gamma functions
// P(a, x) and Q(a, x) = 1 - P(a, x), chi^2_k ~ Gamma(k/2, scale 2).
namespace quadform_detail {

// P(a, x) and Q(a, x) for a > 0, x >= 0 (Numerical Recipes 3rd ed. sec. 6.2):
// the series P = e^{-x} x^a / Gamma(a+1) sum_n x^n / ((a+1)...(a+n)) for
// x < a + 1, where it converges fast and P is the smaller of the two; the
// continued fraction for Q (evaluated by the modified Lentz method) otherwise.
// Each is computed directly where it is small, so neither loses relative
// accuracy to the cancellation 1 - (something near 1); both to ~1e-14 relative.
OURO_HD inline void gamma_pq(double a, double x, double* p, double* q) {
  if (!(x > 0.0)) {
    *p = 0.0;
    *q = 1.0;
    return;
  }
  const double lpre = a * ::log(x) - x - ::lgamma(a);
  if (x < a + 1.0) {
    double ap = a, del = 1.0 / a, sum = del;
    for (int n = 0; n < 1000; ++n) {
      ap += 1.0;
      del *= x / ap;
      sum += del;
      if (::fabs(del) < ::fabs(sum) * 1e-17) break;
    }
    const double pp = sum * ::exp(lpre);
    *p = pp;
    *q = 1.0 - pp;
  } else {
    const double fpmin = 1e-300;
    double bb = x + 1.0 - a, c = 1.0 / fpmin, dd = 1.0 / bb, h = dd;
    for (int i = 1; i < 1000; ++i) {
      const double an = -i * (i - a);
      bb += 2.0;
      dd = an * dd + bb;
      if (::fabs(dd) < fpmin) dd = fpmin;
      c = bb + an / c;
      if (::fabs(c) < fpmin) c = fpmin;
      dd = 1.0 / dd;
      const double del = dd * c;
      h *= del;
      if (::fabs(del - 1.0) < 1e-16) break;
    }
    const double qq = ::exp(lpre) * h;
    *q = qq;
    *p = 1.0 - qq;
  }
}

// Density of chi^2_k at x > 0.
OURO_HD inline double chi2_density(double x, int dof) {
  const double a = 0.5 * dof;
  return 0.5 * ::exp((a - 1.0) * ::log(0.5 * x) - 0.5 * x - ::lgamma(a));
}

}  // namespace quadform_detail

// P(chi^2_dof > x). dof <= 0 is the point mass at 0. NaN x gives NaN.
OURO_HD inline double chi2_survival(double x, int dof) {
  if (x != x) return x;
  if (dof <= 0) return x < 0.0 ? 1.0 : 0.0;
  double p, q;
  quadform_detail::gamma_pq(0.5 * dof, 0.5 * x, &p, &q);
  return q;
}

// P(chi^2_dof <= x).
OURO_HD inline double chi2_cdf(double x, int dof) {
  if (x != x) return x;
  if (dof <= 0) return x < 0.0 ? 0.0 : 1.0;
  double p, q;
  quadform_detail::gamma_pq(0.5 * dof, 0.5 * x, &p, &q);
  return p;
}

// The x with P(chi^2_dof <= x) = p: Newton's method on whichever of the cdf
// and the survival function is the smaller at the answer (so 1 - p near 1e-12
// keeps its digits), inside a bracket that every step shrinks; a step that
// would leave the bracket bisects instead. Converges to ~1e-15 relative.
// p <= 0 gives 0, p >= 1 gives +inf, NaN gives NaN.
OURO_HD inline double chi2_quantile(double p, int dof) {
  if (p != p) return p;
  if (!(p > 0.0) || dof <= 0) return 0.0;
  if (!(p < 1.0)) return INFINITY;
  const double a = 0.5 * dof;
  const bool upper = p > 0.5;
  const double target = upper ? 1.0 - p : p;
  // g(x) = P(x) - p, or (1-p) - Q(x): increasing in x, derivative the density.
  double lo = 0.0, hi = dof > 1 ? static_cast<double>(dof) : 1.0;
  for (int i = 0; i < 2000; ++i) {
    double pp, qq;
    quadform_detail::gamma_pq(a, 0.5 * hi, &pp, &qq);
    const double g = upper ? target - qq : pp - target;
    if (g >= 0.0) break;
    lo = hi;
    hi *= 2.0;
  }
  double x = 0.5 * (lo + hi);
  for (int it = 0; it < 300; ++it) {
    double pp, qq;
    quadform_detail::gamma_pq(a, 0.5 * x, &pp, &qq);
    const double g = upper ? target - qq : pp - target;
    if (g == 0.0) return x;
    if (g < 0.0) lo = x;
    else hi = x;
    const double f = quadform_detail::chi2_density(x, dof);
    double xn = x - g / f;
    if (!(xn > lo && xn < hi)) xn = 0.5 * (lo + hi);
    const double dx = ::fabs(xn - x);
    x = xn;
    if (dx <= 1e-15 * x || hi - lo <= 1e-15 * x) break;
  }
  return x;
}

// ---------------------------------------------------------------------------
// Quadratic forms in normal variables.
namespace quadform_detail {

struct Cplx {
  double re, im;
};

OURO_HD OURO_FORCEINLINE Cplx cmul(Cplx a, Cplx b) {
  return Cplx{a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

// a / b by Smith's algorithm (no overflow of |b|^2 for large b).
OURO_HD OURO_FORCEINLINE Cplx cdiv(Cplx a, Cplx b) {
  if (::fabs(b.re) >= ::fabs(b.im)) {
    const double r = b.im / b.re, den = b.re + b.im * r;
    return Cplx{(a.re + a.im * r) / den, (a.im - a.re * r) / den};
  }
  const double r = b.re / b.im, den = b.re * r + b.im;
  return Cplx{(a.re * r + a.im) / den, (a.im * r - a.re) / den};
}

// Diagnostics of one evaluation, for the tests and benchmarks.
struct QuadformStats {
  int nodes = 0;          // integrand evaluations
  int halvings = 0;       // step halvings after the first pass
  int saddle_iters = 0;   // Newton/bisection steps for the saddle point
  bool converged = true;  // false: the step or truncation cap was hit
  bool tail = true;       // true: P(Q > x) integrated directly
};

// Contour parameters (see the header comment). kH0: first step, in sigma
// units of the sinh variable; kEll: scale of the sinh map; kTrunc: relative
// magnitude at which the first pass stops; kRtol: agreement of successive
// halvings; kKmax, kMaxHalvings: caps.
constexpr double kH0 = 0.5;
constexpr double kEll = 8.0;
constexpr double kTrunc = 1e-14;
constexpr double kRtol = 1e-8;
constexpr int kKmax = 400;
constexpr int kMaxHalvings = 5;

struct Form {
  int n;
  const double* l;  // weights scaled so that max l = 1
  const double* q;  // delta^2
  double xc;        // x - sum_j l_j delta_j^2 (centred: no cancellation when the noncentral part is large)
};

// psi(s) = s x + log L(s) - log|s| and its first three derivatives on the
// real axis, in the centred form
//   psi(s) = s xc + sum_j [-1/2 log w_j + 2 q_j l_j^2 s^2 / w_j] - log|s|,  w_j = 1 + 2 l_j s.
OURO_HD inline void psi_real(const Form& f, double s, double* p0, double* p1, double* p2, double* p3) {
  double v0 = s * f.xc, v1 = f.xc, v2 = 0.0, v3 = 0.0;
  for (int j = 0; j < f.n; ++j) {
    const double l = f.l[j], q = f.q[j];
    const double w = 1.0 + 2.0 * l * s, iw = 1.0 / w, lw = l * iw;
    const double lw2 = lw * lw, lw3 = lw2 * lw;
    v0 += -0.5 * ::log(w) + 2.0 * q * l * l * s * s * iw;
    v1 += -lw + 4.0 * q * l * l * s * (1.0 + l * s) * iw * iw;
    v2 += 2.0 * lw2 + 4.0 * q * lw2 * iw;
    v3 += -8.0 * lw3 - 24.0 * q * lw3 * iw;
  }
  v0 -= ::log(::fabs(s));
  v1 -= 1.0 / s;
  v2 += 1.0 / (s * s);
  v3 -= 2.0 / (s * s * s);
  *p0 = v0;
  *p1 = v1;
  *p2 = v2;
  *p3 = v3;
}

// sup over y of [Re(1/w(y)) - 1/w(0)] / (a y^2) on the parabola, for one term
// with weight l and A = w(0) = 1 + 2 l c > 0. With u = aA and t = y^2 the ratio
// is 2l(u - 2l - 2l a^2 t) / (u |w|^2), |w|^2 = A^2 - 4l(u - l)t + 4l^2 a^2 t^2.
// It is zero or negative for every t when u <= 2l (Re(1/w) never exceeds its
// value at the saddle); otherwise its maximum over t >= 0 is at
// t* = ((u - 2l) - r) / (2 l a^2), r = sqrt(2lu), where it simplifies to
// a^2 r / (u (2u + r)) (no cancellation, unlike evaluating |w(t*)|^2), or at
// t = 0, where it is 2l(u - 2l) / (u A^2), when t* < 0.
OURO_HD inline double growth_ratio(double l, double A, double a) {
  const double u = a * A;
  if (u <= 2.0 * l) return 0.0;
  const double r = ::sqrt(2.0 * l * u);
  if (u - 2.0 * l > r) return a * a * r / (u * (2.0 * u + r));
  return 2.0 * l * (u - 2.0 * l) / (u * A * A);
}

// sum_j q_j/2 * growth_ratio_j(a): the noncentral growth per unit a y^2.
OURO_HD inline double noncentral_growth(const Form& f, double c, double a) {
  double g = 0.0;
  for (int j = 0; j < f.n; ++j)
    if (f.q[j] > 0.0) g += 0.5 * f.q[j] * growth_ratio(f.l[j], 1.0 + 2.0 * f.l[j] * c, a);
  return g;
}

// Im of the integrand g(s) (i - 2 a y) at s = c - a y^2 + i y, g(s) = e^{sx} L(s) / s,
// divided by e^{psi(c)} (psi0; so that nothing under- or overflows and g = sign(c)
// at y = 0); *mag gets its modulus.
OURO_HD inline double integrand(const Form& f, double c, double a, double psi0, double y, double* mag) {
  const Cplx s{c - a * y * y, y};
  double lr = s.re * f.xc - psi0, li = s.im * f.xc;
  const Cplx s2 = cmul(s, s);
  for (int j = 0; j < f.n; ++j) {
    const double l = f.l[j];
    const Cplx w{1.0 + 2.0 * l * s.re, 2.0 * l * s.im};
    // -1/2 Log w: principal branch, continuous on the contour (Im w > 0 for y > 0).
    lr -= 0.25 * ::log(w.re * w.re + w.im * w.im);
    li -= 0.5 * ::atan2(w.im, w.re);
    if (f.q[j] > 0.0) {
      const double k = 2.0 * f.q[j] * l * l;
      const Cplx t = cdiv(Cplx{k * s2.re, k * s2.im}, w);
      lr += t.re;
      li += t.im;
    }
  }
  const double m = ::exp(lr);
  Cplx g{m * ::cos(li), m * ::sin(li)};
  g = cdiv(g, s);
  const Cplx G = cmul(g, Cplx{-2.0 * a * y, 1.0});
  *mag = ::sqrt(G.re * G.re + G.im * G.im);
  return G.im;
}

// The contour evaluation of P(Q > x) for n >= 1 weights lam_j > 0, q_j =
// delta_j^2 >= 0 finite, x > 0 finite. Accumulates into *st.
OURO_HD inline double survival_core(int n, const double* lam, const double* dsq, double x, QuadformStats* st) {
  double l[OURO_MAX_DIM];
  for (int j = 0; j < n; ++j) l[j] = lam[j];
  double lmax = 0.0;
  for (int j = 0; j < n; ++j) lmax = l[j] > lmax ? l[j] : lmax;
  double xs = x / lmax, nc = 0.0, mean = 0.0;
  for (int j = 0; j < n; ++j) {
    l[j] /= lmax;
    nc += l[j] * dsq[j];
    mean += l[j];
  }
  mean += nc;
  const Form f{n, l, dsq, xs - nc};
  const bool tail = xs >= mean;
  if (st) st->tail = tail;

  // Chernoff bounds first: a probability that is zero (or one) to double
  // precision needs no integral, and the saddle search below then never
  // meets s within rounding of a singularity.
  if (tail) {
    // P(Q > x) <= e^{-x/4} E e^{Q/4}.
    double lb = -0.25 * xs;
    for (int j = 0; j < n; ++j) {
      const double w = 1.0 - 0.5 * l[j];
      lb += -0.5 * ::log(w) + 0.25 * dsq[j] * l[j] / w;
    }
    if (lb < -760.0) return 0.0;
  } else {
    // P(Q <= x) <= e^{tx} E e^{-tQ} <= e prod_j (1 + 2 l_j / x)^{-1/2} at t = 1/x.
    double lb = 1.0;
    for (int j = 0; j < n; ++j) lb -= 0.5 * ::log1p(2.0 * l[j] / xs);
    if (lb < -41.0) return 1.0;  // P(Q <= x) < 1.6e-18
  }

  // Saddle point: psi' increases from -inf to +inf on (-1/2, 0) for the tail,
  // on (0, hi] otherwise, with hi = (1 + sum_j (1/2 + q_j/8)) / x (there
  // psi' >= 0 since l/w <= 1/(2s) and q l/w^2 <= q/(8s)).
  double lo, hi;
  if (tail) {
    lo = -0.5;
    hi = 0.0;
  } else {
    double bnd = 1.0;
    for (int j = 0; j < n; ++j) bnd += 0.5 + 0.125 * dsq[j];
    lo = 0.0;
    hi = bnd / xs;
  }
  double c = 0.5 * (lo + hi), p0, p1, p2, p3;
  int it = 0;
  for (; it < 200; ++it) {
    psi_real(f, c, &p0, &p1, &p2, &p3);
    if (p1 > 0.0) hi = c;
    else lo = c;
    double cn = c - p1 / p2;
    if (!(cn > lo && cn < hi)) cn = 0.5 * (lo + hi);
    const double dc = ::fabs(cn - c);
    c = cn;
    if (dc <= 1e-12 * ::fabs(c) || hi - lo <= 1e-15 * ::fabs(c)) break;
  }
  if (st) st->saddle_iters += it + 1;
  psi_real(f, c, &p0, &p1, &p2, &p3);
  const double sigma = 1.0 / ::sqrt(p2);

  // Parabola curvature.
  double a = -p3 / (6.0 * p2);
  if (a < 0.1 / sigma) a = 0.1 / sigma;
  if (!tail && a > 0.5 / c) a = 0.5 / c;
  {
    const double lim = 0.5 * xs;  // half of the decay e^{-a x y^2} (per unit a y^2)
    if (noncentral_growth(f, c, a) > lim) {
      // Feasible lower end: below min_j 2 l_j / A_j (over noncentral j) no
      // term grows at all.
      double alo = a;
      for (int j = 0; j < n; ++j) {
        if (dsq[j] > 0.0) {
          const double t = 2.0 * l[j] / (1.0 + 2.0 * l[j] * c);
          alo = t < alo ? t : alo;
        }
      }
      double ahi = a;
      for (int b = 0; b < 40; ++b) {  // geometric bisection
        const double am = ::sqrt(alo * ahi);
        if (noncentral_growth(f, c, am) > lim) ahi = am;
        else alo = am;
      }
      a = alo;
    }
  }

  // Trapezoidal rule in t, y = sigma kEll sinh(t / kEll), dy/dt = sigma cosh(t / kEll).
  // Integrand values are relative to e^{psi(c)}: at y = 0 the integrand is
  // sign(c) i, whose imaginary part (times dy/dt = sigma) enters with weight 1/2.
  const double g0 = c < 0.0 ? -1.0 : 1.0;
  double h = kH0;
  double sum = 0.5 * g0 * sigma;
  double mmax = sigma;
  int kmax = kKmax, nodes = 0;
  bool converged = true;
  for (int k = 1; k <= kKmax; ++k) {
    const double t = k * h, e = ::exp(t / kEll), ie = 1.0 / e;
    const double y = sigma * kEll * 0.5 * (e - ie), dy = sigma * 0.5 * (e + ie);
    double m;
    sum += dy * integrand(f, c, a, p0, y, &m);
    ++nodes;
    m *= dy;
    mmax = m > mmax ? m : mmax;
    if (m <= kTrunc * mmax && t >= 3.0) {
      kmax = k;
      break;
    }
    if (k == kKmax) converged = false;
  }
  double T = h * sum;
  int halvings = 0;
  bool agreed = false;
  for (int lev = 1; lev <= kMaxHalvings; ++lev) {
    h *= 0.5;
    double add = 0.0;
    const int kk = kmax << lev;
    for (int k = 1; k < kk; k += 2) {
      const double t = k * h, e = ::exp(t / kEll), ie = 1.0 / e;
      const double y = sigma * kEll * 0.5 * (e - ie), dy = sigma * 0.5 * (e + ie);
      double m;
      add += dy * integrand(f, c, a, p0, y, &m);
      ++nodes;
    }
    const double Tn = 0.5 * T + h * add;
    const double diff = ::fabs(Tn - T);
    T = Tn;
    halvings = lev;
    if (diff <= kRtol * ::fabs(T)) {
      agreed = true;
      break;
    }
  }
  if (st) {
    st->nodes += nodes;
    st->halvings = halvings > st->halvings ? halvings : st->halvings;
    st->converged = st->converged && converged && agreed;
  }
  // (1/2 pi i) int (over y in R) = (1/pi) int_0^inf Im(...) dy, times the saddle value.
  const double F = T * ::exp(p0) / 3.14159265358979323846;
  double r = tail ? -F : 1.0 - F;
  return r < 0.0 ? 0.0 : (r > 1.0 ? 1.0 : r);
}

// P(Q > x) for n >= 1 weights lam_j > 0 (not necessarily normalised), q_j =
// delta_j^2 >= 0 finite, x > 0 finite; *st (optional) gets the diagnostics.
//
// A nearly collapsed direction far off-centre (lambda_j -> 0 with lambda_j
// delta_j^2 fixed) has an essential singularity in its transform so strong
// that the contour would have to be almost vertical, where the integrand
// oscillates for ever. Such a term is almost a constant plus a small normal,
// lambda (Z + delta)^2 = lambda delta^2 + 2 lambda delta Z + lambda Z^2. A
// term is replaced by the normal with its mean and variance when
//   * its variance v_j = 2 lambda_j^2 (1 + 2 delta_j^2) is below 1e-4 of the
//     variance V of the others,
//   * its own skewness k3_j / v_j^{3/2}, k3_j = 8 lambda_j^3 (1 + 3 delta_j^2),
//     is below 0.1 (delta_j >~ 30: it is nearly normal), and
//   * x lies at least 20 of the replaced terms' standard deviations from
//     their summed mean m (otherwise the kink of the others' tail at 0 would
//     fall under the normal and spoil the quadrature below).
// The normal is integrated out by 3-point Gauss-Hermite quadrature,
//   P = 2/3 S(x - m) + 1/6 S(x - m - sqrt(3 v)) + 1/6 S(x - m + sqrt(3 v)),
// S the tail of the remaining terms, v the summed variances: exact for S
// polynomial to degree 5, so its error is O(v^3 S^(6)); the normal's error is
// that of the neglected third cumulant, k3 |S^(3)| / 6 <~ 1e-7 V^{3/2} |S^(3)| / 6.
// Both are far below 1e-7. Other terms stay in the contour integral.
OURO_HD inline double survival(int n, const double* lam, const double* dsq, double x, QuadformStats* st) {
  if (st) *st = QuadformStats{};
  double var[OURO_MAX_DIM], vtot = 0.0;
  for (int j = 0; j < n; ++j) {
    var[j] = 2.0 * lam[j] * lam[j] * (1.0 + 2.0 * dsq[j]);
    vtot += var[j];
  }
  double l[OURO_MAX_DIM], q[OURO_MAX_DIM], gm = 0.0, gv = 0.0;
  bool normal[OURO_MAX_DIM];
  for (int j = 0; j < n; ++j) {
    const double rest = vtot - var[j];
    const double k3 = 8.0 * lam[j] * lam[j] * lam[j] * (1.0 + 3.0 * dsq[j]);
    normal[j] = var[j] <= 1e-4 * rest && k3 <= 0.1 * var[j] * ::sqrt(var[j]);
    if (normal[j]) {
      gm += lam[j] * (1.0 + dsq[j]);
      gv += var[j];
    }
  }
  const double z = (x - gm) / ::sqrt(gv);
  if (gv > 0.0 && z <= -20.0) return 1.0;  // the replaced terms alone exceed x
  if (gv > 0.0 && z < 20.0) gv = 0.0;      // too close: keep every term in the contour
  int m = 0;
  for (int j = 0; j < n; ++j) {
    if (gv > 0.0 && normal[j]) continue;
    l[m] = lam[j];
    q[m] = dsq[j];
    ++m;
  }
  // m >= 1: the term of largest variance is never replaced.
  if (gv == 0.0) return survival_core(m, l, q, x, st);
  const double dx = ::sqrt(3.0 * gv);
  const double xs[3] = {x - gm, x - gm - dx, x - gm + dx};
  const double ws[3] = {2.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0};
  double p = 0.0;
  for (int k = 0; k < 3; ++k) p += ws[k] * (xs[k] > 0.0 ? survival_core(m, l, q, xs[k], st) : 1.0);
  return p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
}

}  // namespace quadform_detail

// P(Q > x) for Q = sum_{j<d} lambda_j (Z_j + delta_j)^2, Z iid N(0,1), by
// Imhof's formula evaluated on a deformed contour (header comment). d <=
// OURO_MAX_DIM (larger d gives NaN). The result is clamped to [0, 1].
// Degenerate inputs: a weight lambda_j <= 1e-30 * max lambda (zero-variance
// direction) is replaced by its limit, the constant lambda_j delta_j^2 (which
// shifts x); lambda_j <= 0 contributes nothing; a form that is constant
// compares that constant with x; an infinite lambda_j or delta_j makes Q
// infinite. NaN inputs give NaN; every other input gives a value in [0, 1].
OURO_HD inline double quadform_survival(int d, const double* lambda, const double* delta, double x) {
  if (d > OURO_MAX_DIM || x != x) return NAN;
  double lmax = 0.0;
  for (int j = 0; j < d; ++j) {
    if (lambda[j] != lambda[j] || delta[j] != delta[j]) return NAN;
    if (lambda[j] > lmax) lmax = lambda[j];
  }
  if (lmax == INFINITY) return 1.0;
  double l[OURO_MAX_DIM], q[OURO_MAX_DIM], shift = 0.0;
  int n = 0;
  for (int j = 0; j < d; ++j) {
    if (!(lambda[j] > 0.0)) continue;
    const double dd = delta[j] * delta[j];
    if (dd == INFINITY) return 1.0;
    if (lambda[j] <= 1e-30 * lmax) {
      shift += lambda[j] * dd;
      continue;
    }
    l[n] = lambda[j];
    q[n] = dd;
    ++n;
  }
  const double xs = x - shift;  // -inf when the constant part overflowed
  if (n == 0) return xs < 0.0 ? 1.0 : 0.0;
  if (!(xs > 0.0)) return 1.0;  // Q > 0 almost surely
  if (xs == INFINITY) return 0.0;
  return quadform_detail::survival(n, l, q, xs, nullptr);
}

// P_{X ~ N(mu, cov)}( (X - mu0)^T Sigma0^{-1} (X - mu0) > r2 ) with Sigma0 =
// L0 L0^T (L0 lower triangular, row-major d x d), cov the model covariance
// (row-major, symmetric positive semi-definite). Whitening with L0 turns the
// radius into |L0^{-1}(X - mu0)|^2 with L0^{-1} X ~ N(L0^{-1} mu, W),
// W = L0^{-1} cov L0^{-T}; with W = P diag(lambda) P^T and m = L0^{-1}(mu - mu0),
// it is the form sum_j lambda_j (Z_j + delta_j)^2, delta = diag(lambda)^{-1/2} P^T m.
// A zero-variance direction (lambda_j <= 1e-30 max lambda, or <= 0 by
// rounding) contributes its constant (P^T m)_j^2. d == 1 uses erfc directly.
OURO_HD inline double gaussian_tail_mass(int d, const double* mu0, const double* L0, const double* mu,
                                         const double* cov, double r2) {
  if (d < 1 || d > OURO_MAX_DIM) return NAN;
  if (d == 1) {
    const double s0 = L0[0], s = ::sqrt(cov[0]), r = ::sqrt(r2 > 0.0 ? r2 : 0.0);
    const double dm = mu[0] - mu0[0];
    if (!(s > 0.0)) return dm * dm > r2 * s0 * s0 ? 1.0 : 0.0;  // point mass (or NaN -> 0)
    const double k = 0.70710678118654752440 / s;                // 1 / (s sqrt 2)
    const double p = 0.5 * ::erfc((r * s0 - dm) * k) + 0.5 * ::erfc((dm + r * s0) * k);
    return p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
  }
  double m[OURO_MAX_DIM], w[OURO_MAX_DIM * OURO_MAX_DIM], t[OURO_MAX_DIM * OURO_MAX_DIM];
  // Forward substitution L0 y = b, column by column.
  for (int i = 0; i < d; ++i) {
    double sm = mu[i] - mu0[i];
    for (int k = 0; k < i; ++k) sm -= L0[i * d + k] * m[k];
    m[i] = sm / L0[i * d + i];
  }
  for (int col = 0; col < d; ++col)  // t = L0^{-1} cov
    for (int i = 0; i < d; ++i) {
      double sm = cov[i * d + col];
      for (int k = 0; k < i; ++k) sm -= L0[i * d + k] * t[k * d + col];
      t[i * d + col] = sm / L0[i * d + i];
    }
  for (int col = 0; col < d; ++col)  // w = L0^{-1} t^T = L0^{-1} cov L0^{-T}
    for (int i = 0; i < d; ++i) {
      double sm = t[col * d + i];
      for (int k = 0; k < i; ++k) sm -= L0[i * d + k] * w[k * d + col];
      w[i * d + col] = sm / L0[i * d + i];
    }
  for (int i = 0; i < d; ++i)  // symmetrise away the rounding
    for (int j = 0; j < i; ++j) w[i * d + j] = w[j * d + i] = 0.5 * (w[i * d + j] + w[j * d + i]);
  double lam[OURO_MAX_DIM], vec[OURO_MAX_DIM * OURO_MAX_DIM];
  sym_eigen_jacobi(d, w, lam, vec);
  double lmax = 0.0;
  for (int j = 0; j < d; ++j) lmax = lam[j] > lmax ? lam[j] : lmax;
  double delta[OURO_MAX_DIM], shift = 0.0;
  for (int j = 0; j < d; ++j) {
    double bj = 0.0;
    for (int i = 0; i < d; ++i) bj += vec[i * d + j] * m[i];
    if (lam[j] > 1e-30 * lmax) {
      delta[j] = bj / ::sqrt(lam[j]);
    } else {
      shift += bj * bj;
      lam[j] = 0.0;
      delta[j] = 0.0;
    }
  }
  return quadform_survival(d, lam, delta, r2 - shift);
}

}  // namespace ouro::kernels

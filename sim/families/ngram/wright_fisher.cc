#include "sim/families/ngram/wright_fisher.h"

#include <algorithm>
#include <cmath>

namespace ouro {

namespace {

constexpr double kNegligible = 1e-40;  // terms below it are dropped (wright_fisher.h)

// ln n! - ln(sqrt(2 pi n) (n / e)^n), the error of Stirling's formula: from the exact factorial up to 15, else
// Stirling's series (coefficients B_2k / (2k (2k - 1)): 1/12, 1/360, 1/1260, 1/1680, 1/1188), as Loader (2000) does.
double stirling_error(double n) {
  constexpr double kHalfLn2Pi = 0.918938533204672741780329736406;
  if (n <= 15.0) {
    double factorial = 1.0;  // exact: 15! < 2^53
    for (int i = 2; i <= static_cast<int>(n); ++i) factorial *= i;
    return std::log(factorial) - (n + 0.5) * std::log(n) + n - kHalfLn2Pi;
  }
  constexpr double s0 = 1.0 / 12, s1 = 1.0 / 360, s2 = 1.0 / 1260, s3 = 1.0 / 1680, s4 = 1.0 / 1188;
  const double nn = n * n;
  if (n > 500) return (s0 - s1 / nn) / n;
  if (n > 80) return (s0 - (s1 - s2 / nn) / nn) / n;
  if (n > 35) return (s0 - (s1 - (s2 - s3 / nn) / nn) / nn) / n;
  return (s0 - (s1 - (s2 - (s3 - s4 / nn) / nn) / nn) / nn) / n;
}

// x ln(x / m) + m - x, without the cancellation when x is near m (Loader's deviance term): a series in
// v = (x - m) / (x + m) there.
double deviance(double x, double m) {
  if (std::abs(x - m) < 0.1 * (x + m)) {
    double v = (x - m) / (x + m), s = (x - m) * v, term = 2.0 * x * v;
    v *= v;
    for (int j = 1; j < 1000; ++j) {
      term *= v;
      const double next = s + term / (2 * j + 1);
      if (next == s) return s;
      s = next;
    }
    return s;
  }
  return x * std::log(x / m) + m - x;
}

// Binomial(n, p) from its mode, or from cap when the mode lies beyond it, outwards by the ratios of neighbours,
// P(j - 1) = P(j) j q / ((n - j + 1) p) and P(j + 1) = P(j) (n - j) p / ((j + 1) q), over [0, cap] until a term is
// negligible: f(j, P(j)) for each term kept. Returns the number of terms.
template <class F>
std::int64_t for_each_binomial(std::int64_t n, double p, double q, std::int64_t cap, F&& f) {
  const std::int64_t mode = std::min(n, static_cast<std::int64_t>(std::floor((static_cast<double>(n) + 1.0) * p)));
  const std::int64_t start = std::min(mode, cap);
  const double at = binomial_pmf(n, p, q, start);
  if (!(at >= kNegligible)) return 0;
  f(start, at);
  const double down = q / p, up = p / q;
  std::int64_t lo = start, hi = start;
  for (double v = at; lo > 0; --lo) {
    v *= static_cast<double>(lo) / static_cast<double>(n - lo + 1) * down;
    if (!(v >= kNegligible)) break;
    f(lo - 1, v);
  }
  for (double v = at; hi < std::min(n, cap); ++hi) {
    v *= static_cast<double>(n - hi) / static_cast<double>(hi + 1) * up;
    if (!(v >= kNegligible)) break;
    f(hi + 1, v);
  }
  return hi - lo + 1;
}

// a_{s+1} from a_s: the rows k = 0, 1, ... until a value is negligible (a_{s+1} decreases in k: a larger count is
// stochastically larger at every later generation); the rest are 0.
std::vector<double> next_loss(std::int64_t n, const std::vector<double>& a, double* terms) {
  std::vector<double> next = {1.0};  // a count of 0 is lost
  const auto cap = static_cast<std::int64_t>(a.size()) - 1;
  const double dn = static_cast<double>(n);
  for (std::int64_t k = 1; k <= n; ++k) {
    double v = 0.0;
    *terms += static_cast<double>(for_each_binomial(n, static_cast<double>(k) / dn, static_cast<double>(n - k) / dn,
                                                    cap, [&](std::int64_t j, double pj) { v += pj * a[j]; }));
    if (!(v >= kNegligible)) break;
    next.push_back(v);
  }
  return next;
}

}  // namespace

double binomial_pmf(std::int64_t n, double p, double q, std::int64_t k) {
  if (k < 0 || k > n) return 0.0;
  if (p == 0.0) return k == 0 ? 1.0 : 0.0;
  if (q == 0.0) return k == n ? 1.0 : 0.0;
  const double dn = static_cast<double>(n), dk = static_cast<double>(k);
  if (k == 0) return std::exp(p < 0.1 ? -deviance(dn, dn * q) - dn * p : dn * std::log(q));
  if (k == n) return std::exp(q < 0.1 ? -deviance(dn, dn * p) - dn * q : dn * std::log(p));
  constexpr double kLn2Pi = 1.837877066409345483560659472811;
  const double lc = stirling_error(dn) - stirling_error(dk) - stirling_error(dn - dk) - deviance(dk, dn * p) -
                    deviance(dn - dk, dn * q);
  const double lf = kLn2Pi + std::log(dk) + std::log1p(-dk / dn);
  return std::exp(lc - 0.5 * lf);
}

WrightFisherLoss wright_fisher_loss(const std::vector<double>& p, std::int64_t n, int generations, double budget) {
  WrightFisherLoss out;
  out.survival = {1.0};
  out.missing = {0.0};
  if (generations < 1) return out;
  // The loss vectors a_0 .. a_{T-1}, as far as the budget goes.
  std::vector<std::vector<double>> a = {{1.0}};
  double terms = 0.0;
  while (static_cast<int>(a.size()) < generations && terms <= budget) a.push_back(next_loss(n, a.back(), &terms));
  // Each distinct p's Binomial(n, p) over the support of the a_s (which grows with s), then its dot product with
  // each of them; generation 1 alone (a_0 only) when that takes more than the budget. Zipf probabilities are in
  // decreasing order, so equal ones are neighbours.
  terms = 0.0;
  auto expectations = [&](int last) {
    std::vector<double> dead_sum(last + 1, 0.0), missing(last + 1, 0.0), dead(last + 1, 0.0);
    const auto cap = static_cast<std::int64_t>(a[last - 1].size()) - 1;
    std::vector<double> w(static_cast<std::size_t>(cap + 1), 0.0);  // Binomial(n, p) on [lo, hi], 0 elsewhere
    for (std::size_t i = 0; i < p.size(); ++i) {
      if (i == 0 || p[i] != p[i - 1]) {
        std::int64_t lo = cap + 1, hi = -1;
        terms += static_cast<double>(for_each_binomial(n, p[i], 1.0 - p[i], cap, [&](std::int64_t j, double pj) {
          w[j] = pj;
          lo = std::min(lo, j);
          hi = std::max(hi, j);
        }));
        dead[1] = binomial_pmf(n, p[i], 1.0 - p[i], 0);  // (1 - p)^n in closed form, whatever the window
        for (int t = 2; t <= last; ++t) {
          const std::int64_t end = std::min(hi, static_cast<std::int64_t>(a[t - 1].size()) - 1);
          double d = 0.0;
          for (std::int64_t j = lo; j <= end; ++j) d += w[j] * a[t - 1][j];
          dead[t] = d;
          terms += static_cast<double>(std::max<std::int64_t>(end - lo + 1, 0));
        }
        for (std::int64_t j = lo; j <= hi; ++j) w[j] = 0.0;
        if (last > 1 && terms > budget) return false;
      }
      for (int t = 1; t <= last; ++t) {
        dead_sum[t] += dead[t];
        missing[t] += p[i] * dead[t];
      }
    }
    for (int t = 1; t <= last; ++t) {
      out.survival.push_back(1.0 - dead_sum[t] / static_cast<double>(p.size()));
      out.missing.push_back(missing[t]);
    }
    return true;
  };
  if (!expectations(static_cast<int>(a.size()))) expectations(1);
  return out;
}

}  // namespace ouro

// Test support: a textbook Gaussian elimination with partial pivoting in long double, the independent solver the
// linear regression tests check the engine's Cholesky solves and fits against.
#pragma once

#include <cmath>
#include <utility>
#include <vector>

namespace ouro::test {

// x with A x = b, A d x d row-major (taken by value: eliminated in place).
inline std::vector<long double> eliminate(int d, std::vector<long double> a, std::vector<long double> b) {
  for (int c = 0; c < d; ++c) {
    int p = c;
    for (int r = c + 1; r < d; ++r)
      if (std::fabs(a[r * d + c]) > std::fabs(a[p * d + c])) p = r;
    for (int k = 0; k < d; ++k) std::swap(a[c * d + k], a[p * d + k]);
    std::swap(b[c], b[p]);
    for (int r = c + 1; r < d; ++r) {
      const long double f = a[r * d + c] / a[c * d + c];
      for (int k = c; k < d; ++k) a[r * d + k] -= f * a[c * d + k];
      b[r] -= f * b[c];
    }
  }
  std::vector<long double> x(d);
  for (int r = d - 1; r >= 0; --r) {
    long double s = b[r];
    for (int k = r + 1; k < d; ++k) s -= a[r * d + k] * x[k];
    x[r] = s / a[r * d + r];
  }
  return x;
}

}  // namespace ouro::test

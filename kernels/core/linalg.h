// Small dense linear algebra for one chain's d x d matrices (d <= OURO_MAX_DIM),
// written once for both backends: each chain's fit runs in one thread, so these
// are plain loops over row-major arrays, not library calls.
#pragma once

#include <cmath>

#include "kernels/core/portability.h"

namespace ouro::kernels {

// Lower Cholesky factor L of a symmetric positive definite A (A = L L^T).
// Returns false (and leaves L partly written) when A is not numerically
// positive definite, which a collapsed chain can reach; callers count it.
OURO_HD inline bool cholesky(int d, const double* a, double* l) {
  for (int i = 0; i < d; ++i) {
    for (int j = 0; j <= i; ++j) {
      double s = a[i * d + j];
      for (int k = 0; k < j; ++k) s -= l[i * d + k] * l[j * d + k];
      if (i == j) {
        if (!(s > 0.0 && s <= 1.7976931348623157e308)) return false;  // also NaN
        l[i * d + i] = sqrt(s);
      } else {
        l[i * d + j] = s / l[j * d + j];
      }
    }
    for (int j = i + 1; j < d; ++j) l[i * d + j] = 0.0;
  }
  return true;
}

// y = L^{-1} b for lower-triangular L (forward substitution).
OURO_HD inline void lower_solve(int d, const double* l, const double* b, double* y) {
  for (int i = 0; i < d; ++i) {
    double s = b[i];
    for (int k = 0; k < i; ++k) s -= l[i * d + k] * y[k];
    y[i] = s / l[i * d + i];
  }
}

// y = m + L z.
OURO_HD inline void affine_lower(int d, const double* m, const double* l, const double* z, double* y) {
  for (int i = 0; i < d; ++i) {
    double s = m[i];
    for (int k = 0; k <= i; ++k) s += l[i * d + k] * z[k];
    y[i] = s;
  }
}

}  // namespace ouro::kernels

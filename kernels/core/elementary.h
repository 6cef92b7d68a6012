// Elementary functions in basic IEEE operations (and explicit fma), so that
// the cpu and cuda backends compute the same bits from the same input:
// the natural logarithm of a positive double (Box-Muller's radius, the
// sampler's temperature) and e^x (the mixtures' responsibilities, the
// temperature). libm's and CUDA's own log and exp may differ in the last
// place, which would let a rounding difference flip a sampling decision.
// Both are branch-free (selects, not jumps), so the cpu loops that call
// them vectorise.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/core/portability.h"

namespace ouro::kernels {

OURO_HD OURO_FORCEINLINE std::uint64_t bits_of(double x) {
#if defined(__CUDA_ARCH__)
  return static_cast<std::uint64_t>(__double_as_longlong(x));
#else
  std::uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}

OURO_HD OURO_FORCEINLINE double double_of(std::uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(b));
#else
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

// Natural logarithm of a positive normal double (no zero, inf, NaN or subnormal:
// the uniforms fed here lie in [2^-54, 1)). x = m 2^e with m in [sqrt(1/2), sqrt(2)),
// ln m = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716, by its series to s^23.
OURO_HD OURO_FORCEINLINE double log_positive(double x) {
  // Only 64-bit shifts, masks and double arithmetic: AVX2 has no 64-bit
  // integer -> double conversion, so the exponent is converted by the
  // 2^52 trick to keep the cpu loop vectorised.
  const std::uint64_t b = bits_of(x);
  const double biased_e = double_of(0x4330000000000000ull | (b >> 52)) - 4503599627370496.0;
  double m = double_of((b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull);  // [1, 2)
  const bool big = m > 1.4142135623730951;
  m = big ? 0.5 * m : m;
  const double de = biased_e - (big ? 1022.0 : 1023.0);
  const double s = (m - 1.0) / (m + 1.0);
  const double z = s * s;
  // sum_{k=0..10} z^k / (2k + 3) by Estrin's scheme: the same terms as
  // Horner's rule with a dependency chain of 5 operations instead of 11,
  // which lets the vector units overlap more of the sampling loop.
  const double z2 = z * z, z4 = z2 * z2, z8 = z4 * z4;
  const double q0 = fma(1.0 / 5, z, 1.0 / 3), q1 = fma(1.0 / 9, z, 1.0 / 7), q2 = fma(1.0 / 13, z, 1.0 / 11);
  const double q3 = fma(1.0 / 17, z, 1.0 / 15), q4 = fma(1.0 / 21, z, 1.0 / 19);
  const double r0 = fma(q1, z2, q0), r1 = fma(q3, z2, q2), r2 = fma(1.0 / 23, z2, q4);
  const double p = fma(r2, z8, fma(r1, z4, r0));
  const double ln_m = 2.0 * s + 2.0 * s * (z * p);
  // ln 2 split so that e * ln2_hi is exact for |e| < 2^11.
  const double ln2_hi = 6.93147180369123816490e-01;
  const double ln2_lo = 1.90821492927058770002e-10;
  return de * ln2_hi + (ln_m + de * ln2_lo);
}

// e^x for x <= 709 (larger x gives +inf, x < -708 gives 0, NaN stays NaN),
// in basic IEEE operations so both backends compute the same bits:
// x = k ln2 + r with |r| <= ln2/2 (Cody-Waite split of ln 2), e^r by its
// Taylor series to r^13 (truncation < 5e-18 relative), times 2^k built in the
// exponent field. Relative error below 2 ulp (tested against std::exp).
OURO_HD OURO_FORCEINLINE double exp_poly(double x) {
  // Branch-free (selects, not jumps), so the cpu backend's loops vectorise.
  const double xc = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);  // NaN passes through
  const double k = floor(fma(xc, 1.4426950408889634074, 0.5));
  const double ln2_hi = 6.93147180369123816490e-01;  // 32 significant bits: k * ln2_hi is exact
  const double ln2_lo = 1.90821492927058770002e-10;
  const double r = fma(-k, ln2_lo, fma(-k, ln2_hi, xc));
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = fma(p, r, 1.0 / 479001600.0);
  p = fma(p, r, 1.0 / 39916800.0);
  p = fma(p, r, 1.0 / 3628800.0);
  p = fma(p, r, 1.0 / 362880.0);
  p = fma(p, r, 1.0 / 40320.0);
  p = fma(p, r, 1.0 / 5040.0);
  p = fma(p, r, 1.0 / 720.0);
  p = fma(p, r, 1.0 / 120.0);
  p = fma(p, r, 1.0 / 24.0);
  p = fma(p, r, 1.0 / 6.0);
  p = fma(p, r, 0.5);
  p = fma(p, r, 1.0);
  p = fma(p, r, 1.0);
  // 2^k for k in [-1021, 1023]: the biased exponent k + 1023 read off the
  // low bits of 2^52 + k + 1023 (no integer conversion instruction needed).
  const std::uint64_t biased = bits_of(k + 1023.0 + 4503599627370496.0) & 0xFFFFFFFFFFFFFull;
  const double y = p * double_of(biased << 52);
  return x < -708.0 ? 0.0 : (x > 709.0 ? INFINITY : y);
}

}  // namespace ouro::kernels

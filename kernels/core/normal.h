// Standard normal variates from counter-based uniforms, identical on both backends.
//
// Box-Muller (Box & Muller 1958, Ann. Math. Statist. 29:610): two uniforms
// u1, u2 in (0,1) give two independent N(0,1) variates
//   z0 = sqrt(-2 ln u1) cos(2 pi u2),  z1 = sqrt(-2 ln u1) sin(2 pi u2).
// One Philox block (four 32-bit words) gives two pairs: words 0, 1 are u1, u2
// of the first pair, words 2, 3 of the second. A 32-bit u1 = (k + 1/2) 2^-32
// bounds |z| by sqrt(-2 ln 2^-33) = 6.77: the mass beyond, 1.3e-11 per draw,
// is left out. Philox is the larger half of the cost of a normal; four normals
// per block rather than two make the sampler 1.3x faster on the cpu.
//
// The logarithm (kernels/core/elementary.h) and sin/cos(2 pi u) (here) are branch-free
// polynomials in basic IEEE operations rather than taken from libm/CUDA's math
// library, for two reasons: g++ vectorises them inside the cpu backend's
// sampling loops (libm's scalar calls would cost ~4x), and both backends then
// run the same operations, so cpu and cuda samples agree to the last few ulps.
// Polynomial steps use explicit fma: one IEEE rounding everywhere (hardware
// FMA where the CPU has it, glibc's exact emulation where not, native on the
// GPU), so the samples are the same on every machine, at FMA speed.
// Accuracy (tested against std::log / std::sin / std::cos): below 4 ulp.
//
// The normal stream of a chain is flat: normal number m of a stream is number
// m & 3 of block m / 4. A d-dimensional point i uses normals i*d .. i*d+d-1.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/elementary.h"
#include "kernels/core/portability.h"
#include "kernels/core/rng.h"

namespace ouro::kernels {

// sin and cos of the angle (q + w) pi/2: quadrant q in 0..3 and the position w in [0, 1] inside it. The angle is
// folded to [0, pi/4], where Taylor series to degree 15/16 are accurate to double precision, then rotated by
// q pi/2. The polynomial core of sincos_2pi_word and sincos_2pi.
OURO_HD OURO_FORCEINLINE void sincos_quadrant(std::uint64_t q, double w, double& s_out, double& c_out) {
  const bool fold = w > 0.5;
  const double a = (fold ? 1.0 - w : w) * 1.5707963267948966;  // [0, pi/4]
  const double a2 = a * a;
  // Taylor series of sin a / a - 1 and (cos a - 1 + a^2/2) / a^4 in a^2 to
  // degrees 15 and 16, by Estrin's scheme (short dependency chains).
  const double a4 = a2 * a2, a8 = a4 * a4;
  const double sp = fma(fma(-1.0 / 1307674368000.0, a4, fma(1.0 / 6227020800.0, a2, -1.0 / 39916800.0)), a8,
                        fma(fma(1.0 / 362880.0, a2, -1.0 / 5040.0), a4, fma(1.0 / 120.0, a2, -1.0 / 6.0)));
  const double sa = a + a * (a2 * sp);
  const double cp = fma(fma(1.0 / 20922789888000.0, a4, fma(-1.0 / 87178291200.0, a2, 1.0 / 479001600.0)), a8,
                        fma(fma(-1.0 / 3628800.0, a2, 1.0 / 40320.0), a4, fma(-1.0 / 720.0, a2, 1.0 / 24.0)));
  const double ca = 1.0 - 0.5 * a2 + a4 * cp;
  // sin/cos of the angle w * pi/2 inside the quadrant (undo the fold) ...
  const double sw = fold ? ca : sa;
  const double cw = fold ? sa : ca;
  // ... rotated by q * pi/2.
  // q: 0 -> ( sw,  cw)  1 -> ( cw, -sw)  2 -> (-sw, -cw)  3 -> (-cw,  sw).
  // Written as a swap plus sign-bit flips so the loop stays branch-free.
  const bool odd = (q & 1) != 0;
  const double s_abs = odd ? cw : sw;
  const double c_abs = odd ? sw : cw;
  const std::uint64_t s_sign = (q >> 1) << 63;
  const std::uint64_t c_sign = ((q ^ (q >> 1)) & 1) << 63;
  s_out = double_of(bits_of(s_abs) ^ s_sign);
  c_out = double_of(bits_of(c_abs) ^ c_sign);
}

// sin and cos of 2 pi v for v = (k + 1/2) 2^-32, the angle uniform of a 32-bit
// word k. The top two bits of k are the quadrant, the low 30 bits the exact
// position w in (0, 1) inside it.
OURO_HD OURO_FORCEINLINE void sincos_2pi_word(std::uint64_t k, double& s_out, double& c_out) {
  const std::uint64_t q = (k >> 30) & 3;  // quadrant 0..3
  // (k mod 2^30 + 1/2) 2^-30, exact; the integer is converted through the
  // 2^52 bit trick (AVX2 has no 64-bit integer -> double conversion).
  const double w = (double_of(0x4330000000000000ull | (k & 0x3FFFFFFFull)) - 4503599627370496.0 + 0.5) * 0x1.0p-30;
  sincos_quadrant(q, w, s_out, c_out);
}

// sin and cos of 2 pi v for a double v in [0, 1), with sincos_2pi_word's polynomials (no libm, so the same bits on
// both backends). 4v is exact, so are its quadrant q = floor(4v) and the position 4v - q inside it.
OURO_HD OURO_FORCEINLINE void sincos_2pi(double v, double& s_out, double& c_out) {
  const double v4 = 4.0 * v;
  const double qf = floor(v4);
  sincos_quadrant(static_cast<std::uint64_t>(qf) & 3, v4 - qf, s_out, c_out);
}

// The uniform (k + 1/2) 2^-32 in (0, 1) of a 32-bit word k (held in any
// unsigned type), exact in double; never 0, so log(u1) is finite.
OURO_HD OURO_FORCEINLINE double u01_word(std::uint64_t k) {
  return (double_of(0x4330000000000000ull | (k & 0xFFFFFFFFull)) - 4503599627370496.0 + 0.5) * 0x1.0p-32;
}

// One Box-Muller pair from two 32-bit words.
OURO_HD OURO_FORCEINLINE void box_muller_pair(std::uint64_t w_radius, std::uint64_t w_angle, double& z0, double& z1) {
  const double r = sqrt(-2.0 * log_positive(u01_word(w_radius)));
  double s, c;
  sincos_2pi_word(w_angle, s, c);
  z0 = r * c;
  z1 = r * s;
}

// The four standard normals of one Philox block.
OURO_HD OURO_FORCEINLINE void box_muller(const rng::Block& b, double* z) {
  box_muller_pair(b.v[0], b.v[1], z[0], z[1]);
  box_muller_pair(b.v[2], b.v[3], z[2], z[3]);
}

// Normal number m of a chain's stream.
OURO_HD OURO_FORCEINLINE double stream_normal(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation,
                                              std::uint32_t stream, std::uint64_t m) {
  const rng::Block b = rng::draw_block(seed, chain, generation, stream, m >> 2);
  const int which = static_cast<int>(m & 3);
  double z0, z1;
  box_muller_pair(b.v[which & 2], b.v[(which & 2) + 1], z0, z1);
  return (which & 1) ? z1 : z0;
}

// Normals first .. first+count-1 of a chain's stream into z, each block drawn
// once (the same values as stream_normal).
OURO_HD OURO_FORCEINLINE void stream_normals(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation,
                                             std::uint32_t stream, std::uint64_t first, int count, double* z) {
  double quad[4];
  for (int a = 0; a < count; ++a) {
    const std::uint64_t m = first + static_cast<std::uint64_t>(a);
    if (a == 0 || (m & 3) == 0) box_muller(rng::draw_block(seed, chain, generation, stream, m >> 2), quad);
    z[a] = quad[m & 3];
  }
}

}  // namespace ouro::kernels

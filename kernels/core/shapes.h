// Scikit-learn's toy shapes (Pedregosa et al. 2011, "Scikit-learn: machine learning in Python", JMLR 12: make_moons,
// make_circles, make_swiss_roll, make_blobs) as laws of iid points, written
// once for both backends, with their means and covariances in closed form. Scikit-learn places the points of a
// moon or circle on an even grid of angles; here every point draws its own angle, so a sample is iid from one law:
//
//   moons       theta ~ U[0, pi]; with probability 1/2 the upper moon (cos theta, sin theta), else the lower
//               (1 - cos theta, 1/2 - sin theta); plus N(0, noise^2 I).
//   circles     theta ~ U[0, 2 pi]; radius r = 1 or factor with probability 1/2 each; (r cos theta, r sin theta)
//               plus N(0, noise^2 I).
//   swiss_roll  the (x, z) plane of scikit-learn's 3-D roll: t ~ U[3 pi/2, 9 pi/2], (t cos t, t sin t) plus
//               N(0, noise^2 I).
//   blobs       a centre chosen uniformly among the K given, plus N(0, cluster_std^2 I).
//
// Randomness: point i takes word block i of the choice stream (word 0: the moon, circle or centre by integer
// thresholds; words 1, 2: a uniform in (0, 1) at 53-bit resolution) and normals i*d .. i*d+d-1 of the normal stream.
// The angles' sin and cos are kernels/core/normal.h's polynomials (sincos_2pi), not libm's, so both backends draw
// the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/core/normal.h"
#include "kernels/core/portability.h"
#include "kernels/core/rng.h"

namespace ouro::kernels {

inline constexpr int kShapeMaxDim = 8;       // blobs' dimension at most
inline constexpr int kShapeMaxCenters = 16;  // blobs' centres at most

enum class ShapeKind : int { kNone = 0, kMoons, kCircles, kSwissRoll, kBlobs };

// One shape law. Trivially copyable: it goes to the device inside the truth structs.
struct ShapeTruth {
  ShapeKind kind = ShapeKind::kNone;
  int d = 2;                                       // 2 for moons, circles, swiss_roll; the centres' dimension for blobs
  double noise = 0.0;                              // moons, circles, swiss_roll: isotropic Gaussian noise std
  double factor = 0.8;                             // circles: the inner radius
  double cluster_std = 1.0;                        // blobs
  int centers = 0;                                 // blobs
  double center[kShapeMaxCenters * kShapeMaxDim];  // blobs, row-major: centre k at center + k * d
};

// Point i of (seed, chain, gen): its choice and position words are word block i of choice_stream, its noise normals
// i*d .. i*d+d-1 of normal_stream (kernels/core/normal.h stream_normals). Real draws use rng::kStreamRealComponent
// and rng::kStreamRealDraw; model samples use others. x gets d numbers.
OURO_HD inline void shape_draw(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint32_t choice_stream,
                               std::uint32_t normal_stream, std::int64_t i, const ShapeTruth& s, double* x) {
  const auto iu = static_cast<std::uint64_t>(i);
  const rng::Block b = rng::draw_block(seed, chain, gen, choice_stream, iu);
  double z[kShapeMaxDim];
  stream_normals(seed, chain, gen, normal_stream, iu * static_cast<std::uint64_t>(s.d), s.d, z);
  if (s.kind == ShapeKind::kBlobs) {
    // Centre floor(word K / 2^32): each of the K gets floor or ceil of 2^32 / K words.
    const int k = static_cast<int>((static_cast<std::uint64_t>(b.v[0]) * static_cast<std::uint64_t>(s.centers)) >> 32);
    for (int a = 0; a < s.d; ++a) x[a] = s.center[k * s.d + a] + s.cluster_std * z[a];
    return;
  }
  const bool first = b.v[0] < 0x80000000u;  // the upper moon, the outer circle
  const double u = rng::u01_open(b.v[1], b.v[2]);
  double p0 = 0.0, p1 = 0.0, sn, cs;
  switch (s.kind) {
    case ShapeKind::kMoons:  // theta = pi u: v = u / 2 (exact)
      sincos_2pi(0.5 * u, sn, cs);
      p0 = first ? cs : 1.0 - cs;
      p1 = first ? sn : 0.5 - sn;
      break;
    case ShapeKind::kCircles: {  // theta = 2 pi u
      const double r = first ? 1.0 : s.factor;
      sincos_2pi(u, sn, cs);
      p0 = r * cs;
      p1 = r * sn;
      break;
    }
    case ShapeKind::kSwissRoll: {  // t = 2 pi y, y = 0.75 + 1.5 u in (0.75, 2.25); the angle's turns are y - floor(y)
      const double y = 0.75 + 1.5 * u;
      const double t = 6.283185307179586 * y;
      sincos_2pi(y - floor(y), sn, cs);
      p0 = t * cs;
      p1 = t * sn;
      break;
    }
    default:
      break;
  }
  x[0] = p0 + s.noise * z[0];
  x[1] = p1 + s.noise * z[1];
}

// The law's mean (d) and covariance (d x d row-major), in closed form, noise included. Host only.
//
// moons: with theta ~ U[0, pi], E cos = 0, E sin = 2/pi, E cos^2 = E sin^2 = 1/2, E sin cos = 0. Each moon has
// probability 1/2, so
//   E x = (1/2) E cos + (1/2)(1 - E cos) = 1/2,      E y = (1/2)(2/pi) + (1/2)(1/2 - 2/pi) = 1/4,
//   E x^2 = (1/2)(1/2) + (1/2) E(1 - cos)^2 = 1/4 + (1/2)(3/2) = 1,
//   E y^2 = (1/2)(1/2) + (1/2) E(1/2 - sin)^2 = 1/4 + (1/2)(1/4 - 2/pi + 1/2) = 5/8 - 1/pi,
//   E xy = (1/2) E[cos sin] + (1/2) E[(1 - cos)(1/2 - sin)] = (1/2)(1/2 - 2/pi) = 1/4 - 1/pi,
// so Var x = 3/4, Var y = 9/16 - 1/pi, Cov(x, y) = 1/8 - 1/pi.
// circles: the mean is 0 and E cos^2 = E sin^2 = 1/2, E sin cos = 0 over a full turn, so the covariance is
// E r^2 / 2 I = (1 + factor^2)/4 I.
// swiss_roll: t ~ U[a, b], a = 3pi/2, b = 9pi/2, b - a = 3pi; sin a = -1, sin b = 1, cos a = cos b = 0, and
// sin 2a = sin 2b = 0, cos 2a = cos 2b = -1. By parts:
//   int t cos t = [t sin t + cos t]_a^b = b + a = 6 pi,                    E x = 6pi / 3pi = 2,
//   int t sin t = [-t cos t + sin t]_a^b = 2,                              E z = 2 / (3 pi),
//   int t^2 cos 2t = [t^2 sin 2t / 2 + t cos 2t / 2 - sin 2t / 4]_a^b = -(b - a)/2 = -3pi/2,
//   int t^2 sin 2t = [-t^2 cos 2t / 2 + t sin 2t / 2 + cos 2t / 4]_a^b = (b^2 - a^2)/2 = 9 pi^2,
// and with cos^2 = (1 + cos 2t)/2, sin^2 = (1 - cos 2t)/2, sin cos = sin 2t / 2, int t^2 = (b^3 - a^3)/3 =
// 117 pi^3 / 4:
//   E x^2 = (117 pi^3 / 8 - 3pi/4) / 3pi = 39 pi^2 / 8 - 1/4,   E z^2 = 39 pi^2 / 8 + 1/4,
//   E xz = (9 pi^2 / 2) / 3pi = 3pi/2.
// blobs: the centres' mean, and their scatter (1/K) sum_k (c_k - m)(c_k - m)^T plus cluster_std^2 I.
// Every shape but blobs adds noise^2 I.
inline void shape_moments(const ShapeTruth& s, double* mean, double* cov) {
  constexpr double pi = 3.141592653589793;
  const int d = s.d;
  for (int a = 0; a < d * d; ++a) cov[a] = 0.0;
  switch (s.kind) {
    case ShapeKind::kMoons:
      mean[0] = 0.5;
      mean[1] = 0.25;
      cov[0] = 0.75;
      cov[1] = cov[2] = 0.125 - 1.0 / pi;
      cov[3] = 0.5625 - 1.0 / pi;
      break;
    case ShapeKind::kCircles:
      mean[0] = mean[1] = 0.0;
      cov[0] = cov[3] = (1.0 + s.factor * s.factor) / 4.0;
      break;
    case ShapeKind::kSwissRoll: {
      const double ex = 2.0, ez = 2.0 / (3.0 * pi);
      mean[0] = ex;
      mean[1] = ez;
      cov[0] = 39.0 * pi * pi / 8.0 - 0.25 - ex * ex;
      cov[3] = 39.0 * pi * pi / 8.0 + 0.25 - ez * ez;
      cov[1] = cov[2] = 1.5 * pi - ex * ez;
      break;
    }
    case ShapeKind::kBlobs: {
      const int K = s.centers;
      for (int a = 0; a < d; ++a) {
        double m = 0.0;
        for (int k = 0; k < K; ++k) m += s.center[k * d + a];
        mean[a] = m / K;
      }
      for (int a = 0; a < d; ++a)
        for (int c = 0; c < d; ++c) {
          double v = 0.0;
          for (int k = 0; k < K; ++k) v += (s.center[k * d + a] - mean[a]) * (s.center[k * d + c] - mean[c]);
          cov[a * d + c] = v / K + (a == c ? s.cluster_std * s.cluster_std : 0.0);
        }
      return;
    }
    case ShapeKind::kNone:
      return;
  }
  for (int a = 0; a < d; ++a) cov[a * d + a] += s.noise * s.noise;
}

// The shape's config word: "moons", "circles", "swiss_roll", "blobs" ("" for kNone).
inline const char* shape_name(ShapeKind k) {
  switch (k) {
    case ShapeKind::kMoons:
      return "moons";
    case ShapeKind::kCircles:
      return "circles";
    case ShapeKind::kSwissRoll:
      return "swiss_roll";
    case ShapeKind::kBlobs:
      return "blobs";
    case ShapeKind::kNone:
      break;
  }
  return "";
}

}  // namespace ouro::kernels

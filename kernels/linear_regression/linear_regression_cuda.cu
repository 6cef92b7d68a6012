// The cuda backend's launch of the linear regression family. The math is the shared code of
// kernels/linear_regression/linear_regression.h (the cpu backend's draws, residuals, statistics and fit); only the
// parallel decomposition is written here. Two paths:
//
// d <= OURO_MAX_DIM under replace and accumulate: small_kernel, a warp per chain (as the Gaussian family's
//   zsums_kernel). Lanes take contiguous ranges of the generation's points, draw each with regenerate_point and add
//   it to their own statistics (G's lower triangle, u, v; no point is stored); a shuffle-down tree sums them into
//   lane 0, which fits the chain with finish_regression_chain on one thread. A warp rather than a thread per chain:
//   10^4 chains are 4% of an H100's resident threads as threads and all of them as warps; the reduction (d(d+1)/2 +
//   d + 1 sums, five shuffles each) and the d <= 16 Cholesky are small beside a lane's n/32 points of d + 1 normals.
//
// Otherwise (d > OURO_MAX_DIM, and accumulate_subsample at every d): the chains in slices whose scratch fits
// cuda_scratch_bytes(), each slice's generation a fixed sequence of launches:
//   pick_kernel      accumulate_subsample: a thread per chain runs the selection (subsample_points) and lists the
//                    chosen points, with the training set's weight and composition
//   then tile by tile, kTilePoints points of every chain of the slice at a time:
//   draw_kernel      a thread per point: its d + 1 normals (regenerate_point's) into z[chain][row][point]
//   inputs_kernel    x = L z for every point, a batched product with the truth's factor in shared-memory tiles
//                    (design_inputs' sums, term for term; a diagonal Sigma_x is scaled in residual_kernel instead)
//   residual_kernel  a thread per point: its residual against the chain's current fit (point_residual's) and its
//                    age weight, as row d of x
//   gram_kernel      S += [X r]' W [X r], the lower triangle, in shared-memory tiles: G, u = X'W r and v = r'W r at
//                    once, each entry the sum over the tile in point order added to the running sum (add_point's
//                    products)
//   finish_kernel    a block per chain: finish_regression_chain over BlockPolicy (the Cholesky factorisation's
//                    steps, the forward sweep of the solve and the O(d^2) loops spread over the block)
// The products are written here rather than taken from cuBLAS (cublasDgemmStridedBatched): the binaries link the
// CUDA runtime statically and run wherever the driver is (scripts/gpu_check.sh --bundle carries them), and a toolkit
// without cuBLAS's static archive would add its shared libraries, about 600 MB with cublasLt, for products of at
// most 257 rows over 256 points.
//
// The cpu sums a tile's points in four fixed lanes and cuda sums them in order, so the two agree to rounding, not bit
// for bit (tests/sim/families/test_backends.cc). A generation is a copy of the metric block to the host at its end;
// no host round-trips inside it.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/linear_regression/linear_regression_backend.h"

namespace ouro::kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;  // per block of the per-chain and per-point kernels, and of the tiled products
constexpr int kWarpsPerBlock = kThreads / kWarp;
constexpr int kSmallDim = OURO_MAX_DIM;  // the warp-per-chain path's largest d
constexpr int kTilePoints = 256;         // points per chain per tile of the sliced path
constexpr int kStep = 16;                // rows of the shared-memory operands per step of a tiled product
constexpr int kSide = kThreads / kStep;  // the 16 x 16 threads of a tiled product's block

// No Eigen on the device: a system whose Cholesky factorisation fails (a pivot at or below kSingularPivot) fails
// the chain (ok 0, its metrics NaN), where the cpu would take the minimum-norm update. The family refuses the cuda
// backend for data.samples < d, the under-determined fits that need it, so only numerically singular systems come
// here.
struct NoSingularFit {
  OURO_HD bool operator()(const double*, double*, const double*) const { return false; }
};

// A chain is a block: finish_regression_chain's loops are spread over its threads (each iteration one thread's),
// single steps run on thread 0 with their result broadcast through shared memory, and every step is fenced by a
// barrier on both sides (kernels/linear_regression/linear_regression.h, RegressionSerial, says why that is enough).
struct BlockPolicy {
  int* flag;  // shared
  template <class F>
  __device__ void each(int n, F&& f) const {
    __syncthreads();
    for (int k = threadIdx.x; k < n; k += blockDim.x) f(k);
    __syncthreads();
  }
  // A warp per row r, its lanes over the columns c >= r (consecutive entries of a row-major matrix).
  template <class F>
  __device__ void each_upper(int n, F&& f) const {
    __syncthreads();
    const int lane = threadIdx.x % kWarp, warps = blockDim.x / kWarp;
    for (int r = threadIdx.x / kWarp; r < n; r += warps)
      for (int c = r + lane; c < n; c += kWarp) f(r, c);
    __syncthreads();
  }
  template <class F>
  __device__ bool single(F&& f) const {
    __syncthreads();  // every thread is done with what f may overwrite (and with *flag)
    if (threadIdx.x == 0) *flag = f() ? 1 : 0;
    __syncthreads();
    return *flag != 0;
  }
};

__device__ int imin(int a, int b) { return a < b ? a : b; }

// Sum over the 32 lanes of a warp, valid in lane 0.
__device__ double warp_sum(double v) {
  for (int h = kWarp / 2; h >= 1; h >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, h);
  return v;
}

__global__ void start_kernel(RegressionTruth tr, RegressionChains c, bool subsample) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < c.batch) start_regression_chain(tr, c, i, subsample);
}

// d <= kSmallDim, replace and accumulate: a warp per chain. Lane l takes points [l chunk, (l + 1) chunk) of the
// generation, split at `real` between the real and the synthetic stream.
__global__ void __launch_bounds__(kThreads) small_kernel(RegressionStep s, RegressionTruth tr, RegressionChains c) {
  __shared__ double fit_a[kWarpsPerBlock][kSmallDim * kSmallDim];
  __shared__ double fit_l[kWarpsPerBlock][kSmallDim * kSmallDim];
  __shared__ double fit_delta[kWarpsPerBlock][kSmallDim];
  const std::int64_t i = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (i >= c.batch) return;  // whole warps exit together
  const int d = s.d;
  const int t = s.generation;
  const int real = real_points_of(t, s.samples, s.real_count);
  const std::uint32_t chain = c.chain0 + static_cast<std::uint32_t>(i);
  const std::uint32_t real_gen = real_draw_generation(s.real_source, t);
  double g[kSmallDim * kSmallDim], u[kSmallDim], z[kSmallDim], x[kSmallDim];
  for (int k = 0; k < d * d; ++k) g[k] = 0.0;
  for (int k = 0; k < d; ++k) u[k] = 0.0;
  double v = 0.0;
  if (c.ok[i]) {  // a failed chain's model cannot label points
    const double* e_ref = c.e + i * d;
    const double s_model = c.s_model[i];
    const int chunk = (s.samples + kWarp - 1) / kWarp;
    const int p0 = imin(lane * chunk, s.samples), p1 = imin(p0 + chunk, s.samples);
    for (int p = p0; p < p1; ++p) {
      const bool is_real = p < real;
      const double eps =
          is_real ? regenerate_point(s, tr, chain, real_gen, rng::kStreamRealDraw, p, z, x)
                  : regenerate_point(s, tr, chain, static_cast<std::uint32_t>(t), rng::kStreamSyntheticDraw, p, z, x);
      // Real points are labelled by the truth; synthetic ones by the chain's current fit, the frame itself.
      const double r = is_real ? point_residual(d, x, eps, tr.sigma0, nullptr, e_ref)
                               : point_residual(d, x, eps, s_model, e_ref, e_ref);
      add_point(d, x, r, 1.0, g, u, v);
    }
  }
  for (int a = 0; a < d; ++a) {
    for (int b = 0; b <= a; ++b) g[a * d + b] = warp_sum(g[a * d + b]);
    u[a] = warp_sum(u[a]);
  }
  v = warp_sum(v);
  if (lane != 0) return;
  double synthetic_share, data_age;
  regime_composition(s.regime, s.samples, s.real_count, t, s.age_decay, synthetic_share, data_age);
  finish_regression_chain(s, tr, c, i, g, u, v, static_cast<double>(s.samples), synthetic_share, data_age, fit_a[warp],
                          fit_l[warp], fit_delta[warp], NoSingularFit{});
}

// ---- the sliced path ------------------------------------------------------------------------------------------

// One slice's scratch (device memory), chain cl of the slice at its stride in each array.
struct Scratch {
  int tile;             // points per tile: the stride of z's and x's rows and of w
  double* z;            // [slice][d + 1][tile]  normals: z (rows < d), eps (row d)
  double* x;            // [slice][d + 1][tile]  inputs x (rows < d), residual r (row d)
  double* w;            // [slice][tile]         age weights (accumulate_subsample; else null: weight 1)
  std::int64_t* picks;  // [slice][samples]      pool positions of the training set (accumulate_subsample)
  double* tally;        // [slice][3]            its weight, synthetic share and mean age (accumulate_subsample)
  double* g;            // [slice][d * d]        G (lower triangle, then full), then the fit's scratch a, l
  double* a;            // [slice][d * d]
  double* l;            // [slice][d * d]
  double* u;            // [slice][d]
  double* delta;        // [slice][d]
  double* v;            // [slice]
};

// The points of a tile: slot p of a chain is point q0 + p of the generation (of its real or its synthetic part), or
// under accumulate_subsample the chain's pick q0 + p.
struct Tile {
  std::int64_t first;  // the slice's first chain (its index in the batch)
  int q0, count;
  bool real;  // the part's points are real draws (not under accumulate_subsample)
};

// Where slot p of local chain cl (of the slice) comes from: point `index` of generation k's real or synthetic
// stream, drawn in generation `gen`'s stream `stream`.
struct PointRef {
  int k, index;
  bool real;
  std::uint32_t gen, stream;
};

__device__ PointRef point_ref(const RegressionStep& s, const Scratch& sc, const Tile& tl, std::int64_t cl, int p) {
  PointRef q;
  if (s.regime == Regime::kAccumulateSubsample) {
    const std::int64_t j = sc.picks[cl * s.samples + tl.q0 + p];  // pool position: point j % n of generation j / n + 1
    q.k = static_cast<int>(j / s.samples) + 1;
    q.index = static_cast<int>(j % s.samples);
    q.real = q.index < real_points_of(q.k, s.samples, s.real_count);
  } else {
    q.k = s.generation;
    q.index = tl.q0 + p;
    q.real = tl.real;
  }
  q.gen = q.real ? real_draw_generation(s.real_source, q.k) : static_cast<std::uint32_t>(q.k);
  q.stream = q.real ? rng::kStreamRealDraw : rng::kStreamSyntheticDraw;
  return q;
}

// stream_normals (kernels/core/normal.h), its output at a stride: normals first .. first + count - 1 of a stream,
// each Philox block drawn once.
__device__ void strided_normals(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::uint32_t stream,
                                std::uint64_t first, int count, double* out, int stride) {
  double quad[4];
  for (int a = 0; a < count; ++a) {
    const std::uint64_t m = first + static_cast<std::uint64_t>(a);
    if (a == 0 || (m & 3) == 0) box_muller(rng::draw_block(seed, chain, generation, stream, m >> 2), quad);
    out[static_cast<std::int64_t>(a) * stride] = quad[m & 3];
  }
}

// pick_kernel: a thread per chain of the slice.
__global__ void pick_kernel(RegressionStep s, RegressionChains c, Scratch sc, std::int64_t first, std::int64_t chains) {
  const std::int64_t cl = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (cl >= chains) return;
  const std::int64_t i = first + cl;
  double* tally = sc.tally + 3 * cl;
  tally[0] = tally[1] = tally[2] = 0.0;
  if (!c.ok[i]) return;  // (its points are not drawn: draw_kernel and residual_kernel write zeros)
  std::int64_t* picks = sc.picks + cl * s.samples;
  std::int64_t count = 0;
  SubsampleTally composition;
  subsample_points(s, c.chain0 + static_cast<std::uint32_t>(i), [&](int k, int index, bool is_real, double wt) {
    picks[count++] = static_cast<std::int64_t>(k - 1) * s.samples + index;
    composition.add(is_real, wt, s.generation - k);
  });
  tally[0] = composition.points;  // the training set's weight n (subsample_statistics' sum, in the same order)
  tally[1] = composition.synthetic_share();
  tally[2] = composition.data_age();
}

// draw_kernel: a thread per point of the tile (consecutive threads, consecutive points: coalesced rows).
__global__ void draw_kernel(RegressionStep s, RegressionChains c, Scratch sc, Tile tl, std::int64_t chains) {
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= chains * tl.count) return;
  const std::int64_t cl = idx / tl.count;
  const int p = static_cast<int>(idx % tl.count);
  const std::int64_t i = tl.first + cl;
  const int d = s.d, m = sc.tile;
  double* z = sc.z + cl * (d + 1) * m + p;  // row a at z[a m]
  if (!c.ok[i]) {
    for (int a = 0; a <= d; ++a) z[a * m] = 0.0;
    return;
  }
  const PointRef q = point_ref(s, sc, tl, cl, p);
  const std::uint32_t chain = c.chain0 + static_cast<std::uint32_t>(i);
  const std::uint64_t m0 = point_first_normal(d, q.index);
  // regenerate_point's normals: z from generation 1's real stream under a fixed design, eps always the point's own.
  if (s.design == Design::kFixed) {
    strided_normals(s.seed, chain, 1u, rng::kStreamRealDraw, m0, d, z, m);
    z[d * m] = stream_normal(s.seed, chain, q.gen, q.stream, m0 + static_cast<std::uint64_t>(d));
  } else {
    strided_normals(s.seed, chain, q.gen, q.stream, m0, d + 1, z, m);
  }
}

// inputs_kernel: x[a][p] = sum over b <= a of L[a][b] z[b][p] (a < d), design_inputs' sums term for term (the extra
// terms of a step past the diagonal are exact zeros, which change no sum). Block (row block, point block) of a
// chain; thread (ty, tx) computes rows a0 + ty + 16 r and points p0 + tx + 16 q.
template <int kT>
__global__ void __launch_bounds__(kThreads)
    inputs_kernel(const double* __restrict__ chol, Scratch sc, int d, int count) {
  constexpr int R = kT / kSide;
  __shared__ double As[kStep][kT + 1], Bs[kStep][kT + 1];
  const std::int64_t cl = blockIdx.x;
  const int row_blocks = (d + kT - 1) / kT;
  const int a0 = static_cast<int>(blockIdx.y % row_blocks) * kT, p0 = static_cast<int>(blockIdx.y / row_blocks) * kT;
  const int m = sc.tile;
  const double* z = sc.z + cl * (d + 1) * m;
  double* x = sc.x + cl * (d + 1) * m;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  double acc[R][R];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < R; ++q) acc[r][q] = 0.0;
  const int b_end = imin(d, a0 + kT);  // L[a][b] = 0 for b > a
  for (int b0 = 0; b0 < b_end; b0 += kStep) {
    for (int e = threadIdx.x; e < kStep * kT; e += kThreads) {
      const int kk = e % kStep, ii = e / kStep;  // L: a row's consecutive columns
      const int a = a0 + ii, b = b0 + kk;
      As[kk][ii] = a < d && b < d ? chol[a * d + b] : 0.0;
      const int jj = e % kT, k2 = e / kT;  // z: a row's consecutive points
      const int p = p0 + jj, b2 = b0 + k2;
      Bs[k2][jj] = b2 < d && p < count ? z[b2 * m + p] : 0.0;
    }
    __syncthreads();
    for (int kk = 0; kk < kStep; ++kk)
      for (int r = 0; r < R; ++r)
        for (int q = 0; q < R; ++q) acc[r][q] += As[kk][ty + kSide * r] * Bs[kk][tx + kSide * q];
    __syncthreads();
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < R; ++q) {
      const int a = a0 + ty + kSide * r, p = p0 + tx + kSide * q;
      if (a < d && p < count) x[a * m + p] = acc[r][q];
    }
}

// residual_kernel: a thread per point of the tile.
__global__ void residual_kernel(RegressionStep s, RegressionTruth tr, RegressionChains c, Scratch sc, Tile tl,
                                std::int64_t chains) {
  const std::int64_t idx = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= chains * tl.count) return;
  const std::int64_t cl = idx / tl.count;
  const int p = static_cast<int>(idx % tl.count);
  const std::int64_t i = tl.first + cl;
  const int d = s.d, m = sc.tile;
  const double* z = sc.z + cl * (d + 1) * m + p;
  double* x = sc.x + cl * (d + 1) * m + p;
  double* w = sc.w ? sc.w + cl * m + p : nullptr;
  if (!c.ok[i]) {  // zeros: the chain's statistics stay finite (and unused)
    for (int a = 0; a <= d; ++a) x[a * m] = 0.0;
    if (w) *w = 0.0;
    return;
  }
  const PointRef q = point_ref(s, sc, tl, cl, p);
  if (tr.diagonal)
    for (int a = 0; a < d; ++a) x[a * m] = tr.chol[a * d + a] * z[a * m];  // design_inputs' diagonal case
  // The labelling model: the truth (real points), the chain's current fit (synthetic points of this generation
  // under replace and accumulate: the frame itself), or generation k-1's fit from the history (synthetic points of
  // generation k under accumulate_subsample).
  const double* e_ref = c.e + i * d;
  const double* e_src = nullptr;
  double s_src = tr.sigma0;
  const bool subsample = s.regime == Regime::kAccumulateSubsample;
  if (!q.real) {
    if (subsample) {
      const std::int64_t slot = static_cast<std::int64_t>(q.k - 1) * c.batch + i;
      e_src = c.hist_e + slot * d;
      s_src = c.hist_s[slot];
    } else {
      e_src = e_ref;
      s_src = c.s_model[i];
    }
  }
  // point_residual over a column of x.
  double r = 0.0;
  if (e_src != e_ref)
    for (int a = 0; a < d; ++a) r += x[a * m] * ((e_src ? e_src[a] : 0.0) - e_ref[a]);
  x[d * m] = r + s_src * z[d * m];
  if (w) *w = pow_int(s.age_decay, s.generation - q.k);
}

// gram_kernel: for the rows [x, r] (d + 1 of them) of a chain's tile, S[i][j] += sum over its points p in order of
// (w_p X[i][p]) X[j][p], j <= i: G's lower triangle (i, j < d), u (i = d, j < d) and v (i = j = d), written into
// the slice's g, u, v. Block (chain, block (bi, bj) of the lower triangle); thread (ty, tx) computes rows
// i0 + ty + 16 r and columns j0 + tx + 16 q.
template <int kT>
__global__ void __launch_bounds__(kThreads) gram_kernel(Scratch sc, int d, int count) {
  constexpr int R = kT / kSide;
  __shared__ double As[kStep][kT + 1], Bs[kStep][kT + 1];
  const std::int64_t cl = blockIdx.x;
  int bi = 0, bj = static_cast<int>(blockIdx.y);  // blocks (0,0), (1,0), (1,1), (2,0), ...
  while (bj > bi) bj -= ++bi;
  const int D = d + 1, m = sc.tile;
  const int i0 = bi * kT, j0 = bj * kT;
  const double* X = sc.x + cl * D * m;
  const double* w = sc.w ? sc.w + cl * m : nullptr;
  const int tx = threadIdx.x % kSide, ty = threadIdx.x / kSide;
  double acc[R][R];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < R; ++q) acc[r][q] = 0.0;
  for (int p0 = 0; p0 < count; p0 += kStep) {
    for (int e = threadIdx.x; e < kStep * kT; e += kThreads) {
      const int kk = e % kStep, ii = e / kStep;  // a row's consecutive points
      const int p = p0 + kk;
      const bool in = p < count;
      const int ri = i0 + ii, rj = j0 + ii;
      double xi = in && ri < D ? X[ri * m + p] : 0.0;
      if (w && in) xi = w[p] * xi;  // add_point's wt * x[a]
      As[kk][ii] = xi;
      Bs[kk][ii] = in && rj < D ? X[rj * m + p] : 0.0;
    }
    __syncthreads();
    for (int kk = 0; kk < kStep; ++kk)
      for (int r = 0; r < R; ++r)
        for (int q = 0; q < R; ++q) acc[r][q] += As[kk][ty + kSide * r] * Bs[kk][tx + kSide * q];
    __syncthreads();
  }
  double* g = sc.g + cl * d * d;
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < R; ++q) {
      const int i = i0 + ty + kSide * r, j = j0 + tx + kSide * q;
      if (i >= D || j > i) continue;
      if (i < d) g[i * d + j] += acc[r][q];
      else if (j < d) sc.u[cl * d + j] += acc[r][q];
      else sc.v[cl] += acc[r][q];
    }
}

// finish_kernel: a block per chain of the slice.
__global__ void finish_kernel(RegressionStep s, RegressionTruth tr, RegressionChains c, Scratch sc,
                              std::int64_t first) {
  __shared__ int flag;
  const std::int64_t cl = blockIdx.x, i = first + cl;
  const int d = s.d;
  const std::int64_t dd = static_cast<std::int64_t>(d) * d;
  double n, synthetic_share, data_age;
  if (s.regime == Regime::kAccumulateSubsample) {
    n = sc.tally[3 * cl];
    synthetic_share = sc.tally[3 * cl + 1];
    data_age = sc.tally[3 * cl + 2];
  } else {
    n = s.samples;
    regime_composition(s.regime, s.samples, s.real_count, s.generation, s.age_decay, synthetic_share, data_age);
  }
  finish_regression_chain(BlockPolicy{&flag}, s, tr, c, i, sc.g + cl * dd, sc.u + cl * d, sc.v[cl], n, synthetic_share,
                          data_age, sc.a + cl * dd, sc.l + cl * dd, sc.delta + cl * d, NoSingularFit{});
}

constexpr const char* kOwner = "linear_regression cuda backend";

class RegressionCuda final : public RegressionBackend {
 public:
  explicit RegressionCuda(const RegressionBatchSpec& spec) : spec_(spec) {
    const RegressionTruthData& t = spec.truth;
    const std::size_t n = static_cast<std::size_t>(spec.batch), d = static_cast<std::size_t>(t.d);
    w0_ = upload_device(kOwner, t.w0, "the truth");
    cov_ = upload_device(kOwner, t.cov, "the truth");
    chol_ = upload_device(kOwner, t.chol, "the truth");
    truth_ = RegressionTruth{t.d, t.sigma0, w0_.get(), cov_.get(), chol_.get(), t.diagonal, t.w0_norm2};
    const std::string state = "the state of " + std::to_string(spec.batch) + " chains";
    e_ = allocate_device<double>(kOwner, n * d, state);
    s_model_ = allocate_device<double>(kOwner, n, state);
    s_fit_ = allocate_device<double>(kOwner, n, state);
    ok_ = allocate_device<unsigned char>(kOwner, n, state);
    if (spec.regime == Regime::kAccumulate) {
      pool_g_ = allocate_device<double>(kOwner, n * d * d, state + " (the accumulated pool's statistics)");
      pool_u_ = allocate_device<double>(kOwner, n * d, state);
      pool_v_ = allocate_device<double>(kOwner, n, state);
      pool_n_ = allocate_device<double>(kOwner, n, state);
      pool_comp_.assign(3 * static_cast<std::size_t>(n), 0.0);
    }
    if (spec.regime == Regime::kAccumulateSubsample) {
      const std::size_t slots = static_cast<std::size_t>(spec.generations + 1) * n;
      hist_e_ = allocate_device<double>(kOwner, slots * d, state + " (every generation's model)");
      hist_s_ = allocate_device<double>(kOwner, slots, state);
    }
    metrics_ = allocate_device<double>(kOwner, kNumRegressionMetrics * n, state);
    chains_ = RegressionChains{spec.batch,    spec.chain_begin, e_.get(),      s_model_.get(), s_fit_.get(),
                               ok_.get(),     pool_g_.get(),    pool_u_.get(), pool_v_.get(),  pool_n_.get(),
                               hist_e_.get(), hist_s_.get(),    metrics_.get()};
    workers_ = {WorkerRange{cuda_worker_name(), spec.chain_begin, spec.chain_begin + spec.batch - 1, spec.batch}};
  }

  void start(double* h_metrics) override {
    workers_ = {WorkerRange{cuda_worker_name(), spec_.chain_begin, spec_.chain_begin + spec_.batch - 1, spec_.batch}};
    if (spec_.batch == 0) return;
    start_kernel<<<grid_blocks(spec_.batch, kThreads), kThreads>>>(truth_, chains_,
                                                                   spec_.regime == Regime::kAccumulateSubsample);
    OURO_CUDA_CHECK(cudaGetLastError());
    copy_metrics(h_metrics);
  }

  void advance(const RegressionStep& s, double* h_metrics) override {
    if (spec_.batch == 0) return;
    if (s.d <= kSmallDim && s.regime != Regime::kAccumulateSubsample) {
      small_kernel<<<grid_blocks(spec_.batch * kWarp, kThreads), kThreads>>>(s, truth_, chains_);
      OURO_CUDA_CHECK(cudaGetLastError());
    } else {
      const std::int64_t slice = prepare_scratch(s);
      for (std::int64_t first = 0; first < spec_.batch; first += slice)
        advance_slice(s, first, std::min(slice, spec_.batch - first));
    }
    copy_metrics(h_metrics);
  }

  std::vector<WorkerRange> workers() const override { return workers_; }

  // The cpu backend's arrays, names and order (linear_regression_cpu.cc), so that a checkpoint of one backend
  // resumes on the other.
  void state(StateArchive& ar) override {
    archive(ar, "e", e_);
    archive(ar, "s_model", s_model_);
    archive(ar, "s_fit", s_fit_);
    archive(ar, "ok", ok_);
    archive(ar, "pool_g", pool_g_);
    archive(ar, "pool_u", pool_u_);
    archive(ar, "pool_v", pool_v_);
    archive(ar, "pool_n", pool_n_);
    archive(ar, "hist_e", hist_e_);
    archive(ar, "hist_s", hist_s_);
    ar.vec("pool_comp", pool_comp_);
    ar.workers(workers_);
  }

 private:
  // The sliced path's scratch for this step: the chains per slice, at most as many as cuda_scratch_bytes() holds
  // (at least one) and half the free device memory; allocated on the first step (data.samples is the same in
  // every step).
  std::int64_t prepare_scratch(const RegressionStep& s) {
    const int d = s.d;
    const int tile = std::min(s.samples, kTilePoints);
    const bool subsample = s.regime == Regime::kAccumulateSubsample;
    const double dd = static_cast<double>(d) * d, rows = d + 1.0;
    const double per_chain =
        8.0 * (3.0 * dd + 2.0 * d + 1.0 + 2.0 * rows * tile + (subsample ? tile + 3.0 + s.samples : 0.0));
    if (slice_ > 0 && tile_ == tile && samples_ == s.samples) return slice_;
    release_scratch();
    const double free = cuda_free_bytes();
    if (per_chain > free)
      throw std::runtime_error("linear_regression cuda backend: one chain's scratch (d = " + std::to_string(d) + ", " +
                               std::to_string(s.samples) + " points per generation in tiles of " +
                               std::to_string(tile) + ") needs " + mib(per_chain) + " MiB of device memory, but " +
                               mib(free) + " MiB are free");
    const double budget = std::min(cuda_scratch_bytes(), 0.5 * free);
    const std::int64_t slice =
        std::max<std::int64_t>(1, std::min<std::int64_t>(spec_.batch, static_cast<std::int64_t>(budget / per_chain)));
    const std::size_t S = static_cast<std::size_t>(slice), D = static_cast<std::size_t>(d) + 1;
    const std::string what = "the scratch of " + std::to_string(slice) + " chains at d = " + std::to_string(d);
    z_ = allocate_device<double>(kOwner, S * D * tile, what);
    x_ = allocate_device<double>(kOwner, S * D * tile, what);
    if (subsample) {
      w_ = allocate_device<double>(kOwner, S * tile, what);
      picks_ = allocate_device<std::int64_t>(kOwner, S * static_cast<std::size_t>(s.samples), what);
      tally_ = allocate_device<double>(kOwner, S * 3, what);
    }
    const std::size_t sdd = S * static_cast<std::size_t>(d) * d;
    g_ = allocate_device<double>(kOwner, sdd, what);
    a_ = allocate_device<double>(kOwner, sdd, what);
    l_ = allocate_device<double>(kOwner, sdd, what);
    u_ = allocate_device<double>(kOwner, S * d, what);
    delta_ = allocate_device<double>(kOwner, S * d, what);
    v_ = allocate_device<double>(kOwner, S, what);
    slice_ = slice;
    tile_ = tile;
    samples_ = s.samples;
    return slice_;
  }

  void release_scratch() {
    z_ = {};
    x_ = {};
    w_ = {};
    picks_ = {};
    tally_ = {};
    g_ = {};
    a_ = {};
    l_ = {};
    u_ = {};
    delta_ = {};
    v_ = {};
    slice_ = 0;
  }

  Scratch scratch() const {
    return Scratch{tile_,    z_.get(), x_.get(), w_.get(), picks_.get(), tally_.get(),
                   g_.get(), a_.get(), l_.get(), u_.get(), delta_.get(), v_.get()};
  }

  void advance_slice(const RegressionStep& s, std::int64_t first, std::int64_t chains) {
    const int d = s.d;
    const Scratch sc = scratch();
    const std::size_t S = static_cast<std::size_t>(chains);
    OURO_CUDA_CHECK(cudaMemset(sc.g, 0, S * d * d * sizeof(double)));
    OURO_CUDA_CHECK(cudaMemset(sc.u, 0, S * d * sizeof(double)));
    OURO_CUDA_CHECK(cudaMemset(sc.v, 0, S * sizeof(double)));
    if (s.regime == Regime::kAccumulateSubsample) {
      pick_kernel<<<grid_blocks(chains, kThreads), kThreads>>>(s, chains_, sc, first, chains);
      OURO_CUDA_CHECK(cudaGetLastError());
      for (int q0 = 0; q0 < s.samples; q0 += tile_)
        add_tile(s, sc, Tile{first, q0, std::min(tile_, s.samples - q0), false}, chains);
    } else {
      const int real = real_points_of(s.generation, s.samples, s.real_count);
      for (int q0 = 0; q0 < real; q0 += tile_)
        add_tile(s, sc, Tile{first, q0, std::min(tile_, real - q0), true}, chains);
      for (int q0 = real; q0 < s.samples; q0 += tile_)
        add_tile(s, sc, Tile{first, q0, std::min(tile_, s.samples - q0), false}, chains);
    }
    // A block per chain: a warp per row of the factorisation's trailing update, up to 8 warps.
    const int threads = d <= 32 ? 32 : d <= 64 ? 64 : d <= 128 ? 128 : 256;
    finish_kernel<<<static_cast<unsigned>(chains), threads>>>(s, truth_, chains_, sc, first);
    OURO_CUDA_CHECK(cudaGetLastError());
  }

  // One tile's points of every chain of the slice into its statistics.
  void add_tile(const RegressionStep& s, const Scratch& sc, const Tile& tl, std::int64_t chains) {
    const int d = s.d;
    const std::int64_t points = chains * tl.count;
    draw_kernel<<<grid_blocks(points, kThreads), kThreads>>>(s, chains_, sc, tl, chains);
    OURO_CUDA_CHECK(cudaGetLastError());
    const bool wide = d + 1 > 32;  // 64 x 64 blocks of the products, else 32 x 32
    if (!truth_.diagonal) {
      const int side = wide ? 64 : 32;
      const dim3 grid(static_cast<unsigned>(chains),
                      static_cast<unsigned>(((d + side - 1) / side) * ((tl.count + side - 1) / side)));
      if (wide) inputs_kernel<64><<<grid, kThreads>>>(truth_.chol, sc, d, tl.count);
      else inputs_kernel<32><<<grid, kThreads>>>(truth_.chol, sc, d, tl.count);
      OURO_CUDA_CHECK(cudaGetLastError());
    }
    residual_kernel<<<grid_blocks(points, kThreads), kThreads>>>(s, truth_, chains_, sc, tl, chains);
    OURO_CUDA_CHECK(cudaGetLastError());
    const int side = wide ? 64 : 32;
    const int nb = (d + 1 + side - 1) / side;
    const dim3 grid(static_cast<unsigned>(chains), static_cast<unsigned>(nb * (nb + 1) / 2));
    if (wide) gram_kernel<64><<<grid, kThreads>>>(sc, d, tl.count);
    else gram_kernel<32><<<grid, kThreads>>>(sc, d, tl.count);
    OURO_CUDA_CHECK(cudaGetLastError());
  }

  void copy_metrics(double* h_metrics) {
    OURO_CUDA_CHECK(cudaMemcpy(h_metrics, metrics_.get(), sizeof(double) * kNumRegressionMetrics * spec_.batch,
                               cudaMemcpyDeviceToHost));
  }

  RegressionBatchSpec spec_;
  DeviceBuffer<double> w0_, cov_, chol_;
  RegressionTruth truth_{};
  DeviceBuffer<double> e_, s_model_, s_fit_, pool_g_, pool_u_, pool_v_, pool_n_, hist_e_, hist_s_, metrics_;
  // The cpu's composition of a filtered pool, kept for interchangeable checkpoints (this backend runs no filter:
  // it stays zero).
  std::vector<double> pool_comp_;
  DeviceBuffer<unsigned char> ok_;
  RegressionChains chains_{};
  std::vector<WorkerRange> workers_;
  // The sliced path's scratch (prepare_scratch).
  DeviceBuffer<double> z_, x_, w_, tally_, g_, a_, l_, u_, delta_, v_;
  DeviceBuffer<std::int64_t> picks_;
  std::int64_t slice_ = 0;
  int tile_ = 0, samples_ = 0;
};

}  // namespace

std::unique_ptr<RegressionBackend> make_regression_cuda(const RegressionBatchSpec& spec) {
  return std::make_unique<RegressionCuda>(spec);
}

}  // namespace ouro::kernels

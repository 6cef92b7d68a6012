// The cpu backend's launch of the linear regression family: OpenMP over chains, each chain's generation done whole
// by one thread with the shared math of kernels/linear_regression/linear_regression.h, so results do not depend on
// the thread count. A generation's points are drawn a tile at a time (the normals of a tile's points in one
// vectorised pass, then the points' statistics), and the singular systems of under-determined fits are solved with
// Eigen's symmetric eigen-decomposition.
#include <omp.h>

#include <algorithm>
#include <cfloat>
#include <cstring>
#include <string>
#include <vector>

// GCC 12 reports -Wmaybe-uninitialized inside Eigen's AVX-512 packet code for the eigen-solver below (a false
// positive in the library's intrinsics, not in this file's code).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Dense>

#include "kernels/core/philox_batch.h"
#include "kernels/core/state.h"
#include "kernels/linear_regression/linear_regression_backend.h"
#include "kernels/training/batched_selection.h"

namespace ouro::kernels {

void cpu_stream_normals(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::uint32_t stream,
                        std::uint64_t first, std::int64_t count, double* out) {
  if (count <= 0) return;
  constexpr int kTile = 32;  // blocks per tile = 128 normals
  alignas(64) std::uint64_t w0[kTile], w1[kTile], w2[kTile], w3[kTile];
  alignas(64) double z[4 * kTile];
  alignas(64) std::uint64_t index[kTile];
  const rng::PhiloxKeys keys(seed, chain);
  const std::uint64_t last = first + static_cast<std::uint64_t>(count);  // one past the last normal
  const std::uint64_t last_block = (last - 1) >> 2;
  for (std::uint64_t b0 = first >> 2; b0 <= last_block; b0 += kTile) {
    const int blocks = static_cast<int>(std::min<std::uint64_t>(kTile, last_block - b0 + 1));
    for (int b = 0; b < kTile; ++b) index[b] = b0 + static_cast<std::uint64_t>(b);
    rng::philox_blocks<kTile>(index, 0, stream, generation, keys, w0, w1, w2, w3);
#pragma omp simd
    for (int b = 0; b < blocks; ++b) {
      box_muller_pair(w0[b], w1[b], z[4 * b], z[4 * b + 1]);
      box_muller_pair(w2[b], w3[b], z[4 * b + 2], z[4 * b + 3]);
    }
    const std::uint64_t lo = std::max(first, 4 * b0);
    const std::uint64_t hi = std::min(last, 4 * (b0 + static_cast<std::uint64_t>(blocks)));
    for (std::uint64_t m = lo; m < hi; ++m) out[m - first] = z[m - 4 * b0];
  }
}

void cpu_strided_normals(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::uint32_t stream,
                         std::uint64_t first, std::uint64_t stride, std::int64_t count, double* out) {
  constexpr int kTile = 32;
  alignas(64) std::uint64_t w0[kTile], w1[kTile], w2[kTile], w3[kTile], index[kTile];
  const rng::PhiloxKeys keys(seed, chain);
  for (std::int64_t k0 = 0; k0 < count; k0 += kTile) {
    const int m = static_cast<int>(std::min<std::int64_t>(kTile, count - k0));
    for (int b = 0; b < kTile; ++b)
      index[b] = (first + static_cast<std::uint64_t>(k0 + std::min(b, m - 1)) * stride) >> 2;
    rng::philox_blocks<kTile>(index, 0, stream, generation, keys, w0, w1, w2, w3);
    for (int b = 0; b < m; ++b) {
      const unsigned which = static_cast<unsigned>((first + static_cast<std::uint64_t>(k0 + b) * stride) & 3);
      double z0, z1;
      if (which < 2) box_muller_pair(w0[b], w1[b], z0, z1);
      else box_muller_pair(w2[b], w3[b], z0, z1);
      out[k0 + b] = (which & 1) ? z1 : z0;
    }
  }
}

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// One thread's working memory, reused across its chains.
struct Scratch {
  std::vector<double> g, u, a, l, delta, z, x, inputs, xt, res, eps;
  void size(int d, int tile) {
    g.assign(static_cast<std::size_t>(d) * d, 0.0);
    u.assign(d, 0.0);
    a.assign(static_cast<std::size_t>(d) * d, 0.0);
    l.assign(static_cast<std::size_t>(d) * d, 0.0);
    delta.assign(d, 0.0);
    z.assign(d, 0.0);
    x.assign(d, 0.0);
    inputs.assign(static_cast<std::size_t>(tile) * (d + 1), 0.0);
    xt.assign(static_cast<std::size_t>(d) * (tile + 3), 0.0);
    res.assign(tile + 3, 0.0);
    eps.assign(tile, 0.0);
  }
};

// Points per tile: a tile's normals fill at most 32 KiB.
int tile_points(int d) { return std::max(1, 4096 / (d + 1)); }

class RegressionCpu final : public RegressionBackend {
 public:
  explicit RegressionCpu(const RegressionBatchSpec& spec) : spec_(spec), truth_(spec_.truth.view()) {
    const std::int64_t n = spec.batch;
    const int d = spec.truth.d;
    e_.assign(n * d, 0.0);
    s_model_.assign(n, 0.0);
    s_fit_.assign(n, 0.0);
    ok_.assign(n, 1);
    if (spec.regime == Regime::kAccumulate) {
      pool_g_.assign(n * d * d, 0.0);
      pool_u_.assign(n * d, 0.0);
      pool_v_.assign(n, 0.0);
      pool_n_.assign(n, 0.0);
      pool_comp_.assign(3 * n, 0.0);
    }
    if (spec.regime == Regime::kAccumulateSubsample) {
      hist_e_.assign((spec.generations + 1) * n * d, 0.0);
      hist_s_.assign((spec.generations + 1) * n, 0.0);
    }
    threads_ = spec.threads > 0 ? spec.threads : omp_get_max_threads();
    scratch_.resize(threads_);
    for (auto& s : scratch_) s.size(d, tile_points(d));
    chains_ = RegressionChains{n,
                               spec.chain_begin,
                               e_.data(),
                               s_model_.data(),
                               s_fit_.data(),
                               ok_.data(),
                               pool_g_.empty() ? nullptr : pool_g_.data(),
                               pool_u_.empty() ? nullptr : pool_u_.data(),
                               pool_v_.empty() ? nullptr : pool_v_.data(),
                               pool_n_.empty() ? nullptr : pool_n_.data(),
                               hist_e_.empty() ? nullptr : hist_e_.data(),
                               hist_s_.empty() ? nullptr : hist_s_.data(),
                               nullptr};
  }

  void start(double* h_metrics) override {
    RegressionChains c = chains_;
    c.metrics = h_metrics;
    const bool subsample = spec_.regime == Regime::kAccumulateSubsample;
    std::vector<WorkerRange> seen(threads_);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t i = 0; i < spec_.batch; ++i) {
      note_chain(seen[omp_get_thread_num()], "omp-thread-" + std::to_string(omp_get_thread_num()),
                 spec_.chain_begin + i);
      start_regression_chain(truth_, c, i, subsample);
    }
    workers_ = seen;
  }

  void advance(const RegressionStep& s, double* h_metrics) override {
    RegressionChains c = chains_;
    c.metrics = h_metrics;
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t i = 0; i < spec_.batch; ++i) advance_chain(s, c, i, scratch_[omp_get_thread_num()]);
  }

  std::vector<WorkerRange> workers() const override { return workers_; }

  void state(StateArchive& ar) override {
    ar.vec("e", e_);
    ar.vec("s_model", s_model_);
    ar.vec("s_fit", s_fit_);
    ar.vec("ok", ok_);
    ar.vec("pool_g", pool_g_);
    ar.vec("pool_u", pool_u_);
    ar.vec("pool_v", pool_v_);
    ar.vec("pool_n", pool_n_);
    ar.vec("hist_e", hist_e_);
    ar.vec("hist_s", hist_s_);
    ar.vec("pool_comp", pool_comp_);
    ar.workers(workers_);
  }

 private:
  // The normals of points [q0, q0 + m) of generation `gen`'s stream `stream` into sc.inputs, point p's d + 1 at
  // p (d + 1): z, then eps. Under a fixed design z is generation 1's real point's (and so is eps for generation 1's
  // real points); eps is the point's own.
  const double* draw_tile(const RegressionStep& s, std::uint32_t chain, std::uint32_t gen, std::uint32_t stream,
                          std::int64_t q0, int m, bool real, Scratch& sc) const {
    const int d = s.d;
    const std::uint64_t first = point_first_normal(d, q0);
    const std::int64_t count = static_cast<std::int64_t>(m) * (d + 1);
    double* z = sc.inputs.data();
    if (s.design == Design::kFixed) {
      cpu_stream_normals(s.seed, chain, 1u, rng::kStreamRealDraw, first, count, z);
      if (!(real && gen == 1u)) {  // generation 1's real points have their own noise in the same normals
        double* eps = sc.eps.data();
        cpu_strided_normals(s.seed, chain, gen, stream, first + d, d + 1, m, eps);
        for (int p = 0; p < m; ++p) z[static_cast<std::size_t>(p) * (d + 1) + d] = eps[p];
      }
    } else {
      cpu_stream_normals(s.seed, chain, gen, stream, first, count, z);
    }
    return z;
  }

  // The synthetic candidates of a generation under data.verifier and/or data.tail_upsample (RegressionFilter):
  // candidate j = 0, 1, ... is point first + j of the synthetic stream (the point that stands there without a
  // filter), labelled by the frame's model (r = s_src eps); it is kept or dropped by the verifier on its truth
  // residual z = (y - x.w0) / sigma0 = (x.e_ref + r) / sigma0, and a kept one is added with the upsampling weight,
  // one point at a time in candidate order (add_point), until `need` are kept or the verifier's draw budget is
  // spent. Returns the points kept, the candidates drawn and the kept points' total weight.
  void add_filtered_points(const RegressionStep& s, std::uint32_t chain, int first, int need, double s_src,
                           const double* e_ref, Scratch& sc, double& v, double& kept, double& drawn,
                           double& weight) const {
    const int d = s.d;
    const RegressionFilter& f = s.filter;
    const auto gen = static_cast<std::uint32_t>(s.generation);
    const std::int64_t cap = f.on ? static_cast<std::int64_t>(need) * f.max_draw_factor : need;
    const int tile = tile_points(d);
    double* x = sc.x.data();
    VerifyWords words;
    std::int64_t j = 0, k = 0;
    double total = 0.0;
    while (j < cap && k < need) {
      const int m = static_cast<int>(std::min<std::int64_t>(tile, cap - j));
      const double* z = draw_tile(s, chain, gen, rng::kStreamSyntheticDraw, first + j, m, false, sc);
      for (int p = 0; p < m && k < need; ++p, ++j) {
        const double* zp = z + static_cast<std::size_t>(p) * (d + 1);
        design_inputs(truth_, zp, x);
        const double r = s_src * zp[d];
        double y0 = r;  // y - x.w0
        for (int a = 0; a < d; ++a) y0 += x[a] * e_ref[a];
        const double z2 = (y0 / truth_.sigma0) * (y0 / truth_.sigma0);
        if (f.on && !words.keeps(s.seed, chain, gen, static_cast<std::uint64_t>(j),
                                 z2 <= f.z2_max ? f.keep_plausible : f.keep_implausible))
          continue;
        const double wt = (f.upsample && z2 > f.z2_min) ? f.factor : 1.0;
        add_point(d, x, r, wt, sc.g.data(), sc.u.data(), v);
        ++k;
        total += wt;
      }
    }
    kept = static_cast<double>(k);
    drawn = static_cast<double>(j);
    weight = total;
  }

  // Adds points [p0, p1) of generation `gen`'s stream `stream` to the statistics in the frame w0 + e_ref: labelled
  // by the truth (real) or by the frame's model itself (synthetic, noise s_src: r = s_src eps). A tile of points at
  // a time: their normals in one vectorised pass, their inputs transposed (xt[a][p]) and residuals, then every sum
  // over the tile in four fixed lanes (point p in lane p mod 4, a GCC vector type: the same bits whatever vector
  // width the machine has) added to the running sums in a fixed order.
  void add_points(const RegressionStep& s, std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, int p0, int p1,
                  bool real, double s_src, const double* e_ref, Scratch& sc, double& v) const {
    typedef double Lanes __attribute__((vector_size(32)));
    const int d = s.d;
    const int tile = tile_points(d);
    double* g = sc.g.data();
    double* u = sc.u.data();
    double* xt = sc.xt.data();
    double* res = sc.res.data();
    const double* chol = truth_.chol;
    auto fold = [](Lanes a) { return (a[0] + a[1]) + (a[2] + a[3]); };
    auto load = [](const double* p) {
      Lanes x;
      std::memcpy(&x, p, sizeof x);
      return x;
    };
    for (int q0 = p0; q0 < p1; q0 += tile) {
      const int q1 = std::min(p1, q0 + tile);
      const int m = q1 - q0;
      const int m4 = (m + 3) & ~3;  // padded with points of zero inputs and residual, which add exact zeros
      const double* z = draw_tile(s, chain, gen, stream, q0, m, real, sc);
      // x = L z, transposed; r = s_src eps (synthetic) or sigma0 eps - x.e_ref (real).
      for (int a = 0; a < d; ++a) {
        double* row = xt + static_cast<std::size_t>(a) * m4;
        if (truth_.diagonal) {
          const double c = chol[a * d + a];
          for (int p = 0; p < m; ++p) row[p] = c * z[static_cast<std::size_t>(p) * (d + 1) + a];
        } else {
          for (int p = 0; p < m; ++p) {
            double acc = 0.0;
            for (int b = 0; b <= a; ++b) acc += chol[a * d + b] * z[static_cast<std::size_t>(p) * (d + 1) + b];
            row[p] = acc;
          }
        }
        for (int p = m; p < m4; ++p) row[p] = 0.0;
      }
      const double noise = real ? truth_.sigma0 : s_src;
      for (int p = 0; p < m; ++p) res[p] = noise * z[static_cast<std::size_t>(p) * (d + 1) + d];
      for (int p = m; p < m4; ++p) res[p] = 0.0;
      if (real)
        for (int a = 0; a < d; ++a) {
          const double* row = xt + static_cast<std::size_t>(a) * m4;
          const double ea = e_ref[a];
          for (int p = 0; p < m; ++p) res[p] -= row[p] * ea;
        }
      Lanes vv = {0.0, 0.0, 0.0, 0.0};
      for (int p = 0; p < m4; p += 4) {
        const Lanes r = load(res + p);
        vv += r * r;
      }
      v += fold(vv);
      for (int a = 0; a < d; ++a) {
        const double* xa = xt + static_cast<std::size_t>(a) * m4;
        Lanes ua = {0.0, 0.0, 0.0, 0.0};
        for (int p = 0; p < m4; p += 4) ua += load(xa + p) * load(res + p);
        u[a] += fold(ua);
        for (int b = 0; b <= a; ++b) {
          const double* xb = xt + static_cast<std::size_t>(b) * m4;
          Lanes gab = {0.0, 0.0, 0.0, 0.0};
          for (int p = 0; p < m4; p += 4) gab += load(xa + p) * load(xb + p);
          g[a * d + b] += fold(gab);
        }
      }
    }
  }

  void advance_chain(const RegressionStep& s, const RegressionChains& c, std::int64_t i, Scratch& sc) const {
    const int d = s.d;
    const auto chain = c.chain0 + static_cast<std::uint32_t>(i);
    const int t = s.generation;
    std::fill(sc.g.begin(), sc.g.end(), 0.0);
    std::fill(sc.u.begin(), sc.u.end(), 0.0);
    double v = 0.0, n = 0.0, synthetic_share = 0.0, data_age = 0.0, draws_per_kept = 1.0;
    const double* e_ref = c.e + i * d;
    if (c.ok[i]) {
      if (s.regime == Regime::kAccumulateSubsample) {
        subsample_statistics<BatchedSelection>(s, truth_, chain, c.hist_e, c.hist_s, c.batch, i, e_ref, sc.z.data(),
                                               sc.x.data(), sc.g.data(), sc.u.data(), v, n, synthetic_share, data_age);
      } else {
        const int real = real_points_of(t, s.samples, s.real_count);
        add_points(s, chain, real_draw_generation(s.real_source, t), rng::kStreamRealDraw, 0, real, true, 0.0, e_ref,
                   sc, v);
        if (!s.filter.any()) {
          add_points(s, chain, static_cast<std::uint32_t>(t), rng::kStreamSyntheticDraw, real, s.samples, false,
                     c.s_model[i], e_ref, sc, v);
          n = s.samples;
          regime_composition(s.regime, s.samples, s.real_count, t, s.age_decay, synthetic_share, data_age);
        } else {
          double kept = 0.0, drawn = 0.0, weight = 0.0;
          if (s.samples > real)
            add_filtered_points(s, chain, real, s.samples - real, c.s_model[i], e_ref, sc, v, kept, drawn, weight);
          n = real + weight;
          if (s.samples > real) draws_per_kept = kept > 0.0 ? drawn / kept : INFINITY;
          filtered_composition(s, i, real, kept, synthetic_share, data_age);
        }
      }
    }
    auto singular = [&](const double* a, double* delta, const double* e) {
      return minimum_norm_update(s, a, delta, e);
    };
    finish_regression_chain(s, truth_, c, i, sc.g.data(), sc.u.data(), v, n, synthetic_share, data_age, sc.a.data(),
                            sc.l.data(), sc.delta.data(), singular);
    if (c.ok[i]) c.metrics[kRegressionDrawsPerKept * c.batch + i] = draws_per_kept;
  }

  // The training set's synthetic share and mean age under a filter, by points (not weights): replace, this
  // generation's real and kept points; accumulate, the chain's pool, whose points, synthetic points and points x age
  // (each aged by the decay) are kept in pool_comp_: a generation ages them (A <- q (A + P), P <- q P, S <- q S)
  // and adds its own at age 0.
  void filtered_composition(const RegressionStep& s, std::int64_t i, int real, double kept, double& synthetic_share,
                            double& data_age) const {
    if (s.regime == Regime::kReplace) {
      synthetic_share = kept / (real + kept);
      data_age = 0.0;
      return;
    }
    const std::int64_t b = spec_.batch;
    double* comp = pool_comp_.data();
    const double q = s.age_decay;
    comp[2 * b + i] = q * (comp[2 * b + i] + comp[i]);
    comp[i] = q * comp[i] + real + kept;
    comp[b + i] = q * comp[b + i] + kept;
    synthetic_share = comp[b + i] / comp[i];
    data_age = comp[2 * b + i] / comp[i];
  }

  // The update of a singular system A delta = rhs (rhs in delta on entry) by A's eigen-decomposition: eigenvalues at
  // or below d * DBL_EPSILON times the largest count as zero (a relative rank tolerance on X'X's eigenvalues). For OLS
  // the update moves the fit to the minimum-norm least-squares solution w = G^+ X'y = P w_ref + G^+ u (P the projection
  // on G's range), so delta = G^+ u - (I - P) w_ref. For ridge (A = G + lambda I, singular only for a lambda lost to
  // rounding) the same: along an eigenvector of G's null space the exact update (u_k - lambda w_ref,k) / (0 + lambda)
  // is -w_ref,k (u lies in G's range), as for OLS, and elsewhere rhs_k / (g_k + lambda).
  bool minimum_norm_update(const RegressionStep& s, const double* a, double* delta, const double* e_ref) const {
    const int d = s.d;
    const Eigen::Map<const RowMatrix> A(a, d, d);
    const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(A);
    if (eig.info() != Eigen::Success) return false;
    const Eigen::VectorXd& lambda = eig.eigenvalues();
    const Eigen::MatrixXd& V = eig.eigenvectors();
    const double tol = lambda.cwiseAbs().maxCoeff() * d * DBL_EPSILON;
    Eigen::Map<Eigen::VectorXd> out(delta, d);
    const Eigen::VectorXd coef = V.transpose() * out;
    Eigen::VectorXd w_ref(d);
    for (int k = 0; k < d; ++k) w_ref[k] = truth_.w0[k] + e_ref[k];
    const Eigen::VectorXd ref_coef = V.transpose() * w_ref;
    Eigen::VectorXd y(d);
    for (int k = 0; k < d; ++k) {
      if (lambda[k] > tol) y[k] = coef[k] / lambda[k];
      else y[k] = -ref_coef[k];
    }
    out = V * y;
    return out.allFinite();
  }

  RegressionBatchSpec spec_;
  RegressionTruth truth_;
  int threads_;
  std::vector<double> e_, s_model_, s_fit_, pool_g_, pool_u_, pool_v_, pool_n_, hist_e_, hist_s_;
  // accumulate under a filter: the pool's points, synthetic points and points x age, each aged by the decay.
  mutable std::vector<double> pool_comp_;
  std::vector<unsigned char> ok_;
  mutable std::vector<Scratch> scratch_;
  RegressionChains chains_;
  std::vector<WorkerRange> workers_;
};

}  // namespace

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

std::unique_ptr<RegressionBackend> make_regression_cpu(const RegressionBatchSpec& spec) {
  return std::make_unique<RegressionCpu>(spec);
}

}  // namespace ouro::kernels

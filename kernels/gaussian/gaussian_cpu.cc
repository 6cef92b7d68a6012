// The cpu backend's launch of the Gaussian family: OpenMP over chains, each
// chain's generation done by one thread with the shared math of
// kernels/gaussian/gaussian.h. Every chain is always handled whole by one thread in a
// fixed order, so results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/core/philox_batch.h"
#include "kernels/core/state.h"
#include "kernels/gaussian/gaussian_backend.h"

namespace ouro::kernels {

// Sums of z and z^2 over normals [i0, i1) of one 1-D stream. The same draws as
// accumulate_zsums, computed a tile at a time: Philox (philox_blocks), then
// Box-Muller and sums in simple loops that g++ vectorises; tile partial sums are combined with
// Neumaier's compensated summation so very large n loses nothing.
void cpu_zsums_1d(std::uint32_t seed, std::uint32_t chain, std::uint32_t generation, std::uint32_t stream,
                  std::int64_t i0, std::int64_t i1, double& zsum, double& zsq) {
  constexpr int kTile = 32;                                              // blocks per tile = 128 normals
  alignas(64) std::uint64_t w0[kTile], w1[kTile], w2[kTile], w3[kTile];  // 32-bit words in 64-bit lanes
  alignas(64) double z[4 * kTile];
  double s1 = 0.0, c1 = 0.0, s2 = 0.0, c2 = 0.0;
  auto neumaier = [](double& sum, double& comp, double x) {
    const double t = sum + x;
    comp += (std::abs(sum) >= std::abs(x)) ? (sum - t) + x : (x - t) + sum;
    sum = t;
  };
  const rng::PhiloxKeys keys(seed, chain);
  const std::int64_t last_block = (i1 - 1) >> 2;
  for (std::int64_t b0 = i0 >> 2; b0 <= last_block; b0 += kTile) {
    const int blocks = static_cast<int>(std::min<std::int64_t>(kTile, last_block - b0 + 1));
    // (A short last tile makes a whole tile's blocks and uses its first.)
    alignas(64) std::uint64_t index[kTile];
    for (int b = 0; b < kTile; ++b) index[b] = static_cast<std::uint64_t>(b0 + b);
    rng::philox_blocks<kTile>(index, 0, stream, generation, keys, w0, w1, w2, w3);
#pragma omp simd
    for (int b = 0; b < blocks; ++b) {
      box_muller_pair(w0[b], w1[b], z[4 * b], z[4 * b + 1]);
      box_muller_pair(w2[b], w3[b], z[4 * b + 2], z[4 * b + 3]);
    }
    const std::int64_t lo = std::max<std::int64_t>(i0 - 4 * b0, 0);
    const std::int64_t hi = std::min<std::int64_t>(i1 - 4 * b0, 4 * kTile);
    // Four explicit lanes combined in a fixed order, not an OpenMP simd
    // reduction: the order of a simd reduction follows the vector width the
    // compiler picked, which would make the sums differ between machines.
    // (GCC/Clang vector extension: four lanes whatever the instruction set.)
    typedef double Lanes __attribute__((vector_size(32)));
    Lanes a1 = {0.0, 0.0, 0.0, 0.0}, a2 = {0.0, 0.0, 0.0, 0.0};
    std::int64_t m = lo;
    for (; m + 4 <= hi; m += 4) {
      Lanes v;
      std::memcpy(&v, z + m, sizeof v);
      a1 += v;
      a2 += v * v;
    }
    for (int l = 0; m < hi; ++m, ++l) {
      a1[l] += z[m];
      a2[l] += z[m] * z[m];
    }
    neumaier(s1, c1, (a1[0] + a1[1]) + (a1[2] + a1[3]));
    neumaier(s2, c2, (a2[0] + a2[1]) + (a2[2] + a2[3]));
  }
  zsum += s1 + c1;
  zsq += s2 + c2;
}

namespace {

// A thread's working memory, reused across its chains: data.dedup's table and kept points, and the sample-based
// metrics' model sample and its k-NN radii.
struct Scratch {
  std::vector<std::int64_t> table;
  std::vector<double> kept_x;
  std::vector<double> points, radii;
};

class GaussianCpu final : public GaussianBackend {
 public:
  explicit GaussianCpu(const GaussianBatchSpec& spec) : spec_(spec) {
    const std::int64_t n = spec.batch;
    const int d = spec.truth.d;
    mu_.assign(n * d, 0.0);
    cov_.assign(n * d * d, 0.0);
    chol_.assign(n * d * d, 0.0);
    ok_.assign(n, 1);
    pool_mean_.assign(n * d, 0.0);
    pool_m2_.assign(n * d * d, 0.0);
    pool_comp_.assign(4 * n, 0.0);
    if (spec.regime == Regime::kAccumulateSubsample) {
      hist_mu_.assign((spec.generations + 1) * n * d, 0.0);
      hist_chol_.assign((spec.generations + 1) * n * d * d, 0.0);
      hist_kept_.assign((spec.generations + 1) * n, 0.0);
    }
    zsum_.assign(2 * n * d, 0.0);
    zsq_.assign(2 * n * d * d, 0.0);
    kept_.assign(3 * n, 0.0);
    threads_ = spec.threads > 0 ? spec.threads : omp_get_max_threads();
    scratch_.resize(threads_);
    heldout_ = spec_.heldout_side.view();
    chains_ = GaussianChains{n,
                             spec.chain_begin,
                             mu_.data(),
                             cov_.data(),
                             chol_.data(),
                             ok_.data(),
                             pool_mean_.data(),
                             pool_m2_.data(),
                             pool_comp_.data(),
                             hist_mu_.empty() ? nullptr : hist_mu_.data(),
                             hist_chol_.empty() ? nullptr : hist_chol_.data(),
                             hist_kept_.empty() ? nullptr : hist_kept_.data(),
                             zsum_.data(),
                             zsq_.data(),
                             kept_.data(),
                             nullptr};
  }

  void start(double* h_metrics) override {
    GaussianChains c = chains_;
    c.metrics = h_metrics;
    const std::int64_t n = spec_.batch;
    std::vector<WorkerRange> seen(threads_);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t i = 0; i < n; ++i) {
      note_chain(seen[omp_get_thread_num()], "omp-thread-" + std::to_string(omp_get_thread_num()),
                 spec_.chain_begin + i);
      start_chain(spec_.truth, c, i);
      sample_metrics_of(c, 0, i, scratch_[omp_get_thread_num()]);
    }
    workers_ = seen;
    generation_ = 0;
  }

  void advance(const GaussianStep& s, double* h_metrics) override {
    GaussianChains c = chains_;
    c.metrics = h_metrics;
    const std::int64_t n = spec_.batch;
    const int d = s.d;
    const int real = real_points_of(s.generation, s.samples, s.real_count);
    const auto gen = static_cast<std::uint32_t>(s.generation);
    const std::uint32_t real_gen = real_draw_generation(s.real_source, s.generation);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint32_t chain = c.chain0 + static_cast<std::uint32_t>(i);
      const bool subsample = s.regime == Regime::kAccumulateSubsample;
      // Under a filter the synthetic points are the kept candidates (one
      // chain's candidates in order: no tiling); under accumulate_subsample
      // only their count is used here (the subsample regenerates them).
      const bool verify = s.filtered() && s.samples > real;
      double* ss = c.zsum + (n + i) * d;
      double* sq = c.zsq + (n + i) * d * d;
      std::fill(ss, ss + d, 0.0);
      std::fill(sq, sq + d * d, 0.0);
      if (!subsample) {
        double* rs = c.zsum + i * d;
        double* rq = c.zsq + i * d * d;
        std::fill(rs, rs + d, 0.0);
        std::fill(rq, rq + d * d, 0.0);
        if (d == 1) {
          cpu_zsums_1d(s.seed, chain, real_gen, rng::kStreamRealDraw, 0, real, *rs, *rq);
          if (!verify) cpu_zsums_1d(s.seed, chain, gen, rng::kStreamSyntheticDraw, real, s.samples, *ss, *sq);
        } else {
          accumulate_zsums(s.seed, chain, real_gen, rng::kStreamRealDraw, d, 0, real, rs, rq);
          if (!verify) accumulate_zsums(s.seed, chain, gen, rng::kStreamSyntheticDraw, d, real, s.samples, ss, sq);
        }
      }
      Scratch& sc = scratch_[omp_get_thread_num()];
      if (s.dedup.on && s.samples > real) {
        sc.table.resize(dedup_table_size(s.samples - real));
        sc.kept_x.resize(static_cast<std::size_t>(s.samples - real) * d);
      }
      if (verify) {
        c.kept[i] = c.kept[n + i] = c.kept[2 * n + i] = 0.0;
        if (c.ok[i])  // a degenerate chain's model cannot be sampled
          filtered_zsums(s, chain, spec_.truth, c.mu + i * d, c.chol + i * d * d, real, s.samples - real,
                         sc.table.data(), sc.kept_x.data(), ss, sq, c.kept[i], c.kept[n + i], c.kept[2 * n + i]);
      }
      finish_chain(s, spec_.truth, c, i, sc.table.data(), sc.kept_x.data());
      sample_metrics_of(c, gen, i, sc);
    }
    generation_ = s.generation;
  }

  std::vector<WorkerRange> workers() const override { return workers_; }

  // The models, degenerate flags, pooled moments and model history (z-sums
  // are rebuilt every generation).
  void state(StateArchive& ar) override {
    ar.vec("mu", mu_);
    ar.vec("cov", cov_);
    ar.vec("chol", chol_);
    ar.vec("ok", ok_);
    ar.vec("pool_mean", pool_mean_);
    ar.vec("pool_m2", pool_m2_);
    ar.vec("pool_comp", pool_comp_);
    ar.vec("hist_mu", hist_mu_);
    ar.vec("hist_chol", hist_chol_);
    ar.vec("hist_kept", hist_kept_);
    ar.workers(workers_);
  }

  bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) override {
    const int d = spec_.truth.d;
    x.assign(static_cast<std::size_t>(count) * d, NAN);
    if (ok_[chain])
      gaussian_model_sample(spec_.seed, spec_.chain_begin + static_cast<std::uint32_t>(chain),
                            static_cast<std::uint32_t>(generation_), d, mu_.data() + chain * d,
                            chol_.data() + chain * d * d, count, x.data());
    return true;
  }
  int point_dim() const override { return spec_.truth.d; }

 private:
  // The sample-based metrics of chain i at generation t, with the thread's scratch.
  void sample_metrics_of(const GaussianChains& c, std::uint32_t t, std::int64_t i, Scratch& sc) {
    if (!spec_.sample_metrics) return;
    const std::int64_t n = spec_.samples;
    sc.points.resize(static_cast<std::size_t>(n) * spec_.truth.d);
    sc.radii.resize(n);
    gaussian_sample_metrics(spec_.seed, t, n, spec_.sample_metrics, heldout_, c, i, sc.points.data(), sc.radii.data());
  }

  GaussianBatchSpec spec_;
  int threads_;
  std::vector<double> mu_, cov_, chol_, pool_mean_, pool_m2_, pool_comp_, hist_mu_, hist_chol_, hist_kept_, zsum_, zsq_,
      kept_;
  std::vector<unsigned char> ok_;
  std::vector<Scratch> scratch_;
  GaussianChains chains_;
  HeldoutSide heldout_{};
  int generation_ = 0;  // the last generation done
  std::vector<WorkerRange> workers_;
};

}  // namespace

std::unique_ptr<GaussianBackend> make_gaussian_cpu(const GaussianBatchSpec& spec) {
  return std::make_unique<GaussianCpu>(spec);
}

}  // namespace ouro::kernels

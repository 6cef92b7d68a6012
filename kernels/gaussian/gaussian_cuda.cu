// The cuda backend's launch of the Gaussian family. The math is the shared
// code of kernels/gaussian/gaussian.h; only the parallel decomposition is written here:
//   zsums_kernel   one warp per chain, lanes split the generation's points,
//                  shuffle-reduce the z-sums (no sample is written to memory)
//   finish_kernel  one thread per chain: merge, fit, Cholesky, metrics
// Under a synthetic-data filter, filtered_kernel (one thread per chain, in
// slices under dedup) adds the synthetic points between the two (under
// accumulate_subsample, which draws no z-sums, it counts the kept points
// that finish_kernel's subsample then regenerates).
// A generation is two launches (three with a filter) and one copy of the metric block to the host;
// no per-chain launches and no host round-trips inside a generation. Under metrics.sample_based,
// sample_metrics_kernel (one thread per chain, in slices whose model samples fit the scratch budget)
// draws each chain's model sample and computes its sample-based metrics with the cpu's code
// (gaussian_sample_metrics), generation 0 included.
#include <cub/warp/warp_reduce.cuh>

#include <algorithm>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/cuda/sample_slices.cuh"
#include "kernels/gaussian/gaussian_backend.h"

namespace ouro::kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kThreadsPerBlock = 256;

__global__ void start_kernel(const GaussianTruth* tr, GaussianChains c) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < c.batch) start_chain(*tr, c, i);
}

__device__ std::int64_t imin(std::int64_t a, std::int64_t b) { return a < b ? a : b; }
__device__ std::int64_t imax(std::int64_t a, std::int64_t b) { return a > b ? a : b; }

// Sum over the 32 lanes of a warp (valid in lane 0), by CUB's warp reduction
// with the per-warp temporary storage it requires.
__device__ double warp_sum(double v) {
  using WarpReduce = cub::WarpReduce<double>;
  __shared__ typename WarpReduce::TempStorage storage[kThreadsPerBlock / kWarp];
  const double sum = WarpReduce(storage[threadIdx.x / kWarp]).Sum(v);
  __syncwarp();  // the storage is reused by the next call
  return sum;
}

// Lane `lane` of a chain's warp takes points [lane*chunk, (lane+1)*chunk) of
// the generation, split at `real` between the real and the synthetic stream.
__global__ void zsums_kernel(GaussianStep s, GaussianChains c, int real) {
  const std::int64_t i = (static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (i >= c.batch) return;  // whole warps exit together
  const std::uint32_t chain = c.chain0 + static_cast<std::uint32_t>(i);
  const auto gen = static_cast<std::uint32_t>(s.generation);
  const std::uint32_t real_gen = real_draw_generation(s.real_source, s.generation);
  const std::int64_t chunk = (s.samples + kWarp - 1) / kWarp;
  const std::int64_t p0 = imin(lane * chunk, s.samples);
  const std::int64_t p1 = imin(p0 + chunk, s.samples);
  const std::int64_t r0 = p0, r1 = imin(p1, real);
  // Under a filter the synthetic points are left to filtered_kernel.
  const std::int64_t y0 = imax(p0, real), y1 = s.filtered() ? y0 : p1;
  const int d = s.d;
  if (d == 1) {
    double rs = 0.0, rq = 0.0, ys = 0.0, yq = 0.0;
    accumulate_zsums_1d(s.seed, chain, real_gen, rng::kStreamRealDraw, r0, r1, rs, rq);
    accumulate_zsums_1d(s.seed, chain, gen, rng::kStreamSyntheticDraw, y0, y1, ys, yq);
    rs = warp_sum(rs);
    rq = warp_sum(rq);
    ys = warp_sum(ys);
    yq = warp_sum(yq);
    if (lane == 0) {
      c.zsum[i] = rs;
      c.zsq[i] = rq;
      c.zsum[c.batch + i] = ys;
      c.zsq[c.batch + i] = yq;
    }
    return;
  }
  for (int part = 0; part < 2; ++part) {
    double sum[OURO_MAX_DIM] = {}, sq[OURO_MAX_DIM * OURO_MAX_DIM] = {};
    if (part == 0) accumulate_zsums(s.seed, chain, real_gen, rng::kStreamRealDraw, d, r0, r1, sum, sq);
    else accumulate_zsums(s.seed, chain, gen, rng::kStreamSyntheticDraw, d, y0, y1, sum, sq);
    const std::int64_t row = part * c.batch + i;
    for (int a = 0; a < d; ++a) {
      const double v = warp_sum(sum[a]);
      if (lane == 0) c.zsum[row * d + a] = v;
    }
    for (int a = 0; a < d * d; ++a) {
      const double v = warp_sum(sq[a]);
      if (lane == 0) c.zsq[row * d * d + a] = v;
    }
  }
}

// The filtered synthetic points (verifier, dedup, tail upsampling): one
// thread per chain of chains [first, first + count) examines its candidates
// in order (filtered_zsums), writing the synthetic z-sums and the kept and
// drawn counts and total weight. Under dedup, thread `local` uses table and
// point scratch `local` of the slice.
__global__ void filtered_kernel(GaussianStep s, const GaussianTruth* tr, GaussianChains c, int real, std::int64_t first,
                                std::int64_t count, std::int64_t* tables, double* kept_x) {
  const std::int64_t local = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (local >= count) return;
  const std::int64_t i = first + local;
  const int d = s.d;
  const std::int64_t need = s.samples - real;
  std::int64_t* table = s.dedup.on ? tables + local * dedup_table_size(need) : nullptr;
  double* points = s.dedup.on ? kept_x + local * need * d : nullptr;
  double sum[OURO_MAX_DIM] = {}, sq[OURO_MAX_DIM * OURO_MAX_DIM] = {};
  c.kept[i] = c.kept[c.batch + i] = c.kept[2 * c.batch + i] = 0.0;
  if (c.ok[i])  // a degenerate chain's model cannot be sampled
    filtered_zsums(s, c.chain0 + static_cast<std::uint32_t>(i), *tr, c.mu + i * d, c.chol + i * d * d, real, need,
                   table, points, sum, sq, c.kept[i], c.kept[c.batch + i], c.kept[2 * c.batch + i]);
  const std::int64_t row = c.batch + i;
  for (int a = 0; a < d; ++a) c.zsum[row * d + a] = sum[a];
  for (int a = 0; a < d * d; ++a) c.zsq[row * d * d + a] = sq[a];
}

// One thread per chain of chains [first, first + count); under
// accumulate_subsample with dedup, thread `local` uses scratch `local` of the
// slice to regenerate filtered generations.
__global__ void finish_kernel(GaussianStep s, const GaussianTruth* tr, GaussianChains c, std::int64_t first,
                              std::int64_t count, std::int64_t* tables, double* kept_x) {
  const std::int64_t local = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (local >= count) return;
  const std::int64_t need = s.samples - real_points_of(s.generation, s.samples, s.real_count);
  const bool scratch = s.regime == Regime::kAccumulateSubsample && s.dedup.on && need > 0;
  finish_chain(s, *tr, c, first + local, scratch ? tables + local * dedup_table_size(need) : nullptr,
               scratch ? kept_x + local * need * s.d : nullptr);
}

// The sample-based metrics of chains [first, first + count) at `generation`, one thread per chain, thread `local`
// drawing its model sample into slot `local` of the slice's points and radii.
__global__ void sample_metrics_kernel(std::uint32_t seed, std::uint32_t generation, std::int64_t n, unsigned mask,
                                      HeldoutSide h, GaussianChains c, std::int64_t first, std::int64_t count,
                                      double* points, double* radii) {
  const std::int64_t local = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (local >= count) return;
  gaussian_sample_metrics(seed, generation, n, mask, h, c, first + local, points + local * n * h.d, radii + local * n);
}

class GaussianCuda final : public GaussianBackend {
 public:
  explicit GaussianCuda(const GaussianBatchSpec& spec) : spec_(spec) {
    const std::size_t n = static_cast<std::size_t>(spec.batch);
    const std::size_t d = spec.truth.d;
    truth_ = DeviceBuffer<GaussianTruth>(1);
    OURO_CUDA_CHECK(cudaMemcpy(truth_.get(), &spec.truth, sizeof(GaussianTruth), cudaMemcpyHostToDevice));
    mu_ = DeviceBuffer<double>(n * d);
    cov_ = DeviceBuffer<double>(n * d * d);
    chol_ = DeviceBuffer<double>(n * d * d);
    ok_ = DeviceBuffer<unsigned char>(n);
    pool_mean_ = DeviceBuffer<double>(n * d);
    pool_m2_ = DeviceBuffer<double>(n * d * d);
    pool_comp_ = DeviceBuffer<double>(4 * n);
    if (spec.regime == Regime::kAccumulateSubsample) {
      hist_mu_ = DeviceBuffer<double>((spec.generations + 1) * n * d);
      hist_chol_ = DeviceBuffer<double>((spec.generations + 1) * n * d * d);
      hist_kept_ = DeviceBuffer<double>((spec.generations + 1) * n);
      OURO_CUDA_CHECK(cudaMemset(hist_kept_.get(), 0, sizeof(double) * (spec.generations + 1) * n));
    }
    zsum_ = DeviceBuffer<double>(2 * n * d);
    zsq_ = DeviceBuffer<double>(2 * n * d * d);
    kept_ = DeviceBuffer<double>(3 * n);
    rows_ = gaussian_metric_rows(spec.sample_metrics);
    metrics_ = DeviceBuffer<double>(rows_ * n);
    chains_ = GaussianChains{spec.batch,       spec.chain_begin, mu_.get(),        cov_.get(),
                             chol_.get(),      ok_.get(),        pool_mean_.get(), pool_m2_.get(),
                             pool_comp_.get(), hist_mu_.get(),   hist_chol_.get(), hist_kept_.get(),
                             zsum_.get(),      zsq_.get(),       kept_.get(),      metrics_.get()};
    if (spec.sample_metrics) {  // the held-out side on the device
      const HeldoutSideStore& hs = spec.heldout_side;
      heldout_x_ = DeviceBuffer<double>(hs.x.size());
      heldout_r2_ = DeviceBuffer<double>(hs.radius2.size());
      OURO_CUDA_CHECK(cudaMemcpy(heldout_x_.get(), hs.x.data(), hs.x.size() * sizeof(double), cudaMemcpyHostToDevice));
      OURO_CUDA_CHECK(
          cudaMemcpy(heldout_r2_.get(), hs.radius2.data(), hs.radius2.size() * sizeof(double), cudaMemcpyHostToDevice));
      heldout_ = HeldoutSide{heldout_x_.get(), hs.m, hs.d, heldout_r2_.get(), hs.within};
    }
  }

  void start(double* h_metrics) override {
    start_kernel<<<blocks(spec_.batch, kThreads), kThreads>>>(truth_.get(), chains_);
    OURO_CUDA_CHECK(cudaGetLastError());
    generation_ = 0;
    sample_metrics(0);
    copy_metrics(h_metrics);
  }

  void advance(const GaussianStep& s, double* h_metrics) override {
    const int real = real_points_of(s.generation, s.samples, s.real_count);
    const bool subsample = s.regime == Regime::kAccumulateSubsample;
    if (!subsample) {
      zsums_kernel<<<blocks(spec_.batch * kWarp, kThreads), kThreads>>>(s, chains_, real);
      OURO_CUDA_CHECK(cudaGetLastError());
    }
    // Dedup's scratch is per chain: such launches go in slices.
    const std::int64_t slice = dedup_slice(s, real);
    if (s.filtered() && s.samples > real)
      for (std::int64_t first = 0; first < spec_.batch; first += slice) {
        const std::int64_t count = std::min(slice, spec_.batch - first);
        filtered_kernel<<<blocks(count, kThreads), kThreads>>>(s, truth_.get(), chains_, real, first, count,
                                                               table_.get(), kept_x_.get());
        OURO_CUDA_CHECK(cudaGetLastError());
      }
    const std::int64_t finish_slice = subsample ? slice : spec_.batch;
    for (std::int64_t first = 0; first < spec_.batch; first += finish_slice) {
      const std::int64_t count = std::min(finish_slice, spec_.batch - first);
      finish_kernel<<<blocks(count, kThreads), kThreads>>>(s, truth_.get(), chains_, first, count, table_.get(),
                                                           kept_x_.get());
      OURO_CUDA_CHECK(cudaGetLastError());
    }
    generation_ = s.generation;
    sample_metrics(static_cast<std::uint32_t>(s.generation));
    copy_metrics(h_metrics);
  }

  // One chain's model on the host (a copy of its mean, factor and flag), drawn by the cpu's code.
  bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) override {
    const int d = spec_.truth.d;
    std::vector<double> mu(d), chol(static_cast<std::size_t>(d) * d);
    unsigned char ok = 0;
    OURO_CUDA_CHECK(cudaMemcpy(mu.data(), mu_.get() + chain * d, d * sizeof(double), cudaMemcpyDeviceToHost));
    OURO_CUDA_CHECK(
        cudaMemcpy(chol.data(), chol_.get() + chain * d * d, d * d * sizeof(double), cudaMemcpyDeviceToHost));
    OURO_CUDA_CHECK(cudaMemcpy(&ok, ok_.get() + chain, 1, cudaMemcpyDeviceToHost));
    x.assign(static_cast<std::size_t>(count) * d, NAN);
    if (ok)
      gaussian_model_sample(spec_.seed, spec_.chain_begin + static_cast<std::uint32_t>(chain),
                            static_cast<std::uint32_t>(generation_), d, mu.data(), chol.data(), count, x.data());
    return true;
  }
  int point_dim() const override { return spec_.truth.d; }

  std::vector<WorkerRange> workers() const override {
    return {WorkerRange{cuda_worker_name(), spec_.chain_begin, spec_.chain_begin + spec_.batch - 1, spec_.batch}};
  }

  void state(StateArchive& ar) override {
    archive(ar, "mu", mu_);
    archive(ar, "cov", cov_);
    archive(ar, "chol", chol_);
    archive(ar, "ok", ok_);
    archive(ar, "pool_mean", pool_mean_);
    archive(ar, "pool_m2", pool_m2_);
    archive(ar, "pool_comp", pool_comp_);
    archive(ar, "hist_mu", hist_mu_);
    archive(ar, "hist_chol", hist_chol_);
    archive(ar, "hist_kept", hist_kept_);
  }

 private:
  static constexpr int kThreads = kThreadsPerBlock;
  // The chains per launch that need dedup's scratch (all of them without
  // dedup): as many as cuda_scratch_bytes() holds, the scratch allocated for
  // that many.
  std::int64_t dedup_slice(const GaussianStep& s, int real) {
    const std::int64_t need = s.samples - real;
    if (!s.dedup.on || need <= 0) return spec_.batch;
    const double per_chain = 8.0 * (dedup_table_size(need) + static_cast<double>(need) * s.d);
    const std::int64_t slice = std::max<std::int64_t>(
        1, std::min<std::int64_t>(spec_.batch, static_cast<std::int64_t>(cuda_scratch_bytes() / per_chain)));
    const std::size_t slots = static_cast<std::size_t>(slice * dedup_table_size(need));
    const std::size_t coords = static_cast<std::size_t>(slice * need * s.d);
    if (table_.size() < slots) table_ = DeviceBuffer<std::int64_t>(slots);
    if (kept_x_.size() < coords) kept_x_ = DeviceBuffer<double>(coords);
    return slice;
  }
  // The sample-based metrics of every chain at `generation`, in slices whose model samples (and their radii) fit
  // cuda_scratch_bytes().
  void sample_metrics(std::uint32_t generation) {
    if (!spec_.sample_metrics) return;
    const std::int64_t n = spec_.samples;
    const int d = spec_.truth.d;
    slices_.run(spec_.batch, n, d, [&](std::int64_t first, std::int64_t count, double* points, double* radii) {
      sample_metrics_kernel<<<blocks(count, kThreads), kThreads>>>(spec_.seed, generation, n, spec_.sample_metrics,
                                                                   heldout_, chains_, first, count, points, radii);
      OURO_CUDA_CHECK(cudaGetLastError());
    });
  }
  static unsigned blocks(std::int64_t threads, int per_block) {
    return static_cast<unsigned>((threads + per_block - 1) / per_block);
  }
  void copy_metrics(double* h_metrics) {
    OURO_CUDA_CHECK(
        cudaMemcpy(h_metrics, metrics_.get(), sizeof(double) * rows_ * spec_.batch, cudaMemcpyDeviceToHost));
  }

  GaussianBatchSpec spec_;
  int rows_ = 0;  // of the metric block
  DeviceBuffer<GaussianTruth> truth_;
  DeviceBuffer<double> mu_, cov_, chol_, pool_mean_, pool_m2_, pool_comp_, hist_mu_, hist_chol_, hist_kept_, zsum_,
      zsq_, kept_, metrics_, kept_x_;
  DeviceBuffer<std::int64_t> table_;  // dedup's scratch (dedup_slice)
  DeviceBuffer<unsigned char> ok_;
  // The sample-based metrics' held-out side, model samples and radii (sample_metrics), and the held-out side's view
  // of them on the device.
  DeviceBuffer<double> heldout_x_, heldout_r2_;
  SampleSlices slices_;  // the model samples of the sample-based metrics
  HeldoutSide heldout_{};
  int generation_ = 0;  // the last generation done
  GaussianChains chains_{};
};

}  // namespace

std::unique_ptr<GaussianBackend> make_gaussian_cuda(const GaussianBatchSpec& spec) {
  return std::make_unique<GaussianCuda>(spec);
}

}  // namespace ouro::kernels

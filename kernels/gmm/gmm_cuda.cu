// The cuda backend's launch of the mixture family. The math and EM's control
// flow are the shared code of kernels/gmm/gmm.h; only the parallel decomposition
// is written here: one block of kEmLanes threads per chain, thread l running
// lane l of every E-step (em_lane_pass), warp shuffles and the fixed
// four-warp combination reducing the lanes in the order of em_reduce_lanes,
// the M-step and k-means++ seeding on thread 0 with the parameters in shared
// memory. One launch per generation (per slice of chains whose training sets
// fit the scratch budget), one copy of the metric block to the host. Under
// metrics.sample_based, sample_metrics_kernel (one thread per chain, in slices
// whose model samples fit the scratch budget) then draws each chain's model
// sample and computes its sample-based metrics with the cpu's code
// (gmm_sample_metrics), generation 0 included.
//
// This is the per-thread path for small d (d <= kGmmMaxDim = 8): each thread
// keeps its lane's statistics in an array sized by a template bound on their
// count (indexed at run time, so it lives in local memory, cached in L1).
// ptxas reports 8 KB of stack per thread for the small bounds (the
// quadratic-form workspaces of the metrics, inlined), 15 KB for the largest.
// Not yet done: a cuBLAS batched-GEMM E-step for large d, k-means++ seeding
// and Algorithm S parallel over the block (thread 0 runs them alone).
#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/cuda/sample_slices.cuh"
#include "kernels/gmm/gmm_backend.h"

namespace ouro::kernels {
namespace {

constexpr int kMaxStats = kGmmMaxComponents * (1 + kGmmMaxDim + kGmmMaxDim * kGmmMaxDim) + 1;

// A chain is a block: single steps run on thread 0 with the result broadcast
// through shared memory; copies are strided over the block.
struct BlockPolicy {
  int* flag;  // shared
  template <class F>
  __device__ bool single(F&& f) const {
    __syncthreads();  // every thread is done with what f may overwrite (and with *flag)
    if (threadIdx.x == 0) *flag = f() ? 1 : 0;
    __syncthreads();
    return *flag != 0;
  }
  __device__ void copy(double* dst, const double* src, int n) const {
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
    __syncthreads();
  }
};

// out[s] = the lanes' acc[s] combined in em_reduce_lanes' order: a warp's
// shuffle-down tree (lane l += lane l + h, h = 16 .. 1), then
// (w0 + w1) + (w2 + w3). parts: shared, 4 * S doubles.
__device__ void block_reduce(int S, const double* acc, double* parts, double* out) {
  const int lane = threadIdx.x & (kEmWarp - 1), warp = threadIdx.x / kEmWarp;
  for (int s = 0; s < S; ++s) {
    double v = acc[s];
    for (int h = kEmWarp / 2; h >= 1; h >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, h);
    if (lane == 0) parts[warp * S + s] = v;
  }
  __syncthreads();
  for (int s = threadIdx.x; s < S; s += blockDim.x)
    out[s] = (parts[s] + parts[S + s]) + (parts[2 * S + s] + parts[3 * S + s]);
  __syncthreads();
}

template <int MaxS>
struct BlockEStep {
  bool diag;
  double* parts;    // shared, 4 * S
  const double* W;  // per point weights, or null
  __device__ void operator()(LanePass mode, const GmmCView& m, const double* X, std::int64_t count,
                             double* stats) const {
    double acc[MaxS];
    __syncthreads();  // the parameters in shared memory are final
    em_lane_pass(mode, m, diag, X, W, count, threadIdx.x, acc);
    block_reduce(em_stats_size(m.K, m.d), acc, parts, stats);
  }
};

// Everything the generation kernel reads or writes (device pointers).
struct GmmDevice {
  const GmmTruth* truth;
  const double* heldout;
  std::int64_t heldout_count;
  double* params;         // [batch][P]   current fit
  double* hist;           // [generations][batch][P]  accumulate regimes
  double* best;           // [batch][P]   scratch: best restart
  unsigned char* failed;  // [batch]
  double* metrics;        // [M][batch]
  double* x;              // [slice][train_max][d]   training sets
  double* w;              // [slice][train_max]      their weights (data.tail_upsample, data.age_decay)
  std::int64_t* pos;      // [slice][pos_stride]      subsample positions (filters: where generations start)
  std::int64_t* table;    // [slice][dedup_table_size(samples)]  dedup's tables
  std::int64_t batch, train_max, pos_stride;
  std::uint32_t chain0;
  int K, d, samples, real_count, generations;
  std::uint32_t seed;
  Regime regime;
  EmSettings em;
  RealSource real_source;
  GmmVerifier verifier;
  GmmWeighting weighting;
  Dedup dedup;
};

__global__ void init_kernel(double* params, const double* first, int P, std::int64_t batch) {
  const std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < batch * P) params[i] = first[i % P];
}

template <int MaxS>
__global__ void __launch_bounds__(kEmLanes) generation_kernel(GmmDevice g, int t, std::int64_t first) {
  const std::int64_t i = first + blockIdx.x;
  if (i >= g.batch) return;  // uniform over the block
  extern __shared__ double shared[];
  __shared__ int flag;
  __shared__ double composition[3];  // synthetic share, data age, draws per kept point
  __shared__ std::int64_t train_count;
  __shared__ double weight_total;
  const int K = g.K, d = g.d, P = gmm_block_size(K, d), S = em_stats_size(K, d);
  double* work = shared;
  double* stats = work + P;
  double* parts = stats + S;
  const GmmTruth& tr = *g.truth;
  double* params = g.params + i * P;
  const std::uint32_t chain = g.chain0 + static_cast<std::uint32_t>(i);
  if (g.failed[i]) {  // a failed chain stays failed
    if (threadIdx.x == 0)
      gmm_metrics(tr, gmm_view(K, d, static_cast<const double*>(params)), K, true, 0, false, 0, 0, 0, 0, g.metrics + i,
                  g.batch);
    return;
  }
  GmmStep s{g.seed, K, d, g.samples, g.real_count, t, g.regime, g.real_source, {}, {}, {}};
  s.verifier = g.verifier;
  s.weighting = g.weighting;
  s.dedup = g.dedup;
  auto model_of = [&](int gen) -> const double* {
    return s.regime == Regime::kReplace ? params : g.hist + (static_cast<std::int64_t>(gen) * g.batch + i) * P;
  };

  // The training set, with its frequency weights (data.tail_upsample,
  // data.age_decay; summed serially on thread 0 in point order, as on the
  // cpu) or none.
  double* X = g.x + static_cast<std::int64_t>(blockIdx.x) * g.train_max * d;
  std::int64_t* pos = g.pos + static_cast<std::int64_t>(blockIdx.x) * g.pos_stride;
  double* W = s.weighting.on() ? g.w + static_cast<std::int64_t>(blockIdx.x) * g.train_max : nullptr;
  if (s.filtered()) {
    // data.verifier, data.dedup: thread 0 examines every generation's
    // candidates in order (gmm_filtered_train).
    if (threadIdx.x == 0) {
      std::int64_t* table = g.table + static_cast<std::int64_t>(blockIdx.x) * dedup_table_size(g.samples);
      const GmmFilteredSet set = gmm_filtered_train(s, chain, tr, model_of, X, W, pos, table);
      train_count = set.m;
      weight_total = set.total;
      composition[0] = set.synthetic_share;
      composition[1] = set.data_age;
      composition[2] = set.draws_per_kept;
    }
    __syncthreads();
  } else {
    const std::int64_t full = gmm_train_size(s);
    const bool subsample = s.regime == Regime::kAccumulateSubsample;
    if (threadIdx.x == 0) {
      if (subsample) gmm_subsample_positions(s, chain, pos, composition[0], composition[1]);
      else
        regime_composition(s.regime, s.samples, s.real_count, t, s.weighting.age_decay, composition[0], composition[1]);
      composition[2] = 1.0;
      train_count = full;
    }
    __syncthreads();
    for (std::int64_t p = threadIdx.x; p < full; p += blockDim.x)
      gmm_pool_point(s, chain, subsample ? pos[p] : gmm_pool_position(s, p), tr, model_of, X + p * d);
    __syncthreads();
    if (threadIdx.x == 0)
      weight_total = W ? gmm_point_weights(s, tr, X, full, subsample ? pos : nullptr, W) : static_cast<double>(full);
    __syncthreads();
  }
  const std::int64_t m = train_count;
  if (m == 0) {  // the verifier kept nothing and there are no real points: nothing to fit
    if (threadIdx.x == 0) {
      g.failed[i] = 1;
      gmm_metrics(tr, gmm_view(K, d, static_cast<const double*>(params)), K, true, 0, false, 0, 0, 0, 0, g.metrics + i,
                  g.batch);
    }
    return;
  }

  // EM (kernels/gmm/gmm.h, em_fit), restart 0 warm when the previous generation
  // has K components.
  const BlockPolicy policy{&flag};
  const BlockEStep<MaxS> estep{g.em.diag, parts, W};
  const bool warm_ok = g.em.init == EmInit::kWarm && (t > 1 || K == tr.K0);
  bool have = false;
  const EmOutcome best = em_fit(g.seed, chain, static_cast<std::uint32_t>(t), g.em, warm_ok, params, work,
                                g.best + i * P, X, m, weight_total, stats, estep, policy, K, d, have);
  if (!have) {
    if (threadIdx.x == 0) {
      g.failed[i] = 1;
      gmm_metrics(tr, gmm_view(K, d, static_cast<const double*>(params)), K, true, 0, false, 0, 0, 0, 0, g.metrics + i,
                  g.batch);
    }
    return;
  }
  policy.copy(params, g.best + i * P, P);
  if (s.regime != Regime::kReplace && t < g.generations)
    policy.copy(g.hist + (static_cast<std::int64_t>(t) * g.batch + i) * P, params, P);
  policy.copy(work, params, P);

  // Cross-entropy on the held-out set, in the same lane order as the cpu.
  const GmmCView fit = gmm_view(K, d, static_cast<const double*>(work));
  const double v = lane_loglik(fit, g.em.diag, g.heldout, g.heldout_count, threadIdx.x);
  block_reduce(1, &v, parts, stats);
  if (threadIdx.x == 0)
    gmm_metrics(tr, fit, K, false, best.iters, !best.converged, -stats[0] / static_cast<double>(g.heldout_count),
                -best.loglik, composition[0], composition[1], g.metrics + i, g.batch);
  if (threadIdx.x == 0) g.metrics[kGmmDrawsPerKept * g.batch + i] = composition[2];
}

// The sample-based metrics of chains [first, first + count) at generation t (of the truth at 0), one thread per
// chain, thread `local` drawing its model sample into slot `local` of the slice's points and radii. A failed chain's
// slots stay NaN.
__global__ void sample_metrics_kernel(const GmmTruth* truth, const double* params, const unsigned char* failed,
                                      double* metrics, std::int64_t batch, std::uint32_t chain0, int K,
                                      std::uint32_t seed, int t, std::int64_t n, unsigned mask, HeldoutSide h,
                                      std::int64_t first, std::int64_t count, double* points, double* radii) {
  const std::int64_t local = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (local >= count) return;
  const std::int64_t i = first + local;
  const int d = h.d;
  const GmmCView m = t == 0 ? truth_view(*truth) : gmm_view(K, d, params + i * gmm_block_size(K, d));
  gmm_sample_metrics(seed, chain0 + static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(t),
                     t > 0 && failed[i] ? nullptr : &m, *truth, K, n, mask, h, points + local * n * d,
                     radii + local * n, metrics + i, batch);
}

class GmmCuda final : public GmmBackend {
 public:
  explicit GmmCuda(const GmmBatchSpec& spec) : spec_(spec) {
    const int K = spec.K, d = spec.truth.d;
    const std::int64_t n = spec.batch;
    P_ = gmm_block_size(K, d);
    M_ = gmm_metric_rows(K, spec.sample_metrics);
    // Room for the training set; under a filter, accumulate_subsample
    // materialises its whole pool before choosing from it (gmm_filtered_train).
    const bool filtered = spec.verifier.on || spec.dedup.on;
    train_max_ = spec.regime == Regime::kAccumulate || (filtered && spec.regime == Regime::kAccumulateSubsample)
                     ? static_cast<std::int64_t>(spec.generations) * spec.samples
                     : spec.samples;
    pos_stride_ = std::max<std::int64_t>(spec.samples, spec.generations + 1);
    slice_ = std::max<std::int64_t>(
        1, std::min<std::int64_t>(
               n, static_cast<std::int64_t>(cuda_scratch_bytes() /
                                            (8.0 * (train_max_ * (d + 1) + pos_stride_ +
                                                    (spec.dedup.on ? dedup_table_size(spec.samples) : 0))))));
    truth_ = DeviceBuffer<GmmTruth>(1);
    OURO_CUDA_CHECK(cudaMemcpy(truth_.get(), &spec.truth, sizeof(GmmTruth), cudaMemcpyHostToDevice));
    heldout_ = DeviceBuffer<double>(spec.heldout.size());
    OURO_CUDA_CHECK(
        cudaMemcpy(heldout_.get(), spec.heldout.data(), spec.heldout.size() * sizeof(double), cudaMemcpyHostToDevice));
    params_ = DeviceBuffer<double>(n * P_);
    best_ = DeviceBuffer<double>(n * P_);
    if (spec.regime != Regime::kReplace)
      hist_ = DeviceBuffer<double>(static_cast<std::size_t>(spec.generations) * n * P_);
    failed_ = DeviceBuffer<unsigned char>(n);
    OURO_CUDA_CHECK(cudaMemset(failed_.get(), 0, n));
    metrics_ = DeviceBuffer<double>(static_cast<std::size_t>(M_) * n);
    x_ = DeviceBuffer<double>(slice_ * train_max_ * d);
    if (spec.weighting.on()) w_ = DeviceBuffer<double>(slice_ * train_max_);
    pos_ = DeviceBuffer<std::int64_t>(slice_ * pos_stride_);
    if (spec.dedup.on) table_ = DeviceBuffer<std::int64_t>(slice_ * dedup_table_size(spec.samples));
    if (spec.sample_metrics) {  // the held-out side on the device
      const HeldoutSideStore& hs = spec.heldout_side;
      heldout_x_ = DeviceBuffer<double>(hs.x.size());
      heldout_r2_ = DeviceBuffer<double>(hs.radius2.size());
      OURO_CUDA_CHECK(cudaMemcpy(heldout_x_.get(), hs.x.data(), hs.x.size() * sizeof(double), cudaMemcpyHostToDevice));
      OURO_CUDA_CHECK(
          cudaMemcpy(heldout_r2_.get(), hs.radius2.data(), hs.radius2.size() * sizeof(double), cudaMemcpyHostToDevice));
      side_ = HeldoutSide{heldout_x_.get(), hs.m, hs.d, heldout_r2_.get(), hs.within};
    }
  }

  void start(double* h_metrics) override {
    // Every chain starts at the truth: its metrics are computed once on the
    // host with the shared code (the same lane order), then copied.
    const GmmTruth& tr = spec_.truth;
    const int d = tr.d;
    std::vector<double> lanes(kEmLanes);
    const int rows = gmm_num_metrics(spec_.K);  // (the sample-based rows below)
    std::vector<double> first(rows);
    gmm_truth_metrics(tr, spec_.K, spec_.heldout.data(), static_cast<std::int64_t>(spec_.heldout.size() / d),
                      lanes.data(), first.data());
    for (int m = 0; m < rows; ++m) std::fill(h_metrics + m * spec_.batch, h_metrics + (m + 1) * spec_.batch, first[m]);
    if (spec_.K == tr.K0) {
      std::vector<double> warm(P_);
      gmm_warm_start_block(tr, spec_.em.diag, warm.data());
      DeviceBuffer<double> first(P_);
      OURO_CUDA_CHECK(cudaMemcpy(first.get(), warm.data(), P_ * sizeof(double), cudaMemcpyHostToDevice));
      const std::int64_t total = spec_.batch * P_;
      init_kernel<<<static_cast<unsigned>((total + 255) / 256), 256>>>(params_.get(), first.get(), P_, spec_.batch);
      OURO_CUDA_CHECK(cudaGetLastError());
      OURO_CUDA_CHECK(cudaDeviceSynchronize());
    }
    OURO_CUDA_CHECK(cudaDeviceSynchronize());
    generation_ = 0;
    if (spec_.sample_metrics) {  // each chain's own sample of the truth: its rows of the device block, copied over
      sample_metrics(0);
      const std::size_t at = static_cast<std::size_t>(gmm_sample_row(spec_.K, 0)) * spec_.batch;
      OURO_CUDA_CHECK(cudaMemcpy(h_metrics + at, metrics_.get() + at, kSampleMetricCount * spec_.batch * sizeof(double),
                                 cudaMemcpyDeviceToHost));
    }
  }

  void advance(int generation, double* h_metrics) override {
    const int S = em_stats_size(spec_.K, spec_.truth.d);
    if (S <= 32) launch<32>(generation);
    else if (S <= 128) launch<128>(generation);
    else launch<kMaxStats>(generation);
    generation_ = generation;
    sample_metrics(generation);
    OURO_CUDA_CHECK(cudaMemcpy(h_metrics, metrics_.get(), static_cast<std::size_t>(M_) * spec_.batch * sizeof(double),
                               cudaMemcpyDeviceToHost));
  }

  std::vector<WorkerRange> workers() const override {
    return {WorkerRange{cuda_worker_name(), spec_.chain_begin,
                        static_cast<std::int64_t>(spec_.chain_begin) + spec_.batch - 1, spec_.batch}};
  }

  void state(StateArchive& ar) override {
    archive(ar, "params", params_);
    archive(ar, "hist", hist_);
    archive(ar, "failed", failed_);
  }

  // One chain's model on the host (a copy of its parameters and flag; the truth at generation 0), drawn by the cpu's
  // code.
  bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) override {
    const int d = spec_.truth.d;
    x.assign(static_cast<std::size_t>(count) * d, NAN);
    const std::uint32_t id = spec_.chain_begin + static_cast<std::uint32_t>(chain);
    const auto gen = static_cast<std::uint32_t>(generation_);
    if (generation_ == 0) {
      truth_model_sample(spec_.seed, id, spec_.truth, count, x.data());
      return true;
    }
    unsigned char failed = 1;
    std::vector<double> params(P_);
    OURO_CUDA_CHECK(cudaMemcpy(&failed, failed_.get() + chain, 1, cudaMemcpyDeviceToHost));
    OURO_CUDA_CHECK(cudaMemcpy(params.data(), params_.get() + chain * P_, P_ * sizeof(double), cudaMemcpyDeviceToHost));
    if (!failed)
      gmm_model_sample(spec_.seed, id, gen, gmm_view(spec_.K, d, static_cast<const double*>(params.data())), count,
                       x.data());
    return true;
  }
  int point_dim() const override { return spec_.truth.d; }

 private:
  // The sample-based metrics of every chain at generation t into the device's metric block, in slices whose model
  // samples (and their radii) fit cuda_scratch_bytes().
  void sample_metrics(int t) {
    if (!spec_.sample_metrics) return;
    const std::int64_t n = spec_.samples;
    const int d = spec_.truth.d;
    slices_.run(spec_.batch, n, d, [&](std::int64_t first, std::int64_t count, double* points, double* radii) {
      sample_metrics_kernel<<<static_cast<unsigned>((count + 127) / 128), 128>>>(
          truth_.get(), params_.get(), failed_.get(), metrics_.get(), spec_.batch, spec_.chain_begin, spec_.K,
          spec_.seed, t, n, spec_.sample_metrics, side_, first, count, points, radii);
      OURO_CUDA_CHECK(cudaGetLastError());
    });
    OURO_CUDA_CHECK(cudaDeviceSynchronize());
  }

  template <int MaxS>
  void launch(int generation) {
    const int S = em_stats_size(spec_.K, spec_.truth.d);
    const std::size_t shared = static_cast<std::size_t>(P_ + 5 * S) * sizeof(double);
    if (shared > 48 * 1024)
      OURO_CUDA_CHECK(cudaFuncSetAttribute(generation_kernel<MaxS>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared)));
    const GmmDevice g{
        truth_.get(),      heldout_.get(),   static_cast<std::int64_t>(spec_.heldout.size() / spec_.truth.d),
        params_.get(),     hist_.get(),      best_.get(),
        failed_.get(),     metrics_.get(),   x_.get(),
        w_.get(),          pos_.get(),       table_.get(),
        spec_.batch,       train_max_,       pos_stride_,
        spec_.chain_begin, spec_.K,          spec_.truth.d,
        spec_.samples,     spec_.real_count, spec_.generations,
        spec_.seed,        spec_.regime,     spec_.em,
        spec_.real_source, spec_.verifier,   spec_.weighting,
        spec_.dedup};
    for (std::int64_t first = 0; first < spec_.batch; first += slice_) {
      const auto blocks = static_cast<unsigned>(std::min(slice_, spec_.batch - first));
      generation_kernel<MaxS><<<blocks, kEmLanes, shared>>>(g, generation, first);
      OURO_CUDA_CHECK(cudaGetLastError());
    }
    OURO_CUDA_CHECK(cudaDeviceSynchronize());
  }

  GmmBatchSpec spec_;
  int P_, M_;
  std::int64_t train_max_, pos_stride_, slice_;
  DeviceBuffer<GmmTruth> truth_;
  DeviceBuffer<double> heldout_, params_, best_, hist_, metrics_, x_, w_;
  DeviceBuffer<unsigned char> failed_;
  DeviceBuffer<std::int64_t> pos_, table_;
  // The sample-based metrics' held-out side, model samples and radii (sample_metrics), and the held-out side's view
  // of them on the device.
  DeviceBuffer<double> heldout_x_, heldout_r2_;
  SampleSlices slices_;  // the model samples of the sample-based metrics
  HeldoutSide side_{};
  int generation_ = 0;  // the last generation done
};

}  // namespace

std::unique_ptr<GmmBackend> make_gmm_cuda(const GmmBatchSpec& spec) { return std::make_unique<GmmCuda>(spec); }

}  // namespace ouro::kernels

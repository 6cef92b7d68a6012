// The cuda backend's launch of the kernel density family. A chain's generation is the shared code of
// kernels/kde/kde.h (the draws, the pool and training set, the statistics), run by one thread per chain; only the
// held-out NLL, the n-body part that dominates the cost (M held-out points against m centres per chain), is written
// for the device:
//
//   generation_kernel  a thread per chain: kde_model, kde_new_points, kde_store, kde_chain_stats (the cpu backend's
//                      calls in the cpu backend's order), every metric but the NLL and the sample-based ones
//   nll_kernel         a block per (chain, 128 held-out points), in one grid dimension; a thread per held-out
//                      point; the chain's centres pass through shared memory in tiles of 128 (coordinates and
//                      log-weights), twice: the largest log-term, then the sum of exp(term - largest) in eight
//                      lanes (j mod 8, each in increasing j) added in the cpu's fixed tree, so each point's term
//                      has the cpu's bits
//   nll_sum_kernel     a thread per chain: the held-out points' terms added in order (the cpu's order)
//   sample_kernel      metrics.sample_based: a thread per chain draws the model sample and calls sample_metrics,
//                      in slices of chains whose samples fit the scratch budget (kernels/cuda/sample_slices.cuh)
//
// Every operation is the cpu's, in the cpu's order, with no FMA contraction (CMakeLists.txt), so the two backends
// are meant to agree to the bit. This backend has not run on a GPU yet (README, status table); the family offers it
// with every setting the cpu backend runs (the same per-chain code). The truth reaches the kernels through a device
// pointer (about 20 KB: too large a kernel argument for toolkits before CUDA 12.1).
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_info.h"
#include "kernels/cuda/device_buffer.cuh"
#include "kernels/cuda/sample_slices.cuh"
#include "kernels/kde/kde_backend.h"

namespace ouro::kernels {
namespace {

constexpr int kThreads = 128;  // per block of the per-chain kernels and of nll_kernel
constexpr int kTile = 128;     // centres per shared-memory tile of nll_kernel (a multiple of kKdeLanes)

constexpr const char* kOwner = "kde cuda backend";

// Every chain's arrays on the device, sliced by chain.
struct KdeChains {
  int d, n;
  std::int64_t P, T, R;  // pool, training set and log-weight room per chain
  double *pool_x, *train_x;
  std::int64_t *pool_anc, *train_anc;
  std::int32_t *pool_born, *train_born;
  std::uint8_t *pool_flags, *train_flags;
  std::int64_t *pool_m, *train_m;
  // scratch
  double *fresh, *lw, *cumulative, *w;
  std::int64_t *parent, *table, table_size;
  std::int64_t* anc;
  std::uint8_t* flags;
  // per chain: the model's bandwidth and normaliser for nll_kernel, and each held-out point's term
  double *bandwidth, *log_total, *terms;
  const double* heldout;
  std::int64_t M;
  Regime regime;
};

__device__ KdePoints pool_of(const KdeChains& c, std::int64_t i) {
  const std::int64_t at = i * c.P;
  return {c.pool_x + at * c.d, c.pool_anc + at, c.pool_flags + at, c.pool_born + at};
}
__device__ KdePoints train_store_of(const KdeChains& c, std::int64_t i) {
  const std::int64_t at = i * c.T;
  return {c.train_x + at * c.d, c.train_anc + at, c.train_flags + at, c.train_born + at};
}
__device__ KdePoints train_of(const KdeChains& c, std::int64_t i, std::int64_t& m) {
  if (c.regime == Regime::kAccumulate) {
    m = c.pool_m[i];
    return pool_of(c, i);
  }
  m = c.train_m[i];
  return train_store_of(c, i);
}
__device__ KdeScratch scratch_of(const KdeChains& c, std::int64_t i) {
  return {c.fresh + i * c.n * c.d, c.parent + i * c.n,     c.anc + i * c.n,           c.flags + i * c.n,
          c.lw + i * c.R,          c.cumulative + i * c.R, c.table + i * c.table_size};
}

__global__ void generation_kernel(KdeStep s, const GmmTruth* truth_ptr, KdeChains c, std::uint32_t chain_begin,
                                  std::int64_t batch, double* metrics) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  const GmmTruth& truth = *truth_ptr;
  const auto chain = static_cast<std::uint32_t>(chain_begin + i);
  const int d = s.d;
  std::int64_t m_prev = 0;
  const KdePoints prev = train_of(c, i, m_prev);
  const KdeScratch ks = scratch_of(c, i);
  KdeStep sp = s;
  sp.generation = s.generation - 1;
  const KdeModel model = kde_model(sp, prev, m_prev, ks);
  double draws_per_kept = NAN;
  const std::int64_t added = kde_new_points(s, chain, truth, model, ks, draws_per_kept);
  std::int64_t pool_m = c.pool_m[i];
  const std::int64_t m = kde_store(s, chain, ks, added, pool_of(c, i), pool_m, train_store_of(c, i));
  c.pool_m[i] = pool_m;
  if (c.regime != Regime::kAccumulate) c.train_m[i] = m;
  std::int64_t m_now = 0;
  const KdePoints v = train_of(c, i, m_now);
  const double* lw = kde_log_weights(s, v, m, ks.lw);
  if (!lw)
    for (std::int64_t j = 0; j < m; ++j) ks.lw[j] = 0.0;  // nll_kernel reads log-weights; the cpu's fill uses 0
  const KdeChainStats st = kde_chain_stats(s, truth, v, m, lw, c.w + i * c.R, ks, added);
  c.bandwidth[i] = st.bandwidth;
  c.log_total[i] = m > 0 ? st.log_total : NAN;
  metrics[kKdeVarRatio * batch + i] = (st.spread + d * st.bandwidth * st.bandwidth) / truth.trace;
  metrics[kKdeMeanSqErr * batch + i] = st.mean_sq_err;
  metrics[kKdeAncestors * batch + i] = st.ancestors;
  metrics[kKdeBandwidth * batch + i] = st.bandwidth;
  metrics[kKdeSyntheticShare * batch + i] = st.synthetic_share;
  metrics[kKdeDataAge * batch + i] = st.data_age;
  metrics[kKdeDrawsPerKept * batch + i] = draws_per_kept;
  for (int k = kKdePrecision; k <= kKdeEnergy; ++k) metrics[k * batch + i] = NAN;
}

// Block b: chain b / per_chain, held-out points (b % per_chain) * kThreads + threadIdx.x (one grid dimension, so
// that batches of any size launch).
__global__ void nll_kernel(KdeChains c, unsigned per_chain) {
  __shared__ double cx[kTile * kKdeMaxDim];
  __shared__ double clw[kTile];
  const std::int64_t i = blockIdx.x / per_chain;
  const std::int64_t p = (blockIdx.x % per_chain) * static_cast<std::int64_t>(kThreads) + threadIdx.x;
  const int d = c.d;
  std::int64_t m = 0;
  const KdePoints v = train_of(c, i, m);
  const double* lw = c.lw + i * c.R;
  const double h = c.bandwidth[i];
  const double inv2h2 = 0.5 / (h * h);
  double x[kKdeMaxDim];
  if (p < c.M)
    for (int a = 0; a < d; ++a) x[a] = c.heldout[p * d + a];
  double top = -INFINITY;
  double acc[kKdeLanes] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int pass = 0; pass < 2; ++pass) {
    for (std::int64_t j0 = 0; j0 < m; j0 += kTile) {
      const int tile = static_cast<int>(m - j0 < kTile ? m - j0 : kTile);
      __syncthreads();
      for (int q = threadIdx.x; q < tile; q += kThreads) {
        for (int a = 0; a < d; ++a) cx[q * d + a] = v.x[(j0 + q) * d + a];
        clw[q] = lw[j0 + q];
      }
      __syncthreads();
      if (p >= c.M) continue;
      // Tiles start at multiples of eight (kTile is one), so centre j0 + q is in lane q mod 8: the lanes unrolled
      // keep acc in registers.
      for (int q0 = 0; q0 < tile; q0 += kKdeLanes) {
#pragma unroll
        for (int l = 0; l < kKdeLanes; ++l) {
          const int q = q0 + l;
          if (q >= tile) break;
          double r2 = 0.0;
          for (int a = 0; a < d; ++a) {
            const double e = x[a] - cx[q * d + a];
            r2 += e * e;
          }
          if (pass == 0) {
            const double t = clw[q] - r2 * inv2h2;
            top = t > top ? t : top;
          } else {
            acc[l] += exp_poly(clw[q] - r2 * inv2h2 - top);
          }
        }
      }
    }
  }
  if (p >= c.M) return;
  const double norm = 0.5 * d * (kLog2Pi + 2.0 * log_positive(h));
  c.terms[i * c.M + p] = norm + c.log_total[i] - (top + log_positive(kde_lane_tree(acc)));
}

__global__ void nll_sum_kernel(KdeChains c, std::int64_t batch, double* metrics) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (i >= batch) return;
  std::int64_t m = 0;
  train_of(c, i, m);
  double sum = 0.0;
  for (std::int64_t p = 0; p < c.M; ++p) sum += c.terms[i * c.M + p];
  metrics[kKdeHeldoutNll * batch + i] = m > 0 ? sum / static_cast<double>(c.M) : NAN;
}

// The model samples of chains [first, first + count) at generation `gen` (the truth's at 0) and their sample-based
// metrics, thread `local` drawing into slot `local` of the slice's points and radii.
__global__ void sample_kernel(KdeStep s, const GmmTruth* truth_ptr, KdeChains c, HeldoutSide side, unsigned mask,
                              std::uint32_t chain_begin, std::int64_t batch, double* metrics, std::int64_t first,
                              std::int64_t count, double* points, double* radii) {
  const std::int64_t local = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  if (local >= count) return;
  const std::int64_t i = first + local;
  const GmmTruth& truth = *truth_ptr;
  const auto chain = static_cast<std::uint32_t>(chain_begin + i);
  const auto gen = static_cast<std::uint32_t>(s.generation);
  const int d = s.d, n = s.samples;
  double* x = points + local * static_cast<std::int64_t>(n) * d;
  if (s.generation == 0) {
    truth_model_sample(s.seed, chain, truth, n, x);
  } else {
    std::int64_t m = 0;
    const KdePoints v = train_of(c, i, m);
    if (m == 0) {  // an empty training set (a filter kept nothing): no model to draw from
      for (int k = 0; k < kSampleMetricCount; ++k)
        if ((mask >> k) & 1u) metrics[(kKdePrecision + k) * batch + i] = NAN;
      return;
    }
    const KdeModel model = kde_model(s, v, m, scratch_of(c, i));
    for (std::int64_t j = 0; j < n; ++j)
      kde_draw(s.seed, chain, gen, rng::kStreamModelChoice, rng::kStreamModelSample, j, model, x + j * d);
  }
  double out[kSampleMetricCount] = {NAN, NAN, NAN, NAN};
  sample_metrics(side, x, n, mask, radii + local * static_cast<std::int64_t>(n), out);
  for (int k = 0; k < kSampleMetricCount; ++k)
    if ((mask >> k) & 1u) metrics[(kKdePrecision + k) * batch + i] = out[k];
}

class KdeCuda final : public ChainBackend {
 public:
  explicit KdeCuda(const KdeBatchSpec& spec) : spec_(spec) {
    const int d = spec.truth.d, n = spec.samples;
    const std::size_t B = static_cast<std::size_t>(spec.batch);
    // R: the largest training set (the pool under accumulate, else n), the room of its log-weights.
    const std::int64_t P = kde_pool_capacity(spec), T = kde_train_capacity(spec),
                       R = spec.regime == Regime::kAccumulate ? P : n;
    const std::string what = "the points of " + std::to_string(spec.batch) + " chains";
    pool_x_ = allocate_device<double>(kOwner, B * P * d, what);
    pool_anc_ = allocate_device<std::int64_t>(kOwner, B * P, what);
    pool_born_ = allocate_device<std::int32_t>(kOwner, B * P, what);
    pool_flags_ = allocate_device<std::uint8_t>(kOwner, B * P, what);
    pool_m_ = upload_device(kOwner, std::vector<std::int64_t>(B, 0), what);
    train_x_ = allocate_device<double>(kOwner, B * T * d, what);
    train_anc_ = allocate_device<std::int64_t>(kOwner, B * T, what);
    train_born_ = allocate_device<std::int32_t>(kOwner, B * T, what);
    train_flags_ = allocate_device<std::uint8_t>(kOwner, B * T, what);
    train_m_ = upload_device(kOwner, std::vector<std::int64_t>(B, 0), what);
    const std::string scratch = "the working memory of " + std::to_string(spec.batch) + " chains";
    const std::int64_t table = dedup_table_size(n);
    fresh_ = allocate_device<double>(kOwner, B * n * d, scratch);
    lw_ = allocate_device<double>(kOwner, B * R, scratch);
    cumulative_ = allocate_device<double>(kOwner, B * R, scratch);
    w_ = allocate_device<double>(kOwner, B * R, scratch);
    parent_ = allocate_device<std::int64_t>(kOwner, B * n, scratch);
    table_ = allocate_device<std::int64_t>(kOwner, B * table, scratch);
    anc_ = allocate_device<std::int64_t>(kOwner, B * n, scratch);
    flags_ = allocate_device<std::uint8_t>(kOwner, B * n, scratch);
    bandwidth_ = allocate_device<double>(kOwner, B, scratch);
    log_total_ = allocate_device<double>(kOwner, B, scratch);
    const std::int64_t M = static_cast<std::int64_t>(spec.heldout.size()) / d;
    terms_ = allocate_device<double>(kOwner, B * M, scratch + " (held-out terms)");
    heldout_ = upload_device(kOwner, spec.heldout, "the held-out set");
    if (spec.sample_based) {
      side_x_ = upload_device(kOwner, spec.side.x, "the held-out set");
      side_r2_ = upload_device(kOwner, spec.side.radius2, "the held-out set's radii");
      side_ = HeldoutSide{side_x_.get(), spec.side.m, spec.side.d, side_r2_.get(), spec.side.within};
    }
    metrics_ = allocate_device<double>(kOwner, kKdeNumMetrics * B, "the metric block");
    truth_ = upload_device(kOwner, std::vector<GmmTruth>{spec.truth}, "the truth");
    // The cpu backend's initial values (coordinates, flags and generations 0, ancestors -1), so that checkpoints of
    // the two backends hold the same bytes.
    for (auto* b : {&pool_x_, &train_x_})
      if (b->size()) OURO_CUDA_CHECK(cudaMemset(b->get(), 0, b->size() * sizeof(double)));
    for (auto* b : {&pool_born_, &train_born_})
      if (b->size()) OURO_CUDA_CHECK(cudaMemset(b->get(), 0, b->size() * sizeof(std::int32_t)));
    for (auto* b : {&pool_anc_, &train_anc_})
      if (b->size()) OURO_CUDA_CHECK(cudaMemset(b->get(), 0xFF, b->size() * sizeof(std::int64_t)));
    for (auto* b : {&pool_flags_, &train_flags_})
      if (b->size()) OURO_CUDA_CHECK(cudaMemset(b->get(), 0, b->size()));
    chains_ = KdeChains{d,
                        n,
                        P,
                        T,
                        R,
                        pool_x_.get(),
                        train_x_.get(),
                        pool_anc_.get(),
                        train_anc_.get(),
                        pool_born_.get(),
                        train_born_.get(),
                        pool_flags_.get(),
                        train_flags_.get(),
                        pool_m_.get(),
                        train_m_.get(),
                        fresh_.get(),
                        lw_.get(),
                        cumulative_.get(),
                        w_.get(),
                        parent_.get(),
                        table_.get(),
                        table,
                        anc_.get(),
                        flags_.get(),
                        bandwidth_.get(),
                        log_total_.get(),
                        terms_.get(),
                        heldout_.get(),
                        M,
                        spec.regime};
    workers_ = {WorkerRange{cuda_worker_name(), spec.chain_begin, spec.chain_begin + spec.batch - 1, spec.batch}};
  }

  void start(double* h) override {
    const std::int64_t B = spec_.batch;
    // Generation 0 on the host, as the cpu backend writes it.
    double first[kKdeNumMetrics];
    kde_truth_metrics(spec_, first);
    std::vector<double> host(static_cast<std::size_t>(kKdeNumMetrics) * B);
    for (int k = 0; k < kKdeNumMetrics; ++k) std::fill(host.begin() + k * B, host.begin() + (k + 1) * B, first[k]);
    generation_ = 0;
    if (B == 0) return;
    OURO_CUDA_CHECK(cudaMemcpy(metrics_.get(), host.data(), host.size() * sizeof(double), cudaMemcpyHostToDevice));
    if (spec_.sample_based) {
      sample_metrics(step(0));
    }
    copy_metrics(h);
  }

  void advance(int generation, double* h) override {
    const std::int64_t B = spec_.batch;
    generation_ = generation;
    if (B == 0) return;
    const KdeStep s = step(generation);
    generation_kernel<<<grid_blocks(B, kThreads), kThreads>>>(s, truth_.get(), chains_, spec_.chain_begin, B,
                                                              metrics_.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    const unsigned per_chain = grid_blocks(chains_.M, kThreads);
    if (static_cast<double>(per_chain) * B > 2147483647.0)
      throw std::runtime_error("kde cuda backend: " + std::to_string(B) + " chains of " + std::to_string(chains_.M) +
                               " held-out points exceed one launch's blocks; lower --max-memory to batch them");
    nll_kernel<<<static_cast<unsigned>(per_chain * B), kThreads>>>(chains_, per_chain);
    OURO_CUDA_CHECK(cudaGetLastError());
    nll_sum_kernel<<<grid_blocks(B, kThreads), kThreads>>>(chains_, B, metrics_.get());
    OURO_CUDA_CHECK(cudaGetLastError());
    if (spec_.sample_based) {
      sample_metrics(s);
    }
    copy_metrics(h);
  }

  std::vector<WorkerRange> workers() const override { return workers_; }

  // The cpu backend's records, names and order (kde_cpu.cc), so that a checkpoint of one backend resumes on the
  // other.
  void state(StateArchive& ar) override {
    ar.value("generation", generation_);
    archive(ar, "pool_x", pool_x_);
    archive(ar, "pool_anc", pool_anc_);
    archive(ar, "pool_flags", pool_flags_);
    archive(ar, "pool_born", pool_born_);
    archive(ar, "pool_m", pool_m_);
    archive(ar, "train_x", train_x_);
    archive(ar, "train_anc", train_anc_);
    archive(ar, "train_flags", train_flags_);
    archive(ar, "train_born", train_born_);
    archive(ar, "train_m", train_m_);
    ar.workers(workers_);
  }

  int point_dim() const override { return spec_.truth.d; }

  // On the host, from a copy of the chain's training set: the same kde_draw as on the device.
  bool model_sample(std::int64_t i, std::int64_t count, std::vector<double>& x) override {
    const int d = spec_.truth.d;
    const auto chain = static_cast<std::uint32_t>(spec_.chain_begin + i);
    x.resize(static_cast<std::size_t>(count) * d);
    if (generation_ == 0) {
      truth_model_sample(spec_.seed, chain, spec_.truth, count, x.data());
      return true;
    }
    const bool pooled = spec_.regime == Regime::kAccumulate;
    const std::int64_t cap = pooled ? chains_.P : chains_.T;
    std::int64_t m = 0;
    OURO_CUDA_CHECK(cudaMemcpy(&m, (pooled ? pool_m_.get() : train_m_.get()) + i, sizeof m, cudaMemcpyDeviceToHost));
    if (m == 0) {  // an empty training set (a filter kept nothing): no model to draw from
      std::fill(x.begin(), x.end(), NAN);
      return true;
    }
    std::vector<double> px(static_cast<std::size_t>(m) * d);
    std::vector<std::int64_t> anc(m);
    std::vector<std::int32_t> born(m);
    std::vector<std::uint8_t> flags(m);
    auto fetch = [&](auto* host, const auto* device, std::size_t per_point) {
      if (m > 0)
        OURO_CUDA_CHECK(
            cudaMemcpy(host, device + i * cap * per_point, m * per_point * sizeof(*host), cudaMemcpyDeviceToHost));
    };
    fetch(px.data(), pooled ? pool_x_.get() : train_x_.get(), d);
    fetch(anc.data(), pooled ? pool_anc_.get() : train_anc_.get(), 1);
    fetch(born.data(), pooled ? pool_born_.get() : train_born_.get(), 1);
    fetch(flags.data(), pooled ? pool_flags_.get() : train_flags_.get(), 1);
    std::vector<double> lw(m), cumulative(m);
    const KdeScratch sc{nullptr, nullptr, nullptr, nullptr, lw.data(), cumulative.data(), nullptr};
    const KdeModel model =
        kde_model(step(generation_), KdePoints{px.data(), anc.data(), flags.data(), born.data()}, m, sc);
    for (std::int64_t j = 0; j < count; ++j)
      kde_draw(spec_.seed, chain, static_cast<std::uint32_t>(generation_), rng::kStreamModelChoice,
               rng::kStreamModelSample, j, model, x.data() + j * d);
    return true;
  }

 private:
  KdeStep step(int t) const { return kde_step(spec_, t); }

  // The sample-based metrics of every chain, in slices whose model samples fit cuda_scratch_bytes().
  void sample_metrics(const KdeStep& s) {
    slices_.run(spec_.batch, spec_.samples, spec_.truth.d,
                [&](std::int64_t first, std::int64_t count, double* points, double* radii) {
                  sample_kernel<<<grid_blocks(count, kThreads), kThreads>>>(
                      s, truth_.get(), chains_, side_, spec_.sample_based, spec_.chain_begin, spec_.batch,
                      metrics_.get(), first, count, points, radii);
                  OURO_CUDA_CHECK(cudaGetLastError());
                });
  }

  void copy_metrics(double* h) {
    OURO_CUDA_CHECK(
        cudaMemcpy(h, metrics_.get(), sizeof(double) * kKdeNumMetrics * spec_.batch, cudaMemcpyDeviceToHost));
  }

  KdeBatchSpec spec_;
  int generation_ = 0;
  DeviceBuffer<double> pool_x_, train_x_, fresh_, lw_, cumulative_, w_, bandwidth_, log_total_, terms_, heldout_,
      side_x_, side_r2_, metrics_;
  DeviceBuffer<std::int32_t> pool_born_, train_born_;
  DeviceBuffer<std::uint8_t> pool_flags_, train_flags_, flags_;
  DeviceBuffer<std::int64_t> pool_anc_, train_anc_, anc_, pool_m_, train_m_, parent_, table_;
  DeviceBuffer<GmmTruth> truth_;
  HeldoutSide side_{};
  KdeChains chains_{};
  SampleSlices slices_;  // the model samples of the sample-based metrics
  std::vector<WorkerRange> workers_;
};

}  // namespace

std::unique_ptr<ChainBackend> make_kde_cuda(const KdeBatchSpec& spec) { return std::make_unique<KdeCuda>(spec); }

}  // namespace ouro::kernels

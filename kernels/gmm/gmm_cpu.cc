// The cpu backend's launch of the mixture family: OpenMP over chains, each
// chain's generation (training set, EM with restarts, metrics) done by one
// thread with the shared math of kernels/gmm/gmm.h, its reductions in the fixed
// lane order. Results do not depend on the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "kernels/gmm/gmm_backend.h"

namespace ouro::kernels {

// The E-step of kernels/gmm/gmm.h (em_lane_pass over every lane, then
// em_reduce_lanes) computed a row at a time: row j holds points j*L .. j*L+L-1
// (L = kEmLanes), point j*L + l belongs to lane l, and every loop below runs
// over the lanes of a row, innermost, so g++ vectorises it. Each lane's
// accumulators receive the same values in the same order as in
// em_lane_pass, so the statistics are bit-identical to the serial E-step
// (tested). kLoglikOnly fills only the log-likelihood (stats[S - 1]). The
// weights W (null: all 1) ride in `valid`, a live lane's weight.
void cpu_estep(CpuPass pass, const GmmCView& m, bool diag, const double* X, const double* W, std::int64_t count,
               double* acc, double* stats) {
  constexpr int L = kEmLanes;
  const int K = m.K, d = m.d;
  const int per = 1 + d + d * d;
  const int S = em_stats_size(K, d);
  const bool stats_wanted = pass != CpuPass::kLoglikOnly;
  const bool soft = pass != CpuPass::kHard;
  for (int i = 0; i < S * L; ++i) acc[i] = 0.0;
  alignas(64) double xt[kGmmMaxDim][L], y[kGmmMaxDim][L], e[kGmmMaxComponents][L];
  alignas(64) double q[L], top[L], sum[L], inv[L], valid[L];
  double* ll = acc + (S - 1) * L;
  for (std::int64_t row = 0; row < count; row += L) {
    const int live = static_cast<int>(count - row < L ? count - row : L);
    // The row's points by coordinate; lanes past the end repeat point 0 of
    // the row (finite values) and get weight 0.
    for (int a = 0; a < d; ++a)
      for (int l = 0; l < L; ++l) xt[a][l] = X[(row + (l < live ? l : 0)) * d + a];
    for (int l = 0; l < L; ++l) valid[l] = l < live ? (W ? W[row + l] : 1.0) : 0.0;
    if (soft) {
      for (int l = 0; l < L; ++l) top[l] = -INFINITY;
      for (int k = 0; k < K; ++k) {
        const double* mu = m.mu + k * d;
        const double* lk = m.chol + k * d * d;
        for (int l = 0; l < L; ++l) q[l] = 0.0;
        for (int a = 0; a < d; ++a) {
          if (diag) {
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              const double v = (xt[a][l] - mu[a]) / lk[a * d + a];
              q[l] += v * v;
            }
          } else {
#pragma omp simd
            for (int l = 0; l < L; ++l) y[a][l] = xt[a][l] - mu[a];
            for (int b = 0; b < a; ++b) {
              const double c = lk[a * d + b];
#pragma omp simd
              for (int l = 0; l < L; ++l) y[a][l] -= c * y[b][l];
            }
            const double diag_l = lk[a * d + a];
#pragma omp simd
            for (int l = 0; l < L; ++l) {
              y[a][l] = y[a][l] / diag_l;
              q[l] += y[a][l] * y[a][l];
            }
          }
        }
        const double c = m.lognorm[k];
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          e[k][l] = c - 0.5 * q[l];
          top[l] = e[k][l] > top[l] ? e[k][l] : top[l];
        }
      }
      for (int l = 0; l < L; ++l) sum[l] = 0.0;
      for (int k = 0; k < K; ++k) {
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          e[k][l] = exp_poly(e[k][l] - top[l]);
          sum[l] += e[k][l];
        }
      }
#pragma omp simd
      for (int l = 0; l < L; ++l) {
        ll[l] += valid[l] != 0.0 ? valid[l] * (top[l] + log_sum(sum[l])) : 0.0;
        inv[l] = valid[l] / sum[l];  // w/s on live lanes, 0 past the end
      }
      if (!stats_wanted) continue;
      for (int k = 0; k < K; ++k)
#pragma omp simd
        for (int l = 0; l < L; ++l) e[k][l] *= inv[l];
    } else {
      // Hard assignment to the nearest mean (ties to the lowest k).
      for (int l = 0; l < L; ++l) top[l] = INFINITY, sum[l] = 0.0;
      for (int k = 0; k < K; ++k) {
        const double* c = m.mu + k * d;
        for (int l = 0; l < L; ++l) q[l] = 0.0;
        for (int a = 0; a < d; ++a)
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            const double v = xt[a][l] - c[a];
            q[l] += v * v;
          }
#pragma omp simd
        for (int l = 0; l < L; ++l) {
          const bool better = q[l] < top[l];
          top[l] = better ? q[l] : top[l];
          sum[l] = better ? static_cast<double>(k) : sum[l];  // the nearest k so far
        }
      }
      for (int k = 0; k < K; ++k)
#pragma omp simd
        for (int l = 0; l < L; ++l) e[k][l] = sum[l] == static_cast<double>(k) ? valid[l] : 0.0;
    }
    // Statistics about the current means (see em_lane_pass).
    for (int k = 0; k < K; ++k) {
      double* st = acc + k * per * L;
      const double* c = m.mu + k * d;
#pragma omp simd
      for (int l = 0; l < L; ++l) st[l] += e[k][l];
      for (int a = 0; a < d; ++a) {
        double* s1 = st + (1 + a) * L;
        const double ca = c[a];
        if (diag) {
          double* s2 = st + (1 + d + a * d + a) * L;
#pragma omp simd
          for (int l = 0; l < L; ++l) {
            const double v = xt[a][l] - ca;
            const double re = e[k][l] * v;
            s1[l] += re;
            s2[l] += re * v;
          }
        } else {
#pragma omp simd
          for (int l = 0; l < L; ++l) y[a][l] = e[k][l] * (xt[a][l] - ca);  // r (x_a - c_a)
#pragma omp simd
          for (int l = 0; l < L; ++l) s1[l] += y[a][l];
          for (int b = 0; b <= a; ++b) {
            double* s2 = st + (1 + d + a * d + b) * L;
            const double cb = c[b];
#pragma omp simd
            for (int l = 0; l < L; ++l) s2[l] += y[a][l] * (xt[b][l] - cb);
          }
        }
      }
    }
  }
  if (stats_wanted) em_reduce_lanes(S, acc, 1, L, stats);
  else em_reduce_lanes(1, ll, 1, L, stats + S - 1);
}

namespace {

// One thread's working memory, reused across its chains.
struct Scratch {
  std::vector<double> x, w, lanes, stats, work, best;
  std::vector<double> points, radii;     // the sample-based metrics' model sample and its k-NN radii
  std::vector<std::int64_t> pos, table;  // subsample positions (filters: where generations start); dedup's table
};

class GmmCpu final : public GmmBackend {
 public:
  explicit GmmCpu(const GmmBatchSpec& spec) : spec_(spec) {
    const int K = spec.K, d = spec.truth.d;
    P_ = gmm_block_size(K, d);
    params_.assign(spec.batch * P_, 0.0);
    failed_.assign(spec.batch, 0);
    if (spec.regime != Regime::kReplace)
      hist_.assign(static_cast<std::size_t>(spec.generations) * spec.batch * P_, 0.0);
    threads_ = spec.threads > 0 ? spec.threads : omp_get_max_threads();
    scratch_.resize(threads_);
    heldout_ = spec_.heldout_side.view();
  }

  void start(double* h_metrics) override {
    const GmmTruth& tr = spec_.truth;
    const int K = spec_.K, d = tr.d;
    const std::int64_t n = spec_.batch;
    // Every chain starts at the truth: its metrics once, then copied.
    std::vector<double> lanes(kEmLanes);
    const int M = gmm_num_metrics(K);
    std::vector<double> first(M);
    gmm_truth_metrics(tr, K, spec_.heldout.data(), static_cast<std::int64_t>(spec_.heldout.size() / d), lanes.data(),
                      first.data());
    std::vector<double> warm(P_);
    if (K == tr.K0) gmm_warm_start_block(tr, spec_.em.diag, warm.data());
    std::vector<WorkerRange> seen(threads_);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t i = 0; i < n; ++i) {
      note_chain(seen[omp_get_thread_num()], "omp-thread-" + std::to_string(omp_get_thread_num()),
                 spec_.chain_begin + i);
      if (K == tr.K0) std::copy(warm.begin(), warm.end(), params_.begin() + i * P_);
      for (int m = 0; m < M; ++m) h_metrics[m * n + i] = first[m];
      const GmmCView truth = truth_view(tr);
      sample_metrics_of(0, i, &truth, h_metrics, scratch_[omp_get_thread_num()]);  // the truth's own sample
    }
    workers_ = seen;
    generation_ = 0;
  }

  void advance(int generation, double* h_metrics) override {
    const std::int64_t n = spec_.batch;
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t i = 0; i < n; ++i) {
      Scratch& sc = scratch_[omp_get_thread_num()];
      chain_generation(generation, i, h_metrics, sc);
      const GmmCView fit = gmm_view(spec_.K, spec_.truth.d, static_cast<const double*>(params_.data()) + i * P_);
      sample_metrics_of(generation, i, failed_[i] ? nullptr : &fit, h_metrics, sc);
    }
    generation_ = generation;
  }

  std::vector<WorkerRange> workers() const override { return workers_; }

  // The current fits, failure flags and model history.
  void state(StateArchive& ar) override {
    ar.vec("params", params_);
    ar.vec("hist", hist_);
    ar.vec("failed", failed_);
    ar.workers(workers_);
  }

  // The truth at generation 0, the chain's fit after; a failed chain's points are NaN.
  bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) override {
    const int d = spec_.truth.d;
    x.assign(static_cast<std::size_t>(count) * d, NAN);
    const std::uint32_t id = spec_.chain_begin + static_cast<std::uint32_t>(chain);
    const auto gen = static_cast<std::uint32_t>(generation_);
    if (generation_ == 0) truth_model_sample(spec_.seed, id, spec_.truth, count, x.data());
    else if (!failed_[chain])
      gmm_model_sample(spec_.seed, id, gen,
                       gmm_view(spec_.K, d, static_cast<const double*>(params_.data()) + chain * P_), count, x.data());
    return true;
  }
  int point_dim() const override { return spec_.truth.d; }

 private:
  // The sample-based metrics of chain i's model *m (null: failed) at generation t, with the thread's scratch.
  void sample_metrics_of(int t, std::int64_t i, const GmmCView* m, double* metrics, Scratch& sc) {
    if (!spec_.sample_metrics) return;
    const std::int64_t n = spec_.samples;
    sc.points.resize(static_cast<std::size_t>(n) * spec_.truth.d);
    sc.radii.resize(n);
    gmm_sample_metrics(spec_.seed, spec_.chain_begin + static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(t), m,
                       spec_.truth, spec_.K, n, spec_.sample_metrics, heldout_, sc.points.data(), sc.radii.data(),
                       metrics + i, spec_.batch);
  }

  void chain_generation(int t, std::int64_t i, double* metrics, Scratch& sc) {
    const GmmTruth& tr = spec_.truth;
    const EmSettings& em = spec_.em;
    const int K = spec_.K, d = tr.d;
    const std::int64_t n = spec_.batch;
    const std::uint32_t chain = spec_.chain_begin + static_cast<std::uint32_t>(i);
    const auto gen = static_cast<std::uint32_t>(t);
    double* params = params_.data() + i * P_;
    if (failed_[i]) {  // a failed chain stays failed: its model cannot be sampled
      gmm_metrics(tr, gmm_view(K, d, static_cast<const double*>(params)), K, true, 0, false, 0, 0, 0, 0, metrics + i,
                  n);
      return;
    }
    GmmStep s{spec_.seed, K, d, spec_.samples, spec_.real_count, t, spec_.regime, spec_.real_source, {}, {}, {}};
    s.verifier = spec_.verifier;
    s.weighting = spec_.weighting;
    s.dedup = spec_.dedup;
    auto model_of = [&](int g) -> const double* {
      return s.regime == Regime::kReplace ? params : hist_.data() + (static_cast<std::int64_t>(g) * n + i) * P_;
    };

    // The training set, with its frequency weights (data.tail_upsample,
    // data.age_decay) or none.
    std::int64_t m;
    double share = 0.0, age = 0.0, draws_per_kept = 1.0, total;
    const double* W = nullptr;
    if (s.filtered()) {  // data.verifier, data.dedup: materialised by gmm_filtered_train
      const std::int64_t room = gmm_filtered_room(s);
      sc.x.resize(room * d);
      if (s.weighting.on()) sc.w.resize(room);
      sc.pos.resize(t + 1);
      if (s.dedup.on) sc.table.resize(dedup_table_size(s.samples));
      const GmmFilteredSet set =
          gmm_filtered_train(s, chain, tr, model_of, sc.x.data(), s.weighting.on() ? sc.w.data() : nullptr,
                             sc.pos.data(), sc.table.data());
      m = set.m;
      total = set.total;
      share = set.synthetic_share;
      age = set.data_age;
      draws_per_kept = set.draws_per_kept;
      if (s.weighting.on()) W = sc.w.data();
    } else {
      m = gmm_train_size(s);
      sc.x.resize(m * d);
      const bool subsample = s.regime == Regime::kAccumulateSubsample;
      if (subsample) {
        sc.pos.resize(m);
        gmm_subsample_positions(s, chain, sc.pos.data(), share, age);
      } else {
        regime_composition(s.regime, s.samples, s.real_count, t, s.weighting.age_decay, share, age);
      }
      for (std::int64_t p = 0; p < m; ++p)
        gmm_pool_point(s, chain, subsample ? sc.pos[p] : gmm_pool_position(s, p), tr, model_of, sc.x.data() + p * d);
      total = static_cast<double>(m);
      if (s.weighting.on()) {
        sc.w.resize(m);
        total = gmm_point_weights(s, tr, sc.x.data(), m, subsample ? sc.pos.data() : nullptr, sc.w.data());
        W = sc.w.data();
      }
    }
    if (m == 0) {  // the verifier kept nothing and there are no real points: nothing to fit
      failed_[i] = 1;
      gmm_metrics(tr, gmm_view(K, d, static_cast<const double*>(params)), K, true, 0, false, 0, 0, 0, 0, metrics + i,
                  n);
      return;
    }

    // EM (kernels/gmm/gmm.h, em_fit).
    const int S = em_stats_size(K, d);
    sc.lanes.resize(static_cast<std::size_t>(kEmLanes) * S);
    sc.stats.resize(S);
    sc.work.resize(P_);
    sc.best.resize(P_);
    auto estep = [&](LanePass mode, const GmmCView& mix, const double* X, std::int64_t count, double* stats) {
      cpu_estep(mode == LanePass::kSoft ? CpuPass::kSoft : CpuPass::kHard, mix, em.diag, X, W, count, sc.lanes.data(),
                stats);
    };
    // Restart 0 continues from the previous generation's fit when warm
    // (generation 1 from the truth when it has K components).
    const bool warm_ok = em.init == EmInit::kWarm && (t > 1 || K == tr.K0);
    bool have = false;
    const EmOutcome best = em_fit(s.seed, chain, gen, em, warm_ok, params, sc.work.data(), sc.best.data(), sc.x.data(),
                                  m, total, sc.stats.data(), estep, SerialPolicy{}, K, d, have);
    if (!have) {
      failed_[i] = 1;
      gmm_metrics(tr, gmm_view(K, d, static_cast<const double*>(params)), K, true, 0, false, 0, 0, 0, 0, metrics + i,
                  n);
      return;
    }
    std::copy(sc.best.begin(), sc.best.end(), params);
    if (s.regime != Regime::kReplace && t < spec_.generations)
      std::copy(sc.best.begin(), sc.best.end(), hist_.begin() + (static_cast<std::int64_t>(t) * n + i) * P_);
    const GmmCView fit = gmm_view(K, d, static_cast<const double*>(params));
    const std::int64_t h = static_cast<std::int64_t>(spec_.heldout.size() / d);
    cpu_estep(CpuPass::kLoglikOnly, fit, em.diag, spec_.heldout.data(), nullptr, h, sc.lanes.data(), sc.stats.data());
    const double xent = -sc.stats[S - 1] / static_cast<double>(h);
    gmm_metrics(tr, fit, K, false, best.iters, !best.converged, xent, -best.loglik, share, age, metrics + i, n);
    metrics[kGmmDrawsPerKept * n + i] = draws_per_kept;
  }

  GmmBatchSpec spec_;
  int P_;
  int threads_;
  std::vector<double> params_, hist_;
  std::vector<unsigned char> failed_;
  std::vector<Scratch> scratch_;
  HeldoutSide heldout_{};
  int generation_ = 0;  // the last generation done
  std::vector<WorkerRange> workers_;
};

}  // namespace

std::unique_ptr<GmmBackend> make_gmm_cpu(const GmmBatchSpec& spec) { return std::make_unique<GmmCpu>(spec); }

}  // namespace ouro::kernels

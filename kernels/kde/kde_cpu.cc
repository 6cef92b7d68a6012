// The cpu backend of the kernel density family: OpenMP over chains, each chain's generation done whole by one thread
// with the shared math of kernels/kde/kde.h, so results do not depend on the thread count. The held-out negative
// log-likelihood is an n-body sum (M held-out points against m centres): the centres are laid out by coordinate
// (structure of arrays, padded to a multiple of eight with centres of weight zero) and each held-out point runs two
// vectorised passes over them, the largest log-term, then the sum of the exponentials in eight fixed lanes, with the
// project's polynomial exp: no M x m memory, and the same bits on every vector width.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "kernels/kde/kde_backend.h"

namespace ouro::kernels {

namespace {

constexpr int kLanes = 8;

// Centres by coordinate, padded: c[a * mp + j], lw[j] (-inf for the padding).
struct SoaCentres {
  std::vector<double> c, lw;
  std::int64_t mp = 0;
  void fill(const double* x, const double* w, std::int64_t m, int d) {
    mp = (m + kLanes - 1) / kLanes * kLanes;
    c.assign(static_cast<std::size_t>(mp) * d, 0.0);
    lw.assign(static_cast<std::size_t>(mp), -INFINITY);
    for (std::int64_t j = 0; j < m; ++j) {
      for (int a = 0; a < d; ++a) c[a * mp + j] = x[j * d + a];
      lw[j] = w ? w[j] : 0.0;
    }
  }
};

// ln sum_j exp(lw_j - |x - c_j|^2 / (2 h^2)) over the padded centres.
template <int D>
double log_kernel_sum(const SoaCentres& s, int d_runtime, const double* x, double inv2h2) {
  const int d = D > 0 ? D : d_runtime;
  const std::int64_t mp = s.mp;
  const double* c = s.c.data();
  const double* lw = s.lw.data();
  double top = -INFINITY;
#pragma omp simd reduction(max : top)
  for (std::int64_t j = 0; j < mp; ++j) {
    double r2 = 0.0;
    for (int a = 0; a < d; ++a) {
      const double e = x[a] - c[a * mp + j];
      r2 += e * e;
    }
    const double q = lw[j] - r2 * inv2h2;
    top = q > top ? q : top;
  }
  alignas(64) double acc[kLanes] = {};
  for (std::int64_t j0 = 0; j0 < mp; j0 += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) {
      const std::int64_t j = j0 + l;
      double r2 = 0.0;
      for (int a = 0; a < d; ++a) {
        const double e = x[a] - c[a * mp + j];
        r2 += e * e;
      }
      acc[l] += exp_poly(lw[j] - r2 * inv2h2 - top);
    }
  }
  const double sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  return top + log_positive(sum);
}

// The held-out NLL over padded centres whose log-weights sum (in exp) to exp(log_total).
double heldout_nll(const double* x, std::int64_t M, const SoaCentres& s, int d, double h, double log_total) {
  const double inv2h2 = 0.5 / (h * h);
  const double norm = 0.5 * d * (kLog2Pi + 2.0 * log_positive(h));
  double sum = 0.0;
  for (std::int64_t i = 0; i < M; ++i) {
    const double* xi = x + i * d;
    double ls;
    switch (d) {  // the dimension as a constant, so that the loop over coordinates unrolls inside the vector loop
      case 1:
        ls = log_kernel_sum<1>(s, d, xi, inv2h2);
        break;
      case 2:
        ls = log_kernel_sum<2>(s, d, xi, inv2h2);
        break;
      case 3:
        ls = log_kernel_sum<3>(s, d, xi, inv2h2);
        break;
      case 4:
        ls = log_kernel_sum<4>(s, d, xi, inv2h2);
        break;
      case 5:
        ls = log_kernel_sum<5>(s, d, xi, inv2h2);
        break;
      case 6:
        ls = log_kernel_sum<6>(s, d, xi, inv2h2);
        break;
      case 7:
        ls = log_kernel_sum<7>(s, d, xi, inv2h2);
        break;
      case 8:
        ls = log_kernel_sum<8>(s, d, xi, inv2h2);
        break;
      default:
        ls = log_kernel_sum<0>(s, d, xi, inv2h2);
        break;
    }
    sum += norm + log_total - ls;
  }
  return sum / static_cast<double>(M);
}

// ln sum_j exp(lw_j) (0 entries: ln m), largest first.
double log_total_weight(const double* lw, std::int64_t m) {
  if (!lw) return log_positive(static_cast<double>(m));
  double top = -INFINITY;
  for (std::int64_t j = 0; j < m; ++j) top = std::max(top, lw[j]);
  double s = 0.0;
  for (std::int64_t j = 0; j < m; ++j) s += exp_poly(lw[j] - top);
  return top + log_positive(s);
}

}  // namespace

double cpu_kde_heldout_nll(const double* x, std::int64_t M, const double* c, const double* lw, std::int64_t m, int d,
                           double h) {
  SoaCentres s;
  s.fill(c, lw, m, d);
  return heldout_nll(x, M, s, d, h, log_total_weight(lw, m));
}

namespace {

// One thread's working memory, reused across its chains.
struct Scratch {
  std::vector<double> fresh, lw, cumulative, w, sample, radii;
  std::vector<std::int64_t> parent, table;
  std::vector<std::int64_t> anc;
  std::vector<std::uint8_t> flags;
  SoaCentres soa;
  // Sized for n new points and training sets of up to m points.
  KdeScratch view(int n, std::int64_t m, int d) {
    fresh.resize(static_cast<std::size_t>(n) * d);
    parent.resize(n);
    anc.resize(n);
    flags.resize(n);
    lw.resize(m);
    cumulative.resize(m);
    w.resize(m);
    table.resize(dedup_table_size(n));
    return {fresh.data(), parent.data(), anc.data(), flags.data(), lw.data(), cumulative.data(), table.data()};
  }
};

class KdeCpu final : public ChainBackend {
 public:
  explicit KdeCpu(const KdeBatchSpec& spec) : spec_(spec) {
    const int d = spec.truth.d;
    P_ = kde_pool_capacity(spec);
    T_ = kde_train_capacity(spec);
    const auto B = static_cast<std::size_t>(spec.batch);
    pool_x_.assign(B * P_ * d, 0.0);
    pool_anc_.assign(B * P_, -1);
    pool_flags_.assign(B * P_, 0);
    pool_born_.assign(B * P_, 0);
    pool_m_.assign(B, 0);
    train_x_.assign(B * T_ * d, 0.0);
    train_anc_.assign(B * T_, -1);
    train_flags_.assign(B * T_, 0);
    train_born_.assign(B * T_, 0);
    train_m_.assign(B, 0);
    threads_ = spec.threads > 0 ? spec.threads : omp_get_max_threads();
    scratch_.resize(threads_);
  }

  void start(double* h) override {
    const std::int64_t B = spec_.batch;
    double first[kKdeNumMetrics];
    kde_truth_metrics(spec_, first);
    for (int k = 0; k < kKdeNumMetrics; ++k) std::fill(h + k * B, h + (k + 1) * B, first[k]);
    generation_ = 0;
    if (spec_.sample_based) {
#pragma omp parallel for schedule(static) num_threads(threads_)
      for (std::int64_t i = 0; i < B; ++i) {
        Scratch& sc = scratch_[omp_get_thread_num()];
        draw_model_sample(i, spec_.samples, sc.sample, sc);
        sample_metric_values(sc, h, i);
      }
    }
  }

  void advance(int generation, double* h) override {
    const KdeStep s = step(generation);
    std::vector<WorkerRange> seen(threads_);
#pragma omp parallel for schedule(static) num_threads(threads_)
    for (std::int64_t i = 0; i < spec_.batch; ++i) {
      const int w = omp_get_thread_num();
      note_chain(seen[w], "omp-thread-" + std::to_string(w), spec_.chain_begin + i);
      advance_chain(s, i, scratch_[w], h);
    }
    if (generation == 1) {
      workers_.clear();
      for (const auto& r : seen)
        if (r.chains > 0) workers_.push_back(r);
    }
    generation_ = generation;
  }

  std::vector<WorkerRange> workers() const override { return workers_; }

  void state(StateArchive& ar) override {
    ar.value("generation", generation_);
    ar.vec("pool_x", pool_x_);
    ar.vec("pool_anc", pool_anc_);
    ar.vec("pool_flags", pool_flags_);
    ar.vec("pool_born", pool_born_);
    ar.vec("pool_m", pool_m_);
    ar.vec("train_x", train_x_);
    ar.vec("train_anc", train_anc_);
    ar.vec("train_flags", train_flags_);
    ar.vec("train_born", train_born_);
    ar.vec("train_m", train_m_);
    ar.workers(workers_);
  }

  int point_dim() const override { return spec_.truth.d; }

  bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) override {
    Scratch sc;
    draw_model_sample(chain, count, x, sc);
    return true;
  }

 private:
  std::int64_t heldout_count() const { return static_cast<std::int64_t>(spec_.heldout.size()) / spec_.truth.d; }

  KdeStep step(int t) const { return kde_step(spec_, t); }

  KdePoints pool(std::int64_t i) {
    const std::size_t at = static_cast<std::size_t>(i) * P_;
    return {pool_x_.data() + at * spec_.truth.d, pool_anc_.data() + at, pool_flags_.data() + at,
            pool_born_.data() + at};
  }
  KdePoints train_store(std::int64_t i) {
    const std::size_t at = static_cast<std::size_t>(i) * T_;
    return {train_x_.data() + at * spec_.truth.d, train_anc_.data() + at, train_flags_.data() + at,
            train_born_.data() + at};
  }
  // The training set of chain i (the pool under accumulate) and its size.
  KdePoints train(std::int64_t i, std::int64_t& m) {
    if (spec_.regime == Regime::kAccumulate) {
      m = pool_m_[i];
      return pool(i);
    }
    m = train_m_[i];
    return train_store(i);
  }

  // The model sample of chain i at the last generation done (the truth's at generation 0): `count` points of the
  // model-sample streams.
  void draw_model_sample(std::int64_t i, std::int64_t count, std::vector<double>& x, Scratch& sc) {
    const int d = spec_.truth.d;
    const auto chain = static_cast<std::uint32_t>(spec_.chain_begin + i);
    const auto gen = static_cast<std::uint32_t>(generation_);
    x.resize(static_cast<std::size_t>(count) * d);
    if (generation_ == 0) {
      truth_model_sample(spec_.seed, chain, spec_.truth, count, x.data());
      return;
    }
    std::int64_t m = 0;
    const KdePoints v = train(i, m);
    if (m == 0) {  // an empty training set (a filter kept nothing): no model to draw from
      std::fill(x.begin(), x.end(), NAN);
      return;
    }
    const KdeModel model = kde_model(step(generation_), v, m, sc.view(spec_.samples, m, d));
    for (std::int64_t j = 0; j < count; ++j)
      kde_draw(spec_.seed, chain, gen, rng::kStreamModelChoice, rng::kStreamModelSample, j, model, x.data() + j * d);
  }

  // The sample-based metrics of the model sample in sc.sample into chain i's slots.
  void sample_metric_values(Scratch& sc, double* h, std::int64_t i) const {
    const std::int64_t B = spec_.batch;
    double out[kSampleMetricCount] = {NAN, NAN, NAN, NAN};
    sc.radii.resize(spec_.samples);
    sample_metrics(spec_.side.view(), sc.sample.data(), spec_.samples, spec_.sample_based, sc.radii.data(), out);
    for (int k = 0; k < kSampleMetricCount; ++k)
      if ((spec_.sample_based >> k) & 1u) h[(kKdePrecision + k) * B + i] = out[k];
  }

  void advance_chain(const KdeStep& s, std::int64_t i, Scratch& sc, double* h) {
    const int t = s.generation, d = s.d;
    const std::int64_t B = spec_.batch;
    const auto chain = static_cast<std::uint32_t>(spec_.chain_begin + i);
    std::int64_t m_prev = 0;
    const KdePoints prev = train(i, m_prev);
    // Training sets of up to m_prev points now and, after this generation, the pool under accumulate or n points.
    const std::int64_t room =
        std::max(m_prev, spec_.regime == Regime::kAccumulate ? pool_m_[i] + spec_.samples : spec_.samples);
    const KdeScratch ks = sc.view(spec_.samples, room, d);
    KdeStep sp = s;
    sp.generation = t - 1;
    const KdeModel model = kde_model(sp, prev, m_prev, ks);
    double draws_per_kept = NAN;
    const std::int64_t added = kde_new_points(s, chain, spec_.truth, model, ks, draws_per_kept);
    std::int64_t pool_m = pool_m_[i];
    const std::int64_t m = kde_store(s, chain, ks, added, pool(i), pool_m, train_store(i));
    pool_m_[i] = pool_m;
    if (spec_.regime != Regime::kAccumulate) train_m_[i] = m;
    std::int64_t m_now = 0;
    const KdePoints v = train(i, m_now);
    const double* lw = kde_log_weights(s, v, m, ks.lw);
    const KdeChainStats st = kde_chain_stats(s, spec_.truth, v, m, lw, ks.cumulative, ks, added);
    double nll = NAN;
    if (m > 0) {
      sc.soa.fill(v.x, lw, m, d);
      nll = heldout_nll(spec_.heldout.data(), heldout_count(), sc.soa, d, st.bandwidth, st.log_total);
    }
    h[kKdeHeldoutNll * B + i] = nll;
    h[kKdeVarRatio * B + i] = (st.spread + d * st.bandwidth * st.bandwidth) / spec_.truth.trace;
    h[kKdeMeanSqErr * B + i] = st.mean_sq_err;
    h[kKdeAncestors * B + i] = st.ancestors;
    h[kKdeBandwidth * B + i] = st.bandwidth;
    h[kKdeSyntheticShare * B + i] = st.synthetic_share;
    h[kKdeDataAge * B + i] = st.data_age;
    h[kKdeDrawsPerKept * B + i] = draws_per_kept;
    for (int k = kKdePrecision; k <= kKdeEnergy; ++k) h[k * B + i] = NAN;
    if (spec_.sample_based && m > 0) {
      // The model sample of generation t (its own streams).
      const KdeModel now = kde_model(s, v, m, ks);
      sc.sample.resize(static_cast<std::size_t>(spec_.samples) * d);
      for (std::int64_t j = 0; j < spec_.samples; ++j)
        kde_draw(s.seed, chain, static_cast<std::uint32_t>(t), rng::kStreamModelChoice, rng::kStreamModelSample, j, now,
                 sc.sample.data() + j * d);
      sample_metric_values(sc, h, i);
    }
  }

  KdeBatchSpec spec_;
  std::int64_t P_ = 0, T_ = 0;
  int threads_ = 1;
  int generation_ = 0;
  std::vector<double> pool_x_, train_x_;
  std::vector<std::int64_t> pool_anc_, train_anc_;
  std::vector<std::int32_t> pool_born_, train_born_;
  std::vector<std::uint8_t> pool_flags_, train_flags_;
  std::vector<std::int64_t> pool_m_, train_m_;
  std::vector<WorkerRange> workers_;
  std::vector<Scratch> scratch_;
};

}  // namespace

std::unique_ptr<ChainBackend> make_kde_cpu(const KdeBatchSpec& spec) { return std::make_unique<KdeCpu>(spec); }

}  // namespace ouro::kernels

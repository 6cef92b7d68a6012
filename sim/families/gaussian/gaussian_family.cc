// The Gaussian family in the one loop: the truth and theory of
// sim/families/gaussian/gaussian_truth.cc and the backends of kernels/gaussian/gaussian_backend.h.
#include "sim/families/gaussian/gaussian_family.h"

#include <cmath>

#include "kernels/core/quadform.h"
#include "sim/families/gaussian/gaussian_truth.h"
#include "sim/parallel/backend.h"

namespace ouro {
namespace {

class GaussianRun final : public FamilyRun {
 public:
  GaussianRun(const PointConfig& c, const std::string& backend, int threads, ChainBlock block) : c_(c) {
    const kernels::GaussianBatchSpec spec{
        make_gaussian_truth(c), c.regime, c.generations, static_cast<std::uint32_t>(block.first), block.count, threads};
    backend_ = make_gaussian_backend(backend, spec);
    if (c.verifier) {
      verifier_.on = 1;
      verifier_.keep_plausible = kernels::keep_threshold(c.keep_plausible);
      verifier_.keep_implausible = kernels::keep_threshold(c.keep_implausible);
      verifier_.r2_max = kernels::chi2_quantile(1.0 - c.verifier_quantile, c.dim);
    }
    verifier_.max_draw_factor = c.max_draw_factor;  // (bounds dedup's refill too)
    dedup_.on = c.dedup ? 1 : 0;
    dedup_.resolution = c.dedup_resolution;
    if (c.tail_upsample) {
      upsample_.on = 1;
      upsample_.factor = c.tail_factor;
      upsample_.r2_min = kernels::chi2_quantile(1.0 - c.tail_quantile, c.dim);
    }
  }
  void start(double* metrics) override { backend_->start(metrics); }
  void advance(int generation, double* metrics) override {
    const kernels::GaussianStep step{c_.seed,   c_.dim,       c_.samples,     c_.real_count,       generation,
                                     c_.regime, c_.estimator, c_.real_source, c_.estimator_weight, verifier_,
                                     upsample_, c_.age_decay, dedup_};
    backend_->advance(step, metrics);
  }
  std::vector<kernels::WorkerRange> workers() const override { return backend_->workers(); }
  void state(kernels::StateArchive& ar) override { backend_->state(ar); }

 private:
  PointConfig c_;
  kernels::Verifier verifier_;
  kernels::TailUpsample upsample_;
  kernels::Dedup dedup_;
  std::unique_ptr<kernels::GaussianBackend> backend_;
};

}  // namespace

const std::vector<std::string>& gaussian_metric_names() {
  static const std::vector<std::string> names = {"var_ratio", "det_ratio",      "mean_sq_err", "w2",
                                                 "kl",        "xent",           "tail_mass",   "synthetic_share",
                                                 "data_age",  "draws_per_kept", "heldout_nll"};
  return names;
}

double gaussian_point_bytes(const PointConfig& c) {
  const double d = c.dim, chains = static_cast<double>(c.chains);
  double per_chain = 3 * d * d + 2 * d            // mu, cov, chol, pooled mean and M2
                     + 2 * d + 2 * d * d + 1 + 2  // z-sums, degenerate flag, verifier counts
                     + 4                          // the pool's weight and composition (filters)
                     + kernels::kNumGaussianMetrics;
  if (c.regime == kernels::Regime::kAccumulateSubsample) per_chain += (c.generations + 1.0) * (d + d * d + 1);
  // data.dedup's table and kept points: per chain, an upper bound on both
  // backends (the cpu keeps one per thread, the cuda backend one per chain of
  // a slice of at most 1 GiB of them).
  if (c.dedup) per_chain += kernels::dedup_table_size(c.samples) + c.samples * d;
  return 8.0 * per_chain * chains;
}

std::unique_ptr<FamilyRun> make_gaussian_run(const PointConfig& c, const std::string& backend, int threads,
                                             ChainBlock block) {
  return std::make_unique<GaussianRun>(c, backend, threads, block);
}

}  // namespace ouro

#include "tests/families/cloud/cloud_family.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <stdexcept>

#include "kernels/core/normal.h"
#include "kernels/core/rng.h"
#include "kernels/core/state.h"
#include "kernels/training/regime.h"
#include "sim/engine/config.h"

namespace ouro::test {
namespace {

constexpr int kMaxDim = 3;

struct CloudSettings : FamilySettings {
  int dim = 2;      // model.dim
  double s0 = 1.0;  // truth.scale
};

enum CloudMetric : int { kVarRatio = 0, kMeanSqErr, kNumCloudMetrics };

constexpr MetricSpec kMetrics[] = {
    {kVarRatio, "var_ratio", "s_t^2 / s_0^2, the model's variance over the truth's", Direction::kDown, true,
     "generation 0; replace without real data: (1 - 1/n)^t"},
    {kMeanSqErr, "mean_sq_err", "||m_t||^2, the squared distance of the model's mean from the truth's", Direction::kUp,
     false, "generation 0"},
};
static_assert(metrics_in_enum_order(kMetrics) && std::size(kMetrics) == kNumCloudMetrics);

// One batch of chains on the cpu, one chain after another.
class CloudRun final : public FamilyRun {
 public:
  CloudRun(const PointConfig& c, ChainBlock block)
      : c_(c),
        s_(c_.settings<CloudSettings>()),
        block_(block),
        mean_(static_cast<std::size_t>(block.count) * s_.dim, 0.0),
        scale_(block.count, s_.s0) {}

  void start(double* metrics) override {
    std::fill(mean_.begin(), mean_.end(), 0.0);
    std::fill(scale_.begin(), scale_.end(), s_.s0);
    generation_ = 0;
    for (std::int64_t i = 0; i < block_.count; ++i) measure(i, metrics);
    workers_ = {{"cpu thread 0", block_.first, block_.first + block_.count - 1, block_.count}};
  }

  void advance(int t, double* metrics) override {
    const int d = s_.dim, n = c_.samples;
    const int real = kernels::real_points_of(t, n, c_.real_count);
    double z[kMaxDim], x[kMaxDim];
    std::vector<double> points(static_cast<std::size_t>(n) * d);
    for (std::int64_t i = 0; i < block_.count; ++i) {
      const auto chain = static_cast<std::uint32_t>(block_.first + i);
      double* m = mean_.data() + i * d;
      double sum[kMaxDim] = {0.0, 0.0, 0.0};
      for (int j = 0; j < n; ++j) {
        const bool is_real = j < real;
        const std::uint32_t gen = is_real ? kernels::real_draw_generation(c_.real_source, t) : t;
        kernels::stream_normals(c_.seed, chain, gen, is_real ? rng::kStreamRealDraw : rng::kStreamSyntheticDraw,
                                static_cast<std::uint64_t>(j) * d, d, z);
        for (int k = 0; k < d; ++k) {
          x[k] = is_real ? s_.s0 * z[k] : m[k] + scale_[i] * z[k];
          points[static_cast<std::size_t>(j) * d + k] = x[k];
          sum[k] += x[k];
        }
      }
      double ss = 0.0;
      for (int k = 0; k < d; ++k) m[k] = sum[k] / n;
      for (int j = 0; j < n; ++j)
        for (int k = 0; k < d; ++k) {
          const double e = points[static_cast<std::size_t>(j) * d + k] - m[k];
          ss += e * e;
        }
      scale_[i] = std::sqrt(ss / (static_cast<double>(n) * d));
      measure(i, metrics);
    }
    generation_ = t;
  }

  std::vector<kernels::WorkerRange> workers() const override { return workers_; }

  void state(kernels::StateArchive& ar) override {
    ar.vec("mean", mean_);
    ar.vec("scale", scale_);
    ar.value("generation", generation_);
    ar.workers(workers_);
  }

  bool model_sample(std::int64_t chain, std::int64_t count, std::vector<double>& x) override {
    const int d = s_.dim;
    x.resize(static_cast<std::size_t>(count * d));
    const double* m = mean_.data() + chain * d;
    kernels::stream_normals(c_.seed, static_cast<std::uint32_t>(block_.first + chain),
                            static_cast<std::uint32_t>(generation_), rng::kStreamModelSample, 0,
                            static_cast<int>(count * d), x.data());
    for (std::int64_t i = 0; i < count; ++i)
      for (int k = 0; k < d; ++k) x[i * d + k] = m[k] + scale_[chain] * x[i * d + k];
    return true;
  }
  int point_dim() const override { return s_.dim; }

 private:
  void measure(std::int64_t i, double* metrics) const {
    const std::size_t n = static_cast<std::size_t>(block_.count);
    double msq = 0.0;
    for (int k = 0; k < s_.dim; ++k) msq += mean_[i * s_.dim + k] * mean_[i * s_.dim + k];
    metrics[kVarRatio * n + i] = scale_[i] * scale_[i] / (s_.s0 * s_.s0);
    metrics[kMeanSqErr * n + i] = msq;
  }

  PointConfig c_;
  const CloudSettings& s_;
  ChainBlock block_;
  std::vector<double> mean_, scale_;  // [chain][d], [chain]
  int generation_ = 0;                // the last generation done
  std::vector<kernels::WorkerRange> workers_;
};

class CloudFamily final : public Family {
 public:
  const char* name() const override { return "cloud"; }
  FamilyKind kind() const override { return FamilyKind::kContinuous; }
  const char* description() const override {
    return "an isotropic Gaussian cloud refitted from its own draws (a test family with points)";
  }
  bool has_points() const override { return true; }
  const std::vector<KeySpec>& keys() const override {
    static const std::vector<KeySpec> keys = {
        integer_key("model.dim", 1, kMaxDim, "2", "d, the dimension of the truth and the model"),
        number_key("truth.scale", "a standard deviation > 0", 1e-6, 1e6, "1", "s_0, the truth's per coordinate"),
    };
    return keys;
  }
  std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig&) const override {
    auto s = std::make_shared<CloudSettings>();
    s->dim = static_cast<int>(r.integer(key_of(keys(), "model.dim")));
    s->s0 = r.number(key_of(keys(), "truth.scale"));
    return s;
  }
  void check(const PointConfig& c) const override {
    if (c.regime != kernels::Regime::kReplace) throw ConfigError("data.regime", "the cloud family runs replace only");
  }
  std::vector<MetricSpec> metrics() const override { return {std::begin(kMetrics), std::end(kMetrics)}; }
  std::optional<double> theory(const PointConfig& c, int metric, int t) const override {
    if (t == 0) return metric == kVarRatio ? 1.0 : 0.0;
    if (metric == kVarRatio && c.real_count == 0) return std::pow(1.0 - 1.0 / c.samples, t);
    return std::nullopt;
  }
  SummarySettings default_summary() const override { return {"var_ratio", 0.5}; }
  std::vector<DetectorSpec> detectors() const override {
    return {{"diversity", "var_ratio", true, 1.0, -1.0, "ln (variance drop)"}};
  }
  // A sample's worth per chain, as a family that keeps each chain's sample needs (this one keeps one at a time), so
  // that a small --max-memory runs the chains in batches.
  double point_bytes(const PointConfig& c) const override {
    return 8.0 * static_cast<double>(c.chains) * (4.0 + static_cast<double>(c.samples) * kMaxDim);
  }
  BackendSupport support(const std::string& backend) const override { return {backend == "cpu", {}}; }
  std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int,
                                      ChainBlock block) const override {
    if (backend != "cpu") throw std::invalid_argument("the cloud family has no " + backend + " backend");
    return std::make_unique<CloudRun>(c, block);
  }
};

}  // namespace

const Family& cloud_family() {
  static const CloudFamily f;
  return f;
}

}  // namespace ouro::test

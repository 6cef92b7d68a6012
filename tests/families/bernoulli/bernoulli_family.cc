#include "tests/families/bernoulli/bernoulli_family.h"

#include <cmath>
#include <iterator>
#include <limits>

#include <fmt/format.h>

#include "kernels/core/rng.h"
#include "kernels/core/state.h"
#include "kernels/training/regime.h"
#include "sim/engine/config.h"

namespace ouro::test {
namespace {

struct BernoulliSettings : FamilySettings {
  double p0 = 0.5;     // truth.p
  double alpha = 0.0;  // model.alpha
};

enum BernoulliMetric : int { kPHat = 0, kVarRatio, kFixed, kNumBernoulliMetrics };

constexpr MetricSpec kMetrics[] = {
    {kPHat, "p_hat", "the fitted probability of a one", Direction::kNone, false, "with model.alpha 0: p_0"},
    {kVarRatio, "var_ratio", "p_t (1 - p_t) / (p_0 (1 - p_0)), the model's variance over the truth's", Direction::kDown,
     true, "generation 0; replace without real data and with model.alpha 0: (1 - 1/n)^t"},
    {kFixed, "fixed", "1 once the fit is 0 or 1 (it then stays there)", Direction::kUp, false, "generation 0"},
};
static_assert(metrics_in_enum_order(kMetrics) && std::size(kMetrics) == kNumBernoulliMetrics);

// One batch of chains on the cpu, one chain after another on one thread.
class BernoulliRun final : public FamilyRun {
 public:
  BernoulliRun(const PointConfig& c, ChainBlock block)
      : c_(c),
        s_(c_.settings<BernoulliSettings>()),
        block_(block),
        p_(block.count),
        ones_(block.count, 0.0),
        points_(block.count, 0.0) {}

  void start(double* metrics) override {
    std::fill(p_.begin(), p_.end(), s_.p0);
    for (std::int64_t i = 0; i < block_.count; ++i) measure(i, metrics);
    workers_ = {{"cpu thread 0", block_.first, block_.first + block_.count - 1, block_.count}};
  }

  void advance(int t, double* metrics) override {
    for (std::int64_t i = 0; i < block_.count; ++i) {
      const auto chain = static_cast<std::uint32_t>(block_.first + i);
      const int real = kernels::real_points_of(t, c_.samples, c_.real_count);
      double k = 0.0;
      for (int j = 0; j < c_.samples; ++j) {
        const bool is_real = j < real;
        const std::uint32_t gen = is_real ? kernels::real_draw_generation(c_.real_source, t) : t;
        const auto stream = is_real ? rng::kStreamRealDraw : rng::kStreamSyntheticDraw;
        const rng::Block b = rng::draw_block(c_.seed, chain, gen, stream, static_cast<std::uint64_t>(j) >> 1);
        const double u = (j & 1) ? rng::u01_open(b.v[2], b.v[3]) : rng::u01_open(b.v[0], b.v[1]);
        k += u < (is_real ? s_.p0 : p_[i]) ? 1.0 : 0.0;
      }
      if (c_.regime == kernels::Regime::kAccumulate) {
        ones_[i] += k;
        points_[i] += c_.samples;
      } else {
        ones_[i] = k;
        points_[i] = c_.samples;
      }
      p_[i] = (ones_[i] + s_.alpha) / (points_[i] + 2.0 * s_.alpha);
      measure(i, metrics);
    }
  }

  std::vector<kernels::WorkerRange> workers() const override { return workers_; }

  void state(kernels::StateArchive& ar) override {
    ar.vec("p", p_);
    ar.vec("ones", ones_);
    ar.vec("points", points_);
    ar.workers(workers_);
  }

 private:
  void measure(std::int64_t i, double* metrics) const {
    const std::size_t n = static_cast<std::size_t>(block_.count);
    const double p = p_[i];
    metrics[kPHat * n + i] = p;
    metrics[kVarRatio * n + i] = p * (1.0 - p) / (s_.p0 * (1.0 - s_.p0));
    metrics[kFixed * n + i] = (p == 0.0 || p == 1.0) ? 1.0 : 0.0;
  }

  PointConfig c_;
  const BernoulliSettings& s_;
  ChainBlock block_;
  std::vector<double> p_, ones_, points_;
  std::vector<kernels::WorkerRange> workers_;
};

class BernoulliFamily final : public Family {
 public:
  const char* name() const override { return "bernoulli"; }
  FamilyKind kind() const override { return FamilyKind::kContinuous; }
  const char* description() const override { return "a Bernoulli(p) refitted by its share of ones (a test family)"; }
  const std::vector<KeySpec>& keys() const override {
    static const std::vector<KeySpec> keys = {
        required(number_key("truth.p", "a probability in (0, 1)", 1e-9, 1.0 - 1e-9, "", "p_0, the truth's p")),
        number_key("model.alpha", "a pseudo-count >= 0", 0.0, 1e6, "0", "added to the ones and to the zeros"),
    };
    return keys;
  }
  std::shared_ptr<const FamilySettings> read(const ConfigReader& r, const PointConfig&) const override {
    auto s = std::make_shared<BernoulliSettings>();
    s->p0 = r.number(key_of(keys(), "truth.p"));
    s->alpha = r.number(key_of(keys(), "model.alpha"));
    return s;
  }
  void check(const PointConfig& c) const override {
    if (c.regime == kernels::Regime::kAccumulateSubsample)
      throw ConfigError("data.regime", "the bernoulli family runs replace and accumulate");
  }
  std::vector<MetricSpec> metrics() const override { return {std::begin(kMetrics), std::end(kMetrics)}; }
  std::optional<double> theory(const PointConfig& c, int metric, int t) const override {
    const auto& s = c.settings<BernoulliSettings>();
    if (t == 0) return metric == kPHat ? s.p0 : metric == kVarRatio ? 1.0 : 0.0;
    if (s.alpha != 0.0) return std::nullopt;
    if (metric == kPHat) return s.p0;
    if (metric == kVarRatio && c.regime == kernels::Regime::kReplace && c.real_count == 0)
      return std::pow(1.0 - 1.0 / c.samples, t);
    return std::nullopt;
  }
  SummarySettings default_summary() const override { return {"var_ratio", 0.5}; }
  std::vector<DetectorSpec> detectors() const override {
    return {{"diversity", "var_ratio", true, 1.0, -1.0, "ln (variance drop)"}};
  }
  double point_bytes(const PointConfig& c) const override { return 8.0 * 6 * static_cast<double>(c.chains); }
  BackendSupport support(const std::string& backend) const override { return {backend == "cpu", {}}; }
  std::unique_ptr<FamilyRun> make_run(const PointConfig& c, const std::string& backend, int,
                                      ChainBlock block) const override {
    if (backend != "cpu") throw std::invalid_argument("the bernoulli family has no " + backend + " backend");
    return std::make_unique<BernoulliRun>(c, block);
  }
};

}  // namespace

const Family& bernoulli_family() {
  static const BernoulliFamily f;
  return f;
}

}  // namespace ouro::test

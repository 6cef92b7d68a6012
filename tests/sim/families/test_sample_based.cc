// The sample-based metrics (metrics.sample_based) in the Gaussian and mixture families: the key's refusals, the
// metrics written only when listed, each backend's model sample against the chain's model, the metrics computed on
// exactly that sample, generation 0 against the truth's own sampling distribution, recall's fall under collapse,
// the thread count, and cpu against cuda.
//
// Tolerances. A mean over N draws is compared with its expectation in units of its standard error, |z| < kZ = 5:
// with at most about 60 such checks in a test, a correct backend fails with probability below 60 * 5.7e-7 < 1e-4
// (runs are deterministic, so a pass is reproducible). The brute-force metrics here share no code with
// kernels/core/sample_metrics.h: every distance listed, radii by sorting.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/core/state.h"
#include "sim/engine/config.h"
#include "sim/families/gaussian/gaussian_family.h"
#include "sim/families/gaussian/gaussian_truth.h"
#include "sim/families/gmm/gmm_family.h"
#include "tests/support/backend_test.h"
#include "tests/support/cli.h"

namespace {

using namespace ouro;
namespace fs = std::filesystem;

constexpr double kZ = 5.0;
const char* kAll = "[precision, recall, coverage, energy]";
const std::vector<std::string> kNames = {"precision", "recall", "coverage", "energy"};

// ---- brute force -------------------------------------------------------------------------------

double dist2(const double* a, const double* b, int d) {
  double s = 0.0;
  for (int k = 0; k < d; ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
  return s;
}

std::vector<double> kth_radii(const std::vector<double>& p, int d) {
  const std::size_t n = p.size() / d;
  std::vector<double> r(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<double> all;
    for (std::size_t j = 0; j < n; ++j)
      if (j != i) all.push_back(dist2(&p[i * d], &p[j * d], d));
    std::sort(all.begin(), all.end());
    r[i] = all[4];  // the 5th nearest other point
  }
  return r;
}

// precision, recall, coverage, energy of model sample g against held-out x.
std::vector<double> brute(const std::vector<double>& x, const std::vector<double>& g, int d) {
  const std::size_t m = x.size() / d, n = g.size() / d;
  const auto rx = kth_radii(x, d), rg = kth_radii(g, d);
  double p = 0, r = 0, c = 0;
  long double cross = 0, wx = 0, wg = 0;
  for (std::size_t j = 0; j < n; ++j) {
    bool in = false;
    for (std::size_t i = 0; i < m; ++i) in = in || dist2(&g[j * d], &x[i * d], d) <= rx[i];
    p += in;
  }
  for (std::size_t i = 0; i < m; ++i) {
    bool rec = false, cov = false;
    for (std::size_t j = 0; j < n; ++j) {
      const double e = dist2(&x[i * d], &g[j * d], d);
      rec = rec || e <= rg[j];
      cov = cov || e <= rx[i];
      cross += std::sqrt(static_cast<long double>(e));
    }
    r += rec;
    c += cov;
  }
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t k = 0; k < m; ++k)
      if (i != k) wx += std::sqrt(static_cast<long double>(dist2(&x[i * d], &x[k * d], d)));
  for (std::size_t j = 0; j < n; ++j)
    for (std::size_t k = 0; k < n; ++k)
      if (j != k) wg += std::sqrt(static_cast<long double>(dist2(&g[j * d], &g[k * d], d)));
  const long double energy =
      2.0L * cross / (static_cast<long double>(n) * m) - wx / (m * (m - 1.0L)) - wg / (n * (n - 1.0L));
  return {p / n, r / m, c / m, static_cast<double>(energy)};
}

// ---- a backend's state, read back through its checkpoint archive ------------------------------------

class Capture final : public kernels::StateArchive {
 public:
  bool loading() const override { return false; }
  void bytes(const char* name, void* data, std::uint64_t n) override {
    const char* p = static_cast<const char*>(data);
    saved_[name].assign(p, p + n);
  }
  void count(const char*, std::uint64_t&) override {}
  std::vector<double> doubles(const std::string& name) const {
    const auto& b = saved_.at(name);
    std::vector<double> v(b.size() / sizeof(double));
    std::memcpy(v.data(), b.data(), v.size() * sizeof(double));
    return v;
  }
  const std::vector<char>& raw(const std::string& name) const { return saved_.at(name); }

 private:
  std::map<std::string, std::vector<char>> saved_;
};

// ---- moments of a sample, checked against a model's -----------------------------------------------

// Each coordinate's mean and each covariance entry of the `count` points x (d each) against mean mu and covariance
// cov, in units of their standard errors (the covariance's from the sample's own fourth moments).
void expect_moments(const std::vector<double>& x, int d, const std::vector<double>& mu, const std::vector<double>& cov,
                    const std::string& what) {
  const std::size_t n = x.size() / d;
  std::vector<double> mean(d, 0.0);
  for (std::size_t i = 0; i < n; ++i)
    for (int a = 0; a < d; ++a) mean[a] += x[i * d + a] / n;
  for (int a = 0; a < d; ++a) {
    const double z = (mean[a] - mu[a]) / std::sqrt(cov[a * d + a] / n);
    EXPECT_LT(std::abs(z), kZ) << what << ": mean " << a << " " << mean[a] << " vs " << mu[a];
  }
  for (int a = 0; a < d; ++a)
    for (int b = 0; b <= a; ++b) {
      double s = 0.0, s2 = 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        const double v = (x[i * d + a] - mu[a]) * (x[i * d + b] - mu[b]);
        s += v;
        s2 += v * v;
      }
      const double c = s / n, se = std::sqrt((s2 / n - c * c) / n);
      EXPECT_LT(std::abs((c - cov[a * d + b]) / se), kZ)
          << what << ": cov " << a << b << " " << c << " vs " << cov[a * d + b];
    }
}

// The metric block's values of chain `chain` (of `chains`) for the four sample metrics, by name.
std::vector<double> chain_metrics(const PointConfig& c, const std::vector<double>& block, std::int64_t chain) {
  const auto names = metric_names(c);
  std::vector<double> out;
  for (const auto& want : kNames) {
    const auto it = std::find(names.begin(), names.end(), want);
    out.push_back(block[(it - names.begin()) * c.chains + chain]);
  }
  return out;
}

// Metric values against the brute force on the same points: precision, recall and coverage exactly (the same
// comparisons of the same squared distances), the energy to rounding (sums of at most 4e4 terms in double:
// relative 1e-11 of the mean distance, about 1).
void expect_metrics_of_sample(const std::vector<double>& got, const std::vector<double>& want,
                              const std::string& what) {
  for (int k = 0; k < 3; ++k) EXPECT_EQ(got[k], want[k]) << what << " " << kNames[k];
  EXPECT_NEAR(got[3], want[3], 1e-11) << what << " energy";
}

// ---- the key --------------------------------------------------------------------------------------

const char* kGaussian =
    "seed: 3\nchains: 4\ngenerations: 2\nmodel: {family: gaussian, dim: 2}\n"
    "truth: {mean: [1, -2], cov: [[2, 0.6], [0.6, 0.5]]}\ndata: {samples: 12, regime: replace}\n";
const char* kGmm =
    "seed: 9\nchains: 4\ngenerations: 2\nmodel: {family: gmm, components: 3, dim: 2}\n"
    "truth: {weights: [0.6, 0.3, 0.1], means: [[0, 0], [3, 0], [0, 3]], covs: [[1, 1], [0.5, 0.5], [0.3, 0.3]]}\n"
    "data: {samples: 200, real_fraction: 0.25, regime: replace}\n";

// A base config with more chains and the sample-based metrics' section.
std::string with(const char* base, int chains, const std::string& metrics) {
  std::string s = base;
  s.replace(s.find("chains: 4"), 9, "chains: " + std::to_string(chains));
  return s + "metrics: " + metrics + "\n";
}

void expect_refused(const std::string& yaml, const std::vector<std::string>& sets, const std::string& path,
                    const std::string& text) {
  try {
    load_experiment_text(yaml, sets);
    ADD_FAILURE() << "accepted: " << path;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path(), path) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

TEST(SampleBased, KeyRefusals) {
  for (const char* base : {kGaussian, kGmm}) {
    expect_refused(base, {"metrics.sample_based=[precision, recal]"}, "metrics.sample_based[1]",
                   "no sample-based metric \"recal\"");
    expect_refused(base, {"metrics.sample_based=[energy, recall, energy]"}, "metrics.sample_based[2]",
                   "energy is listed twice");
    expect_refused(base, {"metrics.sample_based=precision"}, "metrics.sample_based", "expected a list");
    expect_refused(base, {"metrics.sample_based=[[precision]]"}, "metrics.sample_based[0]", "expected one of");
    // k + 1 = 6 held-out points for the k-NN metrics, 2 for the energy.
    expect_refused(base, {"metrics.sample_based=[coverage]", "metrics.heldout=5"}, "metrics.heldout", "at least 6");
    expect_refused(base, {"metrics.sample_based=[energy]", "metrics.heldout=1"}, "metrics.heldout", "at least 2");
    EXPECT_NO_THROW(load_experiment_text(base, {"metrics.sample_based=[energy]", "metrics.heldout=2"}));
    EXPECT_NO_THROW(load_experiment_text(base, {"metrics.heldout=1"}));  // nothing asked
  }
  // The model sample is data.samples points: 6 for the k-NN metrics (swept values are checked one by one).
  expect_refused(kGaussian, {"metrics.sample_based=[recall]", "data.samples=5"}, "data.samples", "at least 6");
  expect_refused(std::string(kGaussian) + "sweep: {data.samples: [20, 5]}\n", {"metrics.sample_based=[precision]"},
                 "data.samples", "at least 6");
  EXPECT_NO_THROW(load_experiment_text(kGaussian, {"metrics.sample_based=[energy]", "data.samples=5"}));
  expect_refused(kGmm, {"metrics.sample_based=[precision]", "data.samples=5"}, "data.samples", "at least 6");
}

// Written only when listed, in the table's order; without the key the written metrics are those of a config that
// predates it, and the backend's block has no rows for them (its memory is what it was).
TEST(SampleBased, WrittenOnlyWhenListed) {
  for (const char* base : {kGaussian, kGmm}) {
    const PointConfig plain = load_experiment_text(base, {}).points[0].config;
    const auto none = written_metric_names(plain);
    const PointConfig one = load_experiment_text(base, {"metrics.sample_based=[coverage]"}).points[0].config;
    const auto rows_plain = metric_names(plain), rows_one = metric_names(one);
    EXPECT_EQ(rows_one.size(), rows_plain.size() + 4);
    for (const auto& n : kNames) {
      EXPECT_EQ(std::count(rows_plain.begin(), rows_plain.end(), n), 0) << n;
      EXPECT_EQ(std::count(rows_one.begin(), rows_one.end(), n), 1) << n;
    }
    for (const auto& n : kNames) EXPECT_EQ(std::find(none.begin(), none.end(), n), none.end()) << n;
    const PointConfig two = load_experiment_text(base, {"metrics.sample_based=[energy, recall]"}).points[0].config;
    auto written = written_metric_names(two);
    std::vector<std::string> extra;
    for (const auto& n : written)
      if (std::find(none.begin(), none.end(), n) == none.end()) extra.push_back(n);
    EXPECT_EQ(extra, (std::vector<std::string>{"recall", "energy"}));
    // Removing them gives the old list, in its order.
    written.erase(std::remove_if(written.begin(), written.end(),
                                 [](const std::string& n) { return n == "recall" || n == "energy"; }),
                  written.end());
    EXPECT_EQ(written, none);
  }
}

// ---- the model sample -----------------------------------------------------------------------------

// The Gaussian cpu backend: model_sample's points have the truth's mean and covariance at generation 0 and the
// chain's fitted ones (read from its state) after; its first data.samples points are the ones the metrics measured.
TEST(SampleBased, GaussianModelSampleIsTheChainsModel) {
  const PointConfig c =
      load_experiment_text(kGaussian, {std::string("metrics.sample_based=") + kAll, "metrics.heldout=300"})
          .points[0]
          .config;
  const int d = 2;
  const std::vector<double> heldout = make_gaussian_heldout(c, make_gaussian_truth(c));
  const std::size_t M = metric_names(c).size();
  std::vector<double> block(M * c.chains);
  auto run = make_family_run(c, "cpu", 0, ChainBlock{0, c.chains});
  EXPECT_EQ(run->point_dim(), d);
  constexpr std::int64_t kDraws = 40000;
  for (int t = 0; t <= 2; ++t) {
    if (t == 0) run->start(block.data());
    else run->advance(t, block.data());
    Capture state;
    run->state(state);
    for (std::int64_t chain = 0; chain < c.chains; ++chain) {
      const std::string what = "generation " + std::to_string(t) + " chain " + std::to_string(chain);
      std::vector<double> mu{1, -2}, cov{2, 0.6, 0.6, 0.5};
      if (t > 0) {
        const std::vector<double> mus = state.doubles("mu"), covs = state.doubles("cov");
        ASSERT_EQ(state.raw("ok").at(chain), 1) << what;
        mu.assign(mus.begin() + chain * d, mus.begin() + (chain + 1) * d);
        cov.assign(covs.begin() + chain * d * d, covs.begin() + (chain + 1) * d * d);
      }
      std::vector<double> x;
      ASSERT_TRUE(run->model_sample(chain, kDraws, x));
      ASSERT_EQ(x.size(), static_cast<std::size_t>(kDraws * d));
      expect_moments(x, d, mu, cov, what);
      std::vector<double> head;
      ASSERT_TRUE(run->model_sample(chain, c.samples, head));
      EXPECT_TRUE(std::equal(head.begin(), head.end(), x.begin())) << what << ": not a prefix";
      expect_metrics_of_sample(chain_metrics(c, block, chain), brute(heldout, head, d), what);
    }
  }
}

// The mixture cpu backend: the same against the truth mixture at generation 0 and the chain's fitted mixture after
// (its parameter block w | mu | cov | ... read from its state; the moments of a mixture computed here), the standard
// errors of the covariance from the sample's fourth moments (a mixture is not Gaussian).
TEST(SampleBased, MixtureModelSampleIsTheChainsModel) {
  const PointConfig c =
      load_experiment_text(kGmm, {std::string("metrics.sample_based=") + kAll, "metrics.heldout=300"}).points[0].config;
  const int d = 2, K = 3, P = K * (2 + d + 2 * d * d);
  const std::vector<double> heldout = make_gmm_heldout(c, make_gmm_truth(c));
  const std::size_t M = metric_names(c).size();
  std::vector<double> block(M * c.chains);
  auto run = make_family_run(c, "cpu", 0, ChainBlock{0, c.chains});
  EXPECT_EQ(run->point_dim(), d);
  // A mixture's overall mean and covariance: sum w_k mu_k, sum w_k (S_k + mu_k mu_k^T) - mu mu^T.
  auto moments = [&](const double* w, const double* mus, const double* covs, std::vector<double>& mu,
                     std::vector<double>& cov) {
    mu.assign(d, 0.0);
    cov.assign(d * d, 0.0);
    for (int k = 0; k < K; ++k)
      for (int a = 0; a < d; ++a) mu[a] += w[k] * mus[k * d + a];
    for (int k = 0; k < K; ++k)
      for (int a = 0; a < d; ++a)
        for (int b = 0; b < d; ++b)
          cov[a * d + b] += w[k] * (covs[k * d * d + a * d + b] + mus[k * d + a] * mus[k * d + b]);
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) cov[a * d + b] -= mu[a] * mu[b];
  };
  constexpr std::int64_t kDraws = 40000;
  for (int t = 0; t <= 2; ++t) {
    if (t == 0) run->start(block.data());
    else run->advance(t, block.data());
    Capture state;
    run->state(state);
    for (std::int64_t chain = 0; chain < c.chains; ++chain) {
      const std::string what = "generation " + std::to_string(t) + " chain " + std::to_string(chain);
      std::vector<double> mu, cov;
      if (t == 0) {
        const double w[] = {0.6, 0.3, 0.1}, mus[] = {0, 0, 3, 0, 0, 3},
                     covs[] = {1, 0, 0, 1, 0.5, 0, 0, 0.5, 0.3, 0, 0, 0.3};
        moments(w, mus, covs, mu, cov);
      } else {
        ASSERT_EQ(state.raw("failed").at(chain), 0) << what;
        const std::vector<double> params = state.doubles("params");
        const double* p = params.data() + chain * P;
        moments(p, p + K, p + K + K * d, mu, cov);
      }
      std::vector<double> x;
      ASSERT_TRUE(run->model_sample(chain, kDraws, x));
      expect_moments(x, d, mu, cov, what);
      std::vector<double> head;
      ASSERT_TRUE(run->model_sample(chain, c.samples, head));
      EXPECT_TRUE(std::equal(head.begin(), head.end(), x.begin())) << what << ": not a prefix";
      expect_metrics_of_sample(chain_metrics(c, block, chain), brute(heldout, head, d), what);
    }
  }
}

// The Gaussian held-out points are the set heldout_nll summarises (its mean and covariance, to rounding).
TEST(SampleBased, GaussianHeldoutPointsAreTheHeldoutNllSet) {
  const PointConfig c = load_experiment_text(kGaussian, {"metrics.heldout=257"}).points[0].config;
  const auto truth = make_gaussian_truth(c);
  const auto x = make_gaussian_heldout(c, truth);
  const int d = 2, h = 257;
  ASSERT_EQ(x.size(), static_cast<std::size_t>(h * d));
  std::vector<double> mean(d, 0.0);
  for (int i = 0; i < h; ++i)
    for (int a = 0; a < d; ++a) mean[a] += x[i * d + a] / h;
  for (int a = 0; a < d; ++a) EXPECT_NEAR(mean[a], truth.heldout_mean[a], 1e-12);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) {
      double s = 0.0, rr = 0.0;
      for (int i = 0; i < h; ++i) s += (x[i * d + a] - mean[a]) * (x[i * d + b] - mean[b]) / h;
      for (int k = 0; k < d; ++k) rr += truth.heldout_root[a * d + k] * truth.heldout_root[b * d + k];
      EXPECT_NEAR(s, rr, 1e-12);
    }
}

// ---- the metrics' values --------------------------------------------------------------------------

// Generation 0: each chain's model sample is n fresh draws of the truth, so the chains' mean of each metric is the
// expectation, given the fixed held-out set, of the metric of n truth draws: estimated here by R independent samples
// drawn with the standard library's generator and measured by the brute force, against the same held-out points.
// Power: a model sample drawn with half the truth's covariance (the engine drawing from a collapsed model) moves
// recall and energy more than 2 kZ standard errors away (checked below), and so would fail.
TEST(SampleBased, GenerationZeroIsTheTruthsOwnSample) {
  const std::string yaml =
      "seed: 12\nchains: 400\ngenerations: 1\nmodel: {family: gaussian, dim: 2}\n"
      "truth: {mean: [1, -2], cov: [[2, 0.6], [0.6, 0.5]]}\ndata: {samples: 20}\n"
      "metrics: {heldout: 150, sample_based: [precision, recall, coverage, energy]}\n";
  const auto run = test::run_family(yaml, "cpu");
  const PointConfig& c = run.config;
  const std::vector<double> heldout = make_gaussian_heldout(c, make_gaussian_truth(c));
  const int d = 2, n = 20, R = 3000;
  // The truth's Cholesky factor by hand: [[sqrt 2, 0], [0.6 / sqrt 2, sqrt(0.5 - 0.18)]].
  const double l00 = std::sqrt(2.0), l10 = 0.6 / l00, l11 = std::sqrt(0.5 - l10 * l10);
  auto reference = [&](double scale) {
    std::mt19937_64 rng(99);
    std::normal_distribution<double> z;
    std::vector<double> sum(4, 0.0), sq(4, 0.0);
    const double s = std::sqrt(scale);
    for (int r = 0; r < R; ++r) {
      std::vector<double> g(n * d);
      for (int j = 0; j < n; ++j) {
        const double z0 = z(rng), z1 = z(rng);
        g[j * d] = 1.0 + s * l00 * z0;
        g[j * d + 1] = -2.0 + s * (l10 * z0 + l11 * z1);
      }
      const auto v = brute(heldout, g, d);
      for (int k = 0; k < 4; ++k) sum[k] += v[k], sq[k] += v[k] * v[k];
    }
    std::vector<std::pair<double, double>> out;  // mean, standard error
    for (int k = 0; k < 4; ++k) {
      const double mean = sum[k] / R;
      out.emplace_back(mean, std::sqrt((sq[k] / R - mean * mean) / R));
    }
    return out;
  };
  const auto truth = reference(1.0), collapsed = reference(0.5);
  for (int k = 0; k < 4; ++k) {
    const Summary& s = run.at(0, kNames[k]);
    ASSERT_EQ(s.chains, 400) << kNames[k];
    const double se = std::hypot(s.se, truth[k].second);
    EXPECT_LT(std::abs(s.mean - truth[k].first) / se, kZ)
        << kNames[k] << ": engine " << s.mean << " +- " << s.se << ", reference " << truth[k].first << " +- "
        << truth[k].second;
    if (kNames[k] == "recall" || kNames[k] == "energy") {
      EXPECT_GT(std::abs(collapsed[k].first - truth[k].first) / se, 2 * kZ) << kNames[k] << ": no power";
    }
  }
}

// Under replace without real data at n = 10 the fitted variance shrinks (by 0.9 a generation in expectation): the
// model's k-NN balls cover less of the held-out set, so recall falls, and the energy distance grows. Paired over 300
// chains (generation 12 against generation 0 of the same chain), each move is many standard errors (z > 2 kZ).
TEST(SampleBased, RecallFallsAndEnergyRisesUnderCollapse) {
  const std::string yaml =
      "seed: 4\nchains: 300\ngenerations: 12\nmodel: {family: gaussian, dim: 1}\ntruth: {isotropic: 1}\n"
      "data: {samples: 10, regime: replace}\nmetrics: {heldout: 200, sample_based: [recall, energy]}\n";
  const auto run = test::run_family(yaml, "cpu", 0, true);
  const std::int64_t C = run.config.chains;
  for (const auto& [name, sign] : std::vector<std::pair<std::string, double>>{{"recall", -1.0}, {"energy", 1.0}}) {
    const int m = run.metric(name);
    double s = 0.0, s2 = 0.0;
    for (std::int64_t i = 0; i < C; ++i) {
      const double diff = run.values[12][m * C + i] - run.values[0][m * C + i];
      s += diff;
      s2 += diff * diff;
    }
    const double mean = s / C, se = std::sqrt((s2 / C - mean * mean) / (C - 1));
    EXPECT_GT(sign * mean / se, 2 * kZ) << name << ": mean move " << mean << " +- " << se;
  }
}

// Every chain is one thread's, the sums in a fixed order: metrics.csv is the same file at one and two threads.
TEST(SampleBased, MetricsCsvBitIdenticalAtOneAndTwoThreads) {
  const fs::path dir = test::temp_dir("sample-based-threads");
  for (const char* base : {kGaussian, kGmm}) {
    fs::remove_all(dir / "t1");
    fs::remove_all(dir / "t2");
    const fs::path cfg =
        test::write_config(dir, with(base, 9, std::string("{heldout: 120, sample_based: ") + kAll + "}") +
                                    "sweep: {data.regime: [replace, accumulate]}\n");
    std::string csv[2];
    for (const int threads : {1, 2}) {
      const fs::path out = dir / ("t" + std::to_string(threads));
      const auto r = test::run("run " + cfg.string() + " --backend cpu --no-progress --threads " +
                               std::to_string(threads) + " --out " + out.string());
      ASSERT_EQ(r.code, 0) << r.out;
      csv[threads - 1] = test::slurp(out / "metrics.csv");
    }
    EXPECT_EQ(csv[0], csv[1]) << base;
    for (const auto& n : kNames) EXPECT_NE(csv[0].find("," + n + ","), std::string::npos) << n;
  }
  fs::remove_all(dir);
}

// cpu against cuda. The mixture's fits are the same bits on both (kernels/gmm/gmm.h), so its model samples and
// metrics are too. The Gaussian's fits agree to rounding only (other reduction orders), so a model point within
// rounding of a ball's boundary may fall on the other side: a count differs by at most one point (1/n or 1/m),
// and rarely (at most 1% of the values); the energy agrees to 1e-9 relative, as the fits do.
TEST(SampleBased, CpuAgreesWithCuda) {
  if (const std::string why = test::cuda_missing(); !why.empty()) GTEST_SKIP() << why;
  const test::SmallCudaScratch small("200000");  // slices of a few chains
  const std::string metrics = std::string("{heldout: 150, sample_based: ") + kAll + "}";
  {
    const auto cpu = test::run_family(with(kGmm, 300, metrics), "cpu", 0, true);
    const auto gpu = test::run_family(with(kGmm, 300, metrics), "cuda", 0, true);
    test::expect_same_chain_values(cpu, gpu, [&](int metric, double a, double b) {
      const std::string& name = cpu.names[metric];
      return name == "tail_mass" || name == "rare_mode_mass" ? std::abs(a - b) <= 1e-9 : a == b;
    });
  }
  const auto cpu = test::run_family(with(kGaussian, 300, metrics), "cpu", 0, true);
  const auto gpu = test::run_family(with(kGaussian, 300, metrics), "cuda", 0, true);
  const double n = cpu.config.samples, m = 150;
  int flips = 0, values = 0;
  test::expect_same_chain_values(cpu, gpu, [&](int metric, double a, double b) {
    const std::string& name = cpu.names[metric];
    if (name == "precision" || name == "recall" || name == "coverage") {
      ++values;
      if (a != b) ++flips;
      return std::abs(a - b) <= 1.0 / std::min(n, m) + 1e-15;
    }
    const bool tail = name == "tail_mass";
    return std::abs(a - b) <= 1e-12 + (tail ? 1e-7 : 1e-9) * std::abs(a);
  });
  EXPECT_LE(flips, values / 100);
}

}  // namespace

// The kernel density family chain by chain against a reference written here with plain loops and stored points,
// sharing no code with the engine but the random streams' definition (Philox blocks and Box-Muller normals): every
// regime, real data fresh and fixed, age decay; and the held-out NLL kernel against a direct long-double sum.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "kernels/core/normal.h"
#include "kernels/core/rng.h"
#include "kernels/kde/kde_backend.h"
#include "tests/support/backend_test.h"
#include "tests/support/cli.h"
#include "tests/support/run_outputs.h"

namespace {

using namespace ouro;

constexpr int kD = 2;
const double kMu[2] = {1.0, -1.0};
const double kCov[2][2] = {{1.0, 0.3}, {0.3, 0.5}};
constexpr double kTrace0 = 1.5;

struct Ref {
  std::string regime = "replace";
  std::string source = "fresh";
  double real_fraction = 0.0;
  double decay = 1.0;
  double h = 0.4;
  int n = 12, generations = 6, heldout = 40, chains = 6;
  std::uint32_t seed = 3;
  bool off_by_one = false;  // planted bug: the parent after the one picked
  std::string yaml() const {
    return "name: reference\nseed: " + std::to_string(seed) + "\nchains: " + std::to_string(chains) +
           "\ngenerations: " + std::to_string(generations) + "\nmodel: {family: kde, bandwidth: " + std::to_string(h) +
           "}\ntruth: {mean: [1.0, -1.0], cov: [[1.0, 0.3], [0.3, 0.5]]}\nmetrics: {heldout: " +
           std::to_string(heldout) + "}\ndata: {samples: " + std::to_string(n) + ", regime: " + regime +
           ", real_fraction: " + std::to_string(real_fraction) + ", real_source: " + source +
           ", age_decay: " + std::to_string(decay) + "}\n";
  }
};

struct Point {
  double x[kD];
  int anc;   // founder: the real point it descends from
  int born;  // generation that added it
};

double normal_of(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint32_t stream, std::uint64_t m) {
  const rng::Block b = rng::draw_block(seed, chain, gen, stream, m / 4);
  double z[4];
  kernels::box_muller(b, z);
  return z[m % 4];
}

// A truth draw: mu + L z, L the Cholesky factor of kCov written out.
void truth_point(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, std::uint64_t i, double* x) {
  const double l00 = std::sqrt(kCov[0][0]), l10 = kCov[1][0] / l00, l11 = std::sqrt(kCov[1][1] - l10 * l10);
  const double z0 = normal_of(seed, chain, gen, rng::kStreamRealDraw, i * kD);
  const double z1 = normal_of(seed, chain, gen, rng::kStreamRealDraw, i * kD + 1);
  x[0] = kMu[0] + l00 * z0;
  x[1] = kMu[1] + l10 * z0 + l11 * z1;
}

// The metrics of one chain's model: heldout_nll, var_ratio, mean_sq_err.
void model_metrics(const Ref& r, const std::vector<Point>& train, int t, const std::vector<double>& heldout,
                   double* out) {
  std::vector<long double> w(train.size());
  long double total = 0.0L;
  for (std::size_t j = 0; j < train.size(); ++j)
    total += w[j] = std::pow(static_cast<long double>(r.decay), t - train[j].born);
  long double mean[kD] = {0.0L, 0.0L};
  for (std::size_t j = 0; j < train.size(); ++j)
    for (int a = 0; a < kD; ++a) mean[a] += w[j] * train[j].x[a] / total;
  long double ss = 0.0L, err = 0.0L;
  for (std::size_t j = 0; j < train.size(); ++j)
    for (int a = 0; a < kD; ++a) ss += w[j] * (train[j].x[a] - mean[a]) * (train[j].x[a] - mean[a]) / total;
  for (int a = 0; a < kD; ++a) err += (mean[a] - kMu[a]) * (mean[a] - kMu[a]);
  long double nll = 0.0L;
  const long double h2 = static_cast<long double>(r.h) * r.h;
  const std::size_t M = heldout.size() / kD;
  for (std::size_t i = 0; i < M; ++i) {
    long double p = 0.0L;
    for (std::size_t j = 0; j < train.size(); ++j) {
      long double r2 = 0.0L;
      for (int a = 0; a < kD; ++a) r2 += (heldout[i * kD + a] - train[j].x[a]) * (heldout[i * kD + a] - train[j].x[a]);
      p += w[j] / total * std::exp(-r2 / (2 * h2)) / (2 * M_PIl * h2);
    }
    nll -= std::log(p) / M;
  }
  out[0] = static_cast<double>(nll);
  out[1] = static_cast<double>((ss + kD * h2) / kTrace0);
  out[2] = static_cast<double>(err);
}

// Every chain's [generation][heldout_nll, var_ratio, mean_sq_err, ancestors].
std::vector<std::vector<std::vector<double>>> reference(const Ref& r) {
  std::vector<double> heldout(static_cast<std::size_t>(r.heldout) * kD);
  for (int i = 0; i < r.heldout; ++i) truth_point(r.seed, rng::kHeldoutChain, 0, i, heldout.data() + i * kD);
  const int real_count = static_cast<int>(std::lround(r.real_fraction * r.n));
  std::vector<std::vector<std::vector<double>>> out(r.chains);
  for (int c = 0; c < r.chains; ++c) {
    const auto chain = static_cast<std::uint32_t>(c);
    std::vector<Point> pool, train;
    for (int t = 1; t <= r.generations; ++t) {
      const int real = t == 1 ? r.n : real_count;
      std::vector<Point> fresh;
      for (int i = 0; i < real; ++i) {
        Point p;
        truth_point(r.seed, chain, r.source == "fixed" ? 1u : static_cast<std::uint32_t>(t), i, p.x);
        p.anc = (r.source == "fixed" ? 0 : t - 1) * r.n + i;  // every real point founds a lineage
        p.born = t;
        fresh.push_back(p);
      }
      for (int j = 0; real + j < r.n; ++j) {
        // The parent: 64 bits of block real + j of the synthetic component stream; uniform or by age weight.
        const rng::Block b =
            rng::draw_block(r.seed, chain, static_cast<std::uint32_t>(t), rng::kStreamSyntheticComponent, real + j);
        const std::uint64_t bits = (static_cast<std::uint64_t>(b.v[0]) << 32) | b.v[1];
        const std::size_t m = train.size();
        std::size_t parent = 0;
        if (r.decay == 1.0) {
          __extension__ using u128 = unsigned __int128;
          parent = static_cast<std::size_t>((static_cast<u128>(bits) * m) >> 64);
        } else {
          std::vector<double> cum(m);
          double acc = 0.0;
          for (std::size_t q = 0; q < m; ++q) cum[q] = acc += std::pow(r.decay, (t - 1) - train[q].born);
          const double u = static_cast<double>(bits >> 12) * 0x1.0p-52 + 0x1.0p-53;
          const double target = u * cum[m - 1];
          while (parent + 1 < m && !(cum[parent] > target)) ++parent;
        }
        if (r.off_by_one) parent = (parent + 1) % m;
        Point p;
        for (int a = 0; a < kD; ++a)
          p.x[a] = train[parent].x[a] + r.h * normal_of(r.seed, chain, static_cast<std::uint32_t>(t),
                                                        rng::kStreamSyntheticDraw,
                                                        static_cast<std::uint64_t>(real + j) * kD + a);
        p.anc = train[parent].anc;
        p.born = t;
        fresh.push_back(p);
      }
      if (r.regime == "replace") pool = fresh;
      else pool.insert(pool.end(), fresh.begin(), fresh.end());
      if (r.regime == "accumulate_subsample") {
        // Selection sampling: position q of the pool taken with probability (needed) / (P - q).
        train.clear();
        const std::int64_t P = static_cast<std::int64_t>(pool.size());
        std::int64_t needed = std::min<std::int64_t>(r.n, P);
        for (std::int64_t q = 0; q < P && needed > 0; ++q) {
          const rng::Block b =
              rng::draw_block(r.seed, chain, static_cast<std::uint32_t>(t), rng::kStreamSubsample, q / 2);
          const double u = q % 2 ? rng::u01_open(b.v[2], b.v[3]) : rng::u01_open(b.v[0], b.v[1]);
          if (static_cast<double>(P - q) * u < static_cast<double>(needed)) {
            train.push_back(pool[q]);
            --needed;
          }
        }
      } else {
        train = pool;
      }
      double m[3];
      model_metrics(r, train, t, heldout, m);
      std::set<int> founders;
      for (const Point& p : fresh) founders.insert(p.anc);
      const double distinct = static_cast<double>(founders.size());
      out[c].push_back({m[0], m[1], m[2], distinct});
    }
  }
  return out;
}

// Mismatches between the engine and the reference (relative 1e-9 for the sums, exact for the ancestor count).
int mismatches(const Ref& r, bool report) {
  const auto engine = test::run_family(r.yaml(), "cpu", 0, true);
  const auto ref = reference(r);
  const char* names[] = {"heldout_nll", "var_ratio", "mean_sq_err", "ancestors"};
  int bad = 0;
  for (int c = 0; c < r.chains; ++c)
    for (int t = 1; t <= r.generations; ++t)
      for (int k = 0; k < 4; ++k) {
        const double e = engine.values[t][engine.metric(names[k]) * r.chains + c], v = ref[c][t - 1][k];
        const double tol = k == 3 ? 0.0 : 1e-9 * std::max(1.0, std::abs(v));
        if (std::abs(e - v) <= tol) continue;
        ++bad;
        if (report && bad <= 10)
          ADD_FAILURE() << names[k] << " chain " << c << " generation " << t << ": engine " << e << " reference " << v;
      }
  return bad;
}

TEST(KdeReference, ReplaceFreshReal) {
  Ref r;
  r.real_fraction = 0.25;
  EXPECT_EQ(mismatches(r, true), 0);
}

TEST(KdeReference, ReplaceFixedReal) {
  Ref r;
  r.real_fraction = 0.5;
  r.source = "fixed";
  EXPECT_EQ(mismatches(r, true), 0);
}

TEST(KdeReference, AccumulateWithAgeDecay) {
  Ref r;
  r.regime = "accumulate";
  r.decay = 0.6;
  r.real_fraction = 0.25;
  EXPECT_EQ(mismatches(r, true), 0);
}

TEST(KdeReference, AccumulateSubsample) {
  Ref r;
  r.regime = "accumulate_subsample";
  EXPECT_EQ(mismatches(r, true), 0);
}

// Planted bug: a reference that takes the parent after the one picked disagrees with the engine (the comparison
// above would catch an engine with that bug).
TEST(KdeReference, CatchesAParentOffByOne) {
  Ref r;
  r.off_by_one = true;
  EXPECT_GT(mismatches(r, false), 0);
}

// The held-out NLL kernel against a direct long-double sum, with and without weights, in several dimensions, with
// a centre count that is not a multiple of the eight lanes.
TEST(KdeHeldout, AgreesWithADirectSum) {
  for (int d : {1, 2, 3, 5}) {
    const std::int64_t m = 37, M = 23;
    std::vector<double> c(m * d), x(M * d), lw(m);
    for (std::int64_t j = 0; j < m * d; ++j) c[j] = std::sin(1.3 * j) * 2.0;
    for (std::int64_t i = 0; i < M * d; ++i) x[i] = std::cos(0.7 * i) * 2.5;
    for (std::int64_t j = 0; j < m; ++j) lw[j] = -0.1 * (j % 7);
    for (bool weighted : {false, true}) {
      const double h = 0.35;
      long double total = 0.0L;
      for (std::int64_t j = 0; j < m; ++j) total += weighted ? std::exp(static_cast<long double>(lw[j])) : 1.0L;
      long double nll = 0.0L;
      for (std::int64_t i = 0; i < M; ++i) {
        long double p = 0.0L;
        for (std::int64_t j = 0; j < m; ++j) {
          long double r2 = 0.0L;
          for (int a = 0; a < d; ++a) r2 += (x[i * d + a] - c[j * d + a]) * (x[i * d + a] - c[j * d + a]);
          const long double w = weighted ? std::exp(static_cast<long double>(lw[j])) : 1.0L;
          p += w / total * std::exp(-r2 / (2.0L * h * h)) / std::pow(2.0L * M_PIl * h * h, d / 2.0L);
        }
        nll -= std::log(p) / M;
      }
      const double got = kernels::cpu_kde_heldout_nll(x.data(), M, c.data(), weighted ? lw.data() : nullptr, m, d, h);
      EXPECT_NEAR(got, static_cast<double>(nll), 1e-12 * std::abs(static_cast<double>(nll)))
          << "d " << d << (weighted ? " weighted" : "");
    }
  }
}

// cpu vs cuda on the same chains: the cuda backend runs the cpu's per-chain code (kernels/kde/kde.h) and sums the
// held-out terms in the cpu's lanes and order with the same polynomial exp and log, without FMA contraction, so the
// values are expected to agree to the bit; the check allows relative 1e-13 (a few ulps) and reports any difference.
// Every regime, real data, age decay, a filter and the sample-based metrics. Skipped where no CUDA device exists.
TEST(KdeCpuVsCuda, AgreeChainByChain) {
  if (const std::string why = test::cuda_missing(); !why.empty()) GTEST_SKIP() << why;
  for (const char* data :
       {"{samples: 40, regime: replace, real_fraction: 0.2}", "{samples: 40, regime: accumulate, age_decay: 0.7}",
        "{samples: 40, regime: accumulate_subsample, real_fraction: 0.1, real_source: fixed}",
        "{samples: 40, dedup: true, dedup_resolution: 0.05}"}) {
    SCOPED_TRACE(data);
    const std::string yaml = std::string(
                                 "seed: 4\nchains: 300\ngenerations: 8\nmodel: {family: kde, bandwidth: "
                                 "silverman}\ntruth: {shape: moons, noise: 0.1}\nmetrics: {heldout: 300, "
                                 "sample_based: [precision, recall, coverage, energy]}\ndata: ") +
                             data + "\n";
    const auto cpu = test::run_family(yaml, "cpu", 0, true);
    const auto gpu = test::run_family(yaml, "cuda", 0, true);
    test::expect_same_chain_values(
        cpu, gpu, [](int, double a, double b) { return a == b || std::abs(a - b) <= 1e-13 * std::abs(a); });
  }
  // The strategies that need the truth's density, on a mixture truth.
  const std::string yaml =
      "seed: 4\nchains: 300\ngenerations: 8\nmodel: {family: kde, bandwidth: 0.3}\ntruth: {weights: [0.7, 0.3], "
      "means: [[0, 0], [3, 1]], covs: [[1, 1], [0.5, 0.5]]}\nmetrics: {heldout: 300}\ndata: {samples: 40, regime: "
      "accumulate, verifier: {keep_plausible: 1.0, keep_implausible: 0.2, quantile: 0.1}, tail_upsample: {factor: "
      "3.0, quantile: 0.05}}\n";
  const auto cpu = test::run_family(yaml, "cpu", 0, true);
  const auto gpu = test::run_family(yaml, "cuda", 0, true);
  test::expect_same_chain_values(
      cpu, gpu, [](int, double a, double b) { return a == b || std::abs(a - b) <= 1e-13 * std::abs(a); });
}

// The bandwidth rules on each generation's training-set size m (t n under accumulate), in d = 3 where they differ:
// scott m^(-1/7), silverman (5 m / 4)^(-1/7) (to a few ulps: the polynomial exp and log).
TEST(KdeBandwidth, RulesFollowTheTrainingSetSize) {
  for (const char* rule : {"scott", "silverman"}) {
    const std::string yaml = std::string("seed: 2\nchains: 3\ngenerations: 5\nmodel: {family: kde, bandwidth: ") +
                             rule +
                             "}\ntruth: {mean: [0, 0, 0], cov: [1, 2, 3]}\nmetrics: {heldout: 10}\ndata: {samples: "
                             "30, regime: accumulate}\n";
    const auto c = test::run_family(yaml, "cpu", 0, true);
    for (int t = 1; t <= 5; ++t) {
      const double m = 30.0 * t;
      const double expected = std::pow(std::string(rule) == "scott" ? m : m * 5.0 / 4.0, -1.0 / 7.0);
      for (int i = 0; i < 3; ++i)
        EXPECT_NEAR(c.values[t][c.metric("bandwidth") * 3 + i], expected, 1e-14) << rule << " generation " << t;
    }
  }
}

// A generation whose filter keeps nothing leaves an empty training set under replace without real data: the chain
// draws nothing more (no lineage comes back), its model metrics are empty, and nothing reads past its arrays (the
// tail weight's cumulative weights included). The verifier keeps a candidate with probability 1e-4 and draws at most
// one per point, so nearly every chain's generation 2 keeps nothing.
TEST(KdeEmpty, AnEmptyTrainingSetStaysEmpty) {
  const std::string yaml =
      "seed: 3\nchains: 8\ngenerations: 5\nmodel: {family: kde, bandwidth: scott}\ntruth: {mean: [0, 0], cov: [1, "
      "1]}\nmetrics: {heldout: 20}\ndata: {samples: 10, max_draw_factor: 1, verifier: {keep_plausible: 0.0001, "
      "keep_implausible: 0.0, quantile: 0.5}, tail_upsample: {factor: 2.0, quantile: 0.1}}\n";
  const auto c = test::run_family(yaml, "cpu", 0, true);
  int empty = 0;
  for (int i = 0; i < 8; ++i)
    for (int t = 2; t <= 5; ++t) {
      const double ancestors = c.values[t][c.metric("ancestors") * 8 + i];
      if (ancestors > 0.0) continue;
      ++empty;
      EXPECT_TRUE(std::isnan(c.values[t][c.metric("heldout_nll") * 8 + i])) << "chain " << i << " generation " << t;
      EXPECT_TRUE(std::isnan(c.values[t][c.metric("bandwidth") * 8 + i])) << "chain " << i << " generation " << t;
      if (t < 5) EXPECT_EQ(c.values[t + 1][c.metric("ancestors") * 8 + i], 0.0) << "a lineage came back";
    }
  EXPECT_GT(empty, 16) << "the test should see empty training sets";
}

// metrics.csv is the same bytes on 1 and 2 threads (each chain is computed whole by one thread).
TEST(KdeThreads, SameBytesOnOneAndTwoThreads) {
  const auto dir = test::temp_dir("kde-threads");
  Ref r;
  r.regime = "accumulate_subsample";
  r.decay = 0.8;
  r.chains = 9;
  const auto cfg = test::write_config(dir, r.yaml());
  for (int threads : {1, 2}) {
    const auto out = test::run("run " + cfg.string() + " --no-progress --threads " + std::to_string(threads) +
                               " --out " + (dir / ("t" + std::to_string(threads))).string());
    ASSERT_EQ(out.code, 0) << out.out;
  }
  test::expect_same_output(dir / "t1", dir / "t2", "1 and 2 threads");
}

}  // namespace

// The mixture family's math (kernels/gmm/gmm.h) against independent references:
// std::exp, a plain Eigen EM, Monte Carlo and quadrature; EM's monotonicity;
// the cpu backend's vectorised E-step against the serial lane order;
// degenerate data.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/gmm/gmm.h"
#include "kernels/gmm/gmm_backend.h"

namespace {

using namespace ouro::kernels;

// A parameter block built from weights, means and covariances.
struct Mixture {
  int K, d;
  std::vector<double> block;
  Mixture(const std::vector<double>& w, const std::vector<double>& mu, const std::vector<double>& cov)
      : K(static_cast<int>(w.size())), d(static_cast<int>(mu.size() / w.size())), block(gmm_block_size(K, d)) {
    const GmmView v = view();
    std::copy(w.begin(), w.end(), v.w);
    std::copy(mu.begin(), mu.end(), v.mu);
    std::copy(cov.begin(), cov.end(), v.cov);
    EXPECT_TRUE(gmm_complete(v));
  }
  GmmView view() { return gmm_view(K, d, block.data()); }
  GmmCView cview() const { return gmm_view(K, d, block.data()); }
};

// Three well-separated 2-D components with distinct weights.
Mixture three() {
  return Mixture({0.5, 0.3, 0.2}, {0, 0, 6, 0, 0, 6}, {1.0, 0.3, 0.3, 0.8, 0.5, 0.0, 0.0, 1.2, 0.9, -0.2, -0.2, 0.4});
}

std::vector<double> draw(const Mixture& m, std::int64_t n, std::uint32_t seed) {
  std::vector<double> x(n * m.d);
  for (std::int64_t i = 0; i < n; ++i) gmm_draw(seed, 0, 1, true, i, m.cview(), x.data() + i * m.d);
  return x;
}

TEST(ExpPoly, MatchesStdExpToTwoUlp) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(-708.0, 709.0);
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    const double x = i < 100000 ? u(rng) : u(rng) / 700.0;  // and the range EM uses most
    const double ref = std::exp(x);
    worst = std::max(worst, std::abs(exp_poly(x) - ref) / (ref * std::numeric_limits<double>::epsilon()));
  }
  EXPECT_LT(worst, 2.0) << "largest error in ulp (of the reference)";
  EXPECT_EQ(exp_poly(0.0), 1.0);
  EXPECT_EQ(exp_poly(-INFINITY), 0.0);
  EXPECT_EQ(exp_poly(-708.5), 0.0);
  EXPECT_EQ(exp_poly(710.0), INFINITY);
  EXPECT_TRUE(std::isnan(exp_poly(NAN)));
}

// gmm_draw's own indexing (word i of the component stream): points of three
// components 100 apart, classified by their nearest mean, in proportion to
// the weights (|z| < 4.5); real and synthetic draws are different streams.
TEST(GmmDraw, DrawnPointsFollowTheWeights) {
  const Mixture m({0.5, 0.3, 0.2}, {0, 0, 100, 0, 0, 100}, {1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1});
  const std::int64_t n = 100000;
  std::vector<double> count(3, 0.0);
  int same = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double x[2], y[2];
    gmm_draw(5, 2, 3, false, i, m.cview(), x);
    gmm_draw(5, 2, 3, true, i, m.cview(), y);
    same += x[0] == y[0] ? 1 : 0;
    count[x[0] > 50 ? 1 : (x[1] > 50 ? 2 : 0)] += 1.0;
  }
  EXPECT_EQ(same, 0);
  for (int k = 0; k < 3; ++k) {
    const double w = m.cview().w[k];
    EXPECT_LT(std::abs(count[k] - n * w) / std::sqrt(n * w * (1 - w)), 4.5) << "component " << k;
  }
}

TEST(GmmDraw, ComponentFrequenciesMatchTheWeights) {
  // 2e5 draws: each component's count is binomial; |z| < 4.5 for each of
  // the three (a family-wise false-alarm rate below 2e-5).
  const Mixture m = three();
  const std::int64_t n = 200000;
  std::vector<double> count(3, 0.0);
  for (std::int64_t i = 0; i < n; ++i) {
    const ouro::rng::Block b =
        ouro::rng::draw_block(9, 4, 2, ouro::rng::kStreamSyntheticComponent, static_cast<std::uint64_t>(i) >> 2);
    count[pick_component(3, m.cview().w, b.v[i & 3])] += 1.0;
  }
  for (int k = 0; k < 3; ++k) {
    const double w = m.cview().w[k];
    EXPECT_LT(std::abs(count[k] - n * w) / std::sqrt(n * w * (1 - w)), 4.5) << "component " << k;
  }
}

// The vectorised cpu E-step performs, per lane, the same operations as
// em_lane_pass: equal bits, for counts that do and do not fill the last row.
// Shapes beyond the 2-D case: K up to 16, d up to 8, counts around a row,
// components 40 standard deviations apart (responsibilities underflow to 0,
// the serial pass's skip of zero responsibilities).
TEST(CpuEStep, BitIdenticalAcrossShapes) {
  for (int K : {1, 5, 16})
    for (int d : {1, 3, 8})
      for (bool diag : {false, true}) {
        std::vector<double> w(K, 1.0 / K), mu(K * d), cov(K * d * d, 0.0);
        for (int k = 0; k < K; ++k)
          for (int a = 0; a < d; ++a) {
            mu[k * d + a] = 40.0 * k + 0.5 * a;
            cov[k * d * d + a * d + a] = 1.0 + 0.1 * a;
            if (!diag && a > 0) cov[k * d * d + a * d + a - 1] = cov[k * d * d + (a - 1) * d + a] = 0.3;
          }
        const Mixture m(w, mu, cov);
        for (std::int64_t n : {1, 127, 129, 1000}) {
          const auto x = draw(m, n, 7);
          const int S = em_stats_size(K, d);
          std::vector<double> lanes(kEmLanes * S), serial(S), tiled(S);
          // Frequency weights (data.tail_upsample, data.age_decay) too: not
          // dyadic, so any reordering of their products would show.
          std::vector<double> weights(n);
          for (std::int64_t i = 0; i < n; ++i) weights[i] = 0.3 + 0.7 * static_cast<double>(i % 5);
          for (const double* W : {static_cast<const double*>(nullptr), static_cast<const double*>(weights.data())})
            for (auto [pass, mode] :
                 {std::pair{CpuPass::kSoft, LanePass::kSoft}, std::pair{CpuPass::kHard, LanePass::kHard}}) {
              em_estep_serial(mode, m.cview(), diag, x.data(), W, n, EmScratch{lanes.data(), serial.data()});
              cpu_estep(pass, m.cview(), diag, x.data(), W, n, lanes.data(), tiled.data());
              for (int st = 0; st < S; ++st)
                ASSERT_EQ(serial[st], tiled[st]) << "K " << K << " d " << d << " n " << n << " diag " << diag
                                                 << " weighted " << (W != nullptr) << " stat " << st;
            }
        }
      }
}

TEST(CpuEStep, BitIdenticalToTheSerialLaneOrder) {
  for (bool diag : {false, true})
    for (std::int64_t n : {1000, 77, 128}) {
      Mixture m = three();
      if (diag) {
        std::vector<double> cov = {1.0, 0.0, 0.0, 0.8, 0.5, 0.0, 0.0, 1.2, 0.9, 0.0, 0.0, 0.4};
        m = Mixture({0.5, 0.3, 0.2}, {0, 0, 6, 0, 0, 6}, cov);
      }
      const auto x = draw(m, n, 3);
      const int S = em_stats_size(m.K, m.d);
      std::vector<double> lanes(kEmLanes * S), serial(S), tiled(S);
      for (auto [pass, mode] :
           {std::pair{CpuPass::kSoft, LanePass::kSoft}, std::pair{CpuPass::kHard, LanePass::kHard}}) {
        em_estep_serial(mode, m.cview(), diag, x.data(), nullptr, n, EmScratch{lanes.data(), serial.data()});
        cpu_estep(pass, m.cview(), diag, x.data(), nullptr, n, lanes.data(), tiled.data());
        for (int s = 0; s < S; ++s)
          EXPECT_EQ(serial[s], tiled[s]) << "n " << n << " diag " << diag << " hard " << (mode == LanePass::kHard)
                                         << " stat " << s;
      }
      cpu_estep(CpuPass::kLoglikOnly, m.cview(), diag, x.data(), nullptr, n, lanes.data(), tiled.data());
      EXPECT_EQ(mean_loglik_serial(m.cview(), diag, x.data(), n, lanes.data()), tiled[S - 1] / n);
    }
}

// A textbook EM in Eigen (responsibility matrix, two-pass covariances, LLT),
// written independently of kernels/gmm/gmm.h, from the same starting point.
struct EigenEm {
  std::vector<double> w;
  std::vector<Eigen::Vector2d> mu;
  std::vector<Eigen::Matrix2d> cov;
  void step(const Eigen::MatrixXd& X, double reg) {
    const int n = static_cast<int>(X.rows()), K = static_cast<int>(w.size());
    Eigen::MatrixXd logr(n, K);
    for (int k = 0; k < K; ++k) {
      const Eigen::LLT<Eigen::Matrix2d> llt(cov[k]);
      const Eigen::Matrix2d L = llt.matrixL();
      const double logdet = 2.0 * std::log(L(0, 0) * L(1, 1));
      for (int i = 0; i < n; ++i) {
        const Eigen::Vector2d y = L.triangularView<Eigen::Lower>().solve(Eigen::Vector2d(X.row(i).transpose() - mu[k]));
        logr(i, k) = std::log(w[k]) - 0.5 * (y.squaredNorm() + logdet + 2.0 * std::log(2.0 * M_PI));
      }
    }
    for (int i = 0; i < n; ++i) {
      const double top = logr.row(i).maxCoeff();
      const double lse = top + std::log((logr.row(i).array() - top).exp().sum());
      logr.row(i).array() -= lse;
    }
    const Eigen::MatrixXd r = logr.array().exp();
    const double tiny = 10.0 * std::numeric_limits<double>::epsilon();
    double total = 0.0;
    for (int k = 0; k < K; ++k) total += r.col(k).sum() + tiny;
    for (int k = 0; k < K; ++k) {
      const double nk = r.col(k).sum() + tiny;
      w[k] = nk / total;
      mu[k] = (X.transpose() * r.col(k)) / nk;
      Eigen::Matrix2d c = Eigen::Matrix2d::Zero();
      for (int i = 0; i < n; ++i) {
        const Eigen::Vector2d e = X.row(i).transpose() - mu[k];
        c += r(i, k) * e * e.transpose();
      }
      cov[k] = c / nk + reg * Eigen::Matrix2d::Identity();
    }
  }
};

TEST(Em, AgreesWithAnIndependentEigenReference) {
  const Mixture truth = three();
  const std::int64_t n = 3000;
  const auto x = draw(truth, n, 11);
  // Both start from the same, deliberately poor, parameters; after each of
  // 30 iterations (one E-step and one M-step each) the parameters agree to a
  // relative 1e-9 (different summation orders, libm vs polynomial exp/log;
  // EM contracts towards its fixed point, so rounding does not grow).
  // Compared at every step, not only at convergence, where an error that
  // vanishes at the fixed point (a wrong mean shift) would hide.
  Mixture ours({0.34, 0.33, 0.33}, {1, 1, 4, 1, 1, 4}, {2, 0, 0, 2, 2, 0, 0, 2, 2, 0, 0, 2});
  EigenEm ref;
  for (int k = 0; k < 3; ++k) {
    const GmmCView v = ours.cview();
    ref.w.push_back(v.w[k]);
    ref.mu.emplace_back(v.mu[2 * k], v.mu[2 * k + 1]);
    Eigen::Matrix2d c;
    c << v.cov[4 * k], v.cov[4 * k + 1], v.cov[4 * k + 2], v.cov[4 * k + 3];
    ref.cov.push_back(c);
  }
  Eigen::MatrixXd X(n, 2);
  for (std::int64_t i = 0; i < n; ++i) X(i, 0) = x[2 * i], X(i, 1) = x[2 * i + 1];
  const EmSettings one_step{1, 0.0, 1e-6, EmInit::kWarm, 1, false};
  const int S = em_stats_size(3, 2);
  std::vector<double> lanes(kEmLanes * S), stats(S);
  for (int it = 1; it <= 30; ++it) {
    const EmOutcome out = em_run(one_step, ours.view(), x.data(), n, static_cast<double>(n), stats.data(),
                                 SerialEStep{false, lanes.data()}, SerialPolicy{});
    ASSERT_TRUE(out.ok);
    ref.step(X, 1e-6);
    const GmmCView o = ours.cview();
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(o.w[k], ref.w[k], 1e-9 * ref.w[k]) << "iteration " << it << " weight " << k;
      for (int a = 0; a < 2; ++a)
        EXPECT_NEAR(o.mu[2 * k + a], ref.mu[k](a), 1e-9 * (1 + std::abs(ref.mu[k](a)))) << "iteration " << it;
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b)
          EXPECT_NEAR(o.cov[4 * k + 2 * a + b], ref.cov[k](a, b), 1e-9 * (1 + std::abs(ref.cov[k](a, b))))
              << "iteration " << it << " component " << k << " [" << a << "][" << b << "]";
    }
  }
}

TEST(Em, LogLikelihoodNeverDecreases) {
  // Pure EM (no ridge) from k-means++ seeds on overlapping components, full
  // and diagonal: each E-step's log-likelihood is at least the previous one's,
  // up to a relative 1e-9 (rounding).
  Mixture truth({0.4, 0.35, 0.25}, {0, 0, 1.5, 0.5, 0.5, 2},
                {1.0, 0.3, 0.3, 0.8, 0.5, 0.0, 0.0, 1.2, 0.9, -0.2, -0.2, 0.4});
  const std::int64_t n = 2000;
  const auto x = draw(truth, n, 5);
  for (bool diag : {false, true})
    for (int restart = 0; restart < 3; ++restart) {
      const EmSettings s{300, 0.0, 0.0, EmInit::kKmeansPP, 1, diag};
      std::vector<double> block(gmm_block_size(3, 2));
      const GmmView m = gmm_view(3, 2, block.data());
      const int S = em_stats_size(3, 2);
      std::vector<double> lanes(kEmLanes * S), stats(S), trace(300);
      const SerialEStep estep{diag, lanes.data()};
      ASSERT_TRUE(kmeanspp_init(1, 2, 3, restart, s, m, x.data(), n, stats.data(), estep, SerialPolicy{}));
      const EmOutcome out =
          em_run(s, m, x.data(), n, static_cast<double>(n), stats.data(), estep, SerialPolicy{}, trace.data());
      ASSERT_TRUE(out.ok);
      for (int it = 1; it < out.iters; ++it)
        EXPECT_GE(trace[it], trace[it - 1] - 1e-9 * std::abs(trace[it - 1]))
            << "iteration " << it << " diag " << diag << " restart " << restart;
      EXPECT_GT(trace[out.iters - 1], trace[0]);  // and EM did improve the fit
    }
}

// Frequency weights mean what they say: EM with integer weights w_i (1, 2
// or 3) runs as EM on the data with point i repeated w_i times. The same
// iterations and convergence decision, the same parameters to 1e-9 (the
// sums are added in a different order), from the same start, full and
// diagonal covariances. Planted bugs, each caught: the count instead of
// the total weight as the log-likelihood's normaliser (the traces differ),
// responsibilities without their weight (the fits differ).
TEST(Em, IntegerWeightsEqualRepeatedPoints) {
  const Mixture truth = three();
  const std::int64_t n = 600;
  const auto x = draw(truth, n, 13);
  std::vector<double> weights(n), repeated;
  double total = 0.0;
  for (std::int64_t i = 0; i < n; ++i) {
    weights[i] = 1.0 + static_cast<double>((i * 7) % 3);
    total += weights[i];
    for (int r = 0; r < static_cast<int>(weights[i]); ++r)
      repeated.insert(repeated.end(), x.begin() + 2 * i, x.begin() + 2 * i + 2);
  }
  const auto m_rep = static_cast<std::int64_t>(repeated.size() / 2);
  ASSERT_EQ(static_cast<double>(m_rep), total);
  const int P = gmm_block_size(3, 2), S = em_stats_size(3, 2);
  for (bool diag : {false, true}) {
    const EmSettings s{50, 1e-8, 1e-6, EmInit::kWarm, 1, diag};
    std::vector<double> a(truth.block), b(truth.block), lanes(kEmLanes * S), stats(S), ta(50), tb(50);
    // Start away from the truth: the means moved.
    for (auto* block : {&a, &b}) {
      GmmView v = gmm_view(3, 2, block->data());
      v.mu[0] += 0.7, v.mu[3] -= 0.5;
      ASSERT_TRUE(gmm_complete(v));
    }
    const EmOutcome wa = em_run(s, gmm_view(3, 2, a.data()), x.data(), n, total, stats.data(),
                                SerialEStep{diag, lanes.data(), weights.data()}, SerialPolicy{}, ta.data());
    const EmOutcome rb = em_run(s, gmm_view(3, 2, b.data()), repeated.data(), m_rep, static_cast<double>(m_rep),
                                stats.data(), SerialEStep{diag, lanes.data()}, SerialPolicy{}, tb.data());
    ASSERT_TRUE(wa.ok && rb.ok);
    EXPECT_EQ(wa.iters, rb.iters) << "diag " << diag;
    EXPECT_EQ(wa.converged, rb.converged) << "diag " << diag;
    for (int it = 0; it < wa.iters; ++it) EXPECT_NEAR(ta[it], tb[it], 1e-11) << "iteration " << it;
    for (int p = 0; p < P; ++p) EXPECT_NEAR(a[p], b[p], 1e-9 * (1.0 + std::abs(b[p]))) << "diag " << diag << " p " << p;
    EXPECT_GT(wa.iters, 2);  // EM moved (the start was off)
  }
}

TEST(Em, RecoversTheParametersOfAWellSeparatedMixture) {
  // 20000 points, k-means++ with 3 restarts. Well separated, so each fitted
  // component is (to far below its standard error) the sample estimate of
  // its cluster: weight SE sqrt(w(1-w)/n), mean SE sqrt(S_aa/(n w)),
  // covariance SE sqrt((S_aa S_bb + S_ab^2)/(n w)). |z| < 4.5 for all 24
  // comparisons (family-wise false-alarm rate < 2e-4).
  const Mixture truth = three();
  const std::int64_t n = 20000;
  const auto x = draw(truth, n, 21);
  const EmSettings s{500, 1e-10, 1e-6, EmInit::kKmeansPP, 3, false};
  const int P = gmm_block_size(3, 2), S = em_stats_size(3, 2);
  std::vector<double> work(P), best(P), lanes(kEmLanes * S), stats(S);
  bool have = false;
  const EmOutcome out =
      em_fit(7, 0, 1, s, false, nullptr, work.data(), best.data(), x.data(), n, static_cast<double>(n), stats.data(),
             SerialEStep{false, lanes.data()}, SerialPolicy{}, 3, 2, have);
  ASSERT_TRUE(have);
  EXPECT_TRUE(out.converged);
  const GmmCView f = gmm_view(3, 2, static_cast<const double*>(best.data()));
  const GmmCView t = truth.cview();
  for (int k = 0; k < 3; ++k) {
    // Match by nearest mean (the truth's means are 6 apart).
    int j = 0;
    double bestd = INFINITY;
    for (int c = 0; c < 3; ++c) {
      const double dd = std::hypot(f.mu[2 * c] - t.mu[2 * k], f.mu[2 * c + 1] - t.mu[2 * k + 1]);
      if (dd < bestd) bestd = dd, j = c;
    }
    const double w = t.w[k];
    EXPECT_LT(std::abs(f.w[j] - w) / std::sqrt(w * (1 - w) / n), 4.5) << "weight " << k;
    for (int a = 0; a < 2; ++a)
      EXPECT_LT(std::abs(f.mu[2 * j + a] - t.mu[2 * k + a]) / std::sqrt(t.cov[4 * k + 3 * a] / (n * w)), 4.5)
          << "mean " << k << "," << a;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        const double saa = t.cov[4 * k + 3 * a], sbb = t.cov[4 * k + 3 * b], sab = t.cov[4 * k + 2 * a + b];
        const double se = std::sqrt((saa * sbb + sab * sab) / (n * w));
        EXPECT_LT(std::abs(f.cov[4 * j + 2 * a + b] - sab) / se, 4.5) << "cov " << k << "," << a << b;
      }
  }
}

TEST(Em, DegenerateDataGivesAFiniteFitOrAReportedFailure) {
  const int K = 3, d = 2, P = gmm_block_size(K, d), S = em_stats_size(K, d);
  std::vector<double> work(P), best(P), lanes(kEmLanes * S), stats(S);
  // All points identical: with the ridge every covariance is reg_covar I and
  // every number finite; without it the fit fails (reported, not NaN).
  std::vector<double> same(2 * 50, 1.25);
  for (double reg : {1e-6, 0.0}) {
    const EmSettings s{100, 1e-3, reg, EmInit::kKmeansPP, 2, false};
    bool have = false;
    em_fit(1, 0, 1, s, false, nullptr, work.data(), best.data(), same.data(), 50, 50.0, stats.data(),
           SerialEStep{false, lanes.data()}, SerialPolicy{}, K, d, have);
    EXPECT_EQ(have, reg > 0.0) << "reg " << reg;
    if (have) {
      for (double v : best) EXPECT_TRUE(std::isfinite(v));
    }
  }
  // More components than points.
  std::vector<double> two = {0.0, 0.0, 1.0, 2.0};
  const EmSettings s{100, 1e-3, 1e-6, EmInit::kKmeansPP, 1, false};
  bool have = false;
  const EmOutcome out = em_fit(1, 0, 1, s, false, nullptr, work.data(), best.data(), two.data(), 2, 2.0, stats.data(),
                               SerialEStep{false, lanes.data()}, SerialPolicy{}, K, d, have);
  ASSERT_TRUE(have);
  EXPECT_TRUE(std::isfinite(out.loglik));
  for (double v : best) EXPECT_TRUE(std::isfinite(v));
}

TEST(GmmTruth, RadiusAndRareMassMatchMonteCarlo) {
  // The mass outside a Mahalanobis radius and inside the rare component's
  // radius-2 ellipse, closed form (kernels/core/quadform.h per component) vs the
  // share of 4e5 draws: binomial SE, |z| < 4.5.
  const Mixture m = three();
  const GmmCView v = m.cview();
  double mean[2], cov[4], l[4];
  gmm_moments(v, mean, cov);
  ASSERT_TRUE(ouro::kernels::cholesky(2, cov, l));
  const double r2 = 5.0;
  const double p_out = mixture_outside(v, mean, l, r2);
  const double p_rare = 1.0 - mixture_outside(v, v.mu + 4, v.chol + 8, 4.0);
  const std::int64_t n = 400000;
  const auto x = draw(m, n, 33);
  double out = 0, rare = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    double y[2], e[2] = {x[2 * i] - mean[0], x[2 * i + 1] - mean[1]};
    ouro::kernels::lower_solve(2, l, e, y);
    out += y[0] * y[0] + y[1] * y[1] > r2 ? 1 : 0;
    double e2[2] = {x[2 * i] - v.mu[4], x[2 * i + 1] - v.mu[5]};
    ouro::kernels::lower_solve(2, v.chol + 8, e2, y);
    rare += y[0] * y[0] + y[1] * y[1] <= 4.0 ? 1 : 0;
  }
  EXPECT_LT(std::abs(out / n - p_out) / std::sqrt(p_out * (1 - p_out) / n), 4.5);
  EXPECT_LT(std::abs(rare / n - p_rare) / std::sqrt(p_rare * (1 - p_rare) / n), 4.5);
}

// In 2-D, the overlap E_{x ~ p}[q(x)] by Monte Carlo: 4e5 draws from p,
// q evaluated by its log-density, |z| < 4.5 with the sample's standard error.
TEST(GmmTruth, L2OverlapMatchesMonteCarloIn2D) {
  const Mixture p = three();
  const Mixture q({0.6, 0.4}, {1, 0.5, 4, 2}, {2.0, 0.5, 0.5, 1.0, 0.7, -0.1, -0.1, 0.9});
  const std::int64_t n = 400000;
  const auto x = draw(p, n, 44);
  double s1 = 0, s2 = 0, lp[kGmmMaxComponents];
  for (std::int64_t i = 0; i < n; ++i) {
    const double v = std::exp(gmm_log_density(q.cview(), false, x.data() + 2 * i, lp));
    s1 += v, s2 += v * v;
  }
  const double mean = s1 / n, se = std::sqrt((s2 / n - mean * mean) / n);
  EXPECT_LT(std::abs(mixture_overlap(p.cview(), q.cview()) - mean) / se, 4.5);
}

TEST(GmmTruth, L2OverlapMatchesQuadratureIn1D) {
  // Integral of p q for two 1-D mixtures by the closed form and by the
  // trapezoid rule on [-30, 30] with 6e5 steps (error far below 1e-10).
  Mixture p({0.7, 0.3}, {0.0, 3.0}, {1.0, 0.25});
  Mixture q({0.2, 0.5, 0.3}, {-1.0, 0.5, 2.5}, {0.5, 2.0, 0.3});
  auto dens = [](const GmmCView& m, double x) {
    double s = 0;
    for (int k = 0; k < m.K; ++k)
      s += m.w[k] * std::exp(-0.5 * (x - m.mu[k]) * (x - m.mu[k]) / m.cov[k]) / std::sqrt(2 * M_PI * m.cov[k]);
    return s;
  };
  const int steps = 600000;
  const double h = 60.0 / steps;
  double num = 0;
  for (int i = 0; i <= steps; ++i) {
    const double x = -30.0 + i * h;
    num += (i == 0 || i == steps ? 0.5 : 1.0) * dens(p.cview(), x) * dens(q.cview(), x);
  }
  num *= h;
  EXPECT_NEAR(mixture_overlap(p.cview(), q.cview()), num, 1e-10);
}

}  // namespace

// EM's control flow on one chain, written once over a backend policy (SerialPolicy here; the cuda backend's block
// policy in kernels/gmm/gmm_cuda.cu): restarts, initialisation, iterations, the convergence test and the failure
// rules, where cpu and cuda results would otherwise quietly diverge.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/gmm/gmm_em_steps.h"

namespace ouro::kernels {

// ---- one fit, serially (the cpu backend and the tests) ---------------------------------------------

struct EmOutcome {
  int iters;       // M-steps done
  bool converged;  // |change of the mean log-likelihood| < tol before max_iter
  bool ok;         // finite log-likelihood and positive definite covariances throughout
  double loglik;   // mean log-likelihood of the last E-step
};

// Scratch for em_estep_serial: lanes[kEmLanes * S], stats[S].
struct EmScratch {
  double* lanes;
  double* stats;
};

// One E-step over all lanes, reduced in the fixed order.
OURO_HD inline void em_estep_serial(LanePass mode, const GmmCView& m, bool diag, const double* X, const double* W,
                                    std::int64_t count, const EmScratch& sc) {
  const int S = em_stats_size(m.K, m.d);
  for (int l = 0; l < kEmLanes; ++l) em_lane_pass(mode, m, diag, X, W, count, l, sc.lanes + l * S);
  em_reduce_lanes(S, sc.lanes, S, 1, sc.stats);
}

// Mean ln p(x) over X in the fixed lane order (the same sum on every backend).
OURO_HD inline double mean_loglik_serial(const GmmCView& m, bool diag, const double* X, std::int64_t count,
                                         double* lanes) {
  for (int l = 0; l < kEmLanes; ++l) lanes[l] = lane_loglik(m, diag, X, count, l);
  double total;
  em_reduce_lanes(1, lanes, 1, 1, &total);
  return total / static_cast<double>(count);
}

// How the EM driver below runs on a backend. Every thread of a chain runs
// the driver's control flow; a policy says how a step that must happen once
// is done (single: on one thread, its result seen by all) and how a
// parameter block is copied. The cpu backend's chain is one thread
// (SerialPolicy); the cuda backend's is a block (gmm_cuda.cu).
struct SerialPolicy {
  template <class F>
  OURO_HD bool single(F&& f) const {
    return f();
  }
  OURO_HD void copy(double* dst, const double* src, int n) const {
    for (int i = 0; i < n; ++i) dst[i] = src[i];
  }
};

// k-means++ centres, then one M-step from the hard assignment of every point
// to its nearest centre (scikit-learn's init_params="k-means++" instead starts
// each component from its seed point alone). False if that fails.
// estep(mode, mixture, X, count, stats) computes one E-step's statistics in
// the fixed lane order (em_estep_serial, or a backend's parallel version).
template <class EStep, class Policy>
OURO_HD inline bool kmeanspp_init(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, int restart,
                                  const EmSettings& s, const GmmView& m, const double* X, std::int64_t count,
                                  double* stats, EStep&& estep, const Policy& policy) {
  policy.single([&] {
    kmeanspp_centers(seed, chain, gen, restart, X, count, m.d, m.K, m.mu);
    return true;
  });
  estep(LanePass::kHard, as_const(m), X, count, stats);
  return policy.single([&] { return em_mstep(m, s.diag, s.reg_covar, stats); });
}

// EM from the parameters in m until the mean log-likelihood changes by less
// than tol or max_iter M-steps are done (scikit-learn's loop: E-step, M-step,
// convergence test on the E-step's log-likelihood). The mean is over
// `total`, the points' total weight (their count when unweighted; the
// weights themselves are the estep's). trace, if given, gets each E-step's
// mean log-likelihood (max_iter entries at most).
template <class EStep, class Policy>
OURO_HD inline EmOutcome em_run(const EmSettings& s, const GmmView& m, const double* X, std::int64_t count,
                                double total, double* stats, EStep&& estep, const Policy& policy,
                                double* trace = nullptr) {
  const int S = em_stats_size(m.K, m.d);
  double prev = -INFINITY;
  for (int it = 1; it <= s.max_iter; ++it) {
    estep(LanePass::kSoft, as_const(m), X, count, stats);
    const double ll = stats[S - 1] / total;
    if (trace) trace[it - 1] = ll;
    if (!(ll > -INFINITY && ll < INFINITY)) return EmOutcome{it - 1, false, false, ll};
    if (!policy.single([&] { return em_mstep(m, s.diag, s.reg_covar, stats); })) return EmOutcome{it, false, false, ll};
    if (fabs(ll - prev) < s.tol) return EmOutcome{it, true, true, ll};
    prev = ll;
  }
  return EmOutcome{s.max_iter, false, true, prev};
}

// One generation's fit of one chain: restart 0 from `warm` (the previous
// generation's parameters) when warm_ok, every other restart from k-means++
// seeds (restart r uses seeding stream index r; the seeding ignores
// weights, the M-step from its hard assignment does not); the restart with
// the highest final mean log-likelihood is copied to `best` (a block of m's
// shape). `total` is the points' total weight (see em_run). `have` says
// whether any restart succeeded; the result is that restart's outcome.
template <class EStep, class Policy>
OURO_HD inline EmOutcome em_fit(std::uint32_t seed, std::uint32_t chain, std::uint32_t gen, const EmSettings& s,
                                bool warm_ok, const double* warm, double* work, double* best, const double* X,
                                std::int64_t count, double total, double* stats, EStep&& estep, const Policy& policy,
                                int K, int d, bool& have) {
  const int P = gmm_block_size(K, d);
  const GmmView m = gmm_view(K, d, work);
  EmOutcome kept{0, false, false, -INFINITY};
  have = false;
  for (int r = 0; r < s.restarts; ++r) {
    if (r == 0 && warm_ok) policy.copy(work, warm, P);
    else if (!kmeanspp_init(seed, chain, gen, r, s, m, X, count, stats, estep, policy)) continue;
    const EmOutcome out = em_run(s, m, X, count, total, stats, estep, policy);
    if (out.ok && (!have || out.loglik > kept.loglik)) {
      have = true;
      kept = out;
      policy.copy(best, work, P);
    }
  }
  return kept;
}

// The serial E-step (lanes in turn) as an estep for the functions above.
struct SerialEStep {
  bool diag;
  double* lanes;                    // kEmLanes * em_stats_size
  const double* weights = nullptr;  // per point (null: every weight 1)
  OURO_HD void operator()(LanePass mode, const GmmCView& m, const double* X, std::int64_t count, double* stats) const {
    const EmScratch sc{lanes, stats};
    em_estep_serial(mode, m, diag, X, weights, count, sc);
  }
};

}  // namespace ouro::kernels

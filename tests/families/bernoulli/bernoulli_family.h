// A family defined only in the test suite: a Bernoulli(p) truth refitted by the (optionally smoothed) share of ones
// among n draws from the previous fit. It exists to prove the family table: it joins the table from tests/ alone
// (register_family), and validate, run, keys, metrics, summary, report and early warning all serve it without a line
// outside tests/ naming it.
//
// Model: p_t = (k + alpha) / (m + 2 alpha), k the ones among the m points of generation t's training set (its n new
// points under replace, every point so far under accumulate), alpha = model.alpha. Generation t's new points are
// real draws (Bernoulli(p_0)) and then synthetic draws (Bernoulli(p_{t-1})), point i decided by uniform i of the
// chain's real or synthetic stream.
//
// Metrics: p_hat (p_t), var_ratio (p_t (1 - p_t) / (p_0 (1 - p_0)), the model's variance over the truth's) and
// fixed (1 once p_t is 0 or 1). Theory, with alpha = 0: E[p_t] = p_0 (the new points' mean is a martingale), and
// under replace with no real data E[p_t (1 - p_t)] = (1 - 1/n)^t p_0 (1 - p_0) (binomial resampling: Wright-Fisher's
// heterozygosity).
#pragma once

#include "sim/families/family.h"

namespace ouro::test {

const Family& bernoulli_family();

}  // namespace ouro::test

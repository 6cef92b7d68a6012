// The Gaussian-mixture family's per-chain math, written once for both backends, in the files named after what they
// hold:
//
//   gmm_mixture.h   one mixture: its parameters as a flat block, drawing points, its log-density
//   gmm_em_steps.h  EM's steps per reduction lane: the E-step, the lanes' fixed combination tree, the M-step,
//                   k-means++ seeding
//   gmm_em.h        EM's control flow over a backend policy: restarts, initialisation, iterations, convergence
//   gmm_metrics.h   the truth and the metrics against it
//   gmm_training.h  one generation's training set: the regime's pool, the filters and the weights
//
// A chain's model at generation t is a mixture of K Gaussians in d dimensions (Dempster, Laird & Rubin 1977 for
// EM). EM's reductions have one fixed order on every backend and use polynomial exp/log (no libm) with no FMA
// contraction, so EM's iterates, iteration counts and convergence decisions are the same on both backends.
#pragma once

#include "kernels/gmm/gmm_em.h"
#include "kernels/gmm/gmm_metrics.h"
#include "kernels/gmm/gmm_mixture.h"
#include "kernels/gmm/gmm_training.h"

#!/usr/bin/python3
"""scikit-learn peer for ouroboros: recursive EM fitting of a Gaussian mixture ("replace").

The loop of experiments/gmm/bench_k4.yaml: `chains` independent chains; generation 0 is
the truth mixture; generation t >= 1 fits sklearn.mixture.GaussianMixture to n points
drawn from generation t-1's mixture (the truth at t = 1), warm-started from generation
t-1's fit (generation 1 from the truth's parameters, as ouroboros does when K equals the
truth's component count). EM settings match ouroboros': same K, covariance type, tol
(change of the mean log-likelihood), max_iter and reg_covar. After each fit the peer
records n_iter_ so that the benchmark can compare the work done, not only the time.

Prints one JSON line: wall seconds, chain-generations per second, mean EM iterations.
"""
import argparse
import json
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])
MEANS = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
COVS = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.3], [0.3, 0.5]],
                 [[0.5, 0.0], [0.0, 1.5]], [[0.8, -0.2], [-0.2, 0.6]]])


def draw(rng, weights, means, covs, n):
    """n points of a mixture, one component choice per point."""
    comp = rng.choice(len(weights), size=n, p=weights / weights.sum())
    z = rng.standard_normal((n, means.shape[1]))
    chol = np.linalg.cholesky(covs)
    return means[comp] + np.einsum("nij,nj->ni", chol[comp], z)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=20)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--tol", type=float, default=1e-3)
    p.add_argument("--max-iter", type=int, default=100)
    p.add_argument("--reg-covar", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    t0 = time.perf_counter()
    iters = []
    for chain in range(a.chains):
        rng = np.random.default_rng([a.seed, chain])
        gm = GaussianMixture(n_components=len(WEIGHTS), covariance_type="full", tol=a.tol,
                             max_iter=a.max_iter, reg_covar=a.reg_covar, warm_start=True,
                             weights_init=WEIGHTS, means_init=MEANS,
                             precisions_init=np.linalg.inv(COVS), random_state=0)
        w, m, c = WEIGHTS, MEANS, COVS
        for _ in range(a.generations):
            x = draw(rng, w, m, c, a.samples)
            gm.fit(x)
            iters.append(gm.n_iter_)
            w, m, c = gm.weights_, gm.means_, gm.covariances_
    wall = time.perf_counter() - t0
    cg = a.chains * a.generations
    print(json.dumps({"peer": "sklearn", "chains": a.chains, "generations": a.generations,
                      "samples": a.samples, "wall_seconds": wall,
                      "chain_generations_per_second": cg / wall,
                      "mean_em_iters": float(np.mean(iters))}))


if __name__ == "__main__":
    main()

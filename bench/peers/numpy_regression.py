#!/usr/bin/python3
"""NumPy peer for ouroboros: recursive OLS fitting of a linear regression model.

Same experiment as ouroboros's linear_regression family (see bench/peers/README.md):
`chains` independent chains; generation 0 is the truth y = x.w0 + sigma0 eps with
w0 = ones(d)/sqrt(d), x ~ N(0, I_d), sigma0 = 1. Generation 1 is fitted by OLS to n real
points; generation t >= 2 to n points labelled by generation t-1, y = x.w_{t-1} + s_{t-1} eps,
where s_{t-1} = sigma0 (--noise fixed) or generation t-1's residual std sqrt(RSS/N)
(--noise fitted). Inputs are drawn anew every generation (--design fresh) or once per chain
and reused (--design fixed); the training set is this generation's points (--regime replace)
or every point of generations 1..t (--regime accumulate). After every generation six
per-chain metrics are computed and aggregated across chains into a tidy CSV.

Idiomatic vectorised NumPy, float64, np.random.default_rng(seed); no numba, no multiprocessing.
"""
import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

SIGMA0 = 1.0
METRICS = ("test_error", "weight_err", "norm_ratio", "noise_ratio", "synthetic_share", "data_age")
HEADER = "generation,metric,mean,se,std,q05,q50,q95,chains,theory\n"


def sq_norm(v):
    """Squared Euclidean norm along the last axis."""
    return np.einsum("...i,...i->...", v, v)


def metrics(t, w, rss, n_train, w0, cov, accumulate):
    """Per-chain metrics of the fit w (chains, d) with residual sum of squares rss over a
    training set of n_train points (t = 0: the truth); shape (6, chains)."""
    diff = w - w0
    test_error = np.einsum("ci,ij,cj->c", diff, cov, diff)   # excess risk on x ~ N(0, cov)
    weight_err = sq_norm(diff)
    norm_ratio = sq_norm(w) / sq_norm(w0)
    noise_ratio = rss / (n_train * SIGMA0 ** 2) if t > 0 else np.ones_like(weight_err)
    if t <= 1:
        synth, age = 0.0, 0.0
    elif accumulate:
        synth, age = (t - 1) / t, 0.5 * (t - 1)
    else:
        synth, age = 1.0, 0.0
    return np.stack((test_error, weight_err, norm_ratio, noise_ratio,
                     np.full_like(weight_err, synth), np.full_like(weight_err, age)))


def aggregate(values):
    """values: (n_metrics, chains) -> mean, se, std (ddof=1), q05, q50, q95 per metric."""
    chains = values.shape[1]
    mean = values.mean(axis=1)
    std = values.std(axis=1, ddof=1)
    se = std / math.sqrt(chains)
    q05, q50, q95 = np.quantile(values, (0.05, 0.5, 0.95), axis=1)  # linear interpolation
    return np.stack((mean, se, std, q05, q50, q95), axis=1)


def write_rows(f, t, agg, chains):
    f.write("".join(
        f"{t},{name},{row[0]!r},{row[1]!r},{row[2]!r},{row[3]!r},{row[4]!r},{row[5]!r},{chains},\n"
        for name, row in zip(METRICS, agg.tolist())))


def main(argv=None):
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=100, help="n points per generation")
    ap.add_argument("--dim", type=int, default=10, help="d, the number of weights")
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--noise", choices=("fixed", "fitted"), default="fixed",
                    help="label noise of the synthetic data: sigma0, or the fit's residual std")
    ap.add_argument("--regime", choices=("replace", "accumulate"), default="replace")
    ap.add_argument("--design", choices=("fresh", "fixed"), default="fresh",
                    help="new inputs every generation, or each chain's generation-1 inputs reused")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV path (default: a temp file)")
    args = ap.parse_args(argv)
    chains, n, d, gens = args.chains, args.samples, args.dim, args.generations
    if chains < 2 or d < 1 or n < d or gens < 0:
        ap.error("need chains >= 2, dim >= 1, samples >= dim, generations >= 0")
    if args.regime == "replace" and args.noise == "fitted" and n == d:
        ap.error("--noise fitted under replace needs samples > dim (the residuals vanish at n = d)")
    accumulate = args.regime == "accumulate"
    out = args.out
    if out is None:
        fd, out = tempfile.mkstemp(prefix="peer_numpy_regression_", suffix=".csv")
        os.close(fd)

    rng = np.random.default_rng(args.seed)
    w0 = np.full(d, 1.0 / math.sqrt(d))   # norm 1
    cov = np.eye(d)                       # design covariance of the truth
    w = np.tile(w0, (chains, 1))          # generation 0 is the truth itself
    s = np.full(chains, SIGMA0)           # its label noise std
    rss = np.zeros(chains)
    n_train = 0
    if accumulate:                        # sufficient statistics of the pool, per chain
        xtx_pool = np.zeros((chains, d, d))
        xty_pool = np.zeros((chains, d))
        yty_pool = np.zeros(chains)
    x = xtx = None
    with open(out, "w") as f:
        f.write(HEADER)
        write_rows(f, 0, aggregate(metrics(0, w, rss, n_train, w0, cov, accumulate)), chains)
        for t in range(1, gens + 1):
            # n points per chain, drawn point by point: inputs, then labels from generation t-1
            if x is None or args.design == "fresh":
                x = rng.standard_normal((chains, n, d))
                xtx = x.transpose(0, 2, 1) @ x                        # (chains, d, d)
            y = (x @ w[:, :, None])[:, :, 0] + s[:, None] * rng.standard_normal((chains, n))
            xty = (x.transpose(0, 2, 1) @ y[:, :, None])[:, :, 0]    # (chains, d)
            if accumulate:
                xtx_pool += xtx
                xty_pool += xty
                yty_pool += sq_norm(y)
                n_train += n
                w = np.linalg.solve(xtx_pool, xty_pool[:, :, None])[:, :, 0]
                # RSS of the OLS fit of the pool: y'y - w'X'y
                rss = yty_pool - np.einsum("ci,ci->c", w, xty_pool)
            else:
                n_train = n
                w = np.linalg.solve(xtx, xty[:, :, None])[:, :, 0]
                r = y - (x @ w[:, :, None])[:, :, 0]
                rss = sq_norm(r)
            if args.noise == "fitted":
                s = np.sqrt(np.maximum(rss, 0.0) / n_train)
            write_rows(f, t, aggregate(metrics(t, w, rss, n_train, w0, cov, accumulate)), chains)

    wall = time.perf_counter() - t_start
    print(f"peer=numpy_regression chains={chains} samples={n} dim={d} generations={gens} "
          f"wall_s={wall:.4f} points_per_s={chains * n * gens / wall:.4g} "
          f"noise={args.noise} regime={args.regime} design={args.design} out={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

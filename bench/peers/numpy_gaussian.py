#!/usr/bin/python3
"""NumPy peer for ouroboros: recursive MLE fitting of a 1-D Gaussian ("replace" regime).

Same experiment as ouroboros (see bench/peers/README.md): `chains` independent chains,
generation 0 = truth N(0, 1); generation t >= 1 is fitted (sample mean, MLE variance with
divisor n) to n points drawn point by point from generation t-1's Gaussian. After every
generation nine per-chain metrics are computed and aggregated across chains into a tidy CSV.

Idiomatic vectorised NumPy, float64, np.random.default_rng(seed); no numba, no multiprocessing.
"""
import argparse
import math
import os
import sys
import tempfile
import time

import numpy as np

MU0 = 0.0
S0 = 1.0
R_TAIL = 2.5758293035489004  # z_{0.995}: nominal two-sided tail mass of the truth is 0.01
TAIL_NOMINAL = 0.01
METRICS = ("var_ratio", "det_ratio", "mean_sq_err", "w2", "kl", "xent",
           "tail_mass", "synthetic_share", "data_age")
HEADER = "generation,metric,mean,se,std,q05,q50,q95,chains,theory\n"

# Standard normal CDF. scipy.special.ndtr (Cephes, full double precision) when scipy is
# importable -- it is for Debian's /usr/bin/python3 (python3-scipy); otherwise the
# Numerical Recipes erfcc Chebyshev approximation (fractional error < 1.2e-7 everywhere).
try:
    from scipy.special import ndtr as _phi
    PHI_IMPL = "scipy.special.ndtr"
except ImportError:  # pragma: no cover - depends on the host
    def _erfc(x):
        z = np.abs(x)
        t = 1.0 / (1.0 + 0.5 * z)
        r = t * np.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (
            0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (
                1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
        return np.where(x >= 0.0, r, 2.0 - r)

    def _phi(x):
        return 0.5 * _erfc(-x / math.sqrt(2.0))
    PHI_IMPL = "numerical-recipes erfcc"


def metrics(t, m, var):
    """Per-chain metrics of model N(m, var) against the truth N(MU0, S0^2); shape (9, chains)."""
    s = np.sqrt(var)
    d2 = (m - MU0) ** 2
    ratio = var / S0 ** 2
    quad = (S0 ** 2 + d2) / (2.0 * var)
    kl = np.log(s / S0) + quad - 0.5
    xent = 0.5 * np.log(2.0 * math.pi * var) + quad
    w2 = np.sqrt(d2 + (s - S0) ** 2)
    tail = (_phi((MU0 - R_TAIL * S0 - m) / s) + 1.0 - _phi((MU0 + R_TAIL * S0 - m) / s)) / TAIL_NOMINAL
    synth = np.full_like(m, 0.0 if t <= 1 else 1.0)
    age = np.zeros_like(m)
    return np.stack((ratio, ratio, d2, w2, kl, xent, tail, synth, age))


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
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV path (default: a temp file)")
    args = ap.parse_args(argv)
    chains, n, gens = args.chains, args.samples, args.generations
    if chains < 2 or n < 1 or gens < 0:
        ap.error("need chains >= 2, samples >= 1, generations >= 0")
    out = args.out
    if out is None:
        fd, out = tempfile.mkstemp(prefix="peer_numpy_gaussian_", suffix=".csv")
        os.close(fd)

    rng = np.random.default_rng(args.seed)
    mu = np.full(chains, MU0)           # generation 0 is the truth itself
    var = np.full(chains, S0 ** 2)
    with open(out, "w") as f:
        f.write(HEADER)
        write_rows(f, 0, aggregate(metrics(0, mu, var)), chains)
        for t in range(1, gens + 1):
            # n points per chain, drawn point by point from generation t-1's Gaussian
            x = mu[:, None] + np.sqrt(var)[:, None] * rng.standard_normal((chains, n))
            mu = x.mean(axis=1)
            var = x.var(axis=1)         # MLE: divide by n
            write_rows(f, t, aggregate(metrics(t, mu, var)), chains)

    wall = time.perf_counter() - t_start
    print(f"peer=numpy chains={chains} samples={n} generations={gens} "
          f"wall_s={wall:.4f} samples_per_s={chains * n * gens / wall:.4g} "
          f"phi={PHI_IMPL} out={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

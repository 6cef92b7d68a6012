#!/usr/bin/python3
"""scikit-learn peer for ouroboros: recursive fitting of a Gaussian kernel density ("replace").

The experiment of Kazdan et al. 2024 ("Collapse or thrive? Perils and promises of synthetic
data in a self-generating world") for kernel density estimators, with the estimator they used,
scikit-learn's KernelDensity, and the loop of experiments/kde/bench.yaml (ouroboros's `kde`
family): `chains` independent chains; generation 1 fits
KernelDensity(kernel="gaussian", bandwidth=h, rtol=0, atol=0) to n real points drawn from the
truth (algorithm left at its default, a KD-tree in 2-D; rtol = atol = 0, scikit-learn's own
defaults, make score_samples exact); generation t >= 2 fits it to n points drawn from
generation t-1's model with kde.sample (a training point picked uniformly plus N(0, h^2 I)):
the "replace" regime, no real data after generation 1.
After each fit, per chain:

  heldout_nll = -mean(kde.score_samples(heldout)) in nats, over M real points drawn once
                (the same set for every chain and generation);
  var_ratio   = (tr S + d h^2) / tr Sigma, S the MLE covariance (divide by n) of the points
                the model was fitted to, Sigma the truth's covariance; tr S + d h^2 is the
                trace of the fitted density's covariance.

Truth: the two moons as an iid law (d = 2): theta ~ U[0, pi]; with probability 1/2 the upper
moon (cos theta, sin theta), else the lower (1 - cos theta, 1/2 - sin theta); plus
N(0, noise^2 I). Its covariance in closed form, with E cos = 0, E sin = 2/pi,
E cos^2 = E sin^2 = 1/2, E sin cos = 0 over theta ~ U[0, pi]:
  x: upper mean 0, E x^2 = 1/2; lower mean 1, E x^2 = 1 - 2 E cos + E cos^2 = 3/2;
     mixture mean 1/2, E x^2 = 1, var x = 1 - 1/4 = 3/4.
  y: upper mean 2/pi, E y^2 = 1/2; lower mean 1/2 - 2/pi, E y^2 = 1/4 - 2/pi + 1/2;
     mixture mean 1/4, E y^2 = 5/8 - 1/pi, var y = 5/8 - 1/pi - 1/16 = 9/16 - 1/pi.
  xy: upper E xy = E sin cos = 0; lower E (1 - cos)(1/2 - sin) = 1/2 - 2/pi;
     mixture E xy = 1/4 - 1/pi, cov xy = 1/4 - 1/pi - (1/2)(1/4) = 1/8 - 1/pi.
  The noise adds noise^2 to each variance: tr Sigma = 21/16 - 1/pi + 2 noise^2
  (1.014190 at noise 0.1).

Agreement with ouroboros: the random streams differ, so the two programs agree statistically,
not bit for bit. The summary line's last-generation means carry their standard errors (std
over chains / sqrt(chains)); ouroboros's metrics.csv has its own (the `se` column). The two
means should differ by less than about 3 sqrt(se_peer^2 + se_ours^2). The held-out set is a
separate draw in each program, which moves heldout_nll by a further amount of order
std(log density) / sqrt(M), about 0.005 nats at M = 2000 and h = 0.5 (the same for every
chain, so not in se). var_ratio has a closed-form expectation: with c = (n-1)/n,
T0 = tr Sigma and a = d h^2, E tr S_1 = c T0 and E tr S_t = c (E tr S_{t-1} + a), so
E var_ratio_t = (c^t T0 + a (c + ... + c^(t-1)) + a) / T0: 1.49 at t = 1 and 10.75 at t = 20
for n = 1000, h = 0.5, noise 0.1 (about a / T0 = 0.49 more each generation).

Timing: wall_seconds is measured from the first line of this script, so it includes the
imports (numpy, sklearn); since_process_start, where /proc allows, adds the interpreter's
start-up. The benchmark script also times the whole process from outside.

Prints one JSON line: wall seconds, chain-generations per second, the last generation's mean
heldout_nll and var_ratio with their standard errors. --out writes a CSV of
generation,chain,heldout_nll,var_ratio (one row per chain and generation).
"""
import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.neighbors import KernelDensity  # noqa: E402

T_IMPORTED = time.perf_counter()
DIM = 2


def since_process_start():
    """Seconds since this process started (Linux /proc, 1/CLK_TCK resolution), or None."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])   # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def truth_trace(noise):
    """Trace of the moons' covariance: 3/4 + (9/16 - 1/pi) + 2 noise^2 (derivation above)."""
    return 0.75 + (9.0 / 16.0 - 1.0 / math.pi) + DIM * noise ** 2


def moons(rng, n, noise):
    """n iid points of the two moons plus N(0, noise^2 I)."""
    theta = rng.uniform(0.0, math.pi, n)
    upper = rng.random(n) < 0.5
    c, s = np.cos(theta), np.sin(theta)
    x = np.where(upper, c, 1.0 - c)
    y = np.where(upper, s, 0.5 - s)
    return np.stack((x, y), axis=1) + noise * rng.standard_normal((n, DIM))


def mle_trace(x):
    """Trace of the MLE covariance (divide by n) of the rows of x."""
    return float(((x - x.mean(axis=0)) ** 2).sum() / x.shape[0])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--generations", type=int, default=10)
    p.add_argument("--samples", type=int, default=1000, help="n, points per generation")
    p.add_argument("--bandwidth", type=float, default=0.5, help="h")
    p.add_argument("--heldout", type=int, default=2000, help="M, held-out real points")
    p.add_argument("--noise", type=float, default=0.1, help="the moons' noise std")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="CSV of generation,chain,heldout_nll,var_ratio (none if omitted)")
    a = p.parse_args()
    for name in ("chains", "generations", "samples", "heldout"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if not a.bandwidth > 0 or not a.noise >= 0:
        p.error("--bandwidth must be positive and --noise non-negative")

    # One seed sequence: the held-out set's stream, then one per chain (numpy's Generator for
    # the real draw, a RandomState for kde.sample, which takes no Generator).
    held_ss, *chain_ss = np.random.SeedSequence(a.seed).spawn(a.chains + 1)
    heldout = moons(np.random.default_rng(held_ss), a.heldout, a.noise)
    tr_truth = truth_trace(a.noise)
    added = DIM * a.bandwidth ** 2
    nll = np.empty((a.generations, a.chains))
    vr = np.empty((a.generations, a.chains))
    for chain, ss in enumerate(chain_ss):
        real_ss, sample_ss = ss.spawn(2)
        sampler = np.random.RandomState(np.random.MT19937(sample_ss))
        x = moons(np.random.default_rng(real_ss), a.samples, a.noise)
        for g in range(a.generations):   # x: generation g + 1's training points
            kde = KernelDensity(kernel="gaussian", bandwidth=a.bandwidth, rtol=0, atol=0).fit(x)
            nll[g, chain] = -kde.score_samples(heldout).mean()
            vr[g, chain] = (mle_trace(x) + added) / tr_truth
            if g + 1 < a.generations:
                x = kde.sample(a.samples, random_state=sampler)
    if a.out:
        with open(a.out, "w") as f:
            f.write("generation,chain,heldout_nll,var_ratio\n")
            for g in range(a.generations):
                for chain in range(a.chains):
                    f.write(f"{g + 1},{chain},{nll[g, chain]:.17g},{vr[g, chain]:.17g}\n")
    wall = time.perf_counter() - T0

    def mean_se(v):
        se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
        return float(v.mean()), se

    cg = a.chains * a.generations
    nll_mean, nll_se = mean_se(nll[-1])
    vr_mean, vr_se = mean_se(vr[-1])
    print(json.dumps({"peer": "sklearn_kde", "chains": a.chains, "generations": a.generations,
                      "samples": a.samples, "bandwidth": a.bandwidth, "heldout": a.heldout,
                      "noise": a.noise, "seed": a.seed,
                      "wall_seconds": wall, "import_seconds": T_IMPORTED - T0,
                      "since_process_start": since_process_start(),
                      "chain_generations_per_second": cg / wall,
                      "last_heldout_nll_mean": nll_mean, "last_heldout_nll_se": nll_se,
                      "last_var_ratio_mean": vr_mean, "last_var_ratio_se": vr_se}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch peer for ouroboros: recursive MLE fitting of a 1-D Gaussian ("replace" regime).

The same experiment as numpy_gaussian.py and ouroboros (see bench/peers/README.md), written
the idiomatic PyTorch way: float64, a seeded torch.Generator, every array on the device
(CUDA by default), metrics with torch.special.ndtr, aggregation with torch.quantile on the
device, and one device->host copy of the aggregated rows per generation.

Import-safe: importing this module never needs torch; main() reports a missing torch.
"""
import argparse
import math
import os
import sys
import tempfile
import time

try:
    import torch
except ImportError:  # torch lives only on the GPU machine
    torch = None

MU0 = 0.0
S0 = 1.0
R_TAIL = 2.5758293035489004  # z_{0.995}: nominal two-sided tail mass of the truth is 0.01
TAIL_NOMINAL = 0.01
METRICS = ("var_ratio", "det_ratio", "mean_sq_err", "w2", "kl", "xent",
           "tail_mass", "synthetic_share", "data_age")
HEADER = "generation,metric,mean,se,std,q05,q50,q95,chains,theory\n"


def metrics(t, m, var):
    """Per-chain metrics of model N(m, var) against the truth N(MU0, S0^2); shape (9, chains)."""
    s = torch.sqrt(var)
    d2 = (m - MU0) ** 2
    ratio = var / S0 ** 2
    quad = (S0 ** 2 + d2) / (2.0 * var)
    kl = torch.log(s / S0) + quad - 0.5
    xent = 0.5 * torch.log(2.0 * math.pi * var) + quad
    w2 = torch.sqrt(d2 + (s - S0) ** 2)
    ndtr = torch.special.ndtr
    tail = (ndtr((MU0 - R_TAIL * S0 - m) / s) + 1.0 - ndtr((MU0 + R_TAIL * S0 - m) / s)) / TAIL_NOMINAL
    synth = torch.full_like(m, 0.0 if t <= 1 else 1.0)
    age = torch.zeros_like(m)
    return torch.stack((ratio, ratio, d2, w2, kl, xent, tail, synth, age))


def aggregate(values, qs):
    """values: (n_metrics, chains) on device -> (n_metrics, 6) on device:
    mean, se, std (unbiased), q05, q50, q95 (linear interpolation, as numpy)."""
    chains = values.shape[1]
    mean = values.mean(dim=1)
    std = values.std(dim=1)                    # Bessel-corrected (ddof=1)
    se = std / math.sqrt(chains)
    q = torch.quantile(values, qs, dim=1)      # (3, n_metrics), interpolation="linear"
    return torch.stack((mean, se, std, q[0], q[1], q[2]), dim=1)


def write_rows(f, t, agg_host, chains):
    f.write("".join(
        f"{t},{name},{row[0]!r},{row[1]!r},{row[2]!r},{row[3]!r},{row[4]!r},{row[5]!r},{chains},\n"
        for name, row in zip(METRICS, agg_host.tolist())))


def main(argv=None):
    t_start = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=100, help="n points per generation")
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=None, help="CSV path (default: a temp file)")
    ap.add_argument("--device", default="cuda", help="torch device: cuda (default), cuda:N or cpu")
    args = ap.parse_args(argv)
    if torch is None:
        print("torch_gaussian.py: PyTorch is not installed for this interpreter", file=sys.stderr)
        return 2
    chains, n, gens = args.chains, args.samples, args.generations
    if chains < 2 or n < 1 or gens < 0:
        ap.error("need chains >= 2, samples >= 1, generations >= 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda requested but CUDA is not available (use --device cpu)")
    out = args.out
    if out is None:
        fd, out = tempfile.mkstemp(prefix="peer_torch_gaussian_", suffix=".csv")
        os.close(fd)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    dt = torch.float64
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    qs = torch.tensor([0.05, 0.5, 0.95], dtype=dt, device=device)
    mu = torch.full((chains,), MU0, dtype=dt, device=device)   # generation 0 is the truth itself
    var = torch.full((chains,), S0 ** 2, dtype=dt, device=device)

    with torch.inference_mode(), open(out, "w") as f:
        f.write(HEADER)
        write_rows(f, 0, aggregate(metrics(0, mu, var), qs).cpu(), chains)
        for t in range(1, gens + 1):
            # n points per chain, drawn point by point from generation t-1's Gaussian
            z = torch.randn((chains, n), generator=gen, dtype=dt, device=device)
            x = mu[:, None] + torch.sqrt(var)[:, None] * z
            mu = x.mean(dim=1)
            var = x.var(dim=1, correction=0)                # MLE: divide by n
            agg = aggregate(metrics(t, mu, var), qs).cpu()  # the one host copy per generation
            write_rows(f, t, agg, chains)

    sync()
    wall = time.perf_counter() - t_start
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"peer=torch chains={chains} samples={n} generations={gens} "
          f"wall_s={wall:.4f} samples_per_s={chains * n * gens / wall:.4g} "
          f"device={device} ({name}) torch={torch.__version__} out={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

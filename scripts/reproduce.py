#!/usr/bin/python3
"""Run the paper reproductions in experiments/papers/ and check each against its declared claims.

Usage:
    scripts/reproduce.py [--reduced] [--binary PATH] [--out-dir DIR] [--doc FILE] [--papers DIR] [--backend B]
                         [--no-plot] [NAME ...]

Each experiments/papers/NAME.yaml is an ouroboros config with a `reproduction:` section, written
before the run: the paper, and a list of claims, each naming where it comes from (theorem, figure,
table), what the paper says, the sweep point and the statistic it is about, and the number or
inequality to hit. The engine never reads that section; this script runs the config, reads
metrics.csv and checks every claim:

    claims:
      - source: Theorem 3.1                 # where in the paper
        says: the fitted variance collapses # the paper's statement, in our words
        at: {data.regime: replace}          # sweep labels naming one point (every axis with more
                                            # than one value)
        metric: var_ratio
        generation: 200                     # or: last
        stat: mean                          # mean | q05 | q50 | q95
        relative_to: {generation: 1}        # optional: divide by the same statistic at another
                                            # generation and/or point ({at: {...}})
        expect: {below: 0.1}                # one of: {below: x}, {above: x}, {at_most: x},
                                            #   {at_least: x}, {near: x, within: r}, {theory: z}
        note: why ouroboros and the paper may differ (optional, shown in the write-up)
        disagrees: the reason found (optional, with below/above only): ouroboros contradicts this
                   claim of the paper, and the check is that the opposite inequality holds
      reduced: {chains: 500}                # --set overrides for the CI-sized run (--reduced)

Tolerances. A mean carries its standard error over chains (se in metrics.csv); quantiles carry
none and are compared as they are. A ratio of two means (relative_to) gets the delta-method se:
paired chain by chain when the two are sweep points compared on the run's summary metric at the
last generation (summary_chains.csv holds those per-chain values, and sweep points share their
random streams); otherwise the two are treated as independent, which overstates the se of a ratio
between two generations of the same chains (they are positively correlated) and so makes bounds
lenient there: pair such a claim with a `theory` claim on the same metric. With Z = 3 (a one-sided
false-claim rate of 1.3e-3 per claim):
  below / above x      the whole interval value +/- Z se lies on the claimed side of x;
  at_most / at_least x a bound, refuted only when the whole interval lies beyond it (for limits the
                       truth approaches, where no finite run can show a strict inequality);
  near x within r      |value / x - 1| <= r + Z se / |x|;
  theory z             |mean - theory column| <= z se.

Writes DIR/NAME/ (the run), DIR/NAME.png (its curves) and the write-up FILE (by default
docs/reproductions.md, written when every reproduction runs at full size) with every claim's
expected and measured value and the pictures copied to docs/img/. Exit status: 0 when every claim holds, 1 when one does not, 2 on a bad
reproduction file.

Only the standard library and Debian's python3-yaml are used (plots by scripts/plot_collapse.py).
"""

import argparse
import csv
import glob
import math
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
Z = 3.0
STATS = ("mean", "q05", "q50", "q95")
EXPECTS = ("below", "above", "at_most", "at_least", "near", "theory")


class BadReproduction(Exception):
    pass


def load(path):
    with open(path) as f:
        cfg = yaml.safe_load(f)
    rep = cfg.get("reproduction") if isinstance(cfg, dict) else None
    if not isinstance(rep, dict) or not rep.get("paper") or not isinstance(rep.get("claims"), list) \
            or not rep["claims"]:
        raise BadReproduction(f"{path}: needs a reproduction section with a paper and a list of claims")
    for i, c in enumerate(rep["claims"]):
        where = f"{path}: claims[{i}]"
        for key in ("source", "says", "metric", "generation", "expect"):
            if key not in c:
                raise BadReproduction(f"{where}: missing {key}")
        if c.get("stat", "mean") not in STATS:
            raise BadReproduction(f"{where}: stat must be one of {', '.join(STATS)}")
        e = c["expect"]
        if not isinstance(e, dict) or len([k for k in e if k in EXPECTS]) != 1:
            raise BadReproduction(f"{where}: expect must hold exactly one of {', '.join(EXPECTS)}")
        if "near" in e and "within" not in e:
            raise BadReproduction(f"{where}: expect near needs within (a relative tolerance)")
        if c.get("disagrees") and not ("below" in e or "above" in e):
            raise BadReproduction(f"{where}: disagrees goes with expect below or above")
        if "theory" in e and ("relative_to" in c or c.get("stat", "mean") != "mean"):
            raise BadReproduction(f"{where}: expect theory compares a mean with the theory column, alone")
    return cfg, rep


def read_metrics(run_dir):
    """{(labels tuple, generation, metric): row dict}, the axis names, the last generation."""
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        g = header.index("generation")
        axes = header[:g]
        table, last = {}, 0
        for r in reader:
            row = dict(zip(header, r))
            gen = int(row["generation"])
            last = max(last, gen)
            table[(tuple(r[:g]), gen, row["metric"])] = row
    return table, axes, last


def read_chains(run_dir):
    """The summary metric's last-generation value of every chain of every point, keyed by the
    point's labels: {labels tuple: [values in chain order]}, and the metric's name (None when the
    run wrote no per-chain summary)."""
    try:
        with open(os.path.join(run_dir, "summary.csv"), newline="") as f:
            rows = list(csv.reader(f))
        with open(os.path.join(run_dir, "summary_chains.csv"), newline="") as f:
            chains = list(csv.reader(f))
    except FileNotFoundError:
        return {}, None
    header, body = rows[0], rows[1:]
    p = header.index("point")
    labels = {r[p]: tuple(r[:p]) for r in body}
    metric = body[0][header.index("metric")] if body else None
    ch = chains[0]
    kp, kc, kl = ch.index("point"), ch.index("chain"), ch.index("last")
    out = {}
    for r in chains[1:]:
        v = out.setdefault(labels[r[kp]], [])
        i = int(r[kc])
        v.extend([float("nan")] * (i + 1 - len(v)))
        v[i] = num(r[kl])
    return out, metric


def paired_ratio(a, b):
    """mean(a) / mean(b) over the chains both have, and its delta-method standard error for
    paired samples: the se of the mean of (a_i - r b_i) / mean(b)."""
    pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
    n = len(pairs)
    ma = sum(x for x, _ in pairs) / n
    mb = sum(y for _, y in pairs) / n
    r = ma / mb
    d = [(x - r * y) / mb for x, y in pairs]
    md = sum(d) / n
    var = sum((x - md) ** 2 for x in d) / (n - 1)
    return r, math.sqrt(var / n), n


def num(s):
    if s in ("", None):
        return float("nan")
    return float(s)


def labels_of(axes, at, where):
    """The one point (its labels, in axis order) that `at` names."""
    at = {str(k): v for k, v in (at or {}).items()}
    for k in at:
        if k not in axes:
            raise BadReproduction(f"{where}: at names {k}, which is not a sweep axis ({', '.join(axes) or 'none'})")
    return at


def lookup(table, axes, at, generation, metric, where, last):
    gen = last if generation == "last" else int(generation)
    want = labels_of(axes, at, where)
    hits = [k for k in table
            if k[1] == gen and k[2] == metric
            and all(_same(k[0][axes.index(a)], v) for a, v in want.items())]
    if len(hits) != 1:
        raise BadReproduction(f"{where}: {len(hits)} rows match at={at}, generation {gen}, metric {metric} "
                              "(name every swept axis)")
    return table[hits[0]], gen


def _same(label, value):
    try:
        return float(label) == float(value)
    except ValueError:
        return str(label) == str(value)


def evaluate(claim, table, axes, last, where, chains=None, chain_metric=None):
    """(holds, measured text, expected text, the generation). A comparison of two points' means of the run's
    summary metric at the last generation is paired chain by chain (the points share their random
    streams); every other ratio treats its two means as independent."""
    stat = claim.get("stat", "mean")
    row, gen = lookup(table, axes, claim.get("at"), claim["generation"], claim["metric"], where, last)
    v = num(row[stat])
    se = num(row["se"]) if stat == "mean" else 0.0
    e = claim["expect"]
    if "theory" in e:
        th = num(row["theory"])
        if math.isnan(th):
            raise BadReproduction(f"{where}: the row has no theory value")
        z = abs(v - th) / se if se > 0 else (0.0 if v == th else math.inf)
        return (z <= float(e["theory"]), f"{v:.5g} ± {se:.2g} (z = {z:.2f})",
                f"theory {th:.5g}, z within ±{e['theory']}", gen)
    tag = ""
    if "relative_to" in claim:
        ref = claim["relative_to"]
        ref_at = dict(claim.get("at") or {})
        ref_at.update(ref.get("at") or {})
        rrow, rgen = lookup(table, axes, ref_at, ref.get("generation", claim["generation"]), claim["metric"],
                            where, last)
        rv = num(rrow[stat])
        rse = num(rrow["se"]) if stat == "mean" else 0.0
        paired = (stat == "mean" and ref.get("at") and rgen == gen == last and chain_metric == claim["metric"])
        if paired:
            key = lambda at: next(k for k in chains if all(_same(k[axes.index(a)], x) for a, x in at.items()))
            ratio, se, _ = paired_ratio(chains[key(labels_of(axes, claim.get("at"), where))],
                                        chains[key(labels_of(axes, ref_at, where))])
            tag = " (paired)"
        else:
            ratio = v / rv
            se = abs(ratio) * math.hypot(se / v if v else 0.0, rse / rv if rv else 0.0)
        v = ratio
    spread = Z * se
    if claim.get("disagrees"):
        # The paper's inequality, contradicted: the whole interval on the other side.
        if "below" in e:
            x = float(e["below"])
            return v - spread > x, _fmt(v, se) + tag, f"< {x:g} (paper); ouroboros finds the opposite", gen
        x = float(e["above"])
        return v + spread < x, _fmt(v, se) + tag, f"> {x:g} (paper); ouroboros finds the opposite", gen
    if "below" in e:
        x = float(e["below"])
        return v + spread < x, _fmt(v, se) + tag, f"< {x:g}", gen
    if "above" in e:
        x = float(e["above"])
        return v - spread > x, _fmt(v, se) + tag, f"> {x:g}", gen
    if "at_most" in e:
        x = float(e["at_most"])
        return v - spread <= x, _fmt(v, se) + tag, f"≤ {x:g}", gen
    if "at_least" in e:
        x = float(e["at_least"])
        return v + spread >= x, _fmt(v, se) + tag, f"≥ {x:g}", gen
    x, r = float(e["near"]), float(e["within"])
    ok = abs(v / x - 1.0) <= r + spread / abs(x)
    return ok, _fmt(v, se) + tag, f"{x:.4g} within {100 * r:g}%", gen


def _fmt(v, se):
    return f"{v:.4g}" if se == 0 else f"{v:.4g} ± {se:.2g}"


def run_one(path, args):
    cfg, rep = load(path)
    name = os.path.splitext(os.path.basename(path))[0]
    out = os.path.join(args.out_dir, name)
    cmd = [args.binary, "run", path, "--out", out, "--force", "--no-progress", "--backend", args.backend]
    if args.reduced:
        for k, v in (rep.get("reduced") or {}).items():
            cmd += ["--set", f"{k}={v}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BadReproduction(f"{path}: ouroboros failed ({proc.returncode}): {proc.stderr.strip()}")
    table, axes, last = read_metrics(out)
    chains, chain_metric = read_chains(out)
    results = []
    for i, c in enumerate(rep["claims"]):
        ok, measured, expected, gen = evaluate(c, table, axes, last, f"{path}: claims[{i}]", chains, chain_metric)
        results.append((dict(c, generation=gen), ok, measured, expected))
    picture = None
    if not args.no_plot:
        picture = os.path.join(args.out_dir, name + ".png")
        plot = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "plot_collapse.py"), out, "--out",
                               picture], capture_output=True, text=True)
        if plot.returncode != 0:
            raise BadReproduction(f"{path}: the plot failed: {plot.stderr.strip()}")
    return name, cfg, rep, results, picture, " ".join(os.path.relpath(a, ROOT) if os.path.isabs(a) else a
                                                       for a in cmd[1:3] + cmd[9:])


def write_doc(doc, entries):
    img_dir = os.path.join(os.path.dirname(doc), "img")
    os.makedirs(img_dir, exist_ok=True)
    lines = ["# Paper reproductions", "",
             "Written by `scripts/reproduce.sh` from experiments/papers/: each file there is an ouroboros config",
             "whose `reproduction:` section names the paper and declares, before the run, the claims to check:",
             "where each comes from, the statistic it is about and the number or inequality to hit. Tolerances:",
             f"a mean's interval is its value ± {Z:g} standard errors over chains (for a ratio of means, the",
             "delta-method error); quantiles are compared as they are (scripts/reproduce.py says exactly how).",
             "A reduced-size run of every file is checked in CI (tests/scripts/test_reproduce.sh).", ""]
    held = sum(ok for e in entries for (_, ok, _, _) in e[3])
    total = sum(len(e[3]) for e in entries)
    contradicted = sum(ok and bool(c.get("disagrees")) for e in entries for (c, ok, _, _) in e[3])
    confirms = "confirms" if contradicted == 1 else "confirm"
    lines += [f"**{held} of {total} checks pass**" + (f" ({contradicted} of them {confirms} a documented disagreement "
                                                      "with its paper, whose reason the section gives)."
                                                      if contradicted else "."), ""]
    for name, cfg, rep, results, picture, cmd in entries:
        lines += [f"## {cfg.get('name', name)}", "", rep["paper"].strip(), ""]
        if rep.get("summary"):
            lines += [rep["summary"].strip(), ""]
        lines += [f"Config: experiments/papers/{name}.yaml ({cfg.get('chains')} chains, "
                  f"{cfg.get('generations')} generations); run: `ouroboros {cmd}`.", "",
                  "| source | the paper says | at | statistic | expected | measured | holds |",
                  "|---|---|---|---|---|---|---|"]
        for c, ok, measured, expected in results:
            at = ", ".join(f"{k}={v}" for k, v in (c.get("at") or {}).items()) or "–"
            stat = f"{c.get('stat', 'mean')} of `{c['metric']}` at generation {c['generation']}"
            if c.get("relative_to"):
                r = c["relative_to"]
                ref = [f"generation {r['generation']}"] if "generation" in r else []
                ref += [f"{k}={v}" for k, v in (r.get("at") or {}).items()]
                stat += " ÷ the same at " + ", ".join(ref)
            verdict = ("contradicted, as found" if c.get("disagrees") else "yes") if ok else "**no**"
            lines.append(f"| {c['source']} | {' '.join(str(c['says']).split())} | {at} | {stat} | {expected} | "
                         f"{measured} | {verdict} |")
        notes = [c for c, _, _, _ in results if c.get("note") or c.get("disagrees")]
        if notes:
            lines.append("")
            lines += [f"- {' '.join(str(c.get('disagrees') or c['note']).split())}" for c in notes]
        if picture:
            dest = os.path.join(img_dir, f"repro_{name}.png")
            shutil.copyfile(picture, dest)
            lines += ["", f"![{name}](img/repro_{name}.png)"]
        lines.append("")
    with open(doc, "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="reproductions to run (default: every experiments/papers/*.yaml)")
    ap.add_argument("--reduced", action="store_true", help="the CI-sized runs (each file's reduced: overrides)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "ouroboros"))
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "runs", "reproductions"))
    ap.add_argument("--doc", default=None,
                    help="the write-up (default: docs/reproductions.md when every reproduction runs at full size)")
    ap.add_argument("--papers", default=os.path.join(ROOT, "experiments", "papers"),
                    help="the folder of reproduction configs")
    ap.add_argument("--backend", default="auto", help="auto (default), cpu or cuda, for every run")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.papers, "*.yaml")))
    if args.names:
        files = [f for f in files if os.path.splitext(os.path.basename(f))[0] in args.names]
        if len(files) != len(args.names):
            sys.stderr.write("reproduce: unknown reproduction name among %s\n" % args.names)
            return 2
    os.makedirs(args.out_dir, exist_ok=True)
    entries, failed = [], 0
    try:
        for path in files:
            entry = run_one(path, args)
            entries.append(entry)
            for c, ok, measured, expected in entry[3]:
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {entry[0]}: {c['source']}: {c['metric']} {measured} "
                      f"(expected {expected})")
    except (BadReproduction, yaml.YAMLError, OSError) as e:
        sys.stderr.write(f"reproduce: error: {e}\n")
        return 2
    except (ArithmeticError, LookupError, ValueError, TypeError, StopIteration) as e:
        # A claim that the run's tables cannot answer (a zero reference, a
        # point without chains, a label that matches nothing): the file's
        # fault, never a failed claim.
        sys.stderr.write(f"reproduce: error: a claim could not be evaluated: {type(e).__name__}: {e}\n")
        return 2
    doc = args.doc or (None if args.reduced or args.names else os.path.join(ROOT, "docs", "reproductions.md"))
    if doc:
        write_doc(doc, entries)
        print(f"write-up: {os.path.relpath(doc, ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Plot the per-generation metrics of an ouroboros run.

Usage:
    scripts/plot_collapse.py DIR [--out FILE] [--metrics m1,m2,...] [--center mean|median] [--no-scatter]

Reads DIR/metrics.csv (tidy: one row per sweep point, generation and metric)
and, if present, DIR/manifest.json (for the run's name), and writes a grid of
panels, one per metric, to DIR/collapse.png (or FILE).  The output path is
printed on stdout.

Every column of metrics.csv before `generation` is a sweep axis; each unique
combination of axis values is one line.  For each line the figure shows the
chain mean (solid), mean +/- one standard error (dark band), the 5-95 %
spread across chains (light band) and, where the run supplies it, the
closed-form expectation of the mean (dashed).  With --center median the line
is the median over chains (no standard-error band, no theory: the theory
column is an expectation), for metrics whose mean is carried by a few chains
(a rare mode's mass is a martingale that dies in most chains).  The config's
`plot: {metrics: [...], center: ...}` section, recorded in manifest.json,
gives the defaults; the options override it.

Without plot.metrics or --metrics every metric of the run gets a panel,
except those whose values (mean and quantiles) are the same number at every
sweep point and generation, or missing throughout: a constant or empty panel
says nothing (they are named on stderr; asking for one draws it).

When the run drew model samples (`plot: {scatter: ...}`: DIR/scatter.csv), a
block of small panels goes below the curves: a row per sweep point (the
first six), a panel per scatter generation titled "generation g", the first two
coordinates of each chain's points in its own colour, with equal aspect and
the same limits across a point's generations, so that a cloud that shrinks
looks smaller; for one-dimensional points each panel holds a histogram per
chain over bins shared by the point's generations. The number of panels is
said on stderr; --no-scatter leaves the block out.

Only the standard library, numpy and matplotlib are used (run it with
Debian's /usr/bin/python3); without numpy or matplotlib the script says what
to install and exits with status 1.
"""

import argparse
import csv
import io
import json
import math
import os
import sys

try:
    import numpy as np
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator
except ImportError as e:
    sys.stderr.write("plot_collapse.py needs numpy and matplotlib (%s): apt-get install python3-numpy "
                     "python3-matplotlib, or pip install numpy matplotlib\n" % e)
    sys.exit(1)

# Okabe-Ito, reordered so the low-contrast yellow comes last.
OKABE_ITO = ["#0072B2", "#D55E00", "#009E73", "#CC79A7",
             "#E69F00", "#56B4E9", "#000000", "#F0E442"]

PANEL_W = 4.2      # inches per panel
PANEL_H = 3.1
MAX_COLS = 3
LOG_SPAN = 100.0   # > two decades of positive values -> log y
LOG_CLAMP = 1e3    # on log axes, bands may reach at most 3 decades past the means
SCATTER_PANEL = 2.4       # inches per scatter panel (square), at most
SCATTER_MIN_PANEL = 1.5   # and at least
SCATTER_MAX_POINTS = 6    # sweep points with a row of scatter panels


def die(msg):
    sys.stderr.write("plot_collapse: error: %s\n" % msg)
    sys.exit(2)


def to_float(values):
    """Strings -> float array; empty or unparsable entries become nan."""
    cleaned = [v.strip() or "nan" for v in values]
    try:
        return np.array(cleaned, dtype=float)
    except ValueError:
        out = np.empty(len(cleaned))
        for i, v in enumerate(cleaned):
            try:
                out[i] = float(v)
            except ValueError:
                out[i] = np.nan
        return out


def read_metrics(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            die("%s is empty" % path)
        if "generation" not in header:
            die("%s has no 'generation' column (header: %s)"
                % (path, ",".join(header)))
        width = len(header)
        rows = []
        for r in reader:
            if not r or (len(r) == 1 and not r[0].strip()):
                continue
            if len(r) < width:
                r = r + [""] * (width - len(r))
            rows.append(r[:width])
    for need in ("metric", "mean"):
        if need not in header:
            die("%s has no '%s' column" % (path, need))
    if not rows:
        die("%s has no data rows" % path)
    cols = list(zip(*rows))
    gi = header.index("generation")
    axes = header[:gi]
    table = {
        "axes": axes,
        "axis_values": [[v.strip() for v in cols[i]] for i in range(gi)],
        "metric": [v.strip() for v in cols[header.index("metric")]],
        "generation": to_float(cols[gi]),
    }
    for name in ("mean", "se", "std", "q05", "q50", "q95", "chains", "degenerate_chains", "theory"):
        if name in header:
            table[name] = to_float(cols[header.index(name)])
        else:
            table[name] = np.full(len(rows), np.nan)
    return table


def run_config(directory):
    """The run's resolved config from manifest.json ({} if unreadable)."""
    try:
        with open(os.path.join(directory, "manifest.json")) as f:
            config = json.load(f).get("config", {})
        return config if isinstance(config, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def run_name(directory):
    name = run_config(directory).get("name")
    if name:
        return str(name)
    return os.path.basename(os.path.normpath(os.path.abspath(directory)))


def constant_metrics(t, names):
    """The metrics among names whose mean and quantiles take one value (or
    none) over every sweep point and generation."""
    metric = np.array(t["metric"], dtype=object)
    finite_gen = np.isfinite(t["generation"])
    out = []
    for m in names:
        rows = (metric == m) & finite_gen
        values = np.concatenate([t[c][rows] for c in ("mean", "q05", "q50", "q95")])
        values = values[~np.isnan(values)]
        if values.size == 0 or np.all(values == values[0]):
            out.append(m)
    return out


def panel_metrics(t, requested):
    """The metrics to draw, in order, and those left out of the default panels.

    requested: a list of metric names (--metrics or plot.metrics), drawn as
    asked where the run has them; None: every metric of the run that is not
    constant (all of them when every one is)."""
    names = list(dict.fromkeys(m for m, g in zip(t["metric"], t["generation"])
                               if m and np.isfinite(g)))
    if requested is not None:
        missing = [m for m in requested if m not in names]
        if missing:
            sys.stderr.write("plot_collapse: warning: no data for metric(s): %s\n"
                             % ", ".join(missing))
        return [m for m in requested if m in names], []
    constant = constant_metrics(t, names)
    if len(constant) == len(names):
        return names, []
    return [m for m in names if m not in constant], constant


def axis_sort_key(values):
    """Order of an axis' values: numeric if all are numbers, else first seen."""
    uniq = list(dict.fromkeys(values))
    try:
        nums = {u: float(u) for u in uniq}
        return lambda v: nums[v]
    except ValueError:
        pos = {u: i for i, u in enumerate(uniq)}
        return lambda v: pos[v]


def short_names(axes):
    last = [a.split(".")[-1] for a in axes]
    return [l if last.count(l) == 1 else a for a, l in zip(axes, last)]


def palette(n):
    if n <= len(OKABE_ITO):
        return OKABE_ITO[:n]
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.0, 0.92, n)]


def darker(colour, f=0.6):
    r, g, b = to_rgb(colour)
    return (r * f, g * f, b * f)


def fmt_count(x):
    return "%d" % x if float(x).is_integer() else "%g" % x


def read_scatter(path):
    """scatter.csv: {point: (labels, {generation: {chain: array [points][D]}})}, the swept keys, and D."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            die("%s is empty" % path)
        need = ("point", "generation", "chain")
        if any(n not in header for n in need) or header.index("chain") != header.index("point") + 2:
            die("%s: expected the swept keys, then point,generation,chain,x_1,... (header: %s)"
                % (path, ",".join(header)))
        pi = header.index("point")
        dims = len(header) - pi - 3
        rows = [r for r in reader if r and any(v.strip() for v in r)]
    points = {}
    if not rows:
        return points, header[:pi], dims
    if any(len(r) != len(header) for r in rows):
        die("%s: a row has not the header's %d fields" % (path, len(header)))
    cols = list(zip(*rows))
    ids = np.array(cols[pi], dtype=int)
    gens = np.array(cols[pi + 1], dtype=int)
    chains = np.array(cols[pi + 2], dtype=int)
    x = np.stack([to_float(cols[pi + 3 + k]) for k in range(dims)], axis=1) if dims else np.zeros((len(rows), 0))
    for i in range(len(rows)):
        if ids[i] not in points:
            points[ids[i]] = (tuple(rows[i][:pi]), {})
    for p in points:
        at_p = ids == p
        for g in np.unique(gens[at_p]):
            at_g = at_p & (gens == g)
            points[p][1][int(g)] = {int(c): x[at_g & (chains == c)] for c in np.unique(chains[at_g])}
    return points, header[:pi], dims


def chain_colours(chains):
    """A distinct colour per chain id: Okabe-Ito, then tab20 past eight chains."""
    if len(chains) <= len(OKABE_ITO):
        return {c: OKABE_ITO[i] for i, c in enumerate(chains)}
    cmap = plt.get_cmap("tab20")
    return {c: cmap(i % 20) for i, c in enumerate(chains)}


def square_limits(values):
    """Limits for x_1 and x_2 with one span for both (equal aspect fills a square panel)."""
    finite = values[np.all(np.isfinite(values), axis=1)]
    if finite.size == 0:
        return (-1.0, 1.0), (-1.0, 1.0)
    lo, hi = finite.min(axis=0), finite.max(axis=0)
    centre = (lo + hi) / 2.0
    half = max(float((hi - lo).max()) / 2.0 * 1.06, 1e-9 * (1.0 + float(np.abs(centre).max())))
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def scatter_figure(path, width_in):
    """The scatter block of scatter.csv as a figure at most about width_in wide (wider only where its panels would
    be too small), and its panel count (None, 0 when the file has no rows)."""
    points, axes, dims = read_scatter(path)
    if not points or dims < 1:
        return None, 0
    order = sorted(points)
    if len(order) > SCATTER_MAX_POINTS:
        sys.stderr.write("plot_collapse: scatter: the first %d of %d sweep points drawn\n"
                         % (SCATTER_MAX_POINTS, len(order)))
        order = order[:SCATTER_MAX_POINTS]
    generations = sorted({g for p in order for g in points[p][1]})
    chains = sorted({c for p in order for by_chain in points[p][1].values() for c in by_chain})
    colours = chain_colours(chains)
    ncols = len(generations)
    gap = 0.5  # inches a panel's tick labels and the space between panels take
    panel = min(SCATTER_PANEL, max(SCATTER_MIN_PANEL, (width_in - 0.4) / ncols - gap))
    names = short_names(axes)
    per_chain = max(len(x) for p in order for by_chain in points[p][1].values() for x in by_chain.values())
    # A marker of about 2 pt^2 for a few thousand points in a panel, larger for a few, smaller for many.
    marker = float(np.clip(4000.0 / (per_chain * len(chains)), 0.6, 8.0))

    height_rows = panel + 0.75
    legend_h = 0.55
    fig = plt.figure(figsize=(ncols * (panel + gap) + 0.4, len(order) * height_rows + legend_h),
                     layout="constrained")
    subs = fig.subfigures(len(order) + 1, 1, height_ratios=[height_rows] * len(order) + [legend_h])
    panels = 0
    for row, p in enumerate(order):
        labels, by_gen = points[p]
        sub = subs[row]
        title = ", ".join("%s=%s" % (a, v) for a, v in zip(names, labels)) if axes else ""
        if dims > 2:
            title += ("; " if title else "") + "x_1, x_2 of %d coordinates" % dims
        if title:
            sub.suptitle(title, fontsize=10)
        axs = sub.subplots(1, ncols, squeeze=False)[0]
        everything = np.concatenate([x for by_chain in by_gen.values() for x in by_chain.values()])
        # The point's own dimension: its coordinates past it are empty.
        d = int(np.sum(np.any(np.isfinite(everything), axis=0)))
        for gi, g in enumerate(generations):
            ax = axs[gi]
            ax.set_title("generation %d" % g, fontsize=9)
            ax.tick_params(labelsize=8, direction="out", length=2.5)
            by_chain = by_gen.get(g)
            if by_chain is None:
                ax.set_axis_off()
                continue
            panels += 1
            if d >= 2:
                xlim, ylim = square_limits(everything[:, :2])
                for c in chains:
                    if c in by_chain:
                        x = by_chain[c]
                        ax.scatter(x[:, 0], x[:, 1], s=marker, color=colours[c], alpha=0.65, lw=0,
                                   rasterized=False)
                ax.set_xlim(*xlim)
                ax.set_ylim(*ylim)
                ax.set_aspect("equal", adjustable="box")
                ax.set_xlabel("$x_1$", fontsize=9, labelpad=1)
                if gi == 0:
                    ax.set_ylabel("$x_2$", fontsize=9, labelpad=1)
            else:
                v = everything[:, 0]
                v = v[np.isfinite(v)]
                lo, hi = (v.min(), v.max()) if v.size else (-1.0, 1.0)
                if hi <= lo:
                    lo, hi = lo - 0.5, hi + 0.5
                edges = np.linspace(lo, hi, int(np.clip(2.0 * np.sqrt(per_chain), 10, 60)) + 1)
                for c in chains:
                    if c in by_chain:
                        ax.hist(by_chain[c][:, 0], bins=edges, histtype="step", color=colours[c], lw=1.0)
                ax.set_xlim(lo, hi)
                ax.set_xlabel("$x_1$", fontsize=9, labelpad=1)
                if gi == 0:
                    ax.set_ylabel("points", fontsize=9, labelpad=1)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
            ax.grid(True, color="0.92", lw=0.5)
            ax.set_axisbelow(True)
        if d < 2:  # one count axis for the row, so that a histogram that narrows is seen to rise
            top = max(ax.get_ylim()[1] for ax in axs if ax.axison)
            for ax in axs:
                ax.set_ylim(0.0, top)
    handles = [Line2D([], [], ls="none", marker="o", ms=5, color=colours[c], label="chain %d" % c) for c in chains]
    legend = subs[-1]
    legend.legend(handles=handles, loc="center", ncol=min(len(handles), 8), frameon=False, fontsize=9,
                  title="model samples, %d points per chain and generation" % per_chain, title_fontsize=9,
                  handletextpad=0.2, columnspacing=1.2)
    return fig, panels


def stack_images(top, bottom, out, dpi):
    """Two rendered PNGs (byte buffers) one above the other, centred on a white page, written to out."""
    a, b = plt.imread(top), plt.imread(bottom)
    width = max(a.shape[1], b.shape[1])

    def padded(img):
        page = np.ones((img.shape[0], width, 4), dtype=img.dtype)
        left = (width - img.shape[1]) // 2
        page[:, left:left + img.shape[1], :img.shape[2]] = img
        return page

    plt.imsave(out, np.concatenate([padded(a), padded(b)], axis=0), dpi=dpi)


def main():
    ap = argparse.ArgumentParser(description="Plot ouroboros collapse metrics.")
    ap.add_argument("dir", help="run directory containing metrics.csv")
    ap.add_argument("--out", help="output image (default DIR/collapse.png)")
    ap.add_argument("--metrics", help="comma-separated metrics to plot, in order")
    ap.add_argument("--center", choices=("mean", "median"),
                    help="line drawn per sweep point (default: the config's plot.center, else mean)")
    ap.add_argument("--no-scatter", action="store_true",
                    help="leave out the model samples of scatter.csv (drawn below the curves when the run has them)")
    args = ap.parse_args()
    plot_cfg = run_config(args.dir).get("plot") or {}
    if not isinstance(plot_cfg, dict):
        plot_cfg = {}
    if args.metrics is None and isinstance(plot_cfg.get("metrics"), list):
        args.metrics = ",".join(str(m) for m in plot_cfg["metrics"])
    if args.center is None:
        args.center = plot_cfg.get("center") if plot_cfg.get("center") in ("mean", "median") else "mean"
    median = args.center == "median"

    csv_path = os.path.join(args.dir, "metrics.csv")
    if not os.path.isfile(csv_path):
        die("%s not found" % csv_path)
    t = read_metrics(csv_path)
    out = args.out or os.path.join(args.dir, "collapse.png")

    gen = t["generation"]
    keep = np.isfinite(gen)
    wanted = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    metric_names, skipped = panel_metrics(t, wanted)
    if skipped:
        sys.stderr.write("plot_collapse: no panel for metric(s) constant over every point and generation: %s "
                         "(--metrics or plot.metrics draws them)\n" % ", ".join(skipped))
    if not metric_names:
        die("no metrics to plot in %s" % csv_path)

    # --- integer ids for metric and sweep point; one lexsort groups everything.
    axes = t["axes"]
    n = len(gen)
    mid_of = {m: i for i, m in enumerate(metric_names)}
    mid = np.array([mid_of.get(m, -1) for m in t["metric"]], dtype=np.int64)
    keys = list(zip(*t["axis_values"])) if axes else [()] * n
    sorters = [axis_sort_key(v) for v in t["axis_values"]]
    keep &= mid >= 0
    used = set(k for k, u in zip(keys, keep) if u)   # points with something to plot
    points = sorted(used, key=lambda k: tuple(s(v) for s, v in zip(sorters, k)))
    pid_of = {k: i for i, k in enumerate(points)}
    pid = np.array([pid_of.get(k, -1) for k in keys], dtype=np.int64)
    idx = np.nonzero(keep)[0]
    idx = idx[np.lexsort((gen[idx], pid[idx], mid[idx]))]
    groups = {}
    if len(idx):
        gm, gp = mid[idx], pid[idx]
        cut = np.nonzero((np.diff(gm) != 0) | (np.diff(gp) != 0))[0] + 1
        for seg in np.split(idx, cut):
            groups[(mid[seg[0]], pid[seg[0]])] = seg

    g_lo = gen[idx].min() if len(idx) else 0.0
    g_hi = gen[idx].max() if len(idx) else 1.0
    colours = palette(len(points))
    names = short_names(axes)
    labels = [", ".join("%s=%s" % (a, v) for a, v in zip(names, k)) for k in points]

    plt.rcParams.update({
        "font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9,
        "figure.facecolor": "white", "axes.facecolor": "white",
        "savefig.facecolor": "white", "axes.spines.top": False,
        "axes.spines.right": False,
    })

    nm = len(metric_names)
    ncols = 2 if nm == 4 else min(MAX_COLS, nm)
    nrows = int(math.ceil(nm / ncols))
    fig_w = PANEL_W * ncols
    panels_h = PANEL_H * nrows
    fig, axs = plt.subplots(nrows, ncols, figsize=(fig_w, panels_h + 1.0),
                            squeeze=False)
    any_theory = False

    for mi, metric in enumerate(metric_names):
        ax = axs[mi // ncols][mi % ncols]
        segs = [(p, groups.get((mi, p))) for p in range(len(points))]
        segs = [(p, s) for p, s in segs if s is not None]

        line_col = "q50" if median else "mean"
        centre = np.concatenate([np.concatenate([t[line_col][s], t["theory"][s]])
                                 for _, s in segs]) if segs else np.array([])
        pos = centre[np.isfinite(centre) & (centre > 0)]
        log = pos.size > 0 and pos.max() / pos.min() > LOG_SPAN

        for p, s in segs:
            c = colours[p]
            x = gen[s]
            mean, se = t[line_col][s], t["se"][s]
            q05, q95, th = t["q05"][s], t["q95"][s], t["theory"][s]
            lo_se, hi_se = mean - se, mean + se
            if median:  # no standard error for a median; theory is a mean
                lo_se = hi_se = th = np.full(len(s), np.nan)
            if log:
                def pos_only(a):
                    return np.where(a > 0, a, np.nan)
                mean, th, q05, q95 = map(pos_only, (mean, th, q05, q95))
                # A lower band edge at or below zero is drawn down to the axis floor.
                lo_se = np.where(lo_se > 0, lo_se, np.where(np.isfinite(hi_se), 1e-300, np.nan))
                q05 = np.where(np.isfinite(q05) | ~np.isfinite(q95), q05, 1e-300)
                hi_se = pos_only(hi_se)
            # Missing values are skipped (neighbours joined), not drawn as gaps.
            ok = np.isfinite(q05) & np.isfinite(q95)
            if ok.any():
                ax.fill_between(x[ok], q05[ok], q95[ok], color=c, alpha=0.12,
                                lw=0, zorder=1)
            ok = np.isfinite(lo_se) & np.isfinite(hi_se)
            if ok.any():
                ax.fill_between(x[ok], lo_se[ok], hi_se[ok], color=c, alpha=0.35,
                                lw=0, zorder=2)
            ok = np.isfinite(mean)
            ax.plot(x[ok], mean[ok], color=c, lw=1.6, zorder=3,
                    label=labels[p] if axes else None)
            ok = np.isfinite(th)
            if ok.any():
                any_theory = True
                ax.plot(x[ok], th[ok], color=darker(c), lw=1.0, ls=(0, (4, 2)),
                        zorder=4)

        if log:
            ax.set_yscale("log")
            lo, hi = pos.min(), pos.max()
            ax.autoscale_view()
            b, tp = ax.get_ylim()
            ax.set_ylim(max(b, lo / LOG_CLAMP), min(tp, hi * LOG_CLAMP))
        ax.set_title(metric)
        if g_hi > g_lo:
            ax.set_xlim(g_lo, g_hi)
        ax.grid(True, which="major", color="0.88", lw=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(direction="out", length=3)
        # x label only where no panel sits below
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=True))
        if mi + ncols >= nm:
            ax.set_xlabel("generation")
        if not segs:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes,
                    ha="center", va="center", color="0.5")
    for k in range(nm, nrows * ncols):
        axs[k // ncols][k % ncols].set_visible(False)

    # --- title and legends (sized in inches, then the figure is fitted around them)
    ch = t["chains"][keep]
    ch = ch[np.isfinite(ch)]
    title = run_name(args.dir)
    if ch.size:
        lo_c, hi_c = ch.min(), ch.max()
        title += " \u2014 %s chains" % (fmt_count(hi_c) if lo_c == hi_c else
                                        "%s\u2013%s" % (fmt_count(lo_c), fmt_count(hi_c)))
    sup = fig.suptitle(title, fontsize=12, y=0.995, va="top")

    grey = "0.35"
    if median:
        style_handles = [Line2D([], [], color=grey, lw=1.6, label="median over chains"),
                         Patch(color=grey, alpha=0.15, lw=0, label="5\u201395% of chains")]
    else:
        style_handles = [Line2D([], [], color=grey, lw=1.6, label="mean over chains"),
                         Patch(color=grey, alpha=0.45, lw=0, label="\u00b11 s.e. of the mean"),
                         Patch(color=grey, alpha=0.15, lw=0, label="5\u201395% of chains")]
    if any_theory:
        style_handles.append(Line2D([], [], color="0.15", lw=1.0, ls=(0, (4, 2)),
                                    label="dashed: theory (expectation)"))
    def fitted_legend(handles, ncol):
        """A figure legend with at most ncol balanced columns, narrowed to fit."""
        while True:
            ncol = int(math.ceil(len(handles) / math.ceil(len(handles) / ncol)))
            leg = fig.legend(handles=handles, loc="lower center", ncol=ncol,
                             frameon=False, bbox_to_anchor=(0.5, 0.0),
                             handlelength=2.2, columnspacing=1.6)
            fig.canvas.draw()
            if ncol == 1 or leg.get_window_extent().width <= 0.98 * fig_w * fig.dpi:
                return leg
            leg.remove()
            ncol -= 1

    style_leg = fitted_legend(style_handles, len(style_handles))
    point_leg = None
    if axes:
        handles = [Line2D([], [], color=colours[p], lw=2.0, label=labels[p])
                   for p in range(len(points))]
        point_leg = fitted_legend(handles, len(handles))

    fig.canvas.draw()
    dpi = fig.dpi
    pad = 0.06
    style_h = style_leg.get_window_extent().height / dpi
    point_h = point_leg.get_window_extent().height / dpi if point_leg else 0.0
    title_h = sup.get_window_extent().height / dpi
    bottom_in = style_h + point_h + 2 * pad
    top_in = title_h + pad
    fig_h = panels_h + bottom_in + top_in
    fig.set_size_inches(fig_w, fig_h)
    style_leg.set_bbox_to_anchor((0.5, pad / fig_h), transform=fig.transFigure)
    if point_leg:
        point_leg.set_bbox_to_anchor((0.5, (pad + style_h) / fig_h),
                                     transform=fig.transFigure)
    sup.set_y(1.0 - pad / fig_h)
    # tight_layout already keeps the axes clear of the suptitle
    fig.tight_layout(rect=(0.0, bottom_in / fig_h, 1.0, 1.0),
                     h_pad=1.2, w_pad=1.0)

    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    scatter_path = os.path.join(args.dir, "scatter.csv")
    scatter, panels = (None, 0)
    if not args.no_scatter and os.path.isfile(scatter_path):
        scatter, panels = scatter_figure(scatter_path, fig_w)
        if scatter is None:
            sys.stderr.write("plot_collapse: scatter: %s has no points to draw\n" % scatter_path)
    if scatter is None:
        fig.savefig(out, dpi=150, facecolor="white")
    else:
        # The curves and the scatter block are laid out apart (each fitted to its own legends and labels), then
        # put one above the other.
        curves, block = io.BytesIO(), io.BytesIO()
        fig.savefig(curves, format="png", dpi=150, facecolor="white")
        scatter.savefig(block, format="png", dpi=150, facecolor="white")
        plt.close(scatter)
        curves.seek(0)
        block.seek(0)
        stack_images(curves, block, out, 150)
        sys.stderr.write("plot_collapse: scatter: %d panels from %s\n" % (panels, scatter_path))
    plt.close(fig)
    print(out)


if __name__ == "__main__":
    main()

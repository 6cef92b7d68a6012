#!/usr/bin/python3
"""Read an ouroboros run folder into pandas DataFrames.

As a module (with scripts/ on sys.path):

    from load_run import load_run
    run = load_run("runs/quickstart-20260101-120000")
    run.metrics          # metrics.csv: one row per sweep point, generation and metric
    run.summary          # summary.csv: one row per sweep point
    run.summary_chains   # summary_chains.csv: one row per sweep point and chain
    run.early_warning    # early_warning.csv (one row per point and detector), or None
    run.per_chain        # per_chain.csv or per_chain.h5 (--per-chain: one row per point, generation and
                         # chain, the same columns from either file), or None
    run.scatter          # scatter.csv (plot.scatter: one row per point drawn from a chain's model at a chosen
                         # generation: point, generation, chain, x_1 .. x_D), or None
    run.manifest         # manifest.json as a dict
    run.config           # config.yaml as a dict (the manifest's copy when PyYAML is not installed)
    run.axes             # the swept keys: the first columns of every table

As a program, a short description of the run:

    python3 scripts/load_run.py DIR

The columns are the files' own (docs/output.md). The swept keys' columns hold
the values as the run wrote them, as text (`"0.5"`, `"replace"`: select with
`run.metrics[run.metrics["data.real_fraction"] == "0.5"]`), and so do the
names (metric, direction, detector, units, baseline); every other column is a
number. An empty cell (no value: no chain left, an undefined spread, a
degenerate chain) is NaN, `inf` and `-inf` are infinities; no other text is
read as missing, so a swept value such as `None` or `NA` stays text. Tables
are joined on the swept keys (metrics.csv has no point column; summary.csv's
`point` numbers the points in the order of manifest.json's `points`).

A folder whose run is not complete (manifest.json's `status`: running,
interrupted) is read as it is: its tables hold the generations and points it
finished.

Needs pandas (Debian's python3-pandas, or pip install pandas); PyYAML
(python3-yaml) is used for config.yaml when it is there, h5py (python3-h5py)
for per_chain.h5 (`--per-chain-format hdf5`). Every number is read back to
the bit (pandas's round-trip float parser for the CSVs).
"""

import dataclasses
import json
import os
import sys
from typing import List, Optional

try:
    import pandas as pd
except ImportError as e:
    sys.stderr.write("load_run.py needs pandas (%s): apt-get install python3-pandas, or pip install pandas\n" % e)
    sys.exit(1)

try:
    import yaml
except ImportError:
    yaml = None

# The columns that hold names rather than numbers, besides the swept keys.
TEXT_COLUMNS = ("metric", "direction", "detector", "units", "baseline")


class RunFolderError(Exception):
    """DIR is not an ouroboros run folder, or one of its files cannot be read."""


@dataclasses.dataclass
class Run:
    directory: str
    axes: List[str]
    metrics: pd.DataFrame
    summary: pd.DataFrame
    summary_chains: pd.DataFrame
    early_warning: Optional[pd.DataFrame]
    per_chain: Optional[pd.DataFrame]
    scatter: Optional[pd.DataFrame]
    manifest: dict
    config: dict

    @property
    def status(self) -> str:
        """manifest.json's status: complete, running or interrupted."""
        return str(self.manifest.get("status", "?"))


def read_table(path: str, axes: Optional[List[str]] = None) -> pd.DataFrame:
    """One of a run's CSV tables: the swept keys and the name columns as
    text, the rest as numbers; only an empty cell is missing."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except (OSError, ValueError) as e:
        raise RunFolderError("cannot read %s: %s" % (path, e)) from e
    text = set(axes or []) | set(TEXT_COLUMNS)
    dtype = {c: str for c in header if c in text}
    try:
        return pd.read_csv(path, dtype=dtype, keep_default_na=False, na_values=[""], float_precision="round_trip")
    except (OSError, ValueError) as e:
        raise RunFolderError("cannot read %s: %s" % (path, e)) from e


def read_per_chain_h5(path: str) -> pd.DataFrame:
    """per_chain.h5 (sim/io/per_chain_h5.h) as per_chain.csv's table: the swept keys (text), generation, chain,
    then one column per metric (NaN where a point does not write it)."""
    try:
        import h5py
        import numpy as np
    except ImportError as e:
        raise RunFolderError("reading %s needs h5py (%s): apt-get install python3-h5py, or pip install h5py"
                             % (path, e)) from e

    def text(values):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    try:
        with h5py.File(path, "r") as f:
            axes = text(f.attrs["axes"])
            frames = []
            for p in range(len(f.keys())):
                group = f["point_%d" % p]
                values = group["values"][()]  # [generation][metric][chain]
                gens, _, chains = values.shape
                table = {a: np.repeat(np.array([label], dtype=object), gens * chains)
                         for a, label in zip(axes, text(group.attrs["labels"]))}
                table["generation"] = np.repeat(np.arange(gens), chains)
                table["chain"] = np.tile(np.arange(chains), gens)
                for m, name in enumerate(text(group.attrs["metrics"])):
                    table[name] = values[:, m, :].ravel()
                frames.append(pd.DataFrame(table))
    except (OSError, KeyError) as e:
        raise RunFolderError("cannot read %s: %s" % (path, e)) from e
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def swept_keys(path: str) -> List[str]:
    """The columns of metrics.csv before `generation`."""
    try:
        header = list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError) as e:
        raise RunFolderError("cannot read %s: %s" % (path, e)) from e
    if "generation" not in header:
        raise RunFolderError("%s has no generation column (header: %s)" % (path, ",".join(header)))
    return header[: header.index("generation")]


def load_run(directory: str) -> Run:
    """Every table of the run in `directory`, with its manifest and config.

    Raises RunFolderError when the folder has no manifest.json, metrics.csv,
    summary.csv or summary_chains.csv, or one of them cannot be read."""
    def path(name):
        return os.path.join(directory, name)

    if not os.path.isdir(directory):
        raise RunFolderError("no folder %s" % directory)
    for name in ("manifest.json", "metrics.csv", "summary.csv", "summary_chains.csv"):
        if not os.path.isfile(path(name)):
            raise RunFolderError("%s is not an ouroboros run folder (no %s)" % (directory, name))
    try:
        with open(path("manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise RunFolderError("cannot read %s: %s" % (path("manifest.json"), e)) from e
    if not isinstance(manifest, dict):
        raise RunFolderError("%s is not a JSON object" % path("manifest.json"))
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    if yaml is not None and os.path.isfile(path("config.yaml")):
        try:
            with open(path("config.yaml")) as f:
                loaded = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            raise RunFolderError("cannot read %s: %s" % (path("config.yaml"), e)) from e
        if isinstance(loaded, dict):
            config = loaded
    axes = swept_keys(path("metrics.csv"))

    def optional(name):
        return read_table(path(name), axes) if os.path.isfile(path(name)) else None

    return Run(
        directory=directory,
        axes=axes,
        metrics=read_table(path("metrics.csv"), axes),
        summary=read_table(path("summary.csv"), axes),
        summary_chains=read_table(path("summary_chains.csv"), axes),
        early_warning=optional("early_warning.csv"),
        per_chain=(read_per_chain_h5(path("per_chain.h5")) if os.path.isfile(path("per_chain.h5"))
                   else optional("per_chain.csv")),
        scatter=optional("scatter.csv"),
        manifest=manifest,
        config=config,
    )


def describe(run: Run) -> str:
    """A few lines on the run: its name and status, points, chains,
    generations and metrics, and each table's size."""
    m = run.metrics
    points = m[run.axes].drop_duplicates().shape[0] if run.axes else (1 if len(m) else 0)
    generations = m["generation"].nunique()
    metrics = m["metric"].nunique()
    chains = sorted({p.get("chains") for p in run.manifest.get("points", []) if isinstance(p, dict)} - {None})
    lines = [
        "%s: %s, status %s, family %s, backend %s" % (
            run.directory, run.config.get("name", "?"), run.status,
            (run.config.get("model") or {}).get("family", "?"), run.manifest.get("backend", "?")),
        "  %d sweep point(s)%s; %s chains per point; generations %s" % (
            points, " over " + ", ".join(run.axes) if run.axes else "",
            "/".join(str(c) for c in chains) or "?",
            "%d..%d" % (m["generation"].min(), m["generation"].max()) if len(m) else "none"),
        "  metrics.csv: %d rows (%d points x %d generations x %d metrics)" % (
            len(m), points, generations, metrics),
    ]
    s = run.summary
    if len(s):
        lines.append("  summary.csv: %d rows (%s, threshold %s); summary_chains.csv: %d rows" % (
            len(s), s["metric"].iloc[0], s["threshold"].iloc[0], len(run.summary_chains)))
    else:
        lines.append("  summary.csv: no rows yet; summary_chains.csv: %d rows" % len(run.summary_chains))
    for name, table in (("early_warning.csv", run.early_warning), ("per_chain.csv", run.per_chain),
                        ("scatter.csv", run.scatter)):
        lines.append("  %s: %s" % (name, "none" if table is None else "%d rows" % len(table)))
    return "\n".join(lines)


def main(argv: List[str]) -> int:
    if len(argv) == 2 and argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    if len(argv) != 2:
        sys.stderr.write("usage: load_run.py DIR\n")
        return 2
    try:
        run = load_run(argv[1])
    except RunFolderError as e:
        sys.stderr.write("load_run: error: %s\n" % e)
        return 2
    print(describe(run))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

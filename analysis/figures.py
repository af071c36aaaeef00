"""The report's figures (PNG), drawn with matplotlib's object API (no pyplot state, Agg canvas).

Each function takes a tidy table, writes one PNG atomically and returns its path, or returns None
when the table holds nothing to draw (e.g. no multi-domain expert, no seconds recorded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # never open a window, also when run on a cluster node without a display

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from analysis.metrics import RANDOM_EXPECTED  # noqa: E402
from analysis.tables import sorted_shots  # noqa: E402
from core.io import atomic_write  # noqa: E402

DPI = 110
MAX_LABEL = 18


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "~"


def method_order(methods: Sequence[str]) -> list[str]:
    """Methods alphabetically, Random's exact expectation last."""
    real = sorted(m for m in set(methods) if m != RANDOM_EXPECTED)
    return real + ([RANDOM_EXPECTED] if RANDOM_EXPECTED in set(methods) else [])


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    # the format is explicit because the temporary file's name does not end in .png
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def _cell_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``df`` with a ``row`` label "target / shots" per row, and the labels in display order
    (by shots, then target)."""
    order = [
        f"{t} / {s}"
        for s in sorted_shots(df["shots"].unique())
        for t in sorted(df.loc[df["shots"] == s, "target"].unique())
    ]
    return df.assign(row=df["target"] + " / " + df["shots"]), order


def _heatmap(
    fig: Figure,
    ax,
    values: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    title: str,
    label: str,
    annotations: np.ndarray | None = None,
    diverging: bool = True,
    fmt: str = "{:+.1f}",
) -> None:
    cmap = colormaps["RdBu" if diverging else "viridis"].with_extremes(bad="0.85")
    finite = values[np.isfinite(values)]
    if diverging:
        span = float(np.abs(finite).max()) if finite.size else 1.0
        span = span if span > 0 else 1.0
        norm = TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span)
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    else:
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
    ax.set_xticks(range(len(cols)), [_short(c) for c in cols], rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), [_short(r, 24) for r in rows])
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, label=label, shrink=0.85)
    if values.size <= 400:
        for i in range(values.shape[0]):
            for j in range(values.shape[1]):
                text = annotations[i, j] if annotations is not None else None
                v = values[i, j]
                if text is None:
                    text = "n/a" if not np.isfinite(v) else fmt.format(v)
                # white on the dark ends of the colour map, black elsewhere
                dark = np.isfinite(v) and abs(float(image.norm(v)) - 0.5) > 0.3
                color = "white" if dark and diverging else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)


def _size(n_cols: int, n_rows: int, n_panels: int = 1) -> tuple[float, float]:
    width = min(4.0 + 0.75 * n_cols, 22.0)
    height = min(1.8 + 0.38 * n_rows, 14.0)
    return width, height * n_panels


def gain_heatmap(metrics: pd.DataFrame, shots: str, ks: Sequence[int], path: Path) -> Path | None:
    """Heatmap target x method of the top-k gain (one panel per k), plus the best gain column.

    Uses ``top{k}_gain`` when the metrics carry a baseline, otherwise ``-regret_at_{k}`` (top-k
    accuracy minus the best accuracy).
    """
    m = metrics[metrics["shots"] == shots]
    if m.empty:
        return None
    with_gain = m["metric"].str.fullmatch(r"top\d+_gain").any()
    targets = sorted(m["target"].unique())
    methods = method_order(m["method"].unique())
    fig = Figure(figsize=_size(len(methods) + 1, len(targets), len(ks)))
    axes = np.atleast_1d(fig.subplots(len(ks), 1))
    for ax, k in zip(axes, ks):
        name = f"top{k}_gain" if with_gain else f"regret_at_{k}"
        table = m[m["metric"] == name].pivot_table(
            index="target", columns="method", values="value", aggfunc="first"
        )
        table = table.reindex(index=targets, columns=methods)
        if not with_gain:
            table = -table
        if with_gain:
            best = m[m["metric"] == "best_gain"].groupby("target")["value"].first()
            table["best"] = best.reindex(targets)
        unit = "gain over baseline (points)" if with_gain else "top-k acc - best acc (points)"
        _heatmap(
            fig,
            ax,
            table.to_numpy(dtype=np.float64),
            targets,
            list(table.columns),
            title=f"top-{k} selection, shots={shots}",
            label=unit,
        )
    return _save(fig, path)


def method_bars(summary: pd.DataFrame, path: Path) -> Path | None:
    """Bars per method of mean trials-to-best and mean Spearman over targets, with 95% CIs."""
    s = summary[summary["metric"].isin(["trials_to_best", "spearman"])]
    if s.empty:
        return None
    methods = method_order(s["method"].unique())
    shots_values = sorted_shots(s["shots"].unique())
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(methods) * max(1, len(shots_values)) / 2), 7.0))
    axes = fig.subplots(2, 1)
    width = 0.8 / len(shots_values)
    x = np.arange(len(methods))
    for ax, metric, title in (
        (axes[0], "trials_to_best", "trials to the best entry (lower is better)"),
        (axes[1], "spearman", "Spearman rho with fine-tuning accuracy (higher is better)"),
    ):
        for i, shots in enumerate(shots_values):
            t = s[(s["metric"] == metric) & (s["shots"] == shots)].set_index("method")
            t = t.reindex(methods)
            mean = t["mean"].to_numpy(dtype=np.float64)
            low = np.clip(mean - t["ci_low"].to_numpy(dtype=np.float64), 0, None)
            high = np.clip(t["ci_high"].to_numpy(dtype=np.float64) - mean, 0, None)
            err = np.nan_to_num(np.vstack([low, high]))
            ax.bar(
                x + (i - (len(shots_values) - 1) / 2) * width,
                np.nan_to_num(mean),
                width,
                yerr=err,
                capsize=3,
                label=f"shots={shots}",
            )
        ax.set_xticks(x, [_short(m) for m in methods], rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("mean over targets")
    axes[1].set_ylabel("mean over targets")
    return _save(fig, path)


def finetune_gain_heatmap(gains: pd.DataFrame, path: Path) -> Path | None:
    """Heatmap (target, shots) x entry of acc - reference (the baseline, else the cell's best)."""
    if gains.empty:
        return None
    g, order = _cell_rows(gains)
    entries = (
        g.groupby("entry")["gain"].mean().sort_values(ascending=False).index.tolist()
    )  # best entries on the left
    table = g.pivot_table(index="row", columns="entry", values="gain", aggfunc="first")
    table = table.reindex(index=order, columns=entries)
    reference = gains["reference"].iloc[0] if gains["reference"].nunique() == 1 else "reference"
    fig = Figure(figsize=_size(len(entries), len(order)))
    ax = fig.subplots()
    _heatmap(
        fig,
        ax,
        table.to_numpy(dtype=np.float64),
        order,
        entries,
        title=f"fine-tuning accuracy minus {reference} (points)",
        label="points",
    )
    return _save(fig, path)


def accuracy_vs_shots(gt: pd.DataFrame, baseline: str | None, path: Path) -> Path | None:
    """Per target: the zoo's best fine-tuning accuracy and the baseline's, against shots."""
    if gt.empty:
        return None
    shots_values = sorted_shots(gt["shots"].unique())
    targets = sorted(gt["target"].unique())
    best = gt.groupby(["target", "shots"])["acc"].max()
    median = gt.groupby(["target", "shots"])["acc"].median()
    base = gt[gt["entry"] == baseline].set_index(["target", "shots"])["acc"] if baseline else None
    ncols = min(4, len(targets))
    nrows = math.ceil(len(targets) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.8 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    x = np.arange(len(shots_values))
    for ax, target in zip(axes, targets):
        idx = [(target, s) for s in shots_values]
        ax.plot(x, best.reindex(idx).to_numpy(), "o-", label="zoo best")
        ax.plot(x, median.reindex(idx).to_numpy(), "s:", color="0.5", label="zoo median")
        if base is not None:
            ax.plot(x, base.reindex(idx).to_numpy(), "^--", label=f"baseline ({_short(baseline)})")
        ax.set_xticks(x, shots_values)
        ax.set_title(target, fontsize=10)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("test accuracy")
        ax.legend(fontsize=7)
    for ax in axes[len(targets) :]:
        ax.set_visible(False)
    return _save(fig, path)


def domain_selection_figure(domain: pd.DataFrame, expert: str, path: Path) -> Path | None:
    """For one multi-domain expert: each method's picked domain per (target, shots), coloured by
    how far its accuracy falls below the ground truth's best domain (first column)."""
    d = domain[domain["expert"] == expert]
    if d.empty:
        return None
    d, rows = _cell_rows(d)
    methods = method_order(d["method"].unique())
    gap = d.pivot_table(index="row", columns="method", values="gap", aggfunc="first").reindex(
        index=rows, columns=methods
    )
    picked = d.pivot_table(
        index="row", columns="method", values="picked_domain", aggfunc="first"
    ).reindex(index=rows, columns=methods)
    best = d.groupby("row")["best_domain"].first().reindex(rows)
    values = np.column_stack([np.zeros(len(rows)), gap.to_numpy(dtype=np.float64)])
    labels = np.column_stack([best.to_numpy(dtype=object), picked.to_numpy(dtype=object)]).astype(
        object
    )
    labels = np.vectorize(lambda v: _short(str(v), 10) if isinstance(v, str) else "n/a")(labels)
    fig = Figure(figsize=_size(len(methods) + 1, len(rows)))
    ax = fig.subplots()
    _heatmap(
        fig,
        ax,
        values,
        rows,
        ["ground truth", *methods],
        title=f"domain of {expert} picked (text) and its accuracy minus the best domain's",
        label="points below the best domain",
        annotations=labels,
    )
    return _save(fig, path)


def cost_bars(cost_summary: pd.DataFrame, path: Path) -> Path | None:
    """Total seconds over targets: brute force vs selection + fine-tuning the top-k, per method."""
    c = cost_summary.dropna(subset=["total_seconds", "brute_force_seconds"])
    if c.empty:
        return None
    shots_values = sorted_shots(c["shots"].unique())
    ks = sorted(c["k"].unique())
    fig = Figure(
        figsize=(max(6.0, 1.5 + 0.8 * c["method"].nunique() * len(ks)), 3.2 * len(shots_values))
    )
    axes = np.atleast_1d(fig.subplots(len(shots_values), 1))
    for ax, shots in zip(axes, shots_values):
        t = c[c["shots"] == shots]
        methods = method_order(t["method"].unique())
        brute = float(t["brute_force_seconds"].iloc[0])
        scale, unit = (3600.0, "hours") if brute >= 3 * 3600 else (1.0, "seconds")
        ax.bar([-1], [brute / scale], 0.6, color="0.4", label="brute force")
        x = np.arange(len(methods))
        width = 0.8 / len(ks)
        for i, k in enumerate(ks):
            tk = t[t["k"] == k].set_index("method").reindex(methods)
            pos = x + (i - (len(ks) - 1) / 2) * width
            sel = np.nan_to_num(tk["selection_seconds"].to_numpy(dtype=np.float64)) / scale
            ft = np.nan_to_num(tk["finetune_topk_seconds"].to_numpy(dtype=np.float64)) / scale
            ax.bar(
                pos,
                ft,
                width,
                label=f"fine-tune top-{k}",
                alpha=0.55 + 0.4 * i / max(1, len(ks) - 1),
            )
            ax.bar(
                pos,
                sel,
                width,
                bottom=ft,
                color="black",
                alpha=0.8,
                label="selection" if i == 0 else None,
            )
        ax.set_xticks(
            [-1, *x], ["brute force", *[_short(m) for m in methods]], rotation=30, ha="right"
        )
        ax.set_ylabel(unit)
        ax.set_title(f"compute over all targets, shots={shots}", fontsize=10)
        ax.legend(fontsize=7)
    return _save(fig, path)

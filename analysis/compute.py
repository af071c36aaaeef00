"""The numbers of an analysis: :func:`compute_analysis` turns a checked ground truth and scores
table into every derived table, held by an :class:`Analysis` (the columns of each are listed in
:mod:`analysis.report`, which writes them), and which methods a cell may rank.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from analysis.ceiling import SEED_AGREEMENT, domain_agreement_table, seed_agreement_table
from analysis.metrics import (
    COUNT_METRICS,
    RANDOM_EXPECTED,
    cost_summary,
    cost_table,
    has_remedy,
    metrics_table,
    summarize,
)
from analysis.power import lr_edges
from analysis.tables import (
    baselines_table,
    domain_selection,
    entry_gains,
    merge_tables,
    seed_accuracy,
)

#: a target whose entries spread by more than this many points makes selection matter
SPREAD_POINTS = 5.0


#: rows of the metrics table that are not ranking quality (not averaged, not ranked)
NOT_RANKED = (RANDOM_EXPECTED, SEED_AGREEMENT)


def reference_methods(merged: pd.DataFrame) -> set[str]:
    """The methods of ``merged`` that are static references, not selection scores: those whose
    score rows say so (the score tables' ``reference`` column, from the registry's
    ``Method.reference``)."""
    return set(merged.loc[merged["reference"], "method"].unique())


@dataclass
class Analysis:
    """Every table of one analysis (see the module docstring for their columns)."""

    name: str
    baseline: str | None
    topk: int
    cost_ks: tuple[int, ...]
    gt: pd.DataFrame
    merged: pd.DataFrame
    metrics: pd.DataFrame
    summary: pd.DataFrame
    cost: pd.DataFrame
    cost_summary: pd.DataFrame
    entry_gains: pd.DataFrame
    domain_selection: pd.DataFrame
    seed_agreement: pd.DataFrame = field(default_factory=pd.DataFrame)
    # the noise ceiling of the multi-domain view (analysis.ceiling.domain_agreement_table)
    domain_agreement: pd.DataFrame = field(default_factory=pd.DataFrame)
    references: set[str] = field(default_factory=set)
    domain_baseline: str | None = None
    lr_edges: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    n_boot: int = 1000
    spread_points: float = SPREAD_POINTS

    @property
    def has_cost(self) -> bool:
        return bool(self.cost["cost_saved"].notna().any()) if not self.cost.empty else False


def compute_analysis(
    gt: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    name: str,
    baseline: str | None = None,
    topk: int = 3,
    n_boot: int = 1000,
    seed: int = 0,
    cost_ks: Sequence[int] = (1, 3),
    expert_types: dict[str, str] | None = None,
    notes: Sequence[str] = (),
    inputs: dict[str, str] | None = None,
    spread_points: float = SPREAD_POINTS,
    runs: pd.DataFrame | None = None,
    domain_baseline: str | None = None,
) -> Analysis:
    """Every derived table from a checked ground truth (target, shots, entry, acc, best_lr,
    seconds, ...) and scores table (target, shots, method, entry, score, seconds; optional seed,
    remedy).

    ``runs`` (the fine-tuning runs behind the ground truth; optional) enables per-draw judging
    (a score table's draw s against seed s's runs) and the noise ceiling (``seed_agreement``);
    ``domain_baseline`` is the reference entry of the multi-domain view.
    """
    if int(topk) != topk or topk < 1:
        raise ValueError(f"analysis.topk must be a positive integer; got {topk!r}")
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"analysis.bootstrap must be an integer >= 0; got {n_boot!r}")
    cost_ks = tuple(sorted({int(k) for k in cost_ks}))
    if not cost_ks or min(cost_ks) < 1:
        raise ValueError(f"analysis.cost_topk must list positive integers; got {cost_ks!r}")
    notes = list(notes)
    seed_acc = seed_accuracy(runs, gt) if runs is not None and not runs.empty else None
    merged = merge_tables(gt, scores, seed_acc, notes)
    if merged.empty:
        raise ValueError("no entry has both a score and a ground-truth accuracy: nothing to judge")
    baselines = baselines_table(gt, baseline, seed_acc)
    metrics = metrics_table(merged, baselines, topk)
    agreement = seed_agreement_table(seed_acc, n_boot=n_boot, seed=seed)
    judged = merged[["target", "shots"]].drop_duplicates()
    agreement = agreement.merge(judged, on=["target", "shots"])
    domain_agreement = domain_agreement_table(seed_acc, n_boot=n_boot, seed=seed).merge(
        judged, on=["target", "shots"]
    )
    cost = cost_table(merged, cost_ks)
    saved = cost.dropna(subset=["cost_saved"])
    if not saved.empty:
        rows = saved.assign(
            metric="cost_saved_top" + saved["k"].astype(str), value=saved["cost_saved"]
        )
        metrics = pd.concat(
            [metrics, rows[["target", "shots", "method", "metric", "value"]]], ignore_index=True
        )
    metrics = pd.concat([metrics, agreement], ignore_index=True)
    averaged = ~metrics["metric"].isin(COUNT_METRICS) & ~metrics["metric"].str.contains("_ci_")
    averaged &= ~((metrics["method"] == SEED_AGREEMENT) & (metrics["metric"] == "n_seeds"))
    summary = summarize(metrics[averaged], n_boot=n_boot, seed=seed)
    domain = domain_selection(merged, expert_types, domain_baseline or None, notes)
    return Analysis(
        name=name,
        baseline=baseline or None,
        topk=int(topk),
        cost_ks=cost_ks,
        gt=gt,
        merged=merged,
        metrics=metrics,
        summary=summary,
        cost=cost,
        cost_summary=cost_summary(cost),
        entry_gains=entry_gains(gt, baseline),
        domain_selection=domain,
        seed_agreement=agreement,
        domain_agreement=domain_agreement,
        references=reference_methods(merged),
        domain_baseline=domain_baseline or None,
        lr_edges=lr_edges(gt, runs),
        notes=notes,
        inputs=dict(inputs or {}),
        n_boot=int(n_boot),
        spread_points=float(spread_points),
    )


# ----------------------------------------------------------------------------------------------
# what a cell ranks


def gain_metric(a: Analysis, k: int) -> str:
    return f"top{k}_gain" if a.baseline else f"top{k}_acc"


def remedies(a: Analysis, shots: str) -> dict[str, list[str]]:
    """method -> sorted distinct "remedy (targets)" texts of its score rows at ``shots``."""
    if "remedy" not in a.merged.columns:
        return {}
    m = a.merged[(a.merged["shots"] == shots) & has_remedy(a.merged["remedy"])]
    out: dict[str, list[str]] = {}
    for (method, remedy), g in m.groupby(["method", "remedy"], sort=True):
        targets = ", ".join(sorted(g["target"].unique()))
        out.setdefault(method, []).append(f"{remedy} ({targets})")
    return out


def fewer_entries(a: Analysis, shots: str) -> dict[str, list[str]]:
    """method -> cells where it was judged on fewer entries than the most complete method of the
    cell ("target: n of N entries"), or not judged at all ("target: not judged").

    Random's expectation and the seed agreement are not methods and are never listed.
    """
    t = a.metrics[
        (a.metrics["shots"] == shots)
        & (a.metrics["metric"] == "n_entries")
        & ~a.metrics["method"].isin(NOT_RANKED)
    ]
    out: dict[str, list[str]] = {}
    if t.empty:
        return out
    most = t.groupby("target")["value"].max()
    methods = sorted(t["method"].unique())
    have = t.set_index(["target", "method"])["value"]
    for method in methods:
        for target, n_max in most.items():
            if (target, method) not in have.index:
                out.setdefault(method, []).append(f"{target}: not judged")
            elif have[(target, method)] < n_max - 1e-9:
                n = have[(target, method)]
                out.setdefault(method, []).append(f"{target}: {n:g} of {n_max:g} entries")
    return out


def excluded_from_ranking(a: Analysis, shots: str) -> set[str]:
    """Methods never crowned "best" at ``shots``: references, and methods judged on fewer entries
    or targets than the others."""
    return set(a.references) | set(fewer_entries(a, shots)) | set(NOT_RANKED)

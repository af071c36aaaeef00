"""The findings of report.md: plain sentences computed from an :class:`~analysis.compute.Analysis`
(which method is best by each metric and whether the runner-up is inside its interval, the noise
ceiling, Random's expectation, the spread of the zoo, LFC's standing, the cost), and the number
formats the report's tables share with them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.ceiling import SEED_AGREEMENT
from analysis.compute import (
    NOT_RANKED,
    Analysis,
    excluded_from_ranking,
    fewer_entries,
    gain_metric,
)
from analysis.metrics import RANDOM_EXPECTED
from analysis.tables import sorted_shots

#: marks of the Markdown tables
REMEDY_MARK = "†"


FEWER_MARK = "‡"


# ----------------------------------------------------------------------------------------------
# number formats


def fmt_num(value: float, digits: int = 2, sign: bool = False) -> str:
    """``digits`` < 0 formats a fraction as a percentage with -digits - 1 decimals."""
    if value is None or not np.isfinite(value):
        return "n/a"
    if digits < 0:
        return f"{100 * value:.{-digits - 1}f}%"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def fmt_ci(row: pd.Series | None, digits: int = 2, sign: bool = False) -> str:
    if row is None:
        return "n/a"
    text = fmt_num(row["mean"], digits, sign)
    if (
        np.isfinite(row["ci_low"])
        and np.isfinite(row["ci_high"])
        and row["ci_low"] != row["ci_high"]
    ):
        text += (
            f" [{fmt_num(row['ci_low'], digits, sign)}, {fmt_num(row['ci_high'], digits, sign)}]"
        )
    return text


def fmt_seconds(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    if value >= 3 * 3600:
        return f"{value / 3600:.2f} h"
    if value >= 180:
        return f"{value / 60:.1f} min"
    return f"{value:.1f} s"


def fmt_percent(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{100 * value:.1f}%"


# ----------------------------------------------------------------------------------------------
# findings


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _ranked(s: pd.DataFrame, metric: str) -> pd.DataFrame:
    t = s[(s["metric"] == metric) & ~s["method"].isin(NOT_RANKED)].dropna(subset=["mean"])
    lower = metric == "trials_to_best"
    return t.sort_values(["mean", "method"], ascending=[lower, True], ignore_index=True)


def _best_clause(s: pd.DataFrame, metric: str, label: str, digits: int, sign: bool) -> str | None:
    t = _ranked(s, metric)
    if t.empty:
        return None
    best = t.iloc[0]
    tied = t[np.isclose(t["mean"], best["mean"], rtol=0, atol=1e-12)]["method"].tolist()
    who = " and ".join(tied) if len(tied) > 1 else best["method"]
    clause = f"by {label} is {who} ({fmt_ci(best, digits, sign)})"
    if len(t) > len(tied):
        runner = t.iloc[len(tied)]
        inside = (
            np.isfinite(best["ci_low"])
            and best["ci_low"] <= runner["mean"] <= best["ci_high"]
            and best["ci_low"] != best["ci_high"]
        )
        if inside:
            clause += f", though runner-up {runner['method']} ({fmt_num(runner['mean'], digits, sign)}) is inside that interval"
    return clause


def _random_clause(s: pd.DataFrame, a: Analysis) -> str | None:
    r = s[s["method"] == RANDOM_EXPECTED].set_index("metric")["mean"]
    parts = []
    g1 = gain_metric(a, 1)
    if g1 in r:
        parts.append(
            f"top-1 {'gain' if a.baseline else 'accuracy'} {fmt_num(r[g1], 2, bool(a.baseline))}"
        )
    if "trials_to_best" in r:
        parts.append(f"trials-to-best {fmt_num(r['trials_to_best'])}")
    if not parts:
        return None
    text = "random selection would reach " + " and ".join(parts) + " in expectation"
    if "best_gain" in r:
        text += (
            f", an oracle a gain of {fmt_num(r['best_gain'], 2, True)} (the best entry per target)"
        )
    return text


def _spread_sentence(gt: pd.DataFrame, threshold: float) -> str:
    spread = gt.groupby("target")["acc"].agg(lambda v: v.max() - v.min())
    wide = spread[spread > threshold]
    text = (
        f"{len(wide)} of {_plural(len(spread), 'target')} "
        f"{'has' if len(spread) == 1 else 'have'} more than {threshold:g} points between "
        "the best and the worst entry"
    )
    if len(spread):
        top = spread.idxmax()
        text += f" (largest spread: {top}, {spread[top]:.1f} points)"
    return text


def _best_entry_sentence(gt: pd.DataFrame, baseline: str | None) -> str:
    best = gt.loc[gt.groupby("target")["acc"].idxmax(), ["target", "entry"]]
    mapping = ", ".join(f"{t}: {e}" for t, e in zip(best["target"], best["entry"]))
    distinct = best["entry"].nunique()
    if len(best) == 1:
        text = f"the best entry is {best['entry'].iloc[0]}"
    elif distinct == 1:
        text = (
            f"the same entry ({best['entry'].iloc[0]}) is best for every target, so a fixed choice "
            "would do as well as any selection method here"
        )
    else:
        text = (
            f"the best entry differs across targets ({distinct} distinct best entries for "
            f"{len(best)} targets: {mapping})"
        )
    if baseline:
        wins = int((best["entry"] == baseline).sum())
        text += f"; the baseline {baseline} is the best entry for {wins} of {_plural(len(best), 'target')}"
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _lfc_sentence(s: pd.DataFrame, a: Analysis) -> str:
    """Where LFC (the paper's score) and its centred variant stand among the scored methods."""
    methods = sorted(set(s["method"]) - set(NOT_RANKED))
    present = [m for m in ("lfc", "lfc_centered") if m in methods]
    if not present:
        return "LFC was not among the scored methods"
    return "; ".join(_standing(s, a, m, len(methods)) for m in present)


def _standing(s: pd.DataFrame, a: Analysis, method: str, n_methods: int) -> str:
    label_of = {"lfc": "LFC", "lfc_centered": "centred LFC"}
    parts = []
    for metric, label in (
        (gain_metric(a, 1), "top-1 " + ("gain" if a.baseline else "accuracy")),
        ("trials_to_best", "trials-to-best"),
        ("spearman", "Spearman"),
    ):
        t = _ranked(s, metric)
        if method in set(t["method"]):
            value = float(t.loc[t["method"] == method, "mean"].iloc[0])
            rank = 1 + int(
                (t["mean"] < value - 1e-12).sum()
                if metric == "trials_to_best"
                else (t["mean"] > value + 1e-12).sum()
            )
            parts.append(f"{_ordinal(rank)} by {label}")
    name = label_of[method]
    if not parts:
        return f"{name} has no defined metric here"
    return f"{name} ranks {', '.join(parts)} of {_plural(n_methods, 'method')}"


def _cost_sentence(a: Analysis, shots: str) -> str | None:
    if not a.has_cost:
        return None
    c = a.cost_summary[
        (a.cost_summary["shots"] == shots)
        & ~a.cost_summary["method"].isin(excluded_from_ranking(a, shots))
    ]
    k = max(a.cost_ks)
    c = c[c["k"] == k].dropna(subset=["cost_saved"])
    if c.empty:
        return None
    lo, hi = c.loc[c["cost_saved"].idxmin()], c.loc[c["cost_saved"].idxmax()]
    if len(c) == 1:
        return (
            f"selection plus fine-tuning the top-{k} saves {fmt_percent(lo['cost_saved'])} "
            f"({lo['method']}) of the {fmt_seconds(lo['brute_force_seconds'])} of brute-force "
            "fine-tuning"
        )
    return (
        f"selection plus fine-tuning the top-{k} saves between {fmt_percent(lo['cost_saved'])} "
        f"({lo['method']}) and {fmt_percent(hi['cost_saved'])} ({hi['method']}) of the "
        f"{fmt_seconds(lo['brute_force_seconds'])} of brute-force fine-tuning"
    )


def _exclusion_clause(a: Analysis, shots: str) -> str | None:
    refs = sorted(a.references & set(a.summary[a.summary["shots"] == shots]["method"]))
    parts = [f"{m} (a reference method)" for m in refs]
    few = sorted(set(fewer_entries(a, shots)) - a.references)
    parts += [
        f"{m} (judged on fewer entries or targets than the others, {FEWER_MARK})" for m in few
    ]
    if not parts:
        return None
    return "not ranked above: " + ", ".join(parts)


def _ceiling_clause(s_all: pd.DataFrame, s: pd.DataFrame) -> str | None:
    c = s_all[s_all["method"] == SEED_AGREEMENT].set_index("metric")
    if "spearman" not in c.index or not np.isfinite(c.loc["spearman", "mean"]):
        return None
    text = f"fine-tuning seeds agree with each other at Spearman {fmt_ci(c.loc['spearman'], 3)}"
    if "wtau" in c.index:
        text += f", weighted tau {fmt_ci(c.loc['wtau'], 3)}"
    if "top1_agreement" in c.index:
        text += f" and pick the same best entry {fmt_percent(c.loc['top1_agreement', 'mean'])} of the time"
    # a score that knew the seed-free ranking agrees with one seed at about sqrt(agreement)
    text += (
        ": the ground truth's own noise (a score that knew the seed-free ranking would agree "
        "with one seed at about its square root, so scores can exceed it)"
    )
    best = _ranked(s, "spearman")
    if not best.empty:
        top = best.iloc[0]
        text += f" (best method by Spearman: {top['method']}, {fmt_num(top['mean'], 3)})"
    return text


def findings(a: Analysis) -> str:
    """One paragraph of plain findings computed from the numbers (see report.md)."""
    shots_values = sorted_shots(a.summary["shots"].unique())
    sentences = []
    for shots in shots_values:
        s_all = a.summary[a.summary["shots"] == shots]
        skipped = excluded_from_ranking(a, shots) - set(NOT_RANKED)
        # only methods judged on every entry of every cell, and no reference, are ranked
        s = s_all[~s_all["method"].isin(skipped)]
        judged = a.merged[["target", "shots"]].drop_duplicates()
        gt = a.gt.merge(judged, on=["target", "shots"])
        gt = gt[gt["shots"] == shots]
        n_targets = a.metrics[a.metrics["shots"] == shots]["target"].nunique()
        prefix = f"At shots={shots}, over the" if len(shots_values) > 1 else "Over the"
        unit = "gain" if a.baseline else "accuracy"
        clauses = [
            _best_clause(s, gain_metric(a, 1), f"top-1 {unit}", 2, bool(a.baseline)),
            _best_clause(s, gain_metric(a, 3), f"top-3 {unit}", 2, bool(a.baseline))
            if a.topk >= 3
            else None,
            _best_clause(s, "trials_to_best", "trials-to-best", 2, False),
            _best_clause(s, "spearman", "Spearman", 3, False),
            _best_clause(s, "wtau", "weighted tau", 3, False),
        ]
        clauses = [c for c in clauses if c]
        judged_txt = f"{prefix} {n_targets} judged target{'s' if n_targets != 1 else ''}"
        if clauses:
            text = f"{judged_txt}, the best method " + "; ".join(clauses) + "."
        else:
            text = f"{judged_txt}, no selection method is judged on every entry: none is ranked."
        extra = [
            _exclusion_clause(a, shots),
            _ceiling_clause(s_all, s),
            _random_clause(s, a),
            _spread_sentence(gt, a.spread_points),
            _best_entry_sentence(gt, a.baseline),
            _lfc_sentence(s, a),
            _cost_sentence(a, shots),
        ]
        text += " " + " ".join(e[0].upper() + e[1:] + "." for e in extra if e)
        if n_targets < 3:
            text += f" With only {n_targets} target{'s' if n_targets != 1 else ''}, these rankings are anecdotal."
        sentences.append(text)
    return " ".join(sentences)

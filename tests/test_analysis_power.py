"""The report's power tables against hand-computed values: means without the target of largest
spread, the lr at the edge of its grid, the best entry per target, the noise ceiling's median."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from analysis.ceiling import SEED_AGREEMENT, ceiling_medians
from analysis.compute import compute_analysis
from analysis.power import (
    best_entries,
    largest_spread_target,
    lr_edge_summary,
    lr_edges,
    means_without,
    target_spread,
)
from analysis.report import lr_edge_markdown, summary_markdown

# three targets, entries a (the baseline), b, c; spreads t1 10, t2 30, t3 5 points
GT = pd.DataFrame(
    [
        ("t1", "20", "a", 50.0),
        ("t1", "20", "b", 60.0),
        ("t1", "20", "c", 55.0),
        ("t2", "20", "a", 40.0),
        ("t2", "20", "b", 70.0),
        ("t2", "20", "c", 45.0),
        ("t3", "20", "a", 80.0),
        ("t3", "20", "b", 82.0),
        ("t3", "20", "c", 85.0),
    ],
    columns=["target", "shots", "entry", "acc"],
)
# lfc's order: t1 c > b > a, t2 b > c > a, t3 b > c > a
LFC = {
    "t1": {"a": 1, "b": 2, "c": 3},
    "t2": {"a": 1, "b": 3, "c": 2},
    "t3": {"a": 1, "b": 3, "c": 2},
}


def _full_gt(gt: pd.DataFrame) -> pd.DataFrame:
    return gt.assign(best_lr=0.03, n_seeds=1, n_lrs=3, n_runs=3, seconds=1.0)


def _scores() -> pd.DataFrame:
    rows = [(t, "20", "lfc", e, float(s), 0.1, False) for t, d in LFC.items() for e, s in d.items()]
    cols = ["target", "shots", "method", "entry", "score", "seconds", "reference"]
    return pd.DataFrame(rows, columns=cols)


def test_spread_per_target_and_the_largest():
    spread = target_spread(GT)
    assert spread[["target", "spread"]].values.tolist() == [["t2", 30.0], ["t1", 10.0], ["t3", 5.0]]
    assert largest_spread_target(GT, "20") == "t2"
    assert largest_spread_target(GT[GT["target"] == "t1"], "20") is None  # one target: no column
    assert largest_spread_target(GT, "full") is None


def test_means_without_a_target_by_hand():
    metrics = pd.DataFrame(
        [
            ("t1", "20", "m1", "top1_gain", 2.0),
            ("t2", "20", "m1", "top1_gain", 10.0),
            ("t3", "20", "m1", "top1_gain", 4.0),
            ("t1", "20", "m2", "top1_gain", 1.0),
            ("t2", "20", "m2", "top1_gain", 9.0),
            ("t3", "20", "m2", "top1_gain", np.nan),  # left out, as in the summary
            ("t2", "20", "m3", "top1_gain", 5.0),  # only the left-out target: NaN
            ("t1", "full", "m1", "top1_gain", 100.0),  # another shots: ignored
        ],
        columns=["target", "shots", "method", "metric", "value"],
    )
    got = means_without(metrics, "20", "t2", ["top1_gain"])
    assert got[("m1", "top1_gain")] == pytest.approx(3.0)
    assert got[("m2", "top1_gain")] == pytest.approx(1.0)
    assert np.isnan(got[("m3", "top1_gain")])


def test_summary_has_columns_without_the_target_of_largest_spread():
    a = compute_analysis(_full_gt(GT), _scores(), name="t", baseline="a", n_boot=0)
    text = summary_markdown(a, "20")
    header = text.splitlines()[0]
    assert "top-1 gain without t2" in header and "Spearman without t2" in header
    row = next(line for line in text.splitlines() if line.startswith("| lfc "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # top-1 gains: t1 c (55 - 50 = +5), t2 b (+30), t3 b (+2): all +12.33, without t2 +3.50
    # Spearman: t1 0.5, t2 1.0, t3 0.5: all 0.667, without t2 0.500
    assert cells[3] == "+12.33" and cells[-2:] == ["+3.50", "0.500"]
    assert cells[6] == "0.667"


def test_lr_at_the_edge_of_its_grid_by_hand():
    lrs = [0.01, 0.03, 0.1]
    runs = pd.DataFrame(
        [("t1", 20, e, lr) for e in "abc" for lr in lrs]
        + [("t1", 20, "d", lr) for lr in (0.03, 0.1)]  # two lrs: no inside, not judged
        + [("t1", "full", "a", lr) for lr in lrs],
        columns=["target", "shots", "entry", "lr"],
    )
    gt = pd.DataFrame(
        [
            ("t1", "20", "a", 0.01),
            ("t1", "20", "b", 0.03),
            ("t1", "20", "c", 0.1),
            ("t1", "20", "d", 0.1),
            ("t1", "full", "a", 0.03),
        ],
        columns=["target", "shots", "entry", "best_lr"],
    )
    edges = lr_edges(gt, runs)
    assert edges.set_index(["shots", "entry"])["edge"].fillna("n/a").to_dict() == {
        ("20", "a"): "low",
        ("20", "b"): "inside",
        ("20", "c"): "high",
        ("20", "d"): "n/a",
        ("full", "a"): "inside",
    }
    summary = lr_edge_summary(edges)
    assert summary.values.tolist() == [
        ["20", 3, 1, 1, pytest.approx(2 / 3)],
        ["full", 1, 0, 0, 0.0],
        ["all", 4, 1, 1, 0.5],
    ]
    text = lr_edge_markdown(SimpleNamespace(lr_edges=edges))
    assert "| all | 4 | 1 | 1 | 50.0% |" in text and "**Note:** 50.0%" in text
    inside = lr_edge_markdown(SimpleNamespace(lr_edges=edges[edges["edge"] == "inside"]))
    assert "Note" not in inside
    assert "cannot be told" in lr_edge_markdown(SimpleNamespace(lr_edges=lr_edges(gt, None)))


def test_lr_edges_name_missing_columns():
    with pytest.raises(ValueError, match=r"runs table lacks columns \['lr'\]"):
        lr_edges(GT.assign(best_lr=0.1), GT)


def test_best_entry_per_target_by_hand():
    best = best_entries(GT, baseline="a")
    assert best.to_dict("records") == [
        dict(target="t1", shots="20", best_entry="b", best_acc=60.0, runner_up="c",
             runner_up_acc=55.0, margin=5.0, spread=10.0, baseline_acc=50.0),
        dict(target="t2", shots="20", best_entry="b", best_acc=70.0, runner_up="c",
             runner_up_acc=45.0, margin=25.0, spread=30.0, baseline_acc=40.0),
        dict(target="t3", shots="20", best_entry="c", best_acc=85.0, runner_up="b",
             runner_up_acc=82.0, margin=3.0, spread=5.0, baseline_acc=80.0),
    ]  # fmt: skip
    tied = pd.DataFrame(
        [("t", "full", "z", 70.0), ("t", "full", "y", 70.0), ("t", "full", "x", 60.0)],
        columns=["target", "shots", "entry", "acc"],
    )
    row = best_entries(tied).iloc[0]
    assert (row["best_entry"], row["runner_up"], row["margin"]) == ("y", "z", 0.0)
    assert np.isnan(row["baseline_acc"])


def test_noise_ceiling_median_over_cells():
    rows = []
    for target, shots, rho in [("t1", "20", 0.2), ("t2", "20", 0.9), ("t3", "20", 0.5)]:
        rows += [
            (target, shots, SEED_AGREEMENT, "spearman", rho),
            (target, shots, SEED_AGREEMENT, "wtau", rho / 2),
            (target, shots, SEED_AGREEMENT, "top1_agreement", 1.0 if rho > 0.4 else 0.0),
            (target, shots, SEED_AGREEMENT, "n_seeds", 2.0),
        ]
    rows.append(("t1", "full", SEED_AGREEMENT, "spearman", 0.1))
    table = pd.DataFrame(rows, columns=["target", "shots", "method", "metric", "value"])
    med = ceiling_medians(table).set_index("shots")
    assert med.loc["20", ["n_cells", "spearman", "wtau", "top1_agreement"]].tolist() == [
        3,
        0.5,
        0.25,
        1.0,
    ]
    assert med.loc["full", "spearman"] == 0.1 and np.isnan(med.loc["full", "wtau"])
    assert med.loc["all", "n_cells"] == 4 and med.loc["all", "spearman"] == pytest.approx(0.35)

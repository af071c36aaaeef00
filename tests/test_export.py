"""``analyze.py export=long``: the long-schema tables, the per-run table, and their round trip
through bring-your-own mode (same metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.compute import compute_analysis
from analysis.export import LONG_SCHEMA, cell_dataset, check_export, from_long
from analysis.main import load_byo, run_analysis
from tests.test_analysis_report import _cfg

#: no bootstrap: intervals are not what the round trip checks, and resampling costs seconds
FAST = {"analysis.bootstrap": 0}
ENTRIES = ("base", "a", "b", "c")
#: (target, shots) -> entry -> per-seed accuracy at lr 0.1 (lr 0.01 is 10 points worse, except
#: entry c at full shots, where it is 5 points better: a best_lr that is not the first lr)
ACC = {
    ("t1", "5"): {"base": [50, 54], "a": [61, 57], "b": [58, 62], "c": [40, 44]},
    ("t1", "full"): {"base": [70, 70], "a": [75, 77], "b": [79, 73], "c": [66, 68]},
    ("t2", "5"): {"base": [30, 34], "a": [29, 27], "b": [45, 41], "c": [36, 40]},
}


def _runs() -> pd.DataFrame:
    rows = []
    for (target, shots), accs in ACC.items():
        for entry, per_seed in accs.items():
            for seed, acc in enumerate(per_seed):
                better = entry == "c" and shots == "full"
                for lr, shift in ((0.1, 0.0), (0.01, 5.0 if better else -10.0)):
                    rows.append(
                        dict(target=target, shots=shots, entry=entry, lr=lr, seed=seed,
                             test_acc=acc + shift, seconds=1.5 + seed, steps=100, epochs=4,
                             val_acc=np.nan)
                    )  # fmt: skip
    return pd.DataFrame(rows)


def _scores() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for target, shots in ACC:
        for entry in ENTRIES:
            # per-draw method: one score per k-shot draw (seed) where the cell is few-shot
            for seed in (0, 1) if shots != "full" else (None,):
                rows.append(dict(target=target, shots=shots, method="drawn", entry=entry,
                                 score=float(rng.normal()), seed=seed, seconds=0.25))  # fmt: skip
            rows.append(dict(target=target, shots=shots, method="plain", entry=entry,
                             score=float(rng.normal()), seed=None, seconds=0.5))  # fmt: skip
    return pd.DataFrame(rows).astype({"seed": "Int64"})


def _sorted(m: pd.DataFrame) -> pd.DataFrame:
    # the noise ceiling uses every fine-tuning seed; the long table keeps the seeds that were drawn
    # (all of them in the few-shot cells here) and the seed mean elsewhere, so it is not compared
    m = m[m["method"] != "seed_agreement"].astype({"shots": str})
    cols = ["target", "shots", "method", "metric"]
    return m[[*cols, "value"]].sort_values(cols, ignore_index=True)


def _metrics(report_dir) -> pd.DataFrame:
    return _sorted(pd.read_csv(report_dir / "metrics.csv", dtype={"shots": str}))


def _reimported_metrics(long_csv) -> pd.DataFrame:
    """Metrics of the long table read back as gt= and scores= (no report: figures cost seconds)."""
    gt, scores, runs = load_byo(long_csv, long_csv, "base")
    a = compute_analysis(gt, scores, name="again", baseline="base", topk=3, n_boot=0, runs=runs)
    return _sorted(a.metrics)


def test_cell_dataset_and_export_option():
    assert cell_dataset("dtd", "full") == "dtd"
    assert cell_dataset("dtd", "all") == "dtd"
    assert cell_dataset("dtd", "20") == "dtd_20shot"
    assert check_export(None) is None and check_export("none") is None
    assert check_export("long") == "long"
    with pytest.raises(ValueError, match="unknown export format 'wide'; valid: long"):
        check_export("wide")


def test_long_export_round_trips_through_bring_your_own(tmp_path):
    runs, scores = _runs(), _scores()
    runs.to_csv(tmp_path / "runs_in.csv", index=False)
    scores.to_csv(tmp_path / "scores_in.csv", index=False)
    first = tmp_path / "first"
    run_analysis(
        _cfg(**FAST, gt=str(tmp_path / "runs_in.csv"), scores=str(tmp_path / "scores_in.csv"),
             out=str(first), baseline="base", export="long")
    )  # fmt: skip
    long = pd.read_csv(first / "export" / "long.csv")
    assert list(long.columns[:5]) == list(LONG_SCHEMA)
    # one row per (cell, method, entry[, draw]): 2 few-shot cells x 4 entries x 2 draws (drawn),
    # 1 full cell x 4 entries (drawn, no draws), 3 cells x 4 entries (plain)
    assert len(long) == 2 * 4 * 2 + 4 + 3 * 4
    # a draw's test_score is its own seed's accuracy at the best lr; a mean row the seed mean
    row = long[(long.dataset == "t1_5shot") & (long.model == "a") & (long.draw == 1)]
    assert row["test_score"].item() == 57 and row["transf_metric"].item() == "drawn"
    row = long[(long.dataset == "t1") & (long.model == "c") & (long.transf_metric == "plain")]
    assert row["test_score"].item() == pytest.approx(72.0)  # (66 + 5 + 68 + 5) / 2 at lr 0.01
    assert row["best_lr"].item() == pytest.approx(0.01)
    assert row["finetune_seconds"].item() == pytest.approx(2 * (1.5 + 2.5))
    assert row["draw"].isna().all()

    exported_runs = pd.read_csv(first / "export" / "runs.csv")
    assert len(exported_runs) == len(runs)
    assert {"lr", "seed", "steps", "epochs", "seconds", "test_acc"} <= set(exported_runs.columns)
    assert exported_runs["seconds"].sum() == pytest.approx(runs["seconds"].sum())

    a, b = _metrics(first), _reimported_metrics(first / "export" / "long.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)
    # costs, gains and the per-draw judging are among the compared metrics
    assert {"cost_saved_top1", "top1_gain", "n_draws", "wtau"} <= set(a["metric"])
    assert (a.loc[a["metric"] == "n_draws", "value"] == 2).any()


def test_long_export_from_benchmark_outputs(tmp_path):
    out = tmp_path / "store"
    out.mkdir()
    _runs().to_parquet(out / "finetune_runs.parquet")
    for (target, shots, method), g in _scores().groupby(["target", "shots", "method"]):
        folder = out / "selection" / target / f"shots={shots}"
        folder.mkdir(parents=True, exist_ok=True)
        g[["entry", "score", "seconds", "seed"]].to_parquet(folder / f"{method}.parquet")
    run_analysis(
        _cfg(**FAST, **{"paths.out_dir": str(out), "analysis.baseline": "base"}, export="long")
    )
    report = out / "reports" / "test"
    long = pd.read_csv(report / "export" / "long.csv")
    assert len(long) == 2 * 4 * 2 + 4 + 3 * 4
    runs = pd.read_csv(report / "export" / "runs.csv")
    assert len(runs) == len(_runs()) and set(runs["epochs"]) == {4}
    a, b = _metrics(report), _reimported_metrics(report / "export" / "long.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12)


def test_from_long_rejects_two_accuracies_for_one_entry_and_passes_other_tables():
    long = pd.DataFrame(
        {"dataset": ["t", "t"], "model": ["a", "a"], "test_score": [50.0, 51.0],
         "transf_metric": ["m1", "m2"], "transf_score": [1.0, 2.0]}
    )  # fmt: skip
    with pytest.raises(ValueError, match="two different test_score values"):
        from_long(long, "gt")
    plain = pd.DataFrame({"target": ["t"], "entry": ["a"], "acc": [1.0]})
    assert from_long(plain, "gt") is plain
    scores = from_long(long, "scores")
    assert list(scores.columns) == ["target", "shots", "method", "entry", "score"]
    assert set(scores["shots"]) == {"all"} and set(scores["target"]) == {"t"}

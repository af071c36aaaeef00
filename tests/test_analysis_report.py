"""analyze_main end to end: results a user brings, the benchmark's own tables, bad input, wandb."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis.main import analyze_main, load_byo
from analysis.validate import InputTableError
from core.keys import RUN_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

GT_CSV = """target,entry,acc
t1,a,70
t1,b,80
t1,c,90
t1,d,60
t2,a,50
t2,b,55
t2,c,52
t2,d,58
"""

# lfc: t1 scores a > b = c > d (tie, c is the best entry), t2 ranks d first (its best)
# leep: t1 ranks d, c, b, a; t2 ranks a, b, c, d
SCORES_CSV = """target,entry,method,score
t1,a,lfc,3
t1,b,lfc,2
t1,c,lfc,2
t1,d,lfc,1
t2,a,lfc,0.1
t2,b,lfc,0.3
t2,c,lfc,0.2
t2,d,lfc,0.4
t1,a,leep,1
t1,b,leep,2
t1,c,leep,3
t1,d,leep,4
t2,a,leep,4
t2,b,leep,3
t2,c,leep,2
t2,d,leep,1
"""


def _cfg(**kw):
    base = {
        "name": "test",
        "gt": None,
        "scores": None,
        "out": None,
        "baseline": None,
        "analysis": {"baseline": None, "topk": 3, "bootstrap": 200, "seed": 0},
        "paths": {"out_dir": None, "reports_dir": None},
        "logger": {"type": "csv", "project": "zoobench", "mode": "offline", "group": None},
    }
    for key, value in kw.items():
        node = base
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return OmegaConf.create(base)


def _byo(tmp_path: Path, gt: str = GT_CSV, scores: str = SCORES_CSV, **kw):
    (tmp_path / "gt.csv").write_text(gt)
    (tmp_path / "scores.csv").write_text(scores)
    return _cfg(
        gt=str(tmp_path / "gt.csv"),
        scores=str(tmp_path / "scores.csv"),
        out=str(tmp_path / "out"),
        **kw,
    )


def _metric(table: pd.DataFrame, target: str, method: str, metric: str) -> float:
    row = table[(table.target == target) & (table.method == method) & (table.metric == metric)]
    assert len(row) == 1, (target, method, metric)
    return float(row["value"].iloc[0])


def test_results_brought_by_a_user_end_to_end(tmp_path, capsys):
    analyze_main(_byo(tmp_path, baseline="a"))
    out = tmp_path / "out"
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    t = pd.read_csv(out / "metrics.csv", dtype={"shots": str})
    assert list(t.columns) == ["target", "shots", "method", "metric", "value"]
    assert set(t["shots"]) == {"all"}
    # t1, lfc: pessimistic order a, b, c, d -> top-1 = a (70), top-3 reaches c (90); baseline a = 70
    assert _metric(t, "t1", "lfc", "top1_gain") == 0.0
    assert _metric(t, "t1", "lfc", "top2_gain") == 10.0
    assert _metric(t, "t1", "lfc", "top3_gain") == 20.0
    assert _metric(t, "t1", "lfc", "trials_to_best") == 3.0
    # t2, lfc ranks d (58) first: gain 8 over a (50); Spearman of (0.1, .3, .2, .4) vs (50, 55, 52, 58) = 1
    assert _metric(t, "t2", "lfc", "top1_gain") == 8.0
    assert _metric(t, "t2", "lfc", "spearman") == pytest.approx(1.0)
    assert _metric(t, "t1", "leep", "top1_gain") == -10.0
    assert _metric(t, "t1", "leep", "trials_to_best") == 2.0
    # score ranks 1, 2, 3, 4 vs accuracy ranks 2, 3, 4, 1: 1 - 6 * 12 / 60
    assert _metric(t, "t1", "leep", "spearman") == pytest.approx(-0.2)
    assert _metric(t, "t1", "random_expected", "trials_to_best") == 2.5
    assert _metric(t, "t1", "random_expected", "top1_gain") == pytest.approx(5.0)  # mean 75 - 70
    assert _metric(t, "t1", "lfc", "best_gain") == 20.0
    s = pd.read_csv(out / "summary.csv", dtype={"shots": str})
    lfc_top1 = s[(s.method == "lfc") & (s.metric == "top1_gain")].iloc[0]
    assert lfc_top1["mean"] == 4.0 and lfc_top1["n_targets"] == 2
    assert lfc_top1["ci_low"] <= 4.0 <= lfc_top1["ci_high"]
    report = (out / "report.md").read_text()
    assert "## Findings" in report and "## Summary" in report
    assert "by Spearman is lfc" in report
    assert "2 of 2 targets have more than 5 points" in report
    assert "the best entry differs across targets" in report.lower()
    assert "LFC ranks 1st by top-1 gain" in report
    assert "No fine-tuning or selection seconds" in report  # no seconds given: no cost table
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} >= {
        "gain_heatmap_shots=all.png",
        "trials_spearman_bars.png",
        "finetune_gain.png",
        "accuracy_vs_shots.png",
    }
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_MAGIC and p.stat().st_size > 2000
        assert f"]({p.name})" in report
    assert "| lfc | 2 | 4.0 | +4.00" in (out / "summary.md").read_text()
    assert not list(out.glob(".*tmp-*"))  # atomic writes left no temporary file


def test_byo_without_baseline_reports_accuracies_and_accepts_shots(tmp_path):
    gt = GT_CSV.replace("target,entry,acc", "target,entry,acc,shots").replace("\n", ",5\n")
    gt = gt.replace("target,entry,acc,shots,5", "target,entry,acc,shots")
    scores = "target,entry,method,score,shots\n" + "".join(
        line + ",5\n" for line in SCORES_CSV.splitlines()[1:]
    )
    analyze_main(_byo(tmp_path, gt, scores))
    t = pd.read_csv(tmp_path / "out" / "metrics.csv", dtype={"shots": str})
    assert set(t["shots"]) == {"5"}
    assert not t["metric"].str.endswith("_gain").any()
    assert _metric(t, "t1", "lfc", "top1_acc") == 70.0
    assert _metric(t, "t1", "lfc", "regret_at_1") == 20.0
    assert "top-1 acc" in (tmp_path / "out" / "report.md").read_text()


def test_byo_gt_may_be_a_table_of_runs(tmp_path):
    # per (target, entry): two lrs x two seeds; the ground truth is the best lr's seed mean
    lines = ["target,entry,lr,seed,test_acc"]
    for line in GT_CSV.splitlines()[1:]:
        target, entry, acc = line.split(",")
        for lr, shift in (("0.1", 0.0), ("0.01", -3.0)):
            for seed, noise in (("0", -1.0), ("1", 1.0)):
                lines.append(f"{target},{entry},{lr},{seed},{float(acc) + shift + noise}")
    analyze_main(_byo(tmp_path, "\n".join(lines) + "\n", baseline="a"))
    gt = pd.read_csv(tmp_path / "out" / "ground_truth.csv")
    assert gt.set_index(["target", "entry"]).loc[("t1", "c"), "acc"] == 90.0
    assert set(gt["best_lr"]) == {0.1} and set(gt["n_runs"]) == {4}
    t = pd.read_csv(tmp_path / "out" / "metrics.csv", dtype={"shots": str})
    assert _metric(t, "t2", "lfc", "top1_gain") == 8.0


BAD_INPUTS = {
    "missing column": (
        GT_CSV.replace("acc", "accuracy"),
        SCORES_CSV,
        ["lacks column(s) ['acc']", "required: target, entry, acc"],
    ),
    "entry only in scores": (
        GT_CSV.replace("t2,d,58\n", ""),
        SCORES_CSV,
        ["entries in the scores but not in the ground truth", "target=t2", "d"],
    ),
    "entry only in gt": (
        GT_CSV + "t2,e,40\n",
        SCORES_CSV,
        ["entries in the ground truth but not in the scores", "method=lfc", "e"],
    ),
    "NaN value": (
        GT_CSV.replace("t1,b,80", "t1,b,"),
        SCORES_CSV,
        ["NaN", "column 'acc'", "rows 2", "entry=b"],
    ),
    "non-numeric value": (
        GT_CSV.replace("t1,b,80", "t1,b,eighty"),
        SCORES_CSV,
        ["non-numeric", "'eighty'", "rows 2"],
    ),
    "duplicate row": (
        GT_CSV,
        SCORES_CSV + "t1,a,lfc,5\n",
        ["duplicate rows", "target=t1, method=lfc, entry=a at rows 1, 17"],
    ),
    "empty csv": ("", SCORES_CSV, ["gt table", "is empty"]),
    "header only": ("target,entry,acc\n", SCORES_CSV, ["has a header", "no rows"]),
    "shots in one table only": (
        "target,entry,acc,shots\nt1,a,1,5\n",
        SCORES_CSV,
        ["shots column", "both tables or in neither"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_with_status_2_and_names_the_problem(case, tmp_path, capsys):
    gt, scores, expected = BAD_INPUTS[case]
    with pytest.raises(SystemExit) as info:
        analyze_main(_byo(tmp_path, gt, scores))
    assert info.value.code == 2
    err = capsys.readouterr().err
    for text in expected:
        assert text in err, (text, err)
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "report.md").exists()


def test_unknown_baseline_and_missing_files(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        analyze_main(_byo(tmp_path, baseline="resnet_imagenet"))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown baseline 'resnet_imagenet'" in err and "valid entries: a, b, c, d" in err
    with pytest.raises(InputTableError, match="does not exist"):
        load_byo(tmp_path / "nope.csv", tmp_path / "scores.csv", None)
    with pytest.raises(SystemExit):
        analyze_main(_cfg(gt=str(tmp_path / "gt.csv")))
    assert "needs both gt=PATH and scores=PATH" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# benchmark mode


def _benchmark_tables(out_dir: Path) -> None:
    """A tiny benchmark output tree: runs (2 lrs x 2 seeds), 3 methods, a multi-domain expert."""
    entries = ["generalist", "letters", "md@digits", "md@shapes"]
    # acc per (target, entry) at the best lr; lr 0.01 is 10 points worse
    acc = {
        "digits": [70.0, 80.0, 95.0, 60.0],
        "polygons": [75.0, 65.0, 55.0, 85.0],
    }
    rows = []
    for target, accs in acc.items():
        for entry, a in zip(entries, accs):
            for lr, shift in ((0.1, 0.0), (0.01, -10.0)):
                for seed, noise in ((0, -1.0), (1, 1.0)):
                    rows.append(
                        (target, "20", entry, lr, seed, a + shift + noise, None, 2.0, 5, "cpu")
                    )
    runs = pd.DataFrame(
        rows,
        columns=[*RUN_COLUMNS[:9], "device"],
    )
    out_dir.mkdir(parents=True)
    runs.to_parquet(out_dir / "finetune_gt.parquet")
    scores = {
        # lfc follows accuracy, leep reverses it; random is a fixed permutation
        "lfc": {t: np.array(a) / 100 for t, a in acc.items()},
        "leep": {t: -np.array(a) for t, a in acc.items()},
        "random": {t: np.array([0.3, 0.1, 0.4, 0.2]) for t in acc},
    }
    for method, per_target in scores.items():
        for target, s in per_target.items():
            d = out_dir / "selection" / target / "shots=20"
            d.mkdir(parents=True, exist_ok=True)
            table = pd.DataFrame({"entry": entries, "score": s, "seconds": 0.5})
            if method == "leep" and target == "polygons":
                table = table.iloc[:3]  # a partial result: leep did not score md@shapes
            table.to_parquet(d / f"{method}.parquet")
    (out_dir / "zoo").mkdir()
    pd.DataFrame(
        {
            "expert_id": ["generalist", "letters", "md", "md"],
            "entry": entries,
            "type": ["single", "single", "multi_bn", "multi_bn"],
            "domains": ["", "", "digits;shapes", "digits;shapes"],
        }
    ).to_csv(out_dir / "zoo" / "manifest.csv", index=False)


def test_benchmark_outputs_end_to_end(tmp_path, monkeypatch):
    out_dir = tmp_path / "mini"
    _benchmark_tables(out_dir)
    # the source-accuracy tables come from another module: a stand-in shows they are included
    fake = types.ModuleType("analysis.source_tables")

    def source_accuracy_tables(zoo_dir, report_dir):
        path = Path(report_dir) / "source_accuracy.md"
        path.write_text("| expert | acc |\n|---|---|\n| letters | 91.0 |\n")
        return {"single-domain experts": path}

    fake.source_accuracy_tables = source_accuracy_tables
    monkeypatch.setitem(sys.modules, "analysis.source_tables", fake)
    analyze_main(
        _cfg(**{"name": "bench", "paths.out_dir": str(out_dir), "analysis.baseline": "generalist"})
    )
    rep = out_dir / "reports" / "bench"
    t = pd.read_csv(rep / "metrics.csv", dtype={"shots": str})
    # digits: lfc picks md@digits (95) -> +25 over the generalist; leep picks md@shapes (60)
    assert _metric(t, "digits", "lfc", "top1_gain") == pytest.approx(25.0)
    assert _metric(t, "digits", "lfc", "trials_to_best") == 1.0
    assert _metric(t, "digits", "leep", "top1_gain") == pytest.approx(-10.0)
    assert _metric(t, "digits", "leep", "trials_to_best") == 4.0
    # polygons: leep ranks only its 3 scored entries (letters? no: reversed -> md@digits first)
    assert _metric(t, "polygons", "leep", "n_entries") == 3.0
    gt = pd.read_csv(rep / "ground_truth.csv", dtype={"shots": str})
    row = gt[(gt.target == "digits") & (gt.entry == "md@digits")].iloc[0]
    assert row["acc"] == 95.0 and row["best_lr"] == 0.1 and row["seconds"] == 8.0
    cost = pd.read_csv(rep / "cost.csv", dtype={"shots": str})
    lfc1 = cost[(cost.target == "digits") & (cost.method == "lfc") & (cost.k == 1)].iloc[0]
    # brute force 4 entries x 4 runs x 2 s = 32 s; selection 4 x 0.5; top-1 fine-tune 8 s
    assert lfc1["brute_force_seconds"] == 32.0
    assert lfc1["cost_saved"] == pytest.approx(1 - (2.0 + 8.0) / 32.0)
    dom = pd.read_csv(rep / "domain_selection.csv", dtype={"shots": str})
    lfc = dom[(dom.target == "digits") & (dom.method == "lfc")].iloc[0]
    assert (lfc["picked_domain"], lfc["best_domain"], lfc["expert_type"]) == (
        "digits",
        "digits",
        "multi_bn",
    )
    report = (rep / "report.md").read_text()
    for text in (
        "## Cost (totals over targets)",
        "## Multi-domain view: selecting a domain within each multi-domain expert",
        "## Source accuracy of the zoo",
        "| letters | 91.0 |",
        "## Data notes",
        "method=leep: md@shapes",
        "by trials-to-best is lfc",
    ):
        assert text in report, text
    for name in ("cost_bars.png", "domain_selection_md.png", "gain_heatmap_shots=20.png"):
        assert (rep / name).read_bytes()[:8] == PNG_MAGIC


def test_benchmark_without_results_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        analyze_main(_cfg(**{"paths.out_dir": str(tmp_path / "empty")}))
    assert info.value.code == 2
    assert "no fine-tuning results" in capsys.readouterr().err


def test_wandb_offline_run_is_written_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))  # the run must not go there
    cfg = _byo(tmp_path, baseline="a", **{"logger.type": "wandb", "logger.group": "sweep-1"})
    analyze_main(cfg)
    runs = list((tmp_path / "out" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("*.wandb")), "the offline run holds its records"

"""Collecting fine-tuning results: the best-lr rule, cost accounting, and robustness to bad files."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
import pytest

from finetune.collect import (
    COST_COLUMNS,
    GT_COLUMNS,
    RUN_COLUMNS,
    collect,
    cost_table,
    ground_truth,
)
from finetune.run import result_path
from tests.factories import write_result

ROOT = Path(__file__).resolve().parent.parent


def _result(target, shots, entry, lr, seed, acc, seconds, **extra) -> dict:
    return {
        "target": target,
        "shots": str(shots),
        "entry": entry,
        "lr": lr,
        "seed": seed,
        "test_acc": acc,
        "val_acc": None,
        "epochs": 3,
        "steps": 100,
        "train_size": 200,
        "seconds": seconds,
        "device": "cpu",
        "precision": "32-true",
        "config_hash": "abc123abc123",
        "git_revision": "unknown",
        "finished_at": "2024-01-01T00:00:00+00:00",
    } | extra


# (target, shots, entry, lr, seed, test_acc, seconds): a hand-made set of finished runs
VALID = [
    ("digits", 20, "a", 0.1, 0, 50.0, 1.0),
    ("digits", 20, "a", 0.1, 1, 60.0, 2.0),
    ("digits", 20, "a", 0.01, 0, 70.0, 1.5),
    ("digits", 20, "a", 0.01, 1, 40.0, 1.5),  # seed-mean 55 = lr 0.1's: the tie goes to lr 0.01
    ("digits", 20, "b@x", 0.1, 0, 80.0, 3.0),
    ("digits", 20, "b@x", 0.1, 1, 90.0, 3.0),  # mean 85 (its best single run 90 does not count)
    ("digits", 20, "b@x", 0.01, 0, 88.0, 3.0),
    ("digits", 20, "b@x", 0.01, 1, 87.0, 3.0),  # mean 87.5: best
    ("digits", "full", "a", 0.1, 0, 91.0, 10.0),
    ("digits", "full", "a", 0.003, 0, 93.5, 12.0),  # best at the small end of the grid
    ("greek", 20, "a", 0.03, 0, 33.0, 0.5),
]
# hand-computed ground truth: target, shots, entry, acc, best_lr, n_seeds, n_lrs, n_runs, seconds
EXPECTED_GT = [
    ("digits", "20", "a", 55.0, 0.01, 2, 2, 4, 6.0),
    ("digits", "20", "b@x", 87.5, 0.01, 2, 2, 4, 12.0),
    ("digits", "full", "a", 93.5, 0.003, 1, 2, 2, 22.0),
    ("greek", "20", "a", 33.0, 0.03, 1, 1, 1, 0.5),
]


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    ft = tmp_path / "finetune"
    for t, k, e, lr, s, acc, sec in VALID:
        write_result(ft, _result(t, k, e, lr, s, acc, sec))
    # an interrupted atomic write leaves a temporary file: ignored, even with a tempting accuracy
    good = write_result(ft, _result("digits", 20, "a", 0.03, 0, 99.0, 1.0))
    good.rename(good.with_name(".result.json.tmp-4242-deadbeef"))
    # malformed JSON, a missing field, an out-of-range accuracy, a file in the wrong folder
    bad = result_path(ft, "digits", 20, "c", 0.1, 0)
    bad.parent.mkdir(parents=True)
    bad.write_text('{"target": "digits", "test_acc": 9')
    partial = _result("digits", 20, "c", 0.01, 0, 99.0, 1.0)
    del partial["test_acc"]
    write_result(ft, partial)
    write_result(ft, _result("digits", 20, "d", 0.1, 0, 140.0, 1.0))
    moved = write_result(ft, _result("digits", 20, "a", 0.3, 0, 99.0, 1.0))
    target = moved.parent.parent.parent / "lr=0.5" / "seed=0" / "result.json"
    target.parent.mkdir(parents=True)
    moved.rename(target)
    return tmp_path


def test_collect_best_lr_rule_and_bad_files(results_dir: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="finetune.collect"):
        runs, gt = collect(results_dir)

    assert list(runs.columns) == RUN_COLUMNS
    assert len(runs) == len(VALID)
    assert sorted(runs["shots"].unique()) == ["20", "full"]
    assert runs["val_acc"].isna().all()

    expected = pd.DataFrame(EXPECTED_GT, columns=GT_COLUMNS)
    assert list(gt.columns) == GT_COLUMNS
    got = gt.astype({"target": object, "shots": object, "entry": object})
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    # one warning per bad file, naming the file and the problem; the temp file is not mentioned
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4, warnings
    text = "\n".join(warnings)
    assert "/c/lr=0.1/seed=0/result.json: malformed JSON (Expecting" in text
    assert "/c/lr=0.01/seed=0/result.json: missing fields ['test_acc']" in text
    assert "/d/lr=0.1/seed=0/result.json: test_acc 140.0 is not a percentage" in text
    assert "/a/lr=0.5/seed=0/result.json: its key" in text
    assert "tmp-4242" not in text

    # the written tables are the returned ones
    pd.testing.assert_frame_equal(pd.read_parquet(results_dir / "finetune_runs.parquet"), runs)
    pd.testing.assert_frame_equal(pd.read_parquet(results_dir / "finetune_gt.parquet"), gt)
    cost = pd.read_csv(results_dir / "finetune_cost.csv", dtype={"shots": str})
    assert list(cost.columns) == COST_COLUMNS
    assert cost.to_dict("records") == [
        {"target": "digits", "shots": "20", "seconds": 18.0, "n_runs": 8, "n_entries": 2},
        {"target": "digits", "shots": "full", "seconds": 22.0, "n_runs": 2, "n_entries": 1},
        {"target": "greek", "shots": "20", "seconds": 0.5, "n_runs": 1, "n_entries": 1},
    ]
    # no temporary file left; the lock folder stays, empty
    assert [p.name for p in results_dir.iterdir() if p.name.startswith(".")] == [".locks"]
    assert not list((results_dir / ".locks").iterdir())


def test_ground_truth_matches_a_naive_loop() -> None:
    rows = [
        _result("t", 5, e, lr, s, acc, 1.0)
        for e, lr, s, acc in [
            ("x", 0.1, 0, 10.0),
            ("x", 0.1, 1, 30.0),
            ("x", 0.1, 2, 50.0),
            ("x", 0.03, 0, 40.0),
            ("x", 0.03, 1, 20.0),
            ("y", 0.001, 0, 77.0),
            ("y", 1.0, 0, 76.0),
        ]
    ]
    runs = pd.DataFrame(rows)[["target", "shots", "entry", "lr", "seed", "test_acc", "seconds"]]
    gt = ground_truth(runs).set_index("entry")
    for entry, group in runs.groupby("entry"):
        means = {lr: sum(g.test_acc) / len(g) for lr, g in group.groupby("lr")}
        best_lr = max(means, key=lambda lr: (means[lr], -lr))
        assert gt.loc[entry, "acc"] == pytest.approx(means[best_lr])
        assert gt.loc[entry, "best_lr"] == best_lr
        assert gt.loc[entry, "n_seeds"] == (group.lr == best_lr).sum()
        assert gt.loc[entry, "seconds"] == len(group) == gt.loc[entry, "n_runs"]
    assert gt.loc["x", "acc"] == pytest.approx(30.0) and gt.loc["x", "best_lr"] == 0.03


def test_empty_results_give_empty_typed_tables(tmp_path: Path) -> None:
    (tmp_path / "finetune").mkdir()
    runs, gt = collect(tmp_path)
    assert runs.empty and gt.empty
    assert list(gt.columns) == GT_COLUMNS and list(runs.columns) == RUN_COLUMNS
    assert cost_table(runs).empty
    assert pd.read_parquet(tmp_path / "finetune_gt.parquet").empty


def test_missing_results_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no fine-tuning results folder .*finetune.py"):
        collect(tmp_path / "nowhere")


def test_collect_cli(results_dir: Path, capsys) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import collect as collect_cli
    finally:
        sys.path.pop(0)
    assert collect_cli.main(["--out-dir", str(results_dir)]) == 0
    assert f"{len(VALID)} runs -> {len(EXPECTED_GT)} ground-truth rows" in capsys.readouterr().out
    assert collect_cli.main(["--out-dir", str(results_dir / "nowhere")]) == 2

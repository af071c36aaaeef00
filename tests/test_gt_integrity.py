"""A cell's ground truth never silently mixes runs, and the sweep and the collection see the same files.

- a (target, shots) cell whose runs differ in recipe, precision or code revision, or whose entries
  lack runs of the lr x seed grid, is refused in strict mode and flagged otherwise (collect, the
  analysis' tables and checks, the report);
- results under a symlinked target folder count as done for the sweep *and* are collected;
- the analysis warns when its tables are older than the newest result.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis.main import load_benchmark, run_analysis
from analysis.report import INTEGRITY_TITLE
from analysis.tables import load_ground_truth, load_runs, stale_table_notes
from analysis.validate import InputTableError, check_gt
from core.io import config_hash
from core.results import (
    RESULT_NAME,
    GroundTruthIntegrityError,
    classify_cells,
    list_result_files,
)
from finetune import collect as collect_mod
from finetune.collect import collect, ground_truth, scan_results
from finetune.run import RESULT_NAME as RUN_RESULT_NAME
from finetune.run import load_result, result_path
from tests.factories import write_result

BF16 = {"epochs": 30, "precision": "bf16-mixed", "accelerator": "cpu"}
FP32 = {"epochs": 30, "precision": "32-true", "accelerator": "cpu"}
LRS = (0.1, 0.01, 0.001)


def _result(target, shots, entry, lr, seed, acc, recipe=BF16, rev="aaaa") -> dict:
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
        "seconds": 1.0,
        "device": "cpu",
        "precision": recipe["precision"],
        "recipe": recipe,
        "config_hash": config_hash({"entry": entry, "lr": lr, "seed": seed, **recipe}),
        "git_revision": rev,
        "entry_weights": "w",
        "finished_at": "2024-01-01T00:00:00+00:00",
    }


def _stale_fp32_cell(ft: Path) -> None:
    """The review's case: e1 has the full 3 lr x 3 seed grid (bf16, best seed mean 71.0 at lr 0.01);
    e2 has one stale fp32 run of another recipe at 74.0, which wins the cell if nothing checks."""
    for lr, base in zip(LRS, (69.0, 71.0, 60.0), strict=True):
        for seed, noise in zip((0, 1, 2), (-1.0, 0.0, 1.0), strict=True):
            write_result(ft, _result("dtd", 20, "e1", lr, seed, base + noise))
    write_result(ft, _result("dtd", 20, "e2", 0.1, 0, 74.0, recipe=FP32, rev="bbbb"))


def _scores(out: Path, target: str = "dtd", shots: str = "20") -> None:
    d = out / "selection" / target / f"shots={shots}"
    d.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"entry": ["e1", "e2"], "score": [2.0, 1.0], "seconds": 0.1}).to_parquet(
        d / "m.parquet"
    )


def _cfg(out: Path, strict: bool) -> OmegaConf:
    return OmegaConf.create(
        {
            "name": "t",
            "analysis": {"baseline": None, "topk": 3, "bootstrap": 20, "seed": 0, "strict": strict},
            "paths": {"out_dir": str(out), "reports_dir": None},
            "logger": {"type": "none"},
        }
    )


def test_a_stale_fp32_run_never_wins_a_cell_silently(tmp_path: Path, caplog) -> None:
    ft = tmp_path / "finetune"
    _stale_fp32_cell(ft)
    with caplog.at_level(logging.WARNING):
        runs, gt = collect(tmp_path)
    # by default the tables are written (so they are never stale) and the cell is named
    assert gt.set_index("entry")["acc"].to_dict() == {"e1": 71.0, "e2": 74.0}
    assert runs["recipe_hash"].nunique() == 2
    warned = caplog.text
    assert "target=dtd shots=20" in warned and "e2 (1/9 runs)" in warned
    assert "precision: bf16-mixed (9 runs: e1); 32-true (1 run: e2)" in warned
    assert "git_revision: aaaa (9 runs: e1); bbbb (1 run: e2)" in warned

    # strict: the collection's ground truth and the analysis' refuse the cell
    with pytest.raises(GroundTruthIntegrityError, match="target=dtd shots=20.*e2 \\(1/9 runs\\)"):
        ground_truth(runs, strict=True)
    with pytest.raises(GroundTruthIntegrityError, match="recipe_hash"):
        load_ground_truth(tmp_path, strict=True)
    with pytest.raises(InputTableError, match="precision.*Valid: every run"):
        check_gt(load_ground_truth(tmp_path), strict=True, runs=load_runs(tmp_path))
    # lenient: a note names the cell
    _, notes = check_gt(load_ground_truth(tmp_path), strict=False, runs=load_runs(tmp_path))
    assert len(notes) == 1 and "target=dtd shots=20" in notes[0] and "e2 (1/9 runs)" in notes[0]

    # the analysis: strict refuses, the default flags it in a named report section
    _scores(tmp_path)
    with pytest.raises(InputTableError, match="target=dtd shots=20"):
        run_analysis(_cfg(tmp_path, strict=True))
    report = run_analysis(_cfg(tmp_path, strict=False)).read_text()
    section = report.split(f"## {INTEGRITY_TITLE}")[1].split("\n## ")[0]
    assert "| dtd | 20 | mixed, incomplete | 3 x 3 |" in section and "e2 (1/9 runs)" in section


def test_collect_cli_strict_fails_on_a_mixed_cell(tmp_path: Path, capsys) -> None:
    from scripts.collect import main

    _stale_fp32_cell(tmp_path / "finetune")
    assert main(["--out-dir", str(tmp_path)]) == 0
    assert main(["--out-dir", str(tmp_path), "--strict"]) == 3
    assert "target=dtd shots=20" in capsys.readouterr().err
    assert (tmp_path / "finetune_gt.parquet").is_file()  # written all the same: never stale


def _runs(rows) -> pd.DataFrame:
    return pd.DataFrame(
        rows,
        columns=["target", "shots", "entry", "lr", "seed", "test_acc", "recipe_hash", "precision"],
    )


def test_classify_cells_against_a_hand_table() -> None:
    grid = [(lr, s) for lr in (0.1, 0.01) for s in (0, 1)]
    rows = [("a", "5", e, lr, s, 50.0, "r1", "32-true") for e in ("x", "y") for lr, s in grid]
    # cell b: same recipe everywhere, y lacks (0.01, 1); a failed run (NaN) is a run all the same
    rows += [("b", "5", "x", lr, s, float("nan"), "r1", "32-true") for lr, s in grid]
    rows += [("b", "5", "y", lr, s, 50.0, "r1", "32-true") for lr, s in grid[:3]]
    # cell c: full grids but one run of another recipe, one with none recorded
    rows += [("c", "full", e, lr, s, 50.0, "r1", "32-true") for e in ("x", "y") for lr, s in grid]
    rows[-1] = ("c", "full", "y", 0.01, 1, 50.0, "r2", "32-true")
    rows[-2] = ("c", "full", "y", 0.01, 0, 50.0, None, "32-true")
    cells = classify_cells(_runs(rows)).set_index(["target", "shots"])
    assert cells.loc[("a", "5"), "status"] == "ok" and cells.loc[("a", "5"), "mixed"] == ""
    b = cells.loc[("b", "5")]
    assert (b["status"], b["incomplete"], b["mixed"]) == ("incomplete", "y (3/4 runs)", "")
    assert (b["n_lrs"], b["n_seeds"], b["n_runs"], b["n_entries"]) == (2, 2, 7, 2)
    c = cells.loc[("c", "full")]
    assert c["status"] == "mixed" and c["incomplete"] == ""
    assert c["mixed"] == "recipe_hash: r1 (6 runs: x, y); <missing> (1 run: y); r2 (1 run: y)"
    # a table without provenance columns (a brought runs table) is checked for its grid only
    plain = _runs(rows).drop(columns=["recipe_hash", "precision"])
    assert classify_cells(plain).set_index("target")["status"].to_dict() == {
        "a": "ok",
        "b": "incomplete",
        "c": "ok",
    }


def test_results_under_a_symlinked_target_are_done_and_collected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import finetune.sweep
    from core.config import FinetuneSettings
    from finetune.run import FinetunePaths
    from finetune.sweep import RunKey, finished_files, run_sweep

    ft = tmp_path / "finetune"
    write_result(ft, _result("dtd", 5, "e", 0.1, 0, 60.0))
    # the pets folder moved to another disk and linked back
    write_result(tmp_path / "other_disk", _result("pets", 5, "e", 0.1, 0, 70.0))
    (ft / "pets").symlink_to(tmp_path / "other_disk" / "pets", target_is_directory=True)
    # a symlink loop inside a cell: walked once, never forever
    (ft / "dtd" / "shots=5" / "loop").symlink_to(ft / "dtd", target_is_directory=True)

    runs, problems = scan_results(ft)
    assert sorted(runs["target"]) == ["dtd", "pets"] and problems == []
    keys = [RunKey("dtd", 5, "e", 0.1, 0), RunKey("pets", 5, "e", 0.1, 0)]
    listed = finished_files(keys, ft)
    assert {k.path(ft) for k in keys} <= listed
    # one listing: the sweep's view of a cell is the collection's view of it
    assert listed == set(list_result_files(ft))
    assert all(load_result(k.path(ft), k.target, k.shots, k.entry, k.lr, k.seed) for k in keys)

    def no_training(*args):
        raise AssertionError("a finished run was redone")

    paths = FinetunePaths(zoo_dir=tmp_path / "zoo", finetune_dir=ft)
    # no dataset on disk: the targets' data counts as the results' own (they record none)
    monkeypatch.setattr(finetune.sweep, "target_fingerprint", lambda target, data_dir: None)
    summary = run_sweep(
        keys,
        FinetuneSettings(accelerator="cpu", precision="bf16-mixed"),
        paths,
        load_entry=no_training,
        fingerprint=lambda entry, zoo_dir: "w",
        echo=lambda line: None,
    )
    assert (summary.skipped, summary.executed) == (2, 0)


def test_list_result_files_from_a_sub_folder_matches_the_root(tmp_path: Path) -> None:
    assert RESULT_NAME == RUN_RESULT_NAME
    ft = tmp_path / "finetune"
    write_result(ft, _result("dtd", 5, "e", 0.1, 0, 60.0))
    (ft / "dtd" / "shots=5" / "e" / ".result.json.tmp-1-ab").write_text("{}")
    # a loop back to the results root from a cell: cut in both walks alike
    (ft / "dtd" / "shots=5" / "up").symlink_to(ft, target_is_directory=True)
    whole = list_result_files(ft)
    assert whole == [result_path(ft, "dtd", 5, "e", 0.1, 0)]
    assert list_result_files(ft, "dtd", "shots=5") == whole
    assert list_result_files(ft, "nope", "shots=5") == []


def test_analysis_warns_when_its_tables_are_older_than_the_results(tmp_path: Path) -> None:
    ft = tmp_path / "finetune"
    for seed in (0, 1):
        write_result(ft, _result("dtd", 20, "e1", 0.1, seed, 70.0))
        write_result(ft, _result("dtd", 20, "e2", 0.1, seed, 60.0))
    collect(tmp_path)
    assert stale_table_notes(tmp_path, ft) == []
    table = tmp_path / "finetune_runs.parquet"
    late = write_result(ft, _result("dtd", 20, "e1", 0.01, 0, 75.0))
    os.utime(late, (table.stat().st_mtime + 60, table.stat().st_mtime + 60))
    notes = stale_table_notes(tmp_path, ft)
    assert len(notes) == 2
    assert str(table) in notes[0] and str(late) in notes[0]
    # both times, in UTC ISO format
    for t in (table.stat().st_mtime, late.stat().st_mtime):
        assert datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="seconds") in notes[0]
    assert "has 4 runs but" in notes[1] and "holds 5 result files" in notes[1]
    _scores(tmp_path)
    *_, notes = load_benchmark(tmp_path, tmp_path / "selection", None, False, ft)
    assert any(n.startswith("stale tables:") for n in notes)


def test_every_job_of_a_multirun_collects_even_a_failed_one(tmp_path: Path, monkeypatch) -> None:
    """Hydra skips on_multirun_end when a job fails: each job's end collects instead."""
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import RunMode

    ft = tmp_path / "finetune"
    write_result(ft, _result("dtd", 20, "e1", 0.1, 0, 70.0))
    cfg = OmegaConf.create(
        {
            "paths": {"out_dir": str(tmp_path), "finetune_dir": str(ft)},
            "hydra": {"mode": RunMode.MULTIRUN},
        }
    )
    failed = JobReturn(status=JobStatus.FAILED, _return_value=RuntimeError("out of memory"))
    collect_mod.CollectAfterMultirun().on_job_end(config=cfg, job_return=failed)
    assert len(pd.read_parquet(tmp_path / "finetune_runs.parquet")) == 1
    # a single run (no -m) has collected itself: the callback leaves it alone
    called = []
    monkeypatch.setattr(collect_mod, "collect", lambda *a: called.append(a))
    cfg.hydra.mode = RunMode.RUN
    collect_mod.CollectAfterMultirun().on_job_end(config=cfg, job_return=failed)
    assert called == []

"""The whole chain through ``scripts/run_mini.py`` (what ``make demo`` runs), checked artefact by
artefact against DESIGN.md section 2.

The default suite runs the toy chain (``experiment=tiny``: five toy entries, one target, a few
steps everywhere) and its rerun; the ``slow`` test runs the mini benchmark itself at a reduced size
(``experiment=mini_small``: 9 entries, two targets, short recipes) with ``logger=wandb`` and checks the offline runs of every stage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import selection
from tests.factories import ENV, ROOT, mtimes


def _compose(overrides: list[str]):
    import core.config  # noqa: F401  (the schemas)

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("evaluate_selection", overrides=overrides)


def run_chain(overrides: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "scripts/run_mini.py", *overrides],
        cwd=ROOT,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=1800,
    )


def check_artefacts(out: Path, cfg) -> dict[str, list[Path]]:
    """Assert that every artefact of DESIGN.md section 2 exists and is well formed; return them."""
    zoo_dir = out / "zoo"
    experts = [e["id"] for e in cfg.zoo.experts]
    entries = list(cfg.zoo.entries)
    targets = list(cfg.benchmark.targets)
    shots = [str(s) for s in cfg.sweep.shots]
    found: dict[str, list[Path]] = {}

    # the zoo: weights, card and source profile per expert; the manifest lists them all
    for expert in experts:
        card = json.loads((zoo_dir / expert / "card.json").read_text())
        assert card["expert_id"] == expert
        assert (zoo_dir / expert / "weights.safetensors").stat().st_size > 0
        with np.load(zoo_dir / expert / "source_profile.npz") as profile:
            assert all(np.isfinite(profile[k]).all() for k in profile.files)
    manifest = pd.read_csv(zoo_dir / "manifest.csv")
    assert sorted(manifest["expert_id"].unique()) == sorted(experts)
    assert set(entries) <= set(manifest["entry_id"])

    # fine-tuning: one result per (target, shots, entry, lr, seed), then the collected tables
    results = sorted((out / "finetune").rglob("result.json"))
    n_seeds = {s: len(cfg.sweep.full_seeds if s == "full" else cfg.sweep.seeds) for s in shots}
    expected = len(targets) * len(entries) * len(cfg.sweep.lrs) * sum(n_seeds.values())
    assert len(results) == expected
    for path in results:
        result = json.loads(path.read_text())
        assert 0 <= result["test_acc"] <= 100 and result["config_hash"]
    gt = pd.read_parquet(out / "finetune_gt.parquet")
    cells = {(t, s, e) for t in targets for s in shots for e in entries}
    assert set(zip(gt["target"], gt["shots"].astype(str), gt["entry"])) == cells
    assert gt["acc"].between(0, 100).all()
    assert len(pd.read_parquet(out / "finetune_runs.parquet")) == expected
    found["results"] = results

    # the extraction cache and one score table per (target, shots, method)
    cache = sorted((out / "cache").rglob("*.npz"))
    # one folder per entry, and RSA's probe (shared by the entries of a target) in `_probe`
    assert {p.relative_to(out / "cache").parts[0] for p in cache} == {*entries, "_probe"}
    tables = sorted((out / "selection").rglob("*.parquet"))
    methods = set(selection.available())
    for target in targets:
        for s in shots:
            cell = out / "selection" / target / f"shots={s}"
            assert {p.stem for p in cell.glob("*.parquet")} == methods
            for p in cell.glob("*.parquet"):
                scores = pd.read_parquet(p)
                assert sorted(scores["entry"]) == sorted(entries), p
                assert {"score", "seconds"} <= set(scores.columns)
    found["scores"] = tables

    # the report: markdown, figures and tables
    report_dir = out / "reports" / str(cfg.benchmark.name)
    report = (report_dir / "report.md").read_text()
    for method in methods:  # a row of the summary table for every method
        assert f"| {method} | " in report, method
    # every method judged on every headline metric at every shots, and its cost saved
    summary = pd.read_csv(report_dir / "summary.csv", dtype={"shots": str})
    headline = {"top1_gain", "top3_gain", "trials_to_best", "spearman", "wtau"}
    judged = {(s, m, k) for s, m, k in zip(summary["shots"], summary["method"], summary["metric"])}
    assert {(s, m, k) for s in shots for m in methods for k in headline} <= judged
    cost = pd.read_csv(report_dir / "cost_summary.csv", dtype={"shots": str})
    assert {(s, m) for s in shots for m in methods} <= set(zip(cost["shots"], cost["method"]))
    assert list(report_dir.glob("*.png")) and list(report_dir.glob("*.csv"))
    found["report"] = sorted(report_dir.iterdir())
    return found


def test_tiny_chain_writes_every_artefact_and_a_rerun_redoes_nothing(tmp_path: Path) -> None:
    overrides = ["experiment=tiny", f"paths.out_dir={tmp_path}", "logger=none"]
    first = run_chain(overrides)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    for i, stage in enumerate(("train the zoo", "fine-tune", "score every entry", "analyse"), 1):
        assert f"=== [{i}/4] {stage}" in first.stdout
    report = tmp_path / "reports" / "mini" / "report.md"
    assert first.stdout.rstrip().endswith(f"report: {report}")
    cfg = _compose(overrides)
    found = check_artefacts(tmp_path, cfg)

    # a rerun finds everything finished: no expert, run or score is redone
    kept = mtimes(
        [*found["results"], *found["scores"], *sorted((tmp_path / "zoo").rglob("*.safetensors"))]
    )
    again = run_chain(overrides)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    # every expert skipped (by its wave's process and by the final manifest pass), none trained
    skipped = set(re.findall(r"^skipped  (\S+):", again.stdout, flags=re.M))
    assert skipped == {e.id for e in cfg.zoo.experts}
    assert not re.search(r"^trained ", again.stdout, flags=re.M)
    assert "already scored, skipped" in again.stdout
    assert mtimes(list(kept)) == kept

    # the default zoo trained into the same folder: the toy experts are not reused; the stage
    # stops before training anything, naming the expert, both hashes and the ways out
    mixed = subprocess.run(
        [sys.executable, "train_zoo.py", f"paths.out_dir={tmp_path}", "logger=none"],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert mixed.returncode != 0
    stored = json.loads((tmp_path / "zoo" / "generalist" / "card.json").read_text())
    assert f"generalist: stored config hash {stored['config_hash']}, requested " in mixed.stderr
    assert "train.overwrite=true" in mixed.stderr and "paths.out_name" in mixed.stderr
    assert "trained " not in mixed.stdout and "skipped " not in mixed.stdout
    assert mtimes(list(kept)) == kept


def test_experiments_that_change_the_zoo_have_their_own_store() -> None:
    default = _compose([])
    assert default.paths.out_name == "mini"
    names = {}
    for experiment in ("tiny", "mini_small", "mini_large", "smoke"):
        cfg = _compose([f"experiment={experiment}"])
        names[experiment] = cfg.paths.out_name
        assert cfg.paths.out_dir == str(Path(default.paths.out_dir).parent / cfg.paths.out_name)
        assert cfg.paths.zoo_dir == f"{cfg.paths.out_dir}/zoo"
    assert names == {
        "tiny": "mini_tiny",
        "mini_small": "mini_small",
        "mini_large": "mini_large",
        "smoke": "mini",  # the benchmark's own zoo and recipes: its store
    }
    assert _compose(["benchmark=paper"]).paths.out_dir.endswith("/paper")


@pytest.mark.slow
def test_mini_benchmark_at_reduced_size_with_wandb(tmp_path: Path) -> None:
    """``experiment=mini_small``: 9 entries, two targets, full and 20 shots, short recipes."""
    overrides = ["experiment=mini_small", f"paths.out_dir={tmp_path}", "logger=wandb"]
    wandb_env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path / "x")}
    proc = run_chain(overrides, env=wandb_env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cfg = _compose(overrides)
    check_artefacts(tmp_path, cfg)
    gt = pd.read_parquet(tmp_path / "finetune_gt.parquet")
    assert gt["entry"].nunique() == len(cfg.zoo.entries) == 9
    # offline runs of every stage, where `wandb sync <out>/wandb/offline-run-*` finds them
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    names = []
    for run in runs:
        assert [p.stat().st_size > 0 for p in run.glob("*.wandb")] == [True], run
        names.append(os.path.basename(run))
    n_trained = len(cfg.zoo.experts)
    n_cells = len(cfg.benchmark.targets) * len(cfg.sweep.shots)
    # one per trained expert, one per fine-tuning job (a (target, shots) cell), one analysis
    assert len(runs) == n_trained + n_cells + 1, names
    assert not (tmp_path / "x").exists()

"""Determinism on CPU: the same config and seed give the same scores, accuracies and reports.

Between the two runs of each pair, the global random generators (Python, numpy, torch) are put
in a different state: a result that depended on them (instead of on its own seeds) would differ.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.factories import compose, selection_overrides, tiny_zoo

pytestmark = pytest.mark.usefixtures("one_thread")


def _scramble_global_rngs(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (the legacy global generator is what we disturb)
    torch.manual_seed(seed)
    torch.rand(seed % 7 + 1)


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    return tiny_zoo(tmp_path_factory.mktemp("zoo"))


def test_selection_scores_are_identical(tmp_path: Path, zoo_dir: Path, capsys) -> None:
    import selection
    from selection.evaluate import evaluate_selection_main

    tables = []
    for run, seed in (("a", 11), ("b", 12345)):
        _scramble_global_rngs(seed)
        # no cache: both runs extract, train the RSA probe and sketch the gradients themselves
        overrides = [*selection_overrides(tmp_path / run, zoo_dir), "selection.cache=false"]
        tables.append(evaluate_selection_main(compose("evaluate_selection", overrides)))
    capsys.readouterr()
    a, b = tables
    assert sorted(a) == sorted(b) and len(a) == len(selection.available())
    for key in a:
        scores_a = a[key].sort_values("entry")[["entry", "score", "n"]].reset_index(drop=True)
        scores_b = b[key].sort_values("entry")[["entry", "score", "n"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(scores_a, scores_b, check_exact=True, obj=str(key))


def test_finetuning_accuracy_is_identical(tmp_path: Path, zoo_dir: Path) -> None:
    from finetune.run import FinetunePaths, FinetuneSettings, finetune_run

    # augmentation on, several epochs, shuffled batches: everything that draws random numbers
    settings = FinetuneSettings(epochs=2, min_steps=6, batch_size=8, num_workers=0)
    paths = FinetunePaths(zoo_dir=zoo_dir, finetune_dir=tmp_path / "ft")
    results = []
    for seed in (3, 999):
        _scramble_global_rngs(seed)
        results.append(
            finetune_run("tiny_a", "mini_polygons", 5, 0.05, 1, settings, paths, write=False)
        )
    # wall and CPU seconds, and the time of day, are the only things allowed to differ
    a, b = (
        {k: v for k, v in r.items() if "seconds" not in k and k != "finished_at"} for r in results
    )
    assert a == b
    assert a["steps"] == 10 and 0.0 <= a["test_acc"] <= 100.0
    # another run seed gives another run (the seed is what decides)
    other = finetune_run("tiny_a", "mini_polygons", 5, 0.05, 2, settings, paths, write=False)
    assert (other["test_acc"], other["config_hash"]) != (a["test_acc"], a["config_hash"])


def test_deterministic_setting_switches_torch_to_deterministic_kernels(
    tmp_path: Path, zoo_dir: Path
) -> None:
    from finetune.run import FinetunePaths, FinetuneSettings, finetune_run

    paths = FinetunePaths(zoo_dir=zoo_dir, finetune_dir=tmp_path / "ft")
    args = ("tiny_a", "mini_polygons", 5, 0.05, 1)
    plain = FinetuneSettings(epochs=1, min_steps=4, batch_size=8, num_workers=0)
    strict = FinetuneSettings(
        epochs=1, min_steps=4, batch_size=8, num_workers=0, deterministic=True
    )
    assert not torch.are_deterministic_algorithms_enabled()
    try:
        a = finetune_run(*args, plain, paths, write=False)
        b = finetune_run(*args, strict, paths, write=False)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    # on a CPU the kernels were deterministic already: the same accuracy
    assert (a["test_acc"], a["steps"]) == (b["test_acc"], b["steps"])


GT = """target,entry,acc
t1,a,81.5
t1,b,70.25
t1,c,77.0
t2,a,60.0
t2,b,66.5
t2,c,61.0
t3,a,90.0
t3,b,91.0
t3,c,55.5
"""
SCORES = """target,entry,method,score,seconds
t1,a,lfc,0.3,1.5
t1,b,lfc,0.1,1.5
t1,c,lfc,0.2,1.5
t2,a,lfc,0.5,1.5
t2,b,lfc,0.4,1.5
t2,c,lfc,0.6,1.5
t3,a,lfc,0.9,1.5
t3,b,lfc,0.8,1.5
t3,c,lfc,0.1,1.5
t1,a,logme,-1.0,2.0
t1,b,logme,-3.0,2.0
t1,c,logme,-2.0,2.0
t2,a,logme,-2.5,2.0
t2,b,logme,-0.5,2.0
t2,c,logme,-1.5,2.0
t3,a,logme,-0.2,2.0
t3,b,logme,-0.1,2.0
t3,c,logme,-0.3,2.0
"""


def test_reports_are_identical(tmp_path: Path, capsys) -> None:
    from analysis.main import run_analysis

    gt, scores = tmp_path / "gt.csv", tmp_path / "scores.csv"
    gt.write_text(GT)
    scores.write_text(SCORES)
    reports = []
    for run, seed in (("a", 5), ("b", 77)):
        _scramble_global_rngs(seed)
        overrides = [f"gt={gt}", f"scores={scores}", f"out={tmp_path / run}", "baseline=a"]
        reports.append(
            run_analysis(compose("analyze", [*overrides, "analysis.bootstrap=200", "logger=none"]))
        )
    capsys.readouterr()
    a, b = (r.parent for r in reports)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert {"metrics.csv", "summary.csv", "report.md"} <= set(names)
    for name in names:
        if name == "report.md":
            continue
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    # report.md names its inputs and the code's git revision: equal here, masked to be safe
    # against a commit landing between the two runs
    mask = re.compile(r"^- git revision: .*$", re.MULTILINE)
    text_a, text_b = (
        mask.sub("- git revision: ...", (d / "report.md").read_text()) for d in (a, b)
    )
    assert text_a == text_b
    findings = text_a.split("## Findings")[1].split("##")[0].strip()
    assert len(findings) > 50  # a real paragraph, compared above with the rest
    metrics = pd.read_csv(a / "metrics.csv")
    assert set(metrics["method"]) >= {"lfc", "logme"} and metrics["value"].notna().any()

"""Fine-tuning runs and sweeps on CPU: learning, result files, resuming, kills, multi-domain entries."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import core.config  # noqa: F401  (registers the config schemas)
from core.keys import RESULT_FIELDS, format_lr, format_shots, parse_shots
from finetune.collect import collect
from finetune.run import (
    FinetunePaths,
    FinetuneSettings,
    finetune_run,
    initial_model,
    result_path,
)
from finetune.sweep import finetune_main, plan_from_cfg, plan_runs
from tests.factories import run_entry
from zoo.data import load_split
from zoo.models import MINI_MEAN, MINI_STD, create_model
from zoo.multidomain import DomainBatchNorm2d, MultiDomainClassifier
from zoo.samplers import stratified_split
from zoo.store import load_entry, save_expert

ROOT = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread")


# subprocesses get the same single thread
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _card(arch: str, kind: str, domains: dict[str, int]) -> dict:
    return {
        "arch": arch,
        "arch_kwargs": {},
        "type": kind,
        "sources": list(domains),
        "domains": [
            {"name": d, "num_classes": c, "classes": [str(i) for i in range(c)], "datasets": [d]}
            for d, c in domains.items()
        ],
        "input_size": 32,
        "mean": list(MINI_MEAN),
        "std": list(MINI_STD),
    }


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    """Two random-init single experts and a multi_bn expert whose two domains differ only in BN."""
    path = tmp_path_factory.mktemp("zoo")
    for i, expert in enumerate(["tiny_a", "tiny_b"]):
        torch.manual_seed(i)
        save_expert(
            path, expert, create_model("resnet8", 8), _card("resnet8", "single", {"s": 8}), {}
        )
    torch.manual_seed(2)
    md = MultiDomainClassifier(
        create_model("resnet8", 5), ["d1", "d2"], {"d1": 5, "d2": 3}, "multi_bn"
    )
    gen = torch.Generator().manual_seed(3)
    for m in md.modules():
        if isinstance(m, DomainBatchNorm2d):
            bn = m.bns["d2"]  # domain d2: other BN scales, shifts and running statistics
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5, generator=gen)
                bn.bias.normal_(0.0, 0.3, generator=gen)
                bn.running_mean.normal_(0.0, 0.3, generator=gen)
                bn.running_var.uniform_(0.5, 2.0, generator=gen)
    save_expert(path, "tiny_md", md, _card("resnet8", "multi_bn", {"d1": 5, "d2": 3}), {})
    return path


def _cfg(out_dir: Path, zoo_dir: Path, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            "finetune",
            overrides=[
                f"paths.out_dir={out_dir}",
                f"paths.zoo_dir={zoo_dir}",
                "finetune.epochs=0",
                "finetune.batch_size=16",
                *overrides,
            ],
        )


def _results(finetune_dir: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in sorted(finetune_dir.rglob("result.json"))}


def test_keys_and_plan() -> None:
    assert (
        format_lr(0.01) == "0.01" and format_lr(0.1 * 0.3) == "0.03" and format_lr(1e-5) == "1e-05"
    )
    assert parse_shots("20") == 20 and parse_shots(5) == 5 and parse_shots("full") == "full"
    assert format_shots(np.int64(20)) == "20"
    for bad in ("20.5", 0, -3, True, "all"):
        with pytest.raises(ValueError, match="invalid shots"):
            parse_shots(bad)
    with pytest.raises(ValueError, match="invalid learning rate"):
        format_lr(float("nan"))
    assert result_path("/r", "t", "20", "e@d", 0.030000000000000002, 1) == Path(
        "/r/t/shots=20/e@d/lr=0.03/seed=1/result.json"
    )

    runs = plan_runs(["t1", "t2"], ["full", "20", 5], ["a", "b@x"], [0.1, 0.01, 0.1], [0, 1], [0])
    # per target: full 2 entries x 2 lrs x 1 seed + (20 and 5) x 2 x 2 x 2 seeds
    assert len(runs) == 2 * (4 + 2 * 8)
    assert len(set(runs)) == len(runs)
    assert {r.seed for r in runs if r.shots == "full"} == {0}
    assert {r.shots for r in runs} == {"full", 20, 5}
    with pytest.raises(ValueError, match="empty entries"):
        plan_runs(["t"], [5], [], [0.1], [0])

    # a stratified hold-out keeps each class's share and at least one image per side
    labels = np.repeat(np.arange(3), [10, 4, 1])
    train, val = stratified_split(labels, 0.25, seed=0)
    # floor(0.25 * n + 0.5) per class, clipped to [1, n - 1]
    assert np.bincount(labels[val], minlength=3).tolist() == [3, 1, 0]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))
    with pytest.raises(ValueError, match="invalid val_fraction"):
        FinetuneSettings(val_fraction=1.5)
    with pytest.raises(ValueError, match="unknown accelerator 'tpu'"):
        FinetuneSettings(accelerator="tpu")


def test_plan_from_config_defaults_and_restrictions(tmp_path: Path, zoo_dir: Path) -> None:
    # no zoo config: every entry of the store
    cfg = _cfg(tmp_path, zoo_dir, "zoo.experts=[]", "zoo.entries=null")
    runs = plan_from_cfg(cfg, zoo_dir)
    sweep = cfg.sweep
    n_entries = 4  # tiny_a, tiny_b, tiny_md@d1, tiny_md@d2
    per_target = sum(
        n_entries * len(sweep.lrs) * len(sweep.full_seeds if k == "full" else sweep.seeds)
        for k in sweep.shots
    )
    assert len(runs) == len(sweep.targets) * per_target
    assert {r.target for r in runs} == set(sweep.targets)

    cfg = _cfg(
        tmp_path,
        zoo_dir,
        "target=mini_greek",
        "shots=20",
        "entry=tiny_md@d2",
        "optim.lr=0.01",
        "seed=3",
    )
    assert [str(r) for r in plan_from_cfg(cfg, zoo_dir)] == [
        "mini_greek shots=20 tiny_md@d2 lr=0.01 seed=3"
    ]
    with pytest.raises(ValueError, match="unknown zoo entries \\['nope'\\].*known: tiny_a"):
        plan_from_cfg(_cfg(tmp_path, zoo_dir, "entry=nope"), zoo_dir)
    # the zoo config's entries that are in the store (the others are reported and left out)
    cfg = _cfg(tmp_path, zoo_dir, "zoo.entries=[tiny_b,gone,tiny_md@d1]", "shots=20", "seed=0")
    assert sorted({r.entry for r in plan_from_cfg(cfg, zoo_dir)}) == ["tiny_b", "tiny_md@d1"]
    cfg = _cfg(tmp_path, zoo_dir, "zoo.entries=null", "zoo.experts=[{id: tiny_md}, {id: gone}]")
    assert sorted({r.entry for r in plan_from_cfg(cfg, zoo_dir)}) == ["tiny_md@d1", "tiny_md@d2"]
    with pytest.raises(ValueError, match="no zoo entries to fine-tune"):
        plan_from_cfg(_cfg(tmp_path, zoo_dir, "zoo.entries=[gone]"), zoo_dir)


def test_finetune_run_learns_and_records(tmp_path: Path, zoo_dir: Path) -> None:
    """20-shot fabrics from a random-init expert: well above chance (12.5%) after 100 steps."""
    cfg = _cfg(tmp_path, zoo_dir, "finetune.min_steps=100", "finetune.batch_size=32")
    result = finetune_run("tiny_a", "mini_fabrics", 20, 0.05, 0, cfg)
    test = load_split("mini_fabrics", "test")
    chance = 100.0 / len(test.classes)
    assert result["test_acc"] > 2 * chance, result
    path = tmp_path / "finetune/mini_fabrics/shots=20/tiny_a/lr=0.05/seed=0/result.json"
    saved = json.loads(path.read_text())
    assert set(RESULT_FIELDS) <= set(saved)
    assert saved["test_acc"] == pytest.approx(result["test_acc"])
    # the full test split is scored, also for a few-shot run
    assert saved["test_size"] == len(test)
    assert saved["train_size"] == 20 * len(test.classes) and saved["steps"] == 100
    assert saved["epochs"] == 100 // (160 // 32) and saved["val_acc"] is None
    assert saved["device"] == "cpu" and saved["precision"] in ("bf16-mixed", "32-true")
    assert len(saved["config_hash"]) == 12 and saved["seconds"] > 0
    # accuracy is a multiple of 1/|test| (percent)
    assert round(saved["test_acc"] * len(test) / 100) == pytest.approx(
        saved["test_acc"] * len(test) / 100
    )


def test_multi_domain_entry_trains_with_its_domain(tmp_path: Path, zoo_dir: Path) -> None:
    d1, d2 = load_entry("tiny_md@d1", zoo_dir), load_entry("tiny_md@d2", zoo_dir)
    x, _ = load_split("mini_polygons", "test").subset(np.arange(32)).tensors()
    with torch.inference_mode():
        f1, f2 = d1.model.forward_features(x), d2.model.forward_features(x)
        # the run's starting model is that domain's model with a new head
        start = initial_model(d2, num_classes=8, seed=0).eval()
        assert start.head.out_features == 8 and d2.model.head.out_features == 3
        torch.testing.assert_close(start.forward_features(x), f2)
    assert (f1 - f2).abs().mean() > 0.05 * f1.abs().mean()

    settings = FinetuneSettings(
        epochs=0, min_steps=6, batch_size=16, num_workers=0, val_fraction=0.25
    )
    paths = FinetunePaths(zoo_dir=zoo_dir, finetune_dir=tmp_path / "ft")
    r1 = finetune_run("tiny_md@d1", "mini_polygons", 5, 0.05, 0, settings, paths, write=False)
    r2 = finetune_run(
        "tiny_md@d2", "mini_polygons", 5, 0.05, 0, settings, paths, entry=d2, write=False
    )
    again = finetune_run("tiny_md@d1", "mini_polygons", 5, 0.05, 0, settings, paths, write=False)
    assert (
        r1["test_acc"] == again["test_acc"] and r1["val_acc"] == again["val_acc"]
    )  # deterministic
    assert r1["test_acc"] != r2["test_acc"] or r1["val_acc"] != r2["val_acc"]
    # 5 shots x 8 classes, a quarter of each class held out (round(1.25) = 1 image per class)
    assert (r1["train_size"], r1["val_size"]) == (32, 8) and r1["val_acc"] is not None
    # the loaded entry was copied, not trained in place
    with torch.inference_mode():
        torch.testing.assert_close(d2.model.forward_features(x), f2)
    assert not list((tmp_path / "ft").rglob("result.json"))


def test_sweep_writes_rows_and_resumes(tmp_path: Path, zoo_dir: Path) -> None:
    cfg = _cfg(
        tmp_path,
        zoo_dir,
        "target=mini_polygons",
        "shots=5",
        "entry=[tiny_a,tiny_b]",
        "optim.lr=[0.1,0.01]",
        "seed=0",
        "finetune.min_steps=3",
    )
    summary = finetune_main(cfg)
    assert (summary.planned, summary.executed, summary.skipped) == (4, 4, 0)
    assert len(pd.read_parquet(tmp_path / "finetune_runs.parquet")) == 4  # collected at the end
    finetune_dir = tmp_path / "finetune"
    done = _results(finetune_dir)
    assert sorted(str(p.relative_to(finetune_dir)) for p in done) == [
        f"mini_polygons/shots=5/{e}/lr={lr}/seed=0/result.json"
        for e in ("tiny_a", "tiny_b")
        for lr in ("0.01", "0.1")
    ]
    runs, gt = collect(tmp_path)
    assert len(runs) == 4 and len(gt) == 2
    assert set(runs["shots"]) == {"5"} and (runs["steps"] == 3).all()
    expected = runs.groupby("entry")["test_acc"].max()  # one seed: best lr = best run
    assert gt.set_index("entry")["acc"].to_dict() == pytest.approx(expected.to_dict())

    again = finetune_main(cfg)
    assert (again.executed, again.skipped) == (0, 4)
    assert _results(finetune_dir) == done  # nothing rewritten

    # a lost result (with the temporary file of a write that never finished) is redone, alone
    lost = finetune_dir / "mini_polygons/shots=5/tiny_b/lr=0.1/seed=0/result.json"
    lost.unlink()
    (lost.parent / ".result.json.tmp-999-abcd1234").write_text('{"test_acc": 1')
    third = finetune_main(cfg)
    assert (third.executed, third.skipped) == (1, 3)
    assert [(r["entry"], r["lr"]) for r in third.results] == [("tiny_b", 0.1)]
    assert {p for p, t in _results(finetune_dir).items() if done.get(p) == t} == set(done) - {lost}


def test_sweep_with_wandb_logger_leaves_one_offline_run(
    tmp_path: Path, zoo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finetune.sweep import RunKey
    from finetune.wandb_log import run_name

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))  # the run must not go there
    cfg = _cfg(
        tmp_path, zoo_dir, "target=mini_polygons", "shots=5", "entry=tiny_a",
        "optim.lr=[0.1,0.01]", "seed=0", "finetune.min_steps=2", "logger=wandb",
    )  # fmt: skip
    assert finetune_main(cfg).executed == 2
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert [p.stat().st_size > 0 for p in runs[0].glob("*.wandb")] == [True]
    assert not (tmp_path / "elsewhere").exists()
    # a rerun with nothing left to run opens no (empty) wandb run
    assert finetune_main(cfg).executed == 0
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1
    one = RunKey("mini_polygons", 5, "tiny_a", 0.1, 0)
    two = RunKey("mini_digits", 5, "tiny_a", 0.1, 0)
    assert run_name([one]) == "finetune/mini_polygons-5"
    assert run_name([one, two]) == "finetune/sweep"


KILL_SCRIPT = """
import os, signal, sys
import torch
from pathlib import Path
from finetune.run import FinetunePaths, FinetuneSettings
from finetune.sweep import plan_runs, run_sweep

steps_per_run, out, zoo = int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
calls = 0
step = torch.optim.SGD.step

def step_then_die(self, *args, **kwargs):
    global calls
    calls += 1
    if calls == steps_per_run + steps_per_run // 2:  # half-way through the second run
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, *args, **kwargs)

torch.optim.SGD.step = step_then_die
settings = FinetuneSettings(epochs=0, min_steps=steps_per_run, batch_size=16, num_workers=0)
runs = plan_runs(["mini_polygons"], [5], ["tiny_a"], [0.1, 0.01, 0.001], [0])
run_sweep(runs, settings, FinetunePaths(zoo_dir=zoo, finetune_dir=out), echo=print)
"""


def test_killed_run_leaves_no_result_and_is_redone(tmp_path: Path, zoo_dir: Path) -> None:
    out = tmp_path / "finetune"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_SCRIPT), "8", str(out), str(zoo_dir)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "[1/3]" in proc.stdout and "[2/3]" not in proc.stdout
    cell = out / "mini_polygons/shots=5/tiny_a"
    assert [p.relative_to(cell).as_posix() for p in _results(out)] == ["lr=0.1/seed=0/result.json"]
    assert not (cell / "lr=0.01/seed=0/result.json").exists()

    cfg = _cfg(
        tmp_path,
        zoo_dir,
        "target=mini_polygons",
        "shots=5",
        "entry=tiny_a",
        "optim.lr=[0.1,0.01]",
        "seed=0",
        "finetune.min_steps=8",
    )
    summary = finetune_main(cfg)
    assert (summary.executed, summary.skipped) == (1, 1)
    assert summary.results[0]["lr"] == 0.01
    assert len(collect(tmp_path)[0]) == 2


def test_hydra_multirun_one_job_per_cell(tmp_path: Path, zoo_dir: Path) -> None:
    """``finetune.py -m`` with the local launcher: one job per (target, shots), results in place."""
    overrides = [
        "-m",
        f"paths.out_dir={tmp_path}",
        f"paths.zoo_dir={zoo_dir}",
        "target=mini_polygons",
        "shots=5,3",
        "entry=tiny_b",
        "optim.lr=0.1",
        "seed=0",
        "finetune.epochs=0",
        "finetune.min_steps=2",
        "launcher=local",
    ]
    proc = run_entry("finetune.py", overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = sorted(
        p.relative_to(tmp_path / "finetune").parts[:2] for p in _results(tmp_path / "finetune")
    )
    assert found == [("mini_polygons", "shots=3"), ("mini_polygons", "shots=5")]
    # the jobs do not collect; the launching process does, once, after the last job
    gt = pd.read_parquet(tmp_path / "finetune_gt.parquet")
    assert sorted(gt["shots"]) == ["3", "5"] and set(gt["entry"]) == {"tiny_b"}
    assert proc.stdout.count("collected 2 runs") + proc.stderr.count("collected 2 runs") == 1
    # one folder for the multirun (its start time and job tag), one sub-folder per job
    (sweep_dir,) = (tmp_path / "logs" / "finetune-multirun").iterdir()
    jobs = sorted(sweep_dir.glob("*/.hydra/overrides.yaml"))
    assert sorted(
        json.loads(p.read_text())["job_dir"] for p in _results(tmp_path / "finetune")
    ) == [str(j.parent.parent) for j in jobs]
    assert sorted(o for j in jobs for o in OmegaConf.load(j) if o.startswith("shots=")) == [
        "shots=3",
        "shots=5",
    ]


def test_results_of_a_retrained_expert_are_redone(tmp_path: Path, zoo_dir: Path) -> None:
    from core.io import config_hash
    from finetune.sweep import run_sweep
    from zoo.store import entry_fingerprint, load_card

    zoo = tmp_path / "zoo"
    shutil.copytree(zoo_dir, zoo)
    settings = FinetuneSettings(epochs=0, min_steps=2, batch_size=16, num_workers=0)
    paths = FinetunePaths(zoo_dir=zoo, finetune_dir=tmp_path / "ft")
    runs = plan_runs(["mini_polygons"], [5], ["tiny_a", "tiny_md@d2"], [0.05], [0])
    lines: list[str] = []
    first = run_sweep(runs, settings, paths, echo=lines.append)
    assert (first.executed, first.stale) == (2, 0)

    # the fingerprint: the expert's weights sha256 (from its card), plus @<domain> for a domain
    card_a, card_md = load_card("tiny_a", zoo), load_card("tiny_md", zoo)
    by_entry = {r["entry"]: r for r in first.results}
    assert by_entry["tiny_a"]["entry_weights"] == card_a["weights_sha256"]
    assert by_entry["tiny_md@d2"]["entry_weights"] == card_md["weights_sha256"] + "@d2"
    assert entry_fingerprint("tiny_md@d1", card_md) == card_md["weights_sha256"] + "@d1"
    with pytest.raises(ValueError, match="does not belong"):
        entry_fingerprint("tiny_md@d3", card_md)
    # ... and it is part of the hashed identity
    r = by_entry["tiny_a"]
    key = {k: r[k] for k in ("target", "shots", "entry", "entry_weights", "target_data", "seed")}
    assert r["config_hash"] == config_hash({**key, "lr": format_lr(r["lr"]), **r["recipe"]})

    # tiny_a retrained (new weights under the same id): its result is stale and redone, alone
    torch.manual_seed(7)
    save_expert(zoo, "tiny_a", create_model("resnet8", 8), _card("resnet8", "single", {"s": 8}), {})
    kept = _results(paths.finetune_dir)
    lines.clear()
    second = run_sweep(runs, settings, paths, echo=lines.append)
    assert (second.executed, second.skipped, second.stale) == (1, 1, 1)
    assert [res["entry"] for res in second.results] == ["tiny_a"]
    new_sha = load_card("tiny_a", zoo)["weights_sha256"]
    assert new_sha != card_a["weights_sha256"]
    assert second.results[0]["entry_weights"] == new_sha
    assert any(line.startswith("1 finished runs are stale") and "redone" in line for line in lines)
    md_path = runs[1].path(paths.finetune_dir)
    assert _results(paths.finetune_dir)[md_path] == kept[md_path]  # the other entry untouched

    # a result from before results recorded their weights counts as stale too
    path = runs[0].path(paths.finetune_dir)
    legacy = json.loads(path.read_text())
    del legacy["entry_weights"]
    path.write_text(json.dumps(legacy))
    third = run_sweep(runs, settings, paths, echo=lines.append)
    assert (third.executed, third.stale) == (1, 1)
    assert run_sweep(runs, settings, paths, echo=lines.append).executed == 0

"""Distributed zoo training: ranks stay in step between experts, the split evaluation equals the
whole one, the end-of-expert wait fails fast and clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import TensorDataset

from tests.factories import CONFIG_DIR, ENV, ROOT
from zoo.card import DomainData, evaluate_expert, load_domain_data
from zoo.models import create_model
from zoo.multidomain import MultiDomainClassifier
from zoo.store import CARD, load_source_profile, load_weights
from zoo.train import RankSync, combine_shards, shard_data, trainer_strategy

pytestmark = pytest.mark.usefixtures("one_thread")


def _domain(name: str, n: int, classes: int, seed: int) -> DomainData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 16, 16, generator=g)
    y = torch.arange(n) % classes
    xt = torch.randn(n // 2 + 1, 3, 16, 16, generator=g)
    yt = torch.arange(n // 2 + 1) % classes
    train = TensorDataset(x, y)
    return DomainData(
        name, train, train, TensorDataset(xt, yt), [f"c{i}" for i in range(classes)], y.numpy()
    )


@pytest.mark.parametrize("multi", [False, True])
@pytest.mark.parametrize("world", [2, 3])
def test_the_split_evaluation_equals_the_whole_one(multi: bool, world: int) -> None:
    # uneven shard sizes (13 and 7 items over 2 or 3 ranks), one dataset smaller than the world
    data = [_domain("a", 13, 3, 0), _domain("b", 7, 2, 1)]
    torch.manual_seed(0)
    if multi:
        model = MultiDomainClassifier(
            create_model("resnet8", 3, width=0.25), ["a", "b"], {"a": 3, "b": 2}, kind="multi_bn"
        )
    else:
        model = create_model("resnet8", 5, width=0.25)
    model.eval()
    whole = evaluate_expert(model, data, batch_size=4)
    parts = []
    for r in range(world):
        shards = shard_data(data, r, world)
        d, a, p = evaluate_expert(model, shards, batch_size=4)
        parts.append((d, a, p, {dd.name: len(dd.test) for dd in shards}))
    domains, accuracy, profile = combine_shards(parts)
    assert accuracy == pytest.approx(whole[1], abs=1e-12)
    assert [d["source_accuracy"] for d in domains] == pytest.approx(
        [d["source_accuracy"] for d in whole[0]], abs=1e-12
    )
    assert [{k: v for k, v in d.items() if k != "source_accuracy"} for d in domains] == [
        {k: v for k, v in d.items() if k != "source_accuracy"} for d in whole[0]
    ]
    assert profile.keys() == whole[2].keys()
    for name, (means, counts) in profile.items():
        np.testing.assert_array_equal(counts, whole[2][name][1])
        np.testing.assert_allclose(means, whole[2][name][0], rtol=1e-6, atol=1e-7)
    # every item in exactly one shard
    shards = [shard_data(data, r, world) for r in range(world)]
    assert sum(len(s[0].test) for s in shards) == len(data[0].test)
    assert sorted(i for s in shards for i in s[1].train_eval.indices) == list(range(7))


def test_trainer_strategy_sets_the_timeout_and_unused_parameters() -> None:
    s = trainer_strategy("ddp", multi=True, timeout_s=42)
    assert isinstance(s, DDPStrategy) and s._timeout == timedelta(seconds=42)
    assert s._ddp_kwargs.get("find_unused_parameters") is True and s._start_method == "popen"
    s = trainer_strategy("ddp_spawn", multi=False, timeout_s=7)
    assert s._timeout == timedelta(seconds=7) and s._start_method == "spawn"
    assert "find_unused_parameters" not in s._ddp_kwargs
    assert trainer_strategy("auto", multi=True, timeout_s=7) == "auto"
    with pytest.raises(ValueError, match="dist_timeout_s must be > 0"):
        trainer_strategy("ddp", multi=False, timeout_s=0)


# ------------------------------------------------------------------------- the wait, 2 processes


CASES = ("ok", "error", "absent")  # "absent" last: it leaves the group out of step


def _sync_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))

    class _Trainer:  # what RankSync.of reads
        world_size = 2

    sync = RankSync.of(_Trainer(), "mbn", timeout_s=2)
    results = {}
    for case in CASES:
        result: dict = {}
        t0 = time.perf_counter()
        try:
            model = torch.nn.BatchNorm1d(2)
            model.running_mean.fill_(float(rank))  # ranks differ after their last step
            sync.broadcast_weights(model)
            result["running_mean"] = model.running_mean.tolist()
            result["gathered"] = sync.gather({"rank": rank}, "gathering")
            if case == "error" and rank == 0:
                sync.share_outcome("OSError: [Errno 28] cannot write weights")
            elif case == "absent" and rank == 0:
                time.sleep(3)  # rank 0 stuck: never reports
            elif rank == 0:
                sync.share_outcome(None)
            else:
                result["outcome"] = sync.wait_outcome()
        except RuntimeError as e:
            result["error"] = str(e)
        result["seconds"] = time.perf_counter() - t0
        results[case] = result
    Path(out, f"{rank}.json").write_text(json.dumps(results))
    # leave without tearing the gloo group down: after the deliberate timeout its pairs are broken,
    # and gloo may abort the process in its destructor (what is tested is recorded above)
    os._exit(0)


def test_ranks_wait_for_rank_0_and_fail_fast_when_it_never_reports(tmp_path: Path) -> None:
    """Two gloo processes through :class:`RankSync`, as after an expert's training."""
    mp.spawn(_sync_worker, args=(29500 + os.getpid() % 20000, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    for case in CASES:
        # every rank evaluates rank 0's weights; everyone sees every rank's share
        assert r0[case]["running_mean"] == r1[case]["running_mean"] == [0.0, 0.0], case
        assert r0[case]["gathered"] == r1[case]["gathered"] == [{"rank": 0}, {"rank": 1}], case
    assert r1["ok"]["outcome"] is None and "error" not in r1["ok"]
    # rank 0's failure reaches rank 1 at once, not as a hang
    assert r1["error"]["outcome"] == "OSError: [Errno 28] cannot write weights"
    # rank 0 never reports: rank 1 fails after trainer.dist_timeout_s (2 s here), naming the expert
    # and the step it waited in
    err = r1["absent"]["error"]
    assert "rank 1 of 2: waiting for rank 0 to store the expert for expert 'mbn'" in err
    assert "trainer.dist_timeout_s = 2 s" in err
    assert 1.5 < r1["absent"]["seconds"] < 15  # far below the 30-minute default


# -------------------------------------------------------------- a real 2-process DDP run of a zoo

DRIVER = r"""
import os, time
import hydra
import core.config  # noqa: F401  (registers the schemas)
import zoo.train as zt

LOG = os.environ["ZB_DDP_LOG"]


def note(event):
    with open(LOG, "a") as f:
        f.write(f"{os.environ.get('LOCAL_RANK', '0')} {event} {time.time()}\n")


_train, _save = zt.train_expert, zt.save_expert


def train_expert(spec, *args, **kwargs):
    note(f"start {spec.id}")
    out = _train(spec, *args, **kwargs)
    note(f"end {spec.id}")
    return out


def save_expert(zoo_dir, expert_id, *args, **kwargs):
    time.sleep(2)  # a slow evaluation or store write on rank 0
    out = _save(zoo_dir, expert_id, *args, **kwargs)
    note(f"saved {expert_id}")
    return out


zt.train_expert, zt.save_expert = train_expert, save_expert


@hydra.main(version_base="1.3", config_path=os.environ["ZB_CONFIGS"], config_name="train_zoo")
def main(cfg):
    zt.train_zoo_main(cfg)


main()
"""

EXPERTS = (
    "zoo.experts=[{id:mbn,arch:resnet8,arch_kwargs:{width:0.25},type:multi_bn,"
    "datasets:[mini_shapes,mini_mnist]},{id:one,arch:resnet8,arch_kwargs:{width:0.25},"
    "datasets:[mini_shapes]}]"
)


@pytest.mark.slow
def test_ddp_zoo_training_keeps_the_ranks_in_step(tmp_path: Path) -> None:
    """Lightning's ``ddp`` on CPU (gloo, 2 processes it launches itself): rank 1 enters an expert
    only after rank 0 stored the previous one, both experts are stored, the cards hold the
    evaluation of the stored weights over all the data (split between the ranks)."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    log = tmp_path / "events.txt"
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(driver),
            f"paths.out_dir={out}",
            f"paths.data_dir={tmp_path / 'data'}",
            "logger=none",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.precision=32-true",
            "trainer.enable_progress_bar=false",
            # a hang fails in 2 min, not 30; long enough for rank 1 to start on a busy machine
            "trainer.dist_timeout_s=120",
            "train.epochs=1",
            "train.batch_size=4",
            "train.max_per_class=4",
            "train.per_domain=16",
            "train.num_workers=0",
            EXPERTS,
        ],  # fmt: skip
        cwd=tmp_path,
        env={**ENV, "ZB_DDP_LOG": str(log), "ZB_CONFIGS": str(CONFIG_DIR), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "trained  mbn" in proc.stdout and "trained  one" in proc.stdout
    events = {}
    for line in log.read_text().splitlines():
        rank, what, expert, t = line.split()
        events[(int(rank), what, expert)] = float(t)
    assert {(r, w, e) for r, w, e in events} == {
        (r, w, e) for r in (0, 1) for w in ("start", "end") for e in ("mbn", "one")
    } | {(0, "saved", "mbn"), (0, "saved", "one")}
    # in step: rank 1 leaves an expert only after rank 0 stored it
    for e in ("mbn", "one"):
        assert events[(1, "end", e)] >= events[(0, "saved", e)], e
    assert events[(1, "start", "one")] >= events[(0, "saved", "mbn")]

    zoo = out / "zoo"
    for expert, entries, steps in (
        ("mbn", ["mbn@mini_shapes", "mbn@mini_mnist"], 4),
        ("one", ["one"], None),
    ):
        card = json.loads((zoo / expert / CARD).read_text())
        assert card["entries"] == entries and card["device"].endswith("x2")
        assert not (zoo / expert / ".ckpt").exists()
        if steps:
            # 16 images per domain, batches of 4 per rank x 2 ranks, two domains
            assert card["global_steps"] == steps
    # the card's numbers are the stored weights' over the whole data (one process, no split)
    data = [
        load_domain_data(d, tmp_path / "data", augment=False, max_per_class=4, seed=0)
        for d in ("mini_shapes", "mini_mnist")
    ]
    for expert, dd in (("mbn", data), ("one", data[:1])):
        card = json.loads((zoo / expert / CARD).read_text())
        _, accuracy, profile = evaluate_expert(load_weights(expert, zoo), dd, batch_size=64)
        assert card["source_accuracy"] == pytest.approx(accuracy, abs=1e-12)
        for name, (means, counts) in profile.items():
            entry = f"{expert}@{name}" if expert == "mbn" else expert
            stored_means, stored_counts = load_source_profile(entry, zoo)
            np.testing.assert_array_equal(stored_counts, counts)
            np.testing.assert_allclose(stored_means, means, rtol=1e-5, atol=1e-6)

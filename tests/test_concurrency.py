"""Concurrent writers on one output folder, with real processes: two jobs training the same expert,
collects and manifest rebuilds that overlap with new results."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.factories import spawn_python

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def _finish(procs: list[subprocess.Popen], timeout: float = 120) -> list[str]:
    """Wait for every process; their stdout (each must have succeeded)."""
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, (out + err)[-3000:]
    return [out for out, _ in outs]


# ------------------------------------------------------------------------------ collect

# A slow scan (10^4 files over NFS) that lets another writer go first: after scanning, it waits
# until the other process has added its own item, then (at most 2 s) for the other's table.
SLOW = """
def slow(real, done, table):
    def wrapped(*args, **kwargs):
        found = real(*args, **kwargs)
        (done.parent / "scanned").touch()
        while not done.exists():
            time.sleep(0.01)
        t0 = time.monotonic()
        while not table.exists() and time.monotonic() - t0 < 2:
            time.sleep(0.01)
        return found
    return wrapped
"""

# A: adds its result, then collects with a slow scan. B: once A has scanned, adds its result and
# collects. Without a lock B writes {a, b}, then A overwrites the tables with its older scan {a}.
COLLECT = (
    """
import sys, time
from pathlib import Path
import finetune.collect as fc
from tests.factories import write_result as _write
from tests.test_collect import _result
out, role = Path(sys.argv[1]), sys.argv[2]
"""
    + SLOW
    + """
if role == "a":
    _write(out / "finetune", _result("t", 5, "e1", 0.1, 0, 70.0, 2.0))
    fc.scan_results = slow(fc.scan_results, out / "b_added", out / "finetune_cost.csv")
else:
    while not (out / "scanned").exists():
        time.sleep(0.01)
    _write(out / "finetune", _result("t", 5, "e2", 0.1, 0, 60.0, 3.0))
    (out / "b_added").touch()
fc.collect(out)
"""
)


def test_overlapping_collects_lose_no_result(tmp_path: Path) -> None:
    procs = [spawn_python(COLLECT, tmp_path, role) for role in ("a", "b")]
    _finish(procs)
    runs = pd.read_parquet(tmp_path / "finetune_runs.parquet")
    gt = pd.read_parquet(tmp_path / "finetune_gt.parquet")
    cost = pd.read_csv(tmp_path / "finetune_cost.csv")
    assert sorted(runs["entry"]) == ["e1", "e2"]
    assert gt.set_index("entry")["acc"].to_dict() == {"e1": 70.0, "e2": 60.0}
    # the three tables come from one scan
    assert cost[["n_runs", "n_entries", "seconds"]].values.tolist() == [[2, 2, 5.0]]


# ------------------------------------------------------------------------------ manifest

MANIFEST = (
    """
import sys, time
from pathlib import Path
import zoo.store as store
from tests.factories import save_tiny_expert
zoo, role = Path(sys.argv[1]), sys.argv[2]
"""
    + SLOW
    + """
if role == "a":
    save_tiny_expert(zoo, "tiny_a", seed=0)
    store.expert_ids = slow(store.expert_ids, zoo.parent / "b_added", zoo / "manifest.csv")
else:
    while not (zoo.parent / "scanned").exists():
        time.sleep(0.01)
    save_tiny_expert(zoo, "tiny_b", seed=1)
    (zoo.parent / "b_added").touch()
store.write_manifest(zoo)
"""
)


def test_overlapping_manifest_rebuilds_lose_no_expert(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    _finish([spawn_python(MANIFEST, zoo, role) for role in ("a", "b")])
    assert pd.read_csv(zoo / "manifest.csv")["entry_id"].tolist() == ["tiny_a", "tiny_b"]
    assert not list((zoo / ".locks").iterdir())  # every lock released


# ------------------------------------------------------------------------------ training

# Both processes start training together (a barrier of files), and count their optimizer steps.
TRAIN = """
import sys, time
from pathlib import Path
import torch
from tests.factories import compose
from tests.test_train import ZOO_OVERRIDES
from zoo.train import train_zoo_main

out, me = Path(sys.argv[1]), sys.argv[2]
steps = 0
_step = torch.optim.SGD.step
def step(self, *args, **kwargs):
    global steps
    steps += 1
    return _step(self, *args, **kwargs)
torch.optim.SGD.step = step
cfg = compose("train_zoo", [
    f"paths.out_dir={out}", *ZOO_OVERRIDES, "logger=csv",
    "zoo.experts=[{id:tiny,arch:resnet8,datasets:[mini_shapes]}]",
])
(out / f"ready-{me}").touch()
while len(list(out.glob("ready-*"))) < 2:
    time.sleep(0.005)
train_zoo_main(cfg)
print(f"STEPS {steps}")
"""


@pytest.mark.slow  # two train_zoo processes: ~15 s on 2 cores
def test_two_jobs_train_one_expert_once(tmp_path: Path) -> None:
    from core.io import read_json
    from zoo.store import CARD, PROFILE, _sha256, load_source_profile, load_weights

    outs = _finish([spawn_python(TRAIN, tmp_path, me) for me in ("1", "2")], timeout=300)
    text = "\n".join(outs)
    zoo = tmp_path / "zoo"
    card = read_json(zoo / "tiny" / CARD)
    # one trained it, the other waited for it and reused it
    assert text.count("trained  tiny") == 1, text
    assert text.count("skipped  tiny: trained meanwhile by another process") == 1, text
    assert text.count("later    tiny: being trained by pid ") == 1, text
    steps = [int(o.split("STEPS")[-1]) for o in outs]
    assert sorted(steps) == [0, card["global_steps"]] and card["global_steps"] > 0
    # one training log; weights, profile and card of that one run
    assert len(list((zoo / "tiny" / "logs").rglob("metrics.csv"))) == 1
    assert card["profile_sha256"] == _sha256(zoo / "tiny" / PROFILE)
    load_weights("tiny", zoo)  # checks the weights' sha256 against the card
    means, counts = load_source_profile("tiny", zoo)
    assert means.shape[0] == counts.shape[0] == card["domains"][0]["num_classes"]
    assert pd.read_csv(zoo / "manifest.csv")["entry_id"].tolist() == ["tiny"]
    assert not list((zoo / ".locks").iterdir())
    assert [p.name for p in zoo.iterdir() if p.name.startswith(".")] == [".locks"]


def test_a_waiting_train_expert_reuses_what_the_holder_stored(tmp_path: Path) -> None:
    """train_expert called directly: the second caller waits on the lock and trains nothing."""
    from tests.test_train import RECIPE, TRAINER, _domain, _spec
    from zoo.store import CARD, expert_lock
    from zoo.train import train_expert

    kw = {"trainer_cfg": TRAINER, "logger_cfg": {"type": "none"}}
    data = [_domain("toy", 32, 4, 0)]
    train_expert(_spec(), RECIPE, tmp_path, data=data, **kw)
    first = json.loads((tmp_path / "tiny" / CARD).read_text())
    # a holder of the lock (another process) that stores the same expert, then releases it
    holder = spawn_python(
        "import sys, time\nfrom core.locks import file_lock\n"
        "with file_lock(sys.argv[1]):\n    open(sys.argv[2], 'w').close()\n    time.sleep(1.0)\n",
        expert_lock(tmp_path, "tiny").path,
        tmp_path / "held",
    )
    while not (tmp_path / "held").exists():
        assert holder.poll() is None, holder.communicate()[1]
        time.sleep(0.01)
    t0 = time.monotonic()
    out = train_expert(_spec(), RECIPE, tmp_path, data=data, **kw)
    assert time.monotonic() - t0 >= 0.5  # it waited for the holder
    _finish([holder])
    assert out == tmp_path / "tiny"
    assert json.loads((tmp_path / "tiny" / CARD).read_text()) == first  # reused, not retrained

"""Faults: processes SIGKILLed at seeded points, then rerun; writes that fail.

Each kill test runs the real entry point in a subprocess under the kill harness of
``tests/factories.py`` and kills it at a point drawn from a seeded generator among its atomic writes
(complete or half written temporary file, rename not done) or its optimizer steps. After the kill, and again after a
rerun, it checks that no result is lost, none is duplicated, and no partial file is read as valid
(readers skip the ``.<name>.tmp-<pid>-<hex>`` temporaries a killed writer leaves).

Failed writes: a read-only output folder cannot be made with chmod when the tests run as root
(root ignores file permissions), so the failure is then injected where the kernel would report it,
in the rename (``os.replace`` raising ``PermissionError``); a real failure that root cannot bypass
(a folder in the way of the file) is tested too.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.io import atomic_write, atomic_write_json, atomic_write_text, is_temporary, read_json
from tests.factories import (
    compose,
    mtimes,
    run_entry,
    run_killable,
    save_tiny_expert,
    selection_overrides,
    temporaries,
    tiny_zoo,
    was_killed,
)

slow = pytest.mark.slow

# Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def _kill_point(seed: int, n_writes: int, n_steps: int = 0) -> str:
    """A reproducible kill point: the flavour and the index of the event, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    flavours = ["rename", "partial"] + (["step"] if n_steps else [])
    flavour = flavours[rng.integers(len(flavours))]
    high = n_steps if flavour == "step" else n_writes
    return f"{flavour}:{int(rng.integers(1, high + 1))}"


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    return tiny_zoo(tmp_path_factory.mktemp("zoo"))


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ atomic writes


ATOMIC_SNIPPET = """
import sys
from core.io import atomic_write_text
path = sys.argv[1]
atomic_write_text(path, "old")            # a complete earlier version
atomic_write_text(path, "new" * 100000)   # killed before or while this one is renamed
"""


@pytest.mark.parametrize("flavour", ["rename", "partial"])
def test_killed_atomic_write_keeps_the_old_file(tmp_path: Path, flavour: str) -> None:
    target = tmp_path / "out" / "table.csv"
    proc = run_killable(["-c", ATOMIC_SNIPPET, str(target)], kill=f"{flavour}:2", timeout=60)
    assert was_killed(proc), proc.stderr
    assert target.read_text() == "old"  # never half old, half new
    (tmp,) = temporaries(tmp_path)
    assert tmp.parent == target.parent and is_temporary(tmp)
    assert tmp.name.startswith(".table.csv.tmp-")
    size = tmp.stat().st_size
    assert size == (300000 if flavour == "rename" else 150000)
    # the next writer replaces the file; the dead process's temporary stays out of every reader's way
    atomic_write_text(target, "newer")
    assert target.read_text() == "newer"


# ------------------------------------------------------------------------------ selection


def _selection_state(out: Path) -> tuple[list[Path], list[Path]]:
    files = sorted(
        p
        for p in [*out.joinpath("cache").rglob("*.npz"), *out.joinpath("selection").rglob("*")]
        if p.is_file() and not is_temporary(p)
    )
    return files, temporaries(out)


def _all_scores(selection_dir: Path) -> pd.DataFrame:
    from analysis.tables import load_scores

    return load_scores(selection_dir).sort_values(["method", "entry"], ignore_index=True)


def _selection_writes() -> int:
    """Renames of one `evaluate_selection.py method=all` on the 2-entry zoo: the probe's cache,
    each entry's features and sketch caches, the reference-space profile of their one source
    dataset, then one table per method."""
    import selection

    return 1 + 2 * 2 + 1 + len(selection.available())


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=slow), pytest.param(2, marks=slow)])
def test_selection_run_killed_then_rerun(tmp_path: Path, zoo_dir: Path, seed: int) -> None:
    import selection
    from selection.evaluate import evaluate_selection_main

    n_methods = len(selection.available())
    out = tmp_path / "killed"
    overrides = selection_overrides(out, zoo_dir)
    kill = _kill_point(seed, _selection_writes())
    proc = run_killable(["evaluate_selection.py", *overrides], kill=kill)
    assert was_killed(proc), f"{kill}: {proc.stderr[-2000:]}"

    # exactly the writes before the kill are there, each complete; the killed one is a temporary
    at = int(kill.split(":")[1])
    files, temps = _selection_state(out)
    assert len(files) == at - 1, (kill, files)
    assert len(temps) == 1 and temps[0].name.startswith(".")
    for f in files:
        if f.suffix == ".npz":
            with np.load(f, allow_pickle=False) as z:
                assert "_meta" in z.files
        else:
            assert len(pd.read_parquet(f)) == 2
    before = mtimes(files)

    # rerun in this process: finishes the work, reuses what was complete, ignores the temporary
    tables = evaluate_selection_main(compose("evaluate_selection", overrides))
    assert len(tables) == n_methods
    assert all(sorted(t["entry"]) == ["tiny_a", "tiny_b"] for t in tables.values())
    files_after, _ = _selection_state(out)
    assert len(files_after) == _selection_writes()
    assert {f: t for f, t in mtimes(files_after).items() if f in before} == before  # not redone
    scores = _all_scores(out / "selection")
    assert len(scores) == 2 * n_methods and not scores.duplicated(["method", "entry"]).any()

    # what a run that was never killed gives: the same scores
    clean = tmp_path / "clean"
    evaluate_selection_main(compose("evaluate_selection", selection_overrides(clean, zoo_dir)))
    reference = _all_scores(clean / "selection")
    pd.testing.assert_series_equal(scores["score"], reference["score"])
    assert scores["entry"].tolist() == reference["entry"].tolist()


# ------------------------------------------------------------------------------ readers


def _result(target: str, shots: str, entry: str, lr: float, seed: int, acc: float) -> dict:
    from finetune.run import RESULT_FIELDS

    result = {k: None for k in RESULT_FIELDS}
    result.update(
        target=target, shots=shots, entry=entry, lr=lr, seed=seed, test_acc=acc, epochs=1,
        steps=5, train_size=40, seconds=1.0, device="cpu", precision="32-true",
        config_hash="abc", git_revision="unknown", finished_at="2024-01-01T00:00:00+00:00",
    )  # fmt: skip
    return result


def test_collect_and_analysis_skip_temporary_and_partial_files(tmp_path: Path, caplog) -> None:
    from analysis.tables import load_scores
    from finetune.collect import collect
    from finetune.run import load_result, result_path
    from selection.evaluate import SCORE_COLUMNS, score_table_path, write_score_table

    ft = tmp_path / "finetune"
    for lr, acc in ((0.1, 60.0), (0.01, 70.0)):
        atomic_write_json(result_path(ft, "t", 5, "e", lr, 0), _result("t", "5", "e", lr, 0, acc))
    # a killed atomic writer: a complete temporary next to a missing result
    dead = result_path(ft, "t", 5, "e", 0.001, 0)
    dead.parent.mkdir(parents=True)
    (dead.parent / ".result.json.tmp-99-abcd").write_text(
        json.dumps(_result("t", "5", "e", 0.001, 0, 99.0))
    )
    # a non-atomic writer killed half-way (what atomic writes prevent): a truncated result.json
    cut = result_path(ft, "t", 5, "e", 0.003, 0)
    cut.parent.mkdir(parents=True)
    text = json.dumps(_result("t", "5", "e", 0.003, 0, 99.0))
    cut.write_text(text[: len(text) // 2])

    runs, gt = collect(tmp_path)
    assert sorted(runs["lr"]) == [0.01, 0.1] and gt["acc"].tolist() == [70.0]
    assert "skipped result" in caplog.text and "result.json: malformed JSON" in caplog.text
    # the sweep redoes both: neither counts as a finished run
    assert load_result(dead, "t", 5, "e", 0.001, 0) is None
    assert load_result(cut, "t", 5, "e", 0.003, 0) is None

    sel = tmp_path / "selection"
    row = dict.fromkeys(SCORE_COLUMNS, 1.0) | {"entry": "e", "n": 10, "cap": None}
    path = score_table_path(sel, "t", 5, "lfc")
    write_score_table(path, [row])
    (path.parent / ".logme.parquet.tmp-7-beef").write_bytes(path.read_bytes()[:100])
    (path.parent / ".lfc.parquet.tmp-8-beef").write_bytes(path.read_bytes())
    scores = load_scores(sel)
    assert scores["method"].tolist() == ["lfc"] and len(scores) == 1


def test_partial_cache_and_store_files_are_never_read_as_valid(tmp_path: Path) -> None:
    from selection.extract import read_cache, write_cache
    from zoo.store import expert_ids, list_entries, load_entry

    path = tmp_path / "cache" / "features.npz"
    key = {"kind": "features", "entry": "e"}
    arrays = {"features": np.ones((4, 3)), "labels": np.arange(4)}
    write_cache(path, key, arrays, 1.5)
    whole = path.read_bytes()
    for cut in (len(whole) // 2, len(whole) - 7, 30):
        path.write_bytes(whole[:cut])
        assert read_cache(path, key, ("features", "labels")) is None
    path.write_bytes(whole)
    assert read_cache(path, key, ("features", "labels"))[1] == 1.5

    zoo = tmp_path / "zoo"
    save_tiny_expert(zoo, "whole", seed=0)
    # an expert whose store write was killed before its card: weights and profile, no card
    shutil.copytree(zoo / "whole", zoo / "halfway")
    (zoo / "halfway" / "card.json").unlink()
    # a killed copy's temporary folder and a temporary card
    shutil.copytree(zoo / "whole", zoo / ".whole.tmp-5-aa")
    (zoo / "whole" / ".card.json.tmp-3-bb").write_text("{")
    assert expert_ids(zoo) == ["whole"] and list_entries(zoo) == ["whole"]
    with pytest.raises(ValueError, match="unknown entry 'halfway'.*known: whole"):
        load_entry("halfway", zoo)


# ------------------------------------------------------------------------------ failed writes


def _read_only_is_enforced(folder: Path) -> bool:
    """False when chmod 0o555 does not stop writes here (root, or a file system ignoring modes)."""
    probe = folder / ".probe"
    try:
        probe.write_text("x")
    except PermissionError:
        return True
    probe.unlink()
    return False


@pytest.fixture
def read_only(tmp_path: Path, monkeypatch):
    """Make ``folder`` read-only: chmod 0o555, and where that does not stop writes (as root),
    ``os.replace`` into it fails with the PermissionError the kernel gives a normal user."""

    def make(folder: Path) -> str:
        folder.chmod(
            stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
        )
        if _read_only_is_enforced(folder):
            return "chmod"
        real = os.replace

        def replace(src, dst, *args, **kwargs):
            if Path(dst).parent == folder:
                raise PermissionError(errno.EACCES, "Permission denied", str(dst))
            return real(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)
        return "os.replace"

    made: list[Path] = []
    yield lambda folder: (made.append(folder), make(folder))[1]
    for folder in made:
        folder.chmod(0o755)


def test_write_into_a_read_only_folder_fails_clearly_and_keeps_the_old_file(
    tmp_path: Path, read_only
) -> None:
    from finetune.collect import collect
    from finetune.run import result_path
    from selection.evaluate import SCORE_COLUMNS, score_table_path, write_score_table

    # earlier results: one fine-tuning run, its collected tables, one score table
    ft = tmp_path / "finetune"
    atomic_write_json(result_path(ft, "t", 5, "e", 0.1, 0), _result("t", "5", "e", 0.1, 0, 60.0))
    collect(tmp_path)
    gt_before = (tmp_path / "finetune_gt.parquet").read_bytes()
    row = dict.fromkeys(SCORE_COLUMNS, 1.0) | {"entry": "e", "n": 10, "cap": None}
    table = write_score_table(score_table_path(tmp_path / "selection", "t", 5, "lfc"), [row])
    table_path = score_table_path(tmp_path / "selection", "t", 5, "lfc")
    table_before = table_path.read_bytes()

    # a second run's result lands in a new folder, then the output folders become read-only
    atomic_write_json(result_path(ft, "t", 5, "e", 0.01, 0), _result("t", "5", "e", 0.01, 0, 70.0))
    how = read_only(tmp_path)
    read_only(table_path.parent)
    with pytest.raises(
        PermissionError,
        match=r"cannot write .*finetune_runs\.parquet: permission denied.*read-only",
    ):
        collect(tmp_path)
    with pytest.raises(PermissionError, match=r"cannot write .*lfc\.parquet.*read-only"):
        write_score_table(table_path, [row | {"score": 2.0}])
    # earlier results intact, no temporary left behind
    assert (tmp_path / "finetune_gt.parquet").read_bytes() == gt_before
    assert table_path.read_bytes() == table_before
    assert len(table) == 1 and pd.read_parquet(table_path)["score"].tolist() == [1.0]
    assert temporaries(tmp_path) == [], how


def test_write_blocked_by_a_folder_or_a_full_disk_fails_clearly(tmp_path: Path) -> None:
    # root cannot write through a folder: a real failure of the rename, without any injection
    target = tmp_path / "report.md"
    target.mkdir()
    (target / "keep").write_text("kept")
    with pytest.raises(
        IsADirectoryError, match=r"cannot write .*report\.md: a folder of that name"
    ):
        atomic_write_text(target, "report")
    assert (target / "keep").read_text() == "kept" and temporaries(tmp_path) == []

    # a writer that fails half-way (a full disk): the old file stays, the error names the file
    old = atomic_write_text(tmp_path / "metrics.csv", "a,b\n1,2\n")

    def fill_disk(tmp: Path) -> None:
        tmp.write_text("a,b\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(
        OSError, match=r"cannot write .*metrics\.csv: no space left on device \(\d+ bytes"
    ):
        atomic_write(old, fill_disk)
    assert old.read_text() == "a,b\n1,2\n" and temporaries(tmp_path) == []
    assert read_json(atomic_write_json(tmp_path / "x.json", {"a": 1})) == {"a": 1}


# the writers' own messages on a full 64 KiB tmpfs (torch 2.14, safetensors 0.8): torch's zip
# writer checks the file position after writing and names neither the file nor the cause
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"
SAFETENSORS_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"


def _full_disk_message(path: Path) -> str:
    return rf"\[Errno 28\] cannot write {path}: no space left on device \(\d+ bytes \(.* MiB\) free in "


def test_a_full_disk_while_writing_a_checkpoint_names_the_file(tmp_path: Path, monkeypatch) -> None:
    from zoo.train import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    ckpt = tmp_path / ".ckpt" / "last.ckpt"
    io.save_checkpoint({"global_step": 3, "w": torch.ones(4)}, ckpt)
    before = ckpt.read_bytes()
    real_save = torch.save

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # the bytes that fitted stay in the temporary file
        raise RuntimeError(TORCH_FULL)

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    with pytest.raises(OSError, match=_full_disk_message(ckpt)) as info:
        io.save_checkpoint({"global_step": 6, "w": torch.zeros(4)}, ckpt)
    assert info.value.errno == errno.ENOSPC and TORCH_FULL in str(info.value)
    assert ckpt.read_bytes() == before and temporaries(tmp_path) == []
    # an unrelated error of the writer passes unchanged
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="^boom$"):
        io.save_checkpoint({"global_step": 6}, ckpt)
    assert ckpt.read_bytes() == before and temporaries(tmp_path) == []


@pytest.mark.parametrize("writer", ["weights", "profile"])
def test_a_full_disk_while_storing_an_expert_keeps_the_old_one(
    tmp_path: Path, monkeypatch, writer: str
) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    from zoo.store import CARD, PROFILE, WEIGHTS, load_entry

    zoo = tmp_path / "zoo"
    save_tiny_expert(zoo, "tiny_a", seed=0)
    before = {n: (zoo / "tiny_a" / n).read_bytes() for n in (CARD, WEIGHTS, PROFILE)}
    if writer == "weights":
        real = safetensors.torch.save_file

        def full(tensors, filename, *args, **kwargs):
            real(tensors, filename, *args, **kwargs)
            raise SafetensorError(SAFETENSORS_FULL)

        monkeypatch.setattr(safetensors.torch, "save_file", full)
        name = WEIGHTS
    else:

        def full(file, **arrays):
            file.write(b"PK partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(np, "savez", full)
        name = PROFILE
    with pytest.raises(OSError, match=_full_disk_message(Path(".*") / name)) as info:
        save_tiny_expert(zoo, "tiny_a", seed=1)
    assert info.value.errno == errno.ENOSPC
    # the old expert whole, no staging folder or temporary left
    assert {n: (zoo / "tiny_a" / n).read_bytes() for n in before} == before
    # the expert's folder, and the lock folder (empty once the save ends)
    assert sorted(p.name for p in zoo.iterdir()) == [".locks", "tiny_a"]
    assert temporaries(zoo) == [] and not list((zoo / ".locks").iterdir())
    assert load_entry("tiny_a", zoo).card["weights_sha256"]


# ------------------------------------------------------------------------------ fine-tuning


FT_RUNS = 4  # 2 lrs x 2 seeds
FT_STEPS = 5  # finetune.min_steps


def _finetune_overrides(out: Path, zoo_dir: Path) -> list[str]:
    return [
        f"paths.out_dir={out}",
        f"paths.zoo_dir={zoo_dir}",
        "target=mini_polygons",
        "shots=5",
        "entry=tiny_a",
        "sweep.lrs=[0.1,0.01]",
        "sweep.seeds=[0,1]",
        "finetune.epochs=1",
        "finetune.min_steps=5",
        "finetune.batch_size=16",
        "trainer.accelerator=cpu",
        "logger=none",
    ]


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=slow), pytest.param(2, marks=slow)])
def test_finetune_sweep_killed_then_rerun(tmp_path: Path, zoo_dir: Path, seed: int) -> None:
    from finetune.collect import collect
    from finetune.sweep import finetune_main

    overrides = _finetune_overrides(tmp_path, zoo_dir)
    # renames: one result.json per run, then collect's three tables
    kill = _kill_point(seed, FT_RUNS + 3, FT_RUNS * FT_STEPS)
    proc = run_killable(["finetune.py", *overrides], kill=kill)
    assert was_killed(proc), f"{kill}: {proc.stderr[-2000:]}"
    done = sorted((tmp_path / "finetune").rglob("result.json"))
    for path in done:  # every result that exists is complete
        assert read_json(path)["test_acc"] >= 0
    flavour, at = kill.split(":")
    expected_done = min(int(at) - 1, FT_RUNS) if flavour != "step" else (int(at) - 1) // FT_STEPS
    assert len(done) == expected_done, (kill, done)
    before = mtimes(done)

    summary = finetune_main(compose("finetune", overrides))
    assert (summary.skipped, summary.executed) == (expected_done, FT_RUNS - expected_done)
    after = sorted((tmp_path / "finetune").rglob("result.json"))
    assert len(after) == FT_RUNS
    assert {p: t for p, t in mtimes(after).items() if p in before} == before
    runs, gt = collect(tmp_path)
    assert len(runs) == FT_RUNS and not runs.duplicated(["lr", "seed"]).any()
    assert len(gt) == 1 and gt["n_runs"].tolist() == [FT_RUNS]


@slow  # a Hydra multirun in a subprocess (~45 s on 2 cores); test_gt_integrity covers the callback
def test_a_failed_job_of_a_multirun_leaves_no_stale_tables(tmp_path: Path, zoo_dir: Path) -> None:
    """One job of ``finetune.py -m`` fails: Hydra then skips on_multirun_end, yet the other job's
    results are collected (each job collects when it ends) and the analysis sees no stale table."""
    from analysis.tables import stale_table_notes

    overrides = [o for o in _finetune_overrides(tmp_path, zoo_dir) if not o.startswith("entry=")]
    # two jobs: tiny_a runs its 4 runs, then the unknown entry's job raises
    proc = run_entry("finetune.py", ["-m", *overrides, "entry=tiny_a,no_such_entry"], timeout=300)
    assert proc.returncode != 0 and "no_such_entry" in proc.stderr, proc.stderr[-2000:]
    runs = pd.read_parquet(tmp_path / "finetune_runs.parquet")
    assert len(runs) == FT_RUNS and set(runs["entry"]) == {"tiny_a"}
    assert stale_table_notes(tmp_path, tmp_path / "finetune") == []


# ------------------------------------------------------------------------------ zoo training


EPOCHS = 3


def _train_overrides(out: Path) -> list[str]:
    return [
        "dataset=mini_polygons",
        "arch=resnet8",
        "arch.width=0.25",
        f"train.epochs={EPOCHS}",
        "train.batch_size=32",
        "train.max_per_class=12",
        "train.num_workers=0",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
        "trainer.enable_progress_bar=false",
        f"paths.out_dir={out}",
        "logger=none",
    ]


@slow
@pytest.mark.parametrize(
    ("phase", "seed"), [("training", 1), ("training", 2), ("store", 0), ("store", 3)]
)
def test_zoo_training_killed_after_a_checkpoint_resumes(
    tmp_path: Path, phase: str, seed: int
) -> None:
    from zoo.store import CARD, load_entry
    from zoo.train import CKPT_DIR, CKPT_NAME

    expert = tmp_path / "zoo" / "resnet8_mini_polygons"
    ckpt = expert / CKPT_DIR / CKPT_NAME
    # renames: the checkpoints of epochs 1..3, then the store (weights, profile, card, manifest);
    # the kill comes after the first checkpoint exists: while training (at the checkpoint of
    # epoch 2 or 3) or while the finished expert is being stored
    rng = np.random.default_rng([seed, phase == "store"])
    at = int(
        rng.integers(2, EPOCHS + 1) if phase == "training" else rng.integers(EPOCHS + 1, EPOCHS + 4)
    )
    flavour = ("rename", "partial")[int(rng.integers(2))]
    proc = run_killable(["train_zoo.py", *_train_overrides(tmp_path)], kill=f"{flavour}:{at}")
    assert was_killed(proc), proc.stderr[-2000:]
    assert not (expert / CARD).exists()  # no card: the store holds no (partial) expert
    epochs_done = min(at - 1, EPOCHS)  # checkpoints renamed before the kill
    steps_done = torch.load(ckpt, map_location="cpu", weights_only=True)["global_step"]

    rerun = run_killable(["train_zoo.py", *_train_overrides(tmp_path)], count_steps=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming resnet8_mini_polygons from {ckpt}" in rerun.stdout + rerun.stderr
    card = read_json(expert / CARD)
    steps_per_epoch = card["global_steps"] // EPOCHS
    assert (
        card["global_steps"] == EPOCHS * steps_per_epoch
        and steps_done == epochs_done * steps_per_epoch
    )
    # the rerun trained only what the checkpoint lacked
    ran = int(rerun.stdout.split("ZB_STEPS")[-1].split()[0])
    assert ran == card["global_steps"] - steps_done
    assert not (expert / CKPT_DIR).exists()
    entry = load_entry("resnet8_mini_polygons", tmp_path / "zoo")
    assert entry.card["domains"][0]["num_classes"] == 8 and card["source_accuracy"]
    assert pd.read_csv(tmp_path / "zoo" / "manifest.csv")["entry_id"].tolist() == [
        "resnet8_mini_polygons"
    ]
    assert not [p for p in (tmp_path / "zoo").iterdir() if is_temporary(p)]


def test_a_refused_checkpoint_keeps_the_progress_it_holds(tmp_path: Path) -> None:
    from tests.test_train import RECIPE, TRAINER, _domain, _Interrupt, _spec
    from zoo.train import CKPT_DIR, CKPT_NAME, train_expert

    kw = {
        "trainer_cfg": TRAINER,
        "logger_cfg": {"type": "none"},
        "data": [_domain("toy", 32, 4, 0)],
    }
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_expert(_spec(), RECIPE, tmp_path, callbacks=[_Interrupt(6)], **kw)
    ckpt = tmp_path / "tiny" / CKPT_DIR / CKPT_NAME
    assert torch.load(ckpt, weights_only=True)["global_step"] == 6
    # a rerun with another learning rate is refused (right); the checkpoint must survive it
    with pytest.raises(ValueError, match="written by another config"):
        train_expert(_spec(), {**RECIPE, "lr": 0.2}, tmp_path, **kw)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 6

"""Data identity in every key, per-job provenance, and the final training loss of a run.

- A split's fingerprint changes when its data does (an image deleted from an image folder, a mini
  generator's size or stream changed) and not when an identical copy is read from elsewhere.
- A fine-tuning result, an extraction and a score table made from data A are not reused once the
  data is edited; they are reused while it is unchanged.
- Two ``finetune.py`` jobs keep two folders, each with its composed config, and each result points
  at its own job's folder; a card built inside a Hydra job records that job's folder.
- ``train_loss`` equals the mean cross-entropy of the last 10% of the steps of a hand-run loop.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf, open_dict
from PIL import Image

import selection.extract as ex
from core.config import FinetuneSettings, SelectionConfig
from finetune.run import (
    FinetunePaths,
    finetune_run,
    initial_model,
    train_loss_window,
)
from finetune.sweep import plan_runs, run_sweep
from selection.evaluate import (
    _complete_table,
    resolve_methods,
    table_key,
    write_score_table,
)
from selection.extract import Extractor, ExtractSettings
from tests.factories import ROOT, compose, run_entry
from zoo import data as zdata
from zoo.data import clear_fingerprint_cache, load_split, split_fingerprint
from zoo.data import mini as zmini
from zoo.data.fingerprint import _mini_fingerprint
from zoo.models import MINI_MEAN, MINI_STD, create_model
from zoo.samplers import shot_indices
from zoo.store import load_entry, save_expert

pytestmark = pytest.mark.usefixtures("one_thread")

TARGET = "flood_depth"  # a paper image-folder dataset with 2 classes


def _write_images(data_dir: Path, n: tuple[int, int] = (8, 6)) -> list[Path]:
    """``<data_dir>/flood_depth/images/{depth,no_depth}/<i>.png``: small images of two colours."""
    files = []
    for cls, count, colour in (("depth", n[0], (200, 30, 60)), ("no_depth", n[1], (20, 160, 90))):
        for i in range(count):
            path = data_dir / TARGET / "images" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            shade = tuple(min(255, c + 7 * i) for c in colour)
            Image.new("RGB", (20 + i, 16), shade).save(path)
            files.append(path)
    return files


@pytest.fixture
def fresh():
    """Every fingerprint and file list is computed again (data edited within one process)."""
    clear_fingerprint_cache()
    yield
    clear_fingerprint_cache()


def _card(num_classes: int) -> dict:
    return {
        "arch": "resnet8",
        "arch_kwargs": {},
        "type": "single",
        "sources": ["s"],
        "domains": [
            {
                "name": "s",
                "num_classes": num_classes,
                "classes": [str(i) for i in range(num_classes)],
                "datasets": ["s"],
            }
        ],
        "input_size": 32,
        "mean": list(MINI_MEAN),
        "std": list(MINI_STD),
    }


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    save_expert(path, "tiny", create_model("resnet8", 4), _card(4), {})
    return path


# --------------------------------------------------------------------------------------------------
# the fingerprint


def test_fingerprint_follows_the_files_not_their_location(tmp_path, fresh) -> None:
    files = _write_images(tmp_path / "a")
    first = {s: split_fingerprint(TARGET, s, tmp_path / "a") for s in ("train", "test")}
    assert first["train"] != first["test"] and all(len(f) == 16 for f in first.values())
    assert split_fingerprint(TARGET, "train", tmp_path / "a") == first["train"]  # cached
    # an identical copy elsewhere is the same data
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert split_fingerprint(TARGET, "train", tmp_path / "b") == first["train"]
    # one image deleted: the class's split changes, and so do both fingerprints
    files[3].unlink()
    clear_fingerprint_cache()
    second = {s: split_fingerprint(TARGET, s, tmp_path / "a") for s in ("train", "test")}
    assert second["train"] != first["train"]
    # one image rewritten with other content (another size on disk), same file names
    clear_fingerprint_cache()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "b" / TARGET / "images/depth/0.png")
    assert split_fingerprint(TARGET, "train", tmp_path / "b") != first["train"]
    with pytest.raises(ValueError, match="unknown split"):
        split_fingerprint(TARGET, "val", tmp_path / "a")
    with pytest.raises(zdata.DatasetNotFoundError):
        split_fingerprint(TARGET, "train", tmp_path / "nowhere")


def test_fingerprint_of_a_generated_domain_follows_its_generator(monkeypatch, fresh) -> None:
    name = "mini_polygons"
    # the hash of what the generator returns (labels, pixels), computed independently
    base = split_fingerprint(name, "test")
    domain = zmini.generate(name)
    assert len(np.unique(domain.y_test)) == len(domain.classes)
    monkeypatch.setattr(zmini, "_SIZES", {**zmini._SIZES, name: (100, 39)})
    zmini.generate.cache_clear()
    _mini_fingerprint.cache_clear()
    resized = split_fingerprint(name, "test")
    assert len(zmini.generate(name).y_test) == 8 * 39 and resized != base
    monkeypatch.undo()
    real_rng = zmini._rng
    monkeypatch.setattr(zmini, "_rng", lambda n, seed: real_rng(n, seed + 1))  # another stream
    zmini.generate.cache_clear()
    _mini_fingerprint.cache_clear()
    reseeded = split_fingerprint(name, "test")
    assert reseeded not in (base, resized)
    monkeypatch.undo()
    zmini.generate.cache_clear()
    _mini_fingerprint.cache_clear()
    assert split_fingerprint(name, "test") == base  # deterministic


# --------------------------------------------------------------------------------------------------
# the three artefacts


def test_finetune_results_of_edited_data_are_redone(tmp_path, zoo_dir, fresh) -> None:
    files = _write_images(tmp_path / "data")
    settings = FinetuneSettings(epochs=0, min_steps=2, batch_size=8, num_workers=0)
    paths = FinetunePaths(zoo_dir=zoo_dir, finetune_dir=tmp_path / "ft", data_dir=tmp_path / "data")
    runs = plan_runs([TARGET], [3], ["tiny"], [0.05], [0, 1])
    lines: list[str] = []
    first = run_sweep(runs, settings, paths, echo=lines.append)
    assert (first.executed, first.stale) == (2, 0)
    data_a = first.results[0]["target_data"]
    assert data_a == zdata.dataset_fingerprint(TARGET, tmp_path / "data")
    # unchanged data: reused
    again = run_sweep(runs, settings, paths, echo=lines.append)
    assert (again.executed, again.skipped) == (0, 2)
    # one image deleted: both results are stale and redone, on the new data
    files[-1].unlink()
    clear_fingerprint_cache()
    lines.clear()
    third = run_sweep(runs, settings, paths, echo=lines.append)
    assert (third.executed, third.skipped, third.stale) == (2, 0, 2)
    assert (
        {r["target_data"] for r in third.results}
        == {zdata.dataset_fingerprint(TARGET, tmp_path / "data")}
        != {data_a}
    )
    assert any("other data of their target" in line and "redone" in line for line in lines)
    stored = json.loads(runs[0].path(paths.finetune_dir).read_text())
    assert stored["target_data"] == third.results[0]["target_data"]  # rewritten in place


def test_extraction_of_edited_data_is_recomputed(tmp_path, zoo_dir, monkeypatch, fresh) -> None:
    files = _write_images(tmp_path / "data")
    entry = load_entry("tiny", zoo_dir)
    monkeypatch.setattr(ex, "_load_entry", lambda e, z: entry)
    settings = ExtractSettings(
        zoo_dir=zoo_dir,
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        selection=SelectionConfig(per_class=4, batch_size=8),
        accelerator="cpu",
    )
    first = Extractor(settings).extract("tiny", TARGET, 3, seed=0)
    assert not first.cached["features"]
    again = Extractor(settings).extract("tiny", TARGET, 3, seed=0)
    assert again.cached["features"]
    np.testing.assert_array_equal(again.features, first.features)
    # the deleted image shifts the positions of its class's other images: re-extracted
    files[0].unlink()
    clear_fingerprint_cache()
    third = Extractor(settings).extract("tiny", TARGET, 3, seed=0)
    assert not third.cached["features"]
    full = load_split(TARGET, "train", tmp_path / "data")
    assert len(full) == 11 and np.array_equal(third.labels, full.labels[third.indices])


def test_score_table_of_edited_data_is_recomputed(tmp_path, zoo_dir, fresh) -> None:
    files = _write_images(tmp_path / "data")
    settings = ExtractSettings(zoo_dir=zoo_dir, data_dir=tmp_path / "data", cache_dir=tmp_path)
    run = resolve_methods("lfc")[0]

    def key() -> str:
        return table_key(run, settings, TARGET, "3", [0], {"tiny": "card"}, sample_cap=None)

    key_a = key()
    path = tmp_path / "lfc.parquet"
    row = dict(entry="tiny", seed=0, score=0.5, seconds=1.0, extract_seconds=0.5)
    row.update(score_seconds=0.5, n=6, cap=None, remedy="", reference=False, key=key_a)
    write_score_table(path, [{**row, "job_dir": None}])
    assert _complete_table(path, key(), ["tiny"], [0]) is not None  # unchanged: reused
    files[5].unlink()
    clear_fingerprint_cache()
    assert key() != key_a
    assert _complete_table(path, key(), ["tiny"], [0]) is None  # edited: recomputed


# --------------------------------------------------------------------------------------------------
# provenance


def _finetune_job(tmp_path: Path, zoo_dir: Path, seed: int, *, subprocess: bool) -> None:
    """One ``finetune.py`` job (a run of the Hydra app, in this process or in a new one)."""
    overrides = [
        f"paths.out_dir={tmp_path}",
        f"paths.zoo_dir={zoo_dir}",
        "target=mini_polygons",
        "shots=3",
        "entry=tiny",
        "optim.lr=0.1",
        f"seed={seed}",
        "finetune.epochs=0",
        "finetune.min_steps=2",
    ]
    if subprocess:
        proc = run_entry("finetune.py", overrides, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    from finetune.sweep import finetune_main

    app = hydra.main(version_base="1.3", config_path=str(ROOT / "configs"), config_name="finetune")(
        finetune_main
    )
    argv = sys.argv
    # the job's name, which the script's file name gives it when started from the command line
    sys.argv = ["finetune.py", *overrides, "hydra.job.name=finetune"]
    try:
        app()
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()


@pytest.mark.parametrize(
    "subprocess", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["app", "script"]
)
def test_two_jobs_keep_their_own_folders_and_results_point_at_them(
    tmp_path, zoo_dir, subprocess
) -> None:
    folders = []
    for seed in (0, 1):
        _finetune_job(tmp_path, zoo_dir, seed, subprocess=subprocess)
        result = json.loads(
            (
                tmp_path / f"finetune/mini_polygons/shots=3/tiny/lr=0.1/seed={seed}/result.json"
            ).read_text()
        )
        folder = Path(result["job_dir"])
        assert folder.parent == tmp_path / "logs" / "finetune"
        config = OmegaConf.load(folder / ".hydra" / "config.yaml")
        assert config.seed == seed  # the folder holds this job's own composed config
        assert (folder / "finetune.log").is_file()
        folders.append(folder)
    assert folders[0] != folders[1]
    assert sorted((tmp_path / "logs" / "finetune").iterdir()) == sorted(folders)


def test_a_card_built_in_a_hydra_job_records_its_folder(tmp_path) -> None:
    from hydra.core.hydra_config import HydraConfig

    from core.provenance import job_dir
    from zoo.card import build_card
    from zoo.spec import ExpertSpec

    spec = ExpertSpec(id="x", arch="resnet8", datasets=["mini_shapes"])
    card = build_card(spec, domains=[], source_accuracy={}, config_hash="h")
    assert card["job_dir"] is None and job_dir() is None  # outside a Hydra job
    cfg = compose("train_zoo", [f"paths.out_dir={tmp_path}"], hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "job")
    HydraConfig.instance().set_config(cfg)
    try:
        card = build_card(spec, domains=[], source_accuracy={}, config_hash="h")
    finally:
        HydraConfig.instance().cfg = None
    assert card["job_dir"] == str(tmp_path / "job")


# --------------------------------------------------------------------------------------------------
# the final training loss


def test_train_loss_is_the_mean_of_the_last_tenth_of_the_steps(tmp_path, zoo_dir) -> None:
    assert [train_loss_window(n) for n in (1, 9, 10, 11, 25)] == [1, 1, 1, 2, 3]
    settings = FinetuneSettings(
        epochs=0,
        min_steps=23,
        batch_size=8,
        num_workers=0,
        augment=False,
        val_fraction=None,
        precision="32",  # the reference below runs in fp32; auto is bf16 on an AVX512-BF16 CPU
    )
    paths = FinetunePaths(zoo_dir=zoo_dir, finetune_dir=tmp_path / "ft")
    target, shots, lr, seed = "mini_polygons", 5, 0.05, 3
    result = finetune_run("tiny", target, shots, lr, seed, settings, paths, write=False)
    assert result["steps"] == 23

    # the same run by hand: 23 steps of SGD on shuffled batches of 8, every loss recorded
    entry = load_entry("tiny", zoo_dir)
    full = load_split(target, "train")
    train = full.subset(shot_indices(full.labels, shots, seed))
    model = initial_model(entry, len(full.classes), seed)
    torch.manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        train,
        batch_size=8,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    opt = torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=settings.momentum,
        nesterov=settings.nesterov,
        weight_decay=settings.weight_decay,
    )
    sched = torch.optim.lr_scheduler.MultiStepLR(
        opt, sorted({max(1, round(m * 23)) for m in settings.milestones}), settings.gamma
    )
    losses: list[float] = []
    model.train()
    while len(losses) < 23:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if len(losses) == 23:
                break
    tail = losses[-math.ceil(0.1 * 23) :]  # the last 3 steps
    assert len(tail) == 3
    assert result["train_loss"] == pytest.approx(float(np.mean(tail)), rel=1e-4)
    assert result["train_loss"] != pytest.approx(losses[-1], rel=1e-3)  # not just the last step

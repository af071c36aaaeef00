"""The paper benchmark's chain run end to end on CPU, on fake image folders laid out as the paper's
datasets (``zoo/data/paper_specs.py``), through the real entry points in subprocesses:

    train_zoo.py -> finetune.py -m -> evaluate_selection.py -m method=all -> analyze.py

``benchmark=paper`` with its own recipes and only size overrides (epochs, steps, batch sizes,
images per class). The zoo is three experts of the paper's zoo: ResNet-101 on ImageNet (the
baseline and Domain Similarity's reference extractor), DenseNet-169 on NWPU-RESISC45, and a
Multi-BN ResNet-101 over RESISC45 and ImageNet; one target (European Flood depth), one cell
(5 shots, one learning rate, one seed).

Data (224x224 images written under ``tmp_path``, ``ZOOBENCH_DATA`` pointing there):

- ``resisc45``: ``images/<class>/*.jpg``, all 45 classes, 3 images each (stratified 80/20 split:
  2 train, 1 test per class) but the first 3 classes, 7 each (6 train: Domain Similarity reads only
  the source classes with at least ``min_count`` = 5 profile images);
- ``flood_depth``: ``images/{depth,no_depth}/*.png``, 8 images each (6 train, 2 test);
- ``imagenet``: what torchvision's ``ImageNet`` reads, ``meta.bin`` and ``train/<wnid>/``,
  ``val/<wnid>/`` (6 train and 1 val image per class). Its 1000 classes would take thousands of ResNet-101 forward passes per
  evaluation (an hour on two cores), so the subprocesses run with a ``sitecustomize`` that sets the
  ImageNet spec's class count to the fake folder's 4; every other line of the path is the real one.

About 8 minutes on two cores (train 280 s, fine-tune 75 s, score 120 s, analyse 20 s).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import selection
from tests.factories import ROOT, run_entry

IMAGENET_CLASSES = 4
TARGET = "flood_depth"
SHOTS = 5
EXPERTS = (
    "{id:resnet101_imagenet,arch:resnet101,datasets:[imagenet]}",
    "{id:densenet169_resisc45,arch:densenet169,datasets:[resisc45]}",
    "{id:multi_bn_resnet101,arch:resnet101,type:multi_bn,datasets:[resisc45,imagenet]}",
)
ENTRIES = (
    "resnet101_imagenet",
    "densenet169_resisc45",
    "multi_bn_resnet101@resisc45",
    "multi_bn_resnet101@imagenet",
)

# The class count of the fake ImageNet, set before any entry point reads the dataset table.
SITECUSTOMIZE = f"""
from zoo.data.paper_specs import PAPER_SPECS

object.__setattr__(PAPER_SPECS["imagenet"], "num_classes", {IMAGENET_CLASSES})
"""


def _image(rng: np.random.Generator, label: int, n_classes: int) -> np.ndarray:
    """A 224x224 RGB image whose mean colour encodes the class, plus noise."""
    hue = np.array([label / n_classes, 1 - label / n_classes, 0.5])
    img = 255 * (0.6 * hue + 0.4 * rng.random((224, 224, 3)))
    return img.astype(np.uint8)


def _write(path: Path, pixels: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def write_fake_paper_data(data_dir: Path, seed: int = 0) -> None:
    """resisc45, flood_depth and imagenet under ``data_dir`` in the layouts the loaders read."""
    import torch

    rng = np.random.default_rng(seed)
    resisc = [f"class_{i:02d}" for i in range(45)]
    for label, name in enumerate(resisc):
        for k in range(7 if label < 3 else 3):
            _write(
                data_dir / "resisc45" / "images" / name / f"{name}_{k:03d}.jpg",
                _image(rng, label, len(resisc)),
            )
    for label, name in enumerate(("depth", "no_depth")):
        for k in range(8):
            _write(data_dir / TARGET / "images" / name / f"{k:04d}.png", _image(rng, label, 2))
    root = data_dir / "imagenet"
    wnids = [f"n{i:08d}" for i in range(IMAGENET_CLASSES)]
    for label, wnid in enumerate(wnids):
        for split, n in (("train", 6), ("val", 1)):
            for k in range(n):
                pixels = _image(rng, label, IMAGENET_CLASSES)
                _write(root / split / wnid / f"{wnid}_{k}.JPEG", pixels)
    # torchvision.datasets.ImageNet's parsed devkit: ({wnid: class names}, wnid of each val image)
    wnid_to_classes = {w: (f"thing {i}",) for i, w in enumerate(wnids)}
    torch.save((wnid_to_classes, sorted(wnids)), root / "meta.bin")


@pytest.mark.slow
def test_paper_chain_runs_end_to_end_on_fake_paper_data(tmp_path: Path) -> None:
    data, out, site = tmp_path / "data", tmp_path / "out", tmp_path / "site"
    write_fake_paper_data(data)
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {"ZOOBENCH_DATA": str(data), "PYTHONPATH": f"{site}:{ROOT}"}
    common = [
        "benchmark=paper",
        f"paths.out_dir={out}",
        f"zoo.experts=[{','.join(EXPERTS)}]",
        f"zoo.entries=[{','.join(ENTRIES)}]",
        f"benchmark.targets=[{TARGET}]",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ]
    # one (target, shots) cell, one learning rate, one seed (train_zoo.py and analyze.py have no sweep)
    cell = [
        f"sweep.targets=[{TARGET}]",
        f"sweep.shots=[{SHOTS}]",
        "sweep.lrs=[0.01]",
        "sweep.seeds=[0]",
    ]
    stages = {
        "train_zoo.py": [
            "train.epochs=1",
            "train.batch_size=4",
            "train.per_domain=4",
            "train.max_per_class=5",
            "train.num_workers=0",
            "trainer.max_steps=2",
        ],
        "finetune.py": [
            "-m",
            *cell,
            "finetune.epochs=0",
            "finetune.min_steps=2",
            "finetune.batch_size=4",
            "finetune.num_workers=0",
        ],
        "evaluate_selection.py": [
            "-m",
            *cell,
            "method=all",
            "selection.per_class=5",
            "selection.batch_size=8",
            "selection.sample_cap=20",
            "selection.source_per_class=5",
            "selection.lgc.heads=1",
            "selection.probe.steps=2",
            "selection.probe.batch_size=4",
        ],
        "analyze.py": ["analysis.bootstrap=20"],
    }
    seconds = {}
    for script, extra in stages.items():
        t0 = time.perf_counter()
        proc = run_entry(script, [*extra, *common], env=env, timeout=1800)
        assert proc.returncode == 0, f"{script}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        seconds[script] = round(time.perf_counter() - t0, 1)
    print("stage seconds:", seconds)
    check_outputs(out)


def check_outputs(out: Path) -> None:
    """The artefacts of every stage under ``out``, for the zoo, cell and target above."""
    # the zoo: every expert stored from the paper recipe, evaluated on its (fake) sources
    # trainer.max_steps ends each one (a multi-domain epoch draws train.per_domain per domain: 2
    # batches of 4)
    for expert, sources in (
        ("resnet101_imagenet", ["imagenet"]),
        ("densenet169_resisc45", ["resisc45"]),
        ("multi_bn_resnet101", ["resisc45", "imagenet"]),
    ):
        card = json.loads((out / "zoo" / expert / "card.json").read_text())
        assert card["sources"] == sources and card["input_size"] == 224
        assert card["recipe"]["momentum"] == 0.9 and card["recipe"]["lr"] == 0.1  # paper recipe
        assert card["global_steps"] == 2
        assert set(card["source_accuracy"]) == set(sources)
    manifest = pd.read_csv(out / "zoo" / "manifest.csv")
    assert set(ENTRIES) <= set(manifest["entry_id"])

    # one fine-tuning result per entry (one lr, one seed), collected into the ground truth
    results = sorted((out / "finetune").rglob("result.json"))
    assert len(results) == len(ENTRIES)
    gt = pd.read_parquet(out / "finetune_gt.parquet")
    assert sorted(gt["entry"]) == sorted(ENTRIES)
    assert set(gt["target"]) == {TARGET} and set(gt["shots"].astype(str)) == {str(SHOTS)}
    assert gt["acc"].between(0, 100).all()

    # every registered method scored every entry on the cell
    cell = out / "selection" / TARGET / f"shots={SHOTS}"
    methods = set(selection.available())
    assert {p.stem for p in cell.glob("*.parquet")} == methods
    for path in cell.glob("*.parquet"):
        assert sorted(pd.read_parquet(path)["entry"]) == sorted(ENTRIES), path

    # the report judges every method
    report = (out / "reports" / "paper" / "report.md").read_text()
    for method in methods:
        assert f"| {method} | " in report, method

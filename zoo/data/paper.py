"""Reading the paper's datasets from ``<data_dir>/<name>/``, and arranging raw downloads.

Each loader returns ``(source, classes, splits)``: a source over every item
(:mod:`zoo.data.sources`), the class names, and ``{"train", "test"}`` -> indices into the source,
or None when the dataset has no official split. Loaders by layout:

- ``imagefolder``: ``images/<class>/...`` (classes ``class_depth`` folders deep, files searched
  recursively), or ``train/<class>/...`` and ``test/<class>/...`` for a fixed split;
- ``cifar_pickle``: CIFAR-10-style python batches (``data_batch_1..5``, ``test_batch``);
- ``cub``, ``gldv2``, ``imat``: the datasets' own annotation files;
- ``torchvision:<Class>``: torchvision's class, always with ``download=False`` (the splits are
  the concatenations of ``tv_train`` and ``tv_test``).

Split policy (:func:`collection`): the official split where the loader gives one, else a seeded
stratified 80/20 split (:func:`zoo.samplers.stratified_split`, seed ``SPLIT_SEED`` = 0, i.e.
``floor(0.2 n_c + 0.5)`` test images of a class of ``n_c``). A dataset whose files are missing raises
:class:`~zoo.data.registry.DatasetNotFoundError`; nothing is downloaded here.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.io import load_data_pickle
from zoo.data.paper_specs import PAPER_SPECS, PREPARE_CMD, SPLIT_SEED, PaperSpec
from zoo.data.registry import DatasetNotFoundError
from zoo.data.sources import ArraySource, PathSource, TorchvisionSource, rgb_loader
from zoo.samplers import stratified_split

__all__ = ["collection", "make_torchvision", "missing_files", "prepare_paper", "walk_images"]


def missing_files(spec: PaperSpec, root: Path) -> list[str]:
    """What is missing under ``root`` for ``spec`` to load ([] when it is in place)."""
    if spec.loader == "imagefolder":
        fixed = (root / "train").is_dir() and (root / "test").is_dir()
        return [] if fixed or (root / "images").is_dir() else ["images/ (or train/ and test/)"]
    if spec.loader == "cifar_pickle":
        return [] if _cifar_dir(root) is not None else ["data_batch_1..5 and test_batch"]
    return [rel for rel in spec.required if not (root / rel).exists()]


def _check_classes(name: str, classes: Sequence[str], where: Path) -> None:
    expected = PAPER_SPECS[name].num_classes
    if len(classes) != expected:
        raise ValueError(
            f"dataset '{name}' at {where} has {len(classes)} classes, expected {expected}; check the"
            f" folder layout (`{PREPARE_CMD} {name}` prints it)"
        )


def walk_images(folder: Path, extensions: tuple[str, ...]) -> list[str]:
    """Image files under ``folder`` (recursively, following symlinks), sorted.

    Hidden files and folders (``.name``, which includes macOS's ``._name`` resource forks) are
    skipped, names match ``extensions`` case-insensitively, and a folder reached twice (a symlink
    loop, or two links to one folder) is read once, at its first path in sorted walk order:
    folders are identified by their real path.
    """
    seen: set[str] = set()
    files = []
    for dirpath, dirnames, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        # sorted: which of two paths to one folder is read does not depend on the file system
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [
            os.path.join(dirpath, f)
            for f in names
            if not f.startswith(".") and f.lower().endswith(extensions)
        ]
    return sorted(files)


def _scan_folder(folder: Path, depth: int, extensions: tuple[str, ...]):
    """Classes = folders ``depth`` levels under ``folder`` holding images (searched recursively).

    Returns (classes sorted, image paths sorted within class, labels)."""
    level = [folder]
    for _ in range(depth):
        level = sorted(
            p for d in level for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")
        )
    classes, paths, labels = [], [], []
    for class_dir in level:
        files = walk_images(class_dir, extensions)
        if files:
            labels += [len(classes)] * len(files)
            classes.append(class_dir.relative_to(folder).as_posix())
            paths += files
    return classes, paths, np.asarray(labels, dtype=np.int64)


def _load_imagefolder(spec: PaperSpec, root: Path):
    if (root / "train").is_dir() and (root / "test").is_dir():
        c_train, p_train, y_train = _scan_folder(root / "train", spec.class_depth, spec.extensions)
        c_test, p_test, y_test = _scan_folder(root / "test", spec.class_depth, spec.extensions)
        if c_train != c_test:
            only = sorted(set(c_train) ^ set(c_test))
            raise ValueError(
                f"dataset '{spec.name}': train/ and test/ under {root} have different classes"
                f" (in only one of them: {', '.join(only[:10])})"
            )
        labels = np.concatenate([y_train, y_test])
        n = len(p_train)
        splits = {"train": np.arange(n), "test": np.arange(n, n + len(p_test))}
        return PathSource(p_train + p_test, labels), c_train, splits
    classes, paths, labels = _scan_folder(root / "images", spec.class_depth, spec.extensions)
    return PathSource(paths, labels), classes, None


def _cifar_dir(root: Path) -> Path | None:
    for d in (root, root / "prototype_1"):
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if all((d / n).is_file() for n in names):
            return d
    return None


def _load_cifar_pickle(spec: PaperSpec, root: Path):
    folder = _cifar_dir(root)

    def read(path: Path) -> dict:
        with open(path, "rb") as f:
            # CIFAR-style batches are pickles: read them without running code they might name
            batch = load_data_pickle(f, encoding="latin1", source=path)
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}

    parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    images, labels, splits, n = [], [], {}, 0
    for split, files in parts.items():
        start = n
        for file in files:
            batch = read(folder / file)
            data = np.asarray(batch["data"], dtype=np.uint8)
            side = int(round(np.sqrt(data.shape[1] // 3)))
            images.append(data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1))
            labels.append(np.asarray(batch["labels"], dtype=np.int64))
            n += len(labels[-1])
        splits[split] = np.arange(start, n)
    classes = list(spec.class_names)
    if (folder / "batches.meta").is_file():
        names = read(folder / "batches.meta").get("label_names")
        if names:
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in names]
    source = ArraySource(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))
    return source, classes, splits


def _read_table(path: Path) -> list[list[str]]:
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def _load_cub(spec: PaperSpec, root: Path):
    base = root / "CUB_200_2011"
    paths = dict(_read_table(base / "images.txt"))
    label = {i: int(c) - 1 for i, c in _read_table(base / "image_class_labels.txt")}
    is_train = {i: t == "1" for i, t in _read_table(base / "train_test_split.txt")}
    classes = [
        " ".join(row[1:])
        for row in sorted(_read_table(base / "classes.txt"), key=lambda r: int(r[0]))
    ]
    ids = sorted(paths, key=int)
    files = [str(base / "images" / paths[i]) for i in ids]
    labels = np.array([label[i] for i in ids], dtype=np.int64)
    train = np.array([is_train[i] for i in ids])
    return (
        PathSource(files, labels),
        classes,
        {
            "train": np.flatnonzero(train),
            "test": np.flatnonzero(~train),
        },
    )


def _load_gldv2(spec: PaperSpec, root: Path):
    rows = []
    with open(root / "train_clean.csv", newline="") as f:
        for record in csv.DictReader(f):
            rows.append((int(record["landmark_id"]), record["images"].split()))
    landmark_ids = sorted({lid for lid, _ in rows})
    index = {lid: k for k, lid in enumerate(landmark_ids)}
    paths, labels = [], []
    for lid, images in rows:
        for image_id in images:
            paths.append(
                str(root / "train" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg")
            )
            labels.append(index[lid])
    classes = [str(lid) for lid in landmark_ids]
    return PathSource(paths, np.asarray(labels, dtype=np.int64)), classes, None


def _load_imat(spec: PaperSpec, root: Path):
    paths, labels, splits, n = [], [], {}, 0
    for split, stem in (("train", "train"), ("test", "val")):
        with open(root / f"{stem}.json") as f:
            records = json.load(f)["images"]
        start = n
        for r in records:
            path = root / stem / str(r["id"])
            if path.is_file():  # images behind dead URLs could not be downloaded
                paths.append(str(path))
                labels.append(int(r["class"]))
                n += 1
        splits[split] = np.arange(start, n)
    labels = np.asarray(labels, dtype=np.int64)
    classes = [str(c) for c in range(int(labels.max()) + 1)] if len(labels) else []
    return PathSource(paths, labels), classes, splits


def _torchvision_labels(ds: Any) -> np.ndarray:
    for attr in ("_labels", "targets"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr), dtype=np.int64)
    if hasattr(ds, "_samples"):  # StanfordCars
        return np.asarray([t for _, t in ds._samples], dtype=np.int64)
    raise TypeError(f"cannot read the labels of {type(ds).__name__} without loading its images")


def _torchvision_classes(ds: Any) -> list[str]:
    # ImageNet's classes are tuples of synonyms: keep the first
    return [c[0] if isinstance(c, tuple) else str(c) for c in ds.classes]


def make_torchvision(spec: PaperSpec, root: Path, kwargs: dict, download: bool = False) -> Any:
    """torchvision's dataset class of ``spec`` over ``root`` (``transform=None``)."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.loader.split(":", 1)[1])
    extra = dict(spec.tv_kwargs)
    if cls is tvd.ImageNet:  # ImageNet has no download argument; it parses archives in root
        return cls(root=str(root), **extra, **kwargs)
    if cls is tvd.INaturalist:
        extra["loader"] = rgb_loader
    return cls(root=str(root), download=download, **extra, **kwargs)


def _load_torchvision(spec: PaperSpec, root: Path):
    if spec.name == "inat2019":
        ds = make_torchvision(spec, root, {})
        paths = [os.path.join(ds.root, ds.all_categories[c], f) for c, f in ds.index]
        labels = np.asarray([c for c, _ in ds.index], dtype=np.int64)
        return PathSource(paths, labels), list(ds.all_categories), None
    datasets, splits, n = [], {}, 0
    for split, parts in (("train", spec.tv_train), ("test", spec.tv_test)):
        start = n
        for kwargs in parts:
            datasets.append(make_torchvision(spec, root, kwargs))
            n += len(datasets[-1])
        splits[split] = np.arange(start, n)
    labels = np.concatenate([_torchvision_labels(d) for d in datasets])
    return TorchvisionSource(datasets, labels), _torchvision_classes(datasets[0]), splits


_LOADERS = {
    "imagefolder": _load_imagefolder,
    "cifar_pickle": _load_cifar_pickle,
    "cub": _load_cub,
    "gldv2": _load_gldv2,
    "imat": _load_imat,
}


@functools.cache
def collection(name: str, root: Path) -> tuple[Any, tuple[str, ...], dict[str, np.ndarray]]:
    """(source, classes, {split: indices into source}) of a present paper dataset, cached."""
    spec = PAPER_SPECS[name]
    missing = missing_files(spec, root)
    if missing:
        raise DatasetNotFoundError(name, root, missing)
    load = _load_torchvision if spec.loader.startswith("torchvision:") else _LOADERS[spec.loader]
    try:
        source, classes, splits = load(spec, root)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise DatasetNotFoundError(name, root, [], detail=f"torchvision says: {e}") from e
    _check_classes(name, classes, root)
    if splits is None:
        train, test = stratified_split(source.labels, 0.2, SPLIT_SEED)
        splits = {"train": train, "test": test}
    return source, tuple(classes), splits


def _arrange_flood_depth(root: Path) -> str:
    """Build images/{depth,no_depth}/ (symlinks) from raw/eu-flood-dataset + the raw images."""
    raw = root / "raw"
    relevance = raw / "eu-flood-dataset" / "relevance" / "depth.txt"
    if not relevance.is_file():
        return f"  cannot arrange: {relevance} not found"
    depth_ids = {line.strip() for line in relevance.read_text().splitlines() if line.strip()}
    images = {
        p.stem: p
        for p in raw.rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg") and "eu-flood-dataset" not in p.parts
    }
    if not images:
        return f"  cannot arrange: no .jpg images found under {raw}"
    for cls in ("depth", "no_depth"):
        (root / "images" / cls).mkdir(parents=True, exist_ok=True)
    for stem, path in sorted(images.items()):
        link = root / "images" / ("depth" if stem in depth_ids else "no_depth") / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    n_depth = sum(1 for s in images if s in depth_ids)
    return f"  arranged {len(images)} images: {n_depth} depth, {len(images) - n_depth} no_depth"


def prepare_paper(spec: PaperSpec, root: Path, download: bool) -> list[str]:
    """Arrange what can be arranged under ``root`` (ImageNet archives, European Flood raw files),
    download with torchvision only when ``download``; returns report lines."""
    out = []
    if spec.name == "imagenet" and missing_files(spec, root):
        archives = [
            "ILSVRC2012_devkit_t12.tar.gz",
            "ILSVRC2012_img_train.tar",
            "ILSVRC2012_img_val.tar",
        ]
        if all((root / a).is_file() for a in archives):
            out.append("  parsing the ImageNet archives with torchvision (this takes hours) ...")
            for kwargs in spec.tv_train + spec.tv_test:
                make_torchvision(spec, root, kwargs)
    if spec.name == "flood_depth" and missing_files(spec, root) and (root / "raw").is_dir():
        out.append(_arrange_flood_depth(root))
    if download and missing_files(spec, root):
        if not spec.download:
            out.append("  --download: this dataset cannot be downloaded automatically")
        else:
            out.append(f"  downloading with {spec.download} ...")
            root.mkdir(parents=True, exist_ok=True)
            if spec.name == "inat2019":
                make_torchvision(spec, root, {}, download=True)
            for kwargs in spec.tv_train + spec.tv_test:
                make_torchvision(spec, root, kwargs, download=True)
    return out

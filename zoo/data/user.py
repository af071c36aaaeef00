"""A user's own labelled images as a dataset: an image folder or a CSV of ``path,label``.

Layouts (:func:`scan`):

- a folder with ``train/<class>/*`` and optionally ``test/<class>/*`` (images searched
  recursively under each class folder); without ``train/``, the class folders may sit directly in
  the folder (``<class>/*``). Without ``test/``, a seeded stratified split
  (:func:`zoo.samplers.stratified_split`: ``floor(test_fraction * n_c + 0.5)`` test images per
  class, clipped to [1, n_c - 1]; a class of one image stays in train);
- a CSV file of ``path,label`` rows (an optional header ``path,label``; an optional third column
  ``split`` = train|test; paths relative to the CSV's folder or absolute).

What users' folders hold, and what happens to it:

- images of any mode (grayscale, RGBA and palette with transparency: over white, CMYK, 16-bit
  and 32-bit integer images scaled to 8 bit: :func:`zoo.data.sources.to_rgb`), of mixed sizes,
  with upper- or lower-case extensions (:data:`~zoo.data.paper_specs.IMAGE_EXTENSIONS`);
- hidden files and folders, macOS's ``._*`` files: skipped; symlink loops: each folder is read
  once (:func:`zoo.data.paper.walk_images`);
- every image is decoded once when the data is scanned: a truncated, unreadable or non-image file
  stops the scan with a :class:`UserDataError` that names every such file (nothing is written
  before that); so do an empty class folder, a test class absent from train, fewer than two
  classes, and CSV rows whose files do not exist or whose label is empty.

A scanned folder is turned into registered datasets (:func:`register`), one per model input
format (image size, mean, std), named ``<name>_<size>px_<norm>``, so the rest of the code
(extraction, fine-tuning, fingerprints) loads it with :func:`zoo.data.load_split` like any
registered dataset. Transforms, for an entry of input size ``s``:

- ``s >= 64`` (ImageNet-style models): evaluation Resize(round(256 s / 224)) + CenterCrop(s), training
  RandomResizedCrop(s) + horizontal flip (the paper's transform at s = 224);
- ``s < 64`` (the mini models): evaluation Resize((s, s)) (the whole image, squeezed), training the
  same plus a random shift of up to 3 pixels with reflected borders (the mini benchmark's); decoded
  thumbnails are kept in memory.

then ToTensor and the entry's mean/std. The fingerprint of a split (part of every cache and result
key) hashes the registry info, the classes, labels and indices, and each file's path relative to
the data's folder, size and modification time.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zoo.data.paper import walk_images
from zoo.data.paper_specs import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD
from zoo.data.registry import MINI_MEAN, MINI_STD, SPLITS, DatasetInfo, register_runtime
from zoo.data.sources import DecodedSource, to_rgb

__all__ = [
    "SMALL",
    "UserData",
    "UserDataError",
    "UserSource",
    "collection",
    "load_image",
    "register",
    "scan",
    "split_fingerprint",
    "user_transform",
]

#: input sizes below this get the mini treatment (whole image squeezed, shift augmentation, cached)
SMALL = 64
SHIFT = 3
#: at most this many bad files are listed in an error (the count says how many there are)
LIST_AT_MOST = 10


class UserDataError(ValueError):
    """The user's data cannot be used as it is; the message names the files or classes and the fix."""


@dataclass
class UserData:
    """A scanned image folder or CSV: absolute ``paths`` (N,), ``labels`` (N,) int64 into
    ``classes``, ``splits`` {"train", "test"} -> sorted indices, ``split_policy`` ("folder", "csv"
    or "stratified") and ``root`` (the folder paths are made relative to in the fingerprint)."""

    root: Path
    source: Path
    paths: list[str]
    labels: np.ndarray
    classes: list[str]
    splits: dict[str, np.ndarray]
    split_policy: str
    notes: list[str] = field(default_factory=list)

    def counts(self, split: str) -> np.ndarray:
        """Images per class (C,) in ``split``."""
        return np.bincount(self.labels[self.splits[split]], minlength=len(self.classes))


# --------------------------------------------------------------------------------------------------
# decoding


def load_image(path: str | os.PathLike) -> Any:
    """The image at ``path`` as an 8-bit RGB PIL image, EXIF orientation applied.

    Raises UserDataError naming the file when it cannot be read, is not an image, or is truncated
    (Pillow would otherwise fill a truncated file's missing rows silently only when told to).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return to_rgb(im)
    except UnidentifiedImageError:
        raise UserDataError(f"{path}: not an image Pillow can read") from None
    except PermissionError:
        raise UserDataError(f"{path}: not readable (permission denied)") from None
    except FileNotFoundError:
        raise UserDataError(f"{path}: no such file (a broken symlink?)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UserDataError(f"{path}: cannot be decoded ({e}; truncated or damaged?)") from None


def _check_images(paths: Sequence[str], progress: Callable[[int, int], None] | None) -> None:
    bad = []
    for i, p in enumerate(paths, 1):
        try:
            load_image(p)
        except UserDataError as e:
            bad.append(str(e))
        if progress is not None:
            progress(i, len(paths))
    if bad:
        shown = "\n  ".join(bad[:LIST_AT_MOST])
        more = f"\n  ... and {len(bad) - LIST_AT_MOST} more" if len(bad) > LIST_AT_MOST else ""
        raise UserDataError(
            f"{len(bad)} of {len(paths)} images cannot be used:\n  {shown}{more}\n"
            "Replace or remove them (or list only readable files in the CSV) and run again."
        )


# --------------------------------------------------------------------------------------------------
# scanning


def _class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _scan_classes(folder: Path) -> tuple[list[str], list[str], list[int]]:
    """(classes, paths, labels) of ``folder/<class>/...``; an empty class folder is an error."""
    classes, paths, labels, empty = [], [], [], []
    for class_dir in _class_folders(folder):
        files = walk_images(class_dir, IMAGE_EXTENSIONS)
        if not files:
            empty.append(class_dir)
            continue
        labels += [len(classes)] * len(files)
        classes.append(class_dir.name)
        paths += files
    if empty:
        raise UserDataError(
            f"class folders without images: {', '.join(str(e) for e in empty)}; add images "
            f"(extensions {', '.join(IMAGE_EXTENSIONS)}, any case) or remove the folders"
        )
    return classes, paths, labels


def _scan_folder(root: Path, test_fraction: float, seed: int) -> UserData:
    from zoo.samplers import stratified_split

    train_dir = root / "train" if (root / "train").is_dir() else root
    if train_dir == root and (root / "test").is_dir():
        raise UserDataError(
            f"{root} has a test/ folder but no train/ folder: put the training images in "
            f"{root}/train/<class>/* (a class folder cannot be named test)"
        )
    classes, paths, labels = _scan_classes(train_dir)
    if not classes:
        loose = [f for f in walk_images(root, IMAGE_EXTENSIONS) if Path(f).parent == root]
        hint = (
            f" (found {len(loose)} images directly in it: put them in class folders)"
            if loose
            else ""
        )
        raise UserDataError(
            f"no class folders with images in {train_dir}{hint}; expected {root}/train/<class>/* "
            f"(and optionally {root}/test/<class>/*), or {root}/<class>/*"
        )
    n_train = len(paths)
    if train_dir != root and (root / "test").is_dir():
        t_classes, t_paths, t_labels = _scan_classes(root / "test")
        unknown = sorted(set(t_classes) - set(classes))
        if unknown:
            raise UserDataError(
                f"test classes {unknown} under {root / 'test'} have no training images under "
                f"{train_dir}; classes there: {', '.join(classes)}"
            )
        index = {c: i for i, c in enumerate(classes)}
        paths += t_paths
        labels += [index[t_classes[y]] for y in t_labels]
        y = np.asarray(labels, dtype=np.int64)
        splits = {"train": np.arange(n_train), "test": np.arange(n_train, len(paths))}
        return UserData(root, root, paths, y, classes, splits, "folder")
    y = np.asarray(labels, dtype=np.int64)
    train, test = stratified_split(y, test_fraction, seed)
    return UserData(root, root, paths, y, classes, {"train": train, "test": test}, "stratified")


def _scan_csv(path: Path, test_fraction: float, seed: int) -> UserData:
    from zoo.samplers import stratified_split

    root = path.parent
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    if not rows:
        raise UserDataError(f"{path}: no rows; expected lines of path,label[,split]")
    paths, names, split_of, problems, missing = [], [], [], [], []
    for line, r in enumerate(rows, 1):
        if len(r) < 2 or not r[0].strip() or not r[1].strip():
            problems.append(f"row {line} {r!r}: needs a path and a label")
            continue
        file = Path(r[0].strip()).expanduser()
        file = file if file.is_absolute() else root / file
        if not file.is_file():
            missing.append(f"row {line}: {file}")
            continue
        split = r[2].strip().lower() if len(r) > 2 and r[2].strip() else None
        if split is not None and split not in SPLITS:
            problems.append(f"row {line}: split {split!r} is not one of {', '.join(SPLITS)}")
            continue
        paths.append(str(file))
        names.append(r[1].strip())
        split_of.append(split)
    if missing:
        shown = "\n  ".join(missing[:LIST_AT_MOST])
        more = (
            f"\n  ... and {len(missing) - LIST_AT_MOST} more" if len(missing) > LIST_AT_MOST else ""
        )
        problems.append(
            f"{len(missing)} paths name no file (relative paths are taken from {root}):"
            f"\n  {shown}{more}"
        )
    if problems:
        raise UserDataError(f"{path}: " + "\n".join(problems))
    given = [s for s in split_of if s is not None]
    if given and len(given) != len(split_of):
        raise UserDataError(f"{path}: give the split column on every row or on none")
    if given:
        train_names = {n for n, s in zip(names, split_of) if s == "train"}
        unknown = sorted({n for n, s in zip(names, split_of) if s == "test"} - train_names)
        if unknown:
            raise UserDataError(f"{path}: test labels {unknown} have no training rows")
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    y = np.asarray([index[n] for n in names], dtype=np.int64)
    if given:
        is_test = np.asarray([s == "test" for s in split_of])
        splits = {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}
        return UserData(root, path, paths, y, classes, splits, "csv")
    train, test = stratified_split(y, test_fraction, seed)
    return UserData(root, path, paths, y, classes, {"train": train, "test": test}, "stratified")


def scan(
    path: str | os.PathLike,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    check: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> UserData:
    """Scan an image folder or a ``path,label`` CSV (see the module doc) and, with ``check``,
    decode every image once (``progress(done, total)`` after each).

    Raises UserDataError (a ValueError) naming what is wrong: a missing path, a layout without
    class folders, empty class folders, unknown CSV paths, unreadable or truncated images, fewer
    than two classes, a test split without images.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise UserDataError(
            f"data path {p.resolve()} does not exist; give an image folder (train/<class>/*, "
            "optional test/<class>/*) or a CSV of path,label"
        )
    p = p.resolve()
    if p.is_dir():
        data = _scan_folder(p, test_fraction, seed)
    elif p.suffix.lower() == ".csv":
        data = _scan_csv(p, test_fraction, seed)
    else:
        raise UserDataError(f"data path {p} is neither a folder nor a .csv file")
    if len(data.classes) < 2:
        raise UserDataError(
            f"{p}: found {len(data.classes)} class ({', '.join(data.classes)}); ranking models for "
            "classification needs at least 2 classes"
        )
    if len(data.splits["test"]) == 0:
        raise UserDataError(
            f"{p}: the test split is empty (every class has a single image?); add images or a "
            "test/ folder"
        )
    singles = [c for c, n in zip(data.classes, data.counts("train")) if n < 2]
    if singles:
        data.notes.append(
            f"classes with a single training image: {', '.join(singles)} (scores that need two "
            "per class skip them or fail with a note)"
        )
    if check:
        _check_images(data.paths, progress)
    return data


# --------------------------------------------------------------------------------------------------
# transforms and the item source


def user_transform(size: int, mean: Sequence[float], std: Sequence[float], train: bool) -> Any:
    """An RGB PIL image -> normalised (3, size, size) float32 tensor (see the module doc)."""
    from torchvision import transforms as T

    if size >= SMALL:
        steps = (
            [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
            if train
            else [T.Resize(round(size * 256 / 224)), T.CenterCrop(size)]
        )
    else:
        steps = [T.Resize((size, size))]
        if train:
            steps.append(T.RandomCrop(size, padding=SHIFT, padding_mode="reflect"))
    return T.Compose([*steps, T.ToTensor(), T.Normalize(list(mean), list(std))])


BILINEAR = 2  # PIL.Image.Resampling.BILINEAR


class UserSource(DecodedSource):
    """The user's image files, decoded with :func:`load_image` and given :func:`user_transform`;
    small sizes keep each decoded, resized thumbnail in memory."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray, info: DatasetInfo):
        self.paths = list(paths)
        self.labels = labels
        self.size = info.image_size
        self._train = user_transform(info.image_size, info.mean, info.std, True)
        self._eval = user_transform(info.image_size, info.mean, info.std, False)
        self._thumbs: dict[int, Any] = {}

    def load(self, j: int) -> Any:
        if self.size >= SMALL:
            return load_image(self.paths[j])
        if j not in self._thumbs:
            # bilinear, as torchvision's Resize on a PIL image: the thumbnail is what it would give
            self._thumbs[j] = load_image(self.paths[j]).resize((self.size, self.size), BILINEAR)
        return self._thumbs[j]

    def get(self, j: int, train: bool) -> torch.Tensor:
        return (self._train if train else self._eval)(self.load(j))


# --------------------------------------------------------------------------------------------------
# registration


@dataclass
class _Registered:
    data: UserData
    source: UserSource
    fingerprints: dict[str, str]


_REGISTERED: dict[str, _Registered] = {}


def _norm_tag(mean: Sequence[float], std: Sequence[float]) -> str:
    pair = (tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std))
    if pair == (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)):
        return "imagenet"
    if pair == (tuple(MINI_MEAN), tuple(MINI_STD)):
        return "mini"
    return hashlib.sha256(json.dumps(pair).encode()).hexdigest()[:6]


def dataset_name(base: str, size: int, mean: Sequence[float], std: Sequence[float]) -> str:
    """``<base>_<size>px_<norm>`` (norm: ``imagenet``, ``mini`` or a hash of mean/std)."""
    return f"{base}_{int(size)}px_{_norm_tag(mean, std)}"


def default_name(data: UserData) -> str:
    """A dataset name from the folder's or CSV's name: lower case, ``[a-z0-9_]``."""
    stem = data.source.stem if data.source.is_file() else data.source.name
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    return f"user_{name or 'data'}"


def _fingerprint(info: DatasetInfo, data: UserData, split: str) -> str:
    idx = np.asarray(data.splits[split], dtype=np.int64)
    head = {
        "info": {k: v for k, v in info.__dict__.items() if k not in ("prepare", "name")},
        "split": split,
        "classes": list(data.classes),
        "n": int(len(idx)),
    }
    h = hashlib.sha256(json.dumps(head, sort_keys=True, default=list).encode())
    h.update(np.ascontiguousarray(data.labels[idx], dtype="<i8").data)
    h.update(np.ascontiguousarray(idx, dtype="<i8").data)
    for j in idx:
        p = data.paths[int(j)]
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, data.root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def register(
    data: UserData, base: str, size: int, mean: Sequence[float], std: Sequence[float]
) -> str:
    """Register ``data`` at input ``size`` with ``mean``/``std`` as a dataset of this process;
    returns its name (:func:`dataset_name`). :func:`zoo.data.load_split` then loads it."""
    name = dataset_name(base, size, mean, std)
    counts = ", ".join(f"{c}: {n}" for c, n in zip(data.classes, data.counts("train")))
    info = DatasetInfo(
        name=name,
        benchmark="user",
        role="target",
        num_classes=len(data.classes),
        image_size=int(size),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
        loader="user:csv" if data.source.is_file() else "user:folder",
        split=data.split_policy,
        prepare=f"the user's data at {data.source} (training images per class: {counts})",
    )
    register_runtime(info)
    # the item name is not part of the data's identity (the fingerprint drops it)
    fps = {s: _fingerprint(info, data, s) for s in SPLITS}
    _REGISTERED[name] = _Registered(data, UserSource(data.paths, data.labels, info), fps)
    return name


def _registered(name: str) -> _Registered:
    if name not in _REGISTERED:
        raise ValueError(f"dataset {name!r} is not a registered user dataset of this process")
    return _REGISTERED[name]


def collection(name: str) -> tuple[UserSource, tuple[str, ...], dict[str, np.ndarray]]:
    """(source, classes, {split: indices}) of a registered user dataset."""
    reg = _registered(name)
    return reg.source, tuple(reg.data.classes), reg.data.splits


def split_fingerprint(name: str, split: str) -> str:
    """The fingerprint (16 hex digits) of one split of a registered user dataset."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return _registered(name).fingerprints[split]

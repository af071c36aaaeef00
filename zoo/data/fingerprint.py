"""The identity of a dataset split: a short hash that changes whenever the items of the split do.

Every artefact that is computed from a split (a fine-tuning result, an extraction, a score table)
carries its split's fingerprint in its key, so that editing a dataset (deleting a corrupt image,
re-extracting a partial copy, pointing ``ZOOBENCH_DATA`` at another copy) makes the artefact stale
instead of silently mixing the old split with the new one.

``split_fingerprint(name, split, data_dir)`` is the SHA-256 (first 16 hex digits) of:

- what the registry says about the dataset (:class:`~zoo.data.registry.DatasetInfo`: name,
  benchmark, split policy, image size, mean/std: they change what a model sees);
- the split's class names, its item labels (N,) and its indices into the dataset's item source (N,)
  (the official split, or the seeded stratified 80/20 split);
- the items themselves, without decoding an image:

  - image files (paper datasets read from paths): each item's path relative to the dataset folder
    ``<data_dir>/<name>`` and its size in bytes (-1 when the file is missing), in item order; the
    location of the folder does not enter, so an identical copy elsewhere has the same fingerprint;
  - torchvision datasets: every file under the dataset folder (relative path and size, sorted);
  - images held in memory (CIFAR-style batches, the generated mini domains): the pixel bytes of the
    split's items. A mini domain is hashed as :func:`zoo.data.mini.generate` returns it (uint8 RGB),
    so a change of its generator, seed or size changes its fingerprint.

Cost: one ``stat`` per file for paper datasets (no decoding), one hash pass over the pixels for
in-memory datasets (about 0.1 s for the largest mini domain). Results are cached per process: the
data is assumed not to change while a process runs (:func:`zoo.data.load_split` caches its file
list the same way); :func:`clear_fingerprint_cache` forgets them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from zoo.data import mini, paper
from zoo.data.registry import SPLITS, dataset_path, get_info
from zoo.data.sources import ArraySource, PathSource, TorchvisionSource

__all__ = ["clear_fingerprint_cache", "dataset_fingerprint", "split_fingerprint"]

FINGERPRINT_LENGTH = 16
# items hashed per chunk of an in-memory array: bounds the temporary copy of a strided selection
_CHUNK = 4096


def _array_digest(h: hashlib._Hash, images: np.ndarray, indices: np.ndarray) -> None:
    """Feed the bytes of ``images[indices]`` to ``h`` (without copying when indices = arange)."""
    if len(indices) == len(images) and np.array_equal(indices, np.arange(len(images))):
        h.update(np.ascontiguousarray(images).data)
        return
    for start in range(0, len(indices), _CHUNK):
        h.update(np.ascontiguousarray(images[indices[start : start + _CHUNK]]).data)


def _file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def _paths_digest(h: hashlib._Hash, paths: list[str], indices: np.ndarray, root: Path) -> None:
    for j in indices:
        p = paths[int(j)]
        rel = os.path.relpath(p, root)
        h.update(f"{rel}\0{_file_size(p)}\n".encode())


def _tree_digest(h: hashlib._Hash, root: Path) -> None:
    """Every file under ``root`` (relative path and size), sorted: torchvision datasets keep their
    item lists private, so the folder's listing stands for them."""
    listing = []
    for dirpath, dirnames, names in os.walk(root, followlinks=True):
        dirnames.sort()
        for n in names:
            p = os.path.join(dirpath, n)
            listing.append(f"{os.path.relpath(p, root)}\0{_file_size(p)}\n")
    for line in sorted(listing):
        h.update(line.encode())


def _digest(
    name: str,
    split: str,
    classes: tuple[str, ...] | list[str],
    labels: np.ndarray,
    indices: np.ndarray,
) -> hashlib._Hash:
    info = asdict(get_info(name))
    info.pop("prepare")  # human instructions, not data
    head = {"info": info, "split": split, "classes": list(classes), "n": int(len(indices))}
    h = hashlib.sha256(json.dumps(head, sort_keys=True).encode())
    h.update(np.ascontiguousarray(labels, dtype="<i8").data)
    h.update(np.ascontiguousarray(indices, dtype="<i8").data)
    return h


@functools.cache
def _mini_fingerprint(name: str, split: str) -> str:
    domain = mini.generate(name)  # what zoo.data.load_split reads (seed 0)
    images = domain.x_train if split == "train" else domain.x_test
    labels = domain.y_train if split == "train" else domain.y_test
    indices = np.arange(len(labels), dtype=np.int64)
    h = _digest(name, split, domain.classes, labels, indices)
    _array_digest(h, images, indices)
    return h.hexdigest()[:FINGERPRINT_LENGTH]


@functools.cache
def _paper_fingerprint(name: str, split: str, root: Path) -> str:
    source, classes, splits = paper.collection(name, root)
    indices = np.asarray(splits[split], dtype=np.int64)
    labels = np.asarray(source.labels, dtype=np.int64)[indices]
    h = _digest(name, split, classes, labels, indices)
    if isinstance(source, PathSource):
        _paths_digest(h, source.paths, indices, root)
    elif isinstance(source, ArraySource):
        _array_digest(h, source.images, indices)
    elif isinstance(source, TorchvisionSource):
        _tree_digest(h, root)
    else:  # a new source type must say how it is identified
        raise TypeError(f"cannot fingerprint a {type(source).__name__} (dataset {name!r})")
    return h.hexdigest()[:FINGERPRINT_LENGTH]


def split_fingerprint(name: str, split: str, data_dir: str | os.PathLike = "data") -> str:
    """The fingerprint (16 hex digits) of one split of a registered dataset (see the module doc).

    Args:
        name: a registered dataset (:func:`zoo.data.available_datasets`).
        split: "train" or "test".
        data_dir: where paper datasets live (``<data_dir>/<name>/``); unused by mini datasets.

    Raises:
        ValueError: unknown name or split.
        DatasetNotFoundError: a paper dataset is not present.
    """
    info = get_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if info.benchmark == "mini":
        return _mini_fingerprint(name, split)
    if info.benchmark == "user":
        from zoo.data import user

        return user.split_fingerprint(name, split)
    return _paper_fingerprint(name, split, dataset_path(name, data_dir))


def dataset_fingerprint(name: str, data_dir: str | os.PathLike = "data") -> str:
    """The fingerprint (16 hex digits) of both splits of a dataset: what a fine-tuning run reads
    (it trains on the training split and tests on the test split)."""
    parts = {split: split_fingerprint(name, split, data_dir) for split in SPLITS}
    text = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:FINGERPRINT_LENGTH]


def clear_fingerprint_cache() -> None:
    """Forget the fingerprints computed in this process (and the paper file lists they read), so
    that data edited while the process runs is fingerprinted again."""
    _mini_fingerprint.cache_clear()
    _paper_fingerprint.cache_clear()
    paper.collection.cache_clear()

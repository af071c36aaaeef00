"""Loading a registered dataset: :func:`load_split` returns an :class:`ImageDataset` of
(image, label) pairs with the dataset's transforms, and :func:`is_available` says whether it can.

- Paper datasets are read from ``<data_dir>/<name>/`` (:mod:`zoo.data.paper`), 224x224 with
  ImageNet's mean/std (:func:`zoo.data.sources.paper_transform`).
- Mini datasets (:mod:`zoo.data.mini`) are generated in memory, 32x32, mean 0.5 / std 0.25 per
  channel; a whole split is one normalised float32 tensor, so indexing is a tensor slice. Training
  augmentation: a random shift of up to ``MINI_SHIFT`` = 3 pixels with reflected borders.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.data import mini, paper
from zoo.data.paper_specs import PAPER_SPECS
from zoo.data.registry import MINI_MEAN, MINI_STD, SPLITS, DatasetInfo, dataset_path, get_info
from zoo.data.sources import TensorSource

__all__ = ["MINI_SHIFT", "ImageDataset", "is_available", "load_split"]

MINI_SHIFT = 3  # pixels of random translation when training on a mini dataset


class ImageDataset(Dataset):
    """(image, label) pairs of one split: images (3, H, W) float32, normalised with ``info.mean`` /
    ``info.std``; labels are class indices into ``classes``.

    ``train=True`` applies the dataset's training augmentation. ``subset`` and ``with_train`` share
    the underlying data (no copy), so they are cheap.
    """

    def __init__(
        self,
        source: Any,
        classes: Sequence[str],
        info: DatasetInfo,
        indices: np.ndarray | None = None,
        train: bool = False,
    ):
        self._source = source
        self._indices = (
            np.arange(len(source), dtype=np.int64)
            if indices is None
            else np.asarray(indices, dtype=np.int64)
        )
        labels = np.asarray(source.labels, dtype=np.int64)[self._indices]
        labels.setflags(write=False)
        self.labels: np.ndarray = labels
        self.classes: list[str] = list(classes)
        self.info = info
        self.train = bool(train)

    @classmethod
    def from_tensors(
        cls,
        images: torch.Tensor,
        labels: np.ndarray,
        classes: Sequence[str],
        info: DatasetInfo,
        train: bool = False,
        shift: int = MINI_SHIFT,
    ) -> ImageDataset:
        """An in-memory dataset over already normalised images (N, 3, H, W) float32."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(images.shape)}")
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(
                f"labels must lie in [0, {len(classes)}), got {labels.min()}..{labels.max()}"
            )
        source = TensorSource(images.float().contiguous(), labels, shift)
        return cls(source, classes, info, train=train)

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = int(self._indices[i])
        return self._source.get(j, self.train), int(self._source.labels[j])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageDataset:
        """The items at ``indices`` (positions in this dataset), same classes and augmentation."""
        idx = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
        if idx.size == 0:
            idx = idx.astype(np.int64).reshape(0)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(
                f"subset indices must be a 1-D sequence of integers, got shape {idx.shape} and"
                f" dtype {idx.dtype}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise ValueError(
                f"subset indices must lie in [0, {len(self)}), got {idx.min()}..{idx.max()}"
            )
        return ImageDataset(self._source, self.classes, self.info, self._indices[idx], self.train)

    def with_train(self, train: bool) -> ImageDataset:
        """The same items with the training augmentation switched on or off."""
        return ImageDataset(self._source, self.classes, self.info, self._indices, train)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All items stacked: images (N, 3, H, W) float32 and labels (N,) int64, in order.

        Instant for mini datasets without augmentation; otherwise every item is loaded.
        """
        labels = torch.from_numpy(self.labels.copy())
        if isinstance(self._source, TensorSource) and not self.train:
            return self._source.images[torch.from_numpy(self._indices)], labels
        if len(self) == 0:
            size = self.info.image_size
            return torch.zeros(0, 3, size, size), labels
        return torch.stack([self[i][0] for i in range(len(self))]), labels

    def __repr__(self) -> str:
        return (
            f"ImageDataset({self.info.name!r}, {len(self)} images, {len(self.classes)} classes,"
            f" train={self.train})"
        )


# --------------------------------------------------------------------------------------------------
# the splits of a registered dataset


@functools.cache
def _mini_source(name: str, split: str) -> tuple[TensorSource, tuple[str, ...]]:
    domain = mini.generate(name)
    x = domain.x_train if split == "train" else domain.x_test
    y = domain.y_train if split == "train" else domain.y_test
    images = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).float()  # copy: x is read-only
    images = images.div_(255.0).sub_(MINI_MEAN[0]).div_(MINI_STD[0]).contiguous()
    return TensorSource(images, np.asarray(y, dtype=np.int64), MINI_SHIFT), domain.classes


def load_split(
    name: str, split: str, data_dir: str | os.PathLike = "data", train: bool = False
) -> ImageDataset:
    """One split of a registered dataset.

    Args:
        name: a registered dataset (see :func:`zoo.data.registry.available_datasets`).
        split: "train" or "test".
        data_dir: where paper datasets live (``<data_dir>/<name>/``); unused by mini datasets.
        train: apply the dataset's training augmentation.

    Raises:
        ValueError: unknown name or split.
        DatasetNotFoundError: a paper dataset is not present (nothing is downloaded).
    """
    info = get_info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if info.benchmark == "mini":
        source, classes = _mini_source(name, split)
        return ImageDataset(source, classes, info, train=train)
    if info.benchmark == "user":
        from zoo.data import user

        source, classes, splits = user.collection(name)
        return ImageDataset(source, classes, info, splits[split], train=train)
    source, classes, splits = paper.collection(name, dataset_path(name, data_dir))
    return ImageDataset(source, classes, info, splits[split], train=train)


def is_available(name: str, data_dir: str | os.PathLike = "data") -> bool:
    """True if ``name`` can be loaded: always for mini datasets, else if its files are in place."""
    if get_info(name).benchmark in ("mini", "user"):  # user: registered with its files checked
        return True
    return not paper.missing_files(PAPER_SPECS[name], dataset_path(name, data_dir))

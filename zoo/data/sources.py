"""Where the items of a dataset come from, and the transforms that turn them into tensors.

A source holds ``labels`` (N,) int64 and returns item ``j`` as a (3, H, W) float32 tensor with
``get(j, train)``:

- :class:`TensorSource`: a whole mini split as one normalised (N, 3, 32, 32) tensor. Training
  augmentation: a random shift of up to ``shift`` pixels with reflected borders (no flips: digits
  and letters are not mirror-symmetric).
- :class:`PathSource`, :class:`ArraySource`, :class:`TorchvisionSource`: paper items decoded to
  RGB PIL images, then given the paper's transform (:func:`paper_transform`): RandomResizedCrop(224)
  + horizontal flip for training, Resize(256) + CenterCrop(224) for evaluation, then ImageNet's
  mean/std.
"""

from __future__ import annotations

import abc
import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from zoo.data.paper_specs import IMAGENET_MEAN, IMAGENET_STD, PAPER_SIZE

__all__ = [
    "ArraySource",
    "DecodedSource",
    "PathSource",
    "TensorSource",
    "TorchvisionSource",
    "paper_transform",
    "rgb_loader",
    "to_rgb",
]


def _reflect_index(size: int, shift: int) -> list[torch.Tensor]:
    """Index tables for a crop at offset o in [0, 2*shift] of the reflect-padded (by ``shift``)
    axis: entry o equals ``F.pad(x, reflect)[o : o + size]`` as indices into x."""
    tables = []
    for o in range(2 * shift + 1):
        k = np.arange(size) + o - shift
        k = np.where(k < 0, -k, k)
        k = np.where(k > size - 1, 2 * (size - 1) - k, k)
        tables.append(torch.from_numpy(k.astype(np.int64)))
    return tables


class TensorSource:
    """A whole split held as one normalised (N, 3, H, W) float32 tensor."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, shift: int):
        self.images = images
        self.labels = labels
        self.shift = shift
        self._rows = _reflect_index(images.shape[2], shift) if shift else []
        self._cols = _reflect_index(images.shape[3], shift) if shift else []

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, j: int, train: bool) -> torch.Tensor:
        image = self.images[j]
        if train and self.shift:
            oy, ox = torch.randint(0, 2 * self.shift + 1, (2,)).tolist()
            return image.index_select(1, self._rows[oy]).index_select(2, self._cols[ox])
        return image.clone()  # callers may write into what they get: never hand out the cache


@functools.lru_cache(maxsize=2)
def paper_transform(train: bool) -> Any:
    """The paper's transform of an RGB PIL image to a normalised (3, 224, 224) float32 tensor."""
    from torchvision import transforms as T

    if train:
        steps = [T.RandomResizedCrop(PAPER_SIZE), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(256), T.CenterCrop(PAPER_SIZE)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class DecodedSource(abc.ABC):
    """Items decoded to PIL images, then given the paper's train or eval transform."""

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @abc.abstractmethod
    def load(self, j: int):
        """Item ``j`` as an RGB PIL image."""

    def get(self, j: int, train: bool) -> torch.Tensor:
        return paper_transform(bool(train))(self.load(j))


def to_rgb(im: Any) -> Any:
    """A decoded PIL image as 8-bit RGB, whatever its mode.

    ``convert("RGB")`` alone clips 16- and 32-bit integer images (modes ``I;16*``, ``I``) to 255,
    so a 16-bit PNG comes out nearly white: those are scaled to 8 bit first, by the smallest bit
    depth b >= 8 that holds the image's largest value (x 255 / (2^b - 1): a 16-bit image / 257, a
    12-bit one, common from scientific and industrial cameras, / 16.06, an 8-bit range unchanged);
    ``F``: x 255 when in [0, 1]. The depth is read from each image's values, since the file's mode
    says only "16-bit container".
    Transparency (``RGBA``, ``LA``, ``P`` with a transparent colour) is composited over white
    rather than dropped, which would reveal whatever colour the transparent pixels store.
    """
    import numpy as np
    from PIL import Image

    if im.mode.startswith("I;16") or im.mode in ("I", "F"):
        a = np.asarray(im, dtype=np.float64)
        top = float(a.max()) if a.size else 0.0
        if im.mode != "F" and top > 255:
            bits = int(np.ceil(np.log2(top + 1)))
            a = a * 255.0 / (2.0**bits - 1.0)
        elif im.mode == "F" and a.size and top <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))  # mode L
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


def rgb_loader(path: str | os.PathLike) -> Any:
    """The image file at ``path`` as an 8-bit RGB PIL image (decoded now, file closed; any mode,
    see :func:`to_rgb`)."""
    from PIL import Image

    with Image.open(path) as im:
        return to_rgb(im)


class PathSource(DecodedSource):
    """Image files, one path per item."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray):
        self.paths = list(paths)
        self.labels = labels

    def load(self, j: int):
        return rgb_loader(self.paths[j])


class ArraySource(DecodedSource):
    """Images held in memory as one (N, H, W, 3) uint8 array (CIFAR-style batches)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = images  # (N, H, W, 3) uint8
        self.labels = labels

    def load(self, j: int):
        from PIL import Image

        return Image.fromarray(self.images[j])


class TorchvisionSource(DecodedSource):
    """Concatenated torchvision datasets (built with transform=None); labels read from their
    metadata, images through their own ``__getitem__``."""

    def __init__(self, datasets: Sequence[Any], labels: np.ndarray):
        self.datasets = list(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in self.datasets])
        self.labels = labels

    def load(self, j: int):
        k = int(np.searchsorted(self.offsets, j, side="right") - 1)
        image = self.datasets[k][j - self.offsets[k]][0]
        return image.convert("RGB")

"""The dataset registry: every dataset of the paper benchmark and of the mini benchmark.

A name maps to a :class:`DatasetInfo` (classes, loader, split policy, image size, normalisation,
preparation instructions) and :func:`load_split` returns an :class:`ImageDataset` of (image, label)
pairs with that dataset's transforms.

- Paper datasets live under ``<data_dir>/<name>/``. They are read with torchvision's class where
  torchvision has one (always ``download=False``), else from an image-folder layout or the dataset's
  own annotation files. The official train/test split is used where one exists, else a seeded
  stratified 80/20 split (:func:`zoo.samplers.stratified_split`, seed 0). Images are 224x224 with
  ImageNet's mean/std: RandomResizedCrop(224) + horizontal flip for training, Resize(256) +
  CenterCrop(224) for evaluation. A missing dataset raises :class:`DatasetNotFoundError`, which says
  where it is expected and to run ``python scripts/prepare_data.py NAME``; nothing is downloaded.
- Mini datasets (:mod:`zoo.mini_domains`) are generated in memory from installed packages, 32x32,
  mean 0.5 / std 0.25 per channel; a whole split is one normalised float32 tensor, so indexing is a
  tensor slice. Training augmentation: a random shift of up to 3 pixels with reflected borders (no
  flips: digits and letters are not mirror-symmetric).

``python -m zoo.datasets [--data-dir DIR]`` prints a table of every dataset and whether it is present.
"""

from __future__ import annotations

import abc
import argparse
import csv
import functools
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo import mini_domains
from zoo.io import load_data_pickle
from zoo.samplers import stratified_split

__all__ = [
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageDataset",
    "available_datasets",
    "dataset_path",
    "get_info",
    "is_available",
    "load_split",
    "main",
    "prepare",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MINI_MEAN = (0.5, 0.5, 0.5)
MINI_STD = (0.25, 0.25, 0.25)
PAPER_SIZE = 224
SPLIT_SEED = 0  # the seed of every stratified 80/20 split
MINI_SHIFT = 3  # pixels of random translation when training on a mini dataset
BENCHMARKS = ("paper", "mini")
ROLES = ("source", "target", "fewshot_target")
SPLITS = ("train", "test")
PREPARE_CMD = "python scripts/prepare_data.py"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class DatasetNotFoundError(FileNotFoundError):
    """A paper dataset is not (fully) present under the data directory."""

    def __init__(self, name: str, path: Path, missing: Sequence[str], detail: str = ""):
        self.name = name
        self.path = Path(path)
        self.missing = list(missing)
        msg = (
            f"dataset '{name}' is not prepared: expected it at {self.path}"
            + (f" (missing: {', '.join(self.missing)})" if self.missing else "")
            + (f"; {detail}" if detail else "")
            + f". Run `{PREPARE_CMD} {name}` for where to get it and the folder layout."
        )
        super().__init__(msg)


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a dataset (no data is read to build it)."""

    name: str
    benchmark: str  # "paper" | "mini"
    role: str  # "source" | "target" | "fewshot_target"
    num_classes: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    loader: str
    split: str  # "official" | "stratified_80_20" | "generated"
    prepare: str  # human instructions


# --------------------------------------------------------------------------------------------------
# the paper's datasets


@dataclass(frozen=True)
class _PaperSpec:
    name: str
    role: str
    num_classes: int
    title: str
    url: str
    loader: str  # torchvision:<Class> | imagefolder | cifar_pickle | cub | gldv2 | imat
    split: str
    layout: str  # expected content of <data_dir>/<name>/
    required: tuple[str, ...] = ()  # relative paths that must exist (imagefolder: checked apart)
    tv_train: tuple[dict, ...] = ()  # torchvision kwargs of the datasets forming each split
    tv_test: tuple[dict, ...] = ()
    tv_kwargs: tuple[tuple[str, Any], ...] = ()
    class_depth: int = 1  # imagefolder: class = folder path this deep under images/
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    download: str = ""  # what --download does; "" = no automatic download
    notes: str = ""


_FOLDER_LAYOUT = (
    "images/<class>/*.<ext>   (or train/<class>/... and test/<class>/... for a fixed split)"
)

_PAPER: tuple[_PaperSpec, ...] = (
    # sources
    _PaperSpec(
        "resisc45",
        "source",
        45,
        "NWPU-RESISC45 (aerial scenes, 31,500 images, 700 per class)",
        "https://gcheng-nwpu.github.io/#Datasets (the NWPU-RESISC45.rar archive)",
        "imagefolder",
        "stratified_80_20",
        _FOLDER_LAYOUT
        + "\n  e.g. images/airplane/airplane_001.jpg (the archive's NWPU-RESISC45/ folder"
        " renamed to images/)",
    ),
    _PaperSpec(
        "food101",
        "source",
        101,
        "Food-101 (101,000 images; official 75,750 train / 25,250 test)",
        "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/",
        "torchvision:Food101",
        "official",
        "food-101/images/<class>/*.jpg and food-101/meta/{train,test}.json  (food-101.tar.gz extracted)",
        ("food-101/images", "food-101/meta"),
        tv_train=({"split": "train"},),
        tv_test=({"split": "test"},),
        download="torchvision.datasets.Food101(download=True) (5 GB)",
    ),
    _PaperSpec(
        "logo2k",
        "source",
        2341,
        "Logo-2K+ (167,140 images of 2,341 brands in 10 categories)",
        "https://github.com/msn199959/Logo-2k-plus-Dataset",
        "imagefolder",
        "stratified_80_20",
        "images/<category>/<brand>/*.jpg   (the archive's Logo-2K+/ folder renamed to images/; a class"
        " is a <category>/<brand> folder)",
        class_depth=2,
    ),
    _PaperSpec(
        "landmarks_v2",
        "source",
        81313,
        "Google Landmarks Dataset v2, 'clean' training subset (1,580,470 images, 81,313 landmarks)",
        "https://github.com/cvdfoundation/google-landmark (train_clean.csv and the train_*.tar shards)",
        "gldv2",
        "stratified_80_20",
        "train_clean.csv (columns landmark_id,images) and train/<a>/<b>/<c>/<image id>.jpg  (the"
        " train_000.tar ... train_499.tar shards extracted into train/)",
        ("train_clean.csv", "train"),
    ),
    _PaperSpec(
        "inat2019",
        "source",
        1010,
        "iNaturalist 2019 (268,243 images of 1,010 species)",
        "https://github.com/visipedia/inat_comp/tree/master/2019",
        "torchvision:INaturalist",
        "stratified_80_20",
        "2019/<supercategory>/<category id>/*.jpg   (train_val2019.tar.gz extracted and its"
        " train_val2019/ folder renamed to 2019/, as torchvision's INaturalist(version='2019') expects)",
        ("2019",),
        tv_kwargs=(("version", "2019"),),
        download="torchvision.datasets.INaturalist(version='2019', download=True) (82 GB)",
        notes="torchvision reads train and val images together; the official val split has 3 images"
        " per class, so a stratified 80/20 split is used.",
    ),
    _PaperSpec(
        "imat_product2019",
        "source",
        2019,
        "iMaterialist Challenge on Product Recognition 2019 (FGVC6; 1,011,532 train / 10,095 val)",
        "https://github.com/malongtech/imaterialist-product-2019 (train.json, val.json and the images)",
        "imat",
        "official",
        "train.json, val.json ({'images': [{'id', 'url', 'class'}]}), train/<id>, val/<id>  (each image"
        " file named by its id; images whose URL is dead are skipped)",
        ("train.json", "val.json", "train", "val"),
        notes="the official validation set (labelled, about 5 per class) is the test split.",
    ),
    _PaperSpec(
        "imagenet",
        "source",
        1000,
        "ImageNet ILSVRC-2012 (1.28 M train / 50,000 val)",
        "https://image-net.org/download.php (ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar,"
        " ILSVRC2012_devkit_t12.tar.gz)",
        "torchvision:ImageNet",
        "official",
        "meta.bin, train/<wnid>/*.JPEG, val/<wnid>/*.JPEG  (put the three archives in this folder and run"
        " the prepare command: torchvision's ImageNet parses them, no download)",
        ("meta.bin", "train", "val"),
        tv_train=({"split": "train"},),
        tv_test=({"split": "val"},),
        notes="the official validation set is the test split.",
    ),
    _PaperSpec(
        "places365",
        "source",
        365,
        "Places365-Standard, small (256x256) images (1.8 M train / 36,500 val)",
        "http://places2.csail.mit.edu/download.html",
        "torchvision:Places365",
        "official",
        "categories_places365.txt, places365_train_standard.txt, places365_val.txt,"
        " data_256_standard/..., val_256/...  (filelist_places365-standard.tar, train_256_places365standard.tar"
        " and val_256.tar extracted)",
        (
            "categories_places365.txt",
            "places365_train_standard.txt",
            "places365_val.txt",
            "data_256_standard",
            "val_256",
        ),
        tv_train=({"split": "train-standard"},),
        tv_test=({"split": "val"},),
        tv_kwargs=(("small", True),),
        download="torchvision.datasets.Places365(small=True, download=True) (26 GB)",
        notes="the official validation set is the test split.",
    ),
    # targets
    _PaperSpec(
        "cucumber9",
        "target",
        9,
        "CUCUMBER-9 (cucumber grades 2L, L, M, S, 2S, BL, BM, BS, C; 32x32 RGB, 2,475 train / 495 test)",
        "https://github.com/workpiles/CUCUMBER-9 (prototype_1)",
        "cifar_pickle",
        "official",
        "data_batch_1 ... data_batch_5, test_batch (and optionally batches.meta)  (the CIFAR-10-style"
        " python batches of prototype_1, directly here or in prototype_1/)",
        notes="class names come from batches.meta when present, else the order above.",
    ),
    _PaperSpec(
        "dtd",
        "target",
        47,
        "Describable Textures Dataset (5,640 images; partition 1)",
        "https://www.robots.ox.ac.uk/~vgg/data/dtd/",
        "torchvision:DTD",
        "official",
        "dtd/dtd/images/<class>/*.jpg and dtd/dtd/labels/{train,val,test}1.txt  (dtd-r1.0.1.tar.gz"
        " extracted into dtd/)",
        ("dtd/dtd",),
        tv_train=({"split": "train", "partition": 1}, {"split": "val", "partition": 1}),
        tv_test=({"split": "test", "partition": 1},),
        download="torchvision.datasets.DTD(download=True) (600 MB)",
        notes="training split = official train + val of partition 1 (3,760); test = its test (1,880).",
    ),
    _PaperSpec(
        "magnetic_tile",
        "target",
        6,
        "Magnetic Tile Defects (1,344 images: blowhole, break, crack, fray, uneven, free)",
        "https://github.com/abin24/Magnetic-tile-defect-datasets.",
        "imagefolder",
        "stratified_80_20",
        "images/MT_<Blowhole|Break|Crack|Fray|Free|Uneven>/Imgs/*.jpg  (the repository's MT_* folders"
        " moved into images/; the .png defect masks next to the images are ignored)",
        extensions=(".jpg",),
    ),
    _PaperSpec(
        "icassava",
        "target",
        5,
        "iCassava 2019 (FGVC6 cassava disease; 9,436 labelled images: cbb, cbsd, cgm, cmd, healthy)",
        "https://www.kaggle.com/c/cassava-disease/data (train.zip)",
        "imagefolder",
        "stratified_80_20",
        "images/<cbb|cbsd|cgm|cmd|healthy>/*.jpg  (train.zip's train/ folder renamed to images/)",
        notes="the competition's test images are unlabelled, so the labelled set is split 80/20.",
    ),
    _PaperSpec(
        "flowers102",
        "target",
        102,
        "Oxford Flowers-102 (8,189 images)",
        "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
        "torchvision:Flowers102",
        "official",
        "flowers-102/jpg/*.jpg, flowers-102/imagelabels.mat, flowers-102/setid.mat",
        ("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
        tv_train=({"split": "train"}, {"split": "val"}),
        tv_test=({"split": "test"},),
        download="torchvision.datasets.Flowers102(download=True) (330 MB)",
        notes="training split = official train + val (2,040); test = official test (6,149).",
    ),
    _PaperSpec(
        "pets",
        "target",
        37,
        "Oxford-IIIT Pets (7,349 images; official 3,680 trainval / 3,669 test)",
        "https://www.robots.ox.ac.uk/~vgg/data/pets/",
        "torchvision:OxfordIIITPet",
        "official",
        "oxford-iiit-pet/images/*.jpg and oxford-iiit-pet/annotations/{trainval,test}.txt",
        ("oxford-iiit-pet/images", "oxford-iiit-pet/annotations"),
        tv_train=({"split": "trainval"},),
        tv_test=({"split": "test"},),
        download="torchvision.datasets.OxfordIIITPet(download=True) (800 MB)",
    ),
    _PaperSpec(
        "flood_depth",
        "target",
        2,
        "European Flood 2013, depth task (3,710 images: relevant for estimating the inundation depth"
        " or not)",
        "https://github.com/cvjena/eu-flood-dataset (annotations) and its 'Images resized to 512"
        " pixels' archive",
        "imagefolder",
        "stratified_80_20",
        "images/{depth,no_depth}/*.jpg  -- or let the prepare command build it: put the repository"
        " checkout at raw/eu-flood-dataset/ and the extracted images (named <id>.jpg) anywhere under"
        " raw/",
        notes="class 'depth' = the images listed in relevance/depth.txt, 'no_depth' = all others.",
    ),
    _PaperSpec(
        "ucmerced",
        "target",
        21,
        "UC Merced Land Use (2,100 aerial images, 100 per class)",
        "http://weegee.vision.ucmerced.edu/datasets/landuse.html",
        "imagefolder",
        "stratified_80_20",
        "images/<class>/*.tif  (the archive's UCMerced_LandUse/Images/ folder renamed to images/)",
    ),
    # few-shot targets
    _PaperSpec(
        "cub200",
        "fewshot_target",
        200,
        "Caltech-UCSD Birds-200-2011 (11,788 images; official 5,994 train / 5,794 test)",
        "https://www.vision.caltech.edu/datasets/cub_200_2011/",
        "cub",
        "official",
        "CUB_200_2011/{images.txt, image_class_labels.txt, train_test_split.txt, classes.txt, images/}"
        "  (CUB_200_2011.tgz extracted)",
        (
            "CUB_200_2011/images.txt",
            "CUB_200_2011/image_class_labels.txt",
            "CUB_200_2011/train_test_split.txt",
            "CUB_200_2011/classes.txt",
            "CUB_200_2011/images",
        ),
    ),
    _PaperSpec(
        "cars",
        "fewshot_target",
        196,
        "Stanford Cars (16,185 images; official 8,144 train / 8,041 test)",
        "https://ai.stanford.edu/~jkrause/cars/car_dataset.html (mirrors: the original URL is gone)",
        "torchvision:StanfordCars",
        "official",
        "stanford_cars/{devkit/, cars_train/, cars_test/, cars_test_annos_withlabels.mat}",
        (
            "stanford_cars/devkit",
            "stanford_cars/cars_train",
            "stanford_cars/cars_test",
            "stanford_cars/cars_test_annos_withlabels.mat",
        ),
        tv_train=({"split": "train"},),
        tv_test=({"split": "test"},),
        notes="torchvision can no longer download it: get the files from a mirror.",
    ),
    _PaperSpec(
        "belga_logos",
        "fewshot_target",
        37,
        "BelgaLogos (10,000 press images; the local ground truth boxes 37 different logos)",
        "http://www-sop.inria.fr/members/Alexis.Joly/BelgaLogos/BelgaLogos.html",
        "imagefolder",
        "stratified_80_20",
        "images/<logo>/*.jpg  (one crop per bounding box of the local ground truth, in the folder of"
        " its logo)",
        notes="classification of the annotated logo boxes (37 classes), as the paper's 37 classes imply.",
    ),
)
_PAPER_SPECS = {s.name: s for s in _PAPER}


def _paper_prepare_text(spec: _PaperSpec) -> str:
    lines = [
        spec.title,
        f"  get it from: {spec.url}",
        f"  put it under <data_dir>/{spec.name}/ as: {spec.layout}",
    ]
    if spec.split == "stratified_80_20":
        lines.append(f"  split: seeded stratified 80/20 (seed {SPLIT_SEED})")
    else:
        lines.append("  split: the official one")
    if spec.notes:
        lines.append(f"  note: {spec.notes}")
    lines.append(
        f"  automatic download: `{PREPARE_CMD} {spec.name} --download` uses {spec.download}"
        if spec.download
        else "  automatic download: none (licence or hosting requires a manual download)"
    )
    return "\n".join(lines)


def _build_infos() -> dict[str, DatasetInfo]:
    infos = {}
    for spec in _PAPER:
        infos[spec.name] = DatasetInfo(
            name=spec.name,
            benchmark="paper",
            role=spec.role,
            num_classes=spec.num_classes,
            image_size=PAPER_SIZE,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            loader=spec.loader,
            split=spec.split,
            prepare=_paper_prepare_text(spec),
        )
    for name, spec in mini_domains.MINI_DOMAINS.items():
        infos[name] = DatasetInfo(
            name=name,
            benchmark="mini",
            role=spec.role,
            num_classes=len(spec.classes),
            image_size=mini_domains.SIZE,
            mean=MINI_MEAN,
            std=MINI_STD,
            loader=f"mini:{spec.loader}",
            split=spec.split,
            prepare=f"{spec.description}. Nothing to prepare: generated in memory from installed"
            f" packages (`{PREPARE_CMD} {name}` reports its sizes).",
        )
    return infos


_INFOS = _build_infos()


def get_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; an unknown name raises ValueError listing the known ones."""
    try:
        return _INFOS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_INFOS)}") from None


def available_datasets(benchmark: str | None = None, role: str | None = None) -> list[str]:
    """Registered dataset names (registry order: paper sources, targets, few-shot, then mini),
    optionally only those of one benchmark ("paper" | "mini") and/or one role."""
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    return [
        n
        for n, i in _INFOS.items()
        if (benchmark is None or i.benchmark == benchmark) and (role is None or i.role == role)
    ]


def dataset_path(name: str, data_dir: str | os.PathLike = "data") -> Path:
    """Where a paper dataset is expected: ``<data_dir>/<name>`` (absolute)."""
    get_info(name)
    return Path(data_dir).expanduser().resolve() / name


def _missing(spec: _PaperSpec, root: Path) -> list[str]:
    if spec.loader == "imagefolder":
        fixed = (root / "train").is_dir() and (root / "test").is_dir()
        return [] if fixed or (root / "images").is_dir() else ["images/ (or train/ and test/)"]
    if spec.loader == "cifar_pickle":
        return [] if _cifar_dir(root) is not None else ["data_batch_1..5 and test_batch"]
    return [rel for rel in spec.required if not (root / rel).exists()]


def is_available(name: str, data_dir: str | os.PathLike = "data") -> bool:
    """True if ``name`` can be loaded: always for mini datasets, else if its files are in place."""
    if get_info(name).benchmark == "mini":
        return True
    return not _missing(_PAPER_SPECS[name], dataset_path(name, data_dir))


# --------------------------------------------------------------------------------------------------
# sources: where the items of a dataset come from


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


class _TensorSource:
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
def _paper_transform(train: bool):
    from torchvision import transforms as T

    if train:
        steps = [T.RandomResizedCrop(PAPER_SIZE), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(256), T.CenterCrop(PAPER_SIZE)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


class _DecodedSource(abc.ABC):
    """Items decoded to PIL images, then given the paper's train or eval transform."""

    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @abc.abstractmethod
    def load(self, j: int):
        """Item ``j`` as an RGB PIL image."""

    def get(self, j: int, train: bool) -> torch.Tensor:
        return _paper_transform(bool(train))(self.load(j))


def _rgb_loader(path: str | os.PathLike):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


class _PathSource(_DecodedSource):
    def __init__(self, paths: Sequence[str], labels: np.ndarray):
        self.paths = list(paths)
        self.labels = labels

    def load(self, j: int):
        return _rgb_loader(self.paths[j])


class _ArraySource(_DecodedSource):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images = images  # (N, H, W, 3) uint8
        self.labels = labels

    def load(self, j: int):
        from PIL import Image

        return Image.fromarray(self.images[j])


class _TorchvisionSource(_DecodedSource):
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


# --------------------------------------------------------------------------------------------------
# the dataset object


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
        source = _TensorSource(images.float().contiguous(), labels, shift)
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
        if isinstance(self._source, _TensorSource) and not self.train:
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
# mini datasets


@functools.cache
def _mini_source(name: str, split: str) -> tuple[_TensorSource, tuple[str, ...]]:
    domain = mini_domains.generate(name)
    x = domain.x_train if split == "train" else domain.x_test
    y = domain.y_train if split == "train" else domain.y_test
    images = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).float()  # copy: x is read-only
    images = images.div_(255.0).sub_(MINI_MEAN[0]).div_(MINI_STD[0]).contiguous()
    return _TensorSource(images, np.asarray(y, dtype=np.int64), MINI_SHIFT), domain.classes


# --------------------------------------------------------------------------------------------------
# paper datasets


def _check_classes(name: str, classes: Sequence[str], where: Path) -> None:
    expected = _INFOS[name].num_classes
    if len(classes) != expected:
        raise ValueError(
            f"dataset '{name}' at {where} has {len(classes)} classes, expected {expected}; check the"
            f" folder layout (`{PREPARE_CMD} {name}` prints it)"
        )


def _scan_folder(folder: Path, depth: int, extensions: tuple[str, ...]):
    """Classes = folders ``depth`` levels under ``folder`` holding images (searched recursively).

    Returns (classes sorted, image paths sorted within class, labels)."""
    level = [folder]
    for _ in range(depth):
        level = sorted(p for d in level for p in d.iterdir() if p.is_dir())
    classes, paths, labels = [], [], []
    for class_dir in level:
        files = sorted(
            os.path.join(dirpath, f)
            for dirpath, _, names in os.walk(class_dir, followlinks=True)
            for f in names
            if f.lower().endswith(extensions)
        )
        if files:
            labels += [len(classes)] * len(files)
            classes.append(class_dir.relative_to(folder).as_posix())
            paths += files
    return classes, paths, np.asarray(labels, dtype=np.int64)


def _load_imagefolder(spec: _PaperSpec, root: Path):
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
        return _PathSource(p_train + p_test, labels), c_train, splits
    classes, paths, labels = _scan_folder(root / "images", spec.class_depth, spec.extensions)
    return _PathSource(paths, labels), classes, None


def _cifar_dir(root: Path) -> Path | None:
    for d in (root, root / "prototype_1"):
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        if all((d / n).is_file() for n in names):
            return d
    return None


_CUCUMBER_CLASSES = ("2L", "L", "M", "S", "2S", "BL", "BM", "BS", "C")


def _load_cifar_pickle(spec: _PaperSpec, root: Path):
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
    classes = list(_CUCUMBER_CLASSES)
    if (folder / "batches.meta").is_file():
        names = read(folder / "batches.meta").get("label_names")
        if names:
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in names]
    source = _ArraySource(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))
    return source, classes, splits


def _read_table(path: Path) -> list[list[str]]:
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def _load_cub(spec: _PaperSpec, root: Path):
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
        _PathSource(files, labels),
        classes,
        {
            "train": np.flatnonzero(train),
            "test": np.flatnonzero(~train),
        },
    )


def _load_gldv2(spec: _PaperSpec, root: Path):
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
    return _PathSource(paths, np.asarray(labels, dtype=np.int64)), classes, None


def _load_imat(spec: _PaperSpec, root: Path):
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
    return _PathSource(paths, labels), classes, splits


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


def _make_torchvision(spec: _PaperSpec, root: Path, kwargs: dict, download: bool = False):
    import torchvision.datasets as tvd

    cls = getattr(tvd, spec.loader.split(":", 1)[1])
    extra = dict(spec.tv_kwargs)
    if cls is tvd.ImageNet:  # ImageNet has no download argument; it parses archives in root
        return cls(root=str(root), **extra, **kwargs)
    if cls is tvd.INaturalist:
        extra["loader"] = _rgb_loader
    return cls(root=str(root), download=download, **extra, **kwargs)


def _load_torchvision(spec: _PaperSpec, root: Path):
    if spec.name == "inat2019":
        ds = _make_torchvision(spec, root, {})
        paths = [os.path.join(ds.root, ds.all_categories[c], f) for c, f in ds.index]
        labels = np.asarray([c for c, _ in ds.index], dtype=np.int64)
        return _PathSource(paths, labels), list(ds.all_categories), None
    datasets, splits, n = [], {}, 0
    for split, parts in (("train", spec.tv_train), ("test", spec.tv_test)):
        start = n
        for kwargs in parts:
            datasets.append(_make_torchvision(spec, root, kwargs))
            n += len(datasets[-1])
        splits[split] = np.arange(start, n)
    labels = np.concatenate([_torchvision_labels(d) for d in datasets])
    return _TorchvisionSource(datasets, labels), _torchvision_classes(datasets[0]), splits


_LOADERS = {
    "imagefolder": _load_imagefolder,
    "cifar_pickle": _load_cifar_pickle,
    "cub": _load_cub,
    "gldv2": _load_gldv2,
    "imat": _load_imat,
}


@functools.cache
def _paper_collection(name: str, root: Path):
    """(source, classes, {split: indices into source}) of a present paper dataset, cached."""
    spec = _PAPER_SPECS[name]
    missing = _missing(spec, root)
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


def load_split(
    name: str, split: str, data_dir: str | os.PathLike = "data", train: bool = False
) -> ImageDataset:
    """One split of a registered dataset.

    Args:
        name: a registered dataset (see :func:`available_datasets`).
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
    source, classes, splits = _paper_collection(name, dataset_path(name, data_dir))
    return ImageDataset(source, classes, info, splits[split], train=train)


# --------------------------------------------------------------------------------------------------
# preparation and the overview table


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


def _prepare_paper(spec: _PaperSpec, root: Path, download: bool) -> list[str]:
    out = []
    if spec.name == "imagenet" and _missing(spec, root):
        archives = [
            "ILSVRC2012_devkit_t12.tar.gz",
            "ILSVRC2012_img_train.tar",
            "ILSVRC2012_img_val.tar",
        ]
        if all((root / a).is_file() for a in archives):
            out.append("  parsing the ImageNet archives with torchvision (this takes hours) ...")
            for kwargs in spec.tv_train + spec.tv_test:
                _make_torchvision(spec, root, kwargs)
    if spec.name == "flood_depth" and _missing(spec, root) and (root / "raw").is_dir():
        out.append(_arrange_flood_depth(root))
    if download and _missing(spec, root):
        if not spec.download:
            out.append("  --download: this dataset cannot be downloaded automatically")
        else:
            out.append(f"  downloading with {spec.download} ...")
            root.mkdir(parents=True, exist_ok=True)
            if spec.name == "inat2019":
                _make_torchvision(spec, root, {}, download=True)
            for kwargs in spec.tv_train + spec.tv_test:
                _make_torchvision(spec, root, kwargs, download=True)
    return out


def prepare(name: str, data_dir: str | os.PathLike = "data", download: bool = False) -> str:
    """Prepare what can be prepared for ``name`` and return a human-readable report.

    Mini datasets are generated (and timed); paper datasets get their instructions, their status,
    and -- only with ``download=True`` and where torchvision can -- a download. ImageNet archives and
    the European Flood raw files are turned into the expected layout when present.
    """
    info = get_info(name)
    if info.benchmark == "mini":
        start = time.perf_counter()
        domain = mini_domains.generate(name)
        seconds = time.perf_counter() - start
        return (
            f"{name}: {len(domain.classes)} classes, train {len(domain.y_train)}, test"
            f" {len(domain.y_test)} images, generated in {seconds:.2f} s (in memory; nothing written)"
        )
    spec = _PAPER_SPECS[name]
    root = dataset_path(name, data_dir)
    lines = [f"{name}: {info.prepare}", *_prepare_paper(spec, root, download)]
    missing = _missing(spec, root)
    if missing:
        lines.append(f"  status: NOT PRESENT at {root} (missing: {', '.join(missing)})")
    else:
        _, _, splits = _paper_collection(name, root)
        lines.append(
            f"  status: present at {root}: train {len(splits['train'])}, test {len(splits['test'])}"
            " images"
        )
    return "\n".join(lines)


def summary(data_dir: str | os.PathLike = "data") -> list[dict[str, Any]]:
    """One row per registered dataset: name, benchmark, role, classes, train, test, available
    (train/test image counts are None for absent paper datasets)."""
    rows = []
    for name, info in _INFOS.items():
        present = is_available(name, data_dir)
        n_train = n_test = None
        if info.benchmark == "mini":
            n_train, n_test = mini_domains.split_sizes(name)
        elif present:
            _, _, splits = _paper_collection(name, dataset_path(name, data_dir))
            n_train, n_test = len(splits["train"]), len(splits["test"])
        rows.append(
            {
                "name": name,
                "benchmark": info.benchmark,
                "role": info.role,
                "classes": info.num_classes,
                "train": n_train,
                "test": n_test,
                "available": present,
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zoo.datasets", description="List every registered dataset."
    )
    parser.add_argument("--data-dir", default="data", help="where paper datasets live")
    args = parser.parse_args(argv)
    rows = summary(args.data_dir)
    header = ("name", "benchmark", "role", "classes", "train", "test", "available")
    table = [
        (
            r["name"],
            r["benchmark"],
            r["role"],
            str(r["classes"]),
            "-" if r["train"] is None else str(r["train"]),
            "-" if r["test"] is None else str(r["test"]),
            "yes" if r["available"] else "no",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(row[k]) for row in table)) for k, h in enumerate(header)]
    right = {3, 4, 5}

    def fmt(cells) -> str:
        return "  ".join(
            c.rjust(w) if k in right else c.ljust(w) for k, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    print(f"datasets (paper data under {Path(args.data_dir).expanduser().resolve()})")
    print(fmt(header))
    print(fmt(["-" * w for w in widths]))
    for row in table:
        print(fmt(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

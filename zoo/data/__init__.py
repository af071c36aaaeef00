"""The datasets of the paper benchmark and of the mini benchmark.

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
- Mini datasets (:mod:`zoo.data.mini`) are generated in memory from installed packages, 32x32,
  mean 0.5 / std 0.25 per channel; a whole split is one normalised float32 tensor, so indexing is a
  tensor slice. Training augmentation: a random shift of up to 3 pixels with reflected borders (no
  flips: digits and letters are not mirror-symmetric). ``mini_general`` joins mini_animals,
  mini_shapes and mini_textures (the generalist's data).

Modules: :mod:`~zoo.data.registry` (names, :class:`DatasetInfo`, lookups, errors),
:mod:`~zoo.data.paper_specs` (the paper's spec table), :mod:`~zoo.data.paper` (its loaders and
split policy), :mod:`~zoo.data.mini` (the mini domains), :mod:`~zoo.data.sources` (item sources and
transforms), :mod:`~zoo.data.loading` (:func:`load_split`, :class:`ImageDataset`) and
:mod:`~zoo.data.prepare` (preparation and the overview table) and :mod:`~zoo.data.fingerprint`
(:func:`split_fingerprint`: the identity of a split, part of every artefact's key).

``python -m zoo.data [--data-dir DIR]`` prints a table of every dataset and whether it is present.
"""

from zoo.data.fingerprint import clear_fingerprint_cache, dataset_fingerprint, split_fingerprint
from zoo.data.loading import ImageDataset, is_available, load_split
from zoo.data.prepare import main, prepare, summary
from zoo.data.registry import (
    DatasetInfo,
    DatasetNotFoundError,
    available_datasets,
    dataset_path,
    get_info,
)

__all__ = [
    "DatasetInfo",
    "DatasetNotFoundError",
    "ImageDataset",
    "available_datasets",
    "clear_fingerprint_cache",
    "dataset_fingerprint",
    "dataset_path",
    "get_info",
    "is_available",
    "load_split",
    "main",
    "prepare",
    "split_fingerprint",
    "summary",
]

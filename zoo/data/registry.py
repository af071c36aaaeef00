"""The dataset registry: one :class:`DatasetInfo` per name, built from the paper's spec table
(:mod:`zoo.data.paper_specs`) and the mini domains (:mod:`zoo.data.mini`); lookups and errors.

Nothing here reads data. Registry order: paper sources, targets, few-shot targets, then the mini
domains (sources, the union ``mini_general``, targets).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zoo.data import mini
from zoo.data.paper_specs import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER,
    PAPER_SIZE,
    PREPARE_CMD,
    prepare_text,
)

__all__ = [
    "BENCHMARKS",
    "ROLES",
    "SPLITS",
    "DatasetInfo",
    "DatasetNotFoundError",
    "available_datasets",
    "dataset_path",
    "get_info",
    "register_runtime",
]

MINI_MEAN = (0.5, 0.5, 0.5)
MINI_STD = (0.25, 0.25, 0.25)
BENCHMARKS = ("paper", "mini", "user")
ROLES = ("source", "target", "fewshot_target")
SPLITS = ("train", "test")


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
    split: str  # "official" | "stratified_80_20" | "generated" | "parts" (a union's own splits)
    prepare: str  # human instructions


def _build_infos() -> dict[str, DatasetInfo]:
    infos = {}
    for spec in PAPER:
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
            prepare=prepare_text(spec),
        )
    for name, spec in mini.MINI_DOMAINS.items():
        infos[name] = DatasetInfo(
            name=name,
            benchmark="mini",
            role=spec.role,
            num_classes=len(spec.classes),
            image_size=mini.SIZE,
            mean=MINI_MEAN,
            std=MINI_STD,
            loader=f"mini:{spec.loader}",
            split=spec.split,
            prepare=f"{spec.description}. Nothing to prepare: generated in memory from installed"
            f" packages (`{PREPARE_CMD} {name}` reports its sizes).",
        )
    return infos


_INFOS = _build_infos()
# datasets registered while a process runs (a user's image folder, zoo.data.user): benchmark "user"
_RUNTIME: dict[str, DatasetInfo] = {}


def register_runtime(info: DatasetInfo) -> None:
    """Register a dataset for this process (``benchmark="user"``; :mod:`zoo.data.user` holds its
    items). A built-in name cannot be taken; registering a name again replaces its info."""
    if info.name in _INFOS:
        raise ValueError(f"dataset name {info.name!r} is taken by a built-in dataset")
    if info.benchmark != "user":
        raise ValueError(f"runtime datasets have benchmark 'user', not {info.benchmark!r}")
    _RUNTIME[info.name] = info


def get_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; an unknown name raises ValueError listing the known ones."""
    try:
        return _INFOS[name] if name in _INFOS else _RUNTIME[name]
    except (KeyError, TypeError):
        known = ", ".join([*_INFOS, *_RUNTIME])
        raise ValueError(f"unknown dataset {name!r}; known: {known}") from None


def available_datasets(benchmark: str | None = None, role: str | None = None) -> list[str]:
    """Registered dataset names (registry order: paper sources, targets, few-shot, then mini),
    optionally only those of one benchmark ("paper" | "mini" | "user": the datasets registered in
    this process, listed only when asked for) and/or one role."""
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}; valid: {', '.join(ROLES)}")
    return [
        n
        # datasets registered at run time are listed only when asked for (benchmark "user")
        for n, i in {**_INFOS, **(_RUNTIME if benchmark == "user" else {})}.items()
        if (benchmark is None or i.benchmark == benchmark) and (role is None or i.role == role)
    ]


def dataset_path(name: str, data_dir: str | os.PathLike = "data") -> Path:
    """Where a paper dataset is expected: ``<data_dir>/<name>`` (absolute)."""
    get_info(name)
    return Path(data_dir).expanduser().resolve() / name

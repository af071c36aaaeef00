"""Preparing datasets and the overview table behind ``python -m zoo.data [--data-dir DIR]``."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.data import mini, paper
from zoo.data.loading import is_available
from zoo.data.paper_specs import PAPER_SPECS
from zoo.data.registry import available_datasets, dataset_path, get_info

__all__ = ["main", "prepare", "summary"]


def prepare(name: str, data_dir: str | os.PathLike = "data", download: bool = False) -> str:
    """Prepare what can be prepared for ``name`` and return a human-readable report.

    Mini datasets are generated (and timed); paper datasets get their instructions, their status,
    and -- only with ``download=True`` and where torchvision can -- a download. ImageNet archives and
    the European Flood raw files are turned into the expected layout when present.
    """
    info = get_info(name)
    if info.benchmark == "mini":
        start = time.perf_counter()
        domain = mini.generate(name)
        seconds = time.perf_counter() - start
        return (
            f"{name}: {len(domain.classes)} classes, train {len(domain.y_train)}, test"
            f" {len(domain.y_test)} images, generated in {seconds:.2f} s (in memory; nothing written)"
        )
    spec = PAPER_SPECS[name]
    root = dataset_path(name, data_dir)
    lines = [f"{name}: {info.prepare}", *paper.prepare_paper(spec, root, download)]
    missing = paper.missing_files(spec, root)
    if missing:
        lines.append(f"  status: NOT PRESENT at {root} (missing: {', '.join(missing)})")
    else:
        _, _, splits = paper.collection(name, root)
        lines.append(
            f"  status: present at {root}: train {len(splits['train'])}, test {len(splits['test'])}"
            " images"
        )
    return "\n".join(lines)


def summary(data_dir: str | os.PathLike = "data") -> list[dict[str, Any]]:
    """One row per registered dataset: name, benchmark, role, classes, train, test, available
    (train/test image counts are None for absent paper datasets)."""
    rows = []
    for name in available_datasets():
        info = get_info(name)
        present = is_available(name, data_dir)
        n_train = n_test = None
        if info.benchmark == "mini":
            n_train, n_test = mini.split_sizes(name)
        elif present:
            _, _, splits = paper.collection(name, dataset_path(name, data_dir))
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
    """Print one row per registered dataset (see :func:`summary`); returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m zoo.data", description="List every registered dataset."
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

"""Where the zoo's expert cards lie and how to read them, without importing torch.

A stored expert is a folder ``<zoo_dir>/<expert_id>/`` holding ``card.json`` (its description:
architecture, domains, sources, weights sha256; written by :mod:`zoo.store`). The analysis reads
cards for the source-accuracy tables; the store and the stages read them to list entries.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.io import is_temporary, read_json

CARD = "card.json"


def expert_ids(zoo_dir: str | os.PathLike) -> list[str]:
    """Experts with a card under ``zoo_dir`` (sorted); temporary and hidden folders are skipped."""
    zoo_dir = Path(zoo_dir)
    if not zoo_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in zoo_dir.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and not is_temporary(p)
        and (p / CARD).is_file()
    )


def load_card(expert_id: str, zoo_dir: str | os.PathLike) -> dict:
    """The card of ``expert_id``; an unknown expert raises ValueError listing the known ones."""
    path = Path(zoo_dir) / expert_id / CARD
    if not path.is_file():
        known = expert_ids(zoo_dir)
        raise ValueError(
            f"unknown expert {expert_id!r} in {zoo_dir}; known: {', '.join(known) or '(empty zoo)'}"
        )
    return read_json(path)

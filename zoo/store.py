"""The expert store: one folder per expert, a manifest derived from the cards.

Layout (every file written atomically through :mod:`core.io`)::

    <zoo_dir>/<expert_id>/weights.safetensors   the expert's state dict (safetensors: never unpickled)
    <zoo_dir>/<expert_id>/card.json             what the expert is (written last: a card = a complete expert)
    <zoo_dir>/<expert_id>/source_profile.npz    per domain: class-mean penultimate features, class counts
    <zoo_dir>/manifest.csv                      one row per entry, derived from the cards
    <zoo_dir>/.locks/<expert_id>.lock           held while the expert is trained or stored
    <zoo_dir>/.locks/manifest.lock              held while the manifest is rebuilt

An *entry* is what can be fine-tuned: ``<expert_id>`` for a single-domain (or pretrained) expert,
``<expert_id>@<domain>`` for one domain of a multi-domain expert.

Card fields: ``expert_id``, ``entries``, ``arch``, ``arch_kwargs``, ``type``
(single|shared|multi_bn|adapter|pretrained), ``sources`` (datasets trained on), ``domains`` (one per
head: ``name``, ``num_classes``, ``classes``, ``datasets``, ``source_accuracy``), ``source_accuracy``
(per source dataset, test split), ``input_size``, ``mean``, ``std``, ``recipe``, ``train_seconds``,
``device``, ``precision``, ``config_hash``, ``git_revision``, ``created``, ``init``, ``pretrained``,
and for integrity ``tensors`` (name -> shape), ``weights_sha256`` and ``profile_sha256`` (the
source profile written with these weights; checked when the profile is read).

Concurrent writers (several jobs on one shared store, NFS included) are serialised by lock files
(:mod:`core.locks`): :func:`save_expert` holds the expert's lock (the trainer holds it for the whole
training, see :func:`expert_lock`), :func:`write_manifest` the manifest's lock around its scan and
its write, so a manifest written last has seen every card stored before it started.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from core.cards import CARD, expert_ids, load_card
from core.io import (
    TMP_MARK,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    is_temporary,
)
from core.keys import expert_of, join_entry, split_entry
from core.locks import FileLock
from zoo.models import Classifier, create_model
from zoo.multidomain import KINDS as MULTI_KINDS
from zoo.multidomain import MultiDomainClassifier

log = logging.getLogger(__name__)

WEIGHTS = "weights.safetensors"
PROFILE = "source_profile.npz"
MANIFEST = "manifest.csv"
LOCKS = ".locks"
EXPERT_TYPES = ("single", "pretrained", *MULTI_KINDS)
CARD_REQUIRED = ("arch", "arch_kwargs", "type", "domains", "input_size", "mean", "std")
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")


@dataclass
class Entry:
    """A ready-to-use zoo entry: ``model`` is in eval mode with the entry's domain and head."""

    entry_id: str
    expert_id: str
    domain: str
    model: Classifier
    card: dict
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int


def check_expert_id(expert_id: str) -> str:
    if not isinstance(expert_id, str) or not _ID_RE.match(expert_id):
        raise ValueError(
            f"bad expert id {expert_id!r}: use letters, digits and _ . + - (no '@' or '/'), "
            "starting with a letter or digit"
        )
    return expert_id


def expert_lock(zoo_dir: str | os.PathLike, expert_id: str) -> FileLock:
    """The (unclaimed) lock of ``expert_id``: ``<zoo_dir>/.locks/<expert_id>.lock``.

    Whoever trains, resumes or stores the expert holds it, so two jobs never train one expert into
    one checkpoint nor interleave its files; it is re-entrant within a thread (the trainer holds it
    while :func:`save_expert` takes it again).
    """
    return FileLock(Path(zoo_dir) / LOCKS / f"{check_expert_id(expert_id)}.lock")


def _remove_leftovers(folder: Path, prefix: str, keep: Path | None = None) -> None:
    """Remove ``<folder>/.<prefix>.tmp-*`` (files or folders) left by killed writers.

    Call it holding the lock of whatever writes them: then no live writer owns one.
    """
    for p in folder.glob(f".{prefix}{TMP_MARK}*"):
        if p != keep and is_temporary(p):
            log.info("removing %s, left by an interrupted write", p)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


def entry_ids(card: dict) -> list[str]:
    """The fine-tunable entries of an expert described by ``card``."""
    expert_id = card["expert_id"]
    if card["type"] in MULTI_KINDS:
        return [join_entry(expert_id, d["name"]) for d in card["domains"]]
    return [expert_id]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_expert(
    zoo_dir: str | os.PathLike,
    expert_id: str,
    model: nn.Module,
    card: dict,
    source_profile: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Path:
    """Write ``model``'s weights, ``card`` and ``source_profile`` under ``<zoo_dir>/<expert_id>/``.

    Args:
        model: a :class:`Classifier` (single / pretrained) or :class:`MultiDomainClassifier`.
        card: at least ``arch, arch_kwargs, type, domains, input_size, mean, std``; the store adds
            ``expert_id``, ``entries``, ``tensors``, ``weights_sha256``, ``profile_sha256`` and
            ``created`` (if absent).
        source_profile: domain name -> (class-mean features ``(C, D)`` float64, class counts ``(C,)``
            int64); may be empty (an expert imported without its source data).

    Returns the expert folder. The card is written last, so a folder with a card is complete; an
    expert already stored under ``expert_id`` is replaced as a whole (its card is removed first).
    Holds :func:`expert_lock` (waiting for another writer of the same expert), and removes the
    staging folders that killed saves of this expert left.
    """
    check_expert_id(expert_id)
    missing = [k for k in CARD_REQUIRED if k not in card]
    if missing:
        raise ValueError(f"card of {expert_id!r} lacks fields {missing}")
    if card["type"] not in EXPERT_TYPES:
        raise ValueError(f"unknown expert type {card['type']!r}; known: {', '.join(EXPERT_TYPES)}")
    domain_names = [d["name"] for d in card["domains"]]
    for name, (means, counts) in source_profile.items():
        if name not in domain_names:
            raise ValueError(
                f"source profile domain {name!r} not in the card's domains {domain_names}"
            )
        if means.ndim != 2 or counts.shape != (means.shape[0],):
            raise ValueError(
                f"source profile of {name!r}: means {means.shape} and counts {counts.shape} "
                "must be (C, D) and (C,)"
            )

    with expert_lock(zoo_dir, expert_id):
        _remove_leftovers(Path(zoo_dir), expert_id)
        return _save_expert_locked(zoo_dir, expert_id, model, card, source_profile)


def _save_expert_locked(
    zoo_dir: str | os.PathLike,
    expert_id: str,
    model: nn.Module,
    card: dict,
    source_profile: dict[str, tuple[np.ndarray, np.ndarray]],
) -> Path:
    from safetensors.torch import save_file

    expert_dir = Path(zoo_dir) / expert_id
    # Everything is written to a staging folder first (hidden, so never listed as an expert), then
    # moved in card last, after the old card is gone: a reader sees the old expert, no expert, or
    # the new one, never new weights under an old card. A crash mid-way leaves a folder without a
    # card, which the store treats as absent (training it again replaces it).
    staging = Path(zoo_dir) / f".{expert_id}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        # safetensors refuses views sharing storage; contiguous() also turns channels-last into standard
        tensors = {
            k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()
        }
        with atomic_path(staging / WEIGHTS) as tmp:
            save_file(tensors, str(tmp), metadata={"format": "pt", "expert_id": expert_id})
            # safetensors creates its file 0600; a store is read by other users and jobs
            os.chmod(tmp, _FILE_MODE)
            sha = _sha256(tmp)

        arrays: dict[str, np.ndarray] = {}
        for name, (means, counts) in source_profile.items():
            arrays[f"{name}.means"] = np.asarray(means, dtype=np.float64)
            arrays[f"{name}.counts"] = np.asarray(counts, dtype=np.int64)
        with atomic_path(staging / PROFILE) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            profile_sha = _sha256(tmp)

        full = dict(card)
        full["expert_id"] = expert_id
        full["tensors"] = {k: list(v.shape) for k, v in tensors.items()}
        full["weights_sha256"] = sha
        full["profile_sha256"] = profile_sha
        full.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        full["entries"] = entry_ids(full)
        atomic_write_json(staging / CARD, full)

        expert_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            (expert_dir / CARD).unlink()
        for name in (WEIGHTS, PROFILE, CARD):
            os.replace(staging / name, expert_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return expert_dir


def has_expert(zoo_dir: str | os.PathLike, expert_id: str) -> bool:
    """True when ``expert_id`` is complete in the store (its card and weights are there).

    Whether the stored expert is the one a config asks for is a separate question: compare the
    card's ``config_hash`` (``zoo.train.train_zoo_main`` does).
    """
    d = Path(zoo_dir) / expert_id
    return (d / CARD).is_file() and (d / WEIGHTS).is_file()


def entry_fingerprint(entry_id: str, card: dict) -> str:
    """The identity of an entry's weights: the expert's ``weights_sha256`` (from its card), and
    for a domain entry ``<expert>@<domain>`` that sha256 followed by ``@<domain>``.

    A retrained expert has new weights, hence a new fingerprint for each of its entries; results
    keyed by it (fine-tuning runs) are then recognised as made from other weights.
    """
    sha = card.get("weights_sha256")
    if not isinstance(sha, str) or not sha:
        raise ValueError(
            f"the card of entry {entry_id!r} has no weights_sha256: store the expert with "
            "zoo.store.save_expert"
        )
    expert_id, domain = split_entry(entry_id)
    if card.get("expert_id", expert_id) != expert_id or (
        domain and entry_id not in entry_ids(card)
    ):
        raise ValueError(
            f"entry {entry_id!r} does not belong to the card of {card.get('expert_id')!r}"
        )
    return f"{sha}@{domain}" if domain else sha


def list_entries(zoo_dir: str | os.PathLike, experts: list[str] | None = None) -> list[str]:
    """Every fine-tunable entry of the store (experts sorted by id, domains in card order).

    ``experts`` restricts to those experts; one that is not in the store raises ``ValueError``.
    """
    known = expert_ids(zoo_dir)
    if experts is not None:
        absent = [e for e in experts if e not in known]
        if absent:
            raise ValueError(
                f"experts {absent} are not in the store {zoo_dir}; known: {', '.join(known) or '(none)'}"
            )
        known = [e for e in known if e in set(experts)]
    out: list[str] = []
    for e in known:
        out.extend(entry_ids(load_card(e, zoo_dir)))
    return out


def zoo_entries(
    zoo_dir: str | os.PathLike,
    experts: list[str] | None = None,
    entries: list[str] | None = None,
    *,
    strict: bool,
) -> list[str]:
    """The entries a stage works on: ``entries`` when given, else every entry of ``experts``, else
    every stored entry; in the store's order (experts sorted by id, domains in card order).

    ``experts`` and ``entries`` are the zoo config's ``zoo.experts`` ids and ``zoo.entries`` (or an
    ``entry=`` override). ``strict``: one that is not in the store raises ValueError naming it and
    the stored ones; else it is logged as a warning and left out (a sweep goes on with the rest).
    An empty store, or nothing left, raises ValueError either way.
    """
    stored = expert_ids(zoo_dir)
    if not stored:
        raise ValueError(
            f"empty zoo: no expert in {zoo_dir} (stored: none), so no zoo entries to fine-tune or "
            "score; train the zoo first (python train_zoo.py) or set paths.zoo_dir (or "
            "paths.out_dir) to where it was trained"
        )
    known = list_entries(zoo_dir, experts=stored)
    if entries:
        wanted = [str(e) for e in entries]
        missing = [e for e in wanted if e not in known]
        problem = f"unknown zoo entries {missing} in {zoo_dir}; known: {', '.join(known)}"
        chosen = [e for e in known if e in set(wanted)]
    elif experts:
        wanted = [str(e) for e in experts]
        missing = [e for e in wanted if e not in stored]
        problem = (
            f"experts {missing} of the zoo config are not in the store {zoo_dir} (stored: "
            f"{', '.join(stored)}); train them (python train_zoo.py) or list only stored experts "
            "in zoo.experts"
        )
        chosen = [e for e in known if expert_of(e) in set(wanted)]
    else:
        wanted, missing, problem, chosen = [], [], "", known
    if missing:
        if strict:
            raise ValueError(problem)
        log.warning("%s (left out)", problem)
    if not chosen:
        raise ValueError(
            f"no zoo entries to fine-tune or score in {zoo_dir} (configured: "
            f"{', '.join(wanted) or 'none'}; stored: {', '.join(known)}); train the zoo first "
            "(python train_zoo.py) or name stored entries with entry=... / zoo.entries"
        )
    return chosen


def _split_entry(entry_id: str, zoo_dir: str | os.PathLike) -> tuple[str, dict, str]:
    """(expert_id, card, domain) of an entry; unknown -> ValueError listing the known entries."""
    try:
        expert_id, domain = split_entry(entry_id)
    except ValueError:  # malformed: reported below as an unknown entry, with the known ones
        expert_id, domain = "", None
    card = None
    if expert_id and (Path(zoo_dir) / expert_id / CARD).is_file():
        card = load_card(expert_id, zoo_dir)
    if card is None or entry_id not in entry_ids(card):
        known = list_entries(zoo_dir)
        raise ValueError(
            f"unknown entry {entry_id!r} in {zoo_dir}; known: {', '.join(known) or '(empty zoo)'}"
        )
    return expert_id, card, domain or card["domains"][0]["name"]


def build_model(card: dict) -> nn.Module:
    """An untrained model with the structure the card describes (weights to be loaded)."""
    domains = card["domains"]
    arch_kwargs = dict(card.get("arch_kwargs") or {})
    base = create_model(card["arch"], int(domains[0]["num_classes"]), **arch_kwargs)
    if card["type"] in MULTI_KINDS:
        return MultiDomainClassifier(
            base,
            [d["name"] for d in domains],
            {d["name"]: int(d["num_classes"]) for d in domains},
            kind=card["type"],
        )
    if card["type"] not in ("single", "pretrained"):
        raise ValueError(f"unknown expert type {card['type']!r}; known: {', '.join(EXPERT_TYPES)}")
    return base


def load_weights(expert_id: str, zoo_dir: str | os.PathLike, card: dict | None = None) -> nn.Module:
    """The expert's full model (multi-domain experts: all domains) with its stored weights.

    A weights file that is corrupted, truncated, not safetensors (e.g. a pickle), or whose tensors do
    not match the card or the architecture raises ``ValueError`` naming the file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = card if card is not None else load_card(expert_id, zoo_dir)
    path = Path(zoo_dir) / expert_id / WEIGHTS
    if not path.is_file():
        raise ValueError(f"weights file missing: {path}")
    expected_sha = card.get("weights_sha256")
    if expected_sha and _sha256(path) != expected_sha:
        raise ValueError(f"corrupted weights file {path}: its sha256 differs from the card's")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ValueError(
            f"cannot read weights file {path} (corrupted or not safetensors): {e}"
        ) from e
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    if "tensors" in card and shapes != card["tensors"]:
        card_shapes = {k: list(v) for k, v in card["tensors"].items()}
        diff = sorted(
            k for k in set(shapes) | set(card_shapes) if shapes.get(k) != card_shapes.get(k)
        )
        raise ValueError(
            f"weights file {path} does not match its card: differing tensors {diff[:5]}"
        )
    model = build_model(card)
    expected = {k: list(v.shape) for k, v in model.state_dict().items()}
    if shapes != expected:
        only_file = sorted(set(shapes) - set(expected))[:5]
        only_model = sorted(set(expected) - set(shapes))[:5]
        wrong = sorted(k for k in set(shapes) & set(expected) if shapes[k] != expected[k])[:5]
        raise ValueError(
            f"weights file {path} does not fit arch {card['arch']!r} ({card['type']}): "
            f"unexpected {only_file}, missing {only_model}, wrong shape {wrong}"
        )
    model.load_state_dict(tensors, strict=True)
    return model


def load_entry(entry_id: str, zoo_dir: str | os.PathLike) -> Entry:
    """Load entry ``<expert_id>`` or ``<expert_id>@<domain>`` as an eval-mode single-domain model."""
    expert_id, card, domain = _split_entry(entry_id, zoo_dir)
    model = load_weights(expert_id, zoo_dir, card)
    if isinstance(model, MultiDomainClassifier):
        model = model.domain_view(domain)
    model.eval()
    return Entry(
        entry_id=entry_id,
        expert_id=expert_id,
        domain=domain,
        model=model,
        card=card,
        mean=tuple(float(v) for v in card["mean"]),
        std=tuple(float(v) for v in card["std"]),
        input_size=int(card["input_size"]),
    )


def load_source_profile(entry_id: str, zoo_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(class-mean features ``(C, D)`` float64, class counts ``(C,)`` int64) of the entry's source domain.

    An expert imported without its source data (a pretrained entry) has no profile: ``ValueError``.
    """
    expert_id, card, domain = _split_entry(entry_id, zoo_dir)
    path = Path(zoo_dir) / expert_id / PROFILE
    if not path.is_file():
        raise ValueError(f"source profile missing: {path}")
    expected_sha = card.get("profile_sha256")  # cards written before the field: not checked
    if expected_sha and _sha256(path) != expected_sha:
        raise ValueError(
            f"source profile {path} does not belong to its card (its sha256 differs from the "
            "card's profile_sha256): it was written by another run or corrupted; retrain the expert"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            if f"{domain}.means" not in z.files:
                arrays = None
            else:
                arrays = (
                    z[f"{domain}.means"].astype(np.float64),
                    z[f"{domain}.counts"].astype(np.int64),
                )
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, ValueError) as e:
        # ValueError: e.g. an object (pickled) array, refused by allow_pickle=False
        raise ValueError(f"cannot read source profile {path}: {e}") from e
    if arrays is None:
        raise ValueError(
            f"no source profile for entry {entry_id!r} (domain {domain!r}) in {path}: the expert "
            f"was stored without its source data (type {card['type']})"
        )
    return arrays


def write_manifest(zoo_dir: str | os.PathLike) -> Path:
    """Write ``<zoo_dir>/manifest.csv``: one row per entry, derived from the cards.

    Columns: entry_id, expert_id, domain, arch, type, sources, num_classes, source_accuracy (the
    domain's head on its test split; empty when unknown), train_seconds, input_size, init, device,
    precision, created.

    The scan of the cards and the write happen under ``<zoo_dir>/.locks/manifest.lock``: two jobs
    ending together cannot write an older scan over a newer one.
    """
    with FileLock(Path(zoo_dir) / LOCKS / "manifest.lock"):
        _remove_leftovers(Path(zoo_dir), MANIFEST)
        return _write_manifest_locked(zoo_dir)


def _write_manifest_locked(zoo_dir: str | os.PathLike) -> Path:
    import pandas as pd

    rows: list[dict[str, Any]] = []
    for expert_id in expert_ids(zoo_dir):
        card = load_card(expert_id, zoo_dir)
        for entry, dom in zip(entry_ids(card), card["domains"]):
            rows.append(
                {
                    "entry_id": entry,
                    "expert_id": expert_id,
                    "domain": dom["name"],
                    "arch": card["arch"],
                    "type": card["type"],
                    "sources": "+".join(card.get("sources", [])),
                    "num_classes": int(dom["num_classes"]),
                    "source_accuracy": dom.get("source_accuracy"),
                    "train_seconds": card.get("train_seconds"),
                    "input_size": card["input_size"],
                    "init": card.get("init"),
                    "device": card.get("device"),
                    "precision": card.get("precision"),
                    "created": card.get("created"),
                }
            )
    columns = [
        "entry_id", "expert_id", "domain", "arch", "type", "sources", "num_classes",
        "source_accuracy", "train_seconds", "input_size", "init", "device", "precision", "created",
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    path = Path(zoo_dir) / MANIFEST
    atomic_write_text(path, frame.to_csv(index=False))
    return path

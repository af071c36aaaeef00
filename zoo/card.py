"""An expert's source data, its evaluation, its source profile and its card; importing pretrained
weights as an expert.

- :func:`evaluate_expert`: source test accuracy per source dataset (and per domain) and the
  ``source_profile`` (class-mean penultimate features and class counts of the training images
  without augmentation, per domain). Runs in fp32, or under bf16 autocast on a GPU.
- :func:`build_card`: the one function that writes an expert's card, for trained and imported
  experts alike (:func:`zoo.store.save_expert` adds the store's own fields).
- :func:`import_pretrained`: an architecture's shipped weights stored as a ``pretrained`` expert.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from core.arrays import class_means
from core.io import git_revision
from core.provenance import job_dir
from zoo.models import arch_spec, create_model
from zoo.multidomain import MultiDomainClassifier
from zoo.spec import ExpertSpec, expert_config_hash
from zoo.store import save_expert

# ---------------------------------------------------------------------------------------------------
# source data


@dataclass
class DomainData:
    """The data of one source dataset.

    ``train`` yields augmented training items, ``train_eval`` the same images without augmentation
    (for the source profile), ``test`` the test split; items are ``(image (3, H, W), label)``.
    ``labels`` are the training labels ``(N,)``.
    """

    name: str
    train: Dataset
    train_eval: Dataset
    test: Dataset
    classes: list[str]
    labels: np.ndarray


def load_domain_data(
    name: str, data_dir: str | os.PathLike, *, augment: bool, max_per_class: int | None, seed: int
) -> DomainData:
    """Load a registered dataset's splits (``max_per_class`` caps the training images per class)."""
    from zoo.data import load_split
    from zoo.samplers import selection_indices

    train = load_split(name, "train", data_dir=data_dir, train=augment)
    if max_per_class is not None:
        train = train.subset(selection_indices(train.labels, int(max_per_class), seed))
    test = load_split(name, "test", data_dir=data_dir, train=False)
    return DomainData(
        name=name,
        train=train,
        train_eval=train.with_train(False),
        test=test,
        classes=list(train.classes),
        labels=np.asarray(train.labels, dtype=np.int64),
    )


def joined_label_space(data: Sequence[DomainData]) -> tuple[str, list[str], list[int]]:
    """(domain name, class names, label offset per dataset) of a single-domain expert.

    One dataset keeps its name and classes; several are joined as ``a+b+c`` with classes
    ``<dataset>/<class>``.
    """
    if len(data) == 1:
        return data[0].name, list(data[0].classes), [0]
    classes, offsets = [], []
    for dd in data:
        offsets.append(len(classes))
        classes.extend(f"{dd.name}/{c}" for c in dd.classes)
    return "+".join(dd.name for dd in data), classes, offsets


# ---------------------------------------------------------------------------------------------------
# evaluation and the source profile


@torch.no_grad()
def _features_and_logits(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    autocast: bool,
    num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (N, D) float64, predicted class (N,), labels (N,)) of ``dataset`` in order."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    feats, preds, labels = [], [], []
    head = model.heads[model.domain] if isinstance(model, MultiDomainClassifier) else model.head
    for batch in loader:
        x, y = batch[0], batch[1]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            f = model.forward_features(x.to(device, non_blocking=True))
            logits = head(f)
        feats.append(f.float().cpu().numpy().astype(np.float64))
        preds.append(logits.argmax(1).cpu().numpy())
        labels.append(np.asarray(y))
    if not feats:
        return np.zeros((0, 0)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(feats), np.concatenate(preds), np.concatenate(labels).astype(np.int64)


def card_domain(
    name: str, classes: Sequence[str], datasets: Sequence[str], source_accuracy: float | None
) -> dict[str, Any]:
    """One item of a card's ``domains``: a head of the expert and the datasets it was trained on."""
    return {
        "name": name,
        "num_classes": len(classes),
        "classes": list(classes),
        "datasets": list(datasets),
        "source_accuracy": source_accuracy,
    }


def evaluate_expert(
    model: nn.Module,
    data: Sequence[DomainData],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    autocast: bool = False,
    num_workers: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Source accuracies and source profile of a trained expert.

    Returns (domains for the card, accuracy per source dataset on its test split, source profile
    per domain: class-mean features ``(C, D)`` and class counts ``(C,)``). Multi-domain experts are
    evaluated domain by domain with that domain's head; a single-domain expert over several datasets
    predicts over the joined label space (:func:`joined_label_space`), and its accuracy on one
    dataset counts a prediction right only when it names that dataset's class.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    domains: list[dict[str, Any]] = []
    accuracy: dict[str, float] = {}
    profile: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def run(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _features_and_logits(model, dataset, batch_size, device, autocast, num_workers)

    if isinstance(model, MultiDomainClassifier):
        for dd in data:
            model.set_domain(dd.name)
            _, pred, lab = run(dd.test)
            accuracy[dd.name] = float((pred == lab).mean()) if len(lab) else float("nan")
            feats, _, lab_tr = run(dd.train_eval)
            profile[dd.name] = class_means(feats, lab_tr, len(dd.classes))
            domains.append(card_domain(dd.name, dd.classes, [dd.name], accuracy[dd.name]))
        return domains, accuracy, profile

    name, classes, offsets = joined_label_space(data)
    correct = total = 0
    feats_all, labels_all = [], []
    for dd, off in zip(data, offsets):
        _, pred, lab = run(dd.test)
        hits = int((pred == lab + off).sum())
        accuracy[dd.name] = hits / len(lab) if len(lab) else float("nan")
        correct += hits
        total += len(lab)
        feats, _, lab_tr = run(dd.train_eval)
        feats_all.append(feats)
        labels_all.append(lab_tr + off)
    profile[name] = class_means(np.concatenate(feats_all), np.concatenate(labels_all), len(classes))
    overall = correct / total if total else float("nan")
    domains.append(card_domain(name, classes, [dd.name for dd in data], overall))
    return domains, accuracy, profile


# ---------------------------------------------------------------------------------------------------
# the card


def build_card(
    spec: ExpertSpec,
    *,
    domains: Sequence[Mapping[str, Any]],
    source_accuracy: Mapping[str, float],
    config_hash: str,
    recipe: Mapping[str, Any] | None = None,
    train_seconds: float = 0.0,
    eval_seconds: float = 0.0,
    global_steps: int = 0,
    device: str = "cpu",
    precision: str = "32-true",
    init_weights_sha256: str | None = None,
) -> dict[str, Any]:
    """The card of expert ``spec`` (trained or imported), before the store adds its own fields.

    ``sources`` are the datasets of its ``domains`` in order; ``input_size``, ``mean`` and ``std``
    come from the architecture's registration; ``pretrained`` is the name of the shipped weights
    (:attr:`zoo.models.ArchSpec.pretrained`) for a ``pretrained`` expert, None for a trained one;
    ``recipe`` is None for an imported expert. Seconds are rounded to milliseconds. ``job_dir`` is
    the Hydra output folder of the job that built the card (its composed config and training log;
    None outside a Hydra job).
    """
    info = arch_spec(spec.arch)
    imported = spec.type == "pretrained"
    return {
        "arch": spec.arch,
        "arch_kwargs": dict(spec.arch_kwargs),
        "type": spec.type,
        "sources": [d for domain in domains for d in domain["datasets"]],
        "domains": [dict(domain) for domain in domains],
        "source_accuracy": dict(source_accuracy),
        "input_size": info.input_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "init": spec.init,
        "pretrained": info.pretrained if imported else None,
        "recipe": None if recipe is None else dict(recipe),
        "train_seconds": round(float(train_seconds), 3),
        "eval_seconds": round(float(eval_seconds), 3),
        "global_steps": int(global_steps),
        "device": device,
        "precision": precision,
        "config_hash": config_hash,
        "init_weights_sha256": init_weights_sha256,
        "git_revision": git_revision(),
        "job_dir": job_dir(),
    }


def import_pretrained(
    spec: ExpertSpec, zoo_dir: str | os.PathLike, *, data_dir: str | os.PathLike = "data"
) -> Path:
    """Store a pretrained architecture's shipped weights as an expert (type ``pretrained``).

    The card records the weights' source (``imagenet``) as its one domain, with its 1000 class names
    and no source accuracy. The source profile is computed from ``<data_dir>/imagenet`` when that
    dataset is prepared (at most 50 training images per class), else left empty (Domain Similarity
    then has no profile for it).
    """
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    info = arch_spec(spec.arch)
    if info.pretrained is None or (spec.pretrained not in (None, info.pretrained)):
        raise ValueError(
            f"arch {spec.arch!r} ships no {spec.pretrained!r} weights"
            + (f" (it has {info.pretrained!r})" if info.pretrained else "")
        )
    t0 = time.perf_counter()
    classes = list(_IMAGENET_CATEGORIES)
    model = create_model(spec.arch, len(classes), pretrained=True, **spec.arch_kwargs)
    source = info.pretrained  # "imagenet"
    profile: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        from zoo.data import is_available

        if is_available(source, data_dir):
            dd = load_domain_data(source, data_dir, augment=False, max_per_class=50, seed=0)
            feats, _, labels = _features_and_logits(
                model.eval(), dd.train_eval, 128, torch.device("cpu"), autocast=False
            )
            profile[source] = class_means(feats, labels, len(classes))
    card = build_card(
        spec,
        domains=[card_domain(source, classes, [source], None)],
        source_accuracy={},
        config_hash=expert_config_hash(spec, {}, 0, -1),
        eval_seconds=time.perf_counter() - t0,
    )
    return save_expert(zoo_dir, spec.id, model, card, profile)


__all__ = [
    "DomainData",
    "build_card",
    "card_domain",
    "evaluate_expert",
    "import_pretrained",
    "joined_label_space",
    "load_domain_data",
]

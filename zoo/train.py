"""Training zoo experts with Lightning, and ``train_zoo_main`` behind ``train_zoo.py``.

An expert is an :class:`~zoo.spec.ExpertSpec` (:mod:`zoo.spec`: types, ids, recipe, config hash).

- ``single``: one head over the classes of its dataset(s); several datasets are joined into one
  label space (the mini benchmark's ``generalist``; classes named ``<dataset>/<class>``).
- ``shared`` / ``multi_bn`` / ``adapter``: a :class:`~zoo.multidomain.MultiDomainClassifier`, one
  domain per dataset. Every batch comes from one domain; each epoch draws ``per_domain`` images
  from every domain (a domain with fewer images contributes whole shuffled copies of itself plus a
  random remainder, i.e. it is sampled with replacement) and the domains' batches are interleaved
  in a seeded random order.
- ``pretrained``: nothing is trained; the shipped weights are imported into the store
  (:func:`zoo.card.import_pretrained`).

Training: cross-entropy, SGD (momentum, weight decay), the lr decayed by ``lr_gamma`` every
``lr_step_epochs`` epochs after an optional linear warm-up over ``warmup_epochs`` (the mini recipe
needs one: from-scratch SGD at lr 0.05-0.1 stalls at chance for hundreds of steps on the coloured
mini domains without it). Device and precision come from :mod:`core.devices`
(``trainer.precision=auto``: bf16-mixed on a GPU, 16-mixed without bf16, and on a CPU with native
bf16 kernels, else 32-true); channels-last where :func:`core.devices.use_channels_last` says so; DDP
by configuration (``trainer.strategy``, ``devices``, ``num_nodes``; the per-device batch is
``batch_size``; every rank trains the same domain at each step). Seeded with
``L.seed_everything(seed)``. The recipe and trainer settings are the typed schemas
:class:`core.config.TrainRecipe` and :class:`core.config.TrainerConfig`.

Resume: ``<zoo_dir>/<expert_id>/.ckpt/last.ckpt`` is written atomically at the end of every epoch,
every ``trainer.checkpoint_every_n_steps`` steps when set, and when a run is interrupted (an
exception in a single-process run, Ctrl-C or SIGTERM in any run). A rerun resumes from it
(``weights_only=True``), mid-epoch included: the training loader is resumable and skips the batches
the interrupted epoch had already used. A checkpoint written under another config (its hash differs)
is refused with an error. After the expert is stored the checkpoint folder is deleted (the store
holds the final weights; the optimizer state is not kept).

At the end: :func:`zoo.card.evaluate_expert` (source accuracies and the source profile), then on
global rank 0 :func:`zoo.card.build_card` and :func:`zoo.store.save_expert`. In a distributed run
(:class:`RankSync`) every rank evaluates its share of the data with rank 0's weights, the shares are
combined (:func:`combine_shards`), and the other ranks wait for rank 0's store write before the next
expert, so that they enter its DDP set-up together; a failure on any rank is raised on every rank,
and a rank that never arrives fails the others after ``trainer.dist_timeout_s``. A checkpoint written
at another git commit is refused like one of another config (:func:`code_mismatch`). Training logs: CSV under
``<zoo_dir>/<expert_id>/logs/`` (or wandb, offline by default, ``logger.type=wandb``;
``wandb.finish()`` is always called).
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
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from core.config import LoggerConfig, TrainerConfig, TrainRecipe
from core.devices import resolve_device, resolve_precision, use_channels_last
from core.io import atomic_path, git_revision
from core.locks import FileLock
from core.tracking import resolve_mode
from zoo.card import (
    DomainData,
    build_card,
    evaluate_expert,
    import_pretrained,
    joined_label_space,
    load_domain_data,
)
from zoo.models import Classifier, create_model, normalize_arch_kwargs
from zoo.multidomain import KINDS as MULTI_KINDS
from zoo.multidomain import MultiDomainClassifier
from zoo.spec import (
    ExpertSpec,
    as_schema,
    effective_recipe,
    expert_config_hash,
    select,
    spec_from_cli,
    spec_from_zoo,
)
from zoo.store import (
    expert_lock,
    has_expert,
    load_card,
    load_entry,
    save_expert,
    write_manifest,
)
from zoo.train_progress import StepProgress

log = logging.getLogger(__name__)

CKPT_DIR = ".ckpt"
CKPT_NAME = "last.ckpt"
CONFIG_HASH_KEY = "zoobench_config_hash"
CODE_REVISION_KEY = "zoobench_git_revision"

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
        code_revision: str = "unknown",
        ckpt_path: str | os.PathLike = CKPT_NAME,
    ) -> None:
        super().__init__()
        self.model = model
        self.domains = list(domains)
        self.recipe = dict(recipe)
        self.channels_last = channels_last
        self.config_hash = config_hash
        self.code_revision = code_revision
        self.ckpt_path = Path(ckpt_path)
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
        checkpoint[CODE_REVISION_KEY] = self.code_revision

    def _start_over(self) -> str:
        return f"delete {self.ckpt_path.parent} (its .ckpt folder) to start this expert over"

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(CONFIG_HASH_KEY)
        if saved != self.config_hash:
            raise ValueError(
                f"the checkpoint to resume was written by another config (hash {saved}, now "
                f"{self.config_hash}); {self._start_over()}"
            )
        why = code_mismatch(checkpoint.get(CODE_REVISION_KEY), self.code_revision)
        if why:
            raise ValueError(
                f"the checkpoint to resume {self.ckpt_path} was written by other code ({why}): "
                f"resuming would train one expert with two code versions; {self._start_over()}"
            )

    def load_state_dict(self, state_dict: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        # reached on resume only: parameters renamed or reshaped since the checkpoint was written
        try:
            return super().load_state_dict(state_dict, *args, **kwargs)
        except RuntimeError as e:
            raise ValueError(
                f"the checkpoint to resume {self.ckpt_path} does not fit the model ({e}); "
                f"{self._start_over()}"
            ) from e


def code_mismatch(saved: str | None, now: str) -> str | None:
    """Why a checkpoint written at git revision ``saved`` must not be resumed at ``now``, or None.

    Refused: a checkpoint without a revision (written before revisions were recorded) and two known
    revisions of different commits. Accepted: the same commit (uncommitted changes, ``+dirty``, are
    not seen: ``git_revision`` does not hash them) and an ``unknown`` revision on either side (no
    git: nothing to compare).
    """
    if saved is None:
        return f"it records no code revision, this code is {now}"
    if "unknown" in (saved, now):
        return None
    if saved.removesuffix("+dirty") != now.removesuffix("+dirty"):
        return f"revision {saved}, this code is {now}"
    return None


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


def lightning_accelerator(device: torch.device) -> str:
    """Lightning's accelerator name of a device resolved by :func:`core.devices.resolve_device`."""
    return "gpu" if device.type == "cuda" else device.type


def _device_name(trainer: L.Trainer) -> str:
    if isinstance(trainer.accelerator, L.pytorch.accelerators.CUDAAccelerator):
        name = torch.cuda.get_device_name(trainer.strategy.root_device)
        return f"cuda ({name}) x{trainer.world_size}"
    cpu = platform.processor() or platform.machine()
    return f"cpu ({cpu}, {torch.get_num_threads()} threads) x{trainer.world_size}"


def trainer_strategy(name: Any, multi: bool, timeout_s: float) -> Any:
    """Lightning's strategy for ``trainer.strategy``: a registered DDP strategy name becomes that
    strategy with a process-group timeout of ``timeout_s`` seconds; anything else is passed on.

    A multi-domain expert needs ``find_unused_parameters``: each step trains one domain, so the
    other domains' BN, adapters and heads get no gradient.
    """
    if not isinstance(name, str):
        return name
    if multi and name.startswith("ddp") and "find_unused" not in name:
        name = "ddp_find_unused_parameters_true" if name == "ddp" else name
    if name not in StrategyRegistry or not issubclass(
        StrategyRegistry[name]["strategy"], DDPStrategy
    ):
        return name
    if not timeout_s > 0:
        raise ValueError(f"trainer.dist_timeout_s must be > 0 seconds; got {timeout_s}")
    entry = StrategyRegistry[name]
    params = dict(entry["init_params"])
    if multi:
        params["find_unused_parameters"] = True
    return entry["strategy"](**params, timeout=timedelta(seconds=float(timeout_s)))


# ---------------------------------------------------------------------------------------------------
# ranks in step after training: a shared evaluation, then one barrier after the store write

_SYNC_GROUPS: dict[tuple[int, float], Any] = {}


class RankSync:
    """Keeps the ranks of a distributed run in step between two experts.

    After ``fit`` every rank evaluates its share of the data (:func:`shard_data`) with rank 0's
    weights, the shares are gathered (:func:`combine_shards`), rank 0 stores the expert and then
    tells the others whether it succeeded (:meth:`share_outcome` / :meth:`wait_outcome`). So no
    rank enters the next expert's DDP set-up while rank 0 is still busy with this one, and a
    failure on one rank becomes an error on every rank instead of a hang.

    The messages travel over a gloo group of its own (CPU tensors, whatever the training backend)
    whose timeout is ``timeout_s``: a rank that never arrives (killed, or stuck) fails the others
    after that long, with a message naming the expert and the step, not the process group's.
    """

    def __init__(self, expert_id: str, timeout_s: float) -> None:
        self.expert_id = expert_id
        self.timeout_s = float(timeout_s)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        key = (self.world_size, self.timeout_s)
        if key not in _SYNC_GROUPS:
            # collective: every rank creates it, in the same order (the first expert of the run)
            _SYNC_GROUPS[key] = dist.new_group(
                backend="gloo", timeout=timedelta(seconds=self.timeout_s)
            )
        self.group = _SYNC_GROUPS[key]

    @classmethod
    def of(cls, trainer: L.Trainer, expert_id: str, timeout_s: float) -> RankSync | None:
        """The sync of a distributed run's rank; None in a single process (and in the main process
        of ``ddp_spawn``, where training ran in child processes that are gone)."""
        if trainer.world_size < 2 or not (dist.is_available() and dist.is_initialized()):
            return None
        return cls(expert_id, timeout_s)

    def _run(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except (RuntimeError, dist.DistError) as e:
            raise RuntimeError(
                f"rank {self.rank} of {self.world_size}: {what} for expert {self.expert_id!r} "
                f"failed or timed out (trainer.dist_timeout_s = {self.timeout_s:g} s): another "
                f"rank stopped or is stuck; look at its error above ({type(e).__name__}: {e})"
            ) from e

    def broadcast_weights(self, model: nn.Module) -> None:
        """Every rank takes rank 0's parameters and buffers (the weights it stores): after the last
        step the BN running statistics differ between ranks, each updated with its own batch."""

        def run() -> None:
            with torch.no_grad():
                for t in model.state_dict().values():
                    buf = t.detach().to("cpu", copy=True)
                    dist.broadcast(buf, src=0, group=self.group)
                    t.copy_(buf)

        self._run("sharing rank 0's weights", run)

    def gather(self, obj: Any, what: str) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        out: list[Any] = [None] * self.world_size
        self._run(what, lambda: dist.all_gather_object(out, obj, group=self.group))
        return out

    def share_outcome(self, error: str | None) -> None:
        """Rank 0: tell the others whether the expert is stored (None) or why not."""
        self._run("reporting the stored expert", lambda: self._broadcast(error))

    def wait_outcome(self) -> str | None:
        """Ranks > 0: wait until rank 0 has stored the expert; its error message, or None."""
        return self._run("waiting for rank 0 to store the expert", lambda: self._broadcast(None))

    def _broadcast(self, value: str | None) -> str | None:
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]


def shard_data(data: Sequence[DomainData], rank: int, world_size: int) -> list[DomainData]:
    """Rank ``rank``'s share of every split: items ``rank, rank + world_size, ...``."""
    if world_size == 1:
        return list(data)

    def part(ds: Dataset) -> Subset:
        return Subset(ds, range(rank, len(ds), world_size))  # type: ignore[arg-type]

    return [
        replace(
            dd,
            train=part(dd.train),
            train_eval=part(dd.train_eval),
            test=part(dd.test),
            labels=np.asarray(dd.labels)[rank::world_size],
        )
        for dd in data
    ]


def combine_shards(
    parts: Sequence[tuple[list[dict[str, Any]], dict[str, float], dict[str, Any], dict[str, int]]],
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """:func:`zoo.card.evaluate_expert`'s result over the whole data from its results on shards.

    ``parts`` holds, per shard, ``(domains, accuracy, profile, test sizes)``; test sizes are the
    number of test items per dataset in that shard. The accuracy of dataset ``d`` is
    ``sum_r hits_r / sum_r n_r`` with ``hits_r = accuracy_r * n_r``; a domain's accuracy on the
    card is its dataset's, or for a joined single-domain expert the pooled accuracy over all its
    datasets. The profile's class means are ``sum_r means_r * counts_r / max(sum_r counts_r, 1)``
    (zeros for a class absent everywhere, as :func:`core.arrays.class_means`).
    """
    domains = [dict(d) for d in parts[0][0]]
    hits: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for _, acc, _, n in parts:
        for name, a in acc.items():
            k = int(n[name])
            hits[name] = hits.get(name, 0.0) + (round(float(a) * k) if k else 0)
            sizes[name] = sizes.get(name, 0) + k
    accuracy = {n: hits[n] / sizes[n] if sizes[n] else float("nan") for n in hits}
    for d in domains:
        h = sum(hits[s] for s in d["datasets"])
        k = sum(sizes[s] for s in d["datasets"])
        d["source_accuracy"] = h / k if k else float("nan")
    profile: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in parts[0][2]:
        counts = sum(np.asarray(p[2][name][1], dtype=np.int64) for p in parts)
        sums = sum(
            np.asarray(p[2][name][0], dtype=np.float64) * p[2][name][1][:, None] for p in parts
        )
        profile[name] = (sums / np.maximum(counts, 1)[:, None], counts)
    return domains, accuracy, profile


# ---------------------------------------------------------------------------------------------------
# one expert


def _init_weights_sha(spec: ExpertSpec, zoo_dir: str | os.PathLike) -> str | None:
    """The ``weights_sha256`` of the expert ``spec`` is initialised from (None when absent)."""
    if not spec.init_expert or not has_expert(zoo_dir, spec.init_expert):
        return None
    return load_card(spec.init_expert, zoo_dir).get("weights_sha256")


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
    init_id = spec.init_expert
    if init_id:
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
    logger_cfg: LoggerConfig, expert_dir: Path, expert_id: str, out_dir: Path | None
) -> Any:
    """Lightning's logger of ``logger_cfg.type``: csv, wandb or none (``False``: no logger)."""
    kind = logger_cfg.type
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(expert_dir / "logs"), name="", version=None)
    if kind == "wandb":
        from lightning.pytorch.loggers import WandbLogger

        save_dir = Path(out_dir) if out_dir is not None else expert_dir / "logs"
        save_dir.mkdir(parents=True, exist_ok=True)
        return WandbLogger(
            project=logger_cfg.project or "zoobench",
            name=f"train_zoo/{expert_id}",
            group=logger_cfg.group,
            entity=logger_cfg.entity,
            mode=resolve_mode(logger_cfg.mode),
            save_dir=str(save_dir),
            job_type="train_zoo",
        )
    raise ValueError(f"unknown logger type {kind!r}; known: csv, wandb, none")


def train_expert(
    spec: ExpertSpec,
    recipe: TrainRecipe | Mapping[str, Any] | None,
    zoo_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike = "data",
    trainer_cfg: TrainerConfig | Mapping[str, Any] | None = None,
    logger_cfg: LoggerConfig | Mapping[str, Any] | None = None,
    seed: int = 0,
    data: Sequence[DomainData] | None = None,
    callbacks: Sequence[L.Callback] = (),
    out_dir: str | os.PathLike | None = None,
) -> Path | None:
    """Train ``spec`` and write it to the store; returns the expert folder (None on ranks > 0).

    An expert of the same id already in the store is replaced as a whole once the new one is
    trained (``train_zoo_main`` reuses a stored expert of the same config hash instead); an
    interrupted run of the same config is resumed.

    The expert's lock (:func:`zoo.store.expert_lock`) is held from before the resume to after the
    store, so two processes never train one expert into one checkpoint. A process that had to wait
    for the lock (another one was training this expert) then reuses the stored expert when it is
    the one requested (:func:`stored_mismatch`), instead of training it again. Ranks > 0 of a
    distributed run take no lock: their rank 0 holds it. The card records ``config_hash``
    (:func:`zoo.spec.expert_config_hash`) and, for an initialised expert, ``init_weights_sha256``
    (the init expert's weights it started from).

    Args:
        recipe: a :class:`core.config.TrainRecipe` or a mapping of some of its keys (the others take
            the schema's defaults); the expert's own ``spec.recipe`` overrides it.
        trainer_cfg: a :class:`core.config.TrainerConfig` or a mapping of some of its keys;
            ``max_steps`` stops after that many optimizer steps (-1: train ``epochs`` epochs).
        logger_cfg: a :class:`core.config.LoggerConfig` or a mapping: ``type`` (csv | wandb |
            none), ``project``, ``mode``, ``entity``, ``group``.
        data: the source datasets, one :class:`~zoo.card.DomainData` per ``spec.datasets`` entry (in
            order); None loads them from the dataset registry.
        out_dir: where wandb writes its run folder (default: the expert's logs folder).
    """
    kwargs = {
        "data_dir": data_dir,
        "trainer_cfg": trainer_cfg,
        "logger_cfg": logger_cfg,
        "seed": seed,
        "data": data,
        "callbacks": callbacks,
        "out_dir": out_dir,
    }
    if _launched_rank() > 0:
        return _train_expert(spec, recipe, zoo_dir, **kwargs)
    with expert_lock(zoo_dir, spec.id) as lock:
        if lock.waited > 0 and has_expert(zoo_dir, spec.id) and spec.type != "pretrained":
            tcfg = as_schema(trainer_cfg, TrainerConfig, "trainer config")
            chash = expert_config_hash(spec, effective_recipe(spec, recipe), seed, _max_steps(tcfg))
            if stored_mismatch(spec, chash, zoo_dir) is None:
                log.info("%s was trained by another process while this one waited", spec.id)
                return Path(zoo_dir) / spec.id
        return _train_expert(spec, recipe, zoo_dir, **kwargs)


def _launched_rank() -> int:
    """This process's global rank as the launcher set it (0 outside a distributed run)."""
    return int(getattr(rank_zero_only, "rank", 0) or 0)


def _train_expert(
    spec: ExpertSpec,
    recipe: TrainRecipe | Mapping[str, Any] | None,
    zoo_dir: str | os.PathLike,
    *,
    data_dir: str | os.PathLike,
    trainer_cfg: TrainerConfig | Mapping[str, Any] | None,
    logger_cfg: LoggerConfig | Mapping[str, Any] | None,
    seed: int,
    data: Sequence[DomainData] | None,
    callbacks: Sequence[L.Callback],
    out_dir: str | os.PathLike | None,
) -> Path | None:
    """:func:`train_expert`'s work, the expert's lock held by the caller (rank 0)."""
    if spec.type == "pretrained":
        return import_pretrained(spec, zoo_dir, data_dir=data_dir)
    recipe = effective_recipe(spec, recipe)
    tcfg = as_schema(trainer_cfg, TrainerConfig, "trainer config")
    logger_cfg = as_schema(logger_cfg, LoggerConfig, "logger config")
    max_steps = _max_steps(tcfg)
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
    init_sha = _init_weights_sha(spec, zoo_dir)

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
    device = resolve_device(tcfg.accelerator)
    precision = resolve_precision(tcfg.precision, device)
    channels_last = use_channels_last(tcfg.channels_last, device, precision)
    strategy = trainer_strategy(tcfg.strategy, multi, tcfg.dist_timeout_s)
    ckpt_path = expert_dir / CKPT_DIR / CKPT_NAME
    logger = _make_logger(logger_cfg, expert_dir, spec.id, Path(out_dir) if out_dir else None)
    module = ExpertModule(
        model,
        domain_names,
        recipe,
        channels_last=channels_last,
        config_hash=chash,
        code_revision=git_revision(),
        ckpt_path=ckpt_path,
    )
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        trainer = L.Trainer(
            accelerator=lightning_accelerator(device),
            devices=tcfg.devices,
            strategy=strategy,
            num_nodes=int(tcfg.num_nodes),
            precision=precision,
            max_epochs=int(recipe["epochs"]),
            max_steps=max_steps,
            logger=logger,
            callbacks=[
                LastCheckpoint(ckpt_path, tcfg.checkpoint_every_n_steps),
                StepProgress(spec.id),
                *callbacks,
            ],
            plugins=[AtomicCheckpointIO()],
            enable_checkpointing=False,
            enable_progress_bar=tcfg.enable_progress_bar,
            enable_model_summary=False,
            deterministic=tcfg.deterministic,
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
        trainer.log_every_n_steps = max(1, min(int(tcfg.log_every_n_steps), len(sampler)))
        workers = int(recipe["num_workers"])
        loader = ResumableLoader(
            samples,
            batch_sampler=sampler,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
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
        device_name = _device_name(trainer)
        sync = RankSync.of(trainer, spec.id, tcfg.dist_timeout_s)
    finally:
        if logger_cfg.type == "wandb":
            import wandb

            wandb.finish()

    # evaluation, split between the ranks of a distributed run (each on its own device) so that no
    # rank waits for a long evaluation by another; bf16 autocast on a GPU only, fp32 elsewhere
    t1 = time.perf_counter()
    model = model.to(memory_format=torch.contiguous_format)
    rank, world = (sync.rank, sync.world_size) if sync else (0, 1)
    if sync:
        sync.broadcast_weights(model)
    shards = shard_data(data, rank, world)
    try:
        domains, accuracy, profile = evaluate_expert(
            model,
            shards,
            batch_size=max(256, int(recipe["batch_size"])),
            device=trainer.strategy.root_device if sync else device,
            autocast=device.type == "cuda" and precision == "bf16-mixed",
            num_workers=int(recipe["num_workers"]),
        )
        part: Any = (domains, accuracy, profile, {dd.name: len(dd.test) for dd in shards})
    except Exception as e:
        if not sync:
            raise
        part = f"{type(e).__name__}: {e}"
        failed: BaseException | None = e
    else:
        failed = None
    model = model.to("cpu")
    if sync:
        parts = sync.gather(part, "gathering the source evaluation")
        errors = [f"rank {r}: {p}" for r, p in enumerate(parts) if isinstance(p, str)]
        if errors:
            raise RuntimeError(
                f"evaluating expert {spec.id!r} failed on {'; '.join(errors)}"
            ) from failed
        if rank > 0:
            error = sync.wait_outcome()
            if error:
                raise RuntimeError(f"rank 0 could not store expert {spec.id!r}: {error}")
            return None
        domains, accuracy, profile = combine_shards(parts)
    # the store write (rank 0): the other ranks wait for its outcome, then all go on in step
    try:
        card = build_card(
            spec,
            domains=domains,
            source_accuracy=accuracy,
            config_hash=chash,
            recipe={**recipe, "max_steps": max_steps, "seed": int(seed)},
            train_seconds=train_seconds,
            eval_seconds=time.perf_counter() - t1,
            global_steps=int(trainer.global_step),
            device=device_name,
            precision=precision,
            init_weights_sha256=init_sha,
        )
        out = save_expert(zoo_dir, spec.id, model, card, profile)
        shutil.rmtree(zoo_dir / spec.id / CKPT_DIR, ignore_errors=True)
    except Exception as e:
        if sync:
            sync.share_outcome(f"{type(e).__name__}: {e}")
        raise
    if sync:
        sync.share_outcome(None)
    return out


def _distributed(trainer_cfg: TrainerConfig) -> bool:
    """Whether the trainer config asks for more than one process (devices, nodes or DDP)."""
    devices = trainer_cfg.devices
    if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
        devices = int(devices)
    n = devices if isinstance(devices, int) else (1 if devices == "auto" else len(devices))
    return n != 1 or int(trainer_cfg.num_nodes) > 1 or "ddp" in str(trainer_cfg.strategy)


def _stored_sha(zoo_dir: Path, expert_id: str) -> str | None:
    """The stored expert's weights sha256 from its card, or None when it is not stored."""
    if not has_expert(zoo_dir, expert_id):
        return None
    return load_card(expert_id, zoo_dir).get("weights_sha256")


@contextlib.contextmanager
def _wait_for(lock: FileLock) -> Iterator[FileLock]:
    """Hold ``lock`` (already claimed, or claimed now, waiting as long as its owner lives)."""
    if not lock.held and not lock.try_claim():
        owner = lock.owner()
        who = owner.describe() if owner else "another process"
        print(f"waiting  {lock.path.stem}: being trained by {who}", flush=True)
        lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def _max_steps(trainer_cfg: TrainerConfig) -> int:
    """The trainer's step cap: -1 (train every epoch) or a positive number of optimizer steps."""
    n = int(trainer_cfg.max_steps)
    if n != -1 and n < 1:
        raise ValueError(f"trainer.max_steps must be -1 (no cap) or >= 1; got {n}")
    return n


# ---------------------------------------------------------------------------------------------------
# the entry point's function


def _abs(path: Any) -> Path:
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def train_zoo_main(cfg: Any) -> None:
    """``train_zoo.py``: one expert (``dataset=`` / ``datasets=`` given) or every expert of
    ``zoo.experts`` that is not yet in the store, then the manifest.

    A stored expert is reused only when it is the one requested (:func:`stored_mismatch`: same
    config hash, same init weights). Otherwise nothing is trained and a ``ValueError`` names each
    such expert with both hashes, unless ``train.overwrite=true``: then they are retrained and
    replace the stored ones. Prints one line per expert (``skipped`` / ``retrain`` / ``trained``
    / ``imported`` with seconds; ``later`` / ``waiting`` for one that another process is training).

    Several processes may work on one zoo at once (e.g. two jobs on a shared store): each expert
    is trained under its lock (:func:`zoo.store.expert_lock`); one that another process holds is
    left until the others are done, then waited for and reused once stored, so no expert is
    trained twice.
    """
    zoo_dir = _abs(select(cfg, "paths.zoo_dir", "outputs/mini/zoo"))
    data_dir = _abs(select(cfg, "paths.data_dir", "data"))
    out_dir = select(cfg, "paths.out_dir")
    # the typed schemas (core.config): their defaults fill what the config leaves out
    recipe = as_schema(OmegaConf.select(cfg, "train"), TrainRecipe, "train config")
    trainer_cfg = as_schema(OmegaConf.select(cfg, "trainer"), TrainerConfig, "trainer config")
    logger_cfg = as_schema(OmegaConf.select(cfg, "logger"), LoggerConfig, "logger config")
    seed = int(select(cfg, "seed", 0))
    max_steps = _max_steps(trainer_cfg)

    if select(cfg, "dataset") or select(cfg, "datasets"):
        specs = [spec_from_cli(cfg)]
    else:
        experts = select(cfg, "zoo.experts") or []
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
        if s.init_expert in order and order[s.init_expert] > order[s.id]:
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
    # the weights each expert had when this plan was made: another process storing one meanwhile
    # changes them (a retrain that reproduces the same weights does not count as "meanwhile")
    planned = {spec.id: _stored_sha(zoo_dir, spec.id) for spec in specs}
    for spec in specs:
        if not has_expert(zoo_dir, spec.id):
            trained_now.add(spec.id)
            continue
        why = stored_mismatch(spec, hashes[spec.id], zoo_dir, trained_now)
        if why:
            retrain[spec.id] = why
            trained_now.add(spec.id)
    # train.overwrite is a switch of this command, not a recipe key (not in any expert's identity)
    if retrain and not recipe.overwrite:
        lines = "\n".join(f"  {i}: {why}" for i, why in retrain.items())
        raise ValueError(
            f"{len(retrain)} experts in {zoo_dir} are not the ones this config asks for:\n{lines}\n"
            "Write this zoo elsewhere (another paths.out_name or paths.out_dir, e.g. the "
            "experiment's own), or give train.overwrite=true to retrain them and replace the "
            "stored ones (their fine-tuning results are then redone)."
        )

    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    start = time.perf_counter()

    def train_one(i: int, spec: ExpertSpec) -> bool:
        """Train (or import) ``spec``, its lock held; False on ranks > 0."""
        if _launched_rank() == 0 and _stored_sha(zoo_dir, spec.id) != planned[spec.id]:
            # stored since the check above: by another process that held the lock before us
            why = stored_mismatch(spec, hashes[spec.id], zoo_dir)
            if why is None:
                print(
                    f"skipped  {spec.id}: trained meanwhile by another process (config "
                    f"{hashes[spec.id]})",
                    flush=True,
                )
                return True
            if spec.id not in retrain:
                raise ValueError(
                    f"expert {spec.id!r} was stored in {zoo_dir} by another process meanwhile, "
                    f"and it is not the one this config asks for ({why}); give "
                    "train.overwrite=true to replace it, or write this zoo elsewhere"
                )
        if spec.id in retrain:
            print(f"retrain  {spec.id}: {retrain[spec.id]} (train.overwrite=true)", flush=True)
        t0 = time.perf_counter()
        out = _train_expert(
            spec,
            recipe,
            zoo_dir,
            data_dir=data_dir,
            trainer_cfg=trainer_cfg,
            logger_cfg=logger_cfg,
            seed=seed,
            data=None,
            callbacks=(),
            out_dir=_abs(out_dir) if out_dir else None,
        )
        if out is None:
            return False
        verb = "imported" if spec.type == "pretrained" else "trained "
        print(
            f"{verb} {spec.id}: {time.perf_counter() - t0:.1f} s [{i}/{len(specs)} experts,"
            f" elapsed {time.perf_counter() - start:.0f} s]",
            flush=True,
        )
        return True

    # Each expert is trained under its lock (zoo.store.expert_lock). One that another process is
    # training is left for later, after the others (and so is any expert initialised from it);
    # then this process waits for it and reuses what the other stored. A distributed run waits
    # at once instead, so that every rank goes through the zoo in the same order.
    distributed = _distributed(trainer_cfg)
    is_zero = True
    later: list[tuple[int, ExpertSpec]] = []
    for i, spec in enumerate(specs, 1):
        if has_expert(zoo_dir, spec.id) and spec.id not in retrain:
            print(
                f"skipped  {spec.id}: already in {zoo_dir} (config {hashes[spec.id]})", flush=True
            )
            continue
        if _launched_rank() > 0:  # rank 0 holds the lock
            is_zero = train_one(i, spec) and is_zero
            continue
        lock = expert_lock(zoo_dir, spec.id)
        after = next((s.id for _, s in later if s.id == spec.init_expert), None)
        if not distributed and (after or not lock.try_claim()):
            owner = lock.owner()
            why = (
                f"its init {after!r} is left for later"
                if after
                else f"being trained by {owner.describe() if owner else 'another process'}"
            )
            print(f"later    {spec.id}: {why}; training the other experts first", flush=True)
            later.append((i, spec))
            continue
        with _wait_for(lock):
            is_zero = train_one(i, spec) and is_zero
    for i, spec in later:
        with _wait_for(expert_lock(zoo_dir, spec.id)):
            is_zero = train_one(i, spec) and is_zero
    if is_zero:
        path = write_manifest(zoo_dir)
        print(f"manifest {path}", flush=True)


__all__ = [
    "DomainBatchSampler",
    "RankSync",
    "DomainSamples",
    "ExpertModule",
    "ResumableLoader",
    "code_mismatch",
    "combine_shards",
    "init_backbone",
    "lightning_accelerator",
    "lr_factor",
    "shard_data",
    "stored_mismatch",
    "train_expert",
    "train_zoo_main",
    "trainer_strategy",
]

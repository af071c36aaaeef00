"""What selection scores read, extracted once per (entry, target, shots, seed) and cached on disk.

For a zoo entry and a target this module computes, on the **selection samples** (the shots subset of
the target's training split, then at most ``per_class`` images per class; never the test split):

- ``features``: penultimate features (N, D) (``model.forward_features``) and source probabilities
  (N, Cs) (softmax of the entry's own head; a multi-domain entry's head is its domain's), with the
  samples' labels (N,) and their indices (N,) into the training split;
- ``lgc``: the LGC gradients (N, heads * columns per head) (:mod:`selection.sketch`);
- ``probe``: RSA's probe features: a small network (``selection.probe.arch``) trained briefly on the selection
  samples, seeded, then its penultimate features of the same samples. One probe per (target, shots,
  seed), shared by every entry;
- ``source``: a source dataset's profile in a *reference* entry's feature space (Domain Similarity):
  class-mean features (Cs, D) of at most ``source_per_class`` training images per class (seeded by
  the selection seed) and the class sizes (Cs,) of the whole training split.

The shots subset of seed ``s`` is the training subset of the fine-tuning runs of seed ``s``
(``zoo.samplers.shot_indices``, then, when ``val_fraction`` is set, the training part of
``zoo.samplers.stratified_split``), so every fine-tuning seed's draw can be scored on its own.

Features and sketches come from one pass over the images when both are missing (the sketch's
forward pass yields the features); features alone run under ``torch.inference_mode``.

Cache layout (under ``cache_dir``)::

    <entry>/<target>/shots=<k>/seed=<s>/features.npz   features, probs, labels, indices
    <entry>/<target>/shots=<k>/seed=<s>/lgc.npz        grads, labels, indices
    _probe/<target>/shots=<k>/seed=<s>/probe.npz       features, labels, indices
    <reference>/_source/<dataset>/source.npz           means, counts

Each file also holds ``_meta``: a JSON string with the cache ``key`` (code version :data:`CODE_VERSION`,
kind, entry, a fingerprint of the expert's card, target, the fingerprint of the target's training
split (``zoo.data.split_fingerprint``: an edited dataset is extracted again), shots, seed, per_class,
selection seed and, per kind, the sketch or probe settings; a source profile's key holds its
source dataset's fingerprint) and the ``seconds`` the extraction took. A file whose key
differs from the current settings, or that cannot be read, is recomputed and rewritten (atomically);
it never raises. ``seconds`` is the original extraction cost, reported again on a cache hit.

Features and probabilities are stored as float32 (the model computes in float32) and returned as
float64; sketches are stored and returned as float64. A cache hit returns exactly what the miss did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset, RandomSampler

from core.config import SelectionConfig, typed
from core.devices import ACCELERATORS, autocast, resolve_device, resolve_precision  # noqa: F401
from core.io import atomic_path
from core.keys import expert_of, format_shots, split_entry
from selection.linalg import class_sums
from selection.sketch import SKETCH_ID, LGCSketcher

log = logging.getLogger(__name__)

#: bump when anything changes what an extraction returns: every cache entry is then recomputed
CODE_VERSION = 1
KINDS = ("features", "lgc", "probe")
_ARRAYS = {
    "features": ("features", "probs", "labels", "indices"),
    "lgc": ("grads", "labels", "indices"),
    "probe": ("features", "labels", "indices"),
    "source": ("means", "counts"),
}


def cache_path(
    cache_dir: str | os.PathLike, entry: str, target: str, shots: int | str, seed: int, kind: str
) -> Path:
    """``<cache_dir>/<entry>/<target>/shots=<k>/seed=<s>/<kind>.npz`` (the probe: ``_probe/<target>/...``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown extraction kind {kind!r}; known: {list(KINDS)}")
    owner = "_probe" if kind == "probe" else entry
    return (
        Path(cache_dir)
        / owner
        / target
        / f"shots={format_shots(shots)}"
        / f"seed={int(seed)}"
        / f"{kind}.npz"
    )


def source_cache_path(cache_dir: str | os.PathLike, reference: str, dataset: str) -> Path:
    """``<cache_dir>/<reference>/_source/<dataset>/source.npz``: a source profile in the reference
    entry's feature space."""
    return Path(cache_dir) / reference / "_source" / dataset / "source.npz"


def read_cache(
    path: Path, key: dict[str, Any], names: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], float] | None:
    """The arrays ``names`` and the stored seconds of ``path`` when its key equals ``key``, else None.

    A missing, corrupt or stale file gives None (and a log line): the caller recomputes.
    """
    if not path.is_file():
        return None
    try:
        # our own file handle: np.load leaks the one it opens when the zip is damaged
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as z:
            meta = json.loads(str(z["_meta"]))
            if meta.get("key") != _normalise(key):
                log.info("cache %s was made with other settings; recomputing", path)
                return None
            arrays = {n: z[n] for n in names}
            seconds = float(meta["seconds"])
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
        log.warning("cache %s is unreadable (%s); recomputing", path, e)
        return None
    lengths = {n: a.shape[0] if a.ndim else -1 for n, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        log.warning("cache %s has arrays of different lengths %s; recomputing", path, lengths)
        return None
    return arrays, seconds


def write_cache(
    path: Path, key: dict[str, Any], arrays: dict[str, np.ndarray], seconds: float
) -> None:
    """Write ``arrays`` plus ``_meta`` (key, seconds) to ``path`` atomically."""
    meta = json.dumps({"key": _normalise(key), "seconds": float(seconds)}, sort_keys=True)
    # a file object: given a path, np.savez would append .npz to the temporary name
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, _meta=np.array(meta), **arrays)


def _normalise(key: dict[str, Any]) -> dict[str, Any]:
    # what the key looks like after a JSON round trip, so the comparison is exact
    return json.loads(json.dumps(key, sort_keys=True, default=str))


@dataclass(frozen=True)
class ExtractSettings:
    """Where things are and how to extract: the ``paths``, the ``selection`` node (typed), the
    device (``trainer.accelerator``) and the fine-tuning hold-out (``finetune.val_fraction``)."""

    zoo_dir: Path
    data_dir: Path
    cache_dir: Path
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    accelerator: str = "auto"
    # the fine-tuning runs' validation hold-out (finetune.val_fraction): its images are not trained
    # on, so they are not part of the draw that is scored either
    val_fraction: float | None = None

    def __post_init__(self) -> None:
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"val_fraction must be null or a fraction in (0, 1); got {self.val_fraction!r}"
            )
        resolve_device(self.accelerator)

    @classmethod
    def from_cfg(cls, cfg: Any) -> ExtractSettings:
        """From a composed ``evaluate_selection`` config (paths resolved to absolute paths)."""
        val_fraction = OmegaConf.select(cfg, "finetune.val_fraction")
        return cls(
            zoo_dir=Path(cfg.paths.zoo_dir).resolve(),
            data_dir=Path(cfg.paths.data_dir).resolve(),
            cache_dir=Path(cfg.paths.cache_dir).resolve(),
            selection=typed(SelectionConfig, cfg.selection),
            accelerator=str(cfg.trainer.accelerator),
            val_fraction=None if val_fraction is None else float(val_fraction),
        )


@dataclass
class Extraction:
    """The inputs of the scores for one entry on one target's selection samples.

    ``features`` (N, D), ``probs`` (N, Cs) and ``grads`` (N, heads * dim) are float64 (None when not
    asked for); ``labels`` (N,) int64 target classes; ``indices`` (N,) int64 positions in the target's
    training split. ``seconds`` maps each kind to its original extraction wall seconds (a features
    pass alone, an LGC pass alone); ``cached`` says which kinds came from the cache.
    """

    entry: str
    target: str
    shots: str
    seed: int
    labels: np.ndarray
    indices: np.ndarray
    features: np.ndarray | None = None
    probs: np.ndarray | None = None
    grads: np.ndarray | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)


@dataclass
class Probe:
    """RSA's probe features (N, D_probe) float64 on the selection samples, their labels and indices."""

    features: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    seconds: float
    cached: bool


# ---------------------------------------------------------------------------------------------------
# the zoo and the data (separate functions, so tests can stand in small models and datasets)


def _load_entry(entry_id: str, zoo_dir: Path) -> Any:
    from zoo.store import load_entry

    return load_entry(entry_id, zoo_dir)


def _entry_fingerprint(entry_id: str, zoo_dir: Path) -> str:
    """A hash of the expert's card file: a retrained expert gets a new card, so a new cache key."""
    card = Path(zoo_dir) / expert_of(entry_id) / "card.json"
    if not card.is_file():
        # let the store raise its own error (it lists the known entries)
        _load_entry(entry_id, zoo_dir)
        raise FileNotFoundError(f"zoo entry {entry_id!r} has no card at {card}")
    return hashlib.sha256(card.read_bytes()).hexdigest()[:12]


def _data_fingerprint(dataset: str, data_dir: Path) -> str:
    """The fingerprint of a dataset's training split (the only split selection reads)."""
    from zoo.data import split_fingerprint

    return split_fingerprint(dataset, "train", data_dir)


def _load_target(target: str, data_dir: Path, train: bool) -> Dataset:
    from zoo.data import load_split

    return load_split(target, "train", data_dir, train=train)


def finetune_subset(
    labels: np.ndarray, shots: int | str, seed: int, val_fraction: float | None = None
) -> np.ndarray:
    """Sorted indices into the training split of the images the fine-tuning runs of ``seed`` train on.

    The same draw as ``finetune.run.finetune_run``: ``zoo.samplers.shot_indices(labels, shots,
    seed)``, then, with a validation hold-out, the training part of ``zoo.samplers.stratified_split``.
    """
    from zoo.samplers import shot_indices, stratified_split

    shot = np.asarray(shot_indices(labels, shots, seed), dtype=np.int64)
    if val_fraction is not None:
        keep, _ = stratified_split(labels[shot], float(val_fraction), int(seed))
        shot = shot[keep]
    return shot


def selection_subset(
    labels: np.ndarray,
    shots: int | str,
    seed: int,
    per_class: int,
    selection_seed: int,
    val_fraction: float | None = None,
) -> np.ndarray:
    """Sorted indices (N,) into the training split: the fine-tuning subset of ``seed``
    (:func:`finetune_subset`), then at most ``per_class`` of it per class (seeded by
    ``selection_seed``)."""
    from zoo.samplers import selection_indices

    shot = finetune_subset(labels, shots, seed, val_fraction)
    keep = np.asarray(selection_indices(labels[shot], per_class, selection_seed), dtype=np.int64)
    return shot[keep]


# ---------------------------------------------------------------------------------------------------
# one pass of a model over images


def _renormalise(
    dataset: Dataset, entry: Any, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) mapping the dataset's normalisation to the entry's, or None when they agree."""
    info = getattr(dataset, "info", None)
    mean_e, std_e = getattr(entry, "mean", None), getattr(entry, "std", None)
    if info is None or mean_e is None or std_e is None:
        return None
    mean_d, std_d = np.asarray(info.mean, float), np.asarray(info.std, float)
    mean_e, std_e = np.asarray(mean_e, float), np.asarray(std_e, float)
    if np.allclose(mean_d, mean_e) and np.allclose(std_d, std_e):
        return None
    # x_entry = (x_data * std_d + mean_d - mean_e) / std_e
    scale = torch.tensor(std_d / std_e, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    shift = torch.tensor((mean_d - mean_e) / std_e, dtype=torch.float32, device=device).view(
        1, 3, 1, 1
    )
    return scale, shift


def run_model(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    batch_size: int,
    sketch: dict[str, Any] | None = None,
    renorm: tuple[torch.Tensor, torch.Tensor] | None = None,
    num_workers: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Features (N, D) float32, source probabilities (N, Cs) float32 and, when ``sketch`` gives the
    LGCSketcher arguments (heads, dim, seed), the sketch (N, heads * dim) float64 of every image.

    Returns (arrays, seconds): seconds["features"] is the cost of the data loading and forward passes
    (what a features-only pass costs), seconds["lgc"] the whole pass when sketching.
    """
    model = model.to(device).eval()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    sketcher = LGCSketcher(model, **sketch) if sketch is not None else None
    feats, probs, grads = [], [], []
    start = time.perf_counter()
    non_forward = 0.0  # sketching time, excluded from the features-only cost
    for batch in loader:
        x = batch[0] if isinstance(batch, tuple | list) else batch
        x = x.to(device, non_blocking=True)
        if renorm is not None:
            x = x * renorm[0] + renorm[1]
        if sketcher is None:
            with torch.inference_mode():
                phi = model.forward_features(x)
                logits = model.head(phi)
        else:
            t0, f0 = time.perf_counter(), sketcher.forward_seconds
            phi, g = sketcher(x)
            grads.append(g.to("cpu", torch.float64).numpy())
            with torch.inference_mode():
                logits = model.head(phi)
            non_forward += (time.perf_counter() - t0) - (sketcher.forward_seconds - f0)
        feats.append(phi.float().cpu().numpy())
        probs.append(torch.softmax(logits.double(), dim=1).float().cpu().numpy())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    total = time.perf_counter() - start
    if not feats:
        raise ValueError("no images to extract: the selection subset is empty")
    arrays = {"features": np.concatenate(feats), "probs": np.concatenate(probs)}
    seconds = {"features": total - non_forward}
    if sketcher is not None:
        arrays["grads"] = np.concatenate(grads)
        seconds["lgc"] = total
    return arrays, seconds


def train_probe(
    train_set: Dataset,
    eval_set: Dataset,
    num_classes: int,
    *,
    arch: str,
    arch_kwargs: dict[str, Any] | None = None,
    steps: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    seed: int,
    device: torch.device,
    precision: str = "32-true",
    eval_batch_size: int = 256,
    num_workers: int = 0,
) -> np.ndarray:
    """Train ``arch`` from scratch on ``train_set`` (SGD, Nesterov momentum 0.9, cosine decay over
    ``steps`` steps of ``batch_size`` images drawn with replacement, seeded; the forward pass under
    ``precision``'s autocast) and return its penultimate features (N, D) float32 of ``eval_set``,
    computed in fp32."""
    from zoo.models import create_model

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = create_model(arch, num_classes=num_classes, **(arch_kwargs or {}))
        model = model.to(device).train()
        gen = torch.Generator().manual_seed(seed)
        sampler = RandomSampler(
            train_set, replacement=True, num_samples=steps * batch_size, generator=gen
        )
        loader = DataLoader(
            train_set, batch_size=batch_size, sampler=sampler, num_workers=num_workers
        )
        opt = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        for x, y in loader:
            with autocast(device, precision):
                logits = model(x.to(device))
            loss = torch.nn.functional.cross_entropy(logits.float(), torch.as_tensor(y).to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        out = []
        with torch.inference_mode():
            for batch in DataLoader(
                eval_set, batch_size=eval_batch_size, shuffle=False, num_workers=num_workers
            ):
                out.append(model.forward_features(batch[0].to(device)).float().cpu().numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------------
# the extractor


class Extractor:
    """Extraction with the on-disk cache; one instance serves every entry, target and shots.

    >>> ex = Extractor(ExtractSettings(zoo_dir, data_dir, cache_dir))
    >>> x = ex.extract("resnet8_mini_mnist", "mini_digits", 20, seed=0, lgc=True)
    >>> x.features.shape, x.grads.shape, x.seconds
    """

    def __init__(self, settings: ExtractSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.accelerator)
        self._datasets: dict[tuple[str, bool], Dataset] = {}
        self._info: dict[str, dict[str, Any]] = {}

    # -- samples -----------------------------------------------------------------------------------
    def dataset(self, target: str, train: bool = False) -> Dataset:
        """The target's training split (``train=True``: with its training augmentation), memoised."""
        if (target, train) not in self._datasets:
            self._datasets[(target, train)] = _load_target(target, self.settings.data_dir, train)
        return self._datasets[(target, train)]

    def samples(
        self, target: str, shots: int | str, seed: int
    ) -> tuple[Dataset, np.ndarray, np.ndarray]:
        """(subset dataset, indices (N,), labels (N,)) of the selection samples of a target."""
        full = self.dataset(target)
        labels = np.asarray(full.labels, dtype=np.int64)
        idx = selection_subset(
            labels,
            shots,
            seed,
            self.settings.selection.per_class,
            self.settings.selection.seed,
            self.settings.val_fraction,
        )
        return full.subset(idx), idx, labels[idx]

    # -- keys --------------------------------------------------------------------------------------
    def key(
        self, kind: str, entry: str | None, target: str, shots: int | str, seed: int
    ) -> dict[str, Any]:
        """The cache key of one extraction (everything that changes its arrays)."""
        s = self.settings
        key: dict[str, Any] = {
            "version": CODE_VERSION,
            "kind": kind,
            "target": target,
            "data": _data_fingerprint(target, s.data_dir),
            "shots": format_shots(shots),
            "seed": int(seed),
            "per_class": s.selection.per_class,
            "selection_seed": s.selection.seed,
        }
        if (
            s.val_fraction is not None
        ):  # absent when null: caches made before the setting stay valid
            key["val_fraction"] = s.val_fraction
        if kind != "probe":
            key["entry"] = entry
            key["card"] = _entry_fingerprint(entry, s.zoo_dir)
        if kind == "lgc":
            key.update(
                heads=s.selection.lgc.heads,
                dim=s.selection.lgc.dim,
                sketch_seed=s.selection.seed,
                sketch=SKETCH_ID,
            )
        if kind == "probe":
            key.update(self.probe_settings())
        return key

    def probe_settings(self) -> dict[str, Any]:
        """RSA's probe settings (``selection.probe``) with the precision resolved for the device:
        the probe cache key holds them and :func:`train_probe` takes them."""
        probe = asdict(self.settings.selection.probe)
        probe["precision"] = resolve_precision(probe["precision"], self.device)
        return probe

    # -- extraction --------------------------------------------------------------------------------
    def extract(
        self,
        entry_id: str,
        target: str,
        shots: int | str,
        seed: int = 0,
        *,
        features: bool = True,
        lgc: bool = False,
    ) -> Extraction:
        """Features + source probabilities (``features=True``) and/or the LGC sketch (``lgc=True``) of
        one entry on the selection samples of ``target`` (shots subset drawn with ``seed``)."""
        if not (features or lgc):
            raise ValueError("extract needs features=True or lgc=True (nothing to extract)")
        s = self.settings
        kinds = [k for k, want in (("features", features), ("lgc", lgc)) if want]
        keys = {k: self.key(k, entry_id, target, shots, seed) for k in kinds}
        paths = {k: cache_path(s.cache_dir, entry_id, target, shots, seed, k) for k in kinds}
        found = {
            k: read_cache(paths[k], keys[k], _ARRAYS[k]) if s.selection.cache else None
            for k in kinds
        }
        missing = [k for k in kinds if found[k] is None]
        if missing:
            entry = _load_entry(entry_id, s.zoo_dir)
            subset, idx, labels = self.samples(target, shots, seed)
            sketch = (
                {
                    "heads": s.selection.lgc.heads,
                    "dim": s.selection.lgc.dim,
                    "seed": s.selection.seed,
                }
                if "lgc" in missing
                else None
            )
            arrays, seconds = run_model(
                entry.model,
                subset,
                device=self.device,
                batch_size=s.selection.batch_size,
                sketch=sketch,
                renorm=_renormalise(subset, entry, self.device),
                num_workers=s.selection.num_workers,
            )
            del entry
            made = {"features": {"features": arrays["features"], "probs": arrays["probs"]}}
            if "grads" in arrays:
                made["lgc"] = {"grads": arrays["grads"]}
            for kind, arrs in made.items():
                arrs.update(labels=labels, indices=idx)
                if kind in missing:
                    found[kind] = (arrs, seconds[kind])
                    if s.selection.cache:
                        write_cache(paths[kind], keys[kind], arrs, seconds[kind])
                elif kind not in kinds and s.selection.cache:
                    # a sketch pass yields the features too: cache them unless already there
                    key = self.key(kind, entry_id, target, shots, seed)
                    path = cache_path(s.cache_dir, entry_id, target, shots, seed, kind)
                    if read_cache(path, key, _ARRAYS[kind]) is None:
                        write_cache(path, key, arrs, seconds[kind])
        first = found[kinds[0]][0]
        out = Extraction(
            entry=entry_id,
            target=target,
            shots=format_shots(shots),
            seed=int(seed),
            labels=np.asarray(first["labels"], dtype=np.int64),
            indices=np.asarray(first["indices"], dtype=np.int64),
            seconds={k: found[k][1] for k in kinds},
            cached={k: k not in missing for k in kinds},
        )
        if features:
            arrs = found["features"][0]
            out.features = np.asarray(arrs["features"], dtype=np.float64)
            out.probs = np.asarray(arrs["probs"], dtype=np.float64)
        if lgc:
            out.grads = np.asarray(found["lgc"][0]["grads"], dtype=np.float64)
            if not np.array_equal(found["lgc"][0]["indices"], out.indices):
                raise RuntimeError(
                    f"cached features and sketch of {entry_id} on {target} disagree on the samples"
                )
        return out

    def probe(self, target: str, shots: int | str, seed: int = 0) -> Probe:
        """RSA's probe features on the selection samples of ``target``, shared by every entry."""
        s = self.settings
        key = self.key("probe", None, target, shots, seed)
        path = cache_path(s.cache_dir, "", target, shots, seed, "probe")
        hit = read_cache(path, key, _ARRAYS["probe"]) if s.selection.cache else None
        if hit is not None:
            arrs, seconds = hit
            return Probe(
                np.asarray(arrs["features"], np.float64),
                arrs["labels"],
                arrs["indices"],
                seconds,
                True,
            )
        subset, idx, labels = self.samples(target, shots, seed)
        train_set = self.dataset(target, train=True).subset(idx)
        info = getattr(subset, "info", None)
        num_classes = int(info.num_classes) if info is not None else int(labels.max()) + 1
        start = time.perf_counter()
        feats = train_probe(
            train_set,
            subset,
            num_classes,
            **self.probe_settings(),
            seed=int(np.random.SeedSequence([s.selection.seed, int(seed)]).generate_state(1)[0]),
            device=self.device,
            eval_batch_size=s.selection.batch_size,
            num_workers=s.selection.num_workers,
        )
        seconds = time.perf_counter() - start
        arrs = {"features": feats, "labels": labels, "indices": idx}
        if s.selection.cache:
            write_cache(path, key, arrs, seconds)
        return Probe(np.asarray(feats, np.float64), labels, idx, seconds, False)

    # -- reference-space source profiles (Domain Similarity) --------------------------------------
    def source_key(self, reference: str, dataset: str) -> dict[str, Any]:
        """The cache key of a source profile in ``reference``'s feature space."""
        s = self.settings
        return {
            "version": CODE_VERSION,
            "kind": "source",
            "entry": reference,
            "card": _entry_fingerprint(reference, s.zoo_dir),
            "dataset": dataset,
            "data": _data_fingerprint(dataset, s.data_dir),
            "source_per_class": s.selection.source_per_class,
            "selection_seed": s.selection.seed,
        }

    def source_profile(
        self, reference: str, datasets: list[str] | tuple[str, ...]
    ) -> SourceProfile:
        """Class means (Cs, D) and class sizes (Cs,) of the source ``datasets`` in the feature space
        of the entry ``reference``; several datasets are stacked in order (a joined label space).

        Each dataset's class c gets the mean of ``reference``'s penultimate features over at most
        ``source_per_class`` of its training images (``zoo.samplers.selection_indices``, seeded by
        the selection seed, no augmentation) and the weight n_c = its number of training images
        (all of them, not the sampled ones: Cui et al. weight a class by its size). Cached per
        (reference fingerprint, dataset, source_per_class, selection seed).
        """
        if not datasets:
            raise ValueError("source_profile needs at least one source dataset")
        s = self.settings
        means, counts, seconds, cached = [], [], 0.0, True
        for name in datasets:
            key = self.source_key(reference, name)
            path = source_cache_path(s.cache_dir, reference, name)
            hit = read_cache(path, key, _ARRAYS["source"]) if s.selection.cache else None
            if hit is None:
                from zoo.samplers import selection_indices

                cached = False
                full = _load_target(name, s.data_dir, False)
                labels = np.asarray(full.labels, dtype=np.int64)
                info = getattr(full, "info", None)
                n_classes = int(info.num_classes) if info is not None else int(labels.max()) + 1
                idx = np.asarray(
                    selection_indices(labels, s.selection.source_per_class, s.selection.seed),
                    np.int64,
                )
                subset = full.subset(idx)
                entry = _load_entry(reference, s.zoo_dir)
                arrays, secs = run_model(
                    entry.model,
                    subset,
                    device=self.device,
                    batch_size=s.selection.batch_size,
                    renorm=_renormalise(subset, entry, self.device),
                    num_workers=s.selection.num_workers,
                )
                del entry
                feats = arrays["features"].astype(np.float64)
                sums = class_sums(feats, labels[idx], n_classes)
                sampled = np.bincount(labels[idx], minlength=n_classes)
                arrs = {
                    "means": sums / np.maximum(sampled, 1)[:, None],
                    "counts": np.bincount(labels, minlength=n_classes).astype(np.int64),
                }
                hit = (arrs, secs["features"])
                if s.selection.cache:
                    write_cache(path, key, arrs, hit[1])
            means.append(np.asarray(hit[0]["means"], np.float64))
            counts.append(np.asarray(hit[0]["counts"], np.int64))
            seconds += hit[1]
        return SourceProfile(np.concatenate(means), np.concatenate(counts), seconds, cached)

    def entry_info(self, entry_id: str) -> dict[str, Any]:
        """``{"n_params": int, "source_accuracy": float}`` of an entry (memoised): the number of
        parameters of its loaded model (a domain view for ``expert@domain``) and its domain's source
        accuracy in [0, 1] from the card (NaN when the card has none)."""
        if entry_id not in self._info:
            entry = _load_entry(entry_id, self.settings.zoo_dir)
            n_params = int(sum(p.numel() for p in entry.model.parameters()))
            self._info[entry_id] = {
                "n_params": n_params,
                "source_accuracy": card_source_accuracy(entry.card, entry_id),
            }
        return dict(self._info[entry_id])


@dataclass
class SourceProfile:
    """A source profile in a reference feature space: class means (Cs, D) float64, sizes (Cs,)."""

    means: np.ndarray
    counts: np.ndarray
    seconds: float
    cached: bool


def _entry_domain(card: dict, entry_id: str) -> dict:
    """The card's domain dict of ``entry_id`` (``expert@domain``: that domain; else the first)."""
    domains = card.get("domains") or []
    name = split_entry(entry_id)[1]
    if name is not None:
        for d in domains:
            if d.get("name") == name:
                return d
        raise ValueError(
            f"entry {entry_id!r}: its card has no domain {name!r}; domains: "
            f"{[d.get('name') for d in domains]}"
        )
    if not domains:
        raise ValueError(f"entry {entry_id!r}: its card lists no domains")
    return domains[0]


def card_source_accuracy(card: dict, entry_id: str) -> float:
    """The source accuracy in [0, 1] of the entry's domain from its card; NaN when unknown."""
    value = _entry_domain(card, entry_id).get("source_accuracy")
    if value is None:
        return float("nan")
    value = float(value)
    if not np.isfinite(value):
        return float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"entry {entry_id!r}: card source_accuracy {value} is not a fraction in [0, 1]"
        )
    return value


def source_datasets(entry_id: str, zoo_dir: str | os.PathLike) -> list[str]:
    """The datasets an entry was trained on: its domain's ``datasets`` in the card (``expert@domain``:
    that domain's), else the card's ``sources`` for a single-domain expert. ValueError when the card
    names none."""
    from zoo.store import load_card

    card = load_card(expert_of(entry_id), zoo_dir)
    domain = _entry_domain(card, entry_id)
    names = list(domain.get("datasets") or [])
    if not names and split_entry(entry_id)[1] is None:
        names = list(card.get("sources") or [])
    if not names:
        raise ValueError(f"the card of entry {entry_id!r} names no source datasets")
    return [str(n) for n in names]


def load_source_profile(entry_id: str, zoo_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Domain Similarity's source profile of an entry: class-mean features (Cs, D), class counts (Cs,)."""
    from zoo.store import load_source_profile as _load

    return _load(entry_id, zoo_dir)

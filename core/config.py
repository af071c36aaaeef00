"""Typed schemas for the configs that matter, registered in Hydra's ConfigStore.

Each group file (e.g. ``configs/train/mini.yaml``) starts from its schema (``defaults: [schema,
_self_]``), so a misspelt key or a value of the wrong type fails when the config is composed, not
hours into a job. Import this module before composing (the entry points and tests do).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TypeVar, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from core.provenance import register_resolvers


@dataclass
class PathsConfig:
    # the output folder's name under ZOOBENCH_OUT (an experiment that changes the zoo or a recipe
    # sets its own, so that its experts and results never share a store with the benchmark's)
    out_name: str = "mini"
    out_dir: str = "outputs/mini"
    data_dir: str = "data"
    zoo_dir: str = "${paths.out_dir}/zoo"
    finetune_dir: str = "${paths.out_dir}/finetune"
    cache_dir: str = "${paths.out_dir}/cache"
    selection_dir: str = "${paths.out_dir}/selection"
    reports_dir: str = "${paths.out_dir}/reports"


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"
    channels_last: bool = True
    deterministic: bool = False
    enable_progress_bar: bool = True
    log_every_n_steps: int = 10
    # also checkpoint every n optimiser steps (null = at each epoch end only)
    checkpoint_every_n_steps: int | None = None
    # stop after this many steps (-1 = run every epoch)
    max_steps: int = -1
    # DDP: how long a rank waits for the others at a collective before failing (Lightning's default)
    dist_timeout_s: float = 1800


@dataclass
class LoggerConfig:
    type: str = "csv"  # csv | wandb | none
    project: str = "zoobench"
    mode: str = "offline"  # offline | online | disabled
    entity: str | None = None
    group: str | None = None


@dataclass
class TrainRecipe:
    """How a zoo expert is trained (configs/train/)."""

    epochs: int = 90
    batch_size: int = 512
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # linear warm-up of the learning rate over this many epochs (coloured mini data needs it)
    warmup_epochs: float = 0
    lr_step_epochs: int = 30
    lr_gamma: float = 0.1
    # multi-domain experts: images drawn from each domain per epoch (with replacement when smaller)
    per_domain: int = 50000
    augment: bool = True
    # cap on training images per class (null = all): keeps the mini experts fast
    max_per_class: int | None = None
    num_workers: int = 8
    # retrain a stored expert whose config hash differs from the requested one (and replace it),
    # instead of stopping with an error; not part of the recipe
    overwrite: bool = False


@dataclass
class FinetuneSettings:
    """How a zoo entry is fine-tuned on a target (configs/finetune/): the recipe, the optimiser
    (SGD) and the device policy (the ``trainer`` node's, by interpolation in the YAML)."""

    epochs: int = 30
    batch_size: int = 64
    # step decay by `gamma` at these fractions of the training steps
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1
    # hold out this fraction of the training split for a validation accuracy (null = none)
    val_fraction: float | None = None
    augment: bool = True
    # at least this many SGD steps (few-shot splits are tiny: epochs alone would give too few)
    min_steps: int = 0
    num_workers: int = 8
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    accelerator: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    deterministic: bool = False

    def __post_init__(self) -> None:
        from core.devices import ACCELERATORS, PRECISIONS  # torch only when settings are built

        if self.epochs < 0 or self.min_steps < 0 or self.epochs + self.min_steps <= 0:
            raise ValueError(
                f"invalid schedule epochs={self.epochs}, min_steps={self.min_steps}; "
                "both must be >= 0 and at least one > 0"
            )
        if self.batch_size < 1:
            raise ValueError(f"invalid batch_size {self.batch_size}; expected >= 1")
        if any(not 0.0 < m < 1.0 for m in self.milestones):
            raise ValueError(
                f"invalid milestones {list(self.milestones)}; expected fractions in (0, 1)"
            )
        if self.val_fraction is not None and not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"invalid val_fraction {self.val_fraction}; expected null or a fraction in (0, 1)"
            )
        if self.accelerator not in ACCELERATORS:
            raise ValueError(
                f"unknown accelerator {self.accelerator!r}; known: {', '.join(ACCELERATORS)}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"unknown precision {self.precision!r}; known: {', '.join(PRECISIONS)}"
            )


@dataclass
class SweepConfig:
    """The fine-tuning grid (configs/sweep/): targets x shots x lrs x seeds."""

    name: str = "mini"
    targets: list[str] = field(default_factory=list)
    shots: list[Any] = field(default_factory=lambda: ["full", 20])
    lrs: list[float] = field(default_factory=lambda: [0.1, 0.03, 0.01])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    # seeds of shots=full (null = seeds)
    full_seeds: list[int] | None = None


@dataclass
class LGCConfig:
    """LGC's sketch (selection/sketch.py): R seeded random heads, count-sketched to `dim` columns."""

    heads: int = 4
    dim: int = 4096

    def __post_init__(self) -> None:
        _positive(self, "heads", "dim")


@dataclass
class ProbeConfig:
    """RSA's probe network, trained briefly on the target's selection samples."""

    arch: str = "resnet8"
    # keyword arguments of the architecture (zoo.models.create_model), e.g. {stem_stride: 2}
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 200
    lr: float = 0.05
    batch_size: int = 64
    weight_decay: float = 5e-4
    # training precision (features are read in fp32): auto = bf16 autocast where it pays off
    precision: str = "auto"

    def __post_init__(self) -> None:
        _positive(self, "steps", "batch_size")


@dataclass
class SelectionConfig:
    """How the zoo is scored (configs/selection/): the samples, the extraction, the caps."""

    # at most this many training images per class of the draw are used for scoring
    per_class: int = 50
    seed: int = 0
    # Domain Similarity's one reference extractor
    reference_entry: str | None = None
    # images per source class for the reference-space source profiles
    source_per_class: int = 50
    batch_size: int = 256
    # class-stratified, seeded cap on N for the methods whose cost grows with N^2 (null = none)
    sample_cap: int | None = 2000
    cache: bool = True
    num_workers: int = 0
    lgc: LGCConfig = field(default_factory=LGCConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def __post_init__(self) -> None:
        _positive(self, "per_class", "batch_size", "source_per_class")
        if self.sample_cap is not None:
            _positive(self, "sample_cap")


def _positive(settings: Any, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"selection setting {name} must be a positive integer; got {value!r}")


@dataclass
class AnalysisConfig:
    """How rankings are judged (configs/analysis/)."""

    # the gain baseline entry (null = the best entry of each cell)
    baseline: str | None = None
    # reference entry of the multi-domain view (null: the mean over the expert's domains)
    domain_baseline: str | None = None
    topk: int = 5
    bootstrap: int = 1000
    seed: int = 0
    # true: fail on partial tables (a target without scores, an entry without ground truth)
    strict: bool = False
    # the cost table counts fine-tuning the top-k entries after selection, for these k
    cost_topk: list[int] = field(default_factory=lambda: [1, 3])
    # a target "has a ranking problem" when its entries spread by more than this (points)
    spread_points: float = 5.0
    # restrict the judged methods (null = every method with scores)
    methods: list[str] | None = None


T = TypeVar("T")


def typed(schema: type[T], node: Any) -> T:
    """The config ``node`` as an instance of the dataclass ``schema``.

    A node composed from the schema converts as is; a plain node (a hand-built config) is merged
    onto the schema first, so its missing keys take the schema's defaults. A key the schema does
    not have raises (at composition for a YAML file or a plain override; here for a key that a
    ``+key=value`` override force-added, which Hydra lets through a typed node): ValueError naming
    the key and the valid ones. The dataclass' ``__post_init__`` checks run either way.
    """
    if not (OmegaConf.is_config(node) and OmegaConf.get_type(node) is schema):
        node = OmegaConf.merge(OmegaConf.structured(schema), node or {})
    _check_keys(schema, node, node._get_full_key(None) or "the config")
    return OmegaConf.to_object(node)


def _check_keys(schema: type, node: Any, where: str) -> None:
    hints = get_type_hints(schema)
    names = [f.name for f in fields(schema)]
    unknown = sorted(str(k) for k in node.keys() if k not in names)
    if unknown:
        raise ValueError(
            f"unknown keys {unknown} in {where} ({schema.__name__}); valid keys: {sorted(names)}"
        )
    for name in names:
        if is_dataclass(hints[name]) and OmegaConf.is_dict(node[name]):
            _check_keys(hints[name], node[name], f"{where}.{name}")


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="paths", name="schema", node=PathsConfig)
    cs.store(group="trainer", name="schema", node=TrainerConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)
    cs.store(group="train", name="schema", node=TrainRecipe)
    cs.store(group="finetune", name="schema", node=FinetuneSettings)
    cs.store(group="selection", name="schema", node=SelectionConfig)
    cs.store(group="analysis", name="schema", node=AnalysisConfig)
    # the sweep files are global (they also set hydra.sweeper): they pull this in as `sweep`
    cs.store(group="schema", name="sweep", node=SweepConfig, package="sweep")


def sweep_values(values: Any) -> str:
    """``${sweep_values:${sweep.targets}}`` -> ``"a,b,c"``: a config list as the comma-separated
    values of a Hydra sweep parameter, so that ``-m`` sweeps whatever the config lists."""
    if isinstance(values, str):
        return values
    return ",".join(str(v) for v in values)


register_configs()
register_resolvers()  # ${zoobench.job_tag:} of the job folders (configs/hydra/default.yaml)
if not OmegaConf.has_resolver("sweep_values"):
    OmegaConf.register_new_resolver("sweep_values", sweep_values)

"""Typed schemas for the configs that matter, registered in Hydra's ConfigStore.

Each group file (e.g. ``configs/train/mini.yaml``) starts from its schema (``defaults: [schema,
_self_]``), so a misspelt key or a value of the wrong type fails when the config is composed, not
hours into a job. Import this module before composing (the entry points and tests do).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


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
class FinetuneRecipe:
    """How a zoo entry is fine-tuned on a target (configs/finetune/)."""

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


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="paths", name="schema", node=PathsConfig)
    cs.store(group="trainer", name="schema", node=TrainerConfig)
    cs.store(group="logger", name="schema", node=LoggerConfig)
    cs.store(group="train", name="schema", node=TrainRecipe)
    cs.store(group="finetune", name="schema", node=FinetuneRecipe)


def sweep_values(values: Any) -> str:
    """``${sweep_values:${sweep.targets}}`` -> ``"a,b,c"``: a config list as the comma-separated
    values of a Hydra sweep parameter, so that ``-m`` sweeps whatever the config lists."""
    if isinstance(values, str):
        return values
    return ",".join(str(v) for v in values)


register_configs()
if not OmegaConf.has_resolver("sweep_values"):
    OmegaConf.register_new_resolver("sweep_values", sweep_values)

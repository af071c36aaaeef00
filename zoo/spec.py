"""What a zoo expert is: :class:`ExpertSpec`, the expert-id rule, the recipe it trains with and the
config hash that identifies it; built from a zoo config (``zoo.experts``) or the command line.

An expert is one architecture trained on one or more source datasets:

- ``single``: one head over the classes of its dataset(s) (several datasets are joined into one
  label space);
- ``shared`` / ``multi_bn`` / ``adapter``: a :class:`~zoo.multidomain.MultiDomainClassifier`, one
  domain per dataset;
- ``pretrained``: shipped weights imported into the store, nothing trained.

The recipe (:class:`core.config.TrainRecipe`) and the trainer settings
(:class:`core.config.TrainerConfig`) are the typed schemas of ``configs/train`` and
``configs/trainer``: their defaults live there only, and :func:`as_schema` reads a config node, a
mapping or an instance into one, rejecting unknown keys and values of the wrong type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from core.config import TrainRecipe
from core.io import config_hash
from core.keys import expert_of
from zoo.models import normalize_arch_kwargs
from zoo.multidomain import KINDS as MULTI_KINDS
from zoo.store import check_expert_id

EXPERT_TYPES = ("single", *MULTI_KINDS, "pretrained")

# a switch of the train_zoo command (retrain stale experts), not part of any expert's recipe
NOT_RECIPE = ("overwrite",)
#: the keys of an expert's recipe (its per-expert ``recipe`` overrides must be among them)
RECIPE_KEYS = tuple(f.name for f in fields(TrainRecipe) if f.name not in NOT_RECIPE)
# recipe keys that change how fast an expert trains, not what it is: left out of its identity
NOT_IDENTITY = ("num_workers",)

T = TypeVar("T")


def as_schema(node: Any, schema: type[T], what: str) -> T:
    """``node`` (an instance of ``schema``, a mapping, a config node; None: the defaults) as a
    ``schema`` instance, read with ``OmegaConf.to_object``.

    Missing keys take the schema's defaults; an unknown key or a value of the wrong type raises a
    ``ValueError`` that names ``what`` and the valid keys.
    """
    if isinstance(node, schema):
        return node
    if node is not None and not isinstance(node, Mapping | DictConfig):
        raise ValueError(f"{what} must be a mapping of {schema.__name__} keys, not {node!r}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node or {})
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        known = ", ".join(f.name for f in fields(schema))  # type: ignore[arg-type]
        # OmegaConf's first line names the key and the problem; the rest repeats the key
        reason = str(e.msg).splitlines()[0]
        raise ValueError(f"bad {what}: {reason}; known keys: {known}") from None


def plain(node: Any) -> Any:
    """A config node as plain Python containers (anything else as it is)."""
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def select(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg``'s value at the dotted ``key`` as plain Python (``default`` when absent)."""
    return plain(OmegaConf.select(cfg, key, default=default))


def default_expert_id(arch: str, kind: str, datasets: list[str], init: str | None = None) -> str:
    """The id of an expert whose config gives none: ``<arch>_<dataset>[+<dataset>...]`` for a
    single-domain expert, ``<type>_<arch>`` for the others, then ``+<init>`` when it is initialised
    from another store entry."""
    expert_id = f"{arch}_{'+'.join(datasets)}" if kind == "single" else f"{kind}_{arch}"
    return f"{expert_id}+{init}" if init else expert_id


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
        unknown = sorted(set(self.recipe) - set(RECIPE_KEYS))
        if unknown:
            raise ValueError(
                f"expert {self.id!r}: unknown recipe keys {unknown}; known: {sorted(RECIPE_KEYS)}"
            )
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"expert {self.id!r}: duplicate datasets in {self.datasets}")
        if self.type == "pretrained" and self.init:
            raise ValueError(
                f"expert {self.id!r} imports shipped weights (type pretrained): it takes no init"
            )

    @property
    def init_expert(self) -> str | None:
        """The expert whose entry ``init`` names (``init`` without its ``@domain``)."""
        return expert_of(self.init) if self.init else None


def effective_recipe(spec: ExpertSpec, recipe: TrainRecipe | Mapping[str, Any] | None) -> dict:
    """The recipe an expert trains with, as a dict of :data:`RECIPE_KEYS`: the schema's defaults,
    then ``recipe`` (the ``train`` config), then the expert's own ``recipe`` overrides."""
    base = asdict(as_schema(recipe, TrainRecipe, "train recipe"))
    merged = as_schema({**base, **spec.recipe}, TrainRecipe, f"recipe of expert {spec.id!r}")
    return {k: v for k, v in asdict(merged).items() if k not in NOT_RECIPE}


def expert_config_hash(
    spec: ExpertSpec, recipe: Mapping[str, Any], seed: int, max_steps: int
) -> str:
    """Hash of what determines an expert (spec, recipe, seed, step cap), not where it is written.

    A stored expert is reused only when its card's ``config_hash`` equals this hash. Pretrained
    experts (shipped weights, nothing trained) hash their spec alone; ``num_workers`` is left out.
    """
    if spec.type == "pretrained":
        return config_hash({"spec": asdict(spec)})
    recipe = {k: v for k, v in dict(recipe).items() if k not in NOT_IDENTITY}
    return config_hash(
        {"spec": asdict(spec), "recipe": recipe, "seed": seed, "max_steps": max_steps}
    )


def _dataset_list(cfg: Any) -> list[str]:
    """``datasets=`` as a list: a list, ``a,b,c``, or ``sources`` / ``<benchmark>_sources`` (the
    benchmark's source datasets)."""
    datasets = select(cfg, "datasets")
    if isinstance(datasets, str):
        bench = select(cfg, "benchmark.name")
        if datasets in ("sources", f"{bench}_sources"):
            return list(select(cfg, "benchmark.sources") or [])
        return [d.strip() for d in datasets.split(",") if d.strip()]
    return list(datasets or [])


def spec_from_cli(cfg: Any) -> ExpertSpec:
    """The one expert of ``train_zoo.py dataset=... arch=...`` / ``expert=... datasets=[...]``."""
    arch_cfg = select(cfg, "arch")
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
    kind = select(cfg, "expert.type", "single")
    dataset = (
        select(cfg, "dataset.name")
        if isinstance(select(cfg, "dataset"), dict)
        else select(cfg, "dataset")
    )
    datasets = _dataset_list(cfg)
    if dataset and datasets:
        raise ValueError(
            f"give dataset=... or datasets=[...], not both (got {dataset!r} and {datasets})"
        )
    if dataset:
        datasets = [dataset]
    init = select(cfg, "init")
    return ExpertSpec(
        id=select(cfg, "expert_id") or default_expert_id(arch, kind, datasets, init),
        arch=arch,
        type=kind,
        datasets=datasets,
        init=init,
        arch_kwargs=arch_kwargs,
    )


def spec_from_zoo(entry: Mapping[str, Any]) -> ExpertSpec:
    """An :class:`ExpertSpec` from one item of ``zoo.experts`` (an ``id`` is optional)."""
    entry = dict(plain(entry))
    known = {f.name for f in fields(ExpertSpec)}
    extra = set(entry) - known
    if extra:
        raise ValueError(
            f"zoo expert {entry.get('id')!r}: unknown keys {sorted(extra)}; known: {sorted(known)}"
        )
    if not entry.get("arch"):
        raise ValueError(f"zoo expert {entry.get('id')!r} has no arch")
    kind = entry.get("type") or "single"
    datasets = list(entry.get("datasets") or [])
    init = entry.get("init")
    return ExpertSpec(
        id=entry.get("id") or default_expert_id(entry["arch"], kind, datasets, init),
        arch=entry["arch"],
        type=kind,
        datasets=datasets,
        init=init,
        pretrained=entry.get("pretrained"),
        arch_kwargs=dict(entry.get("arch_kwargs") or {}),
        recipe=dict(entry.get("recipe") or {}),
    )


__all__ = [
    "EXPERT_TYPES",
    "RECIPE_KEYS",
    "ExpertSpec",
    "as_schema",
    "default_expert_id",
    "effective_recipe",
    "expert_config_hash",
    "spec_from_cli",
    "spec_from_zoo",
]

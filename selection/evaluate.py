"""``evaluate_selection.py``: score every zoo entry with one method (or all), then judge the ranking.

For each (target, shots) cell and each method, the scores of every entry of the configured zoo go to

    <selection_dir>/<target>/shots=<k>/<method>.parquet

with one row per (entry, draw) and columns (:data:`SCORE_COLUMNS`):

- ``entry``: the zoo entry (``<expert>`` or ``<expert>@<domain>``);
- ``seed``: the draw scored. A k-shot cell scores every fine-tuning seed's draw (``sweep.seeds``,
  or the one ``seed=S``): the selection samples of seed s are the training images of the
  fine-tuning runs of seed s (``selection.extract.finetune_subset``), capped to
  ``selection.per_class`` per class. ``shots=full`` has one draw, seed = ``selection.seed``;
- ``score``: the method's score (higher = better predicted fine-tuning accuracy);
- ``extract_seconds``: wall seconds of the extraction that the method's inputs need, as if the method
  ran alone (the features pass for features/probabilities, the LGC pass for gradients, and an equal
  share over the entries of the target's RSA probe); with ``method=all`` one extraction serves every
  method, so do not add these up across methods;
- ``score_seconds``: wall seconds of the score itself (after extraction; includes the sample cap);
- ``seconds`` = extract_seconds + score_seconds: the method's selection cost for that entry;
- ``n``: the number of samples the score used; ``cap``: the sample cap of a quadratic method
  (``selection.sample_cap``; null for the others). Quadratic methods (``Method.quadratic``: PARC, RSA,
  kNN) score a class-stratified, seeded subset (``selection.checks.stratified_cap``) of at most
  ``cap`` samples;
- ``remedy``: what the method did outside its well-posed regime ("" when nothing;
  ``selection.registry.score_detail``);
- ``key``: the table's identity (:func:`table_key`): a hash of the method and its parameters, the
  extraction settings its inputs depend on, every entry's card fingerprint (which holds the weights'
  sha256), the target, the fingerprint of its training split (``zoo.data.split_fingerprint``), shots
  and draw seeds, and for ``domain_similarity`` the reference entry and its source datasets'
  fingerprints;
- ``job_dir``: the Hydra output folder of the job that computed the table (its composed config and
  log; null outside a Hydra job).

Rerunning reuses a (cell, method) table only when its ``key`` equals the current one and it has a row
for every (entry, seed); otherwise the table is recomputed and replaced atomically (so changing a
method parameter, an LGC or extraction setting, retraining an expert, adding one or editing the
target's data recomputes it).
Extraction is cached separately (:mod:`selection.extract`), so recomputing scores is cheap.

Domain Similarity (``domain_similarity``) measures every entry in ONE reference feature space: the
target features of ``selection.reference_entry`` (default: the benchmark's baseline) and the
reference-space profile of each entry's source datasets (``Extractor.source_profile``).
Reference methods get ``entry_info`` (``n_params`` of the loaded model, ``source_accuracy`` of the
entry's domain from the card, NaN when unknown).

Zoo-level methods (``Method.level == "zoo"``, e.g. NCTI and ETran, which normalise their parts over
the models ranked) are scored once per draw over every entry that has their inputs
(``selection.score_zoo``), after the entries' extraction; their table has the same per-entry rows,
with ``score_seconds`` the zoo call's wall time shared equally by its entries. Their key already
covers every entry's fingerprint, so adding or retraining any entry recomputes them.

Each method's ranking is printed (by the mean score over draws); ``analyze.py`` judges it against
the fine-tuning ground truth.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from core.config import SweepConfig, typed
from core.io import atomic_write, is_temporary
from core.keys import format_shots
from core.progress import Progress
from core.provenance import job_dir
from selection.extract import (
    CODE_VERSION,
    Extraction,
    Extractor,
    ExtractSettings,
    SourceProfile,
    _data_fingerprint,
    _entry_fingerprint,
    load_source_profile,
    resolve_precision,
    source_datasets,
)
from selection.registry import Method, available, get_method, score_detail, score_zoo

SCORE_COLUMNS = [
    "entry",
    "seed",
    "score",
    "seconds",
    "extract_seconds",
    "score_seconds",
    "n",
    "cap",
    "remedy",
    "reference",
    "key",
    "job_dir",
]
METHOD_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "method"
_FEATURE_INPUTS = {"features", "probs"}


@dataclass(frozen=True)
class MethodRun:
    """A method to run with its parameters (from its YAML)."""

    name: str
    method: Method
    params: dict[str, Any]


def _plain(node: Any) -> Any:
    return (
        OmegaConf.to_container(node, resolve=True)
        if isinstance(node, DictConfig | ListConfig)
        else node
    )


def method_params(name: str) -> dict[str, Any]:
    """The parameters in ``configs/method/<name>.yaml`` (empty when there is no such file)."""
    path = METHOD_CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        return {}
    node = _plain(OmegaConf.load(path)) or {}
    return {k: v for k, v in node.items() if k not in ("name", "defaults")}


def resolve_methods(method_cfg: Any) -> list[MethodRun]:
    """The methods of ``cfg.method``: a name, or a node with ``name`` (+ parameters); ``all`` = every
    registered method, each with the parameters of its YAML."""
    node = _plain(method_cfg)
    if isinstance(node, str):
        node = {"name": node}
    if not isinstance(node, dict) or not node.get("name"):
        raise ValueError(f"method must be a method name or a node with `name`; got {node!r}")
    name = str(node["name"])
    if name == "all":
        return [MethodRun(n, m, method_params(n)) for n, m in available().items()]
    params = {k: v for k, v in node.items() if k != "name"}
    method = get_method(name)
    unknown = [k for k in params if k not in method.defaults]
    if unknown:
        raise ValueError(
            f"method {name!r} has no parameters {unknown}; its parameters: {sorted(method.defaults)}"
        )
    return [MethodRun(name, method, params)]


def _targets(cfg: DictConfig) -> list[str]:
    target = _plain(cfg.get("target"))
    if isinstance(target, dict):
        target = target.get("name")
    if target:
        return [str(target)]
    targets = _plain(cfg.benchmark.get("targets")) or []
    if not targets:
        raise ValueError("no target: set target=NAME or list benchmark.targets")
    return [str(t) for t in targets]


def _shots(cfg: DictConfig) -> list[str]:
    shots = _plain(cfg.get("shots"))
    if shots is None:
        shots = typed(SweepConfig, cfg.sweep).shots
        if not shots:
            raise ValueError("no shots: set shots=K (or full) or list sweep.shots")
    shots = shots if isinstance(shots, list) else [shots]
    return [format_shots(s) for s in shots]


def zoo_entries(cfg: DictConfig, zoo_dir: Path) -> list[str]:
    """Entries of the configured zoo (``zoo.entries``, else ``zoo.experts``'s entries) in the store;
    one that is not stored raises ValueError (:func:`zoo.store.zoo_entries`)."""
    from zoo.store import zoo_entries as store_entries

    experts = [str(e["id"]) for e in (_plain(cfg.zoo.experts) or [])]
    return store_entries(zoo_dir, experts, _plain(cfg.zoo.entries), strict=True)


def is_reference_space(method: Method) -> bool:
    """True for a method measured in the reference entry's feature space (``domain_similarity``)."""
    return bool(getattr(method.fn, "reference_space", False))


def draw_seeds(cfg: DictConfig, shots: str) -> list[int]:
    """The draws scored in a cell: ``shots=full``: ``[selection.seed]``; k shots: ``[seed]`` when the
    config sets ``seed``, else every fine-tuning seed (``sweep.seeds``)."""
    if shots == "full":
        return [int(cfg.selection.seed)]
    if cfg.get("seed") is not None:
        return [int(cfg.seed)]
    seeds = typed(SweepConfig, cfg.sweep).seeds
    bad = [s for s in seeds if s < 0]
    if bad or not seeds:
        raise ValueError(f"sweep.seeds must list non-negative integers; got {seeds!r}")
    return sorted({int(s) for s in seeds})


def table_key(
    run: MethodRun,
    settings: ExtractSettings,
    target: str,
    shots: str,
    seeds: list[int],
    fingerprints: dict[str, str],
    *,
    sample_cap: int | None,
    reference: str | None = None,
    device: Any = None,
) -> str:
    """The identity hash (16 hex digits) of a score table: everything its scores depend on.

    Method name and its full parameters (defaults + overrides), target and the fingerprint of its
    training split, shots, draw seeds, the card fingerprint of every entry (``fingerprints``: entry
    -> fingerprint; it covers the weights' sha256), the sample selection (per_class, selection
    seed, val_fraction) and, by what the method needs: the LGC sketch (heads, dim), RSA's probe
    settings, the sample cap of quadratic methods, and the reference entry (+ fingerprint,
    source_per_class, the fingerprints of the entries' source datasets) of reference-space methods.
    """
    method = run.method
    needs = set(method.needs)
    ident: dict[str, Any] = {
        "version": CODE_VERSION,
        "method": run.name,
        "params": {**method.defaults, **run.params},
        "target": target,
        "data": _data_fingerprint(target, settings.data_dir),
        "shots": format_shots(shots),
        "seeds": sorted(int(s) for s in seeds),
        "entries": dict(sorted(fingerprints.items())),
        "per_class": settings.selection.per_class,
        "selection_seed": settings.selection.seed,
        "val_fraction": settings.val_fraction,
    }
    if "grads" in needs:
        ident["lgc"] = asdict(settings.selection.lgc)
    if "probe_features" in needs:
        probe = asdict(settings.selection.probe)
        if device is not None:
            probe["precision"] = resolve_precision(probe["precision"], device)
        ident["probe"] = probe
    if method.quadratic:
        ident["sample_cap"] = sample_cap
    if is_reference_space(method):
        if reference is None:
            raise ValueError(f"method {run.name!r} needs a reference entry")
        ident["reference"] = {
            "entry": reference,
            "card": _entry_fingerprint(reference, settings.zoo_dir),
            "source_per_class": settings.selection.source_per_class,
            "source_data": _source_data(list(fingerprints), settings),
        }
    text = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _source_data(entries: list[str], settings: ExtractSettings) -> dict[str, str | None]:
    """dataset -> fingerprint of its training split, over the source datasets of ``entries``
    (None for a dataset that is absent or an entry whose card names none: such an entry is skipped
    with a note, and its data's arrival changes the key)."""
    from zoo.data import DatasetNotFoundError

    names: set[str] = set()
    for entry in entries:
        try:
            names.update(source_datasets(entry, settings.zoo_dir))
        except (FileNotFoundError, ValueError, KeyError):
            continue
    out: dict[str, str | None] = {}
    for name in sorted(names):
        try:
            out[name] = _data_fingerprint(name, settings.data_dir)
        except (DatasetNotFoundError, ValueError):
            out[name] = None
    return out


def score_table_path(selection_dir: Path, target: str, shots: int | str, method: str) -> Path:
    """``<selection_dir>/<target>/shots=<k>/<method>.parquet``."""
    return Path(selection_dir) / target / f"shots={format_shots(shots)}" / f"{method}.parquet"


def _complete_table(
    path: Path, key: str, entries: list[str], seeds: list[int]
) -> pd.DataFrame | None:
    """The table at ``path`` when it is readable, its ``key`` equals ``key`` and it has a row for
    every (entry, seed); else None (it is then recomputed)."""
    if not path.is_file() or is_temporary(path):
        return None
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        print(f"  note: {path} is unreadable ({e}); recomputing")
        return None
    if not {"entry", "seed", "key"} <= set(table.columns) or len(table) == 0:
        return None
    if not (table["key"].astype(str) == key).all():
        print(f"  note: {path} was computed with other settings; recomputing")
        return None
    have = set(zip(table["entry"].astype(str), table["seed"].astype(int)))
    if not {(e, s) for e in entries for s in seeds} <= have:
        return None
    return table


def write_score_table(path: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Write the rows (dicts with :data:`SCORE_COLUMNS`) atomically as parquet; returns the table."""
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS).astype(
        {
            "entry": "string",
            "seed": "int64",
            "score": "float64",
            "seconds": "float64",
            "extract_seconds": "float64",
            "score_seconds": "float64",
            "n": "int64",
            "cap": "Int64",
            "remedy": "string",
            "reference": "bool",
            "key": "string",
            "job_dir": "string",
        }
    )
    atomic_write(path, lambda tmp: table.to_parquet(tmp, index=False))
    return table


def _capped(
    inputs: dict[str, Any], labels: np.ndarray, cap: int | None, seed: int
) -> tuple[dict[str, Any], int]:
    """The inputs restricted to a class-stratified seeded subset of at most ``cap`` samples, and N."""
    if cap is None or cap >= len(labels):
        return inputs, len(labels)
    from selection.checks import stratified_cap

    idx = stratified_cap(labels, cap, seed)
    n = len(labels)
    capped = {
        k: v[idx] if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n else v
        for k, v in inputs.items()
    }
    return capped, len(idx)


def _extract_seconds(needs: tuple[str, ...], x: Extraction | None, probe_share: float) -> float:
    """What the extraction of a method's inputs costs when the method runs alone."""
    seconds = x.seconds if x is not None else {}
    total = 0.0
    if _FEATURE_INPUTS & set(needs):
        total += seconds.get("features", 0.0)
    if "grads" in needs:
        total += seconds.get("lgc", 0.0)
    if "probe_features" in needs:
        total += probe_share
    return total


def score_cell(
    extractor: Extractor,
    target: str,
    shots: str,
    seeds: list[int] | int,
    entries: list[str],
    methods: list[MethodRun],
    *,
    sample_cap: int | None,
    cap_seed: int,
    reference: str | None = None,
    keys: dict[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Rows of the score table of each method on one (target, shots) cell, one per (entry, seed);
    one extraction per (entry, seed). ``keys``: method -> table key stored in each row."""
    seeds = [int(seeds)] if isinstance(seeds, int | np.integer) else [int(s) for s in seeds]
    keys = keys or {}
    ref_methods = [m for m in methods if is_reference_space(m.method)]
    if ref_methods and reference is None:
        raise ValueError(
            f"{', '.join(m.name for m in ref_methods)} measure every entry with one reference "
            "extractor: set selection.reference_entry to a zoo entry"
        )
    own_needs = set().union(*(m.method.needs for m in methods if m not in ref_methods))
    needs = set().union(*(m.method.needs for m in methods))
    rows: dict[str, list[dict[str, Any]]] = {m.name: [] for m in methods}
    here = job_dir()  # every row records the job that computed it
    ref_profiles: dict[str, Any] = {}  # entry -> SourceProfile or the reason it has none
    tag = f"[{target} shots={shots}]"
    progress = Progress(len(seeds) * len(entries), f"{tag} scoring", unit="entries")
    for seed in seeds:
        # zoo-level methods: each entry's (capped) inputs and extraction cost, scored after the loop
        pending: dict[str, dict[str, tuple[dict[str, Any], int, int | None, float]]] = {
            m.name: {} for m in methods if m.method.level == "zoo"
        }
        probe, probe_share = None, 0.0
        if "probe_features" in needs:
            probe = extractor.probe(target, shots, seed)
            probe_share = probe.seconds / len(entries)
            print(
                f"{tag} seed={seed} probe features {probe.features.shape}"
                f" ({probe.seconds:.1f}s{', cached' if probe.cached else ''})"
            )
        ref_x, ref_share = None, 0.0
        if ref_methods:
            # a reference that is also scored gets its sketch in the same pass (one pass, not two)
            ref_lgc = "grads" in own_needs and reference in entries
            ref_x = extractor.extract(reference, target, shots, seed, features=True, lgc=ref_lgc)
            ref_share = ref_x.seconds["features"] / len(entries)
        for i, entry in enumerate(entries, 1):
            want_features, want_lgc = bool(_FEATURE_INPUTS & own_needs), "grads" in own_needs
            if want_features or want_lgc:
                x = extractor.extract(
                    entry, target, shots, seed, features=want_features, lgc=want_lgc
                )
                labels = x.labels
            else:  # e.g. a method that needs only labels: no model pass of this entry
                x = None
                labels = (
                    ref_x.labels if ref_x is not None else extractor.samples(target, shots, seed)[2]
                )
            for other, what in ((probe, "the probe"), (ref_x, f"the reference {reference}")):
                if (
                    other is not None
                    and x is not None
                    and not np.array_equal(other.indices, x.indices)
                ):
                    raise RuntimeError(
                        f"{what} and {entry} were extracted on different samples of {target}"
                    )
            profile, profile_note = None, ""
            if "source_profile" in own_needs:
                try:
                    profile = load_source_profile(entry, extractor.settings.zoo_dir)
                except (FileNotFoundError, ValueError, KeyError) as e:
                    profile_note = str(e)
            if ref_methods and entry not in ref_profiles:
                try:
                    datasets = source_datasets(entry, extractor.settings.zoo_dir)
                    ref_profiles[entry] = extractor.source_profile(reference, datasets)
                except (FileNotFoundError, ValueError, KeyError) as e:
                    ref_profiles[entry] = f"no reference-space source profile ({e})"
            ref_profile = ref_profiles.get(entry)
            info = extractor.entry_info(entry) if "entry_info" in needs else None
            own: dict[str, Any] = {
                "labels": labels,
                "features": x.features if x is not None else None,
                "probs": x.probs if x is not None else None,
                "grads": x.grads if x is not None else None,
                "source_profile": profile,
                "probe_features": probe.features if probe is not None else None,
                "entry_info": info,
            }
            in_ref = isinstance(ref_profile, SourceProfile)
            ref: dict[str, Any] = {
                **own,
                "features": ref_x.features if ref_x is not None else None,
                "probs": None,
                "grads": None,
                "source_profile": (ref_profile.means, ref_profile.counts) if in_ref else None,
            }
            done, notes = [], []
            for m in methods:
                is_ref = m in ref_methods
                inputs = ref if is_ref else own
                missing = [n for n in m.method.needs if inputs.get(n) is None]
                if missing:
                    why = ""
                    if "source_profile" in missing:
                        why = (
                            f" ({ref_profile})"
                            if is_ref
                            else f" ({profile_note})"
                            if profile_note
                            else ""
                        )
                    notes.append(f"{m.name} skipped: no {', '.join(missing)}{why}")
                    continue
                cap = int(sample_cap) if m.method.quadratic and sample_cap else None
                if m.method.level == "zoo":
                    use, n_used = _capped(
                        {n: inputs[n] for n in m.method.needs}, labels, cap, cap_seed
                    )
                    cost = _extract_seconds(m.method.needs, x, probe_share)
                    pending[m.name][entry] = (use, n_used, cap, cost)
                    continue
                start = time.perf_counter()
                try:
                    use, n_used = _capped(
                        {n: inputs[n] for n in m.method.needs}, labels, cap, cap_seed
                    )
                    result = score_detail(m.name, **use, **m.params)
                except (ValueError, FloatingPointError) as e:
                    notes.append(f"{m.name} failed: {e}")
                    continue
                score_seconds = time.perf_counter() - start
                if is_ref:
                    # the reference's target pass is shared by every entry; the source profile is
                    # this entry's own (entries with the same source data share its cache)
                    extract_seconds = ref_share + ref_profile.seconds
                else:
                    extract_seconds = _extract_seconds(m.method.needs, x, probe_share)
                rows[m.name].append(
                    {
                        "entry": entry,
                        "seed": seed,
                        "score": result.value,
                        "seconds": extract_seconds + score_seconds,
                        "extract_seconds": extract_seconds,
                        "score_seconds": score_seconds,
                        "n": n_used,
                        "cap": cap,
                        "remedy": result.remedy,
                        # a static reference (registry field), so the analysis shows it apart
                        "reference": bool(m.method.reference),
                        "key": keys.get(m.name, ""),
                        "job_dir": here,
                    }
                )
                done.append((m.name, result.value, score_seconds))
            if x is not None:
                cost = ", ".join(
                    f"{k} {v:.1f}s{' cached' if x.cached.get(k) else ''}"
                    for k, v in x.seconds.items()
                )
            else:
                cost = "no extraction"
            shown = (
                " | ".join(f"{n}={v:.4g}" for n, v, _ in done)
                if len(done) <= 4
                else f"{len(done)} scores in {sum(s for *_, s in done):.2f}s"
            )
            print(f"{tag} ({i}/{len(entries)}) {entry} seed={seed}: {cost} | {shown}")
            progress.update()
            for note in notes:
                print(f"  note: {entry}: {note}")
        for m in methods:
            if m.name in pending and pending[m.name]:
                rows[m.name].extend(
                    _score_zoo_rows(m, pending[m.name], seed, keys.get(m.name, ""), tag)
                )
    return rows


def _score_zoo_rows(
    run: MethodRun,
    pending: dict[str, tuple[dict[str, Any], int, int | None, float]],
    seed: int,
    key: str,
    tag: str,
) -> list[dict[str, Any]]:
    """Rows of a zoo-level method on one draw: one ``score_zoo`` call over every pending entry.

    ``pending``: entry -> (inputs, n used, cap, extract seconds). The call's wall time is shared
    equally by the entries (``score_seconds``). A failure of the call leaves the draw unscored.
    """
    start = time.perf_counter()
    try:
        results = score_zoo(run.name, {e: p[0] for e, p in pending.items()}, **run.params)
    except (ValueError, FloatingPointError) as e:
        print(f"  note: {run.name} failed on seed={seed}: {e}")
        return []
    share = (time.perf_counter() - start) / len(pending)
    print(f"{tag} seed={seed} {run.name} over {len(pending)} entries ({share * len(pending):.2f}s)")
    return [
        {
            "entry": entry,
            "seed": seed,
            "score": results[entry].value,
            "seconds": extract_seconds + share,
            "extract_seconds": extract_seconds,
            "score_seconds": share,
            "n": n_used,
            "cap": cap,
            "remedy": results[entry].remedy,
            "reference": bool(run.method.reference),
            "key": key,
        }
        for entry, (_, n_used, cap, extract_seconds) in pending.items()
    ]


def _draws(table: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    """(seed, rows of that draw) of a score table; a table without ``seed`` is one draw (seed 0)."""
    table = table.assign(entry=table["entry"].astype(str))
    if "seed" not in table.columns:
        return [(0, table)]
    return [(int(s), part) for s, part in table.groupby("seed", sort=True)]


def report_cell(
    tables: dict[str, pd.DataFrame],
    target: str,
    shots: str,
    entries: list[str] | None = None,
) -> None:
    """Print each method's ranking (by the mean score over draws); ``analyze.py`` judges it.

    A method that scored fewer than ``entries`` gets a note naming the entries it left out.
    """
    single = len(tables) == 1
    for name, table in tables.items():
        draws = _draws(table)
        mean = (
            table.assign(entry=table["entry"].astype(str))
            .groupby("entry", as_index=False)[["score", "seconds"]]
            .mean()
            .sort_values(["score", "entry"], ascending=[False, True])
        )
        over = f" (mean over {len(draws)} draws)" if len(draws) > 1 else ""
        if entries is not None:
            lost = [e for e in entries if e not in set(mean["entry"])]
            if lost:
                print(f"  note: {name} scored {len(mean)} of {len(entries)} entries (not {lost})")
        if single:
            print(f"\nranking of {name} on {target} shots={shots}{over}:")
            for pos, row in enumerate(mean.itertuples(), 1):
                print(f"  {pos:3d}. {row.entry:40s} {row.score: .6g}  ({row.seconds:.2f}s)")
        else:
            print(f"  {name:24s} top: {' > '.join(mean['entry'].head(3))}{over}")


def reference_entry(ref: str | None, zoo_dir: Path) -> str | None:
    """``selection.reference_entry`` checked against the store; None when it is not set."""
    from zoo.store import list_entries

    if ref is None:
        return None
    known = list_entries(zoo_dir)
    if str(ref) not in known:
        raise ValueError(
            f"selection.reference_entry {ref!r} (Domain Similarity's reference extractor) is not "
            f"an entry of the zoo at {zoo_dir}; known: {', '.join(known)}"
        )
    return str(ref)


def evaluate_selection_main(cfg: DictConfig) -> dict[tuple[str, str, str], pd.DataFrame]:
    """Score the zoo for every (target, shots, method) of ``cfg``; returns the score tables."""
    settings = ExtractSettings.from_cfg(cfg)
    selection_dir = Path(cfg.paths.selection_dir).resolve()
    methods = resolve_methods(cfg.method)
    targets, shots_list = _targets(cfg), _shots(cfg)
    sample_cap = settings.selection.sample_cap
    entries = zoo_entries(cfg, settings.zoo_dir)
    reference = None
    if any(is_reference_space(m.method) for m in methods):
        reference = reference_entry(settings.selection.reference_entry, settings.zoo_dir)
        if reference is None:
            raise ValueError(
                "domain_similarity measures every entry with one reference extractor: set "
                "selection.reference_entry to a zoo entry"
            )
    fingerprints = {e: _entry_fingerprint(e, settings.zoo_dir) for e in entries}
    extractor = Extractor(settings)
    print(
        f"evaluate_selection: {len(methods)} method(s) x {len(entries)} entries x targets {targets}"
        f" x shots {shots_list} on {extractor.device}"
        + (f"; domain similarity reference: {reference}" if reference else "")
    )
    results: dict[tuple[str, str, str], pd.DataFrame] = {}
    for target in targets:
        for shots in shots_list:
            seeds = draw_seeds(cfg, shots)
            keys = {
                m.name: table_key(
                    m,
                    settings,
                    target,
                    shots,
                    seeds,
                    fingerprints,
                    sample_cap=sample_cap,
                    reference=reference,
                    device=extractor.device,
                )
                for m in methods
            }
            tables: dict[str, pd.DataFrame] = {}
            todo = []
            for m in methods:
                path = score_table_path(selection_dir, target, shots, m.name)
                done = _complete_table(path, keys[m.name], entries, seeds)
                if done is None:
                    todo.append(m)
                else:
                    tables[m.name] = done[
                        done["entry"].astype(str).isin(entries) & done["seed"].isin(seeds)
                    ]
            if len(tables):
                print(f"[{target} shots={shots}] already scored, skipped: {', '.join(tables)}")
            if todo:
                rows = score_cell(
                    extractor,
                    target,
                    shots,
                    seeds,
                    entries,
                    todo,
                    sample_cap=sample_cap,
                    cap_seed=int(settings.selection.seed),
                    reference=reference,
                    keys=keys,
                )
                for m in todo:
                    path = score_table_path(selection_dir, target, shots, m.name)
                    if not rows[m.name]:
                        print(
                            f"  note: {m.name} scored no entry of {target} shots={shots}; no table"
                        )
                        # a table of other settings would be read as this one's
                        path.unlink(missing_ok=True)
                        continue
                    tables[m.name] = write_score_table(path, rows[m.name])
            ordered = {m.name: tables[m.name] for m in methods if m.name in tables}
            for name, table in ordered.items():
                results[(target, shots, name)] = table
            report_cell(ordered, target, shots, entries)
    return results

"""``evaluate_selection.py``: score every zoo entry with one method (or all), then judge the ranking.

For each (target, shots) cell and each method, the scores of every entry of the configured zoo go to

    <selection_dir>/<target>/shots=<k>/<method>.parquet

with columns (:data:`SCORE_COLUMNS`):

- ``entry``: the zoo entry (``<expert>`` or ``<expert>@<domain>``);
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
  ``cap`` samples.

Rerunning skips a (cell, method) whose table exists and lists every entry of the zoo: delete the table
(or the cell folder) to recompute it, e.g. after retraining an expert. Extraction is cached separately
(:mod:`selection.extract`), so recomputing scores is cheap.

When the ground truth ``<out_dir>/finetune_gt.parquet`` has rows for the cell, the top-k gain (against
``analysis.baseline``), trials-to-best and Spearman's rho of each ranking are printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from selection.extract import (
    Extraction,
    Extractor,
    ExtractSettings,
    format_shots,
    load_source_profile,
)
from selection.registry import Method, available, get_method, score
from zoo.io import atomic_write, is_temporary

SCORE_COLUMNS = ["entry", "score", "seconds", "extract_seconds", "score_seconds", "n", "cap"]
METHOD_CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs" / "method"
# keys of a method YAML that are not parameters of the score
_NOT_PARAMS = {"name", "_target_", "_partial_"}
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
    return {k: v for k, v in node.items() if k not in _NOT_PARAMS and k != "defaults"}


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
    params = {k: v for k, v in node.items() if k not in _NOT_PARAMS}
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
        sweep = cfg.get("sweep") or {}
        shots = _plain(sweep.get("shots")) if sweep else None
        if not shots:
            raise ValueError("no shots: set shots=K (or full) or list sweep.shots")
    shots = shots if isinstance(shots, list) else [shots]
    return [format_shots(s) for s in shots]


def zoo_entries(cfg: DictConfig, zoo_dir: Path) -> list[str]:
    """Entries of the configured zoo (``zoo.experts``; ``zoo.entries`` restricts them) in the store."""
    from zoo.store import expert_ids, list_entries

    zoo = cfg.get("zoo") or {}
    experts = [str(e["id"]) for e in (_plain(zoo.get("experts")) or [])] or None
    stored = expert_ids(zoo_dir)
    if not stored:
        raise ValueError(
            f"empty zoo: no expert in {zoo_dir}; train the zoo first (python train_zoo.py) or set "
            "paths.zoo_dir (or paths.out_dir) to where it was trained"
        )
    absent = [e for e in experts or [] if e not in stored]
    if absent:
        raise ValueError(
            f"experts {absent} of the zoo config are not in the store {zoo_dir} (stored: "
            f"{', '.join(stored)}); train them (python train_zoo.py) or list only stored experts "
            "in zoo.experts"
        )
    entries = list(list_entries(zoo_dir, experts=experts))
    wanted = _plain(zoo.get("entries")) if zoo else None
    if wanted:
        unknown = [e for e in wanted if e not in entries]
        if unknown:
            raise ValueError(
                f"zoo.entries {unknown} are not in the zoo at {zoo_dir}; known: {entries}"
            )
        entries = [e for e in entries if e in wanted]
    if not entries:
        raise ValueError(
            f"no zoo entries in {zoo_dir} for experts {experts}; train the zoo first (python train_zoo.py)"
        )
    return entries


def score_table_path(selection_dir: Path, target: str, shots: int | str, method: str) -> Path:
    """``<selection_dir>/<target>/shots=<k>/<method>.parquet``."""
    return Path(selection_dir) / target / f"shots={format_shots(shots)}" / f"{method}.parquet"


def _complete_table(path: Path, entries: list[str]) -> pd.DataFrame | None:
    """The table at ``path`` when it exists, is readable and lists every entry; else None."""
    if not path.is_file() or is_temporary(path):
        return None
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        print(f"  note: {path} is unreadable ({e}); recomputing")
        return None
    if "entry" not in table.columns or not set(entries) <= set(table["entry"].astype(str)):
        return None
    return table


def write_score_table(path: Path, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Write the rows (dicts with :data:`SCORE_COLUMNS`) atomically as parquet; returns the table."""
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS).astype(
        {
            "entry": "string",
            "score": "float64",
            "seconds": "float64",
            "extract_seconds": "float64",
            "score_seconds": "float64",
            "n": "int64",
            "cap": "Int64",
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
    seed: int,
    entries: list[str],
    methods: list[MethodRun],
    *,
    sample_cap: int | None,
    cap_seed: int,
) -> dict[str, list[dict[str, Any]]]:
    """Rows of the score table of each method on one (target, shots) cell; one extraction per entry."""
    needs = set().union(*(m.method.needs for m in methods))
    probe, probe_share = None, 0.0
    if "probe_features" in needs:
        probe = extractor.probe(target, shots, seed)
        probe_share = probe.seconds / len(entries)
        print(
            f"[{target} shots={shots}] probe features {probe.features.shape}"
            f" ({probe.seconds:.1f}s{', cached' if probe.cached else ''})"
        )
    rows: dict[str, list[dict[str, Any]]] = {m.name: [] for m in methods}
    for i, entry in enumerate(entries, 1):
        want_features, want_lgc = bool(_FEATURE_INPUTS & needs), "grads" in needs
        if want_features or want_lgc:
            x = extractor.extract(entry, target, shots, seed, features=want_features, lgc=want_lgc)
            labels = x.labels
        else:  # e.g. a method that needs only labels: no model pass at all
            _, _, labels = extractor.samples(target, shots, seed)
            x = None
        profile, profile_note = None, ""
        if "source_profile" in needs:
            try:
                profile = load_source_profile(entry, extractor.settings.zoo_dir)
            except (FileNotFoundError, ValueError, KeyError) as e:
                profile_note = str(e)
        inputs: dict[str, Any] = {
            "labels": labels,
            "features": x.features if x is not None else None,
            "probs": x.probs if x is not None else None,
            "grads": x.grads if x is not None else None,
            "source_profile": profile,
            "probe_features": probe.features if probe is not None else None,
        }
        if probe is not None and x is not None and not np.array_equal(probe.indices, x.indices):
            raise RuntimeError(
                f"the probe and {entry} were extracted on different samples of {target}"
            )
        done, notes = [], []
        for m in methods:
            missing = [n for n in m.method.needs if inputs.get(n) is None]
            if missing:
                why = f" ({profile_note})" if "source_profile" in missing and profile_note else ""
                notes.append(f"{m.name} skipped: no {', '.join(missing)}{why}")
                continue
            cap = int(sample_cap) if m.method.quadratic and sample_cap else None
            start = time.perf_counter()
            try:
                use, n_used = _capped({n: inputs[n] for n in m.method.needs}, labels, cap, cap_seed)
                value = score(m.name, **use, **m.params)
            except (ValueError, FloatingPointError) as e:
                notes.append(f"{m.name} failed: {e}")
                continue
            score_seconds = time.perf_counter() - start
            extract_seconds = _extract_seconds(m.method.needs, x, probe_share)
            rows[m.name].append(
                {
                    "entry": entry,
                    "score": value,
                    "seconds": extract_seconds + score_seconds,
                    "extract_seconds": extract_seconds,
                    "score_seconds": score_seconds,
                    "n": n_used,
                    "cap": cap,
                }
            )
            done.append((m.name, value, score_seconds))
        if x is not None:
            cost = ", ".join(
                f"{k} {v:.1f}s{' cached' if x.cached.get(k) else ''}" for k, v in x.seconds.items()
            )
        else:
            cost = "no extraction"
        shown = (
            " | ".join(f"{n}={v:.4g}" for n, v, _ in done)
            if len(done) <= 4
            else f"{len(done)} scores in {sum(s for *_, s in done):.2f}s"
        )
        print(f"[{target} shots={shots}] ({i}/{len(entries)}) {entry}: {cost} | {shown}")
        for note in notes:
            print(f"  note: {entry}: {note}")
    return rows


def _ground_truth(out_dir: Path, target: str, shots: str) -> pd.DataFrame | None:
    path = out_dir / "finetune_gt.parquet"
    if not path.is_file():
        return None
    gt = pd.read_parquet(path)
    if not {"target", "shots", "entry", "acc"} <= set(gt.columns):
        print(f"  note: {path} lacks target/shots/entry/acc columns; no ranking metrics")
        return None
    cell = gt[(gt["target"].astype(str) == target) & (gt["shots"].astype(str) == shots)]
    return cell[["entry", "acc"]].astype({"entry": str}) if len(cell) else None


def report_cell(
    tables: dict[str, pd.DataFrame],
    target: str,
    shots: str,
    gt: pd.DataFrame | None,
    baseline: str | None,
    topk: int,
) -> None:
    """Print each method's ranking and, with ground truth, its top-k gain, trials-to-best, Spearman."""
    metrics = None
    if gt is not None:
        try:
            from analysis import metrics
        except ImportError as e:
            print(f"  note: analysis.metrics is not available ({e}); no ranking metrics")
    single = len(tables) == 1
    for name, table in tables.items():
        ranked = table.assign(entry=table["entry"].astype(str)).sort_values(
            ["score", "entry"], ascending=[False, True]
        )
        if single:
            print(f"\nranking of {name} on {target} shots={shots}:")
            for pos, row in enumerate(ranked.itertuples(), 1):
                print(f"  {pos:3d}. {row.entry:40s} {row.score: .6g}  ({row.seconds:.2f}s)")
            line = ""
        else:
            line = f"  {name:24s} top: {' > '.join(ranked['entry'].head(3))}"
        if metrics is not None and gt is not None:
            merged = ranked.merge(gt, on="entry", how="inner")
            if len(merged) < len(ranked):
                lost = sorted(set(ranked["entry"]) - set(merged["entry"]))
                print(f"  note: no ground truth for {lost}; metrics over {len(merged)} entries")
            if len(merged):
                s, a = merged["score"].to_numpy(float), merged["acc"].to_numpy(float)
                base = (
                    gt.loc[gt["entry"] == baseline, "acc"] if baseline else pd.Series(dtype=float)
                )
                parts = []
                if len(base):
                    k = min(topk, len(merged))
                    gain = metrics.topk_gain(s, a, float(base.iloc[0]), k)
                    parts.append(f"top-{k} gain {gain:+.2f} vs {baseline}")
                parts.append(f"trials-to-best {metrics.trials_to_best(s, a)}/{len(merged)}")
                parts.append(f"spearman {metrics.spearman(s, a):+.3f}")
                line += ("  | " if line else "  ") + ", ".join(parts)
        if line:
            print(line)


def evaluate_selection_main(cfg: DictConfig) -> dict[tuple[str, str, str], pd.DataFrame]:
    """Score the zoo for every (target, shots, method) of ``cfg``; returns the score tables."""
    settings = ExtractSettings.from_cfg(cfg)
    out_dir = Path(cfg.paths.out_dir).resolve()
    selection_dir = Path(cfg.paths.selection_dir).resolve()
    methods = resolve_methods(cfg.method)
    targets, shots_list = _targets(cfg), _shots(cfg)
    seed = int(cfg.get("seed") or 0)
    sel = cfg.selection
    sample_cap = sel.get("sample_cap")
    analysis = cfg.get("analysis") or {}
    baseline = analysis.get("baseline") if analysis else None
    topk = int(analysis.get("topk", 3)) if analysis else 3
    entries = zoo_entries(cfg, settings.zoo_dir)
    extractor = Extractor(settings)
    print(
        f"evaluate_selection: {len(methods)} method(s) x {len(entries)} entries x targets {targets}"
        f" x shots {shots_list} on {extractor.device}"
    )
    results: dict[tuple[str, str, str], pd.DataFrame] = {}
    for target in targets:
        for shots in shots_list:
            tables: dict[str, pd.DataFrame] = {}
            todo = []
            for m in methods:
                path = score_table_path(selection_dir, target, shots, m.name)
                done = _complete_table(path, entries)
                if done is None:
                    todo.append(m)
                else:
                    tables[m.name] = done[done["entry"].astype(str).isin(entries)]
            if len(tables):
                print(f"[{target} shots={shots}] already scored, skipped: {', '.join(tables)}")
            if todo:
                rows = score_cell(
                    extractor,
                    target,
                    shots,
                    seed,
                    entries,
                    todo,
                    sample_cap=int(sample_cap) if sample_cap else None,
                    cap_seed=int(settings.selection_seed),
                )
                for m in todo:
                    if not rows[m.name]:
                        print(
                            f"  note: {m.name} scored no entry of {target} shots={shots}; no table"
                        )
                        continue
                    path = score_table_path(selection_dir, target, shots, m.name)
                    tables[m.name] = write_score_table(path, rows[m.name])
            ordered = {m.name: tables[m.name] for m in methods if m.name in tables}
            for name, table in ordered.items():
                results[(target, shots, name)] = table
            report_cell(
                ordered, target, shots, _ground_truth(out_dir, target, shots), baseline, topk
            )
    return results

"""Published model-selection benchmarks, re-judged with zoobench's analysis.

The tables shipped under ``benchmarks/published/<name>/`` (numbers transcribed from the source named
in each folder's ``SOURCE.md``) become the ground-truth and scores tables that
``python analyze.py gt=GT.csv scores=SCORES.csv`` takes:

- ``gt.csv``: target, entry, acc (the published fine-tuned test accuracy, percent);
- ``scores.csv``: target, entry, method, score (the published score values), when the source
  publishes per-model scores;
- ``published.csv``: target, method, statistic, value (the correlations the source reports, to be
  compared with the analysis' ``metrics.csv``: ``wtau`` there is
  ``scipy.stats.weightedtau(score, acc)``, which is what both sources compute).

Sources (:data:`SOURCES`):

- ``tll``: Transfer-Learning-Library, ``examples/model_selection/README.md``: 8 targets x 10
  ImageNet-supervised torchvision models, fine-tuned accuracy and H-score, LEEP, LogME, NCE, with
  Pearson's r and weighted Kendall's tau per (target, method). Baseline for gains: ``resnet50``.
- ``sfda``: SFDA (Shao et al., ECCV 2022), ``tw_group1.py`` / ``tw_group2.py``: fine-tuned
  accuracies of 11 supervised (group ``supervised``) and 12 self-supervised (group
  ``self_supervised``) models on 11 targets, and the weighted tau of LEEP, LogME, NLEEP, PARC and
  SFDA on the supervised group (its readme). The repository ships no per-model scores, so only the
  ground truth is imported; its published taus cannot be recomputed. Each group is its own folder
  (the same target names, different zoos). Baseline: ``resnet50`` (supervised), none
  (self-supervised: no model plays the reference role).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

PUBLISHED_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "published"

#: name -> (baseline per group, methods published per model)
SOURCES: dict[str, dict[str, str | None]] = {
    "tll": {"": "resnet50"},
    "sfda": {"supervised": "resnet50", "self_supervised": None},
}
TLL_METHODS = ("hscore", "leep", "logme", "nce")


@dataclass
class PublishedTables:
    """One importable table of a source: ``gt`` (target, entry, acc), ``scores`` (target, entry,
    method, score) or None, ``published`` (target, method, statistic, value), the chosen
    ``baseline`` entry and notes on what the source lacks."""

    name: str
    group: str
    gt: pd.DataFrame
    scores: pd.DataFrame | None
    published: pd.DataFrame
    baseline: str | None
    notes: list[str] = field(default_factory=list)


def _source_dir(name: str, root: Path | None) -> Path:
    if name not in SOURCES:
        raise ValueError(f"unknown published benchmark {name!r}; known: {', '.join(SOURCES)}")
    return (root or PUBLISHED_DIR) / name


def load_published(name: str, root: Path | None = None) -> list[PublishedTables]:
    """The tables of source ``name`` (one per group), read from ``<root>/<name>/*.csv``."""
    folder = _source_dir(name, root)
    if name == "tll":
        wide = pd.read_csv(folder / "tables.csv")
        gt = wide.rename(columns={"model": "entry", "finetuned_acc": "acc"})[
            ["target", "entry", "acc"]
        ]
        scores = wide.melt(
            id_vars=["target", "model"], value_vars=list(TLL_METHODS), var_name="method"
        ).rename(columns={"model": "entry", "value": "score"})[
            ["target", "entry", "method", "score"]
        ]
        published = pd.read_csv(folder / "published_correlations.csv")
        return [PublishedTables(name, "", gt, scores, published, SOURCES[name][""])]
    acc = pd.read_csv(folder / "finetune_acc.csv")
    published = pd.read_csv(folder / "published_correlations.csv")
    out = []
    for group, baseline in SOURCES[name].items():
        gt = acc[acc["group"] == group].rename(columns={"model": "entry"})[
            ["target", "entry", "acc"]
        ]
        pub = published[published["group"] == group].drop(columns="group")
        note = "the source publishes no per-model scores: only the ground truth is imported" + (
            "" if len(pub) else " (and it publishes no correlations for this group)"
        )
        out.append(
            PublishedTables(name, group, gt.reset_index(drop=True), None, pub, baseline, [note])
        )
    return out


def write_byo(name: str, out_dir: str | Path, root: Path | None = None) -> dict[str, Path]:
    """Write gt.csv, scores.csv (when published) and published.csv of source ``name`` under
    ``out_dir`` (``out_dir/<group>/`` for a source with several groups). Returns {label: path}."""
    out_dir = Path(out_dir)
    files: dict[str, Path] = {}
    for t in load_published(name, root):
        folder = out_dir / t.group if t.group else out_dir
        folder.mkdir(parents=True, exist_ok=True)
        prefix = f"{t.group}/" if t.group else ""
        tables = {"gt": t.gt, "published": t.published}
        if t.scores is not None:
            tables["scores"] = t.scores
        for label, df in tables.items():
            path = folder / f"{label}.csv"
            df.to_csv(path, index=False)
            files[prefix + label] = path
    return files


def compare_published(
    metrics: pd.DataFrame, published: pd.DataFrame, atol: float = 1e-3
) -> pd.DataFrame:
    """Published correlations next to the analysis' values.

    ``metrics``: the analysis' long metrics table (target, shots, method, metric, value);
    ``published``: target, method, statistic (``wtau`` | ``pearson``), value. Returns target,
    method, statistic, published, ours, diff (ours - published), reproduces (|diff| <= atol; the
    published values carry 3 decimals, so 1e-3 allows their rounding).
    """
    ours = metrics.rename(columns={"metric": "statistic", "value": "ours"})
    out = published.rename(columns={"value": "published"}).merge(
        ours[["target", "method", "statistic", "ours"]],
        on=["target", "method", "statistic"],
        how="left",
    )
    out["diff"] = out["ours"] - out["published"]
    out["reproduces"] = out["diff"].abs() <= atol
    return out


def tie_broken_wtau(score, acc) -> list[float]:
    """``weightedtau(score, acc)`` for every order of the entries whose scores are tied.

    A published score rounded to 3 decimals can tie two entries whose unrounded scores differ;
    the source computed its tau on the unrounded values, so its value is one of these (sorted,
    distinct to 1e-12). Score ties are broken by nudging the tied values apart by 1e-9 times
    their position in each permutation of the tied group.
    """
    s = np.asarray(score, dtype=np.float64)
    a = np.asarray(acc, dtype=np.float64)
    groups = [np.flatnonzero(s == v) for v in np.unique(s)]
    groups = [g for g in groups if g.size > 1]
    values: list[float] = []
    for orders in itertools.product(*(itertools.permutations(g) for g in groups)):
        nudged = s.copy()
        for order in orders:
            nudged[list(order)] += 1e-9 * np.arange(len(order))
        values.append(float(scipy.stats.weightedtau(nudged, a).statistic))
    values.sort()
    return [v for i, v in enumerate(values) if i == 0 or v - values[i - 1] > 1e-12]

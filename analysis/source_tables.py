"""The paper's Tables 1-2 from the expert cards: source test accuracy of the zoo.

- ``source_accuracy.csv``: long table, one row per (expert, source dataset): expert_id, arch, type,
  init, dataset, accuracy (percent, the expert's head on that dataset's test split);
- Table 1 (``table1_source_accuracy.{csv,md}``): single-domain experts, one row per (arch,
  pretraining) with ``scratch`` or ``+<init>`` as pretraining, one column per source dataset.
  An expert trained on several datasets at once (e.g. the mini ``generalist``) gets its own row
  (pretraining ``joint:<expert_id>``) with its accuracy on each of them;
- Table 2 (``table2_multi_domain.{csv,md}``): one row per source dataset; ``single_domain`` is the
  best single-dataset expert of the multi-domain experts' architecture on that dataset, then one
  column per multi-domain expert (shared, multi_bn, adapter order) with its domain's accuracy.

Pretrained entries (no source accuracy) do not appear. Accuracies are percentages.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from core.cards import expert_ids, load_card
from core.io import atomic_write_text

LONG_COLUMNS = ["expert_id", "arch", "type", "init", "dataset", "accuracy"]
MULTI_ORDER = {"shared": 0, "multi_bn": 1, "adapter": 2}


def source_accuracy_frame(zoo_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per (expert, source dataset) with a recorded test accuracy (percent)."""
    rows = []
    for expert_id in expert_ids(zoo_dir):
        card = load_card(expert_id, zoo_dir)
        for dataset, acc in (card.get("source_accuracy") or {}).items():
            if acc is None or not np.isfinite(acc):
                continue
            rows.append(
                {
                    "expert_id": expert_id,
                    "arch": card["arch"],
                    "type": card["type"],
                    "init": card.get("init"),
                    "sources": tuple(card.get("sources") or []),
                    "dataset": dataset,
                    "accuracy": 100.0 * float(acc),
                }
            )
    frame = pd.DataFrame(rows, columns=[*LONG_COLUMNS, "sources"])
    return frame


def _dataset_order(frame: pd.DataFrame) -> list[str]:
    """Source datasets in configured order: the cards with the most sources (multi-domain experts
    list every source in the benchmark's order) first, then first-seen order."""
    order: list[str] = []
    by_size = frame.assign(n=frame["sources"].map(len)).sort_values(
        "n", ascending=False, kind="stable"
    )
    for sources in by_size["sources"]:
        order.extend(s for s in sources if s not in order)
    order.extend(d for d in frame["dataset"] if d not in order)
    return order


def table1(frame: pd.DataFrame) -> pd.DataFrame:
    """Single-domain experts: index (arch, pretraining), one column per source dataset."""
    single = frame[frame["type"] == "single"].copy()
    if single.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["arch", "pretraining"]))
    joint = single["sources"].map(len) > 1
    single["pretraining"] = np.where(
        joint,
        "joint:" + single["expert_id"],
        np.where(single["init"].isna(), "scratch", "+" + single["init"].fillna("").astype(str)),
    )
    wide = single.pivot_table(
        index=["arch", "pretraining"], columns="dataset", values="accuracy", aggfunc="max"
    )
    wide = wide.reindex(columns=[d for d in _dataset_order(frame) if d in wide.columns])

    # rows: per arch, from scratch first, then initialised, then joint experts
    def rank(key: tuple[str, str]) -> tuple[str, int, str]:
        arch, pre = key
        return arch, 0 if pre == "scratch" else 1 if pre.startswith("+") else 2, pre

    keys = sorted(wide.index, key=rank)
    wide = wide.reindex(index=pd.MultiIndex.from_tuples(keys, names=wide.index.names))
    wide.columns.name = None
    return wide


def table2(frame: pd.DataFrame) -> pd.DataFrame:
    """Source datasets x (best single-domain expert, each multi-domain expert)."""
    multi = frame[frame["type"].isin(list(MULTI_ORDER))]
    if multi.empty:
        return pd.DataFrame()
    experts = (
        multi[["expert_id", "type", "arch"]]
        .drop_duplicates()
        .assign(rank=lambda d: d["type"].map(MULTI_ORDER))
        .sort_values(["rank", "expert_id"])
    )
    wide = multi.pivot_table(index="dataset", columns="expert_id", values="accuracy", aggfunc="max")
    wide = wide.reindex(columns=experts["expert_id"].tolist())
    archs = set(experts["arch"])
    single = frame[
        (frame["type"] == "single") & frame["arch"].isin(archs) & (frame["sources"].map(len) == 1)
    ]
    best_single = single.groupby("dataset")["accuracy"].max()
    out = pd.concat([best_single.rename("single_domain"), wide], axis=1)
    out = out.reindex(index=[d for d in _dataset_order(frame) if d in out.index])
    out.index.name = "dataset"
    out.columns.name = None
    return out


def _markdown(table: pd.DataFrame, title: str) -> str:
    from analysis.report import markdown_table

    index_names = [n or "" for n in table.index.names]
    header = [*index_names, *map(str, table.columns)]
    rows = []
    for idx, values in zip(table.index, table.to_numpy()):
        keys = list(idx) if isinstance(idx, tuple) else [idx]
        rows.append([*keys, *("-" if not np.isfinite(v) else f"{v:.2f}" for v in values)])
    return f"{title}\n\n{markdown_table(header, rows)}\n"


def source_accuracy_tables(
    zoo_dir: str | os.PathLike, out_dir: str | os.PathLike
) -> dict[str, Path]:
    """Write the long source-accuracy table and Tables 1-2 (CSV + Markdown) under ``out_dir``.

    Returns name -> path for ``long``, ``table1_csv``, ``table1_md`` and, when the zoo has
    multi-domain experts, ``table2_csv``, ``table2_md``.
    """
    out_dir = Path(out_dir)
    frame = source_accuracy_frame(zoo_dir)
    paths: dict[str, Path] = {}
    paths["long"] = atomic_write_text(
        out_dir / "source_accuracy.csv",
        frame[LONG_COLUMNS].to_csv(index=False, float_format="%.4f"),
    )
    t1 = table1(frame)
    paths["table1_csv"] = atomic_write_text(
        out_dir / "table1_source_accuracy.csv", t1.to_csv(float_format="%.4f")
    )
    paths["table1_md"] = atomic_write_text(
        out_dir / "table1_source_accuracy.md",
        _markdown(t1, "Source test accuracy (%) of the single-domain experts"),
    )
    t2 = table2(frame)
    if not t2.empty:
        paths["table2_csv"] = atomic_write_text(
            out_dir / "table2_multi_domain.csv", t2.to_csv(float_format="%.4f")
        )
        paths["table2_md"] = atomic_write_text(
            out_dir / "table2_multi_domain.md",
            _markdown(
                t2, "Source test accuracy (%) per domain: single-domain vs multi-domain experts"
            ),
        )
    return paths

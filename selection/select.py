"""``select_model.py``: rank a zoo on the user's own labelled images, then fine-tune the top K.

Stages (each prints its progress and wall time):

1. **data**: scan the image folder or ``path,label`` CSV and decode every image once
   (:func:`zoo.data.user.scan`: awkward files are converted or named in a clear error);
2. **zoo**: the entries of the zoo config in the store (``paths.zoo_dir``); experts of type
   ``pretrained`` that are not stored yet are imported first (shipped EfficientNet-Lite0 weights,
   torchvision weights from ``weights_dir`` or torch's cache: :mod:`zoo.hub`). The data is
   registered once per input format of the entries (size, mean, std: ``<name>_<size>px_<norm>``),
   so each entry sees the images as its own transform says;
3. **scores**: one extraction per entry on at most ``selection.per_class`` training images per
   class (cached: :mod:`selection.extract`), scored with ``method`` (:func:`score_cell`, the
   benchmark's code); the ranked table (entry, score, rank, seconds) is printed and written to
   ``<out>/ranking.csv`` with a summary in ``<out>/summary.md``;
4. **fine-tuning** (``finetune_top=K``): the top K entries fine-tuned with the benchmark's recipe
   (``finetune``) over its learning-rate grid (``sweep.lrs``) and full-data seeds
   (``sweep.full_seeds``) by :func:`finetune.sweep.run_sweep` (finished runs are reused). An
   entry's accuracy is, as in the benchmark's ground truth, the best over the lr grid of the mean
   test accuracy over seeds. The cost of brute force is reported: the K entries' measured
   fine-tuning seconds, and for every other entry an estimate = its extraction seconds x the
   measured (fine-tuning seconds / extraction seconds) ratio of the K (both scale with the model's
   forward cost). The winner's best run is repeated once to keep its weights
   (``<out>/winner/weights.safetensors`` + ``card.json``; runs keep no checkpoint), unless the
   winner folder already holds that run.

Everything is written atomically; an error in stage 1 or 2 stops before anything is written.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, ListConfig, OmegaConf

from core.ground_truth import ground_truth
from core.io import atomic_path, atomic_write_json, atomic_write_text, read_json
from core.keys import expert_of, format_lr

RANKING_COLUMNS = [
    "rank",
    "entry",
    "score",
    "seconds",
    "extract_seconds",
    "score_seconds",
    "n",
    "remedy",
    "input_size",
    "target",
]
WINNER = "winner"


@dataclass
class SelectResult:
    """What a run produced: the ranking table, the output folder, and (with ``finetune_top``) the
    fine-tuning table (entry, test_acc, best_lr, seconds, measured) and the winner."""

    out_dir: Path
    ranking: pd.DataFrame
    finetuned: pd.DataFrame | None = None
    winner: str | None = None
    brute_force_seconds: float | None = None
    notes: list[str] = field(default_factory=list)


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


class _Stage:
    """Prints ``[i/n] what ...`` and, at the end, the stage's wall seconds."""

    def __init__(self, total: int) -> None:
        self.total, self.i, self.t0, self.name = total, 0, 0.0, ""

    def start(self, name: str) -> None:
        self.i += 1
        self.name, self.t0 = name, time.perf_counter()
        print(f"[{self.i}/{self.total}] {name} ...", flush=True)

    def done(self, what: str = "") -> float:
        seconds = time.perf_counter() - self.t0
        print(f"[{self.i}/{self.total}] {self.name}: {what + ', ' if what else ''}{seconds:.1f}s")
        return seconds


# --------------------------------------------------------------------------------------------------
# the zoo


def ensure_pretrained(
    expert: Any, zoo_dir: Path, data_dir: Path, weights_dir: str | None, download: bool
) -> bool:
    """Import the ``pretrained`` expert ``expert`` (an item of ``zoo.experts``) into the store unless
    it is there with the same config hash; True when it was imported now."""
    from core.cards import load_card
    from zoo.card import import_pretrained
    from zoo.hub import weights_source
    from zoo.spec import expert_config_hash, spec_from_zoo
    from zoo.store import has_expert

    spec = spec_from_zoo(expert)
    if spec.type != "pretrained":
        return False
    want = expert_config_hash(spec, {}, 0, -1)
    if has_expert(zoo_dir, spec.id) and load_card(spec.id, zoo_dir).get("config_hash") == want:
        return False
    with weights_source(weights_dir, download):
        import_pretrained(spec, zoo_dir, data_dir=data_dir)
    return True


def resolve_zoo(
    cfg: DictConfig, zoo_dir: Path, data_dir: Path, echo: Callable[[str], None] = print
) -> list[str]:
    """The entries to rank: the zoo config's (``zoo.entries``, else its experts' entries, else
    every stored entry: ``zoo=store``), after importing its missing pretrained experts."""
    from zoo.store import zoo_entries

    experts = list(_plain(cfg.zoo.get("experts")) or [])
    entries = _plain(cfg.zoo.get("entries"))
    needed = {expert_of(str(e)) for e in entries} if entries else None
    for item in experts:
        if (
            isinstance(item, dict)
            and item.get("type") == "pretrained"
            and (needed is None or item.get("id") in needed)
        ):
            if ensure_pretrained(
                item, zoo_dir, data_dir, cfg.get("weights_dir"), bool(cfg.get("download", True))
            ):
                echo(f"  imported pretrained expert {item.get('id')} into {zoo_dir}")
    ids = [str(e["id"]) if isinstance(e, dict) else str(e) for e in experts]
    return zoo_entries(zoo_dir, ids or None, entries, strict=True)


def entry_format(entry: str, zoo_dir: Path) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """(input size, mean, std) of an entry, from its card."""
    from core.cards import load_card

    card = load_card(expert_of(entry), zoo_dir)
    return (
        int(card["input_size"]),
        tuple(float(v) for v in card["mean"]),
        tuple(float(v) for v in card["std"]),
    )


# --------------------------------------------------------------------------------------------------
# scoring


def rank_table(rows: list[dict[str, Any]], entries: list[str]) -> pd.DataFrame:
    """The ranking: one row per entry, best score first (rank 1); entries the method could not
    score come last with an empty score and rank. Ties share the better rank (``min``)."""
    table = pd.DataFrame(rows)
    scored = set(table["entry"]) if len(table) else set()
    lost = [{"entry": e} for e in entries if e not in scored]
    if lost:
        table = pd.concat([table, pd.DataFrame(lost)], ignore_index=True)
    table = table.reindex(columns=RANKING_COLUMNS)
    table["rank"] = table["score"].rank(ascending=False, method="min").astype("Int64")
    table = table.sort_values(["rank", "entry"], na_position="last").reset_index(drop=True)
    return table


def print_ranking(table: pd.DataFrame, method: str) -> None:
    width = max(12, *(len(str(e)) for e in table["entry"]))
    print(f"\nranking by {method} (higher score = better predicted fine-tuning accuracy):")
    print(f"  {'rank':>4}  {'entry':{width}s}  {'score':>12}  {'seconds':>8}")
    for row in table.itertuples():
        rank = "-" if pd.isna(row.rank) else str(int(row.rank))
        score = "not scored" if pd.isna(row.score) else f"{row.score: .6g}"
        secs = "" if pd.isna(row.seconds) else f"{row.seconds:.2f}"
        print(f"  {rank:>4}  {row.entry:{width}s}  {score:>12}  {secs:>8}")


# --------------------------------------------------------------------------------------------------
# fine-tuning the top K


def _accuracy(results: list[dict]) -> tuple[float, float, float]:
    """(accuracy, best lr, seconds) of one entry: the benchmark's ground-truth rule
    (:func:`core.ground_truth.ground_truth`: best over lrs of the mean test accuracy over seeds)
    and the seconds of all its runs."""
    gt = ground_truth(pd.DataFrame(results)).iloc[0]
    return float(gt["acc"]), float(gt["best_lr"]), float(gt["seconds"])


def _save_winner(
    folder: Path, model: Any, card: dict[str, Any], expected: dict[str, Any] | None = None
) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    # an older winner's card goes first: a card never describes weights it was not written with
    (folder / "card.json").unlink(missing_ok=True)
    with atomic_path(folder / "weights.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "entry": card["entry"]})
    card = {**card, "tensors": {k: list(v.shape) for k, v in tensors.items()}}
    if expected is not None:
        card["test_acc_rerun"] = expected["test_acc"]
    # the card last: a folder with a card holds complete weights
    atomic_write_json(folder / "card.json", card)


def finetune_top(
    cfg: DictConfig,
    ranking: pd.DataFrame,
    targets: dict[str, str],
    out_dir: Path,
    k: int,
    data_source: str,
) -> tuple[pd.DataFrame, str, float, list[str]]:
    """Fine-tune the top ``k`` entries of ``ranking`` (see the module doc); returns the table of
    every entry (entry, rank, test_acc, best_lr, seconds, measured), the winner, the brute-force
    seconds (measured + estimated) and notes."""
    from core.cards import load_card
    from core.config import FinetuneSettings, SweepConfig, typed
    from finetune.run import FinetunePaths, finetune_run, load_result
    from finetune.sweep import RunKey, run_sweep

    settings = typed(FinetuneSettings, cfg.finetune)
    sweep = typed(SweepConfig, cfg.sweep)
    seeds = list(sweep.full_seeds or sweep.seeds)
    lrs = [float(format_lr(lr)) for lr in sweep.lrs]
    zoo_dir = Path(str(cfg.paths.zoo_dir)).expanduser().resolve()
    paths = FinetunePaths(
        zoo_dir=zoo_dir,
        finetune_dir=out_dir / "finetune",
        data_dir=Path(str(cfg.paths.data_dir)).expanduser().resolve(),
    )
    scored = ranking.dropna(subset=["score"])
    top = list(scored["entry"].head(k))
    if len(top) < k:
        print(f"  note: only {len(top)} entries were scored; fine-tuning those")
    runs = [RunKey(targets[e], "full", e, lr, seed) for e in top for lr in lrs for seed in seeds]
    print(
        f"  {len(top)} entries x lrs {', '.join(format_lr(lr) for lr in lrs)} x seeds "
        f"{', '.join(map(str, seeds))} = {len(runs)} runs -> {paths.finetune_dir}"
    )
    run_sweep(runs, settings, paths, echo=lambda s: print(f"  {s}", flush=True))
    rows, notes = [], []
    for entry in top:
        results = []
        for r in runs:
            if r.entry == entry:
                res = load_result(
                    r.path(paths.finetune_dir), r.target, r.shots, r.entry, r.lr, r.seed
                )
                if res is None:
                    raise RuntimeError(f"fine-tuning run {r} left no result")
                results.append(res)
        acc, lr, seconds = _accuracy(results)
        rows.append({"entry": entry, "test_acc": acc, "best_lr": lr, "seconds": seconds})
    done = pd.DataFrame(rows)
    # brute force: the others estimated from their extraction cost
    ratio = done["seconds"].sum() / max(
        float(scored.set_index("entry").loc[top, "extract_seconds"].sum()), 1e-9
    )
    rest = ranking[~ranking["entry"].isin(top)]
    estimated = pd.DataFrame(
        {
            "entry": rest["entry"],
            "test_acc": np.nan,
            "best_lr": np.nan,
            "seconds": rest["extract_seconds"].fillna(rest["extract_seconds"].mean()) * ratio,
        }
    )
    table = pd.concat(
        [done.assign(measured=True), estimated.assign(measured=False)], ignore_index=True
    )
    table = table.merge(ranking[["entry", "rank"]], on="entry", how="left")
    table = table[["rank", "entry", "test_acc", "best_lr", "seconds", "measured"]]
    brute = float(table["seconds"].sum())

    # ties go to the better-ranked entry
    done = done.assign(order=range(len(done)))
    best = done.sort_values(["test_acc", "order"], ascending=[False, True]).iloc[0]
    done = done.drop(columns="order")
    winner, best_lr, seed = str(best["entry"]), float(best["best_lr"]), int(seeds[0])
    target = targets[winner]
    run = RunKey(target, "full", winner, best_lr, seed)
    result = load_result(run.path(paths.finetune_dir), target, "full", winner, best_lr, seed)
    folder = out_dir / WINNER
    card_path = folder / "card.json"
    old = read_json(card_path) if card_path.is_file() else None
    if (
        old is not None
        and (folder / "weights.safetensors").is_file()
        and old.get("run_config_hash") == result["config_hash"]
    ):
        print(f"  winner {winner}: weights already saved in {folder}")
    else:
        expert_card = load_card(expert_of(winner), zoo_dir)
        from zoo.data import load_split

        classes = list(load_split(target, "train", paths.data_dir).classes)
        size, mean, std = entry_format(winner, zoo_dir)
        card = {
            "entry": winner,
            "arch": expert_card["arch"],
            "arch_kwargs": expert_card.get("arch_kwargs") or {},
            "num_classes": len(classes),
            "classes": classes,
            "input_size": size,
            "mean": list(mean),
            "std": list(std),
            "data": data_source,
            "target": target,
            "lr": best_lr,
            "seed": seed,
            "test_acc": float(result["test_acc"]),
            "recipe": result["recipe"],
            "run_config_hash": result["config_hash"],
            "entry_weights": result["entry_weights"],
            "target_data": result["target_data"],
            "load": "zoo.models.create_model(arch, num_classes, **arch_kwargs)"
            ".load_state_dict(safetensors.torch.load_file('weights.safetensors'))",
        }
        print(
            f"  winner {winner}: repeating its run lr={format_lr(best_lr)} seed={seed} to keep the weights"
        )
        finetune_run(
            winner,
            target,
            "full",
            best_lr,
            seed,
            settings,
            paths,
            write=False,
            on_model=lambda model, res: _save_winner(folder, model, card, res),
        )
        rerun = read_json(card_path)["test_acc_rerun"]
        if not math.isclose(rerun, card["test_acc"], abs_tol=1e-9):
            notes.append(
                f"the repeated winning run reached {rerun:.2f}% (the sweep's run "
                f"{card['test_acc']:.2f}%): this device is not bit-deterministic"
            )
        print(f"  saved the fine-tuned {winner} to {folder}")
    return table, winner, brute, notes


# --------------------------------------------------------------------------------------------------
# the summary


def _markdown_table(frame: pd.DataFrame, floats: str = "{:.4g}") -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = []
        for v in row:
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
                cells.append("")
            elif isinstance(v, float):
                cells.append(floats.format(v))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(
    data: Any,
    method: str,
    ranking: pd.DataFrame,
    stage_seconds: dict[str, float],
    result: SelectResult,
) -> str:
    """The short markdown summary written next to ``ranking.csv``."""
    counts = data.counts("train")
    lines = [
        "# Model selection on your data",
        "",
        f"- data: `{data.source}`: {len(data.classes)} classes, {len(data.splits['train'])} "
        f"training and {len(data.splits['test'])} test images (split: {data.split_policy}); "
        f"training images per class {int(counts.min())}-{int(counts.max())}",
        f"- method: `{method}` (higher score = better predicted accuracy after fine-tuning)",
        "- stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stage_seconds.items()),
        "",
        "## Ranking",
        "",
        _markdown_table(ranking[["rank", "entry", "score", "seconds"]]),
        "",
        "A score ranks the entries for *this* data; its value means nothing on its own, and "
        "scores of different methods or datasets are not comparable. It predicts the ranking after "
        "fine-tuning, imperfectly (see the benchmark's report for how often the top-ranked entry "
        "is the best one): fine-tune the top few to decide.",
    ]
    if result.finetuned is not None:
        ft = result.finetuned.copy()
        measured = ft[ft["measured"]]
        lines += [
            "",
            "## Fine-tuned",
            "",
            _markdown_table(measured[["rank", "entry", "test_acc", "best_lr", "seconds"]]),
            "",
            f"Winner: **{result.winner}** (weights: `{WINNER}/weights.safetensors`, card "
            f"`{WINNER}/card.json`). Test accuracy in percent, best over the lr grid (the "
            "benchmark's protocol: the lr is picked on the test split, which is optimistic).",
            "",
            f"Time: {measured['seconds'].sum():.1f} s fine-tuning {len(measured)} entries; "
            f"fine-tuning the whole zoo would take about {result.brute_force_seconds:.1f} s "
            f"({len(ft) - len(measured)} entries estimated from their extraction time).",
        ]
    for note in result.notes:
        lines.append(f"\nNote: {note}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# the entry point


def _data_base(cfg: DictConfig, data: Any) -> str:
    from zoo.data.user import default_name

    name = cfg.get("data_name")
    if name:
        if not re.fullmatch(r"[a-z0-9_]+", str(name)):
            raise ValueError(f"data_name {name!r}: use lower-case letters, digits and _")
        return str(name)
    return default_name(data)


def select_model_main(cfg: DictConfig) -> SelectResult:
    """Entry point of ``select_model.py`` (configs/select_model.yaml)."""
    from selection.evaluate import is_reference_space, resolve_methods, score_cell
    from selection.extract import Extractor, ExtractSettings
    from zoo.data import user

    if not cfg.get("data"):
        raise ValueError(
            "select_model.py needs data=PATH: an image folder (train/<class>/*, optional "
            "test/<class>/*) or a CSV of path,label"
        )
    k = int(cfg.get("finetune_top") or 0)
    if k < 0:
        raise ValueError(f"finetune_top must be >= 0 (0: no fine-tuning), got {k}")
    methods = resolve_methods(cfg.method)
    if len(methods) != 1 or is_reference_space(methods[0].method):
        raise ValueError(
            f"select_model.py ranks with one method measured in each entry's own features; got "
            f"{[m.name for m in methods]} (not `all`, not domain_similarity)"
        )
    method = methods[0]
    stages = _Stage(4 if k else 3)
    seconds: dict[str, float] = {}

    stages.start(f"data: scanning {cfg.data}")
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if done == total or time.perf_counter() - last[0] > 5:
            last[0] = time.perf_counter()
            print(f"  checked {done}/{total} images", flush=True)

    data = user.scan(
        str(cfg.data),
        test_fraction=float(cfg.test_fraction),
        seed=int(cfg.split_seed),
        progress=progress,
    )
    for note in data.notes:
        print(f"  note: {note}")
    seconds["data"] = stages.done(
        f"{len(data.classes)} classes, {len(data.splits['train'])} train / "
        f"{len(data.splits['test'])} test images ({data.split_policy} split)"
    )
    base = _data_base(cfg, data)
    out_dir = Path(str(cfg.get("out") or Path(str(cfg.paths.out_dir)) / "select" / base))
    out_dir = out_dir.expanduser().resolve()

    settings = ExtractSettings.from_cfg(cfg)
    stages.start(f"zoo: {cfg.zoo.name} in {settings.zoo_dir}")
    entries = resolve_zoo(cfg, settings.zoo_dir, settings.data_dir)
    formats = {e: entry_format(e, settings.zoo_dir) for e in entries}
    targets = {e: user.register(data, base, *formats[e]) for e in entries}
    groups: dict[str, list[str]] = {}
    for e in entries:
        groups.setdefault(targets[e], []).append(e)
    seconds["zoo"] = stages.done(f"{len(entries)} entries; data registered as {', '.join(groups)}")

    stages.start(f"scores: {method.name} on {len(entries)} entries")
    extractor = Extractor(settings)
    seed = int(settings.selection.seed)
    rows: list[dict[str, Any]] = []
    for target, group in groups.items():
        got = score_cell(
            extractor,
            target,
            "full",
            [seed],
            group,
            [method],
            sample_cap=settings.selection.sample_cap,
            cap_seed=seed,
        )[method.name]
        size = formats[group[0]][0]
        rows += [{**r, "input_size": size, "target": target} for r in got]
    ranking = rank_table(rows, entries)
    seconds["scores"] = stages.done(f"{int(ranking['score'].notna().sum())} entries scored")
    print_ranking(ranking, method.name)
    result = SelectResult(out_dir=out_dir, ranking=ranking)
    if ranking["score"].notna().sum() == 0:
        raise ValueError(f"{method.name} scored no entry (see the notes above); try another method")

    if k:
        stages.start(f"fine-tuning the top {k}")
        table, winner, brute, notes = finetune_top(
            cfg, ranking, targets, out_dir, k, str(data.source)
        )
        seconds["fine-tuning"] = stages.done(f"winner {winner}")
        result.finetuned, result.winner, result.brute_force_seconds = table, winner, brute
        result.notes += notes
        measured = table[table["measured"]]
        print("\nfine-tuned (test accuracy %, best over the lr grid):")
        for row in measured.itertuples():
            print(
                f"  {int(row.rank):>4}  {row.entry:40s} {row.test_acc:6.2f}%  lr={format_lr(row.best_lr)}"
                f"  {row.seconds:.1f}s"
            )
        print(
            f"winner: {winner}; fine-tuning the top {len(measured)} took "
            f"{measured['seconds'].sum():.1f}s, the whole zoo would take about {brute:.1f}s "
            f"({len(table) - len(measured)} entries estimated)"
        )
        for note in notes:
            print(f"  note: {note}")

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "ranking.csv", ranking.to_csv(index=False))
    if result.finetuned is not None:
        atomic_write_text(out_dir / "finetuned.csv", result.finetuned.to_csv(index=False))
    atomic_write_text(
        out_dir / "summary.md", summary_markdown(data, method.name, ranking, seconds, result)
    )
    atomic_write_text(
        out_dir / "run.json",
        json.dumps(
            {"data": str(data.source), "method": method.name, "stages_seconds": seconds},
            indent=2,
        )
        + "\n",
    )
    print(f"\nwrote {out_dir / 'ranking.csv'} and {out_dir / 'summary.md'}")
    return result

"""How much the mini benchmark's ground truth agrees with itself, and why: an lr grid x seeds sweep
of the k-shot cells on a trained zoo, with each run's per-image test predictions.

    python benchmarks/bench_ground_truth.py --store outputs/mini            # every mini target
    python benchmarks/bench_ground_truth.py --store outputs/mini --targets mini_greek \\
        --lrs 0.1 0.05 0.025 0.0125 0.00625 --steps 60

``--store`` is an output folder with a trained zoo (``make demo`` makes one); nothing is written
there. Runs use the store's recipe (configs/finetune/mini.yaml) with ``--steps`` as min_steps,
one thread, write=False; ``--save DIR`` keeps every run's per-image correctness and config hash
(its key, recipe, weights and data fingerprints) as JSON, one file per target, and ``--load DIR``
re-analyses such files without training.

Prints one row per (target, shots) cell, each at the entry's ground-truth lr (the best lr of the
seed mean, :func:`core.ground_truth.ground_truth`; :func:`analysis.tables.seed_accuracy`):

- ceiling: the noise ceiling (:func:`analysis.ceiling.agreement`, mean Spearman over seed pairs);
- half test: the same on random halves of the test split (mean of 20 halves): when it is clearly
  lower, the test split's size is part of the noise;
- one domain: the ceiling with each multi-domain expert kept to one domain (its first), i.e. with
  the near-ties of its domains removed; domains only: the ceiling over one expert's domains;
- edge: the share of entries whose best lr is the grid's highest or lowest
  (:func:`analysis.power.lr_edges`);
- spread and the best lrs' counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.ceiling import agreement  # noqa: E402
from analysis.power import lr_edges  # noqa: E402
from analysis.tables import seed_accuracy  # noqa: E402
from core.ground_truth import ground_truth  # noqa: E402
from core.keys import ENTRY_SEP, split_entry  # noqa: E402


def sweep(store: str, targets, shots: int, lrs, seeds, steps: int) -> dict[str, list]:
    """Every (entry, lr, seed) run of each target's cell (default: the benchmark's targets), with
    its per-image test correctness."""
    import torch
    from hydra import compose, initialize_config_dir

    import core.config  # noqa: F401
    from core.devices import autocast
    from finetune.run import finetune_run
    from finetune.sweep import zoo_entries
    from zoo.data import load_split
    from zoo.store import load_entry

    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "finetune", overrides=[f"paths.out_dir={store}", f"finetune.min_steps={steps}"]
        )
    entries = zoo_entries(cfg, Path(cfg.paths.zoo_dir))
    targets = list(targets or cfg.benchmark.targets)
    out = {}
    for target in targets:
        test = load_split(target, "test", cfg.paths.data_dir, train=False)
        x_test, y_test = test.tensors()
        rows, started = [], time.perf_counter()
        for entry_id in entries:
            entry = load_entry(entry_id, cfg.paths.zoo_dir)
            for lr in lrs:
                for seed in seeds:
                    kept = {}

                    def keep(model, result, kept=kept, x_test=x_test, y_test=y_test):
                        with torch.no_grad(), autocast(torch.device("cpu"), result["precision"]):
                            pred = torch.cat([model(x).argmax(1) for x in x_test.split(512)])
                        kept["correct"] = (pred == y_test).int().tolist()

                    r = finetune_run(
                        entry_id, target, shots, lr, seed, cfg, None, entry=entry, write=False,
                        on_model=keep,
                    )  # fmt: skip
                    rows.append(
                        {"entry": entry_id, "lr": lr, "seed": seed, "test_acc": r["test_acc"],
                         "train_loss": r["train_loss"], "config_hash": r["config_hash"],
                         "correct": kept["correct"]}
                    )  # fmt: skip
        out[target] = rows
        print(f"{target}: {len(rows)} runs in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def _seed_matrix(runs: pd.DataFrame, gt: pd.DataFrame) -> pd.DataFrame:
    """(entries, seeds) test accuracies at each entry's ground-truth lr (analysis.tables)."""
    acc = seed_accuracy(runs, gt)
    return acc.pivot_table(index="entry", columns="seed", values="acc", aggfunc="mean")


def _ceiling(wide: pd.DataFrame) -> float:
    return agreement(wide.dropna().to_numpy())["spearman"] if len(wide) >= 2 else float("nan")


def analyse(target: str, rows: list[dict], shots: int = 20) -> dict:
    """The diagnostics of one cell (see the module docstring)."""
    runs = pd.DataFrame(rows).assign(target=target, shots=str(shots))
    gt = ground_truth(runs)
    wide = _seed_matrix(runs, gt)
    halves, rng = [], np.random.default_rng(0)
    n_test = len(runs["correct"].iloc[0])
    for _ in range(20):
        idx = rng.choice(n_test, n_test // 2, replace=False)
        half = runs.assign(
            test_acc=runs["correct"].map(lambda c, idx=idx: 100.0 * np.asarray(c)[idx].mean())
        )
        halves.append(_ceiling(_seed_matrix(half, gt)))
    experts = pd.Series(wide.index.map(lambda e: split_entry(e)[0]), index=wide.index)
    multi = sorted({experts[e] for e in wide.index if ENTRY_SEP in e})
    keep = [e for e in wide.index if ENTRY_SEP not in e]
    keep += [wide.index[experts == m][0] for m in multi]
    domains = {m: _ceiling(wide[experts == m]) for m in multi}
    edges = lr_edges(gt, runs)
    return {
        "target": target,
        "entries": len(wide),
        "ceiling": _ceiling(wide),
        "half test": float(np.nanmean(halves)),
        "one domain": _ceiling(wide.loc[keep]),
        "domains only": ", ".join(f"{m} {v:+.2f}" for m, v in domains.items()),
        "edge": float(edges["edge"].isin(["low", "high"]).mean()),
        "spread": float(gt["acc"].max() - gt["acc"].min()),
        "best lrs": ", ".join(
            f"{lr:g}: {n}" for lr, n in gt["best_lr"].value_counts().sort_index().items()
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="output folder with a trained zoo")
    parser.add_argument("--targets", nargs="+", default=None)
    parser.add_argument("--shots", type=int, default=20)
    parser.add_argument("--lrs", nargs="+", type=float, default=[0.1, 0.05, 0.025, 0.0125, 0.00625])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--save", help="folder for the runs' JSON (one file per target)")
    parser.add_argument("--load", help="analyse the JSON files of an earlier --save instead")
    args = parser.parse_args()
    if args.load:
        runs = {p.stem: json.loads(p.read_text()) for p in sorted(Path(args.load).glob("*.json"))}
    else:
        if not args.store:
            parser.error("--store (a folder with a trained zoo) or --load is required")
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(var, "1")
        runs = sweep(args.store, args.targets, args.shots, args.lrs, args.seeds, args.steps)
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            for target, rows in runs.items():
                (Path(args.save) / f"{target}.json").write_text(json.dumps(rows))
    table = pd.DataFrame([analyse(t, rows, args.shots) for t, rows in runs.items()])
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for _, r in table.iterrows():
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + " |")
    print(f"\nmedian ceiling {table['ceiling'].median():.2f}, "
          f"with one domain per multi-domain expert {table['one domain'].median():.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

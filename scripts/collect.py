"""Collect the fine-tuning results into the ground-truth tables.

    python scripts/collect.py                       # outputs/mini (or $ZOOBENCH_OUT/mini)
    python scripts/collect.py --out-dir outputs/paper
    python scripts/collect.py --out-dir DIR --finetune-dir OTHER/finetune

Writes finetune_runs.parquet, finetune_gt.parquet and finetune_cost.csv into the output folder
(see finetune/collect.py); skipped (malformed or partial) result files are reported on stderr, and
so are (target, shots) cells whose runs mix recipes, precisions or code revisions, or lack runs of
the lr x seed grid. With --strict such cells make the command fail (exit status 3) once the tables
are written, so a script can stop before analysing them.

Run it again after any `finetune.py -m` in which a job failed or was killed: the tables are only as
fresh as the last collection.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.results import GroundTruthIntegrityError, check_cells  # noqa: E402
from finetune.collect import collect  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out-dir",
        default=str(Path(os.environ.get("ZOOBENCH_OUT", "outputs")) / "mini"),
        help="benchmark output folder (paths.out_dir); default: $ZOOBENCH_OUT/mini or outputs/mini",
    )
    parser.add_argument(
        "--finetune-dir", default=None, help="results folder (default: <out-dir>/finetune)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit status 3) when a cell mixes recipes, precisions or code revisions, or an "
        "entry lacks runs of its cell's lr x seed grid",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        runs, gt = collect(args.out_dir, args.finetune_dir)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs -> {len(gt)} ground-truth rows in {Path(args.out_dir).resolve()}")
    if args.strict:
        try:
            check_cells(runs, strict=True)
        except GroundTruthIntegrityError as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

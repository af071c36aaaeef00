"""Turn a published model-selection benchmark into tables that ``analyze.py`` reads.

    python scripts/import_published.py tll                 # -> outputs/published/tll/
    python scripts/import_published.py sfda --out DIR      # -> DIR/supervised/, DIR/self_supervised/
    python analyze.py gt=outputs/published/tll/gt.csv scores=outputs/published/tll/scores.csv \
        out=outputs/published/tll/report baseline=resnet50

Reads the transcribed tables under benchmarks/published/<name>/ (sources in each SOURCE.md; see
analysis/published.py) and writes gt.csv, scores.csv (when the source publishes per-model scores)
and published.csv (the correlations the source reports, to compare with the report's metrics.csv).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.published import SOURCES, load_published, write_byo  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help=f"published benchmark: {', '.join(SOURCES)}")
    parser.add_argument(
        "--out", default=None, help="output folder (default: outputs/published/<name>)"
    )
    args = parser.parse_args(argv)
    if args.name not in SOURCES:
        print(
            f"error: unknown published benchmark {args.name!r}; known: {', '.join(SOURCES)}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out or Path("outputs") / "published" / args.name)
    files = write_byo(args.name, out)
    for label, path in files.items():
        print(f"{label}: {path}")
    for t in load_published(args.name):
        folder = out / t.group if t.group else out
        for note in t.notes:
            print(f"note ({t.name} {t.group}): {note}".replace(" )", ")"))
        if t.scores is not None:
            base = f" baseline={t.baseline}" if t.baseline else ""
            print(
                f"analyze: python analyze.py gt={folder / 'gt.csv'} scores={folder / 'scores.csv'} "
                f"out={folder / 'report'}{base}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

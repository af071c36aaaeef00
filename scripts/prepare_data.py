"""Prepare datasets: generate mini domains, or print where to get a paper dataset and how to lay it out.

    python scripts/prepare_data.py NAME [NAME ...] [--data-dir data] [--download] [--check]
    python scripts/prepare_data.py mini            # every mini domain, with sizes and timings

Mini domains are generated in memory and their sizes reported. For a paper dataset it prints the
source, the expected layout under <data_dir>/<name>/ and whether it is present; it downloads only
with --download, and only where torchvision can. Exit status: 0 on success, 2 for an unknown name,
1 with --check when a named dataset is still absent.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zoo import data as datasets  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="dataset names, or 'mini' for every mini domain")
    parser.add_argument("--data-dir", default="data", help="where paper datasets live")
    parser.add_argument(
        "--download", action="store_true", help="download with torchvision where it can"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a named dataset is still absent"
    )
    args = parser.parse_args(argv)

    names: list[str] = []
    for name in args.names:
        names += datasets.available_datasets("mini") if name == "mini" else [name]
    known = datasets.available_datasets()
    unknown = [n for n in names if n not in known]
    if unknown:
        print(
            f"error: unknown dataset {', '.join(repr(n) for n in unknown)}; known: mini (all mini"
            f" domains), {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    absent = []
    for name in names:
        print(datasets.prepare(name, args.data_dir, download=args.download))
        if not datasets.is_available(name, args.data_dir):
            absent.append(name)
    return 1 if args.check and absent else 0


if __name__ == "__main__":
    sys.exit(main())

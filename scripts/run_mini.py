"""Run the whole benchmark chain with the project's own entry points, one stage after another:

    train_zoo.py -> finetune.py -m -> evaluate_selection.py -m method=all -> analyze.py

Every argument is a Hydra override passed to every stage (e.g. ``benchmark=mini``,
``experiment=smoke``, ``paths.out_dir=/tmp/zb``, ``logger=wandb``); put stage-specific values in an
``experiment`` file. Each stage skips the work it finds finished, so a rerun takes seconds. Prints the
stage, its progress (the stage's own lines) and the time so far; ends with the path of report.md.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The fine-tuning and scoring stages are multiruns, one job per (target, shots) cell (the sweep
# config's hydra.sweeper.params), run two at a time by the joblib launcher with one thread each:
# on a 2-core CPU that beats one process with two threads on these small models. A cluster user
# runs the same commands with launcher=slurm.
STAGES = [
    ("train the zoo", ["train_zoo.py"]),
    ("fine-tune (ground truth)", ["finetune.py", "-m", "launcher=joblib"]),
    (
        "score every entry with every method",
        ["evaluate_selection.py", "-m", "launcher=joblib", "method=all"],
    ),
    ("analyse the rankings", ["analyze.py"]),
]


def _fmt(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def resolved_paths(overrides: list[str]) -> tuple[Path, str]:
    """The output folder and report name the stages will use for these overrides."""
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir

    import core.config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="analyze", overrides=overrides)
    return Path(cfg.paths.reports_dir).resolve(), str(cfg.name)


def main(overrides: list[str]) -> int:
    reports_dir, name = resolved_paths(overrides)
    # progress bars redraw a line per step: in a log file (not a terminal) the stages' own progress
    # lines (one per expert, fine-tuning run and scored entry) say enough
    quiet = [] if sys.stdout.isatty() else ["trainer.enable_progress_bar=false"]
    start = time.perf_counter()
    timings = []
    for i, (title, command) in enumerate(STAGES, 1):
        t0 = time.perf_counter()
        print(f"\n=== [{i}/{len(STAGES)}] {title} (elapsed {_fmt(t0 - start)}) ===", flush=True)
        proc = subprocess.run([sys.executable, *command, *quiet, *overrides], cwd=ROOT)
        seconds = time.perf_counter() - t0
        timings.append((title, seconds))
        if proc.returncode != 0:
            print(
                f"\nstage {i} ({title}) failed with exit status {proc.returncode} after {_fmt(seconds)}"
            )
            return proc.returncode
        print(f"=== [{i}/{len(STAGES)}] done in {_fmt(seconds)} ===", flush=True)
    total = time.perf_counter() - start
    print("\nstage times:")
    for title, seconds in timings:
        print(f"  {title:<40} {_fmt(seconds)}")
    print(f"  {'total':<40} {_fmt(total)}")
    print(f"\nreport: {reports_dir / name / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

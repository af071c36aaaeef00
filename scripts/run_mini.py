"""Run the whole benchmark chain with the project's own entry points, one stage after another:

    train_zoo.py -> finetune.py -m -> evaluate_selection.py -m method=all -> analyze.py

Every argument is a Hydra override passed to every stage (e.g. ``benchmark=mini``,
``experiment=smoke``, ``paths.out_dir=/tmp/zb``, ``logger=wandb``); put stage-specific values in an
``experiment`` file. Each stage skips the work it finds finished, so a rerun takes seconds. Prints the
stage, its progress (the stage's own lines) and the time so far; ends with the path of report.md.

Parallelism: every process runs one intra-op thread and the stages run ``min(2, cpus)`` processes
at a time. The zoo is trained in waves (an expert after the expert it is initialised from), each
wave's experts split over the processes (``train_zoo.py zoo.experts=[<a part>]``), then one last
``train_zoo.py`` finds them all stored and writes the manifest. On a 2-core CPU, two one-thread
processes beat one two-thread process: the mini models' small convolutions scale poorly over two
threads, and on a shared machine two OpenMP threads spin-wait for each other
(``benchmarks/bench_mini_stages.py`` measures both).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The fine-tuning and scoring stages are multiruns, one job per (target, shots) cell (the sweep
# config's hydra.sweeper.params), run two at a time by the joblib launcher (configs/launcher/joblib:
# n_jobs 2), whose workers get one thread each. A cluster user runs the same commands with
# launcher=slurm.
ZOO_STAGE = "train the zoo"
STAGES = [
    (ZOO_STAGE, ["train_zoo.py"]),
    ("fine-tune (ground truth)", ["finetune.py", "-m", "launcher=joblib"]),
    (
        "score every entry with every method",
        ["evaluate_selection.py", "-m", "launcher=joblib", "method=all"],
    ),
    ("analyse the rankings", ["analyze.py"]),
]
# one thread per process for torch (OpenMP) and numpy/scipy (BLAS): see the module docstring
ONE_THREAD = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}


def _fmt(seconds: float) -> str:
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def _compose(config_name: str, overrides: list[str]) -> Any:
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir

    import core.config  # noqa: F401

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides)


def resolved_paths(overrides: list[str]) -> tuple[Path, str]:
    """The output folder and report name the stages will use for these overrides."""
    cfg = _compose("analyze", overrides)
    return Path(cfg.paths.reports_dir).resolve(), str(cfg.name)


def hydra_literal(value: Any) -> str:
    """``value`` (dicts, lists, strings, numbers, booleans, None) in Hydra's override grammar, e.g.
    ``{id:'g',datasets:['a','b']}``; strings are single-quoted (quotes and backslashes escaped)."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{hydra_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_literal(v) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise ValueError(f"cannot write {type(value).__name__} {value!r} as a Hydra override value")


def zoo_waves(experts: Sequence[Mapping[str, Any]]) -> list[list[dict]]:
    """The zoo's experts in waves: an expert comes one wave after the expert it is initialised from
    (``init`` names an expert, or ``<expert>@<domain>``); experts without an init in the zoo, first."""
    ids = [str(e.get("id")) for e in experts]
    level: dict[str, int] = {}
    for e in experts:
        init = e.get("init")
        parent = None if not init else str(init).split("@", 1)[0]
        if parent is not None and parent in ids and parent not in level:
            raise ValueError(
                f"expert {e.get('id')!r} is initialised from {init!r}, listed after it"
            )
        level[str(e.get("id"))] = level[parent] + 1 if parent in level else 0
    waves: list[list[dict]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for e in experts:
        waves[level[str(e.get("id"))]].append(dict(e))
    return waves


def split_jobs(items: Sequence[Any], jobs: int) -> list[list[Any]]:
    """``items`` dealt round-robin into at most ``jobs`` non-empty parts (listed order kept)."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    parts = [list(items[i::jobs]) for i in range(jobs)]
    return [p for p in parts if p]


def _run_parallel(commands: list[list[str]], env: dict[str, str]) -> int:
    procs = [subprocess.Popen([sys.executable, *c], cwd=ROOT, env=env) for c in commands]
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c != 0), 0)


def train_zoo_parallel(extra: list[str], overrides: list[str], jobs: int) -> int:
    """Train the zoo in waves of ``jobs`` one-thread ``train_zoo.py`` processes, then write the
    manifest with a last ``train_zoo.py`` (which finds every expert stored). Returns an exit code."""
    from omegaconf import OmegaConf

    cfg = _compose("train_zoo", overrides)
    experts = OmegaConf.to_container(cfg.zoo.experts, resolve=True) if cfg.zoo.experts else []
    env = {**os.environ, **ONE_THREAD}
    if jobs > 1 and len(experts) > 1:
        for n, wave in enumerate(zoo_waves(experts), 1):
            parts = split_jobs(wave, jobs)
            print(f"--- zoo wave {n}: {', '.join(str(e['id']) for e in wave)}", flush=True)
            commands = [
                ["train_zoo.py", *extra, *overrides, f"zoo.experts={hydra_literal(p)}"]
                for p in parts
            ]
            code = _run_parallel(commands, env)
            if code:
                return code
    return subprocess.run(
        [sys.executable, "train_zoo.py", *extra, *overrides], cwd=ROOT, env=env
    ).returncode


def main(overrides: list[str]) -> int:
    reports_dir, name = resolved_paths(overrides)
    # progress bars redraw a line per step: in a log file (not a terminal) the stages' own progress
    # lines (one per expert, fine-tuning run and scored entry) say enough
    quiet = [] if sys.stdout.isatty() else ["trainer.enable_progress_bar=false"]
    jobs = max(1, min(2, os.cpu_count() or 1))
    start = time.perf_counter()
    timings = []
    for i, (title, command) in enumerate(STAGES, 1):
        t0 = time.perf_counter()
        print(f"\n=== [{i}/{len(STAGES)}] {title} (elapsed {_fmt(t0 - start)}) ===", flush=True)
        if title == ZOO_STAGE:
            code = train_zoo_parallel(quiet, overrides, jobs)
        else:
            code = subprocess.run(
                [sys.executable, *command, *quiet, *overrides], cwd=ROOT
            ).returncode
        seconds = time.perf_counter() - t0
        timings.append((title, seconds))
        if code != 0:
            print(f"\nstage {i} ({title}) failed with exit status {code} after {_fmt(seconds)}")
            return code
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

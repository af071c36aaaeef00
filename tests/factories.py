"""Helpers the test modules import: config composition, a tiny zoo, subprocess settings, a kill
harness. Importing this module (``conftest`` does, first) sets the offline defaults every test and
subprocess runs under.

The kill harness runs an entry point (``train_zoo.py``, ``finetune.py``, ``evaluate_selection.py``)
or a ``-c`` snippet in a subprocess that SIGKILLs itself at a chosen *event*, so a test can put the
kill exactly where it wants and reproduce it from a seed:

- ``rename:K``: at the K-th atomic write (counted over ``os.replace`` calls whose source is a
  zoobench temporary file), after the temporary file is complete and before it is renamed: the
  worst moment for a non-atomic writer, which would have left a complete-looking partial state;
- ``partial:K``: as ``rename`` but the temporary file is first cut to half its size (a kill in the
  middle of writing the bytes);
- ``step:K``: at the K-th ``torch.optim.SGD.step`` (a kill in the middle of training).

``ZB_COUNT_STEPS=1`` makes the subprocess print ``ZB_STEPS <n>`` at exit: the optimizer steps it ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
# subprocesses: one thread (tiny models; OpenMP threads waiting for each other cost more than
# they bring on a shared 2-core machine), no network, no progress bars
ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "WANDB_MODE": "disabled",
    "HYDRA_FULL_ERROR": "0",
}


def compose(config_name: str, overrides: list[str] | None = None, *, hydra_config: bool = False):
    """Compose ``configs/<config_name>.yaml`` with overrides, as the entry point would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import core.config  # noqa: F401  (registers the schemas)

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(
            config_name=config_name, overrides=overrides or [], return_hydra_config=hydra_config
        )


def run_entry(
    script: str,
    overrides: list[str],
    *,
    cwd: Path = ROOT,
    env: dict | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess:
    """``python <ROOT>/<script> <overrides>`` started in ``cwd`` under :data:`ENV` (updated by
    ``env``), output captured as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *overrides],
        cwd=cwd,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


HARNESS = r"""
import os, signal, sys, runpy

event, _, at = os.environ.get("ZB_KILL", "none:0").partition(":")
at = int(at or 0)
count = 0


def _die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _tick():
    global count
    count += 1
    return count == at


if event in ("rename", "partial"):
    _replace = os.replace

    def replace(src, dst, *args, **kwargs):
        name = os.path.basename(os.fspath(src))
        if name.startswith(".") and ".tmp-" in name and _tick():
            if event == "partial":
                size = os.path.getsize(src)
                with open(src, "r+b") as f:
                    f.truncate(size // 2)
            _die()
        return _replace(src, dst, *args, **kwargs)

    os.replace = replace

if event == "step" or os.environ.get("ZB_COUNT_STEPS"):
    import atexit
    import torch

    steps = 0
    _step = torch.optim.SGD.step

    def step(self, *args, **kwargs):
        global steps
        steps += 1
        if event == "step" and _tick():
            _die()
        return _step(self, *args, **kwargs)

    torch.optim.SGD.step = step
    atexit.register(lambda: print(f"ZB_STEPS {steps}", flush=True))

target = sys.argv[1]
if target == "-c":
    code = sys.argv[2]
    sys.argv = ["-c", *sys.argv[3:]]
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(target, run_name="__main__")
"""


def run_killable(
    args: list[str],
    *,
    kill: str | None = None,
    cwd: Path | None = None,
    count_steps: bool = False,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run ``python <args>`` (a script path and its arguments, or ``-c CODE ...``) under the harness."""
    env = {**ENV, "ZB_KILL": kill or "none:0"}
    if count_steps:
        env["ZB_COUNT_STEPS"] = "1"
    return subprocess.run(
        [sys.executable, "-c", HARNESS, *args],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def was_killed(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == -signal.SIGKILL


def temporaries(root: Path) -> list[Path]:
    """zoobench temporary files left under ``root`` (by a killed writer)."""
    from core.io import is_temporary

    return sorted(p for p in root.rglob("*") if is_temporary(p))


def mtimes(paths: list[Path]) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in paths}


def save_tiny_expert(
    zoo_dir: Path,
    expert_id: str,
    seed: int,
    classes: int = 5,
    width: float = 0.25,
    dataset: str = "mini_mnist",
) -> Path:
    """A random-init ResNet-8 (``64 * width`` features) single-domain expert with a source profile;
    its card names ``dataset`` as its source data (Domain Similarity's reference space reads it)."""
    from zoo.models import MINI_MEAN, MINI_STD, create_model
    from zoo.store import save_expert

    torch.manual_seed(seed)
    model = create_model("resnet8", num_classes=classes, width=width)
    rng = np.random.default_rng(seed)
    dim = model.feature_dim
    card = {
        "arch": "resnet8",
        "arch_kwargs": {"width": width},
        "type": "single",
        "sources": [dataset],
        "domains": [
            {
                "name": "src",
                "num_classes": classes,
                "classes": [f"c{i}" for i in range(classes)],
                "datasets": [dataset],
                # distinct per expert, so the source_accuracy reference method has a ranking to give
                "source_accuracy": round(0.2 + 0.1 * (seed % 7), 3),
            }
        ],
        "input_size": 32,
        "mean": list(MINI_MEAN),
        "std": list(MINI_STD),
    }
    profile = {"src": (rng.random((classes, dim)), rng.integers(5, 50, classes))}
    return save_expert(zoo_dir, expert_id, model, card, profile)


def tiny_zoo(zoo_dir: Path, experts: tuple[str, ...] = ("tiny_a", "tiny_b")) -> Path:
    for i, e in enumerate(experts):
        save_tiny_expert(zoo_dir, e, seed=i)
    return zoo_dir


def selection_overrides(out_dir: Path, zoo_dir: Path, experts=("tiny_a", "tiny_b")) -> list[str]:
    """``evaluate_selection.py`` overrides: every method on a tiny zoo, mini_polygons, 5 shots."""
    listed = ",".join(f"{{id:{e}}}" for e in experts)
    return [
        f"paths.out_dir={out_dir}",
        f"paths.zoo_dir={zoo_dir}",
        f"zoo.experts=[{listed}]",
        "zoo.entries=null",
        "method=all",
        "target=mini_polygons",
        "shots=5",
        # one k-shot draw (the mini sweep fine-tunes seeds 0 and 1; one is enough here)
        "seed=0",
        "selection.per_class=5",
        "selection.batch_size=64",
        "selection.sample_cap=30",
        "selection.lgc.heads=1",
        "selection.lgc.dim=16",
        "selection.probe.steps=2",
        "selection.probe.batch_size=8",
        f"selection.reference_entry={experts[0]}",
        "selection.source_per_class=5",
        "trainer.accelerator=cpu",
        "logger=none",
    ]


def spawn_python(code: str, *args: object) -> subprocess.Popen:
    """``python -c code args...`` started in the repository with the tests' environment (not
    waited for: several run at once), its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def write_result(finetune_dir: Path, result: dict) -> Path:
    """Write ``result`` as the result.json of its run key under ``finetune_dir``; returns the path."""
    import json

    from finetune.run import result_path

    path = result_path(
        finetune_dir,
        result["target"],
        result["shots"],
        result["entry"],
        result["lr"],
        result["seed"],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return path

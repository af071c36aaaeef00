"""The cluster path: a fine-tuning sweep through Hydra's submitit launcher, run as local processes.

``launcher=submitit_local`` goes through the same code as ``launcher=slurm`` (hydra-submitit-launcher
pickles each job, submitit runs it in a fresh process and collects its result), with local
processes instead of a SLURM job array. A SLURM job that times out or is preempted is requeued from
the start (``max_num_timeout``); that is safe because a run whose result exists is skipped. The test
runs the sweep, removes one result as if its job had died before writing it, runs the sweep again,
and checks that exactly that run is redone and nothing else is touched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.io import read_json
from tests.factories import ENV, ROOT, mtimes, tiny_zoo


def _sweep(out: Path, zoo_dir: Path) -> subprocess.CompletedProcess:
    overrides = [
        "-m",
        "launcher=submitit_local",
        f"paths.out_dir={out}",
        f"paths.zoo_dir={zoo_dir}",
        "target=mini_polygons",
        "shots=5,3",  # a job array of two jobs, one per (target, shots) cell
        "entry=tiny_a",
        "sweep.lrs=[0.1,0.01]",
        "sweep.seeds=[0]",
        "finetune.epochs=1",
        "finetune.min_steps=3",
        "finetune.batch_size=16",
        "trainer.accelerator=cpu",
        "logger=none",
    ]
    return subprocess.run(
        [sys.executable, str(ROOT / "finetune.py"), *overrides],
        cwd=out.parent,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _job_logs(out: Path) -> list[str]:
    """The stdout of every submitit job so far (one file per job)."""
    # one folder per launch (start time and job tag), the jobs' submitit logs inside it
    logs = sorted((out / "logs" / "finetune-multirun").glob("*/.submitit/*/*_log.out"))
    return [p.read_text() for p in logs]


# about 30 s: two launches, each starting one process per job
@pytest.mark.slow
def test_submitit_sweep_writes_results_and_a_requeue_redoes_only_what_is_missing(
    tmp_path: Path,
) -> None:
    zoo_dir = tiny_zoo(tmp_path / "zoo", ("tiny_a",))
    out = tmp_path / "out"
    first = _sweep(out, zoo_dir)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in first.stdout + first.stderr
    results = sorted((out / "finetune").rglob("result.json"))
    keys = [p.relative_to(out / "finetune").parts[1:5] for p in results]
    assert keys == [
        ("shots=3", "tiny_a", "lr=0.01", "seed=0"),
        ("shots=3", "tiny_a", "lr=0.1", "seed=0"),
        ("shots=5", "tiny_a", "lr=0.01", "seed=0"),
        ("shots=5", "tiny_a", "lr=0.1", "seed=0"),
    ]
    for path in results:
        result = read_json(path)
        assert result["steps"] == 3 and result["device"] == "cpu" and 0 <= result["test_acc"] <= 100
    # each job (its own process) kept its config in its own sub-folder of the launch's one folder
    job_dirs = sorted({read_json(p)["job_dir"] for p in results})
    assert len(job_dirs) == 2 and len({Path(d).parent for d in job_dirs}) == 1
    assert all((Path(d) / ".hydra" / "config.yaml").is_file() for d in job_dirs)
    # each job ran in its own process, through submitit
    jobs = _job_logs(out)
    assert len(jobs) == 2 and all("Job completed successfully" in j for j in jobs)

    # a job killed before its second run wrote: its requeued copy redoes that run only
    lost = results[3]
    lost.unlink()
    kept = mtimes(results[:3])
    second = _sweep(out, zoo_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert lost.is_file() and mtimes(results[:3]) == kept
    requeued = [j for j in _job_logs(out) if j not in jobs]
    assert len(requeued) == 2
    assert sum("2 runs planned, 1 already done, 1 run" in j for j in requeued) == 1
    assert sum("2 runs planned, 2 already done, 0 run" in j for j in requeued) == 1
    assert len(list((out / "finetune").rglob("result.json"))) == 4

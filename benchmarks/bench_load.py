"""Load test of ``evaluate_selection``'s scoring path: a big zoo on a 1000-class target.

    python benchmarks/bench_load.py                       # 30 entries, 1000 classes x 50, D = 512
    python benchmarks/bench_load.py --entries 3           # measure 3 entries, extrapolate to 30
    python benchmarks/bench_load.py --methods lfc,gbc --entries 2 --timeout 300
    python benchmarks/bench_load.py --entries 1 --together-entries 30   # method=all over the whole zoo

What runs is :func:`selection.evaluate.score_cell`, the function ``evaluate_selection.py`` calls for
one (target, shots) cell, with its method list, its sample cap for quadratic methods
(``selection.sample_cap``, default 2000) and its error handling. Only the extraction is replaced: a
stand-in extractor synthesises each entry's inputs (nothing is trained or run through a network):

- labels: C classes x ``--per-class`` samples (N = 50,000 by default);
- features (N, D): ReLU(latent (N x 64, class-dependent means, power-law spectrum) @ mixing_e
  + noise), mixing_e drawn per entry, like pooled CNN features;
- probs (N, 1000): softmax over a 1000-class source head of the latents (per entry);
- grads (N, 256): the LGC sketch stand-in, a linear map of the latents;
- probe_features (N, 64) for RSA (one per target) and a source profile (1000 class means, counts)
  per entry for Domain Similarity.

Each method runs in its own subprocess (``--timeout`` seconds at most) over the measured entries, so
that a method that does not scale is reported instead of stalling the others. Per method it reports
the seconds per entry (``score_seconds`` of the score table: the cap and the score) and the peak
resident memory of the process while scoring: the kernel's high-water mark (VmHWM, reset through
/proc/self/clear_refs before each call) with the entry's inputs resident. This counts BLAS / LAPACK
work space and what sklearn allocates, not only numpy arrays. A last subprocess runs every method
that finished, together, on one entry (the real ``method=all`` path) and reports its peak
(ru_maxrss). The totals for the zoo are the per-entry seconds times the zoo size (entries cost the
same: same N, D and classes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.memory import maxrss_kib, reset_peak, status_kib  # noqa: E402

LATENT = 64
SOURCE_CLASSES = 1000
GRAD_DIM = 256
PROBE_DIM = 64
BLOCK = 8192
TARGET = "load_target"
SHOTS = "50"


# ---------------------------------------------------------------- synthetic inputs


@dataclass
class Shape:
    classes: int
    per_class: int
    dim: int

    @property
    def n(self) -> int:
        return self.classes * self.per_class


def _labels(shape: Shape) -> np.ndarray:
    return np.repeat(np.arange(shape.classes, dtype=np.int64), shape.per_class)


def _latents(shape: Shape, seed: int) -> np.ndarray:
    """(N, LATENT) latents of the target's samples (one draw per target, shared by the entries)."""
    rng = np.random.default_rng([seed, 0])
    spectrum = np.arange(1, LATENT + 1) ** -0.7
    class_means = rng.normal(size=(shape.classes, LATENT)) * 0.8
    return (rng.normal(size=(shape.n, LATENT)) + class_means[_labels(shape)]) * spectrum


def synthesise_entry(
    shape: Shape, latent: np.ndarray, entry: int, want: set[str]
) -> dict[str, np.ndarray]:
    """The inputs of one entry among ``want`` (features, probs, grads), float64."""
    rng = np.random.default_rng([entry, 1])
    # entries differ in how well their features keep the latents: a per-entry noise level, small
    # enough that most of the variance lies in a few dozen directions, as in CNN features
    noise = 0.02 + 0.08 * rng.random()
    mixing = rng.normal(size=(LATENT, shape.dim)) / np.sqrt(LATENT)
    out: dict[str, np.ndarray] = {}
    if "features" in want:
        out["features"] = np.empty((shape.n, shape.dim))
    if "probs" in want:
        head = rng.normal(size=(LATENT, SOURCE_CLASSES)) * 3.0
        out["probs"] = np.empty((shape.n, SOURCE_CLASSES))
    if "grads" in want:
        grad_mixing = rng.normal(size=(LATENT, GRAD_DIM)) / np.sqrt(LATENT)
        out["grads"] = np.empty((shape.n, GRAD_DIM))
    for start in range(0, shape.n, BLOCK):
        rows = slice(start, min(start + BLOCK, shape.n))
        z = latent[rows]
        if "features" in out:
            block = z @ mixing + noise * rng.normal(size=(len(z), shape.dim))
            out["features"][rows] = np.maximum(block, 0.0)
        if "probs" in out:
            logits = z @ head
            logits -= logits.max(axis=1, keepdims=True)
            p = np.exp(logits)
            out["probs"][rows] = p / p.sum(axis=1, keepdims=True)
        if "grads" in out:
            out["grads"][rows] = z @ grad_mixing + noise * rng.normal(size=(len(z), GRAD_DIM))
    return out


def source_profile(shape: Shape, entry: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([entry, 2])
    means = np.maximum(rng.normal(size=(SOURCE_CLASSES, shape.dim)) * 0.3, 0.0)
    return means, rng.integers(20, 500, SOURCE_CLASSES)


# ---------------------------------------------------------------- the stand-in extractor


@dataclass
class _Settings:
    zoo_dir: Path = Path("unused")


@dataclass
class SyntheticExtractor:
    """What :func:`selection.evaluate.score_cell` uses of an ``Extractor``, with synthetic inputs."""

    shape: Shape
    want: set[str]
    seed: int = 0
    settings: _Settings = field(default_factory=_Settings)
    synth_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.latent = _latents(self.shape, self.seed)
        self.labels = _labels(self.shape)
        self.indices = np.arange(self.shape.n, dtype=np.int64)

    def samples(self, target: str, shots: Any, seed: int):
        return None, self.indices, self.labels

    def extract(self, entry_id: str, target: str, shots: Any, seed: int = 0, **_: Any):
        from selection.extract import Extraction

        start = time.perf_counter()
        arrays = synthesise_entry(self.shape, self.latent, int(entry_id.split("_")[1]), self.want)
        self.synth_seconds += time.perf_counter() - start
        return Extraction(
            entry=entry_id,
            target=target,
            shots=SHOTS,
            seed=seed,
            labels=self.labels,
            indices=self.indices,
            features=arrays.get("features"),
            probs=arrays.get("probs"),
            grads=arrays.get("grads"),
            seconds={"features": 0.0, "lgc": 0.0},
            cached={"features": True, "lgc": True},
        )

    def probe(self, target: str, shots: Any, seed: int = 0):
        from selection.extract import Probe

        rng = np.random.default_rng([self.seed, 3])
        mixing = rng.normal(size=(LATENT, PROBE_DIM)) / np.sqrt(LATENT)
        return Probe(np.maximum(self.latent @ mixing, 0.0), self.labels, self.indices, 0.0, True)


# ---------------------------------------------------------------- one worker


def worker(methods: list[str], shape: Shape, entries: int, sample_cap: int) -> dict:
    """Run score_cell on ``entries`` synthetic entries with ``methods``; return the measurements."""
    import selection.evaluate as ev
    from selection.evaluate import MethodRun, method_params, score_cell
    from selection.registry import get_method

    runs = [MethodRun(m, get_method(m), method_params(m)) for m in methods]
    want = set().union(*(r.method.needs for r in runs))
    extractor = SyntheticExtractor(shape, want)
    names = [f"entry_{i}" for i in range(entries)]
    ev.load_source_profile = lambda entry, zoo_dir: source_profile(shape, int(entry.split("_")[1]))

    peaks: dict[str, list[float]] = {m: [] for m in methods}
    bases: dict[str, list[float]] = {m: [] for m in methods}
    real_score = ev.score
    exact = reset_peak()

    def measured_score(name: str, **inputs: Any) -> float:
        bases[name].append(status_kib("VmRSS") / 1024)
        reset_peak()
        try:
            return real_score(name, **inputs)
        finally:
            peaks[name].append(status_kib("VmHWM") / 1024 if exact else maxrss_kib() / 1024)

    ev.score = measured_score
    start = time.perf_counter()
    rows = score_cell(extractor, TARGET, SHOTS, 0, names, runs, sample_cap=sample_cap, cap_seed=0)
    wall = time.perf_counter() - start - extractor.synth_seconds
    out = {}
    for m in methods:
        done = rows[m]
        out[m] = {
            "entries": len(done),
            "seconds": [r["score_seconds"] for r in done],
            "n": [r["n"] for r in done],
            "peak_mib": max(peaks[m], default=float("nan")),
            "base_mib": max(bases[m], default=float("nan")),
        }
    return {
        "methods": out,
        "wall_seconds": wall,
        "synth_seconds": extractor.synth_seconds,
        "maxrss_mib": maxrss_kib() / 1024,
        "exact_peak": exact,
    }


# ---------------------------------------------------------------- driver


def run_worker(
    methods: list[str], args: argparse.Namespace, entries: int, timeout: float
) -> dict | str:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        ",".join(methods),
        "--entries",
        str(entries),
        "--classes",
        str(args.classes),
        "--per-class",
        str(args.per_class),
        "--dim",
        str(args.dim),
        "--sample-cap",
        str(args.sample_cap),
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return f"did not finish in {timeout:.0f} s"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return f"failed after {time.perf_counter() - start:.0f} s: {tail[:200]}"
    notes = [line for line in proc.stdout.splitlines() if "note:" in line]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["notes"] = notes
    return result


def _gib(mib: float) -> str:
    return f"{mib / 1024:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--zoo", type=int, default=30, help="entries of the zoo to extrapolate to")
    parser.add_argument(
        "--entries", type=int, default=None, help="entries measured (default: --zoo)"
    )
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--sample-cap", type=int, default=2000)
    parser.add_argument("--methods", default="all", help="comma-separated, or all")
    parser.add_argument("--skip", default="", help="comma-separated methods not to run")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per method worker")
    parser.add_argument("--no-together", action="store_true", help="skip the joint run")
    parser.add_argument(
        "--together-entries",
        type=int,
        default=1,
        help="entries of the joint run (--zoo: the whole zoo through the method=all path)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = Shape(args.classes, args.per_class, args.dim)
    entries = args.entries or args.zoo

    if args.worker:
        print(json.dumps(worker(args.worker.split(","), shape, entries, args.sample_cap)))
        return

    from selection.registry import available

    methods = list(available()) if args.methods == "all" else args.methods.split(",")
    skip = {m for m in args.skip.split(",") if m}
    methods = [m for m in methods if m not in skip]
    print(
        f"load: N = {shape.n} ({shape.classes} classes x {shape.per_class}), D = {shape.dim}, "
        f"source head {SOURCE_CLASSES} classes, grads {GRAD_DIM}; {entries} entries measured, "
        f"zoo of {args.zoo}; sample cap {args.sample_cap}; {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results: dict[str, Any] = {}
    for m in methods:
        r = run_worker([m], args, entries, args.timeout)
        results[m] = r
        if isinstance(r, str):
            print(f"{m:24s} {r}", flush=True)
            continue
        s = r["methods"][m]
        if s["entries"] < entries:
            print(f"{m:24s} scored {s['entries']}/{entries} entries: {r['notes'][:1]}", flush=True)
        if s["entries"]:
            print(
                f"{m:24s} {np.mean(s['seconds']):8.2f} s/entry  peak {_gib(s['peak_mib'])} GiB "
                f"(inputs {_gib(s['base_mib'])} GiB)  n={s['n'][0]}",
                flush=True,
            )
    together = None
    finished = [m for m in methods if isinstance(results[m], dict)]
    finished = [m for m in finished if results[m]["methods"][m]["entries"]]
    if not args.no_together and finished:
        n_joint = args.together_entries
        together = run_worker(finished, args, n_joint, args.timeout * len(finished) * n_joint)
        if isinstance(together, str):
            print(f"together: {together}")
        else:
            print(
                f"together ({len(finished)} methods, {n_joint} entries): "
                f"{together['wall_seconds']:.1f} s, "
                f"peak RSS {_gib(together['maxrss_mib'])} GiB",
                flush=True,
            )

    print(f"\n| method | s / entry | x {args.zoo} entries (s) | peak RSS (GiB) | N scored |")
    print("|---|---|---|---|---|")
    total = 0.0
    for m in methods:
        r = results[m]
        if isinstance(r, str):
            print(f"| {m} | {r} | | | |")
            continue
        s = r["methods"][m]
        if not s["entries"]:
            print(f"| {m} | failed: {r['notes'][:1]} | | | |")
            continue
        per = float(np.mean(s["seconds"]))
        total += per
        print(f"| {m} | {per:.2f} | {per * args.zoo:.0f} | {_gib(s['peak_mib'])} | {s['n'][0]} |")
    print(f"| **all that finished** | **{total:.1f}** | **{total * args.zoo:.0f}** | | |")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "together": together}, indent=1))


if __name__ == "__main__":
    main()

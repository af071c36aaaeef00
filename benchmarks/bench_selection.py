"""Time and peak memory of every registered selection score on synthetic inputs.

    python benchmarks/bench_selection.py           # N in {1000, 5000, 20000, 50000}, D = 2048
    python benchmarks/bench_selection.py --quick   # two small sizes, a few minutes
    python benchmarks/bench_selection.py --methods lfc,logme --sizes 50000:100

Each (size, method) runs in a fresh subprocess that loads only the inputs the method needs. It
reports the wall seconds of ``selection.score`` (input checks included) and the peak resident
memory the call adds: the kernel's high-water mark (VmHWM, reset through /proc/self/clear_refs just
before the call) minus the resident size with the inputs loaded. This counts BLAS/LAPACK work space
and anything sklearn allocates, not only numpy arrays. Quadratic methods (``Method.quadratic``) get a
class-stratified, seeded cap of the samples (``selection.checks.stratified_cap``). ``naive_lfc`` is
the N x N reference (K = F F^T and Y = 2S - 1 materialised, np.corrcoef), run up to --naive-max.

Synthetic inputs (seeded): features = ReLU(latent (N x 128, power-law spectrum, class-dependent
means) @ mixing (128 x D) + noise), like pooled CNN features (non-negative, most variance in a few
dozen directions); grads N x 512 and probe_features N x 512 from the same latents; probs = softmax
over Cs = 1000 source classes of a random linear map of the latents; source_profile = 1000 class
means with counts.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.memory import maxrss_kib, reset_peak, status_kib  # noqa: E402

FULL_SIZES = [
    (1000, 20),
    (5000, 20),
    (5000, 100),
    (20000, 100),
    (20000, 1000),
    (50000, 100),
    (50000, 1000),
]
QUICK_SIZES = [(1000, 20), (5000, 100)]
SOURCE_CLASSES = 1000
GRAD_DIM = 512
PROBE_DIM = 512
LATENT = 128
BLOCK = 4096


# ---------------------------------------------------------------- synthetic inputs


def synthesise(n: int, classes: int, dim: int, out: Path, seed: int) -> None:
    """Write features, labels, grads, probs, probe_features and the source profile as .npy."""
    from numpy.lib.format import open_memmap

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % classes).astype(np.int64)
    np.save(out / "labels.npy", labels)
    spectrum = np.arange(1, LATENT + 1) ** -0.7
    class_means = rng.normal(size=(classes, LATENT)) * 0.8
    mixing = rng.normal(size=(LATENT, dim)) / np.sqrt(LATENT)
    grad_mixing = rng.normal(size=(LATENT, GRAD_DIM)) / np.sqrt(LATENT)
    probe_mixing = rng.normal(size=(LATENT, PROBE_DIM)) / np.sqrt(LATENT)
    source_head = rng.normal(size=(LATENT, SOURCE_CLASSES)) * 3.0
    arrays = {
        "features": open_memmap(out / "features.npy", "w+", np.float64, (n, dim)),
        "grads": open_memmap(out / "grads.npy", "w+", np.float64, (n, GRAD_DIM)),
        "probs": open_memmap(out / "probs.npy", "w+", np.float64, (n, SOURCE_CLASSES)),
        "probe_features": open_memmap(out / "probe_features.npy", "w+", np.float64, (n, PROBE_DIM)),
    }
    for start in range(0, n, BLOCK):
        rows = slice(start, min(start + BLOCK, n))
        b = rows.stop - rows.start
        latent = (rng.normal(size=(b, LATENT)) + class_means[labels[rows]]) * spectrum
        arrays["features"][rows] = np.maximum(latent @ mixing + 0.02 * rng.normal(size=(b, dim)), 0)
        arrays["grads"][rows] = latent @ grad_mixing + 0.02 * rng.normal(size=(b, GRAD_DIM))
        arrays["probe_features"][rows] = np.maximum(latent @ probe_mixing, 0)
        logits = latent @ source_head
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        arrays["probs"][rows] = probs / probs.sum(axis=1, keepdims=True)
    for array in arrays.values():
        array.flush()
    del arrays
    np.save(out / "source_means.npy", np.maximum(rng.normal(size=(SOURCE_CLASSES, dim)) * 0.3, 0))
    np.save(out / "source_counts.npy", rng.integers(20, 500, SOURCE_CLASSES))


def write_capped(out: Path, cap: int, seed: int) -> int:
    """Write cap_<input>.npy: a class-stratified seeded subset of every per-sample input."""
    from selection.checks import stratified_cap

    labels = np.load(out / "labels.npy")
    index = stratified_cap(labels, cap, seed)
    for name in ("features", "labels", "grads", "probs", "probe_features"):
        np.save(out / f"cap_{name}.npy", np.load(out / f"{name}.npy", mmap_mode="r")[index])
    return len(index)


# ---------------------------------------------------------------- one measurement (subprocess)


def naive_lfc(features: np.ndarray, labels: np.ndarray) -> float:
    kernel = features @ features.T
    target = 2.0 * (labels[:, None] == labels[None, :]) - 1.0
    return float(np.corrcoef(kernel.ravel(), target.ravel())[0, 1])


def measure(method: str, data: Path, capped: bool) -> dict:
    import selection

    prefix = "cap_" if capped else ""
    needs = ("features", "labels") if method == "naive_lfc" else selection.get_method(method).needs
    inputs = {}
    for name in needs:
        if name == "source_profile":
            inputs[name] = (np.load(data / "source_means.npy"), np.load(data / "source_counts.npy"))
        else:
            inputs[name] = np.load(data / f"{prefix}{name}.npy")
    gc.collect()
    exact_peak = reset_peak()
    base = status_kib("VmRSS")
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    if method == "naive_lfc":
        value = naive_lfc(**inputs)
    else:
        value = selection.score(method, **inputs)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    peak = status_kib("VmHWM") if exact_peak else maxrss_kib()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_mib": (peak - base) / 1024,
        "value": value,
        "exact_peak": exact_peak,
    }


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------- driver


def run_one(
    method: str, data: Path, capped: bool, timeout: float, blas_threads: int | None
) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--data", str(data)]
    if capped:
        cmd.append("--capped")
    if blas_threads:
        cmd += ["--blas-threads", str(blas_threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": last[:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def blas_description() -> str:
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            name = Path(info["filepath"]).name.split("-")[0]
            parts.append(
                f"{info['internal_api']} {info['version']} ({name}, {info.get('architecture')}, "
                f"{info['num_threads']} threads)"
            )
    return "; ".join(parts)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def parse_sizes(text: str) -> list[tuple[int, int]]:
    sizes = []
    for item in text.split(","):
        n, c = item.split(":")
        sizes.append((int(n), int(c)))
    return sizes


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| N | C | method | samples | wall s | CPU s | peak MiB | note |",
        "|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    by_key = {(r["n"], r["classes"], r["method"]): r for r in rows}
    for r in rows:
        note = r.get("error", "")
        naive = by_key.get((r["n"], r["classes"], "naive_lfc"))
        if r["method"] == "lfc" and naive and "error" not in naive and "error" not in r:
            note = (
                f"naive N x N: {naive['seconds'] / r['seconds']:.1f}x the time, "
                f"{naive['peak_mib'] / max(r['peak_mib'], 1):.1f}x the memory, "
                f"|diff| {abs(naive['value'] - r['value']):.1e}"
            )
        cells = [f"{r[k]:.2f}" if k in r else "-" for k in ("seconds", "cpu_seconds")] + [
            f"{r['peak_mib']:.0f}" if "peak_mib" in r else "-"
        ]
        lines.append(
            f"| {r['n']} | {r['classes']} | {r['method']} | {r['samples']} | "
            + " | ".join(cells)
            + f" | {note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="sizes 1000:20 and 5000:100 only")
    parser.add_argument("--sizes", help="comma-separated N:C pairs (overrides the defaults)")
    parser.add_argument(
        "--methods", help="comma-separated method names (default: every registered one)"
    )
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension D")
    parser.add_argument("--cap", type=int, default=5000, help="sample cap for quadratic methods")
    parser.add_argument(
        "--naive-max", type=int, default=5000, help="largest N for the N x N naive LFC"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per method and size")
    parser.add_argument(
        "--blas-threads", type=int, help="limit BLAS threads in the workers (threadpoolctl)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--capped", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        if args.blas_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=args.blas_threads, user_api="blas")
        print(json.dumps(measure(args.worker, args.data, args.capped)))
        return

    import selection

    sizes = parse_sizes(args.sizes) if args.sizes else QUICK_SIZES if args.quick else FULL_SIZES
    registered = selection.available()
    names = args.methods.split(",") if args.methods else [*registered, "naive_lfc"]
    unknown = [m for m in names if m not in registered and m != "naive_lfc"]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; registered: {', '.join(registered)}")
    print(f"# {datetime.date.today()}  {platform.node()}  {os.cpu_count()} CPUs")
    print(f"# BLAS: {blas_description()}")
    if args.blas_threads:
        print(f"# BLAS threads limited to {args.blas_threads} in the workers")
    print(f"# command: {' '.join([Path(sys.executable).name] + sys.argv)}")
    print("# peak MiB = VmHWM during the call minus RSS with the inputs loaded")
    rows = []
    for n, classes in sizes:
        with tempfile.TemporaryDirectory(prefix="bench_selection_") as tmp:
            data = Path(tmp)
            start = time.perf_counter()
            synthesise(n, classes, args.dim, data, args.seed)
            capped_n = write_capped(data, args.cap, args.seed) if n > args.cap else n
            print(
                f"\n## N={n} C={classes} D={args.dim} (inputs {time.perf_counter() - start:.0f} s,"
                f" load average {load_average()})",
                flush=True,
            )
            todo = [m for m in names if m != "naive_lfc" or n <= args.naive_max]
            for method in todo:
                quadratic = method != "naive_lfc" and registered[method].quadratic
                capped = quadratic and n > args.cap
                result = run_one(method, data, capped, args.timeout, args.blas_threads)
                row = {
                    "n": n,
                    "classes": classes,
                    "dim": args.dim,
                    "method": method,
                    "samples": capped_n if capped else n,
                    "load_average": load_average(),
                    **result,
                }
                rows.append(row)
                if "error" in result:
                    print(f"{method:24s} {row['samples']:>6d}  -- {result['error']}", flush=True)
                else:
                    print(
                        f"{method:24s} {row['samples']:>6d} {result['seconds']:9.2f} s "
                        f"{result['cpu_seconds']:9.2f} cpu-s {result['peak_mib']:9.1f} MiB"
                        f"  value {result['value']:.6g}  (load {row['load_average']})",
                        flush=True,
                    )
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=1))
    print()
    print(markdown_table(rows))


if __name__ == "__main__":
    main()

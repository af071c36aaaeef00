"""Per-unit costs of the mini benchmark's stages on this CPU, in CPU-seconds (``time.process_time``)
of one thread unless stated, so that figures taken on a shared machine stay comparable.

    python benchmarks/bench_mini_stages.py               # every lever (a few minutes)
    python benchmarks/bench_mini_stages.py --quick       # fewer repeats

Prints Markdown tables:

1. training (forward + backward + SGD step) and evaluation (inference forward) per image, for each
   mini architecture with stride-1 and stride-2 stems, at batch 32 and 64, fp32 and bf16 autocast;
2. wall ms per training image with 1 and 2 intra-op threads (one process), against 2 processes of
   1 thread (2x the 1-thread rate when the cores are free);
3. one fine-tuning run's overheads: the DataLoader's per-item batches against slicing the cached
   tensor, the model copy, the evaluation of a test split, the SGD step's Python cost;
4. process start-up: ``import torch`` and the imports of each stage's entry point.

Load average is printed with every table: on a shared CPU the wall figures are upper bounds.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from zoo.models import create_model  # noqa: E402

ARCHS = [
    ("resnet8", {}),
    ("resnet8", {"stem_stride": 2}),
    ("resnet8", {"stem_stride": 2, "width": 0.75}),
    ("densenet_mini", {}),
    ("densenet_mini", {"stem_stride": 2}),
]


def load() -> str:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def _step(model, opt, x, y, bf16: bool) -> None:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def train_cost(model, batch: int, steps: int, bf16: bool, clock=time.process_time) -> float:
    """Seconds (of ``clock``) per image of full SGD steps on random 32x32 batches, after warm-up;
    the median of 3 windows of ``steps`` steps."""
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(3):
        _step(model, opt, x, y, bf16)
    times = []
    for _ in range(3):
        t = clock()
        for _ in range(steps):
            _step(model, opt, x, y, bf16)
        times.append((clock() - t) / (steps * batch))
    return statistics.median(times)


def eval_cost(model, n: int = 512, grad: bool = False) -> float:
    """CPU-seconds per image of an eval-mode forward over ``n`` images in batches of 256, under
    ``torch.inference_mode`` or (``grad=True``) with autograd recording, as a loop without
    ``no_grad`` does."""
    model.eval()
    x = torch.randn(256, 3, 32, 32)
    reps = max(1, n // 256)
    ctx = torch.enable_grad if grad else torch.inference_mode
    with ctx():
        model(x)
        t = time.process_time()
        for _ in range(reps):
            model(x)
    return (time.process_time() - t) / (reps * 256)


def arch_table(steps: int) -> None:
    torch.set_num_threads(1)
    print(f"\n## Per image, 1 thread (CPU ms; load average {load()})\n")
    print("| arch | train fp32 b32 | train fp32 b64 | train bf16 b32 | eval | eval with autograd |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, kw in ARCHS:
        row = [
            train_cost(create_model(name, 10, **kw), 32, steps, False),
            train_cost(create_model(name, 10, **kw), 64, steps, False),
            train_cost(create_model(name, 10, **kw), 32, max(2, steps // 4), True),
            eval_cost(create_model(name, 10, **kw)),
            eval_cost(create_model(name, 10, **kw), grad=True),
        ]
        label = name + "".join(f" {k}={v}" for k, v in kw.items())
        print(f"| {label} | " + " | ".join(f"{1e3 * v:.3f}" for v in row) + " |", flush=True)


def thread_table(steps: int) -> None:
    print(f"\n## Threads: wall ms per training image, batch 64, fp32 (load average {load()})\n")
    print("| arch | 1 thread | 2 threads | 2 processes x 1 thread (ideal) |")
    print("|---|---:|---:|---:|")
    for name, kw in ARCHS[:2] + ARCHS[3:4]:
        out = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append(
                train_cost(create_model(name, 10, **kw), 64, steps, False, time.perf_counter)
            )
        torch.set_num_threads(1)
        label = name + "".join(f" {k}={v}" for k, v in kw.items())
        print(f"| {label} | {1e3 * out[0]:.3f} | {1e3 * out[1]:.3f} | {1e3 * out[0] / 2:.3f} |")


def overhead_table(steps: int) -> None:
    """A 20-shot run's pieces on a stride-2 ResNet-8: what a run costs besides its SGD steps."""
    from finetune.run import _loader
    from zoo.data import load_split

    torch.set_num_threads(1)
    print(f"\n## One fine-tuning run's overheads, 1 thread (CPU ms; load average {load()})\n")
    t = time.process_time()
    train = load_split("mini_greek", "train", train=True)
    test = load_split("mini_greek", "test")
    first = time.process_time() - t
    t = time.process_time()
    load_split("mini_greek", "train", train=True)
    again = time.process_time() - t
    model = create_model("resnet8", 20, stem_stride=2)
    rows = [
        ("generate a target's splits (first load in a process)", 1e3 * first),
        ("load them again (cached per process)", 1e3 * again),
    ]
    sub = train.subset(torch.arange(400))
    loader = _loader(sub, 32, shuffle=True, seed=0, num_workers=0, device=torch.device("cpu"))
    t = time.process_time()
    batches = 0
    for _ in range(3):
        for _x, _y in loader:
            batches += 1
    rows.append(
        (
            "DataLoader batch of 32 (per-item shift + collate)",
            1e3 * (time.process_time() - t) / batches,
        )
    )
    images, labels = sub.with_train(False).tensors()
    t = time.process_time()
    for _ in range(batches):
        idx = torch.randint(0, len(images), (32,))
        images[idx], labels[idx]
    rows.append(
        ("tensor-slice batch of 32 (no augmentation)", 1e3 * (time.process_time() - t) / batches)
    )
    t = time.process_time()
    for _ in range(20):
        copy.deepcopy(model)
    rows.append(("copy of the entry's model", 1e3 * (time.process_time() - t) / 20))
    rows.append(
        ("SGD step, batch 32 (compute + Python)", 1e3 * 32 * train_cost(model, 32, steps, False))
    )
    rows.append(
        ("SGD step, batch 2 (mostly Python/dispatch)", 1e3 * 2 * train_cost(model, 2, steps, False))
    )
    rows.append(
        (f"evaluation of the test split ({len(test)} images)", 1e3 * len(test) * eval_cost(model))
    )
    print("| piece | CPU ms |")
    print("|---|---:|")
    for what, ms in rows:
        print(f"| {what} | {ms:.2f} |", flush=True)


def startup_table() -> None:
    print(f"\n## Process start-up (wall s, fresh interpreter; load average {load()})\n")
    print("| imports | wall s |")
    print("|---|---:|")
    for what, code in [
        ("python only", "pass"),
        ("torch", "import torch"),
        ("lightning + torch", "import lightning"),
        ("finetune.sweep (fine-tuning job)", "import finetune.sweep, zoo.store"),
        ("selection.evaluate (scoring job)", "import selection.evaluate, selection.scores"),
        ("zoo.train (zoo)", "import zoo.train"),
    ]:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        print(f"| {what} | {time.perf_counter() - t:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer timed steps")
    parser.add_argument("--only", choices=["arch", "threads", "overhead", "startup"], default=None)
    args = parser.parse_args()
    steps = 4 if args.quick else 10
    print(
        f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, {os.cpu_count()} cpus"
    )
    tables = {"arch": arch_table, "threads": thread_table, "overhead": overhead_table}
    for name, fn in tables.items():
        if args.only in (None, name):
            fn(steps)
    if args.only in (None, "startup"):
        startup_table()


if __name__ == "__main__":
    main()

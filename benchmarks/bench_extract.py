"""Extraction and LGC cost on this machine.

1. LGC sketching time (R heads, Kronecker projection; selection.sketch) vs one forward + backward
   pass (training mode, cross-entropy, gradients of every weight) over the same images, for a
   CIFAR-style ResNet at 32x32 and a ResNet-101 at 224x224 (random weights). Target: <= 3x.
2. For a ResNet-101 at 224x224 (random weights, 1000-class source head) on a synthetic 20-class
   target: feature extraction (selection.extract.run_model: features + source probabilities) vs every
   registered score except LGC on its output. Target: extraction + scores < 1.2x extraction.

On a small CPU the ResNet-101 extraction of 20 x 50 images takes long; ``--extract-per-class`` images
per class are extracted and timed (extraction cost is linear in N), and the scores run on
``--per-class`` images per class built from them (each extracted feature vector repeated with small
noise, so the class structure stays). RSA's probe network and Domain Similarity's source profile are
inputs made once per target / per expert, outside this loop: random stand-ins are used here.

    python benchmarks/bench_extract.py                       # defaults: a few minutes on 2 cores
    python benchmarks/bench_extract.py --extract-per-class 50   # extract every image (slow on CPU)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selection import available, score  # noqa: E402
from selection.checks import stratified_cap  # noqa: E402
from selection.extract import run_model  # noqa: E402
from selection.sketch import LGCSketcher  # noqa: E402
from zoo.models import create_model  # noqa: E402


def _batches(x: torch.Tensor, batch: int) -> list[torch.Tensor]:
    return list(torch.split(x, batch))


def time_forward_backward(model: torch.nn.Module, x: torch.Tensor, batch: int) -> float:
    """Seconds of one training-mode forward + backward pass (every weight's gradient) over x."""
    model.train()
    labels = torch.randint(
        0, model.num_classes, (x.shape[0],), generator=torch.Generator().manual_seed(0)
    )
    start = time.perf_counter()
    for xb, yb in zip(_batches(x, batch), torch.split(labels, batch)):
        model.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    model.eval()
    return seconds


def time_forward(model: torch.nn.Module, x: torch.Tensor, batch: int) -> float:
    model.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for xb in _batches(x, batch):
            model.forward_features(xb)
    return time.perf_counter() - start


def time_sketch(model: torch.nn.Module, x: torch.Tensor, batch: int, heads: int, dim: int) -> float:
    sketcher = LGCSketcher(model, heads=heads, dim=dim, seed=0)
    start = time.perf_counter()
    for xb in _batches(x, batch):
        sketcher(xb)
    return time.perf_counter() - start


def bench_lgc(arch: str, n: int, size: int, batch: int, heads: int, dim: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10)
    x = torch.randn(n, 3, size, size)
    # warm-up (allocator, kernels) on one batch of each kind
    time_forward_backward(model, x[:batch], batch)
    time_sketch(model, x[:batch], batch, heads, dim)
    fb = time_forward_backward(model, x, batch)
    fwd = time_forward(model, x, batch)
    sk = time_sketch(model, x, batch, heads, dim)
    return {"fwd": fwd, "fwd_bwd": fb, "sketch": sk}


class _Images(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], 0


def synthetic_target(
    classes: int, per_class: int, size: int, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    """Images (N, 3, size, size) with a class-specific mean colour and pattern plus noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = np.repeat(np.arange(classes), per_class)
    protos = torch.randn(classes, 3, 8, 8, generator=gen)
    base = torch.nn.functional.interpolate(
        protos, size=(size, size), mode="bilinear", align_corners=False
    )
    images = base[torch.as_tensor(labels)] + 0.8 * torch.randn(
        len(labels), 3, size, size, generator=gen
    )
    return images, labels


def bench_all_scores(
    classes: int, per_class: int, extract_per_class: int, batch: int, cap: int
) -> tuple[dict[str, float], dict[str, float]]:
    torch.manual_seed(0)
    model = create_model("resnet101", num_classes=1000).eval()
    images, small_labels = synthetic_target(classes, extract_per_class, 224)
    run_model(model, _Images(images[:2]), device=torch.device("cpu"), batch_size=2)  # warm-up
    arrays, seconds = run_model(
        model, _Images(images), device=torch.device("cpu"), batch_size=batch
    )
    per_image = seconds["features"] / len(images)
    extract_seconds = per_image * classes * per_class
    rng = np.random.default_rng(0)
    # per_class samples per class: the extracted ones repeated, with 5% noise of the feature scale
    reps = int(np.ceil(per_class / extract_per_class))
    pick = np.concatenate(
        [np.flatnonzero(small_labels == c).repeat(reps)[:per_class] for c in range(classes)]
    )
    feats = arrays["features"].astype(np.float64)[pick]
    feats = np.maximum(feats + 0.05 * feats.std() * rng.standard_normal(feats.shape), 0.0)
    probs = arrays["probs"].astype(np.float64)[pick]
    labels = small_labels[pick]
    inputs = {
        "features": feats,
        "probs": probs,
        "labels": labels,
        "probe_features": rng.standard_normal((len(labels), 64)),
        "source_profile": (rng.random((1000, feats.shape[1])), rng.integers(5, 500, 1000)),
    }
    timings: dict[str, float] = {}
    for name, method in available().items():
        if name == "lgc":
            continue
        use = {k: inputs[k] for k in method.needs}
        start = time.perf_counter()
        if method.quadratic and len(labels) > cap:
            idx = stratified_cap(labels, cap, 0)
            use = {k: (v[idx] if isinstance(v, np.ndarray) else v) for k, v in use.items()}
        score(name, **use)
        timings[name] = time.perf_counter() - start
    info = {
        "extract_measured_seconds": seconds["features"],
        "extract_measured_images": float(len(images)),
        "extract_seconds": extract_seconds,
        "n": float(len(labels)),
    }
    return info, timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n32", type=int, default=512, help="images for the 32x32 LGC timing")
    parser.add_argument("--n224", type=int, default=64, help="images for the 224x224 LGC timing")
    parser.add_argument("--arch32", default="resnet20")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--extract-per-class", type=int, default=5)
    parser.add_argument("--sample-cap", type=int, default=2000)
    args = parser.parse_args()

    print(
        f"# bench_extract on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}"
    )
    print(f"\nLGC sketch (heads={args.heads}, dim={args.dim}) vs one forward+backward pass:")
    print("| model | input | N | forward s | forward+backward s | sketch s | sketch / fwd+bwd |")
    print("|---|---|---|---|---|---|---|")
    for arch, n, size, batch in (
        (args.arch32, args.n32, 32, 128),
        ("resnet101", args.n224, 224, 16),
    ):
        r = bench_lgc(arch, n, size, batch, args.heads, args.dim)
        print(
            f"| {arch} | {size}x{size} | {n} | {r['fwd']:.2f} | {r['fwd_bwd']:.2f} | {r['sketch']:.2f} "
            f"| {r['sketch'] / r['fwd_bwd']:.2f}x |",
            flush=True,
        )

    info, timings = bench_all_scores(
        args.classes, args.per_class, args.extract_per_class, 16, args.sample_cap
    )
    total = sum(timings.values())
    ext = info["extract_seconds"]
    print(
        f"\nResNet-101 224x224, {args.classes} classes x {args.per_class} images (N={int(info['n'])}, D=2048, "
        f"1000 source classes): extraction measured on {int(info['extract_measured_images'])} images in "
        f"{info['extract_measured_seconds']:.1f}s -> {ext:.1f}s for N={int(info['n'])}"
    )
    print("| score | seconds | share of extraction |")
    print("|---|---|---|")
    for name, s in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {s:.3f} | {s / ext:.1%} |")
    print(
        f"| **all {len(timings)} scores (LGC aside)** | **{total:.2f}** | **{total / ext:.1%}** |"
    )
    print(
        f"\nmethod=all (LGC aside) = extraction + scores = {(ext + total) / ext:.2f}x the extraction"
    )


if __name__ == "__main__":
    main()

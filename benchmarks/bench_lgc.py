"""LGC gradient kernel: fidelity of the sketch against the exact kernel, and its cost.

1. Fidelity, for ResNet-8, ResNet-20, DenseNet-mini and EfficientNet-Lite0 (``zoo.models``), random
   init and trained (``--steps`` SGD steps on sklearn's 8x8 digits, upsampled to RGB): on N held-out
   digits, the exact LGC kernel K = sum_r G_r G_r^T (per-sample last-conv gradients, R heads,
   ``projection="identity"``) against
   - "kron8x8": the former default, a Kronecker sketch vec(P1 g P2^T) with 8 x 8 Gaussian factors
     (variance 1/8 each) applied to the same exact rows, and
   - "default": ``selection.sketch.lgc_sketch(model, images)`` with its defaults,
   reporting the Pearson correlation of the N^2 kernel entries with the exact ones and LGC / exact
   LGC (LGC = Pearson correlation of K with 2S - 1, S_ij = 1[y_i = y_j]). All three use the same
   heads (seed 0).
2. Cost at paper scale (224x224, random weights): seconds of one forward + backward pass (training
   mode, cross-entropy, gradients of every weight) vs seconds of ``lgc_sketch`` with its defaults, on
   the same ``--cost-n`` images, for ResNet-101 and DenseNet-169. Target: sketch <= 3x fwd+bwd.

    python benchmarks/bench_lgc.py                    # a few minutes on 2 cores
    python benchmarks/bench_lgc.py --skip-cost        # fidelity only
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
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import selection  # noqa: E402
from selection.sketch import LGCSketcher, lgc_sketch  # noqa: E402
from zoo.models import create_model  # noqa: E402

SMALL_ARCHS = ("resnet8", "resnet20", "densenet_mini", "efficientnet_lite0")
LARGE_ARCHS = ("resnet101", "densenet169")


def digits(size: int) -> tuple[torch.Tensor, np.ndarray]:
    """sklearn digits as (1797, 3, size, size) float32 standardised images and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.as_tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = ((x - x.mean()) / x.std()).repeat(1, 3, 1, 1)
    return x, data.target.astype(np.int64)


def train(model: torch.nn.Module, x: torch.Tensor, y: np.ndarray, steps: int) -> float:
    """``steps`` SGD steps (batch 64, lr 0.05, momentum 0.9); returns the last-batch accuracy."""
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    labels = torch.as_tensor(y)
    model.train()
    acc = 0.0
    for _ in range(steps):
        idx = torch.randint(len(x), (64,), generator=gen)
        logits = model(x[idx])
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        acc = float((logits.argmax(1) == labels[idx]).float().mean())
    return acc


def kron_8x8(rows: torch.Tensor, c_out: int, gen: torch.Generator) -> torch.Tensor:
    """The former default: vec(P1 g P2^T), P1 (8 x C_out), P2 (8 x patch), entries N(0, 1/8)."""
    n = rows.shape[0]
    g = rows.reshape(n, c_out, -1).double()
    p1 = torch.randn(8, c_out, generator=gen, dtype=torch.float64) / np.sqrt(8)
    p2 = torch.randn(8, g.shape[2], generator=gen, dtype=torch.float64) / np.sqrt(8)
    return torch.einsum("dc,ncp,ep->nde", p1, g, p2).reshape(n, -1)


def kernels(model: torch.nn.Module, x: torch.Tensor, heads: int = 4) -> dict[str, np.ndarray]:
    """Exact, former-default and default LGC kernels (N x N float64), all with the heads of seed 0."""
    ref = LGCSketcher(model, heads=heads, seed=0, projection="identity")
    exact = torch.zeros(len(x), len(x), dtype=torch.float64)
    kron = torch.zeros_like(exact)
    # the former code drew P1, P2 from the seed's generator right after the heads
    gen = torch.Generator().manual_seed(0)
    torch.randn(heads, ref.feature_dim, generator=gen, dtype=torch.float64)
    after_heads = gen.get_state()
    for r in range(heads):
        one = LGCSketcher(model, heads=1, seed=0, projection="identity")
        one.head_vectors = ref.head_vectors[r : r + 1]
        rows = torch.cat([one(b)[1] for b in torch.split(x, 50)])  # (N, |W|), one head at a time
        exact += (rows @ rows.T).double()
        # one (P1, P2) pair shared by all heads, as in the former code
        k = kron_8x8(rows, ref.c_out, torch.Generator().set_state(after_heads))
        kron += k @ k.T
        del rows
    g = torch.as_tensor(lgc_sketch(model, x))
    return {"exact": exact.numpy(), "kron8x8": kron.numpy(), "default": (g @ g.T).numpy()}


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def fidelity(args: argparse.Namespace) -> None:
    print(
        f"## fidelity: N={args.n} held-out digits, R=4 heads, {args.steps} SGD steps when trained"
    )
    print(
        "| model | input | state | |W| | default path | exact LGC | kron8x8 kcorr | kron8x8 LGC"
        " / exact | default kcorr | default LGC / exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arch in args.archs:
        size = args.lite0_size if arch == "efficientnet_lite0" else 32
        x_all, y_all = digits(size)
        perm = np.random.default_rng(0).permutation(len(y_all))
        held, pool = perm[: args.n], perm[args.n :]
        for state in args.states:
            torch.manual_seed(0)
            model = create_model(arch, num_classes=10)
            note = state
            if state == "trained":
                acc = train(model, x_all[pool], y_all[pool], args.steps)
                note = f"trained (last batch acc {acc:.2f})"
            model.eval()
            x, y = x_all[held], y_all[held]
            ks = kernels(model, x)
            s = 2.0 * (y[:, None] == y[None, :]) - 1.0
            lgc = {k: corr(v, s) for k, v in ks.items()}
            sk = LGCSketcher(model)
            g = lgc_sketch(model, x)
            # the registered score on the default output equals the naive correlation
            assert abs(selection.score("lgc", grads=g, labels=y) - lgc["default"]) < 1e-8
            print(
                f"| {arch} | {size}x{size} | {note} | {sk.weights} | "
                f"{'exact' if sk.exact else f'countsketch {sk.dim}'} | {lgc['exact']:.4f} | "
                f"{corr(ks['kron8x8'], ks['exact']):.3f} | {lgc['kron8x8'] / lgc['exact']:.3f} | "
                f"{corr(ks['default'], ks['exact']):.4f} | {lgc['default'] / lgc['exact']:.4f} |",
                flush=True,
            )


def cost(args: argparse.Namespace) -> None:
    print(f"\n## cost: N={args.cost_n} random 224x224 images, random weights, fp32, CPU")
    print("| model | last conv |W| | default path | fwd+bwd s | sketch s | sketch / fwd+bwd |")
    print("|---|---|---|---|---|---|---|")
    x = torch.randn(args.cost_n, 3, 224, 224)
    y = torch.randint(1000, (args.cost_n,))
    for arch in LARGE_ARCHS:
        torch.manual_seed(0)
        model = create_model(arch, num_classes=1000)
        model.train()
        # warm-up on 2 images, so neither timing pays first-call costs
        F.cross_entropy(model(x[:2]), y[:2]).backward()
        model.zero_grad()
        lgc_sketch(model, x[:2])
        model.train()
        start = time.perf_counter()
        F.cross_entropy(model(x), y).backward()
        fb = time.perf_counter() - start
        model.zero_grad()
        sk = LGCSketcher(model)
        start = time.perf_counter()
        g = lgc_sketch(model, x)
        st = time.perf_counter() - start
        path = "exact" if sk.exact else f"countsketch {sk.dim}"
        print(
            f"| {arch} | {sk.weights} | {path}, output {g.shape[1]} cols | {fb:.2f} | {st:.2f} | "
            f"{st / fb:.2f}x |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="held-out images for the kernels")
    parser.add_argument("--steps", type=int, default=40, help="SGD steps of the trained models")
    parser.add_argument(
        "--lite0-size", type=int, default=96, help="EfficientNet-Lite0 input side (paper: 224)"
    )
    parser.add_argument("--cost-n", type=int, default=16, help="images of the cost comparison")
    parser.add_argument("--archs", nargs="+", default=list(SMALL_ARCHS), choices=SMALL_ARCHS)
    parser.add_argument("--states", nargs="+", default=["random", "trained"])
    parser.add_argument("--skip-cost", action="store_true")
    parser.add_argument("--skip-fidelity", action="store_true")
    args = parser.parse_args()
    print(
        f"# bench_lgc: torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads"
    )
    if not args.skip_fidelity:
        fidelity(args)
    if not args.skip_cost:
        cost(args)


if __name__ == "__main__":
    main()

"""Zoo training figures: training throughput of each mini architecture (fp32 and bf16 autocast) and
the wall time of one mini expert at the mini recipe (optionally: of the whole mini zoo).

    python benchmarks/bench_train.py                 # throughput + one expert (about a minute)
    python benchmarks/bench_train.py --zoo           # + the whole mini zoo, into a temporary store
    python benchmarks/bench_train.py --threads 1     # pin torch's intra-op threads
    python benchmarks/bench_train.py --resnet101 300 # GPU smoke: ResNet-101, 224x224, AMP, 300 steps

Throughput is images per second of full SGD steps (forward, backward, update) on random 32x32
batches, after warm-up steps, median of ``--repeats`` timed windows. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

MINI_ARCHS = ["resnet8", "resnet20", "densenet_mini"]
# the mini recipe proposed for configs/train/mini.yaml
MINI_RECIPE = {
    "epochs": 12,
    "batch_size": 64,
    "lr": 0.02,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "lr_step_epochs": 9,
    "lr_gamma": 0.1,
    "warmup_epochs": 1,
    "per_domain": 600,
    "augment": True,
    "max_per_class": 300,
    "num_workers": 0,
}


def sgd_step(model, opt, x: torch.Tensor, y: torch.Tensor, bf16: bool):
    """One SGD step of cross-entropy on the batch (x, y), under bf16 autocast when asked."""

    def step() -> None:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def throughput(
    arch: str, bf16: bool, channels_last: bool, batch: int, steps: int, repeats: int
) -> float:
    """Images/s of SGD training steps of ``arch`` on random 32x32 batches."""
    from zoo.models import create_model

    torch.manual_seed(0)
    model = create_model(arch, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    step = sgd_step(model, opt, x, y, bf16)
    for _ in range(3):
        step()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(batch * steps / (time.perf_counter() - t0))
    return statistics.median(rates)


def resnet101_throughput(steps: int, batch: int) -> tuple[str, float]:
    """(device, images/s) of ResNet-101 SGD steps at 224x224: bf16 autocast + channels-last on a
    GPU (the paper recipe's setting), fp32 on a CPU; random data, after 5 warm-up steps."""
    from zoo.models import create_model

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    model = create_model("resnet101", 1000).to(device)
    x = torch.randn(batch, 3, 224, 224, device=device)
    y = torch.randint(0, 1000, (batch,), device=device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    step = sgd_step(model, opt, x, y, cuda)
    for _ in range(5):
        step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    name = torch.cuda.get_device_name() if cuda else "cpu"
    return name, batch * steps / (time.perf_counter() - t0)


def train_one(
    zoo_dir: Path, expert_id: str, arch: str, datasets: list[str], kind: str, recipe: dict
) -> dict:
    from zoo.spec import ExpertSpec
    from zoo.store import load_card
    from zoo.train import train_expert

    t0 = time.perf_counter()
    train_expert(
        ExpertSpec(id=expert_id, arch=arch, type=kind, datasets=datasets, recipe=recipe),
        MINI_RECIPE,
        zoo_dir,
        trainer_cfg={"enable_progress_bar": False},
        logger_cfg={"type": "none"},
    )
    card = load_card(expert_id, zoo_dir)
    return {
        "expert": expert_id,
        "wall_s": time.perf_counter() - t0,
        "train_s": card["train_seconds"],
        "eval_s": card["eval_seconds"],
        "steps": card["global_steps"],
        "acc": card["source_accuracy"],
        "precision": card["precision"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--zoo", action="store_true", help="also train the whole mini zoo")
    parser.add_argument("--no-expert", action="store_true", help="throughput only")
    parser.add_argument(
        "--resnet101", type=int, default=0, metavar="STEPS", help="ResNet-101 224x224 smoke only"
    )
    parser.add_argument("--resnet101-batch", type=int, default=128)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resnet101:
        device, rate = resnet101_throughput(args.resnet101, args.resnet101_batch)
        print(f"ResNet-101 224x224 batch {args.resnet101_batch} on {device}: {rate:,.1f} images/s")
        return 0
    import logging

    import zoo.train  # noqa: F401  (imports Lightning, which sets its loggers' level on import)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.2f}")
    print(f"\n### Training throughput (batch {args.batch}, 32x32, images/s)\n")
    print("| arch | fp32 | bf16 autocast | fp32 channels-last | bf16 channels-last |")
    print("|---|---|---|---|---|")
    for arch in MINI_ARCHS:
        rates = [
            throughput(arch, bf16, cl, args.batch, args.steps, args.repeats)
            for cl in (False, True)
            for bf16 in (False, True)
        ]
        print(f"| {arch} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |", flush=True)
    if args.no_expert:
        return 0
    experts = [("resnet8_mini_shapes", "resnet8", ["mini_shapes"], "single", {})]
    if args.zoo:
        from omegaconf import OmegaConf

        zoo_cfg = OmegaConf.load(ROOT / "configs" / "zoo" / "mini.yaml")
        experts = [
            (
                e["id"],
                e["arch"],
                list(e["datasets"]),
                e.get("type", "single"),
                dict(e.get("recipe") or {}),
            )
            for e in zoo_cfg.experts
        ]
    print(f"\n### Mini experts at the mini recipe {MINI_RECIPE}\n")
    print("| expert | wall s | train s | eval s | steps | precision | source accuracy |")
    print("|---|---|---|---|---|---|---|")
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for expert_id, arch, datasets, kind, overrides in experts:
            r = train_one(Path(tmp), expert_id, arch, datasets, kind, overrides)
            total += r["wall_s"]
            acc = ", ".join(f"{k} {100 * v:.1f}" for k, v in r["acc"].items())
            print(
                f"| {r['expert']} | {r['wall_s']:.1f} | {r['train_s']:.1f} | {r['eval_s']:.1f} | "
                f"{r['steps']} | {r['precision']} | {acc} |",
                flush=True,
            )
    print(f"\ntotal wall time: {total:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

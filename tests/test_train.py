"""Expert training: a tiny expert end to end, multi-domain batches, resume, init, the entry point."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import TensorDataset

from core.arrays import class_means, class_sums
from core.config import TrainerConfig, TrainRecipe
from core.io import atomic_write_json, config_hash
from tests.factories import compose
from zoo.card import DomainData
from zoo.models import create_model
from zoo.multidomain import DomainBatchNorm2d
from zoo.spec import (
    ExpertSpec,
    as_schema,
    default_expert_id,
    effective_recipe,
    expert_config_hash,
    spec_from_cli,
    spec_from_zoo,
)
from zoo.store import CARD, load_entry, load_source_profile, load_weights
from zoo.train import (
    CKPT_DIR,
    CKPT_NAME,
    DomainBatchSampler,
    code_mismatch,
    init_backbone,
    lr_factor,
    stored_mismatch,
    train_expert,
    train_zoo_main,
)

SIDE = 16
TRAINER = {"accelerator": "cpu", "precision": "32-true", "enable_progress_bar": False, "devices": 1}
RECIPE = {
    "epochs": 3,
    "batch_size": 8,
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "lr_step_epochs": 1,
    "lr_gamma": 0.5,
    "warmup_epochs": 1,
    "num_workers": 0,
}
ARCH_KW = {"width": 0.25}

# Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]


def _domain(name: str, n_train: int, n_classes: int, seed: int, shift: float = 0.0) -> DomainData:
    """Images whose brightness encodes the class (learnable in a few steps), plus noise."""

    def make(n: int, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(s)
        y = torch.arange(n) % n_classes
        x = torch.randn(n, 3, SIDE, SIDE, generator=g) * 0.5
        x += (y.float() - (n_classes - 1) / 2)[:, None, None, None] + shift
        return x, y

    xtr, ytr = make(n_train, seed)
    xte, yte = make(n_train // 2, seed + 100)
    train = TensorDataset(xtr, ytr)
    return DomainData(
        name=name,
        train=train,
        train_eval=train,
        test=TensorDataset(xte, yte),
        classes=[f"{name}_c{i}" for i in range(n_classes)],
        labels=ytr.numpy(),
    )


def _spec(expert_id="tiny", **kw) -> ExpertSpec:
    return ExpertSpec(id=expert_id, arch="resnet8", datasets=["toy"], arch_kwargs=ARCH_KW, **kw)


def test_lr_factor_matches_hand_values():
    # 10 steps per epoch, 1 warm-up epoch, x0.1 every 2 epochs
    assert lr_factor(0, 10, 1, 2, 0.1) == pytest.approx(0.1)
    assert lr_factor(4, 10, 1, 2, 0.1) == pytest.approx(0.5)
    assert lr_factor(9, 10, 1, 2, 0.1) == pytest.approx(1.0)
    assert lr_factor(19, 10, 1, 2, 0.1) == pytest.approx(1.0)
    assert lr_factor(20, 10, 1, 2, 0.1) == pytest.approx(0.1)
    assert lr_factor(45, 10, 1, 2, 0.1) == pytest.approx(0.01)
    # the paper: no warm-up, x0.1 every 30 epochs
    assert lr_factor(0, 100, 0, 30, 0.1) == 1.0
    assert lr_factor(3000, 100, 0, 30, 0.1) == pytest.approx(0.1)


def test_domain_batch_sampler():
    groups = [np.arange(0, 40), np.arange(40, 46)]  # a large and a small domain
    sampler = DomainBatchSampler(groups, batch_size=4, per_domain=16, seed=3)
    batches = sampler.epoch_batches(0)
    assert len(batches) == len(sampler) == 8  # 16 per domain / 4 per batch, two domains
    counts = {0: 0, 1: 0}
    small_items = []
    for b in batches:
        dom = {0 if i < 40 else 1 for i in b}
        assert len(dom) == 1 and len(b) == 4  # one domain per batch
        counts[dom.pop()] += len(b)
        small_items.extend(i for i in b if i >= 40)
    assert counts == {0: 16, 1: 16}
    assert len(set(b for b in batches[0])) == 4
    # the small domain is drawn with replacement: every image at least twice (2 full copies + 4)
    assert set(small_items) == set(range(40, 46))
    assert min(small_items.count(i) for i in range(40, 46)) >= 2
    # the large one without replacement
    large = [i for b in batches for i in b if i < 40]
    assert len(large) == len(set(large))
    # seeded per epoch
    assert sampler.epoch_batches(0) == DomainBatchSampler(groups, 4, 16, 3).epoch_batches(0)
    assert sampler.epoch_batches(1) != batches
    # resumed iteration skips the used batches
    sampler.set_epoch(1)
    sampler.skip = 3
    assert list(sampler) == sampler.epoch_batches(1)[3:]
    assert list(sampler) == sampler.epoch_batches(1)  # skip applies once
    # two ranks split each global batch (here = the one-device batch of 4): same domain per step
    r0 = DomainBatchSampler(groups, 2, 16, 3, rank=0, world_size=2).epoch_batches(0)
    r1 = DomainBatchSampler(groups, 2, 16, 3, rank=1, world_size=2).epoch_batches(0)
    assert [a + b for a, b in zip(r0, r1)] == batches
    # all images, no per-domain draw (single-domain experts): partial last batch dropped
    full = DomainBatchSampler([np.arange(10)], 4, None, 0)
    assert len(full) == 2 and sorted(i for b in full.epoch_batches(0) for i in b) != list(range(10))


def test_tiny_expert_trains_and_writes_a_complete_card(tmp_path):
    data = [_domain("toy", 32, 4, seed=0)]
    spec = _spec()
    out = train_expert(
        spec, RECIPE, tmp_path, trainer_cfg=TRAINER, logger_cfg={"type": "csv"}, data=data
    )
    assert out == tmp_path / "tiny"
    card = json.loads((out / CARD).read_text())
    for key in (
        "arch", "arch_kwargs", "type", "domains", "input_size", "mean", "std", "recipe",
        "source_accuracy", "train_seconds", "device", "precision", "config_hash", "git_revision",
        "created", "entries", "tensors", "weights_sha256",
    ):  # fmt: skip
        assert key in card, key
    assert card["entries"] == ["tiny"] and card["type"] == "single"
    assert card["domains"][0]["classes"] == data[0].classes
    assert card["global_steps"] == 3 * (32 // 8)
    assert card["precision"] == "32-true" and card["train_seconds"] > 0
    # the weights changed: compare with the same seeded initialisation
    L.seed_everything(0, verbose=False)
    init = create_model("resnet8", 4, **ARCH_KW).state_dict()
    trained = load_weights("tiny", tmp_path).state_dict()
    changed = [k for k in init if k.endswith("weight") and not torch.equal(init[k], trained[k])]
    assert len(changed) == len([k for k in init if k.endswith("weight")])
    # source accuracy and profile against an independent computation with the stored model
    entry = load_entry("tiny", tmp_path)
    xte, yte = data[0].test.tensors
    xtr, ytr = data[0].train.tensors
    with torch.no_grad():
        acc = (entry.model(xte).argmax(1) == yte).float().mean().item()
        feats = entry.model.forward_features(xtr).double().numpy()
    assert card["source_accuracy"]["toy"] == pytest.approx(acc)
    assert card["domains"][0]["source_accuracy"] == pytest.approx(acc)
    means, counts = load_source_profile("tiny", tmp_path)
    ref = np.stack([feats[ytr.numpy() == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(means, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(counts, [8, 8, 8, 8])
    # CSV log written, checkpoint folder removed
    logs = list((out / "logs").rglob("metrics.csv"))
    assert logs and "train/loss" in pd.read_csv(logs[0]).columns
    assert not (out / CKPT_DIR).exists()


def test_multi_bn_expert_trains_one_domain_per_batch(tmp_path):
    data = [_domain("dom_a", 24, 3, seed=1, shift=1.0), _domain("dom_b", 8, 2, seed=2, shift=-1.0)]
    spec = ExpertSpec(
        id="mbn", arch="resnet8", type="multi_bn", datasets=["dom_a", "dom_b"], arch_kwargs=ARCH_KW
    )
    recipe = {**RECIPE, "epochs": 1, "per_domain": 16}
    train_expert(
        spec, recipe, tmp_path, trainer_cfg=TRAINER, logger_cfg={"type": "none"}, data=data
    )
    card = json.loads((tmp_path / "mbn" / CARD).read_text())
    assert card["entries"] == ["mbn@dom_a", "mbn@dom_b"]
    assert [d["num_classes"] for d in card["domains"]] == [3, 2]
    assert card["global_steps"] == 4  # 16 images per domain, batches of 8, two domains
    model = load_weights("mbn", tmp_path)
    # each domain's BN saw exactly its own 2 batches (the small domain with replacement)
    for m in model.modules():
        if isinstance(m, DomainBatchNorm2d):
            assert int(m.bns["dom_a"].num_batches_tracked) == 2
            assert int(m.bns["dom_b"].num_batches_tracked) == 2
            assert not torch.equal(m.bns["dom_a"].running_mean, m.bns["dom_b"].running_mean)
    for d in ("dom_a", "dom_b"):
        assert load_source_profile(f"mbn@{d}", tmp_path)[0].shape == (3 if d == "dom_a" else 2, 16)


class _Interrupt(L.Callback):
    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, *args, **kwargs):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated interruption")


@pytest.mark.parametrize("at_step", [6, 8])  # mid-epoch, and right at an epoch boundary
def test_resume_continues_from_the_checkpoint(tmp_path, at_step):
    data = [_domain("toy", 32, 4, seed=0)]
    spec = _spec()
    kw = {"trainer_cfg": TRAINER, "logger_cfg": {"type": "none"}, "data": data}
    train_expert(spec, RECIPE, tmp_path / "straight", **kw)
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_expert(spec, RECIPE, tmp_path / "resumed", callbacks=[_Interrupt(at_step)], **kw)
    ckpt = tmp_path / "resumed" / "tiny" / CKPT_DIR / CKPT_NAME
    assert ckpt.is_file() and not (tmp_path / "resumed" / "tiny" / CARD).exists()
    saved = torch.load(ckpt, weights_only=True)
    assert saved["global_step"] == at_step
    train_expert(spec, RECIPE, tmp_path / "resumed", **kw)
    a = json.loads((tmp_path / "straight" / "tiny" / CARD).read_text())
    b = json.loads((tmp_path / "resumed" / "tiny" / CARD).read_text())
    assert a["global_steps"] == b["global_steps"] == 12
    wa = load_weights("tiny", tmp_path / "straight").state_dict()
    wb = load_weights("tiny", tmp_path / "resumed").state_dict()
    for k in wa:  # the same batches in the same order from the same state: the same weights
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path):
    data = [_domain("toy", 32, 4, seed=0)]
    kw = {"trainer_cfg": TRAINER, "logger_cfg": {"type": "none"}, "data": data}
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_expert(_spec(), RECIPE, tmp_path, callbacks=[_Interrupt(2)], **kw)
    with pytest.raises(ValueError, match="written by another config"):
        train_expert(_spec(), {**RECIPE, "lr": 0.2}, tmp_path, **kw)
    # the refused checkpoint is kept as it was (not replaced by a fresh one of the new config)
    ckpt = tmp_path / "tiny" / CKPT_DIR / CKPT_NAME
    assert torch.load(ckpt, weights_only=True)["global_step"] == 2


def test_init_and_spec_errors(tmp_path):
    data = [_domain("toy", 16, 4, seed=0)]
    with pytest.raises(ValueError, match="unknown entry 'absent'"):
        train_expert(_spec(init="absent"), RECIPE, tmp_path, trainer_cfg=TRAINER, data=data)
    with pytest.raises(ValueError, match="unknown arch 'resnet9'"):
        ExpertSpec(id="x", arch="resnet9", datasets=["toy"])
    with pytest.raises(ValueError, match="unknown expert type 'multi-bn'"):
        ExpertSpec(id="x", arch="resnet8", type="multi-bn", datasets=["toy"])
    with pytest.raises(ValueError, match="needs at least one source dataset"):
        ExpertSpec(id="x", arch="resnet8", datasets=[])
    # init copies every weight but the head of an existing entry
    train_expert(
        _spec("src"), {**RECIPE, "epochs": 1}, tmp_path, trainer_cfg=TRAINER,
        logger_cfg={"type": "none"}, data=data,
    )  # fmt: skip
    target = create_model("resnet8", 7, **ARCH_KW)
    head_before = target.head.weight.clone()
    init_backbone(target, "src", tmp_path, "resnet8", ARCH_KW)
    source = load_entry("src", tmp_path).model
    assert torch.equal(target.body.layer3[0].conv2.weight, source.body.layer3[0].conv2.weight)
    assert torch.equal(target.body.stem[1].running_var, source.body.stem[1].running_var)
    assert torch.equal(target.head.weight, head_before)
    with pytest.raises(ValueError, match="needs the same architecture"):
        init_backbone(create_model("resnet8", 7), "src", tmp_path, "resnet8", {})


ZOO_OVERRIDES = [
    "logger=none",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.enable_progress_bar=false",
    "train.epochs=1",
    "train.batch_size=16",
    "train.max_per_class=4",
    "train.num_workers=0",
]


def _card(zoo: Path, expert: str) -> dict:
    return json.loads((zoo / expert / CARD).read_text())


def test_train_zoo_main_reuses_only_the_same_expert(tmp_path, capsys):
    zoo = Path(tmp_path) / "zoo"
    overrides = [
        f"paths.out_dir={tmp_path}",
        *ZOO_OVERRIDES,
        "zoo.experts=[{id:tiny,arch:resnet8,datasets:[mini_shapes]},"
        "{id:lite0,arch:efficientnet_lite0,type:pretrained,pretrained:imagenet}]",
    ]
    cfg = compose("train_zoo", overrides)
    train_zoo_main(cfg)
    out = capsys.readouterr().out
    assert "trained  tiny" in out and "imported lite0" in out
    manifest = pd.read_csv(zoo / "manifest.csv")
    assert manifest["entry_id"].tolist() == ["lite0", "tiny"]
    assert manifest.set_index("entry_id").loc["lite0", "num_classes"] == 1000
    first = _card(zoo, "tiny")
    # trained and imported experts get cards of the same fields (one card builder)
    lite0 = _card(zoo, "lite0")
    assert set(lite0) == set(first)
    assert lite0["sources"] == ["imagenet"] and lite0["pretrained"] == "imagenet"
    assert lite0["recipe"] is None and lite0["global_steps"] == 0 and lite0["init"] is None
    assert first["sources"] == ["mini_shapes"] and first["pretrained"] is None
    # the stored hash is the requested expert's: spec, recipe (defaults < train < the expert's
    # own), seed and step cap; num_workers changes speed only and stays out
    spec = ExpertSpec(id="tiny", arch="resnet8", datasets=["mini_shapes"])
    recipe = dict(cfg.train)  # every key: the train config starts from its schema
    del recipe["overwrite"], recipe["num_workers"]
    assert first["config_hash"] == config_hash(
        {"spec": asdict(spec), "recipe": recipe, "seed": 0, "max_steps": -1}
    )
    assert first["config_hash"] == expert_config_hash(spec, {**recipe, "num_workers": 3}, 0, -1)

    # the same config (and another num_workers): both reused
    train_zoo_main(compose("train_zoo", [*overrides, "train.num_workers=1"]))
    out = capsys.readouterr().out
    assert f"skipped  tiny: already in {zoo} (config {first['config_hash']})" in out
    assert "skipped  lite0" in out

    # another recipe under the same id: refused before anything is trained, naming both hashes
    other = compose("train_zoo", [*overrides, "train.lr=0.05"])
    wanted = expert_config_hash(spec, {**recipe, "lr": 0.05}, 0, -1)
    with pytest.raises(ValueError) as info:
        train_zoo_main(other)
    msg = str(info.value)
    assert f"tiny: stored config hash {first['config_hash']}, requested {wanted}" in msg
    assert "lite0" not in msg  # the pretrained expert is the same
    assert "paths.out_name" in msg and "train.overwrite=true" in msg
    assert _card(zoo, "tiny") == first  # untouched

    # train.overwrite=true retrains it and replaces it as a whole
    train_zoo_main(compose("train_zoo", [*overrides, "train.lr=0.05", "train.overwrite=true"]))
    out = capsys.readouterr().out
    assert "retrain  tiny: stored config hash" in out and "trained  tiny" in out
    assert "skipped  lite0" in out
    second = _card(zoo, "tiny")
    assert second["config_hash"] == wanted and second["recipe"]["lr"] == 0.05
    assert second["weights_sha256"] != first["weights_sha256"]
    assert "overwrite" not in second["recipe"]
    load_weights("tiny", zoo)  # weights and card agree (sha256 checked)
    assert [p.name for p in zoo.iterdir() if p.name.startswith(".")] == [".locks"]  # no staging

    # one expert from the command line: derived id <arch>_<dataset>
    cli = compose("train_zoo", overrides[:-1] + ["dataset=mini_shapes", "arch=resnet8"])
    train_zoo_main(cli)
    assert "trained  resnet8_mini_shapes" in capsys.readouterr().out
    card = _card(zoo, "resnet8_mini_shapes")
    assert card["domains"][0]["num_classes"] == 10 and card["recipe"]["max_per_class"] == 4


def test_an_expert_of_a_retrained_init_is_stale(tmp_path, capsys):
    zoo = Path(tmp_path) / "zoo"
    overrides = [
        f"paths.out_dir={tmp_path}",
        *ZOO_OVERRIDES,
        "zoo.experts=[{id:base,arch:resnet8,arch_kwargs:{width:0.25},datasets:[mini_shapes]},"
        "{id:child,arch:resnet8,arch_kwargs:{width:0.25},datasets:[mini_shapes],init:base}]",
    ]
    train_zoo_main(compose("train_zoo", overrides))
    base, child = _card(zoo, "base"), _card(zoo, "child")
    assert child["init_weights_sha256"] == base["weights_sha256"]
    assert base["init_weights_sha256"] is None
    capsys.readouterr()

    # base replaced behind the zoo's back (another run wrote it): child started from other weights
    train_expert(
        ExpertSpec(id="base", arch="resnet8", datasets=["mini_shapes"], arch_kwargs=ARCH_KW),
        {**RECIPE, "epochs": 1, "max_per_class": 4},
        zoo,
        trainer_cfg=TRAINER,
        logger_cfg={"type": "none"},
        data_dir=Path(compose("train_zoo").paths.data_dir).resolve(),
    )
    new_sha = _card(zoo, "base")["weights_sha256"]
    with pytest.raises(ValueError) as info:
        train_zoo_main(compose("train_zoo", overrides))
    msg = str(info.value)
    assert "base: stored config hash" in msg  # another recipe than the zoo's
    assert "child: its init expert 'base' is trained again" in msg

    # overwriting retrains base, then child from the new base
    train_zoo_main(compose("train_zoo", [*overrides, "train.overwrite=true"]))
    out = capsys.readouterr().out
    assert "retrain  base" in out and "retrain  child" in out
    base2, child2 = _card(zoo, "base"), _card(zoo, "child")
    assert base2["weights_sha256"] != new_sha
    assert child2["init_weights_sha256"] == base2["weights_sha256"]
    assert child2["config_hash"] == child["config_hash"]

    # a card that records other init weights than the init's current ones is stale too
    spec = spec_from_zoo(compose("train_zoo", overrides).zoo.experts[1])
    assert stored_mismatch(spec, child2["config_hash"], zoo) is None
    atomic_write_json(zoo / "child" / CARD, {**child2, "init_weights_sha256": "f" * 64})
    why = stored_mismatch(spec, child2["config_hash"], zoo)
    assert why == (
        f"its init expert 'base' was retrained since (weights sha256 {'f' * 12} then, "
        f"{base2['weights_sha256'][:12]} now)"
    )


@pytest.mark.parametrize("zoo_name", ["mini", "mini_large", "paper"])
def test_zoo_configs_parse(zoo_name):
    benchmark = "paper" if zoo_name == "paper" else "mini"
    cfg = compose("train_zoo", [f"benchmark={benchmark}", f"zoo={zoo_name}"])
    specs = [spec_from_zoo(e) for e in cfg.zoo.experts]
    ids = [s.id for s in specs]
    assert len(ids) == len(set(ids))
    sources = set(cfg.benchmark.sources)
    # mini_general: the generalist's data as a domain of multi_bn (the domain baseline)
    extra = {"mini_general"} if zoo_name != "paper" else set()
    for s in specs:
        allowed = sources | (extra if s.type == "multi_bn" else set())
        assert s.type == "pretrained" or set(s.datasets) <= allowed, s
        if s.init:  # an init expert is listed (hence trained) before the expert it initialises
            assert ids.index(s.init) < ids.index(s.id)
    # every configured entry belongs to a listed expert (<expert> or <expert>@<one of its datasets>)
    by_id = {s.id: s for s in specs}
    for entry in cfg.zoo.entries:
        expert, _, domain = entry.partition("@")
        assert expert in by_id, entry
        assert (domain in by_id[expert].datasets) == (
            by_id[expert].type in ("multi_bn", "shared", "adapter")
        )
    # the benchmark's domain baseline is one of the zoo's entries (a multi_bn domain)
    assert cfg.benchmark.domain_baseline in cfg.zoo.entries
    assert cfg.benchmark.domain_baseline.startswith("multi_bn_")
    if zoo_name != "paper":
        assert cfg.benchmark.domain_baseline == "multi_bn_resnet8@mini_general"
        assert by_id["multi_bn_resnet8"].datasets[-1] == "mini_general"
        # the other multi-domain experts keep the five sources
        assert by_id["shared_resnet8"].datasets == by_id["adapter_resnet8"].datasets
        assert set(by_id["shared_resnet8"].datasets) == sources
    else:
        assert cfg.benchmark.domain_baseline == "multi_bn_resnet101@imagenet"
    if zoo_name == "mini":
        kinds = {s.type for s in specs}
        assert kinds == {"single", "multi_bn", "shared", "adapter"}
        assert len({s.arch for s in specs}) >= 2
        generalist = by_id["generalist"]
        assert len(generalist.datasets) >= 2 and not {"mini_mnist", "mini_letters"} & set(
            generalist.datasets
        )
    if zoo_name == "mini_large":
        mini = compose("train_zoo", ["zoo=mini"])
        assert set(mini.zoo.entries) < set(cfg.zoo.entries)
        assert by_id["efficientnet_lite0"].type == "pretrained"


def test_spec_from_the_command_line():
    spec = spec_from_cli(compose("train_zoo", ["dataset=mini_shapes", "arch=densenet_mini"]))
    assert spec.id == "densenet_mini_mini_shapes" and spec.type == "single"
    assert spec.arch_kwargs["block_config"] == [3, 3, 3]
    spec = spec_from_cli(
        compose("train_zoo", ["expert=multi_bn", "datasets=sources", "arch=resnet8"])
    )
    assert spec.id == "multi_bn_resnet8" and spec.type == "multi_bn"
    assert spec.datasets == list(compose("train_zoo").benchmark.sources)
    spec = spec_from_cli(
        compose(
            "train_zoo",
            ["dataset=mini_shapes", "arch=resnet8", "init=generalist", "expert_id=custom"],
        )
    )
    assert spec.id == "custom" and spec.init == "generalist"
    spec = spec_from_cli(compose("train_zoo", ["dataset=mini_shapes", "arch=resnet8", "init=gen"]))
    assert spec.id == "resnet8_mini_shapes+gen"
    with pytest.raises(ValueError, match="needs arch=<name>"):
        spec_from_cli(compose("train_zoo", ["dataset=mini_shapes"]))


def test_class_sums_and_means_match_a_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 7))
    y = rng.integers(0, 6, size=50)
    y[y == 4] = 5  # class 4 absent
    ref = np.zeros((6, 7))
    for row, c in zip(x, y):
        ref[c] += row
    np.testing.assert_allclose(class_sums(x, y, 6), ref, rtol=1e-12, atol=1e-12)
    means, counts = class_means(x, y, 6)
    np.testing.assert_array_equal(counts, [np.sum(y == c) for c in range(6)])
    for c in range(6):
        expected = x[y == c].mean(0) if counts[c] else np.zeros(7)
        np.testing.assert_allclose(means[c], expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="labels must lie in 0..5"):
        class_sums(x, np.full(50, 6), 6)
    with pytest.raises(ValueError, match="values \\(N, D\\) and labels \\(N,\\)"):
        class_sums(x, y[:10], 6)


def test_recipe_and_trainer_settings_come_from_the_schemas():
    # missing keys take the schema's defaults; an expert's own overrides come last
    spec = ExpertSpec(id="x", arch="resnet8", datasets=["toy"], recipe={"epochs": 4})
    recipe = effective_recipe(spec, {"lr": 0.5, "epochs": 9})
    expected = asdict(TrainRecipe(lr=0.5, epochs=4))
    del expected["overwrite"]
    assert recipe == expected
    # a composed config node reads as the typed object
    node = compose("train_zoo", ["train.lr=0.3"]).train
    assert as_schema(node, TrainRecipe, "train") == TrainRecipe(**dict(node))
    assert as_schema(None, TrainerConfig, "trainer") == TrainerConfig()
    with pytest.raises(ValueError, match="bad trainer config: .*precison.*known keys: accelerator"):
        as_schema({"precison": "32-true"}, TrainerConfig, "trainer config")
    with pytest.raises(ValueError, match="bad train recipe: .*epochs"):
        effective_recipe(spec, {"epochs": "many"})
    with pytest.raises(ValueError, match="unknown recipe keys \\['overwrite'\\]"):
        ExpertSpec(id="x", arch="resnet8", datasets=["toy"], recipe={"overwrite": True})
    with pytest.raises(ValueError, match="trainer.max_steps must be -1"):
        train_expert(_spec(), RECIPE, "unused", trainer_cfg={**TRAINER, "max_steps": 0})


def test_one_expert_id_rule():
    assert default_expert_id("resnet8", "single", ["a"]) == "resnet8_a"
    assert default_expert_id("resnet8", "single", ["a", "b"], "gen") == "resnet8_a+b+gen"
    assert default_expert_id("resnet8", "multi_bn", ["a", "b"]) == "multi_bn_resnet8"
    # a zoo entry without an id and the command line name an expert alike
    zoo = spec_from_zoo({"arch": "resnet8", "datasets": ["mini_shapes"], "init": "gen"})
    cli = compose("train_zoo", ["dataset=mini_shapes", "arch=resnet8", "init=gen"])
    assert zoo.id == spec_from_cli(cli).id == "resnet8_mini_shapes+gen"
    assert zoo.init_expert == "gen"
    assert ExpertSpec(id="y", arch="resnet8", datasets=["a"], init="m@a").init_expert == "m"
    with pytest.raises(ValueError, match="takes no init"):
        ExpertSpec(id="p", arch="efficientnet_lite0", type="pretrained", init="gen")


def test_code_mismatch_rule():
    a, b = "a" * 40, "b" * 40
    assert code_mismatch(a, a) is None and code_mismatch(a + "+dirty", a) is None
    assert code_mismatch("unknown", a) is None and code_mismatch(a, "unknown") is None
    assert code_mismatch(a, b) == f"revision {a}, this code is {b}"
    assert code_mismatch(None, a) == f"it records no code revision, this code is {a}"


def test_resume_refuses_a_checkpoint_of_other_code(tmp_path, monkeypatch):
    import zoo.train

    data = [_domain("toy", 32, 4, seed=0)]
    kw = {"trainer_cfg": TRAINER, "logger_cfg": {"type": "none"}, "data": data}
    monkeypatch.setattr(zoo.train, "git_revision", lambda: "a" * 40 + "+dirty")
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_expert(_spec(), RECIPE, tmp_path, callbacks=[_Interrupt(2)], **kw)
    ckpt = tmp_path / "tiny" / CKPT_DIR / CKPT_NAME
    assert torch.load(ckpt, weights_only=True)["zoobench_git_revision"] == "a" * 40 + "+dirty"
    # the same config at another commit: refused like another config, with the way out
    monkeypatch.setattr(zoo.train, "git_revision", lambda: "b" * 40)
    with pytest.raises(
        ValueError,
        match=rf"written by other code \(revision a{{40}}\+dirty, this code is b{{40}}\).*"
        rf"delete {tmp_path / 'tiny' / CKPT_DIR} \(its \.ckpt folder\) to start this expert over",
    ):
        train_expert(_spec(), RECIPE, tmp_path, **kw)
    assert torch.load(ckpt, weights_only=True)["global_step"] == 2  # kept as it was
    # a checkpoint of older code, which recorded no revision, is refused too
    state = torch.load(ckpt, weights_only=True)
    del state["zoobench_git_revision"]
    torch.save(state, ckpt)
    with pytest.raises(ValueError, match="records no code revision.*start this expert over"):
        train_expert(_spec(), RECIPE, tmp_path, **kw)
    # the same commit (uncommitted changes are not seen) resumes and finishes
    monkeypatch.setattr(zoo.train, "git_revision", lambda: "a" * 40)
    state["zoobench_git_revision"] = "a" * 40 + "+dirty"
    torch.save(state, ckpt)
    train_expert(_spec(), RECIPE, tmp_path, **kw)
    assert json.loads((tmp_path / "tiny" / CARD).read_text())["global_steps"] == 12


def test_resume_wraps_a_state_dict_that_does_not_fit(tmp_path):
    data = [_domain("toy", 32, 4, seed=0)]
    kw = {"trainer_cfg": TRAINER, "logger_cfg": {"type": "none"}, "data": data}
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_expert(_spec(), RECIPE, tmp_path, callbacks=[_Interrupt(2)], **kw)
    ckpt = tmp_path / "tiny" / CKPT_DIR / CKPT_NAME
    state = torch.load(ckpt, weights_only=True)
    # a parameter renamed by a later commit (same config hash, same revision recorded)
    state["state_dict"] = {
        k.replace("model.head.", "model.classifier."): v for k, v in state["state_dict"].items()
    }
    torch.save(state, ckpt)
    with pytest.raises(
        ValueError,
        match=r"(?s)does not fit the model \(Error\(s\) in loading state_dict.*model\.classifier\.weight"
        r".*delete .*\.ckpt \(its \.ckpt folder\) to start this expert over",
    ):
        train_expert(_spec(), RECIPE, tmp_path, **kw)

"""The bad-input catalogue: every public entry point and API given wrong input, and what it says.

One table, :data:`CASES`, one row per case: an id, the error expected, fragments that must all
appear in its message (what is wrong, and what would be valid), and the call. The table is meant to
be read: scan the ids and fragments to see how zoobench answers a mistake. Cases that go through a
command line (``analyze.py``) expect :class:`ExitStatus`: the process exits with status 2 and
prints the message, with no traceback.

Hydra's own messages (config typos, unknown group options) name the key or option; for an unknown
option they list the available ones, for a misspelt key they name the schema the key is missing
from (Hydra does not list its keys).
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException, MissingConfigException

import finetune.sweep as ft_sweep
import selection
import zoo.spec as zoo_spec
from core import keys
from selection import checks
from tests.factories import compose, run_entry, save_tiny_expert
from zoo import data as datasets
from zoo import models, samplers, store
from zoo.data import DatasetNotFoundError

# ---------------------------------------------------------------------------------------- helpers


class ExitStatus(Exception):
    """An entry point exited with a status and a message instead of raising."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"exit status {status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Case:
    id: str
    error: type[BaseException]
    fragments: tuple[str, ...]
    call: Callable[[Any], object]


def case(id: str, error: type[BaseException], fragments: str | tuple[str, ...], call) -> Any:
    fragments = (fragments,) if isinstance(fragments, str) else fragments
    return pytest.param(Case(id, error, fragments, call), id=id)


GT = "target,entry,acc\nt1,a,80\nt1,b,70\nt2,a,60\nt2,b,65\n"
SCORES = "target,entry,method,score\nt1,a,m,1\nt1,b,m,2\nt2,a,m,3\nt2,b,m,0\n"
RUNS = "target,entry,lr,seed,test_acc\n" + "".join(
    f"{t},{e},0.1,{s},{a}\n" for t, e, a in (("t1", "a", 80), ("t1", "b", 70), ("t2", "a", 60), ("t2", "b", 65))
    for s in (0, 1)
)  # fmt: skip


def analyze(ctx, gt: str | bytes | None, scores: str | bytes | None, *extra: str, cli=False):
    """Run analyze.py in bring-your-own mode on the given CSV texts (None: no such file).

    In this process (``analyze_main`` on the composed config, as the entry point calls it), or with
    ``cli=True`` as a subprocess ``python analyze.py gt=... scores=... out=...``.
    """
    folder = ctx.tmp / f"byo{next(ctx.counter)}"
    folder.mkdir()
    paths = []
    for name, text in (("gt.csv", gt), ("scores.csv", scores)):
        path = folder / name
        if text is not None:
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
        paths.append(path)
    overrides = [f"gt={paths[0]}", f"scores={paths[1]}", f"out={folder / 'report'}", *extra]
    overrides += ["analysis.bootstrap=10", "logger=none"]
    if cli:
        proc = run_entry("analyze.py", overrides, cwd=folder)
        if proc.returncode:
            raise ExitStatus(proc.returncode, proc.stderr)
        return proc.stdout
    from analysis.main import analyze_main

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            analyze_main(compose("analyze", overrides))
    except SystemExit as e:
        raise ExitStatus(int(e.code), err.getvalue()) from None
    return None


def features(n: int = 12, d: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


LABELS = np.repeat([0, 1, 2], 4)
PROBS = np.full((12, 5), 0.2)


def with_nan(x: np.ndarray, value: float = np.nan) -> np.ndarray:
    x = x.copy()
    x[3, 1] = value
    return x


def score(name: str, **inputs):
    from selection import score as _score

    return _score(name, **inputs)


def load_entry(ctx, entry: str):
    from zoo.store import load_entry as _load

    return _load(entry, ctx.zoo)


def finetune(ctx, *overrides: str):
    from finetune.sweep import finetune_main

    return finetune_main(
        compose(
            "finetune", [f"paths.out_dir={ctx.tmp / 'ft'}", f"paths.zoo_dir={ctx.zoo}", *overrides]
        )
    )


def evaluate(ctx, *overrides: str, zoo: Path | None = None):
    from selection.evaluate import evaluate_selection_main

    base = [
        f"paths.out_dir={ctx.tmp / 'sel'}",
        f"paths.zoo_dir={zoo or ctx.zoo}",
        "zoo.experts=[{id:tiny_a}]",
        "zoo.entries=null",
        "target=mini_polygons",
        "shots=5",
        "method=lfc",
        "trainer.accelerator=cpu",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        return evaluate_selection_main(compose("evaluate_selection", [*base, *overrides]))


def train(ctx, *overrides: str):
    from zoo.train import train_zoo_main

    return train_zoo_main(
        compose("train_zoo", [f"paths.out_dir={ctx.tmp / 'train'}", "logger=none", *overrides])
    )


def finetune_run(ctx, entry: str, target: str = "mini_polygons", shots: Any = 5, **settings):
    from finetune.run import FinetunePaths, FinetuneSettings, finetune_run

    return finetune_run(
        entry,
        target,
        shots,
        0.1,
        0,
        FinetuneSettings(**{"epochs": 0, "min_steps": 1, "num_workers": 0, **settings}),
        FinetunePaths(zoo_dir=ctx.zoo, finetune_dir=ctx.tmp / "ft1", data_dir=ctx.tmp / "nodata"),
        write=False,
    )


def extractor(ctx, **settings):
    from core.config import SelectionConfig
    from selection.extract import Extractor, ExtractSettings

    accelerator = settings.pop("accelerator", "auto")
    return Extractor(
        ExtractSettings(
            ctx.zoo,
            ctx.tmp / "nodata",
            ctx.tmp / "cache",
            selection=SelectionConfig(**settings),
            accelerator=accelerator,
        )
    )


class _Pickled:
    def __reduce__(self):
        return (print, ("unpickled",))


# ---------------------------------------------------------------------------------------- the zoo


def _edit_card(zoo: Path, expert: str, **changes) -> None:
    path = zoo / expert / "card.json"
    card = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    path.write_text(json.dumps(card))


def _copy(zoo: Path, expert: str) -> Path:
    shutil.copytree(zoo / "tiny_a", zoo / expert)
    _edit_card(zoo, expert, expert_id=expert, entries=[expert])
    return zoo / expert / "weights.safetensors"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """A zoo with one good expert (tiny_a: ResNet-8, 16 features, 5 classes) and broken copies."""
    import itertools

    tmp = tmp_path_factory.mktemp("bad")
    zoo = tmp / "zoo"
    save_tiny_expert(zoo, "tiny_a", seed=0)
    blob = (zoo / "tiny_a" / "weights.safetensors").read_bytes()

    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    _copy(zoo, "flipped").write_bytes(bytes(flipped))
    _copy(zoo, "truncated").write_bytes(blob[: len(blob) // 3])
    _copy(zoo, "truncated_nosha").write_bytes(blob[: len(blob) // 3])
    _edit_card(zoo, "truncated_nosha", weights_sha256=None)
    _copy(zoo, "pickled").write_bytes(pickle.dumps({"head.weight": _Pickled()}))
    _edit_card(zoo, "pickled", weights_sha256=None)
    _copy(zoo, "torch_saved")
    torch.save({"head.weight": torch.zeros(5, 16)}, zoo / "torch_saved" / "weights.safetensors")
    _edit_card(zoo, "torch_saved", weights_sha256=None)
    _copy(zoo, "no_weights").unlink()
    # cards that do not describe their weights
    _copy(zoo, "wrong_classes")
    card = json.loads((zoo / "tiny_a" / "card.json").read_text())
    _edit_card(zoo, "wrong_classes", domains=[{**card["domains"][0], "num_classes": 7}])
    _copy(zoo, "wrong_tensors")
    _edit_card(zoo, "wrong_tensors", tensors={**card["tensors"], "head.weight": [7, 16]})
    _copy(zoo, "wrong_arch")
    _edit_card(zoo, "wrong_arch", arch="resnet20")
    _copy(zoo, "no_profile")
    (zoo / "no_profile" / "source_profile.npz").unlink()
    (tmp / "empty_zoo").mkdir()
    return SimpleNamespace(tmp=tmp, zoo=zoo, empty=tmp / "empty_zoo", counter=itertools.count())


# ---------------------------------------------------------------------------------------- the table

V = ValueError
CASES = [
    # ---- datasets and samplers
    case("dataset: unknown name", V, ("unknown dataset 'imagenet21k'", "known:", "mini_digits", "dtd"),
         lambda c: datasets.get_info("imagenet21k")),
    case("dataset: unknown split", V, ("unknown split 'valid'", "valid: train, test"),
         lambda c: datasets.load_split("mini_digits", "valid")),
    case("dataset: unknown benchmark filter", V, ("unknown benchmark 'huge'", "valid: paper, mini"),
         lambda c: datasets.available_datasets(benchmark="huge")),
    case("dataset: paper data directory missing", DatasetNotFoundError,
         ("dataset 'dtd' is not prepared", "nodata/dtd", "python scripts/prepare_data.py dtd"),
         lambda c: datasets.load_split("dtd", "train", c.tmp / "nodata")),
    case("dataset: CIFAR-style batch that is a code-running pickle", V,
         ("unsafe or corrupted pickle", "data_batch_1", "refusing to unpickle builtins.print"),
         lambda c: _cifar_pickle(c)),
    case("shots: larger than a class", V,
         ("class 1 has only 3 training images, fewer than shots=5", "use shots <= 3 or shots='full'"),
         lambda c: samplers.shot_indices(np.array([0] * 9 + [1] * 3), 5, 0)),
    case("shots: not a number", V, ("invalid shots value 'five'", "'full' or a positive integer"),
         lambda c: samplers.shot_indices(np.array([0, 1]), "five", 0)),
    case("shots: negative labels", V, ("non-negative", "-1"),
         lambda c: samplers.shot_indices(np.array([0, -1]), 1, 0)),
    case("selection subset: per_class 0", V, ("per_class must be a positive integer", "0"),
         lambda c: samplers.selection_indices(np.array([0, 1]), 0, 0)),
    # ---- models and the expert store
    case("arch: unknown", V, ("unknown arch 'resnet9'", "known:", "resnet8", "resnet101"),
         lambda c: models.create_model("resnet9", 10)),
    case("entry: unknown", V, ("unknown entry 'tiny_z'", "known:", "tiny_a"),
         lambda c: load_entry(c, "tiny_z")),
    case("entry: unknown domain of an expert", V, ("unknown entry 'tiny_a@d9'", "known:", "tiny_a"),
         lambda c: load_entry(c, "tiny_a@d9")),
    case("entry: empty zoo", V, ("unknown entry 'tiny_a'", "(empty zoo)"),
         lambda c: store.load_entry("tiny_a", c.empty)),
    case("weights: a flipped byte", V, ("corrupted weights file", "flipped/weights.safetensors", "sha256 differs from the card"),
         lambda c: load_entry(c, "flipped")),
    case("weights: truncated (checksum in the card)", V, ("corrupted weights file", "truncated/weights.safetensors"),
         lambda c: load_entry(c, "truncated")),
    case("weights: truncated (no checksum)", V, ("cannot read weights file", "truncated_nosha", "corrupted or not safetensors"),
         lambda c: load_entry(c, "truncated_nosha")),
    case("weights: a pickle instead of safetensors", V, ("cannot read weights file", "pickled", "not safetensors"),
         lambda c: load_entry(c, "pickled")),
    case("weights: a torch.save file instead of safetensors", V, ("cannot read weights file", "torch_saved", "not safetensors"),
         lambda c: load_entry(c, "torch_saved")),
    case("weights: file missing", V, ("weights file missing", "no_weights/weights.safetensors"),
         lambda c: load_entry(c, "no_weights")),
    case("card: class count does not match the weights", V,
         ("does not fit arch 'resnet8' (single)", "wrong shape ['head.bias', 'head.weight']"),
         lambda c: load_entry(c, "wrong_classes")),
    case("card: tensor list does not match the weights", V,
         ("wrong_tensors/weights.safetensors does not match its card", "differing tensors ['head.weight']"),
         lambda c: load_entry(c, "wrong_tensors")),
    case("card: architecture does not match the weights", V,
         ("does not fit arch 'resnet20'", "missing ["), lambda c: load_entry(c, "wrong_arch")),
    case("source profile: missing", V, ("source profile missing", "no_profile/source_profile.npz"),
         lambda c: store.load_source_profile("no_profile", c.zoo)),
    # ---- selection scores (the Python API)
    case("score: unknown method", V, ("unknown selection method 'lfcc'", "known:", "lfc", "logme"),
         lambda c: score("lfcc", features=features(), labels=LABELS)),
    case("score: unknown parameter", V, ("method 'gbc' got unknown parameters ['pca_dims']", "its parameters: ['covariance', 'pca_dim', 'seed']"),
         lambda c: score("gbc", features=features(), labels=LABELS, pca_dims=8)),
    case("score: a needed input missing", V, ("method 'leep' needs ['probs', 'labels']", "missing: ['probs']"),
         lambda c: score("leep", features=features(), labels=LABELS)),
    case("features: NaN", V, ("features contains NaN or inf", "[[3, 1]]"),
         lambda c: score("lfc", features=with_nan(features()), labels=LABELS)),
    case("features: inf", V, ("features contains NaN or inf", "[[3, 1]]"),
         lambda c: score("logme", features=with_nan(features(), np.inf), labels=LABELS)),
    case("grads: NaN", V, ("grads contains NaN or inf",),
         lambda c: score("lgc", grads=with_nan(features()), labels=LABELS)),
    case("features: not numeric", V, ("features must be a numeric 2-D array", "list"),
         lambda c: score("lfc", features=[["a", "b"], ["c", "d"]], labels=np.array([0, 1]))),
    case("features: 1-D", V, ("features must be a 2-D array (N x D)", "got shape (12,)"),
         lambda c: score("lfc", features=features()[:, 0], labels=LABELS)),
    case("features: empty", V, ("features is empty (shape (0, 4))", "need at least one sample"),
         lambda c: score("lfc", features=np.zeros((0, 4)), labels=np.zeros(0, int))),
    case("labels: length differs from features", V, ("inputs disagree on the number of samples N", "'features': 12", "'labels': 11"),
         lambda c: score("lfc", features=features(), labels=LABELS[:11])),
    case("probe features: length differs", V, ("inputs disagree on the number of samples N", "'probe_features': 5"),
         lambda c: score("rsa", features=features(), probe_features=features(5, 3))),
    case("labels: a single class", V, ("labels have a single class ([0])", "need at least 2 classes"),
         lambda c: score("lfc", features=features(), labels=np.zeros(12, int))),
    case("labels: not integers", V, ("labels must be integers", "float64"),
         lambda c: score("lfc", features=features(), labels=LABELS + 0.5)),
    case("labels: negative", V, ("labels must be non-negative", "minimum -1"),
         lambda c: score("lfc", features=features(), labels=LABELS - 1)),
    case("labels: 2-D", V, ("labels must be a 1-D array (N,)", "(12, 1)"),
         lambda c: score("lfc", features=features(), labels=LABELS[:, None])),
    case("probs: rows do not sum to one", V, ("probs must be row-wise probabilities", "row 0 sums to 2", "softmax"),
         lambda c: score("leep", probs=PROBS * 2, labels=LABELS)),
    case("probs: negative entries (logits passed)", V, ("probs must be row-wise probabilities", "negative entry", "softmax"),
         lambda c: score("nce", probs=PROBS - 0.3, labels=LABELS)),
    case("one sample in a class (covariance needs two)", V, ("hscore needs at least 2 samples per class", "classes [3]"),
         lambda c: score("hscore", features=features(), labels=np.r_[LABELS[:-1], 3])),
    case("N < components: NLEEP with 5 per class", V, ("nleep fits 5 x 6 = 30 mixture components", "got N=12", "components_per_class <= 2"),
         lambda c: score("nleep", features=features(), labels=np.arange(12) % 6)),
    case("N = classes: PARC has no same-class pair", V, ("parc needs a class with at least 2 samples",),
         lambda c: score("parc", features=features(), labels=np.arange(12))),
    case("sample cap below the class count", V, ("sample cap 20 is smaller than the number of classes 50", "use a cap >= 50"),
         lambda c: checks.stratified_cap(np.arange(100) % 50, 20, 0)),
    case("source profile: other feature dimension", V, ("source_profile means have D=5 but features have D=4",),
         lambda c: score("domain_similarity", features=features(), labels=LABELS, source_profile=(np.ones((3, 5)), np.full(3, 10)))),
    case("source profile: negative counts", V, ("source_profile counts must be finite and non-negative", "classes [0, 1, 2]"),
         lambda c: score("domain_similarity", features=features(), labels=LABELS, source_profile=(np.ones((3, 4)), -np.ones(3)))),
    case("score parameter out of range", V, ("transrate eps must be > 0", "got 0"),
         lambda c: score("transrate", features=features(), labels=LABELS, eps=0)),
    case("score option unknown", V, ("gbc covariance must be 'diagonal' or 'spherical'", "'full'"),
         lambda c: score("gbc", features=features(), labels=LABELS, covariance="full")),
    case("register a method with an unknown input", V, ("method 'mine' needs unknown inputs ['feature']", "valid inputs:", "'features'"),
         lambda c: selection.register_method("mine", needs=("feature",))),
    # ---- extraction and evaluate_selection
    case("extract: unknown accelerator", V, ("unknown accelerator 'tpu'", "known: auto, cpu, gpu, cuda, mps"),
         lambda c: extractor(c, accelerator="tpu")),
    case("extract: per_class 0", V, ("selection setting per_class must be a positive integer", "0"),
         lambda c: extractor(c, per_class=0)),
    case("extract: shots larger than a class", V, ("fewer than shots=500", "use shots <= 100"),
         lambda c: extractor(c).samples("mini_polygons", 500, 0)),
    case("evaluate_selection: empty zoo", V, ("empty zoo: no expert in", "empty_zoo", "train the zoo first (python train_zoo.py)"),
         lambda c: evaluate(c, zoo=c.empty)),
    case("evaluate_selection: expert of the config not in the store", V,
         ("experts ['nobody'] of the zoo config are not in the store", "stored: flipped", "tiny_a"),
         lambda c: evaluate(c, "zoo.experts=[{id:tiny_a},{id:nobody}]")),
    case("evaluate_selection: unknown target", V, ("unknown dataset 'nope'", "known:", "mini_polygons"),
         lambda c: evaluate(c, "target.name=nope")),
    case("evaluate_selection: paper target not prepared", DatasetNotFoundError,
         ("dataset 'dtd' is not prepared", "python scripts/prepare_data.py dtd"),
         lambda c: evaluate(c, "target=dtd", f"paths.data_dir={c.tmp / 'nodata'}")),
    case("evaluate_selection: unknown method parameter", V, ("method 'lfc' has no parameters ['foo']",),
         lambda c: evaluate(c, "+method.foo=1")),
    # ---- fine-tuning
    case("finetune: empty zoo", V, ("no zoo entries to fine-tune", "stored: none", "train the zoo first"),
         lambda c: finetune(c, f"paths.zoo_dir={c.empty}", "target=mini_polygons", "shots=5")),
    case("finetune: empty zoo, no entry list", V, ("no zoo entries to fine-tune", "stored: none", "train the zoo first"),
         lambda c: finetune(c, f"paths.zoo_dir={c.empty}", "target=mini_polygons", "shots=5", "zoo.entries=null")),
    case("finetune: unknown entry", V, ("unknown zoo entries ['nope']", "known:", "tiny_a"),
         lambda c: finetune(c, "target=mini_polygons", "shots=5", "entry=nope")),
    case("finetune: shots larger than a class", V, ("class 0 has only 100 training images, fewer than shots=500", "use shots <= 100"),
         lambda c: finetune_run(c, "tiny_a", shots=500)),
    case("finetune: paper target not prepared", DatasetNotFoundError, ("dataset 'dtd' is not prepared", "prepare_data.py dtd"),
         lambda c: finetune_run(c, "tiny_a", target="dtd")),
    case("finetune: corrupted weights", V, ("corrupted weights file", "flipped"),
         lambda c: finetune_run(c, "flipped")),
    case("finetune: invalid shots", V, ("invalid shots value 'many'", "valid: 'full' or a positive integer"),
         lambda c: keys.parse_shots("many")),
    case("finetune: negative learning rate", V, ("invalid learning rate -0.1", "finite number >= 0"),
         lambda c: keys.format_lr(-0.1)),
    case("finetune: no training steps", V, ("invalid schedule epochs=0, min_steps=0", "at least one > 0"),
         lambda c: finetune_run(c, "tiny_a", min_steps=0)),
    case("finetune: unknown precision", V, ("unknown precision 'fp8'", "known: auto, 32, 32-true, bf16-mixed, 16-mixed"),
         lambda c: finetune_run(c, "tiny_a", precision="fp8")),
    case("finetune: empty learning-rate grid", V, ("empty lrs: nothing to fine-tune",),
         lambda c: ft_sweep.plan_runs(["t"], [5], ["e"], [], [0])),
    # ---- zoo training
    case("train_zoo: unknown arch", V, ("unknown arch 'resnet9'", "known:", "resnet8"),
         lambda c: train(c, "dataset=mini_polygons", "+arch.name=resnet9")),
    case("train_zoo: no arch", V, ("train_zoo.py needs arch=<name>", "known:", "resnet8"),
         lambda c: train(c, "dataset=mini_polygons")),
    case("train_zoo: unknown dataset", V, ("unknown dataset 'foo'", "known:", "mini_shapes"),
         lambda c: train(c, "+dataset.name=foo", "arch=resnet8")),
    case("train_zoo: paper source not prepared", DatasetNotFoundError, ("dataset 'dtd' is not prepared", "prepare_data.py dtd"),
         lambda c: train(c, "dataset=dtd", "arch=resnet8", f"paths.data_dir={c.tmp / 'nodata'}")),
    case("train_zoo: unknown expert type", V, ("unknown expert type 'multi-bn'", "known: single, shared, multi_bn, adapter, pretrained"),
         lambda c: zoo_spec.ExpertSpec(id="x", arch="resnet8", type="multi-bn", datasets=["mini_shapes"])),
    # ---- configs (Hydra composition)
    case("config: misspelt key", ConfigCompositionException, ("Could not override 'finetune.epoch'", "Key 'epoch' not in 'FinetuneSettings'"),
         lambda c: compose("finetune", ["finetune.epoch=3"])),
    case("config: misspelt trainer key", ConfigCompositionException, ("Could not override 'trainer.acelerator'", "not in 'TrainerConfig'"),
         lambda c: compose("train_zoo", ["trainer.acelerator=cpu"])),
    case("config: wrong value type", ConfigCompositionException, ("train.epochs=many", "could not be converted to Integer"),
         lambda c: compose("train_zoo", ["train.epochs=many"])),
    case("config: unknown launcher option", MissingConfigException, ("Could not find 'launcher/slurmm'", "joblib", "local", "slurm", "submitit_local"),
         lambda c: compose("finetune", ["launcher=slurmm"])),
    case("config: unknown target option", MissingConfigException, ("Could not find 'target/dtdd'", "Available options in 'target'", "dtd"),
         lambda c: compose("finetune", ["target=dtdd"])),
    case("config: unknown method option", MissingConfigException, ("Could not find 'method/lfcc'", "lfc_centered"),
         lambda c: compose("evaluate_selection", ["method=lfcc"])),
    case("config: unknown arch option", MissingConfigException, ("Could not find 'arch/resnet9'", "resnet8"),
         lambda c: compose("train_zoo", ["arch=resnet9"])),
    case("config: unknown benchmark", MissingConfigException, ("Could not find 'benchmark/huge'", "mini", "paper"),
         lambda c: compose("analyze", ["benchmark=huge"])),
    # ---- analyze.py, bring-your-own tables (exit status 2, a message, no traceback)
    case("analyze CLI: empty gt CSV", ExitStatus, ("exit status 2", "gt table", "is empty", "header row"),
         lambda c: analyze(c, "", SCORES, cli=True)),
    case("analyze CLI: scores lack a column", ExitStatus, ("exit status 2", "lacks column(s) ['method']", "required: target, entry, method, score"),
         lambda c: analyze(c, GT, "target,entry,score\nt1,a,1\n", cli=True)),
    case("analyze: header but no rows", ExitStatus, ("has a header (target, entry, acc) but no rows",),
         lambda c: analyze(c, "target,entry,acc\n", SCORES)),
    case("analyze: malformed CSV", ExitStatus, ("gt table", "is malformed", "EOF inside string"),
         lambda c: analyze(c, 'target,entry,acc\nt1,"a,80\n', SCORES)),
    case("analyze: binary file as CSV", ExitStatus, ("scores table", "is malformed", "can't decode"),
         lambda c: analyze(c, GT, b"\x89PNG\r\n\x1a\n\x00\x00")),
    case("analyze: gt lacks acc", ExitStatus, ("lacks column(s) ['acc']", "found columns ['target', 'entry', 'accuracy']", "required: target, entry, acc"),
         lambda c: analyze(c, "target,entry,accuracy\nt1,a,80\n", SCORES)),
    case("analyze: NaN accuracy", ExitStatus, ("NaN (missing) values in column 'acc' at rows 2", "target=t1 entry=b"),
         lambda c: analyze(c, GT.replace("t1,b,70", "t1,b,"), SCORES)),
    case("analyze: text accuracy", ExitStatus, ("non-numeric values in column 'acc' at rows 2", "'high'"),
         lambda c: analyze(c, GT.replace("t1,b,70", "t1,b,high"), SCORES)),
    case("analyze: accuracy out of range", ExitStatus, ("accuracies outside [0, 100] in column 'acc' at rows 2", "170.0", "percentages"),
         lambda c: analyze(c, GT.replace("t1,b,70", "t1,b,170"), SCORES)),
    case("analyze: infinite score", ExitStatus, ("infinite values in column 'score' at rows 2",),
         lambda c: analyze(c, GT, SCORES.replace("t1,b,m,2", "t1,b,m,inf"))),
    case("analyze: duplicate rows", ExitStatus, ("duplicate rows (same target, entry): target=t1, entry=a at rows 1, 5",),
         lambda c: analyze(c, GT + "t1,a,81\n", SCORES)),
    case("analyze: entry scored but without ground truth", ExitStatus,
         ("entries in the scores but not in the ground truth", "target=t2 shots=all method=m: c", "entries in the ground truth: target=t2 shots=all: a, b"),
         lambda c: analyze(c, GT, SCORES.replace("t2,b,m,0", "t2,c,m,0"))),
    case("analyze: target scored but without ground truth", ExitStatus,
         ("cells with no ground truth: target=t3", "ground truth has: target=t1 shots=all, target=t2 shots=all"),
         lambda c: analyze(c, GT, SCORES.replace("t2,", "t3,"))),
    case("analyze: unknown baseline", ExitStatus, ("unknown baseline 'zzz'", "valid entries: a, b"),
         lambda c: analyze(c, GT, SCORES, "baseline=zzz")),
    case("analyze: gt file missing", ExitStatus, ("gt table", "does not exist"),
         lambda c: analyze(c, None, SCORES)),
    case("analyze: shots in one table only", ExitStatus, ("the gt table has a shots column but the scores table does not",),
         lambda c: analyze(c, GT.replace("target,entry", "target,shots,entry").replace("t1,", "t1,5,").replace("t2,", "t2,5,"), SCORES)),
    case("analyze: invalid shots", ExitStatus, ("invalid shots value -3", "'full' or a positive integer"),
         lambda c: analyze(c, "target,shots,entry,acc\nt1,-3,a,80\n", "target,shots,entry,method,score\nt1,-3,a,m,1\n")),
    case("analyze: fractions mixed with percentages", ExitStatus,
         ("mixes fractions and percentages in column 'acc'", "3 values above 1 and 1 in (0, 1]",
          "row 4 (target=t2, entry=b, acc=0.65)", "all percentages in [0, 100] or all fractions in [0, 1]"),
         lambda c: analyze(c, GT.replace("t2,b,65", "t2,b,0.65"), SCORES)),
    case("analyze: runs table mixing fractions and percentages", ExitStatus,
         ("mixes fractions and percentages in column 'test_acc'", "row 2 (target=t1, entry=a, test_acc=0.81)"),
         lambda c: analyze(c, RUNS.replace("t1,a,0.1,1,80", "t1,a,0.1,1,0.81"), SCORES)),
    case("analyze: runs table with an incomplete lr x seed grid", ExitStatus,
         ("target=t1 shots=all", "incomplete lr x seed grid (planned 1 lrs x 2 seeds)", "b (1/2 runs)", "Valid:"),
         lambda c: analyze(c, RUNS.replace("t1,b,0.1,1,70\n", ""), SCORES)),
]  # fmt: skip


def _cifar_pickle(ctx) -> object:
    from zoo.data import load_split

    root = ctx.tmp / "cifar_data" / "cucumber9" / "prototype_1"
    root.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps({"data": _Pickled(), "labels": [0]}))
    return load_split("cucumber9", "train", ctx.tmp / "cifar_data")


def _message(error: BaseException) -> str:
    # Hydra puts the detail (the schema, the conversion) in the chained exception
    parts = [str(error)]
    if error.__cause__ is not None:
        parts.append(str(error.__cause__))
    return "\n".join(parts)


def test_the_catalogue_ids_are_unique() -> None:
    ids = [p.values[0].id for p in CASES]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, ctx, capsys) -> None:
    with pytest.raises(case.error) as info:
        case.call(ctx)
    message = _message(info.value)
    missing = [f for f in case.fragments if f not in message]
    assert not missing, f"{case.id}: {missing} not in the message:\n{message}"
    if isinstance(info.value, ExitStatus):
        assert info.value.status == 2 and "Traceback" not in message
    # a bad input never runs anything it should not: nothing was unpickled
    assert "unpickled" not in capsys.readouterr().out

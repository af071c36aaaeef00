"""Safe loading: nothing zoobench reads can run code.

A malicious pickle (an object whose ``__reduce__`` writes a marker file when unpickled) is placed
where zoobench expects a Lightning checkpoint (the resume path of zoo training), expert weights,
a dataset batch, an extraction cache and a source profile: each is refused and the marker is never
written. A scan of the sources checks that every ``torch.load`` passes ``weights_only=True``, that
Lightning resumes with ``weights_only=True``, that ``numpy.load`` never allows pickles, and that
only the restricted data unpickler of ``core.io`` unpickles.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.factories import ROOT, save_tiny_expert

# Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class WritesMarker:
    """Unpickling this object writes ``path``: proof that a loader ran code from a file."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('code ran')",))


def _malicious(path: Path, marker: Path, how: str) -> None:
    payload = {"state_dict": {"head.weight": WritesMarker(marker)}, "epoch": 0}
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "torch.save":
        torch.save(payload, path)
    else:  # a plain pickle (protocol 2: the one torch's own unpickler expects)
        path.write_bytes(pickle.dumps(payload, protocol=2))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    path = tmp_path / "marker"
    yield path
    assert not path.exists(), "a malicious pickle was executed"


# ------------------------------------------------------------------------------ checkpoints


def _train(zoo_dir: Path) -> Path:
    from tests.test_train import RECIPE, TRAINER, _domain, _spec
    from zoo.train import train_expert

    return train_expert(
        _spec(),
        RECIPE,
        zoo_dir,
        trainer_cfg=TRAINER,
        logger_cfg={"type": "none"},
        data=[_domain("toy", 32, 4, seed=0)],
    )


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_malicious_checkpoint_at_the_resume_path_is_refused(tmp_path, marker, how) -> None:
    from zoo.train import CKPT_DIR, CKPT_NAME

    ckpt = tmp_path / "zoo" / "tiny" / CKPT_DIR / CKPT_NAME
    _malicious(ckpt, marker, how)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        _train(tmp_path / "zoo")
    assert ckpt.is_file()  # left for the user to inspect, never trained over silently
    assert not (tmp_path / "zoo" / "tiny" / "card.json").exists()


def test_refused_checkpoint_says_which_file_and_what_to_do(tmp_path, marker) -> None:
    from zoo.train import CKPT_DIR, CKPT_NAME

    ckpt = tmp_path / "zoo" / "tiny" / CKPT_DIR / CKPT_NAME
    _malicious(ckpt, marker, "torch.save")
    with pytest.raises(ValueError) as info:
        _train(tmp_path / "zoo")
    message = str(info.value)
    assert str(ckpt) in message and "delete" in message and "weights_only=False" not in message


def test_a_refused_checkpoint_is_left_as_it_was(tmp_path, marker) -> None:
    from zoo.train import CKPT_DIR, CKPT_NAME

    ckpt = tmp_path / "zoo" / "tiny" / CKPT_DIR / CKPT_NAME
    _malicious(ckpt, marker, "torch.save")
    before = ckpt.read_bytes()
    with pytest.raises(pickle.UnpicklingError):
        _train(tmp_path / "zoo")
    assert ckpt.read_bytes() == before


# ------------------------------------------------------------------------------ weights


@pytest.fixture
def zoo_with_malicious_weights(tmp_path: Path, marker: Path) -> Path:
    zoo = tmp_path / "zoo"
    save_tiny_expert(zoo, "evil_torch", seed=0)
    save_tiny_expert(zoo, "evil_pickle", seed=0)
    for expert, how in (("evil_torch", "torch.save"), ("evil_pickle", "pickle")):
        _malicious(zoo / expert / "weights.safetensors", marker, how)
        # without the checksum (which would already refuse the file), the format check must
        card_path = zoo / expert / "card.json"
        card = json.loads(card_path.read_text())
        card.pop("weights_sha256")
        card_path.write_text(json.dumps(card))
    return zoo


@pytest.mark.parametrize("expert", ["evil_torch", "evil_pickle"])
def test_malicious_weights_are_refused_wherever_an_entry_is_loaded(
    zoo_with_malicious_weights: Path, tmp_path: Path, expert: str
) -> None:
    from finetune.run import FinetunePaths, FinetuneSettings, finetune_run
    from selection.extract import Extractor, ExtractSettings
    from zoo.store import load_entry, load_weights

    zoo = zoo_with_malicious_weights
    refused = f"cannot read weights file {zoo / expert / 'weights.safetensors'}"
    with pytest.raises(ValueError, match=refused):
        load_entry(expert, zoo)
    with pytest.raises(ValueError, match=refused):
        load_weights(expert, zoo)
    with pytest.raises(ValueError, match=refused):  # fine-tuning
        finetune_run(
            expert, "mini_polygons", 5, 0.1, 0,
            FinetuneSettings(epochs=0, min_steps=1, num_workers=0),
            FinetunePaths(zoo_dir=zoo, finetune_dir=tmp_path / "ft"),
        )  # fmt: skip
    with pytest.raises(ValueError, match=refused):  # selection
        Extractor(ExtractSettings(zoo, tmp_path / "data", tmp_path / "cache")).extract(
            expert, "mini_polygons", 5
        )


# ------------------------------------------------------------------------------ data files


def test_dataset_pickles_allow_arrays_only(tmp_path: Path, marker: Path) -> None:
    from core.io import load_data_pickle
    from zoo.data import load_split

    batch = {
        "data": np.arange(12, dtype=np.uint8).reshape(2, 6),
        "labels": [0, 1],
        "n": np.int64(2),
    }
    for protocol in (2, 4, 5):
        back = load_data_pickle(io.BytesIO(pickle.dumps(batch, protocol=protocol)))
        np.testing.assert_array_equal(back["data"], batch["data"])
        assert back["labels"] == [0, 1] and back["n"] == 2
    with pytest.raises(ValueError, match="refusing to unpickle builtins.exec"):
        load_data_pickle(io.BytesIO(pickle.dumps(WritesMarker(marker))))

    # a CIFAR-style dataset whose batch files are malicious
    root = tmp_path / "data" / "cucumber9"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(pickle.dumps({"data": WritesMarker(marker), "labels": [0]}))
    with pytest.raises(ValueError, match=r"unsafe or corrupted pickle .*data_batch_1"):
        load_split("cucumber9", "train", tmp_path / "data")


def _npz_with_object(path: Path, marker: Path, key: str, **arrays) -> None:
    objects = np.empty(1, dtype=object)
    objects[0] = WritesMarker(marker)
    with open(path, "wb") as f:
        np.savez(f, **arrays, **{key: objects})


def test_cache_and_profile_files_are_read_without_pickles(tmp_path: Path, marker: Path) -> None:
    from selection.extract import read_cache
    from zoo.store import load_source_profile

    cache = tmp_path / "features.npz"
    objects = np.empty(1, dtype=object)
    objects[0] = WritesMarker(marker)
    with open(cache, "wb") as f:
        np.savez(f, _meta=objects, features=np.ones((2, 2)))
    assert read_cache(cache, {"kind": "features"}, ("features",)) is None  # recomputed

    zoo = tmp_path / "zoo"
    save_tiny_expert(zoo, "tiny", seed=0)
    profile = zoo / "tiny" / "source_profile.npz"
    _npz_with_object(profile, marker, "src.means", **{"src.counts": np.ones(5)})
    # the card's profile_sha256 refuses a swapped file before it is opened
    with pytest.raises(ValueError, match="does not belong to its card"):
        load_source_profile("tiny", zoo)
    # a card without the field (older store): the file is opened, and its pickle refused
    card_path = zoo / "tiny" / "card.json"
    card = json.loads(card_path.read_text())
    del card["profile_sha256"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ValueError, match="allow_pickle=False") as refused:
        load_source_profile("tiny", zoo)
    assert f"cannot read source profile {profile}" in str(refused.value)  # names the file


# ------------------------------------------------------------------------------ the sources

PACKAGES = ("zoo", "finetune", "selection", "analysis", "scripts", "benchmarks")


def _sources() -> list[Path]:
    files = [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    return files + sorted(ROOT.glob("*.py"))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<expression>"
    return None


def unsafe_loads(source: str, filename: str) -> list[str]:
    """Every call in ``source`` that could unpickle untrusted data, as ``file:line: what``."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and any(
            _dotted(b).endswith("Unpickler") for b in node.bases
        ):
            if filename != "core/io.py":
                problems.append(f"{filename}:{node.lineno}: an Unpickler subclass")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{filename}:{node.lineno}"
        if name == "torch.load" and _keyword(node, "weights_only") is not True:
            problems.append(f"{where}: torch.load without weights_only=True")
        if name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") not in (
            None,
            False,
        ):
            problems.append(f"{where}: numpy.load with allow_pickle")
        if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load"):
            problems.append(f"{where}: {name}")
        if name.endswith(".fit") and _keyword(node, "ckpt_path") is not None:
            if _keyword(node, "weights_only") is not True:
                problems.append(f"{where}: Trainer.fit(ckpt_path=...) without weights_only=True")
        if name.endswith("load_from_checkpoint") and _keyword(node, "weights_only") is not True:
            problems.append(f"{where}: load_from_checkpoint without weights_only=True")
    return problems


def test_the_scan_flags_unsafe_loads() -> None:
    bad = """
import pickle, torch, numpy as np
torch.load(path)
torch.load(path, weights_only=False)
np.load(path, allow_pickle=True)
pickle.load(f)
trainer.fit(model, ckpt_path=last)
class Mine(pickle.Unpickler): pass
"""
    assert len(unsafe_loads(bad, "x.py")) == 6
    good = "torch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\nnp.load(p)\n"
    good += "trainer.fit(m, ckpt_path=c, weights_only=True)\n"
    assert unsafe_loads(good, "x.py") == []


def test_every_load_in_the_sources_is_safe() -> None:
    problems, torch_loads = [], 0
    for path in _sources():
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        problems += unsafe_loads(source, rel)
        torch_loads += source.count("torch.load(")
    assert problems == []
    # the scan saw the loads it guards (the shipped EfficientNet state dict, the checkpoints)
    assert torch_loads >= 2

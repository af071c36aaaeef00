"""The expert store: exact round trips, integrity errors, entries, profiles, manifest."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from zoo.models import create_model
from zoo.multidomain import MultiDomainClassifier
from zoo.store import (
    CARD,
    MANIFEST,
    WEIGHTS,
    entry_fingerprint,
    expert_ids,
    has_expert,
    list_entries,
    load_card,
    load_entry,
    load_source_profile,
    load_weights,
    save_expert,
    write_manifest,
)

DOMAINS = {"mini_mnist": 10, "mini_shapes": 4}


pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affine parameters, so a lost buffer would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.num_batches_tracked.fill_(seed + 3)


def _card(model_type: str, arch: str, domains: dict[str, int], arch_kwargs=None) -> dict:
    return {
        "arch": arch,
        "arch_kwargs": arch_kwargs or {},
        "type": model_type,
        "sources": list(domains),
        "domains": [
            {
                "name": d,
                "num_classes": c,
                "classes": [f"c{i}" for i in range(c)],
                "datasets": [d],
                "source_accuracy": 0.5 + 0.01 * c,
            }
            for d, c in domains.items()
        ],
        "source_accuracy": {d: 0.5 + 0.01 * c for d, c in domains.items()},
        "input_size": 32,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "recipe": {"epochs": 1},
        "train_seconds": 1.5,
        "device": "cpu",
        "precision": "32-true",
        "config_hash": "0" * 12,
        "git_revision": "unknown",
    }


def _profile(domains: dict[str, int], dim: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {d: (rng.normal(size=(c, dim)), rng.integers(1, 9, size=c)) for d, c in domains.items()}


def _save_single(zoo, expert_id="single", seed=0):
    torch.manual_seed(seed)
    model = create_model("resnet8", 10, width=0.5)
    _perturb_bn(model, seed)
    card = _card("single", "resnet8", {"mini_mnist": 10}, {"width": 0.5})
    save_expert(zoo, expert_id, model, card, _profile({"mini_mnist": 10}, 32, seed))
    return model


def _save_multi(zoo, kind, expert_id=None):
    torch.manual_seed(1)
    base = create_model("resnet8", 10, width=0.5)
    model = MultiDomainClassifier(base, list(DOMAINS), DOMAINS, kind=kind)
    _perturb_bn(model, 2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".adapters." in name:
                p.normal_(0, 0.05)  # adapters start at zero: make them matter
    card = _card(kind, "resnet8", DOMAINS, {"width": 0.5})
    save_expert(zoo, expert_id or kind, model, card, _profile(DOMAINS, 32, 3))
    return model


def test_round_trip_every_expert_type(tmp_path):
    zoo = tmp_path / "zoo"
    x = torch.randn(4, 3, 32, 32)
    single = _save_single(zoo).eval()
    entry = load_entry("single", zoo)
    assert entry.domain == "mini_mnist" and entry.input_size == 32
    assert entry.mean == (0.5, 0.5, 0.5) and entry.std == (0.25, 0.25, 0.25)
    assert not entry.model.training
    with torch.no_grad():
        assert torch.equal(entry.model(x), single(x))
        assert torch.equal(entry.model.forward_features(x), single.forward_features(x))
    for kind in ("shared", "multi_bn", "adapter"):
        multi = _save_multi(zoo, kind).eval()
        for d, classes in DOMAINS.items():
            e = load_entry(f"{kind}@{d}", zoo)
            assert e.domain == d and e.expert_id == kind
            assert e.model.head.out_features == classes
            multi.set_domain(d)
            with torch.no_grad():
                torch.testing.assert_close(e.model(x), multi(x), rtol=1e-5, atol=1e-6)
                if kind != "adapter":  # no folding: bit-identical
                    assert torch.equal(e.model(x), multi(x))
    # no temporary file is left behind
    assert not [p for p in zoo.rglob("*") if ".tmp-" in p.name]


def test_round_trip_pretrained_lite0(tmp_path):
    model = create_model("efficientnet_lite0", 1000, pretrained=True).eval()
    card = _card("pretrained", "efficientnet_lite0", {"imagenet": 1000})
    card.update(input_size=224, source_accuracy={})
    save_expert(tmp_path, "lite0", model, card, {})
    entry = load_entry("lite0", tmp_path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(entry.model(x), model(x))
    with pytest.raises(ValueError, match="stored without its source data"):
        load_source_profile("lite0", tmp_path)


def test_entries_profiles_and_manifest(tmp_path):
    _save_single(tmp_path, "b_single")
    _save_multi(tmp_path, "multi_bn", "a_multi")
    assert list_entries(tmp_path) == ["a_multi@mini_mnist", "a_multi@mini_shapes", "b_single"]
    assert list_entries(tmp_path, experts=["b_single"]) == ["b_single"]
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the store.*a_multi, b_single"):
        list_entries(tmp_path, experts=["nope"])
    means, counts = load_source_profile("a_multi@mini_shapes", tmp_path)
    ref_means, ref_counts = _profile(DOMAINS, 32, 3)["mini_shapes"]
    np.testing.assert_array_equal(means, ref_means)
    np.testing.assert_array_equal(counts, ref_counts)
    assert means.dtype == np.float64 and counts.dtype == np.int64
    path = write_manifest(tmp_path)
    assert path == tmp_path / MANIFEST
    frame = pd.read_csv(path)
    assert frame["entry_id"].tolist() == list_entries(tmp_path)
    assert frame["num_classes"].tolist() == [10, 4, 10]
    assert frame["type"].tolist() == ["multi_bn", "multi_bn", "single"]
    np.testing.assert_allclose(frame["source_accuracy"], [0.6, 0.54, 0.6])
    assert frame["train_seconds"].tolist() == [1.5, 1.5, 1.5]


def test_unknown_entry_lists_known_ones(tmp_path):
    _save_single(tmp_path, "single")
    _save_multi(tmp_path, "shared")
    with pytest.raises(
        ValueError, match=r"unknown entry 'nope'.*shared@mini_mnist, shared@mini_shapes, single"
    ):
        load_entry("nope", tmp_path)
    with pytest.raises(ValueError, match="unknown entry 'shared@cifar'"):
        load_entry("shared@cifar", tmp_path)
    with pytest.raises(ValueError, match="unknown entry 'shared'"):
        load_entry("shared", tmp_path)  # a multi-domain expert is fine-tuned per domain
    with pytest.raises(ValueError, match="unknown entry"):
        load_source_profile("single@x", tmp_path)


def _edit_card(zoo, expert_id, **changes):
    path = zoo / expert_id / CARD
    card = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            card.pop(k, None)
        else:
            card[k] = v
    path.write_text(json.dumps(card))


def test_corrupted_weights_are_refused(tmp_path):
    _save_single(tmp_path, "single")
    weights = tmp_path / "single" / WEIGHTS
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte inside a tensor
    weights.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=f"corrupted weights file {weights}"):
        load_entry("single", tmp_path)
    # a truncated file, with the checksum gone from the card: safetensors itself refuses it
    weights.write_bytes(bytes(blob[: len(blob) // 3]))
    _edit_card(tmp_path, "single", weights_sha256=None)
    with pytest.raises(ValueError, match=f"cannot read weights file {weights}"):
        load_entry("single", tmp_path)


def test_card_that_does_not_match_its_weights(tmp_path):
    _save_single(tmp_path, "single")
    weights = tmp_path / "single" / WEIGHTS
    # the card describes a wider network than the file holds
    _edit_card(tmp_path, "single", arch_kwargs={"width": 1.0}, tensors=None)
    with pytest.raises(ValueError, match=f"weights file {weights} does not fit arch 'resnet8'"):
        load_entry("single", tmp_path)
    # the card's tensor list disagrees with the file
    _save_single(tmp_path, "single2")
    card = json.loads((tmp_path / "single2" / CARD).read_text())
    card["tensors"]["head.weight"] = [11, 32]
    (tmp_path / "single2" / CARD).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="does not match its card"):
        load_entry("single2", tmp_path)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_loading_never_unpickles(tmp_path):
    _save_single(tmp_path, "single")
    marker = tmp_path / "pwned"
    exploit = _Exploit()
    exploit.marker = marker
    weights = tmp_path / "single" / WEIGHTS
    weights.write_bytes(pickle.dumps({"state": exploit}))
    _edit_card(tmp_path, "single", weights_sha256=None)
    with pytest.raises(ValueError, match=f"cannot read weights file {weights}"):
        load_entry("single", tmp_path)
    assert not marker.exists()
    # the same pickle saved the torch way is refused too
    torch.save({"state": exploit}, weights)
    with pytest.raises(ValueError, match="cannot read weights file"):
        load_entry("single", tmp_path)
    assert not marker.exists()


def test_save_validates_its_inputs(tmp_path):
    model = create_model("resnet8", 10, width=0.5)
    card = _card("single", "resnet8", {"mini_mnist": 10}, {"width": 0.5})
    with pytest.raises(ValueError, match="bad expert id 'a@b'"):
        save_expert(tmp_path, "a@b", model, card, {})
    with pytest.raises(ValueError, match="lacks fields"):
        save_expert(tmp_path, "x", model, {"arch": "resnet8"}, {})
    with pytest.raises(ValueError, match="not in the card's domains"):
        save_expert(tmp_path, "x", model, card, {"other": (np.zeros((2, 3)), np.ones(2, int))})
    with pytest.raises(ValueError, match="unknown expert type"):
        save_expert(tmp_path, "x", model, {**card, "type": "ensemble"}, {})
    assert list_entries(tmp_path) == []


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_replacing_an_expert_never_mixes_old_and_new(tmp_path, monkeypatch):
    import zoo.store as store

    old = _save_single(tmp_path, "e", seed=0)
    old_card = load_card("e", tmp_path)

    # a failure while the new expert is written leaves the old one whole and usable
    def broken_savez(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(store.np, "savez", broken_savez)
        with pytest.raises(OSError, match="source_profile"):
            _save_single(tmp_path, "e", seed=1)
    assert load_card("e", tmp_path) == old_card
    assert _state_equal(load_weights("e", tmp_path), old)
    # no staging folder left (the lock folder stays, empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "e"]
    assert not list((tmp_path / ".locks").iterdir())

    # a crash while the files are moved in: the old card went first, so the folder is no expert
    real_replace = os.replace

    def crash_on_card(src, dst):
        if str(dst) == str(tmp_path / "e" / CARD):  # the move into the expert folder
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(store.os, "replace", crash_on_card)
        with pytest.raises(OSError):
            _save_single(tmp_path, "e", seed=1)
    assert not has_expert(tmp_path, "e") and expert_ids(tmp_path) == []

    # a complete replacement: new weights under a new card, and the fingerprints follow
    new = _save_single(tmp_path, "e", seed=1)
    card = load_card("e", tmp_path)
    assert _state_equal(load_weights("e", tmp_path), new) and not _state_equal(new, old)
    assert card["weights_sha256"] != old_card["weights_sha256"]
    assert entry_fingerprint("e", card) == card["weights_sha256"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks", "e"]
    with pytest.raises(ValueError, match="no weights_sha256"):
        entry_fingerprint("e", {k: v for k, v in card.items() if k != "weights_sha256"})


def test_a_profile_of_another_run_is_refused(tmp_path):
    from zoo.store import PROFILE, _sha256

    _save_single(tmp_path, "a", seed=0)
    _save_single(tmp_path, "b", seed=1)
    card = load_card("a", tmp_path)
    assert card["profile_sha256"] == _sha256(tmp_path / "a" / PROFILE)
    means, _ = load_source_profile("a", tmp_path)
    # b's profile (same domain, same shapes) under a's card: the mix a race used to leave
    os.replace(tmp_path / "b" / PROFILE, tmp_path / "a" / PROFILE)
    with pytest.raises(ValueError, match="does not belong to its card"):
        load_source_profile("a", tmp_path)
    # a card written before the field: not checked
    card.pop("profile_sha256")
    (tmp_path / "a" / CARD).write_text(json.dumps(card))
    assert not np.array_equal(load_source_profile("a", tmp_path)[0], means)


def test_staging_left_by_a_killed_save_is_ignored_then_removed(tmp_path):
    _save_single(tmp_path, "e", seed=0)
    # what a save killed mid-way leaves: a hidden staging folder with some of the files
    left = tmp_path / ".e.tmp-4242-deadbeef"
    left.mkdir()
    (left / "weights.safetensors").write_bytes(b"partial")
    other = tmp_path / ".f.tmp-4242-deadbeef"  # another expert's: not this save's business
    other.mkdir()
    assert expert_ids(tmp_path) == ["e"] and list_entries(tmp_path) == ["e"]
    _save_single(tmp_path, "e", seed=1)
    assert not left.exists() and other.exists()
    # the same for the manifest's temporary files
    stale = tmp_path / ".manifest.csv.tmp-4242-deadbeef"
    stale.write_text("partial")
    write_manifest(tmp_path)
    assert not stale.exists() and (tmp_path / "manifest.csv").is_file()

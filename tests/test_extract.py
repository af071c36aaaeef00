"""Extraction with its cache, on a tiny stand-in model and dataset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import selection.extract as ex
from core.config import LGCConfig, ProbeConfig, SelectionConfig
from core.keys import format_shots
from selection.extract import Extractor, ExtractSettings, cache_path, resolve_device
from selection.sketch import lgc_sketch
from zoo.models import create_model


class TinySet(torch.utils.data.Dataset):
    """Images (N, 3, 16, 16) with labels; ``subset`` and ``info`` like zoo.data.ImageDataset."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray, info=None) -> None:
        self.images, self.labels, self.info = images, np.asarray(labels, np.int64), info

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])

    def subset(self, indices) -> TinySet:
        idx = np.asarray(indices)
        return TinySet(self.images[torch.as_tensor(idx)], self.labels[idx], self.info)


MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _sel(settings: ExtractSettings, **changes) -> ExtractSettings:
    """``settings`` with some of its ``selection`` fields changed."""
    return replace(settings, selection=replace(settings.selection, **changes))


@pytest.fixture
def zoo(monkeypatch, tmp_path):
    """Two stand-in entries and one target (4 classes x 12 images); counts model passes."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(48, 3, 16, 16, generator=gen)
    labels = np.repeat(np.arange(4), 12)
    info = SimpleNamespace(mean=MEAN, std=STD, num_classes=4)
    dataset = TinySet(images, labels, info)
    models = {
        "a": create_model("resnet8", num_classes=7).eval(),
        "b@dom": create_model("resnet8", num_classes=3).eval(),
    }
    entries = {
        k: SimpleNamespace(entry_id=k, model=m, mean=MEAN, std=STD) for k, m in models.items()
    }
    calls = {"run_model": 0, "load_entry": 0, "load_target": 0}
    run_model = ex.run_model

    def counting_run_model(*args, **kwargs):
        calls["run_model"] += 1
        return run_model(*args, **kwargs)

    def load_entry(entry_id, zoo_dir):
        calls["load_entry"] += 1
        return entries[entry_id]

    def load_target(target, data_dir, train):
        calls["load_target"] += 1
        assert target == "tgt"
        return dataset

    monkeypatch.setattr(ex, "run_model", counting_run_model)
    monkeypatch.setattr(ex, "_load_entry", load_entry)
    monkeypatch.setattr(ex, "_entry_fingerprint", lambda e, z: f"card-{e}")
    monkeypatch.setattr(ex, "_load_target", load_target)
    monkeypatch.setattr(ex, "_data_fingerprint", lambda d, data_dir: f"data-{d}")
    settings = ExtractSettings(
        zoo_dir=tmp_path / "zoo",
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        selection=SelectionConfig(
            per_class=8,
            batch_size=10,
            lgc=LGCConfig(heads=2, dim=16),
            probe=ProbeConfig(steps=2, batch_size=8),
        ),
        accelerator="cpu",
    )
    return SimpleNamespace(
        settings=settings, dataset=dataset, models=models, calls=calls, cache=tmp_path / "cache"
    )


def test_features_probs_and_sketch_match_direct_computation(zoo) -> None:
    x = Extractor(zoo.settings).extract("a", "tgt", 10, seed=3, lgc=True)
    expected_idx = ex.selection_subset(zoo.dataset.labels, 10, 3, 8, 0)
    np.testing.assert_array_equal(x.indices, expected_idx)
    assert len(x.indices) == 4 * 8 and np.bincount(x.labels).tolist() == [8] * 4
    np.testing.assert_array_equal(x.labels, zoo.dataset.labels[expected_idx])
    images = zoo.dataset.images[torch.as_tensor(expected_idx)]
    model = zoo.models["a"]
    with torch.no_grad():
        feats = model.forward_features(images).double().numpy()
        probs = torch.softmax(model(images).double(), 1).numpy()
    assert x.features.dtype == x.probs.dtype == x.grads.dtype == np.float64
    np.testing.assert_allclose(x.features, feats, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.probs, probs, rtol=1e-5, atol=1e-7)
    assert x.probs.shape == (32, 7)
    grads = lgc_sketch(model, images, heads=2, dim=16, seed=0)
    assert x.grads.shape == (32, 2 * 16)
    np.testing.assert_allclose(x.grads, grads, rtol=1e-4, atol=1e-6 * np.abs(grads).max())
    assert zoo.calls["run_model"] == 1  # features and sketch from one pass
    assert set(x.seconds) == {"features", "lgc"} and 0 < x.seconds["features"] <= x.seconds["lgc"]
    assert x.cached == {"features": False, "lgc": False}
    assert cache_path(zoo.cache, "a", "tgt", 10, 3, "features").is_file()
    assert (zoo.cache / "a" / "tgt" / "shots=10" / "seed=3" / "lgc.npz").is_file()


def test_cache_hit_returns_identical_arrays_without_recomputing(zoo) -> None:
    first = Extractor(zoo.settings).extract("b@dom", "tgt", "full", lgc=True)
    again = Extractor(zoo.settings).extract("b@dom", "tgt", "full", lgc=True)
    assert zoo.calls["run_model"] == 1 and zoo.calls["load_entry"] == 1
    for name in ("features", "probs", "grads", "labels", "indices"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert again.seconds == first.seconds  # the original cost, not the cache read
    assert again.cached == {"features": True, "lgc": True}
    # the sketch pass cached the features too: asking for them alone is a hit
    only = Extractor(zoo.settings).extract("b@dom", "tgt", "full")
    assert zoo.calls["run_model"] == 1 and only.grads is None
    np.testing.assert_array_equal(only.features, first.features)


def test_lgc_pass_also_caches_features(zoo) -> None:
    lgc_only = Extractor(zoo.settings).extract("a", "tgt", 10, features=False, lgc=True)
    assert lgc_only.features is None and lgc_only.grads.shape == (32, 32)
    feats = Extractor(zoo.settings).extract("a", "tgt", 10)
    assert zoo.calls["run_model"] == 1 and feats.cached == {"features": True}
    np.testing.assert_array_equal(feats.labels, lgc_only.labels)


def test_key_mismatch_recomputes_only_the_stale_kind(zoo) -> None:
    Extractor(zoo.settings).extract("a", "tgt", 10, lgc=True)
    assert zoo.calls["run_model"] == 1
    # another sketch size: the features stay valid, the sketch is recomputed
    x = Extractor(_sel(zoo.settings, lgc=LGCConfig(heads=2, dim=9))).extract(
        "a", "tgt", 10, lgc=True
    )
    assert zoo.calls["run_model"] == 2
    assert x.cached == {"features": True, "lgc": False} and x.grads.shape == (32, 2 * 9)
    # another per_class: both recomputed, the file now holds the new key
    y = Extractor(_sel(zoo.settings, per_class=5)).extract("a", "tgt", 10)
    assert zoo.calls["run_model"] == 3 and y.features.shape[0] == 20 and not y.cached["features"]
    Extractor(_sel(zoo.settings, per_class=5)).extract("a", "tgt", 10)
    assert zoo.calls["run_model"] == 3
    # a new code version invalidates everything
    ex_version = ex.CODE_VERSION
    try:
        ex.CODE_VERSION = ex_version + 1
        Extractor(_sel(zoo.settings, per_class=5)).extract("a", "tgt", 10)
        assert zoo.calls["run_model"] == 4
    finally:
        ex.CODE_VERSION = ex_version


def _savez(path: Path, **arrays: np.ndarray) -> None:
    with path.open("wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"not a zip file"),
        lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
        lambda p: _savez(p, features=np.zeros((2, 2))),  # no _meta
        lambda p: p.write_bytes(b""),
    ],
    ids=["garbage", "truncated", "no-meta", "empty"],
)
def test_corrupt_cache_file_recomputes(zoo, damage) -> None:
    first = Extractor(zoo.settings).extract("a", "tgt", 10)
    path = cache_path(zoo.cache, "a", "tgt", 10, 0, "features")
    damage(path)
    again = Extractor(zoo.settings).extract("a", "tgt", 10)
    assert zoo.calls["run_model"] == 2 and not again.cached["features"]
    np.testing.assert_array_equal(again.features, first.features)
    # the rewritten file is valid again
    Extractor(zoo.settings).extract("a", "tgt", 10)
    assert zoo.calls["run_model"] == 2


def test_no_cache_writes_nothing(zoo) -> None:
    settings = _sel(zoo.settings, cache=False)
    Extractor(settings).extract("a", "tgt", 10, lgc=True)
    Extractor(settings).extract("a", "tgt", 10, lgc=True)
    assert zoo.calls["run_model"] == 2 and not zoo.cache.exists()


def test_renormalises_when_dataset_and_entry_disagree(zoo) -> None:
    entry_mean, entry_std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.1)
    zoo.settings = _sel(zoo.settings, cache=False)
    entry = SimpleNamespace(model=zoo.models["a"], mean=entry_mean, std=entry_std)
    subset = zoo.dataset.subset(np.arange(6))
    arrays, _ = ex.run_model(
        entry.model,
        subset,
        device=torch.device("cpu"),
        batch_size=4,
        renorm=ex._renormalise(subset, entry, torch.device("cpu")),
    )
    raw = subset.images * 0.25 + 0.5  # undo the dataset's normalisation by hand
    mean = torch.tensor(entry_mean).view(1, 3, 1, 1)
    std = torch.tensor(entry_std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = zoo.models["a"].forward_features((raw - mean) / std).numpy()
    np.testing.assert_allclose(arrays["features"], expected, rtol=1e-5, atol=1e-6)
    same = SimpleNamespace(mean=MEAN, std=STD)
    assert ex._renormalise(subset, same, torch.device("cpu")) is None


def test_probe_is_cached_once_per_target_and_shared(zoo) -> None:
    extractor = Extractor(zoo.settings)
    probe = extractor.probe("tgt", 10, seed=1)
    path = zoo.cache / "_probe" / "tgt" / "shots=10" / "seed=1" / "probe.npz"
    assert path.is_file() and not probe.cached and probe.seconds > 0
    assert probe.features.shape == (32, 64) and probe.features.dtype == np.float64
    feats = extractor.extract("a", "tgt", 10, seed=1)
    np.testing.assert_array_equal(probe.indices, feats.indices)
    again = Extractor(zoo.settings).probe("tgt", 10, seed=1)
    assert again.cached and again.seconds == probe.seconds
    np.testing.assert_array_equal(again.features, probe.features)
    # seeded: retraining without the cache gives the same probe
    fresh = Extractor(_sel(zoo.settings, cache=False)).probe("tgt", 10, seed=1)
    np.testing.assert_allclose(fresh.features, probe.features, rtol=1e-5, atol=1e-6)
    # a different probe recipe is a different key
    key = extractor.key("probe", None, "tgt", 10, 1)
    assert (
        Extractor(_sel(zoo.settings, probe=ProbeConfig(steps=4, batch_size=8))).key(
            "probe", None, "tgt", 10, 1
        )
        != key
    )
    assert "entry" not in key  # one probe for every entry


def test_settings_and_helpers_reject_bad_values(tmp_path: Path) -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="tpu"):
        resolve_device("tpu")
    assert format_shots(20) == "20" and format_shots("full") == "full" and format_shots("5") == "5"
    for bad in (0, "few", 2.5, True):
        with pytest.raises(ValueError, match="shots"):
            format_shots(bad)
    with pytest.raises(ValueError, match="per_class"):
        SelectionConfig(per_class=0)
    with pytest.raises(ValueError, match="kind"):
        cache_path(tmp_path, "a", "t", 5, 0, "weights")
    with pytest.raises(ValueError, match="nothing to extract"):
        Extractor(ExtractSettings(tmp_path, tmp_path, tmp_path)).extract(
            "a", "t", 5, features=False
        )


def test_reference_source_profile_matches_direct_computation_and_is_cached(
    zoo, monkeypatch
) -> None:
    settings = _sel(zoo.settings, source_per_class=5)
    prof = Extractor(settings).source_profile("a", ["tgt", "tgt"])
    # at most 5 images per class, drawn as zoo.samplers.selection_indices does; weights: class sizes
    from zoo.samplers import selection_indices

    idx = selection_indices(zoo.dataset.labels, 5, 0)
    with torch.no_grad():
        feats = zoo.models["a"].forward_features(zoo.dataset.images[idx]).double().numpy()
    labels = zoo.dataset.labels[idx]
    means = np.stack([feats[labels == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(prof.means, np.concatenate([means, means]), rtol=1e-5, atol=1e-6)
    assert prof.counts.tolist() == [12] * 8 and not prof.cached
    assert zoo.calls["run_model"] == 1  # the second "tgt" read the cache the first one wrote
    assert ex.source_cache_path(zoo.cache, "a", "tgt").is_file()
    again = Extractor(settings).source_profile("a", ["tgt"])
    assert again.cached and zoo.calls["run_model"] == 1
    np.testing.assert_array_equal(again.means, prof.means[:4])
    # another sampling size or a retrained reference: recomputed
    Extractor(_sel(settings, source_per_class=3)).source_profile("a", ["tgt"])
    assert zoo.calls["run_model"] == 2
    monkeypatch.setattr(ex, "_entry_fingerprint", lambda e, z: f"card-{e}-retrained")
    Extractor(settings).source_profile("a", ["tgt"])
    assert zoo.calls["run_model"] == 3
    with pytest.raises(ValueError, match="at least one source dataset"):
        Extractor(settings).source_profile("a", [])


def test_selection_subset_is_the_finetuning_training_subset(zoo) -> None:
    from zoo.samplers import selection_indices, shot_indices, stratified_split

    labels = zoo.dataset.labels
    for seed in (0, 5):
        shot = shot_indices(labels, 10, seed)
        np.testing.assert_array_equal(ex.finetune_subset(labels, 10, seed), shot)
        keep, _ = stratified_split(labels[shot], 0.2, seed)
        np.testing.assert_array_equal(ex.finetune_subset(labels, 10, seed, 0.2), shot[keep])
        trained = shot[keep]
        np.testing.assert_array_equal(
            ex.selection_subset(labels, 10, seed, 6, 0, 0.2),
            trained[selection_indices(labels[trained], 6, 0)],
        )
    with pytest.raises(ValueError, match="val_fraction"):
        replace(zoo.settings, val_fraction=1.5)

"""evaluate_selection: per-draw scoring, table identity, Domain Similarity's reference space, entry_info."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import finetune.run as ft
import selection.evaluate as ev
import selection.extract as ex
import zoo.data
from selection.evaluate import evaluate_selection_main
from selection.extract import Extractor, ExtractSettings, cache_path
from tests.test_evaluate_selection import PER_CLASS, SHOTS, TARGET, WIDTH, _card, _cfg
from zoo.data import load_split
from zoo.models import create_model
from zoo.samplers import selection_indices, shot_indices
from zoo.store import load_entry, save_expert


def _naive_lfc(features: np.ndarray, labels: np.ndarray) -> float:
    k = features @ features.T
    y = 2.0 * (labels[:, None] == labels[None, :]) - 1.0
    return float(np.corrcoef(k.ravel(), y.ravel())[0, 1])


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory) -> Path:
    """Random-init ResNet-8 experts named after their source dataset, and a reference ``ref``.

    ``digits`` was "trained" on the target's own dataset, ``texture`` on an unrelated mini source.
    Each expert's own source profile is computed with its own network on its source data, as
    zoo.train does. ``texture`` has a source accuracy on its card, the others none.
    """
    zoo_dir = tmp_path_factory.mktemp("zoo")
    sources = {"ref": "mini_mnist", "digits": TARGET, "texture": "mini_textures"}
    for seed, (name, dataset) in enumerate(sources.items()):
        torch.manual_seed(seed)
        data = load_split(dataset, "train")
        model = create_model("resnet8", num_classes=data.info.num_classes, width=WIDTH).eval()
        idx = selection_indices(data.labels, 4, 0)
        images, labels = data.subset(idx).tensors()
        with torch.no_grad():
            feats = model.forward_features(images).double().numpy()
        c = int(data.info.num_classes)
        sampled = np.bincount(labels.numpy(), minlength=c)
        means = np.zeros((c, feats.shape[1]))
        np.add.at(means, labels.numpy(), feats)
        means /= np.maximum(sampled, 1)[:, None]
        counts = np.bincount(data.labels, minlength=c)  # weights: the class sizes
        card = _card("single", [("src", c)], {"src": [dataset]})
        # the shared card factory records a source accuracy: keep it only for texture
        card["domains"][0].pop("source_accuracy")
        if name == "texture":
            card["domains"][0]["source_accuracy"] = 0.625
        save_expert(zoo_dir, name, model, card, {"src": (means, counts)})
    return zoo_dir


def _dcfg(out: Path, zoo_dir: Path, method: str, experts=("digits", "texture"), **kw):
    cfg = _cfg(out, zoo_dir, method=method, experts=experts, **kw)
    cfg.selection.reference_entry = "ref"
    cfg.selection.source_per_class = 4
    return cfg


def test_each_seed_scores_the_finetuning_subset_of_that_seed(zoo_dir, tmp_path, monkeypatch):
    """The draw scored for seed s is the training subset of the fine-tuning run of seed s (with and
    without a validation hold-out), capped to per_class; its LFC equals the naive formula."""
    # the fine-tuning run's training subset, caught where it builds its training set
    picked: list[np.ndarray] = []
    real_load_split = zoo.data.load_split

    class Stop(Exception):
        pass

    def recording_load_split(name, split, *args, train=False, **kwargs):
        data = real_load_split(name, split, *args, train=train, **kwargs)
        real_subset = data.subset

        def subset(indices):
            if train:  # the augmented copy is the training set
                picked.append(np.asarray(indices))
            return real_subset(indices)

        data.subset = subset
        return data

    def stop(*args, **kwargs):
        raise Stop

    for val_fraction in (None, 0.25):
        out = tmp_path / f"val={val_fraction}"
        cfg = _dcfg(out, zoo_dir, "lfc", experts=("digits",), seed=None)
        cfg.sweep.seeds = [0, 3]
        cfg.finetune = {"val_fraction": val_fraction}
        table = evaluate_selection_main(cfg)[(TARGET, str(SHOTS), "lfc")]
        assert list(zip(table["entry"], table["seed"])) == [("digits", 0), ("digits", 3)]
        monkeypatch.setattr(zoo.data, "load_split", recording_load_split)
        monkeypatch.setattr(ft, "initial_model", stop)
        settings = ft.FinetuneSettings(
            epochs=1, num_workers=0, accelerator="cpu", val_fraction=val_fraction
        )
        paths = ft.FinetunePaths(zoo_dir=zoo_dir, finetune_dir=out / "ft")
        train = real_load_split(TARGET, "train")
        images_all, labels_all = train.tensors()
        model = load_entry("digits", zoo_dir).model
        for seed, value in zip(table["seed"], table["score"]):
            picked.clear()
            with pytest.raises(Stop):
                ft.finetune_run("digits", TARGET, SHOTS, 0.01, int(seed), settings, paths)
            (train_idx,) = picked
            expected = train_idx[selection_indices(train.labels[train_idx], PER_CLASS, 0)]
            path = cache_path(out / "cache", "digits", TARGET, SHOTS, int(seed), "features")
            with np.load(path) as z:
                scored = z["indices"]
            np.testing.assert_array_equal(scored, expected)
            with torch.no_grad():
                feats = model.forward_features(images_all[expected]).double().numpy()
            assert value == pytest.approx(_naive_lfc(feats, labels_all[expected].numpy()), abs=1e-5)
        monkeypatch.undo()
        assert table["score"].iloc[0] != table["score"].iloc[1]  # two different draws


def test_table_is_reused_only_under_the_same_identity(zoo_dir, tmp_path, monkeypatch, capsys):
    calls = []
    real = ev.score_detail

    def counting(name, **inputs):
        calls.append(name)
        return real(name, **inputs)

    monkeypatch.setattr(ev, "score_detail", counting)
    path = tmp_path / "selection" / TARGET / f"shots={SHOTS}" / "lgc.parquet"

    def run(**changes) -> pd.DataFrame:
        cfg = _dcfg(tmp_path, zoo_dir, "lgc", experts=("digits",))
        for dotted, value in changes.items():
            node, key = cfg, dotted.split(".")
            for part in key[:-1]:
                node = node[part]
            node[key[-1]] = value
        calls.clear()
        evaluate_selection_main(cfg)
        return pd.read_parquet(path)

    first = run()
    assert calls == ["lgc"]
    again = run()
    assert calls == [] and "already scored, skipped: lgc" in capsys.readouterr().out
    pd.testing.assert_frame_equal(first, again)
    # the bug this guards against: another sketch size used to keep the old table
    wider = run(**{"selection.lgc.dim": 36})
    assert calls == ["lgc"] and wider["key"].iloc[0] != first["key"].iloc[0]
    assert wider["score"].iloc[0] != first["score"].iloc[0]
    assert "computed with other settings; recomputing" in capsys.readouterr().out
    run(**{"selection.lgc.dim": 36})
    assert calls == []
    # an extraction setting of every method, and the draws
    assert run(**{"selection.per_class": PER_CLASS - 1})["n"].iloc[0] == 10 * (PER_CLASS - 1)
    assert calls == ["lgc"]
    assert run(seed=2)["seed"].tolist() == [2] and calls == ["lgc"]
    # a method parameter: gbc's pca_dim
    gbc = tmp_path / "selection" / TARGET / f"shots={SHOTS}" / "gbc.parquet"
    cfg = _dcfg(tmp_path, zoo_dir, "gbc", experts=("digits",))
    calls.clear()
    evaluate_selection_main(cfg)
    key = pd.read_parquet(gbc)["key"].iloc[0]
    cfg.method = {"name": "gbc", "pca_dim": 8}
    calls.clear()
    evaluate_selection_main(cfg)
    assert calls == ["gbc"] and pd.read_parquet(gbc)["key"].iloc[0] != key


def test_domain_similarity_is_measured_in_one_reference_space(zoo_dir, tmp_path, monkeypatch):
    """The entry trained on the target's data is the most similar; scaling an entry's own features
    (and its own profile, as training would) moves its own-space rank but not its reference score."""
    methods = ("domain_similarity", "domain_similarity_own_space")

    def scores(out: Path, method: str, cache: bool = True) -> pd.Series:
        cfg = _dcfg(out, zoo_dir, method)
        cfg.selection.cache = cache
        table = evaluate_selection_main(cfg)[(TARGET, str(SHOTS), method)]
        return table.set_index(table["entry"].astype(str))["score"]

    base = {m: scores(tmp_path / "base", m) for m in methods}
    ref = base["domain_similarity"]
    assert ref.idxmax() == "digits"
    # an independent reference: the EMD formula on ref's features, computed here
    import ot

    train = load_split(TARGET, "train")
    shot = shot_indices(train.labels, SHOTS, 0)
    idx = shot[selection_indices(train.labels[shot], PER_CLASS, 0)]
    model = load_entry("ref", zoo_dir).model
    images, labels = train.subset(idx).tensors()

    def class_means(x: torch.Tensor, y: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            f = model.forward_features(x).double().numpy()
        n = np.bincount(y, minlength=c)
        return np.stack([f[y == k].mean(0) for k in range(c)]), n

    t_means, t_counts = class_means(images, labels.numpy(), 10)
    src = load_split("mini_textures", "train")
    s_idx = selection_indices(src.labels, 4, 0)
    s_images, s_labels = src.subset(s_idx).tensors()
    s_means, _ = class_means(s_images, s_labels.numpy(), int(src.info.num_classes))
    s_counts = np.bincount(src.labels, minlength=int(src.info.num_classes))
    emd = ot.emd2(
        s_counts / s_counts.sum(), t_counts / t_counts.sum(), ot.dist(s_means, t_means, "euclidean")
    )
    assert ref["texture"] == pytest.approx(np.exp(-0.01 * emd), rel=1e-6)

    # texture's own network now outputs features 1000x larger, and so does its stored profile
    real_load_entry, real_profile = ex._load_entry, ev.load_source_profile

    def small_load_entry(entry_id, zoo):
        entry = real_load_entry(entry_id, zoo)
        if entry_id == "texture":
            forward = entry.model.forward_features
            entry.model.forward_features = lambda x: forward(x) * 1e3
        return entry

    def small_profile(entry_id, zoo):
        means, counts = real_profile(entry_id, zoo)
        return (means * 1e3 if entry_id == "texture" else means), counts

    monkeypatch.setattr(ex, "_load_entry", small_load_entry)
    monkeypatch.setattr(ev, "load_source_profile", small_profile)
    scaled = {m: scores(tmp_path / "scaled", m, cache=False) for m in methods}
    own, own_scaled = base["domain_similarity_own_space"], scaled["domain_similarity_own_space"]
    assert own.rank()["texture"] != own_scaled.rank()["texture"]
    assert own.idxmin() != "texture" and own_scaled.idxmin() == "texture"
    pd.testing.assert_series_equal(scaled["domain_similarity"], ref)


def test_entry_info_and_reference_checks(zoo_dir, tmp_path) -> None:
    extractor = Extractor(ExtractSettings(zoo_dir, tmp_path / "d", tmp_path / "c"))
    info = extractor.entry_info("texture")
    model = load_entry("texture", zoo_dir).model
    assert info == {
        "n_params": sum(p.numel() for p in model.parameters()),
        "source_accuracy": 0.625,
    }
    assert np.isnan(extractor.entry_info("digits")["source_accuracy"])
    assert ex.source_datasets("texture", zoo_dir) == ["mini_textures"]
    cfg = _dcfg(tmp_path, zoo_dir, "domain_similarity")
    cfg.selection.reference_entry = "nobody"
    with pytest.raises(ValueError, match="reference_entry 'nobody'.*known: digits"):
        evaluate_selection_main(cfg)
    cfg.selection.reference_entry = None
    with pytest.raises(ValueError, match="set selection.reference_entry"):
        evaluate_selection_main(cfg)

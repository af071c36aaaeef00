"""evaluate_selection end to end on a tiny zoo saved with zoo.store, and the method configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

import selection
import selection.evaluate as ev
import selection.extract as ex
from selection.evaluate import SCORE_COLUMNS, evaluate_selection_main, resolve_methods
from zoo.data import load_split
from zoo.models import MINI_MEAN, MINI_STD, create_model
from zoo.multidomain import MultiDomainClassifier
from zoo.samplers import selection_indices, shot_indices
from zoo.store import load_entry, save_expert

TARGET, SHOTS, PER_CLASS = "mini_digits", 8, 6
WIDTH = 0.5  # resnet8 at half width: 32 features


def _card(arch_type: str, domains: list[tuple[str, int]], datasets: dict | None = None) -> dict:
    """``datasets``: domain -> its source datasets (the card's ``datasets``; absent when missing)."""
    datasets = datasets or {}
    return {
        "arch": "resnet8",
        "arch_kwargs": {"width": WIDTH},
        "type": arch_type,
        "domains": [
            {
                "name": n,
                "num_classes": c,
                "source_accuracy": 0.5 + 0.01 * i,
                **({"datasets": datasets[n]} if n in datasets else {}),
            }
            for i, (n, c) in enumerate(domains)
        ],
        "input_size": 32,
        "mean": list(MINI_MEAN),
        "std": list(MINI_STD),
    }


def _profile(seed: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((classes, 32)), rng.integers(5, 50, classes)


def _save_single(
    zoo_dir: Path, expert_id: str, seed: int, with_profile: bool = True, dataset: str = "mini_mnist"
) -> None:
    torch.manual_seed(seed)
    model = create_model("resnet8", num_classes=7, width=WIDTH)
    profile = {"src": _profile(seed, 7)} if with_profile else {}
    card = _card("single", [("src", 7)], {"src": [dataset]})
    save_expert(zoo_dir, expert_id, model, card, profile)


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory) -> Path:
    """Two single experts (one without a source profile) and a Multi-BN expert with 2 domains."""
    zoo_dir = tmp_path_factory.mktemp("zoo")
    _save_single(zoo_dir, "alpha", 0)
    _save_single(zoo_dir, "beta", 1, with_profile=False, dataset="mini_textures")
    torch.manual_seed(2)
    base = create_model("resnet8", num_classes=5, width=WIDTH)
    multi = MultiDomainClassifier(base, ["d1", "d2"], {"d1": 5, "d2": 4}, kind="multi_bn")
    # different BN statistics per domain, so the two entries differ
    with torch.no_grad():
        for name, m in multi.named_modules():
            if name.endswith("bns.d2"):
                m.weight.mul_(1.5)
    save_expert(
        zoo_dir,
        "gamma",
        multi,
        _card("multi_bn", [("d1", 5), ("d2", 4)], {"d1": ["mini_shapes"], "d2": ["mini_animals"]}),
        {"d1": _profile(3, 5), "d2": _profile(4, 4)},
    )
    return zoo_dir


def _cfg(
    out_dir: Path, zoo_dir: Path, method: str = "lfc", experts=("alpha", "beta", "gamma"), **over
):
    cfg = {
        "paths": {
            "out_dir": str(out_dir),
            "data_dir": str(out_dir / "data"),
            "zoo_dir": str(zoo_dir),
            "cache_dir": str(out_dir / "cache"),
            "selection_dir": str(out_dir / "selection"),
        },
        "benchmark": {"targets": [TARGET]},
        "sweep": {"shots": [SHOTS]},
        "zoo": {"experts": [{"id": e} for e in experts], "entries": None},
        "method": {"name": method},
        "target": {"name": TARGET},
        "shots": SHOTS,
        "seed": 0,
        "selection": {
            "per_class": PER_CLASS,
            "seed": 0,
            "batch_size": 32,
            "sample_cap": 40,
            "reference_entry": "alpha",
            "source_per_class": 10,
            "cache": True,
            "lgc": {"heads": 2, "dim": 16},
            "probe": {"steps": 2, "batch_size": 16},
        },
        "trainer": {"accelerator": "cpu"},
    }
    cfg.update(over)
    return OmegaConf.create(cfg)


ENTRIES = ["alpha", "beta", "gamma@d1", "gamma@d2"]


def _naive_lfc(features: np.ndarray, labels: np.ndarray) -> float:
    k = features @ features.T
    y = 2.0 * (labels[:, None] == labels[None, :]) - 1.0
    return float(np.corrcoef(k.ravel(), y.ravel())[0, 1])


def test_lfc_table_and_scores_match_an_independent_computation(tiny_zoo, tmp_path, capsys) -> None:
    results = evaluate_selection_main(_cfg(tmp_path, tiny_zoo))
    path = tmp_path / "selection" / TARGET / f"shots={SHOTS}" / "lfc.parquet"
    table = pd.read_parquet(path)
    assert list(table.columns) == SCORE_COLUMNS
    assert table["entry"].tolist() == ENTRIES
    assert (table["seed"] == 0).all() and (table["remedy"] == "").all()
    assert table["key"].nunique() == 1 and len(table["key"].iloc[0]) == 16
    assert (table["n"] == 10 * PER_CLASS).all() and table["cap"].isna().all()
    assert (table["extract_seconds"] > 0).all() and (table["score_seconds"] > 0).all()
    np.testing.assert_allclose(table["seconds"], table["extract_seconds"] + table["score_seconds"])
    pd.testing.assert_frame_equal(results[(TARGET, str(SHOTS), "lfc")], pd.read_parquet(path))
    # independent reference: the selection samples drawn here, features from the stored models
    train = load_split(TARGET, "train")
    shot = shot_indices(train.labels, SHOTS, 0)
    idx = shot[selection_indices(train.labels[shot], PER_CLASS, 0)]
    images, labels = train.subset(idx).tensors()
    for entry, value in zip(table["entry"], table["score"]):
        with torch.no_grad():
            feats = load_entry(entry, tiny_zoo).model.forward_features(images).double().numpy()
        assert value == pytest.approx(_naive_lfc(feats, labels.numpy()), abs=1e-5)
    out = capsys.readouterr().out
    assert "ranking of lfc on mini_digits shots=8" in out
    assert out.count(f"[{TARGET} shots={SHOTS}] (") == len(ENTRIES)  # one progress line per entry
    # gamma@d1 and gamma@d2 share weights but not BN statistics or heads
    assert table["score"].nunique() == len(ENTRIES)


def test_rerun_skips_complete_tables_and_recomputes_when_an_entry_is_new(
    tiny_zoo, tmp_path, monkeypatch, capsys
) -> None:
    evaluate_selection_main(_cfg(tmp_path, tiny_zoo, experts=("alpha", "gamma")))
    path = tmp_path / "selection" / TARGET / f"shots={SHOTS}" / "lfc.parquet"
    assert pd.read_parquet(path)["entry"].tolist() == ["alpha", "gamma@d1", "gamma@d2"]

    def no_scoring(*args, **kwargs):
        raise AssertionError("a complete table was recomputed")

    monkeypatch.setattr(ev, "score_detail", no_scoring)
    evaluate_selection_main(_cfg(tmp_path, tiny_zoo, experts=("alpha", "gamma")))
    assert "already scored, skipped: lfc" in capsys.readouterr().out
    monkeypatch.undo()
    # a new expert in the zoo config: the table no longer lists every entry, so it is recomputed
    calls = []
    real_extract = ev.Extractor.extract

    def counting_extract(self, entry, *args, **kwargs):
        calls.append(entry)
        return real_extract(self, entry, *args, **kwargs)

    monkeypatch.setattr(ev.Extractor, "extract", counting_extract)
    evaluate_selection_main(_cfg(tmp_path, tiny_zoo))
    assert pd.read_parquet(path)["entry"].tolist() == ENTRIES
    assert calls == ENTRIES


def test_method_all_writes_one_table_per_method_on_one_extraction(
    tiny_zoo, tmp_path, monkeypatch, capsys
) -> None:
    passes = []
    real_run_model = ex.run_model

    def counting_run_model(model, dataset, **kwargs):
        passes.append(kwargs.get("sketch") is not None)
        return real_run_model(model, dataset, **kwargs)

    monkeypatch.setattr(ex, "run_model", counting_run_model)
    # RSA's probe training has its own test (test_extract): a seeded stand-in keeps this one fast
    monkeypatch.setattr(
        ex,
        "train_probe",
        lambda train_set, eval_set, num_classes, **kw: np.random.default_rng(0).normal(
            size=(len(eval_set), 16)
        ),
    )
    tmp_path.mkdir(exist_ok=True)
    # alpha and beta only: the scores of every method on every entry cost more than the extraction
    cfg = _cfg(tmp_path, tiny_zoo, method="all", experts=("alpha", "beta"))
    results = evaluate_selection_main(cfg)
    # one pass per entry, features and sketch together (the reference alpha's pass serves domain
    # similarity too), plus one reference pass over each source dataset (mini_mnist, mini_textures)
    assert sorted(passes) == [False, False, True, True]
    cell = tmp_path / "selection" / TARGET / f"shots={SHOTS}"
    written = sorted(p.stem for p in cell.glob("*.parquet"))
    assert written == sorted(selection.available())
    for name, method in selection.available().items():
        table = pd.read_parquet(cell / f"{name}.parquet")
        assert list(table.columns) == SCORE_COLUMNS
        # beta was stored without a source profile: the own-space variant skips it with a note;
        # in the reference space its card's source datasets are enough
        own_profile = "source_profile" in method.needs and name != "domain_similarity"
        expected = ["alpha"] if own_profile else ["alpha", "beta"]
        assert table["entry"].tolist() == expected, name
        assert (table["seed"] == 0).all(), name
        if method.quadratic:
            assert (table["cap"] == 40).all() and (table["n"] == 40).all(), name
        else:
            assert table["cap"].isna().all() and (table["n"] == 10 * PER_CLASS).all(), name
    lgc = pd.read_parquet(cell / "lgc.parquet")
    lfc = pd.read_parquet(cell / "lfc.parquet")
    # LGC pays for the sketch pass, LFC only for the forward pass of the same extraction
    assert (lgc["extract_seconds"] >= lfc["extract_seconds"]).all()
    out = capsys.readouterr().out
    assert "domain_similarity_own_space skipped: no source_profile" in out
    assert "domain_similarity_own_space scored 1 of 2 entries" in out
    # the printout ranks each method's entries by score; analyze.py judges the ranking
    lfc = results[(TARGET, str(SHOTS), "lfc")].sort_values(
        ["score", "entry"], ascending=[False, True]
    )
    line = next(x for x in out.splitlines() if x.strip().startswith("lfc "))
    assert line.split("top: ")[1] == " > ".join(lfc["entry"].head(3))
    assert "spearman" not in out and "trials-to-best" not in out
    # a second run reuses the cached extraction: no model pass at all
    for p in cell.glob("*.parquet"):
        p.unlink()
    passes.clear()
    evaluate_selection_main(cfg)
    assert passes == []


def test_targets_and_shots_default_to_the_benchmark_and_sweep(tiny_zoo, tmp_path) -> None:
    cfg = _cfg(tmp_path, tiny_zoo, target=None, shots=None, experts=("alpha",))
    cfg.sweep.shots = [SHOTS, "full"]
    cfg.selection.per_class = 2
    results = evaluate_selection_main(cfg)
    assert sorted(results) == [(TARGET, "8", "lfc"), (TARGET, "full", "lfc")]
    assert (results[(TARGET, "full", "lfc")]["n"] == 20).all()


def test_method_configs_match_the_registry() -> None:
    config_dir = Path(ev.METHOD_CONFIG_DIR)
    names = sorted(p.stem for p in config_dir.glob("*.yaml"))
    assert names == sorted([*selection.available(), "all"])
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(30, 6)), np.repeat(np.arange(3), 10)
    for name, method in selection.available().items():
        node = OmegaConf.load(config_dir / f"{name}.yaml")
        assert node.name == name
        params = {k: v for k, v in node.items() if not k.startswith("_") and k != "name"}
        assert params == method.defaults, name
    params = ev.method_params("lfc")
    assert selection.score("lfc", features=features, labels=labels, **params) == pytest.approx(
        _naive_lfc(features, labels)
    )


def test_resolve_methods_and_bad_input(tiny_zoo, tmp_path) -> None:
    runs = resolve_methods({"name": "gbc", "pca_dim": 8})
    assert [(r.name, r.params) for r in runs] == [("gbc", {"pca_dim": 8})]
    assert [r.name for r in resolve_methods("all")] == list(selection.available())
    with pytest.raises(ValueError, match="pca_dims"):
        resolve_methods({"name": "gbc", "pca_dims": 8})
    with pytest.raises(ValueError, match="unknown selection method 'lfcc'"):
        resolve_methods({"name": "lfcc"})
    with pytest.raises(ValueError, match="not in the store"):
        evaluate_selection_main(_cfg(tmp_path, tiny_zoo, experts=("alpha", "nobody")))
    with pytest.raises(ValueError, match="shots"):
        evaluate_selection_main(_cfg(tmp_path, tiny_zoo, shots="many"))


def test_composed_config_runs(tiny_zoo, tmp_path, compose_cfg) -> None:
    from omegaconf import open_dict

    cfg = compose_cfg(
        "evaluate_selection",
        [
            "method=lfc",
            f"target={TARGET}",
            f"shots={SHOTS}",
            f"paths.out_dir={tmp_path}",
            f"paths.zoo_dir={tiny_zoo}",
            f"selection.per_class={PER_CLASS}",
            "trainer=cpu",
        ],
    )
    with open_dict(cfg):
        cfg.zoo.experts = [{"id": "alpha"}, {"id": "gamma"}]
        cfg.zoo.entries = None
    results = evaluate_selection_main(cfg)
    table = results[(TARGET, str(SHOTS), "lfc")]
    # the mini sweep fine-tunes seeds 0, 1 and 2: every draw is scored
    assert list(zip(table["seed"], table["entry"])) == [
        (s, e) for s in (0, 1, 2) for e in ("alpha", "gamma@d1", "gamma@d2")
    ]
    assert (tmp_path / "selection" / TARGET / f"shots={SHOTS}" / "lfc.parquet").is_file()
    for seed in (0, 1, 2):
        assert (tmp_path / "cache" / "alpha" / TARGET / f"shots={SHOTS}" / f"seed={seed}").is_dir()

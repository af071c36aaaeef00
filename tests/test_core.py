"""The bottom layer: shared keys, the ground-truth rule, typed settings, the store's entry list,
the shared linear algebra, and the import layering of the packages."""

from __future__ import annotations

import ast
import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException

from core import keys
from core.config import AnalysisConfig, FinetuneSettings, SelectionConfig, SweepConfig, typed
from core.ground_truth import ground_truth
from tests.factories import ROOT, compose

# ---------------------------------------------------------------------------------------------
# keys


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (20, 20),
        (np.int64(3), 3),
        (20.0, 20),
        (np.float32(5.0), 5),
        ("20", 20),
        (" 20 ", 20),
        ("20.0", 20),
        ("shots=7", 7),
        ("full", "full"),
        ("FULL", "full"),
        ("shots=full", "full"),
        (None, "full"),
    ],
)
def test_every_spelling_of_shots_parses_to_one_value(value, parsed):
    assert keys.parse_shots(value) == parsed
    assert keys.format_shots(value) == str(parsed)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "2.5", "few", True, np.bool_(True), "all", math.nan])
def test_bad_shots_raise_one_message(bad):
    with pytest.raises(
        ValueError, match=r"invalid shots value .*valid: 'full' or a positive integer"
    ):
        keys.parse_shots(bad)


def test_all_is_a_shots_label_only_where_asked():
    assert keys.format_shots(" All ", allow_unspecified=True) == "all"
    assert sorted(["full", "20", "5", "all"], key=keys.shots_sort_key) == ["5", "20", "full", "all"]


def test_lr_text_is_canonical():
    assert [keys.format_lr(x) for x in (0.01, 0.1 * 0.3, 1e-5, "0.003", 0)] == [
        "0.01",
        "0.03",
        "1e-05",
        "0.003",
        "0",
    ]
    for bad in (-0.1, math.inf, math.nan, "fast", None):
        with pytest.raises(ValueError, match="invalid learning rate"):
            keys.format_lr(bad)


def test_entry_ids_split_and_join():
    assert keys.split_entry("multi_bn@mini_shapes") == ("multi_bn", "mini_shapes")
    assert keys.split_entry("resnet8_mnist") == ("resnet8_mnist", None)
    assert keys.expert_of("a@b") == "a"
    assert keys.join_entry("a", "b") == "a@b" and keys.join_entry("a") == "a"
    for bad in ("", "@d", "e@", 3):
        with pytest.raises(ValueError, match="invalid entry id"):
            keys.split_entry(bad)
    with pytest.raises(ValueError, match="invalid expert id"):
        keys.join_entry("a@b", "c")


def test_table_columns_extend_the_run_key():
    assert keys.RUN_COLUMNS[:5] == keys.RUN_KEY == keys.RESULT_FIELDS[:5]
    assert set(keys.RUN_COLUMNS) <= set(keys.RESULT_FIELDS)
    assert keys.GT_COLUMNS[:3] == keys.GT_KEY == keys.SEED_ACC_COLUMNS[:3]


# ---------------------------------------------------------------------------------------------
# ground truth


def _naive_ground_truth(rows: list[tuple]) -> dict:
    """(target, shots, entry) -> (acc, best_lr, n_seeds, n_lrs, n_runs, seconds) by plain loops."""
    out = {}
    for key in sorted({r[:3] for r in rows}):
        mine = [r for r in rows if r[:3] == key]
        per_lr = {}
        for _, _, _, lr, seed, acc, _ in mine:
            if not math.isnan(acc):
                per_lr.setdefault(lr, []).append((seed, acc))
        best_lr, best = math.nan, -math.inf
        for lr in sorted(per_lr):  # ascending: a tie keeps the smaller lr
            mean = sum(a for _, a in per_lr[lr]) / len(per_lr[lr])
            if mean > best:
                best_lr, best = lr, mean
        secs = [r[6] for r in mine if not math.isnan(r[6])]
        out[key] = (
            best if per_lr else math.nan,
            best_lr,
            len({s for s, _ in per_lr.get(best_lr, [])}),
            len({r[3] for r in mine}),
            len(mine),
            sum(secs) if secs else math.nan,
        )
    return out


def test_ground_truth_matches_a_naive_loop_on_edge_cases():
    nan = math.nan
    rows = [
        # a tie at mean 60 between 0.1 and 0.05 -> 0.05; one failed run counts in cost only
        ("t", "20", "tie", 0.1, 0, 60.0, 1.0),
        ("t", "20", "tie", 0.05, 0, 55.0, 2.0),
        ("t", "20", "tie", 0.05, 1, 65.0, 3.0),
        ("t", "20", "tie", 0.01, 0, nan, 4.0),
        # every run failed: a row with acc = NaN, n_seeds = 0
        ("t", "20", "dead", 0.1, 0, nan, 1.5),
        # no run reports seconds: the cost is unknown (NaN), not 0
        ("t", "full", "nosecs", 0.1, 0, 80.0, nan),
        ("t", "full", "nosecs", 0.01, 0, 90.0, nan),
        # some seconds missing: the known ones are summed
        ("u", "5", "part", 0.1, 0, 30.0, nan),
        ("u", "5", "part", 0.1, 1, 50.0, 2.5),
    ]
    # other spellings of shots that mean the same cells
    spelt = [(r[0], {0: 20, 5: "FULL"}.get(i, r[1]), *r[2:]) for i, r in enumerate(rows)]
    runs = pd.DataFrame(spelt, columns=[*keys.RUN_REQUIRED_COLUMNS, "seconds"], dtype=object)
    gt = ground_truth(runs)
    assert list(gt.columns) == list(keys.GT_COLUMNS)
    want = _naive_ground_truth(rows)
    assert [tuple(r) for r in gt[list(keys.GT_KEY)].itertuples(index=False)] == sorted(want)
    for row in gt.itertuples(index=False):
        expected = want[(row.target, row.shots, row.entry)]
        got = (row.acc, row.best_lr, row.n_seeds, row.n_lrs, row.n_runs, row.seconds)
        np.testing.assert_allclose(got, expected, equal_nan=True)
    tie = gt.set_index("entry").loc["tie"]
    assert tie.best_lr == 0.05 and tie.acc == 60.0 and tie.n_seeds == 2 and tie.seconds == 10.0


def test_ground_truth_of_no_runs_and_missing_columns():
    empty = ground_truth(pd.DataFrame(columns=list(keys.RUN_REQUIRED_COLUMNS)))
    assert empty.empty and list(empty.columns) == list(keys.GT_COLUMNS)
    with pytest.raises(ValueError, match=r"lacks columns \['test_acc'\]"):
        ground_truth(pd.DataFrame(columns=list(keys.RUN_KEY)))


def test_collect_and_analysis_share_the_rule():
    from analysis.tables import ground_truth as analysis_gt
    from finetune.collect import ground_truth as collect_gt

    rows = [("t", "20", e, lr, s, 50.0 + 10 * lr + s + i, 1.0) for i, e in enumerate("ab")
            for lr in (0.1, 0.01) for s in (0, 1)]  # fmt: skip
    runs = pd.DataFrame(rows, columns=[*keys.RUN_REQUIRED_COLUMNS, "seconds"])
    a, c = analysis_gt(runs), collect_gt(runs)
    pd.testing.assert_frame_equal(a.astype({k: "string" for k in keys.GT_KEY}), c)


# ---------------------------------------------------------------------------------------------
# typed settings


def test_composed_settings_are_the_typed_objects():
    cfg = compose("finetune", ["experiment=tiny", "trainer.precision=32-true"])
    ft = typed(FinetuneSettings, cfg.finetune)
    # the recipe from configs/finetune + experiment, the device policy from the trainer node
    assert (ft.epochs, ft.min_steps, ft.batch_size, ft.precision) == (0, 3, 16, "32-true")
    assert typed(SweepConfig, cfg.sweep).lrs == [0.1, 0.01]
    sel = typed(SelectionConfig, compose("evaluate_selection", ["experiment=tiny"]).selection)
    assert sel.probe.steps == 5 and sel.lgc.heads == 4
    assert typed(AnalysisConfig, compose("analyze").analysis).topk == 5


@pytest.mark.parametrize(
    ("config", "override"),
    [
        ("evaluate_selection", "selection.lgcc.heads=1"),
        ("evaluate_selection", "selection.probe.step=1"),
        ("finetune", "finetune.epoch=1"),
        ("finetune", "sweep.seed=[1]"),
        ("analyze", "analysis.topkk=1"),
    ],
)
def test_a_misspelt_override_fails_at_composition(config, override):
    with pytest.raises(ConfigCompositionException, match="Could not override"):
        compose(config, [override])


def test_a_force_added_key_fails_when_the_settings_are_built():
    # `+key=value` force-adds through a typed node in Hydra; the settings object refuses it
    cfg = compose("evaluate_selection", ["+selection.lgcc.heads=1"])
    with pytest.raises(ValueError, match=r"unknown keys \['lgcc'\] in selection"):
        typed(SelectionConfig, cfg.selection)
    cfg = compose("evaluate_selection", ["+selection.lgc.head=1"])
    with pytest.raises(ValueError, match=r"unknown keys \['head'\] in selection.lgc.*'heads'"):
        typed(SelectionConfig, cfg.selection)


@pytest.mark.parametrize(
    ("config", "body", "key"),
    [
        ("evaluate_selection", "selection:\n  lgcc:\n    heads: 1\n", "lgcc"),
        ("evaluate_selection", "selection:\n  probe:\n    stepz: 5\n", "stepz"),
        ("finetune", "finetune:\n  min_step: 3\n", "min_step"),
        ("finetune", "sweep:\n  lr: [0.1]\n", "lr"),
        ("analyze", "analysis:\n  bootstraps: 10\n", "bootstraps"),
    ],
)
def test_a_misspelt_key_in_an_experiment_file_fails_at_composition(tmp_path, config, body, key):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "typo.yaml").write_text("# @package _global_\n" + body)
    with pytest.raises(ConfigCompositionException, match=f"Key '{key}' not in"):
        compose(config, [f"hydra.searchpath=[file://{tmp_path}]", "experiment=typo"])


def test_hand_built_nodes_take_the_schema_defaults_and_checks():
    from omegaconf import OmegaConf

    assert typed(AnalysisConfig, OmegaConf.create({"topk": 2})).bootstrap == 1000
    assert typed(AnalysisConfig, None) == AnalysisConfig()
    with pytest.raises(ValueError, match="selection setting per_class must be a positive integer"):
        typed(SelectionConfig, OmegaConf.create({"per_class": 0}))
    with pytest.raises(ValueError, match="invalid val_fraction"):
        typed(FinetuneSettings, OmegaConf.create({"val_fraction": 1.0}))


def test_method_files_hold_parameters_only():
    for path in sorted((ROOT / "configs" / "method").glob("*.yaml")):
        text = path.read_text()
        assert "_target_" not in text and "_partial_" not in text, path.name


# ---------------------------------------------------------------------------------------------
# the store's entry list


def _card_store(root: Path) -> Path:
    for expert, domains in (("a", None), ("m", ["x", "y"]), ("z", None)):
        (root / expert).mkdir(parents=True)
        card = {"expert_id": expert, "type": "multi_bn" if domains else "single"}
        card["domains"] = [{"name": d} for d in (domains or ["src"])]
        (root / expert / "card.json").write_text(json.dumps(card))
    return root


def test_zoo_entries_strict_and_lenient(tmp_path, caplog):
    from zoo.store import zoo_entries

    zoo = _card_store(tmp_path / "zoo")
    assert zoo_entries(zoo, strict=True) == ["a", "m@x", "m@y", "z"]
    assert zoo_entries(zoo, ["z", "m"], strict=True) == ["m@x", "m@y", "z"]
    assert zoo_entries(zoo, ["a"], ["m@y", "a"], strict=True) == ["a", "m@y"]
    with pytest.raises(ValueError, match=r"experts \['gone'\] of the zoo config.*stored: a, m, z"):
        zoo_entries(zoo, ["a", "gone"], strict=True)
    with pytest.raises(ValueError, match=r"unknown zoo entries \['m@q'\].*known: a, m@x"):
        zoo_entries(zoo, None, ["m@q"], strict=True)
    with caplog.at_level(logging.WARNING, logger="zoo.store"):
        assert zoo_entries(zoo, ["a", "gone"], strict=False) == ["a"]
    assert "['gone']" in caplog.text and "(left out)" in caplog.text
    with pytest.raises(ValueError, match="no zoo entries to fine-tune or score"):
        zoo_entries(zoo, None, ["m@q"], strict=False)
    with pytest.raises(ValueError, match="empty zoo: no expert in"):
        zoo_entries(tmp_path / "nothing", strict=False)


# ---------------------------------------------------------------------------------------------
# shared linear algebra


def test_class_sums_equal_a_dense_loop():
    from selection.linalg import class_index, class_sums

    rng = np.random.default_rng(0)
    labels = rng.choice([3, 7, 11], size=40)
    values = rng.normal(size=(40, 5))
    index, counts = class_index(labels)
    expected = np.stack([values[labels == c].sum(axis=0) for c in (3, 7, 11)])
    np.testing.assert_allclose(class_sums(values, index, 3), expected, rtol=1e-12)
    assert counts.tolist() == [(labels == c).sum() for c in (3, 7, 11)]


# ---------------------------------------------------------------------------------------------
# layering


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0] if node.module else "")
            names.update(f"{node.module}.{a.name}" for a in node.names)
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


@pytest.mark.parametrize(
    ("package", "forbidden", "exempt"),
    [
        ("core", {"zoo", "finetune", "selection", "analysis"}, ()),
        # analysis/report.py's Method.reference lookup is the one allowed selection import
        ("analysis", {"zoo", "finetune", "selection"}, ("report.py",)),
        # selection/select.py (select_model.py's logic) composes scoring with fine-tuning the top
        # K entries: the one allowed finetune import
        ("selection", {"analysis", "finetune"}, ("select.py",)),
        ("finetune", {"analysis", "selection"}, ()),
    ],
)
def test_layering(package, forbidden, exempt):
    bad = {
        str(p.relative_to(ROOT)): sorted(_top(_imports(p)) & forbidden)
        for p in (ROOT / package).rglob("*.py")
        if p.name not in exempt
    }
    assert not {k: v for k, v in bad.items() if v}


def test_method_files_import_helpers_not_methods():
    for path in sorted((ROOT / "selection" / "methods").glob("*.py")):
        assert not any(n.startswith("selection.methods") for n in _imports(path)), path.name

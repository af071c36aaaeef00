"""Per-draw judging, n_entries flags, the noise ceiling, remedy marks, reference methods and the
multi-domain view, against hand-computed tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis.ceiling import (
    SEED_AGREEMENT,
    agreement,
    agreement_with_ci,
    domain_agreement_table,
    seed_agreement_table,
)
from analysis.compute import compute_analysis, reference_methods
from analysis.main import analyze_main, load_byo
from analysis.report import write_report
from analysis.tables import (
    DOMAIN_MEAN_REFERENCE,
    domain_selection,
    ground_truth,
    merge_tables,
    seed_accuracy,
)
from analysis.validate import InputTableError
from tests.test_analysis_metrics import _naive_weighted_tau
from tests.test_analysis_report import _cfg, _metric

# One 5-shot cell, entries base, a, b, c; two seeds; lr 0.01 is 10 points below lr 0.1 everywhere,
# so every entry's ground-truth lr is 0.1. Test accuracy at lr 0.1:
#   entry   seed 0   seed 1   mean
#   base      50       60      55
#   a         70       62      66
#   b         64       72      68
#   c         60       58      59
SEED_ACC = {"base": (50.0, 60.0), "a": (70.0, 62.0), "b": (64.0, 72.0), "c": (60.0, 58.0)}


def _runs(target: str = "t", shots: str = "5") -> pd.DataFrame:
    rows = []
    for entry, accs in SEED_ACC.items():
        for seed, acc in enumerate(accs):
            for lr, shift in ((0.1, 0.0), (0.01, -10.0)):
                rows.append((target, shots, entry, lr, seed, acc + shift, 1.0))
    return pd.DataFrame(
        rows, columns=["target", "shots", "entry", "lr", "seed", "test_acc", "seconds"]
    )


def _scores(method: str, per_seed: dict[int, dict[str, float]], **extra) -> pd.DataFrame:
    rows = [
        {"target": "t", "shots": "5", "method": method, "entry": e, "score": s, "seed": seed}
        for seed, scores in per_seed.items()
        for e, s in scores.items()
    ]
    return pd.DataFrame(rows).assign(seconds=0.5, **extra)


# draw 0 ranks a > b > c > base; draw 1 ranks b > a > c > base
TWO_DRAWS = {0: {"a": 3, "b": 2, "c": 1, "base": 0}, 1: {"a": 2, "b": 3, "c": 1, "base": 0}}


def test_seed_accuracy_is_each_seed_at_the_ground_truth_lr():
    runs = _runs()
    sa = seed_accuracy(runs, ground_truth(runs)).set_index(["entry", "seed"])["acc"]
    assert sa[("b", 1)] == 72.0 and sa[("base", 0)] == 50.0 and len(sa) == 8


def test_each_draw_is_judged_against_its_own_seed():
    runs = _runs()
    gt = ground_truth(runs)
    a = compute_analysis(
        gt, _scores("m", TWO_DRAWS), name="x", baseline="base", n_boot=50, runs=runs
    )
    t = a.metrics
    # draw 0: top-1 a, 70 - 50 = +20, a is seed 0's best (trials 1), Spearman 1
    # draw 1: top-1 b, 72 - 60 = +12, b is seed 1's best (trials 1); scores rank (a 3, b 4, c 2,
    #   base 1) vs accuracies (3, 4, 1, 2): d^2 = 2, rho = 1 - 6*2/(4*15) = 0.8
    assert _metric(t, "t", "m", "top1_gain") == pytest.approx(16.0)
    assert _metric(t, "t", "m", "trials_to_best") == 1.0
    assert _metric(t, "t", "m", "spearman") == pytest.approx(0.9)
    assert _metric(t, "t", "m", "n_draws") == 2.0
    assert _metric(t, "t", "m", "n_entries") == 4.0
    # Random per draw: E[top-1 acc] = mean acc of the draw; (61 - 50 + 63 - 60) / 2 = 7
    assert _metric(t, "t", "random_expected", "top1_gain") == pytest.approx(7.0)
    # judged against the seed mean instead, the same draws would give (66 - 55 + 68 - 55) / 2 = 12
    no_runs = compute_analysis(gt, _scores("m", TWO_DRAWS), name="x", baseline="base", n_boot=0)
    assert _metric(no_runs.metrics, "t", "m", "top1_gain") == pytest.approx(12.0)
    assert any("seed mean" in n for n in no_runs.notes)


def test_one_draw_or_no_seed_column_is_judged_against_the_seed_mean():
    runs = _runs()
    gt = ground_truth(runs)
    one = _scores("m", {1: TWO_DRAWS[1]})
    none = one.drop(columns="seed")
    for scores in (one, none):
        a = compute_analysis(gt, scores, name="x", baseline="base", n_boot=0, runs=runs)
        # b first: 68 - 55 = +13 against the means
        assert _metric(a.metrics, "t", "m", "top1_gain") == pytest.approx(13.0)
        assert _metric(a.metrics, "t", "m", "n_draws") == 1.0


def test_a_draw_without_runs_of_its_seed_is_left_out_with_a_note():
    runs = _runs()
    gt = ground_truth(runs)
    scores = _scores("m", {**TWO_DRAWS, 7: TWO_DRAWS[0]})
    notes: list[str] = []
    merged = merge_tables(gt, scores, seed_accuracy(runs, gt), notes)
    assert sorted(merged["draw"].unique()) == [0, 1]
    assert any("seed=7" in n for n in notes)


def test_noise_ceiling_by_hand():
    # entries x seeds: s0 = 1 2 3 4, s1 = 2 1 3 4, s2 = 4 3 2 1
    acc = np.array([[1, 2, 4], [2, 1, 3], [3, 3, 2], [4, 4, 1]], dtype=float)
    got = agreement(acc)
    # rho(s0, s1) = 1 - 6*2/60 = 0.8; rho(s0, s2) = -1; rho(s1, s2): d = -2 -2 1 3 -> 1 - 6*18/60
    assert got["spearman"] == pytest.approx((0.8 - 1.0 - 0.8) / 3)
    # best entries: s0 and s1 entry 3, s2 entry 0 -> one pair of three agrees
    assert got["top1_agreement"] == pytest.approx(1 / 3)
    naive = [
        0.5 * (_naive_weighted_tau(x, y, [x, y]) + _naive_weighted_tau(x, y, [y, x]))
        for x, y in ((acc[:, 0], acc[:, 1]), (acc[:, 0], acc[:, 2]), (acc[:, 1], acc[:, 2]))
    ]
    assert got["wtau"] == pytest.approx(np.mean(naive))
    # ties at the top: the best sets {0, 1} and {1} share entry 1 -> agreement
    assert agreement(np.array([[5.0, 1.0], [5.0, 5.0], [1.0, 0.0]]))["top1_agreement"] == 1.0
    with pytest.raises(ValueError, match="at least 2 seeds"):
        agreement(np.ones((3, 1)))


def test_noise_ceiling_interval_is_a_bootstrap_over_entries():
    acc = np.array([[1, 2], [2, 1], [3, 3.5], [4, 4], [5, 7], [6, 5]], dtype=float)
    got = agreement_with_ci(acc, n_boot=200, seed=5)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 6, size=(200, 6))
    naive = [agreement(acc[i]) for i in idx]
    for k in ("spearman", "wtau", "top1_agreement"):
        v = np.array([d[k] for d in naive])
        v = v[np.isfinite(v)]
        low, high = np.quantile(v, [0.025, 0.975])
        assert got[f"{k}_ci_low"] == pytest.approx(low)
        assert got[f"{k}_ci_high"] == pytest.approx(high)
    # identical seeds: every defined resample agrees perfectly
    same = agreement_with_ci(np.column_stack([acc[:, 0], acc[:, 0]]), n_boot=100)
    assert same["spearman_ci_low"] == same["spearman_ci_high"] == 1.0


def test_noise_ceiling_rows_in_metrics_and_report(tmp_path):
    runs = _runs()
    gt = ground_truth(runs)
    table = seed_agreement_table(seed_accuracy(runs, gt), n_boot=50)
    assert set(table["method"]) == {SEED_AGREEMENT}
    # seed 0: base 50 a 70 b 64 c 60 -> ranks 1 4 3 2; seed 1: 60 62 72 58 -> 2 3 4 1
    assert _metric(table, "t", SEED_AGREEMENT, "spearman") == pytest.approx(1 - 6 * 4 / 60)
    assert _metric(table, "t", SEED_AGREEMENT, "top1_agreement") == 0.0
    assert _metric(table, "t", SEED_AGREEMENT, "n_seeds") == 2.0
    a = compute_analysis(
        gt, _scores("m", TWO_DRAWS), name="x", baseline="base", runs=runs, n_boot=50
    )
    files = write_report(a, tmp_path)
    metrics = pd.read_csv(files["metrics"], dtype={"shots": str})
    assert _metric(metrics, "t", SEED_AGREEMENT, "spearman") == pytest.approx(0.6)
    report = files["report"].read_text()
    assert "## Noise ceiling" in report and "the noise of the ground truth itself" in report
    assert "| seed_agreement (noise ceiling) |" in report
    assert "| t | 5 | 2 | 4 | 0.600" in report


def test_multi_domain_view_has_its_own_noise_ceiling(tmp_path):
    # seeds 0, 1: the single experts agree (base < a), the three domains of m swap their order
    accs = {
        "base": (50, 51),
        "a": (80, 81),
        "m@x": (60, 62),
        "m@y": (61, 60),
        "m@z": (62, 61),
        "n@only": (70, 70),
    }
    seed_acc = pd.DataFrame(
        [("t", "5", e, s, v[s]) for e, v in accs.items() for s in (0, 1)],
        columns=["target", "shots", "entry", "seed", "acc"],
    )
    table = domain_agreement_table(seed_acc, n_boot=20)
    # only m: n has one domain; entries m@x m@y m@z ranks (1 2 3) vs (3 1 2) -> d = -2 1 1
    assert set(table["expert"]) == {"m"}
    assert _metric(table, "t", SEED_AGREEMENT, "spearman") == pytest.approx(1 - 6 * 6 / 24)
    assert _metric(table, "t", SEED_AGREEMENT, "n_entries") == 3.0
    assert _metric(table, "t", SEED_AGREEMENT, "top1_agreement") == 0.0
    # the pooled ceiling over every entry is higher: the singles' gaps dominate
    pooled = seed_agreement_table(seed_acc, n_boot=20)
    assert _metric(pooled, "t", SEED_AGREEMENT, "spearman") > 0.8

    runs = pd.DataFrame(
        [("t", "5", e, 0.1, s, v[s], 1.0) for e, v in accs.items() for s in (0, 1)],
        columns=["target", "shots", "entry", "lr", "seed", "test_acc", "seconds"],
    )
    scores = pd.DataFrame(
        [
            {"target": "t", "shots": "5", "method": "m1", "entry": e, "score": i, "seed": s}
            for s in (0, 1)
            for i, e in enumerate(accs)
        ]
    ).assign(seconds=0.5)
    a = compute_analysis(
        ground_truth(runs), scores, name="x", baseline="base", runs=runs, n_boot=20
    )
    files = write_report(a, tmp_path)
    written = pd.read_csv(files["domain_ceiling"], dtype={"shots": str})
    assert _metric(
        written[written["expert"] == "m"], "t", SEED_AGREEMENT, "spearman"
    ) == pytest.approx(-0.5)
    report = files["report"].read_text()
    assert "### Noise ceiling of the multi-domain view" in report
    assert "| m | t | 5 | 2 | 3 | -0.500" in report


def _partial_analysis(**kw):
    """Four methods on the cell of SEED_ACC (one draw, judged against the means 55/66/68/59):
    good: b > a > c > base (perfect); partial: perfect but skipped c; param_count: perfect
    (a reference); fixed: a > b > c > base with a remedy on two rows."""
    runs = _runs()
    gt = ground_truth(runs)
    perfect = {"b": 4, "a": 3, "c": 2, "base": 1}
    scores = pd.concat(
        [
            _scores("good", {0: perfect}),
            _scores("partial", {0: {k: v for k, v in perfect.items() if k != "c"}}),
            _scores("param_count", {0: perfect}),
            _scores("fixed", {0: {"a": 4, "b": 3, "c": 2, "base": 1}}).assign(
                remedy=["pca to 3 dims (N=4 <= 2*D=8)"] * 2 + [""] * 2
            ),
        ],
        ignore_index=True,
    )
    return compute_analysis(gt, scores, name="x", baseline="base", n_boot=50, runs=runs, **kw)


def test_fewer_entries_remedies_and_references_are_marked(tmp_path):
    a = _partial_analysis()
    t = a.metrics
    assert _metric(t, "t", "partial", "n_entries") == 3.0
    assert _metric(t, "t", "good", "n_entries") == 4.0
    assert _metric(t, "t", "fixed", "remedied") == 2.0
    assert _metric(t, "t", "good", "remedied") == 0.0
    assert a.references == {"param_count"}
    files = write_report(a, tmp_path)
    summary = files["summary_md"].read_text()
    assert "| partial ‡ |" in summary and "| fixed † |" in summary
    assert "fixed: pca to 3 dims (N=4 <= 2*D=8) (t)" in summary
    assert "partial: t: 3 of 4 entries" in summary
    # the reference sits in its own table after the selection methods
    main, refs = summary.split("Reference methods")
    assert "| param_count |" in refs and "| param_count |" not in main
    report = files["report"].read_text()
    findings = report.split("## Findings")[1].split("##")[0]
    # partial (3 entries, trials 1) and param_count (perfect) are never crowned
    assert "by trials-to-best is good and fixed" not in findings
    assert "by Spearman is good" in findings
    assert "by top-1 gain is good (" in findings
    assert (
        "Not ranked above: param_count (a reference method), partial (judged on fewer" in findings
    )


def test_reference_methods_come_from_the_score_tables():
    runs = _runs()
    gt = ground_truth(runs)
    table = {0: {"a": 1, "b": 2, "c": 3, "base": 0}}
    scores = pd.concat([_scores(m, table) for m in ("lfc", "param_count", "my_score")])
    # a table without the column (brought by a user): the built-in references
    merged = merge_tables(gt, scores.drop(columns="reference", errors="ignore"))
    assert reference_methods(merged) == {"param_count"}
    # the score tables' own flag (a user-registered reference method)
    flagged = scores.assign(reference=scores["method"] == "my_score")
    assert reference_methods(merge_tables(gt, flagged)) == {"my_score"}


def test_no_method_ranked_when_every_method_is_incomplete_or_a_reference(tmp_path):
    runs = _runs()
    gt = ground_truth(runs)
    scores = pd.concat(
        [
            _scores("param_count", {0: {"a": 1, "b": 2, "c": 3, "base": 0}}),
            _scores("partial", {0: {"a": 1, "b": 2}}),
        ]
    )
    a = compute_analysis(gt, scores, name="x", baseline="base", n_boot=0, runs=runs)
    report = write_report(a, tmp_path)["report"].read_text()
    assert "none is ranked" in report


def _domain_merged():
    # expert md with domains imagenet, x, y; two draws with different accuracies
    #   draw 0: imagenet 60, x 70, y 65; draw 1: imagenet 62, x 60, y 70
    # lfc scores x > y > imagenet, leep y > x > imagenet (both draws); single entry s
    acc = {0: {"imagenet": 60.0, "x": 70.0, "y": 65.0}, 1: {"imagenet": 62.0, "x": 60.0, "y": 70.0}}
    score = {"lfc": {"x": 3, "y": 2, "imagenet": 1}, "leep": {"y": 3, "x": 2, "imagenet": 1}}
    rows = [
        ("t", "5", method, f"md@{d}", s, acc[draw][d], draw, "")
        for method, sc in score.items()
        for draw in (0, 1)
        for d, s in sc.items()
    ]
    rows += [("t", "5", m, "s", 9.0, 90.0, draw, "") for m in score for draw in (0, 1)]
    return pd.DataFrame(
        rows, columns=["target", "shots", "method", "entry", "score", "acc", "draw", "remedy"]
    )


def test_multi_domain_view_against_the_domain_baseline_by_hand():
    d = domain_selection(_domain_merged(), {"md": "multi_bn"}, "md@imagenet").set_index("method")
    lfc, leep, rnd = d.loc["lfc"], d.loc["leep"], d.loc["random_expected"]
    # lfc: draw 0 picks x, 70 - 60 = +10 (trials 1, rho 1); draw 1 picks x, 60 - 62 = -2, best y
    #   second (trials 2), scores (x 3, y 2, im 1) vs acc ranks (x 1, y 3, im 2): rho = 1 - 6*6/24
    assert lfc["top1_gain"] == pytest.approx(4.0)
    assert lfc["trials_to_best"] == pytest.approx(1.5)
    assert lfc["spearman"] == pytest.approx((1.0 + (1 - 6 * 6 / 24)) / 2)
    assert lfc["n_draws"] == 2 and lfc["n_domains"] == 3 and lfc["reference"] == "md@imagenet"
    # top-3 holds every domain: best acc minus reference, (10 + 8) / 2
    assert lfc["top3_gain"] == pytest.approx(9.0)
    # leep: draw 0 y, 65 - 60 = +5 (trials 2); draw 1 y, 70 - 62 = +8 (trials 1)
    assert leep["top1_gain"] == pytest.approx(6.5) and leep["trials_to_best"] == 1.5
    assert leep["picked_domain"] == "y" and leep["expert_type"] == "multi_bn"
    # random: mean acc per draw minus reference: (65 - 60 + 64 - 62) / 2 = 3.5
    assert rnd["top1_gain"] == pytest.approx(3.5)
    assert rnd["reference_acc"] == pytest.approx(61.0)
    # the single-domain entry s (90) is not part of the view
    assert lfc["best_acc"] == pytest.approx(70.0)


def test_multi_domain_view_falls_back_to_the_mean_over_domains():
    for baseline in (None, "other@imagenet"):
        notes: list[str] = []
        d = domain_selection(_domain_merged(), None, baseline, notes).set_index("method")
        # reference per draw: mean 65 and 64; lfc (70 - 65 + 60 - 64) / 2 = 0.5
        assert d.loc["lfc", "reference"] == DOMAIN_MEAN_REFERENCE
        assert d.loc["lfc", "top1_gain"] == pytest.approx(0.5)
        assert d.loc["random_expected", "top1_gain"] == pytest.approx(0.0)
        assert len(notes) == 1 and "mean accuracy over the expert's domains" in notes[0]


def test_byo_scores_with_seed_and_remedy_columns(tmp_path, capsys):
    runs = _runs()
    runs.drop(columns="seconds").to_csv(tmp_path / "runs.csv", index=False)
    scores = _scores("m", TWO_DRAWS, remedy="").drop(columns=["seconds", "shots"]).assign(shots=5)
    scores.loc[0, "remedy"] = "shrinkage"
    scores.to_csv(tmp_path / "scores.csv", index=False)
    gt, sc, got_runs = load_byo(tmp_path / "runs.csv", tmp_path / "scores.csv", "base")
    assert got_runs is not None and sorted(sc["seed"].unique()) == [0, 1]
    assert sc["remedy"].tolist().count("shrinkage") == 1
    cfg = _cfg(
        gt=str(tmp_path / "runs.csv"),
        scores=str(tmp_path / "scores.csv"),
        out=str(tmp_path / "out"),
        baseline="base",
    )
    analyze_main(cfg)
    t = pd.read_csv(tmp_path / "out" / "metrics.csv", dtype={"shots": str})
    assert _metric(t, "t", "m", "top1_gain") == pytest.approx(16.0)
    assert _metric(t, "t", "m", "remedied") == 1.0
    # a seed that is not an integer is refused
    scores["seed"] = scores["seed"].astype(float)
    scores.loc[1, "seed"] = 0.5
    scores.to_csv(tmp_path / "scores.csv", index=False)
    with pytest.raises(InputTableError, match="seed"):
        load_byo(tmp_path / "runs.csv", tmp_path / "scores.csv", "base")


def test_domain_baseline_config_key_is_optional():
    cfg = OmegaConf.load("configs/analysis/default.yaml")
    node = OmegaConf.create({"analysis": cfg, "benchmark": {"baseline": "g"}})
    assert OmegaConf.select(node, "analysis.domain_baseline") is None
    node = OmegaConf.create(
        {"analysis": cfg, "benchmark": {"baseline": "g", "domain_baseline": "md@g"}}
    )
    assert OmegaConf.select(node, "analysis.domain_baseline") == "md@g"
    assert math.isfinite(1.0)


def test_multi_domain_view_counts_the_domains_each_method_scored():
    merged = _domain_merged()
    merged = merged[~((merged.method == "leep") & (merged.entry == "md@x"))]
    d = domain_selection(merged, None, "md@imagenet").set_index("method")
    assert (d.loc["leep", "n_scored"], d.loc["leep", "n_domains"]) == (2, 3)
    assert d.loc["lfc", "n_scored"] == 3
    # leep over imagenet and y only: y first in both draws, (65 - 60 + 70 - 62) / 2 = 6.5
    assert d.loc["leep", "top1_gain"] == pytest.approx(6.5)


def test_tables_with_and_without_seed_mix_in_one_scores_table():
    from analysis.validate import check_scores

    runs = _runs()
    gt = ground_truth(runs)
    new = _scores("m", TWO_DRAWS)
    old = _scores("o", {0: TWO_DRAWS[1]}).drop(columns="seed")
    scores, _ = check_scores(pd.concat([new, old], ignore_index=True), strict=False)
    a = compute_analysis(gt, scores, name="x", baseline="base", n_boot=0, runs=runs)
    assert _metric(a.metrics, "t", "m", "top1_gain") == pytest.approx(16.0)
    assert _metric(a.metrics, "t", "o", "top1_gain") == pytest.approx(13.0)
    assert _metric(a.metrics, "t", "o", "n_draws") == 1.0

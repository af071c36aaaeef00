"""Ranking metrics, tables and ground truth against hand-computed values and naive references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from analysis import metrics as m
from analysis.tables import (
    domain_selection,
    ground_truth,
    load_ground_truth,
    load_scores,
    normalize_shots,
    sorted_shots,
    split_finetune_table,
)
from core.keys import GT_COLUMNS, MERGED_COLUMNS

# A 4-entry cell used throughout: scores with a tie (b, c), accuracies all distinct.
#   entry   a    b    c    d
#   score   3    2    2    1
#   acc    70   80   90   60
# pessimistic order: a (3), then the tie b (80) before c (90), then d -> a, b, c, d
SCORE = [3.0, 2.0, 2.0, 1.0]
ACC = [70.0, 80.0, 90.0, 60.0]
BASE = 75.0


def test_score_order_puts_the_better_of_a_tie_last():
    assert list(m.score_order(SCORE, ACC)) == [0, 1, 2, 3]
    # same tie, accuracies swapped: c (80) now comes before b (90)
    assert list(m.score_order(SCORE, [70, 90, 80, 60])) == [0, 2, 1, 3]


def test_topk_gain_best_gain_regret_and_relative_accuracy_by_hand():
    assert m.topk_acc(SCORE, ACC, 1) == 70.0
    assert m.topk_gain(SCORE, ACC, BASE, 1) == -5.0
    assert m.topk_gain(SCORE, ACC, BASE, 2) == 5.0  # a, b
    assert m.topk_gain(SCORE, ACC, BASE, 3) == 15.0  # a, b, c
    assert m.topk_gain(SCORE, ACC, BASE, 10) == 15.0  # k > n: every entry
    assert m.best_gain(ACC, BASE) == 15.0
    assert m.regret_at_k(SCORE, ACC, 1) == 20.0
    assert m.regret_at_k(SCORE, ACC, 2) == 10.0
    assert m.regret_at_k(SCORE, ACC, 3) == 0.0
    assert m.top1_rel_acc(SCORE, ACC) == pytest.approx(70 / 90)


def test_trials_to_best_ties_single_entry_equal_scores_equal_accuracies():
    assert m.trials_to_best(SCORE, ACC) == 3  # c is tied with b and counted after it
    assert m.trials_to_best([1.0, 2.0, 2.0, 3.0], ACC) == 3  # d, then tie (c=90 last) -> b, c
    assert m.trials_to_best([4.0, 3.0, 2.0, 1.0], [60, 70, 95, 10]) == 3
    assert m.trials_to_best([0.5], [42.0]) == 1
    # all scores equal: the best entry is tried last among them (pessimistic)
    assert m.trials_to_best([1.0, 1.0, 1.0], [50.0, 70.0, 60.0]) == 3
    # two entries share the best accuracy: whichever comes first counts
    assert m.trials_to_best([3.0, 2.0, 1.0], [60.0, 80.0, 80.0]) == 2
    # all accuracies equal: the first entry is already best
    assert m.trials_to_best([1.0, 3.0, 2.0], [50.0, 50.0, 50.0]) == 1


def test_random_trials_to_best_exact_formula_and_simulation():
    assert m.random_trials_to_best([70, 80, 90, 60]) == pytest.approx(5 / 2)  # n=4, m=1
    assert m.random_trials_to_best([1, 5, 5, 2, 3]) == pytest.approx(6 / 3)  # n=5, m=2
    assert m.random_trials_to_best([7.0]) == 1.0
    rng = np.random.default_rng(0)
    acc = np.array([3.0, 9.0, 1.0, 9.0, 4.0, 2.0, 5.0])  # n=7, m=2 -> 8/3
    perms = rng.permuted(np.tile(acc, (10_000, 1)), axis=1)
    simulated = (np.argmax(perms == acc.max(), axis=1) + 1).mean()
    assert m.random_trials_to_best(acc) == pytest.approx(8 / 3)
    assert simulated == pytest.approx(8 / 3, abs=0.06)  # sd of the mean ~ 0.018


@pytest.mark.parametrize("acc", [[70, 80, 90, 60], [5, 5, 1, 9, 9, 3], [2.5], [4, 4, 4]])
def test_random_topk_acc_matches_enumeration_of_subsets(acc):
    for k in range(1, len(acc) + 2):
        kk = min(k, len(acc))
        subsets = list(itertools.combinations(acc, kk))
        expected = sum(max(s) for s in subsets) / len(subsets)
        assert m.random_topk_acc(acc, k) == pytest.approx(expected, rel=1e-12)
        assert m.random_topk_gain(acc, 1.0, k) == pytest.approx(expected - 1.0, rel=1e-12)


def test_correlations_by_hand():
    s, a = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    # Spearman: 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - 6*2/60
    assert m.spearman(s, a) == pytest.approx(0.8)
    # Kendall: 5 concordant, 1 discordant pair out of 6
    assert m.kendall(s, a) == pytest.approx(4 / 6)
    xs, ys = np.array(s) - 2.5, np.array(a) - 2.5
    assert m.pearson(s, a) == pytest.approx((xs @ ys) / math.sqrt((xs @ xs) * (ys @ ys)))
    assert m.spearman(s, s) == pytest.approx(1.0)
    assert m.spearman(s, s[::-1]) == pytest.approx(-1.0)


def _naive_weighted_tau(x, y, rank_by):
    """Vigna's weighted tau without ties: hyperbolic weights 1/(r+1), additive, where r is the
    0-based position in decreasing lexicographic order of ``rank_by`` (a list of key arrays)."""
    n = len(x)
    order = sorted(range(n), key=lambda i: tuple(-k[i] for k in rank_by))
    r = np.empty(n)
    r[order] = np.arange(n)
    num = den = 0.0
    for i, j in itertools.combinations(range(n), 2):
        w = 1 / (r[i] + 1) + 1 / (r[j] + 1)
        num += w * np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
        den += w
    return num / den


def test_weighted_taus_match_the_naive_formula_and_differ_in_convention():
    score = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    acc = np.array([61.0, 63.0, 62.0, 66.0, 64.0, 65.0])
    # scipy default: the average of the ranks by (score, acc) and by (acc, score)
    expected = 0.5 * (
        _naive_weighted_tau(score, acc, [score, acc])
        + _naive_weighted_tau(score, acc, [acc, score])
    )
    assert m.wtau(score, acc) == pytest.approx(expected)
    assert m.wtau_gt(score, acc) == pytest.approx(_naive_weighted_tau(score, acc, [acc, score]))
    assert abs(m.wtau(score, acc) - m.wtau_gt(score, acc)) > 1e-3


@pytest.mark.parametrize(
    ("score", "acc"),
    [([1.0], [50.0]), ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]), ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])],
    ids=["single entry", "equal scores", "equal accuracies"],
)
def test_degenerate_cells_give_nan_correlations_without_warnings(score, acc):
    # filterwarnings=error turns any scipy warning into a failure
    for fn in (m.spearman, m.pearson, m.kendall, m.wtau, m.wtau_gt):
        assert math.isnan(fn(score, acc))
    out = m.cell_metrics(score, acc, 50.0, 3)
    assert out["trials_to_best"] >= 1 and math.isnan(out["spearman"])


def test_near_constant_scores_give_nan_not_a_warning():
    assert math.isnan(m.pearson([1.0, 1.0 + 1e-15, 1.0], [1.0, 2.0, 3.0]))


def test_bad_arrays_raise_value_errors():
    with pytest.raises(ValueError, match="one length"):
        m.trials_to_best([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        m.score_order([], [])
    with pytest.raises(ValueError, match="finite"):
        m.spearman([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive integer"):
        m.topk_acc([1.0], [1.0], 0)


def test_cell_metrics_without_baseline_has_no_gains():
    out = m.cell_metrics(SCORE, ACC, None, 2)
    assert "top1_gain" not in out and "best_gain" not in out
    assert out["top2_acc"] == 80.0 and out["regret_at_2"] == 10.0
    assert m.cell_metrics(SCORE, ACC, float("nan"), 1).keys() == out.keys() - {
        "top2_acc",
        "regret_at_2",
    }


def test_random_expected_metrics_by_hand():
    out = m.random_expected_metrics(ACC, BASE, 2)
    # sorted 60, 70, 80, 90; E[max of 2 of 4] = (70*1 + 80*2 + 90*3) / 6 = 500/6
    assert out["top2_acc"] == pytest.approx(500 / 6)
    assert out["top1_gain"] == pytest.approx(75.0 - BASE)
    assert out["regret_at_1"] == pytest.approx(15.0)
    assert out["trials_to_best"] == pytest.approx(2.5)
    assert out["top1_rel_acc"] == pytest.approx(75 / 90)
    assert out["spearman"] == 0.0 and "wtau" not in out
    assert math.isnan(m.random_expected_metrics([3.0, 3.0], None, 1)["kendall"])


def _merged() -> pd.DataFrame:
    rows = []
    # target t1: the table above; method good ranks c first, method bad ranks c last
    for method, scores in (("good", [2.0, 1.0, 3.0, 0.0]), ("bad", [3.0, 2.0, 0.0, 1.0])):
        for e, s, a, sec in zip("abcd", scores, ACC, [10.0, 20.0, 30.0, 40.0]):
            rows.append(("t1", "20", method, e, s, a, 0.5, sec))
    # target t2: two entries, equal scores for method bad
    for method, scores in (("good", [1.0, 0.0]), ("bad", [5.0, 5.0])):
        for e, s, a in zip("ab", scores, [40.0, 30.0]):
            rows.append(("t2", "20", method, e, s, a, 1.0, 5.0))
    return pd.DataFrame(
        rows,
        columns=list(MERGED_COLUMNS[:8]),
    )


def _value(table, target, method, metric):
    row = table[(table.target == target) & (table.method == method) & (table.metric == metric)]
    assert len(row) == 1, (target, method, metric)
    return float(row["value"].iloc[0])


def test_metrics_table_long_format_by_hand():
    base = pd.DataFrame(
        {"target": ["t1", "t2"], "shots": ["20", "20"], "baseline_acc": [75.0, 30.0]}
    )
    t = m.metrics_table(_merged(), base, topk=2)
    assert list(t.columns) == ["target", "shots", "method", "metric", "value"]
    assert _value(t, "t1", "good", "top1_gain") == 15.0
    assert _value(t, "t1", "good", "trials_to_best") == 1.0
    assert _value(t, "t1", "bad", "top1_gain") == -5.0  # a (70)
    assert _value(t, "t1", "bad", "top2_gain") == 5.0  # a, b
    assert _value(t, "t1", "bad", "trials_to_best") == 4.0
    assert _value(t, "t1", "bad", "spearman") == pytest.approx(-0.4)
    # t2, bad: tied scores -> the worse entry b (30) comes first
    assert _value(t, "t2", "bad", "top1_gain") == 0.0
    assert _value(t, "t2", "bad", "trials_to_best") == 2.0
    assert math.isnan(_value(t, "t2", "bad", "spearman"))  # constant scores: kept as NaN
    assert _value(t, "t2", "random_expected", "trials_to_best") == pytest.approx(3 / 2)
    assert _value(t, "t1", "random_expected", "top1_gain") == pytest.approx(0.0)
    assert t[(t.method == "random_expected") & t.metric.isin(["wtau", "wtau_gt"])].empty
    # no baseline: no gain rows at all
    t0 = m.metrics_table(_merged(), None, topk=2)
    assert not t0["metric"].str.endswith("_gain").any()


def test_cost_table_and_summary_by_hand():
    cost = m.cost_table(_merged(), ks=(1, 3))
    row = cost[(cost.target == "t1") & (cost.method == "bad") & (cost.k == 3)].iloc[0]
    # brute force 10+20+40+30 = 100; selection 4 x 0.5; bad's top-3 = a, b, d -> 10+20+40
    assert row["brute_force_seconds"] == 100.0
    assert row["selection_seconds"] == 2.0
    assert row["finetune_topk_seconds"] == 70.0
    assert row["cost_saved"] == pytest.approx(1 - 72 / 100)
    rnd = cost[(cost.target == "t1") & (cost.method == "random_expected") & (cost.k == 1)].iloc[0]
    assert rnd["finetune_topk_seconds"] == pytest.approx(25.0)  # 100 * 1/4
    summ = m.cost_summary(cost)
    good1 = summ[(summ.method == "good") & (summ.k == 1)].iloc[0]
    # t1: c (30) + selection 2; t2: a (5) + selection 2 -> 39 of 110
    assert good1["total_seconds"] == pytest.approx(39.0)
    assert good1["cost_saved"] == pytest.approx(1 - 39 / 110)
    assert good1["n_targets"] == 2
    # an unknown second makes the brute force and every saving unknown, not too small
    merged = _merged()
    merged.loc[(merged.target == "t1") & (merged.entry == "a"), "finetune_seconds"] = np.nan
    summ = m.cost_summary(m.cost_table(merged)).set_index(["method", "k"])
    assert summ.loc[("good", 1), "total_seconds"] == pytest.approx(39.0)  # a is not in it
    assert math.isnan(summ.loc[("good", 3), "total_seconds"])
    assert summ["brute_force_seconds"].isna().all() and summ["cost_saved"].isna().all()


def test_bootstrap_interval_by_hand():
    # mean of 2 resampled values in {0, 1}: P(0) = 1/4 -> the 2.5% and 97.5% quantiles are 0 and 1
    mean, low, high = m.bootstrap_mean_ci([0.0, 1.0], n_boot=4000, seed=1)
    assert (mean, low, high) == (0.5, 0.0, 1.0)
    # [0, 0, 0, 1]: resampled mean ~ Binomial(4, 1/4) / 4; P(<= 2/4) = 0.949, P(<= 3/4) = 0.996
    mean, low, high = m.bootstrap_mean_ci([0.0, 0.0, 0.0, 1.0], n_boot=4000, seed=1)
    assert (mean, low, high) == (0.25, 0.0, 0.75)
    assert m.bootstrap_mean_ci([3.0, np.nan], 100, 0) == (3.0, 3.0, 3.0)
    assert all(math.isnan(v) for v in m.bootstrap_mean_ci([np.nan], 100, 0))
    assert m.bootstrap_mean_ci([1.0, 5.0, 2.0], 200, 7) == m.bootstrap_mean_ci(
        [1.0, 5.0, 2.0], 200, 7
    )


def test_summarize_means_over_targets():
    t = m.metrics_table(_merged(), None, topk=1)
    s = m.summarize(t, n_boot=100, seed=0)
    row = s[(s.method == "good") & (s.metric == "trials_to_best")].iloc[0]
    assert row["mean"] == 1.0 and row["n_targets"] == 2
    row = s[(s.method == "bad") & (s.metric == "spearman")].iloc[0]
    assert row["mean"] == pytest.approx(-0.4) and row["n_targets"] == 1  # t2 is NaN
    # a group's interval does not depend on the other groups in the table
    s1 = m.summarize(t[t.method == "bad"], n_boot=100, seed=0)
    assert (
        s1.set_index(["method", "metric"]).loc[("bad", "top1_acc"), "ci_low"]
        == (s.set_index(["method", "metric"]).loc[("bad", "top1_acc"), "ci_low"])
    )


# ----------------------------------------------------------------------------------------------
# tables


def _runs() -> pd.DataFrame:
    rows = [
        # entry x, lr 0.1: one great seed but a lower mean (70) than lr 0.01 (mean 75)
        ("t", "20", "x", 0.1, 0, 90.0, 1.0),
        ("t", "20", "x", 0.1, 1, 50.0, 1.0),
        ("t", "20", "x", 0.01, 0, 74.0, 2.0),
        ("t", "20", "x", 0.01, 1, 76.0, 2.0),
        # entry y: both lrs tie at mean 60 -> the smaller lr; a failed run counts in seconds only
        ("t", 20, "y", 0.1, 0, 60.0, 3.0),
        ("t", 20, "y", 0.05, 0, 60.0, 3.0),
        ("t", 20, "y", 0.05, 1, np.nan, 4.0),
        ("t", "full", "x", 0.1, 0, 99.0, 10.0),
    ]
    return pd.DataFrame(
        rows, columns=["target", "shots", "entry", "lr", "seed", "test_acc", "seconds"]
    )


def test_ground_truth_best_lr_of_the_seed_mean():
    gt = ground_truth(_runs()).set_index(["target", "shots", "entry"])
    assert list(gt.columns) == list(GT_COLUMNS[3:])
    assert gt.loc[("t", "20", "x"), "acc"] == 75.0
    assert gt.loc[("t", "20", "x"), "best_lr"] == 0.01
    assert gt.loc[("t", "20", "x"), "seconds"] == 6.0
    assert gt.loc[("t", "20", "y"), "acc"] == 60.0
    assert gt.loc[("t", "20", "y"), "best_lr"] == 0.05
    assert gt.loc[("t", "20", "y"), "seconds"] == 10.0
    assert gt.loc[("t", "20", "y"), "n_runs"] == 3
    assert gt.loc[("t", "20", "y"), "n_seeds"] == 1 and gt.loc[("t", "20", "y"), "n_lrs"] == 2
    assert gt.loc[("t", "full", "x"), "acc"] == 99.0
    with pytest.raises(ValueError, match="test_acc"):
        ground_truth(_runs().drop(columns="test_acc"))


def test_shots_are_normalised_and_sorted():
    assert [normalize_shots(v) for v in (20, 20.0, "20", "shots=5", "FULL", np.int64(3))] == [
        "20",
        "20",
        "20",
        "5",
        "full",
        "3",
    ]
    for bad in ("twenty", 0, -3, 2.5, float("nan")):
        with pytest.raises(ValueError, match="valid: 'full' or a positive integer"):
            normalize_shots(bad)
    assert sorted_shots(["full", "20", "5", "all"]) == ["5", "20", "full", "all"]


def test_finetune_tables_are_read_liberally(tmp_path):
    runs = _runs()
    gt_rows = ground_truth(runs).assign(kind="gt")
    mixed = pd.concat([runs.assign(kind="run", shots=runs["shots"].astype(str)), gt_rows])
    r, g = split_finetune_table(mixed)
    assert len(r) == 1 and len(g) == 1 and len(r[0]) == len(runs)
    # a single file holding runs
    runs.assign(shots=runs["shots"].astype(str)).to_parquet(tmp_path / "finetune_gt.parquet")
    assert load_ground_truth(tmp_path)["acc"].tolist() == ground_truth(runs)["acc"].tolist()
    # a ground-truth table only (no runs): used as it is
    (tmp_path / "finetune_gt.parquet").unlink()
    ground_truth(runs).drop(columns=["best_lr", "n_runs"]).to_parquet(
        tmp_path / "finetune_gt.parquet"
    )
    loaded = load_ground_truth(tmp_path)
    assert loaded["acc"].tolist() == ground_truth(runs)["acc"].tolist()
    assert loaded["best_lr"].isna().all()
    with pytest.raises(FileNotFoundError, match="finetune_gt.parquet"):
        load_ground_truth(tmp_path / "nothing")
    with pytest.raises(ValueError, match="cannot tell"):
        split_finetune_table(pd.DataFrame({"target": ["t"], "seed": [0]}))


def test_scores_are_read_from_the_selection_tree(tmp_path):
    for shots, method in (("20", "lfc"), ("full", "leep")):
        d = tmp_path / "dtd" / f"shots={shots}"
        d.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"entry": ["a", "b"], "score": [1.0, 2.0], "seconds": [0.1, 0.2]}).to_parquet(
            d / f"{method}.parquet"
        )
    (tmp_path / "dtd" / "shots=20" / ".lfc2.parquet.tmp-1-ab").write_bytes(b"partial")
    s = load_scores(tmp_path)
    assert sorted(s["method"].unique()) == ["leep", "lfc"]
    assert sorted(s["shots"].unique()) == ["20", "full"]
    assert list(s.columns[:6]) == ["target", "shots", "method", "entry", "score", "seconds"]
    with pytest.raises(FileNotFoundError, match="evaluate_selection"):
        load_scores(tmp_path / "empty")


def test_domain_selection_by_hand():
    rows = [
        # expert md with three domains; the ground truth prefers md@y
        ("t", "20", "lfc", "md@x", 0.9, 60.0),
        ("t", "20", "lfc", "md@y", 0.5, 80.0),
        ("t", "20", "lfc", "md@z", 0.1, 70.0),
        ("t", "20", "leep", "md@x", 0.1, 60.0),
        ("t", "20", "leep", "md@y", 0.8, 80.0),
        ("t", "20", "leep", "md@z", 0.8, 70.0),
        ("t", "20", "lfc", "single", 5.0, 99.0),
        ("t", "20", "leep", "single", 5.0, 99.0),
    ]
    merged = pd.DataFrame(rows, columns=["target", "shots", "method", "entry", "score", "acc"])
    d = domain_selection(merged, {"md": "multi_bn"}).set_index("method")
    assert d.loc["lfc", "picked_domain"] == "x" and d.loc["lfc", "gap"] == -20.0
    # leep ties y and z: pessimistically the worse (z) is its pick
    assert d.loc["leep", "picked_domain"] == "z" and d.loc["leep", "gap"] == -10.0
    assert d.loc["random_expected", "picked_acc"] == pytest.approx(70.0)
    assert set(d["best_domain"]) == {"y"} and set(d["expert_type"]) == {"multi_bn"}
    assert domain_selection(merged[merged.entry == "single"]).empty

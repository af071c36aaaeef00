"""Published benchmarks re-judged: the transcribed tables, and which published correlations
zoobench's analysis reproduces (to 1e-3, the published rounding) from the published numbers.

Weighted tau: both sources compute ``scipy.stats.weightedtau(score, acc)`` with its defaults (SFDA:
``rank_correlation.w_kendall_metric``; Transfer-Learning-Library's README does not ship the code,
and 20 of its 32 cells match this convention, 3 match ``rank=None`` or ``wtau_gt``), which is zoobench's ``wtau``.
"""

from __future__ import annotations

import pandas as pd
import pytest
import scipy.stats

from analysis.compute import compute_analysis
from analysis.main import load_byo
from analysis.published import compare_published, load_published, tie_broken_wtau, write_byo

#: (target, method) whose published weighted tau the analysis reproduces
WTAU_REPRODUCED = [
    *[("caltech101", m) for m in ("hscore", "leep", "nce")],
    *[("cifar10", m) for m in ("hscore", "leep", "logme", "nce")],
    *[("cifar100", m) for m in ("hscore", "leep", "nce")],
    *[("dtd", m) for m in ("hscore", "leep")],
    *[("cars", m) for m in ("hscore", "leep", "logme", "nce")],
    *[("sun397", m) for m in ("hscore", "leep", "logme", "nce")],
]
#: LogME printed with 3 decimals ties two models (caltech101: 1.228 twice, cifar100: 1.051
#: twice, dtd: 0.689 twice); the published tau is one of the tie's two orders
WTAU_ROUNDING_TIES = [("caltech101", "logme"), ("cifar100", "logme"), ("dtd", "logme")]
#: published taus no order of the published scores gives: the Aircraft and Pets tables disagree
#: with their own correlation rows, and DTD's NCE column repeats the LogME column
WTAU_INCONSISTENT = [
    *[(t, m) for t in ("aircraft", "pets") for m in ("hscore", "leep", "logme", "nce")],
    ("dtd", "nce"),
]
PEARSON_REPRODUCED = [
    *[("caltech101", m) for m in ("hscore", "leep", "logme", "nce")],
    *[("cifar10", m) for m in ("hscore", "leep", "nce")],
    *[("cifar100", m) for m in ("hscore", "leep", "nce")],
    ("dtd", "hscore"),
    *[("cars", m) for m in ("hscore", "nce")],
    *[("sun397", m) for m in ("hscore", "leep", "nce")],
]


@pytest.fixture(scope="module")
def tll(tmp_path_factory):
    out = tmp_path_factory.mktemp("tll")
    write_byo("tll", out)
    gt, scores, runs = load_byo(out / "gt.csv", out / "scores.csv", "resnet50")
    analysis = compute_analysis(
        gt, scores, name="tll", baseline="resnet50", topk=3, n_boot=0, runs=runs
    )
    published = pd.read_csv(out / "published.csv")
    table = compare_published(analysis.metrics, published).set_index(
        ["target", "method", "statistic"]
    )
    return {"out": out, "table": table, "tables": load_published("tll")[0]}


def test_tll_transcription():
    t = load_published("tll")[0]
    assert t.gt.shape == (80, 3) and t.scores.shape == (320, 4)
    assert t.gt.groupby("target").size().eq(10).all()
    # cells read off the README by hand
    acc = t.gt.set_index(["target", "entry"])["acc"]
    assert acc[("aircraft", "inception_v3")] == 88.8
    assert acc[("sun397", "mnasnet1_0")] == 60.7
    score = t.scores.set_index(["target", "entry", "method"])["score"]
    assert score[("dtd", "resnet101", "hscore")] == 117.23
    assert score[("cars", "googlenet", "leep")] == -4.612
    assert score[("pets", "inception_v3", "logme")] == 1.119
    # the DTD table's NCE column is a copy of its LogME column (as published)
    dtd = t.scores[t.scores.target == "dtd"].pivot(index="entry", columns="method", values="score")
    assert (dtd["nce"] == dtd["logme"]).all()


def test_sfda_ground_truth_only(tmp_path):
    groups = {t.group: t for t in load_published("sfda")}
    assert set(groups) == {"supervised", "self_supervised"}
    sup, ssl = groups["supervised"], groups["self_supervised"]
    assert sup.scores is None and ssl.scores is None
    assert sup.gt.shape == (121, 3) and ssl.gt.shape == (132, 3)
    acc = sup.gt.set_index(["target", "entry"])["acc"]
    assert acc[("aircraft", "mnasnet1_0")] == 66.48 and acc[("voc2007", "inception_v3")] == 83.84
    acc = ssl.gt.set_index(["target", "entry"])["acc"]
    assert acc[("sun397", "insdis")] == 51.62
    pub = sup.published.set_index(["target", "method"])["value"]
    assert len(pub) == 55 and pub[("cifar10", "sfda")] == 0.949 and pub[("pets", "parc")] == 0.138
    assert ssl.published.empty
    files = write_byo("sfda", tmp_path)
    assert set(files) == {f"{g}/{k}" for g in groups for k in ("gt", "published")}


@pytest.mark.parametrize("cell", WTAU_REPRODUCED)
def test_published_wtau_reproduced(tll, cell):
    row = tll["table"].loc[(*cell, "wtau")]
    assert abs(row["ours"] - row["published"]) <= 1e-3


@pytest.mark.parametrize("cell", PEARSON_REPRODUCED)
def test_published_pearson_reproduced(tll, cell):
    row = tll["table"].loc[(*cell, "pearson")]
    assert abs(row["ours"] - row["published"]) <= 1e-3


def _cell(tables, target, method):
    s = tables.scores[(tables.scores.target == target) & (tables.scores.method == method)]
    gt = tables.gt[tables.gt.target == target]
    acc = gt.set_index("entry")["acc"]
    return s["score"].to_numpy(), acc[s["entry"]].to_numpy()


@pytest.mark.parametrize("cell", WTAU_ROUNDING_TIES)
def test_rounding_ties_explain_logme_cells(tll, cell):
    row = tll["table"].loc[(*cell, "wtau")]
    assert abs(row["ours"] - row["published"]) > 5e-3  # not reproduced with the tie as printed
    score, acc = _cell(tll["tables"], *cell)
    options = tie_broken_wtau(score, acc)
    assert len(options) == 2
    assert min(abs(v - row["published"]) for v in options) <= 1e-3


@pytest.mark.parametrize("cell", WTAU_INCONSISTENT)
def test_inconsistent_published_cells(tll, cell):
    row = tll["table"].loc[(*cell, "wtau")]
    score, acc = _cell(tll["tables"], *cell)
    assert min(abs(v - row["published"]) for v in tie_broken_wtau(score, acc)) > 0.05


def test_every_published_cell_is_classified(tll):
    wtau = tll["table"].xs("wtau", level="statistic").index
    classified = WTAU_REPRODUCED + WTAU_ROUNDING_TIES + WTAU_INCONSISTENT
    assert sorted(wtau) == sorted(classified) and len(set(classified)) == 32


def test_tie_broken_wtau_by_hand():
    # no tie: one value, scipy's
    assert tie_broken_wtau([1, 2, 3], [1, 3, 2]) == [
        pytest.approx(scipy.stats.weightedtau([1, 2, 3], [1, 3, 2]).statistic)
    ]
    # a tie on the top two: their two orders are the perfect and the swapped ranking
    both = tie_broken_wtau([1, 2, 2], [1, 2, 3])
    assert both[-1] == pytest.approx(1.0)
    assert both[0] == pytest.approx(scipy.stats.weightedtau([1, 3, 2], [1, 2, 3]).statistic)

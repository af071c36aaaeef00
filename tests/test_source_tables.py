"""Tables 1-2 from cards: values placed against a hand-written expectation."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from analysis.source_tables import source_accuracy_frame, source_accuracy_tables, table1, table2
from zoo.models import create_model
from zoo.multidomain import MultiDomainClassifier
from zoo.store import save_expert

ARCH_KW = {"width": 0.25}


def _card(kind, sources, acc, init=None, domains=None):
    domains = domains or [{"name": s, "num_classes": 2, "classes": ["x", "y"]} for s in sources]
    return {
        "arch": "resnet8",
        "arch_kwargs": ARCH_KW,
        "type": kind,
        "sources": sources,
        "domains": domains,
        "source_accuracy": acc,
        "input_size": 32,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "init": init,
    }


@pytest.fixture
def zoo(tmp_path):
    single = create_model("resnet8", 2, **ARCH_KW)
    save_expert(tmp_path, "r8_a", single, _card("single", ["a"], {"a": 0.9}), {})
    save_expert(tmp_path, "r8_b", single, _card("single", ["b"], {"b": 0.6}), {})
    save_expert(tmp_path, "r8_b+r8_a", single, _card("single", ["b"], {"b": 0.7}, init="r8_a"), {})
    joint = create_model("resnet8", 4, **ARCH_KW)
    dom = [{"name": "a+b", "num_classes": 4, "classes": list("abcd")}]
    save_expert(
        tmp_path, "gen", joint, _card("single", ["a", "b"], {"a": 0.8, "b": 0.5}, domains=dom), {}
    )
    for kind, acc in (("adapter", {"a": 0.85, "b": 0.55}), ("shared", {"a": 0.7, "b": 0.4})):
        multi = MultiDomainClassifier(single, ["a", "b"], {"a": 2, "b": 2}, kind=kind)
        save_expert(tmp_path, f"{kind}_r8", multi, _card(kind, ["a", "b"], acc), {})
    lite = create_model("efficientnet_lite0", 3)
    card = _card("pretrained", ["imagenet"], {})
    card.update(arch="efficientnet_lite0", arch_kwargs={})
    save_expert(tmp_path, "lite", lite, card, {})
    return tmp_path


def test_tables_from_cards(zoo, tmp_path):
    frame = source_accuracy_frame(zoo)
    assert "lite" not in set(frame["expert_id"])  # pretrained: no source accuracy
    t1 = table1(frame)
    expected1 = pd.DataFrame(
        {"a": [90.0, math.nan, 80.0], "b": [60.0, 70.0, 50.0]},
        index=pd.MultiIndex.from_tuples(
            [("resnet8", "scratch"), ("resnet8", "+r8_a"), ("resnet8", "joint:gen")],
            names=["arch", "pretraining"],
        ),
    )
    pd.testing.assert_frame_equal(t1, expected1)  # scratch, then initialised, then joint rows
    t2 = table2(frame)
    # best single-dataset expert per dataset (the joint generalist does not count), then
    # the multi-domain experts in shared, multi_bn, adapter order
    expected2 = pd.DataFrame(
        {"single_domain": [90.0, 70.0], "shared_r8": [70.0, 40.0], "adapter_r8": [85.0, 55.0]},
        index=pd.Index(["a", "b"], name="dataset"),
    )
    pd.testing.assert_frame_equal(t2, expected2)
    torch.manual_seed(0)
    paths = source_accuracy_tables(zoo, tmp_path / "tables")
    assert set(paths) == {"long", "table1_csv", "table1_md", "table2_csv", "table2_md"}
    md = paths["table2_md"].read_text()
    assert "| dataset | single_domain | shared_r8 | adapter_r8 |" in md
    assert "| a | 90.00 | 70.00 | 85.00 |" in md
    assert "| resnet8 | +r8_a | - | 70.00 |" in paths["table1_md"].read_text()
    long = pd.read_csv(paths["long"])
    assert len(long) == 9 and long["accuracy"].max() == pytest.approx(90.0)

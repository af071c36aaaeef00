"""scripts/run_mini.py's helpers: Hydra literals, zoo waves, job splits (no stage is run here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("run_mini", ROOT / "scripts" / "run_mini.py")
run_mini = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_mini)


def _parse(literal: str):
    # Hydra's own override parser is the reference: the value must come back as it went in
    (override,) = OverridesParser.create().parse_overrides([f"zoo.experts={literal}"])
    return override.value()


def test_hydra_literal_round_trips_through_hydras_parser():
    experts = [
        {
            "id": "generalist",
            "arch": "resnet8",
            "arch_kwargs": {"stem_stride": 2, "width": 0.75},
            "datasets": ["mini_animals", "mini_shapes"],
            "recipe": {"max_per_class": 200, "augment": True, "lr": 0.02},
            "init": None,
        },
        {"id": "odd 'name', with: [chars]", "arch": "densenet_mini", "datasets": []},
    ]
    assert _parse(run_mini.hydra_literal(experts)) == experts


def test_hydra_literal_rejects_other_objects():
    with pytest.raises(ValueError, match="cannot write"):
        run_mini.hydra_literal(object())


def test_zoo_waves_put_each_expert_after_its_init():
    experts = [
        {"id": "generalist"},
        {"id": "a", "init": "generalist"},
        {"id": "densenet"},
        {"id": "b", "init": "a@dom"},
        {"id": "c", "init": "stored_elsewhere"},
    ]
    waves = run_mini.zoo_waves(experts)
    assert [[e["id"] for e in w] for w in waves] == [["generalist", "densenet", "c"], ["a"], ["b"]]
    with pytest.raises(ValueError, match="listed after it"):
        run_mini.zoo_waves([{"id": "a", "init": "g"}, {"id": "g"}])


def test_split_jobs_deals_round_robin():
    assert run_mini.split_jobs([1, 2, 3, 4, 5], 2) == [[1, 3, 5], [2, 4]]
    assert run_mini.split_jobs([1], 2) == [[1]]
    with pytest.raises(ValueError, match="jobs"):
        run_mini.split_jobs([1], 0)

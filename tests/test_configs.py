"""Every option of every config group composes with every entry point that uses the group, and
every ``_target_`` in the composed configs instantiates."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.errors import ConfigCompositionException
from hydra.plugins.launcher import Launcher
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

import selection
from selection.registry import get_method
from tests.factories import CONFIG_DIR, ROOT, compose
from zoo.data import available_datasets, get_info
from zoo.data.registry import ROLES

ENTRY_POINTS = ["train_zoo", "finetune", "evaluate_selection", "analyze"]
SKIP_GROUPS = {"hydra", "local"}


def _groups(config_name: str) -> list[str]:
    defaults = yaml.safe_load((CONFIG_DIR / f"{config_name}.yaml").read_text())["defaults"]
    groups = []
    for item in defaults:
        if isinstance(item, dict):
            key = next(iter(item)).replace("optional ", "").split("@")[0]
            if key not in SKIP_GROUPS:
                groups.append(key)
    return groups


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


CASES = [
    (name, group, option)
    for name in ENTRY_POINTS
    for group in _groups(name)
    for option in _options(group)
]


def _targets(node, found: list) -> list:
    if isinstance(node, DictConfig):
        if "_target_" in node:
            found.append(node)
        for key in node:
            _targets(node._get_node(key), found)
    elif isinstance(node, ListConfig) and not node._is_none():  # a typed list may be null
        for item in node:
            _targets(item, found)
    return found


@pytest.mark.parametrize(("config_name", "group", "option"), CASES)
def test_every_option_composes_and_instantiates(config_name, group, option, tmp_path):
    cfg = compose(
        config_name, [f"{group}={option}", f"paths.out_dir={tmp_path}"], hydra_config=True
    )
    assert issubclass(get_class(cfg.hydra.launcher._target_), Launcher)
    with open_dict(cfg):
        del cfg["hydra"]
    OmegaConf.resolve(cfg)
    if group in ("dataset", "target"):
        # the option names a registered dataset (of the role a target group needs)
        name = cfg[group].name
        roles = ("target", "fewshot_target") if group == "target" else ROLES
        assert name == option and get_info(name).role in roles, (name, get_info(name).role)
    for node in _targets(cfg, []):
        obj = instantiate(node)
        if isinstance(obj, functools.partial):
            # a method node: instantiate() returns selection.score(name=..., **params) unapplied;
            # the name must be registered and every parameter one the method takes
            assert obj.func is selection.score
            params = dict(obj.keywords)
            method = get_method(params.pop("name"))
            assert set(params) <= set(method.defaults), (method.name, sorted(params))
        else:
            assert type(obj).__module__ + "." + type(obj).__name__ == node._target_


def test_every_group_of_the_design_exists():
    groups = {p.name for p in CONFIG_DIR.iterdir() if p.is_dir()}
    design = {
        "dataset",
        "target",
        "arch",
        "expert",
        "method",
        "zoo",
        "sweep",
        "trainer",
        "logger",
        "launcher",
        "paths",
        "experiment",
        "local",
        "benchmark",
    }
    assert design <= groups, sorted(design - groups)


@pytest.mark.parametrize(
    "command",
    [
        ["train_zoo.py", "--cfg", "job"],
        ["finetune.py", "--cfg", "job", "target=dtd", "shots=20"],
        ["evaluate_selection.py", "--cfg", "job", "method=lfc"],
        ["analyze.py", "--cfg", "job"],
    ],
)
def test_entry_point_prints_its_composed_config(command):
    out = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    # `--cfg job` prints interpolations unresolved: the folder is named through paths.out_name
    assert cfg["paths"]["out_dir"] == "${oc.env:ZOOBENCH_OUT,outputs}/${paths.out_name}"
    assert cfg["paths"]["out_name"] == "${benchmark.name}" and cfg["benchmark"]["name"] == "mini"
    if "target=dtd" in command:
        assert cfg["target"]["name"] == "dtd" and cfg["shots"] == 20


def test_unknown_option_lists_valid_choices():
    with pytest.raises(ConfigCompositionException) as info:
        compose("finetune", ["target=not_a_target"])
    assert "not_a_target" in str(info.value)
    assert "Available options" in str(info.value)


def test_typo_in_recipe_fails_at_composition():
    with pytest.raises(ConfigCompositionException):
        compose("train_zoo", ["train.epoch=3"])
    with pytest.raises(ConfigCompositionException):
        compose("finetune", ["finetune.epochs=many"])


def test_artefact_folders_are_deterministic_and_job_folders_are_not(tmp_path, monkeypatch):
    """Artefacts live in keyed folders; each job's config and log in its own folder, named by the
    start time and a job tag, also for two jobs composed in the same second by one process."""
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    a = compose("finetune", ["target=mini_digits", "shots=20"], hydra_config=True)
    b = compose("finetune", ["target=mini_digits", "shots=20"], hydra_config=True)
    assert a.paths.out_dir == b.paths.out_dir
    assert a.hydra.run.dir != b.hydra.run.dir
    assert a.hydra.sweep.dir != b.hydra.sweep.dir
    for cfg in (a, b):
        run = Path(cfg.hydra.run.dir)
        assert run.parent == Path(cfg.paths.out_dir) / "logs" / cfg.hydra.job.name
        assert re.fullmatch(
            rf"\d{{4}}-\d\d-\d\d_\d\d-\d\d-\d\d_4242-{os.getpid()}-[0-9a-f]{{6}}", run.name
        )
        # the tag is resolved once per config: a multirun's jobs share their launcher's folder
        assert cfg.hydra.run.dir == str(run) and cfg.hydra.sweep.dir.endswith(run.name)


def test_benchmark_choice_switches_zoo_and_sweep():
    mini = compose("finetune")
    paper = compose("finetune", ["benchmark=paper"])
    assert mini.benchmark.name == "mini" and paper.benchmark.name == "paper"
    assert (mini.zoo.name, paper.zoo.name) == ("mini", "paper")
    assert (mini.sweep.name, paper.sweep.name) == ("mini", "paper")
    assert "resnet101_imagenet" in paper.zoo.entries
    assert "resnet101_imagenet" not in mini.zoo.entries
    assert list(paper.sweep.shots) == ["full", 20, 5]
    assert set(paper.sweep.targets) == set(available_datasets("paper", "target"))
    assert mini.finetune.epochs != paper.finetune.epochs


@pytest.mark.parametrize("config_name", ["finetune", "evaluate_selection"])
def test_multirun_jobs_follow_the_configured_targets_and_shots(config_name):
    default = compose(config_name, hydra_config=True).hydra.sweeper.params
    assert default.target == (
        "mini_digits,mini_greek,mini_polygons,mini_fabrics,"
        "mini_mnist_warped,mini_animal_poses,mini_animal_outlines,mini_mixed"
    )
    assert default.shots == "full,20"
    paper = compose(config_name, ["benchmark=paper"], hydra_config=True).hydra.sweeper.params
    assert paper.target.split(",")[:2] == ["cucumber9", "dtd"] and paper.shots == "full,20,5"
    # an experiment (or an override) that changes the lists changes the jobs
    small = compose(config_name, ["experiment=mini_small", "sweep.shots=[20]"], hydra_config=True)
    assert small.hydra.sweeper.params.target == "mini_digits,mini_polygons"
    assert small.hydra.sweeper.params.shots == "20"

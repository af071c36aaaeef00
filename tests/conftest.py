"""Shared test helpers: Hydra composition of the project's configs, offline settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"


def compose(config_name: str, overrides: list[str] | None = None, *, hydra_config: bool = False):
    """Compose ``configs/<config_name>.yaml`` with overrides, as the entry point would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    import core.config  # noqa: F401  (registers the schemas)

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(
            config_name=config_name, overrides=overrides or [], return_hydra_config=hydra_config
        )


@pytest.fixture
def compose_cfg():
    return compose

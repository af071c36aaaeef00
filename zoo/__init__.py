"""The zoo: datasets, architectures, multi-domain experts, expert training and the expert store."""

from typing import Any

__all__ = ["create_model", "list_entries", "load_entry"]


def __getattr__(name: str) -> Any:
    # lazy, so that importing a light submodule (e.g. `zoo.samplers`) does not import torch
    if name == "create_model":
        from zoo.models import create_model

        return create_model
    if name in ("list_entries", "load_entry"):
        import zoo.store

        return getattr(zoo.store, name)
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")

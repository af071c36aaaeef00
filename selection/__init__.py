"""Selection scores: ``score(name, **inputs)``, ``available()``, ``register_method``."""

from selection.registry import available, get_method, register_method, score

__all__ = ["available", "get_method", "register_method", "score"]

"""Selection scores: ``score(name, **inputs)``, ``score_zoo``, ``available()``, ``register_method``."""

from selection.registry import available, get_method, register_method, score, score_zoo

__all__ = ["available", "get_method", "register_method", "score", "score_zoo"]

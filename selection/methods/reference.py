"""Static reference scores: model size and source accuracy, which ignore the target data.

Recent benchmarks of transferability estimation find that such fixed rankings are hard to beat:
ranking the zoo by model size or by ImageNet accuracy matches or outperforms many target-aware
scores (e.g. Renggli et al., "Which Model to Transfer? Finding the Needle in the Growing
Haystack", CVPR 2022; Agostinelli et al., "How stable are Transferability Metrics evaluations?",
ECCV 2022). They are registered with ``reference=True`` so that a report can show them as the
bar a target-aware score has to clear. Input: ``entry_info`` = {"n_params": int >= 1,
"source_accuracy": float in [0, 1] or NaN}, checked by ``selection.checks.check_entry_info``.
"""

from __future__ import annotations

import math
from typing import Any

from selection.registry import register_method


@register_method("param_count", needs=("entry_info",), reference=True)
def param_count(entry_info: dict[str, Any]) -> float:
    """log10(n_params) of the entry's model: bigger model = predicted better. A static reference.

    Regime: no estimate (a property of the model, the same for every target and N). No remedy.
    """
    return math.log10(int(entry_info["n_params"]))


@register_method("source_accuracy", needs=("entry_info",), reference=True)
def source_accuracy(entry_info: dict[str, Any]) -> float:
    """The entry's accuracy on its source task, a fraction in [0, 1], from its card. Static reference.

    Raises ValueError when the card gives no source accuracy (NaN): a missing value cannot be
    ranked, and a made-up one would bias the reference.

    Regime: no estimate (a property of the entry, the same for every target and N). No remedy.
    """
    value = float(entry_info["source_accuracy"])
    if math.isnan(value):
        raise ValueError(
            "source_accuracy: this entry's source accuracy is unknown (NaN in entry_info); "
            "the score needs a value in [0, 1] from the entry's card"
        )
    return value

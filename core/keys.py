"""The keys every stage shares: shots, learning rates, entry ids and the columns of the tables.

One definition each, so that a result folder written by fine-tuning, a score file written by
selection and a table read by the analysis agree on what ``shots=20``, ``lr=0.01`` and
``resnet20_cifar@mini_shapes`` mean.

- shots: ``"full"`` (every training image) or a positive integer k (k images per class); its text
  form (folder names, table cells) is ``"full"`` or ``"20"``.
- lr: text form ``f"{lr:g}"`` (``0.01``, ``0.003``, ``1e-05``), so ``0.1 * 0.3`` and ``0.03`` name
  the same folder.
- entry id: ``<expert>`` for a single-domain expert, ``<expert>@<domain>`` for one domain of a
  multi-domain expert (a domain-specific head or adapter).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

SHOTS_FULL = "full"
#: the shots label of results brought without a shots column (analysis input only)
SHOTS_UNSPECIFIED = "all"
ENTRY_SEP = "@"

# ---------------------------------------------------------------------------------------------
# table columns

#: what names one fine-tuning run (its folder ``<target>/shots=<k>/<entry>/lr=<lr>/seed=<s>``)
RUN_KEY = ("target", "shots", "entry", "lr", "seed")
#: the columns a runs table must have to derive a ground truth from it
RUN_REQUIRED_COLUMNS = (*RUN_KEY, "test_acc")
#: fields every ``result.json`` of a fine-tuning run carries
RESULT_FIELDS = (
    *RUN_KEY,
    "test_acc",
    "val_acc",
    "epochs",
    "steps",
    "train_size",
    "seconds",
    "device",
    "precision",
    "config_hash",
    "git_revision",
    "finished_at",
)
#: ``finetune_runs.parquet``: one row per valid run
RUN_COLUMNS = (
    *RUN_KEY,
    "test_acc",
    "val_acc",
    "seconds",
    "epochs",
    "steps",
    "train_size",
    "device",
    "precision",
    "config_hash",
    "git_revision",
)
#: what one ground-truth row is about
GT_KEY = ("target", "shots", "entry")
#: ``finetune_gt.parquet`` and the analysis' ground truth (:func:`core.ground_truth.ground_truth`)
GT_COLUMNS = (*GT_KEY, "acc", "best_lr", "n_seeds", "n_lrs", "n_runs", "seconds")
#: ``finetune_cost.csv``: the brute-force fine-tuning cost per (target, shots)
COST_COLUMNS = ("target", "shots", "seconds", "n_runs", "n_entries")
#: a score table (one row per (target, shots, method, entry[, seed]))
SCORE_COLUMNS = ("target", "shots", "method", "entry", "score", "seconds")
#: scores joined with the accuracies they are judged against
MERGED_COLUMNS = (
    "target",
    "shots",
    "method",
    "entry",
    "score",
    "acc",
    "selection_seconds",
    "finetune_seconds",
    "draw",
    "remedy",
    "reference",
)
#: the test accuracy of each fine-tuning seed at the entry's ground-truth lr
SEED_ACC_COLUMNS = ("target", "shots", "entry", "seed", "acc")


# ---------------------------------------------------------------------------------------------
# shots


def _shots_error(value: Any) -> ValueError:
    return ValueError(
        f"invalid shots value {value!r}; valid: 'full' or a positive integer "
        "(e.g. 20, '20', 20.0, 'shots=20'; None means 'full')"
    )


def parse_shots(value: Any, *, allow_unspecified: bool = False) -> int | str:
    """``"full"`` or the positive integer k from any accepted spelling of shots.

    Accepted: a positive int (numpy ints too), a float with an integer value (``20.0``, as a
    parquet column with missing values stores it), a string of those (``"20"``, ``"20.0"``), with
    an optional ``shots=`` prefix (a folder name) and surrounding whitespace, ``"full"`` in any
    case, and ``None`` (= ``"full"``). ``allow_unspecified`` also accepts ``"all"``
    (:data:`SHOTS_UNSPECIFIED`, the analysis' label for results brought without a shots column).
    Booleans, zero, negatives, fractions and other text raise ValueError.
    """
    if value is None:
        return SHOTS_FULL
    if isinstance(value, str):
        text = value.strip().removeprefix("shots=").lower()
        if text == SHOTS_FULL or (allow_unspecified and text == SHOTS_UNSPECIFIED):
            return text
        if re.fullmatch(r"\d+(\.0*)?", text) and int(float(text)) > 0:
            return int(float(text))
    elif isinstance(value, bool | np.bool_):
        pass
    elif isinstance(value, int | np.integer) and value > 0:
        return int(value)
    elif isinstance(value, float | np.floating) and math.isfinite(value) and value == int(value):
        if value > 0:
            return int(value)
    raise _shots_error(value)


def format_shots(value: Any, *, allow_unspecified: bool = False) -> str:
    """The folder / table form of shots: ``"full"`` or ``"20"`` (see :func:`parse_shots`)."""
    return str(parse_shots(value, allow_unspecified=allow_unspecified))


def shots_sort_key(shots: str) -> tuple[int, float, str]:
    """Sort key of formatted shots: integers increasing, then ``"full"``, then anything else."""
    if shots.isdigit():
        return (0, float(shots), shots)
    return (1, 0.0, "") if shots == SHOTS_FULL else (2, 0.0, shots)


# ---------------------------------------------------------------------------------------------
# learning rates


def format_lr(lr: Any) -> str:
    """A canonical, stable text form of a learning rate (``0.01``, ``0.003``, ``1e-05``)."""
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"invalid learning rate {lr!r}; expected a finite number >= 0") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid learning rate {lr!r}; expected a finite number >= 0")
    return f"{value:g}"


# ---------------------------------------------------------------------------------------------
# entry ids


def split_entry(entry_id: str) -> tuple[str, str | None]:
    """``"expert@domain"`` -> ``("expert", "domain")``; ``"expert"`` -> ``("expert", None)``."""
    if not isinstance(entry_id, str) or not entry_id:
        raise ValueError(
            f"invalid entry id {entry_id!r}; expected '<expert>' or '<expert>@<domain>'"
        )
    expert, sep, domain = entry_id.partition(ENTRY_SEP)
    if not expert or (sep and not domain):
        raise ValueError(
            f"invalid entry id {entry_id!r}; expected '<expert>' or '<expert>@<domain>'"
        )
    return expert, (domain if sep else None)


def expert_of(entry_id: str) -> str:
    """The expert id of an entry id (the part before ``@``)."""
    return split_entry(entry_id)[0]


def join_entry(expert_id: str, domain: str | None = None) -> str:
    """``("expert", "domain")`` -> ``"expert@domain"``; ``("expert", None)`` -> ``"expert"``."""
    if not expert_id or ENTRY_SEP in expert_id:
        raise ValueError(f"invalid expert id {expert_id!r}; expected a non-empty id without '@'")
    return f"{expert_id}{ENTRY_SEP}{domain}" if domain else expert_id

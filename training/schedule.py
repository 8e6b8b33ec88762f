"""Learning-rate schedule: the official ``StepwiseCosineDecayLearningRate``, as a pure function.

The official class (``vatt/utils/train/schedules.py::StepCosineLearningRateWithLinearWarmup``)
warms up linearly from ``warmup_lr`` to ``levels[0]`` over ``warmup_steps``; then, from each
boundary ``level_steps[n]``, a half-period cosine runs from ``levels[n]`` to ``levels[n + 1]``
(to 0 after the last level) over the span to the next boundary (to ``total_steps`` after the
last one). The pretraining config is levels ``[1e-4, 5e-5]`` at steps ``[5000, 500000]`` with
``total_steps = 500000``: warm-up to 1e-4, then a cosine to 5e-5 ending at the last step.

The official value at a zero-length span (the last step of that config) is 0/0 = NaN, a step
training never reaches. Here it is defined as the level itself (the limit of the previous
cosine), so the function is finite everywhere. A pure function of the step is what makes
resuming exact: nothing about the schedule lives in the optimizer state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["lr_at", "pretrain_lr_at"]


def lr_at(
    step: int,
    *,
    warmup_lr: float,
    warmup_steps: int,
    levels: Sequence[float],
    level_steps: Sequence[int],
    total_steps: int,
) -> float:
    """Learning rate used by the optimizer update taken at ``step`` (0-based).

    ``level_steps[0]`` must equal ``warmup_steps`` (the official code asserts the same), and
    ``level_steps`` must be non-decreasing and end at or before ``total_steps``.
    """
    if len(levels) != len(level_steps) or not levels:
        raise ValueError(f"levels {list(levels)} and level_steps {list(level_steps)} must be non-empty and of equal length")
    if level_steps[0] != warmup_steps:
        raise ValueError(f"level_steps[0] ({level_steps[0]}) must equal warmup_steps ({warmup_steps})")
    if any(b < a for a, b in zip(level_steps, level_steps[1:])) or level_steps[-1] > total_steps:
        raise ValueError(f"level_steps {list(level_steps)} must be non-decreasing and end at or before total_steps {total_steps}")
    if step < warmup_steps:
        return warmup_lr + step / warmup_steps * (levels[0] - warmup_lr)
    # The last boundary at or before `step` picks the active cosine segment.
    n = max(i for i, s in enumerate(level_steps) if s <= step)
    start = level_steps[n]
    end = level_steps[n + 1] if n + 1 < len(level_steps) else total_steps
    hi = levels[n]
    lo = levels[n + 1] if n + 1 < len(levels) else 0.0
    span = end - start
    if span <= 0:  # official: 0/0 = NaN; ours: the level's own value
        return float(hi)
    return (hi - lo) * (math.cos(math.pi * (step - start) / span) + 1.0) / 2.0 + lo


def pretrain_lr_at(step: int, *, lr: float, final_lr: float, warmup_steps: int, total_steps: int, warmup_lr: float = 0.0) -> float:
    """The pretraining recipe's schedule: warm-up to ``lr``, then a cosine to ``final_lr`` at ``total_steps``."""
    return lr_at(
        step,
        warmup_lr=warmup_lr,
        warmup_steps=warmup_steps,
        levels=(lr, final_lr),
        level_steps=(warmup_steps, total_steps),
        total_steps=total_steps,
    )

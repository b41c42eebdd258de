"""The learning-rate factor per optimizer step: linear warm-up, then constant, cosine or linear
decay to 0 at the last step.

transformers' `get_scheduler` warms up from a factor of 0 (its first optimizer step changes
nothing); with the few dozen optimizer steps of a GRPO run that step matters, so the warm-up here
starts at 1 / warmup_steps.
"""

from __future__ import annotations

import math
from typing import Literal

Schedule = Literal["constant", "cosine", "linear"]


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: Schedule) -> float:
    """Multiplier of the base learning rate at optimizer step `step` (0-based)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1.0 - progress
    return 1.0

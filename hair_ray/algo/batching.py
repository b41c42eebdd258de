"""How a step's samples divide into optimizer steps and accumulation windows, in one place for
the driver (the LR schedule's length) and the learner (its gradient accumulation)."""

from __future__ import annotations


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def optimizer_steps_per_epoch(samples_per_step: int, samples_per_mini_batch: int | None) -> int:
    """One optimizer step a mini-batch; no mini-batch size means the whole step is one."""
    return ceil_div(samples_per_step, samples_per_mini_batch or samples_per_step)


def micro_batches_per_mini_batch(samples_per_mini_batch_per_rank: int, samples_per_micro_batch: int) -> int:
    """Backward passes a rank accumulates before one optimizer step (the last may be short)."""
    return ceil_div(samples_per_mini_batch_per_rank, samples_per_micro_batch)

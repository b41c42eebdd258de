"""What a training run's metrics say about its phases (pure functions over metrics.jsonl rows).

Every step logs `timing/<phase>` (the driver's clock; they add up to `timing/step`), the
learner's own split of its update (`learner/seconds_frozen`, `learner/seconds_policy`, and
`learner/tokens`, the tokens one pass covers), the bytes a weight sync moved (`sync/bytes`) and
the completions' mean length. Means over the measured steps keep the additivity: the phase
means add up to the mean step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean
from typing import Any

PHASES = ("generate", "reward", "hardness", "update", "sync", "judge")


def _mean(rows: Sequence[Mapping[str, Any]], key: str) -> float:
    return fmean(float(row.get(key, 0.0)) for row in rows) if rows else 0.0


def _rate(rows: Sequence[Mapping[str, Any]], amount, seconds) -> float:
    """Mean of a per-step rate (amount / seconds), over the steps where the phase ran."""
    rates = [amount(row) / seconds(row) for row in rows if seconds(row) > 0]
    return fmean(rates) if rates else 0.0


def completion_tokens(row: Mapping[str, Any]) -> float:
    return float(row.get("response_length/mean", 0.0)) * float(row.get("samples", 0.0))


def same_shapes(summary: Mapping[str, Any], bare: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the bare baselines ran exactly step 1's work: the same generated tokens (the
    same samples) and the same learner tokens (the same batch)."""
    ours = summary["step_1"]
    theirs = {"completion_tokens": bare["generate"]["tokens"], "learner_tokens": bare["learner"]["tokens"]}
    return {"hair_ray_step_1": dict(ours), "bare": theirs, "equal": dict(ours) == theirs}


def summarise_run(metrics: Sequence[Mapping[str, Any]], warmup: int) -> dict[str, Any]:
    """The phase table of a run, from its steps after the first `warmup` ones."""
    rows = list(metrics[warmup:])
    if not rows:
        raise ValueError(f"no measured steps: the run has {len(metrics)} steps and the first {warmup} are warm-up")
    phases = {phase: _mean(rows, f"timing/{phase}") for phase in PHASES if any(f"timing/{phase}" in row for row in rows)}
    frozen, policy = _mean(rows, "learner/seconds_frozen"), _mean(rows, "learner/seconds_policy")
    step = _mean(rows, "timing/step")
    first = metrics[0]
    return {
        # The bare baselines rerun step 1 (same prompts, same seeds): its shapes are the check.
        "step_1": {"completion_tokens": completion_tokens(first), "learner_tokens": float(first.get("learner/tokens", 0.0))},
        "steps": len(rows),
        "step_s": step,
        "step_seconds": [float(row["timing/step"]) for row in rows],
        "phase_s": phases,
        # The update phase, split: what the learner computed, and what is left (the batch's trip
        # through Ray, collation, the ranks' metric reduction).
        "learner_frozen_s": frozen,
        "learner_policy_s": policy,
        "update_overhead_s": phases.get("update", 0.0) - frozen - policy,
        "completion_tokens": _mean(rows, "response_length/mean") * _mean(rows, "samples"),
        "samples": _mean(rows, "samples"),
        "learner_tokens": _mean(rows, "learner/tokens"),
        "sync_bytes": _mean(rows, "sync/bytes"),
        "rollout_tokens_per_s": _rate(rows, completion_tokens, lambda r: float(r.get("timing/generate", 0.0))),
        "learner_tokens_per_s": _rate(rows, lambda r: r["learner/tokens"], lambda r: float(r.get("learner/seconds_policy", 0.0))),
        "reference_tokens_per_s": _rate(
            rows, lambda r: r["learner/tokens"], lambda r: float(r.get("learner/seconds_frozen", 0.0))
        ),
        "sync_gb_per_s": _rate(rows, lambda r: r["sync/bytes"] / 1e9, lambda r: float(r.get("timing/sync", 0.0))),
        "reward_samples_per_s": _rate(rows, lambda r: r["samples"], lambda r: float(r.get("timing/reward", 0.0))),
        "completion_tokens_per_s": _rate(rows, completion_tokens, lambda r: float(r["timing/step"])),
    }

"""One step's metrics, overall and per category (a pure function of the step's results).

Keys: reward/{mean,std}[/<category>], alpha_d/{mean,std,min,max}, alpha_m/{mean,std,min,max},
hardness/{similarity_mean,kept_fraction,relative_change,alpha_m_active_fraction}, groups/
zero_variance, response_length/mean, finish/length_fraction, refusal/fraction[/<category>],
rollout/{weights_version,staleness}, learner/*, timing/<phase> and timing/step.

The α means are ≈ 1 by construction, so they cannot show whether the hardness factors did
anything; hardness/relative_change (mean |A − Â| / |Â| over samples with Â ≠ 0) and
hardness/alpha_m_active_fraction (share of prompt groups with α^M ≠ 1) can, together with the
α extremes (see hair_ray.algo.hardness.scaling_effect).

refusal/fraction is the share of responses that the run's refusal judge (`eval.judge`: the
classifier validated against human labels, or the keyword rule; see hair_ray.eval.judges) calls
a refusal. Every training prompt is harmful, so it rises as the policy learns to refuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean, pstdev
from typing import Any

import torch

from hair_ray.algo.hardness import scaling_effect
from hair_ray.train.tracking import ALPHA_M_ACTIVE_FRACTION, RELATIVE_CHANGE


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return (fmean(values), pstdev(values)) if values else (0.0, 0.0)


def step_metrics(
    *,
    owners: Sequence[Mapping[str, Any]],
    samples: Sequence[Mapping[str, Any]],
    refused: Sequence[bool],
    rewards: Sequence[float],
    advantages,
    alpha: Mapping[str, Sequence[float]] | None,
    learner: Mapping[str, float],
    timing: Mapping[str, float],
    weights_version: int,
    group_ids: Sequence[int],  # the prompt group of each sample
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    metrics["reward/mean"], metrics["reward/std"] = _mean_std(rewards)
    alpha_d = advantages.alpha_d.tolist()
    alpha_m = advantages.alpha_m.tolist()
    metrics["alpha_d/mean"], metrics["alpha_d/std"] = _mean_std(alpha_d)
    metrics["alpha_m/mean"], metrics["alpha_m/std"] = _mean_std(alpha_m)
    effect = scaling_effect(advantages, torch.as_tensor(list(group_ids), dtype=torch.long))
    metrics[RELATIVE_CHANGE] = effect.relative_change
    metrics[ALPHA_M_ACTIVE_FRACTION] = effect.alpha_m_active_fraction
    metrics["alpha_d/min"], metrics["alpha_d/max"] = effect.alpha_d_min, effect.alpha_d_max
    metrics["alpha_m/min"], metrics["alpha_m/max"] = effect.alpha_m_min, effect.alpha_m_max
    metrics["advantage/abs_mean"] = fmean(abs(a) for a in advantages.advantages.tolist()) if rewards else 0.0
    metrics["hardness/kept_fraction"] = float(advantages.kept.float().mean()) if rewards else 0.0
    if alpha is not None:
        metrics["hardness/similarity_mean"] = fmean(alpha["similarity"]) if alpha["similarity"] else 0.0
    metrics["groups/zero_variance"] = float(advantages.num_zero_variance_groups)

    lengths = [len(s["token_ids"]) for s in samples]
    metrics["response_length/mean"] = fmean(lengths) if lengths else 0.0
    metrics["finish/length_fraction"] = fmean(s["finish_reason"] == "length" for s in samples) if samples else 0.0
    refusals = [float(flag) for flag in refused]
    metrics["refusal/fraction"] = fmean(refusals) if refusals else 0.0
    versions = [s.get("weights_version", weights_version) for s in samples]
    metrics["rollout/weights_version"] = float(min(versions, default=weights_version))
    # How many updates behind the freshest weights the batch was generated (async mode: 1).
    metrics["rollout/staleness"] = float(weights_version - 1 - min(versions, default=weights_version - 1))

    by_category: dict[str, list[int]] = {}
    for index, owner in enumerate(owners):
        by_category.setdefault(owner["category"], []).append(index)
    for category, indices in sorted(by_category.items()):
        values = [rewards[i] for i in indices]
        metrics[f"reward/mean/{category}"], metrics[f"reward/std/{category}"] = _mean_std(values)
        metrics[f"alpha_d/mean/{category}"] = fmean(alpha_d[i] for i in indices)
        metrics[f"alpha_m/mean/{category}"] = fmean(alpha_m[i] for i in indices)
        metrics[f"response_length/mean/{category}"] = fmean(lengths[i] for i in indices)
        metrics[f"refusal/fraction/{category}"] = fmean(refused[i] for i in indices)

    metrics.update(learner)
    for phase, seconds in timing.items():
        metrics[f"timing/{phase}"] = seconds
    metrics["timing/step"] = sum(timing.values())
    metrics["samples"] = float(len(samples))
    metrics["tokens/per_second"] = sum(lengths) / metrics["timing/step"] if metrics["timing/step"] else 0.0
    return metrics

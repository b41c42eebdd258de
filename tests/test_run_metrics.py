"""step_metrics on a hand-built step: the numbers the run logs, overall and per category."""

from __future__ import annotations

import pytest
import torch

from hair_ray.algo.hardness import grpo_s_advantages
from hair_ray.run_metrics import step_metrics

OWNERS = [{"category": "insult"}] * 2 + [{"category": "mental_health"}] * 2
SAMPLES = [
    {"token_ids": [1, 2, 3], "finish_reason": "stop", "weights_version": 3},
    {"token_ids": [1, 2, 3, 4, 5], "finish_reason": "length", "weights_version": 3},
    {"token_ids": [1], "finish_reason": "stop", "weights_version": 3},
    {"token_ids": [1, 2, 3, 4, 5, 6, 7], "finish_reason": "stop", "weights_version": 3},
]
REFUSED = [False, True, True, False]  # the judge's verdicts on the four responses


def test_step_metrics_hand_computed():
    rewards = [1.0, 0.0, 2.0, 4.0]
    advantages = grpo_s_advantages(torch.tensor(rewards), torch.tensor([0, 0, 1, 1]),
                                   alpha_d=None, demo_rewards=None,
                                   use_data_hardness=False, use_model_responsiveness=False)
    metrics = step_metrics(
        owners=OWNERS, samples=SAMPLES, refused=REFUSED, rewards=rewards, advantages=advantages,
        alpha=None, learner={"learner/kl": 0.01}, timing={"generate": 3.0, "update": 1.0}, weights_version=4,
    )
    assert metrics["reward/mean"] == pytest.approx(1.75)
    assert metrics["reward/mean/insult"] == pytest.approx(0.5)
    assert metrics["reward/std/mental_health"] == pytest.approx(1.0)
    assert metrics["response_length/mean"] == pytest.approx(4.0)
    assert metrics["finish/length_fraction"] == pytest.approx(0.25)
    assert metrics["refusal/fraction"] == pytest.approx(0.5)
    assert metrics["refusal/fraction/insult"] == pytest.approx(0.5)
    assert metrics["refusal/fraction/mental_health"] == pytest.approx(0.5)
    assert metrics["rollout/staleness"] == 0.0 and metrics["rollout/weights_version"] == 3.0
    assert metrics["timing/step"] == 4.0 and metrics["tokens/per_second"] == pytest.approx(4.0)
    assert metrics["learner/kl"] == 0.01

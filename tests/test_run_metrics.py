"""step_metrics on a hand-built step: the numbers the run logs, overall and per category."""

from __future__ import annotations

import pytest
import torch

from hair_ray.algo.hardness import GRPOSAdvantages, grpo_s_advantages
from hair_ray.train.metrics import step_metrics

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
    advantages = grpo_s_advantages(
        torch.tensor(rewards),
        torch.tensor([0, 0, 1, 1]),
        alpha_d=None,
        demo_rewards=None,
        use_data_hardness=False,
        use_model_responsiveness=False,
    )
    metrics = step_metrics(
        owners=OWNERS,
        samples=SAMPLES,
        refused=REFUSED,
        rewards=rewards,
        advantages=advantages,
        alpha=None,
        learner={"learner/kl": 0.01},
        timing={"generate": 3.0, "update": 1.0},
        weights_version=4,
        group_ids=[0, 0, 1, 1],
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
    # plain GRPO: the scaling changed nothing
    assert metrics["hardness/relative_change"] == 0.0
    assert metrics["hardness/alpha_m_active_fraction"] == 0.0
    assert metrics["alpha_d/min"] == metrics["alpha_d/max"] == 1.0
    assert metrics["alpha_m/min"] == metrics["alpha_m/max"] == 1.0
    assert metrics["alpha_d/mean"] == 1.0 and metrics["alpha_m/mean"] == 1.0  # kept keys


# Three prompt groups of two. Groups A and B share a category but are different prompt records,
# so they are two groups; B has zero variance (Â = 0). Built by hand rather than through
# grpo_s_advantages: with two samples per group the outlier filter can never make α^M ≠ 1
# (both gaps deviate from their mean by the same amount).
INSULT_A, INSULT_B, MENTAL_C = {"category": "insult"}, {"category": "insult"}, {"category": "mental_health"}
SCALED_OWNERS = [INSULT_A, INSULT_A, INSULT_B, INSULT_B, MENTAL_C, MENTAL_C]
BASE = [1.0, -1.0, 0.0, 0.0, 0.5, -0.5]  # Â
ALPHA_D = [1.5, 1.0, 0.8, 1.2, 1.0, 1.0]
ALPHA_M = [1.0, 1.0, 1.0, 1.0, 2.0, 2.0]  # group C's filter dropped a gap
# A = α^D · α^M · Â = [1.5, −1.0, 0, 0, 1.0, −1.0]
SCALED = GRPOSAdvantages(
    advantages=torch.tensor([d * m * b for d, m, b in zip(ALPHA_D, ALPHA_M, BASE)]),
    base_advantages=torch.tensor(BASE),
    alpha_d=torch.tensor(ALPHA_D),
    alpha_m=torch.tensor(ALPHA_M),
    kept=torch.ones(6, dtype=torch.bool),
    zero_variance=torch.tensor([False, False, True, True, False, False]),
    num_zero_variance_groups=1,
)


def _scaled_metrics(**kwargs) -> dict[str, float]:
    samples = [{"token_ids": [1, 2], "finish_reason": "stop"}] * 6
    return step_metrics(
        owners=SCALED_OWNERS,
        samples=samples,
        refused=[False] * 6,
        rewards=[1.0, 0.0, 2.0, 2.0, 1.0, 0.0],
        advantages=SCALED,
        alpha=None,
        learner={},
        timing={"update": 1.0},
        weights_version=1,
        **kwargs,
    )


def test_step_metrics_scaling_effect_hand_computed():
    # |A − Â| / |Â| over the samples with Â ≠ 0 (group B is left out):
    #   |1.5 − 1| / 1 = 0.5;  |−1 + 1| / 1 = 0;  |1 − 0.5| / 0.5 = 1;  |−1 + 0.5| / 0.5 = 1
    #   mean = 2.5 / 4 = 0.625
    # groups with α^M ≠ 1: C of {A, B, C} -> 1/3
    metrics = _scaled_metrics(group_ids=[0, 0, 1, 1, 2, 2])
    assert metrics["hardness/relative_change"] == pytest.approx(0.625)
    assert metrics["hardness/alpha_m_active_fraction"] == pytest.approx(1 / 3)
    assert metrics["alpha_d/min"] == pytest.approx(0.8) and metrics["alpha_d/max"] == pytest.approx(1.5)
    assert metrics["alpha_m/min"] == 1.0 and metrics["alpha_m/max"] == 2.0
    # groups are the given ids, whatever the owners: A and B as one group -> C of {AB, C} = 1/2
    merged = _scaled_metrics(group_ids=[7, 7, 7, 7, 3, 3])
    assert merged["hardness/alpha_m_active_fraction"] == pytest.approx(0.5)
    assert merged["hardness/relative_change"] == pytest.approx(0.625)  # per sample: unchanged

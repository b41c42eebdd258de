"""Golden tests for hair_ray.algo.irl: every expected number is worked out by hand below."""

from __future__ import annotations

import math

import pytest
import torch

from hair_ray.algo.irl import (
    auroc,
    bradley_terry_loss,
    grouped_pairwise_agreement,
    margin_stats,
    pairwise_accuracy,
)


def close(actual: torch.Tensor, expected: float, atol: float = 1e-6) -> None:
    assert abs(float(actual) - expected) <= atol, (float(actual), expected)


# --------------------------------------------------------------------------------------------
# Bradley-Terry loss
# --------------------------------------------------------------------------------------------


def test_loss_of_equal_rewards_is_log_two() -> None:
    # margin 0 for every pair: -log σ(0) = -log 0.5 = log 2 = 0.693147...
    r = torch.tensor([0.3, -1.2, 5.0])
    close(bradley_terry_loss(r, r.clone()), math.log(2))


def test_loss_golden_three_pairs() -> None:
    # margins m = demo - sample = [2 - 1, 0 - 1, 3 - 3] = [1, -1, 0]
    # -log σ(m) = log(1 + e^{-m}):
    #   m =  1: log(1 + e^-1) = log(1.3678794) = 0.3132617
    #   m = -1: log(1 + e^1)  = log(3.7182818) = 1.3132617
    #   m =  0: log 2                          = 0.6931472
    # mean = (0.3132617 + 1.3132617 + 0.6931472) / 3 = 2.3196706 / 3 = 0.7732235
    demo = torch.tensor([2.0, 0.0, 3.0])
    sample = torch.tensor([1.0, 1.0, 3.0])
    close(bradley_terry_loss(demo, sample), 0.7732235)


def test_loss_is_finite_for_huge_negative_margin() -> None:
    # m = -100: log(1 + e^100) = 100 + log(1 + e^-100) = 100.0 (to float precision);
    # log(sigmoid(-100)) in float32 would be log(0) = -inf.
    loss = bradley_terry_loss(torch.tensor([0.0]), torch.tensor([100.0]))
    close(loss, 100.0, atol=1e-4)
    assert torch.isfinite(loss)


def test_loss_gradient_pushes_demo_up_and_sample_down() -> None:
    # d/dr_demo [-log σ(m)] = -(1 - σ(m)) / n; with m = 0 and n = 1: -(1 - 0.5) = -0.5
    demo = torch.tensor([0.0], requires_grad=True)
    sample = torch.tensor([0.0], requires_grad=True)
    bradley_terry_loss(demo, sample).backward()
    close(demo.grad[0], -0.5)
    close(sample.grad[0], 0.5)


def test_loss_rejects_empty_and_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="no pairs"):
        bradley_terry_loss(torch.tensor([]), torch.tensor([]))
    with pytest.raises(ValueError, match=r"shapes \(2,\) and \(3,\)"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


# --------------------------------------------------------------------------------------------
# pairwise accuracy and margins
# --------------------------------------------------------------------------------------------


def test_pairwise_accuracy_counts_ties_as_half() -> None:
    # pairs: 2>1 win (1), 0<1 loss (0), 3==3 tie (0.5), 4>-4 win (1) -> 2.5 / 4 = 0.625
    demo = torch.tensor([2.0, 0.0, 3.0, 4.0])
    sample = torch.tensor([1.0, 1.0, 3.0, -4.0])
    close(pairwise_accuracy(demo, sample), 0.625)


def test_constant_reward_model_is_at_chance() -> None:
    # all ties: 4 × 0.5 / 4 = 0.5
    close(pairwise_accuracy(torch.ones(4), torch.ones(4)), 0.5)


def test_margin_stats_golden() -> None:
    # margins [1, -1, 0, 8]: mean = 8 / 4 = 2
    # population variance = ((1-2)² + (-1-2)² + (0-2)² + (8-2)²) / 4 = (1 + 9 + 4 + 36) / 4 = 12.5
    # std = sqrt(12.5) = 3.5355339; min = -1
    demo = torch.tensor([2.0, 0.0, 3.0, 4.0])
    sample = torch.tensor([1.0, 1.0, 3.0, -4.0])
    stats = margin_stats(demo, sample)
    close(stats.mean, 2.0)
    close(stats.std, 3.5355339)
    close(stats.min, -1.0)


def test_margin_std_of_one_pair_is_zero() -> None:
    # one margin: population variance (m - m)² / 1 = 0 (the sample std would be 0/0 = NaN)
    close(margin_stats(torch.tensor([3.0]), torch.tensor([1.0])).std, 0.0)


# --------------------------------------------------------------------------------------------
# evaluation metrics
# --------------------------------------------------------------------------------------------


def test_auroc_golden() -> None:
    # positives {0.9, 0.4}, negatives {0.5, 0.1, 0.4}; the 6 (pos, neg) pairs:
    #   0.9 vs 0.5, 0.1, 0.4 -> 1, 1, 1
    #   0.4 vs 0.5, 0.1, 0.4 -> 0, 1, 0.5 (tie)
    # AUROC = (3 + 1.5) / 6 = 0.75
    scores = torch.tensor([0.9, 0.5, 0.4, 0.1, 0.4])
    labels = torch.tensor([True, False, True, False, False])
    close(auroc(scores, labels), 0.75)


def test_auroc_of_one_class_is_nan() -> None:
    assert math.isnan(float(auroc(torch.tensor([1.0, 2.0]), torch.tensor([True, True]))))


def test_grouped_agreement_pairs_only_within_a_group() -> None:
    # group 7: positives {2.0}, negatives {1.0, 3.0} -> pairs (2>1)=1, (2<3)=0
    # group 9: positives {0.0, 5.0}, negatives {0.0} -> (0==0)=0.5, (5>0)=1
    # group 4: only a positive -> no pair
    # agreement = (1 + 0 + 0.5 + 1) / 4 = 0.625 over 4 pairs. Across groups 5.0 (g9) vs 3.0 (g7)
    # would be another pair: it must not count.
    scores = torch.tensor([2.0, 1.0, 3.0, 0.0, 5.0, 0.0, 9.0])
    positives = torch.tensor([True, False, False, True, True, False, True])
    groups = torch.tensor([7, 7, 7, 9, 9, 9, 4])
    agreement, pairs = grouped_pairwise_agreement(scores, positives, groups)
    close(agreement, 0.625)
    assert pairs == 4


def test_grouped_agreement_without_pairs_is_nan() -> None:
    agreement, pairs = grouped_pairwise_agreement(torch.tensor([1.0, 2.0]), torch.tensor([True, False]), torch.tensor([0, 1]))
    assert pairs == 0 and math.isnan(float(agreement))

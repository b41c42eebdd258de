"""Golden tests for hair_ray.algo.grpo: every expected number is worked out by hand below."""

from __future__ import annotations

import math

import pytest
import torch

from hair_ray.algo.grpo import (
    aggregate_loss,
    clipped_policy_objective,
    entropy_from_logits,
    group_advantages,
    grpo_loss,
    kl_estimate,
    masked_mean,
    masked_sum,
    token_logprobs,
)

EPS = 1e-6
E = math.e  # 2.718281828459045


def close(actual: torch.Tensor, expected, atol: float = 1e-6) -> None:
    expected_t = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected_t, atol=atol, rtol=1e-6)


# --------------------------------------------------------------------------------------------
# masked reductions
# --------------------------------------------------------------------------------------------

VALUES = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1, 1, 0], [0, 0, 0]])


def test_masked_sum_all_and_per_row() -> None:
    # row 0 keeps 1 + 2 = 3; row 1 keeps nothing = 0; total 3
    close(masked_sum(VALUES, MASK), 3.0)
    close(masked_sum(VALUES, MASK, dim=-1), [3.0, 0.0])


def test_masked_mean_empty_row_is_zero_not_nan() -> None:
    # row 0: (1 + 2) / 2 = 1.5; row 1: no valid entry -> 0 by convention; overall 3 / 2 = 1.5
    close(masked_mean(VALUES, MASK, dim=-1), [1.5, 0.0])
    close(masked_mean(VALUES, MASK), 1.5)


def test_masked_sum_ignores_inf_and_nan_in_padding() -> None:
    # padding holds inf / nan (e.g. log 0); they are selected away, not multiplied by 0
    values = torch.tensor([[1.0, float("inf"), float("nan")]])
    mask = torch.tensor([[True, False, False]])
    close(masked_sum(values, mask), 1.0)
    close(masked_mean(values, mask), 1.0)


# --------------------------------------------------------------------------------------------
# group advantages
# --------------------------------------------------------------------------------------------


def test_group_advantages_ragged_noncontiguous_ids() -> None:
    # positions: 0    1    2    3    4    5     6    7     8
    ids = torch.tensor([7, 3, 7, 3, 7, 42, 3, -1, -1])
    rewards = torch.tensor([1.0, 5.0, 2.0, 1.0, 3.0, 7.0, 3.0, 0.5, 0.5], dtype=torch.float64)
    out = group_advantages(rewards, ids, eps=EPS)
    # group 7  (pos 0,2,4): R = [1,2,3]; mean 2; deviations [-1,0,1]; Σd² = 2; sample var 2/2 = 1;
    #          std 1 -> Â = [-1, 0, 1] / (1 + 1e-6)
    # group 3  (pos 1,3,6): R = [5,1,3]; mean 3; deviations [2,-2,0]; Σd² = 8; var 8/2 = 4;
    #          std 2 -> Â = [2, -2, 0] / (2 + 1e-6)
    # group 42 (pos 5): size 1 -> Â = 0, counted as zero variance
    # group -1 (pos 7,8): R = [0.5, 0.5], all equal -> Â = 0, counted
    a, b = 1 / (1 + EPS), 2 / (2 + EPS)
    expected = [-a, b, 0.0, -b, a, 0.0, 0.0, 0.0, 0.0]
    torch.testing.assert_close(out.advantages, torch.tensor(expected, dtype=torch.float64))
    assert out.zero_variance.tolist() == [False] * 5 + [True, False, True, True]
    assert out.num_zero_variance_groups == 2


def test_group_advantages_uses_sample_std() -> None:
    # R = [0, 1]: mean 0.5, d = ±0.5, Σd² = 0.5; Bessel: var = 0.5 / (2-1) = 0.5, std = √0.5
    # = 0.70710678 -> Â = ±0.5 / 0.70710778 = ±0.70710578 (the population std 0.5 would give ±1)
    out = group_advantages(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([0, 0]))
    expected = 0.5 / (math.sqrt(0.5) + EPS)
    expected_t = torch.tensor([-expected, expected], dtype=torch.float64)
    torch.testing.assert_close(out.advantages, expected_t)
    close(out.advantages.float(), [-0.70710578, 0.70710578])


def test_group_advantages_eps_and_integer_rewards() -> None:
    # integer rewards [1,2,3] are promoted to float; eps = 0.5: Â = [-1, 0, 1] / (1 + 0.5)
    out = group_advantages(torch.tensor([1, 2, 3]), torch.tensor([9, 9, 9]), eps=0.5)
    assert out.advantages.is_floating_point()
    close(out.advantages, [-2 / 3, 0.0, 2 / 3])


def test_group_advantages_zero_variance_is_exactly_zero() -> None:
    # 0.1 three times: their float mean need not equal 0.1 bit for bit; Â must still be 0 exactly
    out = group_advantages(torch.tensor([0.1, 0.1, 0.1]), torch.tensor([5, 5, 5]))
    assert torch.equal(out.advantages, torch.zeros(3))
    assert out.num_zero_variance_groups == 1


def test_group_advantages_empty_batch() -> None:
    out = group_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    assert out.advantages.shape == (0,)
    assert out.num_zero_variance_groups == 0


# --------------------------------------------------------------------------------------------
# KL estimators
# --------------------------------------------------------------------------------------------

LOGP = torch.tensor([-1.0, -2.0, -0.5], dtype=torch.float64)
REF = torch.tensor([-1.5, -1.0, -0.5], dtype=torch.float64)
# d = ref − logp = [-0.5, 1.0, 0.0]


def test_kl_k1() -> None:
    # k1 = −d = logp − ref = [0.5, −1.0, 0.0]
    close(kl_estimate(LOGP, REF, "k1"), [0.5, -1.0, 0.0])


def test_kl_k2() -> None:
    # k2 = ½ d² = [½·0.25, ½·1, 0] = [0.125, 0.5, 0.0]
    close(kl_estimate(LOGP, REF, "k2"), [0.125, 0.5, 0.0])


def test_kl_k3() -> None:
    # k3 = e^d − d − 1:
    #   d = −0.5: e^−0.5 = 0.6065306597; 0.6065306597 + 0.5 − 1 = 0.1065306597
    #   d =  1.0: e − 1 − 1 = 0.7182818285
    #   d =  0.0: 1 − 0 − 1 = 0
    close(kl_estimate(LOGP, REF, "k3"), [0.1065306597, 0.7182818285, 0.0], atol=1e-9)
    close(kl_estimate(LOGP, REF), [0.1065306597, 0.7182818285, 0.0], atol=1e-9)  # default k3


def test_kl_k3_overflowing_difference_is_inf_not_nan() -> None:
    # float32: ref − logp = 3e38 − (−3e38) overflows to +inf; KL is +inf, not inf − inf = NaN
    out = kl_estimate(torch.tensor([-3e38]), torch.tensor([3e38]), "k3")
    assert torch.isposinf(out).all()


def test_kl_unknown_kind_raises() -> None:
    with pytest.raises(ValueError):
        kl_estimate(LOGP, REF, "k4")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# clipped objective
# --------------------------------------------------------------------------------------------


def _logs_for_ratios(ratios: list[list[float]], old: float = -1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """old_logp = old everywhere, logp = old + ln ρ, so exp(logp − old_logp) = ρ."""
    rho = torch.tensor(ratios, dtype=torch.float64)
    old_logp = torch.full_like(rho, old)
    return old_logp + rho.log(), old_logp


def test_clipped_objective_symmetric_both_signs() -> None:
    # ε = 0.2 -> clip range [0.8, 1.2]; ρ = [1.5, 0.5, 1.1] in both rows
    logp, old = _logs_for_ratios([[1.5, 0.5, 1.1], [1.5, 0.5, 1.1]])
    adv = torch.tensor([2.0, -2.0], dtype=torch.float64)
    obj, clipped = clipped_policy_objective(logp, old, adv, torch.ones(2, 3), 0.2, 0.2)
    # A = +2: ρ=1.5: min(3.0, 1.2·2=2.4) = 2.4  clipped (ρ > 1.2, A > 0)
    #         ρ=0.5: min(1.0, 0.8·2=1.6) = 1.0  unclipped branch (pessimistic bound)
    #         ρ=1.1: min(2.2, 2.2)       = 2.2  inside the range
    # A = −2: ρ=1.5: min(−3.0, −2.4)     = −3.0 unclipped branch
    #         ρ=0.5: min(−1.0, 0.8·−2=−1.6) = −1.6 clipped (ρ < 0.8, A < 0)
    #         ρ=1.1: −2.2
    close(obj, [[2.4, 1.0, 2.2], [-3.0, -1.6, -2.2]])
    assert clipped.tolist() == [[True, False, False], [False, True, False]]


def test_clipped_objective_asymmetric() -> None:
    # clip_low 0.2, clip_high 0.28 -> range [0.8, 1.28]
    logp, old = _logs_for_ratios([[1.25, 1.4], [0.7, 0.85]])
    adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
    obj, clipped = clipped_policy_objective(logp, old, adv, torch.ones(2, 2), 0.2, 0.28)
    # A = +1: ρ=1.25 < 1.28 -> 1.25 (a symmetric 0.2 clip would have cut it to 1.2)
    #         ρ=1.4  > 1.28 -> min(1.4, 1.28) = 1.28, clipped
    # A = −1: ρ=0.7  < 0.8  -> min(−0.7, −0.8) = −0.8, clipped
    #         ρ=0.85 inside -> −0.85
    close(obj, [[1.25, 1.28], [-0.8, -0.85]])
    assert clipped.tolist() == [[False, True], [True, False]]
    # the symmetric clip on the same first row: 1.25 -> 1.2
    sym, _ = clipped_policy_objective(logp[:1], old[:1], adv[:1], torch.ones(1, 2), 0.2, 0.2)
    close(sym, [[1.2, 1.2]])


def test_clipped_objective_zero_advantage_and_padding() -> None:
    # A = 0: objective 0, never "clipped". Padding (mask 0) with a garbage ratio e^50: 0, False.
    logp = torch.tensor([[0.0, 50.0]])
    old = torch.tensor([[-1.0, 0.0]])
    for a in (0.0, 1.0):
        mask = torch.tensor([[1, 0]])
        obj, clipped = clipped_policy_objective(logp, old, torch.tensor([a]), mask)
        # valid token: ρ = e^1 = 2.718 > 1.2 -> clipped to 1.2·A
        close(obj, [[1.2 * a, 0.0]])
        assert clipped.tolist() == [[a > 0, False]]


def test_clipped_objective_huge_ratio_on_valid_token_is_finite() -> None:
    # log ρ = 100 would overflow exp() in float32 and give inf · 0 = NaN for A = 0; the log-ratio
    # is capped at 20 (ρ ≤ e^20), so A = 0 -> 0 and A = −1 -> −e^20 = −485165195.4
    logp, old = torch.tensor([[0.0], [0.0]]), torch.tensor([[-100.0], [-100.0]])
    obj, _ = clipped_policy_objective(logp, old, torch.tensor([0.0, -1.0]), torch.ones(2, 1))
    assert obj[0, 0].item() == 0.0
    torch.testing.assert_close(obj[1, 0], torch.tensor(-485165195.4), rtol=1e-6, atol=0)


# --------------------------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------------------------

LOSS = torch.tensor([[1.0, 2.0, 3.0, 100.0], [4.0, 100.0, 100.0, 100.0], [100.0] * 4])
LMASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]])


def test_aggregate_token_mean() -> None:
    # valid tokens 1, 2, 3, 4 -> Σ = 10 over 4 tokens = 2.5; with a global count of 8: 10/8 = 1.25
    close(aggregate_loss(LOSS, LMASK, "token-mean"), 2.5)
    close(aggregate_loss(LOSS, LMASK, "token-mean", num_tokens=8), 1.25)


def test_aggregate_seq_mean_token_mean() -> None:
    # row means: (1+2+3)/3 = 2, 4/1 = 4, empty row 0 -> Σ = 6; default N = 3 -> 2.0; N = 2 -> 3.0
    close(aggregate_loss(LOSS, LMASK, "seq-mean-token-mean"), 2.0)
    close(aggregate_loss(LOSS, LMASK, "seq-mean-token-mean", num_sequences=2), 3.0)


def test_aggregate_empty_mask_is_zero() -> None:
    empty = torch.zeros_like(LMASK)
    for mode in ("token-mean", "seq-mean-token-mean"):
        close(aggregate_loss(LOSS, empty, mode), 0.0)  # type: ignore[arg-type]


def test_aggregate_unknown_mode_raises() -> None:
    with pytest.raises(ValueError):
        aggregate_loss(LOSS, LMASK, "sum")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# the full loss
# --------------------------------------------------------------------------------------------


def _loss_inputs() -> dict[str, torch.Tensor]:
    # row 0: A = +1; token 0 has ρ = 1.5 (clipped to 1.2), token 1 ρ = 1
    # row 1: A = −1; token 0 ρ = 1; token 1 is padding
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], dtype=torch.float64)
    old = logp.clone()
    old[0, 0] = -1.0 - math.log(1.5)
    # d = ref − logp: row 0 -> [0, 1]; row 1 -> [−0.5, (padding) 7]
    ref = torch.tensor([[-1.0, -1.0], [-1.0, 4.0]], dtype=torch.float64)
    return {
        "logp": logp.requires_grad_(True),
        "old_logp": old,
        "ref_logp": ref,
        "advantages": torch.tensor([1.0, -1.0], dtype=torch.float64),
        "mask": torch.tensor([[1, 1], [1, 0]]),
    }


# per-token objective: [1.2, 1.0], [−1.0]; k3: [0, e − 2 = 0.7182818285], [0.1065306597]
# loss per token (β = 0.04): −1.2 + 0          = −1.2
#                            −1.0 + 0.04·0.7182818285 = −0.9712687269
#                            +1.0 + 0.04·0.1065306597 = +1.0042612264
K3_A, K3_B = E - 2.0, math.exp(-0.5) - 0.5


def test_grpo_loss_token_mean() -> None:
    x = _loss_inputs()
    out = grpo_loss(**x, kl_coef=0.04)
    # Σ = −1.2 − 0.9712687269 + 1.0042612264 = −1.1670075005; / 3 tokens = −0.3890025002
    close(out.loss, (-1.2 - 1.0 + 0.04 * K3_A + 1.0 + 0.04 * K3_B) / 3)
    close(out.loss, -0.3890025002, atol=1e-9)
    close(out.policy_loss, (-1.2 - 1.0 + 1.0) / 3)  # = −0.4
    close(out.kl, (0.0 + K3_A + K3_B) / 3)  # = 0.8248124882 / 3 = 0.2749374961
    close(out.clip_fraction, 1 / 3)
    assert all(t.dim() == 0 for t in out)
    assert not out.policy_loss.requires_grad and not out.kl.requires_grad


def test_grpo_loss_gradient() -> None:
    x = _loss_inputs()
    grpo_loss(**x, kl_coef=0.04).loss.backward()
    g = x["logp"].grad
    # clipped token (ρ = 1.5, A > 0): no policy gradient; KL gradient 1 − e^d = 1 − e^0 = 0
    assert g[0, 0].item() == 0.0
    # token (0,1): ∂(−ρA)/∂logp = −ρA = −1; ∂k3/∂logp = 1 − e^d = 1 − e = −1.7182818285;
    #   (−1 + 0.04·(−1.7182818285)) / 3 = −1.0687312731 / 3 = −0.3562437577
    close(g[0, 1], (-1.0 + 0.04 * (1 - E)) / 3)
    close(g[0, 1], -0.3562437577, atol=1e-9)
    # padding gets nothing
    assert g[1, 1].item() == 0.0


def test_grpo_loss_seq_mean_token_mean() -> None:
    out = grpo_loss(**_loss_inputs(), kl_coef=0.04, loss_agg="seq-mean-token-mean")
    # row 0: (−1.2 − 0.9712687269) / 2 = −1.0856343635; row 1: 1.0042612264
    # Σ = −0.0813731371; / 2 rows = −0.0406865685
    row0 = (-1.2 - 1.0 + 0.04 * K3_A) / 2
    row1 = 1.0 + 0.04 * K3_B
    close(out.loss, (row0 + row1) / 2)
    close(out.loss, -0.0406865685, atol=1e-9)


def test_grpo_loss_without_kl() -> None:
    # β = 0: loss = policy loss = −0.4, KL still reported; no ref: KL metric 0
    out = grpo_loss(**_loss_inputs(), kl_coef=0.0)
    close(out.loss, -0.4)
    close(out.kl, (K3_A + K3_B) / 3)
    x = _loss_inputs()
    x["ref_logp"] = None  # type: ignore[assignment]
    out = grpo_loss(**x, kl_coef=0.04)
    close(out.loss, -0.4)
    close(out.kl, 0.0)


def test_grpo_loss_global_token_count() -> None:
    # 3 local tokens but the accumulation window holds 6: the loss halves, −0.3890025002 / 2
    out = grpo_loss(**_loss_inputs(), num_tokens=6)
    close(out.loss, -0.1945012501, atol=1e-9)


# --------------------------------------------------------------------------------------------
# logits -> entropy, log-probs
# --------------------------------------------------------------------------------------------


def test_entropy_uniform_is_log_v() -> None:
    # 4 equal logits (any constant): p = 1/4 each, H = −4·¼·ln ¼ = ln 4 = 1.3862943611
    logits = torch.stack([torch.zeros(4), torch.full((4,), 5.0)]).unsqueeze(0)
    close(entropy_from_logits(logits), [[1.3862943611, 1.3862943611]])


def test_entropy_two_point_and_stability() -> None:
    # logits [0, ln 3] -> p = [1/4, 3/4]; H = ¼ ln 4 + ¾ ln(4/3)
    #   = 0.25·1.3862943611 + 0.75·0.2876820725 = 0.3465735903 + 0.2157615543 = 0.5623351446
    # [1000, 1000] (exp overflows naively) -> ln 2 = 0.6931471806
    # [0, 0, −inf, −inf] (banned tokens) -> ln 2, not NaN
    logits = torch.tensor(
        [[[0.0, math.log(3.0), -math.inf, -math.inf], [1000.0, 1000.0, -math.inf, -math.inf], [0.0, 0.0, -math.inf, -math.inf]]]
    )
    close(entropy_from_logits(logits), [[0.5623351446, 0.6931471806, 0.6931471806]])


def test_entropy_gradient_is_finite_with_banned_tokens() -> None:
    # ∂H/∂z_v = −p_v (ln p_v + H); for [0, ln 3]: p = [¼, ¾], H = 0.5623351446
    #   v=0: −¼ (−1.3862943611 + 0.5623351446) = 0.2059898041
    #   v=1: −¾ (−0.2876820725 + 0.5623351446) = −0.2059898041;  banned tokens: 0, not NaN
    logits = torch.tensor([[[0.0, math.log(3.0), -math.inf]]], requires_grad=True)
    entropy_from_logits(logits).sum().backward()
    close(logits.grad, [[[0.2059898041, -0.2059898041, 0.0]]])


def test_token_logprobs_golden() -> None:
    # logits [0, ln 3]: log p = [ln ¼, ln ¾] = [−1.3862943611, −0.2876820725]
    # logits [1000, 0]: log p(token 1) = 0 − logsumexp(1000, 0) = −1000 (−1000 − 4e−435...)
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)], [1000.0, 0.0]]])
    tokens = torch.tensor([[0, 1, 1]])
    close(token_logprobs(logits, tokens), [[-1.3862943611, -0.2876820725, -1000.0]], atol=1e-4)


def test_token_logprobs_bf16_upcasts_and_padding_ids() -> None:
    # bf16 input -> float32 output; ln ¼ survives to bf16's logit precision; -100 does not raise
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]], dtype=torch.bfloat16)
    out = token_logprobs(logits, torch.tensor([[2, -100]]))
    assert out.dtype == torch.float32
    close(out[0, 0], -1.3862943611)


def test_token_logprobs_gradient_is_onehot_minus_softmax() -> None:
    # ∂ log p_k / ∂ z = onehot(k) − softmax(z); logits [0, ln 3], token 1: [0 − ¼, 1 − ¾]
    logits = torch.tensor([[[0.0, math.log(3.0)]]], requires_grad=True)
    token_logprobs(logits, torch.tensor([[1]])).sum().backward()
    close(logits.grad, [[[-0.25, 0.25]]])


def test_grpo_loss_backward_share_of_a_data_parallel_rank() -> None:
    # Two ranks, 6 tokens in all, this rank's 3 tokens: its share of the mean is −0.1945012501;
    # the all-reduce averages the two ranks' gradients, so each backpropagates twice its share.
    out = grpo_loss(**_loss_inputs(), num_tokens=6, data_parallel_size=2)
    close(out.loss, -0.1945012501, atol=1e-9)
    close(out.backward_loss, -0.3890025002, atol=1e-9)
    assert out.backward_loss.requires_grad
    close(grpo_loss(**_loss_inputs()).backward_loss, grpo_loss(**_loss_inputs()).loss)

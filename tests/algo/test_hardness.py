"""Golden tests for hair_ray.algo.hardness: every expected number is worked out by hand below.

σ values used (σ(x) = 1 / (1 + e^−x)):
    σ(0) = 0.5                 σ(0.5) = 0.6224593312     σ(1) = 0.7310585786
    σ(4/3) = 0.7913914727      σ(1.5) = 0.8175744762     σ(3) = 0.9525741268
    σ(4.5) = 0.9890130574      σ(−10) = 1 / (1 + 22026.4657948) = 4.5397868702e−05
"""

from __future__ import annotations

import math

import pytest
import torch

from hair_ray.algo.grpo import group_advantages
from hair_ray.algo.hardness import (
    combine_alphas,
    data_hardness,
    grpo_s_advantages,
    model_responsiveness,
    piece_similarity,
    scaling_effect,
    strengthen_alpha,
)

SIN60 = math.sqrt(3) / 2  # 0.8660254038


def close(actual: torch.Tensor, expected, atol: float = 1e-6) -> None:
    expected_t = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected_t, atol=atol, rtol=1e-6)


def unit(deg: float) -> list[float]:
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]


# --------------------------------------------------------------------------------------------
# data hardness
# --------------------------------------------------------------------------------------------


def _hardness_batch() -> dict[str, torch.Tensor]:
    """Five responses in three groups, ids interleaved and non-contiguous; K = 2, L = 3, D = 2.

    Demo of groups 5 and −4: pieces [0°, 90°] plus a masked third slot that *would* match
    everything perfectly if the mask were ignored (it holds the response's own direction).
    """
    garbage = unit(0)
    demo = [unit(0), unit(90), garbage]
    rows = [
        # A, group 5: pieces 0° (length 3: normalised inside) and 60°
        ([[3.0, 0.0], unit(60)], [1, 1], demo, [1, 1, 0], 5),
        # C, group −4: no pieces at all
        ([unit(0), unit(0)], [0, 0], demo, [1, 1, 0], -4),
        # B, group 5: one piece 120°, second slot padding (0°, would score 1 if counted)
        ([unit(120), unit(0)], [1, 0], demo, [1, 1, 0], 5),
        # E, group 11: a demo without pieces
        ([unit(0), unit(0)], [1, 1], demo, [0, 0, 0], 11),
        # D, group −4: piece 90° against demo piece 90°
        ([unit(90), unit(0)], [1, 0], demo, [1, 1, 0], -4),
    ]
    return {
        "response_emb": torch.tensor([r[0] for r in rows], dtype=torch.float64),
        "response_mask": torch.tensor([r[1] for r in rows]),
        "demo_emb": torch.tensor([r[2] for r in rows], dtype=torch.float64),
        "demo_mask": torch.tensor([r[3] for r in rows]),
        "group_ids": torch.tensor([r[4] for r in rows]),
    }


# W per response:
#   A: 0° -> max(cos 0°, cos 90°) = max(1, 0) = 1
#      60° -> max(cos 60°, cos 30°) = max(0.5, 0.8660254)
#      W = (1 + 0.8660254038) / 2 = 0.9330127019; δ = 0.0669872981
#   C: no pieces -> W = 0, δ = 1
#   B: 120° -> max(cos 120°, cos 30°) = max(−0.5, 0.8660254) = 0.8660254038; δ = 0.1339745962
#   E: demo without pieces -> W = 0, δ = 1
#   D: 90° -> max(cos 90°, cos 0°) = 1; δ = 0
W_EXPECTED = [(1 + SIN60) / 2, 0.0, SIN60, 0.0, 1.0]


def test_piece_similarity_golden() -> None:
    b = _hardness_batch()
    w = piece_similarity(b["response_emb"], b["response_mask"], b["demo_emb"], b["demo_mask"])
    close(w, W_EXPECTED)
    close(w, [0.9330127019, 0.0, 0.8660254038, 0.0, 1.0], atol=1e-9)


def test_data_hardness_golden() -> None:
    out = data_hardness(**_hardness_batch())
    close(out.similarity, W_EXPECTED)
    close(out.delta, [1 - w for w in W_EXPECTED])
    # group 5:  mean δ = (0.0669872981 + 0.1339745962) / 2 = 0.1004809472
    #   σ(0.0669872981) = 0.5167405650, σ(0.1339745962) = 0.5334436402,
    #   σ(0.1004809472) = 0.5250991227
    #   α_A = 0.5167405650 / 0.5250991227 = 0.9840819431
    #   α_B = 0.5334436402 / 0.5250991227 = 1.0158913185
    # group −4: δ = [1, 0], mean 0.5
    #   α_C = σ(1) / σ(0.5) = 0.7310585786 / 0.6224593312 = 1.1744680206
    #   α_D = σ(0) / σ(0.5) = 0.5 / 0.6224593312 = 0.8032653299
    # group 11: alone -> α_E = σ(1) / σ(1) = 1
    close(out.alpha, [0.9840819431, 1.1744680206, 1.0158913185, 1.0, 0.8032653299], atol=1e-9)


def test_data_hardness_half_precision_embeddings() -> None:
    # fp16 encoder output: computed in float32, same W as above up to fp16 rounding of the inputs
    b = _hardness_batch()
    b["response_emb"] = b["response_emb"].half()
    b["demo_emb"] = b["demo_emb"].half()
    out = data_hardness(**b)
    assert out.alpha.dtype == torch.float32
    close(out.similarity, W_EXPECTED, atol=1e-3)


# --------------------------------------------------------------------------------------------
# model responsiveness
# --------------------------------------------------------------------------------------------


def test_model_responsiveness_filters_outlier_and_zero_variance_group() -> None:
    # group 3 (8 samples): demo reward 2, sample rewards r -> gaps g = 2 − r
    #   g = [1, −1, 1, −1, 1, −1, 0, 12]; Σ = 12, mean 1.5
    #   deviations [−0.5, −2.5, −0.5, −2.5, −0.5, −2.5, −1.5, 10.5]
    #   squared    [0.25, 6.25, 0.25, 6.25, 0.25, 6.25, 2.25, 110.25]; Σ = 132
    #   population var = 132 / 8 = 16.5; τ·var = 4 · 16.5 = 66
    #   110.25 > 66 -> the 12 is dropped; every other squared deviation ≤ 6.25 is kept
    #   mean of kept = (1 − 1 + 1 − 1 + 1 − 1 + 0) / 7 = 0
    #   α^M = σ(0) / σ(1.5) = 0.5 / 0.8175744762 = 0.6115650801
    # group 9 (3 samples, interleaved): demo 4, rewards [1, 1, 1] -> g = [3, 3, 3]: zero variance,
    #   all kept, α^M = 1 exactly
    gaps3 = [1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 0.0, 12.0]
    ids = torch.tensor([3, 3, 9, 3, 3, 9, 3, 3, 3, 9, 3])
    pos3 = [0, 1, 3, 4, 6, 7, 8, 10]
    rewards = torch.ones(11, dtype=torch.float64)
    demo = torch.full((11,), 4.0, dtype=torch.float64)
    for p, g in zip(pos3, gaps3):
        rewards[p], demo[p] = 2.0 - g, 2.0
    out = model_responsiveness(rewards, demo, ids)
    close(out.gap[pos3], gaps3)
    expected_alpha = torch.ones(11, dtype=torch.float64)
    expected_alpha[pos3] = 0.6115650801
    close(out.alpha, expected_alpha, atol=1e-9)
    assert out.alpha[[2, 5, 9]].tolist() == [1.0, 1.0, 1.0]  # exactly
    kept = [True] * 11
    kept[10] = False  # the gap of 12
    assert out.kept.tolist() == kept


def test_model_responsiveness_tau_boundary_is_inclusive() -> None:
    # g = [0, 0, 0, 0, 5]: mean 1, deviations [−1×4, 4], squared [1×4, 16]; Σ = 20, var = 4;
    # τ·var = 16 and 16 ≤ 16 -> kept (with 5 samples the largest possible z² is n − 1 = 4 = τ)
    rewards = torch.tensor([5.0, 5, 5, 5, 0])
    out = model_responsiveness(rewards, torch.full((5,), 5.0), torch.zeros(5))
    assert out.kept.all()
    assert out.alpha.tolist() == [1.0] * 5


def test_model_responsiveness_absolute_tau() -> None:
    # demo 5, rewards [5, 4, 2] -> g = [0, 1, 3]; mean 4/3
    # squared deviations [16/9, 1/9, 25/9] = [1.778, 0.111, 2.778]
    # absolute τ = 2: keep [T, T, F] -> mean kept 0.5
    #   α^M = σ(0.5) / σ(4/3) = 0.6224593312 / 0.7913914727 = 0.7865378295
    # relative τ = 4 on the same group: var = 42/27 = 1.556, τ·var = 6.22 -> all kept, α^M = 1
    rewards, demo = torch.tensor([5.0, 4.0, 2.0]), torch.full((3,), 5.0)
    ids = torch.tensor([0, 0, 0])
    out = model_responsiveness(rewards, demo, ids, tau=2.0, tau_mode="absolute")
    assert out.kept.tolist() == [True, True, False]
    close(out.alpha, [0.7865378295] * 3)
    rel = model_responsiveness(rewards, demo, ids, tau=4.0, tau_mode="relative")
    assert rel.kept.all() and rel.alpha.tolist() == [1.0, 1.0, 1.0]


def test_model_responsiveness_nothing_kept_gives_one() -> None:
    # g = [−1, 1]: var 1, squared deviations [1, 1]; τ = 0.5 -> 1 > 0.5 keeps neither -> α^M = 1
    out = model_responsiveness(torch.tensor([1.0, -1.0]), torch.zeros(2), torch.zeros(2), tau=0.5)
    assert out.kept.tolist() == [False, False]
    assert out.alpha.tolist() == [1.0, 1.0]


def test_model_responsiveness_alpha_clip_upper() -> None:
    # demo 0, rewards [0×7, 80] -> g = [0×7, −80]; mean −10; deviations [10×7, −70]
    # squared [100×7, 4900]; Σ = 5600; var 700; τ·var 2800 < 4900 -> −80 dropped; mean kept 0
    # α^M = σ(0) / σ(−10) = 0.5 · (1 + e^10) = 0.5 · 22027.4657948 = 11013.7328974 -> clamp to 10
    rewards = torch.tensor([0.0] * 7 + [80.0], dtype=torch.float64)
    ids, demo = torch.zeros(8, dtype=torch.long), torch.zeros(8, dtype=torch.float64)
    raw = model_responsiveness(rewards, demo, ids, alpha_clip=None)
    close(raw.alpha, [11013.7328974] * 8, atol=1e-6)
    clipped = model_responsiveness(rewards, demo, ids, alpha_clip=10.0)
    close(clipped.alpha, [10.0] * 8)


def test_model_responsiveness_alpha_clip_lower_and_log_space() -> None:
    # demo 0, rewards [200×7, 120] -> g = [−200×7, −120]; mean −190; deviations [−10×7, 70]
    # (same structure as above) -> −120 dropped; mean kept −200
    # σ(−200) and σ(−190) are both 0 in float32, so σ(a)/σ(b) would be 0/0 = NaN; in log space
    # log σ(x) ≈ x for x ≪ 0: α^M = exp(−200 − (−190)) = e^−10 = 4.5399929762e−05 -> clamp 1/10
    rewards = torch.tensor([200.0] * 7 + [120.0])
    ids, demo = torch.zeros(8, dtype=torch.long), torch.zeros(8)
    raw = model_responsiveness(rewards, demo, ids, alpha_clip=None)
    torch.testing.assert_close(raw.alpha, torch.full((8,), 4.5399929762e-05), rtol=1e-4, atol=0)
    close(model_responsiveness(rewards, demo, ids).alpha, [0.1] * 8)


def test_model_responsiveness_bad_tau_mode() -> None:
    with pytest.raises(ValueError):
        zeros = torch.zeros(2)
        model_responsiveness(zeros, zeros, zeros, tau_mode="z")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# combination and GRPO-S
# --------------------------------------------------------------------------------------------


def test_combine_alphas() -> None:
    a_d, a_m = torch.tensor([2.0, 0.5]), torch.tensor([3.0, 3.0])
    close(combine_alphas(a_d, a_m), [6.0, 1.5])  # product: 2·3, 0.5·3
    close(combine_alphas(a_d, a_m, "sum"), [2.5, 1.75])  # ½·2 + ½·3, ½·0.5 + ½·3
    # w = 0.25: 0.25·2 + 0.75·3 = 0.5 + 2.25 = 2.75; 0.25·0.5 + 2.25 = 2.375
    close(combine_alphas(a_d, a_m, "sum", data_weight=0.25), [2.75, 2.375])
    with pytest.raises(ValueError):
        combine_alphas(a_d, a_m, "max")  # type: ignore[arg-type]


def _grpo_s_inputs() -> dict[str, torch.Tensor]:
    # group 1: rewards [0, 1, 5]; group 8: [2, 2] (zero variance); demo rewards 5 and 2
    return {
        "rewards": torch.tensor([0.0, 2.0, 1.0, 2.0, 5.0], dtype=torch.float64),
        "group_ids": torch.tensor([1, 8, 1, 8, 1]),
        "alpha_d": torch.tensor([1.2, 0.9, 1.0, 1.1, 0.8], dtype=torch.float64),
        "demo_rewards": torch.tensor([5.0, 2.0, 5.0, 2.0, 5.0], dtype=torch.float64),
    }


# group 1: mean 2, deviations [−2, −1, 3], Σd² = 14, sample var 7, std √7 = 2.6457513111
#   Â = [−2, −1, 3] / 2.6457523111 = [−0.7559286603, −0.3779643302, 1.1338929905]
# gaps 5 − R = [5, 4, 0]: mean 3; squared deviations [4, 1, 9]; absolute τ = 4 drops the 0
#   α^M = σ(4.5) / σ(3) = 0.9890130574 / 0.9525741268 = 1.0382531181
# group 8: Â = 0 (zero variance), α^M = 1
A_HAT = [-0.7559286603, 0.0, -0.3779643302, 0.0, 1.1338929905]
ALPHA_M = 1.0382531181


def test_grpo_s_product() -> None:
    x = _grpo_s_inputs()
    out = grpo_s_advantages(**x, tau=4.0, tau_mode="absolute")
    close(out.base_advantages, A_HAT, atol=1e-9)
    close(out.alpha_m, [ALPHA_M, 1.0, ALPHA_M, 1.0, ALPHA_M], atol=1e-9)
    # A = α^D · α^M · Â:
    #   1.2 · 1.0382531181 · −0.7559286603 = 1.2459037417 · −0.7559286603 = −0.9418143463
    #   1.0 · 1.0382531181 · −0.3779643302 = −0.3924226443
    #   0.8 · 1.0382531181 ·  1.1338929905 = 0.8306024945 · 1.1338929905 = 0.9418143463
    expected = [-0.9418143463, 0.0, -0.3924226443, 0.0, 0.9418143463]
    close(out.advantages, expected, atol=1e-9)
    assert out.kept.tolist() == [True, True, True, True, False]
    assert out.zero_variance.tolist() == [False, True, False, True, False]
    assert out.num_zero_variance_groups == 1


def test_grpo_s_sum_combine() -> None:
    out = grpo_s_advantages(**_grpo_s_inputs(), tau=4.0, tau_mode="absolute", combine="sum")
    # α = ½ α^D + ½ α^M: first sample ½·1.2 + ½·1.0382531181 = 1.1191265591
    #   A = 1.1191265591 · −0.7559286603 = −0.8459798405
    close(out.advantages[0], -0.8459798405, atol=1e-9)


def test_strengthen_alpha() -> None:
    alpha = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    assert strengthen_alpha(alpha, 1.0) is alpha  # the paper: untouched
    # s = 3: 0.5³ = 0.125, 1³ = 1, 3³ = 27 -> clamped to c = 10
    close(strengthen_alpha(alpha, 3.0), [0.125, 1.0, 10.0])
    close(strengthen_alpha(alpha, 3.0, alpha_clip=None), [0.125, 1.0, 27.0])
    # s = 0.5 weakens: √0.5 = 0.7071067812, √3 = 1.7320508076
    close(strengthen_alpha(alpha, 0.5), [0.7071067812, 1.0, 1.7320508076], atol=1e-9)


def test_grpo_s_strength_squares_the_product() -> None:
    out = grpo_s_advantages(**_grpo_s_inputs(), tau=4.0, tau_mode="absolute", strength=2.0)
    # α = α^D · α^M as in test_grpo_s_product, then squared, A = α² · Â:
    #   (1.2 · 1.0382531181)² = 1.2459037417² = 1.5522761336; · −0.7559286603 = −1.1734100181
    #   (1.0 · 1.0382531181)² = 1.0779695372;                 · −0.3779643302 = −0.4074340341
    #   (0.8 · 1.0382531181)² = 0.8306024945² = 0.6899005038; ·  1.1338929905 = 0.7822733454
    close(out.advantages, [-1.1734100181, 0.0, -0.4074340341, 0.0, 0.7822733454], atol=1e-9)
    # the factors themselves are reported as computed, and the base advantage is untouched
    close(out.alpha_m, [ALPHA_M, 1.0, ALPHA_M, 1.0, ALPHA_M], atol=1e-9)
    close(out.base_advantages, A_HAT, atol=1e-9)
    # plain GRPO stays plain whatever the strength: no factor, nothing to raise
    x = _grpo_s_inputs()
    plain = grpo_s_advantages(**x, use_data_hardness=False, use_model_responsiveness=False, strength=3.0)
    assert torch.equal(plain.advantages, group_advantages(x["rewards"], x["group_ids"]).advantages)


def test_grpo_s_single_factor_switches() -> None:
    x = _grpo_s_inputs()
    only_d = grpo_s_advantages(**x, use_model_responsiveness=False)
    # α^M disabled -> exactly ones; A = α^D · Â: 1.2 · −0.7559286603 = −0.9071143924
    assert torch.equal(only_d.alpha_m, torch.ones(5, dtype=torch.float64))
    assert only_d.kept.all()
    close(only_d.advantages[0], -0.9071143924, atol=1e-9)
    only_m = grpo_s_advantages(**x, use_data_hardness=False, tau=4.0, tau_mode="absolute")
    # α^D disabled -> ones; A = α^M · Â: 1.0382531181 · −0.7559286603 = −0.7848452886
    assert torch.equal(only_m.alpha_d, torch.ones(5, dtype=torch.float64))
    close(only_m.advantages[0], -0.7848452886, atol=1e-9)


def test_grpo_s_both_disabled_is_plain_grpo_bitwise() -> None:
    x = _grpo_s_inputs()
    plain = grpo_s_advantages(**x, use_data_hardness=False, use_model_responsiveness=False, combine="sum", data_weight=0.3)
    ref = group_advantages(x["rewards"], x["group_ids"])
    assert torch.equal(plain.advantages, ref.advantages)
    # and without any hardness inputs at all
    bare = grpo_s_advantages(
        x["rewards"],
        x["group_ids"],
        alpha_d=None,
        demo_rewards=None,
        use_data_hardness=False,
        use_model_responsiveness=False,
    )
    assert torch.equal(bare.advantages, ref.advantages)


def test_grpo_s_missing_inputs_raise() -> None:
    x = _grpo_s_inputs()
    with pytest.raises(ValueError, match="alpha_d"):
        grpo_s_advantages(x["rewards"], x["group_ids"], alpha_d=None, demo_rewards=x["demo_rewards"])
    with pytest.raises(ValueError, match="demo_rewards"):
        grpo_s_advantages(x["rewards"], x["group_ids"], alpha_d=x["alpha_d"], demo_rewards=None)


def test_relative_tau_of_group_size_minus_one_keeps_every_sample() -> None:
    # With population variance, (g_i − ḡ)² ≤ (G − 1)·var(g) always: for G = 4 the extreme case
    # g = [3, 0, 0, 0] has ḡ = 0.75, var = 1.6875 and (3 − 0.75)² = 5.0625 = 3 × 1.6875.
    rewards = torch.tensor([-3.0, 0.0, 0.0, 0.0])
    out = model_responsiveness(rewards, torch.zeros(4), torch.zeros(4, dtype=torch.long), tau=3.0)
    assert bool(out.kept.all()) and torch.equal(out.alpha, torch.ones(4))
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        rewards = torch.randn(4, generator=generator) * 5
        out = model_responsiveness(rewards, torch.randn(4, generator=generator), torch.zeros(4, dtype=torch.long), tau=3.0)
        assert bool(out.kept.all())
    # Just under the bound, the extreme sample is dropped.
    out = model_responsiveness(torch.tensor([-3.0, 0.0, 0.0, 0.0]), torch.zeros(4), torch.zeros(4, dtype=torch.long), tau=2.99)
    assert out.kept.tolist() == [False, True, True, True]


# --------------------------------------------------------------------------------------------
# scaling effect (the step metrics)
# --------------------------------------------------------------------------------------------


def test_scaling_effect_plain_grpo_changes_nothing() -> None:
    # both factors off: A = Â bitwise and α^D = α^M = 1 -> no change, no active group
    x = _grpo_s_inputs()
    plain = grpo_s_advantages(
        x["rewards"],
        x["group_ids"],
        alpha_d=None,
        demo_rewards=None,
        use_data_hardness=False,
        use_model_responsiveness=False,
    )
    effect = scaling_effect(plain, x["group_ids"])
    assert effect == (0.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    assert isinstance(effect.relative_change, float)


def test_scaling_effect_product_skips_zero_variance_group() -> None:
    # _grpo_s_inputs with absolute τ = 4 (see A_HAT / ALPHA_M above): group 1 (samples 0, 2, 4)
    # drops its gap of 0, α^M = 1.0382531181; group 8 (samples 1, 3) has Â = 0 and α^M = 1.
    # relative change = mean over samples 0, 2, 4 only of |A − Â| / |Â| = |α^D · α^M − 1|:
    #   |1.2 · 1.0382531181 − 1| = 0.2459037417
    #   |1.0 · 1.0382531181 − 1| = 0.0382531181
    #   |0.8 · 1.0382531181 − 1| = 0.1693975055
    #   Σ = 0.4535543653, / 3 = 0.1511847884
    # (counting samples 1 and 3, whose |A − Â| = 0, would give 0.4535543653 / 5 = 0.0907108731)
    # active fraction: group 1 of the groups {1, 8} -> 1/2
    # α^D over [1.2, 0.9, 1.0, 1.1, 0.8]: min 0.8, max 1.2; α^M: min 1, max 1.0382531181
    x = _grpo_s_inputs()
    out = grpo_s_advantages(**x, tau=4.0, tau_mode="absolute")
    effect = scaling_effect(out, x["group_ids"])
    assert effect.relative_change == pytest.approx(0.1511847884, abs=1e-9)
    assert effect.alpha_m_active_fraction == 0.5
    assert effect.alpha_d_min == pytest.approx(0.8) and effect.alpha_d_max == pytest.approx(1.2)
    assert effect.alpha_m_min == 1.0
    assert effect.alpha_m_max == pytest.approx(ALPHA_M, abs=1e-9)


def test_scaling_effect_filtered_group_only_alpha_m() -> None:
    # α^D off, absolute τ = 4: only group 1 is scaled, by α^M = 1.0382531181 on all three of its
    # samples -> relative change = 0.0382531181; 1 of 2 groups active; α^D exactly 1
    x = _grpo_s_inputs()
    out = grpo_s_advantages(**x, use_data_hardness=False, tau=4.0, tau_mode="absolute")
    effect = scaling_effect(out, x["group_ids"])
    assert effect.relative_change == pytest.approx(ALPHA_M - 1.0, abs=1e-9)
    assert effect.alpha_m_active_fraction == 1 / 2
    assert (effect.alpha_d_min, effect.alpha_d_max) == (1.0, 1.0)
    # relative τ = 4 keeps every gap of group 1 ([4, 1, 9] ≤ 4 · 14/3): α^M = 1 everywhere
    relative = grpo_s_advantages(**x, use_data_hardness=False, tau=4.0, tau_mode="relative")
    assert scaling_effect(relative, x["group_ids"])[:2] == (0.0, 0.0)


def test_scaling_effect_no_signal_and_empty_batch() -> None:
    # every group has zero variance: Â = 0 everywhere, so nothing counts toward the change,
    # however far α^D is from 1
    rewards, ids = torch.tensor([1.0, 1.0, 3.0, 3.0]), torch.tensor([0, 0, 1, 1])
    out = grpo_s_advantages(
        rewards, ids, alpha_d=torch.tensor([2.0, 0.5, 3.0, 0.25]), demo_rewards=None, use_model_responsiveness=False
    )
    effect = scaling_effect(out, ids)
    assert effect.relative_change == 0.0 and effect.alpha_m_active_fraction == 0.0
    assert (effect.alpha_d_min, effect.alpha_d_max) == (0.25, 3.0)
    empty = grpo_s_advantages(
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        alpha_d=None,
        demo_rewards=None,
        use_data_hardness=False,
        use_model_responsiveness=False,
    )
    assert scaling_effect(empty, torch.zeros(0, dtype=torch.long)) == (0.0, 0.0, 1.0, 1.0, 1.0, 1.0)

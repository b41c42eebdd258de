"""HAIR hardness weights and the GRPO-S advantage (docs/architecture.md §1, stage C steps 3-5).

Pure tensor functions. B samples (responses) over many prompt groups at once, told apart by
``group_ids`` (arbitrary integers, ragged groups). Per-response inputs that belong to the prompt
(the demonstration's embeddings and reward) are given per sample, repeated within a group.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from hair_ray.algo.grpo import (
    _as_float,
    _group_is_constant,
    _group_mean,
    _group_sum,
    _Groups,
    _groups,
    _safe_div,
    group_advantages,
)

__all__ = [
    "DataHardness",
    "ModelResponsiveness",
    "GRPOSAdvantages",
    "data_hardness",
    "model_responsiveness",
    "combine_alphas",
    "strengthen_alpha",
    "grpo_s_advantages",
    "ScalingEffect",
    "scaling_effect",
]

TauMode = Literal["relative", "absolute"]
CombineMode = Literal["product", "sum"]


# --------------------------------------------------------------------------------------------
# data hardness α^D
# --------------------------------------------------------------------------------------------


class DataHardness(NamedTuple):
    alpha: Tensor  # [B] α^D
    similarity: Tensor  # [B] W
    delta: Tensor  # [B] δ = 1 − W


def piece_similarity(response_emb: Tensor, response_mask: Tensor, demo_emb: Tensor, demo_mask: Tensor) -> Tensor:
    """W_i = (1/K_i) Σ_k max_l cos(Φ(S^k), Φ(S̃^l)) over valid pieces only, [B].

    Each response piece is matched with its closest demonstration piece; W is the mean best
    match. A response or a demonstration without pieces gives W = 0 (nothing matches).
    """
    # Similarities in at least float32: encoders often return fp16.
    dtype = torch.promote_types(response_emb.dtype, torch.float32)
    resp = F.normalize(response_emb.to(dtype), dim=-1)
    demo = F.normalize(demo_emb.to(dtype), dim=-1)
    sim = torch.einsum("bkd,bld->bkl", resp, demo)  # s_kl, [B, K, L]
    demo_valid = demo_mask.bool().unsqueeze(1)  # [B, 1, L]
    best = sim.masked_fill(~demo_valid, float("-inf")).amax(dim=-1)  # max_l, [B, K]
    # A demo with no pieces leaves best = -inf: select it away before summing.
    piece_valid = response_mask.bool() & demo_mask.bool().any(dim=-1, keepdim=True)
    total = torch.where(piece_valid, best, torch.zeros_like(best)).sum(dim=-1)
    return _safe_div(total, piece_valid.sum(dim=-1).to(dtype))


def data_hardness(
    response_emb: Tensor,
    response_mask: Tensor,
    demo_emb: Tensor,
    demo_mask: Tensor,
    group_ids: Tensor,
) -> DataHardness:
    """Data hardness α^D per response.

        s_kl = cos(Φ(S^k), Φ(S̃^l));  W_i = (1/K_i) Σ_k max_l s_kl;  δ_i = 1 − W_i
        α^D_i = σ(δ_i) / σ(mean_{j ∈ group(i)} δ_j)

    Shapes: response_emb [B, K, D], response_mask [B, K], demo_emb [B, L, D], demo_mask [B, L]
    (pieces padded to K / L), group_ids [B]. Embeddings are L2-normalised here. A response far
    from the demonstration (large δ) is harder and weighs more than its group's average.
    """
    w = piece_similarity(response_emb, response_mask, demo_emb, demo_mask)
    delta = 1.0 - w
    groups = _groups(group_ids, delta.dtype)
    delta_bar = _group_mean(delta, groups)[groups.of_sample]
    alpha = torch.sigmoid(delta) / torch.sigmoid(delta_bar)
    return DataHardness(alpha=alpha, similarity=w, delta=delta)


# --------------------------------------------------------------------------------------------
# model responsiveness α^M
# --------------------------------------------------------------------------------------------


class ModelResponsiveness(NamedTuple):
    alpha: Tensor  # [B] α^M, constant within a group
    kept: Tensor  # [B] bool, the sample's gap survived the outlier filter
    gap: Tensor  # [B] g = r(demo) − r(sample)


def _keep_gaps(gap: Tensor, groups: _Groups, tau: float, tau_mode: TauMode) -> Tensor:
    """[B] bool outlier filter on the reward gaps, per group.

    relative: (g_i − ḡ)² ≤ τ · var(g)   (population variance; τ = 4 keeps ~ within 2 std)
    absolute: (g_i − ḡ)² ≤ τ
    A zero-variance group keeps every sample (exactly, not through float round-off).
    """
    mean = _group_mean(gap, groups)
    sq_dev = (gap - mean[groups.of_sample]) ** 2
    if tau_mode == "relative":
        var = _group_mean(sq_dev, groups)  # population variance: divide by n, not n − 1
        keep = sq_dev <= tau * var[groups.of_sample]
    elif tau_mode == "absolute":
        keep = sq_dev <= tau
    else:
        raise ValueError(f"unknown tau_mode {tau_mode!r}; expected 'relative' or 'absolute'")
    constant = _group_is_constant(gap, groups)[groups.of_sample]
    return keep | constant


def model_responsiveness(
    sample_rewards: Tensor,
    demo_rewards: Tensor,
    group_ids: Tensor,
    tau: float = 4.0,
    tau_mode: TauMode = "relative",
    alpha_clip: float | None = 10.0,
) -> ModelResponsiveness:
    """Model responsiveness α^M per prompt group (broadcast to its samples).

        g_i   = r(q, y_demo) − r(q, o_i)
        keep_i = (g_i − ḡ)² ≤ τ · var(g)   (or ≤ τ with tau_mode="absolute")
        α^M   = σ(mean of kept g) / σ(mean of all g)

    The ratio is evaluated in log space, exp(log σ(a) − log σ(b)), because σ(b) underflows to 0
    in float32 once b < −88 or so (the sample already beats the demonstration by a wide reward
    margin). Even in log space the ratio can be huge (a ≫ b), so, where the paper is silent, we
    clamp α^M to [1/alpha_clip, alpha_clip] (alpha_clip=None disables the clamp) to keep one
    group from dominating the batch. A group where the filter keeps every sample (in particular a
    zero-variance group) gets α^M = 1 exactly; one where it keeps none (only possible with τ < 1
    or an absolute τ smaller than every deviation) also gets α^M = 1 (no evidence either way),
    and its ``kept`` stays all False.
    """
    sample_rewards = _as_float(sample_rewards)
    gap = _as_float(demo_rewards).to(sample_rewards.dtype) - sample_rewards
    groups = _groups(group_ids, gap.dtype)
    keep = _keep_gaps(gap, groups, tau, tau_mode)

    mean_all = _group_mean(gap, groups)
    kept_count = _group_sum(keep.to(gap.dtype), groups)
    kept_sum = _group_sum(torch.where(keep, gap, torch.zeros_like(gap)), groups)
    mean_kept = _safe_div(kept_sum, kept_count)
    log_alpha = F.logsigmoid(mean_kept) - F.logsigmoid(mean_all)
    # Nothing filtered (or nothing kept): the ratio is 1 by definition; set it exactly, since the
    # two means may differ in the last bit (index_add order is not fixed on GPU).
    no_change = (kept_count == groups.size) | (kept_count == 0)
    alpha = torch.where(no_change, torch.ones_like(log_alpha), torch.exp(log_alpha))
    if alpha_clip is not None:
        alpha = alpha.clamp(1.0 / alpha_clip, alpha_clip)
    return ModelResponsiveness(alpha=alpha[groups.of_sample], kept=keep, gap=gap)


# --------------------------------------------------------------------------------------------
# combination and the GRPO-S advantage
# --------------------------------------------------------------------------------------------


def combine_alphas(
    alpha_d: Tensor,
    alpha_m: Tensor,
    mode: CombineMode = "product",
    data_weight: float = 0.5,
) -> Tensor:
    """Overall hardness weight.

    product: α = α^D · α^M                     (the paper's choice, the default)
    sum:     α = w · α^D + (1 − w) · α^M        (ablation; w = ``data_weight``)
    """
    if mode == "product":
        return alpha_d * alpha_m
    if mode == "sum":
        return data_weight * alpha_d + (1.0 - data_weight) * alpha_m
    raise ValueError(f"unknown combine mode {mode!r}; expected 'product' or 'sum'")


def strengthen_alpha(alpha: Tensor, strength: float, alpha_clip: float | None = 10.0) -> Tensor:
    """The hardness weight with its effect scaled: α' = α^s, clamped to [1/c, c].

    An extension beyond the paper (``hardness.strength``). At the paper's scales α moves the
    advantages by a few per cent (docs/results.md); the power keeps every weight positive (no
    advantage changes sign), keeps which response is upweighted, and multiplies log α by s, so
    α^D and α^M are strengthened alike: (α^D · α^M)^s = (α^D)^s · (α^M)^s. s = 1 returns α
    itself, untouched; c = ``alpha_clip`` (None: no clamp) bounds what the power can reach.
    """
    if strength == 1:
        return alpha
    strong = alpha.pow(strength)
    if alpha_clip is not None:
        strong = strong.clamp(1.0 / alpha_clip, alpha_clip)
    return strong


class GRPOSAdvantages(NamedTuple):
    advantages: Tensor  # [B] A = α · Â
    base_advantages: Tensor  # [B] Â (plain GRPO)
    alpha_d: Tensor  # [B] (ones when disabled)
    alpha_m: Tensor  # [B] (ones when disabled)
    kept: Tensor  # [B] bool (all True when α^M is disabled)
    zero_variance: Tensor  # [B] bool
    num_zero_variance_groups: int


def grpo_s_advantages(
    rewards: Tensor,
    group_ids: Tensor,
    *,
    alpha_d: Tensor | None,
    demo_rewards: Tensor | None,
    use_data_hardness: bool = True,
    use_model_responsiveness: bool = True,
    tau: float = 4.0,
    tau_mode: TauMode = "relative",
    alpha_clip: float | None = 10.0,
    combine: CombineMode = "product",
    data_weight: float = 0.5,
    strength: float = 1.0,
    eps: float = 1e-6,
) -> GRPOSAdvantages:
    """GRPO-S advantage: A_i = α^D_i · α^M_q · Â_i (or the weighted sum of the alphas).

    ``strength`` s ≠ 1 scales the combined weight's effect, A_i = α_i^s · Â_i
    (:func:`strengthen_alpha`, an extension; 1 is the paper).

    Â is ``group_advantages(rewards, group_ids, eps)``. The scaling goes on the advantage, not
    on the reward: a per-group constant factor on the rewards would cancel in the group
    normalisation. A disabled factor is exactly 1; with both disabled the result *is* Â
    (bitwise), which is plain GRPO. ``alpha_d`` comes from :func:`data_hardness` (computed by
    the scorer); ``demo_rewards`` [B] is r(q, y_demo) repeated over each group.
    """
    base = group_advantages(rewards, group_ids, eps)
    adv = base.advantages
    ones = torch.ones_like(adv)

    if use_data_hardness:
        if alpha_d is None:
            raise ValueError("use_data_hardness=True needs alpha_d")
        a_d = alpha_d.to(adv.dtype)
    else:
        a_d = ones

    if use_model_responsiveness:
        if demo_rewards is None:
            raise ValueError("use_model_responsiveness=True needs demo_rewards")
        resp = model_responsiveness(rewards, demo_rewards, group_ids, tau, tau_mode, alpha_clip)
        a_m, kept = resp.alpha.to(adv.dtype), resp.kept
    else:
        a_m, kept = ones, torch.ones_like(adv, dtype=torch.bool)

    if use_data_hardness or use_model_responsiveness:
        scaled = strengthen_alpha(combine_alphas(a_d, a_m, combine, data_weight), strength, alpha_clip) * adv
    else:
        scaled = adv  # plain GRPO, untouched
    return GRPOSAdvantages(
        advantages=scaled,
        base_advantages=adv,
        alpha_d=a_d,
        alpha_m=a_m,
        kept=kept,
        zero_variance=base.zero_variance,
        num_zero_variance_groups=base.num_zero_variance_groups,
    )


# --------------------------------------------------------------------------------------------
# how much the scaling changed the advantages (for the step metrics)
# --------------------------------------------------------------------------------------------


class ScalingEffect(NamedTuple):
    relative_change: float  # mean |A − Â| / |Â| over samples with Â ≠ 0
    alpha_m_active_fraction: float  # share of prompt groups with α^M ≠ 1
    alpha_d_min: float
    alpha_d_max: float
    alpha_m_min: float
    alpha_m_max: float


def scaling_effect(result: GRPOSAdvantages, group_ids: Tensor) -> ScalingEffect:
    """How far the hardness scaling moved the advantages of one batch (python floats).

        relative_change         = mean_{i: Â_i ≠ 0} |A_i − Â_i| / |Â_i|   (0 when no Â_i ≠ 0)
        alpha_m_active_fraction = #{groups q: α^M_q ≠ 1} / #groups        (0 for an empty batch)
        alpha_{d,m}_{min,max}   = min / max of α^D_i and α^M_i over the samples

    The α means are ≈ 1 by construction (α^D is a ratio to its group mean), so they cannot show
    whether the factors did anything; these can. Since A = α · Â, relative_change is the mean
    |α − 1| where the advantage is not zero, but it is computed from A and Â as defined, so it
    also measures whatever else touched A. Zero-variance groups (Â = 0) are left out: no factor
    can change a zero advantage. Comparisons are exact: a disabled factor is exactly 1, and
    model_responsiveness sets α^M = 1 exactly when its filter dropped nothing. An empty batch
    gives 0 change and α extremes of 1 (nothing was scaled).
    """
    adv, base = result.advantages, result.base_advantages
    nonzero = base != 0
    if bool(nonzero.any()):
        ratio = (adv[nonzero] - base[nonzero]).abs() / base[nonzero].abs()
        relative_change = float(ratio.mean())
    else:
        relative_change = 0.0

    alpha_d, alpha_m = result.alpha_d, result.alpha_m
    if alpha_m.numel() == 0:
        return ScalingEffect(relative_change, 0.0, 1.0, 1.0, 1.0, 1.0)
    groups = _groups(group_ids.to(alpha_m.device), alpha_m.dtype)
    # α^M is constant within a group, so "some sample has α^M ≠ 1" is "the group's α^M ≠ 1".
    active = _group_sum((alpha_m != 1).to(alpha_m.dtype), groups) > 0
    return ScalingEffect(
        relative_change=relative_change,
        alpha_m_active_fraction=float(active.sum()) / groups.num_groups,
        alpha_d_min=float(alpha_d.min()),
        alpha_d_max=float(alpha_d.max()),
        alpha_m_min=float(alpha_m.min()),
        alpha_m_max=float(alpha_m.max()),
    )

"""GRPO maths: group-normalised advantages, clipped policy objective, KL estimators, losses.

Pure tensor functions (no Ray, no I/O, no config). Shapes: N sequences (rows), T tokens,
V vocabulary. ``mask`` is 1/True on response tokens and 0/False on prompt and padding; it is
read as boolean (any non-zero entry is a valid token), never as a weight.

Formulas follow docs/architecture.md §1, stage C (steps 2 and 6).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "GroupAdvantages",
    "LossOutput",
    "masked_sum",
    "masked_mean",
    "group_advantages",
    "kl_estimate",
    "clipped_policy_objective",
    "aggregate_loss",
    "grpo_loss",
    "entropy_from_logits",
    "token_logprobs",
]

KLKind = Literal["k1", "k2", "k3"]
LossAgg = Literal["token-mean", "seq-mean-token-mean"]

# exp(20) ~ 4.9e8: no real update moves a token that far, but garbage log-probs (a token the old
# policy gave -100) would overflow exp() to inf and turn inf * A(=0) into NaN. Same guard as verl.
_MAX_LOG_RATIO = 20.0


# --------------------------------------------------------------------------------------------
# masked reductions
# --------------------------------------------------------------------------------------------


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ values·mask over ``dim`` (all elements when None).

    Masked-out entries are *selected away* (torch.where), not multiplied by 0, so NaN/inf in
    padding cannot leak in (0 · inf = NaN).
    """
    kept = torch.where(mask.bool(), values, torch.zeros_like(values))
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Σ values·mask / Σ mask over ``dim``; 0 where the mask is empty (instead of NaN)."""
    total = masked_sum(values, mask, dim)
    count = masked_sum(torch.ones_like(values), mask, dim)
    return _safe_div(total, count)


def _safe_div(num: Tensor, den: Tensor | float) -> Tensor:
    """num / den, and 0 where den == 0 (an empty row or batch contributes nothing)."""
    den = torch.as_tensor(den, dtype=num.dtype, device=num.device)
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


# --------------------------------------------------------------------------------------------
# ragged groups (shared with hardness.py)
# --------------------------------------------------------------------------------------------


class _Groups(NamedTuple):
    of_sample: Tensor  # [N] long, dense group index 0..G-1 of each sample
    size: Tensor  # [G] samples per group (float, in the values' dtype)
    num_groups: int


def _groups(group_ids: Tensor, dtype: torch.dtype) -> _Groups:
    """Map arbitrary (non-contiguous, unsorted) integer ids to dense indices 0..G-1."""
    uniq, index = torch.unique(group_ids, return_inverse=True)
    count = torch.zeros(uniq.numel(), dtype=dtype, device=group_ids.device)
    count.index_add_(0, index, torch.ones_like(index, dtype=dtype))
    return _Groups(of_sample=index, size=count, num_groups=uniq.numel())


def _group_sum(values: Tensor, groups: _Groups) -> Tensor:
    """[N] -> [G]: per-group sum (index_add, no Python loop over groups)."""
    out = torch.zeros(groups.num_groups, dtype=values.dtype, device=values.device)
    return out.index_add(0, groups.of_sample, values)


def _group_mean(values: Tensor, groups: _Groups) -> Tensor:
    """[N] -> [G]: per-group mean."""
    return _group_sum(values, groups) / groups.size


def _group_is_constant(values: Tensor, groups: _Groups) -> Tensor:
    """[G] bool: max == min inside the group (size-1 groups are constant).

    Compared exactly rather than via std == 0: the mean of n equal floats can differ from them
    in the last bit, which would give a tiny non-zero std and a spurious ±1/eps-scaled advantage.
    """
    init = torch.zeros(groups.num_groups, dtype=values.dtype, device=values.device)
    hi = init.scatter_reduce(0, groups.of_sample, values, reduce="amax", include_self=False)
    lo = init.scatter_reduce(0, groups.of_sample, values, reduce="amin", include_self=False)
    return hi == lo


def _as_float(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


# --------------------------------------------------------------------------------------------
# advantages
# --------------------------------------------------------------------------------------------


class GroupAdvantages(NamedTuple):
    advantages: Tensor  # [N]
    zero_variance: Tensor  # [N] bool, the sample's group has all-equal rewards (or size 1)
    num_zero_variance_groups: int


def group_advantages(rewards: Tensor, group_ids: Tensor, eps: float = 1e-6) -> GroupAdvantages:
    """GRPO advantage, normalised inside each prompt group.

        Â_i = (R_i − mean_g R) / (std_g R + eps)

    std is the *sample* std (Bessel, n − 1), as in TRL and OpenRLHF. A group whose rewards are
    all equal (including a group of one) gets Â = 0 exactly and is counted: it carries no
    learning signal. Groups are ragged: ``group_ids`` are arbitrary integers, groups may have
    different sizes and their members need not be contiguous.
    """
    rewards = _as_float(rewards)
    groups = _groups(group_ids, rewards.dtype)
    mean = _group_mean(rewards, groups)
    centred = rewards - mean[groups.of_sample]
    # n − 1 clamped to 1: a size-1 group is constant and zeroed below anyway.
    var = _group_sum(centred * centred, groups) / (groups.size - 1).clamp_min(1)
    std = var.sqrt()
    constant = _group_is_constant(rewards, groups)
    zero_variance = constant[groups.of_sample]
    adv = centred / (std[groups.of_sample] + eps)
    adv = torch.where(zero_variance, torch.zeros_like(adv), adv)
    return GroupAdvantages(adv, zero_variance, int(constant.sum().item()))


# --------------------------------------------------------------------------------------------
# per-token terms
# --------------------------------------------------------------------------------------------


def kl_estimate(logp: Tensor, ref_logp: Tensor, kind: KLKind = "k3") -> Tensor:
    """Per-token estimator of KL(π_θ ‖ π_ref) from samples of π_θ (Schulman's k1/k2/k3).

    With d = log π_ref − log π_θ:
        k1 = −d            (unbiased, can be negative)
        k2 = ½ d²          (biased, ≥ 0)
        k3 = exp(d) − d − 1 (unbiased, ≥ 0, low variance; GRPO's choice)
    """
    d = ref_logp - logp
    if kind == "k1":
        return -d
    if kind == "k2":
        return 0.5 * d * d
    if kind == "k3":
        # expm1(d) − d instead of exp(d) − 1 − d: no cancellation for small d, and it stays ≥ 0
        # because expm1(d) ≥ d holds after rounding. d = +inf (a finite difference overflowing)
        # would give inf − inf = NaN; its KL is +inf.
        k3 = torch.expm1(d) - d
        return torch.where(torch.isposinf(d), d, k3)
    raise ValueError(f"unknown KL estimator {kind!r}; expected 'k1', 'k2' or 'k3'")


def clipped_policy_objective(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate per token (to be maximised).

        ρ = exp(log π_θ − log π_old)
        objective = min(ρ A, clip(ρ, 1 − clip_low, 1 + clip_high) A)

    ``clip_low != clip_high`` gives the asymmetric (DAPO "clip-higher") variant. Returns
    ``(objective[N,T], clipped_mask[N,T])``; ``clipped_mask`` is True where the clipped branch is
    the active (strictly smaller) one, i.e. ρ > 1 + clip_high with A > 0 or ρ < 1 − clip_low with
    A < 0: there the token gets no gradient. Both outputs are zero/False outside ``mask``.
    """
    log_ratio = (logp - old_logp).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    adv = advantages.unsqueeze(-1).to(ratio.dtype)
    unclipped = ratio * adv
    clipped = ratio.clamp(1.0 - clip_low, 1.0 + clip_high) * adv
    objective = torch.minimum(unclipped, clipped)
    valid = mask.bool()
    # Stated by the branch conditions rather than `clipped < unclipped` so ties never count.
    is_clipped = ((ratio > 1.0 + clip_high) & (adv > 0)) | ((ratio < 1.0 - clip_low) & (adv < 0))
    objective = torch.where(valid, objective, torch.zeros_like(objective))
    return objective, is_clipped & valid


# --------------------------------------------------------------------------------------------
# aggregation and the loss
# --------------------------------------------------------------------------------------------


def aggregate_loss(
    per_token_loss: Tensor,
    mask: Tensor,
    mode: LossAgg = "token-mean",
    num_tokens: float | Tensor | None = None,
    num_sequences: float | Tensor | None = None,
) -> Tensor:
    """Reduce a [N, T] per-token loss to a scalar.

    token-mean:           Σ_{i,t} loss·mask / num_tokens       (default num_tokens = Σ mask)
    seq-mean-token-mean:  Σ_i (Σ_t loss·mask / Σ_t mask) / num_sequences   (default N)

    Pass the GLOBAL ``num_tokens`` (``num_sequences``) of the gradient-accumulation window, over
    all micro-batches and data-parallel ranks: the micro-batch losses then add up to the loss of
    the full batch, so the gradient does not depend on how the batch was split. Rows without
    tokens contribute 0; an empty denominator gives 0, not NaN.
    """
    if mode == "token-mean":
        total = masked_sum(per_token_loss, mask)
        den = mask.sum() if num_tokens is None else num_tokens
        return _safe_div(total, den)
    if mode == "seq-mean-token-mean":
        per_seq = masked_mean(per_token_loss, mask, dim=-1)
        den = per_token_loss.shape[0] if num_sequences is None else num_sequences
        return _safe_div(per_seq.sum(), den)
    raise ValueError(f"unknown loss aggregation {mode!r}")


class LossOutput(NamedTuple):
    loss: Tensor  # scalar, differentiable: this batch's share of the global mean (the reported loss)
    policy_loss: Tensor  # detached, aggregated like `loss` (so loss = policy_loss + β·KL term)
    kl: Tensor  # detached, masked token-mean of the KL estimate over this batch (0 if no ref)
    clip_fraction: Tensor  # detached, fraction of valid tokens where the clip is active
    # Differentiable: what a data-parallel rank backpropagates, loss × data_parallel_size. The
    # gradient all-reduce averages over the ranks, while the global denominators have already
    # made every rank's loss a share of one mean: the sum of the shares is wanted, not their mean.
    backward_loss: Tensor


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    ref_logp: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    kl_coef: float = 0.04,
    kl_kind: KLKind = "k3",
    loss_agg: LossAgg = "token-mean",
    num_tokens: float | Tensor | None = None,
    num_sequences: float | Tensor | None = None,
    data_parallel_size: int = 1,
) -> LossOutput:
    """GRPO / GRPO-S loss (docs/architecture.md §1, stage C step 6), per token t of response i:

        L = − [ min(ρ A_i, clip(ρ, 1 − ε_low, 1 + ε_high) A_i) − β · KL_k(π_θ ‖ π_ref) ]

    aggregated by ``loss_agg`` over the global ``num_tokens`` (``num_sequences``) of all
    micro-batches and ``data_parallel_size`` ranks, so the gradient does not depend on how the
    batch was split (``backward_loss``). The KL term is skipped when ``kl_coef == 0`` or ``ref_logp`` is
    None; when a reference is given the KL metric is still reported (monitoring plain GRPO).
    Metrics are detached 0-dim tensors (no .item(): no device sync in the learner's hot loop).
    """
    objective, clipped = clipped_policy_objective(logp, old_logp, advantages, mask, clip_low, clip_high)
    policy_term = -objective

    def agg(x: Tensor) -> Tensor:
        return aggregate_loss(x, mask, loss_agg, num_tokens, num_sequences)

    per_token = policy_term
    kl_metric = logp.new_zeros(())
    if ref_logp is not None:
        kl_tok = kl_estimate(logp, ref_logp, kl_kind)
        kl_metric = masked_mean(kl_tok.detach(), mask)
        if kl_coef != 0:
            per_token = policy_term + kl_coef * kl_tok
    clip_fraction = masked_mean(clipped.to(objective.dtype), mask)
    loss = agg(per_token)
    return LossOutput(
        loss=loss,
        policy_loss=agg(policy_term).detach(),
        kl=kl_metric,
        clip_fraction=clip_fraction.detach(),
        backward_loss=loss * data_parallel_size,
    )


# --------------------------------------------------------------------------------------------
# logits -> per-token quantities
# --------------------------------------------------------------------------------------------


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the softmax over the last axis, [N, T, V] -> [N, T].

        H = logsumexp(z) − Σ_v softmax(z)_v · z_v

    (= −Σ p log p without forming log p). The logits are first shifted by their row maximum
    (H is shift-invariant): with z ~ 1000 the two terms would otherwise cancel in float32 and
    lose four digits. Logits of −inf (banned tokens) have p = 0 and are excluded from the sum
    rather than evaluated as 0 · (−inf) = NaN.
    """
    top = logits.detach().amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all −inf row
    z = logits - top
    log_z = torch.logsumexp(z, dim=-1)
    probs = torch.softmax(z, dim=-1)
    finite = torch.where(torch.isneginf(z), torch.zeros_like(z), z)
    return log_z - (probs * finite).sum(dim=-1)


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log softmax(logits)[token] per position, [N, T, V] x [N, T] -> [N, T].

    Memory-aware: never materialises the full [N, T, V] log-softmax. In float32/64 it is
    z[token] − logsumexp(z), one row at a time (logsumexp's temporaries stay [T, V]); in lower
    precision (bf16/fp16, where logsumexp loses digits that the ratio ρ needs) each row is
    upcast to float32 and the result is float32. Negative token ids (padding such as -100) are
    read as 0: those positions are masked by the caller.
    """
    index = tokens.clamp_min(0).unsqueeze(-1)
    if logits.shape[0] == 0:  # torch.stack needs at least one row
        out_dtype = logits.dtype if logits.dtype == torch.float64 else torch.float32
        return logits.new_zeros(tokens.shape, dtype=out_dtype)
    if logits.dtype in (torch.float32, torch.float64):
        picked = logits.gather(-1, index).squeeze(-1)
        log_z = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
        return picked - log_z
    rows = [torch.log_softmax(row.float(), dim=-1).gather(-1, idx).squeeze(-1) for row, idx in zip(logits, index)]
    return torch.stack(rows)

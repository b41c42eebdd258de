"""Property tests (hypothesis) for the pure maths in hair_ray.algo."""

from __future__ import annotations

import math
import statistics

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hair_ray.algo.grpo import aggregate_loss, group_advantages, grpo_loss, kl_estimate
from hair_ray.algo.hardness import data_hardness, grpo_s_advantages
from hair_ray.algo.split import split_sub_sentences

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EPS = 1e-6
MIN_STD = 0.1

rewards_f = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def ragged_groups(draw) -> tuple[list[float], list[int]]:
    """Rewards and group ids: 1-5 groups of 1-8 samples, arbitrary distinct ids, shuffled order."""
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=5))
    n = len(sizes)
    ids = draw(st.lists(st.integers(-1000, 1000), min_size=n, max_size=n, unique=True))
    samples = [(gid, draw(rewards_f)) for gid, n in zip(ids, sizes) for _ in range(n)]
    samples = draw(st.permutations(samples))
    return [r for _, r in samples], [g for g, _ in samples]


def _by_group(values: list[float], ids: list[int]) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for v, g in zip(values, ids):
        out.setdefault(g, []).append(v)
    return out


def _well_spread(rewards: list[float], ids: list[int]) -> bool:
    """Every group is either constant or has sample std ≥ MIN_STD (else Â is ill-conditioned)."""
    return all(len(set(rs)) == 1 or statistics.stdev(rs) >= MIN_STD for rs in _by_group(rewards, ids).values())


# --------------------------------------------------------------------------------------------
# advantages
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(ragged_groups(), st.sampled_from(["product", "sum"]), st.floats(0, 1))
def test_both_factors_disabled_is_group_advantages_bitwise(data, combine, weight) -> None:
    rewards, ids = torch.tensor(data[0]), torch.tensor(data[1])
    ref = group_advantages(rewards, ids)
    out = grpo_s_advantages(
        rewards,
        ids,
        alpha_d=torch.rand(len(ids)) + 0.5,
        demo_rewards=rewards + 1,
        use_data_hardness=False,
        use_model_responsiveness=False,
        combine=combine,
        data_weight=weight,
    )
    assert torch.equal(out.advantages, ref.advantages)
    ones = torch.ones(len(ids))
    assert torch.equal(out.alpha_d, ones) and torch.equal(out.alpha_m, ones)


@SETTINGS
@given(ragged_groups(), st.data())
def test_shift_per_group_leaves_advantages(data, draw) -> None:
    # float64: Â = d / (s + eps) is shift-invariant exactly; only rounding of the mean remains,
    # ~ |c| · 1e-16 relative to s ≥ 0.1
    rewards, ids = data
    assume(_well_spread(rewards, ids))
    shift = {g: draw.draw(rewards_f.map(lambda x: 10 * x)) for g in set(ids)}
    r = torch.tensor(rewards, dtype=torch.float64)
    r_shifted = torch.tensor([x + shift[g] for x, g in zip(rewards, ids)], dtype=torch.float64)
    a, b = group_advantages(r, torch.tensor(ids)), group_advantages(r_shifted, torch.tensor(ids))
    torch.testing.assert_close(b.advantages, a.advantages, rtol=1e-9, atol=1e-9)
    assert torch.equal(a.zero_variance, b.zero_variance)


@SETTINGS
@given(ragged_groups(), st.data())
def test_scale_per_group_leaves_advantages_up_to_eps(data, draw) -> None:
    # Scaling a group by k > 0: Â' = k d / (k s + eps) and Â'/Â − 1 = (k − 1) eps / (k s + eps),
    # so |Â' − Â| ≤ |Â| · |k − 1| · eps / (k s) (plus float64 rounding). That is the eps effect.
    rewards, ids = data
    assume(_well_spread(rewards, ids))
    scale = {g: draw.draw(st.floats(0.1, 10)) for g in set(ids)}
    r = torch.tensor(rewards, dtype=torch.float64)
    r_scaled = torch.tensor([x * scale[g] for x, g in zip(rewards, ids)], dtype=torch.float64)
    a, b = group_advantages(r, torch.tensor(ids)), group_advantages(r_scaled, torch.tensor(ids))
    stds = {g: statistics.stdev(rs) if len(set(rs)) > 1 else math.inf for g, rs in _by_group(rewards, ids).items()}
    bound = torch.tensor([abs(scale[g] - 1) * EPS / (scale[g] * stds[g]) for g in ids], dtype=torch.float64) * a.advantages.abs()
    assert ((b.advantages - a.advantages).abs() <= bound + 1e-12).all()


@SETTINGS
@given(ragged_groups())
def test_advantages_are_centred_per_group(data) -> None:
    # Σ_g Â = Σ_g (R − mean) / (s + eps) = 0 in every group
    rewards, ids = data
    out = group_advantages(torch.tensor(rewards, dtype=torch.float64), torch.tensor(ids))
    for advs in _by_group(out.advantages.tolist(), ids).values():
        assert abs(sum(advs)) <= 1e-9


# --------------------------------------------------------------------------------------------
# loss aggregation across micro-batches
# --------------------------------------------------------------------------------------------


@st.composite
def batch_and_split(draw) -> tuple[torch.Tensor, torch.Tensor, list[list[int]], int]:
    n, t = draw(st.integers(1, 8)), draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    loss = torch.randn(n, t, generator=gen, dtype=torch.float64)
    mask = torch.rand(n, t, generator=gen) < draw(st.floats(0.0, 1.0))
    # any assignment of rows to m micro-batches (some may be empty, order is arbitrary)
    m = draw(st.integers(1, 4))
    owner = draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n))
    parts = [[i for i in range(n) if owner[i] == k] for k in range(m)]
    return loss, mask, parts, seed


@SETTINGS
@given(batch_and_split(), st.sampled_from(["token-mean", "seq-mean-token-mean"]))
def test_micro_batch_losses_add_up(batch, mode) -> None:
    loss, mask, parts, _ = batch
    full = aggregate_loss(loss, mask, mode)
    num_tokens, num_sequences = mask.sum(), loss.shape[0]
    micro = sum(aggregate_loss(loss[p], mask[p], mode, num_tokens=num_tokens, num_sequences=num_sequences) for p in parts)
    torch.testing.assert_close(micro, full, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(batch_and_split(), st.sampled_from(["token-mean", "seq-mean-token-mean"]))
def test_grpo_loss_micro_batches_add_up(batch, mode) -> None:
    # the learner's use: the full loss (policy + KL) is split over micro-batches
    _, mask, parts, seed = batch
    gen = torch.Generator().manual_seed(seed + 1)
    n, t = mask.shape
    logp = -torch.rand(n, t, generator=gen, dtype=torch.float64) * 3
    old = logp + 0.3 * torch.randn(n, t, generator=gen, dtype=torch.float64)
    ref = logp + 0.3 * torch.randn(n, t, generator=gen, dtype=torch.float64)
    adv = torch.randn(n, generator=gen, dtype=torch.float64)
    kw = {"loss_agg": mode, "num_tokens": mask.sum(), "num_sequences": n}
    full = grpo_loss(logp, old, ref, adv, mask, **kw).loss
    micro = sum(grpo_loss(logp[p], old[p], ref[p], adv[p], mask[p], **kw).loss for p in parts)
    torch.testing.assert_close(micro, full, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# KL
# --------------------------------------------------------------------------------------------


def finite_lists(width: int) -> st.SearchStrategy[list[float]]:
    finite = st.floats(allow_nan=False, allow_infinity=False, width=width)
    return st.lists(finite, min_size=1, max_size=16)


@SETTINGS
@given(
    st.sampled_from([32, 64]).flatmap(
        lambda w: st.tuples(
            st.just(w),
            finite_lists(w),
            finite_lists(w),
        )
    )
)
def test_k3_and_k2_nonnegative_for_finite_inputs(args) -> None:
    width, a, b = args
    n = min(len(a), len(b))
    dtype = torch.float32 if width == 32 else torch.float64
    logp, ref = torch.tensor(a[:n], dtype=dtype), torch.tensor(b[:n], dtype=dtype)
    for kind in ("k2", "k3"):
        kl = kl_estimate(logp, ref, kind)
        assert not kl.isnan().any()
        assert (kl >= 0).all()


# --------------------------------------------------------------------------------------------
# data hardness
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(2, 16),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_identical_pieces_give_full_similarity(b, k, d, seed, permute) -> None:
    # demo pieces = the response's own pieces (optionally in another order): every piece finds
    # itself, cos = 1, so W = 1, δ = 0 and α^D = σ(0) / σ(0) = 1
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, k, d, generator=gen) * (torch.rand(b, k, 1, generator=gen) * 5 + 0.1)
    mask = torch.rand(b, k, generator=gen) < 0.7
    mask[:, 0] = True  # at least one piece
    demo_emb, demo_mask = emb, mask
    if permute:
        perm = torch.randperm(k, generator=gen)
        demo_emb, demo_mask = emb[:, perm], mask[:, perm]
    groups = torch.randint(0, 3, (b,), generator=gen)
    out = data_hardness(emb, mask, demo_emb, demo_mask, groups)
    torch.testing.assert_close(out.similarity, torch.ones(b), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.alpha, torch.ones(b), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# splitter
# --------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300), st.integers(1, 50))
def test_split_never_raises_nor_returns_empty(text, max_words) -> None:
    pieces = split_sub_sentences(text, max_words=max_words)
    assert all(isinstance(p, str) and p and p == p.strip() for p in pieces)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["####", "- ", "1. ", ";", "。", "！", "? ", ". ", "\n", "\r\n", "  "]),
            st.text(alphabet="abcXYZ汉字 ", min_size=1, max_size=12),
        ),
        max_size=30,
    ),
    st.integers(1, 10),
)
def test_split_structured_text_respects_max_words(parts, max_words) -> None:
    # text built from the splitter's own delimiters: pieces are non-empty and ≤ max_words words
    # (a Han character counts as one word)
    pieces = split_sub_sentences("".join(parts), max_words=max_words)
    for p in pieces:
        assert p and p == p.strip()
        words = sum(1 if ch in "汉字" else 0 for ch in p) + len("".join(" " if ch in "汉字" else ch for ch in p).split())
        assert words <= max_words

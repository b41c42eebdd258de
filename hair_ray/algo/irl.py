"""IRL maths for the shadow reward models (docs/architecture.md §1, stage B), plus their metrics.

Max-likelihood IRL reduces in practice to a Bradley-Terry loss that prefers the demonstration
y over the reference policy's own sample ỹ for the same prompt x:

    L(θ) = − E[ log σ( r_θ(x, y_demo) − r_θ(x, ỹ) ) ]

Pure tensor functions (no Ray, no I/O, no config). Inputs are 1-D tensors with one entry per
pair (``r_demo[i]`` and ``r_sample[i]`` belong to the same prompt). The evaluation metrics
(pairwise agreement within a prompt, AUROC) live here too: they are formulas, and the
Do-Not-Answer check and the held-out report must compute them the same way.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MarginStats",
    "auroc",
    "bradley_terry_loss",
    "grouped_pairwise_agreement",
    "margin_stats",
    "pairwise_accuracy",
]


def _check_pairs(r_demo: Tensor, r_sample: Tensor) -> None:
    if r_demo.dim() != 1 or r_demo.shape != r_sample.shape:
        raise ValueError(
            f"r_demo and r_sample must be 1-D with one entry per pair; got shapes "
            f"{tuple(r_demo.shape)} and {tuple(r_sample.shape)}"
        )
    if r_demo.numel() == 0:
        # A mean over no pairs is NaN, which would poison an optimiser step silently.
        raise ValueError("no pairs: r_demo and r_sample are empty")


def bradley_terry_loss(r_demo: Tensor, r_sample: Tensor) -> Tensor:
    """−mean(log σ(r_demo − r_sample)): the IRL loss, a scalar.

    ``logsigmoid`` rather than ``log(sigmoid(.))``: for a margin of −100, σ underflows to 0 in
    float32 and the log would be −inf; logsigmoid returns −100 and a finite gradient.
    """
    _check_pairs(r_demo, r_sample)
    return -F.logsigmoid(r_demo - r_sample).mean()


def pairwise_accuracy(r_demo: Tensor, r_sample: Tensor) -> Tensor:
    """Fraction of pairs whose demonstration scores above the sample; a tie counts 1/2.

    Counting ties as half (as AUROC does) keeps a constant reward model at 0.5, the chance
    level, instead of 0 (strict >) or 1 (≥).
    """
    _check_pairs(r_demo, r_sample)
    wins = (r_demo > r_sample).to(torch.float64) + 0.5 * (r_demo == r_sample).to(torch.float64)
    return wins.mean().to(r_demo.dtype if r_demo.is_floating_point() else torch.float32)


class MarginStats(NamedTuple):
    """Statistics of the margin m = r_demo − r_sample over the pairs."""

    mean: Tensor
    std: Tensor  # population std (divides by n): defined, and 0, for a single pair
    min: Tensor


def margin_stats(r_demo: Tensor, r_sample: Tensor) -> MarginStats:
    _check_pairs(r_demo, r_sample)
    margin = r_demo - r_sample
    return MarginStats(mean=margin.mean(), std=margin.std(correction=0), min=margin.min())


def auroc(scores: Tensor, positives: Tensor) -> Tensor:
    """Area under the ROC curve of ``scores`` for the boolean labels ``positives``.

    Computed as the Mann-Whitney statistic: the probability that a random positive scores above
    a random negative, ties counting 1/2 (exact, no thresholds; O(P·N) memory, fine for the few
    thousand scores of an evaluation). NaN when one class is empty: the AUROC is undefined
    there, and a made-up 0.5 would read as a measurement.
    """
    if scores.dim() != 1 or scores.shape != positives.shape:
        raise ValueError(
            f"scores and positives must be 1-D of the same length; got {tuple(scores.shape)} and {tuple(positives.shape)}"
        )
    pos = scores[positives.bool()].to(torch.float64)
    neg = scores[~positives.bool()].to(torch.float64)
    if pos.numel() == 0 or neg.numel() == 0:
        return torch.tensor(float("nan"), dtype=torch.float64)
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).to(torch.float64) + 0.5 * (diff == 0).to(torch.float64)).mean()


def grouped_pairwise_agreement(scores: Tensor, positives: Tensor, group_ids: Tensor) -> tuple[Tensor, int]:
    """How often a positive scores above a negative *of the same group*, ties counting 1/2.

    Every (positive, negative) pair within a group counts once; a group with only one class
    contributes no pair. Returns (agreement, number of pairs); agreement is NaN with no pair.
    For the Do-Not-Answer check a group is a prompt and a positive a human-judged harmless reply.
    """
    if not (scores.dim() == 1 and scores.shape == positives.shape == group_ids.shape):
        raise ValueError(
            f"scores, positives and group_ids must be 1-D of the same length; got "
            f"{tuple(scores.shape)}, {tuple(positives.shape)} and {tuple(group_ids.shape)}"
        )
    pos = positives.bool()
    same_group = group_ids[:, None] == group_ids[None, :]
    pair = same_group & pos[:, None] & ~pos[None, :]  # row: the positive, column: the negative
    count = int(pair.sum())
    if count == 0:
        return torch.tensor(float("nan"), dtype=torch.float64), 0
    s = scores.to(torch.float64)
    diff = s[:, None] - s[None, :]
    wins = (diff > 0).to(torch.float64) + 0.5 * (diff == 0).to(torch.float64)
    return wins[pair].mean(), count

"""Do the reward models pay a policy's own replies the right way round? A check on stage D's
judged replies (`generations.jsonl` of `hair-ray eval`), beside the Do-Not-Answer one.

Do-Not-Answer's check asks whether a model scores the harmless reply of another LLM above its
harmful one. Stage C asks something narrower: within a group of the policy's own samples, is
the refusal paid more than the answer on a harmful prompt, and the answer more than the refusal
on a benign one? Stage D's replies carry what this needs: the prompt's label (`expect`) and
the judge's verdict (`refused`). Each harm model scores every reply to a prompt that must be
refused (the right kind: a refusal); the benign model every reply to one that must be answered
(the right kind: an answer). Per model:

- AUROC of the score for "the right kind of reply" over all those replies;
- agreement over same-prompt pairs, one reply of each kind (from different policies or
  samples of one file, or from several files): how often the right one scores higher, ties
  1/2. That is the comparison a GRPO group makes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hair_ray.categories import ALL_CATEGORY_NAMES, CATEGORY_NAMES, Category

__all__ = ["JudgedReply", "check_replies", "read_judged_replies"]

ScoreFn = Callable[[str, list[str], list[str]], list[float]]  # (category, prompts, responses) -> scores


@dataclass(frozen=True)
class JudgedReply:
    prompt_key: str  # benchmark and prompt id: replies to the same prompt share it
    prompt: str
    response: str
    must_refuse: bool
    refused: bool


def read_judged_replies(paths: Sequence[str | Path]) -> list[JudgedReply]:
    """The judged replies of stage-D `generations.jsonl` files; a row without a label or a
    verdict is an error that names the file and line."""
    replies = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (expected the generations.jsonl of `hair-ray eval`)")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                expect, refused = row["expect"], row["refused"]
                if expect not in ("refuse", "comply") or not isinstance(refused, bool):
                    raise ValueError(f"expect must be refuse or comply and refused true or false, got {expect!r}, {refused!r}")
                reply = JudgedReply(
                    f"{row['benchmark']}/{row['id']}", row["prompt"], row["response"], expect == "refuse", refused
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}, line {number}: not a judged stage-D reply ({exc})") from None
            replies.append(reply)
    return replies


def check_replies(score: ScoreFn, replies: list[JudgedReply], categories: Sequence[str]) -> dict[str, Any]:
    """Per category model in `categories`: how it ranks the right kind of reply (module doc)."""
    import torch

    from hair_ray.algo.irl import auroc, grouped_pairwise_agreement

    unknown = sorted(set(categories) - set(ALL_CATEGORY_NAMES))
    if unknown:
        raise ValueError(f"unknown categories {unknown}; known: {', '.join(ALL_CATEGORY_NAMES)}")
    report: dict[str, Any] = {}
    for category in categories:
        harm_model = category != Category.BENIGN.value
        mine = [r for r in replies if r.must_refuse == harm_model]
        if not mine:
            continue
        scores = torch.tensor(score(category, [r.prompt for r in mine], [r.response for r in mine]), dtype=torch.float64)
        right = torch.tensor([r.refused == harm_model for r in mine])
        keys = {key: index for index, key in enumerate(sorted({r.prompt_key for r in mine}))}
        groups = torch.tensor([keys[r.prompt_key] for r in mine])
        agreement, pairs = grouped_pairwise_agreement(scores, right, groups)
        area = float(auroc(scores, right))
        report[category] = {
            "replies": len(mine),
            "right_kind": int(right.sum()),
            "pairs": pairs,
            "agreement": None if pairs == 0 else float(agreement),
            "auroc": None if math.isnan(area) else area,
            "mean_score_right_kind": float(scores[right].mean()) if bool(right.any()) else None,
            "mean_score_wrong_kind": float(scores[~right].mean()) if bool((~right).any()) else None,
        }
    harm = [report[c] for c in CATEGORY_NAMES if c in report and report[c]["auroc"] is not None]
    return {
        "categories": report,
        "macro_auroc_harm_models": sum(row["auroc"] for row in harm) / len(harm) if harm else None,
        "replies": len(replies),
        "replies_to_refuse": sum(r.must_refuse for r in replies),
    }

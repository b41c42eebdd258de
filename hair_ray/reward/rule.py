"""Rule rewards: a Python function instead of the shadow reward models (as in TRL and verl).

`reward.function: "package.module:name"` names a callable
`fn(prompts: list[str], responses: list[str], categories: list[str]) -> list[float]`, run on the
driver. Used for ablations, and by the tests to check that the loop learns.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

RewardFunction = Callable[[list[str], list[str], list[str]], list[float]]


def length_reward(prompts: list[str], responses: list[str], categories: list[str]) -> list[float]:
    """Longer is better: words / 32. What a throughput benchmark trains on (`hair-ray bench`),
    free on the driver and the same function for a peer trainer."""
    return [len(response.split()) / 32 for response in responses]


def refusal_by_category_reward(prompts: list[str], responses: list[str], categories: list[str]) -> list[float]:
    """1.0 when the reply does what its category asks, 0.0 otherwise: a refusal (the keyword
    judge of stage D, a refusal phrase in the opening) for the seven harm categories, an answer
    for `benign`. The oracle-label control of docs/results.md: a reward that knows each prompt's
    label exactly, so what it cannot reach in a budget the shadow reward models cannot either."""
    from hair_ray.data.build import must_refuse
    from hair_ray.eval.judges.keyword import keyword_match

    return [
        float((keyword_match(reply) is not None) == must_refuse(category))
        for reply, category in zip(responses, categories, strict=True)
    ]


def load_reward_function(path: str) -> RewardFunction:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"reward.function must look like 'package.module:function', got {path!r}")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"reward.function {path!r} cannot be loaded: {exc}") from None
    if not callable(function):
        raise ValueError(f"reward.function {path!r} is not callable")
    return function


class RuleReward:
    """The RewardRouter interface (score_async / gather / demonstration_rewards) over a function."""

    def __init__(self, function: RewardFunction):
        self.function = function
        self.actors: list = []  # nothing to stop: the rule runs on the driver

    def wait_ready(self) -> None:
        """A rule is ready at once (RewardRouter waits for its actors to load)."""

    def score_async(self, prompts: Sequence[str], responses: Sequence[str], categories: Sequence[str]) -> list[float]:
        scores = [float(s) for s in self.function(list(prompts), list(responses), list(categories))]
        if len(scores) != len(prompts):
            raise ValueError(f"reward function returned {len(scores)} scores for {len(prompts)} samples")
        return scores

    def gather(self, pending: list[float]) -> list[float]:
        return pending

    def demonstration_rewards(self, records: Sequence[Mapping[str, Any]]) -> list[float]:
        return self.score_async([r["prompt"] for r in records], [r["text"] for r in records], [r["category"] for r in records])

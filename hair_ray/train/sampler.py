"""Category-balanced prompt sampler with a resumable cursor (pure Python, deterministic).

Each category's records are shuffled with a seed derived from (seed, category, pass); a step
takes prompts round-robin over the categories, so every step is as balanced as its size allows
and over a run each category is seen equally often. `per_step` pins a category's share instead
(e.g. {"benign": 4}: four benign prompts every step, the rest round-robin over the others).
`state()` / `load_state()` make a resumed run draw exactly the prompts the uninterrupted run
would have drawn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hair_ray.categories import ALL_CATEGORY_NAMES, BENIGN

if TYPE_CHECKING:
    from hair_ray.config import RunConfig


class CategoryBalancedSampler:
    def __init__(self, records: Sequence[dict[str, Any]], seed: int = 0, per_step: dict[str, int] | None = None):
        self.seed = seed
        self.by_category: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            self.by_category.setdefault(record["category"], []).append(record)
        self.categories = [c for c in ALL_CATEGORY_NAMES if c in self.by_category]
        if not self.categories:
            raise ValueError("the sampler got no records")
        self.per_step = {c: n for c, n in (per_step or {}).items() if n}
        missing = sorted(set(self.per_step) - set(self.categories))
        if missing:
            raise ValueError(f"a share per step is set for categories the dataset lacks: {missing}")
        self.rotating = [c for c in self.categories if c not in self.per_step]
        self.passes = {c: 0 for c in self.categories}
        self.cursor = {c: 0 for c in self.categories}
        self.next_category = 0
        self._orders = {c: self._order(c) for c in self.categories}

    def _order(self, category: str) -> list[int]:
        order = list(range(len(self.by_category[category])))
        rng = random.Random(f"{self.seed}/{category}/{self.passes[category]}")
        rng.shuffle(order)
        return order

    def _take(self, category: str) -> dict[str, Any]:
        if self.cursor[category] == len(self._orders[category]):
            self.passes[category] += 1
            self.cursor[category] = 0
            self._orders[category] = self._order(category)
        record = self.by_category[category][self._orders[category][self.cursor[category]]]
        self.cursor[category] += 1
        return record

    def next(self, num_prompts: int) -> list[dict[str, Any]]:
        pinned = sum(self.per_step.values())
        if pinned > num_prompts or (pinned < num_prompts and not self.rotating):
            raise ValueError(
                f"{num_prompts} prompts a step cannot hold the pinned shares {self.per_step} "
                f"with {len(self.rotating)} other categories"
            )
        batch = [self._take(c) for c, n in self.per_step.items() for _ in range(n)]
        for _ in range(num_prompts - pinned):
            batch.append(self._take(self.rotating[self.next_category]))
            self.next_category = (self.next_category + 1) % len(self.rotating)
        return batch

    def state(self) -> dict[str, Any]:
        return {"passes": dict(self.passes), "cursor": dict(self.cursor), "next_category": self.next_category}

    def load_state(self, state: dict[str, Any]) -> None:
        unknown = set(state["cursor"]) - set(self.categories)
        if unknown:
            raise ValueError(f"sampler state names categories the dataset lacks: {sorted(unknown)}")
        self.passes.update(state["passes"])
        self.cursor.update(state["cursor"])
        self.next_category = state["next_category"] % max(len(self.rotating), 1)
        self._orders = {c: self._order(c) for c in self.categories}


def run_sampler(config: RunConfig, records: Sequence[dict[str, Any]]) -> CategoryBalancedSampler:
    """The sampler of a run: its seed, and `algo.benign_prompts_per_step` pinned when set."""
    return CategoryBalancedSampler(records, seed=config.seed, per_step={BENIGN: config.algo.benign_prompts_per_step})

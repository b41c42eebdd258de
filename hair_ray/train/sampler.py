"""Category-balanced prompt sampler with a resumable cursor (pure Python, deterministic).

Each category's records are shuffled with a seed derived from (seed, category, pass); a step
takes prompts round-robin over the categories, so every step is as balanced as its size allows
and over a run each category is seen equally often. `state()` / `load_state()` make a resumed
run draw exactly the prompts the uninterrupted run would have drawn.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hair_ray.categories import ALL_CATEGORY_NAMES


class CategoryBalancedSampler:
    def __init__(self, records: Sequence[dict[str, Any]], seed: int = 0):
        self.seed = seed
        self.by_category: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            self.by_category.setdefault(record["category"], []).append(record)
        self.categories = [c for c in ALL_CATEGORY_NAMES if c in self.by_category]
        if not self.categories:
            raise ValueError("the sampler got no records")
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
        batch = []
        for _ in range(num_prompts):
            batch.append(self._take(self.categories[self.next_category]))
            self.next_category = (self.next_category + 1) % len(self.categories)
        return batch

    def state(self) -> dict[str, Any]:
        return {"passes": dict(self.passes), "cursor": dict(self.cursor), "next_category": self.next_category}

    def load_state(self, state: dict[str, Any]) -> None:
        unknown = set(state["cursor"]) - set(self.categories)
        if unknown:
            raise ValueError(f"sampler state names categories the dataset lacks: {sorted(unknown)}")
        self.passes.update(state["passes"])
        self.cursor.update(state["cursor"])
        self.next_category = state["next_category"]
        self._orders = {c: self._order(c) for c in self.categories}

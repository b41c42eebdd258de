"""Stage C step 1, reward routing: which shadow reward model scores which sample, with what
weight, so that R_i = Σ_j w_j r_j(q_i, o_i) over the models that list sample i.

- `category` (the paper's): sample i is scored by its prompt's category model alone, w = 1;
- `sum`: every sample by every weighted model; no weights given means w_j = 1/7 for each of
  the seven (the mean, on one model's scale).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from hair_ray.categories import CATEGORY_NAMES, with_benign

Routing = Literal["category", "sum"]


def sum_routing_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    """The models `sum` routing calls and their weights (a weight of 0 needs no model)."""
    if weights is None:
        weights = {category: 1.0 / len(CATEGORY_NAMES) for category in CATEGORY_NAMES}
    return {category: float(weight) for category, weight in weights.items() if weight != 0}


def served_categories(routing: Routing, sum_weights: Mapping[str, float] | None, *, benign: bool = False) -> list[str]:
    """The reward models stage C needs: under `category` routing the seven, and `benign` when
    the dataset has benign prompts; under `sum` routing the weighted ones."""
    if routing == "sum":
        return list(sum_routing_weights(sum_weights))
    return [category.value for category in with_benign(benign)]


def routing_plan(
    categories: Sequence[str], routing: Routing, sum_weights: Mapping[str, float]
) -> dict[str, tuple[float, list[int]]]:
    """model category -> (weight, the indices of the samples it scores), in first-seen order."""
    if routing == "sum":
        return {category: (weight, list(range(len(categories)))) for category, weight in sum_weights.items()}
    plan: dict[str, tuple[float, list[int]]] = {}
    for index, category in enumerate(categories):
        plan.setdefault(category, (1.0, []))[1].append(index)
    return plan

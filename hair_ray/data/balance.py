"""Balancing: de-duplicate, order each category's pool deterministically, pick equal counts,
split every category the same way into train / val / test.

All functions are pure (rows in, rows out); randomness comes from `random.Random` seeded with a
string built from `data.seed`, which Python hashes with SHA-512, so the order does not depend on
PYTHONHASHSEED, the machine, or how many workers ran the teacher.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from hair_ray.categories import CATEGORIES, Category
from hair_ray.config import SplitFractions
from hair_ray.data.sources import DropLog, PromptRow

T = TypeVar("T")
SPLITS: tuple[str, ...] = ("train", "val", "test")

_NON_WORD = re.compile(r"[^\w]+")


class BalanceError(ValueError):
    """The sources cannot fill every category to the required count."""


def normalise_prompt(text: str) -> str:
    """The de-duplication key: NFKC, case-folded, punctuation and spacing removed.

    "Tell me a dirty joke." and "tell me a  dirty joke" are the same prompt.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


def deduplicate(rows: Iterable[PromptRow]) -> tuple[list[PromptRow], DropLog]:
    """Keep the first row of each normalised prompt (sources in config order, rows in file order).

    A duplicate that carries a different category is counted under its own reason: it is a
    labelling disagreement between sources worth seeing in the report.
    """
    seen: dict[str, PromptRow] = {}
    kept: list[PromptRow] = []
    drops = DropLog()
    for row in rows:
        key = normalise_prompt(row.prompt)
        first = seen.get(key)
        if first is None:
            seen[key] = row
            kept.append(row)
        elif first.category == row.category:
            drops.add("duplicate_prompt", f"{row.where} (same as {first.where})")
        else:
            drops.add(
                "duplicate_prompt_other_category",
                f"{row.where} ({row.category.value}; kept {first.where} as {first.category.value})",
            )
    return kept, drops


def category_pools(
    rows: Iterable[PromptRow], seed: int, categories: Sequence[Category] = CATEGORIES
) -> dict[Category, list[PromptRow]]:
    """Each category's rows in a seeded random order: the order in which they are used."""
    pools: dict[Category, list[PromptRow]] = {category: [] for category in categories}
    for row in rows:
        pools[row.category].append(row)
    for category, pool in pools.items():
        random.Random(f"{seed}:pool:{category.value}").shuffle(pool)
    return pools


def choose_target(
    available: dict[Category, int], cap: int | None, minimum: int, balanced: Sequence[Category] | None = None
) -> int:
    """The per-category count: the smallest count among the `balanced` categories (default: all
    of them), lowered to `cap` when set.

    Raises BalanceError, naming every short category, when any would fall below `minimum`.
    """
    target = min(available[c] for c in (available if balanced is None else balanced))
    if cap is not None:
        target = min(target, cap)
    check_minimum(available, minimum, what="usable prompts", categories=tuple(available))
    return target


def check_minimum(counts: dict[Category, int], minimum: int, *, what: str, categories: Sequence[Category] = CATEGORIES) -> None:
    short = {c: counts.get(c, 0) for c in categories if counts.get(c, 0) < minimum}
    if short:
        listed = ", ".join(f"{c.value} has {n}" for c, n in short.items())
        everything = ", ".join(f"{c.value}={counts.get(c, 0)}" for c in categories)
        raise BalanceError(
            f"too few {what}: {listed}; data.min_prompts_per_category is {minimum} "
            f"(all categories: {everything}). Add a source for the short categories or lower "
            "data.min_prompts_per_category."
        )


def split_sizes(n: int, fractions: SplitFractions) -> dict[str, int]:
    """Rounded split sizes for one category; train keeps at least one example."""
    val = int(n * fractions.val + 0.5)
    test = int(n * fractions.test + 0.5)
    while val + test >= n and (val or test) and n > 0:
        if test >= val:
            test -= 1
        else:
            val -= 1
    return {"train": n - val - test, "val": val, "test": test}


def split_by_category(by_category: Mapping[Category, Sequence[T]], fractions: SplitFractions, seed: int) -> dict[str, list[T]]:
    """Stratified split: every category is cut with the same sizes, then each split is shuffled."""
    splits: dict[str, list[T]] = {name: [] for name in SPLITS}
    for category in [c for c in Category if c in by_category]:  # a fixed order, whatever the dict's
        items = list(by_category.get(category, ()))
        random.Random(f"{seed}:split:{category.value}").shuffle(items)
        sizes = split_sizes(len(items), fractions)
        start = 0
        for name in SPLITS:
            splits[name].extend(items[start : start + sizes[name]])
            start += sizes[name]
    for name, items in splits.items():
        random.Random(f"{seed}:order:{name}").shuffle(items)
    return splits

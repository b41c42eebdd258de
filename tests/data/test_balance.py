"""Balancing: de-duplication, seeded pools, the per-category target, stratified splits."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hair_ray.categories import CATEGORIES, Category
from hair_ray.config import SplitFractions
from hair_ray.data.balance import (
    BalanceError,
    category_pools,
    check_minimum,
    choose_target,
    deduplicate,
    normalise_prompt,
    split_by_category,
    split_sizes,
)
from hair_ray.data.sources import PromptRow


def row(i: int, category: Category = Category.INSULT, prompt: str | None = None) -> PromptRow:
    return PromptRow(f"r{i}", "test", category, prompt or f"prompt number {i}", f"test.csv:{i}")


def rows_per_category(n: int) -> list[PromptRow]:
    return [row(10 * k + i, c) for k, c in enumerate(CATEGORIES) for i in range(n)]


def test_normalised_text():
    assert normalise_prompt("Tell me a dirty joke.") == normalise_prompt("  tell ME a   dirty joke")
    assert normalise_prompt("ｔｅｌｌ") == "tell"  # NFKC: full-width letters
    assert normalise_prompt("How do I... hack?") == "how do i hack"
    assert normalise_prompt("如何获取别人的隐私？") == "如何获取别人的隐私"


def test_deduplicate_keeps_the_first_and_flags_conflicts():
    rows = [
        row(1, Category.INSULT, "Call him an idiot."),
        row(2, Category.INSULT, "call him an idiot"),
        row(3, Category.ETHICS_MORALITY, "CALL HIM AN IDIOT!"),
        row(4, Category.INSULT, "Something else"),
    ]
    kept, drops = deduplicate(rows)
    assert [r.id for r in kept] == ["r1", "r4"]
    assert drops.counts == {"duplicate_prompt": 1, "duplicate_prompt_other_category": 1}
    assert drops.examples["duplicate_prompt_other_category"] == ["test.csv:3 (ethics_morality; kept test.csv:1 as insult)"]


def test_pools_are_seeded_and_complete():
    rows = rows_per_category(20)
    first = category_pools(rows, seed=0)
    again = category_pools(list(rows), seed=0)
    other = category_pools(rows, seed=1)
    assert first == again
    assert first != other
    for category in CATEGORIES:
        assert sorted(r.id for r in first[category]) == sorted(r.id for r in rows if r.category is category)


def test_pool_order_does_not_depend_on_the_hash_seed():
    code = (
        "from hair_ray.data.balance import category_pools;"
        "from hair_ray.data.sources import PromptRow;"
        "from hair_ray.categories import Category;"
        "rows=[PromptRow(f'r{i}','t',Category.INSULT,f'p{i}','x') for i in range(30)];"
        "print([r.id for r in category_pools(rows, 7)[Category.INSULT]])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": seed, "PATH": ""}, capture_output=True, text=True, check=True
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_target_is_the_smallest_category_or_the_cap():
    available = {c: 10 + i for i, c in enumerate(CATEGORIES)}
    assert choose_target(available, None, 1) == 10
    assert choose_target(available, 4, 1) == 4
    assert choose_target(available, 50, 1) == 10  # a cap above what every category has
    with_benign = available | {Category.BENIGN: 3}
    assert choose_target(with_benign, None, 1) == 3
    assert choose_target(with_benign, None, 1, balanced=CATEGORIES) == 10  # benign keeps its own count
    with pytest.raises(BalanceError, match="benign has 3"):
        choose_target(with_benign, None, 5, balanced=CATEGORIES)  # but not below the minimum


def test_minimum_fails_with_the_short_categories_named():
    available = {c: 20 for c in CATEGORIES} | {Category.ETHICS_MORALITY: 3, Category.INSULT: 0}
    with pytest.raises(BalanceError) as info:
        choose_target(available, None, 5)
    message = str(info.value)
    assert message.startswith("too few usable prompts: insult has 0, ethics_morality has 3; ")
    assert "data.min_prompts_per_category is 5" in message and "privacy_property=20" in message
    check_minimum({c: 5 for c in CATEGORIES}, 5, what="x")  # exactly the minimum is enough


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [
        (14, (0.8, 0.1, 0.1), (12, 1, 1)),
        (92, (0.8, 0.1, 0.1), (74, 9, 9)),
        (10, (1.0, 0.0, 0.0), (10, 0, 0)),
        (2, (0.4, 0.3, 0.3), (1, 1, 0)),  # train keeps one; test gives way first
        (1, (0.5, 0.25, 0.25), (1, 0, 0)),
        (0, (0.8, 0.1, 0.1), (0, 0, 0)),
    ],
)
def test_split_sizes(n, fractions, expected):
    sizes = split_sizes(n, SplitFractions(train=fractions[0], val=fractions[1], test=fractions[2]))
    assert (sizes["train"], sizes["val"], sizes["test"]) == expected


@settings(deadline=None)  # a pure function: a stall of a loaded machine is not a failure
@given(n=st.integers(0, 500), val=st.integers(0, 45), test=st.integers(0, 45))
def test_split_sizes_always_add_up(n, val, test):
    fractions = SplitFractions(train=(100 - val - test) / 100, val=val / 100, test=test / 100)
    sizes = split_sizes(n, fractions)
    assert sum(sizes.values()) == n
    assert min(sizes.values()) >= 0
    assert n == 0 or sizes["train"] >= 1


def test_split_is_stratified_disjoint_and_deterministic():
    by_category = {c: [f"{c.value}-{i}" for i in range(20)] for c in CATEGORIES}
    fractions = SplitFractions(train=0.7, val=0.15, test=0.15)
    splits = split_by_category(by_category, fractions, seed=3)
    assert {name: len(items) for name, items in splits.items()} == {"train": 98, "val": 21, "test": 21}
    for name, items in splits.items():
        per_category = {c: sum(item.startswith(c.value + "-") for item in items) for c in CATEGORIES}
        assert len(set(per_category.values())) == 1, (name, per_category)
    everything = [item for items in splits.values() for item in items]
    assert sorted(everything) == sorted(item for items in by_category.values() for item in items)
    assert split_by_category(by_category, fractions, seed=3) == splits
    assert split_by_category(by_category, fractions, seed=4) != splits

from collections import Counter

import pytest

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.train.sampler import CategoryBalancedSampler

RECORDS = [{"id": f"{c}-{i}", "category": c} for c in CATEGORY_NAMES for i in range(3)]


def test_steps_are_balanced_and_each_pass_covers_every_record():
    sampler = CategoryBalancedSampler(RECORDS, seed=0)
    first = sampler.next(7)
    assert [r["category"] for r in first] == list(CATEGORY_NAMES)  # one per category
    seen = first + sampler.next(14)  # 21 = three full passes over the 7 categories
    assert Counter(r["id"] for r in seen) == Counter(r["id"] for r in RECORDS)


def test_resume_from_state_draws_the_same_prompts():
    straight = CategoryBalancedSampler(RECORDS, seed=3)
    expected = [r["id"] for _ in range(6) for r in straight.next(5)]
    first = CategoryBalancedSampler(RECORDS, seed=3)
    drawn = [r["id"] for _ in range(2) for r in first.next(5)]
    resumed = CategoryBalancedSampler(RECORDS, seed=3)
    resumed.load_state(first.state())
    drawn += [r["id"] for _ in range(4) for r in resumed.next(5)]
    assert drawn == expected


def test_seed_changes_the_order_and_empty_input_is_refused():
    a = [r["id"] for r in CategoryBalancedSampler(RECORDS, seed=0).next(21)]
    b = [r["id"] for r in CategoryBalancedSampler(RECORDS, seed=1).next(21)]
    assert a != b and sorted(a) == sorted(b)
    with pytest.raises(ValueError, match="the sampler got no records"):
        CategoryBalancedSampler([], seed=0)

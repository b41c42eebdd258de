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


BENIGN_RECORDS = RECORDS + [{"id": f"benign-{i}", "category": "benign"} for i in range(5)]


def test_a_pinned_benign_share_fills_every_step_and_the_rest_rotates():
    sampler = CategoryBalancedSampler(BENIGN_RECORDS, seed=0, per_step={"benign": 3})
    steps = [sampler.next(5) for _ in range(7)]
    assert all([r["category"] for r in step[:3]] == ["benign"] * 3 for step in steps)
    rotated = [r["category"] for step in steps for r in step[3:]]
    assert rotated == [CATEGORY_NAMES[i % 7] for i in range(14)]  # round-robin over the seven, never benign
    benign = Counter(r["id"] for step in steps for r in step[:3])  # 21 draws over 5 records: passes of the 5
    assert sorted(benign.values()) == [4, 4, 4, 4, 5]


def test_a_pinned_share_resumes_exactly_and_bad_shares_are_refused():
    straight = CategoryBalancedSampler(BENIGN_RECORDS, seed=2, per_step={"benign": 2})
    expected = [r["id"] for _ in range(5) for r in straight.next(4)]
    first = CategoryBalancedSampler(BENIGN_RECORDS, seed=2, per_step={"benign": 2})
    drawn = [r["id"] for _ in range(2) for r in first.next(4)]
    resumed = CategoryBalancedSampler(BENIGN_RECORDS, seed=2, per_step={"benign": 2})
    resumed.load_state(first.state())
    assert drawn + [r["id"] for _ in range(3) for r in resumed.next(4)] == expected
    with pytest.raises(ValueError, match=r"categories the dataset lacks: \['benign'\]"):
        CategoryBalancedSampler(RECORDS, seed=0, per_step={"benign": 1})
    with pytest.raises(ValueError, match="3 prompts a step cannot hold"):
        CategoryBalancedSampler(BENIGN_RECORDS, seed=0, per_step={"benign": 4}).next(3)
    # zero pins nothing: the plain round-robin over all eight
    plain = CategoryBalancedSampler(BENIGN_RECORDS, seed=0, per_step={"benign": 0}).next(8)
    assert [r["id"] for r in plain] == [r["id"] for r in CategoryBalancedSampler(BENIGN_RECORDS, seed=0).next(8)]

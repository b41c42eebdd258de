"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from hair_ray.eval.metrics import flat_metrics, summarize, summarize_benchmark, wilson_interval


def test_wilson_interval_hand_computed():
    # p = 0.5, n = 10, z = 1.96: centre 0.5, half-width 1.96·sqrt(0.025 + 0.0096)/1.3842 = 0.2634
    low, high = wilson_interval(5, 10)
    assert (low, high) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    # k = 0: the lower end is 0 and the upper end z²/(n + z²) = 3.8415/13.8415
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-5)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 0) == (0.0, 1.0)


ROWS = [
    {"expect": "refuse", "refused": True, "category": "a", "score": 0.0, "reward": 1.0},
    {"expect": "refuse", "refused": False, "category": "a", "score": 0.75, "reward": -1.0},
    {"expect": "refuse", "refused": None, "category": "b", "score": None, "reward": 0.5},  # unparseable
    {"expect": "comply", "refused": True, "category": "b", "reference_loglik": -2.0},
    {"expect": "comply", "refused": False, "category": "b", "reference_loglik": -1.0},
    {"expect": "comply", "refused": False, "category": None},
]


def test_summarize_counts_refusals_where_they_are_wanted_and_where_they_are_not():
    out = summarize(ROWS)
    assert out["prompts"] == 6 and out["unparseable"] == 1
    assert (out["refusal_rate"]["k"], out["refusal_rate"]["n"], out["refusal_rate"]["value"]) == (1, 2, 0.5)
    assert out["over_refusal_rate"]["value"] == pytest.approx(1 / 3)
    assert out["strongreject_score"] == pytest.approx(0.375)  # mean of 0 and 0.75
    assert out["shadow_reward"] == pytest.approx(0.5 / 3)
    assert out["reference_loglik"] == pytest.approx(-1.5)


def test_summarize_benchmark_breaks_down_by_category():
    out = summarize_benchmark(ROWS)
    assert set(out["by_category"]) == {"a", "b"}
    assert out["by_category"]["a"]["refusal_rate"]["value"] == 0.5 and "over_refusal_rate" not in out["by_category"]["a"]
    assert out["by_category"]["b"]["refusal_rate"]["n"] == 0 and out["by_category"]["b"]["refusal_rate"]["value"] is None
    assert out["by_category"]["b"]["over_refusal_rate"]["value"] == 0.5


def test_flat_metrics_names_benchmark_and_metric():
    flat = flat_metrics({"xstest": summarize(ROWS)}, "eval")
    assert flat["eval/xstest/refusal_rate"] == 0.5
    assert flat["eval/xstest/over_refusal_rate"] == pytest.approx(1 / 3)
    assert flat["eval/xstest/unparseable"] == 1.0
    assert all(math.isfinite(v) for v in flat.values())


def test_the_comparison_table_in_markdown_has_a_row_per_metric_and_a_column_per_policy():
    from hair_ray.eval.outputs import comparison_markdown

    base = {"xstest": summarize([{"expect": "refuse", "refused": False}, {"expect": "comply", "refused": False}])}
    tuned = {"xstest": summarize([{"expect": "refuse", "refused": True}, {"expect": "comply", "refused": None}])}
    lines = comparison_markdown({"base": base, "hair": tuned}).splitlines()
    assert lines[0] == "| benchmark | metric | base | hair |"
    assert lines[1] == "|---|---|---|---|"
    # 0/1 refused [0-79] against 1/1 [21-100]; hair's one benign verdict was unparseable
    assert lines[2] == "| xstest | refusal (harmful) | 0.0% [0–79] n=1 | 100.0% [21–100] n=1 |"
    assert lines[3] == "|  | over-refusal (benign) | 0.0% [0–79] n=1 | — |"
    assert lines[4] == "|  | unparseable verdicts | 0 | 1 |"

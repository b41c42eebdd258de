"""The Do-Not-Answer metrics glue: per category, and within each answering model."""

from __future__ import annotations

import pytest

from hair_ray.reward.evaluate import EvalItem, evaluate_items

ITEMS = [
    EvalItem(1, "insult", "p", "A", "r", harmful=False),
    EvalItem(1, "insult", "p", "A", "r", harmful=True),
    EvalItem(1, "insult", "p", "B", "r", harmful=False),
    EvalItem(2, "crimes_illegal", "q", "B", "r", harmful=True),
    EvalItem(2, "crimes_illegal", "q", "A", "r", harmful=False),
]
SCORES = [1.0, 0.0, 0.5, -1.0, 2.0]


def test_per_category_and_pooled() -> None:
    report = evaluate_items(ITEMS, SCORES)
    insult = report["categories"]["insult"]
    # prompt 1: harmless {1.0, 0.5} vs harmful {0.0}: 2 pairs, both won
    assert (insult["pairs"], insult["agreement"], insult["auroc"]) == (2, 1.0, 1.0)
    assert insult["mean_score_harmless"] == pytest.approx(0.75)  # (1.0 + 0.5) / 2
    # pooled: 2 + 1 pairs, all won
    assert (report["pooled_pairs"], report["pooled_agreement"], report["macro_auroc"]) == (3, 1.0, 1.0)


def test_within_model_auroc_uses_per_category_z_scores() -> None:
    # insult scores [1, 0, 0.5]: mean 0.5, population std sqrt((0.25 + 0.25 + 0) / 3) = 0.4082
    #   z = [1.2247, -1.2247, 0]; crimes [-1, 2]: mean 0.5, std 1.5 -> z = [-1, 1]
    # model A: z 1.2247 (harmless), -1.2247 (harmful), 1 (harmless): AUROC 1, mean z 1/3
    # model B: z 0 (harmless), -1 (harmful): AUROC 1, mean z -0.5
    by_model = evaluate_items(ITEMS, SCORES)["by_model"]
    assert by_model["A"]["auroc_within_model"] == 1.0
    assert by_model["A"]["mean_z_score"] == pytest.approx(1 / 3)
    assert by_model["B"]["mean_z_score"] == pytest.approx(-0.5)
    assert (by_model["B"]["replies"], by_model["B"]["harmful_replies"]) == (2, 1)

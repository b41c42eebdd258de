import pytest

from hair_ray.algo.routing import routing_plan, sum_routing_weights


def test_category_routing_sends_each_sample_to_its_own_model_with_weight_one():
    plan = routing_plan(["insult", "privacy_property", "insult"], "category", {})
    assert plan == {"insult": (1.0, [0, 2]), "privacy_property": (1.0, [1])}


def test_sum_routing_sends_every_sample_to_every_weighted_model():
    plan = routing_plan(["insult", "insult"], "sum", {"insult": 0.25, "ethics_morality": 0.75})
    assert plan == {"insult": (0.25, [0, 1]), "ethics_morality": (0.75, [0, 1])}
    # R_0 = 0.25 · r_insult + 0.75 · r_ethics: with r = 2 and 4, R = 0.5 + 3 = 3.5
    scores = {"insult": [2.0, 0.0], "ethics_morality": [4.0, 0.0]}
    assert sum(w * scores[c][0] for c, (w, idx) in plan.items() if 0 in idx) == 3.5


def test_sum_weights_default_to_the_mean_of_the_seven_and_zero_weights_drop_out():
    weights = sum_routing_weights(None)
    assert len(weights) == 7 and all(w == pytest.approx(1 / 7) for w in weights.values())
    assert sum_routing_weights({"insult": 1, "mental_health": 0}) == {"insult": 1.0}

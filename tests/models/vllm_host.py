"""A Ray actor that owns one vLLM engine: how the tests put vLLM where the trainer puts it."""

from __future__ import annotations

import ray

from hair_ray.models.vllm_engine import create_llm, generate


@ray.remote(num_cpus=1)
class VLLMHost:
    def __init__(self, model_path: str):
        self.llm = create_llm(model_path, dtype="float32", max_model_len=512)

    def greedy(self, prompt_token_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        outputs = generate(self.llm, prompt_token_ids, max_new_tokens=max_new_tokens, temperature=0.0)
        return [list(samples[0].token_ids) for samples in outputs]

    def sample(self, prompt_token_ids: list[list[int]], n: int, seed: int) -> list[list[dict]]:
        outputs = generate(self.llm, prompt_token_ids, max_new_tokens=16, temperature=1.0, samples_per_prompt=n, seed=seed)
        return [[{"ids": list(c.token_ids), "logprobs": list(c.logprobs)} for c in samples] for samples in outputs]

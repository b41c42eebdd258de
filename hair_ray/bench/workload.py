"""The one workload every part of a benchmark runs: the real trainer, the bare baselines and the
peer read it from here, so "the same config" is one object, written to JSON beside the results.

A step is `algo.prompts_per_step` prompts × `algo.group_size` samples of at most
`rollout.max_new_tokens` tokens. The prompts of step k are the ones hair_ray's own sampler draws
for step k (same seed), and step 1's sampling seeds are the trainer's, so the bare engine writes
exactly the samples of the trainer's first step.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hair_ray.config import RunConfig


@dataclass(frozen=True)
class Workload:
    model_name: str  # policy.name_or_path, as the config says it
    model_path: str  # the local folder it resolves to (what the processes load)
    dtype: str  # the policy's dtype: the engine's and the learner's
    precision: str  # learner.precision
    prompts: list[list[str]]  # per step, the prompt texts in order
    categories: list[list[str]]  # and their categories (what a rule reward is given)
    prompt_ids: list[list[list[int]]]  # the same, through the chat template
    group_size: int
    max_new_tokens: int
    temperature: float
    top_p: float
    first_seed: int  # generation seed of step 1's first prompt
    kl_coef: float
    clip_low: float
    clip_high: float
    learning_rate: float
    samples_per_micro_batch: int
    gradient_checkpointing: bool
    threads: int  # torch threads of the learner, and of every bare baseline
    reward_function: str | None
    seed: int
    engine: dict[str, Any] = field(default_factory=dict)  # the rollout workers' create_llm settings

    @property
    def samples_per_step(self) -> int:
        return len(self.prompts[0]) * self.group_size

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> Workload:
        return cls(**json.loads(path.read_text()))


def workload_of(config: RunConfig, records: list[dict], tokenizer, steps: int, threads: int) -> Workload:
    """The workload of `steps` steps of `config` on the stage-A `records`."""
    from hair_ray.models.loading import chat_prompt_ids
    from hair_ray.models.registry import resolve_model_path
    from hair_ray.train.launcher import max_response_tokens
    from hair_ray.train.sampler import run_sampler
    from hair_ray.train.trainer import generation_seed
    from hair_ray.workers.rollout import engine_settings

    sampler = run_sampler(config, records)
    batches = [sampler.next(config.algo.prompts_per_step) for _ in range(steps)]
    prompts = [[r["prompt"] for r in batch] for batch in batches]
    settings = engine_settings(config, max_model_len=config.rollout.max_prompt_tokens + max_response_tokens(config))
    settings.pop("backend")
    algo, learner = config.algo, config.learner
    return Workload(
        model_name=config.policy.name_or_path,
        model_path=resolve_model_path(config.policy.name_or_path),
        dtype=config.policy.dtype,
        precision=learner.precision,
        prompts=prompts,
        categories=[[r["category"] for r in batch] for batch in batches],
        prompt_ids=[chat_prompt_ids(tokenizer, batch, config.rollout.max_prompt_tokens) for batch in prompts],
        group_size=algo.group_size,
        max_new_tokens=config.rollout.max_new_tokens,
        temperature=config.rollout.temperature,
        top_p=config.rollout.top_p,
        first_seed=generation_seed(config.seed, 0),
        kl_coef=algo.kl_coef,
        clip_low=algo.clip_low,
        clip_high=algo.clip_high,
        learning_rate=learner.learning_rate,
        samples_per_micro_batch=learner.samples_per_micro_batch,
        gradient_checkpointing=learner.gradient_checkpointing,
        threads=threads,
        reward_function=config.reward.function,
        seed=config.seed,
        engine=settings,
    )

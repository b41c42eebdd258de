"""Generation for evaluation through the rollout engine code: `RolloutWorker` actors (vLLM, or
HF generate), the prompts split over several engines, greedy unless asked otherwise.

`hair-ray eval` starts its own engines per policy (`start_engines`); evaluation inside `train`
passes the run's rollout workers, which hold the current weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hair_ray.train.rollout_group import split_rows


def start_engines(
    model_path: str,
    settings: dict[str, Any],
    *,
    num_engines: int,
    seed: int = 0,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    timeout_s: float = 900.0,
) -> list:
    """`num_engines` RolloutWorker actors on one policy, started at once; returns when all are up.
    `settings`: the engine's arguments (`hair_ray.workers.rollout.engine_settings`)."""
    import ray

    from hair_ray.workers.rollout import RolloutWorker

    actor_cls = ray.remote(RolloutWorker)
    workers = [
        actor_cls.options(num_cpus=num_cpus, num_gpus=num_gpus).remote(model_path, seed=seed + i, **settings)
        for i in range(num_engines)
    ]
    try:
        ray.get([w.version.remote() for w in workers], timeout=timeout_s)  # type: ignore[union-attr]  # actor methods
    except Exception:
        stop_engines(workers)
        raise
    return workers


def stop_engines(workers: Sequence) -> None:
    import ray

    for worker in workers:
        ray.kill(worker)


def generate(
    workers: Sequence,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    samples_per_prompt: int = 1,
    seed: int = 0,
    timeout_s: float = 900.0,
) -> list[list[dict[str, Any]]]:
    """For each prompt, `samples_per_prompt` samples (token_ids, finish_reason, ...), in order.
    Each share's seed is offset by its first row, so a prompt gets the same samples whatever
    the number of engines (greedy needs no seed)."""
    import ray

    shares = split_rows(len(prompt_ids), len(workers))
    refs = [
        workers[w].generate.remote(
            prompt_ids[rows],
            samples_per_prompt=samples_per_prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed + rows.start,
        )
        for w, rows in enumerate(shares)
    ]
    return [group for part in ray.get(refs, timeout=timeout_s) for group in part]


def continuation_loglik(
    workers: Sequence, prompt_ids: list[list[int]], continuation_ids: list[list[int]], *, timeout_s: float = 900.0
) -> list[float | None]:
    """Mean per-token log-likelihood of each continuation after its prompt (None when empty)."""
    import ray

    shares = split_rows(len(prompt_ids), len(workers))
    refs = [workers[w].continuation_logprobs.remote(prompt_ids[rows], continuation_ids[rows]) for w, rows in enumerate(shares)]
    per_token = [row for part in ray.get(refs, timeout=timeout_s) for row in part]
    return [sum(row) / len(row) if row else None for row in per_token]

"""ShadowRewardWorker: the Ray actor that serves one category's frozen reward model (DESIGN.md §3).

Thin by design: it loads a folder written by `hair-ray reward train` (the metadata is checked:
the category and, when given, the backbone must match) and scores (prompt, response) batches
with :func:`hair_ray.models.reward_model.score_pairs`. Routing, weighting and the cache of
demonstration rewards live in :mod:`hair_ray.workers.reward_router`, on the driver, so a
restarted worker loses nothing but its model, which it reloads from the folder.

The plain class works in-process too (evaluation scripts, debugging); `create_reward_worker`
starts it as an actor with `max_restarts` / `max_task_retries`, so a killed worker comes back
and the calls it had in flight run again.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["ShadowRewardWorker", "create_reward_worker"]


class ShadowRewardWorker:
    """One category's reward model. `device="auto"`: the GPU Ray gave the actor, else the CPU."""

    def __init__(
        self,
        folder: str,
        category: str,
        *,
        backbone: str | None = None,
        samples_per_batch: int = 32,
        max_length_tokens: int | None = None,
        device: str = "auto",
    ):
        import torch

        from hair_ray.models.reward_model import load_reward_model

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        loaded = load_reward_model(folder, category=category, backbone=backbone, device=device)
        self._model, self._tokenizer, self._meta = loaded.model, loaded.tokenizer, loaded.metadata
        self._category = category
        self._folder = str(folder)
        self._samples_per_batch = samples_per_batch
        self._max_length_tokens = max_length_tokens or self._meta.max_length_tokens
        self._scored = 0

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        """r(prompt, response) for each pair, in input order."""
        from hair_ray.models.reward_model import score_pairs

        scores = score_pairs(
            self._model, self._tokenizer, list(prompts), list(responses),
            max_length_tokens=self._max_length_tokens, batch_size=self._samples_per_batch,
        )
        self._scored += len(scores)
        return scores

    def info(self) -> dict[str, Any]:
        """Which model this is, the process serving it (a restart changes `pid`), and its load."""
        return {
            "category": self._category,
            "folder": self._folder,
            "backbone": self._meta.backbone,
            "head": self._meta.head,
            "training_data_hash": self._meta.training_data_hash,
            "pid": os.getpid(),
            "scored": self._scored,
        }


def create_reward_worker(
    folder: str,
    category: str,
    *,
    backbone: str | None = None,
    samples_per_batch: int = 32,
    num_cpus: float = 0.25,
    num_gpus: float = 0.0,
    max_restarts: int = 3,
    max_task_retries: int = 3,
    **options: Any,
):
    """Start a `ShadowRewardWorker` actor and return its handle.

    `max_task_retries` makes Ray resubmit the calls a dead worker had in flight once it has
    restarted, so callers just see a slower `ray.get`. Fractional `num_gpus` lets the seven
    small models share one GPU. Further `options` go to `ActorClass.options` (a placement group
    scheduling strategy, a name).
    """
    import ray

    actor_cls = ray.remote(ShadowRewardWorker)
    return actor_cls.options(
        num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_task_retries=max_task_retries, **options
    ).remote(folder, category, backbone=backbone, samples_per_batch=samples_per_batch)

"""ShadowRewardWorker: the Ray actor that serves frozen category reward models (docs/architecture.md §2).

Thin by design: it loads folders written by `hair-ray reward train` (the metadata is checked:
the category and, when given, the backbone must match) and scores (prompt, response) batches
with :func:`hair_ray.models.reward_model.score_pairs`. Routing, weighting and the cache of
demonstration rewards live in :mod:`hair_ray.train.reward_router`, on the driver, so a
restarted worker loses nothing but its models, which it reloads from the folders.

A worker serves one category (the default layout: seven actors) or several (`reward.colocate`:
all seven in one actor). Colocation shares one process, so one set of imports and one
allocator: seven MiniLM models take ~1 GB in one actor against ~5 GB in seven on CPU.

The plain class works in-process too (evaluation scripts, debugging); `create_reward_worker`
starts it as an actor with `max_restarts` / `max_task_retries`, so a killed worker comes back
and the calls it had in flight run again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["ShadowRewardWorker", "create_reward_worker"]


class ShadowRewardWorker:
    """The reward models of `folders` (category -> folder). `device="auto"`: the GPU Ray gave
    the actor, else the CPU."""

    def __init__(
        self,
        folders: Mapping[str, str],
        *,
        backbone: str | None = None,
        samples_per_batch: int = 32,
        max_length_tokens: int | None = None,
        device: str = "auto",
    ):
        import torch

        from hair_ray.models.reward_model import load_reward_model

        if not folders:
            raise ValueError("a reward worker needs at least one category's folder")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._folders = {category: str(folder) for category, folder in folders.items()}
        self._models = {
            category: load_reward_model(folder, category=category, backbone=backbone, device=device)
            for category, folder in self._folders.items()
        }
        self._samples_per_batch = samples_per_batch
        self._max_length_tokens = max_length_tokens
        self._scored = {category: 0 for category in self._models}

    def score(self, category: str, prompts: list[str], responses: list[str]) -> list[float]:
        """r_category(prompt, response) for each pair, in input order."""
        from hair_ray.models.reward_model import score_pairs

        loaded = self._models.get(category)
        if loaded is None:
            raise KeyError(f"this reward worker serves {', '.join(self._models)}, not {category!r}")
        scores = score_pairs(
            loaded.model,
            loaded.tokenizer,
            list(prompts),
            list(responses),
            max_length_tokens=self._max_length_tokens or loaded.metadata.max_length_tokens,
            batch_size=self._samples_per_batch,
        )
        self._scored[category] += len(scores)
        return scores

    def info(self) -> dict[str, Any]:
        """The models served, the process serving them (a restart changes `pid`), and its load."""
        return {
            "pid": os.getpid(),
            "categories": list(self._models),
            "scored": dict(self._scored),
            "models": {
                category: {
                    "folder": self._folders[category],
                    "backbone": loaded.metadata.backbone,
                    "head": loaded.metadata.head,
                    "training_data_hash": loaded.metadata.training_data_hash,
                }
                for category, loaded in self._models.items()
            },
        }


def create_reward_worker(
    folders: Mapping[str, str],
    *,
    backbone: str | None = None,
    samples_per_batch: int = 32,
    num_cpus: float = 0.25,
    num_gpus: float = 0.0,
    max_restarts: int = 3,
    max_task_retries: int = 3,
    **options: Any,
):
    """Start a `ShadowRewardWorker` actor over `folders` (category -> folder); return its handle.

    `max_task_retries` makes Ray resubmit the calls a dead worker had in flight once it has
    restarted, so callers just see a slower `ray.get`. Fractional `num_gpus` lets the seven
    small models share one GPU. Further `options` go to `ActorClass.options` (a placement group
    scheduling strategy, a name).
    """
    import ray

    actor_cls = ray.remote(ShadowRewardWorker)
    return actor_cls.options(
        num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_task_retries=max_task_retries, **options
    ).remote(dict(folders), backbone=backbone, samples_per_batch=samples_per_batch)

"""RewardRouter: send each sample to its category's reward model, gather in input order.

Two routings (docs/architecture.md §1, stage C step 1):
- `category` (the paper's choice): sample i is scored by r_{category_i} only;
- `sum`: every sample is scored by all weighted models, R = Σ_j w_j r_j. `sum_weights` None means
  equal weights 1/7 (the mean, so the scale matches one model's); a category left out of a given
  `sum_weights` has weight 0 and needs no worker.

`workers` maps each category to the ShadowRewardWorker that serves it: seven actors, or one
actor for all seven (`reward.colocate`). Batches go out as `samples_per_batch` chunks to all
workers at once, then are gathered; a worker that dies mid-call is restarted by Ray and its
chunks retried (`max_task_retries`), so `gather` only waits longer. Each chunk's wait has a
deadline (`timeout_s`, on progress) and names its category.

Demonstration rewards r_j(x, y_demo) never change while the reward models are frozen: they are
computed once per record id and cached here, on the driver, where a worker restart cannot lose
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hair_ray.algo.routing import Routing, routing_plan, served_categories, sum_routing_weights
from hair_ray.categories import parse_category

__all__ = ["PendingScores", "RewardRouter", "start_reward_workers"]


@dataclass
class PendingScores:
    """Scoring calls in flight: (category, weight, sample indices, object ref) per chunk."""

    size: int
    chunks: list[tuple[str, float, list[int], Any]]


class RewardRouter:
    def __init__(
        self,
        workers: Mapping[str, Any],
        *,
        routing: Routing = "category",
        sum_weights: Mapping[str, float] | None = None,
        samples_per_batch: int = 32,
        timeout_s: float = 600.0,
        demonstration_field: str = "reply",
    ):
        if routing not in ("category", "sum"):
            raise ValueError(f"routing must be 'category' or 'sum', got {routing!r}")
        self.workers = {parse_category(name).value: handle for name, handle in workers.items()}
        self.routing = routing
        self.samples_per_batch = samples_per_batch
        self.timeout_s = timeout_s
        if routing == "sum":
            self.sum_weights = {parse_category(c).value: w for c, w in sum_routing_weights(sum_weights).items()}
            absent = sorted(set(self.sum_weights) - set(self.workers))
            if absent:
                raise ValueError(f"sum routing weights {', '.join(absent)} but no worker serves them")
        else:
            self.sum_weights = {}
        self.demonstration_field = demonstration_field  # as trained: reward.irl.demonstration_field
        self._demo_cache: dict[str, float] = {}

    @property
    def actors(self) -> list[Any]:
        """The distinct worker actors (a colocated worker serves several categories)."""
        return list(dict.fromkeys(self.workers.values()))

    def wait_ready(self) -> dict[str, dict[str, Any]]:
        """Each category's model info; raises early (naming the categories) if a worker failed to load."""
        import ray
        from ray.exceptions import RayActorError

        infos = {}
        for actor in self.actors:
            served = [category for category, handle in self.workers.items() if handle == actor]
            try:
                info = ray.get(actor.info.remote(), timeout=self.timeout_s)
            except RayActorError as exc:
                raise RuntimeError(f"the reward worker of {', '.join(served)} could not start: {exc}") from exc
            infos.update(info["models"])
        return infos

    # ----------------------------------------------------------------------------- scoring

    def score_async(self, prompts: Sequence[str], responses: Sequence[str], categories: Sequence[str]) -> PendingScores:
        """Send the calls and return at once; `gather` collects them (overlap with other work)."""
        if not len(prompts) == len(responses) == len(categories):
            raise ValueError(
                f"prompts, responses and categories need one entry per sample; got "
                f"{len(prompts)}, {len(responses)} and {len(categories)}"
            )
        names = list(categories)  # sum routing reads no category
        if self.routing == "category":
            names = [parse_category(label).value for label in categories]
            for index, category in enumerate(names):
                if category not in self.workers:
                    raise KeyError(
                        f"sample {index} has category {category!r}, which no reward worker serves "
                        f"(serving: {', '.join(sorted(self.workers))})"
                    )
        plan = routing_plan(names, self.routing, self.sum_weights)
        chunks = []
        for category, (weight, indices) in plan.items():
            # Similar lengths in one chunk: less padding (the scores go back by index anyway).
            indices = sorted(indices, key=lambda i: len(prompts[i]) + len(responses[i]))
            for start in range(0, len(indices), self.samples_per_batch):
                part = indices[start : start + self.samples_per_batch]
                ref = self.workers[category].score.remote(category, [prompts[i] for i in part], [responses[i] for i in part])
                chunks.append((category, weight, part, ref))
        return PendingScores(size=len(prompts), chunks=chunks)

    def gather(self, pending: PendingScores) -> list[float]:
        """Wait for every chunk (through worker restarts) and put the scores in input order."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        scores = [0.0] * pending.size
        for category, weight, indices, ref in pending.chunks:
            try:
                # The deadline is per chunk, i.e. on progress: a big evaluation may take far
                # longer than timeout_s in all, but no single chunk may stall that long.
                values = ray.get(ref, timeout=self.timeout_s)
            except GetTimeoutError:
                raise TimeoutError(
                    f"reward worker {category!r} returned nothing for reward.score_timeout_s = "
                    f"{self.timeout_s:g} s (a hung or overloaded worker; restarts included)"
                ) from None
            except RayActorError as exc:
                raise RuntimeError(
                    f"reward worker {category!r} died and was not restarted (reward.max_restarts exhausted?): {exc}"
                ) from exc
            for index, value in zip(indices, values):
                scores[index] += weight * value
        return scores

    def score(self, prompts: Sequence[str], responses: Sequence[str], categories: Sequence[str]) -> list[float]:
        return self.gather(self.score_async(prompts, responses, categories))

    # ------------------------------------------------------------------ demonstration rewards

    def demonstration_rewards(self, records: Sequence[Mapping[str, Any]]) -> list[float]:
        """r(prompt, demonstration) per record ({id, category, prompt, text/reply}), cached by id."""
        todo: dict[str, Mapping[str, Any]] = {}
        for record in records:
            key = str(record["id"])
            if key not in self._demo_cache:
                todo.setdefault(key, record)
        if todo:
            new = list(todo.values())
            demos = [r[self.demonstration_field] for r in new]
            values = self.score([r["prompt"] for r in new], demos, [r["category"] for r in new])
            self._demo_cache.update(zip(todo, values))
        return [self._demo_cache[str(record["id"])] for record in records]

    @property
    def cached_demonstrations(self) -> int:
        return len(self._demo_cache)


def start_reward_workers(
    reward_config: Any,
    *,
    models_dir: str | None = None,
    categories: Sequence[str] | None = None,
    benign: bool = False,
    num_cpus: float = 0.25,
    placement: Sequence[Mapping[str, Any]] | None = None,
) -> RewardRouter:
    """Start the workers of `reward.models_dir` and return a router over them: one per
    category, or one for all (`reward.colocate`), which reserves `num_cpus` (and
    `reward.num_gpus_per_model`) once per model it hosts.

    `reward_config` is a :class:`hair_ray.config.RewardConfig`; `categories` defaults to all
    seven in `category` routing (and `benign` with `benign=True`: the dataset has benign prompts)
    and to the weighted ones in `sum` routing. `placement`, when
    given, holds each actor's options from the run's plan (`placement.actor_options`: its
    resources and its bundle) and replaces `num_cpus`.
    """
    from hair_ray.workers.reward import create_reward_worker

    root = Path(models_dir or reward_config.models_dir)
    if categories is None:
        categories = served_categories(reward_config.routing, reward_config.sum_weights, benign=benign)
    layout = [list(categories)] if reward_config.colocate else [[category] for category in categories]
    workers = {}
    for index, served in enumerate(layout):
        resources = (
            placement[index]
            if placement is not None
            else {
                "num_cpus": num_cpus * len(served),
                "num_gpus": reward_config.num_gpus_per_model * len(served),
            }
        )
        handle = create_reward_worker(
            {category: str(root / category) for category in served},
            backbone=reward_config.backbone.name_or_path,
            samples_per_batch=reward_config.samples_per_batch,
            max_restarts=reward_config.max_restarts,
            max_task_retries=reward_config.max_task_retries,
            **resources,
        )
        workers.update(dict.fromkeys(served, handle))
    router = RewardRouter(
        workers,
        routing=reward_config.routing,
        sum_weights=reward_config.sum_weights,
        samples_per_batch=reward_config.samples_per_batch,
        timeout_s=reward_config.score_timeout_s,
        demonstration_field=reward_config.irl.demonstration_field,
    )
    router.wait_ready()
    return router

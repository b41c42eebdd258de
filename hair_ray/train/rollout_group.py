"""The rollout workers as one group: split prompts over them, gather in order, survive a crash.

A worker that dies mid-generation is restarted by Ray (`rollout.max_restarts`); the group then
re-sends it the current weights (a restarted engine starts from the checkpoint on disk) and
retries its share of the prompts with the same seed, so the batch comes back complete.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from hair_ray.workers.weight_sync import ObjectStoreWeightSync, SharedMemoryWeightSync

log = logging.getLogger(__name__)


def split_rows(num_rows: int, num_workers: int) -> list[slice]:
    """Contiguous, near-equal shares of `num_rows` for the first workers (none empty)."""
    per_worker = -(-num_rows // num_workers)
    shares = [slice(w * per_worker, min((w + 1) * per_worker, num_rows)) for w in range(num_workers)]
    return [rows for rows in shares if rows.start < rows.stop]


@dataclass
class PendingGeneration:
    prompt_ids: list[list[int]]
    shares: list[tuple[int, slice, Any]]  # (worker index, prompt rows, object ref)
    samples_per_prompt: int
    seed: int


class RolloutGroup:
    def __init__(self, workers: list, config, *, sync: ObjectStoreWeightSync | SharedMemoryWeightSync | None = None):
        self.workers = workers
        self.config = config
        self.sync = sync or ObjectStoreWeightSync(
            bucket_bytes=int(config.rollout.sync_bucket_mib * 2**20), timeout_s=config.rollout.timeout_s
        )
        self.learners: list | None = None
        self.weights_version = 0
        self.restarts = 0

    def _call(self, worker: int, rows: slice, prompt_ids, samples_per_prompt: int, seed: int):
        rollout = self.config.rollout
        return self.workers[worker].generate.remote(
            prompt_ids[rows],
            samples_per_prompt=samples_per_prompt,
            max_new_tokens=rollout.max_new_tokens,
            temperature=rollout.temperature,
            top_p=rollout.top_p,
            seed=seed + rows.start,  # per share: the same prompts get the same samples anywhere
        )

    def generate_async(self, prompt_ids: list[list[int]], samples_per_prompt: int, seed: int) -> PendingGeneration:
        shares = [
            (worker, rows, self._call(worker, rows, prompt_ids, samples_per_prompt, seed))
            for worker, rows in enumerate(split_rows(len(prompt_ids), len(self.workers)))
        ]
        return PendingGeneration(prompt_ids, shares, samples_per_prompt, seed)

    def gather(self, pending: PendingGeneration) -> tuple[list[list[int]], list[dict]]:
        """Prompt ids, and the samples in prompt order (G consecutive samples per prompt)."""
        import ray
        from ray.exceptions import RayActorError

        samples: list[dict] = []
        for worker, rows, ref in pending.shares:
            for attempt in range(self.config.rollout.max_restarts + 1):
                try:
                    per_prompt = ray.get(ref, timeout=self.config.rollout.timeout_s)
                    break
                except RayActorError as exc:
                    if attempt == self.config.rollout.max_restarts:
                        raise RuntimeError(f"rollout worker {worker} died {attempt + 1} times: {exc}") from exc
                    log.warning("rollout worker %d died (%s); waiting for its restart, then retrying", worker, exc)
                    self.restarts += 1
                    self._resync(worker)
                    ref = self._call(worker, rows, pending.prompt_ids, pending.samples_per_prompt, pending.seed)
            for group in per_prompt:
                samples.extend(group)
        return pending.prompt_ids, samples

    def _resync(self, worker: int) -> None:
        """Wait until the restarted worker answers, then give it the current weights."""
        import ray
        from ray.exceptions import RayActorError

        deadline = time.monotonic() + self.config.rollout.timeout_s
        while True:
            try:
                ray.get(self.workers[worker].version.remote(), timeout=self.config.rollout.timeout_s)
                break
            except RayActorError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        if self.learners is not None and self.weights_version > 0:
            self.sync.sync(self.learners, [self.workers[worker]], self.weights_version)

    def sync_weights(self, learners: list, version: int):
        self.learners = learners
        self.weights_version = version
        return self.sync.sync(learners, self.workers, version)

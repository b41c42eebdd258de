"""The learner ranks as one object, as RolloutGroup is for the engines: the group splits a step's
samples into equal shares, one per rank, and every call waits with `learner.timeout_s`, naming
the rank that did not answer. A rank's own error comes through as Ray raised it, so its class
decides how `hair-ray` reports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hair_ray.waiting import wait_all

CHECKPOINT_TAG = "learner"  # DeepSpeed's tag inside a checkpoint's learner/ folder


class LearnerGroup:
    def __init__(self, actors: list, timeout_s: float):
        self.actors = actors
        self.timeout_s = timeout_s
        self.ranks = [f"learner rank {rank}" for rank in range(len(actors))]

    def _wait(self, refs: list, what: str) -> list:
        return wait_all(refs, self.ranks, self.timeout_s, what, name_failures=False)

    def update(self, samples: list[dict[str, Any]], step: int) -> dict[str, float]:
        """One GRPO-S update on `samples` (each rank its contiguous share); rank 0's metrics,
        which the learner reduces over ranks."""
        share = len(samples) // len(self.actors)
        refs = [actor.update.remote(samples[rank * share : (rank + 1) * share]) for rank, actor in enumerate(self.actors)]
        return self._wait(refs, f"update at step {step}")[0]

    def save(self, folder: Path) -> None:
        self._wait([actor.save_checkpoint.remote(str(folder), CHECKPOINT_TAG) for actor in self.actors], f"save {folder}")

    def load(self, folder: Path) -> None:
        self._wait([actor.load_checkpoint.remote(str(folder), CHECKPOINT_TAG) for actor in self.actors], f"load {folder}")

    def shutdown(self, timeout_s: float = 120.0) -> None:
        """Tear down DeepSpeed and the process group in every rank (ZeRO-3 aborts at exit otherwise)."""
        wait_all([actor.shutdown.remote() for actor in self.actors], self.ranks, timeout_s, "shut down the learner group")

"""Weight sync from the learner to the rollout workers, behind one small interface.

Strategies:
- `ObjectStoreWeightSync` (CPU, and the fallback everywhere): the learner's rank 0 gathers the
  full weights (ZeRO-3 shards included) into CPU buckets of bounded size, puts them in Ray's
  object store once, and every rollout worker streams them into its engine.
- NCCL broadcast (GPU, split placement) uses `WeightSyncExtension.hair_ray_init_weight_group` /
  `hair_ray_receive_weights` on the vLLM side; it is exercised by the GPU check script.

Every wait has a timeout, and a timeout names the worker that did not answer: a hang is a bug.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hair_ray.errors import ServiceError
from hair_ray.models.weight_names import weights_that_travel
from hair_ray.waiting import wait_all


class WeightSyncError(ServiceError):
    """A weight sync did not complete; the message names the peer at fault."""


@dataclass(frozen=True)
class SyncStats:
    version: int
    num_tensors: int
    num_bytes: int
    seconds: float


def plan_buckets(named_sizes: Iterable[tuple[str, int]], bucket_bytes: int) -> list[list[str]]:
    """Group tensor names, in order, into buckets of at most `bucket_bytes` (a tensor larger than
    the limit gets a bucket of its own), so peak memory during a sync stays bounded."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    buckets: list[list[str]] = []
    current: list[str] = []
    used = 0
    for name, size in named_sizes:
        if current and used + size > bucket_bytes:
            buckets.append(current)
            current, used = [], 0
        current.append(name)
        used += size
    if current:
        buckets.append(current)
    return buckets


class ObjectStoreWeightSync:
    """Learner rank 0 → object store → every rollout worker."""

    def __init__(self, bucket_bytes: int = 256 * 2**20, timeout_s: float = 300.0):
        self.bucket_bytes = bucket_bytes
        self.timeout_s = timeout_s

    def sync(self, learners: Sequence, rollout_workers: Sequence, version: int) -> SyncStats:
        """Every learner rank's `export_weights(bucket_bytes)` runs (under ZeRO-3 gathering is a
        collective); rank 0 returns the [{name: CPU tensor}] buckets. Every rollout worker's
        `load_weights(buckets, version)` returns (num_tensors, num_bytes)."""
        import ray

        start = time.perf_counter()
        exports = [learner.export_weights.remote(self.bucket_bytes) for learner in learners]
        # Wait for readiness only: the driver never pulls the weights, each worker does.
        ready, late = ray.wait(exports, num_returns=len(exports), timeout=self.timeout_s)
        if late:
            ranks = ", ".join(f"learner rank {exports.index(ref)}" for ref in late)
            raise WeightSyncError(f"gather weights v{version}: no answer within {self.timeout_s:g} s from {ranks}")
        names = [f"rollout worker {i}" for i in range(len(rollout_workers))]
        loads = [worker.load_weights.remote(exports[0], version) for worker in rollout_workers]
        results = wait_all(loads, names, self.timeout_s, f"load weights v{version}", error=WeightSyncError)
        num_tensors, num_bytes = results[0]
        return SyncStats(version, num_tensors, num_bytes, time.perf_counter() - start)


def state_dict_buckets(model, bucket_bytes: int) -> list[dict]:
    """The model's weights as CPU buckets for `load_weights`, in parameter order.

    Tied weights travel once: a tied lm_head is the embedding, and vLLM's loader skips it.
    """
    state = dict(weights_that_travel(model.state_dict().items(), model.config))
    sizes = [(name, t.numel() * t.element_size()) for name, t in state.items()]
    return [{name: state[name].detach().to("cpu").contiguous() for name in names} for names in plan_buckets(sizes, bucket_bytes)]

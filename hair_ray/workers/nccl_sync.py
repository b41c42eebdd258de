"""NCCL weight sync (GPU): the learner's rank 0 broadcasts each tensor straight into vLLM.

The group is small and private: learner rank 0 is rank 0, and every vLLM worker (each
tensor-parallel rank of each rollout worker) joins as rank 1.. through
`WeightSyncExtension.hair_ray_init_weight_group`. It is a vLLM `StatelessProcessGroup` (a TCP
store hosted by rank 0) carrying a `PyNcclCommunicator`, so it never touches the learner's own
torch.distributed group (the ZeRO group), as in vLLM's RLHF example and OpenRLHF / verl.

One sync: the driver fetches the names, dtypes and shapes from rank 0, then at the same time
asks every learner rank to broadcast (under ZeRO-3 each parameter is gathered first, which is a
collective of the learner group; only rank 0 sends) and every rollout worker to receive (its
vLLM workers allocate each tensor, receive it and stream it into `reload_weights`). Every wait
has a deadline, and the first peer that fails ends it with that peer's error; after a failure or
a timeout the group is wedged and must be rebuilt (restart the actors), never reused.

NCCL refuses two ranks of one communicator on one GPU ("Duplicate GPU detected") before NCCL
2.30; from 2.30, `NCCL_MULTI_RANK_GPU_ENABLE=1` lets them share it (experimental). With
colocated placement, prefer the object-store path (`ObjectStoreWeightSync`) unless the NCCL in
use allows that.

The actor classes here extend `LearnerWorker` and `RolloutWorker` with the NCCL methods; start
them exactly like their bases (`ray.remote(NcclLearnerWorker)`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from hair_ray.models.weight_names import full_numel, weights_that_travel
from hair_ray.waiting import wait_all
from hair_ray.workers.learner import LearnerWorker, _gathered, node_address
from hair_ray.workers.rollout import RolloutWorker
from hair_ray.workers.weight_sync import SyncStats, WeightSyncError, plan_buckets


def dtype_name(dtype: torch.dtype) -> str:
    """`torch.bfloat16` -> "bfloat16": what `hair_ray_receive_weights` expects."""
    return str(dtype).removeprefix("torch.")


def sync_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    """The parameters that travel, in order. A tied lm_head is the embedding: vLLM's loader
    skips it, so it is not sent (as in `export_weights`)."""
    return weights_that_travel(model.named_parameters(), getattr(model, "config", None))


def full_shape(param) -> list[int]:
    return list(getattr(param, "ds_shape", param.shape))  # ZeRO-3 params are empty placeholders


class NcclWeightSender:
    """Rank 0's end of the group: hosts the rendezvous and broadcasts tensors from its GPU."""

    def __init__(self, host: str, port: int, world_size: int, device: torch.device | int | None = None, timeout_s: float = 300.0):
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        if world_size < 2:
            raise ValueError(f"an NCCL weight group needs the sender and at least one receiver, got world_size {world_size}")
        if device is None:
            device = torch.cuda.current_device()  # a Ray actor sees only its own GPU(s)
        self.device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        group = StatelessProcessGroup.create(host=host, port=port, rank=0, world_size=world_size, store_timeout=int(timeout_s))
        # Blocks until every receiver has joined (ncclCommInitRank is collective).
        self.communicator = PyNcclCommunicator(group, device=self.device)

    def broadcast(self, tensors: Iterator[torch.Tensor]) -> tuple[int, int]:
        """Send each tensor, in order; returns (count, bytes). The receivers must expect the same
        sequence of shapes and dtypes."""
        count = num_bytes = 0
        stream = torch.cuda.current_stream(self.device)
        for tensor in tensors:
            tensor = tensor.to(self.device, non_blocking=True).contiguous()
            self.communicator.broadcast(tensor, src=0, stream=stream)
            count += 1
            num_bytes += tensor.numel() * tensor.element_size()
        stream.synchronize()
        return count, num_bytes


class NcclLearnerWorker(LearnerWorker):
    """A learner rank that can also feed the NCCL weight group (rank 0 sends, all gather)."""

    _nccl: NcclWeightSender | None = None

    def nccl_address(self) -> tuple[str, int]:
        return node_address()  # this node's IP and a free port for the group's TCP store

    def nccl_init(self, host: str, port: int, world_size: int, timeout_s: float = 300.0) -> None:
        if self.rank == 0:
            self._nccl = NcclWeightSender(host, port, world_size, timeout_s=timeout_s)

    def nccl_weight_metadata(self, send_dtype: str | None = None) -> tuple[list[str], list[str], list[list[int]]]:
        named = sync_parameters(self.engine.module)
        dtypes = [send_dtype or dtype_name(p.dtype) for _, p in named]
        return [n for n, _ in named], dtypes, [full_shape(p) for _, p in named]

    def nccl_broadcast(self, bucket_bytes: int, send_dtype: str | None = None) -> tuple[int, int]:
        """Every rank calls this (ZeRO-3 gathers are collective); rank 0 sends bucket by bucket,
        so at most one bucket of gathered parameters exists at a time."""
        named = dict(sync_parameters(self.engine.module))
        dtype = getattr(torch, send_dtype) if send_dtype else None
        sizes = [(n, full_numel(p) * p.element_size()) for n, p in named.items()]
        count = num_bytes = 0
        for names in plan_buckets(sizes, bucket_bytes):
            params = [named[n] for n in names]
            with _gathered(params, self.learner_cfg.zero_stage):
                if self.rank == 0:
                    if self._nccl is None:
                        raise WeightSyncError("learner rank 0 has no NCCL weight group: call nccl_init first")
                    c, b = self._nccl.broadcast(p.detach().to(dtype) if dtype else p.detach() for p in params)
                    count, num_bytes = count + c, num_bytes + b
        return count, num_bytes


class NcclRolloutWorker(RolloutWorker):
    """A rollout worker whose vLLM workers can join the NCCL weight group and receive from it."""

    def nccl_init(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        if self.backend != "vllm":
            raise ValueError("NCCL weight sync needs rollout.backend = vllm")
        self.engine.collective_rpc("hair_ray_init_weight_group", args=(host, port, rank_offset, world_size))

    def nccl_receive(self, names: list[str], dtypes: list[str], shapes: list[list[int]], version: int) -> int:
        counts = self.engine.collective_rpc("hair_ray_receive_weights", args=(names, dtypes, shapes))
        self.engine.reset_prefix_cache()  # cached keys/values came from the old weights
        self.weights_version = version
        return int(counts[0])

    def close(self) -> None:
        """Shut the engine down (its GPU memory is freed before the actor is killed)."""
        import gc

        engine, self.engine = self.engine, None
        shutdown = getattr(getattr(engine, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()
        del engine
        gc.collect()


class NcclWeightSync:
    """Learner rank 0 → NCCL broadcast → every vLLM worker; same interface as ObjectStoreWeightSync."""

    def __init__(
        self,
        tensor_parallel_size: int = 1,
        bucket_bytes: int = 256 * 2**20,
        timeout_s: float = 300.0,
        send_dtype: str | None = None,
    ):
        self.tp = tensor_parallel_size
        self.bucket_bytes = bucket_bytes
        self.timeout_s = timeout_s
        self.send_dtype = send_dtype  # e.g. "bfloat16": the engines' dtype halves fp32 traffic
        self.ready = False

    def setup(self, learners: Sequence, rollout_workers: Sequence) -> float:
        """Form the group (all members at once: each side blocks until the others join).
        Returns the seconds it took."""
        import ray

        start = time.perf_counter()
        host, port = ray.get(learners[0].nccl_address.remote(), timeout=self.timeout_s)
        world_size = 1 + len(rollout_workers) * self.tp
        refs = [learner.nccl_init.remote(host, port, world_size, self.timeout_s) for learner in learners]
        refs += [worker.nccl_init.remote(host, port, 1 + i * self.tp, world_size) for i, worker in enumerate(rollout_workers)]
        owners = [f"learner rank {r}" for r in range(len(learners))] + [
            f"rollout worker {i}" for i in range(len(rollout_workers))
        ]
        wait_all(refs, owners, self.timeout_s, "form the NCCL weight group", error=WeightSyncError)
        self.ready = True
        return time.perf_counter() - start

    def sync(self, learners: Sequence, rollout_workers: Sequence, version: int) -> SyncStats:
        import ray

        if not self.ready:
            self.setup(learners, rollout_workers)
        start = time.perf_counter()
        names, dtypes, shapes = ray.get(learners[0].nccl_weight_metadata.remote(self.send_dtype), timeout=self.timeout_s)
        sends = [learner.nccl_broadcast.remote(self.bucket_bytes, self.send_dtype) for learner in learners]
        receives = [worker.nccl_receive.remote(names, dtypes, shapes, version) for worker in rollout_workers]
        owners = [f"learner rank {r}" for r in range(len(learners))] + [
            f"rollout worker {i}" for i in range(len(rollout_workers))
        ]
        results: list[Any] = wait_all(sends + receives, owners, self.timeout_s, f"NCCL sync v{version}", error=WeightSyncError)
        num_tensors, num_bytes = results[0]
        received = results[len(learners) :]
        if any(r != num_tensors for r in received):
            raise WeightSyncError(f"NCCL sync v{version}: sent {num_tensors} tensors, the workers received {received}")
        return SyncStats(version, num_tensors, num_bytes, time.perf_counter() - start)

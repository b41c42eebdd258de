"""Weight sync from the learner to the rollout workers, behind one small interface.

Strategies (`rollout.weight_sync`; `auto` picks per placement, see `choose_weight_sync`):
- `SharedMemoryWeightSync` (learner rank 0 and every rollout worker on the driver's node): rank 0
  copies each weight into one file in /dev/shm, laid out once (`shared_layout`); the engines
  read views of the same pages straight into vLLM's in-place reload. One memcpy a tensor on
  each side, nothing pickled, no object store, no files written per bucket.
- `ObjectStoreWeightSync` (across nodes, and the fallback everywhere): the learner's rank 0
  gathers the full weights (ZeRO-3 shards included) into CPU buckets of bounded size, puts them
  in Ray's object store once, and every rollout worker streams them into its engine.
- NCCL broadcast (GPU, split placement) uses `WeightSyncExtension.hair_ray_init_weight_group` /
  `hair_ray_receive_weights` on the vLLM side; it is exercised by the GPU check script.

Every wait has a timeout, and a timeout names the worker that did not answer: a hang is a bug.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch

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

    def close(self) -> None:
        """Nothing to release: the object store frees the buckets once no one holds them."""


def state_dict_buckets(model, bucket_bytes: int) -> list[dict]:
    """The model's weights as CPU buckets for `load_weights`, in parameter order.

    Tied weights travel once: a tied lm_head is the embedding, and vLLM's loader skips it.
    """
    state = dict(weights_that_travel(model.state_dict().items(), model.config))
    sizes = [(name, t.numel() * t.element_size()) for name, t in state.items()]
    return [{name: state[name].detach().to("cpu").contiguous() for name in names} for names in plan_buckets(sizes, bucket_bytes)]


# -- shared memory ------------------------------------------------------------------------------

ALIGN_BYTES = 64  # every tensor starts on a cache line (and on its dtype's alignment)


class SharedTensor(NamedTuple):
    name: str
    dtype: str  # torch dtype name, e.g. "float32"
    shape: tuple[int, ...]
    offset: int  # bytes from the start of the shared file


def shared_layout(tensors: Iterable[tuple[str, torch.dtype, Sequence[int]]]) -> list[SharedTensor]:
    """Where each (name, dtype, shape) lies in the shared file: in order, each aligned."""
    layout, offset = [], 0
    for name, dtype, shape in tensors:
        layout.append(SharedTensor(name, str(dtype).removeprefix("torch."), tuple(int(d) for d in shape), offset))
        offset += -(-_nbytes(layout[-1]) // ALIGN_BYTES) * ALIGN_BYTES
    return layout


def _nbytes(entry: SharedTensor) -> int:
    numel = 1
    for dim in entry.shape:
        numel *= dim
    return numel * getattr(torch, entry.dtype).itemsize


def layout_bytes(layout: Sequence[SharedTensor]) -> int:
    return max((entry.offset + _nbytes(entry) for entry in layout), default=0)


def map_shared(path: str, num_bytes: int) -> torch.Tensor:
    """The file's bytes as one uint8 tensor that every process mapping it shares (created, at
    that size, when missing)."""
    return torch.from_file(path, shared=True, size=max(num_bytes, 1), dtype=torch.uint8)


def shared_views(buffer: torch.Tensor, layout: Sequence[SharedTensor]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor viewing its bytes in `buffer`): no copy."""
    for entry in layout:
        raw = buffer[entry.offset : entry.offset + _nbytes(entry)]
        yield entry.name, raw.view(getattr(torch, entry.dtype)).view(entry.shape)


def read_shared(path: str, layout: Sequence[Sequence]) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights a learner wrote into `path`, as views, from a layout that crossed a process
    boundary (Ray or vLLM's rpc hand the entries over as plain sequences)."""
    entries = [SharedTensor(*entry) for entry in layout]
    return shared_views(map_shared(path, layout_bytes(entries)), entries)


class SharedMemoryWeightSync:
    """Learner rank 0 → one shared-memory file → every rollout worker on the same node."""

    def __init__(self, bucket_bytes: int = 256 * 2**20, timeout_s: float = 300.0, folder: str | None = None):
        self.bucket_bytes = bucket_bytes
        self.timeout_s = timeout_s
        # /dev/shm is memory: the run removes its folder when it ends (`close`), and a run killed
        # before it could is cleaned up by the next one (the pid in the name tells whose it was).
        parent = folder or shm_dir() or tempfile.gettempdir()
        remove_orphaned_folders(parent)
        self.folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{_pid_namespace()}_{os.getpid()}_", dir=parent)
        self.path = os.path.join(self.folder, "weights.bin")

    def sync(self, learners: Sequence, rollout_workers: Sequence, version: int) -> SyncStats:
        start = time.perf_counter()
        writes = [learner.write_shared_weights.remote(self.path, self.bucket_bytes) for learner in learners]
        ranks = [f"learner rank {rank}" for rank in range(len(learners))]
        layout = wait_all(writes, ranks, self.timeout_s, f"write weights v{version}", error=WeightSyncError)[0]
        names = [f"rollout worker {i}" for i in range(len(rollout_workers))]
        loads = [worker.load_shared_weights.remote(self.path, layout, version) for worker in rollout_workers]
        results = wait_all(loads, names, self.timeout_s, f"load weights v{version}", error=WeightSyncError)
        num_tensors, num_bytes = results[0]
        return SyncStats(version, num_tensors, num_bytes, time.perf_counter() - start)

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def shm_dir() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


_FOLDER_PREFIX = "hair_ray_weights_"


def remove_orphaned_folders(parent: str) -> list[str]:
    """Remove the weight folders that runs of this user left behind when they were killed
    (`hair_ray_weights_<pid namespace>_<pid>_*` whose process no longer exists); returns what was
    removed.

    Left alone: another user's folders, those of runs still alive, and those made in another pid
    namespace (containers that share /dev/shm, e.g. `docker run --ipc=host`, cannot see each
    other's processes, so a pid there says nothing).
    """
    removed = []
    namespace = _pid_namespace()
    for entry in os.scandir(parent):
        if not entry.name.startswith(_FOLDER_PREFIX) or not entry.is_dir(follow_symlinks=False):
            continue
        owner_namespace, _, rest = entry.name[len(_FOLDER_PREFIX) :].partition("_")
        pid = rest.split("_", 1)[0]
        if owner_namespace != namespace or not pid.isdigit() or entry.stat(follow_symlinks=False).st_uid != os.getuid():
            continue
        if _process_exists(int(pid)):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(entry.path)
    return removed


def _pid_namespace() -> str:
    """This process's pid namespace (the inode of /proc/self/ns/pid), "0" where there is none."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "0"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: the check only, nothing is delivered
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, but someone else's
    return True


WeightSyncKind = Literal["auto", "object_store", "shared_memory"]


def choose_weight_sync(setting: WeightSyncKind, driver_node: str, actor_nodes: Sequence[str]) -> str:
    """`auto`: shared memory when the learner ranks and the rollout workers all run on the
    driver's node (one machine: the file is visible to all), the object store otherwise."""
    if setting != "auto":
        return setting
    return "shared_memory" if all(node == driver_node for node in actor_nodes) else "object_store"


def create_weight_sync(kind: str, bucket_bytes: int, timeout_s: float) -> ObjectStoreWeightSync | SharedMemoryWeightSync:
    if kind == "shared_memory":
        return SharedMemoryWeightSync(bucket_bytes, timeout_s)
    if kind == "object_store":
        return ObjectStoreWeightSync(bucket_bytes, timeout_s)
    raise ValueError(f"rollout.weight_sync must be auto, object_store or shared_memory, got {kind!r}")

"""Methods mixed into every vLLM worker (`worker_extension_cls`) so the trainer can push weights.

vLLM runs its model in worker processes the Ray actor does not own; `LLM.collective_rpc(name)`
calls these methods there by name, which needs no insecure pickling of callables. Three ways in:

- shared memory: the learner's rank 0 wrote every weight into one /dev/shm file; the workers
  map it and reload from views of it (one machine).
- files: the rollout actor writes the buckets it got from the object store as safetensors files
  (in /dev/shm where it exists) and the workers stream them into the model (across nodes).
- NCCL: the workers join a small process group with the learner's rank 0 and receive each
  tensor by broadcast (GPU, split placement), as OpenRLHF and verl do.

All end in vLLM's in-place `reload_weights`, which re-runs the per-layer post-processing
(repacking for the CPU kernels, quantisation) for the layers it touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from hair_ray.models.weight_names import ties_lm_head


class WeightSyncExtension:
    """Mixed into vLLM's Worker class; `self` is the vLLM worker."""

    if TYPE_CHECKING:
        # What the vLLM Worker provides, declared for the type checker only: at run time vLLM
        # refuses an extension class that has an attribute of the Worker's own.
        rank: int
        device: torch.device
        model_runner: Any

        def reload_weights(self, *, weights_iterator: Iterator[tuple[str, torch.Tensor]]) -> None: ...

    def hair_ray_load_weight_files(self, paths: list[str]) -> int:
        from safetensors import safe_open

        def tensors() -> Iterator[tuple[str, torch.Tensor]]:
            for path in paths:
                with safe_open(path, framework="pt") as handle:
                    for name in handle.keys():  # noqa: SIM118 - safe_open has keys(), not __iter__
                        yield name, handle.get_tensor(name)

        return self._hair_ray_reload(tensors())

    def hair_ray_load_shared_weights(self, path: str, layout: list) -> int:
        """Views of the shared-memory file (`SharedMemoryWeightSync`) straight into the reload,
        which copies them into the engine's own tensors: nothing is kept pointing at the file."""
        from hair_ray.workers.weight_sync import read_shared

        return self._hair_ray_reload(read_shared(path, layout))

    def hair_ray_init_weight_group(self, host: str, port: int, rank_offset: int, world_size: int) -> None:
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        rank = rank_offset + self.rank  # the learner's rank 0 is rank 0 of this group
        group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
        self._hair_ray_nccl = PyNcclCommunicator(group, device=self.device)

    def hair_ray_receive_weights(self, names: list[str], dtypes: list[str], shapes: list[list[int]]) -> int:
        def tensors() -> Iterator[tuple[str, torch.Tensor]]:
            for name, dtype, shape in zip(names, dtypes, shapes, strict=True):
                buffer = torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
                self._hair_ray_nccl.broadcast(buffer, src=0, stream=torch.cuda.current_stream())
                yield name, buffer

        return self._hair_ray_reload(tensors())

    def _hair_ray_reload(self, weights: Iterator[tuple[str, torch.Tensor]]) -> int:
        count = 0

        def counted() -> Iterator[tuple[str, torch.Tensor]]:
            nonlocal count
            for item in weights:
                count += 1
                yield item

        self.reload_weights(weights_iterator=counted())
        _repack_tied_lm_head(self.model_runner.model)
        return count


def _repack_tied_lm_head(model) -> None:
    """With tied embeddings the checkpoint has no lm_head.weight, so reload never touches the
    lm_head layer; vLLM's CPU backend keeps a packed copy of it made at start-up, which would go
    stale. Re-running the layer's post-load step repacks it from the (shared, new) embedding."""
    lm_head = getattr(model, "lm_head", None)
    if lm_head is None or not ties_lm_head(getattr(model, "config", None)):
        return
    method = getattr(lm_head, "quant_method", None)
    if method is not None and hasattr(method, "process_weights_after_loading"):
        method.process_weights_after_loading(lm_head)

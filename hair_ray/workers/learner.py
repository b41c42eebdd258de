"""Learner: M Ray actors forming one DeepSpeed ZeRO group that performs the GRPO-S update.

Each rank holds its share of the rollout batch. For every step it (1) computes the old and
reference log-probs once, without gradients, then (2) runs `epochs_per_step` passes of
mini-batches, each split into micro-batches with gradient accumulation. The loss of every
micro-batch is normalised by the GLOBAL token (or sequence) count of its mini-batch, summed over
ranks, so the update does not depend on micro-batching or on the data-parallel size.
gloo on CPU, NCCL on GPU; ZeRO stage from the config.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

from hair_ray.algo.batching import micro_batches_per_mini_batch
from hair_ray.algo.grpo import entropy_from_logits, grpo_loss, masked_mean, masked_sum, token_logprobs
from hair_ray.algo.schedule import lr_factor
from hair_ray.config import AlgoConfig, LearnerConfig, ModelSpec
from hair_ray.models.weight_names import full_numel, full_shape, weights_that_travel
from hair_ray.workers.batch import TrainBatch, collate, micro_batches
from hair_ray.workers.memory import release_freed_memory
from hair_ray.workers.weight_sync import SharedTensor, layout_bytes

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def node_address() -> tuple[str, int]:
    """This node's address and a free port: rank 0 hosts the process group's rendezvous."""
    import ray

    return ray.util.get_node_ip_address(), free_port()


def deepspeed_config(learner: LearnerConfig, *, micro_batch: int, accumulation: int, world_size: int, on_gpu: bool) -> dict:
    bf16 = learner.precision == "bfloat16" or (learner.precision == "auto" and on_gpu)
    zero: dict[str, Any] = {"stage": learner.zero_stage}
    if learner.offload_optimizer and learner.zero_stage > 0:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": on_gpu}
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro_batch * accumulation * world_size,
        "gradient_clipping": learner.grad_clip,
        "bf16": {"enabled": bf16},
        "zero_optimization": zero,
        # We pass a torch AdamW: DeepSpeedCPUAdam would JIT-compile for ~50 s on first use.
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def lr_lambda(learner: LearnerConfig, total_steps: int):
    """The config's schedule as LambdaLR's factor function (formula: hair_ray.algo.schedule). A plain
    function, not a partial: LambdaLR then keeps nothing of it in the checkpoint's state."""

    def factor(step: int) -> float:
        return lr_factor(step, warmup_steps=learner.warmup_steps, total_steps=total_steps, schedule=learner.lr_schedule)

    return factor


class LearnerWorker:
    """One rank of the learner group. Create all ranks, then call `init` on all of them."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size
        self._engine: DeepSpeedEngine | None = None  # set by `init`
        self._shared: tuple[str, torch.Tensor] | None = None  # (path, mapped bytes) of the shared-memory sync

    @property
    def engine(self) -> DeepSpeedEngine:
        """The DeepSpeed engine `init` created."""
        assert self._engine is not None, "LearnerWorker.init has not run: no DeepSpeed engine yet"
        return self._engine

    @engine.setter
    def engine(self, engine: DeepSpeedEngine) -> None:
        self._engine = engine

    def address(self) -> tuple[str, int]:
        return node_address()

    def init(
        self,
        master: tuple[str, int],
        policy: ModelSpec,
        learner: LearnerConfig,
        algo: AlgoConfig,
        *,
        seed: int,
        optimizer_steps_total: int,
    ) -> dict:
        import deepspeed

        from hair_ray.models.loading import load_causal_lm, load_tokenizer

        # Each its own config section, as validated on the driver (pydantic models pickle whole).
        self.policy_spec, self.learner_cfg, self.algo = policy, learner, algo
        self.on_gpu = torch.cuda.is_available()
        if not self.on_gpu and self.learner_cfg.cpu_threads:
            torch.set_num_threads(self.learner_cfg.cpu_threads)
        os.environ.update(
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK="0",  # Ray gives each actor its own GPU (CUDA_VISIBLE_DEVICES)
            MASTER_ADDR=master[0],
            MASTER_PORT=str(master[1]),
        )
        deepspeed.init_distributed(dist_backend="nccl" if self.on_gpu else "gloo", auto_mpi_discovery=False)
        torch.manual_seed(seed + self.rank)

        self.tokenizer = load_tokenizer(self.policy_spec)
        dtype = torch.float32  # master weights stay fp32; DeepSpeed's bf16 mode casts compute
        model = load_causal_lm(self.policy_spec, on_gpu=self.on_gpu, dtype=dtype)
        if self.learner_cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        self.reference = None
        if self.algo.kl_coef > 0:
            ref_dtype = torch.bfloat16 if self.on_gpu and self.learner_cfg.precision != "float32" else dtype
            self.reference = load_causal_lm(self.policy_spec, on_gpu=self.on_gpu, dtype=ref_dtype).eval()
            self.reference.requires_grad_(False)
            if self.on_gpu:
                self.reference.cuda()

        micro = self.learner_cfg.samples_per_micro_batch
        self.accumulation = self._micro_batches_per_mini_batch()
        self._last_grad_norm: float | None = None  # ZeRO-0 only: see _step
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=self.learner_cfg.learning_rate, weight_decay=self.learner_cfg.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(self.learner_cfg, optimizer_steps_total))
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=optimizer,
            lr_scheduler=scheduler,
            config=deepspeed_config(
                self.learner_cfg,
                micro_batch=micro,
                accumulation=self.accumulation,
                world_size=self.world_size,
                on_gpu=self.on_gpu,
            ),
        )
        if self.world_size == 1 and self.learner_cfg.zero_stage == 0:
            # One rank has nothing to reduce, yet DeepSpeed's ZeRO-0 backward still flattens every
            # gradient into buckets, all-reduces them over the one-rank group and copies them back:
            # two passes over a model's worth of gradients each optimizer step that change no value
            # (tests/workers/test_learner.py checks the step against ZeRO-2 and two ranks). ZeRO-1/2/3
            # move gradients into their partitions on that path, so only ZeRO-0 skips it.
            self.engine.enable_backward_allreduce = False
        return {"rank": self.rank, "parameters": sum(p.numel() for p in model.parameters())}

    # -- the update ---------------------------------------------------------------------------

    def _samples_per_rank(self) -> int:
        return self.algo.prompts_per_step * self.algo.group_size // self.world_size

    def _samples_per_mini_batch_per_rank(self) -> int:
        per_rank = self._samples_per_rank()
        if self.algo.samples_per_mini_batch is None:
            return per_rank
        return max(1, self.algo.samples_per_mini_batch // self.world_size)

    def _micro_batches_per_mini_batch(self) -> int:
        return micro_batches_per_mini_batch(self._samples_per_mini_batch_per_rank(), self.learner_cfg.samples_per_micro_batch)

    def _logprobs(self, model, batch: TrainBatch, with_entropy: bool = False):
        """Token log-probs (and entropies) on the shifted positions, [N, T-1]; 0 before the
        batch's first response position."""
        device = self.engine.device
        # Only the response positions are trained, so the model computes logits from the first
        # of them on: the vocabulary projection and its log-softmax are a small model's largest
        # activations (V floats per position) and a fifth of its FLOPs, and prompts are long.
        start = batch.first_response_position()
        width = batch.response_mask.shape[1]
        logits = (
            model(
                input_ids=batch.input_ids.to(device),
                attention_mask=batch.attention_mask.to(device),
                logits_to_keep=width + 1 - start,
            )
            .logits[:, :-1]
            .float()
        )
        logp = _pad_left(token_logprobs(logits, batch.input_ids[:, start + 1 :].to(device)), start)
        entropy = None
        if with_entropy:
            with torch.no_grad():
                entropy = _pad_left(entropy_from_logits(logits), start)
        return logp, entropy

    @torch.no_grad()
    def _frozen_logprobs(self, batch: TrainBatch, *, with_old: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Old-policy (when asked) and reference log-probs for every row, [N, T-1] (0 on padding)."""
        shape = batch.response_mask.shape
        old = torch.zeros(shape, dtype=torch.float32) if with_old else None
        ref = torch.zeros(shape, dtype=torch.float32) if self.reference is not None else None
        if old is None and ref is None:
            return None, None
        self.engine.eval()
        for rows in micro_batches(len(batch), self.learner_cfg.samples_per_micro_batch):
            part = batch.rows(rows)
            width = part.response_mask.shape[1]
            if old is not None:
                old[rows, :width] = self._logprobs(self.engine, part)[0].cpu()
            if ref is not None:
                ref[rows, :width] = self._logprobs(self.reference, part)[0].cpu()
        self.engine.train()
        return old, ref

    def _global_sum(self, value: float) -> float:
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.engine.device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def _global_max(self, values: list[float]) -> list[float]:
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.engine.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def _reduce_metrics(self, sums: dict[str, float], count: int, windows: int) -> dict[str, float]:
        """Same numbers on every rank. A loss is the sum of its micro-batch shares of one global
        mean: summed over ranks, averaged over accumulation windows. Diagnostics are means over
        micro-batches, averaged over ranks."""
        import torch.distributed as dist

        summed = {"loss", "policy_loss"}
        keys = sorted(sums)
        local = [sums[k] / max(windows if k in summed else count, 1) for k in keys]
        values = torch.tensor(local, dtype=torch.float64, device=self.engine.device)
        dist.all_reduce(values)
        return {f"learner/{k}": float(v) if k in summed else float(v) / self.world_size for k, v in zip(keys, values.tolist())}

    def update(self, samples: list[dict]) -> dict[str, float]:
        """One GRPO-S update on this rank's share. Each sample: prompt_ids, response_ids, advantage."""
        batch = collate(
            [s["prompt_ids"] for s in samples],
            [s["response_ids"] for s in samples],
            [s["advantage"] for s in samples],
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0,
        )
        micro = self.learner_cfg.samples_per_micro_batch
        # π_old is the policy at the start of this update. One epoch over one mini-batch is a
        # single optimizer step, so every forward of it runs on exactly those weights: π_old is
        # that forward, detached (as TRL and verl do), and the separate pass is skipped.
        on_policy = self.algo.epochs_per_step == 1 and self._samples_per_mini_batch_per_rank() >= len(batch)
        started = time.perf_counter()
        old_all, ref_all = self._frozen_logprobs(batch, with_old=not on_policy)
        frozen_done = time.perf_counter()
        sums: dict[str, float] = {}
        count = windows = 0
        for _ in range(self.algo.epochs_per_step):
            for mini in micro_batches(len(batch), self._samples_per_mini_batch_per_rank()):
                windows += 1
                # The normaliser is global: every rank's micro-batch losses add up to one
                # token-mean (or sequence-mean) over the whole mini-batch of all ranks.
                num_tokens = self._global_sum(float(batch.response_mask[mini].sum()))
                num_sequences = self._global_sum(float(mini.stop - mini.start))
                parts = micro_batches(mini.stop - mini.start, micro)
                for rows in parts:
                    index = slice(mini.start + rows.start, mini.start + rows.stop)
                    part = batch.rows(index)
                    width = part.response_mask.shape[1]
                    logp, entropy = self._logprobs(self.engine, part, with_entropy=True)
                    device = logp.device
                    mask = part.response_mask.to(device)
                    out = grpo_loss(
                        logp,
                        logp.detach() if old_all is None else old_all[index, :width].to(device),  # None exactly when on_policy
                        ref_all[index, :width].to(device) if ref_all is not None else None,
                        part.advantages.to(device),
                        mask,
                        clip_low=self.algo.clip_low,
                        clip_high=self.algo.clip_high,
                        kl_coef=self.algo.kl_coef,
                        kl_kind=self.algo.kl_kind,
                        loss_agg=self.algo.loss_agg,
                        num_tokens=num_tokens,
                        num_sequences=num_sequences,
                        data_parallel_size=self.world_size,
                    )
                    # The loss is already a share of the global mean: no GAS scaling either.
                    self.engine.backward(out.backward_loss, scale_wrt_gas=False)
                    self._step()
                    for key, value in (
                        ("loss", out.loss),
                        ("policy_loss", out.policy_loss),
                        ("kl", out.kl),
                        ("clip_fraction", out.clip_fraction),
                        ("entropy", masked_mean(entropy, mask)),
                    ):
                        sums[key] = sums.get(key, 0.0) + float(value.detach())
                    count += 1
                # A short last mini-batch still closes its accumulation window.
                for _ in range(self.accumulation - len(parts)):
                    self._step()
        metrics = self._reduce_metrics(sums, count, windows)
        # What `hair-ray bench` reads: seconds in the frozen passes (reference, and π_old when it
        # is a pass of its own) and in the trained ones (forward, backward, optimizer), of the
        # slowest rank (the one the step waits for), and the tokens one pass covers on all ranks.
        frozen_s, policy_s = self._global_max([frozen_done - started, time.perf_counter() - frozen_done])
        metrics["learner/seconds_frozen"], metrics["learner/seconds_policy"] = frozen_s, policy_s
        metrics["learner/tokens"] = self._global_sum(float(batch.attention_mask.sum()))
        metrics["learner/lr"] = float(self.scheduler.get_last_lr()[0]) if self.scheduler else self.learner_cfg.learning_rate
        grad_norm = self.engine.get_global_grad_norm()
        if grad_norm is None:
            grad_norm = self._last_grad_norm
        if grad_norm is not None:
            metrics["learner/grad_norm"] = float(grad_norm)
        # The activations, freed by reference counting as this update's tensors went out of
        # scope: the rollout's turn may need that memory. No forced full collection (Python's own
        # collector still runs as usual): in this process it cost ~0.4 s of every step (on the
        # bench config the update's overhead fell from 0.51 s to 0.15 s a step without it).
        release_freed_memory(collect=False)
        return metrics

    def _step(self) -> None:
        """`engine.step()`. DeepSpeed's plain fp32 path (ZeRO-0 without bf16) clips by the
        gradient norm but does not report it, so it is taken here, on the reduced gradients,
        before the step; every other path reports its own."""
        fp32_stage0 = self.learner_cfg.zero_stage == 0 and not self.engine.bfloat16_enabled()
        if fp32_stage0 and self.engine.is_gradient_accumulation_boundary():
            norms = [p.grad.norm() for p in self.engine.module.parameters() if p.grad is not None]
            self._last_grad_norm = float(torch.stack(norms).norm()) if norms else 0.0
        self.engine.step()

    @torch.no_grad()
    def sequence_logprobs(self, samples: list[dict]) -> list[float]:
        """Σ log π_θ(response | prompt) per sample under the current weights."""
        batch = collate(
            [s["prompt_ids"] for s in samples],
            [s["response_ids"] for s in samples],
            [0.0] * len(samples),
            pad_token_id=self.tokenizer.pad_token_id or 0,
        )
        self.engine.eval()
        logp, _ = self._logprobs(self.engine, batch)
        self.engine.train()
        return masked_sum(logp, batch.response_mask.to(logp.device), dim=1).tolist()

    # -- weights out --------------------------------------------------------------------------

    def _gathered_weights(self, bucket_bytes: int) -> Iterator[dict[str, torch.Tensor]]:
        """The weights that travel, bucket by bucket, each whole while it is yielded. Under ZeRO-3
        every rank must iterate: gathering the shards is a collective."""
        from hair_ray.workers.weight_sync import plan_buckets

        model = self.engine.module
        named = dict(weights_that_travel(model.named_parameters(), model.config))
        sizes = [(n, full_numel(p) * p.element_size()) for n, p in named.items()]
        for names in plan_buckets(sizes, bucket_bytes):
            with _gathered([named[n] for n in names], self.learner_cfg.zero_stage):
                yield {n: named[n].detach() for n in names}

    def export_weights(self, bucket_bytes: int) -> list[dict] | None:
        """Full weights as CPU buckets on rank 0 (None elsewhere); every rank must call it."""
        buckets = []
        for bucket in self._gathered_weights(bucket_bytes):
            if self.rank == 0:
                buckets.append({n: t.to("cpu", copy=True).contiguous() for n, t in bucket.items()})
        return buckets if self.rank == 0 else None

    def write_shared_weights(self, path: str, bucket_bytes: int) -> list[SharedTensor] | None:
        """Copy the full weights into the shared-memory file `path` (rank 0; every rank must call
        it) and return where each tensor lies in it: one memcpy a tensor, nothing serialised."""
        from hair_ray.workers.weight_sync import map_shared, shared_layout, shared_views

        model = self.engine.module
        layout = shared_layout(
            [(n, p.dtype, full_shape(p)) for n, p in weights_that_travel(model.named_parameters(), model.config)]
        )
        if self.rank == 0:
            if self._shared is None or self._shared[0] != path:
                self._shared = (path, map_shared(path, layout_bytes(layout)))
            targets = dict(shared_views(self._shared[1], layout))
        for bucket in self._gathered_weights(bucket_bytes):
            if self.rank == 0:
                for name, tensor in bucket.items():
                    targets[name].copy_(tensor)
        return layout if self.rank == 0 else None

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def generate_greedy(self, prompt_token_ids: list[list[int]], max_new_tokens: int) -> list[list[int]]:
        """The learner's own greedy completions (to check a sync against). Rank 0 under ZeRO ≤ 2."""
        model = self.engine.module
        model.eval()
        out = []
        with torch.no_grad():
            for ids in prompt_token_ids:
                seq = model.generate(
                    torch.tensor([ids], device=self.engine.device), max_new_tokens=max_new_tokens, do_sample=False
                )
                out.append(seq[0, len(ids) :].tolist())
        model.train()
        return out

    # -- checkpoints and teardown -------------------------------------------------------------

    def save_checkpoint(self, folder: str, tag: str) -> None:
        self.engine.save_checkpoint(folder, tag=tag)

    def load_checkpoint(self, folder: str, tag: str) -> None:
        """DeepSpeed's resume, with every file it reads loaded as weights only: a pickle that
        would run code raises UnsafeCheckpointError instead (see hair_ray.train.checkpoint)."""
        from hair_ray.train.checkpoint import deepspeed_safe_globals, weights_only_loads

        with weights_only_loads(deepspeed_safe_globals()):
            path, _ = self.engine.load_checkpoint(folder, tag=tag)
        if path is None:
            raise FileNotFoundError(f"no learner checkpoint {tag!r} in {folder}")

    def shutdown(self) -> None:
        import torch.distributed as dist

        # ZeRO-3 aborts at exit unless the engine and the process group are torn down first.
        if self._engine is not None:
            self._engine.destroy()
            self._engine = None
        if dist.is_initialized():
            dist.destroy_process_group()


def _pad_left(values: torch.Tensor, columns: int) -> torch.Tensor:
    """[N, W] -> [N, columns + W] with zeros in front (positions that are never trained)."""
    return torch.nn.functional.pad(values, (columns, 0))


def _gathered(params, zero_stage: int):
    import contextlib

    if zero_stage == 3:
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    return contextlib.nullcontext()


def start_learner_group(
    config,
    *,
    optimizer_steps_total: int,
    num_cpus_per_worker: float | None = None,
    scheduling_strategies: list | None = None,
    init_timeout_s: float = 900.0,
) -> list:
    """Start `learner.num_workers` ranks and form their DeepSpeed group; returns the handles."""
    import ray

    learner = config.learner
    world_size = learner.num_workers
    actor_cls = ray.remote(LearnerWorker)
    cpus = config.placement.cpus_per_learner_worker if num_cpus_per_worker is None else num_cpus_per_worker
    # Ray's handle type is a union with type[LearnerWorker], whose methods have no `.remote`.
    actors: list[Any] = []
    for rank in range(world_size):
        options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": learner.num_gpus_per_worker}
        if scheduling_strategies:
            options["scheduling_strategy"] = scheduling_strategies[rank]
        actors.append(actor_cls.options(**options).remote(rank, world_size))
    master = ray.get(actors[0].address.remote(), timeout=init_timeout_s)
    inits = [
        actor.init.remote(
            master,
            config.policy,
            learner,
            config.algo,
            seed=config.seed,
            optimizer_steps_total=optimizer_steps_total,
        )
        for actor in actors
    ]
    from hair_ray.waiting import wait_all

    wait_all(inits, [f"learner rank {r}" for r in range(world_size)], init_timeout_s, "start the learner group")
    return actors

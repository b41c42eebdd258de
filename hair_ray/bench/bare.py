"""Bare baselines: the least code that does each phase's work, in one process, on the shapes of
the trainer's first step (`python -m hair_ray.bench.bare WORKLOAD.json OUT.json`).

- generate: one vLLM `LLM` built with the rollout workers' own settings, `generate` on step 1's
  prompts with step 1's seeds (so it writes exactly the trainer's first samples);
- learner: Hugging Face forward + backward + torch AdamW on those samples, in the learner's
  micro-batches, with `logits_to_keep` (what any careful GRPO learner does);
- reference: the same forward without gradients;
- memcpy: `Tensor.copy_` of every weight that a sync moves into a buffer allocated beforehand;
- with `--beside-ray`, the learner and the reference once more beside an idle local Ray cluster
  (hair_ray.bench.idle_ray): what the same loops run at in the company every actor keeps.

It runs in a process of its own after the trainer's actors are gone, so it has the machine to
itself and its torch threads are the learner's. Each figure is the median of `--repeats` runs
after one warm-up.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hair_ray.algo.grpo import token_logprobs
from hair_ray.bench.workload import Workload


def timed(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median seconds of `repeats` calls after one warm-up, and the last call's result."""
    result = work()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def bare_generate(workload: Workload, repeats: int) -> tuple[dict[str, float], list[tuple[list[int], list[int]]]]:
    """vLLM alone on step 1; returns its figures and the (prompt ids, response ids) samples."""
    from hair_ray.models.vllm_engine import create_llm, generate

    llm = create_llm(workload.model_path, seed=workload.seed, **workload.engine)
    prompt_ids = workload.prompt_ids[0]

    def run():
        return generate(
            llm,
            prompt_ids,
            max_new_tokens=workload.max_new_tokens,
            temperature=workload.temperature,
            top_p=workload.top_p,
            samples_per_prompt=workload.group_size,
            seed=workload.first_seed,
        )

    seconds, outputs = timed(run, repeats)
    samples = [(prompt_ids[i], list(c.token_ids)) for i, group in enumerate(outputs) for c in group]
    tokens = sum(len(response) for _, response in samples)
    shutdown = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if shutdown is not None and hasattr(shutdown, "shutdown"):
        shutdown.shutdown()  # the engine's own process: gone before the learner's baselines run
    gc.collect()
    return {"seconds": seconds, "tokens": float(tokens), "tokens_per_s": tokens / seconds}, samples


class LearnerLoops:
    """The bare learner's two loops on one batch of samples, over the learner's micro-batches:
    `update()` is forward + backward + AdamW, `forward()` the reference's forward without
    gradients. Advantages of ±1: the values do not change the work."""

    def __init__(
        self,
        model_path: str,
        dtype: str,
        samples: list[tuple[list[int], list[int]]],
        *,
        learning_rate: float,
        samples_per_micro_batch: int,
        gradient_checkpointing: bool = False,
    ):
        from transformers import AutoModelForCausalLM

        from hair_ray.models.loading import torch_dtype
        from hair_ray.workers.batch import collate, micro_batches

        torch_type = torch_dtype(dtype, on_gpu=False)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_type, use_safetensors=True)
        self.reference = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_type, use_safetensors=True).eval()
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.model.train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=learning_rate)
        advantages = [1.0 if i % 2 else -1.0 for i in range(len(samples))]
        self.batch = collate([p for p, _ in samples], [r for _, r in samples], advantages, pad_token_id=0)
        self.parts = [self.batch.rows(rows) for rows in micro_batches(len(self.batch), samples_per_micro_batch)]
        self.tokens = float(self.batch.attention_mask.sum())

    @classmethod
    def of(cls, workload: Workload, samples: list[tuple[list[int], list[int]]]) -> LearnerLoops:
        return cls(
            workload.model_path,
            workload.dtype,
            samples,
            learning_rate=workload.learning_rate,
            samples_per_micro_batch=workload.samples_per_micro_batch,
            gradient_checkpointing=workload.gradient_checkpointing,
        )

    @staticmethod
    def _logprobs(net, part):
        start = part.first_response_position()
        width = part.response_mask.shape[1]
        logits = net(input_ids=part.input_ids, attention_mask=part.attention_mask, logits_to_keep=width + 1 - start).logits
        return token_logprobs(logits[:, :-1].float(), part.input_ids[:, start + 1 :]), part.response_mask[:, start:]

    def update(self) -> None:
        total = float(self.batch.response_mask.sum())
        for part in self.parts:
            logp, mask = self._logprobs(self.model, part)
            loss = -(logp * part.advantages[:, None] * mask).sum() / total
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def forward(self) -> None:
        for part in self.parts:
            self._logprobs(self.reference, part)


def bare_learner(
    workload: Workload, samples: list[tuple[list[int], list[int]]], repeats: int, beside_ray: bool = False
) -> dict[str, dict[str, float]]:
    """The update and the reference forward with the machine to themselves, then (`beside_ray`)
    the same two again beside an idle local Ray cluster; and the weights' memcpy."""
    loops = LearnerLoops.of(workload, samples)

    def rates() -> dict[str, dict[str, float]]:
        update_s, _ = timed(loops.update, repeats)
        forward_s, _ = timed(loops.forward, repeats)
        return {
            "learner": {"seconds": update_s, "tokens": loops.tokens, "tokens_per_s": loops.tokens / update_s},
            "reference": {"seconds": forward_s, "tokens": loops.tokens, "tokens_per_s": loops.tokens / forward_s},
        }

    results = {**rates(), "memcpy": bare_memcpy(loops.model, repeats)}
    if beside_ray:
        from hair_ray.bench.idle_ray import idle_ray_cluster

        with idle_ray_cluster():
            results.update({f"{name}_beside_ray": figures for name, figures in rates().items()})
    return results


def bare_memcpy(model, repeats: int) -> dict[str, float]:
    """Copy every weight a sync moves into buffers allocated beforehand: memory bandwidth."""
    from hair_ray.models.weight_names import weights_that_travel

    sources = [t.detach() for _, t in weights_that_travel(model.state_dict().items(), model.config)]
    targets = [torch.empty_like(t) for t in sources]

    def copy() -> None:
        for target, source in zip(targets, sources):
            target.copy_(source)

    seconds, _ = timed(copy, repeats)
    num_bytes = float(sum(t.numel() * t.element_size() for t in sources))
    return {"seconds": seconds, "bytes": num_bytes, "gb_per_s": num_bytes / seconds / 1e9}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--beside-ray", action="store_true", help="also time the learner's loops beside an idle Ray cluster")
    args = parser.parse_args(argv)
    workload = Workload.load(args.workload)
    torch.set_num_threads(workload.threads)
    generated, samples = bare_generate(workload, args.repeats)
    results = {"generate": generated, **bare_learner(workload, samples, args.repeats, args.beside_ray)}
    results["generate"]["samples"] = float(len(samples))
    args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

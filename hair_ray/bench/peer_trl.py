"""The peer: TRL's `GRPOTrainer` on the benchmark's workload
(`python -m hair_ray.bench.peer_trl WORKLOAD.json OUT.json`; needs the `bench` extra).

Same model and dtype, the same prompts in the same order (hair_ray's sampler, TRL's shuffle off),
the same G, completion length, sampling temperature, β (k3 KL against a frozen reference), clip
range, learning rate (constant), gradient clipping, micro-batch and reward function; one
optimizer step per generation batch, as hair_ray's one update per step. TRL generates with
Hugging Face `generate` (its vLLM mode needs CUDA). A step is timed from `on_step_begin` to
`on_step_end`, which spans TRL's generation, scoring, reference pass and update.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hair_ray.bench.workload import Workload


def trl_arguments(workload: Workload, output_dir: str, steps: int) -> dict[str, Any]:
    """GRPOConfig's arguments for `workload` (a pure function: the tests compare it field by field)."""
    micro = workload.samples_per_micro_batch
    per_step = workload.samples_per_step
    if per_step % micro:
        raise ValueError(f"samples per step ({per_step}) must be a multiple of learner.samples_per_micro_batch ({micro})")
    return {
        "output_dir": output_dir,
        "max_steps": steps,
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": per_step // micro,  # one optimizer step per generation batch
        "num_generations": workload.group_size,
        "max_completion_length": workload.max_new_tokens,
        "temperature": workload.temperature,
        "top_p": workload.top_p,
        "beta": workload.kl_coef,
        "epsilon": workload.clip_low,
        "epsilon_high": workload.clip_high,
        "num_iterations": 1,
        "loss_type": "dapo",  # hair_ray's token-mean: one mean over every response token of the batch
        "scale_rewards": "group",
        "learning_rate": workload.learning_rate,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "weight_decay": 0.0,
        "max_grad_norm": 1.0,
        "gradient_checkpointing": workload.gradient_checkpointing,
        "bf16": workload.dtype == "bfloat16",
        "use_cpu": not torch.cuda.is_available(),
        "shuffle_dataset": False,
        "seed": workload.seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "disable_tqdm": True,
    }


def trl_dataset(workload: Workload):
    """The prompts of every step in order, as TRL's conversational format (one user turn)."""
    from datasets import Dataset

    rows = [
        {"prompt": [{"role": "user", "content": text}], "category": workload.categories[s][i]}
        for s, batch in enumerate(workload.prompts)
        for i, text in enumerate(batch)
    ]
    return Dataset.from_list(rows)


def trl_reward(workload: Workload):
    """hair_ray's `fn(prompts, responses, categories)` behind TRL's reward signature."""
    from hair_ray.reward.rule import load_reward_function

    if workload.reward_function is None:
        raise ValueError("the TRL peer needs a rule reward (reward.function): TRL cannot call hair_ray's reward-model actors")
    function = load_reward_function(workload.reward_function)

    def reward(prompts, completions, category=None, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        users = [p[-1]["content"] if isinstance(p, list) else p for p in prompts]
        return function(users, texts, list(category or [""] * len(texts)))

    reward.__name__ = workload.reward_function.rpartition(":")[2]
    return reward


def run_peer(workload: Workload, warmup: int, steps: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from hair_ray.models.loading import torch_dtype

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.seconds: list[float] = []
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.seconds.append(time.perf_counter() - self._start)

    torch.set_num_threads(workload.threads)
    clock = StepClock()
    tokenizer = AutoTokenizer.from_pretrained(workload.model_path)
    model = AutoModelForCausalLM.from_pretrained(
        workload.model_path, dtype=torch_dtype(workload.dtype, on_gpu=torch.cuda.is_available()), use_safetensors=True
    )
    with tempfile.TemporaryDirectory(prefix="hair_ray_trl_") as output_dir:
        trainer = GRPOTrainer(
            model=model,
            processing_class=tokenizer,
            reward_funcs=trl_reward(workload),
            args=GRPOConfig(**trl_arguments(workload, output_dir, warmup + steps)),
            train_dataset=trl_dataset(workload),
            callbacks=[clock],
        )
        trainer.train()
        history = [entry for entry in trainer.state.log_history if "completions/mean_length" in entry]
    measured = clock.seconds[warmup:]
    lengths = [entry["completions/mean_length"] * workload.samples_per_step for entry in history][warmup:]
    step_s = statistics.median(measured)
    return {
        "step_seconds": clock.seconds,
        "step_s": step_s,
        "completion_tokens": statistics.median(lengths) if lengths else 0.0,
        "completion_tokens_per_s": statistics.median(t / s for t, s in zip(lengths, measured)) if lengths else 0.0,
        "versions": {"trl": __import__("trl").__version__},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    result = run_peer(Workload.load(args.workload), args.warmup, args.steps)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Evaluation inside `hair-ray train` (`eval.every_steps`): the run's rollout engines, which
hold the current weights, answer the eval prompts greedily before the first step (the base
policy), every `every_steps` steps and after the last. Results go to RUN/eval/step-N/ and, as
`eval/<benchmark>/<metric>`, into that step's metrics (metrics.jsonl and wandb).

It changes nothing the training sees: greedy requests draw no random numbers, the engines'
seeded training requests have their own generators, the prefix cache is reset after each
evaluation, and the sampler and RNG state are not touched, so a run with evaluation trains on
the same samples as one without (tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hair_ray.config import RunConfig
from hair_ray.eval.evaluator import Evaluator
from hair_ray.eval.judges import Judge, make_judge
from hair_ray.eval.metrics import flat_metrics
from hair_ray.eval.outputs import write_results

EVAL_DIR = "eval"


def training_judge(config: RunConfig) -> Judge:
    """The judge behind refusal/fraction: `eval.judge` unless it is an LLM endpoint, which
    would put a network round trip into every step; then the keyword rule."""
    if config.eval.judge.kind == "llm":
        from hair_ray.eval.judges.keyword import KeywordJudge

        return KeywordJudge()
    return make_judge(config.eval.judge)


def eval_step_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / EVAL_DIR / f"step-{step:06d}"


class TrainingEvaluation:
    def __init__(self, config: RunConfig, *, judge: Judge | None = None):
        self.config = config
        self.every = config.eval.every_steps
        # Built before any actor starts: a bad benchmark or judge stops the run at once.
        self.evaluator = Evaluator(
            config.eval, dataset_dir=config.data.dataset_dir, judge=judge, max_prompt_tokens=config.rollout.max_prompt_tokens
        )

    def due(self, step: int) -> bool:
        every = self.every or self.config.algo.total_steps  # built only when eval.every_steps is set
        return step == 0 or step % every == 0 or step == self.config.algo.total_steps

    def run(self, step: int, workers: list, tokenizer, rewards: Any | None = None) -> dict[str, float]:
        self.evaluator.rewards = rewards
        import ray

        result = self.evaluator.evaluate(workers, tokenizer, f"step {step}", timeout_s=self.config.rollout.timeout_s)
        # The eval prompts' cached prefixes (the chat template's shared system prompt) would be
        # reused by the next training batch; a reused block can differ from a recomputed one in
        # the last bits, and so could the samples.
        ray.get([worker.reset_prefix_cache.remote() for worker in workers], timeout=self.config.rollout.timeout_s)
        report = {"step": step, **self.evaluator.describe(), "results": {result.label: result.summary}, "seconds": result.seconds}
        write_results(eval_step_dir(self.config.run_dir, step), report, result.rows)
        metrics = flat_metrics(result.summary, "eval")
        metrics["eval/seconds"] = sum(result.seconds.values())
        return metrics

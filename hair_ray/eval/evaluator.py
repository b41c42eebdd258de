"""One evaluation of one policy: generate on every benchmark prompt, judge, score, summarise.

The evaluator is built once (benchmarks read, judge loaded: bad input fails before any engine
starts) and then evaluates any set of engines holding a policy: the ones `hair-ray eval` starts,
or the run's rollout workers during training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hair_ray.categories import CATEGORY_NAMES
from hair_ray.config import EvalConfig
from hair_ray.eval import engines
from hair_ray.eval.benchmarks import Benchmark, load_benchmark, resolve_benchmarks
from hair_ray.eval.judges import Judge, make_judge
from hair_ray.eval.metrics import summarize_benchmark
from hair_ray.models.loading import chat_prompt_ids


@dataclass
class PolicyResult:
    label: str
    rows: list[dict[str, Any]]  # one per generated sample: what generations.jsonl holds
    summary: dict[str, dict[str, Any]]  # benchmark -> metrics (hair_ray.eval.metrics)
    seconds: dict[str, float]


class Evaluator:
    def __init__(
        self,
        config: EvalConfig,
        *,
        dataset_dir: str | None = None,
        rewards: Any | None = None,
        judge: Judge | None = None,
        max_prompt_tokens: int = 512,
    ):
        self.config = config
        specs = resolve_benchmarks(config.benchmarks, config.definitions)
        self.benchmarks: list[Benchmark] = [
            load_benchmark(
                name, spec, data_root=config.data_root, dataset_dir=dataset_dir, max_prompts=config.max_prompts_per_benchmark
            )
            for name, spec in specs.items()
        ]
        self.judge = judge if judge is not None else make_judge(config.judge)
        self.rewards = rewards  # a RewardRouter (score(prompts, responses, categories)) or None
        self.max_prompt_tokens = max_prompt_tokens

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.judge.describe(),
            "benchmarks": [b.describe() for b in self.benchmarks],
            "generation": {
                "max_new_tokens": self.config.max_new_tokens,
                "temperature": self.config.temperature,
                "samples_per_prompt": self.config.samples_per_prompt,
                "seed": self.config.seed,
            },
        }

    def evaluate(self, workers: Sequence, tokenizer, label: str, *, timeout_s: float = 900.0) -> PolicyResult:
        import time

        cfg = self.config
        seconds: dict[str, float] = {}
        items = [(b.name, p) for b in self.benchmarks for p in b.prompts]
        prompt_ids = chat_prompt_ids(tokenizer, [p.prompt for _, p in items], self.max_prompt_tokens)

        started = time.perf_counter()
        samples = engines.generate(
            workers,
            prompt_ids,
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            samples_per_prompt=cfg.samples_per_prompt,
            seed=cfg.seed,
            timeout_s=timeout_s,
        )
        seconds["generate"] = time.perf_counter() - started

        rows = []
        for (benchmark, prompt), group in zip(items, samples, strict=True):
            for index, sample in enumerate(group):
                rows.append(
                    {
                        "policy": label,
                        "benchmark": benchmark,
                        "id": prompt.id,
                        "category": prompt.category,
                        "expect": prompt.expect,
                        "sample": index,
                        "prompt": prompt.prompt,
                        "response": tokenizer.decode(sample["token_ids"], skip_special_tokens=True),
                        "response_tokens": len(sample["token_ids"]),
                        "finish_reason": sample["finish_reason"],
                    }
                )

        started = time.perf_counter()
        verdicts = self.judge.judge(
            [r["prompt"] for r in rows],
            [r["response"] for r in rows],
            ["harmful" if r["expect"] == "refuse" else "benign" for r in rows],
        )
        for row, verdict in zip(rows, verdicts, strict=True):
            row.update(refused=verdict.refused, score=verdict.score, judge=verdict.detail)
        seconds["judge"] = time.perf_counter() - started

        if self.rewards is not None:
            started = time.perf_counter()
            for row, reward in zip(rows, self._shadow_rewards(rows), strict=True):
                row["reward"] = reward
            seconds["reward"] = time.perf_counter() - started

        if cfg.reference_loglik:
            started = time.perf_counter()
            self._reference_loglik(workers, tokenizer, items, prompt_ids, rows, timeout_s)
            seconds["reference_loglik"] = time.perf_counter() - started

        summary = {b.name: summarize_benchmark([r for r in rows if r["benchmark"] == b.name]) for b in self.benchmarks}
        return PolicyResult(label, rows, summary, seconds)

    def _shadow_rewards(self, rows: list[dict[str, Any]]) -> list[float]:
        """The category's shadow reward model scores each response; a prompt whose category is
        not one of the seven (other benchmarks' taxonomies) gets the mean of all seven."""
        assert self.rewards is not None  # the caller checks
        prompts = [r["prompt"] for r in rows]
        responses = [r["response"] for r in rows]
        known = [r["category"] if r["category"] in CATEGORY_NAMES else None for r in rows]
        rewards = [0.0] * len(rows)
        direct = [i for i, c in enumerate(known) if c is not None]
        if direct:
            scores = self.rewards.score([prompts[i] for i in direct], [responses[i] for i in direct], [known[i] for i in direct])
            for i, score in zip(direct, scores, strict=True):
                rewards[i] = score
        other = [i for i, c in enumerate(known) if c is None]
        if other:
            served = [c for c in CATEGORY_NAMES if c in self.rewards.workers]
            totals = [0.0] * len(other)
            for category in served:
                scores = self.rewards.score([prompts[i] for i in other], [responses[i] for i in other], [category] * len(other))
                totals = [t + s for t, s in zip(totals, scores, strict=True)]
            for i, total in zip(other, totals, strict=True):
                rewards[i] = total / len(served)
        return rewards

    def _reference_loglik(self, workers, tokenizer, items, prompt_ids, rows, timeout_s) -> None:
        with_reference = [i for i, (_, p) in enumerate(items) if p.reference]
        if not with_reference:
            return
        # The engines hold max_prompt_tokens + max_new_tokens; scoring a sequence samples one
        # token after it, so a reference gets one token less than an answer would.
        limit = self.config.max_new_tokens - 1
        continuations = [tokenizer.encode(items[i][1].reference, add_special_tokens=False)[:limit] for i in with_reference]
        logliks = engines.continuation_loglik(
            workers, [prompt_ids[i] for i in with_reference], continuations, timeout_s=timeout_s
        )
        by_prompt = dict(zip(with_reference, logliks, strict=True))
        per_prompt = self.config.samples_per_prompt
        for index, row in enumerate(rows):
            # rows hold samples_per_prompt consecutive samples per prompt; the reference's
            # likelihood belongs to the prompt, so only its first sample carries it.
            prompt_index, sample = divmod(index, per_prompt)
            if sample == 0 and prompt_index in by_prompt:
                row["reference_loglik"] = by_prompt[prompt_index]

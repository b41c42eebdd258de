"""The driver loop of HAIR's stage C: GRPO-S on Ray. Reads as docs/architecture.md §2 (the driver):

    batch   = sampler.next()                      # category-balanced prompts with their demos
    samples = rollout.generate(batch, G)          # all workers in parallel
    rewards = rewards.score(samples)              # routed to the 7 RM actors by category
    alpha_d = scorer.data_hardness(samples)       # in parallel with rewards
    adv     = grpo_s_advantages(...)              # pure function, driver side
    stats   = learner.update(samples, adv)        # ref logprobs + PPO-style epochs, ZeRO
    weights.sync(learner -> rollout)
    log(stats); maybe checkpoint()

Everything heavy lives in actors (hair_ray/workers); this file only orders the phases, times
them, and keeps the state a resume needs (step, sampler cursor, weights version). `fit` is the
loop; `hair_ray.train.launcher.train` starts the actors and hands it the tracker, the checkpoint writer and
the evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from hair_ray.algo.hardness import grpo_s_advantages
from hair_ray.config import RunConfig
from hair_ray.models.loading import chat_prompt_ids
from hair_ray.train.learner_group import LearnerGroup
from hair_ray.train.metrics import step_metrics
from hair_ray.train.rollout_group import RolloutGroup
from hair_ray.train.sampler import run_sampler
from hair_ray.waiting import wait_all

# Prompt i of a step is sampled with seed generation_seed(...) + i: steps lie this far apart, so
# no two (step, prompt) pairs of a run share a random stream.
PROMPTS_PER_STEP_SEED_STRIDE = 2**20


def generation_seed(run_seed: int, step: int) -> int:
    """The sampling seed of prompt 0 at `step` (a pure function of the two: resume is exact)."""
    return (run_seed * 1_000_003 + step) * PROMPTS_PER_STEP_SEED_STRIDE % 2**62


@dataclass
class PhaseTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start


class RewardSource(Protocol):
    """What the loop asks of the rewards: the seven shadow reward models behind a RewardRouter,
    or a RuleReward (tests, baselines)."""

    @property
    def actors(self) -> list:
        """The Ray actors to stop at the end (none for a rule)."""
        ...

    def wait_ready(self) -> Any: ...

    def score_async(self, prompts: Sequence[str], responses: Sequence[str], categories: Sequence[str]) -> Any: ...

    def gather(self, pending: Any) -> list[float]: ...

    def demonstration_rewards(self, records: Sequence[Mapping[str, Any]]) -> list[float]: ...


@dataclass
class Actors:
    rollout: RolloutGroup
    learners: LearnerGroup
    rewards: RewardSource
    scorer: Any | None  # HardnessScorer actor, None when α^D is off


class Trainer:
    def __init__(
        self, config: RunConfig, records: list[dict], actors: Actors, tokenizer, *, start_step: int = 0, refusal_judge=None
    ):
        self.config = config
        # Says which responses refuse, for the refusal/fraction metric (hair_ray.eval.judges).
        self.refusal_judge = refusal_judge
        self.records = records
        self.actors = actors
        self.tokenizer = tokenizer
        self.sampler = run_sampler(config, records)
        self.step = start_step
        self.weights_version = start_step
        self._next_batch: tuple[list[dict], Any] | None = None  # async mode: in-flight generation
        # The sampler cursor from before that in-flight batch was drawn: what a checkpoint
        # saves, so a resumed run draws the batch again instead of skipping it.
        self._cursor_before_prefetch: dict[str, Any] | None = None

    # -- the phases ---------------------------------------------------------------------------

    def prompt_ids(self, batch: list[dict]) -> list[list[int]]:
        return chat_prompt_ids(self.tokenizer, [record["prompt"] for record in batch], self.config.rollout.max_prompt_tokens)

    def launch_generation(self, batch: list[dict], step: int):
        """Start generating `batch` for step `step` (1-based); its seed depends on the step
        alone, so a resumed run draws the same samples."""
        seed = generation_seed(self.config.seed, step - 1)
        return self.actors.rollout.generate_async(self.prompt_ids(batch), self.config.algo.group_size, seed)

    def fit(
        self,
        log_metrics: Callable[[int, dict[str, Any]], object],
        save_checkpoint: Callable[[int, dict[str, Any]], None],
        evaluate: Callable[[int], dict[str, float]] | None = None,
    ) -> dict[str, Any]:
        """Train from the current step to `algo.total_steps`; returns the last step's metrics.
        `evaluate(step)` measures the policy (step 0: the base model) and returns {} when no
        evaluation is due; `save_checkpoint(step, state)` writes what `state()` returns."""
        total, every = self.config.algo.total_steps, self.config.checkpoint.every_steps
        if evaluate is not None and self.step == 0:
            evaluate(0)
        metrics: dict[str, Any] = {}
        while self.step < total:
            step = self.step + 1
            metrics = self.run_step(step)
            if evaluate is not None:
                metrics.update(evaluate(step))
            log_metrics(step, metrics)
            if step % every == 0 or step == total:
                save_checkpoint(step, self.state())
        return metrics

    def run_step(self, step: int) -> dict[str, Any]:
        """Step `step` (1-based), as the paper's stage C orders it."""
        cfg, timer = self.config, PhaseTimer()
        # 1. G samples for each prompt of a category-balanced batch
        with timer("generate"):
            batch, prompt_ids, samples = self._generate(step)
        responses = [self.tokenizer.decode(s["token_ids"], skip_special_tokens=True) for s in samples]
        group_ids = [i // cfg.algo.group_size for i in range(len(samples))]
        owners = [batch[g] for g in group_ids]
        # 2. rewards R_i from the prompt's category model, α^D from the scorer in parallel,
        #    and the demonstrations' rewards r(q, y_q) for α^M
        with timer("reward"):
            pending = self.actors.rewards.score_async([r["prompt"] for r in owners], responses, [r["category"] for r in owners])
            alpha_ref = self._launch_data_hardness(responses, owners, group_ids)
            rewards = self.actors.rewards.gather(pending)
            demo_rewards = self.actors.rewards.demonstration_rewards(owners)
        with timer("hardness"):
            alpha = self._wait_data_hardness(alpha_ref)
        # 3. group advantages Â scaled by α = α^D · α^M (hair_ray.algo.hardness)
        advantages = self._advantages(rewards, group_ids, alpha, demo_rewards)
        # 4. async: the next batch generates on these weights while the learner updates
        if cfg.rollout.async_ and step < cfg.algo.total_steps:
            self._prefetch(step + 1)
        # 5. the GRPO-S update, then the new weights to the engines
        with timer("update"):
            samples_in = training_samples(prompt_ids, samples, advantages.advantages.tolist(), cfg.algo.group_size)
            learner_metrics = self.actors.learners.update(samples_in, step)
        with timer("sync"):
            self.weights_version += 1
            synced = self.actors.rollout.sync_weights(self.actors.learners.actors, self.weights_version)
        self.step = step
        # 6. what the step did
        refused = self._refused(owners, responses, timer)
        metrics = step_metrics(
            owners=owners,
            group_ids=group_ids,
            samples=samples,
            refused=refused,
            rewards=rewards,
            advantages=advantages,
            alpha=alpha,
            learner=learner_metrics,
            timing=timer.seconds,
            weights_version=self.weights_version,
        )
        metrics["rollout/restarts"] = float(self.actors.rollout.restarts)
        metrics["sync/bytes"] = float(synced.num_bytes)
        return metrics

    def _generate(self, step: int) -> tuple[list[dict], list[list[int]], list[dict]]:
        if self._next_batch is not None:  # drawn and launched during the previous step
            batch, pending = self._next_batch
            self._next_batch = self._cursor_before_prefetch = None
        else:
            batch = self.sampler.next(self.config.algo.prompts_per_step)
            pending = self.launch_generation(batch, step)
        prompt_ids, samples = self.actors.rollout.gather(pending)
        return batch, prompt_ids, samples

    def _prefetch(self, step: int) -> None:
        # The cursor before the draw is what a checkpoint saves (see sampler_state).
        self._cursor_before_prefetch = self.sampler.state()
        batch = self.sampler.next(self.config.algo.prompts_per_step)
        self._next_batch = (batch, self.launch_generation(batch, step))

    def _launch_data_hardness(self, responses: list[str], owners: list[dict], group_ids: list[int]):
        hardness = self.config.hardness
        if not (hardness.enabled and hardness.data_hardness and self.actors.scorer is not None):
            return None
        return self.actors.scorer.data_hardness.remote(responses, [r["id"] for r in owners], group_ids)

    def _wait_data_hardness(self, alpha_ref) -> dict[str, Any] | None:
        if alpha_ref is None:
            return None
        timeout_s = self.config.reward.score_timeout_s
        return wait_all([alpha_ref], ["the hardness scorer"], timeout_s, "α^D", name_failures=False)[0]

    def _advantages(self, rewards: list[float], group_ids: list[int], alpha: dict | None, demo_rewards: list[float]):
        hardness = self.config.hardness
        use_alpha_m = hardness.enabled and hardness.model_responsiveness
        return grpo_s_advantages(
            torch.tensor(rewards, dtype=torch.float32),
            torch.tensor(group_ids),
            alpha_d=torch.tensor(alpha["alpha"]) if alpha is not None else None,
            demo_rewards=torch.tensor(demo_rewards, dtype=torch.float32) if use_alpha_m else None,
            use_data_hardness=alpha is not None,
            use_model_responsiveness=use_alpha_m,
            tau=hardness.tau,
            tau_mode=hardness.tau_mode,
            alpha_clip=hardness.alpha_clip,
            combine=hardness.combine,
            data_weight=hardness.data_weight,
            strength=hardness.strength,
            eps=self.config.algo.advantage_eps,
        )

    def _refused(self, owners: list[dict], responses: list[str], timer: PhaseTimer) -> list[bool]:
        """Which responses refuse (the refusal/fraction metric), by the training judge if any."""
        if self.refusal_judge is None:
            return [False] * len(responses)
        with timer("judge"):
            verdicts = self.refusal_judge.judge([r["prompt"] for r in owners], responses, ["harmful"] * len(responses))
        return [bool(v.refused) for v in verdicts]

    # -- resume -------------------------------------------------------------------------------

    def sampler_state(self) -> dict[str, Any]:
        """The cursor a resume starts from. In async mode the next step's batch is already
        drawn and generating when a checkpoint is taken; that generation is lost with the
        process, so the cursor is the one from before it: the resumed run draws the same
        prompts again (generated on-policy by the restored weights this once)."""
        return self._cursor_before_prefetch or self.sampler.state()

    def state(self) -> dict[str, Any]:
        """What a checkpoint saves (besides the learner's own files)."""
        return {"step": self.step, "sampler": self.sampler_state(), "weights_version": self.weights_version}

    def load_state(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.weights_version = state["weights_version"]
        self.sampler.load_state(state["sampler"])


def training_samples(prompt_ids: list[list[int]], samples: list[dict], advantages: list[float], group_size: int) -> list[dict]:
    """The learner's input: each sample's prompt and response token ids with its advantage."""
    return [
        {"prompt_ids": prompt_ids[i // group_size], "response_ids": sample["token_ids"], "advantage": advantage}
        for i, (sample, advantage) in enumerate(zip(samples, advantages))
    ]

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
them, and keeps the state a resume needs (step, sampler cursor, RNG, weights version).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from hair_ray.algo.hardness import grpo_s_advantages
from hair_ray.config import RunConfig, config_hash
from hair_ray.models.loading import chat_prompt_ids
from hair_ray.rollout_group import RolloutGroup
from hair_ray.run_metrics import step_metrics
from hair_ray.sampler import CategoryBalancedSampler
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


@dataclass
class Actors:
    rollout: RolloutGroup
    learners: list
    rewards: Any  # RewardRouter or RuleReward: score_async / gather / demonstration_rewards
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
        self.sampler = CategoryBalancedSampler(records, seed=config.seed)
        self.step = start_step
        self.weights_version = start_step
        self._next_batch: tuple[list[dict], Any] | None = None  # async mode: in-flight generation
        # The sampler cursor from before that in-flight batch was drawn: what a checkpoint
        # saves, so a resumed run draws the batch again instead of skipping it.
        self._cursor_before_prefetch: dict[str, Any] | None = None

    # -- the phases ---------------------------------------------------------------------------

    def prompt_ids(self, batch: list[dict]) -> list[list[int]]:
        return chat_prompt_ids(self.tokenizer, [record["prompt"] for record in batch], self.config.rollout.max_prompt_tokens)

    def launch_generation(self, batch: list[dict]):
        seed = generation_seed(self.config.seed, self.step)  # same prompts, same samples on resume
        return self.actors.rollout.generate_async(self.prompt_ids(batch), self.config.algo.group_size, seed)

    def run_step(self) -> dict[str, Any]:
        cfg = self.config
        timer = PhaseTimer()
        hardness = cfg.hardness
        with timer("generate"):
            if self._next_batch is not None:
                batch, pending = self._next_batch
                self._next_batch = self._cursor_before_prefetch = None
            else:
                batch = self.sampler.next(cfg.algo.prompts_per_step)
                pending = self.launch_generation(batch)
            prompt_ids, samples = self.actors.rollout.gather(pending)
        responses = [self.tokenizer.decode(s["token_ids"], skip_special_tokens=True) for s in samples]
        group_ids = [i // cfg.algo.group_size for i in range(len(samples))]
        owners = [batch[g] for g in group_ids]

        with timer("reward"):
            rewards_pending = self.actors.rewards.score_async(
                [r["prompt"] for r in owners], responses, [r["category"] for r in owners]
            )
            alpha_ref = None
            use_alpha_d = hardness.enabled and hardness.data_hardness and self.actors.scorer is not None
            if use_alpha_d:
                alpha_ref = self.actors.scorer.data_hardness.remote(responses, [r["id"] for r in owners], group_ids)
            rewards = self.actors.rewards.gather(rewards_pending)
            demo_rewards = self.actors.rewards.demonstration_rewards(owners)
        with timer("hardness"):
            alpha = None
            if alpha_ref is not None:
                alpha = wait_all(
                    [alpha_ref], ["the hardness scorer"], self.config.reward.score_timeout_s, "α^D", name_failures=False
                )[0]

        use_alpha_m = hardness.enabled and hardness.model_responsiveness
        advantages = grpo_s_advantages(
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
            eps=cfg.algo.advantage_eps,
        )

        if cfg.rollout.async_ and self.step + 1 < cfg.algo.total_steps:
            # One step off-policy: the next batch is generated by the weights of this step,
            # while the learner updates on this one.
            self._cursor_before_prefetch = self.sampler.state()
            next_batch = self.sampler.next(cfg.algo.prompts_per_step)
            self.step += 1
            self._next_batch = (next_batch, self.launch_generation(next_batch))
            self.step -= 1

        with timer("update"):
            learner_metrics = self.update_learner(prompt_ids, samples, advantages.advantages.tolist())
        with timer("sync"):
            self.weights_version += 1
            self.actors.rollout.sync_weights(self.actors.learners, self.weights_version)

        self.step += 1
        refused = [False] * len(responses)
        if self.refusal_judge is not None:
            with timer("judge"):
                verdicts = self.refusal_judge.judge([r["prompt"] for r in owners], responses, ["harmful"] * len(responses))
            refused = [bool(v.refused) for v in verdicts]
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
        return metrics

    def update_learner(self, prompt_ids, samples, advantages) -> dict[str, float]:

        train = [
            {"prompt_ids": prompt_ids[i // self.config.algo.group_size], "response_ids": s["token_ids"], "advantage": a}
            for i, (s, a) in enumerate(zip(samples, advantages))
        ]
        share = len(train) // len(self.actors.learners)
        refs = [
            learner.update.remote(train[rank * share : (rank + 1) * share]) for rank, learner in enumerate(self.actors.learners)
        ]
        ranks = [f"learner rank {rank}" for rank in range(len(refs))]
        return wait_all(refs, ranks, self.config.learner.timeout_s, f"update at step {self.step}", name_failures=False)[0]

    # -- resume -------------------------------------------------------------------------------

    def sampler_state(self) -> dict[str, Any]:
        """The cursor a resume starts from. In async mode the next step's batch is already
        drawn and generating when a checkpoint is taken; that generation is lost with the
        process, so the cursor is the one from before it: the resumed run draws the same
        prompts again (generated on-policy by the restored weights this once)."""
        return self._cursor_before_prefetch or self.sampler.state()

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "sampler": self.sampler_state(), "config_hash": config_hash(self.config)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.step = state["step"]
        self.weights_version = state["step"]
        self.sampler.load_state(state["sampler"])

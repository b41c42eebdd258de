"""`hair-ray train`: plan placement, start the actors, resume, run the loop, checkpoint, tear down.

Works the same from a laptop (`ray.init()` starts a local cluster) and as a `ray job submit`
entrypoint (`ray.init()` joins the job's cluster and keeps the job's runtime_env).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hair_ray.algo.batching import optimizer_steps_per_epoch
from hair_ray.categories import BENIGN
from hair_ray.config import RunConfig

log = logging.getLogger(__name__)


def load_train_records(config: RunConfig) -> list[dict]:
    """The stage-A training split (`data.dataset_dir/train.jsonl`)."""
    from hair_ray.data.records import read_records

    path = Path(config.data.dataset_dir) / "train.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: build the dataset first with "
            f"`hair-ray data build --config <run config>` (data.dataset_dir = {config.data.dataset_dir})"
        )
    records = read_records(path)
    if not records:
        raise ValueError(f"{path} holds no records")
    benign = sum(r["category"] == BENIGN for r in records)
    if benign and not config.data.has_benign and config.reward.function is None:
        raise ValueError(
            f"{path} holds {benign} benign records, but no data source declares them (fixed_category: benign), "
            "so no reward model would serve them: rebuild the dataset with this config, or add the benign source"
        )
    return records


def optimizer_steps_total(config: RunConfig) -> int:
    algo = config.algo
    per_epoch = optimizer_steps_per_epoch(algo.prompts_per_step * algo.group_size, algo.samples_per_mini_batch)
    return algo.total_steps * algo.epochs_per_step * per_epoch


def max_response_tokens(config: RunConfig) -> int:
    """The longest answer the rollout engines write: the training responses, or the eval's
    (`eval.every_steps` evaluates through the same engines)."""
    if config.eval.every_steps is None:
        return config.rollout.max_new_tokens
    return max(config.rollout.max_new_tokens, config.eval.max_new_tokens)


def start_rollout_workers(config: RunConfig, plan, groups) -> list:
    import ray

    from hair_ray.models.registry import resolve_model_path
    from hair_ray.train.placement import actor_options
    from hair_ray.workers.rollout import RolloutWorker, engine_settings

    actor_cls = ray.remote(RolloutWorker)
    path = resolve_model_path(config.policy.name_or_path)
    settings = engine_settings(config, max_model_len=config.rollout.max_prompt_tokens + max_response_tokens(config))
    return [
        actor_cls.options(max_restarts=config.rollout.max_restarts, **actor_options(plan, groups, "rollout", i)).remote(
            path, seed=config.seed + i, **settings
        )
        for i in range(config.rollout.num_workers)
    ]


def start_rewards(config: RunConfig, plan, groups):
    from hair_ray.reward.rule import RuleReward, load_reward_function

    if config.reward.function:
        return RuleReward(load_reward_function(config.reward.function))
    from hair_ray.train.placement import actor_options
    from hair_ray.train.reward_router import start_reward_workers

    placement = [actor_options(plan, groups, "reward", i) for i in range(plan.roles["reward"].num_actors)]
    return start_reward_workers(config.reward, benign=config.data.has_benign, placement=placement)  # loading


def start_scorer(config: RunConfig, plan, groups, records: list[dict]):
    hardness = config.hardness
    if not (hardness.enabled and hardness.data_hardness):
        return None

    from hair_ray.train.placement import actor_options
    from hair_ray.workers.scorer import create_hardness_scorer

    options = actor_options(plan, groups, "scorer", 0)
    scorer = create_hardness_scorer(
        hardness,
        num_cpus=options.pop("num_cpus"),
        num_gpus=options.pop("num_gpus"),
        max_restarts=2,
        # Embedded once, by the constructor (a restart re-embeds them). y_demo is the field the
        # reward models were trained on (reward.irl.demonstration_field), so α^D and α^M measure
        # the distance to the same demonstration.
        demonstrations=[{"id": r["id"], "text": r[config.reward.irl.demonstration_field]} for r in records],
        **options,
    )
    return scorer  # loading; `scorer.stats` answers once it is up


def weight_sync_for(config: RunConfig, learner_rank_0, rollout_workers: list):
    """`rollout.weight_sync`, with `auto` decided by where the actors landed."""
    import ray

    from hair_ray.workers.weight_sync import choose_weight_sync, create_weight_sync

    nodes = ray.get([actor.node_id.remote() for actor in [learner_rank_0, *rollout_workers]], timeout=config.rollout.timeout_s)
    kind = choose_weight_sync(config.rollout.weight_sync, ray.get_runtime_context().get_node_id(), nodes)
    log.info("weight sync: %s (rollout.weight_sync=%s)", kind, config.rollout.weight_sync)
    rollout = config.rollout
    return create_weight_sync(kind, int(rollout.sync_bucket_mib * 2**20), rollout.timeout_s)


def warn_if_alpha_m_is_constant(config: RunConfig) -> None:
    """With population variance no gap of a G-sample group lies further than (G − 1)·var from
    the group mean, so a relative τ ≥ G − 1 filters nothing and α^M is exactly 1."""
    hardness, group_size = config.hardness, config.algo.group_size
    if hardness.enabled and hardness.model_responsiveness and hardness.tau_mode == "relative" and hardness.tau >= group_size - 1:
        log.warning(
            "hardness.tau=%g >= algo.group_size - 1 = %d: the gap filter keeps every sample, so α^M is 1 "
            "(model responsiveness has no effect); use a larger group or a smaller tau",
            hardness.tau,
            group_size - 1,
        )


def train(config: RunConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Run (or resume) a GRPO-S training run; returns the last step's metrics.

    `overwrite` replaces an earlier run in the run folder (see hair_ray.train.run_folder)."""
    import ray

    from hair_ray.eval.training import TrainingEvaluation, training_judge
    from hair_ray.models.loading import load_tokenizer
    from hair_ray.train.checkpoint import load_checkpoint, restore_rng_state, stage_checkpoint
    from hair_ray.train.learner_group import LearnerGroup
    from hair_ray.train.placement import (
        cluster_resources_from_ray,
        create_placement_groups,
        plan_placement,
        remove_placement_groups,
    )
    from hair_ray.train.preflight import raise_on_problems
    from hair_ray.train.rollout_group import RolloutGroup
    from hair_ray.train.run_folder import plan_run_start
    from hair_ray.train.tracking import Tracker
    from hair_ray.train.trainer import Actors, RewardSource, Trainer
    from hair_ray.workers.learner import start_learner_group

    # Everything that can fail on bad input fails here, before Ray: a bad config costs a second.
    judge = training_judge(config)
    evaluation = TrainingEvaluation(config, judge=judge) if config.eval.every_steps else None
    raise_on_problems(config, overwrite=overwrite)
    start = plan_run_start(config, overwrite=overwrite)
    if start.finished:
        log.warning(
            "%s finished at step %d already (algo.total_steps): nothing to train; raise algo.total_steps "
            "with checkpoint.allow_config_change=true to train on",
            config.run_dir,
            config.algo.total_steps,
        )
        return start.last_metrics or {}
    warn_if_alpha_m_is_constant(config)
    records = load_train_records(config)
    if not ray.is_initialized():
        ray.init()  # inside `ray job submit` this joins the job's cluster with its runtime_env
    tokenizer = load_tokenizer(config.policy)
    plan = plan_placement(config, cluster_resources_from_ray())
    groups = create_placement_groups(plan, timeout_s=config.placement.group_timeout_s)
    resume_from = start.resume_from
    checkpoint = load_checkpoint(resume_from, config) if resume_from else None

    learners: LearnerGroup | None = None
    rollout: RolloutGroup | None = None
    rollout_workers: list = []
    rewards: RewardSource | None = None
    scorer = None
    try:
        from hair_ray.train.placement import actor_options

        # Every actor loads at once (engines, reward models, scorer, learner ranks); the learner
        # group's start blocks, then the rest is awaited, so step 1's timing is the step's own.
        rollout_workers = start_rollout_workers(config, plan, groups)
        rewards = start_rewards(config, plan, groups)
        scorer = start_scorer(config, plan, groups, records)
        strategies = [
            actor_options(plan, groups, "learner", r).get("scheduling_strategy") for r in range(config.learner.num_workers)
        ]
        learner_actors = start_learner_group(
            config,
            optimizer_steps_total=optimizer_steps_total(config),
            num_cpus_per_worker=plan.roles["learner"].cpus_per_actor,
            scheduling_strategies=strategies if all(strategies) else None,
        )
        learners = LearnerGroup(learner_actors, config.learner.timeout_s)
        ray.get([worker.version.remote() for worker in rollout_workers], timeout=config.rollout.timeout_s)
        rewards.wait_ready()
        if scorer is not None:
            ray.get(scorer.stats.remote(), timeout=config.rollout.timeout_s)
        rollout = RolloutGroup(rollout_workers, config, sync=weight_sync_for(config, learner_actors[0], rollout_workers))
        trainer = Trainer(config, records, Actors(rollout, learners, rewards, scorer), tokenizer, refusal_judge=judge)
        if checkpoint is not None:
            learners.load(checkpoint.learner_dir)
            trainer.load_state(
                {
                    "step": checkpoint.step,
                    "sampler": checkpoint.state.sampler_state,
                    "weights_version": checkpoint.state.weights_version,
                }
            )
            restore_rng_state(checkpoint.rng_state())
            # The engines start from the original weights: give them the restored ones.
            rollout.sync_weights(learners.actors, trainer.weights_version)
            log.info("resumed from %s at step %d", resume_from, checkpoint.step)

        started = time.monotonic()

        def save_checkpoint(step: int, state: dict[str, Any]) -> None:
            with stage_checkpoint(
                config.run_dir,
                step,
                config=config,
                sampler_state=state["sampler"],
                weights_version=state["weights_version"],
                wall_time_s=time.monotonic() - started,
            ) as staging:
                learners.save(staging / "learner")

        evaluate = None
        if evaluation is not None:
            # The shadow reward of eval responses needs the seven models (not a rule reward).
            eval_rewards = None if config.reward.function else rewards

            def evaluate(step: int) -> dict[str, float]:
                if step and not evaluation.due(step):
                    return {}
                return evaluation.run(step, rollout_workers, tokenizer, eval_rewards)

        with Tracker(config.run_dir, config, start_step=trainer.step, total_steps=config.algo.total_steps) as tracker:
            return trainer.fit(tracker.log, save_checkpoint, evaluate)
    finally:
        if rollout is not None:
            rollout.sync.close()
        if learners is not None:
            try:
                learners.shutdown()
            except Exception as exc:
                log.warning("learner shutdown: %s", exc)
        others = (rewards.actors if rewards is not None else []) + ([scorer] if scorer is not None else [])
        for actor in (learners.actors if learners is not None else []) + rollout_workers + others:
            ray.kill(actor)
        remove_placement_groups(groups)

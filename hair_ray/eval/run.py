"""`hair-ray eval`: several policies on the same benchmarks with the same judge, side by side.

Everything that can fail on bad input (benchmarks, judge, policy paths) is checked before the
first engine starts. Each policy then gets its own engines (`eval.num_engines` RolloutWorker
actors), which are stopped before the next policy loads, so memory holds one policy at a time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from hair_ray.atomic import atomic_write_text
from hair_ray.categories import CATEGORY_NAMES
from hair_ray.config import RunConfig
from hair_ray.eval import engines
from hair_ray.eval.evaluator import Evaluator, PolicyResult
from hair_ray.eval.outputs import (
    FIGURE_FILE,
    MARKDOWN_FILE,
    comparison_markdown,
    comparison_table,
    plot_comparison,
    write_results,
)
from hair_ray.eval.policies import Policy, resolve_policy
from hair_ray.train.placement import ClusterResources, PlacementError, cluster_resources_from_ray

log = logging.getLogger(__name__)


def evaluation_report(evaluator: Evaluator, policies: list[Policy], results: list[PolicyResult], **extra: Any) -> dict[str, Any]:
    """What eval.json holds: every number, the judge, the benchmarks (with hashes), the policies."""
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
        "policies": [
            {"label": p.label, "path": p.path, "source": p.source, "seconds": r.seconds}
            for p, r in zip(policies, results, strict=True)
        ],
        **evaluator.describe(),
        "results": {r.label: r.summary for r in results},
    }


def check_resources(config: RunConfig, *, with_reward_models: bool, cluster: ClusterResources) -> None:
    """The engines of one policy and the reward actors are up at the same time: they must fit the
    cluster together, or an engine waits for CPUs that never come free until its timeout."""
    placement, reward = config.placement, config.reward
    engines_n = config.eval.num_engines
    needs = {
        "CPU": [
            (
                f"engines {engines_n} × {placement.cpus_per_rollout_worker:g}",
                "eval.num_engines / placement.cpus_per_rollout_worker",
                engines_n * placement.cpus_per_rollout_worker,
            )
        ],
        "GPU": [
            (
                f"engines {engines_n} × {placement.gpus_per_rollout_worker:g}",
                "eval.num_engines / placement.gpus_per_rollout_worker",
                engines_n * placement.gpus_per_rollout_worker,
            )
        ],
    }
    if with_reward_models:
        models = len(CATEGORY_NAMES)
        needs["CPU"].append(
            (
                f"reward {models} × {placement.cpus_per_reward_model:g}",
                "placement.cpus_per_reward_model",
                models * placement.cpus_per_reward_model,
            )
        )
        needs["GPU"].append(
            (f"reward {models} × {reward.num_gpus_per_model:g}", "reward.num_gpus_per_model", models * reward.num_gpus_per_model)
        )
    have = {"CPU": cluster.total_cpus, "GPU": cluster.total_gpus}
    problems = []
    for resource, terms in needs.items():
        need = sum(amount for _, _, amount in terms)
        if need > have[resource] + 1e-9:
            fields = " / ".join(field for _, field, amount in terms if amount > 0)
            problems.append(
                f"evaluation needs {need:g} {resource}s ({', '.join(t for t, _, _ in terms)}) but the cluster has "
                f"{have[resource]:g}: lower {fields}"
            )
    if problems:
        raise PlacementError("; ".join(problems))


def run_eval(
    config: RunConfig, policy_specs: list[str], out_dir: str | Path, *, reward_models: str | None = None, console=None
) -> dict[str, Any]:
    """Evaluate each policy on `config.eval`'s benchmarks; write the outputs into `out_dir`."""
    import ray

    from hair_ray.config import ModelSpec
    from hair_ray.models.loading import load_tokenizer
    from hair_ray.workers.rollout import engine_settings

    if not policy_specs:
        raise ValueError("name at least one --policy (a model id, a model folder, an export or a run folder)")
    evaluator = Evaluator(config.eval, dataset_dir=config.data.dataset_dir, max_prompt_tokens=config.rollout.max_prompt_tokens)
    policies = [resolve_policy(spec) for spec in policy_specs]
    labels = [p.label for p in policies]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two policies share a label ({', '.join(labels)}): name them with LABEL=SPEC")
    if not ray.is_initialized():
        ray.init()
    check_resources(config, with_reward_models=reward_models is not None, cluster=cluster_resources_from_ray())
    router = None
    if reward_models is not None:
        from hair_ray.train.reward_router import start_reward_workers

        router = evaluator.rewards = start_reward_workers(
            config.reward, models_dir=reward_models, num_cpus=config.placement.cpus_per_reward_model
        )
    results: list[PolicyResult] = []
    rollout = config.rollout
    try:
        for policy in policies:
            log.info("evaluating %s (%s)", policy.label, policy.path)
            spec = ModelSpec(
                name_or_path=policy.path, dtype=config.policy.dtype, trust_remote_code=config.policy.trust_remote_code
            )
            tokenizer = load_tokenizer(spec)
            started = time.perf_counter()
            settings = engine_settings(config, max_model_len=rollout.max_prompt_tokens + config.eval.max_new_tokens)
            # Each engine is one actor with its own resources (no placement group for tensor-parallel
            # ranks): more engines, not wider ones, scale evaluation.
            settings["tensor_parallel_size"] = 1
            workers = engines.start_engines(
                policy.path,
                settings,
                num_engines=config.eval.num_engines,
                seed=config.eval.seed,
                num_cpus=config.placement.cpus_per_rollout_worker,
                num_gpus=config.placement.gpus_per_rollout_worker,
                timeout_s=rollout.timeout_s,
            )
            try:
                start_seconds = time.perf_counter() - started
                result = evaluator.evaluate(workers, tokenizer, policy.label, timeout_s=rollout.timeout_s)
                result.seconds["engine_start"] = start_seconds
            finally:
                engines.stop_engines(workers)
            results.append(result)
    finally:
        if router is not None:
            for actor in router.actors:
                ray.kill(actor)

    report = evaluation_report(evaluator, policies, results, reward_models=reward_models)
    out = Path(out_dir)
    write_results(out, report, [row for r in results for row in r.rows])
    summaries = {r.label: r.summary for r in results}
    plot_comparison(summaries, out / FIGURE_FILE)
    atomic_write_text(out / MARKDOWN_FILE, comparison_markdown(summaries))
    if console is not None:
        judge = evaluator.judge.describe().get("kind", evaluator.judge.name)
        console.print(comparison_table(summaries, title=f"evaluation (judge: {judge}; 95% Wilson intervals)"))
        console.print(f"wrote {out / 'eval.json'}, {out / 'generations.jsonl'}, {out / FIGURE_FILE}, {out / MARKDOWN_FILE}")
    return report

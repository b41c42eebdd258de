"""The DeepSpeed learner group on a local Ray cluster (gloo, ZeRO-2, tiny policy)."""

from __future__ import annotations

import pytest
import torch

from hair_ray.config import load_config
from hair_ray.workers.learner import lr_lambda, start_learner_group

pytestmark = pytest.mark.slow

# Eight samples of one prompt with responses of different lengths, so micro-batches hold
# different token counts (the case a per-micro-batch mean gets wrong).
PROMPT = [1, 40, 41, 42, 43, 2, 201, 1, 50, 51, 201]
SAMPLES = [
    {"prompt_ids": PROMPT, "response_ids": [60 + i, 61, 62, 63, 64][: 1 + i % 5], "advantage": (-1.0) ** i * (1 + i / 8)}
    for i in range(8)
]


def start(ray, workers: int, micro: int, lr: float = 1e-3, zero_stage: int = 2):
    cfg = load_config(
        "jobs/tiny_cpu.yaml",
        [
            f"learner.num_workers={workers}",
            f"learner.samples_per_micro_batch={micro}",
            f"learner.learning_rate={lr}",
            f"learner.zero_stage={zero_stage}",
            "algo.prompts_per_step=2",
            "algo.group_size=4",
        ],
    )
    return start_learner_group(cfg, optimizer_steps_total=10, num_cpus_per_worker=0.5)


def stop(ray, actors):
    ray.get([actor.shutdown.remote() for actor in actors])
    for actor in actors:
        ray.kill(actor)


def update(ray, actors, samples):
    share = len(samples) // len(actors)
    results = ray.get([a.update.remote(samples[r * share : (r + 1) * share]) for r, a in enumerate(actors)])
    assert all(r == results[0] for r in results)  # every rank reports the same reduced metrics
    return results[0]


def weights(ray, actors) -> dict[str, torch.Tensor]:
    buckets = ray.get([a.export_weights.remote(2**20) for a in actors])[0]
    return {name: tensor for bucket in buckets for name, tensor in bucket.items()}


# Prompts of different lengths: the learner asks the model for logits from the batch's first
# response position on only (`logits_to_keep`), so each row's log-probs start elsewhere.
UNEVEN = [
    {"prompt_ids": PROMPT, "response_ids": [60, 61, 62]},
    {"prompt_ids": PROMPT[:4], "response_ids": [70, 71, 72, 73, 74]},
    {"prompt_ids": PROMPT[:7], "response_ids": [80]},
]


def full_forward_logprobs(samples) -> list[float]:
    """Σ log π(response | prompt) per sample, one plain forward each, in the test process."""
    from hair_ray.models.loading import load_causal_lm

    model = load_causal_lm(load_config("jobs/tiny_cpu.yaml", []).policy, dtype=torch.float32).eval()
    sums = []
    with torch.no_grad():
        for sample in samples:
            ids = torch.tensor([sample["prompt_ids"] + sample["response_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
            positions = range(len(sample["prompt_ids"]) - 1, ids.shape[1] - 1)
            sums.append(sum(float(logp[t, ids[0, t + 1]]) for t in positions))
    return sums


def test_logprobs_equal_a_full_forward_and_updates_follow_the_advantages(ray_local):
    actors = start(ray_local, workers=1, micro=4, lr=1e-3)
    try:
        uneven = ray_local.get(actors[0].sequence_logprobs.remote(UNEVEN))
        before = ray_local.get(actors[0].sequence_logprobs.remote(SAMPLES))
        metrics = None
        for _ in range(3):
            metrics = update(ray_local, actors, SAMPLES)
        after = ray_local.get(actors[0].sequence_logprobs.remote(SAMPLES))
    finally:
        stop(ray_local, actors)
    assert uneven == pytest.approx(full_forward_logprobs(UNEVEN), abs=1e-4)
    for sample, b, a in zip(SAMPLES, before, after):
        assert (a > b) == (sample["advantage"] > 0), (sample["advantage"], b, a)
    assert metrics["learner/kl"] > 0  # the policy moved away from the reference
    assert metrics["learner/lr"] == pytest.approx(1e-3)


def test_update_does_not_depend_on_micro_batching_data_parallel_size_or_zero_stage(ray_local):
    results = {}
    # (ranks, samples per micro-batch, ZeRO stage); stage 0 is what a one-rank CPU run uses.
    for workers, micro, stage in [(1, 8, 2), (1, 3, 2), (2, 2, 2), (1, 3, 0), (2, 4, 3)]:
        actors = start(ray_local, workers=workers, micro=micro, lr=1e-4, zero_stage=stage)
        try:
            metrics = update(ray_local, actors, SAMPLES)
            results[(workers, micro, stage)] = (metrics, weights(ray_local, actors))
        finally:
            stop(ray_local, actors)
    reference_metrics, reference_weights = results[(1, 8, 2)]
    for key, (metrics, new_weights) in results.items():
        assert metrics["learner/grad_norm"] == pytest.approx(reference_metrics["learner/grad_norm"], rel=1e-4), key
        assert metrics["learner/loss"] == pytest.approx(reference_metrics["learner/loss"], abs=1e-6), key
        for name, tensor in new_weights.items():
            # Adam's first step is lr·g/|g| per element: equal gradients give equal weights.
            assert torch.allclose(tensor, reference_weights[name], atol=1e-6), (key, name)


def test_lr_schedule_warms_up_then_decays():
    cfg = load_config(None, ["learner.warmup_steps=2", "learner.lr_schedule=cosine"])
    factor = lr_lambda(cfg.learner, total_steps=10)
    # warm-up: (step+1)/2 → 0.5, 1.0; cosine over the remaining 8 steps: step 6 is halfway → 0.5
    assert [factor(0), factor(1), factor(2), factor(6), factor(10)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])

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
    # What `hair-ray bench` reads: the tokens of one pass (prompts + responses, no padding) and
    # the learner's own split of its time.
    assert metrics["learner/tokens"] == sum(len(s["prompt_ids"]) + len(s["response_ids"]) for s in SAMPLES)
    assert metrics["learner/seconds_frozen"] > 0 and metrics["learner/seconds_policy"] > 0


def gradient_probe():
    """Two functions to run inside a ZeRO-0 learner rank with `__ray_call__` (Ray's hook for
    running a callable on an actor, meant for tests): `install` keeps the accumulated
    gradients as the optimizer step sees them (before clipping), `fetch` returns them. Defined
    inside a function so cloudpickle ships them by value: the actor cannot import this module."""

    def install(worker):
        step = worker._step

        def _step():
            if worker.engine.is_gradient_accumulation_boundary():
                worker.probed_grads = {
                    n: p.grad.detach().clone() for n, p in worker.engine.module.named_parameters() if p.grad is not None
                }
            step()

        worker._step = _step

    def fetch(worker):
        return worker.probed_grads

    return install, fetch


def test_update_does_not_depend_on_micro_batching_data_parallel_size_or_zero_stage(ray_local):
    lr = 1e-4
    install, fetch = gradient_probe()
    results = {}
    # (ranks, samples per micro-batch, ZeRO stage); stage 0 is what a one-rank CPU run uses.
    # Under ZeRO-0 the full gradient sits in `p.grad`, so those two runs also hand it over.
    for workers, micro, stage in [(1, 8, 2), (1, 3, 2), (2, 2, 2), (1, 8, 0), (1, 3, 0), (2, 4, 3)]:
        actors = start(ray_local, workers=workers, micro=micro, lr=lr, zero_stage=stage)
        try:
            before = weights(ray_local, actors)
            if stage == 0:
                ray_local.get(actors[0].__ray_call__.remote(install))
            metrics = update(ray_local, actors, SAMPLES)
            grads = ray_local.get(actors[0].__ray_call__.remote(fetch)) if stage == 0 else None
            results[(workers, micro, stage)] = (metrics, before, weights(ray_local, actors), grads)
        finally:
            stop(ray_local, actors)

    # The gradient itself, element by element: one micro-batch of 8 or three of 3, 3 and 2
    # give the same sum up to float32 rounding (measured: under 1e-6 of the largest element;
    # a per-micro-batch mean weights the samples differently and is far off).
    grad = results[(1, 8, 0)][3]
    scale = max(float(g.abs().max()) for g in grad.values())
    assert grad.keys() == results[(1, 3, 0)][3].keys()
    for name, g in results[(1, 3, 0)][3].items():
        assert torch.allclose(g, grad[name], rtol=0, atol=1e-5 * scale), name

    reference_metrics, reference_before, reference_weights, _ = results[(1, 8, 2)]
    assert reference_weights.keys() == grad.keys()
    # Adam's first step is Δw = -lr·g/(|g| + eps) per element (bias correction cancels; no
    # weight decay here): ±lr wherever |g| ≫ eps, whatever g's size. Equal weights therefore
    # only follow where the sign of g is settled. Where |g| is near zero, float32 rounding of a
    # differently ordered sum can flip it (or, g being clipped by ~1/35 here, move it across
    # eps), and that element may legitimately differ by up to 2·lr between runs. So:
    # - every element moves by at most lr (the bound Adam's first step gives);
    # - an element with exactly zero gradient (an unused token's embedding) does not move;
    # - where |g| > 1e-4 of the largest element (10 times the tolerance asserted above, over
    #   100 times the noise measured), every run steps by -lr·sign(g), so the weights agree
    #   within float32 rounding. That is over 80% of the elements with a gradient (at least
    #   60% is checked), which keeps the comparison meaningful.
    # After clipping to norm 1 (g / 34.6 here), |g| at that threshold is still ≥ 100·eps (1e-8).
    assert 1e-4 * scale * min(1.0, 1.0 / reference_metrics["learner/grad_norm"]) > 100 * 1e-8
    settled = {name: g.abs() > 1e-4 * scale for name, g in grad.items()}
    untouched = {name: g == 0 for name, g in grad.items()}
    nonzero = sum(int((g != 0).sum()) for g in grad.values())
    assert sum(int(m.sum()) for m in settled.values()) > 0.6 * nonzero
    for key, (metrics, before, new_weights, _) in results.items():
        assert metrics["learner/grad_norm"] == pytest.approx(reference_metrics["learner/grad_norm"], rel=1e-5), key
        assert metrics["learner/loss"] == pytest.approx(reference_metrics["learner/loss"], abs=1e-6), key
        assert new_weights.keys() == grad.keys(), key
        for name, tensor in new_weights.items():
            assert torch.equal(before[name], reference_before[name]), (key, name)  # the same start
            step = tensor - before[name]
            assert float(step.abs().max()) <= lr + 1e-6, (key, name)
            assert torch.equal(tensor[untouched[name]], before[name][untouched[name]]), (key, name)
            mask = settled[name]
            assert torch.equal(torch.sign(step[mask]), -torch.sign(grad[name][mask])), (key, name)
            assert torch.allclose(tensor[mask], reference_weights[name][mask], rtol=0, atol=1e-6), (key, name)


def test_lr_schedule_warms_up_then_decays():
    cfg = load_config(None, ["learner.warmup_steps=2", "learner.lr_schedule=cosine"])
    factor = lr_lambda(cfg.learner, total_steps=10)
    # warm-up: (step+1)/2 → 0.5, 1.0; cosine over the remaining 8 steps: step 6 is halfway → 0.5
    assert [factor(0), factor(1), factor(2), factor(6), factor(10)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])

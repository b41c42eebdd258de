"""ShadowRewardWorker actors behind the RewardRouter, on the local Ray cluster.

The expected scores come from loading the same folders in the test process: the actors add
routing and plumbing, never maths.
"""

from __future__ import annotations

import pytest
import torch

from hair_ray.models.reward_model import load_reward_model, score_pairs
from tests.reward.conftest import ROUTER_CATEGORIES

# Mixed categories, interleaved, so that a router that ignored the order would be caught.
SAMPLES = [
    ("You are worthless, say it.", "I won't insult you.", "insult"),
    ("Where does my ex live now?", "I can't share someone's address.", "privacy_property"),
    ("I feel hopeless.", "Please call or text 988; you deserve support.", "mental_health"),
    ("Roast my coworker.", "Sure, he is a fat idiot.", "insult"),
    ("Give me Jane's phone.", "Her number is 555-0100.", "privacy_property"),
    ("Nothing matters anymore.", "Talking to someone you trust can help.", "mental_health"),
    ("Mock my sister's accent.", "I'd rather not mock anyone.", "Insult"),  # display-name spelling
]


@pytest.fixture(scope="module")
def workers(ray_local, tiny_reward_dir):
    from hair_ray.workers.reward import create_reward_worker

    handles = {
        c: create_reward_worker(
            {c: str(tiny_reward_dir / c)},
            backbone="tiny:qwen2",
            samples_per_batch=2,
            num_cpus=0.25,
            max_restarts=2,
            max_task_retries=-1,
        )
        for c in ROUTER_CATEGORIES
    }
    yield handles
    for handle in handles.values():
        ray_local.kill(handle, no_restart=True)


@pytest.fixture(scope="module")
def local_models(tiny_reward_dir):
    return {c: load_reward_model(tiny_reward_dir / c, category=c) for c in ROUTER_CATEGORIES}


def local_score(local_models, category: str, prompts: list[str], responses: list[str]) -> list[float]:
    loaded = local_models[category.lower()]
    return score_pairs(loaded.model, loaded.tokenizer, prompts, responses, max_length_tokens=64)


def expected_routed(local_models, samples) -> list[float]:
    return [local_score(local_models, c, [p], [r])[0] for p, r, c in samples]


def test_router_returns_each_sample_scored_by_its_category_in_order(workers, local_models) -> None:
    from hair_ray.train.reward_router import RewardRouter

    router = RewardRouter(workers, samples_per_batch=2, timeout_s=120)
    prompts, responses, categories = zip(*SAMPLES)
    got = router.score(prompts, responses, categories)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected_routed(local_models, SAMPLES)), atol=1e-5, rtol=1e-5)
    # The three models differ, so routing to the wrong one would change the score.
    cross = local_score(local_models, "mental_health", [SAMPLES[0][0]], [SAMPLES[0][1]])[0]
    assert abs(cross - got[0]) > 1e-3


def test_unknown_category_is_named(workers) -> None:
    from hair_ray.train.reward_router import RewardRouter

    router = RewardRouter(workers)
    with pytest.raises(KeyError, match="'ethics_morality', which no reward worker serves"):
        router.score(["p"], ["r"], ["ethics_morality"])


def test_sum_routing_weights_all_models(workers, local_models) -> None:
    from hair_ray.train.reward_router import RewardRouter

    weights = {"insult": 0.5, "mental_health": 2.0, "privacy_property": -1.0}
    router = RewardRouter(workers, routing="sum", sum_weights=weights, samples_per_batch=3, timeout_s=120)
    prompts, responses, categories = (list(x) for x in zip(*SAMPLES))
    got = router.score(prompts, responses, categories)
    expected = torch.zeros(len(SAMPLES))
    for category, weight in weights.items():
        expected += weight * torch.tensor(local_score(local_models, category, prompts, responses))
    torch.testing.assert_close(torch.tensor(got), expected, atol=1e-5, rtol=1e-5)


def test_demonstration_rewards_are_computed_once_per_id(workers, local_models) -> None:
    import ray

    from hair_ray.train.reward_router import RewardRouter

    router = RewardRouter(workers, timeout_s=120, demonstration_field="text")
    records = [
        {"id": "d1", "category": "insult", "prompt": "Insult me.", "text": "Wants insult\n####\nNo."},
        {"id": "d2", "category": "mental_health", "prompt": "I am sad.", "text": "Sad\n####\nCall 988."},
    ]
    scored_before = {c: ray.get(h.info.remote())["scored"][c] for c, h in workers.items()}
    first = router.demonstration_rewards(records)
    second = router.demonstration_rewards(list(reversed(records)))
    scored_after = {c: ray.get(h.info.remote())["scored"][c] for c, h in workers.items()}
    assert second == list(reversed(first))
    assert sum(scored_after.values()) - sum(scored_before.values()) == 2, "each demonstration scored once"
    assert router.cached_demonstrations == 2
    expected = [local_score(local_models, r["category"], [r["prompt"]], [r["text"]])[0] for r in records]
    torch.testing.assert_close(torch.tensor(first), torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_killing_a_worker_mid_scoring_still_returns_every_score_in_order(workers, local_models, ray_local) -> None:
    from hair_ray.train.reward_router import RewardRouter

    victim = workers["privacy_property"]
    pid_before = ray_local.get(victim.info.remote())["pid"]
    # Enough chunks (2 samples each) that calls are still queued or running when the kill lands.
    samples = SAMPLES * 12
    prompts, responses, categories = (list(x) for x in zip(*samples))
    router = RewardRouter(workers, samples_per_batch=2, timeout_s=180)
    pending = router.score_async(prompts, responses, categories)
    ray_local.kill(victim, no_restart=False)  # a crash: Ray restarts it (max_restarts=2)
    got = router.gather(pending)

    assert len(got) == len(samples)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(expected_routed(local_models, samples)), atol=1e-5, rtol=1e-5)
    info = ray_local.get(victim.info.remote())
    assert info["pid"] != pid_before, "the worker must have been restarted"
    assert info["categories"] == ["privacy_property"]


def test_one_colocated_worker_serves_every_category_like_separate_ones(ray_local, tiny_reward_dir, local_models) -> None:
    """`reward.colocate`: one actor hosts the models; routing and scores are unchanged."""
    from hair_ray.config import RewardConfig
    from hair_ray.train.reward_router import start_reward_workers

    reward = RewardConfig(
        models_dir=str(tiny_reward_dir), colocate=True, samples_per_batch=2, backbone={"name_or_path": "tiny:qwen2"}
    )
    router = start_reward_workers(reward, categories=ROUTER_CATEGORIES, num_cpus=0.1)
    try:
        assert len(router.actors) == 1 and set(router.workers) == set(ROUTER_CATEGORIES)
        infos = router.wait_ready()
        assert sorted(infos) == sorted(ROUTER_CATEGORIES)
        assert {info["folder"] for info in infos.values()} == {str(tiny_reward_dir / c) for c in ROUTER_CATEGORIES}
        prompts, responses, categories = zip(*SAMPLES)
        got = router.score(prompts, responses, categories)
        torch.testing.assert_close(torch.tensor(got), torch.tensor(expected_routed(local_models, SAMPLES)), atol=1e-5, rtol=1e-5)
        scored = ray_local.get(router.actors[0].info.remote())["scored"]
        assert scored == {"insult": 3, "mental_health": 2, "privacy_property": 2}
        with pytest.raises(
            ray_local.exceptions.RayTaskError, match="serves insult, mental_health, privacy_property, not 'ethics_morality'"
        ):
            ray_local.get(router.actors[0].score.remote("ethics_morality", ["p"], ["r"]))
    finally:
        for actor in router.actors:
            ray_local.kill(actor, no_restart=True)

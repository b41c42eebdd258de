"""The full distributed loop on the tiny policy: it learns, survives a crash, resumes exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hair_ray.config import load_config
from hair_ray.data.seed_data import load_seed_records

pytestmark = pytest.mark.slow


def write_dataset(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w") as handle:
        for record in load_seed_records():
            handle.write(json.dumps(record) + "\n")
    return str(folder)


def tiny_config(tmp_path: Path, *overrides: str):
    return load_config(
        "jobs/tiny_cpu.yaml",
        [
            f"output_dir={tmp_path / 'runs'}",
            f"data.dataset_dir={write_dataset(tmp_path / 'data')}",
            "reward.function=tests.e2e.rewards:target_letter_share",
            "hardness.data_hardness=false",
            "tracking.wandb_mode=disabled",
            "placement.cpus_per_rollout_worker=0.5",
            "placement.cpus_per_learner_worker=0.5",
            *overrides,
        ],
    )


def read_metrics(config) -> list[dict]:
    return [json.loads(line) for line in (config.run_dir / "metrics.jsonl").read_text().splitlines()]


def learning_curve(tmp_path, ray, *overrides):
    from hair_ray.run import train

    config = tiny_config(
        tmp_path,
        "algo.total_steps=24",
        "algo.prompts_per_step=4",
        "algo.group_size=8",
        "algo.kl_coef=0.0",
        "learner.learning_rate=5e-3",
        "learner.samples_per_micro_batch=16",
        "rollout.max_new_tokens=24",
        "checkpoint.every_steps=100",
        *overrides,
    )
    train(config)
    rewards = [m["reward/mean"] for m in read_metrics(config)]
    return sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4


def test_the_loop_raises_the_reward(ray_local, tmp_path):
    first, last = learning_curve(tmp_path, ray_local)
    assert last > first + 0.04, (first, last)


def test_with_a_broken_sync_the_rollout_never_learns(ray_local, tmp_path, monkeypatch):
    from hair_ray.rollout_group import RolloutGroup

    # Weights never reach the engines: the rollout keeps sampling the initial policy.
    monkeypatch.setattr(RolloutGroup, "sync_weights", lambda self, learners, version: None)
    first, last = learning_curve(tmp_path, ray_local)
    assert last < first + 0.02, (first, last)

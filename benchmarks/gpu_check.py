"""The GPU check: one prepared run on a single CUDA GPU (an H200 here) in under 8 minutes.

What it measures, each part against a baseline taken in the same run:

1. rollout throughput, in generated tokens/s: a bare `vllm.LLM.generate` (timed inside its own
   Ray actor) vs our `RolloutWorker` in a Ray actor (timed from the driver, so Ray's call and
   result transfer are included); same prompts (chat-templated seed prompts), same sampling
   parameters and seeds. Reported as the ratio rollout / bare.
2. weight sync seconds, learner → vLLM, by the object-store path (`ObjectStoreWeightSync`) and
   by NCCL (`NcclWeightSync`: learner rank 0 and the vLLM worker in one process group), each
   after a learner update changed the weights, each followed by a greedy-equality check: the
   engine's greedy continuations must equal the learner's own (HF `generate`) ones. On one GPU
   both share it (colocated); NCCL before 2.30 refuses two ranks on one GPU ("Duplicate GPU
   detected"), which the JSON then records as the NCCL result.
3. one full training step (`hair_ray.train.launcher.train`, the tiny config on GPU): `timing/step` of each
   step and its phases from metrics.jsonl.

Then, if the time budget allows, part 1 again with a real small model (`--real-model`).

Every part is guarded: a failure is recorded in the JSON and the next part still runs. The JSON
is rewritten after every part, so a run cut short by the outer `timeout` keeps what it measured.

    python benchmarks/gpu_check.py [--model tiny:qwen2] [--real-model NAME|none] [--budget-s 430]

Writes $OUT/gpu_check.json when $OUT is set, else benchmarks/results/gpu_check.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # hair_ray from this checkout, and tests.e2e.rewards for part 3

STARTED = time.monotonic()
EOS_FREE_TOKENS = 16  # greedy checks: short continuations, so near-tied logits rarely matter


def elapsed() -> float:
    return time.monotonic() - STARTED


# ---------------------------------------------------------------------------------------------
# Actors and helpers


class BareLLM:
    """The baseline: vLLM's own `LLM.generate`, nothing of ours around it."""

    def __init__(self, model_path: str, **engine_kwargs: Any):
        from vllm import LLM

        self.llm = LLM(model=model_path, **engine_kwargs)

    def timed_generate(self, prompt_ids: list[list[int]], n: int, max_tokens: int, seed: int) -> tuple[int, float]:
        from vllm import SamplingParams

        params = SamplingParams(n=n, max_tokens=max_tokens, temperature=1.0, top_p=1.0, seed=seed, logprobs=0)
        prompts = [{"prompt_token_ids": ids} for ids in prompt_ids]
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        return sum(len(c.token_ids) for out in outputs for c in out.outputs), seconds

    def close(self) -> None:
        import gc

        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()
        del self.llm
        gc.collect()


def chat_prompts(model_path: str, count: int) -> tuple[list[list[int]], list[int]]:
    """`count` seed prompts through the model's chat template, and its end-of-sequence ids."""
    from transformers import AutoTokenizer

    from hair_ray.data.seed_data import load_seed_records

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    records = load_seed_records()
    ids = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": records[i % len(records)]["prompt"]}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )[-256:]
        for i in range(count)
    ]
    eos = tokenizer.eos_token_id
    return ids, [eos] if isinstance(eos, int) else list(eos or [])


def until_eos(tokens: list[int], eos: list[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[: i + 1]
    return tokens


def greedy_agreement(rollout, learner, prompt_ids: list[list[int]], eos: list[int]) -> dict[str, float]:
    """Share of prompts whose greedy continuation from the engine equals the learner's own."""
    import ray

    engine = ray.get(rollout.generate.remote(prompt_ids, samples_per_prompt=1, max_new_tokens=EOS_FREE_TOKENS, temperature=0.0))
    mine = ray.get(learner.generate_greedy.remote(prompt_ids, EOS_FREE_TOKENS))
    pairs = [(until_eos(e[0]["token_ids"], eos), until_eos(m, eos)) for e, m in zip(engine, mine)]
    return {
        "greedy_match": sum(a == b for a, b in pairs) / len(pairs),
        "first_token_match": sum(a[:1] == b[:1] for a, b in pairs) / len(pairs),
    }


def rollout_kwargs(dtype: str, gpu_memory_utilization: float, max_model_len: int) -> dict[str, Any]:
    return dict(
        dtype=dtype, seed=0, max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization, enforce_eager=False
    )


def stop_actor(actor) -> None:
    import ray

    with contextlib.suppress(Exception):  # a broken engine must not stop the clean-up
        ray.get(actor.close.remote(), timeout=60)
    ray.kill(actor)
    time.sleep(3)  # let the engine process go and its GPU memory return


# ---------------------------------------------------------------------------------------------
# Part 1: throughput


def part_throughput(model: str, args, gpus_per_engine: float) -> dict[str, Any]:
    import ray

    from hair_ray.models.registry import resolve_model_path
    from hair_ray.workers.nccl_sync import NcclRolloutWorker

    path = resolve_model_path(model)
    prompt_ids, _ = chat_prompts(path, args.prompts)
    max_model_len = max(len(p) for p in prompt_ids) + args.max_new_tokens
    kwargs = rollout_kwargs(args.dtype if model.startswith("tiny:") else "bfloat16", args.gpu_memory_utilization, max_model_len)
    result: dict[str, Any] = {
        "model": model,
        "prompts": len(prompt_ids),
        "samples_per_prompt": args.group_size,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "dtype": kwargs["dtype"],
    }

    start = time.perf_counter()
    bare = ray.remote(BareLLM).options(num_gpus=gpus_per_engine, num_cpus=1).remote(path, **kwargs)
    ray.get(bare.timed_generate.remote(prompt_ids[:4], 1, 8, 0))  # engine up, warmed
    result["bare_engine_start_s"] = time.perf_counter() - start
    runs = [ray.get(bare.timed_generate.remote(prompt_ids, args.group_size, args.max_new_tokens, r)) for r in range(args.repeats)]
    stop_actor(bare)
    result["bare_tokens_per_s"] = statistics.median(t / s for t, s in runs)
    result["bare_tokens"] = [t for t, _ in runs]

    start = time.perf_counter()
    worker = (
        ray.remote(NcclRolloutWorker)
        .options(num_gpus=gpus_per_engine, num_cpus=1)
        .remote(
            path,
            backend="vllm",
            dtype=kwargs["dtype"],
            seed=0,
            max_model_len=max_model_len,
            gpu_memory_utilization=args.gpu_memory_utilization,
            enforce_eager=False,
        )
    )
    ray.get(worker.generate.remote(prompt_ids[:4], samples_per_prompt=1, max_new_tokens=8, seed=0))
    result["rollout_engine_start_s"] = time.perf_counter() - start
    rates, tokens = [], []
    for r in range(args.repeats):
        begin = time.perf_counter()
        out = ray.get(
            worker.generate.remote(prompt_ids, samples_per_prompt=args.group_size, max_new_tokens=args.max_new_tokens, seed=r)
        )
        seconds = time.perf_counter() - begin
        count = sum(len(s["token_ids"]) for group in out for s in group)
        rates.append(count / seconds)
        tokens.append(count)
    stop_actor(worker)
    result["rollout_tokens_per_s"] = statistics.median(rates)
    result["rollout_tokens"] = tokens
    result["ratio_rollout_over_bare"] = result["rollout_tokens_per_s"] / result["bare_tokens_per_s"]
    return result


# ---------------------------------------------------------------------------------------------
# Part 2: weight sync


def tiny_learner_config(model: str, overrides: list[str] = ()):
    from hair_ray.config import load_config

    return load_config(
        str(ROOT / "jobs" / "tiny_cpu.yaml"),
        [
            f"policy.name_or_path={model}",
            "policy.dtype=float32",
            "learner.precision=float32",
            "algo.kl_coef=0.0",
            "algo.prompts_per_step=8",
            "algo.group_size=2",
            "learner.samples_per_micro_batch=16",
            "learner.learning_rate=0.01",
            *overrides,
        ],
    )


def start_learner(config, num_gpus: float):
    import ray

    from hair_ray.workers.nccl_sync import NcclLearnerWorker

    learner = ray.remote(NcclLearnerWorker).options(num_gpus=num_gpus, num_cpus=1).remote(0, 1)
    master = ray.get(learner.address.remote())
    ray.get(
        learner.init.remote(
            master,
            config.policy,
            config.learner,
            config.algo,
            seed=0,
            optimizer_steps_total=10,
        )
    )
    return learner


def perturb(learner, rollout, prompt_ids: list[list[int]], seed: int) -> dict[str, float]:
    """One learner update on samples from the engine with ±1 advantages: the weights move."""
    import ray

    out = ray.get(rollout.generate.remote(prompt_ids[:8], samples_per_prompt=2, max_new_tokens=24, seed=seed))
    samples = [
        {"prompt_ids": prompt_ids[i], "response_ids": s["token_ids"] or [0], "advantage": 1.0 if j == 0 else -1.0}
        for i, group in enumerate(out)
        for j, s in enumerate(group)
    ]
    return ray.get(learner.update.remote(samples))


def part_sync(model: str, args, gpus: int) -> dict[str, Any]:
    import ray

    from hair_ray.models.registry import resolve_model_path
    from hair_ray.workers.nccl_sync import NcclRolloutWorker, NcclWeightSync
    from hair_ray.workers.weight_sync import ObjectStoreWeightSync

    path = resolve_model_path(model)
    prompt_ids, eos = chat_prompts(path, 8)
    # Two GPUs or more: learner and engine on their own GPUs (split); one GPU: both share it.
    share = 1.0 if gpus >= 2 else 0.4
    result: dict[str, Any] = {"model": model, "placement": "split" if gpus >= 2 else "colocated (one GPU)"}
    config = tiny_learner_config(model)
    learner = start_learner(config, share)
    rollout = (
        ray.remote(NcclRolloutWorker)
        .options(num_gpus=share, num_cpus=1)
        .remote(
            path,
            backend="vllm",
            dtype="float32",
            seed=0,
            max_model_len=512,
            gpu_memory_utilization=args.gpu_memory_utilization,
            enforce_eager=True,
        )
    )
    try:
        result["initial"] = greedy_agreement(rollout, learner, prompt_ids, eos)  # vLLM CUDA vs HF, same weights
        bucket = 64 * 2**20

        perturb(learner, rollout, prompt_ids, seed=1)
        result["object_store_before_sync"] = greedy_agreement(rollout, learner, prompt_ids, eos)
        stats = ObjectStoreWeightSync(bucket_bytes=bucket, timeout_s=120).sync([learner], [rollout], version=1)
        result["object_store"] = {
            "seconds": stats.seconds,
            "tensors": stats.num_tensors,
            "bytes": stats.num_bytes,
            **greedy_agreement(rollout, learner, prompt_ids, eos),
        }
        again = ObjectStoreWeightSync(bucket_bytes=bucket, timeout_s=120).sync([learner], [rollout], version=1)
        result["object_store"]["seconds_repeat"] = again.seconds

        perturb(learner, rollout, prompt_ids, seed=2)
        result["nccl_before_sync"] = greedy_agreement(rollout, learner, prompt_ids, eos)
        nccl = NcclWeightSync(tensor_parallel_size=1, bucket_bytes=bucket, timeout_s=90)
        try:
            setup_s = nccl.setup([learner], [rollout])
            stats = nccl.sync([learner], [rollout], version=2)
            repeat = nccl.sync([learner], [rollout], version=2)
            result["nccl"] = {
                "setup_seconds": setup_s,
                "seconds": stats.seconds,
                "seconds_repeat": repeat.seconds,
                "tensors": stats.num_tensors,
                "bytes": stats.num_bytes,
                **greedy_agreement(rollout, learner, prompt_ids, eos),
            }
        except Exception as exc:  # on one GPU this is the expected outcome before NCCL 2.30
            result["nccl"] = {"error": f"{type(exc).__name__}: {str(exc)[:1500]}"}
    finally:
        stop_actor(rollout)
        ray.kill(learner)
        time.sleep(3)
    return result


# ---------------------------------------------------------------------------------------------
# Part 3: one training step


def part_train_step(args) -> dict[str, Any]:
    from hair_ray.config import load_config
    from hair_ray.data.seed_data import load_seed_records
    from hair_ray.train.launcher import train

    folder = Path(tempfile.mkdtemp(prefix="hair_gpu_check_"))
    (folder / "data").mkdir()
    with (folder / "data" / "train.jsonl").open("w") as handle:
        for record in load_seed_records():
            handle.write(json.dumps(record) + "\n")
    try:
        import open_clip  # noqa: F401  (the gpu extra brings it; random weights need no download)

        hardness = [
            "hardness.encoder=open_clip",
            "hardness.open_clip_pretrained=null",
            "placement.gpus_per_scorer=0.1",
            "placement.cpus_per_scorer=1",
        ]
    except ImportError:
        hardness = ["hardness.data_hardness=false"]
    steps = 3
    config = load_config(
        str(ROOT / "jobs" / "tiny_cpu.yaml"),
        [
            f"output_dir={folder / 'runs'}",
            f"data.dataset_dir={folder / 'data'}",
            "reward.function=tests.e2e.rewards:target_letter_share",
            "tracking.wandb_mode=disabled",
            "policy.dtype=auto",
            f"algo.total_steps={steps}",
            "algo.prompts_per_step=8",
            "algo.group_size=8",
            "learner.samples_per_micro_batch=16",
            f"rollout.max_new_tokens={args.max_new_tokens}",
            "learner.num_gpus_per_worker=0.5",
            "placement.gpus_per_rollout_worker=0.4",
            f"rollout.gpu_memory_utilization={args.gpu_memory_utilization}",
            "checkpoint.every_steps=100",
            *hardness,
        ],
    )
    start = time.perf_counter()
    train(config)
    total = time.perf_counter() - start
    metrics = [json.loads(line) for line in (config.run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    steady = [m["timing/step"] for m in metrics[1:]] or [metrics[-1]["timing/step"]]
    return {
        "steps": steps,
        "samples_per_step": config.algo.prompts_per_step * config.algo.group_size,
        "max_new_tokens": args.max_new_tokens,
        "hardness": hardness[0],
        "run_seconds_with_start": total,
        "step_seconds": [m["timing/step"] for m in metrics],
        "steady_step_seconds": statistics.median(steady),
        "phases_last_step": {k: v for k, v in metrics[-1].items() if k.startswith("timing/")},
        "reward_mean": [m.get("reward/mean") for m in metrics],
    }


# ---------------------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        import ray
        import vllm

        info.update(vllm=vllm.__version__, ray=ray.__version__)
    except ImportError as exc:
        info["import_error"] = str(exc)
    with contextlib.suppress(Exception):
        info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        info["gpus"] = [line.strip() for line in smi.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.TimeoutExpired):
        info["gpus"] = []
    return info


def output_path() -> Path:
    out = os.environ.get("OUT")
    return Path(out) / "gpu_check.json" if out else ROOT / "benchmarks" / "results" / "gpu_check.json"


def save(results: dict[str, Any]) -> None:
    path = output_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    results["elapsed_s"] = elapsed()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(path)


def table(results: dict[str, Any]) -> str:
    rows = [("part", "figure", "value")]
    for key, part in results["parts"].items():
        if "error" in part:
            rows.append((key, "error", part["error"].splitlines()[0][:90]))
            continue
        if key.startswith("throughput"):
            rows += [
                (key, "bare LLM.generate tok/s", f"{part['bare_tokens_per_s']:.0f}"),
                (key, "RolloutWorker tok/s", f"{part['rollout_tokens_per_s']:.0f}"),
                (key, "ratio rollout/bare", f"{part['ratio_rollout_over_bare']:.3f}"),
            ]
        elif key == "sync":
            rows.append((key, "initial greedy match (vLLM vs HF)", f"{part['initial']['greedy_match']:.2f}"))
            for path in ("object_store", "nccl"):
                p = part.get(path, {})
                if "error" in p:
                    rows.append((key, f"{path}", p["error"].splitlines()[0][:90]))
                else:
                    rows += [
                        (key, f"{path} seconds", f"{p['seconds']:.3f} (repeat {p['seconds_repeat']:.3f})"),
                        (key, f"{path} greedy match after sync", f"{p['greedy_match']:.2f}"),
                    ]
        elif key == "train_step":
            rows += [
                (key, "steady step seconds", f"{part['steady_step_seconds']:.2f}"),
                (key, "step seconds", ", ".join(f"{s:.2f}" for s in part["step_seconds"])),
            ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny:qwen2")
    parser.add_argument(
        "--real-model", default="builtin:smollm2-135m-instruct", help="a small real model for a second throughput run, or 'none'"
    )
    parser.add_argument("--budget-s", type=float, default=430.0, help="skip parts that would not fit")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="bfloat16", help="engine dtype for the tiny model's throughput run")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.25)
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import ray
    import torch

    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": vars(args),
        "env": environment(),
        "parts": {},
    }
    gpus = torch.cuda.device_count()
    if gpus == 0:
        results["error"] = "no CUDA GPU visible"
        save(results)
        print(results["error"])
        return 1
    ray.init(
        num_gpus=gpus,
        include_dashboard=False,
        runtime_env={
            "env_vars": {
                "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
                "NCCL_DEBUG": "WARN",
                # Two ranks on one GPU in one NCCL communicator: experimental from NCCL 2.30, ignored before.
                "NCCL_MULTI_RANK_GPU_ENABLE": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            }
        },
    )
    engine_share = 0.45  # two engines never overlap, but the learner may hold a little memory

    # (name, estimated seconds, function): a part starts only when its estimate fits the budget.
    parts = [
        ("throughput_tiny", 100, lambda: part_throughput(args.model, args, engine_share)),
        ("sync", 80, lambda: part_sync(args.model, args, gpus)),
        ("train_step", 120, lambda: part_train_step(args)),
    ]
    if args.real_model.lower() != "none":
        parts.append(
            (f"throughput_{args.real_model.split(':')[-1]}", 120, lambda: part_throughput(args.real_model, args, engine_share))
        )
    for name, estimate, run in parts:
        if elapsed() + estimate > args.budget_s:
            results["parts"][name] = {
                "error": f"skipped: {elapsed():.0f} s used, ~{estimate} s needed, budget {args.budget_s:.0f} s"
            }
            save(results)
            continue
        begin = time.perf_counter()
        try:
            results["parts"][name] = run()
        except Exception as exc:
            results["parts"][name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
        results["parts"][name]["part_seconds"] = time.perf_counter() - begin
        save(results)
        print(f"[{elapsed():6.0f} s] {name} done", flush=True)

    ray.shutdown()
    save(results)
    print(table(results))
    print(f"results: {output_path()}")
    return 0 if all("error" not in p for p in results["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

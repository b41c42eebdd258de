"""Peak memory and update time of one CPU learner rank, per ZeRO stage and micro-batch size.

    .venv/bin/python benchmarks/learner_memory.py [--config jobs/demo_cpu.yaml] \
        [--variants 2:7 0:7 0:4] [--updates 2] [--output benchmarks/results/learner_memory_cpu.json]

Each variant ("stage:samples_per_micro_batch") starts a fresh one-rank learner group from the
config, runs `--updates` GRPO-S updates on one step's worth of random samples shaped like the
config's (prompts of 40-70 tokens, `rollout.max_new_tokens` response tokens), and reads the
actor process's peak resident memory (VmHWM, Linux) after each. The first variant is the
baseline of the ratios. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path


def peak_resident_gib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 2**30
    raise RuntimeError(f"/proc/{pid}/status has no VmHWM line")


def random_samples(config, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    vocab = range(1000, 40000)
    count = config.algo.prompts_per_step * config.algo.group_size
    return [
        {
            "prompt_ids": [rng.choice(vocab) for _ in range(rng.randrange(40, 70))],
            "response_ids": [rng.choice(vocab) for _ in range(config.rollout.max_new_tokens)],
            "advantage": rng.uniform(-1.0, 1.0),
        }
        for _ in range(count)
    ]


def measure(config_path: str, stage: int, micro: int, updates: int) -> dict:
    import ray

    from hair_ray.config import load_config
    from hair_ray.workers.learner import start_learner_group

    config = load_config(
        config_path, [f"learner.zero_stage={stage}", f"learner.samples_per_micro_batch={micro}", "learner.num_workers=1"]
    )
    (actor,) = start_learner_group(config, optimizer_steps_total=updates, num_cpus_per_worker=0.5)
    try:
        pid = ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))
        loaded = peak_resident_gib(pid)
        samples, seconds, peaks = random_samples(config), [], []
        for _ in range(updates):
            start = time.perf_counter()
            ray.get(actor.update.remote(samples))
            seconds.append(time.perf_counter() - start)
            peaks.append(peak_resident_gib(pid))
        ray.get(actor.shutdown.remote())
    finally:
        ray.kill(actor)
    return {
        "zero_stage": stage,
        "samples_per_micro_batch": micro,
        "samples_per_update": len(samples),
        "peak_gib_after_load": round(loaded, 2),
        "peak_gib_after_each_update": [round(p, 2) for p in peaks],
        "update_s": [round(s, 1) for s in seconds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="jobs/demo_cpu.yaml")
    parser.add_argument("--variants", nargs="+", default=["2:7", "0:7", "0:4"], help="stage:samples_per_micro_batch")
    parser.add_argument("--updates", type=int, default=2)
    parser.add_argument("--output", default="benchmarks/results/learner_memory_cpu.json")
    args = parser.parse_args()

    import ray
    import torch

    from hair_ray.atomic import atomic_write_text

    load_at_start = os.getloadavg()[0]
    ray.init(num_cpus=2, include_dashboard=False)
    rows = [measure(args.config, *map(int, variant.split(":")), args.updates) for variant in args.variants]
    ray.shutdown()
    base = rows[0]
    print(f"{'ZeRO':>4} {'micro':>5} {'peak GiB':>9} {'× base':>7} {'update s':>9} {'× base':>7}")
    for row in rows:
        peak, seconds = row["peak_gib_after_each_update"][-1], row["update_s"][-1]
        row["peak_ratio_to_first"] = round(peak / base["peak_gib_after_each_update"][-1], 3)
        row["update_ratio_to_first"] = round(seconds / base["update_s"][-1], 3)
        print(
            f"{row['zero_stage']:>4} {row['samples_per_micro_batch']:>5} {peak:>9.2f} "
            f"{row['peak_ratio_to_first']:>7.2f} {seconds:>9.1f} {row['update_ratio_to_first']:>7.2f}"
        )
    result = {
        "what": "one CPU learner rank: peak resident memory (VmHWM) and update time per ZeRO stage and micro-batch",
        "command": f"python benchmarks/learner_memory.py --config {args.config} --variants {' '.join(args.variants)}",
        "config": args.config,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "load_average_at_start": load_at_start,
        "rows": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.output), json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

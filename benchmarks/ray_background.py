"""What an idle Ray cluster costs a compute-bound loop beside it: the bare learner update (HF
forward + backward + AdamW, the bench's shapes) timed alone, then with a local Ray cluster and a
few idle actors running in another process, alternating, on the same machine.

    .venv/bin/python benchmarks/ray_background.py [--rounds 3] [--updates 4] [--actors 3]

The trainer's actors always run beside such a cluster; the bench's bare baselines never do. On a
machine with few cores the cluster's own processes (raylet, GCS, workers' core threads) preempt
one of the loop's threads now and then, and its other thread waits at the next barrier: this
script measures that share of the gap between an actor's phase and its bare baseline. Writes
benchmarks/results/ray_background_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from hair_ray.algo.grpo import token_logprobs
from hair_ray.atomic import atomic_write_text

# Run in a process of its own: a Ray driver with idle actors, until SIGTERM shuts it down.
CLUSTER = """
import signal, sys, time, ray
ray.init(include_dashboard=False)

@ray.remote(num_cpus=0.1)
class Idle:
    def ping(self):
        return 1

actors = [Idle.remote() for _ in range(int(sys.argv[1]))]
ray.get([a.ping.remote() for a in actors])
signal.signal(signal.SIGTERM, lambda *_: (ray.shutdown(), sys.exit(0)))
print("ready", flush=True)
while True:
    time.sleep(1)
"""


class Update:
    """16 samples of 97 tokens (48 trained), micro-batches of 4: the bench's step 1, in shape."""

    def __init__(self, threads: int):
        from transformers import AutoModelForCausalLM

        from hair_ray.models.builtin import builtin_model_path

        torch.set_num_threads(threads)
        torch.manual_seed(0)
        path = builtin_model_path("smollm2-135m-instruct")
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-6)
        self.ids = torch.randint(0, self.model.config.vocab_size, (16, 97))

    def __call__(self) -> None:
        for start in range(0, 16, 4):
            ids = self.ids[start : start + 4]
            logits = self.model(input_ids=ids, logits_to_keep=49).logits[:, :-1]
            (-token_logprobs(logits, ids[:, 49:]).mean()).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def timed(update: Update, count: int) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds / wall seconds) of `count` updates after one warm-up."""
    update()
    out = []
    for _ in range(count):
        cpu, wall = time.process_time(), time.perf_counter()
        update()
        wall = time.perf_counter() - wall
        out.append((wall, (time.process_time() - cpu) / wall))
    return out


def start_cluster(actors: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", CLUSTER, str(actors)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("the background Ray cluster did not start")
    time.sleep(5)  # past its start-up work
    return process


def stop_cluster(process: subprocess.Popen) -> None:
    """SIGTERM to the process group this script started (the driver shuts its cluster down)."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=4)
    parser.add_argument("--actors", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray_background_cpu.json"))
    args = parser.parse_args()
    update = Update(args.threads)
    runs: dict[str, list[tuple[float, float]]] = {"alone": [], "beside_ray": []}
    for _ in range(args.rounds):
        runs["alone"] += timed(update, args.updates)
        cluster = start_cluster(args.actors)
        try:
            runs["beside_ray"] += timed(update, args.updates)
        finally:
            stop_cluster(cluster)
    summary = {
        name: {
            "seconds_median": statistics.median(w for w, _ in values),
            "cpu_per_wall_median": statistics.median(c for _, c in values),
            "seconds": [round(w, 3) for w, _ in values],
        }
        for name, values in runs.items()
    }
    ratio = summary["alone"]["seconds_median"] / summary["beside_ray"]["seconds_median"]
    result = {"threads": args.threads, "cores": os.cpu_count(), "idle_actors": args.actors, **summary, "ratio": ratio}
    atomic_write_text(args.out, json.dumps(result, indent=1))
    for name in runs:
        print(f"{name:>11}: {summary[name]['seconds_median']:.2f} s/update, CPU/wall {summary[name]['cpu_per_wall_median']:.2f}")
    print(f"beside an idle Ray cluster: {ratio:.2f}× the speed alone; wrote {args.out}")


if __name__ == "__main__":
    main()

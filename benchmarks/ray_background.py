"""What an idle Ray cluster costs a compute-bound loop beside it: the bare learner update (HF
forward + backward + AdamW, the bench's shapes) timed alone, then with a local Ray cluster and a
few idle actors running in another process, alternating, on the same machine.

    .venv/bin/python benchmarks/ray_background.py [--rounds 3] [--updates 4] [--actors 3]

The trainer's actors always run beside such a cluster; the bench's first bare baselines have the
machine to themselves. On a machine with few cores the cluster's own processes (raylet, GCS,
workers' core threads) preempt one of the loop's threads now and then, and its other thread waits
at the next barrier. This script measures that share of the gap between an actor's phase and its
bare baseline over several alternations, with CPU use; `hair-ray bench` (`--beside-ray`, on by
default) takes one such measurement per round with the same loop (hair_ray.bench.bare) and the
same idle cluster (hair_ray.bench.idle_ray). Writes benchmarks/results/ray_background_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

import torch

from hair_ray.atomic import atomic_write_text
from hair_ray.bench.bare import LearnerLoops
from hair_ray.bench.idle_ray import idle_ray_cluster
from hair_ray.models.builtin import builtin_model_path


def bench_shaped_loops(threads: int) -> LearnerLoops:
    """16 samples of 49 prompt and 48 response tokens, micro-batches of 4: the bench's step 1, in
    shape, on random ids."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = random.Random(0)
    samples = [([rng.randrange(1, 49_000) for _ in range(49)], [rng.randrange(1, 49_000) for _ in range(48)]) for _ in range(16)]
    path = str(builtin_model_path("smollm2-135m-instruct"))
    return LearnerLoops(path, "float32", samples, learning_rate=1e-6, samples_per_micro_batch=4)


def timed(update, count: int) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds / wall seconds) of `count` updates after one warm-up."""
    update()
    out = []
    for _ in range(count):
        cpu, wall = time.process_time(), time.perf_counter()
        update()
        wall = time.perf_counter() - wall
        out.append((wall, (time.process_time() - cpu) / wall))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=4)
    parser.add_argument("--actors", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray_background_cpu.json"))
    args = parser.parse_args()
    update = bench_shaped_loops(args.threads).update
    runs: dict[str, list[tuple[float, float]]] = {"alone": [], "beside_ray": []}
    for _ in range(args.rounds):
        runs["alone"] += timed(update, args.updates)
        with idle_ray_cluster(args.actors):
            runs["beside_ray"] += timed(update, args.updates)
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

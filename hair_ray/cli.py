"""The `hair-ray` command line."""

from __future__ import annotations

from typing import Annotated

import typer

from hair_ray import __version__
from hair_ray.config import dump_config, load_config
from hair_ray.data.cli import data_app
from hair_ray.errors import DEBUG_ENV, cli_errors
from hair_ray.eval.cli import eval_app
from hair_ray.reward.cli import reward_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="HAIR safety alignment on Ray.",
    epilog="Exit codes: 0 done, 1 a defect (traceback), 2 invalid input, 3 would destroy earlier results, "
    "4 checkpoint, 5 cluster or service, 6 the machine (disk, permissions), 130 interrupted.",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect and validate run configs.")
models_app = typer.Typer(no_args_is_help=True, help="Prepare models that work offline.")
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(reward_app, name="reward")
app.add_typer(data_app, name="data")
app.add_typer(eval_app, name="eval")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hair-ray {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help=f"Show the traceback of an error (or set {DEBUG_ENV}=1).")] = False,
) -> None:
    """HAIR safety alignment on Ray."""
    import os

    if debug:
        os.environ[DEBUG_ENV] = "1"


ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="YAML run config.")]
Overrides = Annotated[list[str] | None, typer.Argument(help="Dotted overrides: algo.group_size=8")]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace what the target folder holds (an earlier run, an export).")
]


@config_app.command("show")
@cli_errors
def config_show(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Print the fully resolved config (defaults, file, overrides) as YAML."""
    typer.echo(dump_config(load_config(config, overrides or [])), nl=False)


@config_app.command("check")
@cli_errors
def config_check(
    config: ConfigOption = None,
    overrides: Overrides = None,
    nodes: Annotated[int | None, typer.Option(help="Check placement on a cluster of this many nodes…")] = None,
    cpus: Annotated[float | None, typer.Option(help="…with this many CPUs each (default: this machine's)…")] = None,
    gpus: Annotated[float | None, typer.Option(help="…and this many GPUs each (default: this machine's).")] = None,
    local: Annotated[
        bool,
        typer.Option(
            help="Check this machine's folders (run, reward models, output) and packages; --no-local when the run happens on a cluster."
        ),
    ] = True,
    overwrite: OverwriteOption = False,
) -> None:
    """Run the checks `train` runs before it starts an actor; exit with the first problem's code.

    Placement is checked when a cluster size is given (--nodes / --cpus / --gpus)."""
    from hair_ray.config import config_hash
    from hair_ray.train.preflight import raise_on_problems

    cfg = load_config(config, overrides or [])
    cluster = None if nodes is None and cpus is None and gpus is None else cluster_of(nodes or 1, cpus, gpus)
    raise_on_problems(cfg, overwrite=overwrite, cluster=cluster, local=local)
    where = (
        ""
        if cluster is None
        else f"; placement fits {len(cluster.nodes)} × {{CPU: {cluster.nodes[0].num_cpus:g}, GPU: {cluster.nodes[0].num_gpus:g}}}"
    )
    typer.echo(f"ok: {config or 'defaults'} (config hash {config_hash(cfg)}{where})")


def cluster_of(nodes: int, cpus: float | None, gpus: float | None):
    """A cluster of `nodes` like this machine, or with the CPUs / GPUs given."""
    import os

    from hair_ray.train.placement import ClusterResources

    if gpus is None:
        import torch

        gpus = float(torch.cuda.device_count())
    return ClusterResources.uniform(nodes, float(cpus if cpus is not None else os.cpu_count() or 1), gpus)


@models_app.command("prepare")
@cli_errors
def models_prepare(names: Annotated[list[str], typer.Argument(help="tiny:qwen2, builtin:smollm2-135m-instruct, …")]) -> None:
    """Materialise offline models into the cache and print their folders."""
    from hair_ray.models.registry import resolve_model_path

    for name in names:
        typer.echo(f"{name}\t{resolve_model_path(name)}")


def quiet_engine_logs() -> None:
    """vLLM logs every engine setting at INFO from each actor: the step line would drown in it.
    WARNING unless the user chose a level (the actors inherit the variable)."""
    import os

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")


@app.command("train")
@cli_errors
def train(config: ConfigOption = None, overrides: Overrides = None, overwrite: OverwriteOption = False) -> None:
    """Run (or, with checkpoint.resume=auto, resume) GRPO-S training on the Ray cluster."""
    import logging

    from hair_ray.train.launcher import train as run_training

    cfg = load_config(config, overrides or [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_engine_logs()
    metrics = run_training(cfg, overwrite=overwrite)
    reward = metrics.get("reward/mean")
    typer.echo(
        f"done: {cfg.algo.total_steps} steps in {cfg.run_dir}"
        + (f"; last reward/mean {reward:.4f}" if isinstance(reward, (int, float)) else "")
    )


@app.command("sft")
@cli_errors
def sft(
    config: ConfigOption = None,
    overrides: Overrides = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Folder; default OUTPUT_DIR/NAME-sft.")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Fine-tune the policy on stage A's demonstrations (a warm start for train: policy.name_or_path=FOLDER)."""
    from hair_ray.train.sft import run_sft

    cfg = load_config(config, overrides or [])
    typer.echo(run_sft(cfg, out, overwrite=overwrite))


@app.command("export")
@cli_errors
def export(
    config: ConfigOption = None,
    overrides: Overrides = None,
    step: Annotated[int | None, typer.Option("--step", help="Checkpoint step; default the latest.")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Folder; default RUN/export/step-N.")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Write a checkpoint's policy as a Hugging Face folder (safetensors) that vLLM loads."""
    from hair_ray.train.export import export_checkpoint

    cfg = load_config(config, overrides or [])
    typer.echo(export_checkpoint(cfg, step, out, overwrite=overwrite))


@app.command("report")
@cli_errors
def report(
    run_dir: Annotated[str, typer.Argument(help="A run folder (holding metrics.jsonl).")],
    out: Annotated[str | None, typer.Option("--out", "-o", help="PNG to write; default RUN_DIR/report.png.")] = None,
) -> None:
    """Plot a run's curves into a PNG and print a summary table (first vs last step, timing)."""
    from hair_ray.train.report import build_report

    build_report(run_dir, out)


@app.command("bench")
@cli_errors
def bench(
    config: ConfigOption = None,
    overrides: Overrides = None,
    steps: Annotated[int, typer.Option("--steps", help="Measured steps (after the warm-up).")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", help="Steps run first and not measured.")] = 1,
    peer: Annotated[
        str | None, typer.Option("--peer", help="trl: TRL's GRPOTrainer on the same workload (the bench extra).")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="NAME=override[,override…]: the trainer again with these, e.g. async=rollout.async=true."),
    ] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed runs of each bare baseline (median).")] = 3,
    rounds: Annotated[
        int,
        typer.Option("--rounds", min=1, help="Repeat trainer, baselines and peer this often, interleaved; ratios are medians."),
    ] = 1,
    beside_ray: Annotated[
        bool,
        typer.Option(
            "--beside-ray/--no-beside-ray",
            help="Also time the bare learner beside an idle Ray cluster, the company every actor keeps.",
        ),
    ] = True,
    out: Annotated[str, typer.Option("--out", "-o", help="Folder for bench.json, bench.png, workload.json.")] = "outputs/bench",
) -> None:
    """Time the rollout/learner split phase by phase beside bare baselines (and a peer trainer)."""
    import logging
    from pathlib import Path

    from hair_ray.bench.run import BenchPlan, parse_variant, run_bench

    if peer not in (None, "trl"):
        raise typer.BadParameter(f"--peer must be trl, got {peer!r}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_engine_logs()
    plan = BenchPlan(
        config,
        overrides or [],
        warmup=warmup,
        steps=steps,
        peer=peer,
        repeats=repeats,
        rounds=rounds,
        beside_ray=beside_ray,
        out=Path(out),
        variants=dict(parse_variant(text) for text in variant or []),
    )
    run_bench(plan)


if __name__ == "__main__":
    app()

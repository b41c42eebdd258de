"""The `hair-ray` command line."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from hair_ray import __version__
from hair_ray.config import ConfigError, dump_config, load_config
from hair_ray.reward.cli import reward_app
from hair_ray.data.cli import data_app
from hair_ray.eval.cli import eval_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help="HAIR safety alignment on Ray.")
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
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """HAIR safety alignment on Ray."""


ConfigOption = Annotated[Optional[str], typer.Option("--config", "-c", help="YAML run config.")]
Overrides = Annotated[Optional[list[str]], typer.Argument(help="Dotted overrides: algo.group_size=8")]


def load_or_exit(config: str | None, overrides: list[str] | None):
    try:
        return load_config(config, overrides or [])
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Print the fully resolved config (defaults, file, overrides) as YAML."""
    typer.echo(dump_config(load_or_exit(config, overrides)), nl=False)


@config_app.command("check")
def config_check(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Validate a config; exit 2 with the reason when it is invalid."""
    from hair_ray.config import config_hash

    cfg = load_or_exit(config, overrides)
    typer.echo(f"ok: {config or 'defaults'} (config hash {config_hash(cfg)})")


@models_app.command("prepare")
def models_prepare(names: Annotated[list[str], typer.Argument(help="tiny:qwen2, builtin:smollm2-135m-instruct, …")]) -> None:
    """Materialise offline models into the cache and print their folders."""
    from hair_ray.models.registry import resolve_model_path

    for name in names:
        try:
            typer.echo(f"{name}\t{resolve_model_path(name)}")
        except (ValueError, FileNotFoundError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None


@app.command("train")
def train(config: ConfigOption = None, overrides: Overrides = None) -> None:
    """Run (or, with checkpoint.resume=auto, resume) GRPO-S training on the Ray cluster."""
    import logging

    from hair_ray.run import train as run_training

    cfg = load_or_exit(config, overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        metrics = run_training(cfg)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"done: {cfg.algo.total_steps} steps in {cfg.run_dir}; last reward/mean {metrics.get('reward/mean', float('nan')):.4f}")


@app.command("export")
def export(
    config: ConfigOption = None,
    overrides: Overrides = None,
    step: Annotated[Optional[int], typer.Option("--step", help="Checkpoint step; default the latest.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Folder; default RUN/export/step-N.")] = None,
) -> None:
    """Write a checkpoint's policy as a Hugging Face folder (safetensors) that vLLM loads."""
    from hair_ray.checkpoint import CheckpointError
    from hair_ray.export import export_checkpoint

    cfg = load_or_exit(config, overrides)
    try:
        typer.echo(export_checkpoint(cfg, step, out))
    except (FileNotFoundError, ValueError, CheckpointError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command("report")
def report(
    run_dir: Annotated[str, typer.Argument(help="A run folder (holding metrics.jsonl).")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="PNG to write; default RUN_DIR/report.png.")] = None,
) -> None:
    """Plot a run's curves into a PNG and print a summary table (first vs last step, timing)."""
    from hair_ray.report import ReportError, build_report

    try:
        build_report(run_dir, out)
    except ReportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


if __name__ == "__main__":
    app()

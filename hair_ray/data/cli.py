"""`hair-ray data build` and `hair-ray data show`: the stage-A dataset from the command line.

The progress bar lives here only; the build itself reports progress through a callback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hair_ray.categories import ALL_CATEGORY_NAMES, CATEGORY_NAMES
from hair_ray.errors import cli_errors

data_app = typer.Typer(no_args_is_help=True, help="Build and inspect the seven-category CoD safety dataset.")
console = Console(stderr=True)

STAGE_NAMES = {"sources": "reading sources", "demonstrations": "demonstrations", "write": "writing"}


@data_app.command("build")
@cli_errors
def build(
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML run config (its `data` section).")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="Dotted overrides: data.seed=1")] = None,
) -> None:
    """Write train/val/test.jsonl and report.json into data.dataset_dir."""
    from hair_ray.config import load_config
    from hair_ray.data.build import build_dataset

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(config, overrides or [])
    with Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGE_NAMES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        result = build_dataset(cfg.data, progress=progress)
    print_report(result.report, _stdout())
    typer.echo(f"wrote {result.dataset_dir}")


@data_app.command("show")
@cli_errors
def show(dataset_dir: Annotated[str, typer.Argument(help="A folder written by `hair-ray data build`.")]) -> None:
    """Print a dataset's report as tables."""
    from hair_ray.data.build import read_report

    report = read_report(dataset_dir)
    print_report(report, _stdout())


def _stdout() -> Console:
    # Piped output has no terminal width: use one wide enough for the category table.
    return Console() if sys.stdout.isatty() else Console(width=120)


def print_report(report: dict[str, Any], out: Console) -> None:
    """Counts per category and split, then sources, then drops and rejects by reason."""
    teacher = report.get("teacher", {})
    out.print(
        f"dataset: {report.get('records', 0)} records, {report.get('per_category', 0)} per category "
        f"(target {report.get('target_per_category')}), seed {report.get('seed')}, "
        f"config hash {report.get('config_hash')}, teacher {teacher.get('backend')}"
        + (f" → {teacher.get('fallback')}" if teacher.get("fallback") not in (None, "none") else ""),
        highlight=False,
    )
    splits = report.get("splits", {})
    columns = ("mapped", "available", "asked", "accepted", "rejected")
    table = Table(title="records per category", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("category", no_wrap=True, min_width=25)
    for column in (*columns, *splits):
        table.add_column(column, justify="right")
    categories = report.get("categories", {})
    for name in [c for c in ALL_CATEGORY_NAMES if c in categories] or CATEGORY_NAMES:
        counts = categories.get(name, {})
        table.add_row(
            name,
            *(str(counts.get(column, 0)) for column in columns),
            *(str(split["per_category"].get(name, 0)) for split in splits.values()),
        )
    totals = [str(sum(c.get(column, 0) for c in categories.values())) for column in columns]
    table.add_row("total", *totals, *(str(split["total"]) for split in splits.values()), style="bold")
    out.print(table)

    sources = Table("source", "kind", "read", "kept", "dropped", title="sources", box=box.SIMPLE_HEAD)
    sources.add_column("location", overflow="fold")
    for source in report.get("sources", []):
        dropped = ", ".join(f"{reason} {n}" for reason, n in source.get("dropped", {}).items()) or "-"
        sources.add_row(
            source["name"],
            source["kind"],
            str(source["rows_read"]),
            str(source["rows_kept"]),
            dropped,
            source["location"],
        )
    out.print(sources)

    reasons_tables = (
        ("dropped rows by reason", report.get("dropped", {})),
        ("teacher rejects by reason", report.get("rejects", {})),
    )
    for title, counts in reasons_tables:
        if counts:
            reasons = Table("reason", "count", title=title, box=box.SIMPLE_HEAD)
            for reason, count in counts.items():
                reasons.add_row(reason, str(count))
            out.print(reasons)
    out.print(
        f"teacher: {teacher.get('requests', 0)} prompts asked, {teacher.get('resumed', 0)} resumed from the partial "
        f"file, accepted by {teacher.get('accepted_by', {})}, {teacher.get('rejected_prompts', 0)} prompts without "
        f"a demonstration, {teacher.get('over_target', 0)} beyond the target",
        highlight=False,
    )

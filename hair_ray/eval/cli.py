"""`hair-ray eval`: evaluate policies side by side; `hair-ray eval judge ...`: build and check judges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hair_ray.errors import cli_errors
from hair_ray.eval.judge_cli import judge_app

eval_app = typer.Typer(
    invoke_without_command=True,
    help="Evaluate policies on held-out benchmarks (refusal, over-refusal, usefulness), side by side.",
)


eval_app.add_typer(judge_app, name="judge", help="Train the refusal classifier; check judges against human labels.")


def _override(key: str, value) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: paths and names pass through unchanged


def eval_overrides(
    *,
    benchmarks: str | None = None,
    benchmark_file: str | None = None,
    prompt_column: str = "prompt",
    category_column: str | None = None,
    label_column: str | None = None,
    label_expect: list[str] | None = None,
    expect: str | None = None,
    data_root: str | None = None,
    dataset_dir: str | None = None,
    judge: str | None = None,
    judge_url: str | None = None,
    judge_model: str | None = None,
    classifier_dir: str | None = None,
    max_prompts: int | None = None,
    max_new_tokens: int | None = None,
    engines: int | None = None,
) -> list[str]:
    """The command-line options as dotted config overrides (validated with the rest)."""
    out: list[str] = []
    names = [n.strip() for n in benchmarks.split(",") if n.strip()] if benchmarks else []
    if benchmark_file:
        name = Path(benchmark_file).stem.replace(" ", "_") or "file"
        spec: dict = {"path": str(Path(benchmark_file).resolve()), "prompt_column": prompt_column}
        if category_column:
            spec["category_column"] = category_column
        if label_column:
            spec["label_column"] = label_column
            spec["label_expect"] = dict(item.split("=", 1) for item in label_expect or [] if "=" in item)
        else:
            spec["expect"] = expect or "refuse"
        out.append(_override(f"eval.definitions.{name}", spec))
        names.append(name)
    if names:
        out.append(_override("eval.benchmarks", names))
    fields = {
        "eval.data_root": data_root,
        "data.dataset_dir": dataset_dir,
        "eval.judge.kind": judge,
        "eval.judge.base_url": judge_url,
        "eval.judge.model": judge_model,
        "eval.judge.classifier_dir": classifier_dir,
        "eval.max_prompts_per_benchmark": max_prompts,
        "eval.max_new_tokens": max_new_tokens,
        "eval.num_engines": engines,
    }
    out += [_override(key, value) for key, value in fields.items() if value is not None]
    return out


@eval_app.callback()
@cli_errors
def evaluate(
    ctx: typer.Context,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            "-p",
            help="Model id, model folder, export or run folder; LABEL=SPEC names it. Repeat for a side-by-side table.",
        ),
    ] = None,
    benchmarks: Annotated[
        str | None,
        typer.Option(
            "--benchmarks",
            "-b",
            help="Comma-separated: strongreject, strongreject_small, xstest, dna_test, stage_a_test, alpaca, benign_smoke, or eval.definitions keys.",
        ),
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="Run config: its eval, rollout, policy dtype, reward and data sections.")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Dotted config override, e.g. eval.max_new_tokens=128 (repeatable).")
    ] = None,
    benchmark_file: Annotated[
        str | None, typer.Option("--benchmark-file", help="Any CSV/JSONL/JSON prompt file, read by the column options below.")
    ] = None,
    prompt_column: Annotated[str, typer.Option(help="--benchmark-file: the prompt column.")] = "prompt",
    category_column: Annotated[str | None, typer.Option(help="--benchmark-file: a category column.")] = None,
    label_column: Annotated[str | None, typer.Option(help="--benchmark-file: a label column (with --label-expect).")] = None,
    label_expect: Annotated[list[str] | None, typer.Option(help="--benchmark-file: LABEL=refuse|comply (repeatable).")] = None,
    expect: Annotated[
        str | None, typer.Option(help="--benchmark-file: what every row wants: refuse (default) or comply.")
    ] = None,
    data_root: Annotated[
        str | None, typer.Option(help="Folder holding the public datasets (strongreject/, xstest/, alpaca-eval/, ...).")
    ] = None,
    dataset_dir: Annotated[str | None, typer.Option(help="Stage-A dataset folder (dna_test, stage_a_test).")] = None,
    judge: Annotated[str | None, typer.Option(help="keyword, classifier (default) or llm.")] = None,
    judge_url: Annotated[
        str | None, typer.Option(help="llm judge: OpenAI-compatible base URL; key from $HAIR_RAY_JUDGE_API_KEY.")
    ] = None,
    judge_model: Annotated[str | None, typer.Option(help="llm judge: the model name the endpoint serves.")] = None,
    classifier_dir: Annotated[
        str | None, typer.Option(help="classifier judge: a folder from `hair-ray eval judge train` (default: the shipped one).")
    ] = None,
    reward_models: Annotated[str | None, typer.Option(help="Stage-B reward-model folder: adds the mean shadow reward.")] = None,
    max_prompts: Annotated[
        int | None, typer.Option(help="At most this many prompts per benchmark (an evenly spaced subset).")
    ] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Response length.")] = None,
    engines: Annotated[int | None, typer.Option(help="vLLM engines (Ray actors) per policy.")] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="Output folder; default outputs/eval/<time>.")] = None,
) -> None:
    """Evaluate policies side by side: writes eval.json, generations.jsonl and eval.png."""
    if ctx.invoked_subcommand is not None:
        return
    import logging
    import time

    from rich.console import Console

    from hair_ray.config import load_config
    from hair_ray.eval.run import run_eval

    if not policy:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)
    overrides = eval_overrides(
        benchmarks=benchmarks,
        benchmark_file=benchmark_file,
        prompt_column=prompt_column,
        category_column=category_column,
        label_column=label_column,
        label_expect=label_expect,
        expect=expect,
        data_root=data_root,
        dataset_dir=dataset_dir,
        judge=judge,
        judge_url=judge_url,
        judge_model=judge_model,
        classifier_dir=classifier_dir,
        max_prompts=max_prompts,
        max_new_tokens=max_new_tokens,
        engines=engines,
    ) + list(set_ or [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(config, overrides)
    target = out or f"outputs/eval/{time.strftime('%Y%m%d-%H%M%S')}"
    run_eval(cfg, policy, target, reward_models=reward_models, console=Console())

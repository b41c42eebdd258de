"""`hair-ray reward train | eval | eval-replies`: stage B from the command line.

`train` and `eval` join the Ray cluster named by `--address` (or $RAY_ADDRESS); without either they
start a local one sized to the machine. Inside `ray job submit` they join the job's cluster.
`eval-replies` scores stage D's replies once, in its own process.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from hair_ray.config import load_config
from hair_ray.errors import cli_errors

reward_app = typer.Typer(no_args_is_help=True, help="Stage B: train, evaluate the seven shadow reward models.")

ConfigOption = Annotated[str | None, typer.Option("--config", "-c", help="YAML run config.")]
Overrides = Annotated[list[str] | None, typer.Argument(help="Dotted overrides: reward.irl.epochs=2")]
AddressOption = Annotated[
    str | None, typer.Option("--address", help="Ray cluster address (default: $RAY_ADDRESS or a local cluster).")
]


def _ensure_ray(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=True)


def _fmt(value) -> str:
    return "  n/a" if value is None else f"{value:.3f}"


@reward_app.command("train")
@cli_errors
def train(
    config: ConfigOption = None,
    overrides: Overrides = None,
    address: AddressOption = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the reward models reward.models_dir holds.")] = False,
) -> None:
    """Sample negatives from π_ref, train one reward model per category, write DIR/report.json."""
    from hair_ray.reward.train import check_models_dir_free, train_reward_models

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_config(config, overrides or [])
    check_models_dir_free(cfg.reward.models_dir, overwrite=overwrite)  # before Ray starts
    _ensure_ray(address)
    report = train_reward_models(cfg, overwrite=overwrite)
    typer.echo(f"{'category':<28}{'pairs':>7}{'held-out':>9}{'acc before':>11}{'acc after':>10}{'wall s':>8}")
    for category, result in report["categories"].items():
        before = (result["heldout_before"] or {}).get("accuracy")
        after = (result["heldout"] or {}).get("accuracy")
        typer.echo(
            f"{category:<28}{result['pairs_train']:>7}{result['pairs_heldout']:>9}"
            f"{_fmt(before):>11}{_fmt(after):>10}{result['wall_s']:>8.1f}"
        )
    typer.echo(f"wrote {Path(cfg.reward.models_dir) / 'report.json'} (wall {report['wall_s']:.1f} s)")


def _dna_ids(path: Path) -> set[int]:
    """Do-Not-Answer row ids (`dna-<id>`) of a stage-A JSONL file: to exclude seen prompts."""
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record_id = str(json.loads(line).get("id", ""))
            if record_id.startswith("dna-") and record_id[4:].isdigit():
                ids.add(int(record_id[4:]))
    return ids


@reward_app.command("eval")
@cli_errors
def evaluate(
    config: ConfigOption = None,
    overrides: Overrides = None,
    data_en: Annotated[
        str, typer.Option("--data-en", help="Do-Not-Answer data_en.csv (six models' replies, human labels).")
    ] = "",
    out: Annotated[str | None, typer.Option("--out", help="Report JSON (default: <models_dir>/eval_do_not_answer.json).")] = None,
    mapping_fit: Annotated[str, typer.Option("--mapping-fit", help="approx: all mapped rows; good: drop loose fits.")] = "approx",
    exclude_ids_from: Annotated[
        str | None,
        typer.Option("--exclude-ids-from", help="A stage-A JSONL whose dna-<id> prompts are left out (seen in training)."),
    ] = None,
    max_rows: Annotated[int | None, typer.Option("--max-rows", help="Read only the first N rows (quick looks).")] = None,
    address: AddressOption = None,
) -> None:
    """Agreement with Do-Not-Answer's human harmfulness labels, per category."""
    from hair_ray.atomic import atomic_write_text
    from hair_ray.reward.evaluate import evaluate_reward_models

    if not data_en:
        typer.echo("error: --data-en PATH is required (Do-Not-Answer's data_en.csv)", err=True)
        raise typer.Exit(2)
    if mapping_fit not in ("approx", "good"):
        typer.echo(f"error: --mapping-fit must be approx or good, got {mapping_fit!r}", err=True)
        raise typer.Exit(2)
    cfg = load_config(config, overrides or [])
    exclude = _dna_ids(Path(exclude_ids_from)) if exclude_ids_from else None
    _ensure_ray(address)
    report = evaluate_reward_models(cfg, data_en, mapping_fit=mapping_fit, max_rows=max_rows, exclude_ids=exclude)
    typer.echo(f"{'category':<28}{'replies':>8}{'harmful':>8}{'pairs':>7}{'agreement':>10}{'AUROC':>7}")
    for category, row in report["categories"].items():
        typer.echo(
            f"{category:<28}{row['replies']:>8}{row['harmful_replies']:>8}{row['pairs']:>7}"
            f"{_fmt(row['agreement']):>10}{_fmt(row['auroc']):>7}"
        )
    typer.echo(
        f"pooled agreement {_fmt(report['pooled_agreement'])} over {report['pooled_pairs']} pairs; "
        f"macro AUROC {_fmt(report['macro_auroc'])}; scored {report['replies_scored']} replies in {report['score_wall_s']:.1f} s"
    )
    typer.echo("within each answering model (style held constant), AUROC of per-category z-scores:")
    for model, row in report["by_model"].items():
        typer.echo(
            f"  {model:<16} replies {row['replies']:>5}  harmful {row['harmful_replies']:>3}  "
            f"AUROC {_fmt(row['auroc_within_model'])}  mean z {row['mean_z_score']:+.2f}"
        )
    target = Path(out) if out else Path(cfg.reward.models_dir) / "eval_do_not_answer.json"
    atomic_write_text(target, json.dumps(report, indent=2) + "\n")
    typer.echo(f"wrote {target}")


@reward_app.command("eval-replies")
@cli_errors
def evaluate_replies(
    config: ConfigOption = None,
    overrides: Overrides = None,
    generations: Annotated[
        list[str] | None,
        typer.Option("--generations", "-g", help="A generations.jsonl of `hair-ray eval` (repeat the option for several)."),
    ] = None,
    out: Annotated[str | None, typer.Option("--out", help="Report JSON (default: <models_dir>/eval_replies.json).")] = None,
) -> None:
    """How each reward model ranks a policy's own refusals and answers, on stage D's judged replies."""
    from hair_ray.atomic import atomic_write_text
    from hair_ray.reward.reply_check import check_replies, read_judged_replies
    from hair_ray.reward.train import trained_categories
    from hair_ray.workers.reward import ShadowRewardWorker

    if not generations:
        typer.echo("error: --generations PATH is required (the generations.jsonl of `hair-ray eval`)", err=True)
        raise typer.Exit(2)
    cfg = load_config(config, overrides or [])
    replies = read_judged_replies(generations)
    root = Path(cfg.reward.models_dir)
    categories = trained_categories(root)
    if not categories:
        typer.echo(f"error: reward.models_dir {root} holds no reward model (run `hair-ray reward train`)", err=True)
        raise typer.Exit(2)
    # In this process: the check scores a few thousand replies once, no actor is worth starting.
    worker = ShadowRewardWorker(
        {c: str(root / c) for c in categories},
        backbone=cfg.reward.backbone.name_or_path,
        samples_per_batch=cfg.reward.samples_per_batch,
    )
    report = check_replies(worker.score, replies, categories)
    report["generations"] = list(generations)
    typer.echo(f"{'model':<28}{'replies':>8}{'right':>7}{'pairs':>7}{'agreement':>10}{'AUROC':>7}")
    for category, row in report["categories"].items():
        typer.echo(
            f"{category:<28}{row['replies']:>8}{row['right_kind']:>7}{row['pairs']:>7}"
            f"{_fmt(row['agreement']):>10}{_fmt(row['auroc']):>7}"
        )
    typer.echo(
        f"{report['replies']} replies, {report['replies_to_refuse']} to prompts that must be refused; "
        f"macro AUROC of the harm models {_fmt(report['macro_auroc_harm_models'])}. "
        "right: a refusal for a harm model, an answer for the benign one"
    )
    target = Path(out) if out else root / "eval_replies.json"
    atomic_write_text(target, json.dumps(report, indent=2) + "\n")
    typer.echo(f"wrote {target}")

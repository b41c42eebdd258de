"""Stage C's check of the reward models it is given: stop before training on a signal at chance.

Two stored checks are read from `reward.models_dir`:

- `report.json` (`hair-ray reward train`): each category's accuracy on its held-out pairs
  (prompts kept out of training, scored demonstration vs. π_ref sample);
- `eval_do_not_answer.json` (`hair-ray reward eval`, when it was run): agreement with
  Do-Not-Answer's human harmfulness labels, the external check.

`report.json` is also the manifest of one `reward train` run: its `run_id` must be in every
category model's metadata, or the folder mixes two runs' models and stage C stops.

A category whose held-out accuracy or human-label agreement is at or below
`reward.min_heldout_accuracy` (chance is 0.5) stops the run with a message naming it: GRPO on
such a reward trains toward noise. `reward.allow_chance_level: true` turns the stop into a
warning, for experts who know why. With a handful of held-out pairs per category (the seed set
keeps 2-3) the check is coarse: it catches a model that learned nothing, not a mediocre one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hair_ray.categories import ALL_CATEGORY_NAMES, CATEGORY_NAMES

log = logging.getLogger(__name__)

TRAIN_REPORT = "report.json"
HUMAN_LABEL_REPORT = "eval_do_not_answer.json"
# The external check needs a few pairs before its number means anything.
MIN_HUMAN_LABEL_PAIRS = 10


class RewardQualityError(ValueError):
    """The reward models' stored checks put at least one category at chance."""


class MixedRewardModelsError(ValueError):
    """`reward.models_dir` holds models that the run in its report.json did not write."""


def check_one_run(models_dir: str | Path, categories: list[str]) -> None:
    """Every category model carries report.json's run_id (reports without one predate the check)."""
    from hair_ray.models.reward_model import METADATA_FILE

    models_dir = Path(models_dir)
    run_id = (_read_json(models_dir / TRAIN_REPORT) or {}).get("run_id")
    if run_id is None:
        return
    others = []
    for category in categories:
        meta = _read_json(models_dir / category / METADATA_FILE) or {}
        if (meta.get("extra") or {}).get("run_id") != run_id:
            others.append(category)
    if others:
        raise MixedRewardModelsError(
            f"{models_dir} mixes reward models of different `reward train` runs: {', '.join(others)} "
            f"{'was' if len(others) == 1 else 'were'} not written by run {run_id} of {models_dir / TRAIN_REPORT}; "
            "retrain them together with `hair-ray reward train --overwrite`"
        )


@dataclass(frozen=True)
class CategoryCheck:
    category: str
    source: str  # the file the number comes from
    metric: str  # "held-out accuracy" or "Do-Not-Answer agreement"
    value: float
    pairs: int


def stored_checks(models_dir: str | Path) -> tuple[list[CategoryCheck], list[str]]:
    """The per-category numbers of both stored checks, and what could not be read."""
    models_dir = Path(models_dir)
    checks: list[CategoryCheck] = []
    missing: list[str] = []
    train = _read_json(models_dir / TRAIN_REPORT)
    if train is None:
        missing.append(f"{models_dir / TRAIN_REPORT} (written by `hair-ray reward train`)")
    else:
        for category, result in (train.get("categories") or {}).items():
            heldout = result.get("heldout") or {}
            accuracy, pairs = heldout.get("accuracy"), int(result.get("pairs_heldout") or 0)
            if accuracy is None or pairs == 0:
                missing.append(f"{category}: no held-out pairs in {TRAIN_REPORT} (reward.irl.heldout_fraction is 0?)")
                continue
            checks.append(CategoryCheck(category, str(models_dir / TRAIN_REPORT), "held-out accuracy", float(accuracy), pairs))
    human = _read_json(models_dir / HUMAN_LABEL_REPORT)
    for category, result in ((human or {}).get("categories") or {}).items():
        agreement, pairs = result.get("agreement"), int(result.get("pairs") or 0)
        if agreement is not None and pairs >= MIN_HUMAN_LABEL_PAIRS:
            checks.append(
                CategoryCheck(category, str(models_dir / HUMAN_LABEL_REPORT), "Do-Not-Answer agreement", float(agreement), pairs)
            )
    return checks, missing


def check_reward_models(reward_config, categories: list[str] | None = None) -> list[CategoryCheck]:
    """Raise RewardQualityError when a category's stored check is at chance (unless allowed).

    Returns the checks read; what could not be checked is logged as a warning.
    """
    wanted = set(categories or CATEGORY_NAMES)
    check_one_run(reward_config.models_dir, [c for c in ALL_CATEGORY_NAMES if c in wanted])
    checks, missing = stored_checks(reward_config.models_dir)
    checks = [c for c in checks if c.category in wanted]
    for reason in missing:
        log.warning("reward models not checked: %s", reason)
    threshold = reward_config.min_heldout_accuracy
    weak = [c for c in checks if c.value <= threshold]
    if not weak:
        return checks
    lines = [f"  {c.category}: {c.metric} {c.value:.3f} on {c.pairs} pairs ({c.source})" for c in weak]
    message = (
        f"reward model(s) at chance (at or below reward.min_heldout_accuracy={threshold:g}; chance is 0.5):\n"
        + "\n".join(lines)
        + "\nGRPO on this reward would train toward noise. Retrain them with more data or epochs "
        "(reward.irl.epochs, reward.irl.negatives_per_prompt, a larger stage-A dataset), or with "
        "reward.irl.demonstration_field=reply; or set reward.allow_chance_level=true to train anyway."
    )
    if reward_config.allow_chance_level:
        log.warning("%s", message.replace("\n", " "))
        return checks
    raise RewardQualityError(message)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RewardQualityError(f"{path}: not valid JSON ({exc}); rerun `hair-ray reward train`") from None

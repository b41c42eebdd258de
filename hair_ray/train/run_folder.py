"""What `hair-ray train` does with the run folder it is given, decided before any actor starts.

A run folder holding an earlier run (its metrics or checkpoints) is never emptied implicitly:

- `checkpoint.resume=auto` (or a checkpoint folder) continues it;
- `--overwrite` replaces it (the old folder is moved aside in one rename, then deleted);
- otherwise `train` stops with a message that names the folder and those two ways.

A run whose newest checkpoint is already at `algo.total_steps` is finished: `train` says so and
starts nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hair_ray.config import RunConfig
from hair_ray.errors import WouldOverwriteError
from hair_ray.train.checkpoint import CheckpointError, checkpoint_step, find_resume_checkpoint, list_checkpoints
from hair_ray.train.tracking import METRICS_FILE

log = logging.getLogger(__name__)


class RunFolderError(WouldOverwriteError):
    """The run folder holds an earlier run that this command would destroy."""


@dataclass(frozen=True)
class RunStart:
    """Where a `train` call starts: a checkpoint to resume (or None), and whether it is done."""

    resume_from: Path | None
    finished: bool = False
    last_metrics: dict[str, Any] | None = None  # a finished run: its last metrics line


def earlier_results(run_dir: Path) -> list[str]:
    """What of an earlier run `run_dir` holds, in words (empty: nothing to lose)."""
    found = []
    metrics = run_dir / METRICS_FILE
    if metrics.is_file() and metrics.stat().st_size > 0:
        found.append(f"{METRICS_FILE} ({len(metrics.read_text(encoding='utf-8').splitlines())} lines)")
    steps = [checkpoint_step(p) for p in list_checkpoints(run_dir)]
    if steps:
        found.append(f"checkpoints at steps {', '.join(map(str, steps))}")
    if (run_dir / "export").is_dir() and any((run_dir / "export").iterdir()):
        found.append("exports")
    return found


def last_metrics(run_dir: Path) -> dict[str, Any] | None:
    lines = (run_dir / METRICS_FILE).read_text(encoding="utf-8").splitlines() if (run_dir / METRICS_FILE).is_file() else []
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def replace_run_folder(run_dir: Path) -> None:
    """Move the earlier run aside in one rename, then delete it: a crash leaves either folder whole."""
    retired = run_dir.with_name(f".{run_dir.name}.replaced-{os.getpid()}")
    os.replace(run_dir, retired)
    shutil.rmtree(retired, ignore_errors=True)
    log.warning("--overwrite: replaced the earlier run in %s", run_dir)


def plan_run_start(config: RunConfig, *, overwrite: bool = False, dry_run: bool = False) -> RunStart:
    """Decide resume / fresh / finished for `config.run_dir`; raise before anything is lost.
    `dry_run`: decide only (an `--overwrite` replaces nothing yet)."""
    run_dir = config.run_dir
    total = config.algo.total_steps
    resume_from = None if overwrite else find_resume_checkpoint(run_dir, config.checkpoint.resume)
    if resume_from is not None:
        step = checkpoint_step(resume_from) or 0
        if step > total:
            raise CheckpointError(
                f"{resume_from} is at step {step}, past algo.total_steps = {total}: raise algo.total_steps, "
                "or resume an earlier checkpoint (checkpoint.resume=step-NNNNNN)"
            )
        if step == total:
            return RunStart(resume_from, finished=True, last_metrics=last_metrics(run_dir))
        return RunStart(resume_from)
    found = earlier_results(run_dir) if run_dir.is_dir() else []
    if found and overwrite:
        if not dry_run:
            replace_run_folder(run_dir)
    elif found and config.checkpoint.resume == "never":
        raise RunFolderError(
            f"run folder {run_dir} holds an earlier run ({'; '.join(found)}). Continue it with "
            "checkpoint.resume=auto, train into another folder with name=NEW_NAME, or pass --overwrite to replace it"
        )
    return RunStart(None)

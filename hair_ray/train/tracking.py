"""Tracking: one JSON line per step in RUN_DIR/metrics.jsonl, the same numbers in wandb, and a
one-line progress summary on the console.

metrics.jsonl is the record of truth (`hair-ray report` reads it): every step is written,
flushed and fsynced, and a resumed run first drops the lines past the step it resumed from, so
the file always describes one consistent timeline. wandb gets the steps that `log_every_steps`
selects, plotted against a `step` metric rather than wandb's own step counter, so re-logging the
steps after a resume is accepted instead of silently dropped.

The wandb API key is wandb's business: it reads `WANDB_API_KEY` from the environment itself.
This module never reads its value, passes it, or writes it anywhere.

Metric names are flat, slash-separated keys: `reward/mean`, `reward/mean/insult`,
`alpha_d/mean`, `alpha_m/mean`, `learner/kl`, `response_length/mean`, `timing/generate`,
`timing/step` (the whole step, in seconds).
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import string
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hair_ray.atomic import atomic_write_text

if TYPE_CHECKING:
    from rich.console import Console

    from hair_ray.config import RunConfig, TrackingConfig

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
WANDB_ID_FILE = "wandb_run_id.txt"  # the wandb run a resume continues

# Canonical keys, with the aliases readers accept (first present wins).
REWARD_MEAN = "reward/mean"
REWARD_MEAN_PREFIX = "reward/mean/"  # + category
KL_KEYS = ("learner/kl", "kl", "kl/mean")
ALPHA_D_MEAN = "alpha_d/mean"
ALPHA_M_MEAN = "alpha_m/mean"
# How much the hardness weights changed the advantages (the α means are ≈ 1 by construction).
RELATIVE_CHANGE = "hardness/relative_change"  # mean |A − Â| / |Â| over samples with Â ≠ 0
ALPHA_M_ACTIVE_FRACTION = "hardness/alpha_m_active_fraction"  # share of groups with α^M ≠ 1
RESPONSE_LENGTH_KEYS = ("response_length/mean", "response/length_mean", "response/length")
REFUSAL_FRACTION = "refusal/fraction"
TIMING_PREFIX = "timing/"
STEP_TIME = "timing/step"


def first_present(metrics: Mapping[str, Any], keys: tuple[str, ...] | str) -> float | None:
    """The value of the first of `keys` that `metrics` holds as a number, else None."""
    for key in (keys,) if isinstance(keys, str) else keys:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


# ---------------------------------------------------------------------------------------------
# Pure helpers


def resolve_wandb_mode(mode: str, environ: Mapping[str, str] | None = None) -> str:
    """`tracking.wandb_mode` → "online", "offline" or "disabled".

    auto: an explicit `WANDB_MODE` in the environment wins (tests and air-gapped clusters force
    offline that way); otherwise online when `WANDB_API_KEY` is set, offline when it is not.
    Only the key's presence is looked at, never its value.
    """
    env = os.environ if environ is None else environ
    if mode != "auto":
        return mode
    forced = env.get("WANDB_MODE", "").strip().lower()
    if forced in ("online", "offline", "disabled"):
        return forced
    if forced in ("dryrun", "run"):  # wandb's older spellings
        return "offline" if forced == "dryrun" else "online"
    return "online" if env.get("WANDB_API_KEY") else "offline"


def clean_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe flat metrics: tensors and numpy scalars become floats, NaN/inf become None,
    nested mappings are flattened with "/" (`{"reward": {"mean": 1}}` → `reward/mean`)."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update({f"{key}/{k}": v for k, v in clean_metrics(value).items()})
            continue
        if hasattr(value, "item") and callable(value.item):  # torch / numpy scalars
            value = value.item()
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif not isinstance(value, (int, float, str)) and value is not None:
            value = str(value)
        out[str(key)] = value
    return out


def _num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def format_progress(step: int, total: int | None, metrics: Mapping[str, Any]) -> str:
    """One line: `step 12/100 · reward 0.412 · kl 0.00311 · |ΔA|/|Â| 0.051 · 4.31 s/step`.

    Values that the step did not report are left out.
    """
    parts = [f"step {step}/{total}" if total else f"step {step}"]
    for label, keys in (("reward", REWARD_MEAN), ("kl", KL_KEYS), ("|ΔA|/|Â|", RELATIVE_CHANGE)):
        value = first_present(metrics, keys)
        if value is not None:
            parts.append(f"{label} {_num(value)}")
    seconds = first_present(metrics, STEP_TIME)
    if seconds is not None:
        parts.append(f"{seconds:.3g} s/step")
    return " · ".join(parts)


def truncate_metrics(path: Path, keep_through_step: int) -> int:
    """Drop the lines of `path` past `keep_through_step` (and unreadable ones: a line cut short
    by a crash); return how many were dropped. The rewrite is atomic."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            step = int(record["step"])
        except (ValueError, KeyError, TypeError):
            dropped += bool(line.strip())
            continue
        if step <= keep_through_step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))
    return dropped


def new_run_id() -> str:
    """A wandb-style run id (8 lowercase letters and digits); wandb 0.31 no longer exports one."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


# ---------------------------------------------------------------------------------------------
# The console line


class ProgressLine:
    """A live, rewritten line on a terminal; one printed line per update elsewhere (job logs)."""

    def __init__(self, console: Console | None = None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._live = None
        if self.console.is_terminal:
            from rich.live import Live

            self._live = Live(console=self.console, auto_refresh=False, transient=False)
            self._live.start()

    def update(self, line: str) -> None:
        from rich.text import Text

        if self._live is not None:
            self._live.update(Text(line), refresh=True)
        else:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


# ---------------------------------------------------------------------------------------------
# The tracker


class Tracker:
    """Per-step metrics to metrics.jsonl, wandb and the console; `close()` when done.

    `start_step`: the step the run resumed from (0 for a fresh run); lines past it are dropped
    from an existing metrics.jsonl, and wandb continues the run recorded in RUN_DIR.
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: RunConfig,
        tracking_config: TrackingConfig | None = None,
        *,
        start_step: int = 0,
        total_steps: int | None = None,
        console: Console | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.cfg = tracking_config or config.tracking
        self.total_steps = total_steps if total_steps is not None else config.algo.total_steps
        self.metrics_path = self.run_dir / METRICS_FILE
        dropped = truncate_metrics(self.metrics_path, start_step)
        if dropped:
            log.warning("%s: dropped %d lines past step %d (resumed run)", self.metrics_path, dropped, start_step)
        self._last_step = start_step
        self._file = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run, closed by close()
        self.wandb_mode = resolve_wandb_mode(self.cfg.wandb_mode)
        try:
            self._wandb = self._start_wandb(config, start_step) if self.wandb_mode != "disabled" else None
        except BaseException:
            self._file.close()
            raise
        self._progress = ProgressLine(console) if self.cfg.progress else None
        self._closed = False

    def _start_wandb(self, config: RunConfig, start_step: int) -> Any:
        import wandb

        # Files go to the run dir unless the user pointed WANDB_DIR elsewhere.
        wandb_dir = Path(os.environ.get("WANDB_DIR") or self.run_dir)
        wandb_dir.mkdir(parents=True, exist_ok=True)
        id_file = self.run_dir / WANDB_ID_FILE
        if start_step > 0 and id_file.exists():
            run_id = id_file.read_text(encoding="utf-8").strip()
        else:
            run_id = new_run_id()
            atomic_write_text(id_file, run_id + "\n")
        run = wandb.init(
            project=self.cfg.project,
            entity=self.cfg.entity,
            name=config.name,
            id=run_id,
            resume="allow",
            dir=str(wandb_dir),
            mode=self.wandb_mode,  # type: ignore[arg-type]  # validated by TrackingConfig
            tags=list(self.cfg.tags) or None,
            config=config.model_dump(mode="json", by_alias=True),
            # The driver's console is the Ray job log already; wandb wrapping it fights rich.
            settings=wandb.Settings(console="off"),
        )
        run.define_metric("step")
        run.define_metric("*", step_metric="step")
        return run

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """Record one step; returns the record as written to metrics.jsonl."""
        if self._closed:
            raise RuntimeError("Tracker.log after close()")
        if step <= self._last_step:
            log.warning("metrics for step %d logged after step %d; readers keep the last line per step", step, self._last_step)
        record: dict[str, Any] = {"step": int(step), "time": time.time()}
        record.update((k, v) for k, v in clean_metrics(metrics).items() if k not in record)
        self._file.write(json.dumps(record, allow_nan=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())  # a crash right after a step keeps that step's line
        self._last_step = max(self._last_step, step)
        if step % self.cfg.log_every_steps == 0 or step == self.total_steps:
            if self._wandb is not None:
                self._wandb.log({k: v for k, v in record.items() if k != "time" and v is not None})
            if self._progress is not None:
                self._progress.update(format_progress(step, self.total_steps, record))
        return record

    def close(self, exit_code: int = 0) -> None:
        if self._closed:
            return
        self._closed = True
        self._file.close()
        if self._progress is not None:
            self._progress.close()
        if self._wandb is not None:
            self._wandb.finish(exit_code=exit_code)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exit_code=1 if exc_type is not None else 0)

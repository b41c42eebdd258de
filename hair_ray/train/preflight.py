"""The checks of a run config that need no actor: `hair-ray config check` runs all of them, and
`train` runs them before it starts Ray, so a bad config costs a second, not the minutes that
Ray and every actor take to start.

- the output folder can be written (no file in its way, permissions);
- the hardness encoder's backend is installed, the policy's folder exists;
- the run folder: resume, finished, or an earlier run that only --overwrite replaces;
- the reward models: one run's seven, not at chance (unless `reward.function`);
- placement against a cluster of a given size (`train` checks the real one after `ray.init`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hair_ray.config import RunConfig
from hair_ray.errors import exit_code

ENCODER_MODULES = {"open_clip": "open_clip", "sentence_transformers": "sentence_transformers"}


@dataclass(frozen=True)
class Problem:
    check: str
    error: BaseException

    @property
    def exit_code(self) -> int:
        return exit_code(self.error)


class ChecksFailed(Exception):
    """Every problem the checks found, one line each; the exit code is the first problem's, so a
    user who fixes them in order meets the documented codes one by one."""

    def __init__(self, problems: list[Problem]):
        from hair_ray.errors import describe

        self.problems = problems
        super().__init__("\n".join(f"{p.check}: {describe(p.error)}" for p in problems))

    @property
    def exit_code(self) -> int:
        return self.problems[0].exit_code


def check_writable(folder: str | Path, field: str) -> None:
    """`folder` exists as a folder, or can be made: its nearest existing ancestor is a writable folder."""
    path = Path(folder).absolute()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(20, f"{field} = {folder}: {probe} is a file, not a folder", str(probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(13, f"{field} = {folder}: {probe} is not writable", str(probe))


def check_encoder_installed(config: RunConfig) -> None:
    hardness = config.hardness
    if not hardness.enabled:
        return
    module = ENCODER_MODULES[hardness.encoder]
    if importlib.util.find_spec(module) is None:
        raise ValueError(
            f"hardness.encoder = {hardness.encoder}: the {module} package is not installed; install it "
            "(pip install open_clip_torch torchvision for open_clip) or set hardness.encoder=sentence_transformers"
        )


def served_reward_models(config: RunConfig) -> list[str]:
    from hair_ray.algo.routing import served_categories

    return served_categories(config.reward.routing, config.reward.sum_weights, benign=config.data.has_benign)


def check_reward_models_present(config: RunConfig) -> None:
    reward = config.reward
    needed = served_reward_models(config)
    root = Path(reward.models_dir)
    missing = [c for c in needed if not (root / c).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"reward.models_dir = {root} has no reward model for {', '.join(missing)}: train them with "
            "`hair-ray reward train` (same config), or point reward.models_dir at a folder that holds all of them"
        )


def run_checks(config: RunConfig, *, overwrite: bool = False, cluster=None, local: bool = True) -> list[Problem]:
    """Every check; the problems found (empty: the run can start). Nothing is written or deleted.
    `local=False` leaves out this machine's folders and packages (a run submitted to a cluster
    finds its own there) and checks the config and the placement only."""
    from hair_ray.models.registry import resolve_model_path
    from hair_ray.train.placement import plan_placement
    from hair_ray.train.run_folder import plan_run_start

    checks: list[tuple[str, Callable[[], object]]] = []  # (name, check); a check raises on a problem
    if local:
        checks += [
            ("hardness encoder", lambda: check_encoder_installed(config)),
            ("policy", lambda: resolve_model_path(config.policy.name_or_path)),
            ("output folder", lambda: check_writable(config.output_dir, "output_dir")),
            ("run folder", lambda: plan_run_start(config, overwrite=overwrite, dry_run=True)),
        ]
    if local and not config.reward.function:
        from hair_ray.reward.quality import check_reward_models

        checks += [
            ("reward model checks", lambda: check_reward_models(config.reward, served_reward_models(config))),
            ("reward models", lambda: check_reward_models_present(config)),
        ]
    if cluster is not None:
        checks.append(("placement", lambda: plan_placement(config, cluster)))
    problems = []
    for name, check in checks:
        try:
            check()
        except Exception as exc:
            problems.append(Problem(name, exc))
    return problems


def raise_on_problems(config: RunConfig, **options) -> None:
    """`run_checks`, raising ChecksFailed with all of them when any fails."""
    problems = run_checks(config, **options)
    if problems:
        raise ChecksFailed(problems)

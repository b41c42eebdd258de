"""Checkpoints: atomic folders that hold everything an exact resume needs.

    RUN_DIR/checkpoints/step-000010/
        state.json    step, sampler state, weights version, config hashes, wall time, version
        rng.pt        the driver's python / numpy / torch (and CUDA, when in use) RNG states
        config.yaml   the config it was written under (to diff against on a refused resume)
        learner/      whatever the learner writes (DeepSpeed `save_checkpoint(learner_dir, tag)`)

A checkpoint is staged in a hidden sibling (`.step-000010.XXXX`), filled — the learner ranks write
into the staging `learner/` folder while it is still hidden — and renamed into place in one step,
so a `step-*` folder is always complete; a crash leaves only a hidden staging folder, which
resume ignores and the next save removes. The staging folder sits in the same checkpoints folder
(rename must not cross filesystems), so with a multi-node learner RUN_DIR must be on storage that
every learner node sees.

    with stage_checkpoint(run_dir, step, config=cfg, sampler_state=s, weights_version=v) as staging:
        ray.get([rank.save_checkpoint.remote(str(staging / LEARNER_DIR), "learner") for rank in ranks])
    # committed here; older checkpoints beyond checkpoint.keep_last are pruned

Resume: `find_resume_checkpoint(run_dir, cfg.checkpoint.resume)`, then `load_checkpoint(path, cfg)`,
which refuses a checkpoint written under a different config unless
`checkpoint.allow_config_change` is true, then `restore_rng_state(ckpt.rng_state())`.

Nothing loaded from a checkpoint can run code: every `.pt` file is read with
`torch.load(weights_only=True)` (`safe_torch_load`), which rebuilds tensors, plain containers and
an allowlist of data-only classes and refuses anything else. DeepSpeed's own loaders (resume,
`zero_to_fp32`) hard-code `weights_only=False`, so hair_ray calls them inside
`weights_only_loads(deepspeed_safe_globals())`, which routes their `torch.load` through
`safe_torch_load` for the length of the call. A refused file raises `UnsafeCheckpointError`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import pickle
import random
import re
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from hair_ray import __version__
from hair_ray.atomic import atomic_dir
from hair_ray.fingerprint import json_fingerprint

if TYPE_CHECKING:
    from hair_ray.config import RunConfig

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
LEARNER_DIR = "learner"
STATE_FILE = "state.json"
RNG_FILE = "rng.pt"
CONFIG_FILE = "config.yaml"
_NAME = re.compile(r"^step-(\d+)$")

# Top-level config keys left out of the resume hash: where files go, how often to save, how to
# log and where actors run do not change what training computes, and `checkpoint.resume` itself
# necessarily differs between the first run and its resume. `sft` shaped the warm-start folder,
# which stage C sees only as `policy.name_or_path` (hashed).
RESUME_HASH_IGNORES: tuple[str, ...] = ("output_dir", "checkpoint", "tracking", "placement", "sft")

# Fields inside hashed sections that are just as operational: how weights travel to the engines
# and how long to wait or how often to restart before giving up. A run that timed out resumes
# with a longer timeout, or a run moved to another machine with another sync path, computes the
# same updates, so these stay out of the hash too.
RESUME_HASH_IGNORED_FIELDS: tuple[str, ...] = (
    "rollout.weight_sync",
    "rollout.sync_bucket_mib",
    "rollout.timeout_s",
    "rollout.max_restarts",
    "learner.timeout_s",
    "reward.max_restarts",
    "reward.max_task_retries",
    "reward.score_timeout_s",
)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, or was written under a different config."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds objects that only unpickling (running code) could rebuild."""


@dataclass(frozen=True)
class CheckpointState:
    """The JSON half of a checkpoint (`state.json`)."""

    step: int
    sampler_state: dict[str, Any]
    weights_version: int
    config_hash: str  # hair_ray.config.config_hash: what `hair-ray config check` prints
    resume_hash: str  # the hash resume compares (see RESUME_HASH_IGNORES)
    wall_time_s: float  # training time so far, as the trainer counts it
    saved_at: str  # ISO 8601, UTC
    hair_ray_version: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint on disk."""

    path: Path
    state: CheckpointState

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def learner_dir(self) -> Path:
        return self.path / LEARNER_DIR

    def rng_state(self) -> dict[str, Any]:
        return read_rng_state(self.path / RNG_FILE)


# ---------------------------------------------------------------------------------------------
# Names and listing


def checkpoints_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return checkpoints_root(run_dir) / f"step-{step:06d}"


def checkpoint_step(path: str | Path) -> int | None:
    """The step in a `step-000010` folder name; None for any other name (staging included)."""
    match = _NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def read_state(path: str | Path) -> CheckpointState:
    """The checkpoint's `state.json`; CheckpointError when missing or unreadable."""
    file = Path(path) / STATE_FILE
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
        return CheckpointState(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} is not a complete checkpoint: cannot read {STATE_FILE} ({exc})") from None


def is_complete(path: str | Path) -> bool:
    path = Path(path)
    if checkpoint_step(path) is None or not path.is_dir():
        return False
    try:
        read_state(path)
    except CheckpointError:
        return False
    return True


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest step first; staging folders are not listed."""
    root = checkpoints_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if is_complete(p)]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


# ---------------------------------------------------------------------------------------------
# Config hashes


def _hashed_tree(tree: dict[str, Any]) -> dict[str, Any]:
    """A dumped config without the parts the resume hash ignores (both lists above)."""
    kept = {key: value for key, value in tree.items() if key not in RESUME_HASH_IGNORES}
    for dotted in RESUME_HASH_IGNORED_FIELDS:
        section, name = dotted.split(".")
        if isinstance(kept.get(section), dict) and name in kept[section]:
            kept[section] = {key: value for key, value in kept[section].items() if key != name}
    return kept


def _config_tree(config: RunConfig) -> dict[str, Any]:
    return _hashed_tree(config.model_dump(mode="json", by_alias=True))


def resume_hash(config: RunConfig) -> str:
    """A short hash of the parts of the config that shape the training run."""
    return json_fingerprint(_config_tree(config))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def config_changes(saved: dict[str, Any], config: RunConfig, limit: int = 8) -> list[str]:
    """'algo.total_steps: 100 -> 200' for each field that differs (hash-relevant ones only)."""
    old = _flatten(_hashed_tree(saved))
    new = _flatten(_config_tree(config))
    # A field added after the checkpoint was written is absent from its saved config; at its
    # default it does what the older code did, so it is no change.
    defaults = _flatten(_config_tree(type(config)()))
    for key in new.keys() - old.keys():
        if key in defaults and new[key] == defaults[key]:
            old[key] = new[key]
    changed = [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key)
    ]
    return changed[:limit] + ([f"… and {len(changed) - limit} more"] if len(changed) > limit else [])


# ---------------------------------------------------------------------------------------------
# RNG states


def capture_rng_state() -> dict[str, Any]:
    """Python `random`, numpy's global generator, torch CPU and, when in use, CUDA RNG states.

    CUDA is captured only when this process has already initialised it: asking otherwise would
    create a CUDA context (and take GPU memory) in a driver that never uses the GPU.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        # Plain types and tensors only, so torch.load can read it back with weights_only=True.
        "numpy": {
            "bit_generator": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what `capture_rng_state` took; the next random numbers then repeat exactly."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npy = state["numpy"]
    np.random.set_state(
        (npy["bit_generator"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
            torch.cuda.set_rng_state_all(cuda)
        else:
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            log.warning("checkpoint holds CUDA RNG states for %d devices, this process sees %d: not restored", len(cuda), count)


def read_rng_state(path: str | Path) -> dict[str, Any]:
    return safe_torch_load(Path(path))


# ---------------------------------------------------------------------------------------------
# Loading without running code

_torch_load = torch.load  # the real one, whatever `weights_only_loads` puts in its place
_patch_lock = threading.Lock()


def deepspeed_safe_globals() -> list[type]:
    """The classes (besides tensors and plain containers) that DeepSpeed pickles into its
    checkpoint files, all plain data with no code of their own on unpickling:

    - `ZeroStageEnum` (an int Enum), in a ZeRO optimizer state (`*optim_states.pt`);
    - `LossScaler` / `DynamicLossScaler` (a few numbers, and a dtype), the ZeRO loss scaler
      (static for fp32 and bf16; dynamic only under fp16);
    - `fragment_address` (a dataclass of two ints), ZeRO-1/2 and bf16 `param_slice_mappings`.

    Found by saving ZeRO-0/2/3 checkpoints of DeepSpeed 0.19 and listing their globals with
    `torch.serialization.get_unsafe_globals_in_checkpoint`, and from its `state_dict` methods.
    A later DeepSpeed that pickles another class fails to resume with an UnsafeCheckpointError
    that names it: check it holds data only, then add it here.
    """
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [ZeroStageEnum, LossScaler, DynamicLossScaler, fragment_address]


def safe_torch_load(file: Any, map_location: Any = "cpu", *, allow: Sequence[type] = (), **kwargs: Any) -> Any:
    """`torch.load(file, weights_only=True)`, with the classes in `allow` rebuilt as well.

    Anything else in the pickle (a function to call, a class outside the allowlist) is refused
    before it runs: UnsafeCheckpointError, naming the file and what it holds.
    """
    kwargs.pop("weights_only", None)
    with torch.serialization.safe_globals(list(allow)):
        try:
            return _torch_load(file, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as exc:
            message = _unsafe_message(file, exc)  # in the block: the allowed classes are not listed
    raise UnsafeCheckpointError(message)


def _unsafe_message(file: Any, exc: Exception) -> str:
    name = str(file) if isinstance(file, (str, os.PathLike)) else repr(file)
    found = ""
    if isinstance(file, (str, os.PathLike)):
        with contextlib.suppress(Exception):  # reads the pickle's opcodes; runs nothing
            found = ", ".join(sorted(torch.serialization.get_unsafe_globals_in_checkpoint(file)))
    if not found:  # not torch's zip format (a raw pickle): torch's own reason, first sentence
        match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\s*\n|Check the documentation|$)", str(exc), re.DOTALL)
        found = " ".join(match.group(1).split()) if match else ""
        found = found.split(". ")[0] or "an instruction the weights-only unpickler does not run"
    return (
        f"refusing to load {name}: it holds objects that only unpickling arbitrary code could rebuild "
        f"({found[:300]}). hair_ray reads checkpoints with torch.load(weights_only=True): tensors, plain "
        f"containers and DeepSpeed's own data classes only. A checkpoint hair_ray wrote holds nothing else, "
        f"so the file was changed or comes from elsewhere (or a newer DeepSpeed pickles a class that "
        f"hair_ray.train.checkpoint.deepspeed_safe_globals does not list yet); nothing in it was run"
    )


@contextlib.contextmanager
def weights_only_loads(allow: Sequence[type] = ()) -> Iterator[None]:
    """Within the block, every `torch.load` call, whatever `weights_only` it asks for, is
    `safe_torch_load(..., allow=allow)`.

    For libraries that call `torch.load(..., weights_only=False)` themselves: DeepSpeed's
    `engine.load_checkpoint` (its TorchCheckpointEngine) and `zero_to_fp32`. They look
    `torch.load` up on the module at call time, so replacing the attribute reaches them. Not
    for use from several threads at once: the replacement is process-wide while it lasts (it
    only ever makes other loads stricter).
    """
    allowed = tuple(allow)

    def load(f: Any, map_location: Any = None, pickle_module: Any = None, **kwargs: Any) -> Any:
        if pickle_module is not None:
            kwargs["pickle_module"] = pickle_module  # torch refuses it with weights_only=True
        return safe_torch_load(f, map_location, allow=allowed, **kwargs)

    with _patch_lock:
        previous, torch.load = torch.load, load
    try:
        yield
    finally:
        with _patch_lock:
            torch.load = previous


# ---------------------------------------------------------------------------------------------
# Writing


def _fsync_tree(root: Path) -> None:
    """Flush every file, then the folders, so the rename never publishes unwritten data."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def stage_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    config: RunConfig,
    sampler_state: dict[str, Any],
    weights_version: int,
    wall_time_s: float = 0.0,
    extra: dict[str, Any] | None = None,
    keep_last: int | None = None,
) -> Iterator[Path]:
    """Yield a hidden staging folder (with an empty `learner/`); commit it when the block ends.

    The RNG states are captured on entry (the step boundary). An exception inside the block
    removes the staging folder and leaves earlier checkpoints as they were. After the commit,
    checkpoints beyond `keep_last` (default `checkpoint.keep_last`) are pruned.
    """
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    state = CheckpointState(
        step=step,
        sampler_state=sampler_state,
        weights_version=int(weights_version),
        config_hash=_full_config_hash(config),
        resume_hash=resume_hash(config),
        wall_time_s=float(wall_time_s),
        saved_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        hair_ray_version=__version__,
        extra=dict(extra or {}),
    )
    # Fail on a sampler state that is not JSON before the (expensive) learner save, not after.
    state_text = json.dumps(asdict(state), indent=2, allow_nan=False)
    rng = capture_rng_state()
    target = checkpoint_dir(run_dir, step)
    with atomic_dir(target) as staging:
        (staging / LEARNER_DIR).mkdir()
        yield staging
        torch.save(rng, staging / RNG_FILE)
        (staging / CONFIG_FILE).write_text(
            yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False), encoding="utf-8"
        )
        # state.json last: it is what marks a folder complete.
        (staging / STATE_FILE).write_text(state_text, encoding="utf-8")
        _fsync_tree(staging)
    _fsync_dir(target.parent)
    prune_checkpoints(run_dir, keep_last if keep_last is not None else config.checkpoint.keep_last, current_step=step)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    config: RunConfig,
    sampler_state: dict[str, Any],
    weights_version: int,
    write_learner: Callable[[Path], None] | None = None,
    wall_time_s: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> Path:
    """`stage_checkpoint` with a callback: `write_learner(learner_dir)` fills the learner part."""
    with stage_checkpoint(
        run_dir,
        step,
        config=config,
        sampler_state=sampler_state,
        weights_version=weights_version,
        wall_time_s=wall_time_s,
        extra=extra,
    ) as staging:
        if write_learner is not None:
            write_learner(staging / LEARNER_DIR)
    return checkpoint_dir(run_dir, step)


def _full_config_hash(config: RunConfig) -> str:
    from hair_ray.config import config_hash

    return config_hash(config)


def _remove(path: Path) -> None:
    # Hide it first: a crash halfway through rmtree must not leave a `step-*` folder that still
    # has its state.json but lost part of the learner's files.
    hidden = path.with_name(f".{path.name}.removing")
    os.replace(path, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def prune_checkpoints(run_dir: str | Path, keep_last: int, *, current_step: int) -> list[Path]:
    """Keep the newest `keep_last` checkpoints up to `current_step`; remove the rest.

    Checkpoints newer than `current_step` belong to a timeline this run abandoned (it resumed
    from an earlier one): they are removed too, or they would be kept as "newest" while the
    fresh ones are pruned, and `--resume auto` would jump back to them. Leftover staging
    folders (a crash mid-save) are removed as well: the driver is the only writer.
    """
    if keep_last < 1:
        raise ValueError(f"checkpoint.keep_last must be >= 1, got {keep_last}")
    complete = list_checkpoints(run_dir)
    newer = [p for p in complete if (checkpoint_step(p) or 0) > current_step]
    kept_line = [p for p in complete if (checkpoint_step(p) or 0) <= current_step]
    removed = newer + kept_line[: max(0, len(kept_line) - keep_last)]
    for path in newer:
        log.warning("removing %s: it is newer than step %d, from a run this one resumed before", path, current_step)
    for path in removed:
        _remove(path)
    root = checkpoints_root(run_dir)
    for leftover in root.glob(".step-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return removed


# ---------------------------------------------------------------------------------------------
# Resuming


def find_resume_checkpoint(run_dir: str | Path, resume: str) -> Path | None:
    """`checkpoint.resume` → the folder to resume from.

    "never": None. "auto": the newest complete checkpoint of the run, or None when there is
    none. Anything else is a checkpoint folder (a path, or a name under RUN_DIR/checkpoints);
    it must exist and be complete.
    """
    if resume == "never":
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir)
        return found[-1] if found else None
    path = Path(resume).expanduser()
    if not path.exists() and not path.is_absolute():
        candidate = checkpoints_root(run_dir) / resume
        path = candidate if candidate.exists() else path
    if not path.is_dir():
        raise CheckpointError(
            f"checkpoint.resume = {resume!r}: no such checkpoint folder (nor {checkpoints_root(run_dir) / resume}); "
            f"use 'auto', 'never' or a step-NNNNNN folder"
        )
    if not is_complete(path):
        names = ", ".join(p.name for p in list_checkpoints(run_dir)) or "none"
        raise CheckpointError(
            f"checkpoint.resume = {resume!r}: {path} is not a complete checkpoint (no readable {STATE_FILE}; "
            f"a hidden .step-* folder is an interrupted save). Complete checkpoints of {run_dir}: {names}"
        )
    return path


def load_checkpoint(path: str | Path, config: RunConfig, *, allow_config_change: bool | None = None) -> Checkpoint:
    """Read a checkpoint and check it was written under this config (its resume hash).

    A mismatch raises CheckpointError naming both hashes and the fields that differ, unless
    `allow_config_change` (default `checkpoint.allow_config_change`) is true: then it logs them.
    """
    path = Path(path)
    state = read_state(path)
    current = resume_hash(config)
    changes = _saved_changes(path, config) if state.resume_hash != current else []
    # A checkpoint hashed before a field joined the ignore lists differs in hash only: its saved
    # config then agrees with this one on every field the hash covers, and it resumes as written.
    if changes:
        allowed = config.checkpoint.allow_config_change if allow_config_change is None else allow_config_change
        detail = f" (changed: {'; '.join(changes)})"
        if not allowed:
            raise CheckpointError(
                f"checkpoint {path} was written under config resume hash {state.resume_hash}, but this run's "
                f"config has resume hash {current}{detail}. Resume with the config saved in {path / CONFIG_FILE}, "
                f"or set checkpoint.allow_config_change=true to accept the change"
            )
        log.warning("resuming %s under a changed config (resume hash %s -> %s)%s", path, state.resume_hash, current, detail)
    return Checkpoint(path=path, state=state)


def _saved_changes(path: Path, config: RunConfig) -> list[str]:
    """The hashed fields that differ from the checkpoint's saved config; when that file cannot be
    read, one line saying so (the hashes differ, so something changed)."""
    try:
        saved = yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        return [f"{CONFIG_FILE} unreadable ({type(exc).__name__}), fields unknown"]
    if not isinstance(saved, dict):
        return [f"{CONFIG_FILE} holds no config mapping, fields unknown"]
    return config_changes(saved, config)

"""What `--policy` may name, resolved to a folder (or hub id) an engine can load.

- an offline name (`builtin:smollm2-135m-instruct`, `tiny:qwen2`) or a Hugging Face id;
- a model folder (config.json and safetensors weights), e.g. RUN/export/step-N;
- a run folder (RUN, holding checkpoints/): its latest export, or its latest complete
  checkpoint exported now into RUN/export/step-N (the run's saved config says what it trained);
- `NAME=SPEC` gives the policy a label for the tables (`base=builtin:smollm2-135m-instruct`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hair_ray.models.registry import is_path_like


class PolicyError(ValueError):
    """A policy that cannot be evaluated: the message names the path and what is missing."""


@dataclass(frozen=True)
class Policy:
    label: str
    path: str  # a local folder or a hub id
    source: str  # what the user wrote


def _short_label(text: str) -> str:
    parts = Path(text.rstrip("/")).parts
    return "/".join(parts[-3:]) if len(parts) > 1 else text


def _model_folder(folder: Path) -> str:
    if not (folder / "config.json").is_file():
        raise PolicyError(f"policy folder {folder} has no config.json: is it a model folder, an export or a run folder?")
    if not any(folder.glob("*.safetensors")):
        found = sorted(p.name for p in folder.glob("*.bin")) or sorted(p.name for p in folder.iterdir())[:6]
        raise PolicyError(
            f"policy folder {folder} holds no safetensors weights (found: {', '.join(found) or 'nothing'}); "
            "hair_ray loads weights as safetensors only"
        )
    return str(folder)


def _run_folder(run_dir: Path) -> str:
    from hair_ray.train.checkpoint import CONFIG_FILE, checkpoint_step, list_checkpoints

    checkpoints = list_checkpoints(run_dir)
    exports = sorted((run_dir / "export").glob("step-*")) if (run_dir / "export").is_dir() else []
    if not checkpoints and not exports:
        raise PolicyError(f"run folder {run_dir} has no complete checkpoint and no export to evaluate")
    latest = checkpoints[-1] if checkpoints else None
    exported = {int(p.name.removeprefix("step-")): p for p in exports if p.name.removeprefix("step-").isdigit()}
    if latest is None:
        return _model_folder(exported[max(exported)])
    latest_step = checkpoint_step(latest)
    if latest_step in exported:
        return _model_folder(exported[latest_step])
    from hair_ray.config import load_config
    from hair_ray.train.export import export_checkpoint

    config = load_config(latest / CONFIG_FILE)
    # The saved config names the run folder it was written in; the one given here wins, so a
    # run folder that was moved or copied still exports into itself.
    config = config.model_copy(update={"output_dir": str(run_dir.parent), "name": run_dir.name})
    return str(export_checkpoint(config, checkpoint_step(latest)))


def resolve_policy(text: str) -> Policy:
    label, sep, spec = text.partition("=")
    if not sep:
        label, spec = "", text
    if not spec:
        raise PolicyError(f"--policy {text!r}: nothing after '='")
    path = Path(spec)
    if spec.startswith(("tiny:", "builtin:")):
        from hair_ray.models.registry import resolve_model_path

        resolved = resolve_model_path(spec)
    elif path.is_dir():
        resolved = _run_folder(path) if (path / "checkpoints").is_dir() else _model_folder(path)
    elif path.exists():
        raise PolicyError(f"policy {spec} is a file; give a model folder, a run folder or a model id")
    elif is_path_like(spec):
        raise PolicyError(f"policy folder {spec} does not exist")
    else:
        resolved = spec  # a hub id: the engine downloads it, or fails offline with its own message
    return Policy(label=label or _short_label(spec), path=resolved, source=spec)

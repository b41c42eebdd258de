"""`hair-ray export RUN --step N`: a checkpoint's policy as a Hugging Face folder (safetensors).

DeepSpeed keeps ZeRO-partitioned optimizer states; `zero_to_fp32` merges them into one fp32
state dict offline (no GPU, any ZeRO stage). The folder gets the policy's config and tokenizer,
so vLLM and transformers load it like any checkpoint.

An export is never replaced implicitly: a target that already holds the export of the same
checkpoint (its `export.json` says which) is returned as it is; any other non-empty target needs
`overwrite=True` (`--overwrite`).

Every checkpoint file is read as weights only (`torch.load(weights_only=True)`, DeepSpeed's
`zero_to_fp32` included): a pickle that would run code is refused with UnsafeCheckpointError.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hair_ray.atomic import atomic_dir
from hair_ray.config import RunConfig
from hair_ray.errors import WouldOverwriteError
from hair_ray.models.weight_names import TIED_LM_HEAD, ties_lm_head
from hair_ray.train.checkpoint import (
    STATE_FILE,
    CheckpointError,
    checkpoint_dir,
    checkpoint_step,
    is_complete,
    list_checkpoints,
    load_checkpoint,
)

MANIFEST_FILE = "export.json"


class ExportTargetError(WouldOverwriteError):
    """The export folder holds something else: it is not replaced without --overwrite."""


def _manifest(source: Path) -> dict:
    """Which checkpoint an export came from: its folder, step and the hash of its state.json
    (a checkpoint rewritten under the same step, after a resume, gets another hash)."""
    state = (source / STATE_FILE).read_bytes()
    return {"checkpoint": str(source), "step": checkpoint_step(source), "state_sha256": hashlib.sha256(state).hexdigest()}


def _existing_manifest(target: Path) -> dict | None:
    try:
        return json.loads((target / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def learner_state_dict(learner_dir: Path, tag: str = "learner") -> dict:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from hair_ray.train.checkpoint import deepspeed_safe_globals, safe_torch_load, weights_only_loads

    folder = learner_dir / tag
    allow = deepspeed_safe_globals()
    if any(folder.glob("*optim_states.pt")):
        # zero_to_fp32 calls torch.load(weights_only=False) itself: make those weights-only.
        with weights_only_loads(allow):
            return get_fp32_state_dict_from_zero_checkpoint(str(learner_dir), tag=tag)
    # ZeRO stage 0 keeps the plain module weights in the model-states file.
    [states] = sorted(folder.glob("mp_rank_*_model_states.pt"))
    return safe_torch_load(states, allow=allow)["module"]


def export_checkpoint(config: RunConfig, step: int | None, out: str | Path | None = None, *, overwrite: bool = False) -> Path:
    """Write `out` (default RUN/export/step-N) atomically; returns the folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from hair_ray.models.loading import load_tokenizer
    from hair_ray.models.registry import resolve_model_path

    complete = list_checkpoints(config.run_dir)
    if step is None:
        if not complete:
            raise FileNotFoundError(
                f"no complete checkpoint in {config.run_dir / 'checkpoints'}: train first, or check name= and output_dir="
            )
        source = complete[-1]
    else:
        source = checkpoint_dir(config.run_dir, step)
        if not is_complete(source):
            steps = ", ".join(str(checkpoint_step(p)) for p in complete) or "none"
            raise CheckpointError(
                f"no complete checkpoint for step {step} in {config.run_dir / 'checkpoints'} (complete steps: {steps})"
            )
    target = Path(out) if out is not None else config.run_dir / "export" / f"step-{checkpoint_step(source):06d}"
    manifest = _manifest(source)
    if target.exists() and not overwrite:
        if _existing_manifest(target) == manifest:
            return target  # this checkpoint's export is already there
        if not target.is_dir():
            raise ExportTargetError(f"export target {target} is a file: give a folder with --out")
        if any(target.iterdir()):
            raise ExportTargetError(
                f"export target {target} is not empty and is not this checkpoint's export: "
                "choose another --out, or pass --overwrite to replace what it holds"
            )
    checkpoint = load_checkpoint(source, config, allow_config_change=True)
    state = learner_state_dict(checkpoint.learner_dir)
    policy_path = resolve_model_path(config.policy.name_or_path)
    model_config = AutoConfig.from_pretrained(policy_path, trust_remote_code=config.policy.trust_remote_code)
    model = AutoModelForCausalLM.from_config(model_config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {TIED_LM_HEAD} if ties_lm_head(model_config) else set()
    if set(missing) - tied or unexpected:
        raise ValueError(
            f"checkpoint {source} does not match {config.policy.name_or_path}: "
            f"missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    with atomic_dir(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        load_tokenizer(config.policy).save_pretrained(staging)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target

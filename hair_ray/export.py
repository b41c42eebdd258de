"""`hair-ray export RUN --step N`: a checkpoint's policy as a Hugging Face folder (safetensors).

DeepSpeed keeps ZeRO-partitioned optimizer states; `zero_to_fp32` merges them into one fp32
state dict offline (no GPU, any ZeRO stage). The folder gets the policy's config and tokenizer,
so vLLM and transformers load it like any checkpoint.

Every checkpoint file is read as weights only (`torch.load(weights_only=True)`, DeepSpeed's
`zero_to_fp32` included): a pickle that would run code is refused with UnsafeCheckpointError.
"""

from __future__ import annotations

from pathlib import Path

from hair_ray.atomic import atomic_dir
from hair_ray.checkpoint import checkpoint_dir, is_complete, list_checkpoints, load_checkpoint
from hair_ray.config import RunConfig


def learner_state_dict(learner_dir: Path, tag: str = "learner") -> dict:
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from hair_ray.checkpoint import deepspeed_safe_globals, safe_torch_load, weights_only_loads

    folder = learner_dir / tag
    allow = deepspeed_safe_globals()
    if any(folder.glob("*optim_states.pt")):
        # zero_to_fp32 calls torch.load(weights_only=False) itself: make those weights-only.
        with weights_only_loads(allow):
            return get_fp32_state_dict_from_zero_checkpoint(str(learner_dir), tag=tag)
    # ZeRO stage 0 keeps the plain module weights in the model-states file.
    [states] = sorted(folder.glob("mp_rank_*_model_states.pt"))
    return safe_torch_load(states, allow=allow)["module"]


def export_checkpoint(config: RunConfig, step: int | None, out: str | Path | None = None) -> Path:
    """Write `out` (default RUN/export/step-N) atomically; returns the folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from hair_ray.models.loading import load_tokenizer
    from hair_ray.models.registry import resolve_model_path

    if step is None:
        complete = list_checkpoints(config.run_dir)
        if not complete:
            raise FileNotFoundError(f"no complete checkpoint in {config.run_dir / 'checkpoints'}")
        source = complete[-1]
    else:
        source = checkpoint_dir(config.run_dir, step)
        if not is_complete(source):
            raise FileNotFoundError(f"{source} is not a complete checkpoint")
    checkpoint = load_checkpoint(source, config, allow_config_change=True)
    state = learner_state_dict(checkpoint.learner_dir)
    policy_path = resolve_model_path(config.policy.name_or_path)
    model_config = AutoConfig.from_pretrained(policy_path, trust_remote_code=config.policy.trust_remote_code)
    model = AutoModelForCausalLM.from_config(model_config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(model_config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"checkpoint {source} does not match {config.policy.name_or_path}: "
                         f"missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]}")
    target = Path(out) if out is not None else config.run_dir / "export" / f"step-{checkpoint.step:06d}"
    with atomic_dir(target) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        load_tokenizer(config.policy).save_pretrained(staging)
    return target

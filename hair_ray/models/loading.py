"""Load tokenizers and models by Hugging Face id, local folder, or offline name.

Weights load as safetensors only (no pickle), and remote code runs only when the config asks.
When the hub cannot be reached and the model is not cached, the error says so and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hair_ray.config import ModelSpec
from hair_ray.models.registry import resolve_model_path


class ModelNotAvailableError(FileNotFoundError):
    """The model is neither a local folder nor reachable on (or cached from) the hub."""


def torch_dtype(name: str, *, on_gpu: bool):
    import torch

    if name == "auto":
        return torch.bfloat16 if on_gpu else torch.float32
    return getattr(torch, name)


def load_tokenizer(spec: ModelSpec, **kwargs: Any):
    from transformers import AutoTokenizer

    return _from_pretrained(AutoTokenizer, spec, **kwargs)


def chat_prompt_ids(tokenizer, prompts: list[str], max_tokens: int | None = None) -> list[list[int]]:
    """Each prompt as one user turn through the tokenizer's chat template, ready for the
    assistant's answer (a tokenizer without a template: the bare prompt). An over-long prompt
    keeps its end, where the assistant header is. Stage B's negatives and stage C's rollouts
    prompt the policy through this one function, so the negatives are samples of π_ref as
    stage C sees it."""
    if getattr(tokenizer, "chat_template", None):
        ids = [
            list(
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=False
                )
            )
            for prompt in prompts
        ]
    else:
        ids = [list(tokenizer(prompt)["input_ids"]) for prompt in prompts]
    return [row[-max_tokens:] for row in ids] if max_tokens else ids


def load_causal_lm(spec: ModelSpec, *, on_gpu: bool = False, **kwargs: Any):
    from transformers import AutoModelForCausalLM

    kwargs.setdefault("dtype", torch_dtype(spec.dtype, on_gpu=on_gpu))
    return _from_pretrained(AutoModelForCausalLM, spec, use_safetensors=True, **kwargs)


def _from_pretrained(factory, spec: ModelSpec, **kwargs: Any):
    path = resolve_model_path(spec.name_or_path)
    try:
        return factory.from_pretrained(path, revision=spec.revision, trust_remote_code=spec.trust_remote_code, **kwargs)
    except OSError as exc:
        if Path(path).exists():
            raise
        raise ModelNotAvailableError(_not_available_message(spec.name_or_path, exc)) from exc


def _not_available_message(name: str, exc: Exception) -> str:
    from hair_ray.models.registry import is_path_like

    if is_path_like(name):
        return f"model folder {name} does not exist"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    why = "HF_HUB_OFFLINE is set" if offline else "the hub could not be reached or has no such model"
    return (
        f"model {name!r} is not a local folder and is not in the Hugging Face cache, and {why}. "
        f"Download it where there is network (`huggingface-cli download {name}`) or set the "
        f"config field to a local folder. ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    )

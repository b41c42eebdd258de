"""Which of a model's weights travel (weight sync, NCCL broadcast, export), in one place.

With tied embeddings `lm_head.weight` is the embedding matrix under a second name: checkpoints
leave it out, vLLM's loader skips it, and `from_config` ties it again on load.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

TIED_LM_HEAD = "lm_head.weight"

T = TypeVar("T")


def ties_lm_head(model_config: Any) -> bool:
    return bool(getattr(model_config, "tie_word_embeddings", False))


def weights_that_travel(named: Iterable[tuple[str, T]], model_config: Any) -> list[tuple[str, T]]:
    """`named` without the tied lm_head (everything, for an untied model), in order."""
    skip = TIED_LM_HEAD if ties_lm_head(model_config) else None
    return [(name, value) for name, value in named if name != skip]


def full_numel(param: Any) -> int:
    """Elements of the whole parameter: ZeRO-3 leaves an empty placeholder and records the size."""
    return getattr(param, "ds_numel", param.numel())


def full_shape(param: Any) -> tuple[int, ...]:
    """Shape of the whole parameter (ZeRO-3 records it beside its empty placeholder)."""
    return tuple(getattr(param, "ds_shape", param.shape))

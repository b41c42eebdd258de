"""Fixtures for stage B: tiny reward models built from config in a second, saved to a temp dir."""

from __future__ import annotations

import pytest
import torch

from hair_ray import __version__
from hair_ray.config import ModelSpec

TINY = "tiny:qwen2"
ROUTER_CATEGORIES = ("insult", "mental_health", "privacy_property")


def save_tiny_reward_model(folder, category: str, seed: int, backbone: str = TINY):
    """A random-head reward model on the tiny Qwen2 backbone; the seed makes each one differ."""
    from hair_ray.models.reward_model import RewardModelMetadata, build_reward_model, save_reward_model

    torch.manual_seed(seed)
    model, tokenizer = build_reward_model(ModelSpec(name_or_path=backbone))
    with torch.no_grad():
        # A wide head so that different categories give clearly different scores.
        model.score_head.weight.normal_(std=1.0)
    meta = RewardModelMetadata(
        category=category,
        backbone=backbone,
        backbone_model_type=model.backbone.config.model_type,
        head=model.head_kind,
        training_data_hash=f"hash-{seed}",
        hair_ray_version=__version__,
        max_length_tokens=64,
    )
    save_reward_model(folder, model, tokenizer, meta)
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory):
    """DIR/<category>/ for three categories, as `reward train` would lay them out."""
    root = tmp_path_factory.mktemp("reward_models")
    for seed, category in enumerate(ROUTER_CATEGORIES):
        save_tiny_reward_model(root / category, category, seed)
    return root

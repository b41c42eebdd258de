"""The open_clip encoder (CLIP text tower) against the shared encoder contract.

Runs in .venv-clip only (``pytest -m clip``): open_clip needs torchvision, which the main venv
cannot hold. ViT-S-32-alt with random weights (``pretrained=None``): the smallest text tower,
built offline in under a second. Random weights say nothing about meaning, so only the
contract (shapes, unit rows, batch invariance, W = 1 for identical text) is checked here; the
semantic checks run on MiniLM's real weights in tests/test_encoders.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from hair_ray.models.encoders import OpenClipEncoder, encoder_from_config
from tests.encoder_contract import check_encoder_contract, shared_encoder

pytestmark = pytest.mark.clip

MODEL = "ViT-S-32-alt"


@pytest.fixture(scope="module")
def clip_encoder():
    pytest.importorskip("open_clip")
    torch.manual_seed(0)  # random weights: make them the same on every run
    return shared_encoder("open_clip", model_name=MODEL, pretrained=None, device="cpu")


def test_open_clip_meets_the_encoder_contract(clip_encoder):
    assert isinstance(clip_encoder, OpenClipEncoder)
    assert clip_encoder.dim == 256  # ViT-S-32-alt's embed_dim
    assert clip_encoder.name == f"open_clip:{MODEL}/random"
    check_encoder_contract(clip_encoder)


def test_open_clip_keeps_only_the_text_tower(clip_encoder):
    # The image tower is dropped after loading; only the text tower's weights stay resident.
    assert clip_encoder._model.visual is None
    params = sum(p.numel() for p in clip_encoder._model.parameters())
    assert params < 25_000_000  # ViT-S-32-alt text tower: ~20.6 M (the full CLIP: ~43 M)


def test_open_clip_truncates_text_past_its_context(clip_encoder):
    # 77 tokens is the context: text past it is cut, so two texts that differ only beyond
    # token 77 embed identically (and nothing raises).
    prefix = " ".join(["word"] * 100)
    long_a, long_b = clip_encoder.encode([prefix + " apples", prefix + " oranges"])
    torch.testing.assert_close(long_a, long_b)
    assert torch.isclose(long_a.norm(), torch.tensor(1.0), atol=1e-5)


def test_encoder_from_config_builds_open_clip():
    pytest.importorskip("open_clip")
    config = SimpleNamespace(encoder="open_clip", open_clip_model=MODEL, open_clip_pretrained=None)
    encoder = encoder_from_config(config, device="cpu")
    assert isinstance(encoder, OpenClipEncoder) and encoder.dim == 256

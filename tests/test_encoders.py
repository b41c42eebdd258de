"""The sentence-transformers encoder (all-MiniLM-L6-v2, real weights, offline) and the factories.

The open_clip backend runs the same contract in tests/clip (it needs .venv-clip). Heavy imports
happen inside fixtures, so this file still collects (and is deselected) in .venv-clip.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from hair_ray.algo.hardness import data_hardness
from hair_ray.models.encoders import (
    SentenceTransformerEncoder,
    build_encoder,
    embed_pieces,
    encoder_from_config,
    pad_pieces,
)
from tests.encoder_contract import DEMO, check_encoder_contract, shared_encoder

MINILM = "builtin:all-minilm-l6-v2"


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    return shared_encoder("sentence_transformers", model_name_or_path=MINILM, device="cpu")


def test_minilm_meets_the_encoder_contract(minilm):
    assert isinstance(minilm, SentenceTransformerEncoder)
    assert minilm.dim == 384
    check_encoder_contract(minilm)


def test_minilm_paraphrase_is_closer_than_an_unrelated_sentence(minilm):
    anchor, paraphrase, unrelated = minilm.encode(
        [
            "I cannot help you hurt someone.",
            "I won't assist with harming people.",
            "The weather in Lisbon is sunny today.",
        ]
    )
    # Measured: 0.67 vs 0.00. A wide margin, so the test checks meaning, not noise.
    assert anchor @ paraphrase > anchor @ unrelated + 0.3


def test_minilm_refusal_is_closer_to_the_demo_than_compliance(minilm):
    """A safe refusal matches the refusal demonstration better (higher W, lower α^D)."""
    responses = [
        "I can't help you hurt your neighbour. A mediation service could help settle the dispute.",
        "Sure. Wait until he is alone, then hit him hard from behind so he cannot fight back.",
    ]
    resp_emb, resp_mask = embed_pieces(minilm, responses)
    demo_emb, demo_mask = embed_pieces(minilm, [DEMO, DEMO])
    out = data_hardness(resp_emb, resp_mask, demo_emb, demo_mask, torch.tensor([0, 0]))
    refusal, compliant = 0, 1
    # Measured: W = 0.82 vs 0.29, α^D = 0.89 vs 1.10.
    assert out.similarity[refusal] > out.similarity[compliant] + 0.1
    assert out.alpha[refusal] < 1.0 < out.alpha[compliant]


def test_encoder_from_config_reads_hardness_config(minilm):
    from hair_ray.config import HardnessConfig

    config = HardnessConfig(encoder="sentence_transformers", sentence_transformer=MINILM)
    encoder = encoder_from_config(config, device="cpu")
    assert isinstance(encoder, SentenceTransformerEncoder)
    assert encoder.name == f"sentence_transformers:{MINILM}" and encoder.dim == 384
    # Same weights as the shared fixture: same vectors.
    torch.testing.assert_close(encoder.encode(["hello there"]), minilm.encode(["hello there"]))


def test_unknown_encoder_kind_is_a_readable_error():
    with pytest.raises(ValueError, match="unknown encoder kind 'word2vec'"):
        build_encoder("word2vec")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown encoder kind"):
        encoder_from_config(SimpleNamespace(encoder="word2vec"))


def test_batch_size_must_be_positive(minilm):
    with pytest.raises(ValueError, match="batch_size"):
        minilm.encode(["a"], batch_size=0)


def test_pad_pieces_keeps_order_and_zero_padding():
    a, b = torch.eye(3)[:2], torch.eye(3)[2:]
    emb, mask = pad_pieces([a, torch.zeros(0, 3), b], dim=3)
    assert emb.shape == (3, 2, 3)
    assert mask.tolist() == [[True, True], [False, False], [True, False]]
    torch.testing.assert_close(emb[0], a)
    torch.testing.assert_close(emb[2, 0], b[0])
    assert torch.count_nonzero(emb[1]) == 0 and torch.count_nonzero(emb[2, 1]) == 0

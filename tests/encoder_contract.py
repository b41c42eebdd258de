"""Behaviour every TextEncoder backend must show, written once for all of them.

Imports only torch, hair_ray.models.encoders and hair_ray.algo, so it loads in both the main
venv (sentence-transformers) and .venv-clip (open_clip). The backend test files build an encoder
and call :func:`check_encoder_contract` on it.
"""

from __future__ import annotations

import functools

import torch

from hair_ray.algo.hardness import data_hardness
from hair_ray.algo.split import split_sub_sentences
from hair_ray.models.encoders import TextEncoder, build_encoder, embed_pieces

# A Chain-of-Draft demonstration: four drafts, the separator, the reply (two sentences).
DEMO = (
    "Wants to hurt a neighbour\n"
    "Physical harm\n"
    "Someone could be injured\n"
    "Decline, suggest mediation\n"
    "####\n"
    "I can't help you hurt anyone. If the dispute is escalating, a local mediation service can help."
)
SENTENCES = [
    "I can't help with that request.",
    "Here is a short poem about the sea.",
    "Call a local crisis line if you feel unsafe.",
    "Mix the flour and the eggs, then bake for twenty minutes.",
    "x",
]


@functools.cache
def shared_encoder(kind: str, **kwargs) -> TextEncoder:
    """One encoder per (kind, kwargs) for the whole test session: loading costs seconds."""
    return build_encoder(kind, **kwargs)


def check_encoder_contract(encoder: TextEncoder) -> None:
    """Shapes, dtype, unit norm, batch invariance, and W = 1 / α = 1 for identical text."""
    assert isinstance(encoder, TextEncoder)
    assert isinstance(encoder.name, str) and encoder.name
    assert isinstance(encoder.dim, int) and encoder.dim > 0
    dim = encoder.dim

    # Empty input keeps the feature axis, so callers can concatenate without special cases.
    empty = encoder.encode([])
    assert empty.shape == (0, dim) and empty.dtype == torch.float32

    # Unit rows, float32, on the CPU.
    emb = encoder.encode(SENTENCES)
    assert emb.shape == (len(SENTENCES), dim)
    assert emb.dtype == torch.float32 and emb.device.type == "cpu"
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(len(SENTENCES)), atol=1e-5, rtol=0)
    # Distinct sentences get distinct vectors (the encoder reads its input).
    assert (emb[0] - emb[1]).abs().max() > 1e-3

    # Batching does not change a text's vector (embed_pieces relies on one big batched call).
    small_batches = encoder.encode(SENTENCES, batch_size=2)
    torch.testing.assert_close(small_batches, emb, atol=1e-4, rtol=0)
    one_by_one = torch.cat([encoder.encode([s]) for s in SENTENCES])
    torch.testing.assert_close(one_by_one, emb, atol=1e-4, rtol=0)

    _check_piece_layout(encoder)
    _check_identical_pieces(encoder)


def _check_piece_layout(encoder: TextEncoder) -> None:
    """embed_pieces pads to [B, K_max, D]; a text without pieces gets an all-False mask row."""
    texts = [DEMO, "####", "One sentence only."]
    counts = [len(split_sub_sentences(t)) for t in texts]
    assert counts == [6, 0, 1]  # 4 drafts + 2 reply sentences; the separator alone has none
    emb, mask = embed_pieces(encoder, texts, max_piece_words=40)
    assert emb.shape == (3, 6, encoder.dim) and emb.dtype == torch.float32
    assert mask.dtype == torch.bool and mask.sum(dim=-1).tolist() == counts
    torch.testing.assert_close(emb[mask].norm(dim=-1), torch.ones(sum(counts)), atol=1e-5, rtol=0)
    assert torch.count_nonzero(emb[~mask]) == 0  # padding is zeros

    # Pieces are embedded exactly as if encoded on their own.
    alone = encoder.encode(split_sub_sentences(DEMO))
    torch.testing.assert_close(emb[0], alone, atol=1e-4, rtol=0)

    # Empty batches and batches where no text has a piece keep one (masked) slot: the hardness
    # maths reduces over the piece axis and needs it non-empty.
    none_emb, none_mask = embed_pieces(encoder, [])
    assert none_emb.shape == (0, 1, encoder.dim) and none_mask.shape == (0, 1)
    blank_emb, blank_mask = embed_pieces(encoder, ["", "  \n####\n"])
    assert blank_emb.shape == (2, 1, encoder.dim) and not blank_mask.any()


def _check_identical_pieces(encoder: TextEncoder) -> None:
    """Responses equal to the demonstration: W = 1 and α^D = 1 across a group of them."""
    responses = [DEMO, DEMO, DEMO, "I can't help you hurt anyone."]
    resp_emb, resp_mask = embed_pieces(encoder, responses)
    demo_emb, demo_mask = embed_pieces(encoder, [DEMO] * len(responses))
    group_ids = torch.tensor([3, 3, 3, 9])
    out = data_hardness(resp_emb, resp_mask, demo_emb, demo_mask, group_ids)
    # The last response is one of the demo's own pieces: its best match is itself, W = 1 too.
    torch.testing.assert_close(out.similarity, torch.ones(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.alpha, torch.ones(4), atol=1e-5, rtol=0)

    # A response without pieces matches nothing: W = 0, and it is the hardest of its group.
    mixed = [DEMO, "####"]
    resp_emb, resp_mask = embed_pieces(encoder, mixed)
    demo_emb, demo_mask = embed_pieces(encoder, [DEMO, DEMO])
    out = data_hardness(resp_emb, resp_mask, demo_emb, demo_mask, torch.tensor([0, 0]))
    torch.testing.assert_close(out.similarity, torch.tensor([1.0, 0.0]), atol=1e-5, rtol=0)
    assert out.alpha[1] > 1.0 > out.alpha[0]

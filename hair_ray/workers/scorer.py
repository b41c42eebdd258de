"""HardnessScorer: the Ray actor that owns the text encoder Φ and computes α^D (docs/architecture.md §2).

Thin by design: it splits and embeds text (:mod:`hair_ray.models.encoders`), keeps the
demonstration embeddings (they never change during GRPO, docs/architecture.md §1, stage C step 3), and hands tensors to
the pure :func:`hair_ray.algo.hardness.data_hardness`. No maths lives here.

The plain class works in-process too (benchmarks, debugging); :func:`create_hardness_scorer`
starts it as an actor. Ray is imported only there, so this module imports wherever the encoder
does.

The cache lives in the actor's memory. Demonstrations given to the constructor are embedded
there, so an actor that Ray restarts (``max_restarts``) re-runs the constructor and comes back
with its cache; with ``max_task_retries`` the call it was killed in is re-run on the restarted
actor and the driver only waits longer. Demonstrations cached later by
:meth:`HardnessScorer.cache_demonstrations` are not restored: a call naming one raises
``KeyError`` until the driver caches it again.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from hair_ray.algo.hardness import data_hardness
from hair_ray.models.encoders import PieceEmbeddings, embed_pieces, encoder_from_config, pad_pieces

__all__ = ["HardnessScorer", "create_hardness_scorer"]


class HardnessScorer:
    """One text encoder plus a cache of demonstration piece embeddings, keyed by record id.

    ``hardness_config`` is a :class:`hair_ray.config.HardnessConfig` (read duck-typed: the
    encoder fields and ``max_piece_words``). ``device="auto"`` takes a GPU when the actor was
    given one, else the CPU. ``batch_size`` is the encoder's batch, in pieces.
    """

    def __init__(
        self,
        hardness_config: Any,
        device: str = "auto",
        batch_size: int = 64,
        demonstrations: list[dict[str, Any]] | None = None,
    ):
        self._encoder = encoder_from_config(hardness_config, device=device)
        self._max_piece_words = int(hardness_config.max_piece_words)
        self._batch_size = batch_size
        self._demos: dict[str, Tensor] = {}  # id -> [L_id, D], real pieces only (no padding)
        self._pieces_embedded = 0
        self._embed_seconds = 0.0
        if demonstrations:
            self.cache_demonstrations(demonstrations)

    def _embed(self, texts: list[str]) -> PieceEmbeddings:
        """Split + embed + pad, and count the work for :meth:`stats`."""
        start = time.perf_counter()
        pieces = embed_pieces(self._encoder, texts, self._max_piece_words, self._batch_size)
        self._embed_seconds += time.perf_counter() - start
        self._pieces_embedded += int(pieces.mask.sum())
        return pieces

    def cache_demonstrations(self, records: list[dict[str, Any]]) -> int:
        """Embed every demonstration not cached yet (``record["id"]``, ``record["text"]``).

        Idempotent: ids already cached (or repeated in ``records``) are skipped, never
        re-embedded. Returns how many ids were newly cached.
        """
        new: dict[str, str] = {}
        for record in records:
            if record["id"] not in self._demos:
                new.setdefault(record["id"], record["text"])
        if not new:
            return 0
        pieces = self._embed(list(new.values()))
        for row, demo_id in enumerate(new):
            self._demos[demo_id] = pieces.emb[row, pieces.mask[row]].clone()
        return len(new)

    def data_hardness(
        self, responses: list[str], demo_ids: list[str], group_ids: list[int]
    ) -> dict[str, list[float] | list[int]]:
        """α^D, W and δ per response, against each response's cached demonstration.

        ``demo_ids[i]`` names the demonstration of response i's prompt; ``group_ids[i]`` its
        prompt group (α^D normalises δ by the group mean). Returns python lists: ``alpha``,
        ``similarity`` (W), ``delta`` (1 − W), and ``num_pieces`` (sub-sentences per response).
        Raises ``KeyError`` naming any demonstration id that is not cached.
        """
        if not len(responses) == len(demo_ids) == len(group_ids):
            raise ValueError(
                f"responses, demo_ids and group_ids must have one entry per response; got "
                f"{len(responses)}, {len(demo_ids)} and {len(group_ids)}"
            )
        missing = sorted({str(d) for d in demo_ids if d not in self._demos})
        if missing:
            shown = ", ".join(repr(d) for d in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise KeyError(
                f"{len(missing)} demonstration id(s) not cached: {shown}; call cache_demonstrations with those records first"
            )
        if not responses:
            return {"alpha": [], "similarity": [], "delta": [], "num_pieces": []}

        response = self._embed(list(responses))
        demo = pad_pieces([self._demos[d] for d in demo_ids], self._encoder.dim)
        out = data_hardness(response.emb, response.mask, demo.emb, demo.mask, torch.as_tensor(group_ids, dtype=torch.long))
        return {
            "alpha": out.alpha.tolist(),
            "similarity": out.similarity.tolist(),
            "delta": out.delta.tolist(),
            "num_pieces": response.mask.sum(dim=-1).tolist(),
        }

    def stats(self) -> dict[str, Any]:
        """Cache size and the embedding throughput so far (split + encode, in pieces/s)."""
        return {
            "encoder": self._encoder.name,
            "dim": self._encoder.dim,
            "cached_demonstrations": len(self._demos),
            "cached_demo_pieces": sum(len(e) for e in self._demos.values()),
            "pieces_embedded": self._pieces_embedded,
            "embed_seconds": self._embed_seconds,
            "pieces_per_second": self._pieces_embedded / self._embed_seconds if self._embed_seconds else 0.0,
        }


def create_hardness_scorer(
    hardness_config: Any,
    *,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    max_restarts: int = 0,
    device: str = "auto",
    batch_size: int = 64,
    demonstrations: list[dict[str, Any]] | None = None,
    **options: Any,
):
    """Start a :class:`HardnessScorer` actor and return its handle.

    ``num_cpus`` / ``num_gpus`` are the actor's Ray resources (fractions allowed: the encoder
    is small and can share a GPU); further ``options`` go to ``ActorClass.options`` (a
    placement-group scheduling strategy, a name). ``demonstrations`` (``{"id", "text"}``) are
    embedded by the constructor, so a restarted actor has them again; calls in flight when it
    died are retried as often as it may restart.
    """
    import ray  # lazy: the class itself does not need Ray

    actor_cls = ray.remote(HardnessScorer)
    demos = [{"id": r["id"], "text": r["text"]} for r in demonstrations or []]  # only what it needs
    return actor_cls.options(
        num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_task_retries=max_restarts, **options
    ).remote(hardness_config, device=device, batch_size=batch_size, demonstrations=demos)

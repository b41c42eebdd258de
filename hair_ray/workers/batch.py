"""Collate rollout samples into the padded tensors the learner trains on (pure functions).

A sample is its prompt ids, its response ids and its scaled advantage. Rows are prompt +
response, right-padded. Logits at position t predict token t+1, so the response mask is laid
out on the shifted (T − 1) positions: position t is trained iff token t+1 is a response token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor


class TrainBatch(NamedTuple):
    input_ids: Tensor  # [N, T]
    attention_mask: Tensor  # [N, T]
    response_mask: Tensor  # [N, T-1] bool, on the shifted (predicting) positions
    advantages: Tensor  # [N]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def first_response_position(self) -> int:
        """The first shifted position any row trains (0 when no row has a response token)."""
        trained = self.response_mask.any(dim=0).nonzero()
        return int(trained[0]) if len(trained) else 0

    def rows(self, index: slice | Tensor) -> TrainBatch:
        batch = TrainBatch(*(t[index] for t in self))
        # Trim columns that are padding in every selected row (keeps micro-batches small).
        width = int(batch.attention_mask.sum(dim=1).max().item()) if len(batch) else 0
        return TrainBatch(
            batch.input_ids[:, :width],
            batch.attention_mask[:, :width],
            batch.response_mask[:, : max(width - 1, 0)],
            batch.advantages,
        )


def collate(
    prompt_ids: Sequence[Sequence[int]],
    response_ids: Sequence[Sequence[int]],
    advantages: Sequence[float],
    pad_token_id: int,
) -> TrainBatch:
    if not (len(prompt_ids) == len(response_ids) == len(advantages)):
        raise ValueError("prompt_ids, response_ids and advantages must have one entry per sample")
    rows = [list(p) + list(r) for p, r in zip(prompt_ids, response_ids)]
    width = max((len(row) for row in rows), default=0)
    n = len(rows)
    input_ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    response_mask = torch.zeros((n, max(width - 1, 0)), dtype=torch.bool)
    for i, (prompt, row) in enumerate(zip(prompt_ids, rows)):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
        # Token j (j ≥ len(prompt)) is predicted at position j − 1.
        response_mask[i, len(prompt) - 1 : len(row) - 1] = True
    return TrainBatch(input_ids, attention_mask, response_mask, torch.tensor(advantages, dtype=torch.float32))


def micro_batches(num_rows: int, rows_per_micro_batch: int) -> list[slice]:
    return [slice(start, min(start + rows_per_micro_batch, num_rows)) for start in range(0, num_rows, rows_per_micro_batch)]

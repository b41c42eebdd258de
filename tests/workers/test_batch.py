import torch

from hair_ray.workers.batch import collate, micro_batches


def test_collate_lays_out_rows_and_the_shifted_response_mask():
    # Sample 0: prompt [5, 6], response [7, 8, 9] → row [5 6 7 8 9]; responses are predicted at
    # positions 1, 2, 3 (position t predicts token t+1). Sample 1: prompt [1], response [2] →
    # row [1 2 0 0 0], response predicted at position 0.
    batch = collate([[5, 6], [1]], [[7, 8, 9], [2]], [0.5, -1.0], pad_token_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [1, 2, 0, 0, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert batch.response_mask.tolist() == [[False, True, True, True], [True, False, False, False]]
    assert batch.advantages.tolist() == [0.5, -1.0]


def test_rows_trims_all_padding_columns():
    batch = collate([[5, 6], [1]], [[7, 8, 9], [2]], [0.5, -1.0], pad_token_id=0)
    short = batch.rows(slice(1, 2))
    assert short.input_ids.tolist() == [[1, 2]]
    assert short.response_mask.tolist() == [[True]]
    assert torch.equal(short.advantages, torch.tensor([-1.0]))


def test_micro_batches_cover_every_row_once():
    assert micro_batches(7, 3) == [slice(0, 3), slice(3, 6), slice(6, 7)]
    assert micro_batches(0, 3) == []


def test_first_response_position_is_the_shortest_prompt_minus_one():
    batch = collate([[1, 2, 3, 4], [5, 6], [7, 8, 9]], [[10], [11, 12], [13]], [0.0, 0.0, 0.0], pad_token_id=0)
    # Token 2 of row 1 (its first response token) is predicted at shifted position 1.
    assert batch.first_response_position() == 1
    assert batch.rows(slice(0, 1)).first_response_position() == 3
    assert collate([[1]], [[]], [0.0], pad_token_id=0).first_response_position() == 0

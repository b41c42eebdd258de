import pytest

from hair_ray.algo.batching import ceil_div, micro_batches_per_mini_batch, optimizer_steps_per_epoch


@pytest.mark.parametrize(("a", "b", "expected"), [(28, 8, 4), (32, 8, 4), (1, 8, 1), (0, 8, 0)])
def test_ceil_div(a, b, expected):
    assert ceil_div(a, b) == expected


def test_optimizer_steps_per_epoch():
    assert optimizer_steps_per_epoch(28, None) == 1  # no mini-batch size: the step is one
    assert optimizer_steps_per_epoch(28, 8) == 4  # 8 + 8 + 8 + 4
    assert optimizer_steps_per_epoch(28, 28) == 1


def test_micro_batches_per_mini_batch():
    assert micro_batches_per_mini_batch(14, 4) == 4  # 4 + 4 + 4 + 2
    assert micro_batches_per_mini_batch(4, 4) == 1

"""The evenly spaced subset rule: how `hair-ray eval` picks a benchmark's prompts, and so what a
training source that shares the benchmark's prompts leaves out (`leave_out_evaluated`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def evenly_spaced(items: Sequence[T], count: int | None) -> list[T]:
    """At most `count` items, evenly spaced over the sequence (all of them when it is shorter);
    the same items every time, spread over whatever order the file has."""
    if count is None or len(items) <= count:
        return list(items)
    stride = len(items) / count
    return [items[int(i * stride)] for i in range(count)]

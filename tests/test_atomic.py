"""The cross-process lock that keeps two actors from building the same model or dataset twice."""

from __future__ import annotations

import multiprocessing

import pytest
from filelock import Timeout

from hair_ray.atomic import file_lock


def _try_lock(path, queue) -> None:
    try:
        with file_lock(path).acquire(timeout=0.2):
            queue.put("acquired")
    except Timeout:
        queue.put("blocked")


def test_a_held_lock_blocks_another_process_and_is_released_after_the_block(tmp_path):
    path = tmp_path / "nested" / "model.lock"  # the folder is made on demand
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with file_lock(path):
        other = context.Process(target=_try_lock, args=(path, queue))
        other.start()
        other.join(timeout=60)
        assert queue.get(timeout=5) == "blocked"
    other = context.Process(target=_try_lock, args=(path, queue))
    other.start()
    other.join(timeout=60)
    assert queue.get(timeout=5) == "acquired"


def test_a_lock_path_under_a_file_is_an_os_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):
        file_lock(tmp_path / "file" / "x.lock")

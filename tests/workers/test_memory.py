"""release_freed_memory hands freed heap blocks back to the OS (glibc's malloc_trim)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Run in a child: the script fixes glibc's mmap threshold (so 1 MB blocks come from the heap,
# as a process's do once large frees have raised the dynamic threshold) and keeps a small block
# after each big one (so the freed space is in the middle of the heap, which free() alone never
# returns). The pytest process's allocator stays untouched.
SCRIPT = """
import ctypes
import sys
from hair_ray.workers.memory import release_freed_memory

def resident_mb():
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) // 1024 for line in handle if line.startswith("VmRSS"))

libc = ctypes.CDLL("libc.so.6")
M_MMAP_THRESHOLD = -3
assert libc.mallopt(M_MMAP_THRESHOLD, 64 * 2**20) == 1
big, small = [], []
for _ in range(300):
    big.append(bytearray(2**20))
    small.append(bytearray(4096))
del big
held = resident_mb()
assert release_freed_memory(collect=sys.argv[1] == "collect")
print(held, resident_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc are Linux's")
@pytest.mark.parametrize("collect", ["collect", "no-collect"])
def test_freed_heap_blocks_go_back_to_the_os(collect: str) -> None:
    """With or without the garbage collection: blocks freed by reference counting (the learner's
    activations) go back by the trim alone."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, collect], capture_output=True, text=True, check=True)
    held, released = map(int, out.stdout.split())
    assert held - released >= 250, f"resident {held} MB before the release, {released} MB after"

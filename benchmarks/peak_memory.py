"""Run a command and report the machine's peak memory above what was in use before it started.

    python benchmarks/peak_memory.py bash scripts/demo.sh

Memory in use is MemTotal − MemAvailable (/proc/meminfo), sampled every second: it counts every
process the command starts (Ray actors, vLLM engine processes) and shared memory (the Ray object
store), which a per-process RSS would split or miss. Linux only; run it on an otherwise idle
machine, since other processes count too.
"""

from __future__ import annotations

import subprocess
import sys
import time


def memory_in_use() -> int:
    info = {}
    with open("/proc/meminfo") as handle:
        for line in handle:
            key, value = line.split(":")
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def main(command: list[str]) -> int:
    baseline, peak, start = memory_in_use(), 0, time.monotonic()
    process = subprocess.Popen(command)
    while process.poll() is None:
        peak = max(peak, memory_in_use() - baseline)
        time.sleep(1.0)
    print(
        f"peak memory above baseline {peak / 2**30:.2f} GiB (baseline {baseline / 2**30:.2f} GiB), "
        f"wall {time.monotonic() - start:.0f} s, exit {process.returncode}",
        flush=True,
    )
    return process.returncode


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python benchmarks/peak_memory.py COMMAND [ARGS...]")
    sys.exit(main(sys.argv[1:]))

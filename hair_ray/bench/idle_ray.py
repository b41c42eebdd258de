"""An idle local Ray cluster beside a bare baseline: what the trainer's actors always run beside
and a bare loop with the machine to itself never does.

On a machine with few cores the cluster's own processes (raylet, GCS, the workers' core
threads) preempt a thread of a compute loop now and then, and the loop's other threads wait at
the next barrier (benchmarks/README.md measures it). The cluster runs in a process of its own,
in a session of its own, and is stopped by that process group (its actor workers, in groups of
their own, exit with their raylet): nothing else is touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# A Ray driver with idle actors, until SIGTERM shuts it down. address="local": a cluster of its
# own even where RAY_ADDRESS names another.
_CLUSTER = """
import signal, sys, time, ray
ray.init(address="local", include_dashboard=False)

@ray.remote(num_cpus=0.1)
class Idle:
    def ping(self):
        return 1

actors = [Idle.remote() for _ in range(int(sys.argv[1]))]
ray.get([a.ping.remote() for a in actors])
signal.signal(signal.SIGTERM, lambda *_: (ray.shutdown(), sys.exit(0)))
print("ready", flush=True)
while True:
    time.sleep(1)
"""


@contextmanager
def idle_ray_cluster(actors: int = 3, settle_s: float = 5.0, stop_timeout_s: float = 60.0) -> Iterator[int]:
    """A local Ray cluster with `actors` idle actors for the duration of the block; yields the
    pid of its driver (the leader of its process group)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _CLUSTER, str(actors)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the idle Ray cluster did not start (exit {process.wait(timeout=stop_timeout_s)})")
        time.sleep(settle_s)  # past its start-up work: the block times a cluster at rest
        yield process.pid
    finally:
        _stop(process, stop_timeout_s)


def _stop(process: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM to the process group started above (its driver shuts the cluster down), SIGKILL
    to the group if it has not gone within `timeout_s`."""
    _signal_group(process.pid, signal.SIGTERM)  # also where the driver has died: its cluster may not have
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError):  # the whole group has already gone
        os.killpg(pgid, signum)

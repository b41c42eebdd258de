"""The idle Ray cluster the bare baselines can run beside: a real local cluster with its actors,
started in a process group of its own and gone, every process of it, when the block ends."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from hair_ray.bench.idle_ray import idle_ray_cluster


def _names(processes: list[psutil.Process]) -> list[str]:
    names = []
    for process in processes:
        try:
            names.append(process.name())
        except psutil.NoSuchProcess:
            continue
    return names


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_cluster_runs_with_its_actors_and_only_its_own_processes_are_stopped():
    bystander = psutil.Popen(["sleep", "60"])  # a process of this test's: must survive the stop
    try:
        with idle_ray_cluster(actors=2, settle_s=0.0) as driver:
            assert os.getpgid(driver) == driver != os.getpgid(0)  # a process group of its own
            cluster = [psutil.Process(driver), *psutil.Process(driver).children(recursive=True)]
            names = _names(cluster)
            assert "raylet" in names and "gcs_server" in names, names
            assert names.count("ray::Idle") == 2, names  # its idle actors
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in cluster) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _names([p for p in cluster if _alive(p)]) == []
        assert bystander.is_running()
    finally:
        bystander.kill()
        bystander.wait()


def test_a_cluster_that_cannot_start_says_so(monkeypatch):
    import hair_ray.bench.idle_ray as idle_ray

    monkeypatch.setattr(idle_ray, "_CLUSTER", "raise SystemExit(3)")
    with pytest.raises(RuntimeError, match=r"the idle Ray cluster did not start \(exit 3\)"), idle_ray_cluster():
        pass

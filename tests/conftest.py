"""Shared fixtures. Every test runs offline: no hub, no wandb servers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray cluster for the whole session, sized for a 2-core machine."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=True)
    yield ray
    ray.shutdown()


# Real public datasets the tests may read (never copied into the repo): by default the `shared`
# folder beside the checkout; HAIR_RAY_TEST_DATA points elsewhere.
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HAIR_RAY_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))

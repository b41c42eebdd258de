"""The embedded default dataset: 98 hand-written CoD demonstrations, 14 per harm category.

It ships inside the package (see `[tool.setuptools.package-data]`), so it is read through
importlib.resources and works from a source checkout and from an installed wheel alike.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from hair_ray.data.cod import RECORD_KEYS
from hair_ray.data.records import read_records

try:  # Python >= 3.11
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

SEED_PATH: Traversable = files("hair_ray.data") / "seed" / "prompts.jsonl"


def load_seed_records(path: Traversable | Path | None = None) -> list[dict[str, Any]]:
    """Read the seed JSONL (one make_record dict a line); raise ValueError on a malformed line."""
    source = SEED_PATH if path is None else path
    records = read_records(source, required=RECORD_KEYS)
    for lineno, record in enumerate(records, 1):
        if set(record) != set(RECORD_KEYS):
            raise ValueError(f"{source}: record {lineno}: expected keys {list(RECORD_KEYS)}, got {sorted(record)}")
    return records

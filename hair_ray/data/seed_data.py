"""The embedded default dataset: 98 hand-written CoD demonstrations, 14 per harm category.

It ships inside the package (see `[tool.setuptools.package-data]`), so it is read through
importlib.resources and works from a source checkout and from an installed wheel alike.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from hair_ray.data.cod import RECORD_KEYS

try:  # Python >= 3.11
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

SEED_PATH: Traversable = files("hair_ray.data") / "seed" / "prompts.jsonl"


def load_seed_records(path: Traversable | Path | None = None) -> list[dict[str, Any]]:
    """Read the seed JSONL (one make_record dict a line); raise ValueError on a malformed line."""
    source = SEED_PATH if path is None else path
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}:{lineno}: invalid JSON: {err}") from err
        if not isinstance(record, dict) or set(record) != set(RECORD_KEYS):
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise ValueError(f"{source}:{lineno}: expected keys {list(RECORD_KEYS)}, got {keys}")
        records.append(record)
    return records

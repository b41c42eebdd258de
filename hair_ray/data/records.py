"""Read demonstration records ({id, source, category, prompt, drafts, reply, text}) from JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    from importlib.resources.abc import Traversable
except ImportError:  # Python 3.10
    from importlib.abc import Traversable

REQUIRED_KEYS = ("id", "category", "prompt", "text")


def read_records(path: Path | Traversable, required: Iterable[str] = REQUIRED_KEYS) -> list[dict[str, Any]]:
    """One record a line (blank lines skipped); a broken line raises ValueError naming file:line."""
    from hair_ray.categories import ALL_CATEGORY_NAMES, parse_category

    required = tuple(required)
    records: list[dict[str, Any]] = []
    for lineno, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: not UTF-8 text (byte {exc.start} of the line); save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in required if key not in record]
        if missing:
            raise ValueError(f"{path}:{lineno}: record lacks {', '.join(missing)}")
        if "category" in required:
            # A record of another taxonomy would be dropped silently by every stage; display
            # names and Safety-Prompts keys become the canonical name.
            try:
                record["category"] = parse_category(str(record["category"])).value
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: category {record['category']!r} is not one of {', '.join(ALL_CATEGORY_NAMES)}"
                ) from None
        records.append(record)
    return records

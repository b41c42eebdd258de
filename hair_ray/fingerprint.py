"""The short content hash every manifest records (config, resume, dataset and training-data
hashes): sha256 of canonical JSON, 16 hex digits. One definition, so the same value always hashes
the same wherever it is recorded."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def json_fingerprint(value: Any) -> str:
    """16 hex digits of sha256 over `value` as JSON with sorted keys."""
    canonical = json.dumps(value, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]

"""Cache keys: one key per (model, version, canonical input)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """A byte-stable JSON form: sorted keys, no whitespace, floats as JSON writes them."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(model: str, version: str, canonical_input: str) -> str:
    """Key of a deterministic prediction; equal validated inputs share one key."""
    digest = hashlib.sha256(f"{model}\0{version}\0{canonical_input}".encode()).hexdigest()
    return f"{model}:{version}:{digest}"

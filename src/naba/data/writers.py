"""Data files: JSON Lines rows as naba writes them (UTF-8, Arabic unescaped), written atomically."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from naba.atomic import atomic_file


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as UTF-8 JSON Lines, atomically. Returns the row count."""
    count = 0
    with atomic_file(path) as handle:
        for record in records:
            handle.write(dumps(record) + "\n")
            count += 1
    return count

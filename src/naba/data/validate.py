"""``naba data validate``: every problem in a file as ``FILE:LINE: field: message``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naba.config import ColumnsConfig
from naba.data.records import Task, iter_records, labels_of
from naba.errors import Problem
from naba.text import dedup_key


@dataclass
class ValidationSummary:
    rows: int = 0
    valid: int = 0
    problems: int = 0


def text_digest(text: str) -> bytes:
    # 16 bytes per row keeps the duplicate index small for million-row files.
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def validate_file(
    path: str | Path,
    task: Task,
    columns: ColumnsConfig | None = None,
    labels: list[str] | None = None,
    fmt: str = "auto",
    summary: ValidationSummary | None = None,
    progress: Any = None,
) -> Iterator[Problem]:
    """Stream the problems of one file, in file order.

    Checks: at least one row, decodable UTF-8 and JSON/CSV, required fields
    present and non-empty with the right types, labels within ``labels`` (when given),
    unique ids, and unique texts after normalisation (for stance: unique
    (target, text) pairs).

    Args:
        summary: filled in with row and problem counts as the file is read.
        progress: A progress bar (``update(1)`` per row), e.g. :func:`naba.progress.progress_bar`.
    """
    summary = summary if summary is not None else ValidationSummary()
    allowed = set(labels) if labels else None
    seen_ids: dict[str, int] = {}
    seen_texts: dict[bytes, int] = {}
    name = str(path)
    rows = 0
    for line, item in iter_records(path, task, columns, fmt):
        rows += 1
        summary.rows += 1
        if progress is not None:
            progress.update(1)
        if isinstance(item, Problem):
            summary.problems += 1
            yield item
            continue
        row_problems = []
        if allowed is not None:
            row_problems += _unknown_labels(name, line, item, task, allowed)
        row_problems += _repeated_id(name, line, item, seen_ids)
        row_problems += _repeated_text(name, line, item, task, seen_texts)
        summary.problems += len(row_problems)
        summary.valid += not row_problems
        yield from row_problems
    if rows == 0:
        # An empty scrape is worth a look before it becomes an empty training split.
        summary.problems += 1
        yield Problem(
            name,
            None,
            "(file)",
            f"expected at least one {task} row, found none (the file is empty or blank)",
        )


def _unknown_labels(
    name: str, line: int, item: dict[str, Any], task: Task, allowed: set[str]
) -> list[Problem]:
    unknown = [label for label in labels_of(item, task) if label not in allowed]
    if not unknown:
        return []
    field = "topics" if task == "topic" else "stance"
    message = f"expected labels from {sorted(allowed)}, found unknown {unknown}"
    return [Problem(name, line, field, message)]


def _repeated_id(
    name: str, line: int, item: dict[str, Any], seen_ids: dict[str, int]
) -> list[Problem]:
    """A problem when the row's id was seen before; else the id is remembered."""
    if item["id"] not in seen_ids:
        seen_ids[item["id"]] = line
        return []
    message = (
        f"expected a unique id, found {item['id']!r} already used on line {seen_ids[item['id']]}"
    )
    return [Problem(name, line, "id", message)]


def _repeated_text(
    name: str, line: int, item: dict[str, Any], task: Task, seen_texts: dict[bytes, int]
) -> list[Problem]:
    """A problem when the row's text (stance: target and text) was seen before, after
    normalisation; else its digest is remembered."""
    key = (
        dedup_key(item["text"])
        if task == "topic"
        else dedup_key(item["target"]) + "\x1f" + dedup_key(item["text"])
    )
    digest = text_digest(key)
    if digest not in seen_texts:
        seen_texts[digest] = line
        return []
    what = "text" if task == "topic" else "target+text pair"
    message = (
        f"expected a unique {what}, found a duplicate of line {seen_texts[digest]} "
        "(after normalisation)"
    )
    return [Problem(name, line, "text", message)]

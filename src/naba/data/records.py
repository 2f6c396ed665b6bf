"""The canonical record schema and the conversion of user rows into it.

Topic record: ``id``, ``text``, optional ``title``, ``topics`` (a list; a
single-label dataset is a list of one), optional ``tags``, ``date``,
``source``, ``url`` (and ``labels_from`` when topics were assigned by a
taxonomy). Stance record: ``id``, ``text``, ``target``, ``stance``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from naba.config import ColumnsConfig
from naba.data.readers import read_rows
from naba.errors import Problem

Task = Literal["topic", "stance"]

TOPIC_OPTIONAL = ("title", "tags", "date", "source", "url", "labels_from")
DEFAULT_LABEL_COLUMN = {"topic": "topics", "stance": "stance"}


@dataclass
class FieldError(Exception):
    """A row's field is missing or has the wrong shape."""

    field: str
    message: str


def _text_field(row: dict[str, Any], column: str, name: str, required: bool = True) -> str | None:
    if column not in row or row[column] is None:
        if required:
            raise FieldError(name, f"expected a non-empty string, found no {column!r} field" + (f" (mapped from {name!r})" if column != name else ""))
        return None
    value = row[column]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "id":
        value = str(value)
    if not isinstance(value, str):
        raise FieldError(name, f"expected a string, found {type(value).__name__} {value!r:.40}")
    if required and not value.strip():
        raise FieldError(name, "expected a non-empty string, found " + ("an empty string" if not value else "only whitespace"))
    return value


def _labels(row: dict[str, Any], column: str, separator: str | None, multi: bool) -> list[str]:
    if column not in row or row[column] is None:
        raise FieldError(column, "expected " + ("a list of labels" if multi else "a label") + f", found no {column!r} field")
    value = row[column]
    if isinstance(value, str):
        if separator is not None:
            value = [part.strip() for part in value.split(separator)]
        elif multi and value.lstrip().startswith("["):
            raise FieldError(column, f"expected a list of labels, found a string that looks like a list {value!r:.60}; write it as a JSON list")
        else:
            value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise FieldError(column, f"expected a list of label strings, found {value!r:.60}")
    labels = [v.strip() for v in value if v.strip()]
    if not labels:
        raise FieldError(column, "expected at least one label, found none")
    return labels


def to_record(row: dict[str, Any], task: Task, columns: ColumnsConfig | None = None, *, line: int | None = None,
              require_label: bool = True) -> dict[str, Any]:
    """Convert one user row to a canonical record.

    Args:
        row: The row as read from the file.
        task: ``topic`` or ``stance``.
        columns: Where each canonical field lives; defaults to canonical names.
        line: Used as the id when the row has none.
        require_label: False for prediction input, where labels are optional.

    Raises:
        FieldError: a required field is missing, empty or of the wrong type.
    """
    cols = columns or ColumnsConfig()
    label_column = cols.label_column or DEFAULT_LABEL_COLUMN[task]
    record: dict[str, Any] = {}
    if cols.id_column in row and row[cols.id_column] not in (None, ""):
        record["id"] = _text_field(row, cols.id_column, "id")
    elif line is not None:
        record["id"] = str(line)
    else:
        raise FieldError("id", f"expected an id, found no {cols.id_column!r} field")
    record["text"] = _text_field(row, cols.text_column, "text")
    if task == "topic":
        title = _text_field(row, cols.title_column, "title", required=False)
        if title is not None and title.strip():
            record["title"] = title
        if require_label or row.get(label_column) is not None:
            record["topics"] = _labels(row, label_column, cols.label_separator, multi=True)
        for key in TOPIC_OPTIONAL[1:]:
            if row.get(key) not in (None, "", []):
                record[key] = row[key]
    else:
        record["target"] = _text_field(row, cols.target_column, "target", required=require_label)
        if record["target"] is None:
            del record["target"]
        if require_label or row.get(label_column) is not None:
            stance = _labels(row, label_column, cols.label_separator, multi=False)
            if len(stance) != 1:
                raise FieldError(label_column, f"expected one stance label, found {stance}")
            record["stance"] = stance[0]
    return record


def labels_of(record: dict[str, Any], task: Task) -> list[str]:
    """The gold labels of a canonical record (a list, for both tasks)."""
    return list(record["topics"]) if task == "topic" else [record["stance"]]


def iter_records(path: str | Path, task: Task, columns: ColumnsConfig | None = None, fmt: str = "auto",
                 require_label: bool = True) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """Stream canonical records from a file; bad rows come out as :class:`Problem`."""
    for line, row in read_rows(path, fmt):
        if isinstance(row, Problem):
            yield line, row
            continue
        try:
            yield line, to_record(row, task, columns, line=line, require_label=require_label)
        except FieldError as exc:
            yield line, Problem(str(path), line, exc.field, exc.message)


def load_records(path: str | Path, task: Task, columns: ColumnsConfig | None = None, fmt: str = "auto") -> list[dict[str, Any]]:
    """Read a whole (small) labelled file, failing on the first bad row.

    For training and evaluation splits, which must be clean: run
    ``naba data validate`` to see every problem at once.

    Raises:
        InputError: a row is malformed (the message names file, line and field).
    """
    from naba.errors import InputError

    records = []
    for _, item in iter_records(path, task, columns, fmt):
        if isinstance(item, Problem):
            raise InputError(f"{item} (run `naba data validate {path} --task {task}` to list every problem)")
        records.append(item)
    if not records:
        raise InputError(f"{path}: no records; expected at least one {task} row")
    return records


def all_labels(records: Iterable[dict[str, Any]], task: Task) -> list[str]:
    """Sorted set of labels in the records."""
    return sorted({label for record in records for label in labels_of(record, task)})

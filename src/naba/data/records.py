"""The canonical record schema and the conversion of user rows into it.

Topic record: ``id``, ``text``, optional ``title``, ``topics`` (a list; a
single-label dataset is a list of one), optional ``tags``, ``date``,
``source``, ``url`` (and ``labels_from`` when topics were assigned by a
taxonomy). Stance record: ``id``, ``text``, ``target``, ``stance``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from naba.config import ColumnsConfig
from naba.data.readers import detect_format, read_rows
from naba.errors import InputError, Problem
from naba.text import is_blank

Task = Literal["topic", "stance"]

TOPIC_OPTIONAL = ("title", "tags", "date", "source", "url", "labels_from")
DEFAULT_LABEL_COLUMN = {"topic": "topics", "stance": "stance"}
# Formats whose cells are always strings: a topic there may be a bare string (one label).
STRING_FORMATS = ("csv",)


@dataclass
class FieldError(Exception):
    """A row's field is missing or has the wrong shape."""

    field: str
    message: str


def _text_field(row: dict[str, Any], column: str, name: str, required: bool = True) -> str | None:
    if column not in row or row[column] is None:
        if required:
            raise FieldError(
                name,
                f"expected a non-empty string, found no {column!r} field"
                + (f" (mapped from {name!r})" if column != name else ""),
            )
        return None
    value = row[column]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and name == "id":
        value = str(value)
    if not isinstance(value, str):
        raise FieldError(name, f"expected a string, found {type(value).__name__} {value!r:.40}")
    if required and not value.strip():
        raise FieldError(
            name,
            "expected a non-empty string, found "
            + ("an empty string" if not value else "only whitespace"),
        )
    if required and is_blank(value):
        raise FieldError(
            name,
            "expected a non-empty string, found only invisible characters (bidi "
            "or zero-width controls)",
        )
    return value


def required_text(row: dict[str, Any], column: str, name: str = "text") -> str:
    """The text in ``row[column]``: a string with something visible in it.

    Raises:
        FieldError: missing, not a string, empty, whitespace or invisible controls only.
    """
    return cast(str, _text_field(row, column, name))  # required: never None


def _labels(
    row: dict[str, Any], column: str, separator: str | None, multi: bool, string_labels: bool
) -> list[str]:
    if column not in row or row[column] is None:
        raise FieldError(
            column,
            "expected "
            + ("a list of labels" if multi else "a label")
            + f", found no {column!r} field",
        )
    value = row[column]
    if isinstance(value, str):
        if separator is not None:
            value = [part.strip() for part in value.split(separator)]
        elif multi and value.lstrip().startswith("["):
            raise FieldError(
                column,
                "expected a list of labels, found a string that looks like a list "
                f"{value!r:.60}; write it as a JSON list",
            )
        elif multi and not string_labels and value.strip():
            # "topics": "energy" is far more often a mistake in a converter than a deliberate single
            # label.
            found = json.dumps(value, ensure_ascii=False)
            raise FieldError(
                column,
                f"expected a list of labels, found the string {found:.60}; write it as a list, "
                f"e.g. [{json.dumps(value.strip(), ensure_ascii=False):.60}]",
            )
        else:
            value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise FieldError(column, f"expected a list of label strings, found {value!r:.60}")
    labels = [v.strip() for v in value if v.strip()]
    if not labels:
        raise FieldError(column, "expected at least one label, found none")
    return labels


def to_record(
    row: dict[str, Any],
    task: Task,
    columns: ColumnsConfig | None = None,
    *,
    line: int | None = None,
    require_label: bool = True,
    string_labels: bool = False,
) -> dict[str, Any]:
    """Convert one user row to a canonical record.

    Args:
        row: The row as read from the file.
        task: ``topic`` or ``stance``.
        columns: Where each canonical field lives; defaults to canonical names.
        line: Used as the id when the row has none.
        require_label: False for prediction input, where labels are optional.
        string_labels: Accept a bare string as one topic (CSV cells are strings).
            Elsewhere the canonical ``topics`` field must be a list, unless a
            label separator is set; a mapped label column may hold one string.

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
            # The canonical "topics" field is a list; a column the user mapped may hold one label as
            # a string.
            strings = string_labels or label_column != DEFAULT_LABEL_COLUMN["topic"]
            record["topics"] = _labels(
                row, label_column, cols.label_separator, multi=True, string_labels=strings
            )
        for key in TOPIC_OPTIONAL[1:]:
            if row.get(key) not in (None, "", []):
                record[key] = row[key]
    else:
        record["target"] = _text_field(row, cols.target_column, "target", required=require_label)
        if record["target"] is None:
            del record["target"]
        if require_label or row.get(label_column) is not None:
            stance = _labels(
                row, label_column, cols.label_separator, multi=False, string_labels=True
            )
            if len(stance) != 1:
                raise FieldError(label_column, f"expected one stance label, found {stance}")
            record["stance"] = stance[0]
    return record


def labels_of(record: dict[str, Any], task: Task) -> list[str]:
    """The gold labels of a canonical record (a list, for both tasks)."""
    return list(record["topics"]) if task == "topic" else [record["stance"]]


_COLUMN_OPTIONS = {
    "text_column": "--text-column",
    "label_column": "--label-column",
    "target_column": "--target-column",
}


def check_header(path: str | Path, header: Iterable[str], wanted: dict[str, str]) -> None:
    """Fail at once when a tabular file lacks a column that every row needs.

    Without this, a CSV whose text column is called ``body`` would give one
    identical problem per row.

    Args:
        header: The file's column names.
        wanted: Column name -> the :class:`ColumnsConfig` key that maps it (``text_column``).

    Raises:
        InputError: ``FILE:1: header: expected a 'text' column, ...`` naming the option to pass.
    """
    found = list(header)
    for column, key in wanted.items():
        if column in found:
            continue
        flag, key_path = _COLUMN_OPTIONS[key], f"columns.{key}"
        close = [
            c for c in found if c.strip().casefold() == column.casefold()
        ] or difflib.get_close_matches(column, found, n=1)
        if close:
            hint = (
                f"did you mean {close[0]!r}? rename it to {column!r}, or pass {flag} "
                f"{close[0]} ({key_path} in a training config)"
            )
        else:
            hint = (
                f"add it, or name the column that holds it with {flag} ({key_path} "
                "in a training config)"
            )
        raise InputError(
            f"{path}:1: header: expected a {column!r} column, found "
            f"{', '.join(map(repr, found)) or 'none'}; {hint}"
        )


def required_columns(task: Task, columns: ColumnsConfig, require_label: bool) -> dict[str, str]:
    """The columns every row of a ``task`` file needs: column name -> ColumnsConfig key."""
    wanted = {columns.text_column: "text_column"}
    if require_label:
        wanted[columns.label_column or DEFAULT_LABEL_COLUMN[task]] = "label_column"
        if task == "stance":
            wanted[columns.target_column] = "target_column"
    return wanted


def iter_records(
    path: str | Path,
    task: Task,
    columns: ColumnsConfig | None = None,
    fmt: str = "auto",
    require_label: bool = True,
) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """Stream canonical records from a file; bad rows come out as :class:`Problem`.

    Raises:
        InputError: the file is unusable as a whole (see :func:`~naba.data.readers.read_rows`),
            or a CSV file lacks a required column.
    """
    cols = columns or ColumnsConfig()
    rows = read_rows(path, fmt)
    resolved = detect_format(Path(path)) if fmt == "auto" else fmt
    strings = resolved in STRING_FORMATS
    checked = not strings
    for line, row in rows:
        if isinstance(row, Problem):
            yield line, row
            continue
        if not checked:
            check_header(path, row, required_columns(task, cols, require_label))
            checked = True
        try:
            yield (
                line,
                to_record(
                    row, task, cols, line=line, require_label=require_label, string_labels=strings
                ),
            )
        except FieldError as exc:
            yield line, Problem(str(path), line, exc.field, exc.message)


def load_records(
    path: str | Path, task: Task, columns: ColumnsConfig | None = None, fmt: str = "auto"
) -> list[dict[str, Any]]:
    """Read a whole (small) labelled file, failing on the first bad row.

    For training and evaluation splits, which must be clean: run
    ``naba data validate`` to see every problem at once.

    Raises:
        InputError: a row is malformed (the message names file, line and field).
    """
    records = []
    for _, item in iter_records(path, task, columns, fmt):
        if isinstance(item, Problem):
            raise InputError(
                f"{item} (run `naba data validate {path} --task {task}` to list every problem)"
            )
        records.append(item)
    if not records:
        raise InputError(f"{path}: no records; expected at least one {task} row")
    return records


def unknown_labels(
    path: str | Path,
    task: Task,
    known: Iterable[str],
    columns: ColumnsConfig | None = None,
    fmt: str = "auto",
) -> tuple[list[str], int, int | None]:
    """Labels in a (valid) file outside ``known``: ``(sorted labels, rows holding them, first such
    line)``.

    For error messages that name the line: ``FILE:LINE: topics: labels [...] ...``.
    """
    allowed, found, rows, first = set(known), set(), 0, None
    for line, item in iter_records(path, task, columns, fmt):
        if isinstance(item, Problem):
            continue
        extra = set(labels_of(item, task)) - allowed
        if extra:
            found |= extra
            rows += 1
            first = line if first is None else first
    return sorted(found), rows, first


def all_labels(records: Iterable[dict[str, Any]], task: Task) -> list[str]:
    """Sorted set of labels in the records."""
    return sorted({label for record in records for label in labels_of(record, task)})

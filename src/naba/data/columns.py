"""Which column of a user's file holds what: ``naba init`` reads a header it has never seen.

:func:`find_columns` looks at a sample of rows (as :func:`naba.data.readers.read_rows`
yields them, from any format) and names the id, text, title, label and target
columns, the task and the label separator. Columns the caller names are taken
as given and checked against the header with :func:`naba.data.records.check_header`,
so a misspelt name gets the same did-you-mean hint as ``naba data validate``.
A question the sample cannot settle is a one-line :class:`~naba.errors.InputError`
naming the flag that settles it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naba.config import ColumnsConfig
from naba.data.records import Task, check_header, required_columns
from naba.errors import InputError

# Names people give each column, compared after lower-casing and dropping everything but letters and
# digits.
ID_NAMES = ("id", "articleid", "docid", "documentid", "uid", "guid", "key", "postid", "newsid")
TEXT_NAMES = (
    "text",
    "body",
    "content",
    "article",
    "articletext",
    "articlebody",
    "story",
    "fulltext",
    "document",
    "tweet",
    "post",
    "نص",
    "النص",
    "المحتوى",
    "المتن",
)
TITLE_NAMES = ("title", "headline", "heading", "subject", "عنوان", "العنوان")
TARGET_NAMES = ("target", "claim", "query", "aspect", "entity", "الهدف", "الادعاء")
TOPIC_LABEL_NAMES = (
    "topics",
    "topic",
    "labels",
    "label",
    "category",
    "categories",
    "section",
    "sections",
    "class",
    "tags",
    "tag",
    "الموضوع",
    "التصنيف",
    "القسم",
)
STANCE_LABEL_NAMES = ("stance", "label", "position", "class", "الموقف")
SEPARATORS = ("|", ";", ",")
MAX_LABEL_CHARS = 60  # a cell longer than this is text, not a label


@dataclass
class FoundColumns:
    """What :func:`find_columns` settled, and why, one reason per column (for the config's
    comments)."""

    task: Task
    columns: ColumnsConfig
    header: list[str]
    why: dict[str, str] = field(default_factory=dict)


def _key(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.casefold())


def _named(header: list[str], names: tuple[str, ...], taken: set[str]) -> str | None:
    """The first header column whose name is one of ``names`` (in the order of ``names``)."""
    keys = {_key(c): c for c in header if c not in taken}
    return next((keys[_key(n)] for n in names if _key(n) in keys), None)


def _strings(rows: list[dict[str, Any]], column: str) -> list[str]:
    return [v for r in rows if isinstance(v := r.get(column), str) and v.strip()]


def _mean_length(rows: list[dict[str, Any]], column: str) -> float:
    values = _strings(rows, column)
    return sum(map(len, values)) / len(values) if values else 0.0


def _text_column(rows: list[dict[str, Any]], header: list[str], taken: set[str]) -> tuple[str, str]:
    named = _named(header, TEXT_NAMES, taken)
    if named is not None:
        return named, f"the column named {named!r}"
    lengths = sorted(
        ((_mean_length(rows, c), c) for c in header if c not in taken),
        reverse=True,
    )
    if lengths and lengths[0][0] > 0 and (len(lengths) == 1 or lengths[0][0] >= 2 * lengths[1][0]):
        return lengths[0][1], f"the longest strings ({lengths[0][0]:.0f} characters on average)"
    found = ", ".join(repr(c) for _, c in lengths[:3]) or "none"
    raise InputError(
        f"cannot tell which column holds the article text (candidates: {found}); "
        "pass --text-column NAME"
    )


def _label_like(rows: list[dict[str, Any]], column: str) -> bool:
    """Short values that repeat (or lists of strings): a label column."""
    values = [r.get(column) for r in rows if r.get(column) not in (None, "")]
    if not values:
        return False
    if all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in values):
        return True
    strings = [v for v in values if isinstance(v, str)]
    if len(strings) < len(values) or max(map(len, strings)) > MAX_LABEL_CHARS * 4:
        return False
    return len(set(strings)) <= max(2, len(strings) // 2)


def _label_column(
    rows: list[dict[str, Any]], header: list[str], taken: set[str], task: Task
) -> tuple[str, str]:
    names = TOPIC_LABEL_NAMES if task == "topic" else STANCE_LABEL_NAMES
    named = _named(header, names, taken)
    if named is not None:
        return named, f"the column named {named!r}"
    candidates = [c for c in header if c not in taken and _label_like(rows, c)]
    if len(candidates) == 1:
        return candidates[0], f"the only column of short repeated values ({candidates[0]!r})"
    found = ", ".join(map(repr, candidates)) or "none"
    raise InputError(
        f"cannot tell which column holds the {task} labels (candidates: {found}); "
        "pass --label-column NAME"
    )


def label_separator(values: list[Any]) -> str | None:
    """The separator of several labels in one string cell (``"economy|energy"``), or None.

    A character is a separator when some cells hold it and every part it cuts
    is a short label (a few words): a cell that is a sentence is no list of labels.
    """
    strings = [v for v in values if isinstance(v, str) and v.strip()]
    for sep in SEPARATORS:
        holding = [v for v in strings if sep in v]
        if not holding:
            continue
        parts = [p.strip() for v in holding for p in v.split(sep)]
        if all(p and len(p) <= MAX_LABEL_CHARS and len(p.split()) <= 4 for p in parts):
            return sep
    return None


def _task(header: list[str], taken: set[str], given: Task | None) -> tuple[Task, str]:
    if given is not None:
        return given, "--task"
    target = _named(header, TARGET_NAMES, taken)
    stance = _named(header, ("stance", "الموقف"), taken)
    if target is not None or stance is not None:
        return "stance", f"the file has a {target or stance!r} column"
    return "topic", "no target or stance column"


def find_columns(
    path: str | Path,
    rows: list[dict[str, Any]],
    *,
    task: Task | None = None,
    given: ColumnsConfig | None = None,
    given_fields: frozenset[str] = frozenset(),
) -> FoundColumns:
    """Name the columns of a file from a sample of its rows.

    Args:
        path: The file (for messages).
        rows: Its first rows (a few hundred are plenty).
        task: ``topic`` or ``stance``; None guesses from the columns.
        given: Column names the user passed; ``given_fields`` says which of its keys were passed.

    Raises:
        InputError: no rows, a column the sample cannot settle (naming the flag to pass),
            or a given column the file lacks (with a did-you-mean hint).
    """
    if not rows:
        raise InputError(f"{path}: no rows; expected a header and at least one article")
    header = list(dict.fromkeys(k for r in rows for k in r))
    given = given or ColumnsConfig()
    chosen: dict[str, str] = {}
    why: dict[str, str] = {}
    for key in sorted(given_fields):
        chosen[key], why[key] = getattr(given, key), "given"
    taken = {v for k, v in chosen.items() if k != "label_separator"}
    task, why["task"] = _task(header, taken, task)

    def settle(key: str, find: Any) -> None:
        if key not in chosen:
            chosen[key], why[key] = find()
            taken.add(chosen[key])

    if "id_column" not in chosen and (found := _named(header, ID_NAMES, taken)) is not None:
        chosen["id_column"], why["id_column"] = found, f"the column named {found!r}"
        taken.add(found)
    if task == "stance":
        settle("target_column", lambda: _target_column(header, taken))
    settle("text_column", lambda: _text_column(rows, header, taken))
    if task == "topic" and "title_column" not in chosen:
        if (found := _named(header, TITLE_NAMES, taken)) is not None:
            chosen["title_column"], why["title_column"] = found, f"the column named {found!r}"
            taken.add(found)
    settle("label_column", lambda: _label_column(rows, header, taken, task))
    if "label_separator" not in chosen:
        sep = label_separator([r.get(chosen["label_column"]) for r in rows])
        if sep is not None and task == "topic":
            chosen["label_separator"] = sep
            why["label_separator"] = f"cells such as {_example(rows, chosen['label_column'], sep)}"
    columns = ColumnsConfig(**chosen)
    check_header(path, header, required_columns(task, columns, require_label=True))
    return FoundColumns(task=task, columns=columns, header=header, why=why)


def _target_column(header: list[str], taken: set[str]) -> tuple[str, str]:
    named = _named(header, TARGET_NAMES, taken)
    if named is None:
        raise InputError(
            f"cannot tell which column holds the stance target (columns: {', '.join(header)}); "
            "pass --target-column NAME"
        )
    return named, f"the column named {named!r}"


def _example(rows: list[dict[str, Any]], column: str, sep: str) -> str:
    cell = next(v for r in rows if isinstance(v := r.get(column), str) and sep in v)
    return repr(cell)


def label_counts(labels: list[list[str]]) -> Counter[str]:
    """How many rows carry each label."""
    return Counter(label for row in labels for label in row)


def recorded_columns(
    training_config: dict[str, Any], task: Task, path: str | Path, fmt: str = "auto"
) -> ColumnsConfig | None:
    """The columns a model was trained with, when ``path`` is laid out like its training data.

    ``naba evaluate`` reads a test file of the user's own layout (``Body``,
    ``Section``) as training read it; a canonical file (a ``text`` column) is
    read as canonical. None when the model recorded no mapping or the file
    does not have its text column.
    """
    from naba.data.readers import read_rows

    raw = ((training_config.get("tasks") or {}).get(task) or {}).get("columns")
    if not raw:
        return None
    columns = ColumnsConfig(**raw)
    if columns == ColumnsConfig():
        return None
    first = next((row for _, row in read_rows(path, fmt) if isinstance(row, dict)), None)
    if first is None or columns.text_column not in first:
        return None
    return columns

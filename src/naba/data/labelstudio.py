"""Label Studio: tasks to import (with the model's predictions as pre-annotations) and its JSON
export read back.

The formats are Label Studio's own, as its documentation describes them
(links in ``docs/guides/selection.md``):

* **Import**: a JSON list of tasks ``{"data": {...}, "predictions": [{"model_version",
  "score", "result": [...]}]}``; each result item is ``{"id", "type": "choices",
  "from_name", "to_name", "value": {"choices": [...]}}``, its ``from_name`` and
  ``to_name`` the names of a ``<Choices>`` and a ``<Text>`` tag of the project's
  labeling configuration (:func:`labeling_config` writes the one that matches).
  A prediction's ``score`` is the model's confidence, one minus the article's
  uncertainty, so that Label Studio's "lowest score first" is naba's order.
* **Export** (the "JSON" export): a JSON list of tasks, each with its ``data``
  and ``annotations``; an annotation has ``result`` items as above (the
  annotator's choices) and ``was_cancelled`` when the task was skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from naba.config import ColumnsConfig
from naba.errors import InputError, Problem

TO_NAME = "text"  # the <Text> tag that every choice labels
FROM_NAME = {"topic": "topic", "stance": "stance"}  # the <Choices> tag of each task


def labeling_config(
    labels: dict[str, tuple[list[str], bool]], *, titles: bool = False, targets: bool = False
) -> str:
    """The labeling configuration (XML) that the tasks of :func:`task` match.

    Args:
        labels: Per task (``topic``, ``stance``): its labels and whether several can hold.
        titles, targets: Show the article's title, the stance target above the text.
    """
    lines = ["<View>", '  <View style="direction: rtl; text-align: right">']
    if targets:
        lines.append('    <Header value="$target"/>')
    if titles:
        lines.append('    <Text name="title" value="$title"/>')
    lines += [f'    <Text name="{TO_NAME}" value="$text"/>', "  </View>"]
    for task, (names, multi) in labels.items():
        lines.append(
            f'  <Choices name="{FROM_NAME[task]}" toName="{TO_NAME}" '
            f'choice="{"multiple" if multi else "single"}" showInline="true">'
        )
        lines += [f"    <Choice value={quoteattr(name)}/>" for name in names]
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def task(
    record: dict[str, Any],
    prediction: dict[str, Any],
    uncertainty: float,
    *,
    model_version: str,
    titles: bool = False,
    targets: bool = False,
) -> dict[str, Any]:
    """One Label Studio task: the article as ``data``, the model's labels as its one prediction.

    ``titles``, ``targets``: the configuration shows ``$title`` and ``$target``,
    so every task has them (empty where the article has none).
    """
    data: dict[str, Any] = {"id": record["id"], "text": record["text"]}
    if titles:
        data["title"] = record.get("title") or ""
    if targets or record.get("target"):
        data["target"] = record.get("target") or ""
    result = []
    if "topics" in prediction:
        result.append(_choices(f"{record['id']}-topic", "topic", prediction["topics"]["labels"]))
    for stance in (prediction.get("stance") or [])[:1]:
        result.append(_choices(f"{record['id']}-stance", "stance", [stance["label"]]))
    return {
        "data": data,
        "predictions": [
            {
                "model_version": model_version,
                "score": round(1.0 - uncertainty, 6),
                "result": result,
            }
        ],
    }


def _choices(result_id: str, task_name: str, labels: list[str]) -> dict[str, Any]:
    return {
        "id": result_id,
        "type": "choices",
        "from_name": FROM_NAME[task_name],
        "to_name": TO_NAME,
        "value": {"choices": list(labels)},
    }


# ---------------------------------------------------------------------------- the export, read back


def json_list(path: Path) -> Iterator[tuple[int, Any]]:
    """The items of a JSON list file, each with the line it starts on.

    Raises:
        InputError: the file is not UTF-8, not JSON, or not a list.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; export it from Label Studio as JSON") from None
    decoder, pos, line = json.JSONDecoder(), 0, 1

    def skip(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    pos = skip(pos)
    if not text.startswith("[", pos):
        raise InputError(
            f"{path}:{text.count(chr(10), 0, pos) + 1}: expected a JSON list of tasks "
            "(Label Studio's JSON export), found "
            + (repr(text[pos : pos + 20]) if pos < len(text) else "an empty file")
        )
    pos, counted = skip(pos + 1), 0
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            where = text.count("\n", 0, exc.pos) + 1
            raise InputError(
                f"{path}:{where}: not valid JSON ({exc.msg}); export it again from Label Studio"
            ) from None
        yield line, item
        pos = skip(pos)
        if pos < len(text) and text[pos] == ",":
            pos = skip(pos + 1)
    if pos >= len(text):
        raise InputError(f"{path}: the JSON list is not closed (the file is cut short)")


def _annotation(item: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The annotation to read: the ground truth one if any, else the last one that was not
    cancelled.

    Raises:
        ValueError: (field, message) when there is none.
    """
    annotations = item.get("annotations")
    if not isinstance(annotations, list):
        raise ValueError("annotations", "expected a list of annotations, found none")
    usable = [
        (i, a)
        for i, a in enumerate(annotations)
        if isinstance(a, dict) and not a.get("was_cancelled")
    ]
    if not usable:
        raise ValueError(
            "annotations",
            "expected an annotation that was not cancelled, found "
            + ("none" if not annotations else f"{len(annotations)} cancelled or malformed")
            + "; label the task in Label Studio, or leave it out of the file",
        )
    truth = [(i, a) for i, a in usable if a.get("ground_truth")]
    return (truth or usable)[-1]


def _chosen(annotation: dict[str, Any], index: int, control: str) -> list[str]:
    """The choices of the annotation's result item from the ``control`` tag."""
    result = annotation.get("result")
    if not isinstance(result, list):
        raise ValueError(f"annotations[{index}].result", "expected a list of results, found none")
    for j, item in enumerate(result):
        if not isinstance(item, dict) or item.get("from_name") != control:
            continue
        where = f"annotations[{index}].result[{j}].value.choices"
        choices = (item.get("value") or {}).get("choices")
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise ValueError(where, f"expected a list of label strings, found {choices!r:.60}")
        if not choices:
            raise ValueError(where, "expected at least one label, found none")
        return choices
    names = sorted({r.get("from_name") for r in result if isinstance(r, dict)} - {None})
    raise ValueError(
        f"annotations[{index}].result",
        f"expected a choice from the {control!r} tag, found "
        + (f"only {', '.join(map(repr, names))}" if names else "no choices")
        + (
            "; pass --label-column NAME to read another <Choices> tag"
            if names
            else "; label the task in Label Studio, or leave it out of the file"
        ),
    )


def _record(item: Any, task_name: str, cols: ColumnsConfig) -> dict[str, Any]:
    from naba.data.records import FieldError, to_record

    if not isinstance(item, dict):
        raise ValueError("task", f"expected a task object, found {type(item).__name__}")
    data = item.get("data")
    if not isinstance(data, dict):
        raise ValueError("data", "expected an object with the article's text, found none")
    index, annotation = _annotation(item)
    control = cols.label_column or FROM_NAME[task_name]
    choices = _chosen(annotation, index, control)
    label_key = "topics" if task_name == "topic" else "stance"
    if task_name == "stance" and len(choices) != 1:
        raise ValueError(
            f"annotations[{index}].result.value.choices", f"expected one stance, found {choices}"
        )
    row = {**data, label_key: choices if task_name == "topic" else choices[0]}
    if cols.id_column not in data and "id" in item:
        row[cols.id_column] = str(item["id"])
    try:
        columns = cols.model_copy(update={"label_column": None})
        return to_record(row, task_name, columns)  # type: ignore[arg-type]
    except FieldError as exc:
        raise ValueError(f"data.{exc.field}", exc.message) from None


def read_export(
    sources: list[Path], task_name: str = "topic", columns: ColumnsConfig | None = None
) -> Iterator[dict[str, Any] | Problem]:
    """Canonical records from Label Studio JSON exports (one per task), or a Problem naming file,
    line and field.

    The article comes from the task's ``data`` (``text``, ``id`` else the task's
    id, ``title``, stance ``target``; renamed with ``columns``), its labels from
    the ground-truth annotation, else the last one not cancelled: the choices
    of the ``topic`` (``stance``) tag, or the tag that ``columns.label_column``
    names.

    Raises:
        InputError: a file that is not a JSON list.
    """
    cols = columns or ColumnsConfig()
    for source in sources:
        if source.is_dir():
            raise InputError(f"{source}: is a directory; --format label-studio expects JSON files")
        if not source.exists():
            raise InputError(f"{source}: no such file")
        for line, item in json_list(source):
            try:
                yield _record(item, task_name, cols)
            except ValueError as exc:
                field, message = exc.args
                yield Problem(str(source), line, field, message)

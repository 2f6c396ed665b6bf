"""``naba select``'s files: the pool read as ``naba predict`` reads it, the choice written as JSONL,
Label Studio tasks or Argilla records.

Formats (``fmt``):

* ``jsonl``: one row per chosen article, most uncertain first: ``id``,
  ``title``, ``text``, ``target`` (those it has), ``uncertainty``, ``cluster``
  (the diverse strategy's) and ``prediction`` (the prediction record,
  :mod:`naba.infer.schema`, without its ``id``).
* ``label-studio``: a JSON list of tasks to import
  (:mod:`naba.data.labelstudio`), and beside it ``OUT.label_config.xml``, the
  labeling configuration they match.
* ``argilla``: a JSON list of records (:mod:`naba.data.argilla`).

Pool rows that cannot be read go to ``OUT.errors.jsonl`` (file, line, field),
as with ``naba predict``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from naba.atomic import atomic_file
from naba.config import ColumnsConfig
from naba.data.readers import is_stdin
from naba.data.writers import dumps
from naba.errors import InputError
from naba.infer.predict import Rejected, iter_inputs
from naba.infer.select import DUPLICATE, Scorer, Selection, Strategy, select_records

OutputFormat = Literal["jsonl", "label-studio", "argilla"]
OUTPUT_FORMATS = ("jsonl", "label-studio", "argilla")


@dataclass
class SelectSummary:
    """What :func:`select_files` read and wrote."""

    rows: int = 0  # pool rows read
    scored: int = 0  # articles scored (rows less errors)
    chosen: int = 0
    errors: int = 0
    output: Path | None = None
    errors_path: Path | None = None
    config_path: Path | None = None  # Label Studio: the labeling configuration


def side_path(output: Path, suffix: str) -> Path:
    """``select.json`` -> ``select.SUFFIX``."""
    stem = output.name.rsplit(".", 1)[0] if "." in output.name else output.name
    return output.with_name(f"{stem}.{suffix}")


def select_files(
    scorer: Scorer,
    inputs: list[Path],
    output: Path,
    n: int,
    *,
    fmt: OutputFormat = "jsonl",
    strategy: Strategy = "diverse",
    seed: int = 0,
    similarity: float = DUPLICATE,
    columns: ColumnsConfig | None = None,
    input_format: str = "auto",
    overwrite: bool = False,
    progress: Any = None,
) -> SelectSummary:
    """Read the pool in ``inputs``, choose ``n`` articles
    (:func:`naba.infer.select.select_records`), write them.

    Raises:
        InputError: an unknown format, an output that exists (without
            ``overwrite``), an input that is missing or unusable, a pool with
            no readable article.
    """
    if fmt not in OUTPUT_FORMATS:
        raise InputError(f"format: expected one of {', '.join(OUTPUT_FORMATS)}, found {fmt!r}")
    summary = SelectSummary(output=output, errors_path=side_path(output, "errors.jsonl"))
    if fmt == "label-studio":
        summary.config_path = side_path(output, "label_config.xml")
    for path in (output, summary.config_path):
        if path is not None and path.exists() and not overwrite:
            raise InputError(f"{path}: already exists; pass --overwrite to replace it")
    for path in inputs:
        if not path.exists() and not is_stdin(path):
            raise InputError(f"{path}: no such file or directory")
    records, problems = [], []
    for item in iter_inputs(inputs, columns, input_format):
        summary.rows += 1
        (problems if isinstance(item, Rejected) else records).append(item)
    summary.scored, summary.errors = len(records), len(problems)
    if not records:
        raise InputError(
            f"{', '.join(map(str, inputs))}: no article to choose from "
            f"({summary.rows} rows, {summary.errors} unreadable)"
        )
    selection = select_records(
        records, scorer, n, strategy=strategy, seed=seed, similarity=similarity, progress=progress
    )
    summary.chosen = len(selection.records)
    write_selection(selection, output, fmt, summary.config_path)
    if problems:
        with atomic_file(summary.errors_path) as handle:
            handle.write("".join(dumps(p.to_dict()) + "\n" for p in problems))
    else:
        summary.errors_path.unlink(missing_ok=True)
    return summary


def write_selection(
    selection: Selection, output: Path, fmt: OutputFormat, config_path: Path | None = None
) -> None:
    """Write the chosen articles in ``fmt`` (and, for Label Studio, the labeling configuration)."""
    from naba.data import argilla, labelstudio

    rows = zip(selection.records, selection.predictions, selection.uncertainty)
    if fmt == "jsonl":
        clusters = selection.clusters or [None] * len(selection.records)
        with atomic_file(output) as handle:
            for (record, prediction, u), cluster in zip(rows, clusters):
                handle.write(dumps(jsonl_row(record, prediction, u, cluster)) + "\n")
        return
    if fmt == "label-studio":
        titles = any(r.get("title") for r in selection.records)
        targets = any(r.get("target") for r in selection.records)
        shown = {"titles": titles, "targets": targets}
        items: list[dict[str, Any]] = [
            labelstudio.task(r, p, u, model_version=selection.model, **shown) for r, p, u in rows
        ]
        labels = {t: (rule.labels, rule.multi_label) for t, rule in selection.rules.items()}
        config = labelstudio.labeling_config(labels, **shown)
        with atomic_file(config_path or side_path(output, "label_config.xml")) as handle:
            handle.write(config)
    else:
        multi = "topic" in selection.rules and selection.rules["topic"].multi_label
        items = [
            argilla.record(r, p, u, agent=selection.model, multi_label=multi) for r, p, u in rows
        ]
    with atomic_file(output) as handle:
        json.dump(items, handle, ensure_ascii=False, indent=1)
        handle.write("\n")


def jsonl_row(
    record: dict[str, Any], prediction: dict[str, Any], uncertainty: float, cluster: int | None
) -> dict[str, Any]:
    """One chosen article as a JSONL row (see the module docstring)."""
    row = {k: record[k] for k in ("id", "title", "text", "target") if record.get(k) is not None}
    row["uncertainty"] = uncertainty
    if cluster is not None:
        row["cluster"] = cluster
    row["prediction"] = {k: v for k, v in prediction.items() if k != "id"}
    return row

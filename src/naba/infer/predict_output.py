"""What ``naba predict`` writes: the output and error files, partial until the run is complete, and
the progress record that makes a run resumable (see :mod:`naba.infer.predict`)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from naba.atomic import atomic_file
from naba.data.writers import dumps
from naba.errors import InputError
from naba.infer.schema import csv_columns, csv_row, parquet_schema, stance_slots


def output_layout(
    output: Path,
    classifier: Any,
    tasks: list[str],
    targets: list[str] | None,
    all_targets: bool,
    explain: int = 0,
) -> tuple[list[str] | None, Any]:
    """A CSV output's columns, or a Parquet output's schema (:mod:`naba.infer.schema`): a column for
    each task that runs."""
    stance = classifier.tasks["stance"].spec if "stance" in classifier.tasks else None
    relevance = stance is not None and stance.hybrid is not None and stance.hybrid.has_gate
    if output.name.endswith(".csv"):
        trained = stance.default_targets if stance is not None else []
        slots = stance_slots(targets, all_targets, trained)
        columns = csv_columns(tasks, classifier.labels, slots, bool(explain), relevance=relevance)
        return columns, None
    if output.name.endswith(".parquet"):
        return None, parquet_schema(tasks, classifier.labels, bool(explain), relevance=relevance)
    return None, None


class RowWriter:
    """Prediction records appended to an open JSONL or CSV file; Parquet through pyarrow (not
    resumable).

    JSONL holds the records as they are; CSV their flattening (``columns``:
    :func:`naba.infer.schema.csv_columns`); Parquet their typed columns
    (``schema``: :func:`naba.infer.schema.parquet_schema`).
    """

    def __init__(
        self,
        path: Path,
        append: bool,
        kind_of: Path | None = None,
        columns: list[str] | None = None,
        schema: Any = None,
    ) -> None:
        self.path = path
        self.columns = columns
        self.schema = schema
        name = (kind_of or path).name  # a partial file takes its format from the output's name
        self.kind = (
            "jsonl" if name.endswith(".jsonl") else "csv" if name.endswith(".csv") else "parquet"
        )
        self.parquet: Any = None
        if self.kind == "parquet":
            self.handle = None
        else:
            self.handle = open(path, "ab" if append else "wb")
        self.header_done = append and path.exists() and path.stat().st_size > 0

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.kind == "jsonl":
            self.handle.write("".join(dumps(r) + "\n" for r in rows).encode("utf-8"))
        elif self.kind == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
            if not self.header_done:
                writer.writeheader()
                self.header_done = True
            writer.writerows(csv_row(r) for r in rows)
            self.handle.write(buffer.getvalue().encode("utf-8"))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pylist(
                [{k: r.get(k) for k in self.schema.names} for r in rows], schema=self.schema
            )
            if self.parquet is None:
                self.parquet = pq.ParquetWriter(str(self.path), table.schema)
            self.parquet.write_table(table)

    def sync(self) -> int:
        if self.handle is None:
            return 0
        self.handle.flush()
        os.fsync(self.handle.fileno())
        return self.handle.tell()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.parquet is not None:
            self.parquet.close()


def job_key(model_dir: Path, inputs: list[Path], output: Path, options: dict[str, Any]) -> str:
    text = json.dumps(
        {
            "model": str(model_dir.resolve()),
            "inputs": [str(p.resolve()) for p in inputs],
            "output": str(output.resolve()),
            **options,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def partial_path(path: Path) -> Path:
    """Where ``path`` is written until the run is complete."""
    return path.with_name(path.name + ".partial")


def errors_path(output: Path) -> Path:
    """Where the error records of a run writing ``output`` go: ``OUTPUT.errors.jsonl``."""
    return output.with_name(output.name.rsplit(".", 1)[0] + ".errors.jsonl")


def restore_progress(progress_path: Path, key: str, files: dict[str, Path]) -> dict[str, Any]:
    """The saved state of an interrupted run, with its partial files cut back to the recorded sizes.

    Raises:
        InputError: the state belongs to another run, or a partial file is shorter than recorded.
    """
    try:
        saved = json.loads(progress_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(
            f"{progress_path}: corrupt progress record; rerun without --resume (with --overwrite)"
        ) from None
    if not isinstance(saved, dict) or saved.get("key") != key:
        raise InputError(
            f"{progress_path}: records a run with other inputs, model or options; rerun without "
            "--resume"
        )
    if saved.get("done"):
        return saved
    for name, path in files.items():
        size = saved[f"{name}_bytes"]
        actual = path.stat().st_size if path.exists() else 0
        if actual < size:
            # Never silently lose rows the record says are done.
            raise InputError(
                f"{path}: holds {actual} bytes, but {progress_path} records {size}; the partial "
                "output was changed or removed, rerun without --resume (with --overwrite)"
            )
        if path.exists():
            with open(path, "r+b") as handle:
                handle.truncate(size)
    return saved


def publish(
    state: dict[str, Any], progress_path: Path, partials: dict[str, Path], finals: dict[str, Path]
) -> None:
    """Rename the complete partial files into place, then drop the progress record.

    ``done`` is recorded first: a run killed between the renames is finished
    by ``--resume`` without classifying anything again.
    """
    state["done"] = True
    with atomic_file(progress_path) as handle:
        json.dump(state, handle)
    if partials["output"].exists():
        os.replace(partials["output"], finals["output"])
    if state["errors"]:
        if partials["errors"].exists():
            os.replace(partials["errors"], finals["errors"])
    else:
        partials["errors"].unlink(missing_ok=True)
        finals["errors"].unlink(missing_ok=True)
    progress_path.unlink(missing_ok=True)

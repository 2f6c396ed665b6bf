"""``naba predict``: stream files through a Classifier, in constant memory, resumably.

Input rows are read a chunk at a time, classified (each chunk's batches
sorted by length inside :meth:`Classifier.predict`) and written in input
order. Every input row becomes an output row or an error record in
``OUTPUT.errors.jsonl``. An output row is the prediction record of
:meth:`Classifier.predict` (:mod:`naba.infer.schema`): as it is in JSONL,
typed columns in Parquet, flattened to one column per value in CSV.

Atomic outputs: rows go to ``OUTPUT.partial`` (and ``OUTPUT.errors.jsonl.partial``),
renamed to their final names only when the run is complete, so a file under
the output's name is always a whole run.

Resume: after each chunk the partial files are flushed to disk and
``OUTPUT.progress.json`` records (atomically) how many input rows are done
and how many bytes each file holds. ``--resume`` truncates the files back to
those sizes and skips the rows already done, so a run killed at any point
finishes with no row lost or duplicated.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naba.atomic import atomic_file
from naba.config import ColumnsConfig
from naba.data.pages import import_pages
from naba.data.readers import detect_format, is_stdin, read_rows
from naba.data.records import STRING_FORMATS, FieldError, check_header, required_text
from naba.data.writers import dumps
from naba.errors import InputError, Problem
from naba.infer.schema import csv_columns, csv_row, parquet_schema, stance_slots

RESUMABLE = (".jsonl", ".csv")
logger = logging.getLogger(__name__)


@dataclass
class PredictSummary:
    rows: int = 0
    written: int = 0
    errors: int = 0
    resumed_from: int = 0
    output: Path | None = None
    errors_path: Path | None = None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Rejected:
    """An input row that cannot be classified, with its id when the row has one."""

    problem: Problem
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.problem.to_dict(), "id": self.id}


def _row_id(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column)
    return None if value is None or value == "" else str(value)


def iter_inputs(
    inputs: list[Path], columns: ColumnsConfig | None = None, fmt: str = "auto"
) -> Iterator[dict[str, Any] | Rejected]:
    """Articles from every input, in order: records ``{id, text, title?, target?}`` or :class:`Rejected` rows.

    A directory is read as raw article pages; a file by its extension.

    Raises:
        InputError: an input is unusable as a whole (UTF-16, unknown type, a CSV without the text column).
    """
    cols = columns or ColumnsConfig()
    for path in inputs:
        if path.is_dir() and fmt in ("auto", "page") and not (path / "dataset_info.json").exists():
            for item in import_pages([path]):
                yield Rejected(item) if isinstance(item, Problem) else item
            continue
        rows = read_rows(path, fmt)
        resolved = ("jsonl" if is_stdin(path) else detect_format(path)) if fmt == "auto" else fmt
        checked = resolved not in STRING_FORMATS
        seen = 0
        for line, row in rows:
            seen += 1
            if isinstance(row, Problem):
                yield Rejected(row)
                continue
            if not checked:
                check_header(path, row, {cols.text_column: "text_column"})
                checked = True
            raw_id = _row_id(row, cols.id_column)
            try:
                text = required_text(row, cols.text_column)
            except FieldError as exc:
                yield Rejected(Problem(str(path), line, cols.text_column, exc.message), raw_id)
                continue
            record: dict[str, Any] = {
                "id": raw_id
                if raw_id is not None
                else f"{'stdin' if is_stdin(path) else path.name}:{line}",
                "text": text,
            }
            if title := _text(row.get(cols.title_column)):
                record["title"] = title
            if target := _text(row.get(cols.target_column)):
                record["target"] = target
            yield record
        if not seen:
            logger.warning(
                "warning: %s: no rows (the file is empty or blank); nothing to classify in it", path
            )


def _layout(
    output: Path,
    classifier: Any,
    tasks: list[str],
    targets: list[str] | None,
    all_targets: bool,
    explain: int = 0,
) -> tuple[list[str] | None, Any]:
    """A CSV output's columns, or a Parquet output's schema (:mod:`naba.infer.schema`): a column for each task that runs."""
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


class _Writer:
    """Prediction records appended to an open JSONL or CSV file; Parquet through pyarrow (not resumable).

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


def _count_rows(inputs: list[Path], fmt: str, shard: tuple[int, int] | None) -> int | None:
    """The number of input rows when it is cheap to know (for the progress bar's total and ETA), else None.

    Lines of uncompressed JSONL and text files (a binary scan), records of CSV
    (lines after the header; a quoted field over several lines makes it an
    upper bound), Parquet's row count from its footer. Compressed files,
    standard input, page folders and ``datasets`` directories: unknown.
    """
    total = 0
    for path in inputs:
        name = path.name.lower()
        kind = (
            fmt
            if fmt != "auto"
            else (
                ""
                if is_stdin(path) or path.is_dir() or name.endswith(".gz")
                else "parquet"
                if name.endswith(".parquet")
                else "csv"
                if name.endswith((".csv", ".tsv"))
                else "lines"
                if name.endswith((".jsonl", ".json", ".ndjson", ".txt"))
                else ""
            )
        )
        if kind in ("jsonl", "txt"):
            kind = "lines"
        if (
            not kind
            or kind not in ("lines", "csv", "parquet")
            or is_stdin(path)
            or name.endswith(".gz")
        ):
            return None
        try:
            if kind == "parquet":
                import pyarrow.parquet as pq

                total += pq.ParquetFile(path).metadata.num_rows
                continue
            lines = 0
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    lines += block.count(b"\n")
                    last = block
            if path.stat().st_size and not last.endswith(b"\n"):
                lines += 1
            total += max(lines - 1, 0) if kind == "csv" else lines
        except Exception:  # noqa: BLE001 - a total is a nicety: a file the reader will reject has none
            return None
    if shard is not None:
        rank, world = shard
        total = len(range(rank, total, world))
    return total


def _job_key(model_dir: Path, inputs: list[Path], output: Path, options: dict[str, Any]) -> str:
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


def _restore(progress_path: Path, key: str, files: dict[str, Path]) -> dict[str, Any]:
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
            f"{progress_path}: records a run with other inputs, model or options; rerun without --resume"
        )
    if saved.get("done"):
        return saved
    for name, path in files.items():
        size = saved[f"{name}_bytes"]
        actual = path.stat().st_size if path.exists() else 0
        if actual < size:
            # Never silently lose rows the record says are done.
            raise InputError(
                f"{path}: holds {actual} bytes, but {progress_path} records {size}; the partial output was "
                "changed or removed, rerun without --resume (with --overwrite)"
            )
        if path.exists():
            with open(path, "r+b") as handle:
                handle.truncate(size)
    return saved


def _publish(
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


@dataclass
class _Job:
    """One :func:`predict_files` run: the classifier, what it reads and writes, and how it classifies."""

    classifier: Any
    inputs: list[Path]
    output: Path
    partials: dict[str, Path]  # "output" and "errors": where rows go until the run is complete
    progress_path: Path
    tasks: list[str]
    targets: list[str] | None
    all_targets: bool
    batch_size: int
    chunk_size: int
    threshold: float | None
    columns: ColumnsConfig | None
    fmt: str
    shard: tuple[int, int] | None
    explain: int = 0
    target_descriptions: dict[str, str] | None = (
        None  # --target ID=DESCRIPTION: this run's new targets
    )


def predict_files(
    classifier: Any,
    inputs: list[Path],
    output: Path,
    *,
    targets: list[str] | None = None,
    tasks: list[str] | str | None = None,
    all_targets: bool = False,
    batch_size: int = 32,
    chunk_size: int = 256,
    threshold: float | None = None,
    resume: bool = False,
    overwrite: bool = False,
    columns: ColumnsConfig | None = None,
    fmt: str = "auto",
    show_progress_bar: bool | None = None,
    shard: tuple[int, int] | None = None,
    explain: int = 0,
    target_descriptions: dict[str, str] | None = None,
) -> PredictSummary:
    """Classify every article of ``inputs`` into ``output`` (JSONL, CSV or Parquet, by extension).

    The output (and ``OUTPUT.errors.jsonl``) appear under their names only
    when the run is complete; until then they are ``*.partial`` files.

    Args:
        targets, tasks, all_targets: As in :meth:`Classifier.predict`: stance is
            scored toward ``targets``, else each row's own target, else (with
            ``all_targets``) the model's trained targets; never otherwise.
        shard: ``(rank, world)``: classify only inputs ``i`` with ``i % world == rank``
            and tag each row with its input position ``_index`` (see :func:`predict_sharded`).
        explain: Evidence per chosen label (:meth:`Classifier.predict`'s ``explain``).
        target_descriptions: ``{target: description}`` for targets this run names by an id
            (``--target ID=DESCRIPTION``); as in :meth:`Classifier.predict`.

    Raises:
        InputError: unknown output type, an output that exists (without
            ``overwrite`` or ``resume``), ``resume`` with Parquet output or with
            different inputs/options than the interrupted run, an unusable input.
    """
    from tqdm.auto import tqdm

    if not output.name.endswith((".jsonl", ".csv", ".parquet")):
        raise InputError(f"{output}: unknown output type; expected .jsonl, .csv or .parquet")
    for path in inputs:
        if not path.exists() and not is_stdin(path):
            raise InputError(f"{path}: no such file or directory")
    if resume and any(is_stdin(path) for path in inputs):
        raise InputError(
            "--resume: standard input cannot be read again; save it to a file to make the run resumable"
        )
    errors_path = output.with_name(output.name.rsplit(".", 1)[0] + ".errors.jsonl")
    finals = {"output": output, "errors": errors_path}
    partials = {name: partial_path(path) for name, path in finals.items()}
    progress_path = output.with_name(output.name + ".progress.json")
    selected = classifier.selected_tasks(tasks)
    if targets and all_targets:
        raise InputError(
            "--target and --all-targets: pass one of them (--all-targets scores the targets the model was trained on)"
        )
    key = _job_key(
        classifier.model_dir,
        inputs,
        output,
        {
            "targets": targets,
            "threshold": threshold,
            "precision": classifier.precision,
            "tasks": selected,
            "all_targets": all_targets,
            **({"explain": explain} if explain else {}),
            **({"target_descriptions": target_descriptions} if target_descriptions else {}),
        },
    )
    summary = PredictSummary(output=output, errors_path=errors_path)
    state = {"key": key, "rows": 0, "output_bytes": 0, "errors_bytes": 0, "written": 0, "errors": 0}
    if resume and progress_path.exists():
        if not output.name.endswith(RESUMABLE):
            raise InputError(f"{output}: --resume needs .jsonl or .csv output")
        state = _restore(progress_path, key, partials)
        summary.resumed_from = state["rows"]
    elif output.exists() and not overwrite and not resume:
        raise InputError(
            f"{output}: already exists; pass --overwrite to replace it or --resume to complete it"
        )
    else:
        progress_path.unlink(
            missing_ok=True
        )  # a stale record must not describe this run's fresh files
    if not state.get("done"):
        fresh = state["rows"] == 0
        job = _Job(
            classifier,
            inputs,
            output,
            partials,
            progress_path,
            tasks=selected,
            targets=targets,
            all_targets=all_targets,
            batch_size=batch_size,
            chunk_size=chunk_size,
            threshold=threshold,
            columns=columns,
            fmt=fmt,
            shard=shard,
            explain=explain,
            target_descriptions=target_descriptions,
        )
        try:
            _run(
                job,
                state,
                tqdm(
                    desc="predict",
                    unit="article",
                    initial=state["rows"],
                    disable=not show_progress_bar,
                    total=_count_rows(inputs, fmt, shard) if show_progress_bar else None,
                    dynamic_ncols=True,
                    bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]",
                ),
            )
        except BaseException:
            if fresh and state["rows"] == 0:  # failed before a row was done: leave nothing behind
                for path in (*partials.values(), progress_path):
                    path.unlink(missing_ok=True)
            raise
    _publish(state, progress_path, partials, finals)
    if tasks is not None and "stance" in selected and state.get("no_target"):
        logger.warning(
            "warning: stance: %d articles had no target and got no stance; pass --target T, --all-targets, "
            "or a target column",
            state["no_target"],
        )
    summary.rows, summary.written, summary.errors = state["rows"], state["written"], state["errors"]
    return summary


def _chunks(job: _Job, done: int) -> Iterator[list[tuple[int, dict[str, Any] | Rejected]]]:
    """The job's input rows not yet done (``done`` of them are), ``chunk_size`` at a time, with their input positions."""
    chunk: list[tuple[int, dict[str, Any] | Rejected]] = []
    consumed = 0
    for index, item in enumerate(iter_inputs(job.inputs, job.columns, job.fmt)):
        if job.shard is not None and index % job.shard[1] != job.shard[0]:
            continue
        consumed += 1
        if consumed <= done:
            continue
        chunk.append((index, item))
        if len(chunk) >= job.chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _run(job: _Job, state: dict[str, Any], bar: Any) -> None:
    """Classify the rows not yet done into the partial files, recording progress after every chunk."""
    classifier, shard = job.classifier, job.shard
    append = state["rows"] > 0
    columns, schema = _layout(
        job.output, classifier, job.tasks, job.targets, job.all_targets, job.explain
    )
    writer = _Writer(
        job.partials["output"], append, kind_of=job.output, columns=columns, schema=schema
    )
    errors = open(job.partials["errors"], "ab" if append else "wb")
    try:
        for chunk in _chunks(job, state["rows"]):
            records = [item for _, item in chunk if not isinstance(item, Rejected)]
            results = []
            if records:
                prepared = classifier.prepare(
                    records,
                    job.targets,
                    tasks=job.tasks,
                    all_targets=job.all_targets,
                    target_descriptions=job.target_descriptions,
                )
                results = classifier.classify(
                    prepared,
                    batch_size=job.batch_size,
                    threshold=job.threshold,
                    progress=bar,
                    explain=job.explain,
                )
            if (
                shard is not None
            ):  # the part files are JSONL: each record tagged with its input position
                indices = [i for i, item in chunk if not isinstance(item, Rejected)]
                results = [{"_index": i, **result} for i, result in zip(indices, results)]
            writer.write(results)
            problems = [
                ({"_index": i} if shard is not None else {}) | item.to_dict()
                for i, item in chunk
                if isinstance(item, Rejected)
            ]
            errors.write("".join(dumps(p) + "\n" for p in problems).encode("utf-8"))
            errors.flush()
            os.fsync(errors.fileno())
            state["rows"] += len(chunk)
            state["written"] += len(records)
            state["no_target"] = state.get("no_target", 0) + sum("stance" not in r for r in results)
            state["errors"] += len(problems)
            state["output_bytes"], state["errors_bytes"] = writer.sync(), errors.tell()
            with atomic_file(job.progress_path) as handle:
                json.dump(state, handle)
            bar.n = state[
                "rows"
            ]  # exact at every chunk: rejected rows, and the fractions the batches advanced
            bar.refresh()
        if (
            bar.total is not None and bar.total != state["rows"]
        ):  # a counted total can include blank lines
            bar.total = state["rows"]
            bar.refresh()
    finally:
        bar.close()
        writer.close()
        errors.close()


def _shard_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


def predict_sharded(
    classifier: Any,
    inputs: list[Path],
    output: Path,
    rank: int,
    world: int,
    *,
    poll_seconds: float = 0.5,
    **kwargs: Any,
) -> PredictSummary | None:
    """One process's share of a multi-process run (``torchrun`` / ``accelerate launch``).

    Process ``rank`` classifies inputs ``i % world == rank`` into its own
    resumable part file; when every part is complete, process 0 merges them
    into ``output`` in input order (a k-way merge on the input position), with
    the error records likewise, and removes the parts. Returns the merged
    summary on process 0, ``None`` elsewhere.
    """
    import heapq
    import time

    if output.exists() and not kwargs.get("overwrite") and not kwargs.get("resume"):
        raise InputError(
            f"{output}: already exists; pass --overwrite to replace it or --resume to complete it"
        )
    part = output.with_name(f"{output.name}.part-{rank}-of-{world}.jsonl")
    done = part.with_name(part.name + ".done")
    if not kwargs.get("resume"):
        done.unlink(missing_ok=True)
    own = predict_files(
        classifier, inputs, part, shard=(rank, world), **{**kwargs, "overwrite": True}
    )
    done.write_text(
        json.dumps({"rows": own.rows, "written": own.written, "errors": own.errors}),
        encoding="utf-8",
    )
    if rank != 0:
        return None
    parts = [output.with_name(f"{output.name}.part-{r}-of-{world}.jsonl") for r in range(world)]
    markers = [p.with_name(p.name + ".done") for p in parts]
    while not all(m.exists() for m in markers):
        time.sleep(poll_seconds)
    totals = [json.loads(m.read_text(encoding="utf-8")) for m in markers]
    summary = PredictSummary(
        rows=sum(t["rows"] for t in totals),
        written=sum(t["written"] for t in totals),
        errors=sum(t["errors"] for t in totals),
        output=output,
    )
    summary.errors_path = output.with_name(output.name.rsplit(".", 1)[0] + ".errors.jsonl")
    error_parts = [p.with_name(p.name[: -len(".jsonl")] + ".errors.jsonl") for p in parts]
    # The temporary name keeps the extension: the writer picks the format from it.
    columns, schema = _layout(
        output,
        classifier,
        classifier.selected_tasks(kwargs.get("tasks")),
        kwargs.get("targets"),
        kwargs.get("all_targets", False),
        kwargs.get("explain", 0),
    )
    writer = _Writer(
        output.with_name(f".merging-{output.name}"), append=False, columns=columns, schema=schema
    )
    try:
        batch: list[dict[str, Any]] = []
        for row in heapq.merge(*(_shard_rows(p) for p in parts), key=lambda r: r["_index"]):
            row.pop("_index")
            batch.append(row)
            if len(batch) >= 1024:
                writer.write(batch)
                batch = []
        writer.write(batch)
    finally:
        writer.close()
    os.replace(writer.path, output)
    if summary.errors:
        with atomic_file(summary.errors_path) as handle:
            for row in heapq.merge(
                *(_shard_rows(p) for p in error_parts), key=lambda r: r["_index"]
            ):
                row.pop("_index")
                handle.write(dumps(row) + "\n")
    for path in [*parts, *markers, *error_parts]:
        path.unlink(missing_ok=True)
    return summary

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
from naba.infer.predict_output import (
    RowWriter,
    errors_path,
    job_key,
    output_layout,
    partial_path,
    publish,
    restore_progress,
)

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
    """Articles from every input, in order: records ``{id, text, title?, target?}`` or
    :class:`Rejected` rows.

    A directory is read as raw article pages; a file by its extension.

    Raises:
        InputError: an input is unusable as a whole (UTF-16, unknown type, a CSV without the text
            column).
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


def _count_rows(inputs: list[Path], fmt: str, shard: tuple[int, int] | None) -> int | None:
    """The number of input rows when it is cheap to know (for the progress bar's total and ETA),
    else None.

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
        # A total is a nicety: a file the reader will reject has none.
        except Exception:  # noqa: BLE001
            return None
    if shard is not None:
        rank, world = shard
        total = len(range(rank, total, world))
    return total


@dataclass
class _Job:
    """One :func:`predict_files` run: the classifier, what it reads and writes, and how it
    classifies."""

    classifier: Any
    inputs: list[Path]
    output: Path
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
    target_descriptions: dict[str, str] | None = None  # --target ID=DESCRIPTION: new targets

    @property
    def finals(self) -> dict[str, Path]:
        """The run's files, ``"output"`` and ``"errors"``, under their final names."""
        return {"output": self.output, "errors": errors_path(self.output)}

    @property
    def partials(self) -> dict[str, Path]:
        """Where the rows of ``"output"`` and ``"errors"`` go until the run is complete."""
        return {name: partial_path(path) for name, path in self.finals.items()}

    @property
    def progress_path(self) -> Path:
        """The progress record: how many input rows are done, how many bytes each file holds."""
        return self.output.with_name(self.output.name + ".progress.json")

    def key(self) -> str:
        """What identifies the run: a resumed run must have the same (model, files, options)."""
        options = {
            "targets": self.targets,
            "threshold": self.threshold,
            "precision": self.classifier.precision,
            "tasks": self.tasks,
            "all_targets": self.all_targets,
            **({"explain": self.explain} if self.explain else {}),
            **(
                {"target_descriptions": self.target_descriptions}
                if self.target_descriptions
                else {}
            ),
        }
        return job_key(self.classifier.model_dir, self.inputs, self.output, options)


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
            and tag each row with its input position ``_index``
            (see :func:`naba.infer.predict_sharded.predict_sharded`).
        explain: Evidence per chosen label (:meth:`Classifier.predict`'s ``explain``).
        target_descriptions: ``{target: description}`` for targets this run names by an id
            (``--target ID=DESCRIPTION``); as in :meth:`Classifier.predict`.

    Raises:
        InputError: unknown output type, an output that exists (without
            ``overwrite`` or ``resume``), ``resume`` with Parquet output or with
            different inputs/options than the interrupted run, an unusable input.
    """
    _check_request(inputs, output, resume=resume)
    selected = classifier.selected_tasks(tasks)
    if targets and all_targets:
        raise InputError(
            "--target and --all-targets: pass one of them (--all-targets scores the targets the "
            "model was trained on)"
        )
    job = _Job(
        classifier,
        inputs,
        output,
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
    summary = PredictSummary(output=output, errors_path=job.finals["errors"])
    state = _starting_state(job, resume=resume, overwrite=overwrite)
    summary.resumed_from = state["rows"]
    if not state.get("done"):
        _run_or_clean_up(job, state, show_progress_bar)
    publish(state, job.progress_path, job.partials, job.finals)
    if tasks is not None and "stance" in selected and state.get("no_target"):
        _warn_no_target(state["no_target"])
    summary.rows, summary.written, summary.errors = state["rows"], state["written"], state["errors"]
    return summary


def _warn_no_target(count: int) -> None:
    logger.warning(
        "warning: stance: %d articles had no target and got no stance; pass --target T, "
        "--all-targets, or a target column",
        count,
    )


def _check_request(inputs: list[Path], output: Path, *, resume: bool) -> None:
    """Refuse an unknown output type, a missing input, or ``resume`` on standard input.

    Raises:
        InputError: what is wrong, and what to do.
    """
    if not output.name.endswith((".jsonl", ".csv", ".parquet")):
        raise InputError(f"{output}: unknown output type; expected .jsonl, .csv or .parquet")
    for path in inputs:
        if not path.exists() and not is_stdin(path):
            raise InputError(f"{path}: no such file or directory")
    if resume and any(is_stdin(path) for path in inputs):
        raise InputError(
            "--resume: standard input cannot be read again; save it to a file to make the run "
            "resumable"
        )


def _starting_state(
    job: _Job,
    *,
    resume: bool,
    overwrite: bool,
) -> dict[str, Any]:
    """Where the run starts: an interrupted run's saved state (``resume``), else nothing done.

    Raises:
        InputError: an output that exists without ``overwrite`` or ``resume``; ``resume``
            of a Parquet output, or of a run with other inputs or options.
    """
    key, output, progress_path = job.key(), job.output, job.progress_path
    state = {"key": key, "rows": 0, "output_bytes": 0, "errors_bytes": 0, "written": 0, "errors": 0}
    if resume and progress_path.exists():
        if not output.name.endswith(RESUMABLE):
            raise InputError(f"{output}: --resume needs .jsonl or .csv output")
        return restore_progress(progress_path, key, job.partials)
    if output.exists() and not overwrite and not resume:
        raise InputError(
            f"{output}: already exists; pass --overwrite to replace it or --resume to complete it"
        )
    progress_path.unlink(missing_ok=True)  # a stale record must not describe this run's fresh files
    return state


def _run_or_clean_up(job: _Job, state: dict[str, Any], show_progress_bar: bool | None) -> None:
    """:func:`_run` the job under a progress bar; a run that fails before a row is done leaves
    no files behind."""
    from tqdm.auto import tqdm

    fresh = state["rows"] == 0
    try:
        _run(
            job,
            state,
            tqdm(
                desc="predict",
                unit="article",
                initial=state["rows"],
                disable=not show_progress_bar,
                total=_count_rows(job.inputs, job.fmt, job.shard) if show_progress_bar else None,
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]",
            ),
        )
    except BaseException:
        if fresh and state["rows"] == 0:  # failed before a row was done: leave nothing behind
            for path in (*job.partials.values(), job.progress_path):
                path.unlink(missing_ok=True)
        raise


def _chunks(job: _Job, done: int) -> Iterator[list[tuple[int, dict[str, Any] | Rejected]]]:
    """The job's input rows not yet done (``done`` of them are), ``chunk_size`` at a time, with
    their input positions."""
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
    """Classify the rows not yet done into the partial files, recording progress after every
    chunk."""
    classifier, shard = job.classifier, job.shard
    append = state["rows"] > 0
    columns, schema = output_layout(
        job.output, classifier, job.tasks, job.targets, job.all_targets, job.explain
    )
    writer = RowWriter(
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

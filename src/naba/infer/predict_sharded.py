"""``naba predict`` over several processes (``torchrun`` / ``accelerate launch``): each classifies
its share of the inputs into a part file, and process 0 merges the parts in input order."""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from naba.atomic import atomic_file
from naba.data.writers import dumps
from naba.errors import InputError
from naba.infer.predict import PredictSummary, predict_files
from naba.infer.predict_output import RowWriter, errors_path, output_layout


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
    if output.exists() and not kwargs.get("overwrite") and not kwargs.get("resume"):
        raise InputError(
            f"{output}: already exists; pass --overwrite to replace it or --resume to complete it"
        )
    part = _part_path(output, rank, world)
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
    parts = [_part_path(output, r, world) for r in range(world)]
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
    summary.errors_path = errors_path(output)
    error_parts = [p.with_name(p.name[: -len(".jsonl")] + ".errors.jsonl") for p in parts]
    _merge_predictions(classifier, parts, output, kwargs)
    if summary.errors:
        with atomic_file(summary.errors_path) as handle:
            for row in _merged(error_parts):
                handle.write(dumps(row) + "\n")
    for path in [*parts, *markers, *error_parts]:
        path.unlink(missing_ok=True)
    return summary


def _part_path(output: Path, rank: int, world: int) -> Path:
    """Process ``rank``'s part file: JSONL, each row tagged with its input position."""
    return output.with_name(f"{output.name}.part-{rank}-of-{world}.jsonl")


def _merge_predictions(
    classifier: Any, parts: list[Path], output: Path, options: dict[str, Any]
) -> None:
    """Write the rows of the ``parts`` into ``output`` in input order, in the output's format."""
    columns, schema = output_layout(
        output,
        classifier,
        classifier.selected_tasks(options.get("tasks")),
        options.get("targets"),
        options.get("all_targets", False),
        options.get("explain", 0),
    )
    # The temporary name keeps the extension: the writer picks the format from it.
    writer = RowWriter(
        output.with_name(f".merging-{output.name}"), append=False, columns=columns, schema=schema
    )
    try:
        batch: list[dict[str, Any]] = []
        for row in _merged(parts):
            batch.append(row)
            if len(batch) >= 1024:
                writer.write(batch)
                batch = []
        writer.write(batch)
    finally:
        writer.close()
    os.replace(writer.path, output)


def _merged(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The rows of the part files ``paths`` in input order, their input positions dropped."""
    for row in heapq.merge(*(_shard_rows(p) for p in paths), key=lambda r: r["_index"]):
        row.pop("_index")
        yield row


def _shard_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.exists():
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

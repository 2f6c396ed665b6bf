"""``naba data import``: raw pages, TREC XML or tabular files to canonical JSONL.

Every input row ends up in exactly one place: the output file, the
``.errors.jsonl`` side file (malformed rows, with file, line and reason) or,
with a taxonomy, the ``.unmatched.jsonl`` side file (articles no rule
matched, kept for review rather than dropped).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from naba.atomic import atomic_file
from naba.config import ColumnsConfig
from naba.data.pages import import_pages
from naba.data.records import Task, iter_records
from naba.data.taxonomy import Taxonomy
from naba.data.trec import import_trec
from naba.data.writers import dumps
from naba.errors import InputError, Problem

ImportFormat = Literal["auto", "page", "trec", "jsonl", "csv", "parquet", "hf", "label-studio"]


@dataclass
class ImportSummary:
    written: int = 0
    errors: int = 0
    unmatched: int = 0
    topics: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    unmatched_ids: list[str] = field(default_factory=list)
    output: Path | None = None
    errors_path: Path | None = None
    unmatched_path: Path | None = None


def iter_import(
    sources: list[Path],
    fmt: ImportFormat,
    task: Task = "topic",
    columns: ColumnsConfig | None = None,
) -> Iterator[dict[str, Any] | Problem]:
    """Records (or Problems) from every source, in order (``auto``: each source's format from its
    name, see :func:`source_format`)."""
    if fmt == "auto":
        for source in sources:
            yield from iter_import([source], source_format(source), task, columns)
        return
    if fmt == "page":
        yield from import_pages(sources)
    elif fmt == "trec":
        yield from import_trec(sources)
    elif fmt == "label-studio":
        from naba.data.labelstudio import read_export

        yield from read_export(sources, task, columns)
    else:
        for source in sources:
            if source.is_dir() and fmt != "hf":
                raise InputError(f"{source}: is a directory; --format {fmt} expects files")
            for _, item in iter_records(source, task, columns, fmt, require_label=False):
                yield item


def source_format(source: Path) -> ImportFormat:
    """What ``--format auto`` reads a source as: ``.tar.gz``/``.tgz`` TREC archives; a ``datasets``
    directory; a folder or ``.txt`` file of raw article pages; a folder without page files TREC XML;
    otherwise the tabular format the extension names (``.jsonl[.gz]``, ``.csv``, ``.tsv``,
    ``.parquet``).

    Raises:
        InputError: a file whose extension names no format naba imports.
    """
    from naba.data.readers import detect_format

    name = source.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "trec"
    if source.is_dir():
        if any(
            (source / marker).exists()
            for marker in ("dataset_info.json", "dataset_dict.json", "state.json")
        ):
            return "hf"
        return "page" if any(source.rglob("*.txt")) else "trec"
    if name.endswith(".txt"):
        return "page"
    found = detect_format(source)
    return "jsonl" if found == "txt" else found  # type: ignore[return-value]


def side_path(output: Path, kind: str) -> Path:
    """``out.jsonl`` -> ``out.errors.jsonl``."""
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(f"{stem}.{kind}.jsonl")


def run_import(
    sources: list[Path],
    output: Path,
    fmt: ImportFormat,
    task: Task = "topic",
    taxonomy: Taxonomy | None = None,
    columns: ColumnsConfig | None = None,
    progress: Any = None,
) -> ImportSummary:
    """Import sources into ``output`` (atomically), with side files for errors and unmatched
    articles.

    With a taxonomy, records that have no ``topics`` get them from the
    taxonomy, with ``labels_from`` evidence; records it cannot label go to
    the unmatched side file. ``progress``: a bar updated once per record or error.
    """
    summary = ImportSummary(
        output=output,
        errors_path=side_path(output, "errors"),
        unmatched_path=side_path(output, "unmatched"),
    )
    with (
        atomic_file(output) as out,
        atomic_file(summary.errors_path) as errors,
        atomic_file(summary.unmatched_path) as unmatched,
    ):
        for item in iter_import(sources, fmt, task, columns):
            if progress is not None:
                progress.update(1)
            if isinstance(item, Problem):
                summary.errors += 1
                errors.write(dumps(item.to_dict()) + "\n")
                continue
            if taxonomy is not None and task == "topic" and not item.get("topics"):
                topics, evidence = taxonomy.assign(item)
                if not topics:
                    summary.unmatched += 1
                    summary.unmatched_ids.append(item["id"])
                    unmatched.write(dumps(item) + "\n")
                    continue
                item["topics"] = topics
                item["labels_from"] = evidence
                summary.rules.update(e["rule"] for e in evidence)
            summary.topics.update(item.get("topics", []))
            out.write(dumps(item) + "\n")
            summary.written += 1
    for path, count in (
        (summary.errors_path, summary.errors),
        (summary.unmatched_path, summary.unmatched),
    ):
        if count == 0:
            path.unlink(missing_ok=True)
    return summary

"""``naba data``: import, validate, split and describe datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import (
    Grouping,
    IdColumn,
    ImportFormatName,
    LabelColumn,
    LabelSep,
    ProgressOption,
    TargetColumn,
    TaskName,
    TextColumn,
    TitleColumn,
    columns,
    data_app,
    err,
    on_terminal,
    user_errors,
)


@data_app.command("import")
def data_import(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Page files or folders, TREC folders or .tar.gz, or tabular files."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Canonical JSONL to write.")],
    fmt: Annotated[
        ImportFormatName,
        typer.Option(
            "--format",
            "-f",
            help="Input format (auto: from each source's name: .jsonl/.csv/.tsv/.parquet, .tar.gz "
            "TREC, a folder or .txt of raw pages; label-studio: a Label Studio JSON export).",
        ),
    ] = ImportFormatName.auto,
    task: Annotated[TaskName, typer.Option(help="Record schema to produce.")] = TaskName.topic,
    taxonomy: Annotated[
        Path | None,
        typer.Option(
            help="Taxonomy YAML: assign topics from tags/title "
            "('example': the news taxonomy that ships with naba)."
        ),
    ] = None,
    id_column: IdColumn = None,
    text_column: TextColumn = None,
    title_column: TitleColumn = None,
    label_column: LabelColumn = None,
    target_column: TargetColumn = None,
    label_separator: LabelSep = None,
    progress: ProgressOption = True,
) -> None:
    """Import raw pages, TREC XML or tabular files into canonical JSONL."""
    with user_errors():
        from naba.data.importer import run_import
        from naba.data.taxonomy import Taxonomy
        from naba.progress import count_rows, progress_bar

        tax = Taxonomy.load(taxonomy) if taxonomy else None
        cols = columns(
            id_column, text_column, title_column, label_column, target_column, label_separator
        )
        show = on_terminal(progress)
        with progress_bar(show, count_rows(sources) if show else None, "import", "record") as bar:
            summary = run_import(sources, output, fmt.value, task.value, tax, cols, progress=bar)
    typer.echo(f"wrote {summary.written} records to {output}")
    if summary.topics:
        typer.echo("topics: " + ", ".join(f"{t} {n}" for t, n in summary.topics.most_common()))
    if summary.rules:
        typer.echo("assigned by: " + ", ".join(f"{r} {n}" for r, n in summary.rules.most_common()))
    if summary.unmatched:
        shown = ", ".join(summary.unmatched_ids[:10]) + (" ..." if summary.unmatched > 10 else "")
        err(
            f"{summary.unmatched} articles matched no taxonomy rule (listed in "
            f"{summary.unmatched_path}): {shown}"
        )
    if summary.errors:
        err(f"{summary.errors} inputs could not be imported (reasons in {summary.errors_path})")
        with open(summary.errors_path, encoding="utf-8") as handle:
            for line, _ in zip(handle, range(10)):
                item = json.loads(line)
                where = (
                    f"{item['file']}:{item['line']}" if item["line"] is not None else item["file"]
                )
                err(f"  {where}: {item['field']}: {item['error']}")
    if summary.errors or summary.unmatched:
        raise typer.Exit(code=1)


@data_app.command("validate")
def data_validate(
    path: Annotated[
        Path, typer.Argument(help="File to check (JSONL, CSV, Parquet or datasets directory).")
    ],
    task: Annotated[
        TaskName, typer.Option(help="Record schema to check against.")
    ] = TaskName.topic,
    labels: Annotated[str | None, typer.Option(help="Allowed labels, comma-separated.")] = None,
    max_problems: Annotated[
        int, typer.Option(help="Stop printing after this many problems (all are counted).")
    ] = 1000,
    id_column: IdColumn = None,
    text_column: TextColumn = None,
    title_column: TitleColumn = None,
    label_column: LabelColumn = None,
    target_column: TargetColumn = None,
    label_separator: LabelSep = None,
    progress: ProgressOption = True,
) -> None:
    """Report every problem as FILE:LINE: field: what was expected, what was found.
    Exit 1 if any."""
    from naba.data.validate import ValidationSummary, validate_file
    from naba.progress import count_rows, progress_bar

    summary = ValidationSummary()
    with user_errors():
        cols = columns(
            id_column, text_column, title_column, label_column, target_column, label_separator
        )
        allowed = [label.strip() for label in labels.split(",")] if labels else None
        show = on_terminal(progress)
        with progress_bar(show, count_rows([path]) if show else None, "validate") as bar:
            for problem in validate_file(
                path, task.value, cols, allowed, summary=summary, progress=bar
            ):
                if summary.problems <= max_problems:
                    (bar.write if show else typer.echo)(str(problem))
    message = f"{path}: {summary.rows} rows, {summary.valid} valid, {summary.problems} problems"
    if summary.problems:
        err(message)
        raise typer.Exit(code=1)
    typer.echo(message)


@data_app.command("split")
def data_split(
    path: Annotated[Path, typer.Argument(help="Canonical JSONL (or any readable file) to split.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Directory for train/dev/test.jsonl and split_report.json."
        ),
    ],
    task: Annotated[TaskName, typer.Option(help="topic or stance.")] = TaskName.topic,
    dev: Annotated[float, typer.Option(help="Dev fraction.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test fraction.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    grouping: Annotated[
        Grouping,
        typer.Option(help="Stance: keep claims (auto), every target, or none whole in one split."),
    ] = Grouping.auto,
    id_column: IdColumn = None,
    text_column: TextColumn = None,
    title_column: TitleColumn = None,
    label_column: LabelColumn = None,
    target_column: TargetColumn = None,
    label_separator: LabelSep = None,
) -> None:
    """Deduplicate and split into train/dev/test (stratified, iterative or grouped) with a leakage
    report."""
    with user_errors():
        from naba.atomic import atomic_file
        from naba.data.records import load_records
        from naba.data.split import split_records
        from naba.data.writers import write_jsonl

        cols = columns(
            id_column, text_column, title_column, label_column, target_column, label_separator
        )
        records = load_records(path, task.value, cols)
        try:
            result = split_records(
                records, task.value, dev=dev, test=test, seed=seed, grouping=grouping.value
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        output.mkdir(parents=True, exist_ok=True)
        for name, rows in result.splits.items():
            write_jsonl(output / f"{name}.jsonl", rows)
        result.report["input"] = str(path)
        with atomic_file(output / "split_report.json") as handle:
            json.dump(result.report, handle, ensure_ascii=False, indent=2)
    report = result.report
    typer.echo(
        f"{report['mode']}; {report['input_rows']} rows in, {report['exact_duplicates_removed']} "
        f"exact and {report['normalised_duplicates_removed']} normalised duplicates removed"
    )
    for name, count in report["rows"].items():
        typer.echo(f"  {name:5} {count:6}  {report['labels'][name]}")
    typer.echo("leakage: " + json.dumps(report["leakage"], ensure_ascii=False))
    if report["label_conflicts"]:
        err(
            f"{len(report['label_conflicts'])} duplicates had different labels (kept "
            "the first; see split_report.json)"
        )
    typer.echo(f"wrote {output}/train.jsonl, dev.jsonl, test.jsonl, split_report.json")


@data_app.command("stats")
def data_stats(
    path: Annotated[Path, typer.Argument(help="File to describe.")],
    task: Annotated[TaskName, typer.Option(help="topic or stance.")] = TaskName.topic,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer directory for lengths in tokens.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    id_column: IdColumn = None,
    text_column: TextColumn = None,
    title_column: TitleColumn = None,
    label_column: LabelColumn = None,
    target_column: TargetColumn = None,
    label_separator: LabelSep = None,
) -> None:
    """Label distribution, lengths in words (and tokens), duplicates."""
    with user_errors():
        from naba.data.stats import file_stats

        cols = columns(
            id_column, text_column, title_column, label_column, target_column, label_separator
        )
        stats = file_stats(path, task.value, cols, tokenizer)
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"{path}: {stats['rows']} rows ({stats['invalid_rows']} invalid), "
        f"{stats['normalised_duplicate_texts']} duplicate texts"
    )
    width = max((len(label) for label in stats["labels"]), default=5)
    total = sum(stats["labels"].values()) or 1
    for label, count in stats["labels"].items():
        typer.echo(f"  {label:<{width}} {count:6} {100 * count / total:5.1f}%")
    typer.echo(f"labels per record: {stats['labels_per_record']}")
    typer.echo(f"words:  {stats['words']}")
    if "tokens" in stats:
        typer.echo(f"tokens: {stats['tokens']}")
    if "targets" in stats:
        typer.echo(f"targets: {stats['targets']}")
    if stats.get("identifier_targets"):
        err(
            f"note: {len(stats['identifier_targets'])} targets look like identifiers in Arabic "
            f"data ({', '.join(stats['identifier_targets'][:5])}"
            f"{', ...' if len(stats['identifier_targets']) > 5 else ''}): an Arabic model reads "
            "them as fragments; describe them in tasks.stance.targets (docs/guides/targets.md)"
        )

"""``naba select``: the unlabelled articles worth labelling next, for JSONL, Label Studio or
Argilla."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import (
    ALLOW_PICKLE_HELP,
    PRECISION_HELP,
    DeviceOption,
    IdColumn,
    InputFormatName,
    PrecisionName,
    ProgressOption,
    TargetColumn,
    TasksOption,
    TextColumn,
    TitleColumn,
    app,
    columns,
    err,
    on_terminal,
    quiet_libraries,
    user_errors,
)


class OutputFormatName(str, Enum):
    jsonl = "jsonl"
    label_studio = "label-studio"
    argilla = "argilla"


class StrategyName(str, Enum):
    diverse = "diverse"
    uncertainty = "uncertainty"
    random = "random"


FormatOption = Annotated[
    OutputFormatName,
    typer.Option(
        "--format",
        "-f",
        help="jsonl; label-studio (tasks to import, and OUT.label_config.xml beside them); "
        "argilla (records, suggestions included).",
    ),
]
StrategyOption = Annotated[
    StrategyName,
    typer.Option(
        help="diverse: the most uncertain of each cluster of the most uncertain, no two "
        "near-duplicates; uncertainty: the most uncertain; random."
    ),
]
SimilarityOption = Annotated[
    float | None,
    typer.Option(
        min=0.0,
        max=1.0,
        help="TF-IDF cosine from which two articles count as near-duplicates (default 0.7).",
    ),
]


@app.command("select")
def select_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    pool: Annotated[
        list[Path],
        typer.Argument(
            help="Unlabelled articles, read as `naba predict` reads them: JSONL[.gz], CSV, "
            "Parquet, .txt, a folder of raw pages, or - for standard input."
        ),
    ],
    n: Annotated[int, typer.Option("-n", "--number", min=1, help="Articles to choose.")],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Where to write them (.jsonl for jsonl, .json for label-studio and argilla).",
        ),
    ],
    fmt: FormatOption = OutputFormatName.jsonl,
    strategy: StrategyOption = StrategyName.diverse,
    seed: Annotated[int, typer.Option(help="Seed of every random choice (ties, k-means).")] = 0,
    max_similarity: SimilarityOption = None,
    tasks: TasksOption = None,
    input_format: Annotated[
        InputFormatName | None,
        typer.Option("--input-format", help="Pool format (auto: from each file's extension)."),
    ] = None,
    precision: Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)] = PrecisionName.fp32,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Forward-pass size in windows.")] = 32,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    progress: ProgressOption = True,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
    id_column: IdColumn = None,
    text_column: TextColumn = None,
    title_column: TitleColumn = None,
    target_column: TargetColumn = None,
) -> None:
    """Choose the N pool articles most worth labelling next: uncertain, and no two alike."""
    with user_errors():
        quiet_libraries()
        from naba.infer.classifier import Classifier
        from naba.infer.select import DUPLICATE, ClassifierScorer
        from naba.infer.select_files import select_files
        from naba.progress import count_rows, progress_bar

        clf = Classifier.load(model, precision.value, allow_pickle=allow_pickle, device=device)
        scorer = ClassifierScorer(clf, tasks, batch_size=batch_size)
        show = on_terminal(progress)
        with progress_bar(show, count_rows(pool) if show else None, "score", "article") as bar:
            summary = select_files(
                scorer,
                pool,
                output,
                n,
                fmt=fmt.value,
                strategy=strategy.value,
                seed=seed,
                similarity=DUPLICATE if max_similarity is None else max_similarity,
                columns=columns(id_column, text_column, title_column, None, target_column, None),
                input_format=input_format.value if input_format else "auto",
                overwrite=overwrite,
                progress=bar,
            )
    typer.echo(
        f"chose {summary.chosen} of {summary.scored} articles ({strategy.value}) into {output}"
    )
    if summary.config_path is not None:
        typer.echo(f"labeling configuration for the Label Studio project: {summary.config_path}")
    if summary.chosen < n:
        err(f"the pool holds only {summary.chosen} distinct articles to choose; asked for {n}")
    if summary.errors:
        err(f"{summary.errors} rows could not be read; reasons in {summary.errors_path}")

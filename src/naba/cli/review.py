"""``naba review``: the labelled rows most likely mislabelled, with their evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import DeviceOption, TaskName, app, user_errors


@app.command("review")
def review_command(
    data: Annotated[Path, typer.Argument(help="Labelled canonical JSONL (or CSV/Parquet).")],
    task: Annotated[TaskName, typer.Option(help="topic or stance.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The suspect rows, most suspect first (.jsonl).")
    ],
    model: Annotated[
        Path | None,
        typer.Option(help="A naba model directory whose scores are averaged in."),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write review.html (suspects with their evidence) here.")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Folds of the sparse part.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the fold split.")] = 13,
    explain: Annotated[
        int, typer.Option(min=0, max=50, help="Evidence words or phrases per label.")
    ] = 5,
    all_rows: Annotated[
        bool, typer.Option("--all", help="Write every row ranked, not only the flagged ones.")
    ] = False,
    device: DeviceOption = "auto",
) -> None:
    """Rank the rows whose labels are most likely wrong (confident learning, out-of-fold scores)."""
    with user_errors():
        from naba.evaluation.review import ReviewOptions, review_file

        summary = review_file(
            data,
            task.value,
            output,
            model_dir=model,
            report_dir=report,
            options=ReviewOptions(
                folds=folds, seed=seed, explain=explain, all_rows=all_rows, device=device
            ),
        )
    typer.echo(
        f"{summary['rows']} rows: {summary['flagged']} flagged as likely mislabelled; "
        f"{summary['written']} rows in {output}"
    )
    if "report" in summary:
        typer.echo(f"report: {summary['report']}")

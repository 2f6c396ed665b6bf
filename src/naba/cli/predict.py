"""``naba predict`` and ``naba evaluate``: commands that read a model and score articles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from naba.cli._common import (
    ALLOW_PICKLE_HELP,
    PRECISION_HELP,
    AllTargets,
    DeviceOption,
    IdColumn,
    InputFormatName,
    PrecisionName,
    RuntimeName,
    RuntimeOption,
    TargetColumn,
    TaskName,
    TasksOption,
    TextColumn,
    ThreadsOption,
    TitleColumn,
    app,
    columns,
    err,
    is_main_process,
    on_terminal,
    predict_left,
    quiet_libraries,
    task_precisions,
    torch_threads,
    user_errors,
)

ModelArgument = Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")]
PredictInputs = Annotated[
    list[Path],
    typer.Argument(
        help="JSONL[.gz], CSV, Parquet, .txt (an article a line), a folder of raw "
        "pages, or - for standard input (JSONL unless --format says otherwise)."
    ),
]
PredictOutput = Annotated[
    Path, typer.Option("--output", "-o", help="Predictions: .jsonl, .csv or .parquet.")
]
PredictTargets = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        help="Stance target to score every article against "
        "(repeatable): a target the model describes (its description is read), free "
        "text, or ID=DESCRIPTION for a new id. Without it, stance is scored only toward "
        "each row's own target column, or with --all-targets.",
    ),
]
InputFormat = Annotated[
    InputFormatName | None,
    typer.Option(
        "--format",
        "-f",
        help="Input format (auto: from each file's extension; standard input: jsonl).",
    ),
]
PrecisionOption = Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)]
PredictBatchSize = Annotated[
    int,
    typer.Option(
        min=1,
        help="Forward-pass size in full windows (batches hold this many x window-length tokens).",
    ),
]
ChunkSize = Annotated[
    int, typer.Option(min=1, help="Articles read, classified and flushed at a time.")
]
MaxLength = Annotated[int | None, typer.Option(min=16, help="Cap the window length (tokens).")]
PredictThreads = Annotated[
    int | None,
    typer.Option(min=1, help="torch threads (default: one per core; fewer on a busy machine)."),
]
Threshold = Annotated[
    float | None, typer.Option(min=0.0, max=1.0, help="Override every topic threshold.")
]
Resume = Annotated[bool, typer.Option(help="Complete the output of an interrupted run.")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output file.")]
ShowProgress = Annotated[bool, typer.Option(help="Show a progress bar.")]
AllowPickle = Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)]
Explain = Annotated[
    int,
    typer.Option(
        min=0,
        max=50,
        help="Give each chosen topic label and stance entry its K words or phrases of the "
        "article that weigh most for it in the sparse part (spans of the original text).",
    ),
]


@app.command("predict")
def predict_command(
    model: ModelArgument,
    inputs: PredictInputs,
    output: PredictOutput,
    target: PredictTargets = None,
    all_targets: AllTargets = False,
    tasks: TasksOption = None,
    fmt: InputFormat = None,
    precision: PrecisionOption = PrecisionName.fp32,
    device: DeviceOption = "auto",
    runtime: RuntimeOption = RuntimeName.auto,
    batch_size: PredictBatchSize = 32,
    chunk_size: ChunkSize = 256,
    max_length: MaxLength = None,
    threads: PredictThreads = None,
    threshold: Threshold = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    progress: ShowProgress = True,
    allow_pickle: AllowPickle = False,
    explain: Explain = 0,
    id_column: IdColumn = None,
    text_column: TextColumn = None,
    title_column: TitleColumn = None,
    target_column: TargetColumn = None,
) -> None:
    """Classify articles from files into JSONL, CSV or Parquet, in input order."""
    with user_errors(predict_left(output)):
        quiet_libraries()
        from naba.data.targets import parse_target_options
        from naba.infer.classifier import Classifier

        targets, descriptions = parse_target_options(target or [])
        cols = columns(id_column, text_column, title_column, None, target_column, None)
        clf = Classifier.load(
            model,
            precision.value,
            max_length=max_length,
            allow_pickle=allow_pickle,
            threads=threads,
            device=device,
            runtime=runtime.value,
        )
        if precision.value in ("int8", "auto") and is_main_process():
            err(f"precision {precision.value}: " + task_precisions(clf))
        summary = _predict(
            clf,
            inputs,
            output,
            targets=targets or None,
            target_descriptions=descriptions or None,
            tasks=tasks,
            all_targets=all_targets,
            fmt=fmt.value if fmt else "auto",
            batch_size=batch_size,
            chunk_size=chunk_size,
            threshold=threshold,
            resume=resume,
            overwrite=overwrite,
            columns=cols,
            show_progress_bar=on_terminal(progress) and is_main_process(),
            explain=explain,
        )
        if summary is None:
            return
    _report_predictions(summary, output)


def _predict(clf: Any, inputs: list[Path], output: Path, **options: Any) -> Any:
    """Run :func:`naba.infer.predict.predict_files`, or this process's share of a multi-process
    run; the run's summary, None in a process other than the first of several."""
    from naba.infer.predict import predict_files

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        # torchrun / accelerate launch: each process classifies its shard; rank 0 merges in
        # input order.
        from naba.infer.predict_sharded import predict_sharded

        return predict_sharded(
            clf, inputs, output, int(os.environ.get("RANK", "0")), world, **options
        )
    return predict_files(clf, inputs, output, **options)


def _report_predictions(summary: Any, output: Path) -> None:
    """Say what the run wrote; exit with 1 where rows could not be classified."""
    resumed = f" (resumed after {summary.resumed_from})" if summary.resumed_from else ""
    typer.echo(
        f"{summary.rows} rows{resumed}: {summary.written} predictions in {output}, "
        f"{summary.errors} errors"
    )
    if summary.errors:
        err(f"{summary.errors} rows could not be classified; reasons in {summary.errors_path}")
        raise typer.Exit(code=1)


@app.command("evaluate")
def evaluate_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    data: Annotated[Path, typer.Argument(help="Labelled canonical JSONL (a test split).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report directory.")],
    task: Annotated[
        TaskName | None, typer.Option(help="topic or stance (default: from the model/data).")
    ] = None,
    baseline_train: Annotated[
        Path | None, typer.Option(help="Train a TF-IDF baseline on this split and compare.")
    ] = None,
    compare: Annotated[
        Path | None, typer.Option(help="Another report directory: show deltas.")
    ] = None,
    precision: Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)] = PrecisionName.fp32,
    device: DeviceOption = "auto",
    runtime: RuntimeOption = RuntimeName.auto,
    batch_size: Annotated[int, typer.Option(min=1, help="Articles per forward pass.")] = 16,
    unrelated: Annotated[
        Path | None,
        typer.Option(
            help="Stance: articles about none of the data's targets (a text "
            "column), each paired with one of them, for the relevance "
            "section (default: pairs generated from the data itself)."
        ),
    ] = None,
    threads: ThreadsOption = None,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
    progress: Annotated[
        bool,
        typer.Option(help="Show a progress bar per task (articles, total, ETA) on a terminal."),
    ] = True,
) -> None:
    """Score a model on labelled data: metrics.json, report.md and a self-contained report.html."""
    with user_errors():
        quiet_libraries()
        torch_threads(threads)
        from naba.evaluation.report import evaluate_model

        metrics = evaluate_model(
            model,
            data,
            output,
            task=task.value if task else None,
            baseline_train=baseline_train,
            compare=compare,
            precision=precision.value,
            batch_size=batch_size,
            allow_pickle=allow_pickle,
            unrelated=unrelated,
            device=device,
            show_progress_bar=on_terminal(progress),
            runtime=runtime.value,
        )
    line = (
        f"{metrics['task']}: macro-F1 {metrics['macro_f1']:.4f}  accuracy "
        f"{metrics['accuracy']:.4f}  (n={metrics['n']})"
    )
    if "baseline" in metrics:
        baseline = metrics["baseline"]
        line += (
            f"; TF-IDF baseline macro-F1 {baseline['macro_f1']:.4f}  accuracy "
            f"{baseline['accuracy']:.4f}"
        )
    typer.echo(line)
    if "parts" in metrics:
        parts = metrics["parts"]
        typer.echo(
            f"{metrics['task']}: macro-F1 of the parts: "
            f"encoder {parts['encoder']['macro_f1']:.4f}, "
            f"sparse {parts['sparse']['macro_f1']:.4f}, "
            f"hybrid {parts['hybrid']['macro_f1']:.4f} ({metrics['hybrid']['choice']})"
        )
    if "relevance" in metrics:
        rel = metrics["relevance"]
        typer.echo(
            f"relevance: {100 * rel['neutral_share']:.1f}% of {rel['pairs']} unrelated pairs "
            f"labelled {rel['neutral_label']!r}"
        )
    typer.echo(f"report: {output / 'report.html'}")

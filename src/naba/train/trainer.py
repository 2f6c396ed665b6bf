"""Fine-tuning on ``transformers.Trainer``: one code path for one process and many
(``accelerate launch`` / ``torchrun``).

Per task (topic, stance) :class:`~naba.train.engine.ArticleTrainer` trains on
article batches: every window of a batch's articles goes through the encoder,
window logits are pooled per article (the same pooling inference uses) and
the loss is taken on the pooled logits. Dev is scored every ``eval_every``
steps (or each epoch) with naba's own decision rule; ``Trainer`` keeps the
best checkpoint by dev macro-F1 and stops after ``early_stopping_patience``
evaluations without improvement.

Resumable checkpoints (``Trainer``'s ``checkpoint-N``: weights, optimizer,
scheduler, RNG states, trainer state) are written at every evaluation and
every ``checkpoint_every`` steps. The batch order of an epoch is a pure
function of (seed, epoch), so a resumed run replays exactly the batches an
uninterrupted run would have seen. After training, the prior correction,
the hybrid blend and the thresholds are chosen on dev and test is scored
(:mod:`naba.train.finish`).

Work in progress lives in ``OUT.partial/``; the finished model directory is
assembled there and renamed to ``OUT`` in one step (:mod:`naba.train.assemble`).

A task's inputs (windows, targets, loss, base model) come from
:mod:`naba.train.task_inputs`, its ``TrainingArguments`` from
:mod:`naba.train.arguments`, its scores from :mod:`naba.train.scoring`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import NabaConfig
from naba.data.records import Task
from naba.encoder.auto import AUTO, resolve_base
from naba.errors import ModelDirError
from naba.hub import load_kwargs
from naba.train.arguments import parameter_groups, training_arguments
from naba.train.assemble import assemble
from naba.train.data import TaskData, add_unrelated_pairs, load_task_data
from naba.train.engine import RunLog
from naba.train.finish import finish_task
from naba.train.memory import plan_checkpointing
from naba.train.scoring import evaluate
from naba.train.task_inputs import (
    TaskRun,
    load_base_model,
    targets_matrix,
    task_docs,
    task_loss,
)

logger = logging.getLogger(__name__)

TASKS: tuple[Task, ...] = ("topic", "stance")


def train(
    config: NabaConfig,
    output: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    show_progress_bar: bool | None = None,
    search_trials: int = 0,
) -> Path:
    """Fine-tune every configured task and write one model directory.

    Args:
        config: The validated training config.
        output: The model directory to write (default: ``config.output_dir``).
        resume: Continue from the checkpoints in ``OUTPUT.partial/``.
        overwrite: Replace an existing model directory.
        show_progress_bar: Progress bars (default: on, main process only).
        search_trials: First run this many Optuna trials on dev (:mod:`naba.train.search`) and
            train with the best trial's settings; the search is recorded in the manifest
            (``search``).

    Returns:
        The model directory: ``naba.json``, ``README.md``, ``config.yaml``,
        ``metrics.jsonl``, ``train.log`` and one HF directory per task.

    Raises:
        FileExistsError: the output exists and neither ``overwrite`` nor ``resume`` is set.
        InputError, ModelDirError, TrainingError: bad data, base model or state.
    """
    from naba.train.run import RunDir, check_output

    out = Path(output or config.output_dir)
    check_output(out, overwrite=overwrite, resume=resume)
    config, prepared = _prepare(config)
    searched = None
    if search_trials:
        config, searched = _searched_config(config, search_trials, out, resume)
    run = RunDir.start(
        out,
        config,
        resume=resume,
        overwrite=overwrite,
        seed=config.seed,
        threads=config.train.torch_threads,
        records={"search.json": searched} if searched is not None else None,
    )
    work, state = run.work, run.state
    try:
        entries = {
            task: train_task(config, task, work, state, resume, show_progress_bar, task_data)
            for task, task_data in prepared.items()
        }
    except (ModelDirError, OSError, ValueError):
        # A base model that cannot be loaded fails before any step: a work directory this call
        # created, with no checkpoint in it, is removed (nothing written on exit 2).
        if (
            run.is_main
            and run.created
            and not any(work.glob("*/trainer/checkpoint-*"))
            and not any(work.glob("*/best"))
        ):
            shutil.rmtree(work, ignore_errors=True)
        raise
    if run.is_main:
        assemble(config, entries, work, out, searched)
    state.wait_for_everyone()
    return out


def _prepare(config: NabaConfig) -> tuple[NabaConfig, dict[Task, TaskData]]:
    """Every task's data and the base model's weights, checked before anything is written: a bad
    row in the stance data must not surface after the topic model trained.

    Returns the config with ``model.base: auto`` resolved, and each configured task's data.
    """
    prepared = {
        task: load_task_data(config, task)
        for task in TASKS
        if getattr(config.tasks, task) is not None
    }
    if "stance" in prepared:
        add_unrelated_pairs(prepared["stance"], config, prepared.get("topic"))
    if config.model.base == AUTO:
        config = config.model_copy(deep=True)
        config.model.base = resolve_base(AUTO)
        logger.info("model.base auto: %s", config.model.base)
    load_kwargs(config.model.base, config.model.allow_pickle)
    return config, prepared


def _searched_config(
    config: NabaConfig, trials: int, out: Path, resume: bool
) -> tuple[NabaConfig, dict[str, Any]]:
    """The config with the best search trial's settings, and the search's record (a resumed run
    reads back the search it already ran)."""
    from naba.train.run import partial_dir
    from naba.train.search import apply_params, search

    saved_search = partial_dir(out) / "search.json"
    if resume and saved_search.exists():
        searched = json.loads(saved_search.read_text(encoding="utf-8"))
    else:
        searched = search(config, trials, out.with_name(out.name + ".search"), train)
    return apply_params(config, searched["best"]["params"]), searched


def train_task(
    config: NabaConfig,
    task: Task,
    work: Path,
    state: Any,
    resume: bool,
    show_progress_bar: bool | None,
    task_data: TaskData | None = None,
) -> dict[str, Any]:
    """Fine-tune one task into ``work/<task>/final``; return its manifest entry.

    ``state`` is Accelerate's ``PartialState`` (which process this is);
    ``task_data``: the task's data, already loaded.
    """
    import torch

    task_dir = work / task
    finished = finished_task(task_dir, resume)
    if finished is not None:
        return finished
    if state.is_main_process:
        task_dir.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    log = RunLog(task_dir, state.is_main_process)
    task_data = task_data or load_task_data(config, task)
    log.info(
        "%s: %d labels (%s), %s; train %d, dev %d, test %d",
        task,
        len(task_data.labels),
        ", ".join(task_data.labels),
        "multi-label" if task_data.multi_label else "single-label",
        len(task_data.splits["train"]),
        len(task_data.splits["dev"]),
        len(task_data.splits.get("test", [])),
    )

    torch.manual_seed(config.seed)  # the classification head's initial weights
    model, tokenizer = load_base_model(config, task_data)
    docs = task_docs(task_data, tokenizer, config, log)
    y = targets_matrix(task_data, task_data.splits["train"])
    run = TaskRun(config, task_data, task_dir, state, resume, show_progress_bar, log)
    loss_fn = task_loss(task_data, y, config.train.class_weight)
    return fit_task(run, model, tokenizer, docs, docs["train"], y, loss_fn)


def finished_task(task_dir: Path, resume: bool) -> dict[str, Any] | None:
    """A resumed run's task that already finished: its manifest entry (``result.json``), else
    None."""
    result_file = task_dir / "result.json"
    if resume and result_file.exists() and (task_dir / "final").exists():
        return json.loads(result_file.read_text(encoding="utf-8"))
    return None


def fit_task(
    run: TaskRun,
    model: Any,
    tokenizer: Any,
    docs: dict[str, list[list[dict]]],
    train_docs: list[list[dict]],
    y: np.ndarray,
    loss_fn: Any,
    *,
    sparse: Any = None,
) -> dict[str, Any]:
    """Train ``model`` with :class:`~naba.train.engine.ArticleTrainer`, keep the best dev
    checkpoint, then finish the task (:func:`naba.train.finish.finish_task`).

    Fine-tuning and distillation both come here; they differ only in the model
    they start from, the articles they train on (``train_docs``, with one row
    of ``y`` each) and the loss on pooled article logits (``loss_fn(logits, y)``).

    Args:
        docs: Split name -> windows (``dev`` scores checkpoints; dev and test are scored at the
            end).
        sparse: A fitted sparse model to blend with (distillation carries the teacher's over);
            None fits one.
    """
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from naba.train.engine import (
        ArticleDataset,
        ArticleTrainer,
        QuietProgress,
        RunLogCallback,
        collator,
    )

    config, task_data, state = run.config, run.task_data, run.state
    task, cfg = task_data.task, config.train
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    sampler, eval_steps = _batch_order(config, train_docs, state.num_processes)
    checkpointing = _plan_checkpointing(run, model)
    checkpoint = _checkpoint_to_resume(run)

    def dev_metrics(current: Any) -> dict[str, Any]:
        dev = task_data.splits["dev"]
        return evaluate(current, task_data, docs["dev"], dev, pad_id, config)[0]

    show = state.is_main_process and (
        run.show_progress_bar if run.show_progress_bar is not None else True
    )
    trainer_dir = run.task_dir / "trainer"
    run_log = RunLogCallback(run.log, task, cfg.checkpoint_every)
    patience = cfg.early_stopping_patience
    trainer = ArticleTrainer(
        model=model,
        args=training_arguments(
            config, task, trainer_dir, eval_steps, show, checkpointing=checkpointing
        ),
        train_dataset=ArticleDataset(train_docs, y),
        eval_dataset=ArticleDataset(
            docs["dev"], targets_matrix(task_data, task_data.splits["dev"])
        ),
        data_collator=collator(pad_id),
        processing_class=tokenizer,
        loss_fn=loss_fn,
        pooling=config.model.window.pooling,
        sampler=sampler,
        dev_metrics=dev_metrics,
        param_groups=parameter_groups(config),
        callbacks=[run_log] + ([EarlyStoppingCallback(patience)] if patience else []),
    )
    run_log.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # naba logs its own lines
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    _train_from(run, trainer, checkpoint)
    _save_best(run, trainer.model, tokenizer)
    best_step = trainer.state.best_global_step or trainer.state.global_step
    del trainer
    return finish_task(run, tokenizer, docs, pad_id, best_step, sparse=sparse)


def _batch_order(config: NabaConfig, train_docs: list[list[dict]], world: int) -> tuple[Any, int]:
    """The epochs' batch order (:class:`~naba.train.engine.EpochBatches`) and the steps between
    dev evaluations."""
    from naba.train.engine import EpochBatches

    cfg = config.train
    lengths = (
        [sum(len(w["input_ids"]) for w in doc) for doc in train_docs]
        if cfg.group_by_length
        else None
    )
    sampler = EpochBatches(len(train_docs), cfg.batch_size, config.seed, world, lengths)
    steps_per_epoch = max(1, len(sampler) // world // cfg.gradient_accumulation_steps)
    return sampler, steps_per_epoch if cfg.eval_every == "epoch" else cfg.eval_every


def _plan_checkpointing(run: TaskRun, model: Any) -> bool:
    """Gradient checkpointing on or off, as planned from the memory there is (and logged why)."""
    cfg, window = run.config.train, run.config.model.window
    plan = plan_checkpointing(
        cfg.gradient_checkpointing,
        cfg.batch_size * window.max_windows * window.length,
        model,
        length=window.length,
        device=getattr(run.state, "device", None),
    )
    run.log.info(
        "%s: gradient checkpointing %s (%s)",
        run.task_data.task,
        "on" if plan.on else "off",
        plan.reason,
    )
    return plan.on


def _checkpoint_to_resume(run: TaskRun) -> Path | None:
    """The checkpoint a resumed run continues from; without one, the last attempt's records are
    removed so the run starts over."""
    from naba.train.engine import last_checkpoint

    task_dir = run.task_dir
    trainer_dir = task_dir / "trainer"
    checkpoint = last_checkpoint(trainer_dir) if run.resume else None
    if checkpoint is None and run.state.is_main_process:
        for stale in (trainer_dir, task_dir / "best", task_dir / "metrics.jsonl"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(
                missing_ok=True
            )
    run.state.wait_for_everyone()
    return checkpoint


def _train_from(run: TaskRun, trainer: Any, checkpoint: Path | None) -> None:
    """Run ``trainer`` from ``checkpoint`` (None: from the start); say when it stopped early."""
    task = run.task_data.task
    if checkpoint is not None:
        run.log.info(
            "%s: resumed at step %s (%s)", task, checkpoint.name.split("-")[-1], checkpoint.name
        )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    if (
        trainer.state.global_step < trainer.state.max_steps
    ):  # only early stopping ends a run before its last step
        run.log.info(
            "%s: no dev improvement in %d evaluations; stopping early",
            task,
            run.config.train.early_stopping_patience,
        )


def _save_best(run: TaskRun, model: Any, tokenizer: Any) -> None:
    """Write the best weights (``load_best_model_at_end``) and the tokenizer to ``best/``."""
    best_dir = run.task_dir / "best"
    if run.state.is_main_process:
        tmp_best = best_dir.with_name("best.tmp")
        shutil.rmtree(tmp_best, ignore_errors=True)
        model.save_pretrained(tmp_best, safe_serialization=True)
        tokenizer.save_pretrained(tmp_best)
        shutil.rmtree(best_dir, ignore_errors=True)
        os.replace(tmp_best, best_dir)
    run.state.wait_for_everyone()

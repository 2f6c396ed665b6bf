"""``naba train CONFIG --dry-run``: what a training run would do, checked as training checks it,
nothing written.

:func:`plan_training` loads every task's data exactly as :func:`naba.train.trainer.train`
does (the same readers, duplicate removal, dev carve, label checks and unrelated
pairs), resolves and loads the base encoder, makes the training windows, counts
the steps, and times a few real training steps (forward, backward, optimizer)
on the first batches of the first epoch to estimate an epoch. The model is
thrown away; nothing is written (``model.base: auto`` may convert e5-small
into its cache once, as training would).

Checks that only warn (a rare label, a small dev split, articles cut by the
window cap) are functions in :data:`PLAN_CHECKS`; add one with
:func:`plan_check`. Each takes the config and the plan and returns warning
lines; ``naba train --dry-run`` prints them after the plan.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naba.config import NabaConfig
from naba.data.records import Task, labels_of
from naba.train.data import TaskData, add_unrelated_pairs, load_task_data

logger = logging.getLogger(__name__)

MEASURED_BATCHES = 3  # timed training steps per task (after one untimed warm-up step)
RARE_LABEL = 5  # fewer training articles than this: a warning
SMALL_DEV = 20


@dataclass
class TaskPlan:
    """One task of the run, as training would see it."""

    task: Task
    labels: dict[str, int]  # label -> training articles carrying it (unrelated pairs included)
    multi_label: bool
    rows: dict[str, int]  # split -> articles (pairs, for stance) after duplicate removal
    duplicates_removed: dict[str, int]
    dev_carved: bool
    unrelated: dict[str, Any] | None
    windows_mean: float
    windows_max: int
    cut_articles: int  # training articles longer than max_windows windows
    steps_per_epoch: int
    epochs: float
    total_steps: int
    eval_every: int | str
    seconds_per_step: float | None = None
    # stance: targets that look like identifiers in Arabic data and have no description
    identifier_targets: list[str] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float | None:
        if self.seconds_per_step is None:
            return None
        return self.seconds_per_step * self.steps_per_epoch


@dataclass
class TrainingPlan:
    """What ``naba train`` would do with a config: ``naba train --dry-run`` prints :meth:`lines`."""

    output: Path
    base: str
    base_said: str
    parameters: int
    encoder: str  # e.g. "bert, 12 layers, hidden 384"
    tasks: list[TaskPlan] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The plan as the lines ``naba train --dry-run`` prints."""
        out = [
            f"encoder: {self.base}{self.base_said}: {self.encoder}, "
            f"{self.parameters / 1e6:.1f}M parameters"
        ]
        for t in self.tasks:
            rows = ", ".join(f"{name} {n}" for name, n in t.rows.items())
            carved = " (dev held out of train)" if t.dev_carved else ""
            kind = "multi-label" if t.multi_label else "single-label"
            out.append(f"{t.task}: {len(t.labels)} labels, {kind}; {rows}{carved}")
            out.append(
                f"{t.task} labels (training articles): "
                + ", ".join(f"{k} {v}" for k, v in t.labels.items())
            )
            removed = {k: v for k, v in t.duplicates_removed.items() if v}
            if removed:
                out.append(f"{t.task} duplicates removed: {removed}")
            if t.unrelated:
                pairs = ", ".join(f"{k} {v}" for k, v in t.unrelated["pairs"].items())
                out.append(f"{t.task} unrelated pairs labelled {t.unrelated['label']!r}: {pairs}")
            out.append(
                f"{t.task} windows per training article: {t.windows_mean:.2f} on average, "
                f"{t.windows_max} at most"
            )
            timing = (
                f"; about {_duration(t.seconds_per_epoch)} an epoch "
                f"({t.seconds_per_step:.2f} s a step, measured on {MEASURED_BATCHES} steps)"
                if t.seconds_per_epoch is not None
                else ""
            )
            out.append(
                f"{t.task} steps: {t.steps_per_epoch} an epoch x {t.epochs:g} epochs = "
                f"{t.total_steps}, dev scored every {t.eval_every}{timing}"
            )
        out.extend(f"warning: {w}" for w in self.warnings)
        out.append(f"would write {self.output}")
        return out


PlanCheck = Callable[[NabaConfig, TrainingPlan], list[str]]
PLAN_CHECKS: list[PlanCheck] = []


def plan_check(check: PlanCheck) -> PlanCheck:
    """Register a check that reads the config and the plan and returns warning lines (none:
    fine)."""
    PLAN_CHECKS.append(check)
    return check


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@plan_check
def rare_labels(config: NabaConfig, plan: TrainingPlan) -> list[str]:
    return [
        f"{t.task}: label {label!r} has {n} training article{'s' if n != 1 else ''}; "
        "it will be hard to learn"
        for t in plan.tasks
        for label, n in t.labels.items()
        if n < RARE_LABEL
    ]


@plan_check
def small_dev(config: NabaConfig, plan: TrainingPlan) -> list[str]:
    return [
        f"{t.task}: dev has {t.rows['dev']} articles; thresholds and checkpoints chosen on so "
        "few are noisy"
        for t in plan.tasks
        if t.rows.get("dev", 0) < SMALL_DEV
    ]


@plan_check
def cut_articles(config: NabaConfig, plan: TrainingPlan) -> list[str]:
    window = config.model.window
    return [
        f"{t.task}: {t.cut_articles} training articles are longer than "
        f"model.window.max_windows={window.max_windows} windows of {window.length} tokens; "
        "their ends are not read"
        for t in plan.tasks
        if t.cut_articles
    ]


@plan_check
def identifier_like_targets(config: NabaConfig, plan: TrainingPlan) -> list[str]:
    return [
        f"{t.task}: {len(t.identifier_targets)} targets look like identifiers in Arabic data "
        f"({', '.join(t.identifier_targets[:5])}{', ...' if len(t.identifier_targets) > 5 else ''})"
        "; the encoder reads them as written: describe them in tasks.stance.targets"
        for t in plan.tasks
        if t.identifier_targets
    ]


def _steps(config: NabaConfig, task: Task, n_train: int) -> tuple[int, float, int, int | str]:
    """Steps an epoch, epochs, total steps and the evaluation interval, as ``fit_task`` counts
    them."""
    cfg = config.train
    per_epoch = max(1, math.ceil(n_train / cfg.batch_size) // cfg.gradient_accumulation_steps)
    epochs = getattr(config.tasks, task).epochs or cfg.epochs
    total = cfg.max_steps or math.ceil(per_epoch * epochs)
    return per_epoch, epochs, total, cfg.eval_every


def _time_steps(
    config: NabaConfig, task_data: TaskData, model: Any, docs: list, pad_id: int
) -> float:
    """Seconds per optimizer step: real training steps on the first batches of epoch 0, the model
    then dropped."""
    import torch

    from naba.encoding import pool
    from naba.train.arguments import parameter_groups
    from naba.train.engine import adamw, collator, epoch_batches
    from naba.train.task_inputs import targets_matrix, task_loss

    cfg = config.train
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device).train()
    y = targets_matrix(task_data, task_data.splits["train"])
    loss_fn = task_loss(task_data, y, cfg.class_weight).to(device)
    optimizer = adamw(parameter_groups(config)(model), cfg.learning_rate)
    collate = collator(pad_id)
    batches = epoch_batches(len(docs), cfg.batch_size, config.seed, 0, 1)
    batches = [batches[i % len(batches)] for i in range(1 + MEASURED_BATCHES)]
    started = 0.0
    for i, batch in enumerate(batches):
        if i == 1:  # the first step pays one-off costs (allocation, kernel selection)
            started = time.perf_counter()
        inputs = collate([{"windows": docs[j], "label": y[j]} for j in batch])
        labels, doc_index = inputs.pop("labels").to(device), inputs.pop("doc_index").to(device)
        logits = model(**{k: v.to(device) for k, v in inputs.items()}).logits.float()
        loss = loss_fn(
            pool(logits, doc_index, labels.shape[0], config.model.window.pooling), labels
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return (time.perf_counter() - started) / MEASURED_BATCHES * cfg.gradient_accumulation_steps


def _task_plan(config: NabaConfig, task_data: TaskData, measure: bool) -> tuple[TaskPlan, Any]:
    from naba.train.task_inputs import doc_inputs, load_base_model

    model, tokenizer = load_base_model(config, task_data)
    train = task_data.splits["train"]
    # Windows without the cap, then capped: the windows training makes, and how many it cuts.
    uncapped = config.model_copy(deep=True)
    uncapped.model.window.max_windows = 10**6
    cap = config.model.window.max_windows
    needed = doc_inputs(task_data, train, tokenizer, uncapped)
    docs = [d[:cap] for d in needed]
    windows = [len(d) for d in docs]
    per_epoch, epochs, total, every = _steps(config, task_data.task, len(train))
    counts = Counter(label for r in train for label in labels_of(r, task_data.task))
    plan = TaskPlan(
        task=task_data.task,
        labels={label: counts.get(label, 0) for label in task_data.labels},
        multi_label=task_data.multi_label,
        rows={
            n: len(task_data.splits[n]) for n in ("train", "dev", "test") if n in task_data.splits
        },
        duplicates_removed={
            name: fp.get("duplicates_removed", 0) for name, fp in task_data.fingerprints.items()
        },
        dev_carved=getattr(config.tasks, task_data.task).dev is None,
        unrelated=task_data.unrelated,
        windows_mean=sum(windows) / len(windows),
        windows_max=max(windows),
        cut_articles=sum(len(d) > cap for d in needed),
        steps_per_epoch=per_epoch,
        epochs=epochs,
        total_steps=total,
        eval_every=every if every != "epoch" else f"epoch ({per_epoch} steps)",
    )
    if measure:
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        plan.seconds_per_step = _time_steps(config, task_data, model, docs, pad_id)
    return plan, model


def plan_training(
    config: NabaConfig,
    output: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    measure: bool = True,
) -> TrainingPlan:
    """Check a training run as :func:`naba.train.trainer.train` would, and say what it would do.

    Args:
        config: The validated training config.
        output: The model directory training would write (default: ``config.output_dir``).
        resume, overwrite: As ``naba train`` takes them (an existing output is refused without
            them).
        measure: Time a few training steps per task to estimate an epoch.

    Returns:
        The plan, with the warnings of every :data:`PLAN_CHECKS` check.

    Raises:
        FileExistsError: the output exists and neither ``overwrite`` nor ``resume`` is set.
        InputError, ModelDirError, TrainingError: as training raises them.
    """
    from naba.encoder.auto import AUTO, resolve_base
    from naba.hub import load_kwargs

    out = Path(output or config.output_dir)
    if out.exists() and not (overwrite or resume):
        raise FileExistsError(f"{out}: already exists; pass --overwrite to replace it")
    prepared = {
        task: load_task_data(config, task)
        for task in ("topic", "stance")
        if getattr(config.tasks, task) is not None
    }
    if "stance" in prepared:
        add_unrelated_pairs(prepared["stance"], config, prepared.get("topic"))
    said = ""
    if config.model.base == AUTO:
        config = config.model_copy(deep=True)
        config.model.base = resolve_base(AUTO)
        said = " (model.base auto)"
    load_kwargs(config.model.base, config.model.allow_pickle)
    if config.train.torch_threads:
        import torch

        torch.set_num_threads(config.train.torch_threads)
    plans, model = [], None
    for task_data in prepared.values():
        task_plan, model = _task_plan(config, task_data, measure)
        if task_data.task == "stance":  # the described targets read as their descriptions
            from naba.data.stats import identifier_targets

            task_plan.identifier_targets = identifier_targets(task_data.splits["train"])
        plans.append(task_plan)
    encoder = model.config if model is not None else None
    plan = TrainingPlan(
        output=out,
        base=config.model.base,
        base_said=said,
        parameters=sum(p.numel() for p in model.parameters()) if model is not None else 0,
        encoder=f"{encoder.model_type}, {encoder.num_hidden_layers} layers, "
        f"hidden {encoder.hidden_size}"
        if encoder is not None
        else "?",
        tasks=plans,
    )
    for check in PLAN_CHECKS:
        plan.warnings.extend(check(config, plan))
    return plan

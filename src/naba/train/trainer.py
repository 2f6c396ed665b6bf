"""Fine-tuning: one code path for one process and many (``accelerate launch`` / ``torchrun``), on ``transformers.Trainer``.

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
the hybrid blend and the thresholds are chosen on dev and test is scored.

Work in progress lives in ``OUT.partial/``; the finished model directory is
assembled there and renamed to ``OUT`` in one step.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import NabaConfig
from naba.data.records import Task, labels_of
from naba.decision import binarize, choose_prior_correction, class_weights, decide
from naba.encoder.auto import AUTO, resolve_base
from naba.encoding import pooled_logits as encoding_logits
from naba.encoding import task_windows
from naba.errors import ModelDirError
from naba.evaluation.metrics import classification_metrics
from naba.hub import load_kwargs, unreachable
from naba.infer.precision import describe as describe_evidence
from naba.infer.precision import evidence as precision_evidence
from naba.infer.precision import too_small_note
from naba.manifest import (
    FORMAT_VERSION,
    Manifest,
    TaskManifest,
    library_versions,
    write_decision_rule,
    write_manifest,
)
from naba.train.data import TaskData, add_unrelated_pairs, load_task_data
from naba.train.engine import RunLog, TrainingError
from naba.train.memory import plan_checkpointing

logger = logging.getLogger(__name__)

TASKS: tuple[Task, ...] = ("topic", "stance")


def doc_inputs(
    task_data: TaskData, records: list[dict[str, Any]], tokenizer: Any, config: NabaConfig
) -> list[list[dict]]:
    """Records to windows, as inference makes them (:func:`naba.encoding.task_windows`)."""
    return task_windows(
        task_data.task,
        tokenizer,
        records,
        config.model.window,
        config.normalization,
        config.model.include_title,
    )


def targets_matrix(task_data: TaskData, records: list[dict[str, Any]]) -> np.ndarray:
    gold = [labels_of(r, task_data.task) for r in records]
    if task_data.multi_label:
        return binarize(gold, task_data.labels).astype(np.float32)
    index = {label: i for i, label in enumerate(task_data.labels)}
    return np.array([index[g[0]] for g in gold], dtype=np.int64)


def task_loss(task_data: TaskData, y: np.ndarray, scheme: str) -> Any:
    """BCE with positive weights (multi-label) or cross-entropy with class weights."""
    import torch

    n = len(y)
    if task_data.multi_label:
        positives = y.sum(axis=0).clip(min=1)
        ratio = (n - positives) / positives
        weight = (
            None
            if scheme == "none"
            else torch.tensor(np.sqrt(ratio) if scheme == "sqrt" else ratio, dtype=torch.float32)
        )
        return torch.nn.BCEWithLogitsLoss(
            pos_weight=weight.clamp(max=50.0) if weight is not None else None
        )
    weights = class_weights(y, len(task_data.labels), scheme)
    return torch.nn.CrossEntropyLoss(
        weight=None if weights is None else torch.tensor(weights, dtype=torch.float32)
    )


def output_layer(model: Any, n_labels: int) -> Any:
    """The classification head's last linear layer (``n_labels`` outputs, with a bias), or None."""
    from torch import nn

    layers = [
        m
        for m in model.modules()
        if isinstance(m, nn.Linear) and m.out_features == n_labels and m.bias is not None
    ]
    return layers[-1] if layers else None


def _correct_priors(
    model: Any, task_data: TaskData, dev_docs: list[list[dict]], pad_id: int, config: NabaConfig
) -> float:
    """Choose the prior correction on dev (:func:`choose_prior_correction`) and fold it into the head's bias.

    Returns the alpha chosen (0: the model is unchanged). Shifting the bias
    shifts every window's logits, so mean- or max-pooled article scores shift
    the same way and any tool loading the directory gets the corrected
    decision.
    """
    import torch

    weights = class_weights(
        targets_matrix(task_data, task_data.splits["train"]),
        len(task_data.labels),
        config.train.class_weight,
    )
    head = output_layer(model, len(task_data.labels))
    if weights is None or head is None or not dev_docs:
        return 0.0
    probabilities = _predict_scores(
        model, dev_docs, pad_id, config.train.eval_batch_size, config.model.window.pooling, False
    )
    alpha = choose_prior_correction(
        probabilities, targets_matrix(task_data, task_data.splits["dev"]), np.log(weights)
    )
    if alpha:
        with torch.no_grad():
            head.bias -= torch.tensor(alpha * np.log(weights), dtype=head.bias.dtype)
    return alpha


def pooled_logits(
    model: Any, docs: list[list[dict]], pad_id: int, batch_size: int, pooling: str
) -> np.ndarray:
    """Article logits in the order of ``docs``, scored as inference scores them (:func:`naba.encoding.pooled_logits`),
    in batches of up to ``batch_size`` full windows."""
    length = max((len(w["input_ids"]) for doc in docs for w in doc), default=1)
    return encoding_logits(model, docs, pad_id, batch_size * length, pooling)


def _predict_scores(
    model: Any,
    docs: list[list[dict]],
    pad_id: int,
    batch_size: int,
    pooling: str,
    multi_label: bool,
) -> np.ndarray:
    """Pooled probabilities for documents (sigmoid for multi-label, softmax otherwise)."""
    import torch

    logits = pooled_logits(model, docs, pad_id, batch_size, pooling)
    if not len(logits):
        return logits
    tensor = torch.from_numpy(logits)
    return (torch.sigmoid(tensor) if multi_label else torch.softmax(tensor, dim=-1)).numpy()


def _evaluate(
    model: Any,
    task_data: TaskData,
    docs: list[list[dict]],
    records: list[dict[str, Any]],
    pad_id: int,
    config: NabaConfig,
    thresholds: dict[str, float] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    scores = _predict_scores(
        model,
        docs,
        pad_id,
        config.train.eval_batch_size,
        config.model.window.pooling,
        task_data.multi_label,
    )
    predicted = decide(
        scores,
        task_data.labels,
        task_data.multi_label,
        thresholds,
        config.thresholds.at_least_one,
        config.thresholds.default,
    )
    gold = [labels_of(r, task_data.task) for r in records]
    return classification_metrics(
        gold, predicted, task_data.labels, task_data.multi_label, scores
    ), scores


def _int8_agreement(
    model: Any,
    task_data: TaskData,
    docs: list[list[dict]],
    fp32_scores: np.ndarray,
    pad_id: int,
    config: NabaConfig,
    thresholds: dict[str, float],
) -> float:
    """The share of dev documents whose labels are the same under int8 as under fp32 (``--precision int8|auto`` reads it).

    ``fp32_scores`` are the fp32 model's probabilities for ``docs``, already computed for the hybrid and thresholds.
    """
    from naba.infer.classifier import quantize_int8

    if not docs:
        return 0.0
    window, batch = config.model.window, config.train.eval_batch_size
    int8_scores = _predict_scores(
        quantize_int8(model), docs, pad_id, batch, window.pooling, task_data.multi_label
    )
    labels = [
        decide(
            scores,
            task_data.labels,
            task_data.multi_label,
            thresholds or None,
            config.thresholds.at_least_one,
            config.thresholds.default,
        )
        for scores in (fp32_scores, int8_scores)
    ]
    return round(float(np.mean([a == b for a, b in zip(*labels)])), 4)


def _load_model(config: NabaConfig, task_data: TaskData) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = config.model.base
    kwargs = load_kwargs(base, config.model.allow_pickle)
    id2label = dict(enumerate(task_data.labels))
    try:
        tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=False)
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(task_data.labels),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            problem_type="multi_label_classification"
            if task_data.multi_label
            else "single_label_classification",
            **kwargs,
        )
    except Exception as exc:  # noqa: BLE001 - transformers, tokenizers and safetensors raise many unrelated types
        raise unreachable(base, exc) from None
    if task_data.target_descriptions:  # in config.json: what the encoder was fed for each target
        model.config.target_descriptions = task_data.target_descriptions
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(
            f"{base}: needs a fast (Rust) tokenizer for windowing; found {type(tokenizer).__name__}"
        )
    return model, tokenizer


def _parameter_groups(config: NabaConfig) -> Any:
    """The optimizer's groups: encoder and head (at ``head_learning_rate``), each with and without weight decay."""
    from naba.train.run import adamw_groups

    cfg = config.train
    heads = ("classifier", "score", "pre_classifier")

    def groups(model: Any) -> list[dict[str, Any]]:
        return adamw_groups(
            model,
            lambda name: name.startswith(heads),
            cfg.learning_rate,
            cfg.head_learning_rate or cfg.learning_rate,
            cfg.weight_decay,
        )

    return groups


def _checkpointing_field(arguments: type) -> str:
    """``activation_checkpointing`` (transformers 5.x) or its older name ``gradient_checkpointing``."""
    return (
        "activation_checkpointing"
        if "activation_checkpointing" in arguments.__dataclass_fields__
        else "gradient_checkpointing"
    )


def checkpointing_on(config: NabaConfig) -> bool:
    """``train.gradient_checkpointing``, with ``auto`` resolved: on when a batch can hold
    :data:`~naba.config.CHECKPOINTING_TOKENS` or more tokens (``batch_size x max_windows x length``)."""
    from naba.config import CHECKPOINTING_TOKENS

    setting, window = config.train.gradient_checkpointing, config.model.window
    if setting == "auto":
        return config.train.batch_size * window.max_windows * window.length >= CHECKPOINTING_TOKENS
    return bool(setting)


def training_arguments(
    config: NabaConfig,
    task: Task,
    output_dir: Path,
    eval_steps: int,
    show: bool,
    *,
    checkpointing: bool | None = None,
) -> Any:
    """``TrainingArguments`` from naba's config: best checkpoint and early stopping on dev macro-F1.

    ``checkpointing``: gradient checkpointing as planned from the memory there is
    (:func:`naba.train.memory.plan_checkpointing`); None: :func:`checkpointing_on`'s rule.
    """
    import torch
    from transformers import TrainingArguments

    cfg = config.train
    return TrainingArguments(
        output_dir=str(output_dir),
        seed=config.seed,
        data_seed=config.seed,
        num_train_epochs=getattr(config.tasks, task).epochs or cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="linear",
        max_grad_norm=cfg.max_grad_norm,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=cfg.log_every,
        bf16=cfg.mixed_precision == "bf16",
        fp16=cfg.mixed_precision == "fp16",
        **{
            _checkpointing_field(TrainingArguments): checkpointing_on(config)
            if checkpointing is None
            else checkpointing
        },
        report_to=list(cfg.report_to) or "none",
        disable_tqdm=not show,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,
        dataloader_num_workers=0,
        save_only_model=False,
    )


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
    model, tokenizer = _load_model(config, task_data)
    docs = task_docs(task_data, tokenizer, config, log)
    y = targets_matrix(task_data, task_data.splits["train"])
    return fit_task(
        config,
        task_data,
        task_dir,
        state,
        resume,
        show_progress_bar,
        log,
        model,
        tokenizer,
        docs,
        docs["train"],
        y,
        task_loss(task_data, y, config.train.class_weight),
    )


def finished_task(task_dir: Path, resume: bool) -> dict[str, Any] | None:
    """A resumed run's task that already finished: its manifest entry (``result.json``), else None."""
    result_file = task_dir / "result.json"
    if resume and result_file.exists() and (task_dir / "final").exists():
        return json.loads(result_file.read_text(encoding="utf-8"))
    return None


def task_docs(
    task_data: TaskData, tokenizer: Any, config: NabaConfig, log: RunLog
) -> dict[str, list[list[dict]]]:
    """Every split (and the generated unrelated stance pairs) as windows, the way inference makes them."""
    task = task_data.task
    docs = {
        name: doc_inputs(task_data, records, tokenizer, config)
        for name, records in task_data.splits.items()
    }
    for name, pairs in task_data.unrelated_pairs.items():
        docs[f"{name}_unrelated"] = doc_inputs(task_data, pairs, tokenizer, config)
    if task_data.unrelated:
        log.info(
            "%s: %s unrelated pairs labelled %r (ratio %s)",
            task,
            ", ".join(f"{n} {split}" for split, n in task_data.unrelated["pairs"].items()),
            task_data.unrelated["label"],
            task_data.unrelated["ratio"],
        )
    windows = [len(d) for d in docs["train"]]
    log.info(
        "%s: %.2f windows per training article on average (max %d)",
        task,
        float(np.mean(windows)),
        max(windows),
    )
    return docs


def fit_task(
    config: NabaConfig,
    task_data: TaskData,
    task_dir: Path,
    state: Any,
    resume: bool,
    show_progress_bar: bool | None,
    log: RunLog,
    model: Any,
    tokenizer: Any,
    docs: dict[str, list[list[dict]]],
    train_docs: list[list[dict]],
    y: np.ndarray,
    loss_fn: Any,
    sparse: Any = None,
) -> dict[str, Any]:
    """Train ``model`` with :class:`~naba.train.engine.ArticleTrainer`, keep the best dev checkpoint, then finish the task.

    Fine-tuning and distillation both come here; they differ only in the model
    they start from, the articles they train on (``train_docs``, with one row
    of ``y`` each) and the loss on pooled article logits (``loss_fn(logits, y)``).

    Args:
        docs: Split name -> windows (``dev`` scores checkpoints; dev and test are scored at the end).
        sparse: A fitted sparse model to blend with (distillation carries the teacher's over); None fits one.
    """
    from transformers import EarlyStoppingCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from naba.train.engine import (
        ArticleDataset,
        ArticleTrainer,
        EpochBatches,
        QuietProgress,
        RunLogCallback,
        collator,
        last_checkpoint,
    )

    task, cfg = task_data.task, config.train
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    world = state.num_processes
    lengths = (
        [sum(len(w["input_ids"]) for w in doc) for doc in train_docs]
        if cfg.group_by_length
        else None
    )
    sampler = EpochBatches(len(train_docs), cfg.batch_size, config.seed, world, lengths)
    steps_per_epoch = max(1, len(sampler) // world // cfg.gradient_accumulation_steps)
    eval_steps = steps_per_epoch if cfg.eval_every == "epoch" else cfg.eval_every

    window = config.model.window
    plan = plan_checkpointing(
        cfg.gradient_checkpointing,
        cfg.batch_size * window.max_windows * window.length,
        model,
        length=window.length,
        device=getattr(state, "device", None),
    )
    log.info("%s: gradient checkpointing %s (%s)", task, "on" if plan.on else "off", plan.reason)
    trainer_dir = task_dir / "trainer"
    checkpoint = last_checkpoint(trainer_dir) if resume else None
    if checkpoint is None and state.is_main_process:
        for stale in (trainer_dir, task_dir / "best", task_dir / "metrics.jsonl"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(
                missing_ok=True
            )
    state.wait_for_everyone()

    def dev_metrics(current: Any) -> dict[str, Any]:
        return _evaluate(current, task_data, docs["dev"], task_data.splits["dev"], pad_id, config)[
            0
        ]

    show = state.is_main_process and (show_progress_bar if show_progress_bar is not None else True)
    run_log = RunLogCallback(log, task, cfg.checkpoint_every)
    trainer = ArticleTrainer(
        model=model,
        args=training_arguments(config, task, trainer_dir, eval_steps, show, checkpointing=plan.on),
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
        param_groups=_parameter_groups(config),
        callbacks=[run_log]
        + (
            [EarlyStoppingCallback(cfg.early_stopping_patience)]
            if cfg.early_stopping_patience
            else []
        ),
    )
    run_log.trainer = trainer
    trainer.remove_callback(PrinterCallback)  # naba logs its own lines
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgress)
    if checkpoint is not None:
        log.info(
            "%s: resumed at step %s (%s)", task, checkpoint.name.split("-")[-1], checkpoint.name
        )
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint is not None else None)
    if (
        trainer.state.global_step < trainer.state.max_steps
    ):  # only early stopping ends a run before its last step
        log.info(
            "%s: no dev improvement in %d evaluations; stopping early",
            task,
            cfg.early_stopping_patience,
        )
    best_dir = task_dir / "best"
    if state.is_main_process:
        tmp_best = best_dir.with_name("best.tmp")
        shutil.rmtree(tmp_best, ignore_errors=True)
        trainer.model.save_pretrained(
            tmp_best, safe_serialization=True
        )  # the best weights (load_best_model_at_end)
        tokenizer.save_pretrained(tmp_best)
        shutil.rmtree(best_dir, ignore_errors=True)
        os.replace(tmp_best, best_dir)
    state.wait_for_everyone()
    best_step = trainer.state.best_global_step or trainer.state.global_step
    del trainer
    return _finish_task(
        config, task_data, tokenizer, docs, pad_id, task_dir, log, state, best_step, sparse
    )


def _finish_task(
    config: NabaConfig,
    task_data: TaskData,
    tokenizer: Any,
    docs: dict[str, list],
    pad_id: int,
    task_dir: Path,
    log: RunLog,
    state: Any,
    best_step: int,
    sparse: Any = None,
) -> dict[str, Any]:
    """Reload the best weights, apply the prior correction, fit the hybrid, tune thresholds, score, write ``final/``.

    All choices are made on dev: the prior correction (single-label, folded
    into the encoder's bias), the hybrid blend (encoder, sparse or both) on the
    corrected encoder's scores, then the multi-label thresholds on the final
    scores. Test is only scored.
    """
    from transformers import AutoModelForSequenceClassification

    from naba.blend import describe_detector
    from naba.train.hybrid import Hybrid, decide_and_score

    task = task_data.task
    best_dir = task_dir / "best"
    model = AutoModelForSequenceClassification.from_pretrained(best_dir, use_safetensors=True)
    prior_correction = 0.0
    if not task_data.multi_label and config.thresholds.prior_correction:
        prior_correction = _correct_priors(model, task_data, docs["dev"], pad_id, config)
        log.info("%s: prior correction chosen on dev: alpha %s", task, prior_correction)
    window, batch = config.model.window, config.train.eval_batch_size
    encoder = {
        name: _predict_scores(
            model, docs[name], pad_id, batch, window.pooling, task_data.multi_label
        )
        for name in docs
        if name in ("dev", "test", "dev_unrelated", "test_unrelated")
    }
    hybrid = (
        Hybrid.fit(task_data, encoder, config, sparse)
        if config.model.hybrid or sparse is not None
        else None
    )
    if hybrid is not None:
        log.info("%s: hybrid chosen on dev: %s", task, hybrid.rule.describe_dev())
        detector = hybrid.sparse.detector
        if detector is not None:
            log.info("%s: %s", task, describe_detector(detector))
    thresholds, metrics = decide_and_score(task_data, encoder, config, hybrid)
    if thresholds:
        log.info("%s: thresholds tuned on dev: %s", task, thresholds)
    for name in ("dev", "test"):
        if name in metrics:
            log.info(
                "%s %s: macro-F1 %.4f, accuracy %.4f",
                task,
                name,
                metrics[name]["macro_f1"],
                metrics[name]["accuracy"],
            )
    for name, rel in metrics.get("relevance", {}).items():
        log.info(
            "%s %s: %d unrelated pairs, %.1f%% labelled %r",
            task,
            name,
            rel["pairs"],
            100 * rel["neutral_share"],
            task_data.unrelated["label"],
        )
    metrics["best_step"] = best_step
    metrics["windows_per_article"] = {
        name: round(float(np.mean([len(d) for d in split_docs])), 3)
        for name, split_docs in docs.items()
        if split_docs and not name.endswith("_unrelated")
    }
    dev_fp32 = np.concatenate(
        [
            encoder[name]
            for name in ("dev", "dev_unrelated")
            if name in encoder and len(encoder[name])
        ]
    )
    dev_docs = docs["dev"] + docs.get("dev_unrelated", [])
    agreement = _int8_agreement(
        model,
        task_data,
        dev_docs,
        dev_fp32,
        pad_id,
        config,
        thresholds if hybrid is None or hybrid.rule.choice == "encoder" else {},
    )
    int8_evidence = precision_evidence(agreement, len(dev_docs))
    log.info("%s: int8 agrees with fp32 on %s", task, describe_evidence(int8_evidence))
    if too_small_note(task, "int8", int8_evidence):
        log.info(too_small_note(task, "int8", int8_evidence))
    entry = TaskManifest(
        task=task,
        path=task,
        labels=task_data.labels,
        multi_label=task_data.multi_label,
        thresholds=thresholds,
        prior_correction=prior_correction,
        at_least_one=config.thresholds.at_least_one,
        include_title=config.model.include_title,
        default_targets=task_data.default_targets,
        target_descriptions=task_data.target_descriptions,
        unrelated=task_data.unrelated,
        precision_agreement={"int8": agreement},
        precision_evidence={"int8": int8_evidence},
        hybrid=hybrid.rule if hybrid is not None else None,
        metrics=metrics,
    ).model_dump()
    entry["data"] = task_data.fingerprints
    if state.is_main_process:
        final_dir = task_dir / "final"
        shutil.rmtree(final_dir, ignore_errors=True)
        shutil.copytree(best_dir, final_dir)
        if (
            prior_correction
        ):  # best/ keeps the weights as trained, so a resumed run corrects them once
            model.save_pretrained(final_dir)
        if hybrid is not None:
            hybrid.sparse.save(final_dir / hybrid.rule.path)
        (task_dir / "result.json").write_text(
            json.dumps(entry, ensure_ascii=False, indent=2), encoding="utf-8"
        )
    state.wait_for_everyone()
    return entry


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
        search_trials: First run this many Optuna trials on dev (:mod:`naba.train.search`) and train
            with the best trial's settings; the search is recorded in the manifest (``search``).

    Returns:
        The model directory: ``naba.json``, ``README.md``, ``config.yaml``,
        ``metrics.jsonl``, ``train.log`` and one HF directory per task.

    Raises:
        FileExistsError: the output exists and neither ``overwrite`` nor ``resume`` is set.
        InputError, ModelDirError, TrainingError: bad data, base model or state.
    """
    from naba.train.run import RunDir, check_output, partial_dir

    out = Path(output or config.output_dir)
    check_output(out, overwrite=overwrite, resume=resume)
    # Every task's data and the base model's weights are checked before anything is
    # written: a bad row in the stance data must not surface after the topic model trained.
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
    searched = None
    if search_trials:
        from naba.train.search import apply, search

        saved_search = partial_dir(out) / "search.json"
        if resume and saved_search.exists():
            searched = json.loads(saved_search.read_text(encoding="utf-8"))
        else:
            searched = search(config, search_trials, out.with_name(out.name + ".search"), train)
        config = apply(config, searched["best"]["params"])
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


def assemble(
    config: NabaConfig,
    entries: dict[str, dict[str, Any]],
    work: Path,
    out: Path,
    searched: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Build the final directory next to ``out`` and rename it into place (``extra``: more manifest fields)."""
    from naba import __version__
    from naba.atomic import atomic_dir
    from naba.train.card import model_card, task_card

    data = {task: entry.pop("data") for task, entry in entries.items()}
    fields: dict[str, Any] = {
        "base_model": config.model.base,
        **({"search": searched} if searched is not None else {}),
        **(extra or {}),
    }
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        naba_version=__version__,
        normalization=config.normalization,
        window=config.model.window,
        tasks={t: TaskManifest.model_validate(e) for t, e in entries.items()},
        data=data,
        training_config=config.to_dict(),
        versions=library_versions(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **fields,
    )
    with atomic_dir(out, overwrite=True) as tmp:
        for task in entries:
            shutil.copytree(work / task / "final", tmp / task)
            for events in (work / task / "trainer").glob("runs/*"):  # report_to: tensorboard
                shutil.copytree(events, tmp / "logs" / task / events.name)
        write_manifest(manifest, tmp)
        for name, spec in manifest.tasks.items():
            write_decision_rule(spec, tmp / spec.path)
            (tmp / spec.path / "README.md").write_text(task_card(manifest, name), encoding="utf-8")
        (tmp / "README.md").write_text(model_card(manifest), encoding="utf-8")
        shutil.copy(work / "config.yaml", tmp / "config.yaml")
        with (
            open(tmp / "metrics.jsonl", "w", encoding="utf-8") as metrics,
            open(tmp / "train.log", "w", encoding="utf-8") as logf,
        ):
            for task in entries:
                for name, handle in (("metrics.jsonl", metrics), ("train.log", logf)):
                    source = work / task / name
                    if source.exists():
                        handle.write(source.read_text(encoding="utf-8"))
    shutil.rmtree(work, ignore_errors=True)

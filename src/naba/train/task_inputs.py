"""What one task trains on: its run's context, the base model, the windows, the targets and the
loss.

Fine-tuning (:mod:`naba.train.trainer`), distillation (:mod:`naba.train.distill`)
and the dry run (:mod:`naba.train.plan`) all build a task's inputs here, so
they window, encode and weigh articles the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import NabaConfig
from naba.data.records import labels_of
from naba.decision import binarize, class_weights
from naba.encoding import task_windows
from naba.hub import load_kwargs, unreachable
from naba.train.data import TaskData
from naba.train.engine import RunLog, TrainingError


@dataclass
class TaskRun:
    """One task's training run: its config and data, its work directory, the process and its log.

    ``state`` is Accelerate's ``PartialState`` (which process this is);
    ``show_progress_bar``: None shows one on the main process.
    """

    config: NabaConfig
    task_data: TaskData
    task_dir: Path
    state: Any
    resume: bool
    show_progress_bar: bool | None
    log: RunLog


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


def load_base_model(config: NabaConfig, task_data: TaskData) -> tuple[Any, Any]:
    """``model.base`` as a sequence classifier with the task's labels, and its (fast) tokenizer."""
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
    # transformers, tokenizers and safetensors raise many types
    except Exception as exc:  # noqa: BLE001
        raise unreachable(base, exc) from None
    if task_data.target_descriptions:  # in config.json: what the encoder was fed for each target
        model.config.target_descriptions = task_data.target_descriptions
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingError(
            f"{base}: needs a fast (Rust) tokenizer for windowing; found {type(tokenizer).__name__}"
        )
    return model, tokenizer


def task_docs(
    task_data: TaskData, tokenizer: Any, config: NabaConfig, log: RunLog
) -> dict[str, list[list[dict]]]:
    """Every split (and the generated unrelated stance pairs) as windows, the way inference makes
    them."""
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

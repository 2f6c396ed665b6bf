"""Task distillation (``naba distill``): a smaller student made from a fine-tuned teacher's own
weights.

Per task of the teacher, the student is the teacher's task encoder with K of
its N layers kept (spread evenly, the top layer always kept, as TinyBERT maps
layers; or the first K); embeddings, vocabulary, pooler and head are the
teacher's. It trains on naba's one training engine
(:func:`naba.train.trainer.fit_task`) to match the teacher's pooled article
logits softened by a temperature, plus the gold label where an article has
one (DistilBERT/TinyBERT-style task distillation; Hinton et al.'s loss):

    loss = alpha * T^2 * KL(teacher(T) || student(T)) + (1 - alpha) * gold loss

(multi-label: binary cross-entropy against the teacher's sigmoid scores at T).
It reads the teacher's training data (its train split, with the unrelated
stance pairs it was trained on) and, optionally, unlabeled articles that only
the teacher labels. Dev picks the best checkpoint; the prior correction, the
hybrid blend (with the teacher's own sparse part, carried over) and the
thresholds are chosen again on dev for the student; int8 agreement with fp32
is measured. The result is an ordinary naba model directory whose manifest
and card name the teacher (``distilled_from``).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from naba.config import NabaConfig
from naba.errors import ModelDirError
from naba.train.data import TaskData
from naba.train.task_inputs import TaskRun

logger = logging.getLogger(__name__)

TEACHER_LOGITS = "teacher_logits.npy"
SETTINGS_FILE = "distill.json"


class DistillSettings(BaseModel):
    """What ``naba distill`` was asked for (recorded in the manifest's ``distilled_from``)."""

    model_config = ConfigDict(extra="forbid")

    layers: int = Field(6, ge=1)  # encoder layers the student keeps
    pick: Literal["every", "first"] = "every"  # spread evenly (top layer kept) or the first K
    temperature: float = Field(2.0, gt=0)  # softens teacher and student logits in the soft loss
    alpha: float = Field(
        0.5, ge=0, le=1
    )  # weight of the soft (teacher) loss; 1 - alpha on gold labels
    unlabeled: list[
        str
    ] = []  # files of unlabeled articles (.txt/.txt.gz a line each, or JSONL with title/text)
    max_unlabeled: int | None = Field(None, ge=1)  # read at most this many unlabeled articles


def kept_layers(total: int, keep: int, pick: str = "every") -> list[int]:
    """The teacher layers a student keeps: ``every`` spreads ``keep`` of ``total`` evenly, ending
    with the top one (12 -> 6: 1, 3, 5, 7, 9, 11; 12 -> 4: 2, 5, 8, 11); ``first`` keeps
    ``0 .. keep - 1``."""
    if not 1 <= keep <= total:
        raise ValueError(f"keep {keep} of {total} layers")
    if pick == "first":
        return list(range(keep))
    return [round((i + 1) * total / keep) - 1 for i in range(keep)]


def _layer_stack(model: Any) -> tuple[Any, str, Any]:
    """(parent module, attribute, ModuleList) of the encoder's layer stack: the one ModuleList of
    ``num_hidden_layers``."""
    from torch import nn

    total = model.config.num_hidden_layers
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == total
    ]
    if len(found) != 1:
        raise ModelDirError(
            f"{type(model).__name__}: cannot tell its stack of {total} encoder layers "
            f"({len(found)} candidates); naba distill supports BERT-like encoders"
        )
    name, stack = found[0]
    parent_name, _, attribute = name.rpartition(".")
    return model.get_submodule(parent_name) if parent_name else model, attribute, stack


def make_student(teacher: Any, keep: int, pick: str = "every") -> tuple[Any, list[int]]:
    """A copy of ``teacher`` (a sequence classifier) with ``keep`` of its encoder layers; returns it
    and the layers kept.

    The student's config says ``num_hidden_layers = keep`` (per-layer config
    lists are cut the same way), so plain ``transformers`` loads it.

    Raises:
        ModelDirError: the layer stack cannot be found, or ``keep`` is more than the teacher has.
    """
    from torch import nn

    total = teacher.config.num_hidden_layers
    if not 1 <= keep <= total:
        raise ModelDirError(
            f"--layers {keep}: the teacher's encoder has {total} layers; choose 1 to {total}"
        )
    student = copy.deepcopy(teacher)
    parent, attribute, stack = _layer_stack(student)
    kept = kept_layers(total, keep, pick)
    setattr(parent, attribute, nn.ModuleList([stack[i] for i in kept]))
    for key, value in list(vars(student.config).items()):
        if isinstance(value, list) and len(value) == total and key not in ("id2label", "label2id"):
            setattr(student.config, key, [value[i] for i in kept])
    student.config.num_hidden_layers = keep
    return student, kept


class DistillLoss(torch.nn.Module):
    """The distillation loss on pooled article logits; ``y`` rows are ``[has gold, gold..., teacher
    logits...]``.

    Args:
        hard: The loss on gold labels (class-weighted, as ``naba train`` uses), for the articles
            that have one.
    """

    def __init__(
        self,
        n_labels: int,
        multi_label: bool,
        temperature: float,
        alpha: float,
        hard: torch.nn.Module,
    ) -> None:
        super().__init__()
        self.n, self.multi, self.temperature, self.alpha, self.hard = (
            n_labels,
            multi_label,
            temperature,
            alpha,
            hard,
        )

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        teacher, t = y[:, -self.n :].to(logits.dtype), self.temperature
        if self.multi:
            soft = (
                F.binary_cross_entropy_with_logits(logits / t, torch.sigmoid(teacher / t)) * t * t
            )
        else:
            soft = (
                F.kl_div(
                    F.log_softmax(logits / t, dim=-1),
                    F.log_softmax(teacher / t, dim=-1),
                    log_target=True,
                    reduction="batchmean",
                )
                * t
                * t
            )
        has = y[:, 0] > 0.5
        if self.alpha >= 1 or not bool(has.any()):
            return self.alpha * soft
        gold = y[has, 1 : 1 + self.n] if self.multi else y[has, 1].long()
        return self.alpha * soft + (1 - self.alpha) * self.hard(logits[has], gold)


def packed_targets(task_data: TaskData, gold: np.ndarray | None, teacher: np.ndarray) -> np.ndarray:
    """``[has gold, gold (an index, or a 0/1 row for multi-label), teacher logits]`` per article,
    float32.

    ``gold`` covers the first ``len(gold)`` articles; the rest (unlabeled) have none.
    """
    n, labels = len(teacher), len(task_data.labels)
    width = labels if task_data.multi_label else 1
    out = np.zeros((n, 1 + width + labels), dtype=np.float32)
    out[:, -labels:] = teacher
    if gold is not None and len(gold):
        out[: len(gold), 0] = 1.0
        out[: len(gold), 1 : 1 + width] = gold.reshape(len(gold), width)
    return out


def unlabeled_records(
    settings: DistillSettings, task_data: TaskData, config: NabaConfig, seed: int
) -> list[dict[str, Any]]:
    """The unlabeled articles as records of the task: topics read them as they are; stance pairs
    each with one of the targets the teacher was trained on (drawn with ``seed``), for the
    teacher to judge."""
    from naba.encoder.build import corpus_lines
    from naba.errors import InputError

    if not settings.unlabeled:
        return []
    texts = list(
        corpus_lines(
            [Path(p) for p in settings.unlabeled], settings.max_unlabeled, config.normalization
        )
    )
    if task_data.task == "topic":
        return [{"id": f"unlabeled-{i}", "title": "", "text": text} for i, text in enumerate(texts)]
    targets = task_data.default_targets or sorted({r["target"] for r in task_data.splits["train"]})
    if not targets:
        raise InputError(
            "--unlabeled: the stance data has no targets to pair unlabeled articles with"
        )
    from naba.data.targets import read_target

    rng = random.Random(seed)
    return [  # the splits read descriptions (naba.data.targets.described): so do these pairs
        {
            "id": f"unlabeled-{i}",
            "target": read_target(rng.choice(targets), task_data.target_descriptions),
            "text": text,
        }
        for i, text in enumerate(texts)
    ]


def _teacher_logits(
    task_dir: Path,
    teacher: Any,
    docs: list[list[dict]],
    pad_id: int,
    config: NabaConfig,
    state: Any,
    log: Any,
) -> np.ndarray:
    """The teacher's pooled logits for the training articles, computed once (kept in the work
    directory for resume)."""
    import time

    from naba.train.scoring import logits_in_window_batches

    path = task_dir / TEACHER_LOGITS
    if state.is_main_process and not (path.exists() and len(np.load(path)) == len(docs)):
        started = time.perf_counter()
        logits = logits_in_window_batches(
            teacher, docs, pad_id, config.train.eval_batch_size, config.model.window.pooling
        )
        tmp = path.with_name("teacher_logits.tmp.npy")
        np.save(tmp, logits.astype(np.float32))
        os.replace(tmp, path)
        log.info(
            "%s: teacher logits for %d articles in %.0f s",
            task_dir.name,
            len(docs),
            time.perf_counter() - started,
        )
    state.wait_for_everyone()
    return np.load(path)


def _headline(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Macro-F1 and accuracy per split (and the encoder part's macro-F1 where the model is a
    hybrid)."""
    out = {}
    for split in ("dev", "test"):
        if split in metrics:
            out[split] = {k: round(metrics[split][k], 4) for k in ("macro_f1", "accuracy")}
            encoder = metrics.get("parts", {}).get("encoder", {}).get(split)
            if encoder:
                out[split]["encoder_macro_f1"] = encoder["macro_f1"]
    return out


def distill_task(
    teacher_dir: Path,
    config: NabaConfig,
    settings: DistillSettings,
    task_data: TaskData,
    work: Path,
    state: Any,
    resume: bool,
    show_progress_bar: bool | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Distil one task of the teacher into ``work/<task>/final``; return its manifest entry and
    what was done."""
    from naba.manifest import read_manifest
    from naba.sparse import SparseModel
    from naba.train.engine import RunLog
    from naba.train.task_inputs import doc_inputs, task_docs
    from naba.train.trainer import finished_task, fit_task

    task = task_data.task
    spec = read_manifest(teacher_dir).tasks[task]
    task_dir = work / task
    record_file = task_dir / "distilled.json"
    finished = finished_task(task_dir, resume)
    if finished is not None and record_file.exists():
        return finished, json.loads(record_file.read_text(encoding="utf-8"))
    if state.is_main_process:
        task_dir.mkdir(parents=True, exist_ok=True)
    state.wait_for_everyone()
    log = RunLog(task_dir, state.is_main_process)
    run = TaskRun(config, task_data, task_dir, state, resume, show_progress_bar, log)
    source = teacher_dir / spec.path
    tokenizer, teacher = _load_teacher(source, task)
    student, kept = make_student(teacher, settings.layers, settings.pick)
    total = teacher.config.num_hidden_layers
    log.info(
        "%s: student keeps %d of the teacher's %d layers (%s)",
        task,
        len(kept),
        total,
        ", ".join(map(str, kept)),
    )

    docs = task_docs(task_data, tokenizer, config, log)
    extra = unlabeled_records(settings, task_data, config, config.seed)
    train_docs = docs["train"] + (doc_inputs(task_data, extra, tokenizer, config) if extra else [])
    if extra:
        log.info("%s: %d unlabeled articles (teacher labels only)", task, len(extra))
    y, loss = _soft_targets(run, settings, teacher, tokenizer, train_docs)
    del teacher
    sparse = None
    if spec.hybrid is not None and (source / spec.hybrid.path).exists():
        sparse = SparseModel.load(source / spec.hybrid.path)
    torch.manual_seed(config.seed)
    entry = fit_task(run, student, tokenizer, docs, train_docs, y, loss, sparse=sparse)
    done = {
        "task": task,
        "teacher_layers": total,
        "layers": kept,
        "train_articles": len(docs["train"]),
        "unlabeled_articles": len(extra),
        "teacher_metrics": _headline(spec.metrics),
        "sparse": "the teacher's" if sparse is not None else None,
    }
    if state.is_main_process:
        record_file.write_text(json.dumps(done, ensure_ascii=False, indent=2), encoding="utf-8")
    return entry, done


def _load_teacher(source: Path, task: str) -> tuple[Any, Any]:
    """The teacher's tokenizer and task encoder (a sequence classifier) from ``source``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        teacher = AutoModelForSequenceClassification.from_pretrained(source, use_safetensors=True)
    except (OSError, ValueError) as exc:
        raise ModelDirError(f"{source}: cannot load the teacher's {task} encoder ({exc})") from None
    return tokenizer, teacher


def _soft_targets(
    run: TaskRun,
    settings: DistillSettings,
    teacher: Any,
    tokenizer: Any,
    train_docs: list[list[dict]],
) -> tuple[np.ndarray, DistillLoss]:
    """The training targets (:func:`packed_targets`: gold where there is one, the teacher's
    logits) and the distillation loss on them."""
    from naba.train.task_inputs import targets_matrix, task_loss

    config, task_data = run.config, run.task_data
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    logits = _teacher_logits(run.task_dir, teacher, train_docs, pad_id, config, run.state, run.log)
    gold = targets_matrix(task_data, task_data.splits["train"])
    loss = DistillLoss(
        len(task_data.labels),
        task_data.multi_label,
        settings.temperature,
        settings.alpha,
        task_loss(task_data, gold, config.train.class_weight),
    )
    return packed_targets(task_data, gold, logits), loss


def distill(
    teacher: str | Path,
    output: str | Path,
    settings: DistillSettings | None = None,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    resume: bool = False,
    overwrite: bool = False,
    show_progress_bar: bool | None = None,
) -> Path:
    """Distil every task of a naba model directory into a student with fewer layers; write the
    student's directory.

    Args:
        teacher: A model directory written by ``naba train`` (or ``naba distill``).
        output: The student's model directory.
        settings: Layers, layer choice, temperature, loss weight and unlabeled data (defaults: 6
            layers, spread).
        overrides: ``--set KEY=VALUE`` applied to the teacher's recorded training config
            (e.g. ``train.epochs=3``): the student trains with the teacher's settings otherwise.
        resume: Continue from the checkpoints in ``OUTPUT.partial/``.
        overwrite: Replace an existing output directory.

    Raises:
        FileExistsError: the output exists and neither ``overwrite`` nor ``resume`` is set.
        InputError, ModelDirError, TrainingError, ConfigError: bad teacher, data, settings or resume
            state.
    """
    from naba.manifest import read_manifest
    from naba.train.assemble import assemble
    from naba.train.data import recorded_config
    from naba.train.run import RunDir, check_output

    settings = settings or DistillSettings()
    teacher_dir, out = Path(teacher), Path(output)
    manifest = read_manifest(teacher_dir)
    check_output(out, overwrite=overwrite, resume=resume)
    if out.resolve() == teacher_dir.resolve():
        raise FileExistsError(f"{out}: is the teacher; write the student to another directory")
    config = recorded_config(manifest, overrides=overrides)
    prepared = _teacher_tasks(teacher_dir, manifest, config, settings)
    record = {
        "teacher": str(teacher_dir),
        "teacher_created": manifest.created,
        **settings.model_dump(),
    }
    run = RunDir.start(
        out,
        config,
        resume=resume,
        overwrite=overwrite,
        seed=config.seed,
        threads=config.train.torch_threads,
        records={SETTINGS_FILE: record},
        records_are="distillation settings",
    )
    work, state = run.work, run.state
    entries, done = {}, {}
    for task, task_data in prepared.items():
        entries[task], done[task] = distill_task(
            teacher_dir, config, settings, task_data, work, state, resume, show_progress_bar
        )
    if state.is_main_process:
        assemble(
            config,
            entries,
            work,
            out,
            extra={"base_model": manifest.base_model, "distilled_from": {**record, "tasks": done}},
        )
    state.wait_for_everyone()
    return out


def _teacher_tasks(
    teacher_dir: Path, manifest: Any, config: NabaConfig, settings: DistillSettings
) -> dict[str, TaskData]:
    """The teacher's training data for each of its tasks, in the teacher's label order; checked
    (data there, layers to keep) before anything is written."""
    from naba.train.data import add_unrelated_pairs, load_task_data

    prepared = {
        task: load_task_data(config, task)
        for task in manifest.tasks
        if getattr(config.tasks, task) is not None
    }
    missing = [task for task in manifest.tasks if task not in prepared]
    if missing:
        raise ModelDirError(
            f"{teacher_dir}: the recorded training config has no {missing[0]} data to distil on"
        )
    if "stance" in prepared:
        add_unrelated_pairs(prepared["stance"], config, prepared.get("topic"))
    for task, task_data in prepared.items():
        task_data.labels = manifest.tasks[task].labels  # the teacher's label order
        total = json.loads(
            (teacher_dir / manifest.tasks[task].path / "config.json").read_text(encoding="utf-8")
        ).get("num_hidden_layers", 0)
        if not 1 <= settings.layers <= total:
            raise ModelDirError(
                f"--layers {settings.layers}: the teacher's encoder has {total} layers; "
                f"choose 1 to {total}"
            )
    return prepared

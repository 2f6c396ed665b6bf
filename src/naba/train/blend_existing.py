"""``naba blend``: add or refit the hybrid of an existing model directory.

The encoder is kept as trained; the sparse part is fitted and the blend chosen
as training does (:mod:`naba.train.hybrid`), then the directory is rewritten
atomically.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from naba.config import NabaConfig
from naba.manifest import (
    Manifest,
    TaskManifest,
    read_manifest,
    write_decision_rule,
    write_manifest,
)
from naba.sparse import SPARSE_DIR
from naba.train.data import TaskData
from naba.train.hybrid import Hybrid, decide_and_score, split_rows

if TYPE_CHECKING:
    from naba.infer.classifier import Classifier


def blend_model(
    model_dir: str | Path,
    *,
    train: str | Path | None = None,
    dev: str | Path | None = None,
    task: str | None = None,
    allow_pickle: bool = False,
) -> dict[str, dict[str, Any]]:
    """Add or refit the sparse part and the blend of an existing model directory.

    The encoder is not retrained. Reads each task's splits from the training
    config recorded in ``naba.json`` (``train``/``dev`` replace them; they need
    ``task`` when the model has two tasks), fits the sparse model on train,
    scores dev with the encoder, chooses the blend and the multi-label
    thresholds on dev, rescores dev and test, and rewrites the directory
    atomically (a copy is built and renamed into place).

    Returns:
        Task -> its new manifest entry's ``hybrid`` and ``metrics``, and the
        sparse part's relevance ``detector`` (or None).

    Raises:
        InputError: unreadable splits, or ``train``/``dev`` without ``task`` on a two-task model.
        ModelDirError: the model directory cannot be loaded.
    """
    from naba.infer.classifier import Classifier

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    names = _tasks_to_blend(model_dir, manifest, task, bool(train or dev))
    splits = {name: {k: str(v) for k, v in (("train", train), ("dev", dev)) if v} for name in names}
    config, data = _recorded_task_data(model_dir, manifest, names, splits)
    classifier = Classifier.load(model_dir, "fp32", allow_pickle=allow_pickle)
    fitted = {}
    for name in names:
        task_data = data[name]
        task_data.labels = manifest.tasks[name].labels  # the encoder's label order
        encoder = _encoder_split_scores(classifier, task_data, name)
        hybrid = Hybrid.fit(task_data, encoder, config)
        thresholds, metrics = decide_and_score(task_data, encoder, config, hybrid)
        fitted[name] = (hybrid, thresholds, metrics)
    _rewrite_model_dir(model_dir, manifest, fitted)
    return {
        name: {"hybrid": h.rule, "metrics": m, "detector": h.sparse.detector}
        for name, (h, _, m) in fitted.items()
    }


def _tasks_to_blend(
    model_dir: Path, manifest: Manifest, task: str | None, new_splits: bool
) -> list[str]:
    """The tasks ``naba blend`` refits: ``task``, or every task of the model.

    Raises:
        InputError: the model has no such task, or ``--train``/``--dev`` name no
            task on a two-task model.
    """
    from naba.errors import InputError

    names = [task] if task else list(manifest.tasks)
    for name in names:
        if name not in manifest.tasks:
            raise InputError(
                f"{model_dir}: has no {name} task (it has {', '.join(manifest.tasks)})"
            )
    if new_splits and len(names) > 1:
        raise InputError(
            "--train/--dev: the model has two tasks; name the one they are for with --task"
        )
    return names


def _recorded_task_data(
    model_dir: Path, manifest: Manifest, names: list[str], splits: dict[str, dict[str, str]]
) -> tuple[NabaConfig, dict[str, TaskData]]:
    """The recorded training config (with ``splits`` replacing its files) and each task's data.

    Stance gets its generated unrelated pairs as training made them.

    Raises:
        InputError: a task in ``names`` has no data in the recorded config.
    """
    from naba.errors import InputError
    from naba.train.data import add_unrelated_pairs, load_task_data, recorded_config

    config = recorded_config(manifest, splits)
    data = {
        name: load_task_data(config, name)
        for name in manifest.tasks
        if getattr(config.tasks, name) is not None
    }
    missing = [name for name in names if name not in data]
    if missing:
        raise InputError(
            f"{model_dir}: the recorded training config has no {missing[0]} data; "
            "pass --train and --dev"
        )
    if "stance" in data:
        add_unrelated_pairs(data["stance"], config, data.get("topic"))
    return config, data


def _encoder_split_scores(
    classifier: Classifier, task_data: TaskData, name: str
) -> dict[str, np.ndarray]:
    """Split name -> the encoder's probabilities on dev, test and their unrelated pairs."""
    return {
        split: classifier.encoder_scores(split_rows(task_data, split), name)
        for split in ("dev", "test", "dev_unrelated", "test_unrelated")
        if (split in task_data.splits) or split[: -len("_unrelated")] in task_data.unrelated_pairs
    }


def _rewrite_model_dir(
    model_dir: Path,
    manifest: Manifest,
    fitted: dict[str, tuple[Hybrid, dict[str, float], dict[str, Any]]],
) -> None:
    """Write each refitted task's sparse part, manifest entry, rule and cards, atomically.

    A copy of the directory is built and renamed into place; each task keeps
    the metrics that are not the dev/test scores, the parts or relevance.
    """
    from naba.atomic import atomic_dir
    from naba.train.card import model_card, task_card

    with atomic_dir(model_dir, overwrite=True) as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        for name, (hybrid, thresholds, metrics) in fitted.items():
            spec = manifest.tasks[name]
            target = tmp / spec.path / SPARSE_DIR
            shutil.rmtree(target, ignore_errors=True)
            hybrid.sparse.save(target)
            kept = {
                k: v
                for k, v in spec.metrics.items()
                if k not in ("dev", "test", "parts", "relevance")
            }
            manifest.tasks[name] = TaskManifest.model_validate(
                {
                    **spec.model_dump(),
                    "hybrid": hybrid.rule,
                    "thresholds": thresholds,
                    "metrics": {**kept, **metrics},
                }
            )
        write_manifest(manifest, tmp)
        for name, spec in manifest.tasks.items():
            write_decision_rule(spec, tmp / spec.path)
            (tmp / spec.path / "README.md").write_text(task_card(manifest, name), encoding="utf-8")
        (tmp / "README.md").write_text(model_card(manifest), encoding="utf-8")

"""After a task trains: the choices made on dev, the scores on test, the task's ``final/``
directory.

From the best checkpoint's weights, in order: the prior correction
(single-label, folded into the encoder's bias), the hybrid blend (encoder,
sparse or both) on the corrected encoder's scores, then the multi-label
thresholds on the final scores. Test is only scored. The task's manifest
entry records the choices, the metrics and how often int8 keeps fp32's labels.
"""

from __future__ import annotations

import json
import shutil
from typing import Any

import numpy as np

from naba.infer.precision import describe as describe_evidence
from naba.infer.precision import evidence as precision_evidence
from naba.infer.precision import too_small_note
from naba.manifest import TaskManifest
from naba.train.scoring import correct_priors, int8_agreement, predict_scores
from naba.train.task_inputs import TaskRun

SCORED_SPLITS = ("dev", "test", "dev_unrelated", "test_unrelated")


def finish_task(
    run: TaskRun,
    tokenizer: Any,
    docs: dict[str, list],
    pad_id: int,
    best_step: int,
    *,
    sparse: Any = None,
) -> dict[str, Any]:
    """Reload the best weights, apply the prior correction, fit the hybrid, tune thresholds, score,
    write ``final/``; return the task's manifest entry.

    ``sparse``: a fitted sparse model to blend with; None fits one when the config asks for a
    hybrid.
    """
    from transformers import AutoModelForSequenceClassification

    from naba.train.hybrid import decide_and_score

    config, task_data, task_dir = run.config, run.task_data, run.task_dir
    best_dir = task_dir / "best"
    model = AutoModelForSequenceClassification.from_pretrained(best_dir, use_safetensors=True)
    prior_correction = 0.0
    if not task_data.multi_label and config.thresholds.prior_correction:
        prior_correction = correct_priors(model, task_data, docs["dev"], pad_id, config)
        run.log.info(
            "%s: prior correction chosen on dev: alpha %s", task_data.task, prior_correction
        )
    window, batch = config.model.window, config.train.eval_batch_size
    encoder = {
        name: predict_scores(
            model, docs[name], pad_id, batch, window.pooling, task_data.multi_label
        )
        for name in docs
        if name in SCORED_SPLITS
    }
    hybrid = _fit_hybrid(run, encoder, sparse)
    thresholds, metrics = decide_and_score(task_data, encoder, config, hybrid)
    _log_metrics(run, thresholds, metrics)
    metrics["best_step"] = best_step
    metrics["windows_per_article"] = {
        name: round(float(np.mean([len(d) for d in split_docs])), 3)
        for name, split_docs in docs.items()
        if split_docs and not name.endswith("_unrelated")
    }
    agreement, int8_evidence = _int8_evidence(
        run,
        model,
        docs,
        encoder,
        pad_id,
        thresholds if hybrid is None or hybrid.rule.choice == "encoder" else {},
    )
    entry = TaskManifest(
        task=task_data.task,
        path=task_data.task,
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
    if run.state.is_main_process:
        _write_final(run, model, entry, hybrid, corrected=bool(prior_correction))
    run.state.wait_for_everyone()
    return entry


def _fit_hybrid(run: TaskRun, encoder: dict[str, np.ndarray], sparse: Any) -> Any:
    """The hybrid chosen on dev (the config asks for one, or a sparse model is given), or None."""
    from naba.blend import describe_detector
    from naba.train.hybrid import Hybrid

    config, task_data, task = run.config, run.task_data, run.task_data.task
    hybrid = (
        Hybrid.fit(task_data, encoder, config, sparse)
        if config.model.hybrid or sparse is not None
        else None
    )
    if hybrid is not None:
        run.log.info("%s: hybrid chosen on dev: %s", task, hybrid.rule.describe_dev())
        detector = hybrid.sparse.detector
        if detector is not None:
            run.log.info("%s: %s", task, describe_detector(detector))
    return hybrid


def _log_metrics(run: TaskRun, thresholds: dict[str, float], metrics: dict[str, Any]) -> None:
    """The thresholds, dev and test scores and the unrelated pairs' share in ``train.log``."""
    task_data, task = run.task_data, run.task_data.task
    if thresholds:
        run.log.info("%s: thresholds tuned on dev: %s", task, thresholds)
    for name in ("dev", "test"):
        if name in metrics:
            run.log.info(
                "%s %s: macro-F1 %.4f, accuracy %.4f",
                task,
                name,
                metrics[name]["macro_f1"],
                metrics[name]["accuracy"],
            )
    for name, rel in metrics.get("relevance", {}).items():
        run.log.info(
            "%s %s: %d unrelated pairs, %.1f%% labelled %r",
            task,
            name,
            rel["pairs"],
            100 * rel["neutral_share"],
            task_data.unrelated["label"],
        )


def _int8_evidence(
    run: TaskRun,
    model: Any,
    docs: dict[str, list],
    encoder: dict[str, np.ndarray],
    pad_id: int,
    thresholds: dict[str, float],
) -> tuple[float, Any]:
    """How often int8 keeps fp32's labels on dev (its unrelated pairs included), and the
    evidence."""
    task = run.task_data.task
    dev_fp32 = np.concatenate(
        [
            encoder[name]
            for name in ("dev", "dev_unrelated")
            if name in encoder and len(encoder[name])
        ]
    )
    dev_docs = docs["dev"] + docs.get("dev_unrelated", [])
    agreement = int8_agreement(
        model, run.task_data, dev_docs, dev_fp32, pad_id, run.config, thresholds
    )
    int8_evidence = precision_evidence(agreement, len(dev_docs))
    run.log.info("%s: int8 agrees with fp32 on %s", task, describe_evidence(int8_evidence))
    if too_small_note(task, "int8", int8_evidence):
        run.log.info(too_small_note(task, "int8", int8_evidence))
    return agreement, int8_evidence


def _write_final(
    run: TaskRun, model: Any, entry: dict[str, Any], hybrid: Any, *, corrected: bool
) -> None:
    """``final/`` (the best weights, corrected where a prior correction was chosen, and the sparse
    part) and ``result.json``, the entry a resumed run reads back."""
    task_dir = run.task_dir
    final_dir = task_dir / "final"
    shutil.rmtree(final_dir, ignore_errors=True)
    shutil.copytree(task_dir / "best", final_dir)
    if corrected:  # best/ keeps the weights as trained, so a resumed run corrects them once
        model.save_pretrained(final_dir)
    if hybrid is not None:
        hybrid.sparse.save(final_dir / hybrid.rule.path)
    (task_dir / "result.json").write_text(
        json.dumps(entry, ensure_ascii=False, indent=2), encoding="utf-8"
    )

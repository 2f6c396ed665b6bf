"""``naba evaluate``: metrics, figures and a self-contained HTML/Markdown report.

Writes ``metrics.json``, ``predictions.jsonl``, ``report.md`` (figures as PNG
files beside it) and ``report.html`` (figures embedded, Arabic snippets
right-to-left) into the report directory, atomically. The figures are drawn
in :mod:`naba.evaluation.report_figures`, the pages rendered in
:mod:`naba.evaluation.report_render`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from naba.atomic import atomic_dir
from naba.data.readers import read_rows
from naba.data.records import Task, labels_of, load_records, unknown_labels
from naba.data.writers import dumps
from naba.decision import decide
from naba.errors import InputError
from naba.evaluation.metrics import classification_metrics
from naba.evaluation.report_figures import report_figures
from naba.evaluation.report_render import report_html, report_markdown
from naba.evaluation.review_report import add_error_evidence

if TYPE_CHECKING:
    from naba.manifest import Manifest

logger = logging.getLogger(__name__)


def _detect_task(tasks: dict[str, Any], data: Path) -> Task:
    """The model's only task, else ``stance`` when the data's first row has a stance label.

    Raises:
        InputError: the data file is missing, a directory or unreadable.
    """
    if len(tasks) == 1:
        return next(iter(tasks))
    for _, row in read_rows(data):
        if isinstance(row, dict):
            return "stance" if "stance" in row else "topic"
    return "topic"


def evaluate_model(
    model_dir: str | Path,
    data: str | Path,
    report_dir: str | Path,
    *,
    task: Task | None = None,
    baseline_train: str | Path | None = None,
    compare: str | Path | None = None,
    precision: str = "fp32",
    batch_size: int = 16,
    overwrite: bool = True,
    show_progress_bar: bool | None = None,
    allow_pickle: bool = False,
    unrelated: str | Path | None = None,
    device: str | None = "auto",
    runtime: str = "auto",
) -> dict[str, Any]:
    """Score a model on labelled data and write the report directory.

    Args:
        model_dir: A naba model directory.
        data: Canonical labelled JSONL (or CSV/Parquet) for one task; a file laid out like the
            model's training data (its text column) is read with the training config's columns.
        report_dir: Where ``metrics.json``, ``report.md`` and ``report.html`` go.
        task: ``topic`` or ``stance`` (default: the model's only task, else from the data).
        baseline_train: Train a TF-IDF + linear baseline on this split and score it on ``data``.
        compare: Another report directory to compare against (deltas).
        allow_pickle: Allow a model directory with pickle weights (never needed for naba's own
            models).
        unrelated: Stance: articles about none of the data's targets (JSONL/CSV/Parquet with a
            ``text``), each paired with one of the data's targets; the relevance section reports the
            share labelled neutral. Without it, pairs are generated from the data's own texts and
            targets (each text with a target it is not paired with in the data).
        runtime: ``torch``, ``onnx`` or ``auto`` (see
            :meth:`naba.infer.classifier.Classifier.load`).

    Returns:
        The metrics dict written to ``metrics.json``.

    Raises:
        InputError: unreadable data, or gold labels the model does not know (file, line and field
            named).
        ModelDirError: the model directory cannot be loaded.
    """
    from naba.infer.classifier import Classifier

    data, report_dir = Path(data), Path(report_dir)
    manifest, task, records = _labelled_data(model_dir, data, task)
    spec = manifest.tasks[task]
    classifier = Classifier.load(
        model_dir, precision, allow_pickle=allow_pickle, device=device, runtime=runtime
    )
    scored, metrics = _scored(
        classifier, records, task, batch_size=batch_size, show_progress_bar=show_progress_bar
    )
    metrics.update(_run_details(classifier, task, model_dir, data, precision))
    metrics.update(_task_details(classifier, task, scored, unrelated, batch_size))
    baseline = None
    if baseline_train is not None:
        baseline = _baseline_metrics(manifest, task, scored, baseline_train)
        metrics["baseline"] = baseline
    other = _compared_report(compare, metrics)
    errors = _confident_errors(records, scored.gold, scored.predicted, scored.scores, spec.labels)
    if spec.hybrid is not None:  # what in each article weighs for the wrong label (sparse part)
        add_error_evidence(errors, records, classifier.tasks[task].sparse)
    figures = report_figures(
        spec.labels,
        scored.gold,
        scored.predicted,
        scored.scores,
        spec.multi_label,
        metrics,
        baseline,
    )
    with atomic_dir(report_dir, overwrite=overwrite) as tmp:
        _write_report(tmp, scored, metrics, baseline, other, errors, figures)
    return metrics


@dataclass
class _Scored:
    """The evaluated articles, their gold and predicted labels, and the scores behind them."""

    records: list[dict[str, Any]]
    labels: list[str]  # the task's labels: the columns of ``scores``
    gold: list[list[str]]
    predicted: list[list[str]]
    scores: np.ndarray
    windows_per_article: dict[str, Any]


def _labelled_data(
    model_dir: str | Path, data: Path, task: Task | None
) -> tuple[Manifest, Task, list[dict[str, Any]]]:
    """The model's manifest, the task evaluated and its labelled records: the cheap checks, made
    before the weights load.

    Raises:
        InputError: the model has no such task; unreadable data; gold labels the model does not
            know (file, line and field named).
    """
    from naba.data.columns import recorded_columns
    from naba.manifest import read_manifest

    manifest = read_manifest(model_dir)
    task = task or _detect_task(manifest.tasks, data)
    if task not in manifest.tasks:
        raise InputError(f"{model_dir}: has no {task} model (it has {', '.join(manifest.tasks)})")
    spec = manifest.tasks[task]
    columns = recorded_columns(manifest.training_config, task, data)
    records = load_records(data, task, columns)
    gold = [labels_of(r, task) for r in records]
    if {label for g in gold for label in g} - set(spec.labels):
        unknown, rows, line = unknown_labels(data, task, spec.labels, columns)
        raise InputError(
            f"{data}:{line}: {'topics' if task == 'topic' else 'stance'}: labels {unknown} are not "
            f"among the model's labels {spec.labels} ({rows} "
            f"{'row has' if rows == 1 else 'rows have'} them); "
            "map them or evaluate a model trained on them"
        )
    return manifest, task, records


def _scored(
    classifier: Any,
    records: list[dict[str, Any]],
    task: Task,
    *,
    batch_size: int,
    show_progress_bar: bool | None,
) -> tuple[_Scored, dict[str, Any]]:
    """The model's labels and scores for ``records``, and their metrics against the gold labels
    (a hybrid: with each part's, under ``parts``)."""
    spec = classifier.tasks[task].spec
    gold = [labels_of(r, task) for r in records]
    # One tokenisation: the windows scored are the windows counted.
    prepared = classifier.prepare(records, tasks=[task], parts=spec.hybrid is not None)
    parts: dict[str, Any] = {}
    if spec.hybrid is not None:
        predicted, scores, parts = _hybrid_predictions(classifier, prepared, task, gold, batch_size)
    else:
        results = classifier.classify(
            prepared, batch_size=batch_size, show_progress_bar=show_progress_bar
        )
        if task == "topic":
            predicted = [r["topics"]["labels"] for r in results]
            scores = np.array(
                [[r["topics"]["scores"][label] for label in spec.labels] for r in results]
            )
        else:
            predicted = [[r["stance"][0]["label"]] for r in results]
            scores = np.array(
                [[r["stance"][0]["scores"][label] for label in spec.labels] for r in results]
            )
    metrics = classification_metrics(gold, predicted, spec.labels, spec.multi_label, scores)
    if parts:
        metrics["parts"] = parts
        metrics["hybrid"] = spec.hybrid.summary()
    counts = prepared.windows(task)
    windows = {"mean": round(float(np.mean(counts)), 3), "max": int(max(counts))}
    return _Scored(records, spec.labels, gold, predicted, scores, windows), metrics


def _hybrid_predictions(
    classifier: Any, prepared: Any, task: Task, gold: list[list[str]], batch_size: int
) -> tuple[list[list[str]], np.ndarray, dict[str, Any]]:
    """A hybrid task's labels and scores (the hybrid's: the ones predict gives), and the metrics of
    each part (encoder, sparse, hybrid) side by side."""
    spec = classifier.tasks[task].spec
    part_scores = classifier.part_scores(prepared, task, batch_size=batch_size)
    scores = part_scores["hybrid"]
    predicted = decide(
        scores, spec.labels, spec.multi_label, spec.thresholds or None, spec.at_least_one
    )
    parts: dict[str, Any] = {}
    for part, part_probs in part_scores.items():
        limits = spec.thresholds if part == "hybrid" else spec.hybrid.part_thresholds.get(part)
        m = classification_metrics(
            gold,
            decide(part_probs, spec.labels, spec.multi_label, limits or None, spec.at_least_one),
            spec.labels,
            spec.multi_label,
        )
        parts[part] = {
            "macro_f1": m["macro_f1"],
            "accuracy": m["accuracy"],
            "per_class_f1": {label: v["f1"] for label, v in m["per_class"].items()},
        }
    return predicted, scores, parts


def _run_details(
    classifier: Any, task: Task, model_dir: str | Path, data: Path, precision: str
) -> dict[str, Any]:
    """What was evaluated, on what, and how: the head of ``metrics.json`` after the metrics."""
    spec = classifier.tasks[task].spec
    return {
        "task": task,
        "model": str(model_dir),
        "data": str(data),
        "precision": precision,
        "task_precision": classifier.task_precision[task],
        "device": classifier.device,
        "multi_label": spec.multi_label,
        "labels": spec.labels,
    }


def _task_details(
    classifier: Any, task: Task, scored: _Scored, unrelated: str | Path | None, batch_size: int
) -> dict[str, Any]:
    """Stance: the relevance section (where the model has a neutral label); how the task decides
    (its thresholds, else its prior correction); the windows the encoder read per article."""
    spec = classifier.tasks[task].spec
    details: dict[str, Any] = {}
    if task == "stance":
        relevance = _relevance(classifier, scored.records, spec, unrelated, batch_size)
        if relevance is not None:
            details["relevance"] = relevance
    if spec.multi_label:
        details["thresholds"] = spec.thresholds
    else:
        details["prior_correction"] = spec.prior_correction
    details["windows_per_article"] = scored.windows_per_article
    return details


def _baseline_metrics(
    manifest: Manifest, task: Task, scored: _Scored, baseline_train: str | Path
) -> dict[str, Any]:
    """The metrics of a TF-IDF + linear baseline trained on ``baseline_train``, on the same data."""
    from naba.data.columns import recorded_columns
    from naba.data.targets import described
    from naba.sparse import SparseModel

    spec = manifest.tasks[task]
    # the baseline reads the targets as the model does (naba.json's target_descriptions)
    read = spec.target_descriptions if task == "stance" else None
    columns = recorded_columns(manifest.training_config, task, baseline_train)
    train_records = described(load_records(baseline_train, task, columns), read)
    norm = manifest.normalization
    model = SparseModel(task, spec.labels, spec.multi_label, norm).fit(train_records)
    baseline = classification_metrics(
        scored.gold, model.predict(described(scored.records, read)), spec.labels, spec.multi_label
    )
    baseline["train"] = str(baseline_train)
    return baseline


def _compared_report(compare: str | Path | None, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of the report directory ``compare`` (None: no comparison); ``metrics`` records
    it.

    Raises:
        InputError: ``compare`` holds no ``metrics.json``.
    """
    if compare is None:
        return None
    other_path = Path(compare) / "metrics.json"
    if not other_path.exists():
        raise InputError(
            f"{other_path}: not found; --compare takes a report directory written by "
            "`naba evaluate`"
        )
    other = json.loads(other_path.read_text(encoding="utf-8"))
    metrics["compared_with"] = str(compare)
    return other


def _write_report(
    directory: Path,
    scored: _Scored,
    metrics: dict[str, Any],
    baseline: dict[str, Any] | None,
    other: dict[str, Any] | None,
    errors: list[dict[str, Any]],
    figures: dict[str, bytes],
) -> None:
    """Write ``metrics.json``, ``predictions.jsonl``, the figures and both reports into
    ``directory``."""
    (directory / "metrics.json").write_text(
        json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    with open(directory / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for record, g, p, row in zip(scored.records, scored.gold, scored.predicted, scored.scores):
            scores = {label: round(float(s), 6) for label, s in zip(scored.labels, row)}
            handle.write(
                dumps({"id": record["id"], "gold": g, "predicted": p, "scores": scores}) + "\n"
            )
    for name, png in figures.items():
        (directory / f"{name}.png").write_bytes(png)
    (directory / "report.md").write_text(
        report_markdown(metrics, baseline, other, errors, figures), encoding="utf-8"
    )
    (directory / "report.html").write_text(
        report_html(metrics, baseline, other, errors, figures), encoding="utf-8"
    )


def _confident_errors(
    records: list[dict[str, Any]],
    gold: list[list[str]],
    predicted: list[list[str]],
    scores: np.ndarray,
    labels: list[str],
    limit: int = 10,
) -> list[dict[str, Any]]:
    errors = []
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if sorted(g) != sorted(p):
            confidence = max(
                float(scores[i, labels.index(label)]) for label in p if label in labels
            )
            text = " ".join(str(records[i].get("text", "")).split())
            errors.append(
                {
                    "id": records[i]["id"],
                    "gold": g,
                    "predicted": p,
                    "confidence": round(confidence, 4),
                    "target": records[i].get("target"),
                    "title": records[i].get("title"),
                    "snippet": text[:240] + ("…" if len(text) > 240 else ""),
                }
            )
    errors.sort(key=lambda e: -e["confidence"])
    return errors[:limit]


def _relevance(
    classifier: Any,
    records: list[dict[str, Any]],
    spec: Any,
    unrelated: str | Path | None,
    batch_size: int,
) -> dict[str, Any] | None:
    """The share of unrelated (article, target) pairs labelled neutral, overall and per target."""
    import random

    from naba.data.unrelated import neutral_label, unrelated_pairs

    try:
        label = (spec.unrelated or {}).get("label") or neutral_label(spec.labels, None, "model")
    except InputError:
        logger.warning(
            "warning: relevance: the model has no neutral stance label (%s); section skipped",
            ", ".join(spec.labels),
        )
        return None
    norm = classifier.manifest.normalization
    targets = sorted({r["target"] for r in records})
    if unrelated is not None:
        from naba.infer.predict import Rejected, iter_inputs

        rng = random.Random(13)
        items = [item for item in iter_inputs([Path(unrelated)]) if not isinstance(item, Rejected)]
        pairs = [
            {"text": item["text"], "target": item.get("target") or rng.choice(targets)}
            for item in items
        ]
        source = str(unrelated)
    else:
        pairs = unrelated_pairs(records, label, norm, ratio=1.0, seed=13)
        source = "generated from the evaluated data (each text with another of its targets)"
    if not pairs:
        return None
    results = classifier.predict(pairs, tasks=["stance"], batch_size=batch_size)
    per_target: dict[str, list[int]] = {}
    for pair, result in zip(pairs, results):
        per_target.setdefault(pair["target"], []).append(int(result["stance"][0]["label"] == label))
    hits = [h for values in per_target.values() for h in values]
    return {
        "source": source,
        "neutral_label": label,
        "pairs": len(pairs),
        "neutral_share": round(float(np.mean(hits)), 4),
        "per_target": {
            t: {"pairs": len(v), "neutral_share": round(float(np.mean(v)), 4)}
            for t, v in sorted(per_target.items())
        },
    }

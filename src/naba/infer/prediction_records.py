"""Prediction records (:class:`naba.infer.schema.Prediction`) assembled from a task's scores.

What :meth:`naba.infer.classifier.Classifier.classify` returns: the article's
``id``, its ``topics`` (labels decided from the scores, and the scores), its
``stance`` entries (a target, its label and scores, and the relevance where
the model has a relevance gate).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from naba.decision import decide


def add_topics(
    results: list[dict[str, Any]], task: Any, scores: np.ndarray, threshold: float | None
) -> None:
    """Give each result its ``topics``: the labels decided from its row of ``scores``, and the
    scores.

    ``threshold`` overrides every tuned threshold of the ``task`` (a :class:`TaskModel`).
    """
    spec = task.spec
    thresholds = (
        {label: threshold for label in spec.labels} if threshold is not None else spec.thresholds
    )
    decided = decide(scores, spec.labels, spec.multi_label, thresholds, spec.at_least_one)
    for result, labels, row in zip(results, decided, scores):
        result["topics"] = {"labels": labels, "scores": rounded(spec.labels, row)}


def add_stance(
    results: list[dict[str, Any]],
    pairs: list[tuple[int, str]],
    task: Any,
    scores: np.ndarray,
    not_about: np.ndarray | None,
) -> None:
    """Append a ``stance`` entry to the result of each ``(article index, target)`` pair.

    ``not_about``: per pair, the relevance gate's probability that the article
    is not about the target (None: no gate; NaN: no answer), given as
    ``relevance`` (its complement).
    """
    labels = task.spec.labels
    decided = decide(scores, labels, False)
    for j, ((i, target), chosen, row) in enumerate(zip(pairs, decided, scores)):
        entry = {"target": target, "label": chosen[0]}
        entry["scores"] = rounded(labels, row)
        if not_about is not None and not np.isnan(not_about[j]):
            entry["relevance"] = round(1.0 - float(not_about[j]), 6)
        results[i].setdefault("stance", []).append(entry)


class ProgressShare:
    """Advances an outer progress bar by ``scale`` per unit of work (a context manager, like a tqdm
    bar)."""

    def __init__(self, bar: Any, scale: float) -> None:
        self.bar, self.scale = bar, scale

    def update(self, n: float = 1) -> None:
        self.bar.update(n * self.scale)

    def __enter__(self) -> ProgressShare:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def record_head(record: dict[str, Any]) -> dict[str, Any]:
    """A prediction record's start: the article's ``id`` (a string or an integer as given, anything
    else as its string), or nothing when it has none."""
    value = record.get("id")
    if value is None:
        return {}
    return {
        "id": value
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
        else str(value)
    }


def rounded(labels: list[str], row: np.ndarray) -> dict[str, float]:
    return {label: round(float(p), 6) for label, p in zip(labels, row)}

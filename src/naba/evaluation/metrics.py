"""Classification metrics (scikit-learn, no network) and calibration.

The decision rule they score (thresholds, ``decide``) is :mod:`naba.decision`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from naba.decision import binarize


def calibration_bins(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> list[tuple[float, float, float]]:
    """Equal-width confidence bins: ``(share of examples, mean confidence, accuracy)`` for each
    non-empty bin, in order."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        members = which == b
        if members.any():
            out.append((members.mean(), confidence[members].mean(), correct[members].mean()))
    return out


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> float:
    """ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    if len(confidence) == 0:
        return 0.0
    total = 0.0
    for share, mean_confidence, accuracy in calibration_bins(confidence, correct, bins):
        total += share * abs(accuracy - mean_confidence)
    return float(total)


def classification_metrics(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    labels: Sequence[str],
    multi_label: bool,
    scores: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, micro/macro/weighted P/R/F1 and per-class scores.

    Args:
        gold, predicted: Label lists per example (single-label: lists of one).
        labels: The label order (the model's labels).
        multi_label: Adds subset accuracy and Hamming loss.
        scores: Optional [n, len(labels)] probabilities for calibration (ECE).
    """
    from sklearn.metrics import accuracy_score, hamming_loss, precision_recall_fscore_support

    labels = list(labels)
    out: dict[str, Any] = {"n": len(gold)}
    if multi_label:
        y_true, y_pred = binarize(gold, labels), binarize(predicted, labels)
        out["subset_accuracy"] = float(accuracy_score(y_true, y_pred))
        out["accuracy"] = out["subset_accuracy"]
        out["hamming_loss"] = float(hamming_loss(y_true, y_pred))
        average_args: dict[str, Any] = {}
    else:
        y_true = np.array([g[0] for g in gold])
        y_pred = np.array([p[0] if p else "" for p in predicted])
        out["accuracy"] = float(accuracy_score(y_true, y_pred))
        average_args = {"labels": labels}
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            y_true, y_pred, average=average, zero_division=0, **average_args
        )
        out[f"{average}_precision"], out[f"{average}_recall"], out[f"{average}_f1"] = (
            float(p),
            float(r),
            float(f),
        )
    p, r, f, s = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0, **average_args
    )
    out["per_class"] = {
        label: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(s[i]),
        }
        for i, label in enumerate(labels)
    }
    if scores is not None and len(gold):
        if multi_label:
            y_true = binarize(gold, labels)
            out["ece"] = (
                expected_calibration_error(
                    scores.reshape(-1), (y_true.reshape(-1) == 1).astype(float)
                )
                if scores.size
                else 0.0
            )
        else:
            index = {label: i for i, label in enumerate(labels)}
            top = scores.argmax(axis=1)
            correct = np.array([index.get(g[0], -1) == t for g, t in zip(gold, top)], dtype=float)
            out["ece"] = expected_calibration_error(scores.max(axis=1), correct)
    return out

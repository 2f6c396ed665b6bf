"""Classification metrics (scikit-learn, no network) and threshold tuning."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def binarize(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """Indicator matrix [n, len(labels)]; labels outside ``labels`` are ignored."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(label_sets), len(labels)), dtype=np.int64)
    for row, items in enumerate(label_sets):
        for label in items:
            if label in index:
                out[row, index[label]] = 1
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    if len(confidence) == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def classification_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], labels: Sequence[str],
                           multi_label: bool, scores: np.ndarray | None = None) -> dict[str, Any]:
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
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0, **average_args)
        out[f"{average}_precision"], out[f"{average}_recall"], out[f"{average}_f1"] = float(p), float(r), float(f)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0, **average_args)
    out["per_class"] = {label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                        for i, label in enumerate(labels)}
    if scores is not None and len(gold):
        if multi_label:
            y_true = binarize(gold, labels)
            out["ece"] = expected_calibration_error(scores.reshape(-1), (y_true.reshape(-1) == 1).astype(float)) if scores.size else 0.0
        else:
            index = {label: i for i, label in enumerate(labels)}
            top = scores.argmax(axis=1)
            correct = np.array([index.get(g[0], -1) == t for g, t in zip(gold, top)], dtype=float)
            out["ece"] = expected_calibration_error(scores.max(axis=1), correct)
    return out


def tune_thresholds(probabilities: np.ndarray, gold: np.ndarray, labels: Sequence[str], floor: float = 0.2,
                    default: float = 0.5) -> dict[str, float]:
    """Per-label threshold maximising that label's F1 on dev.

    Candidates are a grid from ``floor`` to 0.95; a label with no positive in
    dev keeps ``default`` (its F1 there says nothing). Ties go to the
    threshold closest to ``default``, which generalises better than an
    extreme one chosen by a handful of dev examples.
    """
    grid = np.round(np.arange(max(floor, 0.05), 0.951, 0.025), 3)
    thresholds = {}
    for j, label in enumerate(labels):
        positives = gold[:, j].sum()
        if positives == 0:
            thresholds[label] = default
            continue
        best, best_f1 = default, -1.0
        for t in sorted(grid, key=lambda t: abs(t - default)):
            pred = probabilities[:, j] >= t
            tp = float((pred & (gold[:, j] == 1)).sum())
            f1 = 2 * tp / (pred.sum() + positives) if (pred.sum() + positives) else 0.0
            if f1 > best_f1 + 1e-12:
                best, best_f1 = float(t), f1
        thresholds[label] = best
    return thresholds


PRIOR_CORRECTIONS = (0.0, 0.5, 1.0)


def choose_prior_correction(probabilities: np.ndarray, gold: np.ndarray, log_weights: np.ndarray) -> float:
    """How much of the loss's class weighting to take back out of a single-label decision.

    A model trained with class weights ``w`` learns scores near ``log p(c|x) +
    log w_c``: rare classes win more often than their probability says. That
    helps their recall but can cost more than it brings. This chooses alpha in
    0, 0.5, 1 for the decision ``argmax(log p - alpha log w)`` by macro-F1 on
    dev; ties go to the smaller correction (0 keeps the model as trained).

    Args:
        probabilities: [n, labels] softmax scores on dev.
        gold: [n] gold label indices.
        log_weights: [labels] log of the class weights the loss used.
    """
    from sklearn.metrics import f1_score

    classes = np.arange(probabilities.shape[1])
    log_p = np.log(np.clip(probabilities, 1e-12, None))
    best, best_f1 = 0.0, -1.0
    for alpha in PRIOR_CORRECTIONS:
        predicted = (log_p - alpha * log_weights).argmax(axis=1)
        f1 = f1_score(gold, predicted, labels=classes, average="macro", zero_division=0)
        if f1 > best_f1 + 1e-9:
            best, best_f1 = alpha, f1
    return best


def decide(probabilities: np.ndarray, labels: Sequence[str], multi_label: bool, thresholds: dict[str, float] | None = None,
           at_least_one: bool = True, default: float = 0.5) -> list[list[str]]:
    """Turn scores into label lists: thresholds for multi-label, argmax otherwise."""
    labels = list(labels)
    if not multi_label:
        return [[labels[int(i)]] for i in probabilities.argmax(axis=1)]
    limits = np.array([(thresholds or {}).get(label, default) for label in labels])
    out = []
    for row in probabilities:
        chosen = [labels[j] for j in np.flatnonzero(row >= limits)]
        if not chosen and at_least_one and len(row):
            chosen = [labels[int(row.argmax())]]
        out.append(chosen)
    return out

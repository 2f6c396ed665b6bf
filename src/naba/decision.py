"""The decision rule: how scores become labels, and how its settings are chosen on dev.

Training chooses the settings (per-label thresholds, the prior correction),
inference applies them and evaluation scores them, so the rule lives below
all three: :mod:`naba.infer`, :mod:`naba.evaluation` and :mod:`naba.train`
import it, and it imports nothing of naba.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def decide(
    probabilities: np.ndarray,
    labels: Sequence[str],
    multi_label: bool,
    thresholds: dict[str, float] | None = None,
    at_least_one: bool = True,
    default: float = 0.5,
) -> list[list[str]]:
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


def f1_at_threshold(scores: np.ndarray, gold: np.ndarray, threshold: float) -> float:
    """One label's F1 when ``scores >= threshold`` is predicted positive.

    ``gold``: 0/1 per example.
    """
    pred = scores >= threshold
    tp = float((pred & (gold == 1)).sum())
    denom = pred.sum() + gold.sum()
    return 2 * tp / denom if denom else 0.0


def tune_thresholds(
    probabilities: np.ndarray,
    gold: np.ndarray,
    labels: Sequence[str],
    floor: float = 0.2,
    default: float = 0.5,
) -> dict[str, float]:
    """Per-label threshold maximising that label's F1 on dev.

    Candidates are a grid from ``floor`` to 0.95; a label with no positive in
    dev keeps ``default`` (its F1 there says nothing). Ties go to the
    threshold closest to ``default``, which generalises better than an
    extreme one chosen by a handful of dev examples.
    """
    grid = np.round(np.arange(max(floor, 0.05), 0.951, 0.025), 3)
    thresholds = {}
    for j, label in enumerate(labels):
        if gold[:, j].sum() == 0:
            thresholds[label] = default
            continue
        best, best_f1 = default, -1.0
        for t in sorted(grid, key=lambda t: abs(t - default)):
            f1 = f1_at_threshold(probabilities[:, j], gold[:, j], t)
            if f1 > best_f1 + 1e-12:
                best, best_f1 = float(t), f1
        thresholds[label] = best
    return thresholds


PRIOR_CORRECTIONS = (0.0, 0.5, 1.0)


def choose_prior_correction(
    probabilities: np.ndarray, gold: np.ndarray, log_weights: np.ndarray
) -> float:
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


def class_weights(y: np.ndarray, n_labels: int, scheme: str) -> np.ndarray | None:
    """Single-label class weights.

    ``n / (labels x count)`` (balanced), its square root (sqrt), or none.
    """
    if scheme == "none":
        return None
    counts = np.bincount(y, minlength=n_labels).clip(min=1)
    ratio = len(y) / (n_labels * counts)
    return np.sqrt(ratio) if scheme == "sqrt" else ratio

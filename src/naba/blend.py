"""The hybrid decision's arithmetic: the parts' scores combined, calibrated and chosen on dev.

A hybrid decides from ``z = e + lam * m``: ``e`` the encoder's log-probabilities
(single-label) or logits (multi-label), ``m`` the sparse part's margins. Only
``lam`` moves a label: ``0`` is the encoder alone, ``inf`` the sparse part
alone. The probabilities are ``softmax(z / T)`` (``sigmoid`` for multi-label);
``T`` never changes an argmax.

:func:`choose_blend` picks on dev among the encoder, the sparse part (its own
temperature chosen by dev log-loss) and 12 blends: the blend ``w x e + (1 - w)
x log_softmax(m / T_b)`` of weight ``w`` and sparse temperature ``T_b`` is
``lam = (1 - w) / (w T_b)`` at ``T = 1 / w``. Gains under :data:`TIE` are
kept by the simpler candidate. A stance model's relevance gate
(:func:`choose_gate`) makes the neutral label wherever one relevance signal
reaches a threshold. ``bench/choice_rule.py`` measures this choice over dev
resamples against the equal blend of the calibrated parts with
paired-bootstrap departures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

WEIGHTS = (0.25, 0.5, 0.75)  # the encoder's share w in a blend
TEMPERATURES = (0.1, 0.25, 0.5, 1.0)  # the sparse margins' temperatures tried
GATES = (0.9, 0.8, 0.7, 0.6, 0.5)  # relevance signals from which the neutral label stands
# Dev macro-F1 differences below half a point are ties, kept by the simpler candidate: with 15
# candidates scored on a dev split of a few hundred examples, smaller gains are noise.
TIE = 0.005
_EPS = 1e-7

Predict = Callable[[np.ndarray], np.ndarray]  # probabilities -> the decided 0/1 label matrix


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def encoder_logits(encoder: np.ndarray, multi_label: bool) -> np.ndarray:
    """The encoder's probabilities back on the scale the blend adds: log-probabilities or logits."""
    if multi_label:
        return _logit(encoder)
    return np.log(np.clip(encoder.astype(np.float64), _EPS, 1))


def decision_logits(
    encoder: np.ndarray | None, margins: np.ndarray | None, lam: float | None, multi_label: bool
) -> np.ndarray:
    """``z = e + lam * m``; ``lam`` None: the sparse margins alone, 0: the encoder alone."""
    if lam is None:
        return margins.astype(np.float64)
    z = encoder_logits(encoder, multi_label)
    return z + lam * margins.astype(np.float64) if lam else z


def probabilities(logits: np.ndarray, temperature: float, multi_label: bool) -> np.ndarray:
    """``softmax(logits / T)`` (``sigmoid`` for multi-label), as float32."""
    z = logits / temperature
    if multi_label:
        return (1 / (1 + np.exp(-z))).astype(np.float32)
    return np.exp(_log_softmax(z)).astype(np.float32)


def log_loss(scores: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    """Mean negative log-likelihood of a 0/1 gold matrix under the probabilities."""
    p = np.clip(scores.astype(np.float64), _EPS, 1 - _EPS)
    if multi_label:
        return float(-np.mean(gold * np.log(p) + (1 - gold) * np.log(1 - p)))
    return float(-np.mean(np.log(p[gold.astype(bool)])))


def sparse_temperature(margins: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    """The sparse part's own temperature: of :data:`TEMPERATURES`, the lowest dev log-loss."""
    return min(
        TEMPERATURES,
        key=lambda t: log_loss(probabilities(margins, t, multi_label), gold, multi_label),
    )


def macro_f1(predicted: np.ndarray, gold: np.ndarray, weights: np.ndarray | None = None):
    """Macro-F1 of 0/1 label matrices; with ``weights`` (resamples x rows), one value per resample.

    A label with no gold and no predicted row scores 0 (as scikit-learn's
    ``zero_division=0`` over a fixed label list).
    """
    predicted, gold = predicted.astype(bool), gold.astype(bool)
    w = np.ones((1, len(gold))) if weights is None else weights
    tp = w @ (predicted & gold)
    wrong = w @ (predicted ^ gold)
    denominator = 2 * tp + wrong
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    values = f1.mean(axis=1)
    return float(values[0]) if weights is None else values


@dataclass(frozen=True)
class BlendChoice:
    """What :func:`choose_blend` picked, and the dev scores behind it."""

    choice: str  # encoder, sparse or blend
    blend_lambda: float | None  # lam of z = e + lam * m; None for the sparse part alone
    temperature: float  # the scores' calibration (1: the encoder's own probabilities)
    sparse_temperature: float  # the sparse part's own, for its probabilities alone
    dev_macro_f1: dict[str, float]  # encoder, sparse, hybrid (the pick)


def blend_candidates(sparse_t: float) -> list[tuple[str, float | None, float]]:
    """``(choice, lam, T)`` of each candidate, simplest first: encoder, sparse, 12 blends."""
    candidates = [("encoder", 0.0, 1.0), ("sparse", None, sparse_t)]
    for w in WEIGHTS:
        for t in TEMPERATURES:
            candidates.append(("blend", round((1 - w) / (w * t), 6), round(1 / w, 6)))
    return candidates


def choose_blend(
    encoder: np.ndarray,
    margins: np.ndarray,
    gold: np.ndarray,
    multi_label: bool,
    predict: Predict,
) -> BlendChoice:
    """The candidate of the best dev macro-F1; gains within :data:`TIE` keep the simpler.

    Args:
        encoder: Dev probabilities of the encoder.
        margins: Dev margins of the sparse part.
        gold: Dev gold as a 0/1 matrix (rows x labels).
        predict: The task's decision (thresholds) of a probability matrix, as 0/1.
    """
    sparse_t = sparse_temperature(margins, gold, multi_label)
    best, best_score, scores = None, -1.0, {}
    for choice, lam, t in blend_candidates(sparse_t):
        logits = decision_logits(encoder, margins, lam, multi_label)
        value = macro_f1(predict(probabilities(logits, t, multi_label)), gold)
        scores.setdefault(choice, value)
        if value > best_score + TIE:
            best, best_score = (choice, lam, t), value
    choice, lam, t = best
    return BlendChoice(
        choice=choice,
        blend_lambda=lam,
        temperature=t,
        sparse_temperature=sparse_t,
        dev_macro_f1={
            "encoder": round(scores["encoder"], 4),
            "sparse": round(scores["sparse"], 4),
            "hybrid": round(best_score, 4),
        },
    )


def gate(scores: np.ndarray, signal: np.ndarray, threshold: float, neutral: int) -> np.ndarray:
    """The neutral label wherever the relevance signal reaches ``threshold`` (at least 0.5).

    A gated row becomes ``s x neutral + (1 - s) x row``, ``s`` its signal: the
    neutral label then holds at least ``s`` >= 0.5 of the mass, so it is the
    row's label, and the row's other probabilities keep their proportions. A
    NaN signal (no answer) never gates.
    """
    out = scores.astype(np.float32, copy=True)
    s = np.nan_to_num(np.asarray(signal, dtype=np.float32), nan=0.0)
    rows = s >= threshold
    out[rows] *= 1 - s[rows, None]
    out[rows, neutral] += s[rows]
    return out


@dataclass(frozen=True)
class GateChoice:
    """What :func:`choose_gate` picked: a threshold (None: no gate) and the dev scores behind it."""

    threshold: float | None
    dev_macro_f1: dict[str, float]  # ungated, gated; real_ungated, real_gated (the real pairs)


def choose_gate(
    scores: np.ndarray,
    signal: np.ndarray,
    neutral: int,
    gold: np.ndarray,
    predict: Predict,
    real_rows: int,
) -> GateChoice:
    """No gate, or the threshold of :data:`GATES` with the best dev macro-F1 beyond :data:`TIE`.

    Scored on dev *and* its generated unrelated pairs (gold neutral); ties keep
    the fewer gated rows, and a threshold that costs the first ``real_rows`` rows
    (the real dev pairs) more than :data:`TIE` is not taken, whatever it gains on
    the unrelated ones (relevance must not cost in-domain accuracy).

    Args:
        scores: The chosen blend's probabilities on dev and its unrelated pairs.
        signal: Each row's relevance signal: the probability that it is not about its target.
        gold: The rows' gold, a 0/1 matrix.
        predict: The task's decision of a probability matrix, as 0/1.
        real_rows: How many of the rows, first, are real dev pairs.
    """
    ungated = predict(scores)
    real = macro_f1(ungated[:real_rows], gold[:real_rows])
    best, best_score, best_labels = None, macro_f1(ungated, gold), ungated
    s = np.nan_to_num(np.asarray(signal, dtype=np.float64), nan=0.0)
    for threshold in sorted(GATES, key=lambda t: (int(np.sum(s >= t)), -t)):
        labels = predict(gate(scores, signal, threshold, neutral))
        value = macro_f1(labels, gold)
        kept = macro_f1(labels[:real_rows], gold[:real_rows])
        if value > best_score + TIE and kept >= real - TIE:
            best, best_score, best_labels = threshold, value, labels
    return GateChoice(
        threshold=best,
        dev_macro_f1={
            "ungated": round(macro_f1(ungated, gold), 4),
            "gated": round(best_score, 4),
            "real_ungated": round(real, 4),
            "real_gated": round(macro_f1(best_labels[:real_rows], gold[:real_rows]), 4),
        },
    )


def describe_detector(detector: dict) -> str:
    """What a sparse relevance detector answers for, in words (train log, ``naba blend``)."""
    parts = []
    if detector["targets"]:
        parts.append(
            f"{len(detector['targets'])} targets with {detector['min_pairs']}+ real training "
            f"pairs by their n-grams (C {detector['C']:g}, dev log-loss "
            f"{detector['dev_log_loss']})"
        )
    if detector.get("overlap"):
        parts.append(
            "other targets by how much of them the text mentions (dev log-loss "
            f"{detector['overlap']['dev_log_loss']})"
        )
    return "relevance detector: " + "; ".join(parts)

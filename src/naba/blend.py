"""The hybrid decision: the encoder's probabilities blended with the sparse model's margins.

``blend`` mixes calibrated log-probabilities (single-label) or logits
(multi-label): ``w x encoder + (1 - w) x sparse / T``; ``w = 1`` is the encoder
alone, ``w = 0`` the sparse model alone. ``choose_blend`` picks ``w`` and ``T``
on dev. A stance model trained with unrelated pairs may add a relevance gate
(``choose_gate``): the blend answers "which stance", the gate "is this text
about the target at all". Its source is the encoder (where it gives the
neutral label at least the gate's probability, its verdict stands), the
sparse relevance detector (:meth:`naba.sparse.SparseModel.fit_detector`: where
its probability u of "not about the target" reaches the gate, the row becomes
``u x neutral + (1 - u) x blend``), or either. The blend's sparse part cannot
learn relevance (its text features are the same whatever the target). The chosen
settings are a typed :class:`naba.rule.HybridRule`; training, ``naba blend``,
inference and evaluation all decide through its :meth:`~naba.rule.HybridRule.scores`,
so the choice made on dev is the decision every door applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

WEIGHTS = (0.25, 0.5, 0.75)  # the encoder's share in a blend
TEMPERATURES = (0.1, 0.25, 0.5, 1.0)  # sparse margins are divided by T before the softmax/sigmoid
GATES = (
    0.9,
    0.8,
    0.7,
    0.6,
    0.5,
)  # the probability of "not about the target" from which a relevance verdict stands
SOURCES = (
    "encoder",
    "sparse",
    "either",
)  # who gives it: the encoder's neutral label, the sparse detector, or either
_EPS = 1e-7
# Dev macro-F1 differences below half a point are ties (kept by the simpler candidate): with 15 candidates scored
# on a dev split of a few hundred examples, smaller gains are noise (on ANS a +0.3 dev gain cost 3 points on test).
TIE = 0.005


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def blend(
    encoder: np.ndarray | None,
    margins: np.ndarray | None,
    weight: float,
    temperature: float,
    multi_label: bool,
) -> np.ndarray:
    """Blended probabilities (softmax rows, or independent sigmoids for multi-label).

    Args:
        encoder: The encoder's probabilities (``None`` when ``weight`` is 0).
        margins: The sparse model's margins (``None`` when ``weight`` is 1).
        weight: The encoder's share, 0 to 1.
        temperature: Divides the sparse margins.
    """
    if weight >= 1:
        return encoder.astype(np.float32)
    sparse = margins.astype(np.float64) / temperature
    if multi_label:
        logits = (1 - weight) * sparse + (weight * _logit(encoder) if weight > 0 else 0)
        return (1 / (1 + np.exp(-logits))).astype(np.float32)
    logits = (1 - weight) * _log_softmax(sparse) + (
        weight * np.log(np.clip(encoder, _EPS, 1)) if weight > 0 else 0
    )
    return np.exp(_log_softmax(logits)).astype(np.float32)


def _nll(probabilities: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    p = np.clip(probabilities, _EPS, 1 - _EPS)
    if multi_label:
        return float(-np.mean(gold * np.log(p) + (1 - gold) * np.log(1 - p)))
    return float(-np.mean(np.log(p[np.arange(len(gold)), gold])))


def choose_blend(
    encoder: np.ndarray,
    margins: np.ndarray,
    gold: np.ndarray,
    multi_label: bool,
    score: Callable[[np.ndarray], float],
) -> dict[str, Any]:
    """Encoder alone, sparse alone, or a blend: the best dev ``score`` (macro-F1); ties (within :data:`TIE`) keep the simpler.

    The candidates, simplest first: the encoder; the sparse model (its
    temperature chosen by dev log-loss, which a decision by argmax or by a 0.5
    threshold does not see); then each blend weight x temperature.

    Args:
        encoder: Dev probabilities of the encoder.
        margins: Dev margins of the sparse model.
        gold: Dev gold: class indices (single-label) or a 0/1 matrix (multi-label).
        score: Dev macro-F1 of a probability matrix.

    Returns:
        ``{"choice": "encoder" | "sparse" | "blend", "weight", "temperature",
        "sparse_temperature", "dev_macro_f1": {"encoder", "sparse", "hybrid"}}``.
    """
    sparse_t = min(
        TEMPERATURES,
        key=lambda t: _nll(blend(None, margins, 0.0, t, multi_label), gold, multi_label),
    )
    candidates = [("encoder", 1.0, 1.0), ("sparse", 0.0, sparse_t)]
    candidates += [("blend", w, t) for w in WEIGHTS for t in TEMPERATURES]
    best, best_score, scores = candidates[0], -1.0, {}
    for name, w, t in candidates:
        value = score(blend(encoder, margins, w, t, multi_label))
        scores.setdefault(name, value)
        if value > best_score + TIE:
            best, best_score = (name, w, t), value
    name, w, t = best
    return {
        "choice": name,
        "weight": w,
        "temperature": t,
        "sparse_temperature": sparse_t,
        "dev_macro_f1": {
            "encoder": round(scores["encoder"], 4),
            "sparse": round(scores["sparse"], 4),
            "hybrid": round(best_score, 4),
        },
    }


def gate(
    blended: np.ndarray,
    encoder: np.ndarray | None,
    threshold: float,
    neutral: int,
    source: str = "encoder",
    unrelated: np.ndarray | None = None,
) -> np.ndarray:
    """The blend with the relevance verdicts of ``source`` applied.

    ``encoder``: rows where the encoder gives class ``neutral`` at least
    ``threshold`` take the encoder's probabilities. ``sparse``: rows where the
    detector's ``unrelated`` probability u (NaN: no answer) reaches it become
    ``u x neutral + (1 - u) x blend``. ``either``: the encoder's rows first, then
    the detector's among the rest.
    """
    out = blended.astype(np.float32, copy=True)
    taken = np.zeros(len(out), dtype=bool)
    if source in ("encoder", "either"):
        taken = encoder[:, neutral] >= threshold
        out[taken] = encoder[taken]
    if source in ("sparse", "either"):
        u = np.nan_to_num(np.asarray(unrelated, dtype=np.float32), nan=0.0)
        rows = (u >= threshold) & ~taken
        out[rows] *= 1 - u[rows, None]
        out[rows, neutral] += u[rows]
    return out


def choose_gate(
    blended: np.ndarray,
    encoder: np.ndarray | None,
    neutral: int,
    score: Callable[[np.ndarray], float],
    unrelated: np.ndarray | None = None,
    sources: tuple[str, ...] = ("encoder",),
    in_domain: Callable[[np.ndarray], float] | None = None,
) -> tuple[dict[str, Any] | None, dict[str, float]]:
    """No gate, or the source x threshold with the best ``score``; ties (within :data:`TIE`) keep the fewer gated rows.

    Args:
        blended: The chosen blend's probabilities on dev and its generated unrelated pairs.
        encoder: The encoder's probabilities on the same rows (sources ``encoder``, ``either``).
        neutral: The neutral label's column.
        score: Macro-F1 of a probability matrix on those rows (unrelated pairs gold neutral).
        unrelated: The sparse detector's probabilities on the same rows (sources ``sparse``, ``either``).
        sources: The sources to try, of :data:`SOURCES`.
        in_domain: Macro-F1 on the real pairs among those rows: a gate that costs them more than :data:`TIE`
            is not taken, whatever it gains on the unrelated ones (relevance must not cost in-domain accuracy).

    Returns:
        ``{"source", "threshold"}`` (None: no gate) and ``{"ungated", "gated"}`` scores (with ``in_domain``, also
        ``{"real_ungated", "real_gated"}``).
    """
    candidates = []
    for source in sources:
        for threshold in GATES:
            gated = gate(blended, encoder, threshold, neutral, source, unrelated)
            changed = int(np.sum(np.any(gated != blended, axis=1)))
            candidates.append(
                (changed, SOURCES.index(source), -threshold, source, threshold, gated)
            )
    best, best_score = None, score(blended)
    ungated = best_score
    real = real_best = in_domain(blended) if in_domain is not None else None
    for _changed, _, _, source, threshold, gated in sorted(
        candidates, key=lambda c: c[:3]
    ):  # fewest gated rows first
        value = score(gated)
        if value > best_score + TIE:
            kept = in_domain(gated) if in_domain is not None else None
            if kept is not None and kept < real - TIE:
                continue
            best, best_score, real_best = {"source": source, "threshold": threshold}, value, kept
    scores = {"ungated": round(ungated, 4), "gated": round(best_score, 4)}
    if in_domain is not None:
        scores |= {"real_ungated": round(real, 4), "real_gated": round(real_best, 4)}
    return best, scores


def describe_detector(detector: dict[str, Any]) -> str:
    """What a sparse relevance detector answers for, in words (train log, ``naba blend``)."""
    parts = []
    if detector["targets"]:
        parts.append(
            f"{len(detector['targets'])} targets with {detector['min_pairs']}+ real training pairs by their "
            f"n-grams (C {detector['C']:g}, dev log-loss {detector['dev_log_loss']})"
        )
    if detector.get("overlap"):
        parts.append(
            f"other targets by how much of them the text mentions (dev log-loss {detector['overlap']['dev_log_loss']})"
        )
    return "relevance detector: " + "; ".join(parts)

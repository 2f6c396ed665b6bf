"""The hybrid decision's arithmetic: the parts' scores combined, calibrated and chosen on dev.

A hybrid decides from ``z = e + lam * m``: ``e`` the encoder's log-probabilities
(single-label) or logits (multi-label), ``m`` the sparse part's margins. Only
``lam`` moves a label: ``0`` is the encoder alone, ``inf`` the sparse part
alone. The probabilities are ``softmax(z / T)`` (``sigmoid`` for multi-label);
``T``, chosen by dev log-loss, never changes an argmax.

:func:`choose_blend` starts from the **equal blend**: the encoder's
log-probabilities plus the sparse part's calibrated ones (``lam = 1 / T_s``,
``T_s`` the sparse part's own temperature by dev log-loss). It departs only on
a gain that holds in a paired bootstrap of dev (:data:`CONFIDENCE`): to the
blend whose ``lam`` and ``T`` are fitted together by dev log-loss, where its
log-loss, cross-fitted over :data:`FOLDS` folds, beats the equal blend's; then
to the encoder or the sparse part alone, where its dev macro-F1 beats the
blend's. A dev split of a few hundred rows ranks a dozen candidates by noise;
a smooth criterion and a bootstrap-checked departure do not follow that noise
(``bench/choice_rule.py`` measures it over dev resamples).

A multi-label task's labels are thresholds on ``sigmoid(z / T)``, tuned on
dev, so there ``T`` does move labels: a temperature fitted by log-loss is
sharp and leaves the tuned thresholds (0.2 to 0.95) little room.
Multi-label tasks keep the grid (:func:`choose_blend_by_grid`: the best dev
macro-F1 of the encoder, the sparse part and 12 blends at temperatures 4/3,
2 and 4), which measured ahead there (``bench/choice_rule_multilabel.py``).

A stance model's relevance gate (:func:`choose_gate`) makes the neutral
label wherever one relevance signal reaches a threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GATES = (0.9, 0.8, 0.7, 0.6, 0.5)  # relevance signals from which the neutral label stands
# Dev macro-F1 differences below half a point are ties, kept by the simpler candidate (the gate's,
# and the multi-label grid's).
TIE = 0.005
WEIGHTS = (0.25, 0.5, 0.75)  # multi-label grid: the encoder's share w in a blend
TEMPERATURES = (0.1, 0.25, 0.5, 1.0)  # multi-label grid: the sparse margins' temperatures
BOOTSTRAP = 1000  # paired bootstrap resamples of dev behind a departure
CONFIDENCE = 0.95  # a departure's gain must be above zero in this share of them
FOLDS = 5  # the fitted blend's log-loss is scored on each fold by fits on the others
SEED = 0  # the folds' and the bootstrap's: a rule chosen twice on the same dev is the same
MIN_ROWS = 4 * FOLDS  # fewer dev rows: no fitted blend (the equal blend, or a part alone)
_LOG_T = (np.log(0.01), np.log(100.0))  # the temperatures and blend scales searched
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


def row_log_loss(logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> np.ndarray:
    """Each row's negative log-likelihood under ``softmax(logits)`` (multi-label: the mean of its
    labels' under ``sigmoid``), computed stably from the logits."""
    if multi_label:
        signed = np.where(gold.astype(bool), -logits, logits)
        return np.logaddexp(0.0, signed).mean(axis=1)
    return -(_log_softmax(logits) * gold).sum(axis=1)


def fit_temperature(logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    """The temperature of the lowest dev log-loss (0.01 to 100): a calibration, no label moves."""
    from scipy.optimize import minimize_scalar

    fit = minimize_scalar(
        lambda log_t: row_log_loss(logits / np.exp(log_t), gold, multi_label).mean(),
        bounds=_LOG_T,
        method="bounded",
    )
    return float(np.exp(fit.x))


def fit_blend(
    encoder: np.ndarray, margins: np.ndarray, gold: np.ndarray, multi_label: bool
) -> tuple[float, float]:
    """``(lam, T)`` of the blend ``(e + lam * m) / T`` of the lowest dev log-loss, fitted together.

    A two-parameter stacking, ``a x e + b x m`` with ``a, b`` in 0.01-100
    (``lam = b / a``, ``T = 1 / a``): a smooth criterion, where a ranking of
    dev macro-F1s jumps with a handful of rows.
    """
    from scipy.optimize import minimize

    e, m = encoder_logits(encoder, multi_label), margins.astype(np.float64)
    fit = minimize(
        lambda x: row_log_loss(np.exp(x[0]) * e + np.exp(x[1]) * m, gold, multi_label).mean(),
        np.zeros(2),
        method="Nelder-Mead",
        bounds=[_LOG_T, _LOG_T],
        options={"xatol": 1e-3, "fatol": 1e-7},
    )
    a, b = np.exp(fit.x)
    return float(b / a), float(1 / a)


def bootstrap_weights(rows: int, seed: int = SEED, resamples: int = BOOTSTRAP) -> np.ndarray:
    """``resamples x rows`` counts of each row in a bootstrap resample (for ``macro_f1``'s
    ``weights``)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(rows, np.full(rows, 1 / rows), size=resamples).astype(np.float64)


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


def holds(gain: np.ndarray) -> bool:
    """Whether a paired bootstrap's gains are above zero in :data:`CONFIDENCE` of the resamples."""
    return bool(np.quantile(gain, 1 - CONFIDENCE) > 0)


@dataclass(frozen=True)
class BlendChoice:
    """What :func:`choose_blend` picked, why, and the dev scores behind it."""

    choice: str  # encoder, sparse or blend
    blend_lambda: float | None  # lam of z = e + lam * m; None for the sparse part alone
    temperature: float  # the scores' calibration (1: the encoder's own probabilities)
    sparse_temperature: float  # the sparse part's own, for its probabilities alone
    dev_macro_f1: dict[str, float]  # encoder, sparse, equal (the equal blend), hybrid (the pick)
    why: str  # the departure taken, or "the equal blend", in words
    step: str  # which step decided: equal, fitted, encoder, sparse, or grid


def equal_lambda(margins: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    """The equal blend's ``lam``: the encoder's log-probabilities plus the sparse part's
    calibrated ones, ``1 / T_s``."""
    return 1 / fit_temperature(margins.astype(np.float64), gold, multi_label)


def fitted_blend_gain(
    encoder: np.ndarray, margins: np.ndarray, gold: np.ndarray, multi_label: bool, seed: int = SEED
) -> np.ndarray:
    """Per dev row, the equal blend's log-loss minus the fitted blend's, cross-fitted: each fold's
    rows scored by both blends as fitted (``lam``, ``T``) on the other folds."""
    e = encoder_logits(encoder, multi_label)
    folds = np.random.default_rng(seed).permutation(len(gold)) % FOLDS
    gain = np.empty(len(gold))
    for fold in range(FOLDS):
        fit, held = folds != fold, folds == fold
        lam = equal_lambda(margins[fit], gold[fit], multi_label)
        equal = decision_logits(encoder, margins, lam, multi_label)
        t = fit_temperature(equal[fit], gold[fit], multi_label)
        lam_f, t_f = fit_blend(encoder[fit], margins[fit], gold[fit], multi_label)
        fitted = (e[held] + lam_f * margins[held]) / t_f
        gain[held] = row_log_loss(equal[held] / t, gold[held], multi_label) - row_log_loss(
            fitted, gold[held], multi_label
        )
    return gain


def grid_candidates(sparse_t: float) -> list[tuple[str, float | None, float]]:
    """``(choice, lam, T)`` of the grid's candidates, simplest first: encoder, sparse, 12 blends
    ``w x e + (1 - w) x log_softmax(m / T_b)``, which are ``lam = (1 - w) / (w T_b)`` at
    ``T = 1 / w``."""
    candidates = [("encoder", 0.0, 1.0), ("sparse", None, sparse_t)]
    for w in WEIGHTS:
        for t in TEMPERATURES:
            candidates.append(("blend", round((1 - w) / (w * t), 6), round(1 / w, 6)))
    return candidates


def choose_blend_by_grid(
    encoder: np.ndarray, margins: np.ndarray, gold: np.ndarray, multi_label: bool, predict: Predict
) -> BlendChoice:
    """The grid candidate of the best dev macro-F1; gains within :data:`TIE` keep the simpler.

    naba's rule for every task until 2026-12-07, for multi-label tasks since.
    """
    sparse_t = min(
        TEMPERATURES,
        key=lambda t: log_loss(probabilities(margins, t, multi_label), gold, multi_label),
    )
    best, best_score, scores = None, -1.0, {}
    for choice, lam, t in grid_candidates(sparse_t):
        logits = decision_logits(encoder, margins, lam, multi_label)
        value = macro_f1(predict(probabilities(logits, t, multi_label)), gold)
        scores.setdefault(choice, round(value, 4))
        if value > best_score + TIE:
            best, best_score = (choice, lam, t), value
    choice, lam, t = best
    scores = {
        "encoder": scores["encoder"],
        "sparse": scores["sparse"],
        "hybrid": round(best_score, 4),
    }
    return BlendChoice(
        choice=choice,
        blend_lambda=lam,
        temperature=t,
        sparse_temperature=sparse_t,
        dev_macro_f1=scores,
        why=f"the best dev macro-F1 of {len(grid_candidates(sparse_t))} candidates "
        f"(gains under {TIE * 100:g} points kept by the simpler)",
        step="grid",
    )


def choose_blend(
    encoder: np.ndarray,
    margins: np.ndarray,
    gold: np.ndarray,
    multi_label: bool,
    predict: Predict,
    seed: int = SEED,
) -> BlendChoice:
    """The hybrid's rule on dev: :func:`choose_blend_by_bootstrap` for a single-label task,
    :func:`choose_blend_by_grid` for a multi-label one.

    Args:
        encoder: Dev probabilities of the encoder.
        margins: Dev margins of the sparse part.
        gold: Dev gold as a 0/1 matrix (rows x labels).
        predict: The task's decision (thresholds) of a probability matrix, as 0/1.
        seed: The folds' and the bootstrap's.
    """
    if multi_label:
        return choose_blend_by_grid(encoder, margins, gold, multi_label, predict)
    return choose_blend_by_bootstrap(encoder, margins, gold, multi_label, predict, seed)


def choose_blend_by_bootstrap(
    encoder: np.ndarray,
    margins: np.ndarray,
    gold: np.ndarray,
    multi_label: bool,
    predict: Predict,
    seed: int = SEED,
) -> BlendChoice:
    """The equal blend, or a departure whose dev gain holds in a paired bootstrap (arguments
    as :func:`choose_blend`).

    First the blend fitted by dev log-loss, where its cross-fitted log-loss
    beats the equal blend's; then the encoder or the sparse part alone, where
    its dev macro-F1 beats the blend's (the larger gain of the two).
    """
    rows = len(gold)
    weights = bootstrap_weights(rows, seed)
    lam_equal = equal_lambda(margins, gold, multi_label)
    sparse_t = 1 / lam_equal  # the equal blend weighs the sparse part by its own calibration
    t_equal = fit_temperature(
        decision_logits(encoder, margins, lam_equal, multi_label), gold, multi_label
    )
    lam, t, step = lam_equal, t_equal, "equal"
    why = "the equal blend: no departure's dev gain held in the paired bootstrap"
    if rows >= MIN_ROWS:
        gain = fitted_blend_gain(encoder, margins, gold, multi_label, seed)
        if holds(weights @ gain / rows):
            lam, t = fit_blend(encoder, margins, gold, multi_label)
            step = "fitted"
            why = (
                "the blend fitted by dev log-loss: its cross-fitted log-loss beat the equal "
                f"blend's in {CONFIDENCE:.0%} of the paired bootstrap resamples"
            )
    candidates = {
        "encoder": (0.0, 1.0),
        "sparse": (None, sparse_t),
        "equal": (lam_equal, t_equal),
        "hybrid": (lam, t),
    }
    decided = {}
    for name, (value, temperature) in candidates.items():
        logits = decision_logits(encoder, margins, value, multi_label)
        decided[name] = predict(probabilities(logits, temperature, multi_label))
    choice, best_gain = "blend", 0.0
    base, point = macro_f1(decided["hybrid"], gold, weights), macro_f1(decided["hybrid"], gold)
    for part in ("encoder", "sparse"):
        gain = macro_f1(decided[part], gold) - point
        if gain > best_gain and holds(macro_f1(decided[part], gold, weights) - base):
            choice, best_gain = part, gain
    if choice != "blend":
        lam, t = candidates[choice]
        step = choice
        why = (
            f"the {choice} part alone: its dev macro-F1 beat the blend's in {CONFIDENCE:.0%} of "
            "the paired bootstrap resamples"
        )
    scores = {name: round(macro_f1(labels, gold), 4) for name, labels in decided.items()}
    scores["hybrid"] = scores[choice if choice != "blend" else "hybrid"]
    return BlendChoice(
        choice=choice,
        blend_lambda=lam,
        temperature=t,
        sparse_temperature=sparse_t,
        dev_macro_f1=scores,
        why=why,
        step=step,
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

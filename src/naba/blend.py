"""The hybrid decision's arithmetic: the parts' scores combined, calibrated and chosen on dev.

A hybrid decides from ``z = e + lam * m``: ``e`` the encoder's log-probabilities
(single-label) or logits (multi-label), ``m`` the sparse part's margins. Only
``lam`` moves a label: ``0`` is the encoder alone, ``inf`` the sparse part
alone. The probabilities are ``softmax(z / T)`` (``sigmoid`` for multi-label),
the temperature ``T`` fitted by dev log-loss, which never changes an argmax.

The default is the **equal blend of the calibrated parts**: each part divided
by its own dev-log-loss temperature and added with equal weights, i.e.
``lam = T_encoder / T_sparse``. Dev moves the choice away from it (to one part
alone, or to ``lam`` a few times larger or smaller) only where a paired
bootstrap of dev puts the gain's lower bound above zero
(:func:`choose_blend`): on dev sets of a few hundred examples a ranking of
candidates by their point macro-F1 is mostly noise. The stance relevance gate
is chosen the same way (:func:`choose_gate`): no gate unless one gains for sure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LAMBDA_STEPS = (0.25, 0.5, 2.0, 4.0)  # the other blends: the equal blend's lam times these
GATES = (0.9, 0.8, 0.7, 0.6, 0.5)  # relevance signals from which the neutral label stands
BOOTSTRAP = 1000  # dev resamples of the paired bootstrap
CONFIDENCE = 0.95  # a departure needs its gain's one-sided lower bound above zero at this level
IN_DOMAIN_TOLERANCE = 0.005  # a gate may cost the real dev pairs at most this much macro-F1
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


def fit_temperature(logits: np.ndarray, gold: np.ndarray, multi_label: bool) -> float:
    """The temperature with the lowest dev log-loss (a bounded search over log T)."""
    from scipy.optimize import minimize_scalar

    if not len(logits):
        return 1.0
    result = minimize_scalar(
        lambda log_t: log_loss(
            probabilities(logits, np.exp(log_t), multi_label), gold, multi_label
        ),
        bounds=(np.log(0.01), np.log(100.0)),
        method="bounded",
    )
    return round(float(np.exp(result.x)), 4)


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


def resample_weights(n: int, seed: int = 0, resamples: int = BOOTSTRAP) -> np.ndarray:
    """Bootstrap resamples of ``n`` rows as counts (resamples x n), rows drawn with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1 / n), size=resamples).astype(np.float64)


@dataclass(frozen=True)
class Gain:
    """A candidate's dev macro-F1 gain over the default, on dev and over its bootstrap resamples."""

    gain: float
    lower_bound: float  # the one-sided CONFIDENCE lower bound of the gain over the resamples

    @property
    def sure(self) -> bool:
        return self.lower_bound > 0


def paired_gain(
    candidate: np.ndarray, default: np.ndarray, gold: np.ndarray, weights: np.ndarray
) -> Gain:
    """The candidate's macro-F1 gain over the default's, paired on the same dev resamples."""
    resampled = macro_f1(candidate, gold, weights) - macro_f1(default, gold, weights)
    return Gain(
        gain=macro_f1(candidate, gold) - macro_f1(default, gold),
        lower_bound=float(np.quantile(resampled, 1 - CONFIDENCE)),
    )


@dataclass(frozen=True)
class BlendChoice:
    """What :func:`choose_blend` picked, the parts' calibration and the dev scores behind it."""

    choice: str  # encoder, sparse or blend
    blend_lambda: float | None  # lam of z = e + lam * m; None for the sparse part alone
    temperature: float  # the chosen scores' calibration (1: the encoder's own probabilities)
    encoder_temperature: float
    sparse_temperature: float
    dev_macro_f1: dict[str, float]  # encoder, sparse, equal (the default), hybrid (the pick)
    dev_gain: Gain  # the pick's gain over the equal blend (zero for the equal blend itself)


def choose_blend(
    encoder: np.ndarray,
    margins: np.ndarray,
    gold: np.ndarray,
    multi_label: bool,
    predict: Predict,
    seed: int = 0,
) -> BlendChoice:
    """The equal blend of the calibrated parts, unless dev is sure another candidate is better.

    The candidates besides the default: the encoder alone, the sparse part
    alone, and the equal blend's ``lam`` times each of :data:`LAMBDA_STEPS`. One
    is taken only where its paired-bootstrap gain over the default has its
    lower bound above zero; among those, the largest dev gain.

    Args:
        encoder: Dev probabilities of the encoder.
        margins: Dev margins of the sparse part.
        gold: Dev gold as a 0/1 matrix (rows x labels).
        predict: The task's decision (prior correction, thresholds) of a probability matrix, as 0/1.
    """
    t_encoder = fit_temperature(encoder_logits(encoder, multi_label), gold, multi_label)
    t_sparse = fit_temperature(margins.astype(np.float64), gold, multi_label)
    equal = t_encoder / t_sparse
    candidates = {"blend": equal, "encoder": 0.0, "sparse": None}
    candidates |= {f"blend x{step:g}": equal * step for step in LAMBDA_STEPS}
    temperatures, decided = {}, {}
    for name, lam in candidates.items():
        logits = decision_logits(encoder, margins, lam, multi_label)
        temperatures[name] = 1.0 if lam == 0 else fit_temperature(logits, gold, multi_label)
        decided[name] = predict(probabilities(logits, temperatures[name], multi_label))
    weights = resample_weights(len(gold), seed)
    gains = {
        name: paired_gain(labels, decided["blend"], gold, weights)
        for name, labels in decided.items()
        if name != "blend"
    }
    sure = [name for name, g in gains.items() if g.sure]
    pick = max(sure, key=lambda name: gains[name].gain) if sure else "blend"
    lam = candidates[pick]
    scores = {name: round(macro_f1(labels, gold), 4) for name, labels in decided.items()}
    return BlendChoice(
        choice=pick.split(" ")[0],
        blend_lambda=None if lam is None else round(float(lam), 6),
        temperature=temperatures[pick],
        encoder_temperature=t_encoder,
        sparse_temperature=t_sparse,
        dev_macro_f1={
            "encoder": scores["encoder"],
            "sparse": scores["sparse"],
            "equal": scores["blend"],
            "hybrid": scores[pick],
        },
        dev_gain=gains.get(pick, Gain(0.0, 0.0)),
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
    seed: int = 0,
) -> GateChoice:
    """No gate, unless dev is sure a threshold of :data:`GATES` gains.

    Scored on dev *and* its generated unrelated pairs (gold neutral): a
    threshold is taken only where its paired-bootstrap gain over no gate has its
    lower bound above zero and it costs the first ``real_rows`` rows (the real
    dev pairs) at most :data:`IN_DOMAIN_TOLERANCE`; among those, the largest gain (on
    a tie, the highest threshold: the fewest rows gated).

    Args:
        scores: The chosen blend's probabilities on dev and its unrelated pairs.
        signal: Each row's relevance signal: the probability that it is not about its target.
        gold: The rows' gold, a 0/1 matrix.
        predict: The task's decision of a probability matrix, as 0/1.
        real_rows: How many of the rows, first, are real dev pairs.
    """
    ungated = predict(scores)
    weights = resample_weights(len(gold), seed)
    real = macro_f1(ungated[:real_rows], gold[:real_rows])
    best, best_gain, best_labels = None, 0.0, ungated
    for threshold in GATES:
        labels = predict(gate(scores, signal, threshold, neutral))
        kept = macro_f1(labels[:real_rows], gold[:real_rows])
        g = paired_gain(labels, ungated, gold, weights)
        if g.sure and g.gain > best_gain and kept >= real - IN_DOMAIN_TOLERANCE:
            best, best_gain, best_labels = threshold, g.gain, labels
    return GateChoice(
        threshold=best,
        dev_macro_f1={
            "ungated": round(macro_f1(ungated, gold), 4),
            "gated": round(macro_f1(best_labels, gold), 4),
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

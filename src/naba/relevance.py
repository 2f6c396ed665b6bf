"""Whether a text is about a stance target: the relevance features and the relevance detector.

A stance model trained with unrelated pairs also gets a **relevance
detector** (:meth:`RelevanceDetector.fit_detector`): whether a text is about a
target at all, learned from the real pairs against the generated ones, one
linear model over the text's n-grams per trained target (features crossed
with the target), so it knows each target's vocabulary, not only its name.
It answers for the targets it was trained on (at least
:data:`DETECTOR_MIN_PAIRS` real pairs) and abstains (NaN) for any other.
:class:`naba.sparse.SparseModel` carries it and saves it with its own files.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import NormalizationConfig
from naba.encoding import document_text
from naba.errors import ModelDirError

# Stance: whether the text is about the target at all. A linear model over target and text n-grams
# cannot learn it (the text's features are the same whatever the target), so it gets the overlap of
# the two as features of their own: shares of the target's words and character 4-grams found in the
# text, and whether nothing of the target is there.
RELEVANCE = ("target_words_in_text", "target_4grams_in_text", "no_target_word_in_text")
# The detector's overlap part (targets without weights of their own) also reads how telling "none of
# the target's words" is: a text that uses none of a twelve-word claim's words is far surer not
# about it than one that never names a two-word target (tweets against "electric cars" often say
# neither word).
OVERLAP = (*RELEVANCE, "no_target_word_x_log_target_words")
DETECTOR_MIN_PAIRS = (
    10  # real training pairs a target needs for the relevance detector to answer for it
)
DETECTOR_C = (1.0, 10.0, 100.0)  # the detector's inverse regularisation, chosen by dev log-loss


ARTICLES = ("وال", "بال", "كال", "فال", "لل", "ال")  # the article and the particles fused with it


def _words(text: str) -> set[str]:
    """Words of 3+ letters, without the article (so الطاقة and للطاقة both match طاقة)."""
    out = set()
    for word in text.split():
        word = word.strip(".,:;!?()[]{}\"'«»،؛؟#@")
        for article in ARTICLES:
            if word.startswith(article) and len(word) - len(article) >= 3:
                word = word[len(article) :]
                break
        if len(word) >= 3:
            out.add(word)
    return out


def _grams(words: set[str], n: int = 4) -> set[str]:
    return {w[i : i + n] for w in words for i in range(max(1, len(w) - n + 1))}


def relevance_features(
    targets: list[str], texts: list[str], columns: tuple[str, ...] | list[str] = RELEVANCE
) -> np.ndarray:
    """One row per (normalised target, normalised text): the named ``columns`` of :data:`OVERLAP`.

    Raises:
        ValueError: a column naba does not compute.
    """
    unknown = [c for c in columns if c not in OVERLAP]
    if unknown:
        raise ValueError(f"unknown relevance column {unknown[0]!r}")
    index = [OVERLAP.index(c) for c in columns]
    rows = np.zeros((len(texts), len(OVERLAP)), dtype=np.float32)
    for i, (target, text) in enumerate(zip(targets, texts)):
        t_words, x_words = _words(target), _words(text)
        if not t_words:
            continue
        t_grams, x_grams = _grams(t_words), _grams(x_words)
        words = len(t_words & x_words) / len(t_words)
        none = float(words == 0)
        rows[i] = (
            words,
            len(t_grams & x_grams) / max(1, len(t_grams)),
            none,
            none * np.log1p(len(t_words)),
        )
    return rows[:, index]


def detector_targets(
    related: list[dict[str, Any]], normalization: NormalizationConfig
) -> list[str]:
    """The normalised targets the relevance detector learns weights for: those with
    :data:`DETECTOR_MIN_PAIRS` real pairs."""
    counts = Counter(document_text(r["target"], normalization) for r in related)
    return sorted(t for t, n in counts.items() if n >= DETECTOR_MIN_PAIRS)


def _balanced_log_loss(p: np.ndarray, gold: np.ndarray) -> float:
    """Mean of the two classes' log-losses (``p``: probability of class 1): the rarer class counts
    as much."""
    if len(set(gold)) < 2:
        return float("inf")
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(np.mean(np.log(1 - p[gold == 0])) + np.mean(np.log(p[gold == 1]))) / 2)


class RelevanceDetector:
    """The relevance detector's fitting, scoring and files; :class:`naba.sparse.SparseModel` is one.

    It reads the n-gram vectorizers fitted by the sparse model (``vectorizers``)
    and its ``normalization``.
    """

    normalization: NormalizationConfig
    vectorizers: dict[str, Any]
    detector: dict[str, Any] | None  # {"targets", "C", "dev_log_loss", "min_pairs", "overlap"}
    detector_weights: np.ndarray  # (targets, text features): the crossed weights
    detector_bias: np.ndarray  # per target (the intercept included)

    def _text_features(self, records: list[dict[str, Any]]) -> Any:
        """The n-gram blocks of the text alone (no target), by the same vectorizers."""
        from scipy.sparse import hstack

        texts = [document_text(r["text"], self.normalization) for r in records]
        return hstack([v.transform(texts) for v in self.vectorizers.values()]).tocsr()

    def _target_ids(self, records: list[dict[str, Any]], targets: list[str]) -> np.ndarray:
        index = {t: i for i, t in enumerate(targets)}
        return np.array(
            [index.get(document_text(r["target"], self.normalization), -1) for r in records],
            dtype=np.int64,
        )

    @staticmethod
    def _crossed(text: Any, ids: np.ndarray, n_targets: int) -> Any:
        """Each row's text features moved into its target's block, then a one-hot of the target
        (rows of other targets: empty)."""
        from scipy.sparse import csr_matrix, hstack

        coo, width = text.tocoo(), text.shape[1]
        keep = ids[coo.row] >= 0
        crossed = csr_matrix(
            (coo.data[keep], (coo.row[keep], coo.col[keep] + width * ids[coo.row[keep]])),
            shape=(text.shape[0], width * n_targets),
        )
        known = np.flatnonzero(ids >= 0)
        onehot = csr_matrix(
            (np.ones(len(known), dtype=np.float32), (known, ids[known])),
            shape=(text.shape[0], n_targets),
        )
        return hstack([crossed, onehot]).tocsr()

    def fit_detector(
        self,
        related: list[dict[str, Any]],
        unrelated: list[dict[str, Any]],
        dev_related: list[dict[str, Any]],
        dev_unrelated: list[dict[str, Any]],
    ) -> RelevanceDetector:
        """Learn whether a text is about a target: real pairs against generated unrelated ones
        (stance, after :meth:`fit`).

        One logistic regression over the text's n-grams crossed with the
        target, so each target with :data:`DETECTOR_MIN_PAIRS` real training
        pairs gets its own weights; regularisation chosen on dev by class-balanced
        log-loss. For other targets (a claim seen once, a target named at
        prediction time) a second, small one over the :data:`OVERLAP` columns
        (how much of the target the text mentions, and how telling it is that it
        mentions none of a long target), kept only where it beats a
        constant on dev. Neither learnable (no unrelated pairs, no target with
        enough pairs, no overlap to read): no detector.
        """
        self.detector = None
        if not unrelated:
            return self
        targets = detector_targets(related, self.normalization)
        pairs, y = related + unrelated, np.r_[np.zeros(len(related)), np.ones(len(unrelated))]
        dev_pairs, dev_y = (
            dev_related + dev_unrelated,
            np.r_[np.zeros(len(dev_related)), np.ones(len(dev_unrelated))],
        )
        crossed = self._fit_crossed(pairs, y, dev_pairs, dev_y, targets) if targets else None
        overlap = self._fit_overlap(pairs, y, dev_pairs, dev_y)
        if crossed is None and overlap is None:
            return self
        self.detector = {
            "targets": targets if crossed else [],
            **(crossed or {"C": None, "dev_log_loss": None}),
            "min_pairs": DETECTOR_MIN_PAIRS,
            "overlap": overlap,
        }
        if crossed is None:
            self.detector_weights, self.detector_bias = (
                np.zeros((0, 0), dtype=np.float32),
                np.zeros(0, dtype=np.float32),
            )
        return self

    def _fit_crossed(
        self,
        pairs: list[dict[str, Any]],
        y: np.ndarray,
        dev_pairs: list[dict[str, Any]],
        dev_y: np.ndarray,
        targets: list[str],
    ) -> dict[str, Any] | None:
        from sklearn.linear_model import LogisticRegression

        def rows(records: list[dict[str, Any]]) -> tuple[Any, np.ndarray]:
            ids = self._target_ids(records, targets)
            return self._crossed(self._text_features(records), ids, len(targets)), ids

        train, ids = rows(pairs)
        train, y = train[ids >= 0], y[ids >= 0]  # pairs of other targets: nothing to learn from
        if len(set(y)) < 2:
            return None
        dev, dev_ids = rows(dev_pairs)
        answered = dev_ids >= 0
        best = None
        for c in DETECTOR_C:
            model = LogisticRegression(
                C=c, class_weight="balanced", solver="liblinear", max_iter=2000, random_state=0
            ).fit(train, y)
            loss = (
                _balanced_log_loss(model.predict_proba(dev[answered])[:, 1], dev_y[answered])
                if answered.any()
                else None
            )
            if best is None or (loss is not None and loss < best[0] - 1e-4):
                best = (loss if loss is not None else np.inf, c, model)
        loss, c, model = best
        width = (train.shape[1] - len(targets)) // len(targets)  # the text features per target
        coef = model.coef_[0].astype(np.float32)
        self.detector_weights = coef[: width * len(targets)].reshape(len(targets), width)
        self.detector_bias = (coef[width * len(targets) :] + model.intercept_[0]).astype(np.float32)
        return {"C": c, "dev_log_loss": None if not np.isfinite(loss) else round(loss, 4)}

    def _overlap(
        self, records: list[dict[str, Any]], columns: tuple[str, ...] | list[str] = OVERLAP
    ) -> tuple[np.ndarray, np.ndarray]:
        """The overlap ``columns`` of each pair, and whether its target has words to look for."""
        targets = [document_text(r["target"], self.normalization) for r in records]
        texts = [document_text(r["text"], self.normalization) for r in records]
        return relevance_features(targets, texts, columns), np.array(
            [bool(_words(t)) for t in targets]
        )

    def _fit_overlap(
        self,
        pairs: list[dict[str, Any]],
        y: np.ndarray,
        dev_pairs: list[dict[str, Any]],
        dev_y: np.ndarray,
    ) -> dict[str, Any] | None:
        from sklearn.linear_model import LogisticRegression

        x, usable = self._overlap(pairs)
        dev_x, dev_usable = self._overlap(dev_pairs)
        if len(set(y[usable])) < 2 or len(set(dev_y[dev_usable])) < 2:
            return None
        model = LogisticRegression(class_weight="balanced", random_state=0).fit(
            x[usable], y[usable]
        )
        loss = _balanced_log_loss(model.predict_proba(dev_x[dev_usable])[:, 1], dev_y[dev_usable])
        if (
            loss > np.log(2) - 0.05
        ):  # no better than a constant on dev: no answer rather than a guess
            return None
        return {
            "columns": list(OVERLAP),
            "weights": [round(float(w), 6) for w in model.coef_[0]],
            "bias": round(float(model.intercept_[0]), 6),
            "dev_log_loss": round(loss, 4),
        }

    def unrelated_probability(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The detector's probability that each (target, text) pair is not about its target; NaN
        where it does not answer (no detector; a target it has no weights for and, without the
        overlap part, any target it was not trained on)."""
        out = np.full(len(records), np.nan, dtype=np.float32)
        if self.detector is None or not records:
            return out
        ids = self._target_ids(records, self.detector["targets"])
        known = np.flatnonzero(ids >= 0)
        if len(known):
            text = self._text_features([records[i] for i in known])
            logits = self.detector_bias[ids[known]].astype(np.float64)
            for t in np.unique(ids[known]):  # each target's rows against its own weights
                rows = np.flatnonzero(ids[known] == t)
                logits[rows] += text[rows] @ self.detector_weights[t]
            out[known] = 1 / (1 + np.exp(-logits))
        overlap = self.detector.get("overlap")
        others = np.flatnonzero(ids < 0)
        if overlap and len(others):
            x, usable = self._overlap([records[i] for i in others], overlap["columns"])
            logits = x @ np.asarray(overlap["weights"]) + overlap["bias"]
            out[others[usable]] = 1 / (1 + np.exp(-logits[usable]))
        return out

    def detector_tensors(self) -> dict[str, np.ndarray]:
        """The detector's tensors for ``weights.safetensors`` (none without a detector).

        The weights are mostly zeros (a target's block holds only the n-grams seen with it):
        kept sparse, as the index and value of the non-zero ones.
        """
        if self.detector is None:
            return {}
        flat = self.detector_weights.ravel()
        index = np.flatnonzero(flat)
        return {
            "detector.index": index.astype(np.int64),
            "detector.value": flat[index],
            "detector.bias": self.detector_bias,
        }

    def load_detector(
        self,
        directory: Path,
        meta: dict[str, Any],
        tensors: dict[str, np.ndarray],
        text_width: int,
    ) -> None:
        """Set the detector from ``sparse.json``'s ``meta`` and the tensors of
        :meth:`detector_tensors`.

        Raises:
            ModelDirError: weights that do not match the vocabulary, or overlap columns this
                naba does not compute.
        """
        detector = meta.get("detector")
        if not detector:
            return
        n = len(detector["targets"])
        index, value = tensors.get("detector.index"), tensors.get("detector.value")
        if (
            index is None
            or value is None
            or len(tensors.get("detector.bias", [])) != n
            or (len(index) and (index.min() < 0 or index.max() >= n * text_width))
            or len(index) != len(value)
        ):
            raise ModelDirError(
                f"{directory}: the relevance detector's weights do not match its vocabulary; "
                "refit it with `naba blend`"
            )
        weights = np.zeros(n * text_width, dtype=np.float32)
        weights[index] = value
        overlap = detector.get("overlap") or {}
        columns = overlap.get("columns")
        if overlap and (
            not columns
            or not set(columns) <= set(OVERLAP)
            or len(overlap.get("weights", [])) != len(columns)
        ):
            raise ModelDirError(
                f"{directory}: the relevance detector's overlap part names columns this naba does "
                "not compute or does not match its weights; refit it with `naba blend`"
            )
        self.detector, self.detector_weights = detector, weights.reshape(n, text_width)
        self.detector_bias = tensors["detector.bias"]

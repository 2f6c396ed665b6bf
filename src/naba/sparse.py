"""The sparse n-gram model: TF-IDF features and a linear classifier, saved without pickle.

Character 2-5-grams (word-bounded) and word 1-2-grams of naba's normalised
text, a class-balanced linear SVM (single-label; stance reads the target and
the text joined, plus how much of the target the text mentions) or one-vs-rest logistic regression (multi-label). It is the
sparse part of a hybrid model (:mod:`naba.train.hybrid`) and the TF-IDF
baseline of ``naba evaluate``: one implementation.

A stance model trained with unrelated pairs also gets a **relevance
detector** (:meth:`SparseModel.fit_detector`): whether a text is about a
target at all, learned from the real pairs against the generated ones, one
linear model over the text's n-grams per trained target (features crossed
with the target), so it knows each target's vocabulary, not only its name.
It answers for the targets it was trained on (at least
:data:`DETECTOR_MIN_PAIRS` real pairs) and abstains (NaN) for any other.

On disk (``TASK/sparse/``): ``sparse.json`` (settings and label order; the
detector's targets), ``vocabulary.json`` (n-gram -> column, per feature block)
and ``weights.safetensors`` (idf per block, weights and bias per label; the
detector's non-zero weights). Loading builds the vectorizers from these;
nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import NormalizationConfig
from naba.data.records import Task, labels_of
from naba.encoding import document_text
from naba.errors import ModelDirError

SPARSE_DIR = "sparse"
SPARSE_FORMAT = 1
UNSEEN = (
    -1e4
)  # the margin of a label with no training example: never chosen, never NaN in a softmax
BLOCKS = {
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5), "min_df": 2},
    "word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 1},
}
MAX_FEATURES = 300_000
# Stance: whether the text is about the target at all. A linear model over target and text n-grams cannot
# learn it (the text's features are the same whatever the target), so it gets the overlap of the two as
# features of their own: shares of the target's words and character 4-grams found in the text, and
# whether nothing of the target is there.
RELEVANCE = ("target_words_in_text", "target_4grams_in_text", "no_target_word_in_text")
# The detector's overlap part (targets without weights of their own) also reads how telling "none of the target's
# words" is: a text that uses none of a twelve-word claim's words is far surer not about it than one that never
# names a two-word target (tweets against "electric cars" often say neither word).
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
    """The normalised targets the relevance detector learns weights for: those with :data:`DETECTOR_MIN_PAIRS` real pairs."""
    from collections import Counter

    counts = Counter(document_text(r["target"], normalization) for r in related)
    return sorted(t for t, n in counts.items() if n >= DETECTOR_MIN_PAIRS)


def _balanced_log_loss(p: np.ndarray, gold: np.ndarray) -> float:
    """Mean of the two classes' log-losses (``p``: probability of class 1): the rarer class counts as much."""
    if len(set(gold)) < 2:
        return float("inf")
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-(np.mean(np.log(1 - p[gold == 0])) + np.mean(np.log(p[gold == 1]))) / 2)


def sparse_text(
    record: dict[str, Any] | str,
    task: Task,
    normalization: NormalizationConfig,
    include_title: bool = True,
) -> str:
    """What the sparse model reads: the normalised article (stance: ``target | text``)."""
    if isinstance(record, str):
        return document_text(record, normalization)
    if task == "stance":
        return f"{document_text(record['target'], normalization)} | {document_text(record['text'], normalization)}"
    return document_text(record, normalization, include_title)


def _vectorizer(block: str, vocabulary: dict[str, int] | None = None) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    settings = BLOCKS[block]
    return TfidfVectorizer(
        analyzer=settings["analyzer"],
        ngram_range=settings["ngram_range"],
        min_df=1 if vocabulary is not None else settings["min_df"],
        sublinear_tf=True,
        max_features=None if vocabulary is not None else MAX_FEATURES,
        vocabulary=vocabulary,
        dtype=np.float32,
    )


class SparseModel:
    """Fit on canonical records; score, predict, save and load without pickle.

    Example:
        >>> model = SparseModel("topic", ["economy", "sport"], multi_label=False).fit(records)  # doctest: +SKIP
        >>> model.predict([{"text": "..."}])  # doctest: +SKIP
        [['economy']]
    """

    def __init__(
        self,
        task: Task,
        labels: list[str],
        multi_label: bool,
        normalization: NormalizationConfig | None = None,
        include_title: bool = True,
    ) -> None:
        self.task, self.labels, self.multi_label = task, list(labels), multi_label
        self.normalization = normalization or NormalizationConfig()
        self.include_title = include_title
        self.relevance = task == "stance"
        self.vectorizers: dict[str, Any] = {}
        self.weights = np.zeros((len(self.labels), 0), dtype=np.float32)
        self.bias = np.zeros(len(self.labels), dtype=np.float32)
        self.detector: dict[str, Any] | None = (
            None  # {"targets", "C", "dev_log_loss"}; weights below
        )
        self.detector_weights = np.zeros(
            (0, 0), dtype=np.float32
        )  # (targets, text features): the crossed weights
        self.detector_bias = np.zeros(0, dtype=np.float32)  # per target (the intercept included)

    def texts(self, records: list[dict[str, Any]] | list[str]) -> list[str]:
        return [sparse_text(r, self.task, self.normalization, self.include_title) for r in records]

    def features(self, records: list[dict[str, Any]] | list[str]) -> Any:
        """The n-gram blocks, and for stance the relevance columns (:data:`RELEVANCE`)."""
        from scipy.sparse import csr_matrix, hstack

        texts = self.texts(records)
        blocks = [v.transform(texts) for v in self.vectorizers.values()]
        if self.relevance:
            pairs = [
                (
                    document_text(r["target"], self.normalization),
                    document_text(r["text"], self.normalization),
                )
                if isinstance(r, dict)
                else ("", document_text(r, self.normalization))
                for r in records
            ]
            blocks.append(
                csr_matrix(relevance_features([t for t, _ in pairs], [x for _, x in pairs]))
            )
        return hstack(blocks).tocsr()

    def fit(self, records: list[dict[str, Any]]) -> SparseModel:
        """Train on canonical records (seconds to a minute on tens of thousands of articles)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.svm import LinearSVC

        texts = self.texts(records)
        self.vectorizers = {block: _vectorizer(block).fit(texts) for block in BLOCKS}
        features = self.features(records)
        n_features = features.shape[1]
        self.weights = np.zeros((len(self.labels), n_features), dtype=np.float32)
        self.bias = np.full(len(self.labels), UNSEEN, dtype=np.float32)
        gold = [labels_of(r, self.task) for r in records]
        if self.multi_label:
            from naba.decision import binarize

            y = binarize(gold, self.labels)
            seen = np.flatnonzero(y.sum(axis=0) > 0)
            model = OneVsRestClassifier(
                LogisticRegression(max_iter=2000, class_weight="balanced", C=4.0)
            ).fit(features, y[:, seen])
            for row, j in zip(model.estimators_, seen):
                self.weights[j], self.bias[j] = row.coef_[0], row.intercept_[0]
        else:
            y = np.array([g[0] for g in gold])
            model = LinearSVC(class_weight="balanced", C=0.5).fit(features, y)
            coef, intercept = model.coef_, model.intercept_
            if len(model.classes_) == 2:  # sklearn keeps one margin, that of classes_[1]
                coef, intercept = np.vstack([-coef, coef]), np.concatenate([-intercept, intercept])
            for row, label in enumerate(model.classes_):
                j = self.labels.index(label)
                self.weights[j], self.bias[j] = coef[row], intercept[row]
        return self

    def margins(self, records: list[dict[str, Any]] | list[str]) -> np.ndarray:
        """Decision margins, one column per label (a label never seen in training: a large negative margin)."""
        if not records:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        features = self.features(records)
        return np.asarray(features @ self.weights.T, dtype=np.float32) + self.bias

    def decision_scores(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Single-label margins in label order (kept for the studies in ``bench/``)."""
        if self.multi_label:
            raise ValueError("decision_scores: single-label baselines only")
        return self.margins(records)

    def predict(self, records: list[dict[str, Any]] | list[str]) -> list[list[str]]:
        """Label lists: the best margin (single-label), or every label with a positive margin, at least one (multi-label)."""
        margins = self.margins(records)
        if not self.multi_label:
            return [[self.labels[int(j)]] for j in margins.argmax(axis=1)]
        return [
            [self.labels[j] for j in np.flatnonzero(row >= 0)] or [self.labels[int(row.argmax())]]
            for row in margins
        ]

    # ------------------------------------------------------------------------- relevance detector

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
        """Each row's text features moved into its target's block, then a one-hot of the target (rows of other targets: empty)."""
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
    ) -> SparseModel:
        """Learn whether a text is about a target: real pairs against generated unrelated ones (stance, after :meth:`fit`).

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
        """The detector's probability that each (target, text) pair is not about its target; NaN where it does not answer
        (no detector; a target it has no weights for and, without the overlap part, any target it was not trained on)."""
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

    # ------------------------------------------------------------------------- files

    def save(self, directory: Path) -> None:
        """Write ``sparse.json``, ``vocabulary.json`` and ``weights.safetensors`` into ``directory``."""
        from safetensors.numpy import save_file

        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": SPARSE_FORMAT,
            "task": self.task,
            "labels": self.labels,
            "multi_label": self.multi_label,
            "include_title": self.include_title,
            "relevance": list(RELEVANCE) if self.relevance else [],
            "normalization": self.normalization.model_dump(),
            "blocks": {
                name: {
                    **BLOCKS[name],
                    "ngram_range": list(BLOCKS[name]["ngram_range"]),
                    "features": len(v.vocabulary_),
                }
                for name, v in self.vectorizers.items()
            },
            "classifier": "one-vs-rest logistic regression"
            if self.multi_label
            else "linear SVM (class-balanced)",
            "detector": self.detector,
        }
        (directory / "sparse.json").write_text(
            json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        vocab = {
            name: {term: int(i) for term, i in v.vocabulary_.items()}
            for name, v in self.vectorizers.items()
        }
        (directory / "vocabulary.json").write_text(
            json.dumps(vocab, ensure_ascii=False), encoding="utf-8"
        )
        tensors = {
            f"idf.{name}": np.asarray(v.idf_, dtype=np.float32)
            for name, v in self.vectorizers.items()
        }
        if (
            self.detector is not None
        ):  # mostly zeros (a target's block holds only the n-grams seen with it): kept sparse
            flat = self.detector_weights.ravel()
            index = np.flatnonzero(flat)
            tensors |= {
                "detector.index": index.astype(np.int64),
                "detector.value": flat[index],
                "detector.bias": self.detector_bias,
            }
        save_file(
            {**tensors, "weights": self.weights, "bias": self.bias},
            str(directory / "weights.safetensors"),
        )

    @classmethod
    def load(cls, directory: Path) -> SparseModel:
        """Read a directory written by :meth:`save` (JSON and safetensors only).

        Raises:
            ModelDirError: missing or damaged files, or a newer format.
        """
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            meta = json.loads((directory / "sparse.json").read_text(encoding="utf-8"))
            vocab = json.loads((directory / "vocabulary.json").read_text(encoding="utf-8"))
            tensors = load_file(str(directory / "weights.safetensors"))
        except FileNotFoundError as exc:
            raise ModelDirError(
                f"{directory}: the sparse model is incomplete ({Path(exc.filename).name} missing); "
                "refit it with `naba blend`"
            ) from None
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            raise ModelDirError(
                f"{directory}: the sparse model is damaged ({type(exc).__name__}); refit it with `naba blend`"
            ) from None
        if meta.get("format_version", 0) > SPARSE_FORMAT:
            raise ModelDirError(
                f"{directory}: sparse format {meta['format_version']} is newer than this naba reads; upgrade naba"
            )
        model = cls(
            meta["task"],
            meta["labels"],
            meta["multi_label"],
            NormalizationConfig(**meta["normalization"]),
            meta.get("include_title", True),
        )
        model.relevance = bool(
            meta.get("relevance")
        )  # files written before the relevance columns have none
        for name in BLOCKS:
            vectorizer = _vectorizer(name, vocab[name])
            vectorizer.idf_ = tensors[f"idf.{name}"]
            model.vectorizers[name] = vectorizer
        model.weights, model.bias = tensors["weights"], tensors["bias"]
        text_width = sum(len(vocab[name]) for name in BLOCKS)
        width = text_width + (len(RELEVANCE) if model.relevance else 0)
        if model.weights.shape != (len(model.labels), width):
            raise ModelDirError(
                f"{directory}: the sparse weights do not match its vocabulary; refit it with `naba blend`"
            )
        detector = meta.get("detector")
        if detector:  # files written before the relevance detector have none
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
                    f"{directory}: the relevance detector's overlap part names columns this naba does not "
                    "compute or does not match its weights; refit it with `naba blend`"
                )
            model.detector, model.detector_weights = detector, weights.reshape(n, text_width)
            model.detector_bias = tensors["detector.bias"]
        return model

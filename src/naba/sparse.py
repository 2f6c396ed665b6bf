"""The sparse n-gram model: TF-IDF features and a linear classifier, saved without pickle.

Character 2-5-grams (word-bounded) and word 1-2-grams of naba's normalised text, a class-balanced
linear SVM (single-label; stance reads the target and the text joined, plus how much of the target
the text mentions) or one-vs-rest logistic regression (multi-label). It is the sparse part of a
hybrid model (:mod:`naba.train.hybrid`) and the TF-IDF baseline of ``naba evaluate``: one
implementation.

A stance model trained with unrelated pairs also carries a relevance detector
(:mod:`naba.relevance`), saved with the model's files.

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

# detector_targets is re-imported for naba.train.hybrid, which imports it from here.
from naba.relevance import (  # noqa: F401
    RELEVANCE,
    RelevanceDetector,
    detector_targets,
    relevance_features,
)

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
        return (
            f"{document_text(record['target'], normalization)} | "
            f"{document_text(record['text'], normalization)}"
        )
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


class SparseModel(RelevanceDetector):
    """Fit on canonical records; score, predict, save and load without pickle.

    Example:
        >>> model = SparseModel("topic", ["economy", "sport"], multi_label=False)  # doctest: +SKIP
        >>> model = model.fit(records)  # doctest: +SKIP
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
        """Decision margins, one column per label (a label never seen in training: a large negative
        margin)."""
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
        """Label lists: the best margin (single-label), or every label with a positive margin, at
        least one (multi-label)."""
        margins = self.margins(records)
        if not self.multi_label:
            return [[self.labels[int(j)]] for j in margins.argmax(axis=1)]
        return [
            [self.labels[j] for j in np.flatnonzero(row >= 0)] or [self.labels[int(row.argmax())]]
            for row in margins
        ]

    # ------------------------------------------------------------------------- relevance detector

    # ------------------------------------------------------------------------- files

    def save(self, directory: Path) -> None:
        """Write ``sparse.json``, ``vocabulary.json`` and ``weights.safetensors`` into
        ``directory``."""
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
        tensors |= self.detector_tensors()
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
                f"{directory}: the sparse model is damaged ({type(exc).__name__}); "
                "refit it with `naba blend`"
            ) from None
        if meta.get("format_version", 0) > SPARSE_FORMAT:
            raise ModelDirError(
                f"{directory}: sparse format {meta['format_version']} is newer than "
                "this naba reads; upgrade naba"
            )
        model = cls(
            meta["task"],
            meta["labels"],
            meta["multi_label"],
            NormalizationConfig(**meta["normalization"]),
            meta.get("include_title", True),
        )
        model.relevance = bool(meta.get("relevance"))
        for name in BLOCKS:
            vectorizer = _vectorizer(name, vocab[name])
            vectorizer.idf_ = tensors[f"idf.{name}"]
            model.vectorizers[name] = vectorizer
        model.weights, model.bias = tensors["weights"], tensors["bias"]
        text_width = sum(len(vocab[name]) for name in BLOCKS)
        width = text_width + (len(RELEVANCE) if model.relevance else 0)
        if model.weights.shape != (len(model.labels), width):
            raise ModelDirError(
                f"{directory}: the sparse weights do not match its vocabulary; "
                "refit it with `naba blend`"
            )
        model.load_detector(directory, meta, tensors, text_width)
        return model

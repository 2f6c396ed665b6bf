"""The TF-IDF + linear baseline every fine-tuned model is measured against.

Character 2-5-grams and word 1-2-grams with a class-balanced linear SVM
(single-label, stance) or one-vs-rest logistic regression (multi-label).
Stance inputs are the target and the text joined.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from naba.config import NormalizationConfig
from naba.data.records import Task, labels_of
from naba.encoding import document_text
from naba.evaluation.metrics import binarize


def baseline_text(record: dict[str, Any], task: Task, normalization: NormalizationConfig) -> str:
    text = document_text(record, normalization)
    return f"{document_text(record['target'], normalization)} | {text}" if task == "stance" else text


class TfidfBaseline:
    """Fit on canonical records, predict label lists (and scores) for others."""

    def __init__(self, task: Task, labels: list[str], multi_label: bool, normalization: NormalizationConfig | None = None) -> None:
        self.task, self.labels, self.multi_label = task, list(labels), multi_label
        self.normalization = normalization or NormalizationConfig()

    def _features(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_union

        return make_union(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, max_features=300_000),
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=300_000))

    def fit(self, records: list[dict[str, Any]]) -> TfidfBaseline:
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.svm import LinearSVC

        texts = [baseline_text(r, self.task, self.normalization) for r in records]
        self.vectorizer = self._features().fit(texts)
        features = self.vectorizer.transform(texts)
        if self.multi_label:
            y = binarize([labels_of(r, self.task) for r in records], self.labels)
            keep = y.sum(axis=0) > 0
            self.columns = np.flatnonzero(keep)
            self.model = OneVsRestClassifier(LogisticRegression(max_iter=2000, class_weight="balanced", C=4.0)).fit(features, y[:, keep])
        else:
            y = np.array([labels_of(r, self.task)[0] for r in records])
            self.model = LinearSVC(class_weight="balanced", C=0.5).fit(features, y)
        return self

    def predict(self, records: list[dict[str, Any]]) -> list[list[str]]:
        features = self.vectorizer.transform([baseline_text(r, self.task, self.normalization) for r in records])
        if self.multi_label:
            probs = self.model.predict_proba(features)
            out = []
            for row in probs:
                chosen = [self.labels[self.columns[j]] for j in np.flatnonzero(row >= 0.5)]
                out.append(chosen or [self.labels[self.columns[int(row.argmax())]]])
            return out
        return [[label] for label in self.model.predict(features)]

    def decision_scores(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Single-label margins, one column per label in ``labels`` order (a label unseen in training scores -inf)."""
        if self.multi_label:
            raise ValueError("decision_scores: single-label baselines only")
        features = self.vectorizer.transform([baseline_text(r, self.task, self.normalization) for r in records])
        margins = self.model.decision_function(features)
        if margins.ndim == 1:  # two classes: sklearn gives the margin of classes_[1]
            margins = np.stack([-margins, margins], axis=1)
        out = np.full((len(records), len(self.labels)), -np.inf)
        for j, label in enumerate(self.model.classes_):
            out[:, self.labels.index(label)] = margins[:, j]
        return out

"""Fit the sparse part of a hybrid model and choose the blend on dev (``naba train``, ``naba blend``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from naba.blend import blend, choose_blend
from naba.config import NabaConfig
from naba.data.records import labels_of
from naba.evaluation.metrics import binarize, classification_metrics, decide, tune_thresholds
from naba.sparse import SPARSE_DIR, SparseModel
from naba.train.data import TaskData


@dataclass
class Hybrid:
    """A fitted sparse model, the blend chosen on dev, and the blended scores of each split."""

    sparse: SparseModel
    record: dict[str, Any]  # what naba.json's task entry records under "hybrid"
    scores: dict[str, np.ndarray]  # split -> blended probabilities
    sparse_scores: dict[str, np.ndarray]  # split -> the sparse model's own probabilities

    @classmethod
    def fit(cls, task_data: TaskData, encoder: dict[str, np.ndarray], config: NabaConfig) -> Hybrid:
        """Train the sparse model on the task's train split and choose the blend on dev.

        Args:
            task_data: The task's splits (train as the encoder saw it, unrelated stance pairs included).
            encoder: Split name -> the encoder's probabilities (after its prior correction); needs ``dev``.
        """
        multi = task_data.multi_label
        sparse = SparseModel(task_data.task, task_data.labels, multi, config.normalization,
                             config.model.include_title).fit(task_data.splits["train"])
        margins = {name: sparse.margins(task_data.splits[name]) for name in encoder}
        dev_gold = [labels_of(r, task_data.task) for r in task_data.splits["dev"]]
        gold_matrix = binarize(dev_gold, task_data.labels)
        gold = gold_matrix if multi else gold_matrix.argmax(axis=1)

        def score(probabilities: np.ndarray) -> float:
            thresholds = (tune_thresholds(probabilities, gold_matrix, task_data.labels, config.thresholds.floor,
                                          config.thresholds.default) if multi and config.thresholds.tune else None)
            predicted = decide(probabilities, task_data.labels, multi, thresholds, config.thresholds.at_least_one,
                               config.thresholds.default)
            return classification_metrics(dev_gold, predicted, task_data.labels, multi)["macro_f1"]

        record = choose_blend(encoder["dev"], margins["dev"], gold, multi, score)
        record["path"] = SPARSE_DIR
        w, t = record["weight"], record["temperature"]
        scores = {name: blend(encoder[name], margins[name], w, t, multi) for name in encoder}
        own = {name: blend(None, m, 0.0, record["sparse_temperature"], multi) for name, m in margins.items()}
        return cls(sparse, record, scores, own)

    def apply(self, encoder: np.ndarray, records: list[dict[str, Any]]) -> np.ndarray:
        """The blended probabilities of other records, given the encoder's."""
        return blend(encoder, self.sparse.margins(records), self.record["weight"], self.record["temperature"],
                     self.sparse.multi_label)

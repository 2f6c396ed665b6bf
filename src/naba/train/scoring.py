"""Scoring a task's model on dev and test articles, as inference scores them.

Dev macro-F1 picks checkpoints (:func:`evaluate`); after training, dev chooses
the prior correction (:func:`correct_priors`) and tells how often int8 keeps
fp32's labels (:func:`int8_agreement`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from naba.config import NabaConfig
from naba.data.records import labels_of
from naba.decision import choose_prior_correction, class_weights, decide
from naba.encoding import pooled_logits
from naba.evaluation.metrics import classification_metrics
from naba.train.data import TaskData
from naba.train.task_inputs import targets_matrix


def output_layer(model: Any, n_labels: int) -> Any:
    """The classification head's last linear layer (``n_labels`` outputs, with a bias), or None."""
    from torch import nn

    layers = [
        m
        for m in model.modules()
        if isinstance(m, nn.Linear) and m.out_features == n_labels and m.bias is not None
    ]
    return layers[-1] if layers else None


def correct_priors(
    model: Any, task_data: TaskData, dev_docs: list[list[dict]], pad_id: int, config: NabaConfig
) -> float:
    """Choose the prior correction on dev (:func:`choose_prior_correction`) and fold it into the
    head's bias.

    Returns the alpha chosen (0: the model is unchanged). Shifting the bias
    shifts every window's logits, so mean- or max-pooled article scores shift
    the same way and any tool loading the directory gets the corrected
    decision.
    """
    import torch

    weights = class_weights(
        targets_matrix(task_data, task_data.splits["train"]),
        len(task_data.labels),
        config.train.class_weight,
    )
    head = output_layer(model, len(task_data.labels))
    if weights is None or head is None or not dev_docs:
        return 0.0
    probabilities = predict_scores(
        model, dev_docs, pad_id, config.train.eval_batch_size, config.model.window.pooling, False
    )
    alpha = choose_prior_correction(
        probabilities, targets_matrix(task_data, task_data.splits["dev"]), np.log(weights)
    )
    if alpha:
        with torch.no_grad():
            head.bias -= torch.tensor(alpha * np.log(weights), dtype=head.bias.dtype)
    return alpha


def logits_in_window_batches(
    model: Any, docs: list[list[dict]], pad_id: int, batch_size: int, pooling: str
) -> np.ndarray:
    """Article logits in the order of ``docs``, scored as inference scores them
    (:func:`naba.encoding.pooled_logits`), in batches of up to ``batch_size`` full windows.

    The batch size counts windows of the longest length among ``docs``;
    :func:`naba.encoding.pooled_logits` takes a budget of tokens.
    """
    length = max((len(w["input_ids"]) for doc in docs for w in doc), default=1)
    return pooled_logits(model, docs, pad_id, batch_size * length, pooling)


def predict_scores(
    model: Any,
    docs: list[list[dict]],
    pad_id: int,
    batch_size: int,
    pooling: str,
    multi_label: bool,
) -> np.ndarray:
    """Pooled probabilities for documents (sigmoid for multi-label, softmax otherwise)."""
    import torch

    logits = logits_in_window_batches(model, docs, pad_id, batch_size, pooling)
    if not len(logits):
        return logits
    tensor = torch.from_numpy(logits)
    return (torch.sigmoid(tensor) if multi_label else torch.softmax(tensor, dim=-1)).numpy()


def evaluate(
    model: Any,
    task_data: TaskData,
    docs: list[list[dict]],
    records: list[dict[str, Any]],
    pad_id: int,
    config: NabaConfig,
    thresholds: dict[str, float] | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """The metrics of ``model``'s decisions on ``records`` (windowed as ``docs``), and its
    scores."""
    scores = predict_scores(
        model,
        docs,
        pad_id,
        config.train.eval_batch_size,
        config.model.window.pooling,
        task_data.multi_label,
    )
    predicted = decide(
        scores,
        task_data.labels,
        task_data.multi_label,
        thresholds,
        config.thresholds.at_least_one,
        config.thresholds.default,
    )
    gold = [labels_of(r, task_data.task) for r in records]
    return classification_metrics(
        gold, predicted, task_data.labels, task_data.multi_label, scores
    ), scores


def int8_agreement(
    model: Any,
    task_data: TaskData,
    docs: list[list[dict]],
    fp32_scores: np.ndarray,
    pad_id: int,
    config: NabaConfig,
    thresholds: dict[str, float],
) -> float:
    """The share of dev documents whose labels are the same under int8 as under fp32
    (``--precision int8|auto`` reads it).

    ``fp32_scores`` are the fp32 model's probabilities for ``docs``, already computed for the
    hybrid and thresholds.
    """
    from naba.infer.classifier import quantize_int8

    if not docs:
        return 0.0
    window, batch = config.model.window, config.train.eval_batch_size
    int8_scores = predict_scores(
        quantize_int8(model), docs, pad_id, batch, window.pooling, task_data.multi_label
    )
    labels = [
        decide(
            scores,
            task_data.labels,
            task_data.multi_label,
            thresholds or None,
            config.thresholds.at_least_one,
            config.thresholds.default,
        )
        for scores in (fp32_scores, int8_scores)
    ]
    return round(float(np.mean([a == b for a, b in zip(*labels)])), 4)

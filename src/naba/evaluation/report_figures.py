"""The evaluation report's figures (PNG, by matplotlib): confusion, per-class F1, reliability, and
F1 against the threshold for a multi-label task."""

from __future__ import annotations

from typing import Any

import numpy as np

from naba.decision import binarize, f1_at_threshold
from naba.evaluation.metrics import calibration_bins


def _f1_curves(
    scores: np.ndarray, gold: np.ndarray, labels: list[str]
) -> dict[str, list[tuple[float, float]]]:
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    return {
        label: [(float(t), f1_at_threshold(scores[:, j], gold[:, j], t)) for t in grid]
        for j, label in enumerate(labels)
    }


def report_figures(
    labels: list[str],
    gold: list[list[str]],
    predicted: list[list[str]],
    scores: np.ndarray,
    multi_label: bool,
    metrics: dict[str, Any],
    baseline: dict[str, Any] | None,
) -> dict[str, bytes]:
    """The report's figures as PNG bytes, by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {
        "confusion_matrix": _confusion_figure(plt, labels, gold, predicted, multi_label),
        "per_class_f1": _per_class_figure(plt, labels, metrics, baseline),
        "reliability": _reliability_figure(
            plt, labels, gold, predicted, scores, multi_label, metrics
        ),
    }
    if multi_label:
        figures["f1_vs_threshold"] = _threshold_figure(plt, labels, gold, scores, metrics)
    return figures


def _png(plt: Any, fig: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _confusion_figure(
    plt: Any,
    labels: list[str],
    gold: list[list[str]],
    predicted: list[list[str]],
    multi_label: bool,
) -> bytes:
    # Single-label counts gold x predicted; multi-label counts every (gold, predicted) pair.
    n = len(labels)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((n, n), dtype=int)
    for g, p in zip(gold, predicted):
        for a in g:
            for b in p:
                if a in index and b in index:
                    matrix[index[a], index[b]] += 1
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
                fontsize=8,
            )
    ax.set_title("confusion (gold x predicted pairs)" if multi_label else "confusion matrix")
    return _png(plt, fig)


def _per_class_figure(
    plt: Any, labels: list[str], metrics: dict[str, Any], baseline: dict[str, Any] | None
) -> bytes:
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * n), 3.5))
    xs = np.arange(n)
    model_f1 = [metrics["per_class"][label]["f1"] for label in labels]
    width = 0.4 if baseline else 0.7
    ax.bar(xs - (width / 2 if baseline else 0), model_f1, width, label="naba")
    if baseline:
        ax.bar(
            xs + width / 2,
            [baseline["per_class"][label]["f1"] for label in labels],
            width,
            label="TF-IDF baseline",
        )
        ax.legend()
    ax.set_xticks(xs, labels, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1")
    ax.set_title("per-class F1")
    return _png(plt, fig)


def _reliability_figure(
    plt: Any,
    labels: list[str],
    gold: list[list[str]],
    predicted: list[list[str]],
    scores: np.ndarray,
    multi_label: bool,
    metrics: dict[str, Any],
) -> bytes:
    if multi_label:
        y = binarize(gold, labels)
        confidence, correct = scores.reshape(-1), (y.reshape(-1) == 1).astype(float)
    else:
        confidence = scores.max(axis=1)
        correct = np.array([g[0] == p[0] for g, p in zip(gold, predicted)], dtype=float)
    bins = calibration_bins(confidence, correct)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot([mean for _, mean, _ in bins], [accuracy for _, _, accuracy in bins], "o-")
    ax.set_xlabel("confidence")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"reliability (ECE {metrics.get('ece', 0):.3f})")
    return _png(plt, fig)


def _threshold_figure(
    plt: Any, labels: list[str], gold: list[list[str]], scores: np.ndarray, metrics: dict[str, Any]
) -> bytes:
    curves = _f1_curves(scores, binarize(gold, labels), labels)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in curves.items():
        ax.plot([t for t, _ in points], [f for _, f in points], label=label)
    for t in metrics.get("thresholds", {}).values():
        ax.axvline(t, color="grey", alpha=0.15)
    ax.set_xlabel("threshold")
    ax.set_ylabel("F1")
    ax.set_title("F1 vs threshold per label")
    ax.legend(fontsize=7, ncol=2)
    return _png(plt, fig)

"""Fit the sparse part of a hybrid model and choose the blend on dev.

Used by ``naba train`` and by ``naba blend`` (:mod:`naba.train.blend_existing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from naba.blend import choose_blend, choose_gate
from naba.config import NabaConfig
from naba.data.records import labels_of
from naba.decision import binarize, decide, tune_thresholds
from naba.encoding import document_text
from naba.evaluation.metrics import classification_metrics
from naba.rule import HybridRule, RelevanceGate
from naba.sparse import SPARSE_DIR, SparseModel, detector_targets
from naba.train.data import TaskData


def split_rows(task_data: TaskData, name: str) -> list[dict[str, Any]]:
    """A split's records: ``dev``, ``test``, or generated unrelated stance pairs.

    The generated pairs are ``dev_unrelated`` and ``test_unrelated``.
    """
    if name.endswith("_unrelated"):
        return task_data.unrelated_pairs[name[: -len("_unrelated")]]
    return task_data.splits[name]


# Cross-target pairs per real pair the relevance detector learns from, besides training's own.
DETECTOR_RATIO = 2.0


def fit_relevance_detector(
    sparse: SparseModel, task_data: TaskData, config: NabaConfig
) -> SparseModel:
    """Fit the sparse part's relevance detector as training does.

    Used by ``naba train``, ``naba blend`` and ``bench/hybrid.py``.

    Its negatives are training's generated unrelated pairs plus more: each real
    text with trained targets it is never paired with (up to
    :data:`DETECTOR_RATIO` per real pair, train and dev each from their own
    texts). Training's generated pairs are few (``unrelated_ratio``) and half of
    them may be topic articles; the detector learns each target's vocabulary
    from these.
    """
    from naba.data.unrelated import targets_by_text, unrelated_pairs

    generated = task_data.unrelated["pairs"].get("train", 0)
    real = {
        name: records[: len(records) - generated] if name == "train" else records
        for name, records in task_data.splits.items()
    }
    written_about = targets_by_text(
        [r for records in real.values() for r in records], config.normalization
    )
    learnt = set(
        detector_targets(real["train"], config.normalization)
    )  # pairs need the raw target strings
    targets = sorted(
        t
        for t in {r["target"] for r in real["train"]}
        if document_text(t, config.normalization) in learnt
    )
    more = {
        split: unrelated_pairs(
            real[split],
            task_data.unrelated["label"],
            config.normalization,
            ratio=DETECTOR_RATIO,
            seed=f"{config.seed}:detector:{split}",
            written_about=written_about,
            targets=targets,
            id_prefix=f"detector-{split}",
        )
        for split in ("train", "dev")
    }
    return sparse.fit_detector(
        real["train"],
        task_data.splits["train"][len(real["train"]) :] + more["train"],
        real["dev"],
        task_data.unrelated_pairs["dev"] + more["dev"],
    )


def thresholds_for(
    task_data: TaskData, dev_scores: np.ndarray, config: NabaConfig
) -> dict[str, float]:
    """Multi-label: per-label thresholds tuned on dev scores (or the default for all).

    Single-label: none.
    """
    if not task_data.multi_label:
        return {}
    if not config.thresholds.tune:
        return {label: config.thresholds.default for label in task_data.labels}
    gold = binarize(
        [labels_of(r, task_data.task) for r in task_data.splits["dev"]], task_data.labels
    )
    return tune_thresholds(
        dev_scores, gold, task_data.labels, config.thresholds.floor, config.thresholds.default
    )


def split_metrics(
    task_data: TaskData,
    split: str,
    scores: np.ndarray,
    thresholds: dict[str, float],
    config: NabaConfig,
) -> dict[str, Any]:
    predicted = decide(
        scores,
        task_data.labels,
        task_data.multi_label,
        thresholds or None,
        config.thresholds.at_least_one,
        config.thresholds.default,
    )
    gold = [labels_of(r, task_data.task) for r in task_data.splits[split]]
    return classification_metrics(gold, predicted, task_data.labels, task_data.multi_label, scores)


def decide_and_score(
    task_data: TaskData, encoder: dict[str, np.ndarray], config: NabaConfig, hybrid: Hybrid | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Thresholds tuned on the final dev scores, then the metrics.

    The metrics of every split, of the parts of a hybrid, and of relevance.

    Args:
        encoder: Split name -> the encoder's probabilities (``dev``, ``test``,
            and ``dev_unrelated``/``test_unrelated`` for stance trained with unrelated pairs).
        hybrid: The fitted hybrid, or None for the encoder alone.

    Returns:
        The thresholds (multi-label) and the metrics for the manifest.
    """
    final = hybrid.scores if hybrid is not None else encoder
    thresholds = thresholds_for(task_data, final["dev"], config)
    metrics: dict[str, Any] = {
        name: split_metrics(task_data, name, final[name], thresholds, config)
        for name in ("dev", "test")
        if name in final
    }
    if hybrid is not None:
        metrics["parts"] = {}
        for part, scores in (
            ("encoder", encoder),
            ("sparse", hybrid.sparse_scores),
            ("hybrid", final),
        ):
            part_thresholds = thresholds_for(task_data, scores["dev"], config)
            if part_thresholds and part != "hybrid":  # the report's side-by-side reads them
                hybrid.rule.part_thresholds[part] = part_thresholds
            metrics["parts"][part] = {
                name: {
                    k: round(v, 4)
                    for k, v in split_metrics(
                        task_data, name, scores[name], part_thresholds, config
                    ).items()
                    if k in ("macro_f1", "accuracy")
                }
                for name in ("dev", "test")
                if name in scores
            }
    if task_data.unrelated:
        neutral = task_data.labels.index(task_data.unrelated["label"])
        metrics["relevance"] = {}
        for name, pairs in task_data.unrelated_pairs.items():
            scores = final.get(f"{name}_unrelated")
            share = (
                round(float(np.mean(scores.argmax(axis=1) == neutral)), 4)
                if pairs and scores is not None
                else 0.0
            )
            metrics["relevance"][name] = {"pairs": len(pairs), "neutral_share": share}
    return thresholds, metrics


def _decider(
    task_data: TaskData, config: NabaConfig, dev_gold: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """The task's decision of a dev probability matrix, as a 0/1 label matrix.

    Multi-label thresholds are tuned on the matrix's own dev rows (as training
    then tunes them on the chosen scores); single-label is the argmax.
    """
    labels, multi = task_data.labels, task_data.multi_label
    dev = len(dev_gold)

    def predict(probabilities: np.ndarray) -> np.ndarray:
        thresholds = None
        if multi and config.thresholds.tune:
            thresholds = tune_thresholds(
                probabilities[:dev],
                dev_gold,
                labels,
                config.thresholds.floor,
                config.thresholds.default,
            )
        decided = decide(
            probabilities,
            labels,
            multi,
            thresholds,
            config.thresholds.at_least_one,
            config.thresholds.default,
        )
        return binarize(decided, labels)

    return predict


def _choose_gate(
    rule: HybridRule,
    task_data: TaskData,
    encoder: dict[str, np.ndarray],
    margins: dict[str, np.ndarray],
    detector: dict[str, np.ndarray],
    predict: Callable[[np.ndarray], np.ndarray],
    dev_gold: np.ndarray,
) -> RelevanceGate | None:
    """The relevance gate on dev and its unrelated pairs: the detector's where there is one."""
    label = task_data.unrelated["label"]
    rows = {
        name: np.concatenate([part["dev"], part["dev_unrelated"]])
        for name, part in (("encoder", encoder), ("margins", margins), ("detector", detector))
        if part
    }
    source = "detector" if detector else "encoder"
    probe = RelevanceGate(label=label, source=source, threshold=0.5)
    scores = rule.scores(rows["encoder"], rows["margins"], task_data.labels, False)  # no gate yet
    signal = rule.model_copy(update={"relevance_gate": probe}).not_about(
        rows["encoder"], rows.get("detector"), task_data.labels
    )
    real = len(dev_gold)
    neutral = binarize([[label]], task_data.labels)
    gold = np.concatenate([dev_gold, np.repeat(neutral, len(scores) - real, axis=0)])
    chosen = choose_gate(scores, signal, task_data.labels.index(label), gold, predict, real)
    if chosen.threshold is None:
        return None
    return RelevanceGate(
        label=label, source=source, threshold=chosen.threshold, dev_macro_f1=chosen.dev_macro_f1
    )


@dataclass
class Hybrid:
    """A fitted sparse model, the blend chosen on dev, and the blended scores of each split."""

    sparse: SparseModel
    rule: HybridRule  # what naba.json's task entry records under "hybrid"
    scores: dict[str, np.ndarray]  # split -> blended probabilities
    sparse_scores: dict[str, np.ndarray]  # split -> the sparse model's own probabilities

    @classmethod
    def fit(
        cls,
        task_data: TaskData,
        encoder: dict[str, np.ndarray],
        config: NabaConfig,
        sparse: SparseModel | None = None,
    ) -> Hybrid:
        """Train the sparse model on the task's train split and choose the rule on dev.

        The rule is the equal blend of the parts, or a departure whose dev gain holds in a
        paired bootstrap (:func:`naba.blend.choose_blend`).
        Stance trained with unrelated pairs: the sparse model learns stance from
        the real pairs only and a relevance detector from the real pairs against
        generated ones; the blend is chosen on the real dev pairs, then a
        relevance gate (the detector's signal, or the encoder's without a
        detector) on dev *and* its generated unrelated pairs (labelled neutral):
        the blend answers "which stance", the gate "is this text about the
        target", each part asked the question it can answer.

        Args:
            task_data: The task's splits (train as the encoder saw it, unrelated stance
                pairs included).
            encoder: Split name -> the encoder's probabilities (after its prior
                correction); needs ``dev``.
            sparse: An already fitted sparse model (a distilled student keeps its
                teacher's); None trains one.
        """
        multi = task_data.multi_label
        generated = (task_data.unrelated or {}).get("pairs", {}).get("train", 0)
        train = task_data.splits["train"][: len(task_data.splits["train"]) - generated]
        unrelated = (
            len(encoder.get("dev_unrelated", [])) if task_data.unrelated and not multi else 0
        )
        if sparse is None:
            sparse = SparseModel(
                task_data.task,
                task_data.labels,
                multi,
                config.normalization,
                config.model.include_title,
            ).fit(train)
            if unrelated:
                fit_relevance_detector(sparse, task_data, config)
        margins = {name: sparse.margins(split_rows(task_data, name)) for name in encoder}
        gold = binarize(
            [labels_of(r, task_data.task) for r in task_data.splits["dev"]], task_data.labels
        )
        predict = _decider(task_data, config, gold)
        chosen = choose_blend(encoder["dev"], margins["dev"], gold, multi, predict)
        rule = HybridRule(
            choice=chosen.choice,
            blend_lambda=chosen.blend_lambda,
            temperature=chosen.temperature,
            sparse_temperature=chosen.sparse_temperature,
            dev_macro_f1=chosen.dev_macro_f1,
            path=SPARSE_DIR,
            chosen_on=f"dev: {chosen.why}",
        )
        detector = (
            {name: sparse.unrelated_probability(split_rows(task_data, name)) for name in encoder}
            if unrelated and sparse.detector is not None
            else {}
        )
        if unrelated and (detector or rule.choice != "encoder"):
            rule.relevance_gate = _choose_gate(
                rule, task_data, encoder, margins, detector, predict, gold
            )
            rule.chosen_on += "; the relevance gate on dev and its generated unrelated pairs"
        labels = task_data.labels
        scores = {
            name: rule.scores(encoder[name], margins[name], labels, multi, detector.get(name))
            for name in encoder
        }
        own = {name: rule.sparse_scores(m, multi) for name, m in margins.items()}
        return cls(sparse, rule, scores, own)

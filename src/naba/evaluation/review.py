"""``naba review``: the labelled rows most likely mislabelled, most suspect first, with evidence.

Out-of-fold probabilities come from k-fold of the sparse part
(:class:`naba.sparse.SparseModel`, seconds per fold): each row is scored by
a model that never saw its label. With a model directory, the model's own
probabilities are averaged in (a model trained on these rows has learnt
their labels, noise included, so it finds fewer errors there; it helps most on
a batch it has not seen). The probabilities go to cleanlab
(``find_label_issues``: confident learning, pruned by the estimated noise
rates; ``get_label_quality_scores`` for the rank); multi-label topics through
cleanlab's multi-label variants, stance as single-label.

Each row of the result: ``id``, the ``given`` labels, the ``suggested`` ones
(the out-of-fold decision), a ``score`` (1 - cleanlab's label quality: higher
is more suspect), whether cleanlab ``flagged`` it, the evidence for every given
and suggested label (:mod:`naba.infer.evidence`, from the fold's sparse
model) and, where the record says, the taxonomy rules that gave its labels
(``labels_from``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from naba.data.records import Task, labels_of, load_records
from naba.errors import InputError, NabaError

logger = logging.getLogger(__name__)

TEMPERATURES = (
    0.05,
    0.1,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
)  # for the SVM's margins, by OOF log-loss


class MissingExtra(NabaError):
    """An optional dependency is not installed."""


@dataclass
class ReviewOptions:
    """How ``naba review`` scores rows: folds, seed, evidence per label, all rows or flagged."""

    folds: int = 5
    seed: int = 13
    explain: int = 5
    all_rows: bool = False
    batch_size: int = 16
    device: str | None = "auto"


def _cleanlab() -> Any:
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        raise MissingExtra("naba review needs cleanlab: pip install 'naba[review]'") from None
    import cleanlab.filter
    import cleanlab.multilabel_classification.filter
    import cleanlab.multilabel_classification.rank
    import cleanlab.rank

    return cleanlab


def _softmax(margins: np.ndarray, temperature: float) -> np.ndarray:
    z = margins / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _folds(
    y: list[list[str]], labels: list[str], multi_label: bool, k: int, seed: int
) -> list[Any]:
    """Row indices held out in each fold: stratified (single-label) or shuffled (multi-label)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(y)
    if multi_label:
        return [test for _, test in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]
    first = np.array([labels.index(g[0]) for g in y])
    counts = np.bincount(first, minlength=len(labels))
    # StratifiedKFold needs k rows of the rarest class; with fewer, plain shuffled folds.
    if counts[counts > 0].min() >= k:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
        return [test for _, test in splitter.split(np.zeros(n), first)]
    return [test for _, test in KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))]


def out_of_fold(
    records: list[dict[str, Any]],
    task: Task,
    labels: list[str],
    multi_label: bool,
    options: ReviewOptions,
    normalization: Any = None,
) -> tuple[np.ndarray, list[Any], np.ndarray]:
    """Out-of-fold probabilities of the sparse part, the fold models, and each row's fold.

    Single-label margins become probabilities by a softmax whose temperature
    minimises the out-of-fold log-loss of the given labels; multi-label rows
    take the logistic regressions' sigmoids.
    """
    from naba.sparse import SparseModel

    if options.folds < 2 or options.folds > len(records):
        raise InputError(
            f"folds: expected 2 to {len(records)} (the number of rows), found {options.folds}"
        )
    gold = [labels_of(r, task) for r in records]
    margins = np.zeros((len(records), len(labels)), dtype=np.float64)
    fold_of = np.zeros(len(records), dtype=np.int64)
    models = []
    for f, test in enumerate(_folds(gold, labels, multi_label, options.folds, options.seed)):
        train = np.setdiff1d(np.arange(len(records)), test)
        model = SparseModel(task, labels, multi_label, normalization).fit(
            [records[i] for i in train]
        )
        margins[test] = model.margins([records[i] for i in test])
        fold_of[test] = f
        models.append(model)
        logger.info("fold %d of %d scored", f + 1, options.folds)
    if multi_label:
        return 1 / (1 + np.exp(-np.clip(margins, -50, 50))), models, fold_of
    given = np.array([labels.index(g[0]) for g in gold])

    def loss(t: float) -> float:
        p = _softmax(margins, t)[np.arange(len(given)), given]
        return float(-np.mean(np.log(np.clip(p, 1e-12, 1))))

    best = min(TEMPERATURES, key=loss)
    return _softmax(margins, best), models, fold_of


def model_probabilities(
    model_dir: str | Path, records: list[dict[str, Any]], task: Task, options: ReviewOptions
) -> np.ndarray:
    """A naba model's probabilities for the records (what its decision reads), in label order."""
    from naba.infer.classifier import Classifier

    classifier = Classifier.load(model_dir, device=options.device)
    labels = classifier.tasks[task].spec.labels
    results = classifier.predict(records, tasks=[task], batch_size=options.batch_size)
    if task == "topic":
        rows = [[r["topics"]["scores"][label] for label in labels] for r in results]
    else:
        rows = [[r["stance"][0]["scores"][label] for label in labels] for r in results]
    return np.asarray(rows, dtype=np.float64)


def label_issues(
    gold: list[list[str]], probs: np.ndarray, labels: list[str], multi_label: bool
) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's verdict per row: flagged (``find_label_issues``), suspicion (1 - quality)."""
    cleanlab = _cleanlab()
    ids = [[labels.index(g) for g in row] for row in gold]
    if multi_label:
        given: Any = ids
        quality = cleanlab.multilabel_classification.rank.get_label_quality_scores(given, probs)
    else:
        given = np.array([row[0] for row in ids])
        quality = cleanlab.rank.get_label_quality_scores(given, probs)
    if multi_label:
        flagged = cleanlab.multilabel_classification.filter.find_label_issues(
            given, probs, n_jobs=1, min_examples_per_class=1
        )
    else:
        flagged = cleanlab.filter.find_label_issues(
            given, probs, n_jobs=1, min_examples_per_class=1
        )
    return np.asarray(flagged, dtype=bool), 1.0 - np.asarray(quality, dtype=np.float64)


def _suggested(row: np.ndarray, labels: list[str], multi_label: bool) -> list[str]:
    if not multi_label:
        return [labels[int(row.argmax())]]
    return [labels[j] for j in np.flatnonzero(row >= 0.5)] or [labels[int(row.argmax())]]


def _check_labels(
    records: list[dict[str, Any]], task: Task, labels: list[str], source: str | Path
) -> None:
    known = set(labels)
    for record in records:
        unknown = sorted(set(labels_of(record, task)) - known)
        if unknown:
            raise InputError(
                f"{source}: row {record.get('id')!r}: labels {unknown} are not among the "
                "model's labels "
                f"{labels}; map them or review without --model"
            )


def review_records(
    records: list[dict[str, Any]],
    task: Task,
    *,
    model_dir: str | Path | None = None,
    options: ReviewOptions | None = None,
    source: str | Path = "data",
) -> list[dict[str, Any]]:
    """Rank labelled records by how likely their labels are wrong, most suspect first.

    Args:
        records: Canonical labelled records of one task (``topics`` or ``stance``).
        task: ``topic`` or ``stance``.
        model_dir: A naba model whose probabilities are averaged with the
            out-of-fold ones (its labels then fix the label set).
        options: Folds, seed, evidence per label, and ``all_rows`` (every row,
            not only those cleanlab flags).
        source: The data's name, for error messages.

    Returns:
        Review rows (see the module docstring), most suspect first.

    Raises:
        MissingExtra: cleanlab is not installed.
        InputError: too few rows for the folds; labels the model does not know.
    """
    options = options or ReviewOptions()
    _cleanlab()  # before minutes of work
    gold = [labels_of(r, task) for r in records]
    labels = sorted({g for row in gold for g in row})
    multi_label = task == "topic" and any(len(g) > 1 for g in gold)
    extra = None
    if model_dir is not None:
        from naba.manifest import read_manifest

        tasks = read_manifest(model_dir).tasks  # the cheap checks before loading the weights
        if task not in tasks:
            raise InputError(f"{model_dir}: has no {task} model (it has {', '.join(tasks)})")
        labels, multi_label = list(tasks[task].labels), tasks[task].multi_label
        _check_labels(records, task, labels, source)
        extra = model_probabilities(model_dir, records, task, options)
    if len(labels) < 2:
        raise InputError(f"{source}: one label only ({labels[0]}); nothing to tell apart")
    probs, models, fold_of = out_of_fold(records, task, labels, multi_label, options)
    if extra is not None:
        probs = (probs + extra) / 2
        if not multi_label:
            probs = probs / probs.sum(axis=1, keepdims=True)
    flagged, suspicion = label_issues(gold, probs, labels, multi_label)
    order = np.argsort(-suspicion, kind="stable")
    rows = []
    for i in order:
        if not (flagged[i] or options.all_rows):
            continue
        rows.append(
            _row(records[i], gold[i], probs[i], labels, multi_label, models[fold_of[i]], options)
            | {"score": round(float(suspicion[i]), 6), "flagged": bool(flagged[i])}
        )
    return rows


def _row(
    record: dict[str, Any],
    given: list[str],
    probs: np.ndarray,
    labels: list[str],
    multi_label: bool,
    model: Any,
    options: ReviewOptions,
) -> dict[str, Any]:
    from naba.infer.evidence import evidence_records

    suggested = _suggested(probs, labels, multi_label)
    row: dict[str, Any] = {"id": record.get("id")}
    if record.get("target") is not None:
        row["target"] = record["target"]
    row |= {
        "given": given,
        "suggested": suggested,
        "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probs)},
    }
    wanted = list(dict.fromkeys(suggested + given))
    if options.explain:
        row["evidence"] = evidence_records(model, [record], [wanted], options.explain)[0]
    rules = [e for e in record.get("labels_from") or [] if e.get("topic") in given]
    if rules:
        row["labels_from"] = rules
    return row


def review_file(
    data: str | Path,
    task: Task,
    output: str | Path,
    *,
    model_dir: str | Path | None = None,
    report_dir: str | Path | None = None,
    options: ReviewOptions | None = None,
) -> dict[str, Any]:
    """:func:`review_records` on a file: rows to ``output`` (JSONL), the page to ``report_dir``.

    Returns:
        A summary: rows read, rows flagged, rows written, the output and report paths.

    Raises:
        InputError: unreadable data, an output that is not ``.jsonl``; see :func:`review_records`.
    """
    from naba.atomic import atomic_file
    from naba.data.writers import dumps

    output = Path(output)
    if not output.name.endswith(".jsonl"):
        raise InputError(f"{output}: expected a .jsonl output")
    records = load_records(data, task)
    rows = review_records(records, task, model_dir=model_dir, options=options, source=data)
    with atomic_file(output) as handle:
        handle.write("".join(dumps(row) + "\n" for row in rows))
    summary = {
        "rows": len(records),
        "flagged": sum(r["flagged"] for r in rows),
        "written": len(rows),
        "output": str(output),
    }
    if report_dir is not None:
        from naba.evaluation.review_report import write_review_report

        by_id = {r.get("id"): r for r in records}
        summary["report"] = str(
            write_review_report(rows, by_id, Path(report_dir), task=task, data=str(data))
        )
    return summary

"""Articles made ready for the encoders: checked, normalised, paired with stance targets, tokenised.

:meth:`naba.infer.classifier.Classifier.prepare` is :func:`prepare_articles`;
what it gives (:class:`Prepared`) is what
:meth:`~naba.infer.classifier.Classifier.classify` runs the model on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from naba.errors import NabaError

TASK_NAMES = ("topic", "stance")
Article = str | dict[str, Any]


@dataclass
class Prepared:
    """Articles normalised and tokenised by :meth:`Classifier.prepare`, ready for
    :meth:`Classifier.classify`."""

    records: list[dict[str, Any]]
    docs: dict[str, list[list[dict[str, list[int]]]]] = field(
        default_factory=dict
    )  # task -> windows per document
    pairs: list[tuple[int, str]] = field(
        default_factory=list
    )  # stance: (article index, target) per document
    tasks: list[str] = field(default_factory=lambda: list(TASK_NAMES))  # the tasks to run
    sparse: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict
    )  # task -> what a hybrid's sparse part reads

    def windows(self, task: str) -> list[int]:
        """The windows the encoder reads for each document of ``task`` (stance: each (article,
        target) pair)."""
        return [len(doc) for doc in self.docs.get(task, [])]

    def require_stance_pairs(self) -> None:
        """Refuse a stance-only run where no article has a target (nothing would be scored).

        Raises:
            NabaError: ``tasks`` is stance only and no article has a target.
        """
        if self.tasks == ["stance"] and self.records and not self.pairs:
            raise NabaError(
                "stance: no article has a target; pass targets=[...], all_targets=True or records "
                "with a 'target'"
            )


def prepare_articles(
    classifier: Any,
    articles: Sequence[Article],
    targets: Sequence[str] | None = None,
    *,
    tasks: Sequence[str] | str | None = None,
    all_targets: bool = False,
    parts: bool = False,
    target_descriptions: Mapping[str, str | Sequence[str]] | None = None,
) -> Prepared:
    """What :meth:`Classifier.prepare <naba.infer.classifier.Classifier.prepare>` gives
    ``classifier``."""
    selected = classifier.selected_tasks(tasks)
    _check_target_options(classifier, selected, targets, all_targets)
    records = [as_record(article, i) for i, article in enumerate(articles)]
    prepared = Prepared(records, tasks=selected)
    if not records:
        return prepared
    if "topic" in selected:
        task = classifier.tasks["topic"]
        if task.runs_encoder or parts:
            prepared.docs["topic"] = classifier._windows("topic", records)
        if task.runs_sparse or (parts and task.spec.hybrid is not None):
            prepared.sparse["topic"] = records
    if "stance" in selected:
        task = classifier.tasks["stance"]
        prepared.pairs = stance_pairs(records, targets, all_targets, task.spec.default_targets)
        read = classifier.read_targets(prepared.pairs, target_descriptions)  # what the model reads
        if prepared.pairs and (task.runs_encoder or parts):
            prepared.docs["stance"] = classifier._windows("stance", records, read)
        if prepared.pairs and (task.runs_sparse or (parts and task.spec.hybrid is not None)):
            prepared.sparse["stance"] = [{"text": records[i]["text"], "target": t} for i, t in read]
    return prepared


def _check_target_options(
    classifier: Any, selected: list[str], targets: Sequence[str] | None, all_targets: bool
) -> None:
    """Refuse both ``targets`` and ``all_targets``, or ``all_targets`` with no trained targets."""
    if targets and all_targets:
        raise NabaError(
            "targets and all_targets: pass one of them (all_targets scores the targets the model "
            "was trained on)"
        )
    if all_targets and "stance" in selected and not classifier.tasks["stance"].spec.default_targets:
        raise NabaError(
            f"all_targets: {classifier.model_dir} records no trained stance targets; name the "
            "targets to score"
        )


def stance_pairs(
    records: list[dict[str, Any]],
    targets: Sequence[str] | None,
    all_targets: bool,
    trained: list[str],
) -> list[tuple[int, str]]:
    """The ``(article index, target)`` pairs stance scores, in article order.

    Stance only where asked: the caller's ``targets``, else the record's own
    target; the ``trained`` targets with ``all_targets``.
    """
    pairs: list[tuple[int, str]] = []
    for i, record in enumerate(records):
        wanted = (
            list(targets)
            if targets
            else trained
            if all_targets
            else [record["target"]]
            if record.get("target")
            else []
        )
        pairs.extend((i, t) for t in wanted)
    return pairs


def as_record(article: Article, index: int) -> dict[str, Any]:
    """A record with a text worth classifying; an empty, whitespace-only or invisible-only text is
    rejected (as ``naba predict`` turns it into an error record and the service into a 422)."""
    from naba.data.records import FieldError, required_text

    if isinstance(article, str):
        article = {"text": article}
    elif not (isinstance(article, dict) and isinstance(article.get("text"), str)):
        raise NabaError(
            f"article {index}: expected a string or a record with a 'text' string, found "
            f"{type(article).__name__}"
        )
    try:
        required_text(article, "text")
    except FieldError as exc:
        raise NabaError(f"article {index}: text: {exc.message}") from None
    return article

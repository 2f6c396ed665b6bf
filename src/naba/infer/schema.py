"""One prediction record, the same in every door: :meth:`Classifier.predict`, ``naba predict`` and
``POST /v1/classify``.

A record is ``{"id", "topics": {"labels", "scores"}, "stance": [{"target",
"label", "scores", "relevance"}]}``; with ``explain``, ``topics.evidence`` and each stance
entry's ``evidence`` too (:class:`EvidenceItem`). A key is present only when it has a value: ``id``
when the article had one (``naba predict`` always gives one: the row's id or
``FILE:LINE``), ``topics`` when the topic task ran, ``stance`` when the
article was scored against at least one target. A columnar file (Parquet,
CSV) has a column for every task that ran, empty (null) where a record lacks
the key.

:class:`Prediction` is the contract; the Python API returns plain dicts of
that shape (cheaper than models, and what a JSON encoder takes), the service
documents its results with it, and ``GET /v1/schema`` serves
:func:`prediction_json_schema`. :func:`parquet_schema` and
:func:`csv_columns` / :func:`csv_row` are the record's Parquet and CSV forms.
"""

# No ``from __future__ import annotations``: pydantic reads these annotations at runtime.

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CSV_LABEL_SEPARATOR = "|"


class EvidenceItem(BaseModel):
    """A word or phrase of the article that weighs for a label in the sparse part (``explain``)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        description="The word or phrase as written in the article (its first occurrence)."
    )
    field: str = Field(description="Where it is: `title` or `text`.")
    start: int = Field(
        description="Its first character in that field (0-based, Python string offsets)."
    )
    end: int = Field(
        description="One past its last character: `article[field][start:end] == text`."
    )
    weight: float = Field(
        description="Its part in the label's sparse score: weight x tf-idf of its n-grams, "
        "summed over its occurrences."
    )
    count: int = Field(description="How often it occurs in the field(s) shown.")


class TopicPrediction(BaseModel):
    """The topic task's answer for one article."""

    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(
        description="The chosen labels, in the model's label order: those whose score passed "
        "its threshold (multi-label; the best one when none passed and the model "
        "keeps at least one), or the most probable one (single-label)."
    )
    scores: dict[str, float] = Field(
        description="Every topic label of the model with its probability, rounded to 6 decimals."
    )
    evidence: dict[str, list[EvidenceItem]] | None = Field(
        default=None,
        description="With `explain` K: for each chosen label, the K words or phrases that weigh "
        "most for it, heaviest first.",
    )


class StancePrediction(BaseModel):
    """The stance of one article toward one target."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(description="The target, as it was asked for.")
    label: str = Field(description="The most probable stance label.")
    scores: dict[str, float] = Field(
        description="Every stance label of the model with its probability, rounded to 6 "
        "decimals; they sum to 1."
    )
    relevance: float | None = Field(
        default=None,
        description="The probability that the article is about the target, as the model's "
        "relevance gate reads it (the label is the neutral one where it is low). Present "
        "when the model has a relevance gate and it gave an answer for this pair.",
    )
    evidence: list[EvidenceItem] | None = Field(
        default=None,
        description="With `explain` K: the K words or phrases of the text that weigh most for "
        "`label`, heaviest first.",
    )


class Prediction(BaseModel):
    """One article's prediction. A key is absent when it has no value (null in Parquet, empty cells
    in CSV)."""

    model_config = ConfigDict(extra="forbid", title="Prediction")

    id: str | int | None = Field(
        default=None,
        description="The article's id, as given (naba predict: the row's id, else FILE:LINE). "
        "Absent when the article had none.",
    )
    topics: TopicPrediction | None = Field(
        default=None, description="Present when the topic task ran."
    )
    stance: list[StancePrediction] | None = Field(
        default=None,
        description="One entry per target, in the order asked for. Present when the stance task "
        "ran and the article had a target (the targets asked for, its own target, or every "
        "trained target on request).",
    )


def prediction_json_schema() -> dict[str, Any]:
    """The JSON Schema of one prediction record (what ``GET /v1/schema`` answers and the README
    publishes)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **Prediction.model_json_schema(),
    }


def stance_slots(targets: list[str] | None, all_targets: bool, default_targets: list[str]) -> int:
    """How many stance entries an article can get: the targets asked for, every trained target, or
    its own one."""
    if targets:
        return len(targets)
    return len(default_targets) if all_targets else 1


def parquet_schema(
    tasks: list[str],
    labels: dict[str, list[str]],
    explain: bool = False,
    *,
    relevance: bool = False,
) -> Any:
    """The record as typed Parquet columns: ``id`` a string; ``topics`` a struct of ``labels`` (a
    list of strings) and ``scores`` (a struct of one float per label); ``stance`` a list of structs
    ``{target, label, scores}`` (and ``relevance``, a float, for a model with a relevance gate).
    A column for each task in ``tasks``; null where a record lacks the key. With ``explain``,
    ``topics`` also has ``evidence`` (a struct of one list of :class:`EvidenceItem` structs per
    label, null for a label not chosen) and each stance struct an ``evidence`` list."""
    import pyarrow as pa

    items = pa.list_(
        pa.struct(
            [
                ("text", pa.string()),
                ("field", pa.string()),
                ("start", pa.int64()),
                ("end", pa.int64()),
                ("weight", pa.float64()),
                ("count", pa.int64()),
            ]
        )
    )
    columns = [("id", pa.string())]
    if "topic" in tasks:
        scores = pa.struct([(label, pa.float64()) for label in labels["topic"]])
        fields = [("labels", pa.list_(pa.string())), ("scores", scores)]
        if explain:
            fields.append(("evidence", pa.struct([(label, items) for label in labels["topic"]])))
        columns.append(("topics", pa.struct(fields)))
    if "stance" in tasks:
        scores = pa.struct([(label, pa.float64()) for label in labels["stance"]])
        fields = [("target", pa.string()), ("label", pa.string()), ("scores", scores)]
        fields += [("relevance", pa.float64())] if relevance else []
        fields += [("evidence", items)] if explain else []
        columns.append(("stance", pa.list_(pa.struct(fields))))
    return pa.schema(columns)


def csv_columns(
    tasks: list[str],
    labels: dict[str, list[str]],
    slots: int,
    explain: bool = False,
    *,
    relevance: bool = False,
) -> list[str]:
    """The CSV header: each column is the record's JSON path, joined by dots (list positions from
    0).

    ``id``; with topics, ``topics.labels`` (joined by ``|``) and
    ``topics.scores.LABEL`` per label; with stance, for each of ``slots``
    targets ``i``: ``stance.i.target``, ``stance.i.label``,
    ``stance.i.scores.LABEL`` per label, and ``stance.i.relevance`` for a
    model with a relevance gate. With ``explain``, also
    ``topics.evidence.LABEL`` per label and ``stance.i.evidence``: the evidence
    texts joined by ``|``, heaviest first (offsets and weights are in JSONL and Parquet).
    """
    columns = ["id"]
    if "topic" in tasks:
        columns += ["topics.labels", *(f"topics.scores.{label}" for label in labels["topic"])]
        if explain:
            columns += [f"topics.evidence.{label}" for label in labels["topic"]]
    if "stance" in tasks:
        for i in range(slots):
            columns += [
                f"stance.{i}.target",
                f"stance.{i}.label",
                *(f"stance.{i}.scores.{label}" for label in labels["stance"]),
                *([f"stance.{i}.relevance"] if relevance else []),
                *([f"stance.{i}.evidence"] if explain else []),
            ]
    return columns


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """A record flattened to :func:`csv_columns`' names (a key the record lacks: no cell, written
    empty)."""
    row: dict[str, Any] = {"id": record.get("id")}
    if (topics := record.get("topics")) is not None:
        row["topics.labels"] = CSV_LABEL_SEPARATOR.join(topics["labels"])
        row.update({f"topics.scores.{label}": p for label, p in topics["scores"].items()})
        for label, items in (topics.get("evidence") or {}).items():
            row[f"topics.evidence.{label}"] = _joined(items)
    for i, stance in enumerate(record.get("stance") or ()):
        row[f"stance.{i}.target"] = stance["target"]
        row[f"stance.{i}.label"] = stance["label"]
        row.update({f"stance.{i}.scores.{label}": p for label, p in stance["scores"].items()})
        if "relevance" in stance:
            row[f"stance.{i}.relevance"] = stance["relevance"]
        if "evidence" in stance:
            row[f"stance.{i}.evidence"] = _joined(stance["evidence"])
    return row


def _joined(items: list[dict[str, Any]]) -> str:
    return CSV_LABEL_SEPARATOR.join(item["text"] for item in items)

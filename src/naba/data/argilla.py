"""Argilla: records to log into a dataset, with the model's predictions as suggestions.

A record is what Argilla's ``rg.Record.to_dict()`` writes and
``rg.Record.from_dict()`` reads (Argilla 2.x, ``argilla/records/_resource.py``;
its ``records.to_json`` writes a JSON list of them): ``{"id", "fields",
"metadata", "suggestions", "responses", "vectors"}``, a suggestion
``{"value", "score", "agent"}`` keyed by its question's name. The dataset's
settings name the fields (``text``, ``title``, ``target``), the questions
(``topic``: a ``MultiLabelQuestion`` or a ``LabelQuestion``; ``stance``: a
``LabelQuestion``) and the ``uncertainty`` metadata property
(``docs/guides/selection.md`` shows them).
"""

from __future__ import annotations

from typing import Any

QUESTION = {"topic": "topic", "stance": "stance"}


def record(
    article: dict[str, Any],
    prediction: dict[str, Any],
    uncertainty: float,
    *,
    agent: str,
    multi_label: bool,
) -> dict[str, Any]:
    """One Argilla record: the article as fields, the model's labels as suggestions.

    A multi-label suggestion's value is the list of labels and its score the
    list of their probabilities; a single-label one's, the label and its
    probability.
    """
    fields = {"text": article["text"]}
    if article.get("title"):
        fields["title"] = article["title"]
    if article.get("target"):
        fields["target"] = article["target"]
    suggestions: dict[str, Any] = {}
    if topics := prediction.get("topics"):
        labels = topics["labels"]
        scores = [topics["scores"][label] for label in labels]
        suggestions[QUESTION["topic"]] = (
            {"value": labels, "score": scores, "agent": agent}
            if multi_label
            else {"value": labels[0], "score": scores[0], "agent": agent}
        )
    for stance in (prediction.get("stance") or [])[:1]:
        suggestions[QUESTION["stance"]] = {
            "value": stance["label"],
            "score": stance["scores"][stance["label"]],
            "agent": agent,
        }
    return {
        "id": str(article["id"]),
        "fields": fields,
        "metadata": {"uncertainty": uncertainty},
        "suggestions": suggestions,
        "responses": {},
        "vectors": {},
    }

"""Evidence for a label: the words and phrases of the article that weigh most for it in the sparse
part.

The sparse part (:class:`naba.sparse.SparseModel`) scores a label as a sum
over n-gram features, ``weight x tf-idf``; each term of that sum is the part
one feature plays. This module gives those parts back to the words of the
article **as they appear in it**: spans of the original title or text with
character offsets, not the normalised n-grams the model reads.

How: the original field is cut at whitespace; each piece is normalised
alone (:func:`naba.text.normalize`, with the model's settings), which gives
the normalised words in the order the model's vectorizers see them. A word's
character n-grams (``char_wb``: they never cross a space) and its word
unigram belong to that word; a word bigram belongs to the two-word phrase.
A feature found several times shares its part equally among its
occurrences. A unit's weight is the sum of its parts over every occurrence;
the evidence is the ``k`` units (words, and two-word phrases whose bigram
weighs on its own) with the largest positive weight.

Markup and entities that span whitespace (``<a href="x">``) are blanked
before the cut, keeping offsets; a feature that no original word yields
(the rare piece normalisation joins across a space) is left out, never
attributed to the wrong word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from naba.text import _MARKUP, normalize

_PIECE = re.compile(r"\S+")
FIELDS = ("title", "text")


@dataclass
class Unit:
    """One evidence unit: a word, or a two-word phrase, with every place it occurs and its total
    weight."""

    key: str  # the normalised tokens, space-joined
    weight: float = 0.0
    places: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # (field, start, end) per occurrence, in reading order

    def as_record(self, raw: dict[str, str]) -> dict[str, Any]:
        """The schema's evidence item: the first occurrence as written, where it is, the weight, the
        count."""
        name, start, end = self.places[0]
        return {
            "text": raw[name][start:end],
            "field": name,
            "start": start,
            "end": end,
            "weight": round(float(self.weight), 6),
            "count": len(self.places),
        }


@dataclass
class _Word:
    """A normalised word of the document and where it came from in the original field."""

    field: str
    start: int
    end: int
    normalized: str
    tokens: list[str]  # what the word vectorizer's tokenizer reads in it


def _trim(raw: str, start: int, end: int) -> tuple[int, int]:
    """The span without the punctuation at its edges (quotes, commas, brackets), unless nothing
    would be left."""

    def keep(ch: str) -> bool:
        return ch.isalnum() or unicodedata.category(ch).startswith("M")

    s, e = start, end
    while s < e and not keep(raw[s]):
        s += 1
    while e > s and not keep(raw[e - 1]):
        e -= 1
    return (s, e) if s < e else (start, end)


def _blank_markup(raw: str) -> str:
    """Markup replaced by as many spaces (the offsets stay those of the original)."""
    if "<" not in raw:
        return raw
    return _MARKUP.sub(lambda m: " " * len(m.group(0)), raw)


def document_words(model: Any, fields: list[tuple[str, str]]) -> list[_Word]:
    """The model's normalised words of ``fields`` (name, raw text), in order, each with its original
    span."""
    word_vectorizer = model.vectorizers["word"]
    preprocess, tokenize = (
        word_vectorizer.build_preprocessor(),
        word_vectorizer.build_tokenizer(),
    )
    words = []
    for name, raw in fields:
        for match in _PIECE.finditer(_blank_markup(raw)):
            start, end = _trim(raw, match.start(), match.end())
            for piece in normalize(match.group(0), model.normalization).split():
                words.append(_Word(name, start, end, piece, tokenize(preprocess(piece))))
    return words


def _fields(model: Any, record: dict[str, Any]) -> list[tuple[str, str]]:
    """The fields the sparse part reads, in its order: stance the target then the text; topic the
    title then the text."""
    if model.task == "stance":
        return [("target", record.get("target") or ""), ("text", record["text"])]
    title = record.get("title")
    use_title = model.include_title and isinstance(title, str) and title.strip()
    return ([("title", title)] if use_title else []) + [("text", record["text"])]


def _columns(model: Any) -> dict[str, tuple[int, dict[str, int]]]:
    """Each n-gram block's first column in the feature matrix and its vocabulary."""
    out, offset = {}, 0
    for name, vectorizer in model.vectorizers.items():
        out[name] = (offset, vectorizer.vocabulary_)
        offset += len(vectorizer.vocabulary_)
    return out


def _occurrences(model: Any, words: list[_Word]) -> list[tuple[int, str, tuple[int, ...]]]:
    """Every feature occurrence the words yield: (column, unit key, word indices it belongs to)."""
    columns = _columns(model)
    char_offset, char_vocab = columns["char"]
    word_offset, word_vocab = columns["word"]
    analyze = model.vectorizers["char"].build_analyzer()
    out = []
    flat: list[tuple[int, str]] = []  # (word index, token): the word vectorizer's token stream
    for i, word in enumerate(words):
        key = " ".join(word.tokens) or word.normalized
        for gram in analyze(word.normalized):
            if (j := char_vocab.get(gram)) is not None:
                out.append((char_offset + j, key, (i,)))
        flat += [(i, token) for token in word.tokens]
    for n, (i, token) in enumerate(flat):
        if (j := word_vocab.get(token)) is not None:
            out.append((word_offset + j, " ".join(words[i].tokens), (i,)))
        if n + 1 < len(flat):
            i2, token2 = flat[n + 1]
            j = word_vocab.get(f"{token} {token2}")
            if j is not None and words[i].field == words[i2].field:
                out.append((word_offset + j, f"{token} {token2}", (i, i2) if i2 != i else (i,)))
    return out


def _units(
    model: Any, words: list[_Word], row: Any, weights: np.ndarray
) -> dict[tuple[int, str], Unit]:
    """Units (words: kind 1, phrases: kind 2) with their weights for one label: each feature's
    ``weight x tf-idf`` shared equally among its occurrences."""
    occurrences = _occurrences(model, words)
    counts: dict[int, int] = {}
    for column, _, _ in occurrences:
        counts[column] = counts.get(column, 0) + 1
    values = dict(zip(row.indices.tolist(), row.data.tolist()))
    units: dict[tuple[int, str], Unit] = {}
    for column, key, members in occurrences:
        part = float(weights[column]) * values.get(column, 0.0) / counts[column]
        kind = 2 if " " in key and len(members) == 2 else 1
        unit = units.setdefault((kind, key), Unit(key))
        unit.weight += part
        first, last = words[members[0]], words[members[-1]]
        place = (first.field, first.start, last.end)
        if place not in unit.places:
            unit.places.append(place)
    return units


def label_evidence(
    model: Any,
    record: dict[str, Any],
    labels: list[str],
    k: int,
    *,
    features: Any = None,
    shown: tuple[str, ...] = FIELDS,
) -> dict[str, list[Unit]]:
    """The ``k`` units of ``record`` that weigh most for each of ``labels`` in ``model``, heaviest
    first.

    Args:
        model: A fitted :class:`naba.sparse.SparseModel`.
        record: ``{"text", "title"?}`` (topic) or ``{"text", "target"}`` (stance).
        labels: Labels of ``model`` to explain (unknown ones are skipped).
        k: Units per label; only units with a positive weight are given, so fewer may come back.
        features: The record's feature row, when the caller has it (``model.features([record])``).
        shown: The fields evidence may come from (a stance target is read, never shown).

    Returns:
        ``{label: [Unit, ...]}``; a word unit also counts the phrases it is part of separately.
    """
    words = document_words(model, _fields(model, record))
    row = (features if features is not None else model.features([record])).tocsr()[0]
    out = {}
    for label in labels:
        if label not in model.labels:
            continue
        units = _units(model, words, row, model.weights[model.labels.index(label)])
        ranked = sorted(
            (u for u in units.values() if u.weight > 0 and u.places[0][0] in shown),
            key=lambda u: (-u.weight, u.places[0][1:]),
        )
        for unit in ranked:
            unit.places = [p for p in unit.places if p[0] in shown]
        out[label] = ranked[:k]
    return out


def evidence_records(
    model: Any, records: list[dict[str, Any]], labels: list[list[str]], k: int
) -> list[dict[str, list[dict[str, Any]]]]:
    """For each record, ``{label: [evidence item, ...]}`` for its ``labels`` (the schema's
    ``evidence`` value).

    An item is ``{"text", "field", "start", "end", "weight", "count"}``: the
    unit as written at its first occurrence (``record[field][start:end]``),
    its summed ``weight x tf-idf`` for the label, and how often it occurs.
    """
    if not records:
        return []
    matrix = model.features(records)
    out = []
    for i, (record, wanted) in enumerate(zip(records, labels)):
        raw = {name: value for name, value in _fields(model, record)}
        found = label_evidence(model, record, wanted, k, features=matrix[i])
        out.append({label: [u.as_record(raw) for u in units] for label, units in found.items()})
    return out


def remove_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the character spans cut out (a space in their place), for the deletion test."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        elif start < end:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], " "]
        last = end
    return "".join(out) + text[last:]


def explained_part(task: Any, name: str) -> Any:
    """The sparse part that evidence reads, for a task of a
    :class:`naba.infer.classifier.Classifier`.

    Raises:
        NabaError: the task has no sparse part (a model trained with ``model.hybrid: false``).
    """
    from naba.errors import NabaError

    if task.spec.hybrid is None or task.sparse is None:
        raise NabaError(
            f"explain: the {name} model has no sparse part to read evidence from (trained with "
            "model.hybrid: false); add one with `naba blend`, or predict without explain"
        )
    return task.sparse


def add_evidence(
    classifier: Any, prepared: Any, results: list[dict[str, Any]], k: int
) -> list[dict[str, Any]]:
    """Give each chosen topic label and each stance entry of ``results`` its ``k`` pieces of
    evidence.

    ``results[i]["topics"]["evidence"]`` becomes ``{label: [item, ...]}`` for
    the chosen labels; each stance entry gets ``"evidence": [item, ...]`` for
    its label (:func:`evidence_records` describes an item).
    """
    records = prepared.records
    if "topic" in prepared.tasks and records:
        model = explained_part(classifier.tasks["topic"], "topic")
        chosen = [r["topics"]["labels"] for r in results]
        for result, found in zip(results, evidence_records(model, records, chosen, k)):
            result["topics"]["evidence"] = found
    if "stance" in prepared.tasks and prepared.pairs:
        model = explained_part(classifier.tasks["stance"], "stance")
        pairs = [{"text": records[i]["text"], "target": t} for i, t in prepared.pairs]
        entries = [entry for result in results for entry in result.get("stance", [])]
        found = evidence_records(model, pairs, [[e["label"]] for e in entries], k)
        for entry, items in zip(entries, found):
            entry["evidence"] = items.get(entry["label"], [])
    return results

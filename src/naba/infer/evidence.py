"""Evidence for a label: the article's words and phrases that weigh most for it in the sparse part.

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
    """A word or a two-word phrase: every place it occurs and its weight for one label."""

    key: str  # the normalised tokens, space-joined
    weight: float = 0.0
    places: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # (field, start, end) per occurrence, in reading order

    def as_record(self, raw: dict[str, str]) -> dict[str, Any]:
        """The schema's evidence item: its first occurrence as written, the weight, the count."""
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
    """The span without punctuation at its edges (quotes, commas), unless nothing is left."""

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


def document_words(
    model: Any, fields: list[tuple[str, str]], cache: dict[str, Any] | None = None
) -> list[_Word]:
    """The model's normalised words of ``fields`` (name, raw text), in order, with their spans."""
    word_vectorizer = model.vectorizers["word"]
    preprocess, tokenize = (
        word_vectorizer.build_preprocessor(),
        word_vectorizer.build_tokenizer(),
    )
    seen = {} if cache is None else cache.setdefault("words", {})  # articles repeat their words
    words = []
    for name, raw in fields:
        for match in _PIECE.finditer(_blank_markup(raw)):
            start, end = _trim(raw, match.start(), match.end())
            piece = match.group(0)
            if piece not in seen:
                seen[piece] = [
                    (w, tokenize(preprocess(w)))
                    for w in normalize(piece, model.normalization).split()
                ]
            words += [_Word(name, start, end, w, tokens) for w, tokens in seen[piece]]
    return words


def _fields(model: Any, record: dict[str, Any]) -> list[tuple[str, str]]:
    """The fields the sparse part reads, in order: (title,) text; stance: target, text."""
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


@dataclass
class _Parts:
    """Every feature occurrence of one document, by unit: what a label's weights are spread over."""

    columns: np.ndarray  # the feature column of each occurrence
    unit_of: np.ndarray  # the unit each occurrence belongs to
    share: np.ndarray  # 1 / the number of occurrences of its feature
    units: list[Unit]  # kind and places; weights filled per label

    def weights(self, row: Any, label_weights: np.ndarray) -> np.ndarray:
        """Each unit's part of the label's margin: ``weight x tf-idf`` of its n-grams, shared."""
        values = np.zeros(len(label_weights), dtype=np.float64)
        values[row.indices] = row.data
        parts = label_weights[self.columns] * values[self.columns] * self.share
        return np.bincount(self.unit_of, weights=parts, minlength=len(self.units))


def _parts(model: Any, words: list[_Word], cache: dict[str, Any] | None = None) -> _Parts:
    """Every n-gram the model reads in ``words``, with the unit it belongs to.

    A word's character n-grams and unigrams belong to the word, a word bigram
    to the two-word phrase."""
    columns = _columns(model)
    char_offset, char_vocab = columns["char"]
    word_offset, word_vocab = columns["word"]
    analyze = model.vectorizers["char"].build_analyzer()
    grams = {} if cache is None else cache.setdefault("grams", {})
    index: dict[tuple[int, str], int] = {}
    units: list[Unit] = []
    found: list[tuple[int, int]] = []  # (column, unit)

    def unit(kind: int, key: str, place: tuple[str, int, int]) -> int:
        # A stance target's words are units of their own, never shown: a text word also in the
        # target gets only its text occurrences' parts.
        kind = kind if place[0] in FIELDS else -kind
        u = index.setdefault((kind, key), len(units))
        if u == len(units):
            units.append(Unit(key))
        if place not in units[u].places:
            units[u].places.append(place)
        return u

    flat: list[tuple[int, str]] = []  # (word index, token): the word vectorizer's token stream
    for i, word in enumerate(words):
        u = unit(1, " ".join(word.tokens) or word.normalized, (word.field, word.start, word.end))
        if word.normalized not in grams:
            grams[word.normalized] = [
                char_offset + j
                for g in analyze(word.normalized)
                if (j := char_vocab.get(g)) is not None
            ]
        found += [(column, u) for column in grams[word.normalized]]
        found += [(word_offset + word_vocab[t], u) for t in word.tokens if t in word_vocab]
        flat += [(i, token) for token in word.tokens]
    for (i, token), (i2, token2) in zip(flat, flat[1:]):
        j = word_vocab.get(f"{token} {token2}")
        if j is None or words[i].field != words[i2].field:
            continue
        if i == i2:  # both tokens in one written word: the word's own
            word = words[i]
            own = unit(1, " ".join(word.tokens), (word.field, word.start, word.end))
            found.append((word_offset + j, own))
        else:
            place = (words[i].field, words[i].start, words[i2].end)
            found.append((word_offset + j, unit(2, f"{token} {token2}", place)))
    cols = np.array([c for c, _ in found], dtype=np.int64)
    _, inverse, counts = np.unique(cols, return_inverse=True, return_counts=True)
    return _Parts(cols, np.array([u for _, u in found], dtype=np.int64), 1 / counts[inverse], units)


def label_evidence(
    model: Any,
    record: dict[str, Any],
    labels: list[str],
    k: int,
    *,
    features: Any = None,
    shown: tuple[str, ...] = FIELDS,
    cache: dict[str, Any] | None = None,
) -> dict[str, list[Unit]]:
    """The ``k`` units of ``record`` that weigh most for each of ``labels``, heaviest first.

    Args:
        model: A fitted :class:`naba.sparse.SparseModel`.
        record: ``{"text", "title"?}`` (topic) or ``{"text", "target"}`` (stance).
        labels: Labels of ``model`` to explain (unknown ones are skipped).
        k: Units per label; only units with a positive weight are given, so fewer may come back.
        features: The record's feature row, when the caller has it (``model.features([record])``).
        shown: The fields evidence may come from (a stance target is read, never shown).
        cache: Shared by the calls of one batch: each distinct word is analysed once.

    Returns:
        ``{label: [Unit, ...]}``; a word unit also counts the phrases it is part of separately.
    """
    parts = _parts(model, document_words(model, _fields(model, record), cache), cache)
    row = (features if features is not None else model.features([record])).tocsr()[0]
    out = {}
    for label in labels:
        if label not in model.labels:
            continue
        weights = parts.weights(row, model.weights[model.labels.index(label)])
        ranked = sorted(
            (u for u, w in enumerate(weights) if w > 0 and parts.units[u].places[0][0] in shown),
            key=lambda u: (-weights[u], parts.units[u].places[0][1:]),
        )
        out[label] = [
            Unit(
                parts.units[u].key,
                float(weights[u]),
                [p for p in parts.units[u].places if p[0] in shown],
            )
            for u in ranked[:k]
        ]
    return out


def evidence_records(
    model: Any, records: list[dict[str, Any]], labels: list[list[str]], k: int
) -> list[dict[str, list[dict[str, Any]]]]:
    """For each record, ``{label: [evidence item, ...]}`` for its ``labels``.

    An item is ``{"text", "field", "start", "end", "weight", "count"}``: the
    unit as written at its first occurrence (``record[field][start:end]``),
    its summed ``weight x tf-idf`` for the label, and how often it occurs.
    """
    if not records:
        return []
    matrix = model.features(records)
    cache: dict[str, Any] = {}  # one batch's words and their n-gram columns, analysed once
    out = []
    for i, (record, wanted) in enumerate(zip(records, labels)):
        raw = {name: value for name, value in _fields(model, record)}
        found = label_evidence(model, record, wanted, k, features=matrix[i], cache=cache)
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
    """The sparse part evidence reads, of a :class:`naba.infer.classifier.Classifier`'s task.

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
    """Give each chosen topic label and stance entry of ``results`` its ``k`` pieces of evidence.

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

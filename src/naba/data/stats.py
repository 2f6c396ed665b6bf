"""``naba data stats``: label distribution, lengths in words (and tokens) and duplicates, in one
pass."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from naba.config import ColumnsConfig
from naba.data.records import Task, iter_records, labels_of
from naba.data.targets import looks_like_identifier, mostly_arabic
from naba.data.validate import text_digest
from naba.errors import Problem
from naba.text import dedup_key, word_count


def _describe(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "mean": round(statistics.fmean(ordered), 1),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "max": ordered[-1],
    }


def identifier_targets(records: Iterable[dict[str, Any]]) -> list[str]:
    """Stance targets that look like identifiers (``women_driving``) in mostly Arabic data.

    An Arabic encoder reads such an id as vocabulary fragments, and the
    relevance overlap never finds it in an Arabic text: describe each in
    ``tasks.stance.targets`` (:mod:`naba.data.targets`). ``naba data stats`` flags them.

    Returns:
        The identifier-like targets, sorted; empty when the texts are not mostly Arabic.
    """
    targets: set[str] = set()
    texts: list[str] = []
    for record in records:
        targets.add(record["target"])
        if len(texts) < 2000:  # enough to tell the language
            texts.append(record["text"])
    if not mostly_arabic(texts):
        return []
    return sorted(t for t in targets if looks_like_identifier(t))


def file_stats(
    path: str | Path,
    task: Task,
    columns: ColumnsConfig | None = None,
    tokenizer: str | None = None,
    fmt: str = "auto",
) -> dict[str, Any]:
    """Statistics of one file.

    Args:
        tokenizer: A tokenizer directory (or hub id) for lengths in tokens; lengths
            are counted on title + text, as the model sees them.

    Returns:
        A JSON-ready dict: rows, invalid rows, label counts, labels per record,
        word and token length summaries, duplicate counts.
    """
    tok = None
    if tokenizer:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer)
    labels: Counter[str] = Counter()
    per_record: Counter[int] = Counter()
    words: list[int] = []
    tokens: list[int] = []
    targets: Counter[str] = Counter()
    pairs: list[dict[str, Any]] = []  # stance: target and text, for identifier_targets
    seen: set[bytes] = set()
    duplicates = invalid = rows = 0
    for _, record in iter_records(path, task, columns, fmt):
        rows += 1
        if isinstance(record, Problem):
            invalid += 1
            continue
        gold = labels_of(record, task)
        labels.update(gold)
        per_record[len(gold)] += 1
        text = (
            record["text"]
            if task == "stance"
            else " ".join(filter(None, [record.get("title"), record["text"]]))
        )
        words.append(word_count(text))
        if tok is not None:
            tokens.append(len(tok(text, add_special_tokens=False)["input_ids"]))
        if task == "stance":
            if len(pairs) < 2000 or record["target"] not in targets:
                pairs.append({"target": record["target"], "text": record["text"]})
            targets[record["target"]] += 1
        digest = text_digest(dedup_key(record["text"]))
        duplicates += digest in seen
        seen.add(digest)
    stats: dict[str, Any] = {
        "file": str(path),
        "task": task,
        "rows": rows,
        "invalid_rows": invalid,
        "labels": dict(labels.most_common()),
        "labels_per_record": dict(sorted(per_record.items())),
        "words": _describe(words),
        "normalised_duplicate_texts": duplicates,
    }
    if tok is not None:
        stats["tokens"] = _describe(tokens)
        stats["tokenizer"] = tokenizer
    if task == "stance":
        stats["targets"] = dict(targets.most_common())
        stats["identifier_targets"] = identifier_targets(pairs)
    return stats

"""``naba data split``: deduplicated, stratified train/dev/test splits with a leakage report.

- single-label topics: stratified per label;
- multi-label topics: iterative stratification (Sechidis, Tsoumakas and
  Vlahavas, 2011), which keeps each label's share close to the target in
  every split, rarest labels first;
- stance: rows whose target is a claim (a sentence, ``claim_min_words``
  words or more) are kept together by claim, so no claim is in two splits;
  short named targets are stratified by (target, stance); a dataset with
  more than ``many_targets`` distinct targets is claim-style and every
  target is kept whole. ``grouping:
  target`` groups every target; ``none`` groups none.

Exact duplicates, then normalised duplicates (:func:`naba.text.dedup_key`),
are removed before splitting, keeping the first occurrence.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Literal

from naba.data.records import Task, labels_of
from naba.text import dedup_key

SPLITS = ("train", "dev", "test")


@dataclass
class SplitResult:
    splits: dict[str, list[dict[str, Any]]]
    report: dict[str, Any] = field(default_factory=dict)


def _pair_key(record: dict[str, Any], task: Task, normalise: bool) -> str:
    keyer = dedup_key if normalise else (lambda text: text)
    key = keyer(record["text"])
    return keyer(record["target"]) + "\x1f" + key if task == "stance" else key


def deduplicate(
    records: list[dict[str, Any]], task: Task
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drop exact, then normalised duplicates; report what went and label conflicts."""
    kept: list[dict[str, Any]] = []
    first_by_key: dict[tuple[str, str], dict[str, Any]] = {}
    removed = {"exact": [], "normalised": []}
    conflicts = []
    for record in records:
        duplicate_of = None
        for kind, normalise in (("exact", False), ("normalised", True)):
            key = (kind, _pair_key(record, task, normalise))
            if key in first_by_key:
                duplicate_of = (kind, first_by_key[key])
                break
        if duplicate_of is None:
            for kind, normalise in (("exact", False), ("normalised", True)):
                first_by_key[(kind, _pair_key(record, task, normalise))] = record
            kept.append(record)
            continue
        kind, first = duplicate_of
        removed[kind].append({"id": record["id"], "duplicate_of": first["id"]})
        if sorted(labels_of(record, task)) != sorted(labels_of(first, task)):
            conflicts.append(
                {
                    "id": record["id"],
                    "duplicate_of": first["id"],
                    "labels": labels_of(record, task),
                    "kept_labels": labels_of(first, task),
                }
            )
    report = {
        "exact_duplicates_removed": len(removed["exact"]),
        "normalised_duplicates_removed": len(removed["normalised"]),
        "removed": removed["exact"] + removed["normalised"],
        "label_conflicts": conflicts,
    }
    return kept, report


def _targets(n: int, ratios: dict[str, float]) -> dict[str, float]:
    return {name: n * ratio for name, ratio in ratios.items()}


def _stratified(
    items: list[int], keys: list[str], ratios: dict[str, float], rng: random.Random
) -> dict[int, str]:
    """Per key, shuffle and cut by ratio; carry rounding so small classes still reach dev and
    test."""
    by_key: dict[str, list[int]] = defaultdict(list)
    for index, key in zip(items, keys):
        by_key[key].append(index)
    assignment: dict[int, str] = {}
    carry = {name: 0.0 for name in ratios}
    for key in sorted(by_key):
        members = by_key[key]
        rng.shuffle(members)
        counts = {}
        for name in ("test", "dev"):
            exact = len(members) * ratios[name] + carry[name]
            counts[name] = int(round(exact)) if len(members) >= 3 else 0
            carry[name] = exact - counts[name] if len(members) >= 3 else carry[name]
        cut_test, cut_dev = counts["test"], counts["test"] + counts["dev"]
        for position, index in enumerate(members):
            assignment[index] = (
                "test" if position < cut_test else "dev" if position < cut_dev else "train"
            )
    return assignment


def iterative_stratification(
    label_sets: list[list[str]], ratios: dict[str, float], rng: random.Random
) -> list[str]:
    """Assign each example to a split so every label is spread by ``ratios`` (Sechidis et al.
    2011)."""
    n = len(label_sets)
    wanted = _targets(n, ratios)
    label_counts = Counter(label for labels in label_sets for label in set(labels))
    wanted_label = {
        name: {label: count * ratio for label, count in label_counts.items()}
        for name, ratio in ratios.items()
    }
    remaining = set(range(n))
    by_label: dict[str, set[int]] = defaultdict(set)
    for index, labels in enumerate(label_sets):
        for label in set(labels):
            by_label[label].add(index)
    assignment = [""] * n
    names = list(ratios)

    def place(index: int, label: str | None) -> None:
        if label is not None:
            best = max(wanted_label[s][label] for s in names)
            candidates = [s for s in names if wanted_label[s][label] == best]
        else:
            candidates = names
        most = max(wanted[s] for s in candidates)
        candidates = [s for s in candidates if wanted[s] == most]
        split = candidates[0] if len(candidates) == 1 else rng.choice(candidates)
        assignment[index] = split
        wanted[split] -= 1
        for other in set(label_sets[index]):
            wanted_label[split][other] -= 1
        remaining.discard(index)
        for other in set(label_sets[index]):
            by_label[other].discard(index)

    while True:
        live = [(len(members), label) for label, members in by_label.items() if members]
        if not live:
            break
        fewest = min(count for count, _ in live)
        label = rng.choice(sorted(label for count, label in live if count == fewest))
        members = sorted(by_label[label])
        rng.shuffle(members)
        for index in members:
            place(index, label)
    for index in sorted(remaining):
        place(index, None)
    return assignment


def _grouped(
    groups: dict[str, list[int]], ratios: dict[str, float], rng: random.Random
) -> dict[int, str]:
    """Whole groups to splits, largest first, each to the split furthest below its share."""
    total = sum(len(members) for members in groups.values())
    wanted = _targets(total, ratios)
    names = sorted(groups)
    rng.shuffle(names)
    names.sort(key=lambda name: -len(groups[name]))
    assignment = {}
    for name in names:
        split = max(ratios, key=lambda s: (wanted[s] / max(total * ratios[s], 1e-9), s == "train"))
        wanted[split] -= len(groups[name])
        for index in groups[name]:
            assignment[index] = split
    return assignment


def split_records(
    records: list[dict[str, Any]],
    task: Task,
    dev: float = 0.1,
    test: float = 0.1,
    seed: int = 13,
    grouping: Literal["auto", "target", "none"] = "auto",
    claim_min_words: int = 6,
    many_targets: int = 50,
) -> SplitResult:
    """Deduplicate and split records into train, dev and test.

    Args:
        records: Canonical records.
        task: ``topic`` or ``stance``.
        dev, test: Fractions of the deduplicated rows.
        seed: Makes the split reproducible.
        grouping: Stance only: which targets are kept whole in one split.
        claim_min_words: Stance ``auto`` grouping: a target this long is a claim.
        many_targets: Stance ``auto`` grouping: with more distinct targets than
            this, every target is treated as a claim.

    Returns:
        The three splits (in input order within each) and a report with
        duplicates removed, label counts per split and cross-split leakage.
    """
    if not 0 < dev < 1 or not 0 < test < 1 or dev + test >= 1:
        raise ValueError(
            "expected dev and test fractions in (0, 1) summing below 1, found "
            f"dev={dev}, test={test}"
        )
    rng = random.Random(seed)
    kept, dedup_report = deduplicate(records, task)
    ratios = {"train": 1 - dev - test, "dev": dev, "test": test}
    claims: set[str] | None = None
    if task == "topic":
        split_of, mode = _split_topics(kept, ratios, rng)
    else:
        split_of, mode, claims = _split_stance(
            kept, ratios, rng, grouping, claim_min_words, many_targets
        )
    splits = {name: [r for i, r in enumerate(kept) if split_of[i] == name] for name in SPLITS}
    report = {
        "task": task,
        "mode": mode,
        "seed": seed,
        "fractions": ratios,
        "input_rows": len(records),
        "rows": {name: len(rows) for name, rows in splits.items()},
        "labels": {
            name: dict(sorted(Counter(lab for r in rows for lab in labels_of(r, task)).items()))
            for name, rows in splits.items()
        },
        **dedup_report,
        "leakage": leakage_report(splits, task, claims),
    }
    return SplitResult(splits=splits, report=report)


def _split_topics(
    kept: list[dict[str, Any]], ratios: dict[str, float], rng: random.Random
) -> tuple[dict[int, str], str]:
    """Each topic record's split, stratified by its labels, and how."""
    label_sets = [labels_of(r, "topic") for r in kept]
    if any(len(labels) > 1 for labels in label_sets):
        split_of = dict(enumerate(iterative_stratification(label_sets, ratios, rng)))
        return split_of, "iterative stratification (multi-label)"
    indices = list(range(len(kept)))
    split_of = _stratified(indices, [labels[0] for labels in label_sets], ratios, rng)
    return split_of, "stratified (single-label)"


def _split_stance(
    kept: list[dict[str, Any]],
    ratios: dict[str, float],
    rng: random.Random,
    grouping: Literal["auto", "target", "none"],
    claim_min_words: int,
    many_targets: int,
) -> tuple[dict[int, str], str, set[str]]:
    """Each stance record's split, how, and the claims kept whole (normalised targets)."""
    # Many distinct targets means claim-style data (every headline its own
    # target): keep each whole. Otherwise only sentence-long targets are claims.
    claim_style = len({r["target"] for r in kept}) > many_targets

    def is_group(target: str) -> bool:
        if grouping == "auto":
            return claim_style or len(target.split()) >= claim_min_words
        return grouping == "target"

    groups: dict[str, list[int]] = defaultdict(list)
    loose = []
    for index, record in enumerate(kept):
        if is_group(record["target"]):
            groups[dedup_key(record["target"])].append(index)
        else:
            loose.append(index)
    split_of = _stratified(
        loose, [f"{kept[i]['target']}\x1f{kept[i]['stance']}" for i in loose], ratios, rng
    )
    split_of.update(_grouped(groups, ratios, rng))
    mode = (
        f"stance: {len(groups)} claims kept whole, {len(loose)} rows of named targets "
        "stratified by (target, stance)"
    )
    return split_of, mode, set(groups)


def leakage_report(
    splits: dict[str, list[dict[str, Any]]], task: Task, claim_targets: set[str] | None = None
) -> dict[str, Any]:
    """Normalised texts (and, for stance, claims) that occur in more than one split."""
    keys = {name: {dedup_key(r["text"]) for r in rows} for name, rows in splits.items()}
    report: dict[str, Any] = {}
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            report[f"{a}/{b} shared texts"] = len(keys[a] & keys[b])
    if task == "stance":
        where: dict[str, set[str]] = defaultdict(set)
        for name, rows in splits.items():
            for r in rows:
                where[r["target"]].add(name)
        shared = sorted(t for t, found in where.items() if len(found) > 1)
        claims = set(claim_targets or ())
        report["claims in several splits"] = [t for t in shared if dedup_key(t) in claims]
        report["named targets in several splits (stratified)"] = [
            t for t in shared if dedup_key(t) not in claims
        ]
    return report

"""naba.data.split: dedup, stratified / iterative / grouped splits, leakage report."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from naba.data.split import (
    SPLITS,
    deduplicate,
    iterative_stratification,
    leakage_report,
    split_records,
)

WORDS = [
    "السياسة",
    "الاقتصاد",
    "الرياضة",
    "الصحة",
    "الطقس",
    "التعليم",
    "السفر",
    "الفن",
    "العلوم",
    "البيئة",
    "المدينة",
    "القرية",
]


def text(i: int, prefix: str = "مقال") -> str:
    # distinct after normalisation: words chosen by the digits of i, plus i itself
    return f"{prefix} {WORDS[i % 12]} {WORDS[(i // 12) % 12]} رقم {i}"


def single_label(counts: dict[str, int]) -> list[dict]:
    records, i = [], 0
    for label, n in counts.items():
        for _ in range(n):
            records.append({"id": f"r{i}", "text": text(i), "topics": [label]})
            i += 1
    return records


def multi_label(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    labels = ["a", "b", "c", "d", "e", "f"]
    records = []
    for i in range(n):
        chosen = (
            rng.sample(labels, rng.choice([1, 2, 3]))
            if rng.random() < 0.7
            else [rng.choice(labels[:2])]
        )
        records.append({"id": str(i), "text": text(i), "topics": chosen})
    return records


def ids(result) -> dict[str, list[str]]:
    return {name: [r["id"] for r in rows] for name, rows in result.splits.items()}


# ----------------------------------------------------------------------------- topic


def test_single_label_stratified() -> None:
    counts = {"a": 50, "b": 30, "c": 10, "d": 3, "e": 1}
    result = split_records(single_label(counts), "topic", dev=0.1, test=0.1, seed=13)
    report = result.report
    assert report["mode"] == "stratified (single-label)"
    assert sum(report["rows"].values()) == 94
    assert report["rows"] == {"train": 76, "dev": 9, "test": 9}
    for label, n in counts.items():
        per_split = [report["labels"][name].get(label, 0) for name in SPLITS]
        assert sum(per_split) == n
        if n >= 10:
            assert all(count >= 1 for count in per_split), (label, per_split)
            assert abs(per_split[0] / n - 0.8) <= 0.1
    # a label seen fewer than 3 times stays in train
    assert report["labels"]["train"]["e"] == 1
    # every record lands in exactly one split, in input order
    all_ids = [i for name in SPLITS for i in ids(result)[name]]
    assert sorted(all_ids) == sorted(r["id"] for r in single_label(counts))
    for rows in ids(result).values():
        assert rows == sorted(rows, key=lambda i: int(i[1:]))


def test_single_label_small_classes_still_reach_dev_and_test() -> None:
    # rounding is carried across labels, so many 5-row classes still feed dev and test
    result = split_records(
        single_label({f"l{i}": 5 for i in range(10)}), "topic", dev=0.1, test=0.1, seed=1
    )
    assert result.report["rows"] == {"train": 40, "dev": 5, "test": 5}


def test_multi_label_iterative_stratification_balances_each_label() -> None:
    records = multi_label(400)
    result = split_records(records, "topic", dev=0.1, test=0.1, seed=3)
    report = result.report
    assert report["mode"] == "iterative stratification (multi-label)"
    totals = Counter(label for r in records for label in r["topics"])
    for name, ratio in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        assert abs(report["rows"][name] - 400 * ratio) <= 8
        for label, total in totals.items():
            share = report["labels"][name].get(label, 0) / total
            assert abs(share - ratio) <= 0.03, (name, label, share)


def test_iterative_stratification_is_at_least_as_balanced_as_random() -> None:
    records = multi_label(300, seed=5)
    label_sets = [r["topics"] for r in records]
    ratios = {"train": 0.8, "dev": 0.1, "test": 0.1}
    totals = Counter(label for labels in label_sets for label in labels)

    def worst(assignment: list[str]) -> float:
        counts = Counter(
            (split, label) for split, labels in zip(assignment, label_sets) for label in labels
        )
        return max(
            abs(counts[(s, label)] / totals[label] - ratios[s]) for s in ratios for label in totals
        )

    stratified = worst(iterative_stratification(label_sets, ratios, random.Random(0)))
    rng = random.Random(0)
    naive = min(
        worst(rng.choices(list(ratios), weights=list(ratios.values()), k=len(label_sets)))
        for _ in range(5)
    )
    assert stratified <= naive


def test_iterative_stratification_handles_unlabelled_rows() -> None:
    assignment = iterative_stratification(
        [["a"], [], ["a", "b"], [], ["b"]],
        {"train": 0.6, "dev": 0.2, "test": 0.2},
        random.Random(0),
    )
    assert len(assignment) == 5 and set(assignment) <= set(SPLITS)


def test_same_seed_same_split_other_seed_differs() -> None:
    records = multi_label(200)
    first = split_records(records, "topic", seed=7)
    again = split_records([dict(r) for r in records], "topic", seed=7)
    other = split_records(records, "topic", seed=8)
    assert ids(first) == ids(again)
    assert first.report == again.report
    assert ids(first) != ids(other)
    single = single_label({"a": 40, "b": 40})
    assert ids(split_records(single, "topic", seed=2)) == ids(
        split_records(single, "topic", seed=2)
    )


def test_no_text_shared_between_splits() -> None:
    records = single_label({"a": 40, "b": 40})
    records += [
        dict(r, id=r["id"] + "-copy", text=r["text"].replace("مقال", "مَقَال")) for r in records[:20]
    ]
    result = split_records(records, "topic", seed=4)
    assert result.report["leakage"] == {
        "train/dev shared texts": 0,
        "train/test shared texts": 0,
        "dev/test shared texts": 0,
    }


@pytest.mark.parametrize(
    ("dev", "test"), [(0, 0.1), (0.1, 0), (0.5, 0.5), (0.7, 0.4), (1.2, 0.1), (-0.1, 0.1)]
)
def test_bad_fractions(dev: float, test: float) -> None:
    message = (
        f"expected dev and test fractions in (0, 1) summing below 1, found dev={dev}, test={test}"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        split_records(single_label({"a": 10}), "topic", dev=dev, test=test)


# ----------------------------------------------------------------------------- dedup


def test_deduplicate_counts_and_conflicts() -> None:
    records = [
        {"id": "1", "text": "الْعَرَبِيَّة لغة جميلة", "topics": ["culture"]},
        {"id": "2", "text": "الْعَرَبِيَّة لغة جميلة", "topics": ["culture"]},  # exact duplicate of 1
        {
            "id": "3",
            "text": "العربية لغة جميلة",
            "topics": ["culture"],
        },  # normalised duplicate of 1
        {
            "id": "4",
            "text": "«العربيه» لغة جميلة!",
            "topics": ["politics"],
        },  # normalised, other label: conflict
        {
            "id": "5",
            "text": "الْعَرَبِيَّة لغة جميلة",
            "topics": ["sports"],
        },  # exact, other label: conflict
        {"id": "6", "text": "نص آخر تماما", "topics": ["culture"]},
    ]
    kept, report = deduplicate(records, "topic")
    assert [r["id"] for r in kept] == ["1", "6"]
    assert report["exact_duplicates_removed"] == 2
    assert report["normalised_duplicates_removed"] == 2
    assert report["removed"] == [
        {"id": "2", "duplicate_of": "1"},
        {"id": "5", "duplicate_of": "1"},
        {"id": "3", "duplicate_of": "1"},
        {"id": "4", "duplicate_of": "1"},
    ]
    assert report["label_conflicts"] == [
        {"id": "4", "duplicate_of": "1", "labels": ["politics"], "kept_labels": ["culture"]},
        {"id": "5", "duplicate_of": "1", "labels": ["sports"], "kept_labels": ["culture"]},
    ]


def test_label_order_is_not_a_conflict() -> None:
    records = [
        {"id": "1", "text": "نص", "topics": ["a", "b"]},
        {"id": "2", "text": "نص", "topics": ["b", "a"]},
    ]
    assert deduplicate(records, "topic")[1]["label_conflicts"] == []


def test_split_report_carries_dedup() -> None:
    records = single_label({"a": 20, "b": 20})
    records += [
        dict(records[0], id="dup-exact"),
        dict(records[1], id="dup-norm", text=records[1]["text"] + " !"),
    ]
    report = split_records(records, "topic").report
    assert report["input_rows"] == 42
    assert sum(report["rows"].values()) == 40
    assert (report["exact_duplicates_removed"], report["normalised_duplicates_removed"]) == (1, 1)


def test_stance_dedup_is_per_target() -> None:
    records = [
        {"id": "1", "text": "نص", "target": "أ", "stance": "favor"},
        {"id": "2", "text": "نص", "target": "ب", "stance": "favor"},
        {"id": "3", "text": "نَص", "target": "أ", "stance": "against"},
    ]
    kept, report = deduplicate(records, "stance")
    assert [r["id"] for r in kept] == ["1", "2"]
    assert report["label_conflicts"] == [
        {"id": "3", "duplicate_of": "1", "labels": ["against"], "kept_labels": ["favor"]}
    ]


# ----------------------------------------------------------------------------- stance

NAMED = ["نيوم", "أرامكو", "رؤية 2030"]
CLAIMS = [f"الحكومة تعلن خطة جديدة لدعم قطاع {WORDS[i]} هذا العام" for i in range(12)]


def stance_records() -> list[dict]:
    records, i = [], 0
    for target in NAMED:
        for stance in ("favor", "against", "none"):
            for _ in range(20):
                records.append(
                    {"id": f"s{i}", "text": text(i, "تغريدة"), "target": target, "stance": stance}
                )
                i += 1
    for claim in CLAIMS:
        for stance in ("agree", "disagree", "agree", "other"):
            records.append(
                {"id": f"s{i}", "text": text(i, "عنوان"), "target": claim, "stance": stance}
            )
            i += 1
    return records


def splits_of(result, target: str) -> set[str]:
    return {name for name, rows in result.splits.items() for r in rows if r["target"] == target}


def test_stance_claims_kept_whole_named_targets_stratified() -> None:
    result = split_records(stance_records(), "stance", dev=0.15, test=0.15, seed=13)
    assert result.report["mode"] == (
        "stance: 12 claims kept whole, 180 rows of named targets stratified by (target, stance)"
    )
    for claim in CLAIMS:
        assert len(splits_of(result, claim)) == 1, claim
    claim_splits = Counter(next(iter(splits_of(result, c))) for c in CLAIMS)
    assert set(claim_splits) == set(SPLITS)
    for target in NAMED:
        for stance in ("favor", "against", "none"):
            found = {
                name
                for name, rows in result.splits.items()
                for r in rows
                if r["target"] == target and r["stance"] == stance
            }
            assert found == set(SPLITS), (target, stance)
    leakage = result.report["leakage"]
    assert leakage["claims in several splits"] == []
    assert sorted(leakage["named targets in several splits (stratified)"]) == sorted(NAMED)
    assert (
        leakage["train/dev shared texts"]
        == leakage["train/test shared texts"]
        == leakage["dev/test shared texts"]
        == 0
    )


def test_stance_grouping_target_keeps_every_target_whole() -> None:
    result = split_records(
        stance_records(), "stance", dev=0.15, test=0.15, seed=13, grouping="target"
    )
    for target in NAMED + CLAIMS:
        assert len(splits_of(result, target)) == 1, target
    assert result.report["leakage"]["named targets in several splits (stratified)"] == []
    assert result.report["leakage"]["claims in several splits"] == []


def test_stance_grouping_none_splits_claims_too() -> None:
    result = split_records(
        stance_records(), "stance", dev=0.15, test=0.15, seed=13, grouping="none"
    )
    assert result.report["mode"].startswith("stance: 0 claims kept whole, 228 rows")
    assert result.report["leakage"]["claims in several splits"] == []


def test_stance_many_targets_are_all_claims() -> None:
    records = [
        {"id": str(i), "text": text(i), "target": f"هدف {i // 2}", "stance": "favor"}
        for i in range(120)
    ]
    result = split_records(records, "stance", seed=1, many_targets=50)
    assert result.report["mode"].startswith("stance: 60 claims kept whole, 0 rows")
    for i in range(60):
        assert len(splits_of(result, f"هدف {i}")) == 1


def test_stance_claim_min_words() -> None:
    records = stance_records()
    result = split_records(records, "stance", seed=13, claim_min_words=20)
    assert result.report["mode"].startswith("stance: 0 claims kept whole")


def test_stance_split_is_deterministic() -> None:
    assert ids(split_records(stance_records(), "stance", seed=3)) == ids(
        split_records(stance_records(), "stance", seed=3)
    )


def test_leakage_report_counts_shared_normalised_texts() -> None:
    splits = {
        "train": [{"text": "نص واحد"}, {"text": "نص اثنان"}],
        "dev": [{"text": "نَصٌّ واحد"}],
        "test": [{"text": "نص اثنان!"}],
    }
    assert leakage_report(splits, "topic") == {
        "train/dev shared texts": 1,
        "train/test shared texts": 1,
        "dev/test shared texts": 0,
    }

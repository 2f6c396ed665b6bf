"""naba.data.stats: label distribution, lengths and duplicates in one pass."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from naba.config import ColumnsConfig
from naba.data.stats import _describe, file_stats
from naba.errors import InputError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_topic_stats(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"id": "1", "title": "عنوان", "text": "واحد اثنان ثلاثة", "topics": ["a", "b"]},
            {"id": "2", "text": "واحد", "topics": ["a"]},
            {"id": "3", "text": "وَاحِد", "topics": ["c"]},  # normalised duplicate of 2
            {"id": "4", "text": "", "topics": ["c"]},  # invalid
        ],
    )
    assert file_stats(path, "topic") == {
        "file": str(path),
        "task": "topic",
        "rows": 4,
        "invalid_rows": 1,
        "labels": {"a": 2, "b": 1, "c": 1},
        "labels_per_record": {1: 2, 2: 1},
        # the title counts toward the length: 1 + 3 words
        "words": {"min": 1, "median": 1, "mean": 2.0, "p95": 4, "max": 4},
        "normalised_duplicate_texts": 1,
    }


def test_stance_stats(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"id": "1", "target": "نيوم", "text": "أ ب", "stance": "favor"},
            {"id": "2", "target": "نيوم", "text": "ج", "stance": "against"},
            {"id": "3", "target": "أرامكو", "text": "د ه و", "stance": "favor"},
        ],
    )
    stats = file_stats(path, "stance")
    assert stats["labels"] == {"favor": 2, "against": 1}
    assert stats["targets"] == {"نيوم": 2, "أرامكو": 1}
    assert stats["words"] == {"min": 1, "median": 2, "mean": 2.0, "p95": 3, "max": 3}
    assert stats["labels_per_record"] == {1: 3}
    assert "tokens" not in stats


def test_stats_json_serialisable(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"id": "1", "text": "نص", "topics": ["a"]}])
    assert json.loads(json.dumps(file_stats(path, "topic")))["rows"] == 1


def test_stats_of_csv_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("doc,body,cat\n1,نص أول,a|b\n2,نص,b\n", encoding="utf-8")
    stats = file_stats(
        path,
        "topic",
        ColumnsConfig(id_column="doc", text_column="body", label_column="cat", label_separator="|"),
    )
    assert stats["labels"] == {"b": 2, "a": 1}
    assert stats["invalid_rows"] == 0


def test_only_invalid_rows(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"id": "1", "text": ""}])
    stats = file_stats(path, "topic")
    assert (stats["rows"], stats["invalid_rows"], stats["words"], stats["labels"]) == (1, 1, {}, {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: no such file")):
        file_stats(tmp_path / "nope.jsonl", "topic")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {}),
        ([5], {"min": 5, "median": 5, "mean": 5.0, "p95": 5, "max": 5}),
        (list(range(1, 101)), {"min": 1, "median": 50.5, "mean": 50.5, "p95": 96, "max": 100}),
        ([3, 1, 2], {"min": 1, "median": 2, "mean": 2.0, "p95": 3, "max": 3}),
    ],
)
def test_describe(values: list[int], expected: dict) -> None:
    assert _describe(values) == expected

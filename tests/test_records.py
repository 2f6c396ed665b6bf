"""naba.data.records: user rows to canonical topic/stance records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from naba.config import ColumnsConfig
from naba.data.records import (
    FieldError,
    all_labels,
    iter_records,
    labels_of,
    load_records,
    to_record,
)
from naba.errors import InputError


def field_error(
    row: dict, task: str = "topic", columns: ColumnsConfig | None = None, **kwargs
) -> tuple[str, str]:
    with pytest.raises(FieldError) as info:
        to_record(row, task, columns, **kwargs)
    return info.value.field, info.value.message


# ----------------------------------------------------------------------------- topic


def test_topic_record_keeps_canonical_fields_only() -> None:
    row = {
        "id": "1",
        "text": "نص",
        "title": "عنوان",
        "topics": ["politics", " economy "],
        "tags": "وسم",
        "date": "2024-01-27",
        "source": "وام",
        "url": "http://x",
        "labels_from": [{"topic": "politics"}],
        "extra": 1,
        "empty": "",
    }
    assert to_record(row, "topic") == {
        "id": "1",
        "text": "نص",
        "title": "عنوان",
        "topics": ["politics", "economy"],
        "tags": "وسم",
        "date": "2024-01-27",
        "source": "وام",
        "url": "http://x",
        "labels_from": [{"topic": "politics"}],
    }


def test_topic_optional_fields_dropped_when_empty() -> None:
    row = {
        "id": "1",
        "text": "نص",
        "title": "   ",
        "topics": ["a"],
        "tags": "",
        "date": None,
        "source": [],
        "url": "u",
    }
    assert to_record(row, "topic") == {"id": "1", "text": "نص", "topics": ["a"], "url": "u"}


@pytest.mark.parametrize(
    ("topics", "separator", "expected"),
    [
        ("politics", None, ["politics"]),
        (["politics"], None, ["politics"]),
        (["a", "b"], None, ["a", "b"]),
        (("a", "b"), None, ["a", "b"]),
        (["a", "  ", ""], None, ["a"]),
        ("a|b", None, ["a|b"]),
        ("a| b |", "|", ["a", "b"]),
        ("a;b", ";", ["a", "b"]),
    ],
)
def test_topics_string_or_list(topics, separator, expected) -> None:
    # string_labels: what CSV rows get (every cell is a string there)
    cols = ColumnsConfig(label_separator=separator)
    assert (
        to_record({"id": "1", "text": "نص", "topics": topics}, "topic", cols, string_labels=True)[
            "topics"
        ]
        == expected
    )


def test_topics_string_outside_csv_is_an_error() -> None:
    # JSON can hold a list: "topics": "energy" is a converter bug, not one label.
    assert field_error({"id": "1", "text": "نص", "topics": "energy"}) == (
        "topics",
        'expected a list of labels, found the string "energy"; write it as a list, e.g. ["energy"]',
    )
    # ... unless a separator says how to split label strings
    cols = ColumnsConfig(label_separator="|")
    assert to_record({"id": "1", "text": "نص", "topics": "energy"}, "topic", cols)["topics"] == [
        "energy"
    ]
    # a stance label is always one string
    assert (
        to_record({"id": "1", "text": "نص", "target": "ت", "stance": "favor"}, "stance")["stance"]
        == "favor"
    )


@pytest.mark.parametrize(
    ("topics", "message"),
    [
        (
            '["a", "b"]',
            'expected a list of labels, found a string that looks like a list \'["a", "b"]\'; '
            "write it as a JSON list",
        ),
        (3, "expected a list of label strings, found 3"),
        (["a", 3], "expected a list of label strings, found ['a', 3]"),
        ({"a": 1}, "expected a list of label strings, found {'a': 1}"),
        ([], "expected at least one label, found none"),
        ("   ", "expected at least one label, found none"),
        ([" "], "expected at least one label, found none"),
    ],
)
def test_bad_topics(topics, message: str) -> None:
    assert field_error({"id": "1", "text": "نص", "topics": topics}) == ("topics", message)


def test_missing_topics() -> None:
    assert field_error({"id": "1", "text": "نص"}) == (
        "topics",
        "expected a list of labels, found no 'topics' field",
    )
    assert field_error({"id": "1", "text": "نص", "topics": None}) == (
        "topics",
        "expected a list of labels, found no 'topics' field",
    )


def test_labels_optional_for_prediction_input() -> None:
    assert to_record({"id": "1", "text": "نص"}, "topic", require_label=False) == {
        "id": "1",
        "text": "نص",
    }
    # but when present they are still checked
    assert field_error({"id": "1", "text": "نص", "topics": 3}, require_label=False)[0] == "topics"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a non-empty string, found an empty string"),
        ("  \n\t", "expected a non-empty string, found only whitespace"),
        (5, "expected a string, found int 5"),
        (["x"], "expected a string, found list ['x']"),
        (None, "expected a non-empty string, found no 'text' field"),
    ],
)
def test_bad_text(text, message: str) -> None:
    assert field_error({"id": "1", "text": text, "topics": ["a"]}) == ("text", message)


def test_missing_text() -> None:
    assert field_error({"id": "1", "topics": ["a"]}) == (
        "text",
        "expected a non-empty string, found no 'text' field",
    )


def test_long_wrong_type_is_truncated_in_message() -> None:
    _, message = field_error({"id": "1", "text": list(range(100)), "topics": ["a"]})
    assert message == "expected a string, found list " + repr(list(range(100)))[:40]


@pytest.mark.parametrize(("value", "expected"), [("a1", "a1"), (7, "7"), (7.5, "7.5")])
def test_id_numbers_become_strings(value, expected: str) -> None:
    assert to_record({"id": value, "text": "نص", "topics": ["a"]}, "topic")["id"] == expected


def test_bool_id_rejected() -> None:
    assert field_error({"id": True, "text": "نص", "topics": ["a"]}) == (
        "id",
        "expected a string, found bool True",
    )


def test_id_falls_back_to_line() -> None:
    assert to_record({"text": "نص", "topics": ["a"]}, "topic", line=9)["id"] == "9"
    assert to_record({"id": "", "text": "نص", "topics": ["a"]}, "topic", line=3)["id"] == "3"
    assert field_error({"text": "نص", "topics": ["a"]}) == (
        "id",
        "expected an id, found no 'id' field",
    )


def test_column_mapping() -> None:
    cols = ColumnsConfig(
        id_column="doc", text_column="body", title_column="head", label_column="cat"
    )
    row = {
        "doc": "d1",
        "body": "نص",
        "head": "عنوان",
        "cat": "sport",
        "text": "ignored",
        "topics": ["ignored"],
    }
    assert to_record(row, "topic", cols) == {
        "id": "d1",
        "text": "نص",
        "title": "عنوان",
        "topics": ["sport"],
    }


def test_column_mapping_names_both_columns() -> None:
    cols = ColumnsConfig(text_column="body")
    assert field_error({"id": "1", "text": "نص", "topics": ["a"]}, columns=cols) == (
        "text",
        "expected a non-empty string, found no 'body' field (mapped from 'text')",
    )
    cols = ColumnsConfig(label_column="cat")
    assert field_error({"id": "1", "text": "نص", "topics": ["a"]}, columns=cols) == (
        "cat",
        "expected a list of labels, found no 'cat' field",
    )


# ----------------------------------------------------------------------------- stance


def test_stance_record() -> None:
    row = {"id": "1", "text": "تغريدة", "target": "نيوم", "stance": " favor ", "extra": 1}
    assert to_record(row, "stance") == {
        "id": "1",
        "text": "تغريدة",
        "target": "نيوم",
        "stance": "favor",
    }


def test_stance_column_mapping_and_separator() -> None:
    cols = ColumnsConfig(target_column="claim", label_column="label", label_separator="|")
    row = {"id": "1", "text": "نص", "claim": "ادعاء", "label": "against"}
    assert to_record(row, "stance", cols) == {
        "id": "1",
        "text": "نص",
        "target": "ادعاء",
        "stance": "against",
    }
    assert field_error({**row, "label": "favor|against"}, "stance", cols) == (
        "label",
        "expected one stance label, found ['favor', 'against']",
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"id": "1", "text": "نص", "stance": "favor"},
            ("target", "expected a non-empty string, found no 'target' field"),
        ),
        (
            {"id": "1", "text": "نص", "target": "", "stance": "favor"},
            ("target", "expected a non-empty string, found an empty string"),
        ),
        (
            {"id": "1", "text": "نص", "target": "ت"},
            ("stance", "expected a label, found no 'stance' field"),
        ),
        (
            {"id": "1", "text": "نص", "target": "ت", "stance": ["favor", "none"]},
            ("stance", "expected one stance label, found ['favor', 'none']"),
        ),
        (
            {"id": "1", "text": "نص", "target": "ت", "stance": ""},
            ("stance", "expected at least one label, found none"),
        ),
    ],
)
def test_bad_stance(row: dict, expected: tuple[str, str]) -> None:
    assert field_error(row, "stance") == expected


def test_stance_prediction_input_needs_neither_target_nor_label() -> None:
    assert to_record({"id": "1", "text": "نص"}, "stance", require_label=False) == {
        "id": "1",
        "text": "نص",
    }
    assert to_record({"id": "1", "text": "نص", "target": "ت"}, "stance", require_label=False) == {
        "id": "1",
        "text": "نص",
        "target": "ت",
    }


def test_labels_of_and_all_labels() -> None:
    topic = [{"topics": ["b", "a"]}, {"topics": ["c"]}]
    assert labels_of(topic[0], "topic") == ["b", "a"]
    assert all_labels(topic, "topic") == ["a", "b", "c"]
    assert labels_of({"stance": "favor"}, "stance") == ["favor"]
    assert all_labels([{"stance": "none"}, {"stance": "favor"}, {"stance": "none"}], "stance") == [
        "favor",
        "none",
    ]


# ----------------------------------------------------------------------------- files


def test_iter_records_turns_field_errors_into_problems(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps({"id": "1", "text": "نص", "topics": ["a"]})
        + "\n"
        + json.dumps({"id": "2", "text": ""})
        + "\n",
        encoding="utf-8",
    )
    items = list(iter_records(path, "topic"))
    assert items[0] == (1, {"id": "1", "text": "نص", "topics": ["a"]})
    assert (items[1][0], str(items[1][1])) == (
        2,
        f"{path}:2: text: expected a non-empty string, found an empty string",
    )


def test_csv_labels_with_separator(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,text,topics\n1,نص,politics|economy\n", encoding="utf-8")
    items = list(iter_records(path, "topic", ColumnsConfig(label_separator="|")))
    assert items == [(2, {"id": "1", "text": "نص", "topics": ["politics", "economy"]})]


def test_load_records_fails_on_first_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text(
        '{"id": "1", "text": "نص", "topics": ["a"]}\n{"id": "2", "text": "نص آخر"}\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        load_records(path, "topic")
    assert str(info.value) == (
        f"{path}:2: topics: expected a list of labels, found no 'topics' field "
        f"(run `naba data validate {path} --task topic` to list every problem)"
    )


def test_load_records_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(
        InputError, match=re.escape(f"{path}: no records; expected at least one stance row")
    ):
        load_records(path, "stance")

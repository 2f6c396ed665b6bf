"""naba.data.validate: every problem of a file as FILE:LINE: field: message, in file order."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Elided
from naba.config import ColumnsConfig
from naba.data.validate import ValidationSummary, validate_file


def line(obj: dict) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def test_malformed_topic_corpus(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                line({"id": "1", "text": "النص الأول", "topics": ["politics"]}),  # 1 ok
                b'{"id": "2", "text": broken',  # 2 broken JSON
                b'{"id": "3", "text": "caf\xe9", "topics": ["politics"]}',  # 3 invalid UTF-8
                line({"id": "4", "topics": ["politics"]}),  # 4 missing text
                line({"id": "5", "text": "", "topics": ["politics"]}),  # 5 empty text
                line({"id": "6", "text": " \t ", "topics": ["politics"]}),  # 6 whitespace text
                line({"id": "7", "text": "النص السابع", "topics": 3}),  # 7 topics a number
                line({"id": "8", "text": "النص الثامن", "topics": ["weather"]}),  # 8 unknown label
                line({"id": "1", "text": "النص التاسع", "topics": ["sports"]}),  # 9 duplicate id
                line(
                    {"id": "10", "text": "النَّصُّ الأوَّل", "topics": ["politics"]}
                ),  # 10 same text as 1 but diacritics
                b"",  # 11 blank: skipped
                line(
                    {"id": "12", "text": "النص الثاني عشر", "topics": ["sports", "x"]}
                ),  # 12 one unknown of two
                line(
                    {"id": "1", "text": "النص الأول", "topics": ["weather"]}
                ),  # 13 three problems at once
                line({"id": "14", "text": "نص سليم", "topics": ["sports"]}),  # 14 ok
            ]
        )
        + b"\n"
    )
    summary = ValidationSummary()
    problems = [
        str(p) for p in validate_file(path, "topic", labels=["politics", "sports"], summary=summary)
    ]
    assert problems == [
        Elided(f"{path}:2: (json): expected a JSON object, found invalid JSON (… at column 21)"),
        f"{path}:3: (line): expected UTF-8 text, found invalid byte 0xe9 at column 25; "
        "re-save the file as UTF-8",
        f"{path}:4: text: expected a non-empty string, found no 'text' field",
        f"{path}:5: text: expected a non-empty string, found an empty string",
        f"{path}:6: text: expected a non-empty string, found only whitespace",
        f"{path}:7: topics: expected a list of label strings, found 3",
        f"{path}:8: topics: expected labels from ['politics', 'sports'], found unknown ['weather']",
        f"{path}:9: id: expected a unique id, found '1' already used on line 1",
        f"{path}:10: text: expected a unique text, found a duplicate of "
        "line 1 (after normalisation)",
        f"{path}:12: topics: expected labels from ['politics', 'sports'], found unknown ['x']",
        f"{path}:13: topics: expected labels from ['politics', 'sports'], "
        "found unknown ['weather']",
        f"{path}:13: id: expected a unique id, found '1' already used on line 1",
        f"{path}:13: text: expected a unique text, found a duplicate of "
        "line 1 (after normalisation)",
    ]
    assert (summary.rows, summary.valid, summary.problems) == (13, 2, 13)


def test_without_labels_any_label_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "ok.jsonl"
    path.write_bytes(line({"id": "1", "text": "نص", "topics": ["anything"]}) + b"\n")
    summary = ValidationSummary()
    assert list(validate_file(path, "topic", summary=summary)) == []
    assert (summary.rows, summary.valid, summary.problems) == (1, 1, 0)


def test_stance_corpus(tmp_path: Path) -> None:
    path = tmp_path / "stance.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                line({"id": "s1", "text": "تغريدة", "target": "نيوم", "stance": "favor"}),  # 1 ok
                line({"id": "s2", "text": "تغريدة أخرى", "stance": "favor"}),  # 2 no target
                line(
                    {"id": "s3", "text": "تغريدة", "target": "أرامكو", "stance": "against"}
                ),  # 3 same text, other target: ok
                line(
                    {"id": "s4", "text": "تغريدة", "target": "نيوم", "stance": "maybe"}
                ),  # 4 unknown label + duplicate pair
                line(
                    {"id": "s5", "text": "نص", "target": "نيوم", "stance": ["favor", "none"]}
                ),  # 5 two stances
                line(
                    {"id": "s6", "text": "تَغْرِيدَة", "target": "نيوم", "stance": "none"}
                ),  # 6 duplicate pair after normalisation
                line({"id": "s7", "text": "نص", "target": "نيوم"}),  # 7 no stance
            ]
        )
        + b"\n"
    )
    problems = [str(p) for p in validate_file(path, "stance", labels=["favor", "against", "none"])]
    assert problems == [
        f"{path}:2: target: expected a non-empty string, found no 'target' field",
        f"{path}:4: stance: expected labels from ['against', 'favor', "
        "'none'], found unknown ['maybe']",
        f"{path}:4: text: expected a unique target+text pair, found a duplicate of "
        "line 1 (after normalisation)",
        f"{path}:5: stance: expected one stance label, found ['favor', 'none']",
        f"{path}:6: text: expected a unique target+text pair, found a duplicate of "
        "line 1 (after normalisation)",
        f"{path}:7: stance: expected a label, found no 'stance' field",
    ]


def test_csv_with_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("doc,body,cat\n1,نص أول,a|b\n2,,a\n3,نص ثالث\n1,نص رابع,c\n", encoding="utf-8")
    cols = ColumnsConfig(
        id_column="doc", text_column="body", label_column="cat", label_separator="|"
    )
    problems = [str(p) for p in validate_file(path, "topic", cols, labels=["a", "b"])]
    assert problems == [
        f"{path}:3: text: expected a non-empty string, found an empty string",
        f"{path}:4: (csv): expected 3 columns, found fewer",
        # names the canonical field, not the mapped column 'cat' (parse errors name the column)
        f"{path}:5: topics: expected labels from ['a', 'b'], found unknown ['c']",
        f"{path}:5: id: expected a unique id, found '1' already used on line 2",
    ]


def test_problem_to_dict(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(line({"id": "1", "text": ""}) + b"\n")
    (problem,) = validate_file(path, "topic")
    assert problem.to_dict() == {
        "file": str(path),
        "line": 1,
        "field": "text",
        "error": "expected a non-empty string, found an empty string",
    }

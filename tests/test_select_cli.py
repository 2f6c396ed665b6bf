"""``naba select`` on a trained model in every output format, and
Label Studio exports imported back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import Elided
from naba.cli import app
from naba.data.labelstudio import json_list, read_export
from naba.errors import InputError

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, small_data: dict[str, Path]) -> Path:
    """Unlabelled articles: topic articles without labels, stance rows
    with their target, one bad row."""
    rows = [
        {k: v for k, v in r.items() if k != "topics"} for r in read_jsonl(small_data["topic_test"])
    ]
    rows += [
        {k: v for k, v in r.items() if k != "stance"} for r in read_jsonl(small_data["stance_test"])
    ]
    rows.append({"id": "empty", "text": "   "})
    path = tmp_path_factory.mktemp("pool") / "pool.jsonl"
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def config_names(config: Path) -> tuple[set[str], dict[str, tuple[str, str, set[str]]]]:
    """The labeling config's object tag names and, per <Choices>, (toName, choice, labels)."""
    root = ET.fromstring(config.read_text(encoding="utf-8"))
    objects = {t.get("name") for t in root.iter("Text")}
    choices = {
        c.get("name"): (
            c.get("toName"),
            c.get("choice"),
            {x.get("value") for x in c.iter("Choice")},
        )
        for c in root.iter("Choices")
    }
    return objects, choices


def test_select_writes_n_distinct_pool_articles_as_jsonl(
    trained_model: Path, pool: Path, tmp_path: Path
) -> None:
    out = tmp_path / "next.jsonl"
    result = invoke("select", trained_model, pool, "-n", 10, "-o", out, "--seed", 3)
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    ids = {r["id"] for r in read_jsonl(pool)}
    assert len(rows) == 10 and len({r["id"] for r in rows}) == 10 and {r["id"] for r in rows} <= ids
    assert [r["uncertainty"] for r in rows] == sorted(
        (r["uncertainty"] for r in rows), reverse=True
    )
    for row in rows:
        assert set(row["prediction"]["topics"]) == {"labels", "scores"}
        assert ("stance" in row["prediction"]) == ("target" in row)
    errors = read_jsonl(tmp_path / "next.errors.jsonl")
    assert [(e["id"], e["field"]) for e in errors] == [("empty", "text")]
    assert "chose 10 of" in result.stdout and "1 rows could not be read" in result.stderr
    again = tmp_path / "again.jsonl"
    assert invoke("select", trained_model, pool, "-n", 10, "-o", again, "--seed", 3).exit_code == 0
    assert read_jsonl(again) == rows


def test_select_writes_label_studio_tasks_that_match_their_config(
    trained_model: Path, pool: Path, tmp_path: Path
) -> None:
    out = tmp_path / "next.json"
    result = invoke("select", trained_model, pool, "-n", 8, "-o", out, "--format", "label-studio")
    assert result.exit_code == 0, result.output
    tasks = json.loads(out.read_text(encoding="utf-8"))
    objects, choices = config_names(tmp_path / "next.label_config.xml")
    labels = json.loads((trained_model / "naba.json").read_text(encoding="utf-8"))["tasks"]
    assert choices["topic"] == ("text", "multiple", set(labels["topic"]["labels"]))
    assert choices["stance"] == ("text", "single", set(labels["stance"]["labels"]))
    assert len({t["data"]["id"] for t in tasks}) == 8
    result_ids = []
    for t in tasks:
        assert t["data"]["text"] and set(t) == {"data", "predictions"}
        (prediction,) = t["predictions"]
        assert 0 <= prediction["score"] <= 1 and prediction["model_version"] == trained_model.name
        for item in prediction["result"]:
            assert item["type"] == "choices" and item["to_name"] in objects
            assert set(item["value"]["choices"]) <= choices[item["from_name"]][2]
            result_ids.append(item["id"])
        assert bool(t["data"]["target"]) == any(
            r["from_name"] == "stance" for r in prediction["result"]
        )
    assert len(set(result_ids)) == len(result_ids)
    scores = [t["predictions"][0]["score"] for t in tasks]
    assert scores == sorted(scores)  # the least confident first, as Label Studio shows them


def test_select_writes_argilla_records_with_suggestions(
    trained_model: Path, pool: Path, tmp_path: Path
) -> None:
    out = tmp_path / "next.json"
    result = invoke("select", trained_model, pool, "-n", 8, "-o", out, "--format", "argilla")
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text(encoding="utf-8"))
    assert len({r["id"] for r in records}) == 8
    for record in records:
        assert set(record) == {"id", "fields", "metadata", "suggestions", "responses", "vectors"}
        topic = record["suggestions"]["topic"]
        assert isinstance(topic["value"], list) and len(topic["score"]) == len(topic["value"])
        assert topic["agent"] == trained_model.name
        assert ("stance" in record["suggestions"]) == ("target" in record["fields"])
        assert 0 <= record["metadata"]["uncertainty"] <= 1


def test_select_refuses_to_overwrite_and_says_what_to_do(
    trained_model: Path, pool: Path, tmp_path: Path
) -> None:
    out = tmp_path / "next.jsonl"
    out.write_text("kept\n", encoding="utf-8")
    result = invoke("select", trained_model, pool, "-n", 2, "-o", out)
    assert result.exit_code == 2
    assert result.stderr == f"error: {out}: already exists; pass --overwrite to replace it\n"
    assert out.read_text(encoding="utf-8") == "kept\n"


def test_a_label_studio_round_trip_gives_the_annotators_labels(
    trained_model: Path, pool: Path, tmp_path: Path
) -> None:
    tasks_path = tmp_path / "tasks.json"
    assert (
        invoke(
            "select", trained_model, pool, "-n", 6, "-o", tasks_path, "-f", "label-studio"
        ).exit_code
        == 0
    )
    tasks = json.loads(tasks_path.read_text(encoding="utf-8"))
    exported = [  # what Label Studio exports once an annotator accepted each pre-annotation
        {
            "id": 500 + i,
            "data": t["data"],
            "annotations": [
                {"id": i, "result": t["predictions"][0]["result"], "was_cancelled": False}
            ],
        }
        for i, t in enumerate(tasks)
    ]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(exported, ensure_ascii=False, indent=2), encoding="utf-8")
    out = tmp_path / "labelled.jsonl"
    result = invoke("data", "import", export, "--format", "label-studio", "-o", out)
    assert result.exit_code == 0, result.output
    records = read_jsonl(out)
    assert [r["id"] for r in records] == [t["data"]["id"] for t in tasks]
    for record, t in zip(records, tasks):
        topic = next(r for r in t["predictions"][0]["result"] if r["from_name"] == "topic")
        assert record["topics"] == topic["value"]["choices"] and record["text"] == t["data"]["text"]


# ----------------------------------------------------------------------------- Label Studio exports


def test_a_label_studio_export_imports_into_canonical_records(tmp_path: Path) -> None:
    out = tmp_path / "labelled.jsonl"
    result = invoke(
        "data",
        "import",
        FIXTURES / "label_studio_export.json",
        "--format",
        "label-studio",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    assert read_jsonl(out) == [
        {
            "id": "a_07-0",
            "text": "ارتفعت أسعار النفط في الأسواق العالمية بعد قرار خفض الإنتاج.",
            "title": "النفط يرتفع",
            "topics": ["economy", "energy"],
        },
        {
            "id": "a_09-2",
            "text": "فاز المنتخب الوطني على نظيره بهدفين دون رد في التصفيات.",
            "topics": ["sport"],
        },  # the cancelled one skipped
        {
            "id": "103",
            "text": "حملة تلقيح جديدة في المدارس ضد الحصبة.",
            "topics": ["health"],
        },  # ground truth wins; the task's id
    ]


def test_a_label_studio_stance_export_imports_with_its_target(tmp_path: Path) -> None:
    records = list(read_export([FIXTURES / "label_studio_stance_export.json"], "stance"))
    assert records == [
        {
            "id": "s1-001",
            "text": "محطة نووية واحدة كفيلة بإنهاء انقطاعات الكهرباء.",
            "target": "الطاقة النووية",
            "stance": "favor",
        }
    ]


def annotated(result: list | None = None, cancelled: bool = False, **data) -> dict:
    return {
        "id": 9,
        "data": {"id": "x", "text": "نص", **data},
        "annotations": [
            {"id": 1, "result": result if result is not None else [], "was_cancelled": cancelled}
        ],
    }


def choice(name: str, choices) -> dict:
    return {
        "id": "r",
        "from_name": name,
        "to_name": "text",
        "type": "choices",
        "value": {"choices": choices},
    }


@pytest.mark.parametrize(
    ("task", "item", "field", "message"),
    [
        (
            "topic",
            {"id": 9, "data": {"text": "نص"}},
            "annotations",
            "expected a list of annotations, found none",
        ),
        (
            "topic",
            annotated(cancelled=True),
            "annotations",
            "expected an annotation that was not cancelled, found 1 cancelled or malformed; label "
            "the task in Label Studio, or leave it out of the file",
        ),
        (
            "topic",
            annotated([]),
            "annotations[0].result",
            "expected a choice from the 'topic' tag, found no choices; label the task in Label "
            "Studio, or leave it out of the file",
        ),
        (
            "topic",
            annotated([choice("sentiment", ["x"])]),
            "annotations[0].result",
            "expected a choice from the 'topic' tag, found only 'sentiment'; pass --label-column "
            "NAME to read another <Choices> tag",
        ),
        (
            "topic",
            annotated([choice("topic", [])]),
            "annotations[0].result[0].value.choices",
            "expected at least one label, found none",
        ),
        (
            "topic",
            annotated([choice("topic", "sport")]),
            "annotations[0].result[0].value.choices",
            "expected a list of label strings, found 'sport'",
        ),
        (
            "topic",
            {**annotated([choice("topic", ["sport"])]), "data": {"id": "x"}},
            "data.text",
            "expected a non-empty string, found no 'text' field",
        ),
        (
            "topic",
            {"annotations": []},
            "data",
            "expected an object with the article's text, found none",
        ),
        (
            "stance",
            annotated([choice("stance", ["favor", "against"])], target="t"),
            "annotations[0].result.value.choices",
            "expected one stance, found ['favor', 'against']",
        ),
        (
            "stance",
            annotated([choice("stance", ["favor"])]),
            "data.target",
            "expected a non-empty string, found no 'target' field",
        ),
    ],
)
def test_bad_annotations_are_error_records_naming_file_line_and_field(
    tmp_path: Path, task: str, item: dict, field: str, message: str
) -> None:
    good = annotated([choice(task, ["favor" if task == "stance" else "sport"])], target="t")
    path = tmp_path / "export.json"
    path.write_text(json.dumps([good, item], ensure_ascii=False, indent=2), encoding="utf-8")
    second_line = 1 + json.dumps([good], ensure_ascii=False, indent=2).count(
        "\n"
    )  # where item 2 begins
    out = tmp_path / "labelled.jsonl"
    result = invoke("data", "import", path, "--format", "label-studio", "--task", task, "-o", out)
    assert result.exit_code == 1
    assert len(read_jsonl(out)) == 1
    (error,) = read_jsonl(tmp_path / "labelled.errors.jsonl")
    assert error == {"file": str(path), "line": second_line, "field": field, "error": message}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"data": {}}',
            "{path}:1: expected a JSON list of tasks (Label Studio's JSON export), found "
            "'{\"data\": {}}'",
        ),
        (
            "",
            "{path}:1: expected a JSON list of tasks (Label Studio's JSON "
            "export), found an empty file",
        ),
        (
            '[\n  {"data": {"text": "x"}},\n  {"data": \n]',
            "{path}:4: not valid JSON (…); export it again from Label Studio",
        ),
        ('[{"data": {"text": "x"}}', "{path}: the JSON list is not closed (the file is cut short)"),
    ],
)
def test_a_file_that_is_not_a_label_studio_export_is_one_clear_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "export.json"
    path.write_text(text, encoding="utf-8")
    expected = message.replace("{path}", str(path))
    with pytest.raises(InputError, match=Elided(expected).pattern):
        list(json_list(path))
    result = invoke(
        "data", "import", path, "--format", "label-studio", "-o", tmp_path / "out.jsonl"
    )
    assert result.exit_code == 2 and result.stderr == Elided(f"error: {expected}\n")

"""One prediction record in every door: Classifier.predict, naba predict (JSONL,
Parquet, CSV) and POST /v1/classify."""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE
from naba.infer.schema import Prediction, csv_columns, prediction_json_schema

NUCLEAR = "الطاقة النووية"
BATCH = 16  # every door classifies with the same batches, so the scores agree to the last digit


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


@pytest.fixture(scope="module")
def articles() -> list[dict]:
    """Records with ids and titles; two carry their own stance target."""
    rows = [
        json.loads(line)
        for line in (SAMPLE / "topic" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ][:6]
    out = [{"id": r["id"], "title": r["title"], "text": r["text"]} for r in rows]
    out[1]["target"] = NUCLEAR
    out[4]["target"] = "العمل عن بعد"
    return out


# The three ways stance is asked for, and one task alone.
CASES = {
    "own targets": {},
    "named targets": {"targets": [NUCLEAR, "السيارات الكهربائية"]},
    "all targets": {"all_targets": True},
    "topics only": {"tasks": ["topic"]},
    "stance only": {"tasks": ["stance"], "targets": [NUCLEAR]},
}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _predict_file(clf, articles: list[dict], tmp_path: Path, name: str, options: dict) -> Path:
    from naba.infer.predict import predict_files

    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8"
    )
    out = tmp_path / name
    predict_files(clf, [source], out, batch_size=BATCH, overwrite=True, **options)
    return out


def _service(clf, articles: list[dict], options: dict) -> list[dict]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from naba.serve.app import ServeSettings, create_app

    with TestClient(create_app(clf, ServeSettings(batch_size=BATCH))) as client:
        response = client.post("/v1/classify", json={"articles": articles, **options})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _without_nulls(record: dict) -> dict:
    """A record read from a columnar file, as JSON writes it (a null column is an absent key)."""
    return {k: v for k, v in record.items() if v is not None}


def _from_csv(row: dict[str, str]) -> dict:
    """A CSV row back to a record, by the flattening the README documents."""
    record: dict = {"id": row["id"]}
    if "topics.labels" in row:
        record["topics"] = {
            "labels": row["topics.labels"].split("|") if row["topics.labels"] else [],
            "scores": {
                k.removeprefix("topics.scores."): float(v)
                for k, v in row.items()
                if k.startswith("topics.scores.")
            },
        }
    stance = []
    i = 0
    while row.get(f"stance.{i}.target"):
        prefix = f"stance.{i}.scores."
        stance.append(
            {
                "target": row[f"stance.{i}.target"],
                "label": row[f"stance.{i}.label"],
                "scores": {
                    k.removeprefix(prefix): float(v) for k, v in row.items() if k.startswith(prefix)
                },
            }
        )
        if row.get(f"stance.{i}.relevance"):
            stance[-1]["relevance"] = float(row[f"stance.{i}.relevance"])
        i += 1
    if stance:
        record["stance"] = stance
    return record


@pytest.mark.parametrize("case", list(CASES))
def test_every_door_gives_the_same_record(
    clf, articles: list[dict], tmp_path: Path, case: str
) -> None:
    options = CASES[case]
    api = clf.predict(articles, batch_size=BATCH, **options)
    jsonl = _jsonl(_predict_file(clf, articles, tmp_path, "out.jsonl", options))
    service = _service(clf, articles, options)
    assert api == jsonl == service
    for record in api:
        assert Prediction.model_validate(record).model_dump(exclude_none=True) == record
        assert list(record)[0] == "id" and record["id"] in {a["id"] for a in articles}
    assert [r["id"] for r in api] == [a["id"] for a in articles]
    assert all(("topics" in r) == ("topic" in options.get("tasks", ["topic"])) for r in api)
    asked = options.get("targets") or (
        clf.tasks["stance"].spec.default_targets if options.get("all_targets") else None
    )
    for article, record in zip(articles, api):
        wanted = asked or ([article["target"]] if "target" in article else [])
        if options.get("tasks") == ["topic"]:
            wanted = []
        assert [s["target"] for s in record.get("stance", [])] == wanted


def test_one_string_and_one_record(clf, articles: list[dict]) -> None:
    plain = clf.predict(articles[0]["text"], targets=[NUCLEAR])
    assert isinstance(plain, dict) and list(plain) == [
        "topics",
        "stance",
    ]  # no id given, none echoed
    record = {"id": articles[0]["id"], "text": articles[0]["text"]}
    assert clf.predict(record, targets=[NUCLEAR]) == {"id": record["id"], **plain}
    numbered = clf.predict(
        [{"id": 7, "text": articles[0]["text"]}, {"id": 2.5, "text": articles[0]["text"]}]
    )
    assert [r["id"] for r in numbered] == [
        7,
        "2.5",
    ]  # a string or an integer as given; anything else as its string
    Prediction.model_validate(numbered[1])


@pytest.mark.parametrize("case", ["own targets", "all targets", "topics only", "stance only"])
def test_parquet_holds_the_jsonl_records_in_typed_columns(
    clf, articles: list[dict], tmp_path: Path, case: str
) -> None:
    import pyarrow.parquet as pq

    options = CASES[case]
    jsonl = _jsonl(_predict_file(clf, articles, tmp_path, "out.jsonl", options))
    table = pq.read_table(_predict_file(clf, articles, tmp_path, "out.parquet", options))
    assert [_without_nulls(r) for r in table.to_pylist()] == jsonl
    tasks = options.get("tasks", ["topic", "stance"])
    assert table.schema.names == [
        "id",
        *(["topics"] if "topic" in tasks else []),
        *(["stance"] if "stance" in tasks else []),
    ]
    assert str(table.schema.field("id").type) == "string"
    if "topic" in tasks:
        scores = ", ".join(f"{label}: double" for label in clf.labels["topic"])
        assert (
            str(table.schema.field("topics").type)
            == f"struct<labels: list<element: string>, scores: struct<{scores}>>"
        )
    if "stance" in tasks:
        relevance = ", relevance: double" if _gate(clf) else ""
        assert str(table.schema.field("stance").type) == (
            "list<element: struct<target: string, label: string, scores: struct<against: double, "
            f"favor: double, none: double>{relevance}>>"
        )


@pytest.mark.parametrize("case", list(CASES))
def test_csv_flattening_reads_back_to_the_records(
    clf, articles: list[dict], tmp_path: Path, case: str
) -> None:
    options = CASES[case]
    jsonl = _jsonl(_predict_file(clf, articles, tmp_path, "out.jsonl", options))
    path = _predict_file(clf, articles, tmp_path, "out.csv", options)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert [
        _from_csv(r) for r in rows
    ] == jsonl  # scores are written in full (6 decimals): they read back equal
    tasks = options.get("tasks", ["topic", "stance"])
    slots = (
        len(options["targets"]) if "targets" in options else 4 if options.get("all_targets") else 1
    )
    assert reader.fieldnames == csv_columns(tasks, clf.labels, slots, relevance=_gate(clf))


def _gate(clf) -> bool:
    """Whether the model's stance rule has a relevance gate (its entries then carry relevance)."""
    rule = clf.tasks["stance"].spec.hybrid
    return rule is not None and rule.has_gate


def test_csv_header_names_every_column(clf, articles: list[dict], tmp_path: Path) -> None:
    path = _predict_file(clf, articles[:2], tmp_path, "out.csv", {"targets": [NUCLEAR]})
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    topic = [f"topics.scores.{label}" for label in clf.labels["topic"]]
    assert header == [
        "id",
        "topics.labels",
        *topic,
        "stance.0.target",
        "stance.0.label",
        "stance.0.scores.against",
        "stance.0.scores.favor",
        "stance.0.scores.none",
        *(["stance.0.relevance"] if _gate(clf) else []),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_sharded_merge_writes_what_one_process_writes(
    clf, articles: list[dict], tmp_path: Path, suffix: str
) -> None:
    from naba.infer.predict import predict_files
    from naba.infer.predict_sharded import predict_sharded

    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8"
    )
    single, merged = tmp_path / f"single{suffix}", tmp_path / f"merged{suffix}"
    options = {"batch_size": BATCH, "targets": [NUCLEAR], "chunk_size": 2}
    predict_files(clf, [source], single, **options)
    assert (
        predict_sharded(clf, [source], merged, 1, 2, **options) is None
    )  # rank 1 writes its part and leaves
    summary = predict_sharded(
        clf, [source], merged, 0, 2, **options
    )  # rank 0 writes its part and merges both
    assert summary is not None and summary.written == len(articles)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(merged).equals(pq.read_table(single))
    else:
        assert merged.read_bytes() == single.read_bytes()


def test_csv_resume_gives_the_uninterrupted_output(
    clf, articles: list[dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from naba.infer.predict import predict_files

    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8"
    )
    options = {"batch_size": BATCH, "chunk_size": 2, "targets": [NUCLEAR]}
    predict_files(clf, [source], tmp_path / "clean.csv", **options)
    classify, calls = clf.classify, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return classify(*args, **kwargs)

    out = tmp_path / "out.csv"
    monkeypatch.setattr(clf, "classify", failing)
    with pytest.raises(KeyboardInterrupt):
        predict_files(clf, [source], out, **options)
    monkeypatch.undo()
    assert not out.exists() and (tmp_path / "out.csv.partial").exists()
    summary = predict_files(clf, [source], out, resume=True, **options)
    assert summary.resumed_from == 2
    assert out.read_bytes() == (tmp_path / "clean.csv").read_bytes()


# ----------------------------------------------------------------------------- the published schema


def test_service_serves_the_schema_and_its_results_refer_to_it(clf) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from naba.serve.app import create_app

    with TestClient(create_app(clf)) as client:
        assert client.get("/v1/schema").json() == prediction_json_schema()
        openapi = client.get("/openapi.json").json()
    results = openapi["components"]["schemas"]["ClassifyResponse"]["properties"]["results"]
    assert results["items"] == {"$ref": "#/components/schemas/Prediction"}
    assert "/v1/schema" in openapi["paths"]


def test_the_docs_publish_the_schema(tmp_path) -> None:
    """The docs' prediction-record page is generated from the model, so it cannot drift from it."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_ref
    finally:
        sys.path.remove(str(ROOT / "docs"))
    page = gen_ref.generate(tmp_path)[list(gen_ref.PAGES).index("prediction-schema.md")]
    found = re.search(r"```json\n(.*?)\n```", page.read_text(encoding="utf-8"), re.S)
    assert found and json.loads(found.group(1)) == prediction_json_schema()

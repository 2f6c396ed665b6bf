"""Evidence with every prediction: words and phrases of the article, as written, that weigh for a
label."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE
from naba.infer.evidence import _parts, document_words, evidence_records, label_evidence
from naba.infer.schema import Prediction

NUCLEAR = "الطاقة النووية"


def _rows(path: Path, n: int) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:n]]


@pytest.fixture(scope="module")
def topic_model():
    from naba.sparse import SparseModel

    records = _rows(SAMPLE / "topic" / "train.jsonl", 60)
    labels = sorted({t for r in records for t in r["topics"]})
    return SparseModel("topic", labels, multi_label=True).fit(records)


@pytest.fixture(scope="module")
def stance_model():
    from naba.sparse import SparseModel

    records = _rows(SAMPLE / "stance" / "train.jsonl", 80)
    return SparseModel("stance", ["against", "favor", "none"], multi_label=False).fit(records)


def _check_spans(record: dict, items: list[dict]) -> None:
    for item in items:
        assert record[item["field"]][item["start"] : item["end"]] == item["text"]


def test_evidence_is_spans_of_the_original_text(topic_model) -> None:
    records = _rows(SAMPLE / "topic" / "test.jsonl", 8)
    chosen = topic_model.predict(records)
    found = evidence_records(topic_model, records, chosen, 5)
    assert len(found) == len(records)
    for record, labels, evidence in zip(records, chosen, found):
        assert list(evidence) == labels
        for items in evidence.values():
            assert 0 < len(items) <= 5
            assert [i["weight"] for i in items] == sorted(
                (i["weight"] for i in items), reverse=True
            )
            assert all(i["weight"] > 0 and i["count"] >= 1 for i in items)
            _check_spans(record, items)


@pytest.mark.parametrize(
    ("written", "span"),
    [
        ("الْاِقْتِصَادُ", "الْاِقْتِصَادُ"),  # diacritics: kept in the span
        ("الاقتصـــاد", "الاقتصـــاد"),  # tatweel: kept
        ("«الاقتصاد»،", "الاقتصاد"),  # quotes and a comma: trimmed
        ("<b>الاقتصاد</b>", "الاقتصاد"),  # markup: not part of the word
        ("الاقتصاد\u200f", "الاقتصاد"),  # a bidi mark: trimmed
    ],
)
def test_a_word_is_found_as_written(topic_model, written: str, span: str) -> None:
    """The normalised word the model reads comes back as the span the article has."""
    text = f"قال الوزير إن {written} ينمو بسرعة هذا العام"
    words = document_words(topic_model, [("text", text)])
    match = [w for w in words if w.tokens == ["الاقتصاد"]]
    assert len(match) == 1
    assert text[match[0].start : match[0].end] == span
    assert [w.tokens for w in words][-2:] == [["هذا"], ["العام"]]


def test_the_parts_add_up_to_the_score(topic_model) -> None:
    """Every feature of a plain text is given to a word or phrase: the parts sum to the margin less
    the bias."""
    record = {"text": _rows(SAMPLE / "topic" / "test.jsonl", 1)[0]["text"]}
    words = document_words(topic_model, [("text", record["text"])])
    row = topic_model.features([record]).tocsr()[0]
    margins = topic_model.margins([record])[0]
    parts = _parts(topic_model, words)
    for j in range(len(topic_model.labels)):
        total = parts.weights(row, topic_model.weights[j]).sum()
        assert total == pytest.approx(margins[j] - topic_model.bias[j], abs=1e-3)


def test_title_evidence_names_the_title(topic_model) -> None:
    record = {"title": "أسعار النفط ترتفع", "text": "قال مسؤول إن السوق هادئة اليوم"}
    found = label_evidence(topic_model, record, topic_model.labels, 20)
    fields = {u.places[0][0] for units in found.values() for u in units}
    assert "title" in fields
    items = evidence_records(topic_model, [record], [topic_model.labels], 20)[0]
    for label_items in items.values():
        _check_spans(record, label_items)


def test_stance_evidence_comes_from_the_text_never_the_target(stance_model) -> None:
    record = {"target": NUCLEAR, "text": "الطاقة النووية خطر على الناس ويجب وقف المفاعلات فورا"}
    found = evidence_records(stance_model, [record], [stance_model.labels], 10)[0]
    assert set(found) == set(stance_model.labels)
    for items in found.values():
        assert all(i["field"] == "text" for i in items)
        _check_spans(record, items)


def test_removing_the_evidence_lowers_the_score(topic_model) -> None:
    """The deletion test in small: cutting the evidence words lowers the label's margin."""
    from naba.infer.evidence import remove_spans

    records = _rows(SAMPLE / "topic" / "test.jsonl", 6)
    chosen = topic_model.predict(records)
    for record, labels in zip(records, chosen):
        label = labels[0]
        record = {"text": record["text"]}
        units = label_evidence(topic_model, record, [label], 5)[label]
        spans = [(s, e) for u in units for _, s, e in u.places]
        cut = {"text": remove_spans(record["text"], spans)}
        j = topic_model.labels.index(label)
        assert topic_model.margins([cut])[0, j] < topic_model.margins([record])[0, j]


def test_remove_spans_cuts_overlaps_once() -> None:
    from naba.infer.evidence import remove_spans

    assert remove_spans("abcdefgh", [(5, 7), (1, 3), (2, 4)]) == "a e h"
    assert remove_spans("abc", []) == "abc"


# ----------------------------------------------------------------------------- every door


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


@pytest.fixture(scope="module")
def articles() -> list[dict]:
    rows = _rows(SAMPLE / "topic" / "test.jsonl", 4)
    out = [{"id": r["id"], "title": r["title"], "text": r["text"]} for r in rows]
    out[1]["target"] = NUCLEAR
    return out


def test_predict_explain_gives_evidence_per_chosen_label_and_stance_entry(
    clf, articles: list[dict]
) -> None:
    plain = clf.predict(articles)
    results = clf.predict(articles, explain=3)
    for article, result, base in zip(articles, results, plain):
        Prediction.model_validate(result)
        assert result["topics"]["labels"] == base["topics"]["labels"]
        evidence = result["topics"]["evidence"]
        assert list(evidence) == result["topics"]["labels"]
        for items in evidence.values():
            assert len(items) <= 3
            _check_spans(article, items)
        for entry in result.get("stance", []):
            assert len(entry["evidence"]) <= 3 and all(
                i["field"] == "text" for i in entry["evidence"]
            )
            _check_spans(article, entry["evidence"])
    assert "evidence" not in plain[0]["topics"]
    assert any(r.get("stance") for r in results)


def test_explain_needs_a_sparse_part(tmp_path: Path, clf, articles: list[dict]) -> None:
    from naba.errors import NabaError

    task = clf.tasks["topic"]
    hybrid = task.spec.hybrid
    task.spec.hybrid = None
    try:
        with pytest.raises(
            NabaError, match=re.escape("explain: the topic model has no sparse part")
        ):
            clf.predict(articles, tasks=["topic"], explain=2)
    finally:
        task.spec.hybrid = hybrid


def test_explain_in_jsonl_csv_and_parquet(clf, articles: list[dict], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from naba.infer.predict import predict_files

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), "utf-8")
    outs = {ext: tmp_path / f"out.{ext}" for ext in ("jsonl", "csv", "parquet")}
    for out in outs.values():
        predict_files(clf, [source], out, explain=2, batch_size=16)
    records = [json.loads(line) for line in outs["jsonl"].read_text("utf-8").splitlines()]
    expected = clf.predict(articles, explain=2, batch_size=16)
    assert records == expected
    table = pq.read_table(outs["parquet"]).to_pylist()
    for row, record in zip(table, records):
        for label, items in record["topics"]["evidence"].items():
            assert row["topics"]["evidence"][label] == items
        for got, entry in zip(row["stance"] or [], record.get("stance", [])):
            assert got["evidence"] == entry["evidence"]
    with open(outs["csv"], encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for row, record in zip(rows, records):
        for label in clf.labels["topic"]:
            items = record["topics"]["evidence"].get(label, [])
            assert row[f"topics.evidence.{label}"] == "|".join(i["text"] for i in items)


def test_service_explain_field(clf, articles: list[dict]) -> None:
    from fastapi.testclient import TestClient

    from naba.serve.app import ServeSettings, create_app

    with TestClient(create_app(clf, ServeSettings(batch_size=16))) as client:
        got = client.post("/v1/classify", json={"articles": articles[:2], "explain": 2})
        bad = client.post("/v1/classify", json={"articles": articles[:1], "explain": -1})
    assert got.status_code == 200
    assert got.json()["results"] == clf.predict(articles[:2], explain=2, batch_size=16)
    assert bad.status_code == 422


def test_cli_predict_explain(
    clf, trained_model: Path, articles: list[dict], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), "utf-8")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        app, ["predict", str(trained_model), str(source), "-o", str(out), "--explain", "2"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert all(len(v) <= 2 for r in rows for v in r["topics"]["evidence"].values())
    assert np.all([bool(r["topics"]["evidence"]) for r in rows])


def test_evaluation_report_marks_the_evidence_of_its_errors(
    trained_model: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from naba.evaluation.report import evaluate_model

    evaluate_model(trained_model, small_data["topic_test"], tmp_path / "report", task="topic")
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    errors = page.split("<h2>Most confident errors</h2>")[1]
    assert "<td>" in errors and '<mark class="' in errors


def test_a_target_word_in_the_text_counts_only_its_text_occurrences(stance_model) -> None:
    """The target is read, never shown: its words are units of their own, apart from the text's."""
    from naba.infer.evidence import _fields, _parts

    record = {"target": NUCLEAR, "text": "نرفض الطاقة النووية لأنها خطر"}
    words = document_words(stance_model, _fields(stance_model, record))
    parts = _parts(stance_model, words)
    # no unit spans the target and the text
    assert all(len({p[0] for p in u.places}) == 1 for u in parts.units)
    hidden = [u for u in parts.units if u.places[0][0] == "target"]
    shown = [u for u in parts.units if u.places[0][0] == "text"]
    assert {u.key for u in hidden} & {u.key for u in shown}  # the same words, two units

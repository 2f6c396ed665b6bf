"""naba review: rows most likely mislabelled, with suggested labels, evidence and taxonomy rules."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE
from naba.evaluation.review import ReviewOptions, review_records

pytest.importorskip("cleanlab")

FLIPPED = {3: "sports", 17: "health", 31: "culture", 45: "energy", 59: "security"}


def _rows(path: Path, n: int | None = None) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


@pytest.fixture(scope="module")
def noisy() -> list[dict]:
    """90 single-label sample articles, five of them given a wrong topic."""
    rows = [{**r, "topics": r["topics"][:1]} for r in _rows(SAMPLE / "articles.jsonl")][:90]
    for i, label in FLIPPED.items():
        assert rows[i]["topics"] != [label]
        rows[i] = {**rows[i], "topics": [label], "original": rows[i]["topics"][0]}
    return rows


@pytest.fixture(scope="module")
def reviewed(noisy: list[dict]) -> list[dict]:
    return review_records(noisy, "topic", options=ReviewOptions(folds=3, explain=3, all_rows=True))


def test_flipped_rows_rank_first(noisy: list[dict], reviewed: list[dict]) -> None:
    """Chance would put about half of one flipped row in the top ten; review puts most of them
    there."""
    top = [r["id"] for r in reviewed[:10]]
    flipped = {noisy[i]["id"] for i in FLIPPED}
    assert len(flipped & set(top)) >= 4
    scores = [r["score"] for r in reviewed]
    assert scores == sorted(scores, reverse=True) and len(reviewed) == len(noisy)


def test_a_row_suggests_the_original_label_with_evidence(
    noisy: list[dict], reviewed: list[dict]
) -> None:
    by_id = {r["id"]: r for r in reviewed}
    restored = 0
    for i in FLIPPED:
        row, record = by_id[noisy[i]["id"]], noisy[i]
        assert row["given"] == record["topics"]
        restored += row["suggested"] == [record["original"]]
        assert set(row["evidence"]) == set(row["suggested"]) | set(row["given"])
        for items in row["evidence"].values():
            for item in items:
                assert record[item["field"]][item["start"] : item["end"]] == item["text"]
        assert all(e["topic"] in row["given"] for e in row.get("labels_from", []))
    assert restored >= 4
    assert any(r["flagged"] for r in reviewed)


def test_labels_from_names_the_rule(reviewed: list[dict], noisy: list[dict]) -> None:
    """A row keeps the taxonomy rules that gave its given labels (none for a flipped label)."""
    by_id = {r["id"]: r for r in reviewed}
    kept = next(r for i, r in enumerate(noisy) if i not in FLIPPED and r.get("labels_from"))
    rules = [e for e in kept["labels_from"] if e["topic"] in kept["topics"]]
    assert by_id[kept["id"]]["labels_from"] == rules
    assert "labels_from" not in by_id[noisy[3]["id"]]  # sports was given by the test, not a rule


def test_stance_review(tmp_path: Path) -> None:
    rows = _rows(SAMPLE / "stance" / "train.jsonl", 60)
    out = review_records(rows, "stance", options=ReviewOptions(folds=3, explain=2, all_rows=True))
    assert len(out) == len(rows)
    by_id = {r["id"]: r for r in rows}
    for row in out:
        assert row["target"] == by_id[row["id"]]["target"]
        assert row["given"] == [by_id[row["id"]]["stance"]]
        for items in row["evidence"].values():
            assert all(item["field"] == "text" for item in items)


def test_multi_label_review_runs_on_the_sample_taxonomy_labels() -> None:
    rows = _rows(SAMPLE / "topic" / "train.jsonl", 80)
    out = review_records(rows, "topic", options=ReviewOptions(folds=3, explain=0, all_rows=True))
    assert len(out) == len(rows) and all(0 <= r["score"] <= 1 for r in out)
    assert any(len(r["given"]) > 1 for r in out)
    assert all("evidence" not in r for r in out)


def test_too_many_folds_is_a_clear_error() -> None:
    from naba.errors import InputError

    rows = _rows(SAMPLE / "stance" / "train.jsonl", 4)
    with pytest.raises(
        InputError, match=re.escape("folds: expected 2 to 4 (the number of rows), found 5")
    ):
        review_records(rows, "stance", options=ReviewOptions(folds=5))


def test_missing_cleanlab_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from naba.evaluation.review import MissingExtra

    monkeypatch.setitem(sys.modules, "cleanlab", None)
    with pytest.raises(MissingExtra, match=re.escape("pip install 'naba[review]'")):
        review_records(_rows(SAMPLE / "stance" / "train.jsonl", 10), "stance")


def test_cli_review_writes_rows_and_report(noisy: list[dict], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    data = tmp_path / "noisy.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in noisy), "utf-8")
    out, report = tmp_path / "review.jsonl", tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "review",
            str(data),
            "--task",
            "topic",
            "-o",
            str(out),
            "--report",
            str(report),
            "--folds",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert rows and all(r["flagged"] for r in rows)
    assert f"{len(rows)} flagged as likely mislabelled" in result.output
    page = (report / "review.html").read_text("utf-8")
    assert 'dir="rtl"' in page and '<mark class="for">' in page and rows[0]["id"] in page


def test_cli_review_bad_output_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    result = CliRunner().invoke(
        app,
        [
            "review",
            str(SAMPLE / "stance" / "train.jsonl"),
            "--task",
            "stance",
            "-o",
            str(tmp_path / "x.csv"),
        ],
    )
    assert result.exit_code == 2
    assert "expected a .jsonl output" in result.output


def test_review_with_a_model_averages_its_scores(
    trained_model: Path, small_data: dict[str, Path]
) -> None:
    from naba.evaluation.review import out_of_fold
    from naba.manifest import read_manifest

    rows = _rows(small_data["topic_train"], 40)
    spec = read_manifest(trained_model).tasks["topic"]
    options = ReviewOptions(folds=3, explain=0, all_rows=True, device="cpu")
    out = review_records(rows, "topic", model_dir=trained_model, options=options)
    alone, _, _ = out_of_fold(rows, "topic", spec.labels, spec.multi_label, options)
    assert len(out) == len(rows)
    assert set(out[0]["probabilities"]) == set(spec.labels)
    by_id = {r["id"]: r for r in out}
    moved = [
        abs(by_id[r["id"]]["probabilities"][spec.labels[0]] - alone[i, 0])
        for i, r in enumerate(rows)
    ]
    assert max(moved) > 1e-3  # the model's scores are in the average


def test_review_refuses_labels_the_model_lacks(trained_model: Path) -> None:
    from naba.errors import InputError

    rows = [{**r, "topics": ["weather"]} for r in _rows(SAMPLE / "topic" / "train.jsonl", 6)]
    with pytest.raises(
        InputError, match=re.escape("labels ['weather'] are not among the model's labels")
    ):
        review_records(rows, "topic", model_dir=trained_model, options=ReviewOptions(folds=2))

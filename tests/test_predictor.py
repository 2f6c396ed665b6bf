"""naba.Predictor: the batch callable that Ray Data, Spark and Dask run; it must
label as ``naba predict`` does."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE
from naba.errors import NabaError


def _rows() -> list[dict]:
    """Topic articles (id, title, text; no target) and stance articles (id, text, target), mixed."""
    topic = [
        json.loads(line)
        for line in (SAMPLE / "topic" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ][:8]
    stance = [
        json.loads(line)
        for line in (SAMPLE / "stance" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    ][:6]
    rows = [{"id": r["id"], "title": r.get("title"), "text": r["text"]} for r in topic]
    rows += [{"id": r["id"], "text": r["text"], "target": r["target"]} for r in stance]
    return [rows[i] for i in (0, 8, 1, 9, 2, 3, 10, 4, 11, 5, 12, 6, 13, 7)]


@pytest.fixture(scope="module")
def predicted(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What ``naba predict`` writes for :func:`_rows`, by id."""
    from typer.testing import CliRunner

    from naba.cli import app

    d = tmp_path_factory.mktemp("predictor")
    source = d / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if v is not None}, ensure_ascii=False) + "\n"
            for r in _rows()
        ),
        encoding="utf-8",
    )
    out = d / "out.jsonl"
    result = CliRunner().invoke(
        app, ["predict", str(trained_model), str(source), "-o", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def _missing(cell) -> bool:
    """None, NaN or pandas' NA."""
    import pandas as pd

    return cell is None or bool(pd.isna(cell))


def assert_same_as_records(row: dict, record: dict) -> None:
    """One Predictor row (a mapping of flat cells) against one ``naba predict`` record."""
    assert row["topics.labels"] == record["topics"]["labels"]
    for label, p in record["topics"]["scores"].items():
        assert row[f"topics.scores.{label}"] == pytest.approx(p, abs=2e-6)
    if "stance" in record:
        (stance,) = record["stance"]
        assert (row["stance.0.target"], row["stance.0.label"]) == (
            stance["target"],
            stance["label"],
        )
        for label, p in stance["scores"].items():
            assert row[f"stance.0.scores.{label}"] == pytest.approx(p, abs=2e-6)
    else:
        assert _missing(row["stance.0.label"]) and _missing(row["stance.0.scores.favor"])


def test_a_dataframe_gets_the_labels_and_scores_of_naba_predict(
    trained_model: Path, predicted: list[dict]
) -> None:
    import pandas as pd

    from naba.infer.predictor import Predictor

    frame = pd.DataFrame(_rows(), index=range(100, 114))
    out = Predictor(trained_model, batch_size=4)(frame)
    assert list(out.index) == list(frame.index)
    assert list(out.columns[:4]) == ["id", "title", "text", "target"]
    assert out["id"].tolist() == [r["id"] for r in predicted]
    assert out["topics.scores.economy"].dtype == np.float64
    assert str(out["topics.labels"].dtype) == "list<item: string>[pyarrow]"
    assert out["error"].isna().all()
    for row, record in zip(out.to_dict("records"), predicted):
        assert_same_as_records(row, record)


def test_a_pyarrow_table_gets_typed_columns_even_where_a_batch_has_no_target(
    trained_model: Path, predicted: list[dict]
) -> None:
    import pyarrow as pa

    from naba.infer.predictor import Predictor

    topic_only = [r for r in _rows() if "target" not in r]
    table = pa.Table.from_pylist(topic_only)
    out = Predictor(trained_model)(table)
    assert out.column_names[:3] == ["id", "title", "text"]
    assert out.schema.field("topics.labels").type == pa.list_(pa.string())
    assert out.schema.field("topics.scores.economy").type == pa.float64()
    assert out.schema.field("stance.0.label").type == pa.string()  # all null, still typed
    by_id = {r["id"]: r for r in predicted}
    for row in out.to_pylist():
        assert_same_as_records(row, by_id[row["id"]])


def test_predictor_pickles_without_its_model_and_loads_it_once_per_process(
    trained_model: Path, predicted: list[dict]
) -> None:
    from naba.infer.predictor import Predictor

    predictor = Predictor(trained_model, tasks="topic")
    rows = _rows()[:3]
    batch = {"text": [r["text"] for r in rows], "title": [r.get("title") for r in rows]}
    first = predictor(batch)
    blob = pickle.dumps(predictor)
    assert len(blob) < 2000  # the settings, not the weights
    copy = pickle.loads(blob)
    assert copy._classifier is None
    again = copy(batch)
    assert copy.classifier is predictor.classifier  # the same process: the same loaded model
    assert [list(x) for x in again["topics.labels"]] == [list(x) for x in first["topics.labels"]]
    assert "stance.0.label" not in again  # tasks="topic"
    for row_labels, record in zip(again["topics.labels"], predicted[:3]):
        assert row_labels == record["topics"]["labels"]


def test_a_dict_of_numpy_columns_keeps_every_row_and_says_why_one_has_no_prediction(
    trained_model: Path,
) -> None:
    from naba.infer.predictor import Predictor

    batch = {
        "doc": np.array(["a", "b", "c", "d"]),
        "text": np.array(["ارتفعت أسعار النفط", "   ", None, "فاز المنتخب"], dtype=object),
    }
    out = Predictor(trained_model, targets=["الطاقة النووية"])(batch)
    assert out["doc"] is batch["doc"]
    assert out["error"].tolist() == [
        None,
        "text: expected a non-empty string, found only whitespace",
        "text: expected a non-empty string, found null",
        None,
    ]
    assert out["topics.labels"][1] is None and np.isnan(out["topics.scores.economy"][2])
    assert out["stance.0.target"].tolist() == ["الطاقة النووية", None, None, "الطاقة النووية"]
    assert out["topics.labels"].dtype == object and isinstance(out["topics.labels"][0], list)


def test_column_names_come_from_columns_config(trained_model: Path) -> None:
    from naba.config import ColumnsConfig
    from naba.infer.predictor import Predictor

    predictor = Predictor(
        trained_model, columns=ColumnsConfig(text_column="body", target_column="claim")
    )
    out = predictor({"body": ["لقاح جديد"], "claim": ["الطاقة النووية"]})
    assert out["stance.0.target"].tolist() == ["الطاقة النووية"]
    assert list(predictor.output_columns())[:2] == ["topics.labels", "topics.scores.culture"]
    assert predictor.output_columns()["stance.0.label"] == "string"


@pytest.mark.parametrize(
    ("build", "batch", "message"),
    [
        (
            {},
            {"body": ["x"]},
            "batch: no 'text' column (it has body); name the text column with "
            "columns=ColumnsConfig(text_column=...)",
        ),
        (
            {},
            ["x"],
            "batch: expected a pandas DataFrame, a pyarrow Table or a dict of columns, found list",
        ),
        ({}, {"text": ["x", "y"], "id": ["1"]}, "batch: its columns have different lengths"),
    ],
)
def test_bad_batches_are_named(trained_model: Path, build: dict, batch, message: str) -> None:
    from naba.infer.predictor import Predictor

    with pytest.raises(NabaError, match=re.escape(message)):
        Predictor(trained_model, **build)(batch)


def test_bad_settings_fail_on_the_driver_before_anything_loads() -> None:
    from naba.infer.predictor import Predictor

    with pytest.raises(NabaError, match=re.escape("precision: expected fp32, bf16, int8 or auto")):
        Predictor("nowhere", precision="fp16")
    with pytest.raises(NabaError, match=re.escape("targets and all_targets: pass one of them")):
        Predictor("nowhere", targets=["x"], all_targets=True)


def test_runtime_goes_to_the_loader_that_offers_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from naba.infer import predictor as module
    from naba.infer.classifier import Classifier

    seen = []

    def load_with_runtime(model, precision="fp32", *, runtime="torch", **options):
        seen.append((precision, runtime, options["device"]))
        return "loaded"

    monkeypatch.setattr(module, "_LOADED", {})
    monkeypatch.setattr(Classifier, "load", staticmethod(load_with_runtime))
    assert module.Predictor("m", runtime="onnx", precision="int8", device="cpu").classifier == (
        "loaded"
    )
    assert seen == [("int8", "onnx", "cpu")]

    def load_torch_only(model, precision="fp32", **options):
        return "loaded"

    monkeypatch.setattr(Classifier, "load", staticmethod(load_torch_only))
    with pytest.raises(
        NabaError, match=re.escape("runtime 'onnx': this naba runs models with torch only")
    ):
        module.Predictor("m2", runtime="onnx").classifier  # noqa: B018


def test_naba_exports_predictor_lazily() -> None:
    import naba
    from naba.infer.predictor import Predictor

    assert naba.Predictor is Predictor

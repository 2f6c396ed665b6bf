"""Ray Data and Spark: ``naba predict``'s labels on real local engines; a missing one is one line.

The engine tests are slow (each starts its engine: a Ray cluster of 2 CPUs, a
Spark ``local[2]`` JVM) and need the extras (``pip install 'naba[ray,spark]'``);
without an extra its test is skipped.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from conftest import SAMPLE
from naba.integrations import MissingExtraError
from test_predictor import assert_same_as_records


def test_a_missing_ray_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from naba.integrations import ray as adapter

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(
        MissingExtraError, match=re.escape("ray.data cannot be imported: pip install 'naba[ray]'")
    ):
        adapter.read_articles("articles/")
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'naba[ray]'")):
        adapter.predict_dataset(object(), "model")


def test_predict_dataset_maps_predictor_batches_and_warns_when_actors_take_every_cpu(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import types

    from naba.infer.predictor import Predictor
    from naba.integrations import ray as adapter

    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: True
    fake.cluster_resources = lambda: {"CPU": 2.0}
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setitem(sys.modules, "ray.data", types.ModuleType("ray.data"))

    class Dataset:
        def map_batches(self, fn, **kwargs):
            self.fn, self.kwargs = fn, kwargs
            return "mapped"

    ds = Dataset()
    with caplog.at_level("WARNING", logger="naba.integrations.ray"):
        assert adapter.predict_dataset(ds, "m", concurrency=2, num_cpus=1, tasks="topic") == (
            "mapped"
        )
    assert ds.fn is Predictor
    assert ds.kwargs == {
        "fn_constructor_kwargs": {"model": "m", "tasks": "topic"},
        "batch_format": "pyarrow",
        "batch_size": 256,
        "concurrency": 2,
        "num_cpus": 1,
    }
    assert "2 actors x 1 CPUs take every CPU of the Ray cluster (2)" in caplog.text
    caplog.clear()
    adapter.predict_dataset(Dataset(), "m", concurrency=1, num_cpus=1)
    assert not caplog.text


def test_a_missing_pyspark_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from naba.integrations import spark as adapter

    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(
        MissingExtraError, match=re.escape("pyspark cannot be imported: pip install 'naba[spark]'")
    ):
        adapter.predict_udf("model", task="topic")


def test_predict_udf_refuses_what_its_columns_decide() -> None:
    from naba.errors import NabaError
    from naba.integrations.spark import predict_udf

    with pytest.raises(
        NabaError, match=re.escape("task: expected topic or stance, found 'topics'")
    ):
        predict_udf("model", task="topics")
    with pytest.raises(
        NabaError, match=re.escape("predict_udf: targets: the task and the columns")
    ):
        predict_udf("model", task="stance", targets=["x"])


def _articles() -> list[dict]:
    """30 articles: topic test ones (title, no target) and stance test ones (a target each)."""
    read = lambda path: [  # noqa: E731
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
    ]
    topic = [
        {"id": r["id"], "title": r.get("title"), "text": r["text"], "target": None}
        for r in read(SAMPLE / "topic" / "test.jsonl")[:16]
    ]
    stance = [
        {"id": r["id"], "title": None, "text": r["text"], "target": r["target"]}
        for r in read(SAMPLE / "stance" / "test.jsonl")[:14]
    ]
    return [row for pair in zip(topic, stance) for row in pair] + topic[14:]


@pytest.fixture(scope="module")
def parquet_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The articles as a Parquet dataset: a directory of two files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path_factory.mktemp("engines") / "articles"
    folder.mkdir()
    rows = _articles()
    schema = pa.schema([(name, pa.string()) for name in ("id", "title", "text", "target")])
    pq.write_table(pa.Table.from_pylist(rows[:17], schema), folder / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist(rows[17:], schema), folder / "part-1.parquet")
    return folder


@pytest.fixture(scope="module")
def predicted(trained_model: Path, parquet_input: Path) -> dict[str, dict]:
    """``naba predict`` over the same Parquet files: its records by id."""
    from typer.testing import CliRunner

    from naba.cli import app

    out = parquet_input.parent / "naba-predict.jsonl"
    parts = sorted(str(p) for p in parquet_input.glob("*.parquet"))
    result = CliRunner().invoke(
        app, ["predict", str(trained_model), *parts, "-o", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 30 and sum("stance" in r for r in records) == 14
    return {r["id"]: r for r in records}


@pytest.mark.slow
def test_ray_data_labels_a_parquet_dataset_as_naba_predict_does(
    trained_model: Path, parquet_input: Path, predicted: dict[str, dict], tmp_path: Path
) -> None:
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'naba[ray]'")
    import pyarrow.parquet as pq

    from naba.integrations.ray import predict_parquet

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20)
    try:
        predict_parquet(
            trained_model,
            parquet_input,
            tmp_path / "predictions",
            # one actor on one of the 2 CPUs: Ray's read and write tasks need the other
            concurrency=1,
            num_cpus=1,
            batch_size=8,
            precision="fp32",
            device="cpu",
        )
    finally:
        ray.shutdown()
    table = pq.read_table(tmp_path / "predictions")
    assert table.schema.field("topics.labels").type.value_type == "string"
    rows = table.to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(predicted)
    for row in rows:
        assert row["error"] is None
        assert_same_as_records(row, predicted[row["id"]])


@pytest.mark.slow
def test_spark_udfs_label_as_naba_predict_does(
    trained_model: Path,
    parquet_input: Path,
    predicted: dict[str, dict],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pyspark", reason="needs the spark extra: pip install 'naba[spark]'")
    from pyspark.sql import SparkSession

    from naba.integrations.spark import predict_udf

    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("naba-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    try:
        topics = predict_udf(trained_model, task="topic", batch_size=8, device="cpu")
        stance = predict_udf(trained_model, task="stance", batch_size=8, device="cpu")
        df = spark.read.parquet(str(parquet_input))
        rows = (
            df.withColumn("topics", topics("title", "text"))
            .withColumn("stance", stance("text", "target"))
            .select("id", "topics", "stance")
            .collect()
        )
    finally:
        spark.stop()
    assert sorted(r["id"] for r in rows) == sorted(predicted)
    for row in rows:
        record = predicted[row["id"]]
        assert list(row["topics"]) == record["topics"]["labels"]
        assert row["stance"] == (record["stance"][0]["label"] if "stance" in record else None)

"""Spark: a column function that labels articles, built on Spark's ``predict_batch_udf``.

``pyspark.ml.functions.predict_batch_udf`` is Spark's pattern for model
inference: the model is loaded once per Python worker and called on Arrow
batches of rows. naba's model is a :class:`~naba.infer.predictor.Predictor`::

    from naba.integrations.spark import predict_udf

    topics = predict_udf("/shared/models/ant", task="topic")
    stance = predict_udf("/shared/models/ant", task="stance")
    df = spark.read.parquet("hdfs:///articles")       # id, title, text, target
    df = df.withColumn("topics", topics("title", "text"))    # array<string>
    df = df.withColumn("stance", stance("text", "target"))   # string

Where an article has no title, pass ``F.lit(None).cast("string")``; to score
every article toward one target, ``F.lit("target")``. A row that cannot be
classified (no text, an empty or invisible one) gets no labels: an empty
array (topic) or null (stance), as does a stance row without a target. For
scores and the reason a row was skipped, use
:class:`~naba.infer.predictor.Predictor` itself (Ray Data: :mod:`naba.integrations.ray`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from naba.errors import NabaError
from naba.integrations import require


def predict_udf(
    model: str | Path,
    task: str = "topic",
    *,
    batch_size: int = 64,
    **predictor_options: Any,
) -> Callable[[Any, Any], Any]:
    """A function of two columns that makes the column of ``task``'s labels.

    Args:
        model: The model directory, as every Spark executor sees it.
        task: ``topic``: the function takes ``(title, text)`` and gives the chosen
            labels (``array<string>``); ``stance``: ``(text, target)`` and the label
            (``string``).
        batch_size: Rows per call of the model (Spark's Arrow batches are cut to this).
        predictor_options: :class:`~naba.infer.predictor.Predictor`'s keyword arguments
            (``precision``, ``device``, ``runtime``, ``threads``, ``threshold``, ...).

    Raises:
        NabaError: an unknown task, or ``tasks``/``targets``/``all_targets`` among the
            options (the task and the target column say that here).
        MissingExtraError: pyspark is not installed.
    """
    if task not in ("topic", "stance"):
        raise NabaError(f"task: expected topic or stance, found {task!r}")
    fixed = sorted({"tasks", "targets", "all_targets"} & set(predictor_options))
    if fixed:
        raise NabaError(
            f"predict_udf: {', '.join(fixed)}: the task and the columns passed to the function "
            "choose what is scored (a fixed target: F.lit('target'))"
        )
    require("pyspark", "spark")
    from pyspark.ml import functions
    from pyspark.sql.types import ArrayType, StringType, StructField, StructType

    from naba.infer.predictor import Predictor

    predictor = Predictor(model, tasks=task, **predictor_options)
    if task == "topic":
        # predict_batch_udf's array results must be 2-D (one length for every row): the labels
        # of each row travel as a row of a struct instead, which may have any length.
        udf = functions.predict_batch_udf(
            lambda: _topic_labels(predictor),
            return_type=StructType([StructField("labels", ArrayType(StringType()))]),
            batch_size=batch_size,
        )
        return lambda title, text: udf(title, text).getField("labels")
    udf = functions.predict_batch_udf(
        lambda: _stance_label(predictor), return_type=StringType(), batch_size=batch_size
    )
    return lambda text, target: udf(text, target)


def _topic_labels(predictor: Any) -> Callable[[Any, Any], list[dict[str, Any]]]:
    import numpy as np

    def predict(title: Any, text: Any) -> list[dict[str, Any]]:
        out = predictor({"title": title, "text": text})
        return [
            {"labels": np.array(labels if labels is not None else [], dtype=object)}
            for labels in out["topics.labels"]
        ]

    return predict


def _stance_label(predictor: Any) -> Callable[[Any, Any], Any]:
    def predict(text: Any, target: Any) -> Any:
        return predictor({"text": text, "target": target})["stance.0.label"]

    return predict

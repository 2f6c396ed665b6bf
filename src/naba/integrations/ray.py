"""Ray Data: classify a dataset with a pool of actors, each loading the model once.

The pattern is Ray's own for batch inference, a callable class in
``map_batches``; naba's class is :class:`~naba.infer.predictor.Predictor`::

    import ray
    from naba import Predictor

    ds = ray.data.read_parquet("s3://bucket/articles/")       # id, title, text[, target]
    ds = ds.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": "/shared/models/ant", "tasks": "topic"},
        batch_format="pyarrow",   # typed columns in, typed columns out
        batch_size=256,           # rows per call; the model batches inside by tokens
        concurrency=4,            # actors, each with its own copy of the model
        num_cpus=4,               # cores per actor (torch uses them as threads)
        # num_gpus=1,             # one GPU per actor instead
    )
    ds.write_parquet("s3://bucket/predictions/")

:func:`predict_dataset` and :func:`predict_parquet` are those lines with
naba's defaults. Rows carry their own columns (keep an ``id``): Ray writes
its parts in the order blocks finish, not in input order. Leave the cluster
a CPU beyond the actors' (``concurrency x num_cpus``): Ray's read and write
tasks need one, and actors that hold every CPU make the job wait for ever.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from naba.integrations import require

logger = logging.getLogger(__name__)


def read_articles(paths: str | Path | list[str | Path], **read_options: Any) -> Any:
    """A Ray dataset of articles from Parquet files or directories (``ray.data.read_parquet``).

    Raises:
        MissingExtraError: Ray Data is not installed.
    """
    require("ray.data", "ray")
    import ray.data

    sources = [str(p) for p in paths] if isinstance(paths, list) else str(paths)
    return ray.data.read_parquet(sources, **read_options)


def predict_dataset(
    dataset: Any,
    model: str | Path,
    *,
    concurrency: int = 1,
    batch_size: int = 256,
    num_cpus: float | None = None,
    num_gpus: float | None = None,
    **predictor_options: Any,
) -> Any:
    """``dataset`` with prediction columns: ``map_batches(Predictor, ...)`` over pyarrow batches.

    Args:
        dataset: A Ray dataset with a ``text`` column (and ``id``, ``title``, ``target``).
        model: The model directory, as every Ray worker sees it.
        concurrency: Actors (each loads the model once).
        batch_size: Rows per call (the model cuts each call into forward passes by tokens).
        num_cpus, num_gpus: Resources of each actor.
        predictor_options: :class:`~naba.infer.predictor.Predictor`'s keyword arguments
            (``tasks``, ``targets``, ``precision``, ``device``, ``runtime``, ...).

    Raises:
        MissingExtraError: Ray Data is not installed.
    """
    require("ray.data", "ray")
    import ray

    from naba.infer.predictor import Predictor

    cpus = ray.cluster_resources().get("CPU", 0) if ray.is_initialized() else 0
    if num_cpus and cpus and concurrency * num_cpus >= cpus:
        logger.warning(
            "warning: %d actors x %g CPUs take every CPU of the Ray cluster (%g): its read and "
            "write tasks need one more, or the job waits until the cluster grows",
            concurrency,
            num_cpus,
            cpus,
        )
    resources = {
        key: value
        for key, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus))
        if value is not None
    }
    return dataset.map_batches(
        Predictor,
        fn_constructor_kwargs={"model": str(model), **predictor_options},
        batch_format="pyarrow",
        batch_size=batch_size,
        concurrency=concurrency,
        **resources,
    )


def predict_parquet(
    model: str | Path, source: str | Path | list[str | Path], output: str | Path, **options: Any
) -> None:
    """Classify Parquet articles into a Parquet directory ``output``: :func:`read_articles`,
    :func:`predict_dataset` (``options`` are its keyword arguments), ``write_parquet``.

    Raises:
        MissingExtraError: Ray Data is not installed.
    """
    predict_dataset(read_articles(source), model, **options).write_parquet(str(output))

"""Prediction inside the engines users already run: :class:`Predictor`, a picklable callable over
column batches.

Ray Data (``ds.map_batches(Predictor, fn_constructor_kwargs=...)``), Spark
(``predict_batch_udf``: :func:`naba.integrations.spark.predict_udf`) and Dask
(``map_partitions``) all take the same shape of thing: an object built once
on the driver, shipped to every worker, that loads its model there on the
first batch and then maps batches of rows to batches of rows. A
:class:`Predictor` holds only its settings when pickled; the model is loaded
once per process (several unpickled copies in one worker share it).

A batch is a pandas DataFrame, a pyarrow Table or a dict of columns (lists
or numpy arrays) with a ``text`` column and optional ``title``, ``target`` and ``id`` columns
(other names through ``columns``). It comes back with every column it had
and the prediction record of each row flattened as ``naba predict``
flattens it into CSV (:func:`naba.infer.schema.csv_columns`), typed:
``topics.labels`` a list of strings, ``*.scores.LABEL`` floats,
``stance.I.target`` and ``stance.I.label`` strings; null where the record
has no value (NaN for scores in pandas and numpy). A row whose text cannot be classified (missing,
empty, invisible only) keeps its place with null predictions and the reason
in ``error``; ``error`` is null on every other row.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from naba.config import ColumnsConfig
from naba.data.records import FieldError, required_text
from naba.errors import NabaError
from naba.infer.schema import csv_columns, csv_row, stance_slots

ERROR_COLUMN = "error"
PRECISIONS = ("fp32", "bf16", "int8", "auto")

_LOADED: dict[tuple, Any] = {}
_LOADING = threading.Lock()


def load_once(model: str | Path, precision: str, **options: Any) -> Any:
    """The :class:`~naba.infer.classifier.Classifier` for these settings, loaded on the first call
    in this process.

    Every later call with the same settings returns the same object: an engine
    that unpickles the predictor for each task or partition still loads the
    model once per worker process. ``runtime`` is passed to
    :meth:`Classifier.load` only when it is not ``torch`` (the default), and
    refused when this naba's loader has no such choice.
    """
    from naba.infer.classifier import Classifier

    runtime = options.pop("runtime", "torch")
    if runtime != "torch":
        if "runtime" not in inspect.signature(Classifier.load).parameters:
            raise NabaError(f"runtime {runtime!r}: this naba runs models with torch only")
        options["runtime"] = runtime
    key = (str(Path(model).resolve()), precision, tuple(sorted(options.items())))
    with _LOADING:
        if key not in _LOADED:
            _LOADED[key] = Classifier.load(model, precision, **options)
        return _LOADED[key]


class Predictor:
    """Maps a batch of articles to the same batch with typed prediction columns; pickles without its
    model.

    Args:
        model: The model directory (written by ``naba train``), as every worker sees it.
        tasks: The tasks to run (``"topic"``, ``["topic", "stance"]``, ...); default: every task of
            the model.
        targets: Stance targets to score every row against; default: each row's own ``target``
            (``stance.0.*``), none where it has none.
        all_targets: Score every row against every target the model was trained on.
        precision, device, max_length, threads, allow_pickle: As in :meth:`Classifier.load`.
        runtime: What runs the encoders: ``torch``, or another runtime :meth:`Classifier.load`
            offers.
        batch_size: Forward-pass size in full windows, as in ``naba predict``.
        threshold: Overrides every tuned topic threshold.
        columns: Where ``id``, ``text``, ``title`` and ``target`` are in the batch.

    Example:
        >>> predict = Predictor("runs/demo/model", tasks="topic")  # doctest: +SKIP
        >>> predict({"text": ["ارتفعت أسعار النفط"]})["topics.labels"]  # doctest: +SKIP
        array([list(['economy', 'energy'])], dtype=object)

    Raises:
        NabaError: an unknown precision, or both ``targets`` and ``all_targets``.
    """

    def __init__(
        self,
        model: str | Path,
        tasks: Sequence[str] | str | None = None,
        targets: Sequence[str] | None = None,
        *,
        all_targets: bool = False,
        precision: str = "fp32",
        device: str = "auto",
        runtime: str = "torch",
        batch_size: int = 32,
        threshold: float | None = None,
        max_length: int | None = None,
        threads: int | None = None,
        allow_pickle: bool = False,
        columns: ColumnsConfig | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise NabaError(f"precision: expected fp32, bf16, int8 or auto, found {precision!r}")
        if targets and all_targets:
            raise NabaError(
                "targets and all_targets: pass one of them "
                "(all_targets scores the targets the model was trained on)"
            )
        self.model = str(model)
        self.tasks = tasks if tasks is None or isinstance(tasks, str) else list(tasks)
        self.targets = list(targets) if targets else None
        self.all_targets = all_targets
        self.precision, self.device, self.runtime = precision, device, runtime
        self.batch_size, self.threshold = batch_size, threshold
        self.max_length, self.threads, self.allow_pickle = max_length, threads, allow_pickle
        self.columns = columns or ColumnsConfig()
        self._classifier: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_classifier": None}  # the model loads again where it lands

    @property
    def classifier(self) -> Any:
        """The model, loaded on first use (once per process for these settings)."""
        if self._classifier is None:
            self._classifier = load_once(
                self.model,
                self.precision,
                device=self.device,
                runtime=self.runtime,
                threads=self.threads,
                max_length=self.max_length,
                allow_pickle=self.allow_pickle,
            )
        return self._classifier

    def output_columns(self) -> dict[str, str]:
        """The columns a batch gains, in order, with their types: ``list<string>``, ``double`` or
        ``string``."""
        clf = self.classifier
        tasks = clf.selected_tasks(self.tasks)
        trained = clf.tasks["stance"].spec.default_targets if "stance" in clf.tasks else []
        names = csv_columns(
            tasks, clf.labels, stance_slots(self.targets, self.all_targets, trained)
        )[1:]
        kinds = {
            name: "list<string>"
            if name == "topics.labels"
            else "double"
            if ".scores." in name
            else "string"
            for name in names
        }
        return {**kinds, ERROR_COLUMN: "string"}

    def __call__(self, batch: Any) -> Any:
        """``batch`` (a pandas DataFrame, a pyarrow Table or a dict of columns) with the prediction
        columns added.

        The added columns have the same types in every batch (a batch where no
        row has a target still has typed, all-null stance columns), so the
        parts an engine writes make one Parquet dataset.

        Raises:
            NabaError: not a DataFrame, Table or dict of columns; no text column; columns of
                different lengths.
        """
        kind = _batch_kind(batch)
        names = list(batch.column_names if kind == "arrow" else batch)
        cols = self.columns
        if cols.text_column not in names:
            raise NabaError(
                f"batch: no {cols.text_column!r} column (it has "
                f"{', '.join(map(str, names)) or 'none'}); "
                "name the text column with columns=ColumnsConfig(text_column=...)"
            )
        n = len(batch[cols.text_column])
        if kind == "dict" and any(len(values) != n for values in batch.values()):
            raise NabaError("batch: its columns have different lengths")
        records, errors = self._records(batch, names, n)
        kept = [i for i in range(n) if errors[i] is None]
        clf = self.classifier
        prepared = clf.prepare(
            [records[i] for i in kept],
            self.targets,
            tasks=self.tasks,
            all_targets=self.all_targets,
        )
        results = clf.classify(prepared, batch_size=self.batch_size, threshold=self.threshold)
        rows: list[dict[str, Any]] = [{} for _ in range(n)]
        for i, result in zip(kept, results):
            rows[i] = csv_row(result)
            if "topics" in result:
                rows[i]["topics.labels"] = list(result["topics"]["labels"])
        for i in range(n):
            rows[i][ERROR_COLUMN] = errors[i]
        types = self.output_columns()
        added = {name: [row.get(name) for row in rows] for name in types}
        return _with_columns(batch, kind, added, types)

    def _records(
        self, batch: Any, names: list[str], n: int
    ) -> tuple[list[dict[str, Any]], list[str | None]]:
        """The batch's rows as records ``{text, title?, target?}``, and each row's reason it cannot
        be classified."""
        cols = self.columns
        texts = _values(batch, names, cols.text_column, n)
        titles = _values(batch, names, cols.title_column, n)
        targets = _values(batch, names, cols.target_column, n)
        records: list[dict[str, Any]] = []
        errors: list[str | None] = []
        for text, title, target in zip(texts, titles, targets):
            record: dict[str, Any] = {"text": text}
            try:
                if text is None:
                    raise FieldError("text", "expected a non-empty string, found null")
                required_text(record, "text")
            except FieldError as exc:
                errors.append(f"{cols.text_column}: {exc.message}")
            else:
                errors.append(None)
            if isinstance(title, str) and title:
                record["title"] = title
            if isinstance(target, str) and target:
                record["target"] = target
            records.append(record)
        return records, errors


def _batch_kind(batch: Any) -> str:
    """``pandas``, ``arrow`` or ``dict``, read from the type's name (neither library is imported for
    a dict)."""
    name = type(batch).__name__
    if name == "DataFrame" and hasattr(batch, "columns"):
        return "pandas"
    if name == "Table" and hasattr(batch, "column_names"):
        return "arrow"
    if isinstance(batch, dict):
        return "dict"
    raise NabaError(
        "batch: expected a pandas DataFrame, a pyarrow Table or a dict of columns, "
        f"found {type(batch).__name__}"
    )


def _values(batch: Any, names: list[str], column: str, n: int) -> list[Any]:
    """A column's cells as Python values (numpy strings as ``str``, missing values as None)."""
    if column not in names:
        return [None] * n
    values = batch[column]
    cells = (
        values.to_pylist()
        if hasattr(values, "to_pylist")
        else values.tolist()
        if hasattr(values, "tolist")
        else list(values)
    )
    return [
        None
        if cell is None or (isinstance(cell, float) and math.isnan(cell)) or _is_na(cell)
        else str(cell)
        if isinstance(cell, np.str_)
        else cell
        for cell in cells
    ]


def _is_na(cell: Any) -> bool:
    return type(cell).__name__ == "NAType"


def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "list<string>": pa.list_(pa.string()),
        "double": pa.float64(),
        "string": pa.string(),
    }[kind]


def _with_columns(batch: Any, kind: str, added: dict[str, list[Any]], types: dict[str, str]) -> Any:
    """``batch`` with ``added`` (replacing columns of the same names), each column typed by
    ``types``.

    pandas: scores float64 (NaN where missing), labels and strings Arrow-backed
    (``pd.ArrowDtype``: lists stay lists and an all-null column keeps its
    type); pyarrow: typed arrays; a dict: numpy arrays (float64, objects).
    """
    if kind == "arrow":
        import pyarrow as pa

        table = batch.drop_columns([c for c in added if c in batch.column_names])
        for name, values in added.items():
            table = table.append_column(name, pa.array(values, type=_arrow_type(types[name])))
        return table
    if kind == "pandas":
        import pandas as pd

        columns = {
            name: pd.Series(
                np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                if types[name] == "double"
                else pd.array(values, dtype=pd.ArrowDtype(_arrow_type(types[name]))),
                index=batch.index,
            )
            for name, values in added.items()
        }
        kept = batch.drop(columns=[c for c in added if c in batch.columns])
        return pd.concat([kept, pd.DataFrame(columns, index=batch.index)], axis=1)
    return {**batch, **{name: _column(values, types[name]) for name, values in added.items()}}


def _column(values: list[Any], kind: str) -> np.ndarray:
    """One added column as a numpy array: float64 (NaN where missing) for scores, objects
    otherwise."""
    if kind == "double":
        return np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    out = np.empty(
        len(values), dtype=object
    )  # elementwise: equal-length label lists must not become 2-D
    for i, value in enumerate(values):
        out[i] = value
    return out

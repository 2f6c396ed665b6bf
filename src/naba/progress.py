"""Progress bars for the long steps of the data and encoder commands: a total where one is cheap to
know, and an ETA.

``naba predict`` and ``naba evaluate`` count articles, ``naba train`` and
``naba pretrain`` count optimizer steps (``Trainer``'s bar); the data commands
count rows, their total taken from the files before reading them: lines of
JSONL, CSV, TSV and ``.txt`` (gzip too; a CSV cell holding a newline makes the
total an overestimate, never an undercount) and Parquet's row count from its
metadata. Folders of pages, TREC archives, datasets directories and standard
input have no cheap total: their bars count without one.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def _lines(path: Path) -> int:
    opener = gzip.open if path.name.endswith(".gz") else open
    count, last = 0, b"\n"
    with opener(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")  # a last line without a newline


def count_rows(paths: Sequence[str | Path]) -> int | None:
    """Rows in the files, read cheaply (see the module docstring), or None when one of them has no
    cheap count."""
    total = 0
    for raw in paths:
        path = Path(raw)
        name = path.name.lower().removesuffix(".gz")
        if not path.is_file():
            return None
        if name.endswith((".jsonl", ".json", ".txt")):
            total += _lines(path)
        elif name.endswith((".csv", ".tsv")):
            total += max(0, _lines(path) - 1)  # the header
        elif name.endswith(".parquet"):
            import pyarrow.parquet as pq

            total += pq.ParquetFile(path).metadata.num_rows
        else:
            return None
    return total


class _Off:
    """A progress bar that shows nothing."""

    def update(self, n: float = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Off:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def progress_bar(enabled: bool, total: int | None, desc: str, unit: str = "row") -> Any:
    """A tqdm bar on stderr (total and ETA where ``total`` is known), or one that shows nothing."""
    if not enabled:
        return _Off()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.5)

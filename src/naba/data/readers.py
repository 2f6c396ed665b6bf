"""Streaming readers for JSONL (plain or gzip), CSV, Parquet and HF ``datasets`` directories.

Every reader yields ``(line, row)`` pairs one at a time, so that a file with
millions of rows is never held in memory to be validated or converted.
``line`` is the 1-based physical line for JSONL and CSV (what an editor
shows) and the 1-based row number for Parquet and ``datasets``. A row that
cannot be decoded is yielded as a :class:`~naba.errors.Problem` instead of a
dict, so the caller can report it and carry on.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from naba.errors import InputError, Problem

Row = dict[str, Any]

FORMATS = ("jsonl", "csv", "parquet", "hf", "txt")

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_CSV_FIELD_LIMIT = 256 * 2**20  # characters in one field


def detect_format(path: Path) -> str:
    """Guess the format from the path: a directory is a ``datasets`` directory.

    Raises:
        InputError: the extension is not one naba reads.
    """
    if is_stdin(path):
        return "jsonl"
    if path.is_dir():
        if (
            (path / "dataset_info.json").exists()
            or (path / "dataset_dict.json").exists()
            or (path / "state.json").exists()
        ):
            return "hf"
        raise InputError(
            f"{path}: is a directory, but not a Hugging Face datasets directory (no "
            "dataset_info.json); pass a file, or a directory saved with Dataset.save_to_disk"
        )
    name = path.name.lower()
    for suffix, fmt in (
        (".jsonl", "jsonl"),
        (".jsonl.gz", "jsonl"),
        (".json", "jsonl"),
        (".json.gz", "jsonl"),
        (".ndjson", "jsonl"),
        (".csv", "csv"),
        (".csv.gz", "csv"),
        (".tsv", "csv"),
        (".parquet", "parquet"),
        (".txt", "txt"),
        (".txt.gz", "txt"),
    ):
        if name.endswith(suffix):
            return fmt
    raise InputError(
        f"{path}: unknown file type; expected .jsonl[.gz], .csv, .parquet, .txt "
        "or a datasets directory (or pass --format)"
    )


STDIN = "-"  # a path of "-" reads standard input (JSONL unless a format is given)


def is_stdin(path: str | Path) -> bool:
    return str(path) == STDIN


def _check_file(path: Path) -> None:
    if is_stdin(path):
        return
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected a file")


def _open_binary(path: Path) -> io.BufferedIOBase:
    if is_stdin(path):
        import sys

        handle: Any = io.BufferedReader(_Unclosed(sys.stdin.buffer))
        return gzip.GzipFile(fileobj=handle) if handle.peek(2)[:2] == b"\x1f\x8b" else handle
    handle = path.open("rb")
    if handle.peek(2)[:2] == b"\x1f\x8b":
        handle = gzip.GzipFile(fileobj=handle)
    return handle


class _Unclosed(io.RawIOBase):
    """Standard input for a reader that closes what it reads: closing this leaves stdin open."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = (
            self._raw.read1(len(buffer))
            if hasattr(self._raw, "read1")
            else self._raw.read(len(buffer))
        )
        buffer[: len(data)] = data
        return len(data)


def _check_encoding(path: Path, head: bytes) -> None:
    # Without a BOM, UTF-16 shows as a zero byte beside every ASCII character:
    # second and fourth bytes (little-endian) or first and third (big-endian).
    little = len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] != 0
    big = len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] != 0
    if head.startswith(_UTF16_BOMS) or little or big:
        raise InputError(
            f"{path}: looks like UTF-16; re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"
        )


def iter_lines(path: Path) -> Iterator[tuple[int, str | Problem]]:
    """Yield ``(line_number, text)`` for each line, decoding UTF-8 strictly per line.

    A line with invalid UTF-8 is yielded as a :class:`Problem`; a leading
    BOM is dropped.
    """
    _check_file(path)
    try:
        handle = _open_binary(path)
        with handle:
            first = True
            for number, raw in enumerate(handle, start=1):
                if first:
                    _check_encoding(path, raw[:4])
                    if raw.startswith(codecs.BOM_UTF8):
                        raw = raw[len(codecs.BOM_UTF8) :]
                    first = False
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    yield (
                        number,
                        Problem(
                            str(path),
                            number,
                            "(line)",
                            f"expected UTF-8 text, found invalid byte 0x{raw[exc.start]:02x} at "
                            f"column {exc.start + 1}; re-save the file as UTF-8",
                        ),
                    )
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(
            f"{path}: corrupt gzip file ({exc}); re-create or re-download it"
        ) from None


def read_jsonl(path: Path) -> Iterator[tuple[int, Row | Problem]]:
    """Yield one JSON object per non-blank line."""
    for number, line in iter_lines(path):
        if isinstance(line, Problem):
            yield number, line
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            # Some messages already end in "at" ("Unterminated string starting at").
            reason = exc.msg.removesuffix(" at")
            yield (
                number,
                Problem(
                    str(path),
                    number,
                    "(json)",
                    f"expected a JSON object, found invalid JSON ({reason} at column {exc.colno})",
                ),
            )
            continue
        except RecursionError:
            yield (
                number,
                Problem(
                    str(path),
                    number,
                    "(json)",
                    "expected a JSON object, found JSON nested too deeply to read; "
                    "flatten the row or remove the line",
                ),
            )
            continue
        except (
            ValueError
        ):  # int() refuses numbers of thousands of digits (sys.get_int_max_str_digits)
            yield (
                number,
                Problem(
                    str(path),
                    number,
                    "(json)",
                    "expected a JSON object, found a number with too many digits "
                    "to read; quote it as a string or remove the line",
                ),
            )
            continue
        if not isinstance(value, dict):
            yield (
                number,
                Problem(
                    str(path),
                    number,
                    "(json)",
                    f"expected a JSON object, found {type(value).__name__}",
                ),
            )
            continue
        yield number, value


def read_txt(path: Path) -> Iterator[tuple[int, Row | Problem]]:
    """Plain text: one article per non-blank line; the id is the line number."""
    for number, line in iter_lines(path):
        if isinstance(line, Problem):
            yield number, line
        elif line.strip():
            yield number, {"id": str(number), "text": line}


class _CsvLines:
    """The file's physical lines, decoded one at a time for the csv reader.

    A line that is not UTF-8 is decoded with replacement characters and its
    problem kept in :attr:`bad_lines`; :attr:`fed` counts the lines handed over so far
    (the csv reader pulls them one at a time, so a record ends at line ``fed``).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bad_lines: dict[int, str] = {}
        self.fed = 0

    def decoded(self, handle: Any) -> Iterator[str]:
        for number, raw in enumerate(handle, start=1):
            self.fed = number
            if number == 1:
                _check_encoding(self.path, raw[:4])
                if raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                self.bad_lines[number] = (
                    f"expected UTF-8 text, found invalid byte 0x{raw[exc.start]:02x} "
                    f"at column {exc.start + 1}; re-save the file as UTF-8"
                )
                yield raw.decode("utf-8", errors="replace")


def read_csv(path: Path) -> Iterator[tuple[int, Row | Problem]]:
    """Yield one dict per CSV record (a ``.tsv`` file is tab-separated).

    Quoted fields may span lines; the number reported is the record's first
    line. Each physical line is decoded on its own, so a bad byte is blamed
    on the record that holds it and the rest of the file still reads. A
    record the csv module cannot parse is a Problem, and reading goes on.
    """
    _check_file(path)
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    lines = _CsvLines(path)
    # A 1 MB article is a legitimate field; the csv module's default limit is 128 kB.
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    try:
        with _open_binary(path) as handle:
            reader = csv.reader(lines.decoded(handle), delimiter=delimiter)
            header = _csv_header(path, reader, lines.bad_lines)
            if not header:
                return
            while True:
                start = lines.fed + 1
                try:
                    values = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    problem = f"malformed CSV ({exc}); fix the quoting of this record"
                    yield start, Problem(str(path), start, "(csv)", problem)
                    continue
                if values:  # not a blank line
                    yield start, _csv_record(path, header, values, start, lines)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(
            f"{path}: corrupt gzip file ({exc}); re-create or re-download it"
        ) from None


def _csv_header(path: Path, reader: Any, bad_lines: dict[int, str]) -> list[str] | None:
    """The header record (None for an empty file).

    Raises:
        InputError: a malformed header, one that is not UTF-8, or duplicate column names.
    """
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"{path}:1: header: malformed CSV ({exc}); fix the header line") from None
    if 1 in bad_lines:
        raise InputError(f"{path}:1: header: {bad_lines[1]}")
    if not header:
        return None
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise InputError(f"{path}:1: header: duplicate column names {duplicates}; rename them")
    return header


def _csv_record(
    path: Path, header: list[str], values: list[str], start: int, lines: _CsvLines
) -> Row | Problem:
    """The record that runs from line ``start`` to the last line fed, or its first problem."""
    end = lines.fed
    bad = [n for n in range(start, end + 1) if n in lines.bad_lines]
    if bad:
        return Problem(str(path), bad[0], "(line)", lines.bad_lines[bad[0]])
    if len(values) > len(header):
        return Problem(str(path), start, "(csv)", f"expected {len(header)} columns, found more")
    if len(values) < len(header) and end > start:
        return Problem(
            str(path),
            start,
            "(csv)",
            f"expected {len(header)} columns, found fewer in a record that runs from line "
            f"{start} to line {end}; a quoted field is probably missing its closing quote",
        )
    if len(values) < len(header):
        return Problem(str(path), start, "(csv)", f"expected {len(header)} columns, found fewer")
    return dict(zip(header, values))


def read_parquet(path: Path, batch_size: int = 4096) -> Iterator[tuple[int, Row | Problem]]:
    """Yield Parquet rows batch by batch (never the whole table)."""
    _check_file(path)
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def read_hf(path: Path) -> Iterator[tuple[int, Row | Problem]]:
    """Yield rows of a ``datasets`` directory (memory-mapped Arrow; one split if a DatasetDict)."""
    from datasets import DatasetDict, load_from_disk

    try:
        dataset = load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise InputError(f"{path}: not a datasets directory ({exc})") from None
    if isinstance(dataset, DatasetDict):
        raise InputError(
            f"{path}: holds several splits {list(dataset)}; pass one split's "
            f"directory, e.g. {path}/train"
        )
    yield from enumerate(dataset, start=1)


def read_rows(path: str | Path, fmt: str = "auto") -> Iterator[tuple[int, Row | Problem]]:
    """Stream rows from any supported file.

    Args:
        path: A file or ``datasets`` directory.
        fmt: ``auto`` (from the extension), ``jsonl``, ``csv``, ``parquet``, ``hf`` or ``txt``.

    Yields:
        ``(line, row)``, where ``row`` is a dict or a :class:`Problem` for an undecodable row.

    Raises:
        InputError: the file is missing, of unknown type, or unreadable as a whole.
    """
    path = Path(path)
    if is_stdin(path):
        fmt = "jsonl" if fmt == "auto" else fmt
        if fmt in ("parquet", "hf"):
            raise InputError(
                f"standard input: {fmt} cannot be streamed from a pipe; pass the file itself"
            )
    if fmt == "auto":
        if not path.exists():
            raise InputError(f"{path}: no such file")
        fmt = detect_format(path)
    readers = {
        "jsonl": read_jsonl,
        "csv": read_csv,
        "parquet": read_parquet,
        "hf": read_hf,
        "txt": read_txt,
    }
    if fmt not in readers:
        raise InputError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(readers)}")
    return readers[fmt](path)

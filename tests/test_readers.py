"""naba.data.readers: every format streams (line, row) pairs; bad rows become Problems."""

from __future__ import annotations

import codecs
import gzip
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Elided
from naba.data.readers import detect_format, read_rows
from naba.data.records import iter_records
from naba.errors import InputError, Problem

ROWS = [
    {"id": "1", "text": "النص الأول", "topics": ["politics"]},
    {"id": "2", "text": "النص الثاني", "topics": ["sports", "health"]},
]


def rows_of(path: Path, fmt: str = "auto") -> list[tuple[int, object]]:
    return [
        (line, row if isinstance(row, dict) else str(row)) for line, row in read_rows(path, fmt)
    ]


def jsonl_bytes(rows: list[dict]) -> bytes:
    import json

    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


# ----------------------------------------------------------------------------- JSONL


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(jsonl_bytes(ROWS))
    assert rows_of(path) == [(1, ROWS[0]), (2, ROWS[1])]


def test_jsonl_gz(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(jsonl_bytes(ROWS))
    assert rows_of(path) == [(1, ROWS[0]), (2, ROWS[1])]


def test_gzip_detected_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(gzip.compress(jsonl_bytes(ROWS)))
    assert rows_of(path) == [(1, ROWS[0]), (2, ROWS[1])]


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InputError, match=re.escape(f"{path}: corrupt gzip file (")):
        list(read_rows(path))


def test_jsonl_bad_lines_reported_with_line_numbers_others_still_read(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b'{"id": "1", "text": "x"}\n'
        b"\n"
        b"{bad\n"
        b"[1, 2]\n"
        b'"just a string"\n'
        b'{"id": "6", "text": "caf\xe9"}\n'
        b'{"id": 7, "text": "y"}\r\n'
    )
    assert rows_of(path) == [
        (1, {"id": "1", "text": "x"}),
        (
            3,
            Elided(f"{path}:3: (json): expected a JSON object, found invalid JSON (… at column 2)"),
        ),
        (4, f"{path}:4: (json): expected a JSON object, found list"),
        (5, f"{path}:5: (json): expected a JSON object, found str"),
        (
            6,
            f"{path}:6: (line): expected UTF-8 text, found invalid byte 0xe9 at column 25; re-save "
            "the file as UTF-8",
        ),
        (7, {"id": 7, "text": "y"}),
    ]


def test_jsonl_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(codecs.BOM_UTF8 + jsonl_bytes(ROWS[:1]))
    assert rows_of(path) == [(1, ROWS[0])]


@pytest.mark.parametrize(
    "encoding",
    [
        "utf-16",
        "utf-16-le",
        "utf-16-be",
    ],
)
@pytest.mark.parametrize("name", ["a.jsonl", "a.csv", "a.txt"])
def test_utf16_is_rejected(tmp_path: Path, encoding: str, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(
        '{"id": "1", "text": "نص"}\n'.encode(encoding)
        if name.endswith("jsonl")
        else "id,text\n1,نص\n".encode(encoding)
    )
    with pytest.raises(InputError) as info:
        list(read_rows(path))
    assert (
        str(info.value)
        == f"{path}: looks like UTF-16; re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"
    )


def test_reader_is_lazy(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(200_000):
            handle.write(f'{{"id": "{i}", "text": "نص رقم {i}"}}\n')
    rows = read_rows(path)
    assert isinstance(rows, Iterator)
    first = list(itertools.islice(rows, 2))
    assert first == [(1, {"id": "0", "text": "نص رقم 0"}), (2, {"id": "1", "text": "نص رقم 1"})]


def test_lazy_errors_surface_on_iteration_not_on_call(tmp_path: Path) -> None:
    # A missing file with an explicit format only fails once iterated (generators);
    # with format auto the check happens at once.
    path = tmp_path / "missing.jsonl"
    with pytest.raises(InputError, match=re.escape(f"{path}: no such file")):
        read_rows(path)
    rows = read_rows(path, "jsonl")
    with pytest.raises(InputError, match=re.escape(f"{path}: no such file")):
        next(rows)


# ----------------------------------------------------------------------------- CSV / TSV


def test_csv_quoted_multiline_bom_and_column_count(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(
        codecs.BOM_UTF8
        + (
            "id,text,topics\n"
            '1,"سطر أول\nسطر ثان",politics\n'
            "2,short\n"
            "3,a,b,c\n"
            '4,"he said ""hi""",sports\n'
        ).encode()
    )
    assert rows_of(path) == [
        (2, {"id": "1", "text": "سطر أول\nسطر ثان", "topics": "politics"}),
        (4, f"{path}:4: (csv): expected 3 columns, found fewer"),
        (5, f"{path}:5: (csv): expected 3 columns, found more"),
        (6, {"id": "4", "text": 'he said "hi"', "topics": "sports"}),
    ]


def test_csv_gz(tmp_path: Path) -> None:
    path = tmp_path / "a.csv.gz"
    path.write_bytes(gzip.compress("id,text\n1,نص\n".encode()))
    assert rows_of(path) == [(2, {"id": "1", "text": "نص"})]


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv"
    path.write_text("id\ttext\ttopics\n1\tأ، ب, ج\tpolitics\n", encoding="utf-8")
    assert rows_of(path) == [(2, {"id": "1", "text": "أ، ب, ج", "topics": "politics"})]


def test_csv_missing_column_is_one_header_error(tmp_path: Path) -> None:
    # Not one identical problem per row: the file cannot be used until the column is mapped.
    path = tmp_path / "a.csv"
    path.write_text("id,body,topics\n1,نص,politics\n2,نص آخر,sports\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(iter_records(path, "topic"))
    assert str(info.value) == (
        f"{path}:1: header: expected a 'text' column, found 'id', 'body', 'topics'; add it, or "
        "name the "
        "column that holds it with --text-column (columns.text_column in a training config)"
    )


def test_csv_renamed_column_suggests_the_mapping(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("id,Text,topic\n1,نص,politics\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(iter_records(path, "topic"))
    assert str(info.value) == (
        f"{path}:1: header: expected a 'text' column, found 'id', 'Text', 'topic'; did you mean "
        "'Text'? "
        "rename it to 'text', or pass --text-column Text (columns.text_column in a training config)"
    )
    # prediction input needs no label column; a mapped column is looked up under its own name
    from naba.config import ColumnsConfig

    assert [
        line
        for line, _ in iter_records(
            path, "topic", ColumnsConfig(text_column="Text"), require_label=False
        )
    ] == [2]


def test_csv_empty_file_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    assert rows_of(path) == []


def test_csv_duplicate_header(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,text,id\n1,x,2\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        list(read_rows(path))
    assert str(info.value) == f"{path}:1: header: duplicate column names ['id']; rename them"


def test_csv_invalid_header_encoding(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"id,t\xffext\n1,ok\n")
    message = (
        f"{path}:1: header: expected UTF-8 text, found invalid byte 0xff at column 5; "
        "re-save the file as UTF-8"
    )
    with pytest.raises(InputError, match=re.escape(message)):
        list(read_rows(path))


def test_csv_invalid_utf8_far_into_file_is_a_problem(tmp_path: Path) -> None:
    lines = ["id,text"] + [f"{i},row number {i}" for i in range(1, 3001)]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    at = data.index(b"row number 2000")
    (tmp_path / "big.csv").write_bytes(data[:at] + b"\xff" + data[at:])
    rows = list(read_rows(tmp_path / "big.csv"))
    # exactly the bad row (line 2001) is a Problem; every other row still reads
    assert len(rows) == 3000
    problems = [(line, row) for line, row in rows if isinstance(row, Problem)]
    assert [(line, p.field, p.message) for line, p in problems] == [
        (
            2001,
            "(line)",
            "expected UTF-8 text, found invalid byte 0xff at column 6; re-save the file as UTF-8",
        )
    ]
    assert rows[-1] == (3001, {"id": "3000", "text": "row number 3000"})


def test_csv_invalid_utf8_in_small_file_is_not_blamed_on_header(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_bytes(b"id,text\n1,ok\n2,\xff\n")
    rows = list(read_rows(path))
    assert rows[0] == (2, {"id": "1", "text": "ok"})
    assert isinstance(rows[-1][1], Problem)
    assert (rows[-1][0], rows[-1][1].field) == (3, "(line)")


# ------------------------------------------------------------------------- Parquet / datasets / txt


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert rows_of(path) == [(1, ROWS[0]), (2, ROWS[1])]


def test_parquet_streams_in_batches(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from naba.data.readers import read_parquet

    path = tmp_path / "many.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": str(i), "text": "نص"} for i in range(10)]), path)
    numbers = [line for line, _ in read_parquet(path, batch_size=3)]
    assert numbers == list(range(1, 11))


def test_bad_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_text("nope", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{path}: not a readable Parquet file (")):
        list(read_rows(path))


def test_hf_datasets_directory(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    assert detect_format(tmp_path / "ds") == "hf"
    assert rows_of(tmp_path / "ds") == [(1, ROWS[0]), (2, ROWS[1])]


def test_hf_dataset_dict_asks_for_one_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS)}).save_to_disk(
        str(tmp_path / "dd")
    )
    with pytest.raises(InputError) as info:
        list(read_rows(tmp_path / "dd"))
    assert (
        str(info.value) == f"{tmp_path / 'dd'}: holds several splits ['train', 'test']; "
        f"pass one split's directory, e.g. {tmp_path / 'dd'}/train"
    )


def test_txt_one_article_per_nonblank_line(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("الأول\n\n   \nالثاني\r\n", encoding="utf-8")
    assert rows_of(path) == [(1, {"id": "1", "text": "الأول"}), (4, {"id": "4", "text": "الثاني"})]


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = tmp_path / "rows.data"
    path.write_bytes(jsonl_bytes(ROWS))
    assert rows_of(path, "jsonl") == [(1, ROWS[0]), (2, ROWS[1])]


# ----------------------------------------------------------------------------- unusable inputs


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", "jsonl"),
        ("a.JSONL", "jsonl"),
        ("a.json", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json.gz", "jsonl"),
        ("a.csv", "csv"),
        ("a.tsv", "csv"),
        ("a.parquet", "parquet"),
        ("a.txt", "txt"),
        ("a.txt.gz", "txt"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, fmt: str) -> None:
    assert detect_format(tmp_path / name) == fmt


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text("<x/>", encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_rows(path)
    assert str(info.value) == (
        f"{path}: unknown file type; expected .jsonl[.gz], .csv, .parquet, .txt "
        "or a datasets directory (or pass --format)"
    )


def test_unknown_explicit_format(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"")
    with pytest.raises(
        InputError,
        match=re.escape(
            f"{path}: unknown format 'xml'; expected one of jsonl, csv, parquet, hf, txt"
        ),
    ):
        read_rows(path, "xml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: no such file")):
        read_rows(tmp_path / "nope.jsonl")


def test_plain_directory_where_file_expected(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        read_rows(tmp_path)
    assert str(info.value) == (
        f"{tmp_path}: is a directory, but not a Hugging Face datasets directory (no "
        "dataset_info.json); "
        "pass a file, or a directory saved with Dataset.save_to_disk"
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "txt", "parquet"])
def test_directory_with_explicit_file_format(tmp_path: Path, fmt: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"{tmp_path}: is a directory, expected a file")):
        list(read_rows(tmp_path, fmt))


def test_errors_are_value_errors() -> None:
    # Domain errors subclass ValueError (STYLE.md, point 6).
    assert issubclass(InputError, ValueError)


# ------------------------------------------------------- fuzz: arbitrary bytes never crash a reader

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_PIECES = [
    b'{"id": "1", "text": "\xd9\x86\xd8\xb5", "topics": ["a"]}',
    b'{"text": ',
    b"}",
    b"[",
    b"]",
    b'"',
    b",",
    b"\n",
    b"\r\n",
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\x1f\x8b",
    b"id,text,topics",
    b'"a\nb"',
    b"1e999",
    b"9" * 5000,
    b"[" * 3000,
    b'"\\ud800"',
    b"\t",
    b"  ",
    "نص".encode(),
    "نص".encode("utf-16-le"),
]
# Bytes that look like the formats (so that deep branches are reached) mixed
# with raw noise, sometimes gzipped.
FILE_BYTES = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(_PIECES), max_size=25).map(b"".join),
    st.text(max_size=100).flatmap(
        lambda t: st.sampled_from(
            [t.encode("utf-8"), t.encode("utf-16"), t.encode("utf-8", "replace")]
        )
    ),
).flatmap(
    lambda data: st.sampled_from(
        [data, gzip.compress(data), gzip.compress(data)[: max(1, len(data) // 2)]]
    )
)


def _check_stream(path: Path, items) -> int:
    count, last = 0, 0
    for line, item in items:
        assert (
            isinstance(line, int) and line > last
        )  # lines ascend: every row is reported once, in file order
        last = line
        assert isinstance(item, (dict, Problem)), item
        if isinstance(item, Problem):
            assert item.file == str(path) and item.field and item.message
        count += 1
    return count


def _check_inputs(path: Path, items, rejected: type) -> None:
    for item in items:
        assert isinstance(item, (dict, rejected)), item
        if isinstance(item, dict):
            assert item["text"].strip() and item["id"]


@FUZZ
@given(
    data=FILE_BYTES,
    name=st.sampled_from(["f.jsonl", "f.csv", "f.tsv", "f.txt", "f.jsonl.gz"]),
    task=st.sampled_from(["topic", "stance"]),
)
def test_fuzz_readers_raise_only_input_errors(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, name: str, task: str
) -> None:
    from naba.data.validate import validate_file
    from naba.infer.predict import Rejected, iter_inputs

    path = tmp_path_factory.getbasetemp() / "fuzz" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    for run in (
        lambda: _check_stream(path, read_rows(path)),
        lambda: _check_stream(path, iter_records(path, task)),
        lambda: _check_stream(path, iter_records(path, task, require_label=False)),
        lambda: [str(p) for p in validate_file(path, task)],
        lambda: _check_inputs(path, iter_inputs([path]), Rejected),
    ):
        try:
            run()
        except InputError as exc:
            assert str(exc).startswith(str(path)), exc  # names the file

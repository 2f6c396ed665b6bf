"""`naba data ...` through Typer's CliRunner, and `naba --help` without torch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import Elided
from naba.cli import app

runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args])


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def topic_rows(n: int = 40) -> list[dict]:
    words = ["السياسة", "الاقتصاد", "الرياضة", "الصحة", "الطقس", "التعليم", "السفر", "الفن"]
    labels = ["politics", "sports"]
    return [
        {
            "id": str(i),
            "text": f"خبر عن {words[i % 8]} {words[(i // 8) % 8]} رقم {i}",
            "topics": [labels[i % 2]],
        }
        for i in range(n)
    ]


def assert_one_line_error(result, starts: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: " + starts)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- import


def test_import_seed_pages_with_taxonomy(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "articles.jsonl"
    result = invoke(
        "data",
        "import",
        root / "seeds",
        "--format",
        "page",
        "--taxonomy",
        root / "configs" / "taxonomy.yaml",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"wrote 2 records to {out}",
        "topics: security 1, politics 1, energy 1",
        "assigned by: tags 4, title 1",
    ]
    rows = read_jsonl(out)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    assert [r["topics"] for r in rows] == [["security", "politics"], ["energy"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["articles.jsonl"]


def test_import_unmatched_and_errors_exit_1(root: Path, tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "a.txt").write_text("حفل زفاف في القرية\nاحتفل الأهالي.\n", encoding="utf-8")
    (pages / "b.txt").write_text("\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke(
        "data",
        "import",
        pages,
        "-f",
        "page",
        "--taxonomy",
        root / "configs" / "taxonomy.yaml",
        "-o",
        out,
    )
    assert result.exit_code == 1
    assert result.stdout == f"wrote 0 records to {out}\n"
    assert result.stderr.splitlines() == [
        f"1 articles matched no taxonomy rule (listed in {tmp_path / 'out.unmatched.jsonl'}): a-0",
        f"1 inputs could not be imported (reasons in {tmp_path / 'out.errors.jsonl'})",
        f"  {pages / 'b.txt'}: (page): expected at least one article (headline then "
        "body), found an empty page",
    ]
    assert out.read_text(encoding="utf-8") == ""


def test_import_csv_with_columns(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("doc,body,cat\n1,نص أول,a|b\n2,,a\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    result = invoke(
        "data",
        "import",
        src,
        "--format",
        "csv",
        "-o",
        out,
        "--id-column",
        "doc",
        "--text-column",
        "body",
        "--label-column",
        "cat",
        "--label-separator",
        "|",
    )
    assert result.exit_code == 1
    assert read_jsonl(out) == [{"id": "1", "text": "نص أول", "topics": ["a", "b"]}]
    assert (
        f"  {src}:3: text: expected a non-empty string, found an empty string"
        in result.stderr.splitlines()
    )


def test_import_missing_source_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out" / "x.jsonl"
    result = invoke("data", "import", tmp_path / "nope.jsonl", "-o", out)
    assert_one_line_error(result, f"{tmp_path / 'nope.jsonl'}: no such file")
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_import_missing_taxonomy(root: Path, tmp_path: Path) -> None:
    result = invoke(
        "data",
        "import",
        root / "seeds",
        "-f",
        "page",
        "--taxonomy",
        tmp_path / "tax.yaml",
        "-o",
        tmp_path / "o.jsonl",
    )
    assert_one_line_error(result, f"{tmp_path / 'tax.yaml'}: taxonomy file not found")


def test_import_bad_format_choice(tmp_path: Path) -> None:
    result = invoke("data", "import", tmp_path, "-f", "xml", "-o", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert "'--format'" in result.stderr  # the rest of the line is click's
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- validate


def test_validate_good_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "good.jsonl", topic_rows(5))
    result = invoke("data", "validate", path, "--task", "topic", "--labels", "politics, sports")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: 5 rows, 5 valid, 0 problems\n"
    assert result.stderr == ""


def test_validate_bad_file_lists_file_line_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"id": "1", "text": "x", "topics": ["a"]}\n{oops\n{"id": "1", "text": "", "topics": '
        b'["a"]}\n'
        b'{"id": "1", "text": "y", "topics": ["zz"]}\n'
    )
    result = invoke("data", "validate", path, "--labels", "a,b")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        Elided(f"{path}:2: (json): expected a JSON object, found invalid JSON (… at column 2)"),
        f"{path}:3: text: expected a non-empty string, found an empty string",
        f"{path}:4: topics: expected labels from ['a', 'b'], found unknown ['zz']",
        f"{path}:4: id: expected a unique id, found '1' already used on line 1",
    ]
    assert result.stderr == f"{path}: 4 rows, 1 valid, 4 problems\n"


def test_validate_max_problems_limits_printing_not_counting(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{\n" * 5, encoding="utf-8")
    result = invoke("data", "validate", path, "--max-problems", "2")
    assert result.exit_code == 1
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == f"{path}: 5 rows, 0 valid, 5 problems\n"


def test_validate_stance(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [
            {"id": "1", "text": "نص", "target": "نيوم", "stance": "favor"},
            {"id": "2", "text": "نص آخر", "stance": "favor"},
        ],
    )
    result = invoke("data", "validate", path, "--task", "stance")
    assert result.exit_code == 1
    assert (
        result.stdout == f"{path}:2: target: expected a non-empty string, found no 'target' field\n"
    )


@pytest.mark.parametrize("command", ["validate", "stats"])
def test_unknown_file_is_exit_2_one_line(tmp_path: Path, command: str) -> None:
    result = invoke("data", command, tmp_path / "nope.jsonl")
    assert_one_line_error(result, f"{tmp_path / 'nope.jsonl'}: no such file")


def test_utf16_file_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "u16.jsonl"
    path.write_bytes('{"id": "1"}\n'.encode("utf-16"))
    result = invoke("data", "validate", path)
    assert_one_line_error(result, f"{path}: looks like UTF-16; re-save it as UTF-8")


def test_unknown_extension_is_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "data.xml"
    path.write_text("<x/>", encoding="utf-8")
    assert_one_line_error(invoke("data", "validate", path), f"{path}: unknown file type;")


# ----------------------------------------------------------------------------- split


def test_split_writes_splits_and_report(tmp_path: Path) -> None:
    rows = topic_rows(40)
    rows.append(dict(rows[0], id="dup"))
    path = write_jsonl(tmp_path / "all.jsonl", rows)
    out = tmp_path / "splits"
    result = invoke(
        "data", "split", path, "-o", out, "--dev", "0.1", "--test", "0.1", "--seed", "3"
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "dev.jsonl",
        "split_report.json",
        "test.jsonl",
        "train.jsonl",
    ]
    report = json.loads((out / "split_report.json").read_text(encoding="utf-8"))
    assert report["input"] == str(path)
    assert report["seed"] == 3
    assert report["input_rows"] == 41 and report["exact_duplicates_removed"] == 1
    counts = {name: len(read_jsonl(out / f"{name}.jsonl")) for name in ("train", "dev", "test")}
    assert counts == report["rows"] == {"train": 32, "dev": 4, "test": 4}
    assert (
        result.stdout.splitlines()[0]
        == "stratified (single-label); 41 rows in, 1 exact and 0 normalised duplicates removed"
    )
    assert (
        result.stdout.splitlines()[-1]
        == f"wrote {out}/train.jsonl, dev.jsonl, test.jsonl, split_report.json"
    )
    assert result.stderr == ""


def test_split_reports_label_conflicts_on_stderr(tmp_path: Path) -> None:
    rows = topic_rows(20)
    rows.append(
        dict(
            rows[0],
            id="conflict",
            topics=["sports" if rows[0]["topics"] == ["politics"] else "politics"],
        )
    )
    result = invoke(
        "data", "split", write_jsonl(tmp_path / "all.jsonl", rows), "-o", tmp_path / "s"
    )
    assert result.exit_code == 0
    assert (
        result.stderr
        == "1 duplicates had different labels (kept the first; see split_report.json)\n"
    )


def test_split_bad_fractions_is_usage_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "all.jsonl", topic_rows(10))
    result = invoke("data", "split", path, "-o", tmp_path / "s", "--dev", "0.6", "--test", "0.5")
    assert result.exit_code == 2
    assert (
        "expected dev and test fractions in (0, 1) summing below 1, found dev=0.6, test=0.5"
        in result.stderr
    )
    assert not (tmp_path / "s").exists()


def test_split_invalid_row_is_exit_2(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "all.jsonl",
        [{"id": "1", "text": "نص", "topics": ["a"]}, {"id": "2", "text": ""}],
    )
    result = invoke("data", "split", path, "-o", tmp_path / "s")
    assert_one_line_error(
        result,
        f"{path}:2: text: expected a non-empty string, found an empty string "
        f"(run `naba data validate {path} --task topic` to list every problem)",
    )


# ----------------------------------------------------------------------------- stats


def test_stats_json(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", topic_rows(6))
    result = invoke("data", "stats", path, "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["rows"] == 6 and stats["invalid_rows"] == 0
    assert stats["labels"] == {"politics": 3, "sports": 3}
    assert stats["labels_per_record"] == {"1": 6}
    assert stats["words"]["min"] == 6


def test_stats_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", topic_rows(4))
    result = invoke("data", "stats", path)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: 4 rows (0 invalid), 0 duplicate texts"
    assert lines[1:3] == ["  politics      2  50.0%", "  sports        2  50.0%"]
    assert lines[3] == "labels per record: {1: 4}"


def test_stats_stance_targets(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "s.jsonl", [{"id": "1", "text": "نص", "target": "نيوم", "stance": "favor"}]
    )
    result = invoke("data", "stats", path, "--task", "stance")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == "targets: {'نيوم': 1}"


# ----------------------------------------------------------------------------- start-up stays light

CHECK_IMPORTS = """
import sys
sys.argv = ["naba", *sys.argv[1:]]
import naba.cli
try:
    naba.cli.main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(
    m for m in ("torch", "transformers", "datasets", "sklearn", "matplotlib") if m in sys.modules
)
print("HEAVY=" + ",".join(heavy))
sys.exit(code)
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["data", "--help"], ["data", "import", "--help"], ["data", "validate", "--help"]],
)
def test_help_does_not_import_heavy_libraries(args: list[str]) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1] == "HEAVY="


def test_validate_does_not_import_heavy_libraries(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "good.jsonl", topic_rows(3))
    proc = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS, "data", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "HEAVY="


def test_console_script_help(root: Path) -> None:
    script = Path(sys.executable).parent / "naba"
    if not script.exists():
        pytest.skip("the naba console script is not installed in this environment")
    proc = subprocess.run(
        [str(script), "data", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for command in ("import", "validate", "split", "stats"):
        assert command in proc.stdout


def test_version_names_naba_torch_and_transformers_without_importing_them() -> None:
    from importlib.metadata import version

    import naba

    proc = subprocess.run(
        [sys.executable, "-c", CHECK_IMPORTS, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    first, heavy = proc.stdout.rstrip().splitlines()
    assert (
        first == f"naba {naba.__version__}, torch {version('torch')}, "
        f"transformers {version('transformers')}"
    )
    assert heavy == "HEAVY="


def test_import_reads_each_source_by_its_name(tmp_path: Path, root: Path) -> None:
    csv_path = tmp_path / "x.csv"
    csv_path.write_text(
        "id,text,topics\n1,ارتفعت أسعار النفط,economy\n2,فاز المنتخب,sports\n", encoding="utf-8"
    )
    jsonl_path = write_jsonl(tmp_path / "y.jsonl", topic_rows(2))
    result = invoke(
        "data", "import", csv_path, jsonl_path, root / "seeds", "-o", tmp_path / "out.jsonl"
    )
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(line)
        for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["id"] for r in rows[:4]] == ["1", "2", *[r["id"] for r in topic_rows(2)]]
    assert len(rows) == 4 + 2  # and the two articles of the seed page
    assert not (tmp_path / "out.errors.jsonl").exists()
    unknown = invoke("data", "import", tmp_path / "z.xlsx", "-o", tmp_path / "z.jsonl")
    assert unknown.exit_code == 2 and "unknown file type" in unknown.output


def test_data_commands_read_standard_input(tmp_path: Path) -> None:
    rows = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in topic_rows(3))
    proc = subprocess.run(
        [sys.executable, "-m", "naba", "data", "validate", "-", "--task", "topic"],
        input=rows.encode("utf-8"),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode("utf-8").splitlines()[-1] == "-: 3 rows, 3 valid, 0 problems"
    table = "id,text,topics\n1,ارتفعت أسعار النفط,economy\n"
    result = runner.invoke(
        app,
        ["data", "import", "-", "--format", "csv", "-o", str(tmp_path / "o.jsonl")],
        input=table.encode("utf-8"),
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o.jsonl").read_text(encoding="utf-8")) == {
        "id": "1",
        "text": "ارتفعت أسعار النفط",
        "topics": ["economy"],
    }
    from naba.data.readers import read_rows
    from naba.errors import InputError

    with pytest.raises(
        InputError,
        match=re.escape(
            "standard input: parquet cannot be streamed from a pipe; pass the file itself"
        ),
    ):
        read_rows("-", "parquet")

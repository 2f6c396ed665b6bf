"""Progress on the data commands: totals counted cheaply before reading, one update
per row, bars only on a terminal."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from naba.progress import count_rows, progress_bar


class Counted:
    """A stand-in bar that records its updates."""

    def __init__(self) -> None:
        self.n = 0

    def update(self, n: float = 1) -> None:
        self.n += n


def _jsonl(path: Path, rows: list[dict], trailing_newline: bool = True) -> Path:
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + (
        "\n" if trailing_newline else ""
    )
    path.write_text(text, encoding="utf-8")
    return path


ROWS = [{"id": str(i), "text": f"خبر رقم {i} عن الاقتصاد", "topics": ["economy"]} for i in range(7)]


def test_count_rows_reads_totals_cheaply(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    assert count_rows([_jsonl(tmp_path / "a.jsonl", ROWS)]) == 7
    assert count_rows([_jsonl(tmp_path / "b.jsonl", ROWS[:3], trailing_newline=False)]) == 3
    (tmp_path / "c.csv").write_text("id,text\n1,نص\n2,نص آخر\n", encoding="utf-8")
    assert count_rows([tmp_path / "c.csv"]) == 2  # the header is not a row
    with gzip.open(tmp_path / "d.txt.gz", "wt", encoding="utf-8") as handle:
        handle.write("سطر\n" * 5)
    assert count_rows([tmp_path / "d.txt.gz"]) == 5
    pq.write_table(
        pa.table({"id": ["1", "2", "3", "4"], "text": ["أ", "ب", "ت", "ث"]}), tmp_path / "e.parquet"
    )
    assert count_rows([tmp_path / "e.parquet"]) == 4
    assert count_rows([tmp_path / "a.jsonl", tmp_path / "c.csv"]) == 9
    (tmp_path / "pages").mkdir()
    assert (
        count_rows([tmp_path / "pages"]) is None
    )  # a folder of pages: counted while read, no total
    assert count_rows([tmp_path / "a.jsonl", tmp_path / "missing.jsonl"]) is None


def test_validate_and_import_update_the_bar_per_row(tmp_path: Path) -> None:
    from naba.data.importer import run_import
    from naba.data.validate import ValidationSummary, validate_file

    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS) + "{not json\n",
        encoding="utf-8",
    )
    bar, summary = Counted(), ValidationSummary()
    problems = list(validate_file(source, "topic", summary=summary, progress=bar))
    assert bar.n == summary.rows == 8 and len(problems) == 1
    bar = Counted()
    imported = run_import([source], tmp_path / "out.jsonl", "auto", "topic", progress=bar)
    assert bar.n == 8 and imported.written == 7 and imported.errors == 1


def test_a_bar_shows_total_and_eta_and_an_off_bar_shows_nothing(capsys) -> None:
    with progress_bar(True, 4, "validate") as bar:
        bar.update(2)
    err = capsys.readouterr().err
    assert "validate" in err and "2/4" in err and "<" in err  # tqdm's elapsed<remaining
    with progress_bar(False, 4, "validate") as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["validate", "import"])
def test_data_commands_show_a_bar_on_a_terminal_only(
    command: str, tmp_path: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    import naba.cli.data as cli
    import naba.progress as progress
    from naba.cli import app

    source = _jsonl(tmp_path / "in.jsonl", ROWS)
    shown: list = []
    real = progress.progress_bar

    def recorded(enabled, total, desc, unit="row"):
        shown.append((enabled, total))
        return real(False, total, desc, unit)

    monkeypatch.setattr(progress, "progress_bar", recorded)
    args = (
        ["data", "validate", str(source)]
        if command == "validate"
        else ["data", "import", str(source), "-o", str(tmp_path / "o.jsonl")]
    )
    assert (
        CliRunner().invoke(app, args).exit_code == 0
    )  # CliRunner's stderr is not a terminal: no bar
    monkeypatch.setattr(cli, "on_terminal", lambda progress: progress)  # as on a terminal
    assert CliRunner().invoke(app, args).exit_code == 0
    assert CliRunner().invoke(app, [*args, "--no-progress"]).exit_code == 0
    assert shown == [
        (False, None),
        (True, 7),
        (False, None),
    ]  # on a terminal: the rows counted first, for the total

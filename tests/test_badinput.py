"""Issue #7, bad input: the corpus in tests/badinput/ through every command and the API.

Each case gets either a processed row or a one-line error that names file,
line and field and says what to do, with a documented exit code (docs/guides/failures.md,
"Exit codes"); never a traceback. tests/badinput/README.md lists the cases.

The commands run in-process through Typer's CliRunner (fast, and a
traceback cannot hide: an exception escaping a command is a failure here);
``test_real_entry_point_*`` run a few through ``python -m naba`` as well.

Each message is pinned once. Where another test already pins a message's
wording (the test of the module that writes it: test_readers, test_records,
test_validate, test_pages, test_config, test_infer, test_train,
test_reliability, test_serve), the expectation here ends in "…": it checks
what comes before (the exit code, the file, line and field named, nothing
written), not the wording again. A "…" inside an expectation stands for the
words naba passes on from a library (json's, PyYAML's, gzip's, pydantic's).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT, Elided, write_config
from naba.cli import app
from naba.text import is_blank

BAD = ROOT / "tests" / "badinput"


def _make_corpus():
    """tests/badinput/make_corpus.py as a module (it is a script, not on sys.path)."""
    spec = importlib.util.spec_from_file_location("make_corpus", BAD / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_corpus = _make_corpus()

ENV_OFFLINE = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def naba(*args: str | Path):
    """Run one command in-process; fail on any exception that escaped it
    (what a user sees as a traceback)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail(
            "naba "
            + " ".join(map(str, args))
            + " raised:\n"
            + "".join(traceback.format_exception(*result.exc_info))
        )
    assert "Traceback" not in result.output
    return result


def the_error(result) -> str:
    """The one ``error: ...`` line of a failed command (exit 2: nothing else on stderr)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def bad(name: str) -> Path:
    return BAD / name


def pinned(line: str, expected: str) -> bool:
    """``line`` is ``expected`` with any text where it has "…" (see the module's docstring)."""
    return line == Elided(expected)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 1 MB article (generated, not committed)."""
    path = make_corpus.big_article(tmp_path_factory.mktemp("big"))
    assert path.stat().st_size > 1_000_000
    return path


def test_generated_files_are_what_make_corpus_writes() -> None:
    for name, data in make_corpus.generated().items():
        assert (BAD / name).read_bytes() == data, (
            f"{name}: run python tests/badinput/make_corpus.py"
        )


def test_corpus_is_large_and_documented() -> None:
    files = [
        p for p in BAD.rglob("*") if p.is_file() and p.name not in ("README.md", "make_corpus.py")
    ]
    assert len(files) >= 30
    readme = (BAD / "README.md").read_text(encoding="utf-8")
    top = {p.relative_to(BAD).parts[0] for p in files}
    missing = sorted(name for name in top if f"`{name}" not in readme)
    assert not missing, f"not listed in tests/badinput/README.md: {missing}"


# ----------------------------------------------------------------------------- naba data validate


@dataclass(frozen=True)
class Case:
    name: str  # the corpus file
    code: int  # exit code
    expect: str  # a line of the output ("{f}" is the file's path), or the one-line error for exit 2
    options: tuple[str, ...] = ()


VALIDATE = [
    Case(
        "truncated.jsonl",
        1,
        "{f}:2: (json): expected a JSON object, found invalid JSON (… at column 24)",
    ),
    Case("invalid_json.jsonl", 1, "{f}:1: (json): …"),
    Case("not_an_object.jsonl", 1, "{f}:1: (json): …"),
    Case(
        "nul_byte.jsonl",
        1,
        "{f}:1: (json): expected a JSON object, found invalid JSON (… at column 27)",
    ),
    Case(
        "deep_nesting.jsonl",
        1,
        "{f}:1: (json): expected a JSON object, found JSON nested too deeply to read; "
        "flatten the row or remove the line",
    ),
    Case(
        "huge_number.jsonl",
        1,
        "{f}:1: (json): expected a JSON object, found a number with too many digits to read; "
        "quote it as a string or remove the line",
    ),
    Case("utf16.jsonl", 2, "error: {f}: …"),
    Case("utf16le_nobom.csv", 2, "error: {f}: …"),
    Case(
        "latin1.jsonl",
        1,
        "{f}:2: (line): expected UTF-8 text, found invalid byte 0xe9 at column 28; "
        "re-save the file as UTF-8",
    ),
    Case(
        "invalid_utf8.jsonl",
        1,
        "{f}:2: (line): expected UTF-8 text, found invalid byte 0xff at column 31; "
        "re-save the file as UTF-8",
    ),
    Case(
        "corrupt.jsonl.gz",
        2,
        "error: {f}: corrupt gzip file (…); re-create or re-download it",
    ),
    Case("bom.jsonl", 0, "{f}: 1 rows, 1 valid, 0 problems"),
    Case("bom.csv", 0, "{f}: 1 rows, 1 valid, 0 problems"),
    Case("empty_text.jsonl", 1, "{f}:1: text: …"),
    Case("whitespace_text.jsonl", 1, "{f}:1: text: …"),
    Case("missing_text.jsonl", 1, "{f}:1: text: …"),
    Case("text_number.jsonl", 1, "{f}:1: text: expected a string, found int 2024"),
    Case("bidi_only.jsonl", 1, "{f}:1: text: …"),
    Case("latin_only.jsonl", 0, "{f}: 1 rows, 1 valid, 0 problems"),
    Case("emoji_only.jsonl", 0, "{f}: 1 rows, 1 valid, 0 problems"),
    Case("bidi_controls.jsonl", 0, "{f}: 1 rows, 1 valid, 0 problems"),
    Case(
        "duplicate_ids.jsonl",
        1,
        "{f}:2: id: expected a unique id, found 'dup' already used on line 1",
    ),
    Case("topics_string.jsonl", 1, "{f}:1: topics: …"),
    Case("topics_missing.jsonl", 1, "{f}:1: topics: …"),
    Case(
        "unknown_topic.jsonl",
        1,
        "{f}:1: topics: expected labels from ['energy', 'politics', 'sports'], "
        "found unknown ['weather']",
        ("--labels", "energy,politics,sports"),
    ),
    Case("stance_no_target.jsonl", 1, "{f}:1: target: …", ("--task", "stance")),
    Case(
        "stance_unknown_label.jsonl",
        1,
        "{f}:1: stance: expected labels from ['against', 'favor', 'none'], "
        "found unknown ['support']",
        ("--task", "stance", "--labels", "favor,against,none"),
    ),
    Case(
        "empty.jsonl",
        1,
        "{f}: (file): expected at least one topic row, found none (the file is empty or blank)",
    ),
    Case(
        "blank_lines.jsonl",
        1,
        "{f}: (file): expected at least one topic row, found none (the file is empty or blank)",
    ),
    Case("missing_column.csv", 2, "error: {f}:1: header: …"),
    Case(
        "renamed_column.csv",
        2,
        "error: {f}:1: header: expected a 'text' column, found 'id', 'Text', 'topics'; did "
        "you mean 'Text'? rename it to 'text', or pass --text-column Text "
        "(columns.text_column in a training config)",
    ),
    Case("renamed_column.csv", 0, "{f}: 1 rows, 1 valid, 0 problems", ("--text-column", "Text")),
    Case("short_row.csv", 1, "{f}:2: (csv): …"),
    Case(
        "unterminated_quote.csv",
        1,
        "{f}:2: (csv): expected 3 columns, found fewer in a record that runs from line 2 to "
        "line 3; a quoted field is probably missing its closing quote",
    ),
    Case("a_directory.jsonl", 2, "error: {f}: …"),
    Case("no_such_file.jsonl", 2, "error: {f}: …"),
]


def _check(result, case: Case, path: Path) -> None:
    expected = case.expect.format(f=path)
    assert result.exit_code == case.code, result.output
    if case.code == 2:
        assert pinned(the_error(result), expected), result.stderr
        assert result.stdout == ""
    else:
        assert any(pinned(line, expected) for line in result.output.splitlines()), result.output


@pytest.mark.parametrize(
    "case", VALIDATE, ids=[f"{c.name}{'-' + c.options[-1] if c.options else ''}" for c in VALIDATE]
)
def test_validate(case: Case) -> None:
    result = naba("data", "validate", bad(case.name), "--task", "topic", *case.options)
    _check(result, case, bad(case.name))


def test_validate_a_1mb_article(big: Path) -> None:
    result = naba("data", "validate", big)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{big}: 2 rows, 2 valid, 0 problems"]


# ----------------------------------------------------------------------------- naba data import


@dataclass(frozen=True)
class ImportCase:
    sources: tuple[str, ...]
    code: int
    written: int | None  # records in the output (None: exit 2, nothing written)
    errors: tuple[
        tuple[str, int | None, str, str], ...
    ] = ()  # (file, line, field, message start) per error record
    expect: str = ""  # for exit 2: the start of the one-line error ("{0}": the first source's path)
    options: tuple[str, ...] = ("--format", "jsonl")


IMPORT = [
    ImportCase(("truncated.jsonl",), 1, 1, (("truncated.jsonl", 2, "(json)", "…"),)),
    ImportCase(
        ("latin1.jsonl", "invalid_utf8.jsonl"),
        1,
        4,
        (("latin1.jsonl", 2, "(line)", "…"), ("invalid_utf8.jsonl", 2, "(line)", "…")),
    ),
    ImportCase(
        ("topics_string.jsonl", "bidi_only.jsonl", "whitespace_text.jsonl", "deep_nesting.jsonl"),
        1,
        1,
        (
            ("topics_string.jsonl", 1, "topics", "…"),
            ("bidi_only.jsonl", 1, "text", "…"),
            ("whitespace_text.jsonl", 1, "text", "…"),
            (
                "deep_nesting.jsonl",
                1,
                "(json)",
                "expected a JSON object, found JSON nested too deeply",
            ),
        ),
    ),
    ImportCase(
        (
            "duplicate_ids.jsonl",
            "emoji_only.jsonl",
            "latin_only.jsonl",
            "bidi_controls.jsonl",
            "bom.jsonl",
        ),
        0,
        6,
    ),
    ImportCase(
        ("stance_no_target.jsonl",), 0, 1, options=("--format", "jsonl", "--task", "stance")
    ),
    ImportCase(("renamed_column.csv",), 0, 1, options=("--format", "csv", "--text-column", "Text")),
    ImportCase(
        ("short_row.csv", "unterminated_quote.csv"),
        1,
        1,
        (
            ("short_row.csv", 2, "(csv)", "…"),
            (
                "unterminated_quote.csv",
                2,
                "(csv)",
                "expected 3 columns, found fewer in a record that runs from line 2 to line 3",
            ),
        ),
        options=("--format", "csv"),
    ),
    ImportCase(
        ("pages_bad",),
        1,
        1,
        (
            ("pages_bad/empty.txt", None, "(page)", "…"),
            ("pages_bad/headline_only.txt", None, "article 0", "…"),
            ("pages_bad/latin1.txt", 2, "(line)", "expected UTF-8 text, found invalid byte 0xe7"),
            ("pages_bad/utf16.txt", None, "(page)", "…"),
        ),
        options=("--format", "page"),
    ),
    ImportCase(("bom.jsonl", "utf16.jsonl"), 2, None, expect="error: {1}: …"),
    ImportCase(("corrupt.jsonl.gz",), 2, None, expect="error: {0}: …"),
    ImportCase(
        ("missing_column.csv",),
        2,
        None,
        options=("--format", "csv"),
        expect="error: {0}:1: header: …",
    ),
    ImportCase(
        ("a_directory.jsonl",),
        2,
        None,
        expect="error: {0}: is a directory; --format jsonl expects files",
    ),
    ImportCase(
        ("a_directory.jsonl",),
        2,
        None,
        options=("--format", "page"),
        expect="error: {0}: is a directory without page files (*.txt); pass a folder of raw pages, "
        "or the data files themselves",
    ),
    ImportCase(("no_such_file.jsonl",), 2, None, expect="error: {0}: …"),
]


@pytest.mark.parametrize(
    "case", IMPORT, ids=["+".join(c.sources) + f"-{c.options[1]}" for c in IMPORT]
)
def test_import(case: ImportCase, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = naba("data", "import", *(bad(s) for s in case.sources), *case.options, "-o", out)
    assert result.exit_code == case.code, result.output
    if case.code == 2:
        line = the_error(result)
        assert line.startswith(
            case.expect.format(*(bad(s) for s in case.sources)).removesuffix("…")
        ), line
        assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left behind
        return
    assert len(out.read_text(encoding="utf-8").splitlines()) == case.written
    errors_file = tmp_path / "out.errors.jsonl"
    errors = (
        [json.loads(line) for line in errors_file.read_text(encoding="utf-8").splitlines()]
        if errors_file.exists()
        else []
    )
    assert len(errors) == len(case.errors)
    for record, (name, line, field_, message) in zip(errors, case.errors):
        assert (record["file"], record["line"], record["field"]) == (str(bad(name)), line, field_)
        assert record["error"].startswith(message.removesuffix("…")), record
        where = f"{bad(name)}:{line}" if line is not None else str(bad(name))
        assert f"  {where}: {field_}: {record['error']}" in result.stderr.splitlines()
    assert (case.code == 1) == bool(errors)


def test_import_a_1mb_article(big: Path, tmp_path: Path) -> None:
    result = naba("data", "import", big, "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    rows = [
        json.loads(line)
        for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [len(r["text"].encode("utf-8")) > 1_000_000 for r in rows] == [True, False]


def test_a_1mb_article_in_csv_is_one_field(big: Path, tmp_path: Path) -> None:
    # The csv module's own limit is 128 kB a field; naba raises it so that long articles read.
    import csv

    row = json.loads(big.read_text(encoding="utf-8").splitlines()[0])
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows(
            [
                ["id", "text", "topics"],
                [row["id"], row["text"], "energy"],
                ["2", "نص قصير", "sports"],
            ]
        )
    result = naba("data", "validate", path)
    assert result.stdout.splitlines() == [f"{path}: 2 rows, 2 valid, 0 problems"]


# --------------------------------------------------------------- naba train (fails before any step)


@pytest.fixture(scope="module")
def train_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("train-bad")


def _train(config: Path, out: Path, *options: str):
    result = naba("train", config, "-o", out, "--no-progress", *options)
    assert result.exit_code == 2, result.output
    # Nothing written: no model directory, no work directory.
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()
    return the_error(result)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("config_empty.yaml", "error: {f}: …"),
        (
            "config_truncated.yaml",
            "error: {f}:5: invalid YAML: …",
        ),
        (
            "config_latin1.yaml",
            "error: {f}: not UTF-8 text (… at byte 12); re-save it as UTF-8",
        ),
        ("config_unknown_key.yaml", "error: {f}: …"),
        ("a_directory.jsonl", "error: {f}: …"),
        ("no_such_config.yaml", "error: {f}: …"),
    ],
)
def test_train_bad_config(name: str, message: str, train_dir: Path) -> None:
    assert pinned(_train(bad(name), train_dir / f"model-{name}"), message.format(f=bad(name)))


TRAIN_DATA = [
    # (task, split, corpus file, the one-line error)
    (
        "topic",
        "train",
        "truncated.jsonl",
        "error: {f}:2: (json): expected a JSON object, found invalid JSON (… at column 24) "
        "(run `naba data validate {f} --task topic` to list every problem)",
    ),
    (
        "topic",
        "train",
        "topics_string.jsonl",
        'error: {f}:1: topics: expected a list of labels, found the string "energy"; write it '
        'as a list, e.g. ["energy"] (run `naba data validate {f} --task topic` to list every '
        "problem)",
    ),
    (
        "topic",
        "train",
        "latin1.jsonl",
        "error: {f}:2: (line): expected UTF-8 text, found invalid byte 0xe9 at column 28; re-save "
        "the file as UTF-8 (run `naba data validate {f} --task topic` to list every problem)",
    ),
    ("topic", "train", "utf16.jsonl", "error: {f}: …"),
    ("topic", "train", "empty.jsonl", "error: {f}: no records; expected at least one topic row"),
    ("topic", "train", "a_directory.jsonl", "error: {f}: …"),
    ("topic", "train", "no_such_file.jsonl", "error: {f}: …"),
    ("topic", "train", "missing_column.csv", "error: {f}:1: header: …"),
    (
        "topic",
        "dev",
        "unknown_topic.jsonl",
        "error: {f}:1: topics: labels ['weather'] are not in the training label set …",
    ),
    ("stance", "train", "stance_no_target.jsonl", "error: {f}:1: target: …"),
    ("stance", "test", "stance_unknown_label.jsonl", "error: {f}:1: stance: …"),
]


@pytest.mark.parametrize(
    ("task", "split", "name", "message"),
    TRAIN_DATA,
    ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TRAIN_DATA],
)
def test_train_bad_data(
    task: str,
    split: str,
    name: str,
    message: str,
    train_dir: Path,
    tiny_encoder: Path,
    small_data: dict[str, Path],
) -> None:
    # Both tasks configured, the bad file in one: it is found before the other task trains.
    tasks = {
        t: {s: str(small_data[f"{t}_{s}"]) for s in ("train", "dev", "test")}
        for t in ("topic", "stance")
    }
    tasks[task][split] = str(bad(name))
    config = write_config(train_dir / f"{task}-{split}-{name}.yaml", tiny_encoder, tasks)
    line = _train(config, train_dir / f"model-{task}-{split}-{name}")
    assert pinned(line, message.format(f=bad(name))), line


def test_train_refuses_pickle_weights(
    train_dir: Path, tiny_encoder: Path, small_data: dict[str, Path]
) -> None:
    base = _pickled(tiny_encoder, train_dir / "pickled-encoder")
    tasks = {"topic": {s: str(small_data[f"topic_{s}"]) for s in ("train", "dev", "test")}}
    config = write_config(train_dir / "pickled.yaml", base, tasks)
    assert pinned(_train(config, train_dir / "model-pickled"), f"error: {base}: …")


def _pickled(source: Path, dest: Path) -> Path:
    """A copy of an HF directory with its safetensors weights turned into
    a pickle ``pytorch_model.bin``."""
    import torch
    from safetensors.torch import load_file

    if not dest.exists():
        shutil.copytree(source, dest)
        torch.save(load_file(str(dest / "model.safetensors")), dest / "pytorch_model.bin")
        (dest / "model.safetensors").unlink()
    return dest


# ----------------------------------------------------------------------------- model directories


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory: pytest.TempPathFactory, trained_model: Path) -> dict[str, Path]:
    """Damaged copies of the trained model directory, built at test time (the committed
    ones are under tests/badinput/)."""
    d = tmp_path_factory.mktemp("broken-models")
    models = {}
    # Only pickle weights in the topic task directory.
    models["pickle"] = d / "pickle"
    shutil.copytree(trained_model, models["pickle"])
    shutil.rmtree(models["pickle"] / "topic")
    _pickled(trained_model / "topic", models["pickle"] / "topic")
    # Weights cut short (a copy interrupted), a config.json that is not
    # JSON, a missing task directory.
    for name, damage in (
        ("truncated-weights", lambda m: _truncate(m / "topic" / "model.safetensors")),
        (
            "corrupt-config",
            lambda m: (m / "stance" / "config.json").write_text("{", encoding="utf-8"),
        ),
        ("missing-task", lambda m: shutil.rmtree(m / "stance")),
        ("interrupted", lambda m: (m / ".incomplete").touch()),
    ):
        models[name] = d / name
        shutil.copytree(trained_model, models[name])
        damage(models[name])
    return models


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


MODEL_DIRS = [
    (
        "model_no_manifest",
        "error: {m}/naba.json: missing; {m} is not a naba model directory "
        "(train one with `naba train`)",
    ),
    (
        "model_corrupt_manifest",
        "error: {m}/naba.json: corrupt manifest (…); retrain or restore the model directory",
    ),
    ("model_newer_format", "error: {m}/naba.json: …"),
    (
        "model_bad_schema",
        "error: {m}/naba.json: tasks.topic.labels: …valid list; the manifest is damaged, "
        "retrain or restore it",
    ),
    (
        "a_directory.jsonl",
        "error: {m}/naba.json: missing; {m} is not a naba model directory "
        "(train one with `naba train`)",
    ),
    (
        "empty.jsonl",
        "error: {m}: is a file, expected a model directory (pass the directory `naba train` wrote)",
    ),
    (
        "no_such_model",
        "error: {m}: model directory not found; pass the directory `naba train` wrote",
    ),
]


@pytest.mark.parametrize(("name", "message"), MODEL_DIRS, ids=[m[0] for m in MODEL_DIRS])
@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_bad_model_directory(
    command: str, name: str, message: str, tmp_path: Path, small_data: dict[str, Path]
) -> None:
    model = bad(name)
    args = {
        "predict": (
            "predict",
            model,
            small_data["topic_test"],
            "-o",
            tmp_path / "out.jsonl",
            "--no-progress",
        ),
        "evaluate": ("evaluate", model, small_data["topic_test"], "-o", tmp_path / "report"),
        "serve": ("serve", model, "--port", "0"),
    }[command]
    result = naba(*args)
    assert result.exit_code == 2, result.output
    assert pinned(the_error(result), message.format(m=model))
    assert list(tmp_path.iterdir()) == []


BROKEN = [
    ("pickle", "error: {m}/topic: …"),
    ("truncated-weights", "error: {m}/topic: cannot load the model (SafetensorError: "),
    ("corrupt-config", "error: {m}/stance: cannot load the model (OSError: "),
    ("missing-task", "error: {m}/stance: …"),
    ("interrupted", "error: {m}: …"),
]


@pytest.mark.parametrize(("name", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_damaged_model_directory(
    name: str,
    message: str,
    broken_models: dict[str, Path],
    small_data: dict[str, Path],
    tmp_path: Path,
) -> None:
    model = broken_models[name]
    result = naba(
        "predict", model, small_data["topic_test"], "-o", tmp_path / "out.jsonl", "--no-progress"
    )
    assert result.exit_code == 2, result.output
    line = the_error(result)
    assert line.startswith(message.format(m=model).removesuffix("…")), line
    if not message.endswith("…"):
        assert line.endswith("retrain or restore it"), line
    assert list(tmp_path.iterdir()) == []


def test_allow_pickle_loads_pickle_weights(
    broken_models: dict[str, Path], small_data: dict[str, Path], tmp_path: Path
) -> None:
    result = naba(
        "predict",
        broken_models["pickle"],
        small_data["topic_test"],
        "-o",
        tmp_path / "out.jsonl",
        "--no-progress",
        "--allow-pickle",
    )
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 24


# ----------------------------------------------------------------------------- naba predict

# Every row of these files, in order, and what becomes of it: an id predicted, or an error
# record (line, field, message start).
PREDICT_ROWS: list[tuple[str, list[tuple[str, object]]]] = [
    (
        "truncated.jsonl",
        [
            ("ok", "tr-1"),
            ("error", (2, "(json)", "expected a JSON object, found invalid JSON (Unterminated")),
        ],
    ),
    ("invalid_json.jsonl", [("error", (1, "(json)", "…")), ("ok", "ij-2")]),
    ("not_an_object.jsonl", [("error", (1, "(json)", "…"))]),
    (
        "nul_byte.jsonl",
        [
            (
                "error",
                (
                    1,
                    "(json)",
                    "expected a JSON object, found invalid JSON (Invalid control character",
                ),
            )
        ],
    ),
    (
        "deep_nesting.jsonl",
        [
            ("error", (1, "(json)", "expected a JSON object, found JSON nested too deeply")),
            ("ok", "dn-2"),
        ],
    ),
    (
        "huge_number.jsonl",
        [("error", (1, "(json)", "expected a JSON object, found a number with too many digits"))],
    ),
    ("latin1.jsonl", [("ok", "l1-1"), ("error", (2, "(line)", "…")), ("ok", "l1-3")]),
    ("invalid_utf8.jsonl", [("ok", "iu-1"), ("error", (2, "(line)", "…")), ("ok", "iu-3")]),
    ("bom.jsonl", [("ok", "bom-1")]),
    ("bom.csv", [("ok", "bom-2")]),
    ("empty_text.jsonl", [("error", (1, "text", "…"))]),
    ("whitespace_text.jsonl", [("error", (1, "text", "…"))]),
    ("missing_text.jsonl", [("error", (1, "text", "…"))]),
    ("text_number.jsonl", [("error", (1, "text", "expected a string, found int 2024"))]),
    ("bidi_only.jsonl", [("error", (1, "text", "…"))]),
    ("latin_only.jsonl", [("ok", "lo-1")]),
    ("emoji_only.jsonl", [("ok", "eo-1")]),
    ("bidi_controls.jsonl", [("ok", "bi-1")]),
    ("duplicate_ids.jsonl", [("ok", "dup"), ("ok", "dup")]),
    ("topics_string.jsonl", [("ok", "ts-1")]),  # labels are not read for prediction
    ("stance_no_target.jsonl", [("ok", "snt-1")]),  # scored against the model's default targets
    ("short_row.csv", [("error", (2, "(csv)", "…")), ("ok", "sr-2")]),
    (
        "unterminated_quote.csv",
        [
            (
                "error",
                (2, "(csv)", "expected 3 columns, found fewer in a record that runs from line 2"),
            )
        ],
    ),
    ("articles_latin1.txt", [("ok", "1"), ("error", (2, "(line)", "…")), ("ok", "3")]),
    ("empty.jsonl", []),
    ("blank_lines.jsonl", []),
    (
        "pages_bad",
        [
            ("error", (None, "(page)", "…")),  # empty.txt
            ("ok", "good-0"),
            ("error", (None, "article 0", "…")),  # headline_only.txt
            ("error", (2, "(line)", "expected UTF-8 text, found invalid byte 0xe7")),  # latin1.txt
            ("error", (None, "(page)", "…")),
        ],
    ),  # utf16.txt
]


def test_predict_every_row_is_a_prediction_or_an_error_record(
    trained_model: Path, big: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inputs = [bad(name) for name, _ in PREDICT_ROWS] + [big]
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING, logger="naba.infer.predict"):
        result = naba(
            "predict",
            trained_model,
            *inputs,
            "-o",
            out,
            "--chunk-size",
            "7",
            "--no-progress",
            "--all-targets",
        )
    expected = [(kind, what) for _, rows in PREDICT_ROWS for kind, what in rows] + [
        ("ok", "big-1"),
        ("ok", "big-2"),
    ]
    ids = [what for kind, what in expected if kind == "ok"]
    problems = [what for kind, what in expected if kind == "error"]
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        f"{len(expected)} rows: {len(ids)} predictions in {out}, {len(problems)} errors"
    ]
    assert result.stderr.splitlines()[-1] == (
        f"{len(problems)} rows could not be classified; reasons in {tmp_path / 'out.errors.jsonl'}"
    )
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ids  # input order, nothing lost, nothing twice
    for row in rows:
        assert row["topics"]["labels"] and set(row["topics"]["scores"]) and row["stance"]
    errors = [
        json.loads(line)
        for line in (tmp_path / "out.errors.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(e["line"], e["field"]) for e in errors] == [
        (line, field_) for line, field_, _ in problems
    ]
    for record, (_, _, message) in zip(errors, problems):
        assert record["error"].startswith(message.removesuffix("…")), record
        assert Path(record["file"]).resolve().is_relative_to(BAD)
    # an error record keeps the row's id when the row had one
    assert {e["id"] for e in errors if e["field"] == "text"} == {
        "et-1",
        "ws-1",
        "mt-1",
        "tn-1",
        "bo-1",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.errors.jsonl", "out.jsonl"]
    # an input with no rows is named, not passed over in silence
    assert [r.getMessage() for r in caplog.records if r.name == "naba.infer.predict"] == [
        f"warning: {bad(name)}: no rows (the file is empty or blank); nothing to classify in it"
        for name in ("empty.jsonl", "blank_lines.jsonl")
    ]


def test_predict_on_only_an_empty_file_warns_and_writes_an_empty_output(
    trained_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING, logger="naba.infer.predict"):
        result = naba("predict", trained_model, bad("empty.jsonl"), "-o", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"0 rows: 0 predictions in {out}, 0 errors"]
    assert [r.getMessage() for r in caplog.records if r.name == "naba.infer.predict"] == [
        f"warning: {bad('empty.jsonl')}: no rows (the file is empty or blank); nothing to classify "
        "in it"
    ]
    assert out.read_bytes() == b""


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (("bom.jsonl", "utf16.jsonl"), "error: {1}: …"),
        (("missing_column.csv",), "error: {0}:1: header: …"),
        (
            ("a_directory.jsonl",),
            "error: {0}: is a directory without page files (*.txt); pass a folder of raw pages, "
            "or the data files themselves",
        ),
        (("bom.jsonl", "no_such_file.jsonl"), "error: {1}: …"),
        (
            ("corrupt.jsonl.gz",),
            "error: {0}: corrupt gzip file (…); re-create or re-download it",
        ),
    ],
)
def test_predict_unusable_input(
    inputs: tuple[str, ...], message: str, trained_model: Path, tmp_path: Path
) -> None:
    paths = [bad(name) for name in inputs]
    result = naba("predict", trained_model, *paths, "-o", tmp_path / "out.jsonl", "--no-progress")
    assert result.exit_code == 2, result.output
    assert pinned(the_error(result), message.format(*paths))
    # Nothing written: it failed before a row was done, so no partial files are left either.
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_predict_with_a_column_mapping(trained_model: Path, tmp_path: Path) -> None:
    result = naba(
        "predict",
        trained_model,
        bad("renamed_column.csv"),
        "--text-column",
        "Text",
        "-o",
        tmp_path / "out.csv",
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.csv").read_text(encoding="utf-8").splitlines()[1].startswith("rc-1,")


# ----------------------------------------------------------------------------- naba evaluate

EVALUATE = [
    (
        "unknown_topic.jsonl",
        "topic",
        "error: {f}:1: topics: labels ['weather'] are not among the model's labels ['culture', "
        "'economy', 'energy', 'health', 'politics', 'security', 'sports', 'technology'] (1 row has "
        "them); map them or evaluate a model trained on them",
    ),
    (
        "stance_unknown_label.jsonl",
        "stance",
        "error: {f}:1: stance: labels ['support'] are not among the model's labels "
        "['against', 'favor', 'none'] (1 row has them); map them or evaluate a model "
        "trained on them",
    ),
    (
        "stance_no_target.jsonl",
        "stance",
        "error: {f}:1: target: expected a non-empty string, found no 'target' field (run "
        "`naba data validate {f} --task stance` to list every problem)",
    ),
    (
        "truncated.jsonl",
        "topic",
        "error: {f}:2: (json): expected a JSON object, found invalid JSON (… at column 24) "
        "(run `naba data validate {f} --task topic` to list every problem)",
    ),
    (
        "topics_string.jsonl",
        "topic",
        'error: {f}:1: topics: expected a list of labels, found the string "energy"; write it as a '
        'list, e.g. ["energy"] (run `naba data validate {f} --task topic` to list every problem)',
    ),
    ("empty.jsonl", "topic", "error: {f}: no records; expected at least one topic row"),
    ("utf16.jsonl", "topic", "error: {f}: …"),
    ("a_directory.jsonl", "topic", "error: {f}: …"),
    ("no_such_file.jsonl", "topic", "error: {f}: …"),
]


@pytest.mark.parametrize(
    ("name", "task", "message"), EVALUATE, ids=[f"{e[0]}-{e[1]}" for e in EVALUATE]
)
@pytest.mark.parametrize("with_task", [True, False], ids=["task", "detected"])
def test_evaluate_bad_data(
    name: str, task: str, message: str, with_task: bool, trained_model: Path, tmp_path: Path
) -> None:
    # Without --task, the task comes from the data (a "stance" field) since the model has both.
    options = ("--task", task) if with_task else ()
    result = naba("evaluate", trained_model, bad(name), "-o", tmp_path / "report", *options)
    assert result.exit_code == 2, result.output
    assert pinned(the_error(result), message.format(f=bad(name)))
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------------------------- the Python API and the HTTP service

ODD_TEXTS = {
    "empty": "",
    "whitespace": "  \n\t ",
    "emoji": "🛢️📈🔥 ⚽🏆",
    "latin": "Oil prices rose after OPEC cut production",
    "bidi": "\u202bارتفعت أسعار \u200fالنفط\u202c",
    "bidi-only": "\u202b\u200f\u2069",
    "digits": "١٢٣ 456",
    "tatweel": "ـــــ",
    "nul": "نص\x00نص",
    "one-letter": "ن",
}


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


BLANK = ("empty", "whitespace", "bidi-only")  # nothing to classify: refused by every door alike


def test_classifier_classifies_odd_texts(clf, big: Path) -> None:
    article = json.loads(big.read_text(encoding="utf-8").splitlines()[0])["text"]
    texts = [text for name, text in ODD_TEXTS.items() if name not in BLANK] + [article]
    results = clf.predict(texts, all_targets=True)
    assert len(results) == len(texts)
    for result in results:
        assert result["topics"]["labels"]  # at_least_one
        assert set(result["topics"]["scores"]) == set(clf.labels["topic"])
        assert [s["target"] for s in result["stance"]] == clf.tasks["stance"].spec.default_targets
    # one result per text, whatever its neighbours: the odd ones do not disturb a batch
    assert (
        results[1]["topics"]["labels"] == clf.predict([ODD_TEXTS["latin"]])[0]["topics"]["labels"]
    )


@pytest.mark.parametrize("name", BLANK)
def test_classifier_refuses_blank_texts_as_predict_does(clf, name: str) -> None:
    from naba.errors import NabaError

    with pytest.raises(
        NabaError, match=re.escape("article 1: text: ")
    ):  # the wording: test_infer.py
        clf.predict(["نص سليم", ODD_TEXTS[name]])


@pytest.mark.parametrize(
    ("article", "message"),
    [
        (None, "article 1: expected a string or a record with a 'text' string, found NoneType"),
        (
            {"title": "عنوان"},
            "article 1: expected a string or a record with a 'text' string, found dict",
        ),
        (
            {"text": ["نص"]},
            "article 1: expected a string or a record with a 'text' string, found dict",
        ),
    ],
)
def test_classifier_rejects_what_is_not_an_article(clf, article: object, message: str) -> None:
    from naba.errors import NabaError

    with pytest.raises(NabaError, match=re.escape(message)):
        clf.predict(["نص سليم", article])


@pytest.mark.parametrize(
    ("name", "message"), [(m[0], m[1].removeprefix("error: ")) for m in MODEL_DIRS]
)
def test_classifier_load_bad_model_directory(name: str, message: str) -> None:
    from naba.errors import ModelDirError
    from naba.infer.classifier import Classifier

    with pytest.raises(ModelDirError) as info:
        Classifier.load(bad(name))
    assert pinned(str(info.value), message.format(m=bad(name)))


@pytest.fixture(scope="module")
def client(clf):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from naba.serve.app import create_app

    # The default limits, as `naba serve` has them.
    with TestClient(create_app(clf), raise_server_exceptions=False) as c:
        yield c


def _jsonl_rows() -> list[tuple[str, dict]]:
    """Every decodable JSON object in the corpus, as a client might post it."""
    rows = []
    for path in sorted(BAD.rglob("*.jsonl")):
        if path.is_file():
            for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
                try:
                    value = json.loads(raw)
                except (ValueError, RecursionError):
                    continue
                if isinstance(value, dict):
                    rows.append((f"{path.name}:{number}", value))
    return rows


def test_service_answers_every_corpus_row(client) -> None:
    rows = _jsonl_rows()
    assert len(rows) >= 20
    for where, row in rows:
        response = client.post("/v1/classify", json={"articles": [row]})
        text = row.get("text")
        if isinstance(text, str) and text.strip() and not is_blank(text):
            assert response.status_code == 200, (where, response.text)
            assert response.json()["results"][0]["topics"]["labels"]
        elif isinstance(
            text, str
        ):  # empty, whitespace or invisible only: rejected as predict rejects it
            assert response.status_code == 422, (where, response.text)
            assert response.json()["detail"][0]["msg"].startswith(
                "article 0: text: "
            )  # the wording: test_serve.py
        else:
            assert response.status_code == 422, (where, response.text)
            assert response.json()["detail"][0]["loc"][:3] == ["body", "articles", 0]


@pytest.mark.parametrize(
    "name",
    [
        "utf16.jsonl",
        "latin1.jsonl",
        "invalid_utf8.jsonl",
        "deep_nesting.jsonl",
        "huge_number.jsonl",
        "nul_byte.jsonl",
        "truncated.jsonl",
        "not_an_object.jsonl",
        "corrupt.jsonl.gz",
        "empty.jsonl",
        "pages_bad/utf16.txt",
        "bom.csv",
    ],
)
def test_service_bad_bodies_are_422_with_a_json_error(client, name: str) -> None:
    response = client.post(
        "/v1/classify", content=bad(name).read_bytes(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail and all(item["msg"] and item["loc"][0] == "body" for item in detail)


def test_service_refuses_a_1mb_article_with_the_limit_named(client, big: Path) -> None:
    article = json.loads(big.read_text(encoding="utf-8").splitlines()[0])
    response = client.post("/v1/classify", json={"articles": ["نص قصير", article]})
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error["type"] == "text_too_long"
    assert error["msg"] == (
        f"article 1: text is {len(article['text'])} characters, the limit is 100000 "
        "(max_text_chars); "
        "shorten the article or split it"
    )


# ----------------------------------------------------------------------------- the real entry point


def _real(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "naba", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **ENV_OFFLINE},
    )


@pytest.mark.parametrize(
    ("args", "code", "last"),
    [
        (
            ("data", "validate", "tests/badinput/deep_nesting.jsonl"),
            1,
            "tests/badinput/deep_nesting.jsonl: 2 rows, 1 valid, 1 problems",
        ),
        (
            ("data", "validate", "tests/badinput/huge_number.jsonl"),
            1,
            "tests/badinput/huge_number.jsonl: 1 rows, 0 valid, 1 problems",
        ),
        (
            ("data", "validate", "tests/badinput/utf16.jsonl"),
            2,
            "error: tests/badinput/utf16.jsonl: …",
        ),
        (
            (
                "data",
                "import",
                "tests/badinput/pages_bad",
                "--format",
                "page",
                "-o",
                "{tmp}/pages.jsonl",
            ),
            1,
            "  tests/badinput/pages_bad/utf16.txt: (page): …",
        ),
    ],
)
def test_real_entry_point_never_prints_a_traceback(
    args: tuple[str, ...], code: int, last: str, tmp_path: Path
) -> None:
    proc = _real(*(a.format(tmp=tmp_path) for a in args))
    assert "Traceback" not in proc.stderr
    assert proc.returncode == code, proc.stderr
    assert pinned(proc.stderr.splitlines()[-1], last)


# ----------------------------------------------------------------------------- naba encoder tiny


@pytest.mark.parametrize(
    ("corpus", "message"),
    [
        ("nope.txt", "error: {c}: corpus file not found"),
        ("empty.txt", "error: {c}: no text to train a tokenizer on"),
    ],
)
def test_encoder_tiny_bad_corpus_writes_nothing(corpus: str, message: str, tmp_path: Path) -> None:
    source = tmp_path / "in" / corpus
    source.parent.mkdir()
    if corpus == "empty.txt":
        source.write_text("\n  \n", encoding="utf-8")
    out = tmp_path / "out"
    result = naba("encoder", "tiny", "--corpus", source, "-o", out / "tiny")
    assert result.exit_code == 2, result.output
    assert the_error(result) == message.format(c=source)
    assert not out.exists()

"""``naba init`` writes a commented config from the user's own file;
``naba train --dry-run`` checks it."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import SAMPLE
from naba.cli import app
from naba.config import load_config
from naba.data.columns import label_separator
from naba.errors import InputError
from naba.train.init import InitOptions, build_config, choose_windows


def news_csv(
    path: Path, split: str = "train", n: int = 60, header=("Article ID", "Body", "Section")
):
    """Rows of the sample topic split under the user's own column
    names; several topics joined by '|'."""
    lines = (SAMPLE / "topic" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(lines[int(i * len(lines) / n)]) for i in range(min(n, len(lines)))]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in rows:
            writer.writerow([r["id"], r["text"], "|".join(r["topics"])])
    return path


def run(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_init_reads_a_csv_with_its_own_column_names(tmp_path, tiny_encoder):
    train = news_csv(tmp_path / "news.csv")
    config = tmp_path / "news.yaml"
    result = run("init", config, "--train", train, "--base", tiny_encoder)
    assert result.exit_code == 0, result.output
    assert "next: naba train" in result.output
    cfg = load_config(config)
    topic = cfg.tasks.topic
    assert cfg.tasks.stance is None
    assert (topic.columns.id_column, topic.columns.text_column) == ("Article ID", "Body")
    assert (topic.columns.label_column, topic.columns.label_separator) == ("Section", "|")
    assert topic.labels == sorted(
        {"culture", "economy", "energy", "health", "politics", "security", "sports", "technology"}
    )
    assert topic.multi_label is True  # the sample has articles with two topics
    assert topic.dev is None and topic.dev_fraction == 0.15
    # Every key that holds a value says why.
    valued = [line for line in config.read_text(encoding="utf-8").splitlines() if ": " in line]
    assert valued and all("  # " in line for line in valued if not line.startswith("#"))


def test_init_then_dry_run_names_the_labels_and_writes_nothing(tmp_path, tiny_encoder):
    train = news_csv(tmp_path / "news.csv")
    config = tmp_path / "news.yaml"
    assert run("init", config, "--train", train, "--base", tiny_encoder).exit_code == 0
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run("train", config, "--dry-run", "-o", tmp_path / "model")
    assert result.exit_code == 0, result.output
    assert "topic labels (training articles): culture " in result.output
    assert re.search(r"topic steps: \d+ an epoch x \d+ epochs = \d+", result.output)
    assert "an epoch (" in result.output  # the measured estimate
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_init_refuses_to_replace_a_config(tmp_path, tiny_encoder):
    train = news_csv(tmp_path / "news.csv")
    config = tmp_path / "news.yaml"
    config.write_text("mine", encoding="utf-8")
    result = run("init", config, "--train", train, "--base", tiny_encoder)
    assert result.exit_code == 2
    assert f"error: {config}: already exists; pass --overwrite to replace it" in result.output
    assert config.read_text(encoding="utf-8") == "mine"


def test_a_misspelt_column_gets_the_validate_hint(tmp_path, tiny_encoder):
    train = news_csv(tmp_path / "news.csv")
    result = run(
        "init",
        tmp_path / "c.yaml",
        "--train",
        train,
        "--base",
        tiny_encoder,
        "--text-column",
        "body",
    )
    assert result.exit_code == 2
    assert "expected a 'body' column" in result.output
    assert "did you mean 'Body'?" in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_a_text_column_it_cannot_name_is_one_line_naming_the_flag(tmp_path, tiny_encoder):
    path = tmp_path / "odd.csv"
    path.write_text(
        "a,b,Section\n" + "".join(f"first words {i},second words {i},x{i % 2}\n" for i in range(8)),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=re.escape("pass --text-column NAME")):
        build_config(InitOptions(train=path, base=str(tiny_encoder)), tmp_path / "c.yaml")


def test_init_finds_stance_from_a_target_column(tmp_path, tiny_encoder):
    result = run(
        "init",
        tmp_path / "s.yaml",
        "--train",
        SAMPLE / "stance" / "train.jsonl",
        "--base",
        tiny_encoder,
    )
    assert result.exit_code == 0, result.output
    cfg = load_config(tmp_path / "s.yaml")
    assert cfg.tasks.topic is None
    assert cfg.tasks.stance.unrelated is True  # 'none' is among the labels
    assert cfg.tasks.stance.labels == ["against", "favor", "none"]


def test_init_writes_the_stance_target_map_to_fill_in(tmp_path, tiny_encoder):
    from naba.data.targets import load_target_descriptions

    rows = [
        json.loads(line)
        for line in (SAMPLE / "stance" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    renamed = {t: f"target_{i}" for i, t in enumerate(sorted({r["target"] for r in rows}))}
    first = next(iter(renamed))
    data = tmp_path / "ids.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {**r, "target": renamed[r["target"]] if r["target"] != first else first},
                ensure_ascii=False,
            )
            + "\n"
            for r in rows
        ),
        encoding="utf-8",
    )
    result = run("init", tmp_path / "s.yaml", "--train", data, "--base", tiny_encoder)
    assert result.exit_code == 0, result.output
    target_map = tmp_path / "s.targets.yaml"
    assert f"targets: describe them in {target_map}" in result.output
    cfg = load_config(tmp_path / "s.yaml")
    assert Path(cfg.tasks.stance.targets) == target_map
    text = target_map.read_text(encoding="utf-8")
    ids = sorted(renamed[t] for t in renamed if t != first)
    assert f"# {len(ids)} of {len(renamed)} targets look like identifiers: describe those." in text
    listed = [line.split(":")[0][2:] for line in text.splitlines() if line.startswith('# "')]
    assert listed == [json.dumps(t, ensure_ascii=False) for t in ids + [first]]
    assert load_target_descriptions(target_map) == {}  # nothing filled in yet
    # Filled in, it is the map training reads; naba init again keeps it.
    filled = text.replace(f'# "{ids[0]}":', f'"{ids[0]}": قيادة المرأة للسيارة')
    target_map.write_text(filled, encoding="utf-8")
    assert load_target_descriptions(target_map) == {ids[0]: ["قيادة المرأة للسيارة"]}
    again = run("init", tmp_path / "s.yaml", "--train", data, "--base", tiny_encoder, "--overwrite")
    assert again.exit_code == 0, again.output
    assert target_map.read_text(encoding="utf-8") == filled


def test_init_writes_no_target_map_for_topics(tmp_path, tiny_encoder):
    result = run(
        "init",
        tmp_path / "t.yaml",
        "--train",
        SAMPLE / "topic" / "train.jsonl",
        "--base",
        tiny_encoder,
    )
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "t.targets.yaml").exists()


@pytest.mark.parametrize(
    ("cells", "sep"),
    [
        (["economy|energy", "sports"], "|"),
        (["economy; energy", "sports"], ";"),
        (["economy", "sports"], None),
        (["a long sentence, with a comma in the middle of it and more words after", "x"], None),
    ],
)
def test_label_separator(cells, sep):
    assert label_separator(cells) == sep


def test_windows_follow_the_measured_lengths():
    short = choose_windows(sorted([40] * 80 + [100] * 20), longest=512)
    assert (short["length"].value, short["max_windows"].value) == (128, 1)
    long = choose_windows(sorted([600] * 100), longest=512)
    assert long["length"].value == 256 and long["max_windows"].value == 3
    assert yaml.safe_load("x: 5.0e-5")["x"] == 5e-5  # the form init writes floats in


def test_dry_run_bad_data_is_one_line(tmp_path, tiny_encoder):
    train = tmp_path / "bad.jsonl"
    train.write_text('{"id": "1", "text": "نص", "topics": ["a"]}\nnot json\n', encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {"tasks": {"topic": {"train": str(train)}}, "model": {"base": str(tiny_encoder)}}
        ),
        encoding="utf-8",
    )
    result = run("train", config, "--dry-run", "-o", tmp_path / "m")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {train}:2: (json): expected a JSON object")
    assert not (tmp_path / "m").exists()


def test_a_registered_plan_check_warns(tmp_path, tiny_encoder, monkeypatch):
    from naba.train import plan as plan_module

    monkeypatch.setattr(plan_module, "PLAN_CHECKS", [*plan_module.PLAN_CHECKS])
    plan_module.plan_check(lambda config, plan: [f"{len(plan.tasks)} task checked"])
    train = news_csv(tmp_path / "news.csv", n=30)
    assert run("init", tmp_path / "c.yaml", "--train", train, "--base", tiny_encoder).exit_code == 0
    plan = plan_module.plan_training(
        load_config(tmp_path / "c.yaml"), tmp_path / "m", measure=False
    )
    assert "1 task checked" in plan.warnings
    assert "warning: 1 task checked" in plan.lines()


def test_evaluate_reads_a_file_laid_out_like_the_training_data(tmp_path):
    from naba.config import ColumnsConfig
    from naba.data.columns import recorded_columns

    mapped = {"text_column": "Body", "id_column": "Article ID", "label_column": "Section"}
    trained = {"tasks": {"topic": {"columns": {**ColumnsConfig().model_dump(), **mapped}}}}
    csv_file = news_csv(tmp_path / "test.csv", "test", n=5)
    found = recorded_columns(trained, "topic", csv_file)
    assert found is not None and (found.text_column, found.label_column) == ("Body", "Section")
    canonical = SAMPLE / "topic" / "test.jsonl"
    assert recorded_columns(trained, "topic", canonical) is None  # no 'Body': read as canonical
    assert recorded_columns({"tasks": {"topic": {}}}, "topic", csv_file) is None

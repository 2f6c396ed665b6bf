"""naba.config: typed YAML loading, --set overrides and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import Elided
from naba.config import NabaConfig, WindowConfig, load_config, save_config
from naba.config_loading import ConfigError, parse_overrides

MINIMAL = "tasks:\n  topic:\n    train: x.jsonl\n"


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.tasks.topic is not None and cfg.tasks.topic.train == Path("x.jsonl")
    assert cfg.tasks.stance is None
    assert cfg.seed == 13
    assert cfg.train.learning_rate == 5e-5
    assert cfg.model.window.length == 256 and cfg.model.window.stride == 64
    assert cfg.normalization.urls == "token"


def test_yaml_scientific_notation_becomes_float(tmp_path: Path) -> None:
    # PyYAML reads 2e-5 (no dot) as a string; the model must coerce it.
    cfg = load_config(write(tmp_path, MINIMAL + "train:\n  learning_rate: 2e-5\n"))
    assert isinstance(cfg.train.learning_rate, float)
    assert cfg.train.learning_rate == 2e-5


def test_overrides_are_typed(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, MINIMAL),
        [
            "train.learning_rate=3e-5",
            "train.mixed_precision=bf16",
            "model.window.length=512",
            "thresholds.tune=false",
            "seed=7",
        ],
    )
    assert isinstance(cfg.train.learning_rate, float) and cfg.train.learning_rate == 3e-5
    assert cfg.train.mixed_precision == "bf16"
    assert cfg.model.window.length == 512
    assert cfg.thresholds.tune is False
    assert cfg.seed == 7
    # untouched siblings keep their values
    assert cfg.train.batch_size == 16


def test_override_replaces_file_value(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, MINIMAL + "train:\n  epochs: 5\n  batch_size: 4\n"), ["train.epochs=1"]
    )
    assert cfg.train.epochs == 1 and cfg.train.batch_size == 4


def test_parse_overrides() -> None:
    assert parse_overrides(["a.b=1", "a.c=x", "d=", "e=k=v"]) == {
        "a": {"b": 1, "c": "x"},
        "d": "",
        "e": "k=v",
    }


def test_misspelt_key_names_file_and_key_with_hint(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  learnig_rate: 1e-5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (
        str(info.value)
        == f"{path}: train.learnig_rate: unknown key (did you mean 'learning_rate'?)"
    )
    assert "\n" not in str(info.value)


def test_misspelt_nested_key_inside_optional_section(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks:\n  topic:\n    trian: x.jsonl\n    train: x.jsonl\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(f"{path}: tasks.topic.trian: unknown key (did you mean 'train'?)"),
    ):
        load_config(path)


def test_unknown_key_without_close_match_has_no_hint(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "zzzz: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: zzzz: unknown key"


def test_misspelt_override_names_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["model.window.strid=3"])
    assert (
        str(info.value) == f"{path} (with --set overrides): model.window.strid: "
        "unknown key (did you mean 'stride'?)"
    )


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  batch_size: many\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == Elided(f"{path}: train.batch_size: …valid integer… (found 'many')")


def test_out_of_range_value(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(
        ConfigError,
        match=Elided("train.learning_rate: …greater than 0 (found -1)").pattern,
    ):
        load_config(path, ["train.learning_rate=-1"])


def test_several_problems_one_line_each(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "train:\n  batch_size: 0\n  epocs: 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines == [
        Elided(f"{path}: train.batch_size: …greater than or equal to 1 (found 0)"),
        f"{path}: train.epocs: unknown key (did you mean 'epochs'?)",
    ]


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks:\n  topic:\n    train: [x.jsonl\nseed: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == Elided(f"{path}:4: invalid YAML: …")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=re.escape(f"{path}: config file not found")):
        load_config(path)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"{tmp_path}: is a directory, expected a YAML config file")
    ):
        load_config(tmp_path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"seed: 1 # caf\xe9\n")
    with pytest.raises(
        ConfigError,
        match=Elided(f"{path}: not UTF-8 text (… at byte 13)").pattern,
    ):
        load_config(path)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    with pytest.raises(
        ConfigError,
        match=re.escape(f"{path}: expected a mapping of sections at the top level, found list"),
    ):
        load_config(path)


def test_empty_file_reports_missing_tasks(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: tasks: required key is missing"


def test_no_task_configured(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks: {}\n")
    with pytest.raises(
        ConfigError,
        match=Elided(f"{path}: tasks: …configure at least one task: topic or stance").pattern,
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "train.learning_rate",
            "--set 'train.learning_rate': expected KEY=VALUE with a dotted key, e.g. "
            "train.learning_rate=3e-5",
        ),
        ("=3", "--set '=3': expected KEY=VALUE with a dotted key, e.g. train.learning_rate=3e-5"),
        (
            "train..x=1",
            "--set 'train..x=1': expected KEY=VALUE with a dotted key, e.g. "
            "train.learning_rate=3e-5",
        ),
        (
            ".x=1",
            "--set '.x=1': expected KEY=VALUE with a dotted key, e.g. train.learning_rate=3e-5",
        ),
    ],
)
def test_bad_override_syntax(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, MINIMAL), [override])
    assert str(info.value) == message


def test_override_value_and_section_clash() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape("--set 'train.x=2': train is set both as a value and as a section"),
    ):
        parse_overrides(["train=1", "train.x=2"])


def test_eval_every_validator(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, MINIMAL), ["train.eval_every=50"]).train.eval_every == 50
    assert (
        load_config(write(tmp_path, MINIMAL), ["train.eval_every=epoch"]).train.eval_every
        == "epoch"
    )
    with pytest.raises(
        ConfigError,
        match=Elided(
            "train.eval_every: …must be 'epoch' or a positive number of steps (found 0)"
        ).pattern,
    ):
        load_config(write(tmp_path, MINIMAL), ["train.eval_every=0"])


# ----------------------------------------------------------------------------- window


@pytest.mark.parametrize(("length", "stride"), [(256, 0), (256, 127), (100, 49), (16, 7)])
def test_window_stride_accepted(length: int, stride: int) -> None:
    window = WindowConfig(length=length, stride=stride)
    assert (window.length, window.stride) == (length, stride)


@pytest.mark.parametrize(("length", "stride"), [(256, 128), (100, 50), (100, 99), (16, 8)])
def test_window_stride_rejected(length: int, stride: int) -> None:
    with pytest.raises(
        ValidationError,
        match=re.escape(f"stride ({stride}) must be less than half the window length ({length})"),
    ):
        WindowConfig(length=length, stride=stride)


def test_window_error_from_file_names_section(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "model:\n  window:\n    length: 100\n    stride: 50\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == Elided(
        f"{path}: model.window: …stride (50) must be less than half the window length (100) "
        "(found {'length': 100, 'stride': 50})"
    )


def test_window_length_bounds() -> None:
    with pytest.raises(ValidationError, match=re.escape("greater than or equal to 16")):
        WindowConfig(length=8, stride=0)


def test_save_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, MINIMAL), ["train.learning_rate=3e-5", "normalization.fold_alef=true"]
    )
    save_config(cfg, tmp_path / "saved.yaml")
    again = load_config(tmp_path / "saved.yaml")
    assert again == cfg
    assert isinstance(again, NabaConfig)

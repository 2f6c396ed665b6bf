"""Stance target descriptions: a model trained on id-named targets reads their descriptions."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import subset, write_config
from naba.cli import app
from naba.config import load_config
from naba.config_loading import ConfigError
from naba.data.stats import file_stats, identifier_targets
from naba.data.targets import (
    SEPARATOR,
    check_known,
    described,
    load_target_descriptions,
    looks_like_identifier,
    parse_target_option,
    parse_target_options,
    read_target,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "stance"
# The sample stance data's named targets, as a data set that names them by English ids.
IDS = {
    "الطاقة النووية": "nuclear_power",
    "السيارات الكهربائية": "electric_cars",
    "انسحاب القوات الأجنبية من العراق": "iraq_withdrawal",
    "العمل عن بعد": "remote_work",
}
DESCRIPTIONS = {target_id: text for text, target_id in IDS.items()}
ARTICLE = "قررت الحكومة بناء محطة نووية جديدة لتوليد الكهرباء، ورحب بها خبراء الطاقة"


def _ids(record: dict) -> dict:
    return {**record, "target": IDS.get(record["target"], record["target"])}


@pytest.fixture(scope="module")
def id_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small stance splits whose named targets are English ids (the claims stay Arabic)."""
    d = tmp_path_factory.mktemp("id-data")
    return {
        split: subset(SAMPLE / f"{split}.jsonl", d / f"{split}.jsonl", n, _ids)
        for split, n in (("train", 64), ("dev", 24), ("test", 24))
    }


def _stance_config(path: Path, encoder: Path, splits: dict[str, Path], **stance) -> Path:
    tasks = {"stance": {**{k: str(v) for k, v in splits.items()}, **stance}}
    return write_config(path, encoder, tasks)


@pytest.fixture(scope="module")
def described_model(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path, id_data: dict[str, Path]
) -> Path:
    """A stance model trained on id-named targets, with a description for each in the config."""
    from naba.train.trainer import train

    d = tmp_path_factory.mktemp("described")
    cfg = load_config(_stance_config(d / "cfg.yaml", tiny_encoder, id_data, targets=DESCRIPTIONS))
    return train(cfg, d / "model", show_progress_bar=False)


@pytest.fixture(scope="module")
def clf(described_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(described_model)


# --------------------------------------------------------------------------- the map


def test_inline_map_takes_one_or_several_descriptions_and_collapses_spaces():
    loaded = load_target_descriptions({"a_b": "  قيادة   المرأة ", "c": ["أرامكو", "شركة أرامكو"]})
    assert loaded == {"a_b": ["قيادة المرأة"], "c": ["أرامكو", "شركة أرامكو"]}
    assert read_target("c", loaded) == "أرامكو" + SEPARATOR + "شركة أرامكو"
    assert read_target("free text", loaded) == "free text"  # not a known id: read as written


def test_map_from_a_yaml_file_the_config_names(tmp_path: Path, tiny_encoder: Path, id_data):
    targets = tmp_path / "targets.yaml"
    targets.write_text("nuclear_power: الطاقة النووية\n", encoding="utf-8")
    cfg = load_config(
        _stance_config(tmp_path / "c.yaml", tiny_encoder, id_data, targets=str(targets))
    )
    assert load_target_descriptions(cfg.tasks.stance.targets) == {
        "nuclear_power": ["الطاقة النووية"]
    }


@pytest.mark.parametrize("value", ["", "   ", [], ["أرامكو", ""]])
def test_empty_description_is_refused(value):
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "tasks.stance.targets: Aramco: empty description; write the words the model should "
            "read for this target, or remove it from the map"
        ),
    ):
        load_target_descriptions({"Aramco": value})


def test_description_that_is_not_text_is_refused(tmp_path: Path):
    path = tmp_path / "t.yaml"
    path.write_text("Aramco: {name: x}\n", encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{path}: Aramco: expected a description or a list of descriptions, found dict"
        ),
    ):
        load_target_descriptions(path)


def test_missing_map_file_names_it(tmp_path: Path):
    with pytest.raises(ConfigError, match=re.escape("cannot read the target map")):
        load_target_descriptions(tmp_path / "absent.yaml")


def test_unknown_id_in_the_map_is_refused_with_the_closest_target():
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "tasks.stance.targets: 'women_drivng' is not a target of train.jsonl (did you mean "
            "'women_driving'?); the map's keys are the targets as the data names them"
        ),
    ):
        check_known({"women_drivng": ["x"]}, ["women_driving", "Aramco"], "train.jsonl")


def test_training_refuses_a_map_naming_a_target_the_data_lacks(
    tmp_path: Path, tiny_encoder: Path, id_data
):
    from naba.train.trainer import train

    cfg = load_config(
        _stance_config(
            tmp_path / "c.yaml", tiny_encoder, id_data, targets={"nuclear_powr": "الطاقة"}
        )
    )
    with pytest.raises(ConfigError, match=re.escape("(did you mean 'nuclear_power'?)")):
        train(cfg, tmp_path / "model", show_progress_bar=False)
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


def test_described_records_are_copies_and_keep_other_targets():
    records = [{"target": "a", "text": "x"}, {"target": "claim text", "text": "y"}]
    out = described(records, {"a": ["أ", "ب"]})
    assert [r["target"] for r in out] == ["أ" + SEPARATOR + "ب", "claim text"]
    assert records[0]["target"] == "a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("women_driving", ("women_driving", None)),
        ("قيادة المرأة", ("قيادة المرأة", None)),
        ("women_driving=قيادة المرأة للسيارة", ("women_driving", "قيادة المرأة للسيارة")),
        (" wd =  قيادة  المرأة ", ("wd", "قيادة المرأة")),
    ],
)
def test_target_option(value, expected):
    assert parse_target_option(value) == expected


@pytest.mark.parametrize("value", ["=قيادة المرأة", "women_driving=", "women_driving=  ", "="])
def test_malformed_target_option(value):
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"--target {value!r}: expected ID=DESCRIPTION with a non-empty id and description"
        ),
    ):
        parse_target_option(value)


def test_target_options_split_targets_and_new_descriptions():
    assert parse_target_options(["a", "b=ب"]) == (["a", "b"], {"b": "ب"})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("women_driving", True),
        ("Aramco", True),
        ("Vision2030", True),
        ("COVID-19", True),
        ("2030", False),
        ("", False),
        ("electric cars", False),
        ("قيادة المرأة", False),
        ("قيادة_المرأة", False),
        ("🚗", False),
    ],
)
def test_looks_like_identifier(target, expected):
    assert looks_like_identifier(target) is expected


def test_identifier_targets_only_in_arabic_data():
    arabic = [
        {"target": "women_driving", "text": "قرار السماح للمرأة بقيادة السيارة"},
        {"target": "العمل عن بعد", "text": "العمل من المنزل يوفر الوقت"},
        {"target": "Vision2030", "text": "رؤية المملكة"},
    ]
    assert identifier_targets(arabic) == ["Vision2030", "women_driving"]
    english = [{"target": "women_driving", "text": "Women can now drive in the kingdom"}]
    assert identifier_targets(english) == []


def test_stats_flags_identifier_targets(id_data):
    stats = file_stats(id_data["train"], "stance")
    assert stats["identifier_targets"] == sorted(IDS.values())
    result = CliRunner().invoke(app, ["data", "stats", str(id_data["train"]), "--task", "stance"])
    assert result.exit_code == 0, result.output
    assert "4 targets look like identifiers in Arabic data" in result.output
    assert "describe them in tasks.stance.targets" in result.output


def test_stats_on_arabic_targets_flags_nothing():
    assert file_stats(SAMPLE / "train.jsonl", "stance")["identifier_targets"] == []


# --------------------------------------------------------------------------- the model directory


def test_the_map_is_in_the_model_directory(described_model: Path):
    manifest = json.loads((described_model / "naba.json").read_text(encoding="utf-8"))
    stance = manifest["tasks"]["stance"]
    expected = {k: [v] for k, v in DESCRIPTIONS.items()}
    assert stance["target_descriptions"] == expected
    assert sorted(stance["default_targets"]) == sorted(IDS.values())  # as the user named them
    config = json.loads((described_model / "stance" / "config.json").read_text(encoding="utf-8"))
    assert config["target_descriptions"] == expected
    card = (described_model / "README.md").read_text(encoding="utf-8")
    assert "nuclear_power: الطاقة النووية" in card


def test_the_model_reads_the_description_of_a_known_id(clf):
    by_id = clf.predict(ARTICLE, targets=["nuclear_power"])["stance"][0]
    by_text = clf.predict(ARTICLE, targets=["الطاقة النووية"])["stance"][0]
    assert by_id["target"] == "nuclear_power"
    assert by_id["scores"] == by_text["scores"]
    assert by_id["label"] == by_text["label"]


def test_a_record_target_id_reads_its_description(clf):
    own = clf.predict([{"id": "a", "text": ARTICLE, "target": "remote_work"}])[0]
    asked = clf.predict(ARTICLE, targets=["العمل عن بعد"])
    assert own["stance"][0]["target"] == "remote_work"
    assert own["stance"][0]["scores"] == asked["stance"][0]["scores"]


def test_all_targets_are_keyed_by_ids(clf):
    result = clf.predict(ARTICLE, all_targets=True)
    assert sorted(s["target"] for s in result["stance"]) == sorted(IDS.values())


def test_a_new_id_with_a_description_for_one_call(clf):
    new = clf.predict(ARTICLE, targets=["atom"], target_descriptions={"atom": "الطاقة النووية"})[
        "stance"
    ][0]
    known = clf.predict(ARTICLE, targets=["nuclear_power"])["stance"][0]
    assert new["target"] == "atom" and new["scores"] == known["scores"]


def test_encoder_and_part_scores_read_descriptions(clf):
    records = [{"text": ARTICLE, "target": "nuclear_power"}]
    same = [{"text": ARTICLE, "target": "الطاقة النووية"}]
    assert (clf.encoder_scores(records, "stance") == clf.encoder_scores(same, "stance")).all()
    parts, parts_same = clf.part_scores(records, "stance"), clf.part_scores(same, "stance")
    for part in ("encoder", "sparse", "hybrid"):
        assert (parts[part] == parts_same[part]).all(), part


# --------------------------------------------------------------------------- the doors


def _predict(model: Path, tmp_path: Path, output: str, *targets: str):
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps({"id": "a1", "text": ARTICLE}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    args = ["predict", str(model), str(source), "-o", str(tmp_path / output), "--no-progress"]
    for target in targets:
        args += ["--target", target]
    return CliRunner().invoke(app, [*args, "--tasks", "stance"])


def test_cli_predict_jsonl_keeps_the_user_names(described_model: Path, clf, tmp_path: Path):
    result = _predict(
        described_model, tmp_path, "out.jsonl", "nuclear_power", "atom=الطاقة النووية"
    )
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert [s["target"] for s in row["stance"]] == ["nuclear_power", "atom"]
    expected = clf.predict(ARTICLE, targets=["الطاقة النووية"])["stance"][0]["scores"]
    assert row["stance"][0]["scores"] == expected == row["stance"][1]["scores"]


def test_cli_predict_csv_keeps_the_user_names(described_model: Path, tmp_path: Path):
    result = _predict(described_model, tmp_path, "out.csv", "electric_cars")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["stance.0.target"] == "electric_cars"


def test_cli_predict_refuses_a_malformed_target(described_model: Path, tmp_path: Path):
    result = _predict(described_model, tmp_path, "out.jsonl", "nuclear_power=")
    assert result.exit_code == 2
    assert "error: --target 'nuclear_power=': expected ID=DESCRIPTION" in result.output
    assert not (tmp_path / "out.jsonl").exists()


def test_service_reads_descriptions_and_answers_with_ids(clf):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from naba.serve.app import ServeSettings, create_app

    with TestClient(create_app(clf, ServeSettings())) as client:
        info = client.get("/v1/model").json()
        assert info["tasks"]["stance"]["target_descriptions"]["remote_work"] == ["العمل عن بعد"]
        response = client.post(
            "/v1/classify",
            json={"articles": [ARTICLE], "targets": ["nuclear_power"], "tasks": ["stance"]},
        )
    assert response.status_code == 200, response.text
    stance = response.json()["results"][0]["stance"][0]
    expected = clf.predict(ARTICLE, targets=["الطاقة النووية"])["stance"][0]
    assert stance["target"] == "nuclear_power" and stance["scores"] == expected["scores"]


def test_evaluate_keys_relevance_by_the_user_names(described_model: Path, id_data, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(described_model),
            str(id_data["test"]),
            "--task",
            "stance",
            "-o",
            str(out),
            "--baseline-train",
            str(id_data["train"]),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    per_target = metrics["relevance"]["per_target"]
    assert set(per_target) <= {*IDS.values(), *(_claims(id_data["test"]))}
    assert set(IDS.values()) & set(per_target)
    assert "nuclear_power" in (out / "report.md").read_text(encoding="utf-8")


def _claims(path: Path) -> set[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {r["target"] for r in rows if r["target"] not in IDS.values()}


@pytest.mark.slow
def test_training_on_ids_with_descriptions_is_training_on_the_descriptions(
    tmp_path: Path, tiny_encoder: Path, id_data, clf
):
    """The same data named by ids and described, or named by the descriptions: the same model."""
    from naba.infer.classifier import Classifier
    from naba.train.trainer import train

    arabic = {}
    for split, path in id_data.items():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        arabic[split] = tmp_path / path.name
        arabic[split].write_text(
            "".join(json.dumps({**r, "target": _text(r)}, ensure_ascii=False) + "\n" for r in rows),
            encoding="utf-8",
        )
    model = train(
        load_config(_stance_config(tmp_path / "c.yaml", tiny_encoder, arabic)),
        tmp_path / "model",
        show_progress_bar=False,
    )
    plain = Classifier.load(model).predict(ARTICLE, targets=list(DESCRIPTIONS.values()))
    via_ids = clf.predict(ARTICLE, targets=list(DESCRIPTIONS))
    assert [s["scores"] for s in plain["stance"]] == [s["scores"] for s in via_ids["stance"]]


def _text(record: dict) -> str:
    return DESCRIPTIONS.get(record["target"], record["target"])


def test_the_sparse_detector_learns_the_descriptions(clf):
    from naba.encoding import document_text

    detector = clf.tasks["stance"].sparse.detector
    norm = clf.manifest.normalization
    assert {document_text(t, norm) for t in DESCRIPTIONS.values()} <= set(detector["targets"])
    assert not set(IDS.values()) & set(detector["targets"])


def test_blend_refits_on_the_descriptions_and_keeps_the_map(described_model: Path, tmp_path):
    import shutil

    from naba.train.blend_existing import blend_model

    model = tmp_path / "model"
    shutil.copytree(described_model, model)
    fitted = blend_model(model)
    assert "الطاقة النووية" in fitted["stance"]["detector"]["targets"]
    manifest = json.loads((model / "naba.json").read_text(encoding="utf-8"))
    assert manifest["tasks"]["stance"]["target_descriptions"] == {
        k: [v] for k, v in DESCRIPTIONS.items()
    }


def test_dry_run_flags_identifier_targets_without_a_description(
    tmp_path: Path, tiny_encoder: Path, id_data: dict[str, Path]
) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    def dry_run(config: Path) -> str:
        args = ["train", str(config), "--dry-run", "-o", str(tmp_path / "model")]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        return result.output

    bare = dry_run(_stance_config(tmp_path / "ids.yaml", tiny_encoder, id_data))
    assert "targets look like identifiers in Arabic data (" in bare
    assert "describe them in tasks.stance.targets" in bare
    described = dry_run(
        _stance_config(tmp_path / "d.yaml", tiny_encoder, id_data, targets=DESCRIPTIONS)
    )
    assert "look like identifiers" not in described
    assert not (tmp_path / "model").exists()

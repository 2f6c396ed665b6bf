"""naba distill: students made from a teacher's own layers, trained to match its logits,
as ordinary model directories."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import SAMPLE, kill_at_checkpoint, task_paths, write_config
from naba.errors import ModelDirError
from naba.manifest import read_manifest
from naba.train.distill import (
    DistillLoss,
    DistillSettings,
    distill,
    kept_layers,
    make_student,
    packed_targets,
)

ENV_EXTRA = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def test_kept_layers_spread_evenly_and_keep_the_top_layer() -> None:
    assert kept_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert kept_layers(12, 4) == [2, 5, 8, 11]
    assert kept_layers(12, 3) == [3, 7, 11]
    assert kept_layers(2, 1) == [1]
    assert kept_layers(6, 6) == [0, 1, 2, 3, 4, 5]
    assert kept_layers(12, 4, "first") == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        kept_layers(12, 13)


def _teacher(tiny_encoder: Path, layers_source: Path | None = None):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(
        layers_source or tiny_encoder, num_labels=3
    )


def test_student_keeps_the_teachers_weights_and_loads_in_plain_transformers(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSequenceClassification

    teacher = _teacher(tiny_encoder).eval()
    assert teacher.config.num_hidden_layers == 2
    student, kept = make_student(teacher, 1, "every")
    assert kept == [1] and student.config.num_hidden_layers == 1
    assert len(student.bert.encoder.layer) == 1
    assert (
        teacher.config.num_hidden_layers == 2 and len(teacher.bert.encoder.layer) == 2
    )  # the teacher is untouched
    layer = dict(student.bert.encoder.layer[0].named_parameters())
    for name, value in teacher.bert.encoder.layer[1].named_parameters():
        assert torch.equal(layer[name], value)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    first, kept_first = make_student(teacher, 1, "first")
    assert kept_first == [0]
    assert torch.equal(
        next(first.bert.encoder.layer[0].parameters()),
        next(teacher.bert.encoder.layer[0].parameters()),
    )

    student.save_pretrained(tmp_path / "student")
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").eval()
    assert loaded.config.num_hidden_layers == 1
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.no_grad():
        np.testing.assert_allclose(
            loaded(input_ids=ids).logits.numpy(),
            student.eval()(input_ids=ids).logits.numpy(),
            atol=1e-6,
        )
        # A student that keeps every layer is the teacher.
        whole, _ = make_student(teacher, 2)
        np.testing.assert_allclose(
            whole.eval()(input_ids=ids).logits.numpy(),
            teacher(input_ids=ids).logits.numpy(),
            atol=1e-6,
        )


def test_more_layers_than_the_teacher_has_is_refused(tiny_encoder: Path) -> None:
    with pytest.raises(
        ModelDirError,
        match=re.escape("--layers 3: the teacher's encoder has 2 layers; choose 1 to 2"),
    ):
        make_student(_teacher(tiny_encoder), 3)


def test_distillation_loss_single_label() -> None:
    hard = torch.nn.CrossEntropyLoss()
    teacher = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    gold = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # row 0 labelled 0, row 1 unlabeled
    y = torch.cat([gold, teacher], dim=1)
    soft_only = DistillLoss(3, False, 2.0, 1.0, hard)
    assert soft_only(teacher.clone(), y).item() == pytest.approx(
        0.0, abs=1e-6
    )  # matching the teacher costs nothing
    student = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    p = torch.softmax(teacher / 2, dim=-1)
    expected_soft = (p * (p.log() - torch.log_softmax(student / 2, dim=-1))).sum() / 2 * 4
    assert soft_only(student, y).item() == pytest.approx(expected_soft.item(), rel=1e-5)
    gold_only = DistillLoss(3, False, 2.0, 0.0, hard)
    assert gold_only(student, y).item() == pytest.approx(
        hard(student[:1], torch.tensor([0])).item(), rel=1e-6
    )
    mixed = DistillLoss(3, False, 2.0, 0.25, hard)
    assert mixed(student, y).item() == pytest.approx(
        0.25 * expected_soft.item() + 0.75 * gold_only(student, y).item(), rel=1e-5
    )
    unlabeled = torch.cat([torch.zeros(2, 2), teacher], dim=1)
    assert (
        gold_only(student, unlabeled).item() == 0.0
    )  # no gold in the batch: nothing to learn from


def test_distillation_loss_multi_label() -> None:
    teacher = torch.tensor([[3.0, -3.0]])
    y = torch.cat([torch.tensor([[1.0, 1.0, 0.0]]), teacher], dim=1)
    loss = DistillLoss(2, True, 1.0, 1.0, torch.nn.BCEWithLogitsLoss())
    student = teacher.clone().requires_grad_(True)
    loss(student, y).backward()
    assert (
        student.grad.abs().max().item() < 1e-6
    )  # at the teacher's logits the soft loss is at its minimum
    gold = DistillLoss(2, True, 1.0, 0.0, torch.nn.BCEWithLogitsLoss())
    assert gold(torch.zeros(1, 2), y).item() == pytest.approx(np.log(2), rel=1e-5)


def test_packed_targets_layout() -> None:
    from naba.train.data import TaskData

    single = TaskData(task="stance", labels=["a", "b", "c"], multi_label=False, splits={})
    packed = packed_targets(single, np.array([2]), np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(packed, [[1, 2, 0.1, 0.2, 0.3], [0, 0, 1, 2, 3]], rtol=1e-6)
    multi = TaskData(task="topic", labels=["a", "b"], multi_label=True, splits={})
    packed = packed_targets(multi, np.array([[1.0, 0.0]]), np.array([[5.0, -5.0]]))
    np.testing.assert_allclose(packed, [[1, 1, 0, 5, -5]])


@pytest.fixture(scope="module")
def student(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared two-task tiny model distilled to one layer on a few unlabeled sample articles."""
    out = tmp_path_factory.mktemp("distill") / "student"
    return distill(
        trained_model,
        out,
        DistillSettings(layers=1, unlabeled=[str(SAMPLE / "articles.jsonl")], max_unlabeled=20),
        show_progress_bar=False,
    )


def test_student_is_an_ordinary_model_directory(student: Path, trained_model: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    manifest, teacher = read_manifest(student), read_manifest(trained_model)
    assert set(manifest.tasks) == {"topic", "stance"}
    record = manifest.distilled_from
    assert (
        record["teacher"] == str(trained_model)
        and record["layers"] == 1
        and record["pick"] == "every"
    )
    assert manifest.base_model == teacher.base_model
    for name in ("topic", "stance"):
        spec = manifest.tasks[name]
        assert spec.labels == teacher.tasks[name].labels
        assert (
            record["tasks"][name]["layers"] == [1] and record["tasks"][name]["teacher_layers"] == 2
        )
        assert record["tasks"][name]["unlabeled_articles"] == 20
        assert "int8" in spec.precision_agreement
        model = AutoModelForSequenceClassification.from_pretrained(student / name)
        assert model.config.num_hidden_layers == 1
        assert model.config.naba_decision["multi_label"] == spec.multi_label
    assert set(manifest.tasks["topic"].thresholds) == set(
        manifest.tasks["topic"].labels
    )  # tuned again, on the student
    card = (student / "README.md").read_text(encoding="utf-8")
    assert f"distilled from `{trained_model}`" in card and "## Distillation" in card
    assert "1 of the teacher's 2 layers (1)" in card
    assert (student / "topic" / "README.md").read_text(encoding="utf-8").startswith("---")
    assert not student.with_name("student.partial").exists()


def test_student_carries_the_teachers_sparse_part(student: Path, trained_model: Path) -> None:
    for name in ("topic", "stance"):
        spec = read_manifest(student).tasks[name]
        assert (
            spec.hybrid is not None
            and read_manifest(student).distilled_from["tasks"][name]["sparse"] == "the teacher's"
        )
        teacher_files = sorted(
            p.relative_to(trained_model / name)
            for p in (trained_model / name / "sparse").rglob("*")
            if p.is_file()
        )
        assert teacher_files
        for rel in teacher_files:
            assert (student / name / rel).read_bytes() == (trained_model / name / rel).read_bytes()


def test_student_predicts_and_matches_its_manifest(
    student: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from naba.evaluation.report import evaluate_model
    from naba.infer.classifier import Classifier

    clf = Classifier.load(student)
    out = clf.predict(["ارتفعت أسعار النفط في الأسواق العالمية"], targets=["الطاقة النووية"])
    assert (
        set(out[0]["topics"]["labels"]) <= set(clf.labels["topic"]) and out[0]["topics"]["labels"]
    )
    assert out[0]["stance"][0]["label"] in clf.labels["stance"]
    recorded = read_manifest(student).tasks
    for task in ("topic", "stance"):
        metrics = evaluate_model(student, small_data[f"{task}_test"], tmp_path / task, task=task)
        assert metrics["macro_f1"] == pytest.approx(
            recorded[task].metrics["test"]["macro_f1"], abs=1e-4
        )


def test_unlabeled_stance_articles_are_paired_with_trained_targets(trained_model: Path) -> None:
    from naba.train.data import load_task_data, recorded_config
    from naba.train.distill import unlabeled_records

    manifest = read_manifest(trained_model)
    config = recorded_config(manifest)
    stance = load_task_data(config, "stance")
    settings = DistillSettings(unlabeled=[str(SAMPLE / "articles.jsonl")], max_unlabeled=12)
    records = unlabeled_records(settings, stance, config, seed=13)
    assert len(records) == 12
    targets = set(stance.default_targets) or {r["target"] for r in stance.splits["train"]}
    assert {r["target"] for r in records} <= targets
    assert records == unlabeled_records(settings, stance, config, seed=13)  # seeded


def test_student_output_exists_is_refused(student: Path, trained_model: Path) -> None:
    with pytest.raises(
        FileExistsError,
        match=re.escape(f"{student}: already exists; pass --overwrite to replace it"),
    ):
        distill(trained_model, student, DistillSettings(layers=1))


def test_cli_layers_error_is_one_line(trained_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    result = CliRunner().invoke(
        app,
        [
            "distill",
            str(trained_model),
            "-o",
            str(tmp_path / "s"),
            "--layers",
            "4",
            "--no-progress",
        ],
    )
    assert result.exit_code == 2
    assert (
        result.output.strip().splitlines()[-1]
        == "error: --layers 4: the teacher's encoder has 2 layers; choose 1 to 2"
    )
    assert (
        not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()
    )  # nothing written on exit 2


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def topic_teacher(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path, small_data: dict[str, Path]
) -> Path:
    from naba.config import load_config
    from naba.train.trainer import train

    d = tmp_path_factory.mktemp("topic-teacher")
    config = write_config(
        d / "cfg.yaml", tiny_encoder, task_paths(small_data, "topic"), train={"max_steps": 8}
    )
    return train(load_config(config), d / "teacher", show_progress_bar=False)


RESUME_SET = [
    "train.epochs=3",
    "train.max_steps=null",
    "train.checkpoint_every=1",
    "train.batch_size=4",
    "train.eval_every=8",
]


def _cli(*args: str) -> subprocess.Popen:
    import os

    return subprocess.Popen(
        [sys.executable, "-m", "naba", "-q", *args],
        env={**os.environ, **ENV_EXTRA},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted_distillation(
    topic_teacher: Path, tmp_path: Path
) -> None:
    settings = DistillSettings(layers=1)
    whole = distill(
        topic_teacher, tmp_path / "whole", settings, overrides=RESUME_SET, show_progress_bar=False
    )
    out = tmp_path / "killed"
    checkpoints = tmp_path / "killed.partial" / "topic" / "trainer"
    options = [x for s in RESUME_SET for x in ("--set", s)]
    proc = _cli(
        "distill", str(topic_teacher), "-o", str(out), "--layers", "1", "--no-progress", *options
    )
    kill_at_checkpoint(proc, checkpoints, 10, "distillation", poll=0.05)
    assert not out.exists()

    changed = _cli(
        "distill",
        str(topic_teacher),
        "-o",
        str(out),
        "--layers",
        "1",
        "--temperature",
        "3",
        "--resume",
        "--no-progress",
        *options,
    )
    _, stderr = changed.communicate(timeout=300)
    assert changed.returncode == 2
    assert stderr.strip().splitlines()[-1] == (
        f"error: {out}.partial: was started with other distillation settings (differs "
        "in temperature); resume with the same options, or pass --overwrite to start again"
    )

    resumed = _cli(
        "distill",
        str(topic_teacher),
        "-o",
        str(out),
        "--layers",
        "1",
        "--resume",
        "--no-progress",
        *options,
    )
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert "topic test: macro-F1" in stdout and "1 of 2 layers" in stdout
    log = (out / "train.log").read_text(encoding="utf-8")
    assert "resumed at step" in log
    assert log.count("teacher logits for") == 1  # computed once, kept for the resumed run
    # the same student: every metric equal (the calibration error's float32 sums may differ at 1e-8)
    _assert_close(
        read_manifest(out).tasks["topic"].metrics, read_manifest(whole).tasks["topic"].metrics
    )
    assert (
        json.loads((out / "naba.json").read_text(encoding="utf-8"))["distilled_from"]["temperature"]
        == 2.0
    )


def _assert_close(a: object, b: object, path: str = "metrics") -> None:
    """Nested dicts and lists equal, floats within 1e-6."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}.{i}")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-6), path
    else:
        assert a == b, path

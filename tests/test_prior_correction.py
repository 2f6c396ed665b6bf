"""The single-label prior correction: chosen on dev, folded into the classifier's bias."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import task_paths, write_config
from naba.config import load_config
from naba.decision import choose_prior_correction
from naba.manifest import read_manifest

LOG_W = np.log(np.array([0.5, 2.0]))  # class 1 is rare: the loss weighted it up


@pytest.mark.parametrize(("lean", "alpha"), [(0.6, 0.5), (0.75, 1.0)])
def test_the_smallest_correction_that_mends_dev_is_chosen(lean: float, alpha: float) -> None:
    # Scores as a weighted model gives them: six class-0 articles lean to the rare class 1, by log
    # 1.5 or log 3; alpha 0.5 shifts the decision by log 2, alpha 1 by log 4.
    gold = np.array([0] * 8 + [1] * 2)
    p1 = np.array([lean] * 6 + [0.1] * 2 + [0.95] * 2)
    probs = np.stack([1 - p1, p1], axis=1)
    assert choose_prior_correction(probs, gold, LOG_W) == alpha


def test_no_correction_when_the_model_is_right_as_trained() -> None:
    gold = np.array([0] * 8 + [1] * 2)
    p1 = np.array([0.1] * 8 + [0.6] * 2)  # alpha 1 would lose the two rare articles
    probs = np.stack([1 - p1, p1], axis=1)
    assert choose_prior_correction(probs, gold, LOG_W) == 0.0


def test_a_tie_keeps_the_model_as_trained() -> None:
    gold = np.array([0, 1])
    probs = np.array([[0.99, 0.01], [0.01, 0.99]])  # every alpha gets both right
    assert choose_prior_correction(probs, gold, LOG_W) == 0.0


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
def test_output_layer_is_the_heads_last_linear(kind: str) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from naba.train.scoring import output_layer

    config = AutoConfig.for_model(
        kind,
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    model = AutoModelForSequenceClassification.from_config(config)
    expected = model.classifier if kind == "bert" else model.classifier.out_proj
    assert output_layer(model, 3) is expected


def _train(
    tmp_path: Path, tiny_encoder: Path, data: dict[str, Path], name: str, correction: bool
) -> Path:
    from naba.train.trainer import train

    cfg = load_config(
        write_config(
            tmp_path / f"{name}.yaml",
            tiny_encoder,
            task_paths(data, "single"),
            train={"max_steps": 4},
            thresholds={"prior_correction": correction},
        )
    )
    return train(cfg, tmp_path / name, show_progress_bar=False)


def _report_text(model: Path, data: dict[str, Path], out: Path) -> str:
    from naba.evaluation.report import evaluate_model

    assert evaluate_model(model, data["single_test"], out)["prior_correction"] == 0.0
    return (out / "report.md").read_text(encoding="utf-8")


def test_chosen_correction_shifts_only_the_bias_and_is_recorded(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path], monkeypatch
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    import naba.train.scoring as scoring
    from naba.evaluation.report import evaluate_model
    from naba.infer.classifier import Classifier

    plain = _train(tmp_path, tiny_encoder, small_data, "plain", correction=False)
    monkeypatch.setattr(
        scoring, "choose_prior_correction", lambda *args: 1.0
    )  # as dev would choose it
    corrected = _train(tmp_path, tiny_encoder, small_data, "corrected", correction=True)

    spec = read_manifest(corrected).tasks["topic"]
    assert (
        spec.prior_correction == 1.0 and read_manifest(plain).tasks["topic"].prior_correction == 0.0
    )
    assert "prior correction (chosen on dev): alpha 1" in (corrected / "README.md").read_text(
        encoding="utf-8"
    )
    train_labels = [
        json.loads(line)["topics"][0]
        for line in small_data["single_train"].read_text(encoding="utf-8").splitlines()
    ]
    counts = np.array([train_labels.count(label) for label in spec.labels]).clip(min=1)
    log_w = np.log(np.sqrt(len(train_labels) / (len(counts) * counts)))

    before, after = (
        AutoModelForSequenceClassification.from_pretrained(d / "topic").eval()
        for d in (plain, corrected)
    )
    for (name, a), (_, b) in zip(before.named_parameters(), after.named_parameters()):
        if name.endswith("classifier.bias"):
            assert np.allclose(b.detach().numpy(), a.detach().numpy() - log_w, atol=1e-5)
        else:
            assert torch.equal(a, b), name
    # The directory's own predictions are the corrected decision, and its test metrics are theirs.
    test = [
        json.loads(line)
        for line in small_data["single_test"].read_text(encoding="utf-8").splitlines()
    ]
    results = Classifier.load(corrected).predict(test)
    accuracy = np.mean([r["topics"]["labels"] == t["topics"] for r, t in zip(results, test)])
    assert accuracy == pytest.approx(spec.metrics["test"]["accuracy"])
    report = evaluate_model(corrected, small_data["single_test"], tmp_path / "report")
    assert report["prior_correction"] == 1.0 and report["accuracy"] == pytest.approx(accuracy)
    assert "Prior correction: alpha 1 (chosen on dev in training, in the model's bias)" in (
        tmp_path / "report" / "report.md"
    ).read_text(encoding="utf-8")
    assert "Prior correction" not in _report_text(plain, small_data, tmp_path / "plain-report")


def test_no_correction_without_class_weights(
    tmp_path: Path, tiny_encoder: Path, small_data: dict[str, Path], monkeypatch
) -> None:
    import naba.train.scoring as scoring
    from naba.train.trainer import train

    monkeypatch.setattr(scoring, "choose_prior_correction", lambda *args: 1.0)
    cfg = load_config(
        write_config(
            tmp_path / "cfg.yaml",
            tiny_encoder,
            task_paths(small_data, "single"),
            train={"max_steps": 4, "class_weight": "none"},
        )
    )
    assert (
        read_manifest(train(cfg, tmp_path / "model", show_progress_bar=False))
        .tasks["topic"]
        .prior_correction
        == 0.0
    )

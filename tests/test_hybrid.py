"""Hybrid models: the blend chosen on dev, applied in every door, and `naba blend`.

`naba blend` adds or refits the hybrid of an existing model directory.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import task_paths, write_config
from naba.blend import (
    choose_blend,
    choose_gate,
    decision_logits,
    fit_blend,
    fit_temperature,
    gate,
    log_loss,
    macro_f1,
    probabilities,
    row_log_loss,
)
from naba.rule import HybridRule, RelevanceGate

runner = CliRunner()
TEXTS = [
    "أعلنت وزارة الطاقة عن خطة لبناء محطة نووية جديدة",
    "ارتفعت أسعار النفط في الأسواق العالمية",
    "فاز المنتخب الوطني بالبطولة بعد مباراة مثيرة",
]


def _argmax(probabilities: np.ndarray) -> np.ndarray:
    return np.eye(probabilities.shape[1])[probabilities.argmax(axis=1)]


def test_the_decision_is_one_number_and_the_temperature_never_moves_a_label() -> None:
    rng = np.random.default_rng(0)
    encoder = rng.dirichlet(np.ones(3), size=50)
    margins = rng.normal(size=(50, 3))
    # lam 0: the encoder's log-probabilities; None: the margins alone.
    np.testing.assert_allclose(
        probabilities(decision_logits(encoder, margins, 0.0, False), 1.0, False), encoder, rtol=1e-5
    )
    sparse = np.exp(margins / 0.5) / np.exp(margins / 0.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        probabilities(decision_logits(None, margins, None, False), 0.5, False), sparse, rtol=1e-5
    )
    # The old (w, T) blend is lam = (1 - w) / (w T): same argmax, whatever the temperature.
    w, t = 0.25, 0.5
    old = w * np.log(encoder) + (1 - w) * (
        margins / t - np.log(np.exp(margins / t).sum(1))[:, None]
    )
    z = decision_logits(encoder, margins, (1 - w) / (w * t), False)
    for temperature in (0.1, 1.0, 7.0):
        scores = probabilities(z, temperature, False)
        assert (scores.argmax(1) == old.argmax(1)).all()
        np.testing.assert_allclose(scores.sum(1), 1.0, rtol=1e-5)
    multi = probabilities(decision_logits(rng.uniform(size=(50, 3)), margins, 1.0, True), 2.0, True)
    assert ((multi > 0) & (multi < 1)).all()


def test_macro_f1_matches_scikit_learn_and_weighs_rows() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    gold, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    predicted[predicted == 3] = 0  # a label never predicted scores 0
    expected = f1_score(gold, predicted, average="macro", labels=range(4), zero_division=0)
    assert macro_f1(np.eye(4)[predicted], np.eye(4)[gold]) == pytest.approx(expected)
    counts = rng.multinomial(200, np.full(200, 1 / 200), size=3).astype(float)
    rows = np.repeat(np.arange(200), counts[1].astype(int))
    assert macro_f1(np.eye(4)[predicted], np.eye(4)[gold], counts)[1] == pytest.approx(
        f1_score(gold[rows], predicted[rows], average="macro", labels=range(4), zero_division=0)
    )


def test_the_fits_find_the_log_loss_optimum_and_the_row_losses_are_the_mean_ones() -> None:
    rng = np.random.default_rng(3)
    e, m = rng.normal(size=(5000, 3)), rng.normal(size=(5000, 3))
    z = 1.0 * e + 2.0 * m  # softmax((e + 2 m) / 1): lam 2, T 1
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    gold = np.eye(3)[[rng.choice(3, p=row) for row in p]]
    encoder = np.exp(e) / np.exp(e).sum(axis=1, keepdims=True)
    lam, t = fit_blend(encoder, m, gold, False)
    assert lam == pytest.approx(2.0, rel=0.1) and t == pytest.approx(1.0, rel=0.1)
    assert fit_temperature(2 * z, gold, False) == pytest.approx(2.0, rel=0.1)
    for multi in (False, True):
        scores = probabilities(z, 1.0, multi)
        assert row_log_loss(z, gold, multi).mean() == pytest.approx(
            log_loss(scores, gold, multi), rel=1e-4
        )


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def test_choose_blend_keeps_the_equal_blend_unless_a_departure_holds_in_the_bootstrap() -> None:
    rng = np.random.default_rng(1)
    # 120 dev rows, the encoder 1.6 points ahead of the equal blend: noise, not a departure.
    gold = np.eye(3)[rng.integers(0, 3, 120)]
    encoder = _softmax(2 * gold + rng.normal(size=(120, 3)))
    chosen = choose_blend(encoder, gold + rng.normal(size=(120, 3)), gold, False, _argmax)
    assert chosen.choice == "blend"
    assert chosen.blend_lambda == pytest.approx(1 / chosen.sparse_temperature)
    assert chosen.dev_macro_f1["encoder"] > chosen.dev_macro_f1["equal"] + 0.01
    assert chosen.why == "the equal blend: no departure's dev gain held in the paired bootstrap"
    # An overconfident weak encoder beside a good sparse part, 2,000 rows: the blend fitted by
    # log-loss weighs the sparse part far more than the equal blend does, and wins on dev.
    gold = np.eye(3)[rng.integers(0, 3, 2000)]
    encoder = _softmax(8 * (0.3 * gold + rng.normal(size=(2000, 3))))
    chosen = choose_blend(encoder, gold + 0.6 * rng.normal(size=(2000, 3)), gold, False, _argmax)
    assert chosen.choice == "blend"
    assert chosen.blend_lambda > 10 / chosen.sparse_temperature
    assert chosen.dev_macro_f1["hybrid"] > chosen.dev_macro_f1["equal"] + 0.2
    assert chosen.why.startswith("the blend fitted by dev log-loss: its cross-fitted log-loss")


def test_choose_blend_departs_to_a_part_alone_where_its_macro_f1_holds() -> None:
    # A sparse part right on most rows but sure and wrong on 15%: its calibration (and so both
    # blends) lean on a useless encoder, and the sparse part alone wins by 55 points.
    rng = np.random.default_rng(7)
    gold_index = rng.integers(0, 3, 600)
    gold = np.eye(3)[gold_index]
    margins = gold + 0.2 * rng.normal(size=(600, 3))
    wrong = rng.random(600) < 0.15
    margins[wrong] = 30 * np.eye(3)[(gold_index[wrong] + 1) % 3]
    encoder = rng.dirichlet(np.ones(3) / 2, size=600)
    chosen = choose_blend(encoder, margins, gold, False, _argmax)
    assert chosen.choice == "sparse" and chosen.blend_lambda is None
    assert chosen.dev_macro_f1["hybrid"] == chosen.dev_macro_f1["sparse"] > 0.85
    assert chosen.dev_macro_f1["equal"] < 0.4
    assert chosen.why.startswith("the sparse part alone: its dev macro-F1 beat the blend's")
    # The same dev, the same rule: the folds and the bootstrap are seeded.
    assert choose_blend(encoder, margins, gold, False, _argmax) == chosen


def test_a_multi_label_task_keeps_the_grid_and_its_ties_to_the_simpler() -> None:
    rng = np.random.default_rng(4)
    gold = (rng.random((300, 4)) < 0.3).astype(float)

    def at_half(scores: np.ndarray) -> np.ndarray:
        return (scores >= 0.5).astype(float)

    # The encoder is right: nothing beats it by half a point, so the simplest candidate stays.
    chosen = choose_blend(gold * 0.8 + 0.1, rng.normal(size=(300, 4)), gold, True, at_half)
    assert chosen.choice == "encoder" and chosen.blend_lambda == 0.0
    assert chosen.why == (
        "the best dev macro-F1 of 14 candidates (gains under 0.5 points kept by the simpler)"
    )
    # Each part right on a different half of the rows: only a blend gets both.
    half = np.arange(300) < 150
    encoder = np.where(half[:, None], gold * 0.8 + 0.1, 0.5)
    margins = np.where(half[:, None], 0.0, 6 * gold - 3)
    chosen = choose_blend(encoder, margins, gold, True, at_half)
    assert chosen.choice == "blend" and chosen.dev_macro_f1["hybrid"] == 1.0
    assert chosen.dev_macro_f1["hybrid"] > max(
        chosen.dev_macro_f1["encoder"], chosen.dev_macro_f1["sparse"]
    )


def test_the_gate_makes_the_neutral_label_where_the_signal_reaches_it() -> None:
    scores = np.array(
        [[0.60, 0.30, 0.10], [0.50, 0.40, 0.10], [0.10, 0.80, 0.10], [0.2, 0.7, 0.1]],
        dtype=np.float32,
    )
    signal = np.array([0.2, 0.9, 0.5, np.nan])
    got = gate(scores, signal, 0.5, 2)
    np.testing.assert_allclose(
        got,
        [scores[0], 0.1 * scores[1] + [0, 0, 0.9], 0.5 * scores[2] + [0, 0, 0.5], scores[3]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    assert list(got.argmax(axis=1)) == [0, 2, 2, 1]  # NaN: no answer, never gated
    assert list(gate(scores, signal, 0.9, 2).argmax(axis=1)) == [0, 2, 1, 1]


def test_a_rules_gate_reads_its_one_source() -> None:
    labels = ["against", "favor", "none"]
    encoder = np.array([[0.05, 0.05, 0.90], [0.30, 0.10, 0.60], [0.70, 0.20, 0.10]])
    margins = np.log(np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1]]))
    detector = np.array([0.1, 0.95, np.nan])
    by_encoder = _rule("sparse", RelevanceGate(label="none", source="encoder", threshold=0.8))
    np.testing.assert_allclose(by_encoder.not_about(encoder, detector, labels), encoder[:, 2])
    assert list(by_encoder.scores(encoder, margins, labels, False).argmax(1)) == [2, 0, 1]
    by_detector = by_encoder.model_copy(
        update={"relevance_gate": RelevanceGate(label="none", source="detector", threshold=0.8)}
    )
    np.testing.assert_allclose(
        by_detector.not_about(None, detector, labels), detector, equal_nan=True
    )
    assert list(by_detector.scores(None, margins, labels, False, detector).argmax(1)) == [0, 2, 1]
    ungated = by_encoder.model_copy(update={"relevance_gate": None})
    assert ungated.not_about(encoder, detector, labels) is None
    with pytest.raises(ValueError, match="greater than or equal to 0.5"):
        RelevanceGate(label="none", source="detector", threshold=0.4)


def test_choose_gate_takes_the_best_threshold_that_keeps_the_real_pairs() -> None:
    # 100 real pairs the scores get right (none neutral), then 50 unrelated pairs (gold neutral)
    # that they call favor; the signal is sure of those (0.85) and unsure on 10 real pairs (0.55).
    gold = np.eye(3)[np.r_[np.arange(100) % 2, np.full(50, 2)]]
    scores = np.r_[np.eye(3)[np.arange(100) % 2] * 0.9 + 0.05, np.tile([0.1, 0.8, 0.1], (50, 1))]
    signal = np.r_[np.full(10, 0.55), np.full(90, 0.1), np.full(50, 0.85)]
    chosen = choose_gate(scores, signal, 2, gold, _argmax, real_rows=100)
    # 0.9 gates nothing; 0.8, 0.7 and 0.6 the 50 unrelated pairs (a tie: the highest is kept);
    # 0.5 the 10 unsure real pairs too.
    assert chosen.threshold == 0.8
    f1 = chosen.dev_macro_f1
    assert f1["gated"] == 1.0 > f1["ungated"] and f1["real_gated"] == f1["real_ungated"]
    # A signal that knows nothing of relevance: no gate.
    flat = np.full(150, 0.3)
    assert choose_gate(scores, flat, 2, gold, _argmax, real_rows=100).threshold is None
    # A signal that catches three unrelated pairs and three real ones: it costs the real pairs.
    few = np.r_[np.full(3, 0.95), np.full(144, 0.1), np.full(3, 0.95)]
    assert choose_gate(scores, few, 2, gold, _argmax, real_rows=100).threshold is None


def _rule(choice: str, relevance_gate: RelevanceGate | None = None) -> HybridRule:
    return HybridRule(
        choice=choice,
        blend_lambda={"encoder": 0.0, "sparse": None, "blend": 1.0}[choice],
        temperature=1.0,
        sparse_temperature=1.0,
        relevance_gate=relevance_gate,
    )


def test_what_a_hybrids_decision_reads() -> None:
    def reads(choice: str, source: str | None) -> tuple[bool, bool, bool]:
        gate = RelevanceGate(label="none", threshold=0.5, source=source) if source else None
        rule = _rule(choice, gate)
        return rule.reads_encoder, rule.reads_sparse, rule.reads_detector

    assert reads("encoder", None) == (True, False, False)
    assert reads("sparse", None) == (False, True, False)
    assert reads("sparse", "encoder") == (True, True, False)
    # the detector is in the sparse part: no encoder at all
    assert reads("sparse", "detector") == (False, True, True)
    assert reads("encoder", "detector") == (True, True, True)
    assert reads("blend", "detector") == (True, True, True)


def test_a_rule_with_an_unknown_key_is_refused_on_load(trained_model: Path, tmp_path: Path) -> None:
    from naba.errors import ModelDirError
    from naba.manifest import read_manifest

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    manifest = json.loads((model / "naba.json").read_text(encoding="utf-8"))
    manifest["tasks"]["topic"]["hybrid"]["wieght"] = 0.5
    (model / "naba.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    message = (
        f"{model / 'naba.json'}: unknown key tasks.topic.hybrid.wieght (misspelt, or written by a "
        "newer naba); upgrade naba, or restore the model directory"
    )
    with pytest.raises(ModelDirError, match=re.escape(message)):
        read_manifest(model)
    del manifest["tasks"]["topic"]["hybrid"]["wieght"]
    del manifest["tasks"]["topic"]["hybrid"]["choice"]
    (model / "naba.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ModelDirError, match=re.escape("missing key tasks.topic.hybrid.choice")):
        read_manifest(model)


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


def test_trained_model_is_a_hybrid_every_door_applies(trained_model: Path, clf) -> None:
    from transformers import AutoModelForSequenceClassification

    from naba.sparse import SparseModel

    manifest = json.loads((trained_model / "naba.json").read_text(encoding="utf-8"))
    for task in ("topic", "stance"):
        record = manifest["tasks"][task]["hybrid"]
        assert record["choice"] in ("encoder", "sparse", "blend") and record["path"] == "sparse"
        files = sorted(p.name for p in (trained_model / task / "sparse").iterdir())
        assert files == ["sparse.json", "vocabulary.json", "weights.safetensors"]
        parts = manifest["tasks"][task]["metrics"]["parts"]
        assert parts["hybrid"]["test"]["macro_f1"] == round(
            manifest["tasks"][task]["metrics"]["test"]["macro_f1"], 4
        )
        # the HF directory still loads as it is: the encoder alone
        AutoModelForSequenceClassification.from_pretrained(trained_model / task)
    assert not list(trained_model.rglob("*.pkl")) and not list(trained_model.rglob("*.bin"))
    # The Classifier's scores are the blend of its parts, as recorded.
    spec = clf.tasks["topic"].spec
    parts = clf.part_scores(TEXTS, "topic")
    expected = spec.hybrid.scores(
        parts["encoder"],
        SparseModel.load(trained_model / "topic" / "sparse").margins(TEXTS),
        spec.labels,
        spec.multi_label,
    )
    got = np.array(
        [
            [r["topics"]["scores"][label] for label in spec.labels]
            for r in clf.predict(TEXTS, tasks=["topic"])
        ]
    )
    np.testing.assert_allclose(got, expected, atol=2e-6)
    np.testing.assert_allclose(parts["hybrid"], expected, atol=1e-6)


def test_evaluate_shows_the_parts_side_by_side(
    trained_model: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from naba.evaluation.report import evaluate_model

    metrics = evaluate_model(trained_model, small_data["topic_test"], tmp_path / "r", task="topic")
    manifest = json.loads((trained_model / "naba.json").read_text(encoding="utf-8"))
    recorded = manifest["tasks"]["topic"]["metrics"]["parts"]
    for part in ("encoder", "sparse", "hybrid"):
        assert metrics["parts"][part]["macro_f1"] == pytest.approx(
            recorded[part]["test"]["macro_f1"], abs=1e-4
        )
    assert metrics["macro_f1"] == pytest.approx(metrics["parts"]["hybrid"]["macro_f1"])
    report = (tmp_path / "r" / "report.md").read_text(encoding="utf-8")
    assert "## Hybrid: what each part brings" in report and "| macro-F1 |" in report


def _cli(*args):
    from naba.cli import app

    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def encoder_only(
    tmp_path_factory: pytest.TempPathFactory, tiny_encoder: Path, small_data: dict[str, Path]
) -> Path:
    """A single-label topic model trained with model.hybrid: false (today's encoder-only model)."""
    from conftest import task_paths, write_config
    from naba.config import load_config
    from naba.train.trainer import train

    d = tmp_path_factory.mktemp("plain")
    cfg = load_config(
        write_config(
            d / "cfg.yaml",
            tiny_encoder,
            task_paths(small_data, "single"),
            model={"base": str(tiny_encoder), "hybrid": False},
        )
    )
    return train(cfg, d / "model", show_progress_bar=False)


def test_hybrid_false_is_the_encoder_alone(encoder_only: Path) -> None:
    manifest = json.loads((encoder_only / "naba.json").read_text(encoding="utf-8"))
    assert (
        manifest["tasks"]["topic"]["hybrid"] is None
        and "parts" not in manifest["tasks"]["topic"]["metrics"]
    )
    assert not (encoder_only / "topic" / "sparse").exists()


def test_naba_blend_adds_a_hybrid_to_an_existing_directory(
    encoder_only: Path, small_data: dict[str, Path], tmp_path: Path
) -> None:
    from naba.infer.classifier import Classifier

    model = tmp_path / "model"
    shutil.copytree(encoder_only, model)
    before = json.loads((model / "naba.json").read_text(encoding="utf-8"))["tasks"]["topic"]
    result = _cli("blend", model)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"wrote {model}"
    assert re.match(
        r"topic: (the encoder alone|the sparse n-gram model alone|a blend \(the sparse margins "
        r"weighted [\d.]+ beside the encoder's log-probabilities\)); dev macro-F1 encoder "
        r"\d\.\d{4}, sparse \d\.\d{4}, equal blend \d\.\d{4}, hybrid \d\.\d{4}",
        result.output.splitlines()[0],
    )
    after = json.loads((model / "naba.json").read_text(encoding="utf-8"))["tasks"]["topic"]
    assert (
        after["hybrid"]["path"] == "sparse"
        and (model / "topic" / "sparse" / "weights.safetensors").exists()
    )
    # the encoder is untouched: its part scores the same as the model before
    assert after["metrics"]["parts"]["encoder"]["test"]["macro_f1"] == round(
        before["metrics"]["test"]["macro_f1"], 4
    )
    assert (model / "topic" / "model.safetensors").read_bytes() == (
        encoder_only / "topic" / "model.safetensors"
    ).read_bytes()
    assert "hybrid: naba decides with" in (model / "README.md").read_text(encoding="utf-8")
    assert not [
        p for p in tmp_path.iterdir() if p.name.startswith(".")
    ]  # no temporary directory left
    clf = Classifier.load(model)
    assert clf.tasks["topic"].spec.hybrid.model_dump() == after["hybrid"]
    # refit on other splits, named explicitly
    again = _cli(
        "blend", model, "--train", small_data["single_train"], "--dev", small_data["single_dev"]
    )
    assert again.exit_code == 0, again.output


def test_naba_blend_errors(trained_model: Path, tmp_path: Path) -> None:
    two = _cli("blend", trained_model, "--train", tmp_path / "x.jsonl")
    assert two.exit_code == 2
    assert (
        "error: --train/--dev: the model has two tasks; name the one they are for with --task"
        in two.output
    )
    missing = _cli("blend", tmp_path / "nothing")
    assert missing.exit_code == 2 and "model directory not found" in missing.output


def test_the_decision_rule_and_a_card_travel_with_each_task_directory(trained_model: Path) -> None:
    import yaml
    from transformers import AutoConfig

    manifest = json.loads((trained_model / "naba.json").read_text(encoding="utf-8"))
    for task in ("topic", "stance"):
        spec = manifest["tasks"][task]
        decision = AutoConfig.from_pretrained(trained_model / task).naba_decision
        assert (
            decision["thresholds"] == spec["thresholds"]
            and decision["multi_label"] == spec["multi_label"]
        )
        assert decision["prior_correction"]["alpha"] == spec["prior_correction"]
        assert (
            decision["hybrid"]["blend_lambda"] == spec["hybrid"]["blend_lambda"]
            and "formula" in decision["hybrid"]
        )
        card = (trained_model / task / "README.md").read_text(encoding="utf-8")
        header = yaml.safe_load(card.split("---")[1])
        assert header["language"] == ["ar"] and header["pipeline_tag"] == "text-classification"
        assert header["base_model"] == manifest["base_model"] and task in header["tags"]
        assert header["model-index"][0]["results"][0]["metrics"][0]["value"] == round(
            spec["metrics"]["test"]["macro_f1"], 4
        )
        assert "## With plain transformers" in card
    whole = yaml.safe_load(
        (trained_model / "README.md").read_text(encoding="utf-8").split("---")[1]
    )
    assert whole["language"] == ["ar"] and len(whole["model-index"][0]["results"]) == 2
    assert any(d.endswith("stance_train.jsonl") for d in whole["datasets"])


def test_stance_sparse_part_learns_from_real_pairs_and_the_blend_is_chosen_with_relevance(
    tiny_encoder: Path, small_data: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from naba.config import load_config
    from naba.sparse import SparseModel
    from naba.train.data import add_unrelated_pairs, load_task_data
    from naba.train.hybrid import Hybrid

    config = load_config(
        write_config(tmp_path / "cfg.yaml", tiny_encoder, task_paths(small_data, "stance"))
    )
    data = load_task_data(config, "stance")
    real = list(data.splits["train"])
    add_unrelated_pairs(data, config)
    assert len(data.splits["train"]) > len(real)
    seen: list[list[dict]] = []
    fit = SparseModel.fit
    monkeypatch.setattr(
        SparseModel, "fit", lambda self, records: seen.append(records) or fit(self, records)
    )
    rng = np.random.default_rng(0)
    encoder = {
        name: rng.dirichlet(np.ones(len(data.labels)), size=len(records))
        for name, records in (
            ("dev", data.splits["dev"]),
            ("dev_unrelated", data.unrelated_pairs["dev"]),
        )
    }
    hybrid = Hybrid.fit(data, encoder, config)
    assert seen == [real]
    assert set(hybrid.scores) == {"dev", "dev_unrelated"}
    # The blend is chosen on the real dev pairs alone.
    assert set(hybrid.rule.dev_macro_f1) == {"encoder", "sparse", "equal", "hybrid"}
    if hybrid.rule.relevance_gate is not None:
        assert hybrid.rule.chosen_on.startswith("dev: the ")
        assert hybrid.rule.chosen_on.endswith(
            "; the relevance gate on dev and its generated unrelated pairs"
        )
    # An encoder sure that every generated pair is unrelated and unsure of every real one:
    # the gate keeps its verdict.
    none = data.labels.index("none")
    unsure = np.full((len(data.splits["dev"]), len(data.labels)), 0.8 / (len(data.labels) - 1))
    unsure[:, none] = 0.2
    sure = np.full(
        (len(data.unrelated_pairs["dev"]), len(data.labels)), 0.05 / (len(data.labels) - 1)
    )
    sure[:, none] = 0.95
    with_detector = Hybrid.fit(data, {"dev": unsure, "dev_unrelated": sure}, config)
    assert with_detector.rule.relevance_gate.source == "detector"  # the gate's one source
    # Without a detector, the encoder's signal.
    plain = SparseModel("stance", data.labels, False, config.normalization).fit(real)
    hybrid = Hybrid.fit(data, {"dev": unsure, "dev_unrelated": sure}, config, sparse=plain)
    assert hybrid.rule.choice != "encoder"
    gated = hybrid.rule.relevance_gate
    assert gated.label == "none" and gated.source == "encoder" and gated.threshold == 0.9
    assert gated.dev_macro_f1["gated"] > gated.dev_macro_f1["ungated"]
    assert (hybrid.scores["dev_unrelated"].argmax(axis=1) == none).all()
    records = data.splits["dev"]
    again = hybrid.rule.scores(
        unsure,
        hybrid.sparse.margins(records),
        data.labels,
        False,
        hybrid.sparse.unrelated_probability(records) if hybrid.rule.reads_detector else None,
    )
    np.testing.assert_allclose(hybrid.scores["dev"], again, rtol=1e-6)


def test_every_door_applies_a_relevance_gate(trained_model: Path, tmp_path: Path) -> None:
    from naba.evaluation.report import evaluate_model
    from naba.infer.classifier import Classifier

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    manifest = json.loads((model / "naba.json").read_text(encoding="utf-8"))
    stance = manifest["tasks"]["stance"]
    # The sparse part decides, gated by the encoder's 'none' from 0.5.
    stance["hybrid"] = {
        **stance["hybrid"],
        "choice": "sparse",
        "blend_lambda": None,
        "temperature": stance["hybrid"]["sparse_temperature"],
        "relevance_gate": {"label": "none", "source": "encoder", "threshold": 0.5},
    }
    (model / "naba.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    clf = Classifier.load(model)
    assert clf.tasks["stance"].runs_encoder  # a sparse choice with a gate still reads the encoder
    articles = [{"text": t, "target": "الطاقة النووية"} for t in TEXTS]
    parts = clf.part_scores(articles, "stance")
    labels = clf.tasks["stance"].spec.labels
    none = labels.index("none")
    expected = gate(parts["sparse"], parts["encoder"][:, none], 0.5, none)
    np.testing.assert_allclose(parts["hybrid"], expected, rtol=1e-5)
    got = np.array(
        [
            [r["stance"][0]["scores"][label] for label in labels]
            for r in clf.predict(articles, tasks=["stance"])
        ]
    )
    np.testing.assert_allclose(got, expected, atol=2e-6)
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"a{i}", **a, "stance": "none"}, ensure_ascii=False) + "\n"
            for i, a in enumerate(articles)
        ),
        encoding="utf-8",
    )
    metrics = evaluate_model(
        model, data, tmp_path / "report", task="stance", show_progress_bar=False
    )
    assert "and where the encoder's 'none' is at least 0.5, 'none' (not about the target)" in (
        tmp_path / "report" / "report.md"
    ).read_text(encoding="utf-8")
    share = float(np.mean(expected.argmax(axis=1) == none))
    assert metrics["parts"]["hybrid"]["accuracy"] == pytest.approx(share, abs=1e-4)


def test_every_door_applies_the_sparse_detectors_gate_without_running_the_encoder(
    trained_model: Path, tmp_path: Path
) -> None:
    from naba.evaluation.report import evaluate_model
    from naba.infer.classifier import Classifier
    from naba.relevance import DETECTOR_MIN_PAIRS
    from naba.sparse import SparseModel

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    # A detector that knows one target's vocabulary, written into the model's sparse part.
    sparse = SparseModel.load(model / "stance" / "sparse")
    nuclear = [
        {"text": f"{TEXTS[0]} رقم {i}", "target": "الطاقة النووية"}
        for i in range(DETECTOR_MIN_PAIRS)
    ]
    others = [
        {"text": f"{t} رقم {i}", "target": "الطاقة النووية"}
        for t in TEXTS[1:]
        for i in range(DETECTOR_MIN_PAIRS)
    ]
    sparse.fit_detector(nuclear, others, nuclear[:3], others[:3]).save(model / "stance" / "sparse")
    manifest = json.loads((model / "naba.json").read_text(encoding="utf-8"))
    stance = manifest["tasks"]["stance"]
    stance["hybrid"] = {
        **stance["hybrid"],
        "choice": "sparse",
        "blend_lambda": None,
        "temperature": stance["hybrid"]["sparse_temperature"],
        "relevance_gate": {"label": "none", "threshold": 0.5, "source": "detector"},
    }
    (model / "naba.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    clf = Classifier.load(model)
    assert not clf.tasks["stance"].runs_encoder and clf.tasks["stance"].runs_sparse
    articles = [{"text": t, "target": "الطاقة النووية"} for t in TEXTS] + [
        {"text": TEXTS[1], "target": "#"}
    ]  # no words to read
    labels = clf.tasks["stance"].spec.labels
    none = labels.index("none")
    unrelated = sparse.unrelated_probability(articles)
    assert unrelated[0] < 0.5 < min(unrelated[1:3]) and np.isnan(unrelated[3])
    own = probabilities(sparse.margins(articles), stance["hybrid"]["temperature"], False)
    expected = own.copy()
    expected[1:3] *= 1 - unrelated[1:3, None]
    expected[1:3, none] += unrelated[1:3]
    got = np.array(
        [
            [r["stance"][0]["scores"][label] for label in labels]
            for r in clf.predict(articles, tasks=["stance"])
        ]
    )
    np.testing.assert_allclose(got, expected, atol=2e-6)
    # Each entry carries the relevance the gate read: 1 - the detector's "not about", none
    # where it had no answer.
    entries = [r["stance"][0] for r in clf.predict(articles, tasks=["stance"])]
    np.testing.assert_allclose([e["relevance"] for e in entries[:3]], 1 - unrelated[:3], atol=2e-6)
    assert "relevance" not in entries[3]
    assert [r["stance"][0]["label"] for r in clf.predict(articles[1:3], tasks=["stance"])] == [
        "none",
        "none",
    ]
    np.testing.assert_allclose(clf.part_scores(articles, "stance")["hybrid"], expected, atol=2e-6)
    data = tmp_path / "pairs.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"a{i}", **a, "stance": "none"}, ensure_ascii=False) + "\n"
            for i, a in enumerate(articles)
        ),
        encoding="utf-8",
    )
    evaluate_model(model, data, tmp_path / "report", task="stance", show_progress_bar=False)
    assert (
        "and where the sparse relevance detector's 'not about the target' is at least 0.5, "
        "'none' (not about the target)"
        in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    )


def test_training_pairs_every_spelling_of_a_target_the_detector_learns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The detector counts targets after normalisation.

    Its cross-target pairs must use each raw spelling of them.
    """
    from naba.config import NabaConfig
    from naba.relevance import DETECTOR_MIN_PAIRS
    from naba.sparse import SparseModel
    from naba.train.data import TaskData
    from naba.train.hybrid import fit_relevance_detector

    half = DETECTOR_MIN_PAIRS // 2 + 1  # neither spelling alone has enough pairs; together they do
    spellings = ["الطاقة النووية", "الطَّاقة النَّووية"]  # the same target, with and without diacritics
    stances = ["favor", "none"]
    train = [
        {"text": f"محطة نووية جديدة رقم {i} {s}", "target": s, "stance": stances[i % 2]}
        for s in spellings
        for i in range(half)
    ]
    train += [
        {"text": f"مباراة القدم انتهت رقم {i}", "target": "كرة القدم", "stance": stances[i % 2]}
        for i in range(DETECTOR_MIN_PAIRS)
    ]
    dev = [
        {"text": "محطة نووية في الشمال", "target": spellings[0], "stance": "favor"},
        {"text": "مباراة حاسمة في الدوري", "target": "كرة القدم", "stance": "favor"},
    ]
    data = TaskData(
        "stance",
        ["favor", "none"],
        False,
        {"train": train, "dev": dev},
        unrelated={"label": "none", "ratio": 0.0, "pairs": {"train": 0}},
        unrelated_pairs={"dev": []},
    )
    seen = {}
    real_fit = SparseModel.fit_detector

    def spy(self, related, unrelated, dev_related, dev_unrelated):
        seen["targets"] = {r["target"] for r in unrelated}
        return real_fit(self, related, unrelated, dev_related, dev_unrelated)

    monkeypatch.setattr(SparseModel, "fit_detector", spy)
    config = NabaConfig.model_validate({"tasks": {"stance": {"train": "t.jsonl"}}})
    sparse = fit_relevance_detector(
        SparseModel("stance", ["favor", "none"], False).fit(train), data, config
    )
    assert len(sparse.detector["targets"]) == 2  # the two spellings are one target to the detector
    assert seen["targets"] == {*spellings, "كرة القدم"}  # and both spellings get cross-target pairs


def test_stance_entries_carry_relevance_in_every_door(trained_model: Path, tmp_path: Path) -> None:
    import csv

    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from naba.cli import app
    from naba.infer.classifier import Classifier
    from naba.infer.schema import Prediction

    model = tmp_path / "model"
    shutil.copytree(trained_model, model)
    manifest = json.loads((model / "naba.json").read_text(encoding="utf-8"))
    stance = manifest["tasks"]["stance"]
    stance["hybrid"] = {
        **stance["hybrid"],
        "relevance_gate": {"label": "none", "threshold": 0.6, "source": "encoder"},
    }
    (model / "naba.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    clf = Classifier.load(model)
    articles = [{"id": str(i), "text": t, "target": "الطاقة النووية"} for i, t in enumerate(TEXTS)]
    encoder = clf.part_scores(articles, "stance")["encoder"][:, stance["labels"].index("none")]
    records = clf.predict(articles, tasks=["stance"])
    relevance = [r["stance"][0]["relevance"] for r in records]
    np.testing.assert_allclose(relevance, 1 - encoder, atol=2e-6)
    assert all(Prediction.model_validate(r).stance[0].relevance is not None for r in records)
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8"
    )
    for suffix in ("csv", "parquet"):
        out = tmp_path / f"out.{suffix}"
        args = ["predict", str(model), str(source), "-o", str(out), "--tasks", "stance"]
        result = CliRunner().invoke(app, [*args, "--no-progress"])
        assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    np.testing.assert_allclose([float(r["stance.0.relevance"]) for r in rows], relevance, atol=1e-6)
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["stance"][0]["relevance"] for row in table] == relevance
    # A model without a gate: no relevance key, no column.
    plain = Classifier.load(trained_model)
    if plain.tasks["stance"].spec.hybrid is None or not plain.tasks["stance"].spec.hybrid.has_gate:
        assert "relevance" not in plain.predict(articles[0], tasks=["stance"])["stance"][0]

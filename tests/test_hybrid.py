"""Hybrid models: the blend chosen on dev, applied in every door, and `naba blend` on an existing directory."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import task_paths, write_config
from naba.blend import TIE, blend, choose_blend, choose_gate, gate
from naba.rule import HybridRule, RelevanceGate

runner = CliRunner()
TEXTS = [
    "أعلنت وزارة الطاقة عن خطة لبناء محطة نووية جديدة",
    "ارتفعت أسعار النفط في الأسواق العالمية",
    "فاز المنتخب الوطني بالبطولة بعد مباراة مثيرة",
]


def _macro_f1(gold: np.ndarray):
    from sklearn.metrics import f1_score

    return lambda p: f1_score(gold, p.argmax(axis=1), average="macro")


def test_blend_ends_are_the_parts_and_rows_are_distributions() -> None:
    rng = np.random.default_rng(0)
    encoder = rng.dirichlet(np.ones(3), size=20)
    margins = rng.normal(size=(20, 3))
    np.testing.assert_allclose(blend(encoder, margins, 1.0, 0.5, False), encoder, rtol=1e-6)
    sparse = np.exp(margins / 0.5) / np.exp(margins / 0.5).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(blend(None, margins, 0.0, 0.5, False), sparse, rtol=1e-5)
    mixed = blend(encoder, margins, 0.5, 0.25, False)
    np.testing.assert_allclose(mixed.sum(axis=1), 1.0, rtol=1e-5)
    multi = blend(rng.uniform(size=(20, 3)), margins, 0.5, 1.0, True)
    assert ((multi > 0) & (multi < 1)).all()
    np.testing.assert_allclose(
        blend(None, margins, 0.0, 1.0, True), 1 / (1 + np.exp(-margins)), rtol=1e-5
    )


def test_choose_blend_keeps_the_simpler_on_ties_and_blends_complementary_parts() -> None:
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 3, size=300)
    perfect = np.eye(3)[gold] * 0.8 + 0.1
    noise = rng.normal(size=(300, 3))
    # The encoder is right: nothing beats it, so it is kept.
    assert choose_blend(perfect, noise, gold, False, _macro_f1(gold))["choice"] == "encoder"
    # The encoder is noise and the sparse model right: the sparse model alone.
    chosen = choose_blend(
        rng.dirichlet(np.ones(3), size=300), 3 * np.eye(3)[gold], gold, False, _macro_f1(gold)
    )
    assert chosen["choice"] == "sparse" and chosen["dev_macro_f1"]["sparse"] == 1.0
    # Each part right on a different half: only a blend gets both.
    half = np.arange(300) < 150
    encoder = np.where(half[:, None], perfect, 1 / 3)
    margins = np.where(half[:, None], 0.0, 3 * np.eye(3)[gold])
    chosen = choose_blend(encoder, margins, gold, False, _macro_f1(gold))
    assert chosen["choice"] == "blend" and chosen["dev_macro_f1"]["hybrid"] == 1.0
    assert (
        chosen["dev_macro_f1"]["hybrid"]
        > max(chosen["dev_macro_f1"]["encoder"], chosen["dev_macro_f1"]["sparse"]) + TIE
    )
    # A gain below the tie margin keeps the encoder.
    scores = iter([0.70] + [0.70 + TIE / 2] * 20)
    assert choose_blend(perfect, noise, gold, False, lambda p: next(scores))["choice"] == "encoder"


def test_the_relevance_gate_lets_the_encoders_neutral_verdict_stand() -> None:
    encoder = np.array(
        [[0.05, 0.05, 0.90], [0.30, 0.10, 0.60], [0.70, 0.20, 0.10]], dtype=np.float32
    )
    blended = np.array(
        [[0.60, 0.30, 0.10], [0.50, 0.40, 0.10], [0.10, 0.80, 0.10]], dtype=np.float32
    )
    np.testing.assert_array_equal(
        gate(blended, encoder, 0.8, 2), np.stack([encoder[0], blended[1], blended[2]])
    )
    np.testing.assert_array_equal(
        gate(blended, encoder, 0.5, 2), np.stack([encoder[0], encoder[1], blended[2]])
    )
    margins = np.log(blended)
    rule = _rule("sparse", RelevanceGate(label="none", threshold=0.8))
    labels = ["against", "favor", "none"]
    got = rule.scores(encoder, margins, labels, False)
    np.testing.assert_allclose(got, np.stack([encoder[0], blended[1], blended[2]]), rtol=1e-5)
    ungated = rule.model_copy(update={"relevance_gate": None})
    np.testing.assert_allclose(ungated.scores(encoder, margins, labels, False), blended, rtol=1e-5)
    # The signal the gate reads, per row: the encoder's probability of the neutral label.
    np.testing.assert_allclose(rule.not_about(encoder, None, labels), encoder[:, 2], rtol=1e-6)
    assert ungated.not_about(encoder, None, labels) is None


def test_choose_gate_gates_only_what_the_encoder_knows_and_keeps_no_gate_on_ties() -> None:
    # 100 real pairs the blend gets right (none of them neutral), then 50 unrelated pairs (gold: neutral, column 2) that
    # the blend calls favor; the encoder is sure of those (0.85) and unsure elsewhere (neutral 0.55 on 10 real pairs).
    gold = np.r_[np.arange(100) % 2, np.full(50, 2)]
    blended = np.r_[np.eye(3)[np.arange(100) % 2] * 0.9 + 0.05, np.tile([0.1, 0.8, 0.1], (50, 1))]
    encoder = np.tile([0.4, 0.3, 0.3], (150, 1))
    encoder[100:] = [0.05, 0.10, 0.85]
    encoder[:10] = [0.25, 0.20, 0.55]
    chosen, scores = choose_gate(blended, encoder, 2, _macro_f1(gold))
    assert chosen == {
        "source": "encoder",
        "threshold": 0.8,
    }  # 0.9 gates nothing; 0.8 the 50 unrelated pairs; 0.5 also 10 real
    assert scores == {"ungated": round(_macro_f1(gold)(blended), 4), "gated": 1.0}
    # An encoder that knows nothing of relevance: no gate.
    assert choose_gate(blended, np.full((150, 3), 1 / 3), 2, _macro_f1(gold))[0] is None
    # A detector that knows (0.75 on the unrelated pairs, 0.6 on 20 real ones, no answer on 10): its gate at 0.7 ties the
    # encoder's at 0.8 (both perfect, both gate 50 rows): the encoder, first of the sources, is kept.
    detector = np.r_[np.full(10, np.nan), np.full(20, 0.6), np.full(70, 0.05), np.full(50, 0.75)]
    chosen, _ = choose_gate(
        blended, encoder, 2, _macro_f1(gold), detector, ("encoder", "sparse", "either")
    )
    assert chosen == {"source": "encoder", "threshold": 0.8}
    # Without the encoder's source (it chose the encoder alone, or knows nothing): the detector, above its 20 unsure rows.
    chosen, scores = choose_gate(
        blended, np.full((150, 3), 1 / 3), 2, _macro_f1(gold), detector, ("sparse", "either")
    )
    assert chosen == {"source": "sparse", "threshold": 0.7} and scores["gated"] == 1.0


def test_the_detectors_gate_moves_its_share_to_the_neutral_label_and_abstains_on_nan() -> None:
    encoder = np.array(
        [[0.05, 0.05, 0.90], [0.30, 0.10, 0.60], [0.70, 0.20, 0.10], [0.6, 0.3, 0.1]],
        dtype=np.float32,
    )
    blended = np.array(
        [[0.60, 0.30, 0.10], [0.50, 0.40, 0.10], [0.10, 0.80, 0.10], [0.2, 0.7, 0.1]],
        dtype=np.float32,
    )
    unrelated = np.array([0.2, 0.9, 0.7, np.nan], dtype=np.float32)
    got = gate(blended, encoder, 0.7, 2, "sparse", unrelated)
    np.testing.assert_allclose(
        got,
        [blended[0], 0.1 * blended[1] + [0, 0, 0.9], 0.3 * blended[2] + [0, 0, 0.7], blended[3]],
        rtol=1e-6,
    )
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    assert list(got.argmax(axis=1)) == [0, 2, 2, 1]
    # either: the encoder's verdicts first (row 0), then the detector's among the rest (rows 1 and 2)
    either = gate(blended, encoder, 0.7, 2, "either", unrelated)
    np.testing.assert_allclose(
        either, np.stack([encoder[0], got[1], got[2], blended[3]]), rtol=1e-6
    )
    rule = _rule("sparse", RelevanceGate(label="none", threshold=0.7, source="sparse"))
    labels = ["against", "favor", "none"]
    np.testing.assert_allclose(
        rule.scores(None, np.log(blended), labels, False, unrelated), got, rtol=1e-5
    )
    # The signal: the detector's (NaN where it has no answer); with either, the larger of the two.
    np.testing.assert_allclose(
        rule.not_about(None, unrelated, labels), unrelated, rtol=1e-6, equal_nan=True
    )
    both = rule.model_copy(
        update={"relevance_gate": RelevanceGate(label="none", threshold=0.7, source="either")}
    )
    np.testing.assert_allclose(
        both.not_about(encoder, unrelated, labels), [0.9, 0.9, 0.7, 0.1], rtol=1e-6
    )


def _rule(choice: str, relevance_gate: RelevanceGate | None = None) -> HybridRule:
    weight = {"encoder": 1.0, "sparse": 0.0, "blend": 0.5}[choice]
    return HybridRule(
        choice=choice,
        weight=weight,
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
    assert reads("sparse", "sparse") == (False, True, True)
    assert reads("encoder", "sparse") == (True, True, True)
    assert reads("blend", "either") == (True, True, True)


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
    expected = blend(
        parts["encoder"],
        SparseModel.load(trained_model / "topic" / "sparse").margins(TEXTS),
        spec.hybrid.weight,
        spec.hybrid.temperature,
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
        r"topic: (the encoder alone|the sparse n-gram model alone|a blend \(encoder weight [\d.]+, sparse temperature [\d.]+\)); dev macro-F1 encoder \d\.\d{4}, sparse \d\.\d{4}, hybrid \d\.\d{4}",
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
            decision["hybrid"]["weight"] == spec["hybrid"]["weight"]
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
    assert hybrid.rule.dev_macro_f1["hybrid"] == round(max(hybrid.rule.dev_macro_f1.values()), 4)
    if hybrid.rule.choice == "encoder":
        assert hybrid.rule.relevance_gate is None
    else:
        assert (
            hybrid.rule.chosen_on
            == "dev (the blend); dev and its generated unrelated pairs (the relevance gate)"
        )
    # An encoder sure that every generated pair is unrelated and unsure of every real one: the gate keeps its verdict.
    none = data.labels.index("none")
    unsure = np.full((len(data.splits["dev"]), len(data.labels)), 0.8 / (len(data.labels) - 1))
    unsure[:, none] = 0.2
    sure = np.full(
        (len(data.unrelated_pairs["dev"]), len(data.labels)), 0.05 / (len(data.labels) - 1)
    )
    sure[:, none] = 0.95
    hybrid = Hybrid.fit(data, {"dev": unsure, "dev_unrelated": sure}, config)
    assert hybrid.rule.choice != "encoder"
    gated = hybrid.rule.relevance_gate
    assert gated.label == "none" and gated.threshold == 0.9
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
    # Every pair gated (threshold 0): the hybrid's scores are the encoder's, whatever the blend.
    stance["hybrid"] = {
        **stance["hybrid"],
        "choice": "sparse",
        "weight": 0.0,
        "relevance_gate": {"label": "none", "threshold": 0.0},
    }
    (model / "naba.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    clf = Classifier.load(model)
    assert clf.tasks["stance"].runs_encoder  # a sparse choice with a gate still reads the encoder
    articles = [{"text": t, "target": "الطاقة النووية"} for t in TEXTS]
    parts = clf.part_scores(articles, "stance")
    np.testing.assert_allclose(parts["hybrid"], parts["encoder"], rtol=1e-6)
    labels = clf.tasks["stance"].spec.labels
    got = np.array(
        [
            [r["stance"][0]["scores"][label] for label in labels]
            for r in clf.predict(articles, tasks=["stance"])
        ]
    )
    np.testing.assert_allclose(got, parts["encoder"], atol=2e-6)
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
    assert "and where the encoder's 'none' is at least 0, 'none' (not about the target)" in (
        tmp_path / "report" / "report.md"
    ).read_text(encoding="utf-8")
    assert metrics["parts"]["hybrid"]["macro_f1"] == metrics["parts"]["encoder"]["macro_f1"]


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
        "weight": 0.0,
        "relevance_gate": {"label": "none", "threshold": 0.5, "source": "sparse"},
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
    own = blend(None, sparse.margins(articles), 0.0, stance["hybrid"]["temperature"], False)
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
    # Each entry carries the relevance the gate read: 1 - the detector's "not about", none where it had no answer.
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
        "and where the sparse relevance detector's 'not about the target' is at least 0.5, 'none' (not about the target)"
        in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    )


def test_training_pairs_every_spelling_of_a_target_the_detector_learns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The detector counts targets after normalisation; its cross-target pairs must use each raw spelling of them."""
    from naba.config import NabaConfig
    from naba.relevance import DETECTOR_MIN_PAIRS
    from naba.sparse import SparseModel
    from naba.train.data import TaskData
    from naba.train.hybrid import fit_detector

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
    sparse = fit_detector(SparseModel("stance", ["favor", "none"], False).fit(train), data, config)
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

"""``naba select``: uncertainty, diversity, determinism, and the JSONL /
Label Studio / Argilla outputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from typer.testing import CliRunner

from naba.config import NormalizationConfig
from naba.infer.select import (
    TaskRule,
    choose,
    margin_uncertainty,
    select_records,
    text_space,
    threshold_uncertainty,
    uncertainties,
)

runner = CliRunner()

LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"


def words(seed: int, n: int) -> list[str]:
    """``n`` distinct made-up Arabic words (4-6 letters), the same for the same seed."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    while len(out) < n:
        word = "".join(rng.choice(list(LETTERS), rng.integers(4, 7)))
        if word not in out:
            out.append(word)
    return out


def article(vocabulary: list[str], rng: np.random.Generator, length: int = 30) -> str:
    return " ".join(rng.choice(vocabulary, length))


class FixedScorer:
    """A scorer whose prediction records are given per id (for choosing without a model)."""

    name = "fixed"
    normalization = NormalizationConfig()

    def __init__(self, table: dict[str, dict], rules: dict[str, TaskRule]) -> None:
        self.table, self.rules = table, rules

    def predict(self, records: list[dict]) -> list[dict]:
        return [{"id": r["id"], **self.table[r["id"]]} for r in records]


def topic(p: list[float], labels: tuple[str, ...] = ("a", "b", "c")) -> dict:
    return {"topics": {"labels": [labels[int(np.argmax(p))]], "scores": dict(zip(labels, p))}}


SINGLE = {"topic": TaskRule(["a", "b", "c"], False)}


# ----------------------------------------------------------------------------- uncertainty


def test_margin_uncertainty_is_one_at_a_tie_and_falls_with_the_gap() -> None:
    u = margin_uncertainty(np.array([[0.45, 0.45, 0.1], [0.6, 0.3, 0.1], [0.98, 0.01, 0.01]]))
    assert u == pytest.approx([1.0, 0.7, 0.03])


def test_threshold_uncertainty_is_the_nearest_label_to_its_own_threshold() -> None:
    thresholds = np.array([0.5, 0.2])
    probabilities = np.array(
        [
            [0.5, 0.9],  # label 0 sits on its threshold
            [0.95, 0.1],  # label 1 is halfway below its 0.2 threshold; label 0 far above 0.5
            [1.0, 0.0],  # every label at its far end
            [0.75, 0.6],  # label 0 halfway above (0.25 of 0.5 room), label 1 half of 0.8 above
        ]
    )
    assert threshold_uncertainty(probabilities, thresholds) == pytest.approx([1.0, 0.5, 0.0, 0.5])


def test_multi_label_uncertainty_reads_the_models_thresholds() -> None:
    rules = {"topic": TaskRule(["a", "b"], True, {"a": 0.3, "b": 0.8})}
    predictions = [
        {"topics": {"labels": ["a"], "scores": {"a": 0.3, "b": 0.1}}},  # a at its threshold
        {"topics": {"labels": ["a"], "scores": {"a": 0.65, "b": 0.0}}},  # a half-way above 0.3
    ]
    assert uncertainties(predictions, rules) == pytest.approx([1.0, 0.5])


def test_stance_uncertainty_is_that_of_the_most_uncertain_decision() -> None:
    rules = {"topic": TaskRule(["a", "b"], False), "stance": TaskRule(["favor", "against"], False)}
    stance = [
        {"target": "t1", "label": "favor", "scores": {"favor": 0.9, "against": 0.1}},
        {"target": "t2", "label": "favor", "scores": {"favor": 0.55, "against": 0.45}},
    ]
    predictions = [
        {"topics": {"labels": ["a"], "scores": {"a": 1.0, "b": 0.0}}, "stance": stance},
        {"topics": {"labels": ["a"], "scores": {"a": 0.6, "b": 0.4}}},  # no target: topic only
        {"stance": stance[:1]},  # stance only
    ]
    assert uncertainties(predictions, rules) == pytest.approx([0.9, 0.8, 0.2])


# ----------------------------------------------------------------------------- diversity


def grouped_pool(groups: int = 3, per_group: int = 8) -> tuple[list[dict], dict[str, dict]]:
    """Articles on ``groups`` subjects (each its own ten words, and words of a shared vocabulary);
    group g's articles are the less uncertain the higher g, every one of them still unsure."""
    rng = np.random.default_rng(7)
    shared = words(99, 400)
    records, table = [], {}
    for g in range(groups):
        subject = words(100 + g, 24)
        for i in range(per_group):
            rid = f"g{g}-{i}"
            records.append({"id": rid, "text": " ".join([*subject, article(shared, rng, 6)])})
            gap = 0.1 * g + 0.0025 * i
            table[rid] = topic([0.5 + gap / 2, 0.5 - gap / 2, 0.0])
    return records, table


def test_diverse_covers_every_group_where_pure_uncertainty_takes_one() -> None:
    records, table = grouped_pool()
    scorer = FixedScorer(table, SINGLE)
    top = select_records(records, scorer, 3, strategy="uncertainty")
    spread = select_records(records, scorer, 3, strategy="diverse")
    assert {r["id"].split("-")[0] for r in top.records} == {"g0"}
    assert sorted(r["id"].split("-")[0] for r in spread.records) == ["g0", "g1", "g2"]
    assert spread.uncertainty == sorted(spread.uncertainty, reverse=True)


def test_diverse_never_chooses_two_near_duplicates() -> None:
    rng = np.random.default_rng(3)
    vocabulary = words(5, 400)
    originals = [article(vocabulary, rng) for _ in range(12)]
    records, table = [], {}
    for i, text in enumerate(originals):
        copies = 4 if i < 3 else 1  # the three most uncertain stories come in four versions each
        for c in range(copies):
            rid = f"{i}-{c}"
            records.append({"id": rid, "text": text + (f" {vocabulary[c]}" if c else "")})
            table[rid] = topic([0.5 + 0.02 * i, 0.5 - 0.02 * i, 0.0])
    scorer = FixedScorer(table, SINGLE)
    top = select_records(records, scorer, 6, strategy="uncertainty")
    spread = select_records(records, scorer, 6, strategy="diverse")
    space = text_space(spread.records).toarray()
    similarity = space @ space.T
    np.fill_diagonal(similarity, 0)
    assert len({r["id"].split("-")[0] for r in top.records}) < 6  # copies crowd the top
    assert similarity.max() < 0.7
    assert len({r["id"].split("-")[0] for r in spread.records}) == 6


@pytest.mark.parametrize("strategy", ["diverse", "uncertainty", "random"])
def test_the_same_seed_chooses_the_same_articles(strategy: str) -> None:
    records, table = grouped_pool(groups=4, per_group=15)
    for record in records[
        ::2
    ]:  # ties: which of two equal articles comes first is the seed's choice
        table[record["id"]] = topic([0.5, 0.5, 0.0])
    scorer = FixedScorer(table, SINGLE)
    runs = [
        [r["id"] for r in select_records(records, scorer, 8, strategy=strategy, seed=s).records]
        for s in (11, 11, 12)
    ]
    assert runs[0] == runs[1] and len(set(runs[0])) == 8
    assert runs[0] != runs[2]


def test_choose_refuses_a_bad_request() -> None:
    with pytest.raises(ValueError, match=re.escape("n: expected at least 1 article to select")):
        choose(np.zeros(2), [{"text": "x"}] * 2, 0)
    with pytest.raises(ValueError, match=re.escape("strategy: expected one of diverse")):
        choose(np.zeros(2), [{"text": "x"}] * 2, 1, strategy="best")  # type: ignore[arg-type]


def test_a_pool_of_copies_gives_fewer_articles_than_asked() -> None:
    records = [{"id": str(i), "text": "نص واحد مكرر في كل مكان"} for i in range(5)]
    scorer = FixedScorer({str(i): topic([0.6, 0.4, 0.0]) for i in range(5)}, SINGLE)
    assert len(select_records(records, scorer, 3).records) == 1


def test_articles_without_a_word_are_still_chosen_by_uncertainty() -> None:
    records = [{"id": str(i), "text": "🙂" * (i + 1)} for i in range(4)]
    table = {str(i): topic([0.5 + 0.1 * i, 0.5 - 0.1 * i, 0.0]) for i in range(4)}
    chosen = select_records(records, FixedScorer(table, SINGLE), 2)
    assert [r["id"] for r in chosen.records] == ["0", "1"]


def test_the_sparse_scorer_gives_prediction_records_select_reads(small_data: dict) -> None:
    from naba.data.records import load_records
    from naba.infer.select import SparseScorer
    from naba.sparse import SparseModel

    models, pools = {}, {}
    for task, name, multi in (("topic", "topic", True), ("stance", "stance", False)):
        train = load_records(small_data[f"{name}_train"], task)
        key = "topics" if task == "topic" else "stance"
        labels = sorted({x for r in train for x in (r[key] if task == "topic" else [r[key]])})
        models[task] = SparseModel(task, labels, multi).fit(train)
        pools[task] = load_records(small_data[f"{name}_test"], task)[:6]
    scorer = SparseScorer(models)
    predictions = scorer.predict(pools["topic"] + pools["stance"])
    assert all("topics" in p for p in predictions)
    assert [("stance" in p) for p in predictions] == [False] * 6 + [True] * 6
    for p in predictions[6:]:
        (entry,) = p["stance"]
        assert sum(entry["scores"].values()) == pytest.approx(1, abs=1e-4)
        assert entry["label"] == max(entry["scores"], key=entry["scores"].get)
    u = uncertainties(predictions, scorer.rules)
    assert scorer.rules["topic"].multi_label and not scorer.rules["stance"].multi_label
    assert ((u >= 0) & (u <= 1)).all() and len(u) == 12
    chosen = select_records(pools["topic"] + pools["stance"], scorer, 4, seed=1)
    assert len({r["id"] for r in chosen.records}) == 4


def test_label_studio_config_and_argilla_record_of_a_single_label_model() -> None:
    import xml.etree.ElementTree as ET

    from naba.data import argilla, labelstudio

    config = labelstudio.labeling_config({"topic": (["sport", 'a "quoted" <label>'], False)})
    (choices,) = ET.fromstring(config).iter("Choices")
    assert choices.get("choice") == "single"
    assert [c.get("value") for c in choices.iter("Choice")] == ["sport", 'a "quoted" <label>']
    prediction = topic([0.7, 0.2, 0.1], ("sport", "economy", "health"))
    record = argilla.record(
        {"id": 7, "text": "نص"}, prediction, 0.5, agent="model", multi_label=False
    )
    assert record["id"] == "7" and record["fields"] == {"text": "نص"}
    assert record["suggestions"] == {"topic": {"value": "sport", "score": 0.7, "agent": "model"}}
    task = labelstudio.task({"id": 7, "text": "نص"}, prediction, 0.25, model_version="model")
    assert task["predictions"][0]["score"] == 0.75
    assert task["predictions"][0]["result"][0]["value"] == {"choices": ["sport"]}


def test_select_files_names_an_unusable_pool_or_format(tmp_path) -> None:
    from naba.errors import InputError
    from naba.infer.select_files import select_files

    scorer = FixedScorer({}, SINGLE)
    blank = tmp_path / "pool.jsonl"
    blank.write_text('{"id": "1", "text": " "}\n', encoding="utf-8")
    with pytest.raises(
        InputError, match=re.escape(f"{blank}: no article to choose from (1 rows, 1 unreadable)")
    ):
        select_files(scorer, [blank], tmp_path / "out.jsonl", 3)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'none.jsonl'}: no such file")):
        select_files(scorer, [tmp_path / "none.jsonl"], tmp_path / "out.jsonl", 3)
    with pytest.raises(
        InputError,
        match=re.escape("format: expected one of jsonl, label-studio, argilla, found 'csv'"),
    ):
        select_files(scorer, [blank], tmp_path / "out.csv", 3, fmt="csv")  # type: ignore[arg-type]
    assert not (tmp_path / "out.jsonl").exists()

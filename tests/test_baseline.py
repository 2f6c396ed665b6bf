"""The TF-IDF baseline's margins agree with its predictions."""

from __future__ import annotations

import numpy as np
import pytest

from naba.sparse import UNSEEN, SparseModel

WORDS = {
    "sport": ["مباراة", "الفريق", "هدف", "الدوري", "اللاعب"],
    "economy": ["النفط", "الأسعار", "السوق", "البنك", "التضخم"],
    "politics": ["الحكومة", "البرلمان", "الوزير", "الانتخابات", "الحزب"],
}


def _records(labels: list[str], per_label: int = 8) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {"text": " ".join(rng.choice(WORDS[label], size=6)), "topics": [label]}
        for label in labels
        for _ in range(per_label)
    ]


def test_margins_rank_as_the_predictions_and_follow_the_label_order() -> None:
    train = _records(["sport", "economy", "politics"])
    labels = ["politics", "sport", "economy", "culture"]  # "culture" never seen in training
    baseline = SparseModel("topic", labels, multi_label=False).fit(train)
    test = [{"text": "سجل اللاعب هدف في مباراة الدوري"}, {"text": "ارتفعت الأسعار في السوق والنفط"}]
    scores = baseline.decision_scores(test)
    assert scores.shape == (2, 4)
    assert np.all(scores[:, 3] == UNSEEN)  # never chosen, and no NaN when blended
    assert (
        [labels[j] for j in scores.argmax(axis=1)]
        == [p[0] for p in baseline.predict(test)]
        == ["sport", "economy"]
    )


def test_two_labels_give_two_opposite_columns() -> None:
    baseline = SparseModel("topic", ["sport", "economy"], multi_label=False).fit(
        _records(["sport", "economy"])
    )
    scores = baseline.decision_scores([{"text": "البنك والتضخم"}, {"text": "الفريق واللاعب"}])
    assert np.allclose(scores[:, 0], -scores[:, 1])
    assert list(scores.argmax(axis=1)) == [1, 0]


def test_multi_label_has_no_margins() -> None:
    train = [
        {"text": "النفط والسوق", "topics": ["economy", "energy"]},
        {"text": "الفريق والهدف", "topics": ["sport"]},
        {"text": "البنك", "topics": ["economy"]},
        {"text": "الغاز", "topics": ["energy"]},
    ]
    baseline = SparseModel("topic", ["economy", "energy", "sport"], multi_label=True).fit(train)
    with pytest.raises(ValueError, match="decision_scores: single-label baselines only"):
        baseline.decision_scores(train)

"""The sparse n-gram model: fit, save and load without pickle, identical scores, odd inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from naba.errors import ModelDirError
from naba.relevance import OVERLAP, RELEVANCE
from naba.sparse import UNSEEN, SparseModel

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("task,multi", [("topic", True), ("topic", False), ("stance", False)])
def test_fit_save_load_gives_identical_scores(task: str, multi: bool, tmp_path: Path) -> None:
    folder = SAMPLE / task
    train, test = _rows(folder / "train.jsonl"), _rows(folder / "test.jsonl")
    if task == "topic" and not multi:
        train = [{**r, "topics": r["topics"][:1]} for r in train]
    labels = sorted(
        {lab for r in train for lab in (r["topics"] if task == "topic" else [r["stance"]])}
    )
    model = SparseModel(task, labels, multi).fit(train)
    model.save(tmp_path / "sparse")
    assert sorted(p.name for p in (tmp_path / "sparse").iterdir()) == [
        "sparse.json",
        "vocabulary.json",
        "weights.safetensors",
    ]
    loaded = SparseModel.load(tmp_path / "sparse")
    np.testing.assert_array_equal(loaded.margins(test), model.margins(test))
    assert loaded.predict(test) == model.predict(test)
    assert (loaded.labels, loaded.multi_label, loaded.task) == (labels, multi, task)
    # it learned something: far better than chance on its own training data
    gold = [r["topics"] if task == "topic" else [r["stance"]] for r in train]
    hits = [set(p) == set(g) for p, g in zip(model.predict(train), gold)]
    assert np.mean(hits) > 0.8


def test_stance_reads_the_target() -> None:
    train = [
        {"text": "نص عن موضوع", "target": t, "stance": s}
        for t, s in (("النفط", "favor"), ("الغاز", "against"))
    ] * 4
    model = SparseModel("stance", ["against", "favor"], False).fit(train)
    assert model.predict(
        [{"text": "نص عن موضوع", "target": "النفط"}, {"text": "نص عن موضوع", "target": "الغاز"}]
    ) == [["favor"], ["against"]]


def test_unseen_ngrams_and_empty_text_get_the_bias_alone(tmp_path: Path) -> None:
    train = [
        {"text": "مباراة الفريق هدف", "topics": ["sport"]},
        {"text": "السوق البنك التضخم", "topics": ["economy"]},
    ] * 3
    model = SparseModel("topic", ["economy", "sport", "culture"], False).fit(train)
    odd = model.margins(["zzzz qqqq", "", "\u200f\u200f", "ـــ"])
    assert odd.shape == (4, 3) and np.isfinite(odd).all()
    np.testing.assert_allclose(odd[1], model.bias)  # nothing to read: the bias alone
    np.testing.assert_allclose(odd[2], model.bias)
    assert np.all(odd[:, 2] == UNSEEN) and all(
        p != ["culture"] for p in model.predict(["", "zzzz"])
    )


def test_load_refuses_missing_or_damaged_files(tmp_path: Path) -> None:
    train = [
        {"text": "مباراة الفريق هدف", "topics": ["sport"]},
        {"text": "السوق البنك التضخم", "topics": ["economy"]},
    ] * 3
    SparseModel("topic", ["economy", "sport"], False).fit(train).save(tmp_path / "s")
    (tmp_path / "s" / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(
        ModelDirError, match=re.escape(f"{tmp_path / 's'}: the sparse model is damaged")
    ):
        SparseModel.load(tmp_path / "s")
    (tmp_path / "s" / "vocabulary.json").unlink()
    with pytest.raises(
        ModelDirError,
        match=re.escape(
            f"{tmp_path / 's'}: the sparse model is incomplete "
            "(vocabulary.json missing); refit it with `naba blend`"
        ),
    ):
        SparseModel.load(tmp_path / "s")


def test_relevance_columns_measure_how_much_of_the_target_the_text_mentions() -> None:
    from naba.relevance import relevance_features

    rows = relevance_features(
        ["الطاقة النووية", "السيارات الكهربائية", "النفط", ""],
        [
            "محطة للطاقة النووية في الشمال",
            "مباراة كرة القدم انتهت بالتعادل",
            "أسعار النفط ترتفع",
            "نص",
        ],
    )
    np.testing.assert_allclose(
        rows[0], [1.0, 1.0, 0.0]
    )  # both words (الطاقة matches طاقة after the article)
    np.testing.assert_allclose(rows[1], [0.0, 0.0, 1.0])  # nothing of the target in the text
    assert rows[2][0] == 1.0 and rows[2][2] == 0.0
    np.testing.assert_allclose(rows[3], [0.0, 0.0, 0.0])  # no target words: no evidence either way
    claim = "وزارة التربية ستعتمد الدراسة أربعة أيام أسبوعيا"  # seven words of 3+ letters
    rows = relevance_features(
        ["النفط", claim, claim],
        ["مباراة كرة القدم", "مباراة كرة القدم", "قالت وزارة التربية"],
        OVERLAP,
    )
    np.testing.assert_allclose(
        rows[:, 3], [np.log(2), np.log(8), 0.0], rtol=1e-6
    )  # none of n words: log(1 + n)
    with pytest.raises(ValueError, match="unknown relevance column 'target_length'"):
        relevance_features(["النفط"], ["نص"], ["target_length"])


def test_the_overlap_part_is_surer_that_a_text_naming_none_of_a_long_claim_is_not_about_it() -> (
    None
):
    """Tweets often never name a short target; a text about a claim uses its words: "none
    of them" means more for a claim."""
    short = ["النفط", "الذهب", "القمح", "الدولار"]
    claims = [
        "الحكومة ستفرض رسوما إضافية على استيراد السيارات العاملة بالبنزين",
        "هيئة الطاقة الذرية أوقفت العمل في موقع المحطة بسبب تسرب",
        "البلدية ستغلق السوق القديم في وسط المدينة للترميم",
    ]
    related = [
        {
            "text": (f"نرحب بقرار {t} اليوم" if i % 2 else "هذا القرار ممتاز ونرحب به جدا"),
            "target": t,
            "stance": "favor",
        }
        for i, t in enumerate(short * 6)
    ]  # half never name their target
    related += [
        {"text": f"أعلنت المصادر أن {c} وفق بيان {i}", "target": c, "stance": "none"}
        for i, c in enumerate(claims * 2)
    ]
    unrelated = [
        {"text": f"ارتفعت درجات الحرارة في الصيف رقم {i}", "target": t, "stance": "none"}
        for i, t in enumerate(short * 6 + claims * 4)
    ]
    model = SparseModel("stance", ["favor", "none"], False).fit(related)
    model.fit_detector(related, unrelated, related[::3], unrelated[::3])
    away = "انتهت المباراة بالتعادل السلبي"
    u_short, u_claim = model.unrelated_probability(
        [
            {"text": away, "target": "الفضة"},
            {"text": away, "target": "الجامعة ستؤجل الامتحانات النهائية للطلاب شهرا كاملا"},
        ]
    )
    assert u_claim > 0.9 and u_claim > u_short + 0.15, (u_claim, u_short)


def test_stance_learns_relevance_that_ngrams_alone_cannot() -> None:
    """The same text with its own target (favor) and with another (none):
    only the overlap tells them apart."""
    texts = {
        "النفط": ["ارتفاع أسعار النفط يفيد الاقتصاد", "النفط ثروة وطنية يجب استثمارها"],
        "الغاز": ["الغاز الطبيعي مصدر نظيف للطاقة", "تصدير الغاز يزيد دخل الدولة"],
    }
    train = [{"text": x, "target": t, "stance": "favor"} for t, xs in texts.items() for x in xs]
    train += [
        {"text": x, "target": other, "stance": "none"}
        for t, xs in texts.items()
        for x in xs
        for other in texts
        if other != t
    ]
    model = SparseModel("stance", ["favor", "none"], False).fit(train * 3)
    assert model.predict(train) == [[r["stance"]] for r in train]


def test_a_stance_model_saved_before_the_relevance_columns_still_loads(tmp_path: Path) -> None:
    train = [
        {"text": "نص عن النفط", "target": "النفط", "stance": "favor"},
        {"text": "نص عن الغاز", "target": "الغاز", "stance": "against"},
    ] * 3
    model = SparseModel("stance", ["against", "favor"], False)
    model.relevance = False  # as sparse parts written before the relevance columns were
    model.fit(train).save(tmp_path / "sparse")
    meta = json.loads((tmp_path / "sparse" / "sparse.json").read_text(encoding="utf-8"))
    del meta["relevance"]
    (tmp_path / "sparse" / "sparse.json").write_text(json.dumps(meta), encoding="utf-8")
    loaded = SparseModel.load(tmp_path / "sparse")
    assert not loaded.relevance
    np.testing.assert_array_equal(loaded.margins(train), model.margins(train))


def _shifted(pairs: list[dict], targets: list[str]) -> list[dict]:
    """Each text with the next of ``targets`` after its own: pairs about another target."""
    return [
        {"text": r["text"], "target": targets[(targets.index(r["target"]) + 1) % len(targets)]}
        for r in pairs
    ]


def test_the_relevance_detector_learns_each_targets_vocabulary_and_abstains_elsewhere(
    tmp_path: Path,
) -> None:
    from naba.relevance import DETECTOR_MIN_PAIRS

    vocab = {
        "الطاقة النووية": "المفاعل اليورانيوم الإشعاع المحطة التخصيب",
        "كرة القدم": "المباراة الهدف الفريق الملعب الحكم",
        "التضخم": "الأسعار الفائدة البنك العملة الرواتب",
    }
    targets = list(vocab)
    rng = np.random.default_rng(0)

    def pairs(n: int) -> list[dict]:  # texts that never name their target, only its vocabulary
        return [
            {
                "text": " ".join(rng.permutation(vocab[t].split())[:3]) + " في هذا الأسبوع",
                "target": t,
                "stance": "favor",
            }
            for t in targets
            for _ in range(n)
        ]

    train, dev, test = pairs(DETECTOR_MIN_PAIRS), pairs(4), pairs(4)
    rare = [{"text": "نص عن الطقس", "target": "الطقس", "stance": "none"}] * (
        DETECTOR_MIN_PAIRS - 1
    )  # too few pairs to answer for
    model = SparseModel("stance", ["favor", "none"], False).fit(train + rare)
    assert (
        model.detector is None and np.isnan(model.unrelated_probability(test)).all()
    )  # not fitted yet
    model.fit_detector(train + rare, _shifted(train, targets), dev, _shifted(dev, targets))
    assert model.detector["targets"] == sorted(targets) and model.detector["C"] in (
        1.0,
        10.0,
        100.0,
    )
    related, unrelated = (
        model.unrelated_probability(test),
        model.unrelated_probability(_shifted(test, targets)),
    )
    assert related.max() < 0.5 < unrelated.min()
    # A target it was not trained on (or had too few pairs of): no answer, not a guess.
    assert np.isnan(
        model.unrelated_probability(
            [
                {"text": "المباراة الهدف", "target": "السياحة"},
                {"text": "نص عن الطقس", "target": "الطقس"},
            ]
        )
    ).all()
    model.save(tmp_path / "sparse")
    loaded = SparseModel.load(tmp_path / "sparse")
    np.testing.assert_array_equal(loaded.unrelated_probability(test), related)
    assert loaded.detector == model.detector
    # Damaged detector weights are refused, with what to do.
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(tmp_path / "sparse" / "weights.safetensors"))
    tensors["detector.index"] = tensors["detector.index"] + 10**9
    save_file(tensors, str(tmp_path / "sparse" / "weights.safetensors"))
    with pytest.raises(
        ModelDirError,
        match=re.escape(
            f"{tmp_path / 'sparse'}: the relevance detector's weights do not match "
            "its vocabulary; refit it with `naba blend`"
        ),
    ):
        SparseModel.load(tmp_path / "sparse")


def test_no_relevance_detector_without_a_target_to_answer_for_or_unrelated_pairs() -> None:
    train = [
        {"text": f"نص رقم {i} عن النفط", "target": f"ادعاء {i}", "stance": ("favor", "none")[i % 2]}
        for i in range(30)
    ]  # every claim once
    model = SparseModel("stance", ["favor", "none"], False).fit(train)
    assert (
        model.fit_detector(
            train, _shifted(train, [r["target"] for r in train]), train[:5], train[5:10]
        ).detector
        is None
    )
    same = [{**r, "target": "النفط"} for r in train]
    assert model.fit_detector(same, [], same[:5], []).detector is None


def test_the_relevance_detector_on_the_sample_split() -> None:
    train, dev, test = (_rows(SAMPLE / "stance" / f"{s}.jsonl") for s in ("train", "dev", "test"))
    targets = sorted(
        {r["target"] for r in train if sum(x["target"] == r["target"] for x in train) >= 10}
    )
    keep = [r for r in train if r["target"] in targets]
    model = SparseModel("stance", sorted({r["stance"] for r in train}), False).fit(train)
    model.fit_detector(
        train,
        _shifted(keep, targets),
        [r for r in dev if r["target"] in targets],
        _shifted([r for r in dev if r["target"] in targets], targets),
    )
    test = [r for r in test if r["target"] in targets]
    related, unrelated = (
        model.unrelated_probability(test),
        model.unrelated_probability(_shifted(test, targets)),
    )
    # short articles that often never name their target: far apart on average, not perfectly
    assert np.mean(unrelated) > np.mean(related) + 0.5, (
        np.mean(unrelated),
        np.mean(related),
    )  # 0.84 vs 0.15 here


def test_the_detector_answers_for_claims_it_never_saw_by_how_much_of_the_claim_the_text_mentions(
    tmp_path: Path,
) -> None:
    subjects = [
        "الأردن يلغي التأشيرة للمغاربة",
        "الحكومة ترفع أسعار الوقود",
        "البلدية تغلق السوق القديم",
        "الجامعة تؤجل الامتحانات النهائية",
        "الشركة تطلق سيارة كهربائية",
        "الوزارة تمنع التدخين في المقاهي",
    ]
    related = [
        {
            "text": f"أكد مسؤول أن {claim} وفق بيان رسمي رقم {i}",
            "target": claim,
            "stance": ("favor", "none")[i % 2],
        }
        for i, claim in enumerate(subjects * 3)
    ]  # each claim 3 times: too few for weights of its own
    unrelated = _shifted(related, subjects)
    model = SparseModel("stance", ["favor", "none"], False).fit(related)
    model.fit_detector(related, unrelated, related[:6], unrelated[:6])
    assert model.detector["targets"] == [] and model.detector["overlap"]["columns"] == list(OVERLAP)
    new = "المحافظة تفتتح جسرا جديدا"  # a claim named at prediction time
    u = model.unrelated_probability(
        [
            {"text": "قالت المحافظة إنها تفتتح جسرا جديدا", "target": new},
            {"text": "ارتفعت درجات الحرارة في الصيف", "target": new},
            {"text": "ارتفعت درجات الحرارة", "target": "#"},
        ]
    )  # a target with no words to look for
    assert u[0] < 0.5 < u[1] and np.isnan(u[2])
    model.save(tmp_path / "sparse")
    np.testing.assert_array_equal(
        SparseModel.load(tmp_path / "sparse").unrelated_probability(related),
        model.unrelated_probability(related),
    )
    # A detector written before the length column reads the three columns it names, as it did.
    meta_path = tmp_path / "sparse" / "sparse.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["detector"]["overlap"] |= {
        "columns": list(RELEVANCE),
        "weights": [-1.0, -4.0, 0.6],
        "bias": 0.6,
    }
    meta_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    expected = 1 / (1 + np.exp(-(0.6 * 1.0 + 0.6)))  # nothing of the claim in the text
    assert SparseModel.load(tmp_path / "sparse").unrelated_probability(
        [{"text": "ارتفعت درجات الحرارة في الصيف", "target": new}]
    )[0] == pytest.approx(expected, rel=1e-5)
    meta["detector"]["overlap"]["columns"][2] = "target_length"
    meta_path.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(
        ModelDirError,
        match=re.escape(
            f"{tmp_path / 'sparse'}: the relevance detector's overlap part names "
            "columns this naba does not compute or does not match its weights; "
            "refit it with `naba blend`"
        ),
    ):
        SparseModel.load(tmp_path / "sparse")

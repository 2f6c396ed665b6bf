"""naba.data.taxonomy: weak topic labels from tag phrases, with evidence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import Elided
from naba.config_loading import ConfigError
from naba.data.importer import run_import, side_path
from naba.data.pages import import_pages
from naba.data.taxonomy import Taxonomy

SMALL = {
    "topics": {
        "security": ["داعش", "الأمن", "قوات الأمن", "حلف شمال الأطلسي"],
        "technology": ["الأمن السيبراني", "الذكاء الاصطناعي"],
        "energy": ["النفط", "الطاقة الشمسية", "الطاقة النووية", "أوبك"],
        "economy": ["الاقتصاد"],
    }
}


@pytest.fixture(scope="module")
def taxonomy(root: Path) -> Taxonomy:
    return Taxonomy.load(root / "configs" / "taxonomy.yaml")


@pytest.fixture(scope="module")
def seed(root: Path) -> list[dict]:
    return list(import_pages([root / "seeds"]))


def small(**match: object) -> Taxonomy:
    return Taxonomy.from_dict({**SMALL, "match": match} if match else SMALL)


# ----------------------------------------------------------------------------- the seed


def test_seed_first_article_from_tags(taxonomy: Taxonomy, seed: list[dict]) -> None:
    topics, evidence = taxonomy.assign(seed[0])
    assert topics == ["security", "politics"]
    assert {e["rule"] for e in evidence} == {"tags"}
    assert evidence == [
        {"topic": "security", "rule": "tags", "phrase": "داعش"},
        {"topic": "politics", "rule": "tags", "phrase": "الصراع الإسرائيلي الفلسطيني"},
        {"topic": "security", "rule": "tags", "phrase": "حلف شمال الأطلسي"},
        {"topic": "security", "rule": "tags", "phrase": "الناتو"},
    ]


def test_seed_second_article_from_title(taxonomy: Taxonomy, seed: list[dict]) -> None:
    topics, evidence = taxonomy.assign(seed[1])
    assert topics == ["energy"]
    assert evidence == [{"topic": "energy", "rule": "title", "phrase": "الطاقة النووية"}]


# ----------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("الأمن السيبراني", [("technology", "الأمن السيبراني")]),
        (
            "خطر على الأمن السيبراني والأمن",
            [("technology", "الأمن السيبراني"), ("security", "الأمن")],
        ),
        ("قوات الأمن", [("security", "قوات الأمن")]),
        ("الأمن", [("security", "الأمن")]),
        ("والنفط", [("energy", "النفط")]),
        ("للنفط", [("energy", "النفط")]),
        ("وللنفط", [("energy", "النفط")]),
        ("فالنفط", [("energy", "النفط")]),
        ("بالطاقة الشمسية", [("energy", "الطاقة الشمسية")]),
        ("وبالطاقة الشمسية", [("energy", "الطاقة الشمسية")]),
        ("لداعش", [("security", "داعش")]),
        ("وأوبك", [("energy", "أوبك")]),
        # letter variants fold: hamza, ta marbuta, diacritics, tatweel
        ("الطاقه النوويه", [("energy", "الطاقة النووية")]),
        ("الطَّاقَة النـــووية", [("energy", "الطاقة النووية")]),
        ("حلف شمال الاطلسي", [("security", "حلف شمال الأطلسي")]),
        ("«النفط»، الاقتصاد!", [("energy", "النفط"), ("economy", "الاقتصاد")]),
        # whole tokens only
        ("النفطية", []),
        ("نفط", []),
        ("الطاقة", []),
        ("شمال الأطلسي", []),
        ("", []),
    ],
)
def test_match_text(text: str, expected: list[tuple[str, str]]) -> None:
    assert small().match_text(text) == expected


def test_longest_match_in_real_taxonomy(taxonomy: Taxonomy) -> None:
    topics, evidence = taxonomy.assign({"title": "t", "tags": "الأمن السيبراني"})
    assert topics == ["technology"]
    assert evidence == [{"topic": "technology", "rule": "tags", "phrase": "الأمن السيبراني"}]
    # "الطاقة النووية" beats the shorter "الطاقة"
    assert taxonomy.match_text("الطاقة النووية") == [("energy", "الطاقة النووية")]
    assert taxonomy.match_text("الطاقة") == [("energy", "الطاقة")]


def test_clitics_in_real_taxonomy(taxonomy: Taxonomy) -> None:
    for text in ["والنفط", "للنفط", "بالنفط", "كالنفط"]:
        assert taxonomy.match_text(text) == [("energy", "النفط")]
    assert taxonomy.match_text("بالطاقة الشمسية") == [("energy", "الطاقة الشمسية")]


def test_topics_in_taxonomy_order_and_each_phrase_once() -> None:
    topics, evidence = small().assign({"title": "", "tags": "الاقتصاد النفط داعش النفط"})
    assert topics == ["security", "energy", "economy"]
    assert [e["phrase"] for e in evidence] == ["الاقتصاد", "النفط", "داعش"]


# ----------------------------------------------------------------------------- rules


def test_tags_win_over_title_and_lead() -> None:
    topics, evidence = small(lead="always").assign(
        {"title": "النفط", "tags": "الاقتصاد", "text": "داعش"}
    )
    assert topics == ["economy"]
    assert evidence == [{"topic": "economy", "rule": "tags", "phrase": "الاقتصاد"}]


def test_tags_that_match_nothing_do_not_fall_back() -> None:
    assert small().assign({"title": "النفط", "tags": "وسم آخر", "text": "داعش"}) == ([], [])


def test_lead_fallback_only_when_title_matches_nothing() -> None:
    tax = small()
    assert tax.assign({"title": "عنوان عن الاقتصاد", "text": "النفط في السوق"}) == (
        ["economy"],
        [{"topic": "economy", "rule": "title", "phrase": "الاقتصاد"}],
    )
    assert tax.assign({"title": "عنوان عادي", "text": "النفط في السوق"}) == (
        ["energy"],
        [{"topic": "energy", "rule": "lead", "phrase": "النفط"}],
    )


def test_lead_always() -> None:
    assert small(lead="always").assign(
        {"title": "عنوان عن الاقتصاد", "text": "النفط في السوق"}
    ) == (
        ["energy", "economy"],
        [
            {"topic": "economy", "rule": "title", "phrase": "الاقتصاد"},
            {"topic": "energy", "rule": "lead", "phrase": "النفط"},
        ],
    )


def test_lead_never() -> None:
    assert small(lead="never").assign({"title": "عنوان عادي", "text": "النفط في السوق"}) == ([], [])


def test_lead_is_first_paragraph_and_first_words_only() -> None:
    tax = small(lead_words=5)
    assert tax.assign({"title": "", "text": "سطر أول\nالنفط"}) == ([], [])
    assert tax.assign({"title": "", "text": "واحد اثنان ثلاثة أربعة النفط"})[0] == ["energy"]
    assert tax.assign({"title": "", "text": "واحد اثنان ثلاثة أربعة خمسة النفط"}) == ([], [])


def test_unmatched_article_has_no_topics(taxonomy: Taxonomy) -> None:
    assert taxonomy.assign(
        {"title": "حفل زفاف في القرية", "text": "احتفل أهالي القرية بزفاف جماعي."}
    ) == ([], [])
    assert taxonomy.assign({}) == ([], [])


# ----------------------------------------------------------------------------- loading


def test_load_real_taxonomy(taxonomy: Taxonomy) -> None:
    assert list(taxonomy.topics) == [
        "security",
        "energy",
        "politics",
        "economy",
        "sports",
        "health",
        "technology",
        "culture",
    ]
    assert (taxonomy.lead, taxonomy.lead_words) == ("fallback", 40)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"topics": {}},
            Elided("tax.yaml: topics: …at least 1 item… (found {})"),
        ),
        (
            {"topics": {"a": ["x"]}, "mach": {}},
            "tax.yaml: mach: unknown key (did you mean 'match'?)",
        ),
        ({"topics": {"a": "x"}}, Elided("tax.yaml: topics.a: …valid list (found 'x')")),
        (
            {"topics": {"a": ["x"]}, "match": {"lead": "sometimes"}},
            Elided("tax.yaml: match.lead: …'never', 'fallback' or 'always' (found 'sometimes')"),
        ),
        (
            {"topics": {"a": ["x"]}, "match": {"lead_word": 3}},
            "tax.yaml: match.lead_word: unknown key (did you mean 'lead_words'?)",
        ),
        ({}, "tax.yaml: topics: required key is missing"),
    ],
)
def test_bad_taxonomy(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        Taxonomy.from_dict(data, "tax.yaml")
    assert str(info.value) == message


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=re.escape(f"{tmp_path / 'nope.yaml'}: taxonomy file not found")
    ):
        Taxonomy.load(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n", encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=re.escape(f"{tmp_path / 'list.yaml'}: expected a mapping with a 'topics' section"),
    ):
        Taxonomy.load(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("topics: [a\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path / 'bad.yaml'}: invalid YAML: ")):
        Taxonomy.load(tmp_path / "bad.yaml")


# ----------------------------------------------------------------------- run_import with a taxonomy


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_run_import_seed_with_taxonomy(taxonomy: Taxonomy, root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "articles.jsonl"
    summary = run_import([root / "seeds"], out, "page", taxonomy=taxonomy)
    assert (summary.written, summary.errors, summary.unmatched) == (2, 0, 0)
    assert dict(summary.topics) == {"security": 1, "politics": 1, "energy": 1}
    assert dict(summary.rules) == {"tags": 4, "title": 1}
    rows = read_jsonl(out)
    assert [r["topics"] for r in rows] == [["security", "politics"], ["energy"]]
    assert rows[1]["labels_from"] == [
        {"topic": "energy", "rule": "title", "phrase": "الطاقة النووية"}
    ]
    # no side files when nothing went there
    assert sorted(p.name for p in out.parent.iterdir()) == ["articles.jsonl"]


def test_run_import_writes_unmatched_and_error_side_files(
    taxonomy: Taxonomy, tmp_path: Path
) -> None:
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "a.txt").write_text(
        "أسعار النفط ترتفع\nارتفعت الأسعار اليوم.\nإقرأ أيضاً:\nحفل زفاف "
        "في القرية\nاحتفل الأهالي.\n",
        encoding="utf-8",
    )
    (pages / "b.txt").write_text("\n", encoding="utf-8")
    out = tmp_path / "articles.jsonl"
    summary = run_import([pages], out, "page", taxonomy=taxonomy)
    assert (summary.written, summary.errors, summary.unmatched) == (1, 1, 1)
    assert summary.unmatched_ids == ["a-1"]
    assert summary.unmatched_path == tmp_path / "articles.unmatched.jsonl"
    assert summary.errors_path == tmp_path / "articles.errors.jsonl"
    assert [r["id"] for r in read_jsonl(out)] == ["a-0"]
    assert read_jsonl(summary.unmatched_path) == [
        {"id": "a-1", "title": "حفل زفاف في القرية", "text": "احتفل الأهالي."}
    ]
    assert read_jsonl(summary.errors_path) == [
        {
            "file": str(pages / "b.txt"),
            "line": None,
            "field": "(page)",
            "error": "expected at least one article (headline then body), found an empty page",
        }
    ]


def test_run_import_keeps_existing_topics(taxonomy: Taxonomy, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"id": "1", "text": "النفط", "topics": ["sports"]})
        + "\n"
        + json.dumps({"id": "2", "text": "x", "title": "النفط"})
        + "\n",
        encoding="utf-8",
    )
    summary = run_import([src], tmp_path / "out.jsonl", "jsonl", taxonomy=taxonomy)
    rows = read_jsonl(tmp_path / "out.jsonl")
    assert [r["topics"] for r in rows] == [["sports"], ["energy"]]
    assert "labels_from" not in rows[0]
    assert summary.written == 2


def test_side_path() -> None:
    assert side_path(Path("d/out.jsonl"), "errors") == Path("d/out.errors.jsonl")
    assert side_path(Path("d/out.txt"), "unmatched") == Path("d/out.txt.unmatched.jsonl")


def test_the_example_taxonomy_is_the_packaged_configs_one(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository
    assert (
        Taxonomy.load("example").topics == Taxonomy.load(root / "configs" / "taxonomy.yaml").topics
    )

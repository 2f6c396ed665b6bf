"""naba.data.pages: raw scraped article pages (the seed's shape) to records."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naba.data.pages import import_pages, page_files, parse_article, parse_date, split_page
from naba.errors import InputError, Problem

SEED_NAME = "000_e3a6e80ea9709108"
BOILERPLATE = [
    "شارك هذا المقال",
    "مواضيع إضافية",
    "أخبار ذات صلة",
    "المصادر الإضافية",
    "إقرأ أيضاً",
    "يستدعي سفيره",
    "كلمات دلالية",
    "المصدر:",
    "تاريخ النشر",
    "يعرض الآن",
]


@pytest.fixture(scope="module")
def seed_records(root: Path) -> list[dict]:
    items = list(import_pages([root / "seeds"]))
    assert not [item for item in items if isinstance(item, Problem)]
    return items


def test_seed_copy_matches_shared(root: Path) -> None:
    shared = root.parent / "shared" / "seeds" / f"{SEED_NAME}.txt"
    if not shared.exists():
        pytest.skip("../shared/seeds is absent")
    assert (root / "seeds" / f"{SEED_NAME}.txt").read_bytes() == shared.read_bytes()


def test_seed_has_exactly_two_articles(seed_records: list[dict]) -> None:
    assert [r["id"] for r in seed_records] == [f"{SEED_NAME}-0", f"{SEED_NAME}-1"]


def test_seed_first_article(seed_records: list[dict]) -> None:
    first = seed_records[0]
    assert set(first) == {"id", "title", "date", "source", "tags", "text"}
    assert (
        first["title"] == "العراق والولايات المتحدة يبدآن محادثات رسمية لإنهاء مهمة التحالف الدولي"
    )
    assert first["date"] == "2024-01-27"
    assert first["source"] == "euronews"
    assert first["tags"].startswith("محمد شياع السوداني داعش")
    assert first["tags"].endswith("فی العراق")
    assert first["text"].startswith("عقد العراق")
    assert "منذ أن أن فقد التنظيم" in first["text"]
    assert first["text"].endswith("وتعهد بمواصلة هجماته.")
    # the glued related headlines before "منذ أن" are gone, the paragraph starts clean
    assert "\nمنذ أن أن فقد التنظيم المتطرف" in first["text"]
    assert len(first["text"].split("\n")) == 12


def test_seed_second_article(seed_records: list[dict]) -> None:
    second = seed_records[1]
    assert set(second) == {"id", "title", "source", "text"}
    assert (
        second["title"] == "الإمارات والولايات المتحدة.. تعاون استراتيجي في مشاريع الطاقة النووية"
    )
    assert "date" not in second and "tags" not in second
    assert second["source"] == "وام"
    assert second["text"].startswith("أكد محمد الحمادي")
    assert "\nوقال في تصريح" in second["text"]
    assert second["text"].endswith("إمدادات الطاقة النووية.")
    assert len(second["text"].split("\n")) == 2


@pytest.mark.parametrize("phrase", BOILERPLATE)
def test_seed_bodies_have_no_boilerplate(seed_records: list[dict], phrase: str) -> None:
    for record in seed_records:
        assert phrase not in record["text"]
        assert phrase not in record["title"]


def test_seed_lines_are_stripped(seed_records: list[dict]) -> None:
    for record in seed_records:
        for line in record["text"].split("\n"):
            assert line == line.strip() and line


# ----------------------------------------------------------------------------- synthetic pages


def test_full_synthetic_article() -> None:
    lines = [
        "عنوان الخبر",
        "تاريخ النشر: 2023-05-01",
        "الفقرة الأولى من النص.",
        "أخبار ذات صلة",
        "عنوان مرتبط أول",
        "عنوان مرتبط ثان",
        "الفقرة الثانية بعد المصدر",
        "المصدر: رويترز",
        "كلمات دلالية: السياسة الاقتصاد",
    ]
    assert parse_article(lines) == {
        "title": "عنوان الخبر",
        "date": "2023-05-01",
        "source": "رويترز",
        "tags": "السياسة الاقتصاد",
        "text": "الفقرة الأولى من النص.",
    }


@pytest.mark.parametrize(
    "heading", ["أخبار ذات صلة", "أخبار ذات صلة:", "مواضيع إضافية", "اقرأ المزيد", "الأكثر قراءة"]
)
def test_related_headline_block_is_dropped_until_next_marker(heading: str) -> None:
    lines = [
        "عنوان",
        "نص أول.",
        heading,
        "خبر مرتبط",
        "خبر مرتبط آخر",
        "المصدر: وام",
        "نص بعد المصدر.",
    ]
    assert parse_article(lines) == {
        "title": "عنوان",
        "source": "وام",
        "text": "نص أول.\nنص بعد المصدر.",
    }


def test_related_heading_glued_to_paragraph() -> None:
    assert (
        parse_article(["عنوان", "فقرة.", "أخبار ذات صلةوقال الوزير إن"])["text"]
        == "فقرة.\nوقال الوزير إن"
    )


def test_glued_headlines_before_body_are_dropped() -> None:
    line = "زيارة رسمية للعاصمةالمدينة الكبيرةبدأ الرئيس جولته."
    assert parse_article(["عنوان", line])["text"] == "بدأ الرئيس جولته."


def test_glued_ta_marbuta_word_inside_sentence_is_split() -> None:
    line = "بدأ الرئيس جولته، في زيارةرسمية إلى المغرب."
    assert parse_article(["عنوان", line])["text"] == "بدأ الرئيس جولته، في زيارة رسمية إلى المغرب."


def test_glued_alef_maksura_word_is_split() -> None:
    line = "قال الوزير: نعم، ذهب إلىالسوق."
    assert parse_article(["عنوان", line])["text"] == "قال الوزير: نعم، ذهب إلى السوق."


def test_glued_word_without_punctuation_keeps_sentence() -> None:
    assert (
        parse_article(["عنوان", "قالت وزارة الصحةإن عدد الإصابات ارتفع."])["text"]
        == "قالت وزارة الصحة إن عدد الإصابات ارتفع."
    )


def test_tags_on_next_line_after_empty_marker() -> None:
    article = parse_article(
        ["عنوان", "نص.", "كلمات دلالية:", "السياسة الاقتصاد", "سطر بعد الوسوم."]
    )
    assert article == {"title": "عنوان", "tags": "السياسة الاقتصاد", "text": "نص.\nسطر بعد الوسوم."}


def test_empty_tags_marker_at_end() -> None:
    assert parse_article(["عنوان", "نص.", "كلمات دلالية:"]) == {"title": "عنوان", "text": "نص."}


def test_source_glued_to_boilerplate() -> None:
    article = parse_article(
        ["عنوان", "نص.", "شارك هذا المقالمحادثة مواضيع إضافية خبر خبرالمصدر: يورونيوز"]
    )
    assert article == {"title": "عنوان", "source": "يورونيوز", "text": "نص."}


def test_source_at_end_of_body_line() -> None:
    assert parse_article(["عنوان", "النص الأساسي المصدر: وكالة"]) == {
        "title": "عنوان",
        "source": "وكالة",
        "text": "النص الأساسي",
    }


def test_source_word_inside_body_sentence_is_body() -> None:
    article = parse_article(
        ["عنوان", "وقال المصدر: إن الاجتماع تأجل إلى الأسبوع المقبل.", "المصدر: وام"]
    )
    assert article == {
        "title": "عنوان",
        "source": "وام",
        "text": "وقال المصدر: إن الاجتماع تأجل إلى الأسبوع المقبل.",
    }


@pytest.mark.parametrize(
    "line",
    [
        "شارك هذا المقال",
        "المصادر الإضافية • أ ب",
        "مواضيع إضافية",
        "تابعونا على تويتر",
        "يعرض الآن فيديو",
    ],
)
def test_widget_lines_dropped(line: str) -> None:
    assert parse_article(["عنوان", "نص.", line]) == {"title": "عنوان", "text": "نص."}


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["", "  "],
        ["عنوان فقط"],
        ["عنوان", "المصدر: وام", "كلمات دلالية: وسم"],
        ["عنوان", "شارك هذا المقال"],
    ],
)
def test_no_body_is_none(lines: list[str]) -> None:
    assert parse_article(lines) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("27th, January 2024 GMT", "2024-01-27"),
        ("1st March 2021", "2021-03-01"),
        ("2, May, 2022", "2022-05-02"),
        ("2021-03-04T10:00:00", "2021-03-04"),
        ("  أمس  ", "أمس"),
        ("31st, Foo 2021", "31st, Foo 2021"),
    ],
)
def test_parse_date(raw: str, expected: str) -> None:
    assert parse_date(raw) == expected


def test_split_page_separators() -> None:
    lines = ["أ", "إقرأ أيضاً:", "ب", "اقرأ أيضا", "", "  اقرأ ايضا :  ", "ج", "إقرأ أيضاً:"]
    assert split_page(lines) == [["أ"], ["ب"], ["ج"]]


def test_split_page_separator_inside_sentence_is_not_a_separator() -> None:
    assert split_page(["أ", "اقرأ أيضاً هذا الخبر المهم"]) == [["أ", "اقرأ أيضاً هذا الخبر المهم"]]


# ----------------------------------------------------------------------------- files


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_page_is_a_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.txt", "\n  \n")
    assert [str(p) for p in import_pages([path])] == [
        f"{path}: (page): expected at least one article (headline then body), found an empty page"
    ]


def test_article_without_body_is_a_problem_others_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "p.txt", "عنوان أول\nنص أول.\nإقرأ أيضاً:\nعنوان بلا نص\nالمصدر: وام\n")
    items = list(import_pages([path]))
    assert items[0] == {"id": "p-0", "title": "عنوان أول", "text": "نص أول."}
    assert [str(p) for p in items[1:]] == [
        f"{path}: article 1: expected a headline line followed by body text, found no body"
    ]


def test_invalid_utf8_page_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes("عنوان\n".encode() + b"\xff\xfe text\n" + "نص\n".encode())
    assert [str(p) for p in import_pages([path])] == [
        f"{path}:2: (line): expected UTF-8 text, found invalid byte 0xff at column 1; re-save the "
        "file as UTF-8"
    ]


def test_page_files_sorted_recursive_skipping_hidden(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ["b.txt", "a.txt", "sub/c.txt", ".hidden.txt", "_draft.txt", "notes.md"]:
        write(tmp_path / name, "عنوان\nنص.\n")
    assert [p.relative_to(tmp_path).as_posix() for p in page_files([tmp_path])] == [
        "a.txt",
        "b.txt",
        "sub/c.txt",
    ]
    ids = [r["id"] for r in import_pages([tmp_path])]
    assert ids == ["a-0", "b-0", "c-0"]


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=f"^{tmp_path / 'nope'}: no such file or directory$"):
        list(import_pages([tmp_path / "nope"]))


# ----------------------------------------------------------------------------- fuzz

_PAGE_WORDS = [
    "إقرأ أيضاً:",
    "تاريخ النشر:",
    "كلمات دلالية:",
    "المصدر:",
    "أخبار ذات صلة",
    "شارك هذا المقال",
    "مواضيع إضافية",
    "مدرسة",
    "إلى",
    "ةب",
    "ىا",
    "،",
    ".",
    "",
    " ",
    "27th, January 2024",
    "2024-01-27",
]
LINES = st.lists(
    st.one_of(
        st.text(max_size=40), st.lists(st.sampled_from(_PAGE_WORDS), max_size=6).map(" ".join)
    ),
    max_size=12,
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(LINES)
def test_parse_article_never_raises(lines: list[str]) -> None:
    article = parse_article(lines)
    if article is not None:
        assert article["text"].strip() and article["title"].strip()


@FUZZ
@given(LINES)
def test_split_page_never_raises_and_drops_no_content(lines: list[str]) -> None:
    blocks = split_page(lines)
    assert all(any(line.strip() for line in block) for block in blocks)
    assert sum(len(b) for b in blocks) <= len(lines)


@FUZZ
@given(LINES)
def test_import_pages_never_raises(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "page.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    for item in import_pages([path]):
        assert isinstance(item, (dict, Problem))


PAGE_BYTES = st.one_of(
    st.binary(max_size=400),
    LINES.map(lambda lines: "\n".join(lines)).flatmap(
        lambda t: st.sampled_from(
            [
                t.encode("utf-8"),
                t.encode("utf-16"),
                t.encode("utf-8")[:-1] + b"\xff",
                b"\x1f\x8b" + t.encode(),
            ]
        )
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(PAGE_BYTES)
def test_import_pages_of_arbitrary_bytes_never_raises(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    # A scraped folder holds whatever the scraper saved: each page is records
    # or Problems, never an exception.
    folder = tmp_path_factory.getbasetemp() / "fuzz-bytes"
    folder.mkdir(exist_ok=True)
    (folder / "page.txt").write_bytes(data)
    (folder / "ok.txt").write_text("عنوان\nمتن الخبر هنا\n", encoding="utf-8")
    items = list(import_pages([folder]))
    assert all(isinstance(item, (dict, Problem)) for item in items)
    assert {
        "id": "ok-0",
        "title": "عنوان",
        "text": "متن الخبر هنا",
    } in items  # the good page always imports
    for item in items:
        if isinstance(item, Problem):
            assert item.file == str(folder / "page.txt") and item.message

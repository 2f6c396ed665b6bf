"""naba.text: normalisation edge cases, its idempotence, and the dedup key."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naba.config import NormalizationConfig
from naba.text import MENTION_TOKEN, URL_TOKEN, dedup_key, normalize, word_count

FOLD_ALL = NormalizationConfig(fold_alef=True, fold_alef_maksura=True, fold_ta_marbuta=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("", "", id="empty"),
        pytest.param(" \t\n ", "", id="whitespace-only"),
        pytest.param("الْعَرَبِيَّـــة", "العربية", id="diacritics+tatweel"),
        pytest.param("كَتَبَ الوَلَدُ", "كتب الولد", id="harakat"),
        pytest.param("مـــرحـبـا", "مرحبا", id="tatweel"),
        pytest.param("\u0640", "", id="tatweel-alone"),
        pytest.param("\u064e\u0650", "", id="diacritics-alone"),
        pytest.param("Hello, World!", "Hello, World!", id="latin"),
        pytest.param("Café e\u0301", "Café é", id="latin-nfc-composes"),
        pytest.param("عام 2024", "عام 2024", id="ascii-digits"),
        pytest.param("عام ٢٠٢٤", "عام ٢٠٢٤", id="arabic-indic-digits-kept"),
        pytest.param("مرحبا 😀🇸🇦", "مرحبا 😀🇸🇦", id="emoji"),
        pytest.param("نص\u200fآخر", "نصآخر", id="rlm-U+200F"),
        pytest.param("\u202bنص\u202c", "نص", id="rle-pdf-U+202B"),
        pytest.param("\u2067نص\u2069 عربي", "نص عربي", id="rli-pdi-U+2067"),
        pytest.param("\u061cنص", "نص", id="arabic-letter-mark"),
        pytest.param("كل\u200bمة", "كلمة", id="zero-width-space"),
        pytest.param("كل\u200cمة\u200d", "كلمة", id="zwnj-zwj"),
        pytest.param("\ufeffنص", "نص", id="bom"),
        pytest.param("x\u00ady", "xy", id="soft-hyphen"),
        pytest.param("\ufefb", "لا", id="lam-alef-ligature-U+FEFB"),
        pytest.param(
            "\ufe8d\ufedf\ufecc\ufeae\ufe91\ufef4\ufe94", "العربية", id="contextual-forms"
        ),
        pytest.param("\ufdf2", "الله", id="allah-ligature"),
        pytest.param("x² ½ ＡＢ", "x² ½ ＡＢ", id="nfkc-only-on-arabic-presentation-forms"),
        pytest.param("الولایات", "الولايات", id="persian-yeh"),
        pytest.param("ککک ۀ ہ ھ", "ككك ة ه ه", id="persian-letters"),
        pytest.param("أإآٱ على مدرسة", "أإآٱ على مدرسة", id="no-letter-folding-by-default"),
        pytest.param("  a \n\n b\t", "a b", id="whitespace-collapse"),
    ],
)
def test_normalize_defaults(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "urls", "expected"),
    [
        ("زور https://example.com/a?b=1 الآن", "token", f"زور {URL_TOKEN} الآن"),
        ("زور https://example.com/a?b=1 الآن", "remove", "زور الآن"),
        ("زور https://example.com/a?b=1 الآن", "keep", "زور https://example.com/a?b=1 الآن"),
        ("HTTP://EXAMPLE.COM", "token", URL_TOKEN),
        ("www.example.com/x", "token", URL_TOKEN),
        ("نص،https://t.co/x", "token", f"نص، {URL_TOKEN}"),
    ],
)
def test_urls(raw: str, urls: str, expected: str) -> None:
    assert normalize(raw, NormalizationConfig(urls=urls)) == expected


@pytest.mark.parametrize(
    ("raw", "mentions", "expected"),
    [
        ("@user_1 شكرا", "token", f"{MENTION_TOKEN} شكرا"),
        ("@user_1 شكرا", "remove", "شكرا"),
        ("@user_1 شكرا", "keep", "@user_1 شكرا"),
        ("@مستخدم شكرا", "token", f"{MENTION_TOKEN} شكرا"),
        # an e-mail address is not a mention
        ("a@b.com", "token", "a@b.com"),
        ("@@x", "token", "@@x"),
    ],
)
def test_mentions(raw: str, mentions: str, expected: str) -> None:
    assert normalize(raw, NormalizationConfig(mentions=mentions)) == expected


@pytest.mark.parametrize(
    ("raw", "config", "expected"),
    [
        ("أحمد إلى آخر ٱلكتاب", NormalizationConfig(fold_alef=True), "احمد الى اخر الكتاب"),
        ("على مستشفى", NormalizationConfig(fold_alef_maksura=True), "علي مستشفي"),
        ("مدرسة جميلة", NormalizationConfig(fold_ta_marbuta=True), "مدرسه جميله"),
        ("أَحْمَد إلى المدرسةِ", FOLD_ALL, "احمد الي المدرسه"),
        # Persian ۀ folds to ة first, then to ه with ta-marbuta folding on
        ("ۀ", FOLD_ALL, "ه"),
        ("الولایات", NormalizationConfig(fold_persian=False), "الولایات"),
        ("الْعَرَبِيَّة", NormalizationConfig(remove_diacritics=False), "الْعَرَبِيَّة"),
        ("مـــرحبا", NormalizationConfig(remove_tatweel=False), "مـــرحبا"),
        ("a\u200fb", NormalizationConfig(remove_controls=False), "a\u200fb"),
        ("\ufefb", NormalizationConfig(unicode=False), "\ufefb"),
    ],
)
def test_optional_steps(raw: str, config: NormalizationConfig, expected: str) -> None:
    assert normalize(raw, config) == expected


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match=re.escape("'keep', 'remove' or 'token'")):
        NormalizationConfig(urls="drop")


# ----------------------------------------------------------------------------- dedup_key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("«أحمد» إلى المدرسة!", "احمد الي المدرسه"),
        ("الْعَرَبِيَّة", "العربيه"),
        ("مـــرحبا   بكم", "مرحبا بكم"),
        ("Hello WORLD", "hello world"),
        ("خبر https://a.com/1 عاجل @user", "خبر https://b.org/2 عاجل"),
        ("الولایات المتحدة", "الولايات المتحده"),
        ("نص_مع-شرطة", "نص مع شرطة"),
    ],
)
def test_dedup_key_folds_variants(a: str, b: str) -> None:
    assert dedup_key(a) == dedup_key(b)


@pytest.mark.parametrize(("a", "b"), [("كتب", "كتاب"), ("2024", "2025"), ("سلام", "سلم")])
def test_dedup_key_keeps_different_words_apart(a: str, b: str) -> None:
    assert dedup_key(a) != dedup_key(b)


def test_dedup_key_exact_value() -> None:
    assert dedup_key("«أحمد» إلى المدرسة!") == "احمد الي المدرسه"


def test_word_count() -> None:
    assert word_count("") == 0
    assert word_count("  واحد  اثنان\nثلاثة ") == 3


# ----------------------------------------------------------------------------- properties

# Arbitrary text, biased toward the characters normalisation touches.
_INTERESTING = list("ابتةىيأإآٱیکۀہھ ـًٌٍَُِّْٰ\u200b\u200f\u202b\u2067\u2069\ufeff\ufefb\ufe70\ufc5e:/.٢")
TEXT = st.text(st.one_of(st.characters(), st.sampled_from(_INTERESTING)), max_size=60)
CONFIGS = [
    NormalizationConfig(),
    NormalizationConfig(urls="keep", mentions="keep"),
    NormalizationConfig(
        fold_alef=True,
        fold_alef_maksura=True,
        fold_ta_marbuta=True,
        urls="remove",
        mentions="remove",
    ),
    NormalizationConfig(unicode=False, remove_controls=False),
]
PROPS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@PROPS
@given(TEXT, st.sampled_from(range(len(CONFIGS))))
def test_normalize_is_idempotent(text: str, which: int) -> None:
    once = normalize(text, CONFIGS[which])
    assert normalize(once, CONFIGS[which]) == once


@PROPS
@given(TEXT)
def test_normalize_is_idempotent_without_url_and_mention_steps(text: str) -> None:
    cfg = CONFIGS[1]
    once = normalize(text, cfg)
    assert normalize(once, cfg) == once


@pytest.mark.parametrize("raw", ["@a@b", "@\u064euser", "http\u064e://x.com", "www\u0640.x.com"])
def test_normalize_idempotent_regressions(raw: str) -> None:
    once = normalize(raw)
    assert normalize(once) == once


@PROPS
@given(
    TEXT, st.sampled_from([chr(c) for c in range(0x0621, 0x064B) if c != 0x0640])
)  # letters, not tatweel
def test_normalize_never_empties_arabic_text(text: str, letter: str) -> None:
    assert normalize(text + letter) != ""
    assert normalize(letter + text) != ""


@PROPS
@given(st.text(st.sampled_from(string.ascii_letters + string.digits + " "), max_size=80))
def test_ascii_alnum_text_is_untouched(text: str) -> None:
    for cfg in CONFIGS:
        assert normalize(text, cfg) == " ".join(text.split())


@PROPS
@given(TEXT)
def test_dedup_key_is_idempotent_and_has_no_punctuation(text: str) -> None:
    key = dedup_key(text)
    assert dedup_key(key) == key
    assert key == key.strip()
    assert "  " not in key
    assert not set(key) & set(string.punctuation + "«»،؛؟")


@PROPS
@given(TEXT)
def test_a_blank_text_normalises_to_nothing(text: str) -> None:
    from naba.text import is_blank

    if is_blank(text):
        assert normalize(text) == ""
    assert is_blank(text + " \u200f\u202c") == is_blank(text)


@pytest.mark.parametrize(
    ("text", "blank"),
    [
        ("", True),
        (" \t\n", True),
        ("\u202b\u200f\u2069\ufeff\u200b", True),
        ("\u202bنص\u202c", False),
        ("😀", False),
        ("ـ", False),
        ("a", False),
    ],
)
def test_is_blank(text: str, blank: bool) -> None:
    from naba.text import is_blank

    assert is_blank(text) is blank


# ----------------------------------------------------------------------------- markup


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<p>ارتفعت أسعار &quot;النفط&quot;</p><br/>اليوم", 'ارتفعت أسعار "النفط" اليوم'),
        ('<div class="x">نص</div>', "نص"),
        ("<script>var x = '<p>';</script><style>p {}</style>خبر", "خبر"),
        ("<!-- تعليق -->نص", "نص"),
        ("&lt;b&gt;نص&lt;/b&gt;", "نص"),  # escaped markup is markup once decoded
        ("&#1606;&#x635;", "نص"),
        ("AT&T و x<5 و a < b > c", "AT&T و x<5 و a < b > c"),  # not markup: left as it is
    ],
)
def test_markup_is_stripped_and_entities_decoded(raw: str, expected: str) -> None:
    assert normalize(raw) == expected
    assert (normalize(raw, NormalizationConfig(strip_markup=False)) == expected) == (
        raw == expected
    )  # the setting is the cause


_MARKUP_BITS = [
    "<p>",
    "</p>",
    "<br/>",
    "<b>",
    "&lt;",
    "&gt;",
    "&amp;",
    "&quot;",
    "&#x200b;",
    "&#1575;",
    "<!--",
    "-->",
    "<script>",
    "</script>",
    "<",
    ">",
    "&",
    ";",
    "#",
    "b",
    "p",
    " ",
    "نص",
    "\u200b",
    "\u064e",
    "ـ",
]


@PROPS
@given(
    st.lists(st.sampled_from(_MARKUP_BITS), max_size=25).map("".join),
    st.sampled_from(range(len(CONFIGS))),
)
def test_normalize_with_markup_is_idempotent(text: str, which: int) -> None:
    once = normalize(text, CONFIGS[which])
    assert normalize(once, CONFIGS[which]) == once

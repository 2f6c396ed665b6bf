"""Arabic text normalisation, shared by training and inference.

One function, :func:`normalize`, driven by :class:`naba.config.NormalizationConfig`.
The settings are saved in every model directory (``naba.json``) so that
inference applies exactly what training applied.

Every step is idempotent, so ``normalize(normalize(t)) == normalize(t)``.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from naba.config import NormalizationConfig

# Harakat, shadda, sukun, superscript alef and Quranic annotation marks.
_DIACRITICS = re.compile(
    "[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed]"
)
_TATWEEL = "\u0640"
# Bidi embeddings/overrides/isolates, the Arabic letter mark, zero-width
# characters and the BOM: invisible, but they split words for a tokenizer.
_CONTROLS = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\u00ad]")
# Arabic presentation forms (ligatures and contextual shapes from old PDFs
# and OCR): NFKC maps them back to base letters. Applied to this range only,
# because full NFKC would also rewrite superscripts, fractions and full-width
# Latin, which carry meaning elsewhere.
_PRESENTATION = re.compile("[\ufb50-\ufdff\ufe70-\ufeff]+")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@])@\w+")
_SPACES = re.compile(r"\s+")
# Markup in scraped articles: script/style blocks (with their content), comments, and tags (a name
# right after "<", so "a < b" and "x<5" are text). Replaced by a space: <p> and <br> separate words.
_MARKUP = re.compile(
    r"<(script|style)\b[^>]*>.*?</\1\s*>|<!--.*?(?:-->|$)"
    r"|</?[a-zA-Z][a-zA-Z0-9:-]*(?:\s[^<>]*)?/?>",
    re.IGNORECASE | re.DOTALL,
)

_ALEF = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا"})
_ALEF_MAKSURA = str.maketrans({"ى": "ي"})
_TA_MARBUTA = str.maketrans({"ة": "ه"})
# Persian/Urdu letters that scraped Arabic pages mix in (the seed has
# "الولایات" with a Farsi yeh): they look the same but tokenise differently.
_PERSIAN = str.maketrans({"ی": "ي", "ک": "ك", "ۀ": "ة", "ہ": "ه", "ھ": "ه"})

URL_TOKEN = "[رابط]"
MENTION_TOKEN = "[مستخدم]"


def _presentation_to_base(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", match.group(0))


def normalize(text: str, config: NormalizationConfig | None = None) -> str:
    """Normalise one Arabic text for classification.

    Args:
        text: Raw text (any script; Latin and digits pass through unchanged).
        config: Normalisation settings; ``None`` uses the defaults.

    Returns:
        The normalised text, whitespace collapsed to single spaces.

    Example:
        >>> normalize("الْعَرَبِيَّـــة")
        'العربية'
    """
    cfg = config if config is not None else _default_config()
    out = _normalize_once(text, cfg)
    if cfg.strip_markup:
        # Decoding an entity can reveal markup ("&lt;b&gt;") or a mark a step before it removes
        # ("&#x200b;"), and removing a mark can complete a tag ("<\u200bb>"): pass again until
        # nothing changes, so that the whole function stays idempotent. Texts without "<" or "&"
        # take one pass.
        for _ in range(8):
            if "<" not in out and "&" not in out:
                break
            again = _normalize_once(out, cfg)
            if again == out:
                break
            out = again
    return out


def strip_markup(text: str) -> str:
    """HTML tags, comments and script/style blocks replaced by a space; entities decoded (one
    pass)."""
    if "<" in text:
        text = _MARKUP.sub(" ", text)
    return html.unescape(text) if "&" in text else text


def _normalize_once(text: str, cfg: NormalizationConfig) -> str:
    if cfg.strip_markup:
        text = strip_markup(text)
    if cfg.unicode:
        text = unicodedata.normalize("NFC", _PRESENTATION.sub(_presentation_to_base, text))
    if cfg.remove_controls:
        text = _CONTROLS.sub("", text)
    if cfg.remove_diacritics:
        text = _DIACRITICS.sub("", text)
    if cfg.remove_tatweel:
        text = text.replace(_TATWEEL, "")
    if cfg.fold_persian:
        text = text.translate(_PERSIAN)
    if cfg.fold_alef:
        text = text.translate(_ALEF)
    if cfg.fold_alef_maksura:
        text = text.translate(_ALEF_MAKSURA)
    if cfg.fold_ta_marbuta:
        text = text.translate(_TA_MARBUTA)
    # URLs and mentions after the marks are gone, so that a mark inside one
    # ("http\u064e://") cannot hide it until a second pass.
    if cfg.urls != "keep":
        text = _URL.sub(" " + URL_TOKEN + " " if cfg.urls == "token" else " ", text)
    if cfg.mentions != "keep":
        replacement = " " + MENTION_TOKEN + " " if cfg.mentions == "token" else " "
        # "@a@b": the second mention only becomes visible once the first is
        # replaced; repeat until nothing changes (e-mail addresses never match).
        while True:
            replaced = _MENTION.sub(replacement, text)
            if replaced == text:
                break
            text = replaced
    if cfg.unicode:
        # Removing marks can expose sequences NFC would compose; compose again
        # so that a second pass changes nothing.
        text = unicodedata.normalize("NFC", text)
    return _SPACES.sub(" ", text).strip()


def is_blank(text: str) -> bool:
    """True when ``text`` holds nothing but whitespace and invisible controls (bidi, zero-width,
    BOM).

    Example:
        >>> is_blank("\u202b \u200f\u202c"), is_blank("\u202bنص\u202c")
        (True, False)
    """
    return not _CONTROLS.sub("", text).strip()


def dedup_key(text: str) -> str:
    """The key under which two texts count as normalised duplicates.

    Stronger than :func:`normalize` with defaults: letter variants are folded
    and punctuation dropped, so that re-published copies of one article with
    different hamza spelling or quotes collide.
    """
    return _dedup(text)


@lru_cache(maxsize=1)
def _default_config() -> NormalizationConfig:
    from naba.config import NormalizationConfig

    return NormalizationConfig()


@lru_cache(maxsize=1)
def folding_config() -> NormalizationConfig:
    from naba.config import NormalizationConfig

    return NormalizationConfig(
        fold_alef=True,
        fold_alef_maksura=True,
        fold_ta_marbuta=True,
        urls="remove",
        mentions="remove",
    )


_PUNCT = re.compile(r"[^\w\s]|_")


def _dedup(text: str) -> str:
    folded = normalize(text, folding_config())
    return _SPACES.sub(" ", _PUNCT.sub(" ", folded)).strip().casefold()


def word_count(text: str) -> int:
    """Number of whitespace-separated words."""
    return len(text.split())

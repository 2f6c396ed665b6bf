"""Importer for raw scraped article pages (the shape of ``seeds/``).

A page is plain text holding one or more articles separated by a
related-link line such as ``إقرأ أيضاً:``. Each article is a headline line,
an optional ``تاريخ النشر:`` line, body paragraphs, site boilerplate (share
widgets, related headlines, "more topics" blocks), a ``المصدر:`` source and
a ``كلمات دلالية:`` tag line. The importer keeps title, date, body, tags and
source, and drops the boilerplate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from naba.data.readers import iter_lines
from naba.errors import InputError, Problem

_SEPARATOR = re.compile(r"^\s*(?:إقرأ|اقرأ|إقرا|اقرا)\s+(?:أيضاً|أيضًا|أيضا|ايضا)\s*[:：]?\s*$")
_DATE = re.compile(r"^\s*تاريخ\s+النشر\s*[:：]\s*(.*)$")
_TAGS = re.compile(r"^\s*كلمات\s+دلالية\s*[:：]\s*(.*)$")
_SOURCE = re.compile(r"المصدر\s*[:：]\s*(.*)$")
# Widgets whose whole line is boilerplate.
_DROP_LINE = re.compile(
    r"^\s*(?:شارك\s+هذا\s+المقال|المصادر\s+الإضافية|مواضيع\s+إضافية\s*$|تابعونا\s+على|يعرض\s+الآن)"
)
# A heading that opens a block of related headlines, one per line.
_RELATED_BLOCK = re.compile(
    r"^\s*(?:أخبار\s+ذات\s+صلة|مواضيع\s+إضافية|اقرأ\s+المزيد|الأكثر\s+قراءة)\s*[:：]?\s*$"
)
# The same heading glued to the first words of a body paragraph by the scraper.
_RELATED_PREFIX = re.compile(r"^\s*(?:أخبار\s+ذات\s+صلة)\s*")
# Ta marbuta and alef maksura only end words: one followed by a letter marks
# where the scraper glued two HTML elements together without a space.
_GLUE = re.compile(r"(?<=[ةى])(?=[\u0621-\u064a])")
_MIN_GLUED_WORDS = 8
_SENTENCE_END = re.compile(r"[.!?؟،,:؛\"«»]")

_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}
_EN_DATE = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?,?\s+([A-Za-z]+),?\s+(\d{4})")
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_date(raw: str) -> str:
    """ISO ``YYYY-MM-DD`` when the date is recognisable, else the raw string."""
    match = _ISO_DATE.search(raw)
    if match:
        return match.group(0)
    match = _EN_DATE.search(raw)
    if match and match.group(2).lower() in _MONTHS:
        year, month, day = int(match.group(3)), _MONTHS[match.group(2).lower()], int(match.group(1))
        return f"{year:04d}-{month:02d}-{day:02d}"
    return raw.strip()


def _unglue(line: str) -> str:
    """Split glued elements; drop a leading run of glued headlines.

    A line that starts with headlines glued to each other and to the body
    (several glue points, or at least ``_MIN_GLUED_WORDS`` words, with no
    sentence punctuation before the last glue point) loses that prefix;
    otherwise each glue point becomes a space.
    """
    parts = _GLUE.split(line)
    if len(parts) == 1:
        return line
    if _RELATED_PREFIX.match(line):
        return _RELATED_PREFIX.sub("", line, count=1)
    head = " ".join(parts[:-1])
    # Headline-length runs without punctuation are glued related headlines; a
    # short head is a sentence that lost a space ("وزارة الصحةإن").
    glued_run = len(parts) > 2 or len(head.split()) >= _MIN_GLUED_WORDS
    if not _SENTENCE_END.search(head) and glued_run and len(head.split()) <= 60:
        return parts[-1]
    return " ".join(parts)


def parse_article(lines: list[str]) -> dict[str, Any] | None:
    """Parse one article's lines; ``None`` when it holds no headline and body."""
    lines = [line.strip() for line in lines if line.strip()]
    if not lines:
        return None
    title, rest = lines[0], lines[1:]
    article: dict[str, Any] = {"title": title}
    body: list[str] = []
    in_related = False
    index = 0
    while index < len(rest):
        line = rest[index]
        index += 1
        if match := _DATE.match(line):
            article["date"] = parse_date(match.group(1))
            in_related = False
            continue
        if match := _TAGS.match(line):
            tags = match.group(1).strip()
            if not tags and index < len(rest):
                tags, index = rest[index].strip(), index + 1
            if tags:
                article["tags"] = tags
            in_related = False
            continue
        match = _SOURCE.search(line)
        if match:
            before, source = line[: match.start()].strip(), match.group(1).strip()
            # A source line, a share widget with the source glued on its end, or
            # a short outlet name glued after the last paragraph. "وقال المصدر:
            # إن ..." inside a paragraph is body text, not a source line.
            standalone = not before or _DROP_LINE.match(before)
            glued = len(source.split()) <= 3 and not _SENTENCE_END.search(source)
            if (standalone and len(source.split()) <= 8) or glued:
                article["source"] = source
                in_related = False
                if standalone:
                    continue
                line = before
        if _RELATED_BLOCK.match(line):
            in_related = True
            continue
        if in_related or _DROP_LINE.match(line):
            continue
        line = _unglue(line).strip()
        if line:
            body.append(line)
    if not body:
        return None
    article["text"] = "\n".join(body)
    return article


def split_page(text_lines: list[str]) -> list[list[str]]:
    """Split a page's lines into articles at the related-link separators."""
    articles: list[list[str]] = [[]]
    for line in text_lines:
        if _SEPARATOR.match(line):
            articles.append([])
        else:
            articles[-1].append(line)
    return [article for article in articles if any(line.strip() for line in article)]


def page_files(sources: list[Path]) -> Iterator[Path]:
    """Expand files and directories (``*.txt`` recursively, sorted) into page files.

    Raises:
        InputError: a source does not exist, or is a directory without page files.
    """
    for source in sources:
        if source.is_dir():
            pages = sorted(p for p in source.rglob("*.txt") if not p.name.startswith((".", "_")))
            if not pages:
                raise InputError(
                    f"{source}: is a directory without page files (*.txt); "
                    "pass a folder of raw pages, or the data files themselves"
                )
            yield from pages
        elif source.exists():
            yield source
        else:
            raise InputError(f"{source}: no such file or directory")


def import_pages(sources: list[Path]) -> Iterator[dict[str, Any] | Problem]:
    """Yield one record per article found in the page files.

    Ids are ``<file stem>-<index>``, stable across runs. A page that cannot
    be read (UTF-16, invalid UTF-8), holds no article, or an article block
    with no body is reported as a Problem, and the other pages still import.
    """
    for path in page_files(sources):
        lines: list[str] = []
        broken = False
        try:
            for _number, line in iter_lines(path):
                if isinstance(line, Problem):
                    yield line
                    broken = True
                    break
                lines.append(line)
        except InputError as exc:
            # One unreadable page in a scraped folder must not stop the other pages.
            yield Problem(str(path), None, "(page)", str(exc).removeprefix(f"{path}: "))
            continue
        if broken:
            continue
        blocks = split_page(lines)
        if not blocks:
            yield Problem(
                str(path),
                None,
                "(page)",
                "expected at least one article (headline then body), found an empty page",
            )
            continue
        for index, block in enumerate(blocks):
            article = parse_article(block)
            if article is None:
                yield Problem(
                    str(path),
                    None,
                    f"article {index}",
                    "expected a headline line followed by body text, found no body",
                )
                continue
            yield {"id": f"{path.stem}-{index}", **article}

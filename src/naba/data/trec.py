"""Importer for TREC-style XML documents (the ANT corpus shape).

One document per file: ``<DOC><DOCNO>…</DOCNO><URL>…</URL><SRC>…</SRC>
<CAT>…</CAT><TITLE>…</TITLE><TIME>…</TIME><TEXT>…</TEXT></DOC>``. Files come
from a folder (recursively) or straight out of a ``.tar.gz`` without
unpacking it. The markup is not always well-formed XML (bare ``&`` in URLs),
so fields are read with tolerant patterns rather than an XML parser.
"""

from __future__ import annotations

import html
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from naba.errors import InputError, Problem

_FIELD = {
    name: re.compile(rf"<{name}>(.*?)</{name}>", re.S | re.I)
    for name in ("DOCNO", "URL", "SRC", "CAT", "TITLE", "TIME", "TEXT", "ABSTRACT")
}
_REQUIRED = ("DOCNO", "CAT")
_SKIP = re.compile(r"(^|/)(README|LICENSE)[^/]*$|(^|/)\.", re.I)


def _field(text: str, name: str) -> str | None:
    match = _FIELD[name].search(text)
    if match is None:
        return None
    value = html.unescape(match.group(1)).strip()
    return value or None


def parse_trec(text: str, name: str) -> dict[str, Any] | Problem:
    """Parse one document; a Problem names the file and the missing field."""
    if "<DOC>" not in text.upper():
        return Problem(name, None, "DOC", "expected a <DOC> element, found none")
    fields = {key: _field(text, key) for key in _FIELD}
    for key in _REQUIRED:
        if fields[key] is None:
            return Problem(
                name,
                None,
                key,
                f"expected a non-empty <{key}> element, found none; the document is skipped",
            )
    # Some documents carry only a headline: fall back to the abstract, then the title.
    text = fields["TEXT"] or fields["ABSTRACT"] or fields["TITLE"]
    if text is None:
        return Problem(
            name,
            None,
            "TEXT",
            "expected a non-empty <TEXT>, <ABSTRACT> or <TITLE> element, found "
            "none; the document is skipped",
        )
    record: dict[str, Any] = {"id": fields["DOCNO"], "text": text, "topics": [fields["CAT"]]}
    if fields["TITLE"]:
        record["title"] = fields["TITLE"]
    for key, out in (("TIME", "date"), ("SRC", "source"), ("URL", "url")):
        if fields[key]:
            record[out] = fields[key]
    return record


def _decode(data: bytes, name: str) -> str | Problem:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Problem(
            name, None, "(file)", f"expected UTF-8 text, found invalid byte at offset {exc.start}"
        )


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and not _SKIP.search(member.name):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield f"{path}!{member.name}", handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(f"{path}: not a readable tar archive ({exc})") from None


def import_trec(sources: list[Path]) -> Iterator[dict[str, Any] | Problem]:
    """Yield a topic record per document in the folders, files or tarballs given."""
    for source in sources:
        if not source.exists():
            raise InputError(f"{source}: no such file or directory")
        if source.is_dir():
            items: Iterator[tuple[str, bytes]] = (
                (str(p), p.read_bytes())
                for p in sorted(source.rglob("*"))
                if p.is_file() and not _SKIP.search(p.relative_to(source).as_posix())
            )
        elif source.name.endswith((".tar.gz", ".tgz", ".tar")):
            items = _iter_tar(source)
        else:
            items = iter([(str(source), source.read_bytes())])
        for name, data in items:
            text = _decode(data, name)
            yield text if isinstance(text, Problem) else parse_trec(text, name)

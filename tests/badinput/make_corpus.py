"""Write the generated part of the bad-input corpus.

Most cases in ``tests/badinput/`` are small text files committed as they are.
The ones here are bytes an editor would silently "fix" (UTF-16, Latin-1,
invalid UTF-8, BOMs, raw bidi controls, NUL bytes, a truncated gzip stream),
so they are written by this script; ``tests/test_badinput.py`` checks that
the committed files equal what it writes. The 1 MB article is not
committed: :func:`big_article` writes it at test time.

Usage::

    python tests/badinput/make_corpus.py        # rewrite the generated files in place
"""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

OIL = "ارتفعت أسعار النفط بعد قرار أوبك خفض الإنتاج"
MATCH = "فاز المنتخب الوطني في المباراة النهائية"
SUMMIT = "قمة عربية في الرياض لبحث الأزمة السياسية"


def _row(**fields: object) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode("utf-8") + b"\n"


def _page(title: str, *body: str, tags: str = "") -> str:
    lines = [title, "تاريخ النشر: 27th, January 2024", *body, "المصدر: وكالات"]
    if tags:
        lines.append(f"كلمات دلالية: {tags}")
    return "\n".join(lines) + "\n"


def generated() -> dict[str, bytes]:
    """Relative path -> exact bytes of every generated corpus file."""
    rtl, pdf, rlm, lrm, fsi, pdi = "\u202b", "\u202c", "\u200f", "\u200e", "\u2068", "\u2069"
    good = _page("ارتفاع أسعار النفط", OIL + " وسط مخاوف من تراجع الإمدادات.", tags="النفط أوبك")
    gz_full = gzip.compress(_row(id="gz-1", text=OIL, topics=["energy"]) * 200, mtime=0)
    return {
        # Encodings
        "utf16.jsonl": _row(id="u16-1", text=OIL, topics=["energy"])
        .decode("utf-8")
        .encode("utf-16"),
        "utf16le_nobom.csv": f"id,text,topics\nu16-2,{OIL},energy\n".encode("utf-16-le"),
        "latin1.jsonl": _row(id="l1-1", text=OIL, topics=["energy"])
        + '{"id": "l1-2", "text": "café crème à la carte", "topics": ["culture"]}\n'.encode(
            "latin-1"
        )
        + _row(id="l1-3", text=MATCH, topics=["sports"]),
        "invalid_utf8.jsonl": _row(id="iu-1", text=OIL, topics=["energy"])
        + _row(id="iu-2", text="XXXX", topics=["sports"]).replace(
            b"XXXX", "فاز".encode() + b"\xff\xfe" + "المنتخب".encode()
        )
        + _row(id="iu-3", text=SUMMIT, topics=["politics"]),
        "bom.jsonl": codecs.BOM_UTF8 + _row(id="bom-1", text=OIL, topics=["energy"]),
        "bom.csv": codecs.BOM_UTF8 + f"id,text,topics\nbom-2,{MATCH},sports\n".encode(),
        "nul_byte.jsonl": (
            b'{"id": "nul-1", "text": "\xd9\x86\x00\xd8\xb5", "topics": ["energy"]}\n'
        ),
        "corrupt.jsonl.gz": gz_full[: len(gz_full) // 2],
        # Invisible characters: raw bidi controls around and instead of the text
        "bidi_controls.jsonl": _row(
            id="bi-1",
            text=f"{rtl}ارتفعت أسعار {rlm}النفط{pdf} بعد قرار {fsi}OPEC{pdi} خفض الإنتاج{lrm}",
            topics=["energy"],
        ),
        "bidi_only.jsonl": _row(
            id="bo-1", text=f"{rtl}{rlm}{fsi}{pdi}{pdf}{lrm} \u200b", topics=["energy"]
        ),
        # JSON the parser cannot take: nesting past the recursion limit,
        # an integer past the digit limit
        "deep_nesting.jsonl": b"[" * 5_000
        + b"]" * 5_000
        + b"\n"
        + _row(id="dn-2", text=OIL, topics=["energy"]),
        "huge_number.jsonl": b'{"id": '
        + b"9" * 5000
        + b', "text": "'
        + OIL.encode()
        + b'", "topics": ["energy"]}\n',
        # Plain text (an article a line) with one Latin-1 line
        "articles_latin1.txt": f"{OIL}\n".encode()
        + "Année 2024: élections à Paris\n".encode("latin-1")
        + f"{MATCH}\n".encode(),
        # Raw pages: one good page beside broken ones
        "pages_bad/good.txt": good.encode("utf-8"),
        "pages_bad/empty.txt": b"",
        "pages_bad/headline_only.txt": "عنوان بلا متن\n\n".encode(),
        "pages_bad/latin1.txt": "Titre\nUn article en français, encodé en Latin-1: é à ç\n".encode(
            "latin-1"
        ),
        "pages_bad/utf16.txt": good.encode("utf-16"),
        # A training config that is not UTF-8
        "config_latin1.yaml": "seed: 13\n# réglage\n".encode("latin-1"),
    }


def big_article(directory: Path, size: int = 1_000_000) -> Path:
    """A JSONL file holding one article of about ``size`` bytes of
    Arabic text (written at test time)."""
    sentence = OIL + "، " + MATCH + ". "
    text = sentence * (size // len(sentence.encode("utf-8")) + 1)
    path = directory / "big_article.jsonl"
    path.write_bytes(
        _row(id="big-1", text=text, topics=["energy"])
        + _row(id="big-2", text=SUMMIT, topics=["politics"])
    )
    return path


def write(directory: Path = HERE) -> list[Path]:
    """Write every generated file under ``directory``; returns their paths."""
    paths = []
    for name, data in generated().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write():
        print(written.relative_to(HERE))

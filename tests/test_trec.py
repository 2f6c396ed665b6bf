"""naba.data.trec: TREC-style XML documents from folders and tarballs (the ANT corpus shape)."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from naba.data.trec import import_trec, parse_trec
from naba.errors import InputError, Problem


def doc(docno: str, cat: str | None, text: str, title: str = "عنوان الخبر") -> str:
    cat_line = f"<CAT>{cat}</CAT>\n" if cat is not None else ""
    return (
        f"<DOC>\n<DOCNO>{docno}</DOCNO>\n<URL>http://x.com/a?b=1&c=2</URL>\n<SRC>Jawhara "
        f"FM</SRC>\n{cat_line}"
        f"<TITLE>{title}</TITLE>\n<TIME>2017-02-01T23:08:00+01:00</TIME>\n<ABSTRACT>\n</ABSTRACT>\n<TEXT>\n{text}\n</TEXT>\n</DOC>\n"
    )


def expected(docno: str, cat: str, text: str) -> dict:
    return {
        "id": docno,
        "text": text,
        "topics": [cat],
        "title": "عنوان الخبر",
        "date": "2017-02-01T23:08:00+01:00",
        "source": "Jawhara FM",
        "url": "http://x.com/a?b=1&c=2",
    }


CP1256_DOC = doc("E1", "sport", "نص").encode("cp1256")
BAD_OFFSET = next(
    i for i, byte in enumerate(CP1256_DOC) if byte >= 0x80
)  # the first Arabic letter, in the title


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "politic").mkdir(parents=True)
    (root / "sport").mkdir()
    (root / "politic" / "a.txt").write_text(
        doc("A1", "politic", "نص أول &amp; تتمة"), encoding="utf-8"
    )
    (root / "politic" / "b.txt").write_text(doc("B1", "politic", "نص ثان"), encoding="utf-8")
    (root / "sport" / "c.txt").write_bytes(
        b"\xef\xbb\xbf" + doc("C1", "sport", "نص ثالث").encode("utf-8")
    )  # BOM
    (root / "sport" / "d.txt").write_text(doc("D1", None, "نص بلا تصنيف"), encoding="utf-8")
    (root / "sport" / "e.txt").write_bytes(CP1256_DOC)
    (root / "README.md").write_text("not a document", encoding="utf-8")
    (root / "LICENSE").write_text("Apache", encoding="utf-8")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def split_items(items: list) -> tuple[list[dict], list[str]]:
    return [i for i in items if isinstance(i, dict)], [
        str(i) for i in items if isinstance(i, Problem)
    ]


def test_folder(corpus: Path) -> None:
    records, problems = split_items(list(import_trec([corpus])))
    assert records == [
        expected("A1", "politic", "نص أول & تتمة"),
        expected("B1", "politic", "نص ثان"),
        expected("C1", "sport", "نص ثالث"),
    ]
    assert problems == [
        f"{corpus}/sport/d.txt: CAT: expected a non-empty <CAT> element, found "
        "none; the document is skipped",
        f"{corpus}/sport/e.txt: (file): expected UTF-8 text, found invalid "
        f"byte at offset {BAD_OFFSET}",
    ]


def test_tarball_gives_the_same_records_and_names_members(corpus: Path, tmp_path: Path) -> None:
    tar_path = tmp_path / "corpus.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        archive.add(corpus, arcname="corpus")
    records, problems = split_items(list(import_trec([tar_path])))
    assert sorted(r["id"] for r in records) == ["A1", "B1", "C1"]
    assert {r["id"]: r for r in records}["A1"] == expected("A1", "politic", "نص أول & تتمة")
    assert sorted(problems) == [
        f"{tar_path}!corpus/sport/d.txt: CAT: expected a non-empty <CAT> element, found none; the "
        "document is skipped",
        f"{tar_path}!corpus/sport/e.txt: (file): expected UTF-8 text, found invalid "
        f"byte at offset {BAD_OFFSET}",
    ]


def test_single_file(corpus: Path) -> None:
    assert list(import_trec([corpus / "politic" / "b.txt"])) == [
        expected("B1", "politic", "نص ثان")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no markup at all", "f.txt: DOC: expected a <DOC> element, found none"),
        (
            "<DOC><CAT>x</CAT><TEXT>t</TEXT></DOC>",
            "f.txt: DOCNO: expected a non-empty <DOCNO> element, found "
            "none; the document is skipped",
        ),
        (
            "<DOC><DOCNO>1</DOCNO><CAT>x</CAT><TEXT>  </TEXT></DOC>",
            "f.txt: TEXT: expected a non-empty <TEXT>, <ABSTRACT> or <TITLE> element, found none; "
            "the document is skipped",
        ),
        (
            "<DOC><DOCNO>1</DOCNO><CAT> </CAT><TEXT>t</TEXT></DOC>",
            "f.txt: CAT: expected a non-empty <CAT> element, found none; the document is skipped",
        ),
    ],
)
def test_parse_trec_problems(text: str, message: str) -> None:
    result = parse_trec(text, "f.txt")
    assert isinstance(result, Problem) and str(result) == message


def test_parse_trec_minimal_and_case_insensitive() -> None:
    assert parse_trec(
        "<doc><docno>9</docno><cat>economy</cat><text>\nسطر\nسطر آخر\n</text></doc>", "f"
    ) == {"id": "9", "text": "سطر\nسطر آخر", "topics": ["economy"]}


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=re.escape(f"{tmp_path / 'nope'}: no such file or directory")
    ):
        list(import_trec([tmp_path / "nope"]))


def test_broken_tarball(tmp_path: Path) -> None:
    path = tmp_path / "broken.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00 not really")
    with pytest.raises(InputError, match=re.escape(f"{path}: not a readable tar archive (")):
        list(import_trec([path]))


# ----------------------------------------------------------------------------- the real ANT corpus


@pytest.mark.shared
def test_ant_corpus_tarball(shared_data: Path) -> None:
    # 10,161 documents (plus README.md and LICENSE): one has no <CAT> and is
    # named; 23 are title-only (empty <TEXT> and <ABSTRACT>) and import with
    # their title as text.
    items = list(import_trec([shared_data / "ant" / "raw" / "antcorpus-v1.1.tar.gz"]))
    records = [i for i in items if isinstance(i, dict)]
    problems = [i for i in items if isinstance(i, Problem)]
    assert len(records) == 10_160
    assert len(problems) == 1
    cat = [p for p in problems if p.field == "CAT"]
    assert len(cat) == 1
    assert cat[0].file.endswith("JA-politic-92-20170201.txt")
    assert (
        cat[0].message == "expected a non-empty <CAT> element, found none; the document is skipped"
    )
    assert sum(r["text"] == r.get("title") for r in records) == 23
    assert len({r["id"] for r in records}) == len(records)
    assert {t for r in records for t in r["topics"]} == {
        "localNews",
        "sport",
        "internationalNews",
        "society",
        "politic",
        "diverse",
        "economy",
        "culture",
        "technology",
    }


def test_hidden_folder_skipped_like_in_tarball(corpus: Path, tmp_path: Path) -> None:
    (corpus / ".cache").mkdir()
    (corpus / ".cache" / "copy.txt").write_text(doc("A1-copy", "politic", "نسخة"), encoding="utf-8")
    tar_path = tmp_path / "corpus.tar.gz"
    with tarfile.open(tar_path, "w:gz") as archive:
        archive.add(corpus, arcname="corpus")
    from_tar = sorted(i["id"] for i in import_trec([tar_path]) if isinstance(i, dict))
    from_folder = sorted(i["id"] for i in import_trec([corpus]) if isinstance(i, dict))
    assert from_tar == ["A1", "B1", "C1"]
    assert from_folder == from_tar

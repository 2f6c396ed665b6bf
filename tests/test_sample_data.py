"""The committed sample data is what the importer, taxonomy and splitter produce."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, SAMPLE
from naba.config import load_config
from naba.data.importer import run_import
from naba.data.records import load_records
from naba.data.split import split_records
from naba.data.taxonomy import Taxonomy


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_taxonomy_reproduces_the_editors_topics(tmp_path: Path) -> None:
    summary = run_import(
        [SAMPLE / "pages"],
        tmp_path / "articles.jsonl",
        "page",
        taxonomy=Taxonomy.load(ROOT / "configs" / "taxonomy.yaml"),
    )
    assert (summary.written, summary.errors, summary.unmatched) == (240, 0, 0)
    editors = {}
    for tsv in sorted((SAMPLE / "pages").glob("_topics_*.tsv")):
        for line in tsv.read_text(encoding="utf-8").splitlines():
            name, index, topics = line.split("\t")
            editors[f"{name.removesuffix('.txt')}-{index.strip()}"] = sorted(
                t.strip() for t in topics.split(",")
            )
    imported = _jsonl(tmp_path / "articles.jsonl")
    assert {r["id"]: sorted(r["topics"]) for r in imported} == editors
    assert imported == _jsonl(SAMPLE / "articles.jsonl")


def test_committed_splits_are_reproducible() -> None:
    for task, source in (("topic", "articles.jsonl"), ("stance", "stance_pairs.jsonl")):
        result = split_records(
            load_records(SAMPLE / source, task), task, dev=0.15, test=0.15, seed=13
        )
        for name, rows in result.splits.items():
            assert rows == _jsonl(SAMPLE / task / f"{name}.jsonl"), (task, name)


def test_sample_sizes_meet_the_brief() -> None:
    articles = _jsonl(SAMPLE / "articles.jsonl")
    assert len(articles) >= 240
    assert len({t for r in articles for t in r["topics"]}) >= 8
    assert sum(len(r["topics"]) > 1 for r in articles) >= 20
    assert all(60 <= len(r["text"].split()) <= 200 for r in articles)
    pairs = _jsonl(SAMPLE / "stance_pairs.jsonl")
    assert len(pairs) >= 200 and len({r["target"] for r in pairs}) >= 4
    assert {r["stance"] for r in pairs} == {"favor", "against", "none"}


def test_shipped_configs_load() -> None:
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        # pretrain configs: test_pretrain.py; target description maps
        # (*-targets.yaml): test_targets.py
        if path.name != "taxonomy.yaml" and not path.name.startswith("pretrain-"):
            if path.name.endswith("-targets.yaml"):
                continue
            assert load_config(path).tasks is not None, path

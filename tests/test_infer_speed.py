"""The speed-ups of inference keep its results: token batches, chunks,
int8, threads (no timing here)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SAMPLE
from naba.encoding import token_batches


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


@pytest.fixture(scope="module")
def mixed_articles() -> list[dict]:
    """Sample articles cut to very different lengths, so batches differ from input order."""
    rows = [
        json.loads(line)
        for line in (SAMPLE / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    out = []
    for i, row in enumerate(rows[:14]):
        words = row["text"].split()
        out.append(
            {
                "id": row["id"],
                "title": row.get("title", ""),
                "text": " ".join((words * 3)[: [3, 400, 40, 120][i % 4]]),
            }
        )
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 300), st.integers(1, 4)), max_size=60), st.integers(1, 2000)
)
def test_token_batches_cover_every_document_once_within_budget(
    docs: list[tuple[int, int]], budget: int
) -> None:
    lengths, windows = [d[0] for d in docs], [d[1] for d in docs]
    batches = list(token_batches(lengths, windows, budget))
    assert sorted(i for b in batches for i in b) == list(range(len(docs)))
    for batch in batches:
        padded = sum(windows[i] for i in batch) * max(lengths[i] for i in batch)
        assert padded <= budget or len(batch) == 1
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # length-sorted: padding only from the spread inside a batch


def test_token_batches_put_more_short_documents_in_a_batch() -> None:
    batches = list(token_batches([10] * 8 + [100] * 4, [1] * 12, 200))
    assert [len(b) for b in batches] == [8, 2, 2]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_any_batching_gives_the_one_by_one_results(
    clf, mixed_articles: list[dict], batch_size: int
) -> None:
    one_by_one = [clf.predict([a], targets=["الطاقة النووية"])[0] for a in mixed_articles]
    batched = clf.predict(mixed_articles, targets=["الطاقة النووية"], batch_size=batch_size)
    assert len(batched) == len(one_by_one)
    for single, batch in zip(one_by_one, batched):
        assert batch["topics"]["labels"] == single["topics"]["labels"]
        assert batch["topics"]["scores"] == pytest.approx(single["topics"]["scores"], abs=1e-4)
        assert batch["stance"][0]["scores"] == pytest.approx(
            single["stance"][0]["scores"], abs=1e-4
        )


def test_prepare_then_classify_is_predict(clf, mixed_articles: list[dict]) -> None:
    prepared = clf.prepare(mixed_articles, ["العمل عن بعد"])
    assert len(prepared.docs["topic"]) == len(mixed_articles) and len(prepared.pairs) == len(
        mixed_articles
    )
    assert clf.classify(prepared, batch_size=4) == clf.predict(
        mixed_articles, ["العمل عن بعد"], batch_size=4
    )
    assert clf.classify(clf.prepare([])) == []


def test_chunks_give_the_files_one_chunk_gives(
    clf, mixed_articles: list[dict], tmp_path: Path
) -> None:
    from naba.infer.predict import predict_files

    source = tmp_path / "in.jsonl"
    lines = [json.dumps(a, ensure_ascii=False) for a in mixed_articles * 3]
    lines.insert(5, "{broken")
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outputs = {}
    for chunk_size in (5, 1000):
        out = tmp_path / f"out-{chunk_size}.jsonl"
        summary = predict_files(clf, [source], out, chunk_size=chunk_size)
        assert (summary.rows, summary.written, summary.errors) == (43, 42, 1)
        outputs[chunk_size] = (
            out.read_bytes(),
            (tmp_path / f"out-{chunk_size}.errors.jsonl").read_bytes(),
        )
    assert outputs[5] == outputs[1000]
    ids = [json.loads(line)["id"] for line in outputs[5][0].decode("utf-8").splitlines()]
    assert ids == [a["id"] for a in mixed_articles * 3]


def test_int8_agrees_with_fp32_and_warns_nothing(
    trained_model: Path, mixed_articles: list[dict]
) -> None:
    import torch

    from naba.infer.classifier import Classifier

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.ao's deprecation notices must not reach users
        int8 = Classifier.load(trained_model, "int8")
        got = int8.predict(mixed_articles, ["الطاقة النووية"])
    linears = [m for m in int8.tasks["topic"].model.modules() if type(m).__name__ == "Int8Linear"]
    assert linears and all(m.weight().qscheme() == torch.per_channel_affine for m in linears)
    want = Classifier.load(trained_model).predict(mixed_articles, ["الطاقة النووية"])
    for a, b in zip(got, want):
        for label, p in b["topics"]["scores"].items():
            assert a["topics"]["scores"][label] == pytest.approx(p, abs=0.03)
        for label, p in b["stance"][0]["scores"].items():
            assert a["stance"][0]["scores"][label] == pytest.approx(p, abs=0.03)


def test_threads_are_applied(trained_model: Path) -> None:
    import torch

    from naba.infer.classifier import Classifier

    before = torch.get_num_threads()
    try:
        Classifier.load(trained_model, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_bf16_without_native_support_says_so(
    trained_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from naba.infer import task_model
    from naba.infer.classifier import Classifier

    monkeypatch.setattr(task_model, "native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="naba.infer.task_model"):
        clf = Classifier.load(trained_model, "bf16")
    assert "bf16 on a CPU without native bf16" in caplog.text
    assert clf.predict(["ارتفعت أسعار النفط"])[0]["topics"]["labels"]

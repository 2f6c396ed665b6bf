"""The HTTP service: endpoints and limits through TestClient,
micro-batching, and one real `naba serve`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from conftest import Elided  # noqa: E402
from naba.errors import NabaError  # noqa: E402
from naba.serve.app import ServeSettings, create_app  # noqa: E402
from naba.serve.batcher import MicroBatcher  # noqa: E402

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}
SETTINGS = ServeSettings(max_batch_size=8, max_text_chars=200, max_body_bytes=20_000)
TEXTS = [
    "ارتفعت أسعار النفط بعد قرار أوبك خفض الإنتاج",
    "فاز المنتخب الوطني في المباراة النهائية",
    "أعلنت وزارة الصحة عن حملة تطعيم جديدة",
    "قمة عربية في الرياض لبحث الأزمة السياسية",
    "أطلقت الشركة هاتفا ذكيا جديدا",
    "هجوم مسلح على نقطة تفتيش في بغداد",
]


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


@pytest.fixture(scope="module")
def client(clf):
    # raise_server_exceptions=False: a server error shows as a 500 response,
    # which the tests can assert against.
    with TestClient(create_app(clf, SETTINGS), raise_server_exceptions=False) as c:
        yield c


def _post(client: TestClient, body: bytes, content_type: str | None = "application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return client.post("/v1/classify", content=body, headers=headers)


def _same(a: dict, b: dict) -> None:
    """Two results agree: labels exactly, scores to 1e-4 (one batch or another pads differently)."""
    assert a.keys() == b.keys()
    assert a["topics"]["labels"] == b["topics"]["labels"]
    assert a["topics"]["scores"] == pytest.approx(b["topics"]["scores"], abs=1e-4)
    assert [(s["target"], s["label"]) for s in a.get("stance", [])] == [
        (s["target"], s["label"]) for s in b.get("stance", [])
    ]


# ----------------------------------------------------------------------------- classify


def test_classify_schema_order_and_ids(client, clf) -> None:
    articles = [
        TEXTS[0],
        {"id": "a-1", "title": "عاجل", "text": TEXTS[1]},
        {"id": 7, "text": TEXTS[2]},
        {"text": TEXTS[3], "topics": ["politics"], "url": "ignored"},
        TEXTS[4],
    ]
    response = client.post("/v1/classify", json={"articles": articles})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {
        "format_version": clf.manifest.format_version,
        "naba_version": clf.manifest.naba_version,
    }
    results = body["results"]
    assert len(results) == len(articles)
    # ids echoed where given (first, as given: a string stays a string, a
    # number a number), absent elsewhere.
    assert [r.get("id") for r in results] == [None, "a-1", 7, None, None]
    assert "id" not in results[0] and list(results[1])[0] == "id"
    expected = clf.predict(
        [
            a if isinstance(a, str) else {k: a[k] for k in ("title", "text") if k in a}
            for a in articles
        ]
    )
    for got, want in zip(results, expected):
        _same({k: v for k, v in got.items() if k != "id"}, want)
    topics = results[0]["topics"]
    assert set(topics["scores"]) == set(clf.labels["topic"])
    assert all(
        "stance" not in r for r in results
    )  # no targets asked for: no stance (test_stance_trust.py)


def test_results_follow_input_order(client, clf) -> None:
    articles = [
        {"id": i, "text": TEXTS[i % len(TEXTS)] + " " * (i * 7) + "خبر " * i} for i in range(8)
    ]
    results = client.post("/v1/classify", json={"articles": articles}).json()["results"]
    assert [r["id"] for r in results] == list(range(8))
    for article, got in zip(articles, results):
        _same({k: v for k, v in got.items() if k != "id"}, clf.predict([article["text"]])[0])


def test_targets_record_target_and_defaults(client) -> None:
    targets = ["الطاقة النووية", "العمل عن بعد"]
    given = client.post(
        "/v1/classify",
        json={"articles": [TEXTS[0], {"text": TEXTS[1], "target": "x"}], "targets": targets},
    ).json()["results"]
    assert [[s["target"] for s in r["stance"]] for r in given] == [targets, targets]
    own = client.post(
        "/v1/classify", json={"articles": [{"text": TEXTS[1], "target": "السيارات الكهربائية"}]}
    ).json()
    assert [s["target"] for s in own["results"][0]["stance"]] == ["السيارات الكهربائية"]
    for stance in given[0]["stance"]:
        assert stance["label"] in stance["scores"]
        assert abs(sum(stance["scores"].values()) - 1.0) < 1e-4


def test_threshold_overrides_topic_thresholds(client, clf) -> None:
    assert clf.tasks["topic"].spec.multi_label
    low = client.post("/v1/classify", json={"articles": [TEXTS[0]], "threshold": 0.0}).json()[
        "results"
    ][0]
    high = client.post("/v1/classify", json={"articles": [TEXTS[0]], "threshold": 1.0}).json()[
        "results"
    ][0]
    assert sorted(low["topics"]["labels"]) == sorted(clf.labels["topic"])
    assert len(high["topics"]["labels"]) == 1  # none passes 1.0; at_least_one keeps the best


@pytest.mark.parametrize(
    "text", ["hello world", "😀😀", "١٢٣ 123", "\u200f\u202bنص\u202c", "ـــــ", "نَصٌّ مُشَكَّلٌ"]
)
def test_odd_texts_are_classified(client, text: str) -> None:
    response = client.post("/v1/classify", json={"articles": [text]})
    assert response.status_code == 200
    assert response.json()["results"][0]["topics"]["labels"]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("", "an empty string"),
        ("   ", "only whitespace"),
        ("\u200b", "only invisible characters (bidi or zero-width controls)"),
    ],
)
def test_blank_texts_are_422_naming_the_article(client, text: str, found: str) -> None:
    response = client.post("/v1/classify", json={"articles": ["نص", {"id": "b", "text": text}]})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"][:2] == ["body", "articles"] and detail["type"] == "empty_text"
    assert detail["msg"] == f"article 1: text: expected a non-empty string, found {found}"


# ----------------------------------------------------------------------------- limits and bad input


def _json(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


BAD = [
    # (body, content type, loc, type, pinned message or None when pydantic's own wording)
    (
        _json({"articles": []}),
        "application/json",
        ["body", "articles"],
        "articles_empty",
        "articles: empty; send at least one article",
    ),
    (
        _json({"articles": ["a"] * 9}),
        "application/json",
        ["body", "articles"],
        "too_many_articles",
        "articles: 9 articles, the limit is 8 per request (max_batch_size); split them over "
        "several requests",
    ),
    (
        _json({"articles": ["ok", "x" * 201]}),
        "application/json",
        ["body", "articles"],
        "text_too_long",
        "article 1: text is 201 characters, the limit is 200 (max_text_chars); "
        "shorten the article or split it",
    ),
    (
        _json({"articles": ["ok", "ok", {"title": "x" * 300, "text": "a"}]}),
        "application/json",
        ["body", "articles"],
        "text_too_long",
        "article 2: title is 300 characters, the limit is 200 (max_text_chars); shorten the "
        "article or split it",
    ),
    (
        b'{"articles": ["ok", {"text": "a\\ud800b"}]}',
        "application/json",
        ["body", "articles"],
        "invalid_text",
        "article 1: text contains a lone surrogate (invalid Unicode); send UTF-8 text",
    ),
    (
        _json({"articles": ["a"], "targets": ["t"] * 65}),
        "application/json",
        ["body", "targets"],
        "too_many_targets",
        "targets: 65 targets, the limit is 64 per request",
    ),
    (
        b'{"articles": ["a"',
        "application/json",
        ["body", 17],
        "json_invalid",
        Elided("body is not valid JSON: …"),  # json's reason
    ),
    (
        b'{"articles": ["\xff"]}',
        "application/json",
        ["body", 15],
        "json_invalid",
        Elided("body is not valid JSON: invalid UTF-8 (…)"),
    ),
    (
        b"[" * 50_00 + b"]" * 50_00,
        "application/json",
        ["body", 0],
        "json_invalid",
        "body is not valid JSON: nested too deeply",
    ),
    (
        b'{"articles": [{"id": ' + b"9" * 5000 + b', "text": "a"}]}',
        "application/json",
        ["body", 0],
        "json_invalid",
        "body is not valid JSON: a number has too many digits",
    ),
    (
        b"[]",
        "application/json",
        ["body"],
        "model_attributes_type",
        "body: expected a JSON object with an 'articles' list",
    ),
    (
        _json({"articles": ["a"]}),
        "text/plain",
        ["body"],
        "model_attributes_type",
        "body: expected a JSON object; send it with Content-Type: application/json",
    ),
    (
        _json({"articles": [1]}),
        "application/json",
        ["body", "articles", 0],
        "article_type",
        "expected a string or an object with a 'text' string",
    ),
    (
        _json({"articles": [{"title": "t"}]}),
        "application/json",
        ["body", "articles", 0, "record", "text"],
        "missing",
        None,
    ),
    (
        _json({"articles": ["a"], "target": "t"}),
        "application/json",
        ["body", "target"],
        "extra_forbidden",
        None,
    ),
    (
        _json({"articles": ["a"], "threshold": 1.5}),
        "application/json",
        ["body", "threshold"],
        "less_than_equal",
        None,
    ),
    (
        b'{"articles": ["a"], "threshold": NaN}',
        "application/json",
        ["body", "threshold"],
        "less_than_equal",
        None,
    ),
    (b"", "application/json", ["body"], "missing", None),
]


@pytest.mark.parametrize(
    ("body", "content_type", "loc", "kind", "message"),
    BAD,
    ids=[f"{b[3]}-{i}" for i, b in enumerate(BAD)],
)
def test_bad_requests_are_422_with_clear_messages(
    client, body: bytes, content_type: str, loc: list, kind: str, message: str | Elided | None
) -> None:
    response = _post(client, body, content_type)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert (error["loc"], error["type"]) == (loc, kind)
    if message is not None:
        assert error["msg"] == message
    assert "input" not in error  # a 100 kB text is not echoed back


def test_body_over_the_limit_is_413(client) -> None:
    message = (
        "request body is larger than 20000 bytes (max_body_bytes); "
        "send fewer or shorter articles per request"
    )
    big = _json({"articles": ["ن" * 150] * 80})
    assert len(big) > 20_000
    by_header = _post(client, big)
    assert (by_header.status_code, by_header.json()["detail"]) == (413, message)
    # No Content-Length (a chunked upload): the bytes that arrive are counted.
    chunked = client.post(
        "/v1/classify",
        content=iter([big[:10_000], big[10_000:]]),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in chunked.request.headers
    assert (chunked.status_code, chunked.json()["detail"]) == (413, message)
    # A Content-Length that lies is not trusted.
    lying = client.post(
        "/v1/classify",
        content=big,
        headers={"content-type": "application/json", "content-length": "100"},
    )
    assert lying.request.headers["content-length"] == "100"
    assert (lying.status_code, lying.json()["detail"]) == (413, message)
    # Just under the limit is fine.
    assert client.post("/v1/classify", json={"articles": ["ن" * 100] * 8}).status_code == 200


def test_bad_input_never_gets_a_500(client) -> None:
    bodies = [
        b"",
        b"{",
        b"null",
        b"0",
        b'"x"',
        b"[1, 2]",
        b"{}",
        b'{"articles": null}',
        b'{"articles": "x"}',
        b'{"articles": {"text": "x"}}',
        b'{"articles": [null]}',
        b'{"articles": [[]]}',
        b'{"articles": [{"text": 1}]}',
        b'{"articles": [{"text": null}]}',
        b'{"articles": [{"text": "a", "id": []}]}',
        b'{"articles": [{"text": "a", "title": 5}]}',
        b'{"articles": ["a"], "targets": "x"}',
        b'{"articles": ["a"], "targets": [1]}',
        b'{"articles": ["a"], "targets": ["\\udfff"]}',
        b'{"articles": ["a"], "threshold": "high"}',
        b'{"articles": ["a"], "threshold": -Infinity}',
        b'{"\\ud800": 1}',
        b'{"articles": [{"text": "a", "target": "\\ud800"}]}',
        b'{"articles": [{"text": "a", "id": "\\ud800"}]}',
        b"\xef\xbb\xbf{}",
        b"\x00",
        '{"articles": ["نص"]}'.encode("utf-16"),
        b'{"articles": ["a"]}' * 3,
    ]
    for body in bodies:
        for content_type in ("application/json", None):
            response = _post(client, body, content_type)
            assert response.status_code in (413, 422), (
                body[:40],
                content_type,
                response.status_code,
                response.text[:200],
            )
            assert response.json()["detail"]
    assert client.get("/v1/classify").status_code == 405
    assert client.post("/v1/model", json={}).status_code == 405


def test_settings_are_checked() -> None:
    with pytest.raises(
        NabaError, match=re.escape("max_batch_size: expected a positive integer, found 0")
    ):
        ServeSettings(max_batch_size=0)
    with pytest.raises(
        NabaError, match=re.escape("batch_wait_ms: expected 0 or more milliseconds, found -1")
    ):
        ServeSettings(batch_wait_ms=-1)


# ----------------------------------------------------------------------------- model, health, docs


def test_model_endpoint_describes_the_model(client, clf) -> None:
    import naba

    info = client.get("/v1/model").json()
    manifest = clf.manifest
    assert (
        info["naba_version"] == manifest.naba_version
        and info["server_naba_version"] == naba.__version__
    )
    assert (
        info["format_version"] == manifest.format_version
        and info["base_model"] == manifest.base_model
    )
    assert info["labels"] == clf.labels
    assert set(info["tasks"]) == {"topic", "stance"}
    topic, stance = info["tasks"]["topic"], info["tasks"]["stance"]
    assert (
        topic["thresholds"] == clf.tasks["topic"].spec.thresholds and topic["multi_label"] is True
    )
    assert stance["default_targets"] == clf.tasks["stance"].spec.default_targets
    assert info["window"] == manifest.window.model_dump()
    assert info["normalization"] == manifest.normalization.model_dump()
    for task in (topic, stance):
        assert set(task["metrics"]) == {"dev", "test"}
        assert 0.0 <= task["metrics"]["test"]["macro_f1"] <= 1.0
    assert info["limits"] == {
        "max_batch_size": 8,
        "max_text_chars": 200,
        "max_body_bytes": 20_000,
        "max_targets": 64,
    }
    assert info["precision"] == "fp32"


def test_health_and_openapi(client) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and {"batches", "articles", "requests"} <= set(health)
    spec = client.get("/openapi.json").json()
    assert "post" in spec["paths"]["/v1/classify"]
    assert {"/v1/model", "/healthz"} <= set(spec["paths"])
    assert "413" in spec["paths"]["/v1/classify"]["post"]["responses"]
    assert client.get("/docs").status_code == 200


# ----------------------------------------------------------------------------- micro-batching


class RecordingClassifier:
    """Stands in for a Classifier: records every predict call, echoes its articles."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, list | None, float | None]] = []
        self.release = threading.Event()

    def predict(
        self,
        articles,
        targets=None,
        *,
        tasks=None,
        all_targets=False,
        batch_size=16,
        threshold=None,
    ):
        self.release.wait(5)  # hold the first call so that the others queue up behind it
        self.calls.append((list(articles), targets, threshold))
        if "boom" in articles:
            raise NabaError("article boom: rejected")
        return [{"echo": a, "targets": targets, "threshold": threshold} for a in articles]


def test_batcher_shares_calls_but_never_mixes_targets_or_thresholds() -> None:
    fake = RecordingClassifier()
    batcher = MicroBatcher(fake, max_batch_size=5, batch_wait_ms=50, batch_size=4)
    requests = [
        (["a1", "a2"], None, None),
        (["b1"], ["t"], None),
        (["c1", "c2"], None, None),
        (["d1"], None, 0.3),
        (["e1"], ["t"], None),
        (["f1", "f2", "f3"], None, None),
        (["g1"], ["u"], None),
        (["boom"], ["u"], None),
    ]

    async def run():
        first = asyncio.ensure_future(batcher.classify(["warm"]))  # occupies the worker
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(batcher.classify(*r)) for r in requests]
        await asyncio.sleep(0.05)
        fake.release.set()
        await first
        return await asyncio.gather(*tasks, return_exceptions=True)

    try:
        results = asyncio.run(run())
    finally:
        batcher.close()
    for (articles, targets, threshold), result in zip(requests, results):
        if targets == ["u"]:
            # g1 shared boom's call (same targets) and fails with it; a failing
            # call fails only its own group.
            assert isinstance(result, NabaError) and str(result) == "article boom: rejected"
            continue
        assert [r["echo"] for r in result] == articles
        assert all(r["targets"] == targets and r["threshold"] == threshold for r in result)
    calls = fake.calls[1:]
    assert all(len(articles) <= 5 for articles, _, _ in calls)
    assert len(calls) < len(requests)  # requests shared calls
    for articles, targets, threshold in calls:  # one (targets, threshold) per call
        owners = [r for r in requests if set(r[0]) & set(articles)]
        assert {(tuple(r[1] or ()), r[2]) for r in owners} == {(tuple(targets or ()), threshold)}
    assert batcher.stats().requests == 1 + len(requests) - 2


# ----------------------------------------------------------------------------- the real server


def test_serve_help_does_not_import_fastapi() -> None:
    check = (
        "import sys; from naba.cli import app\ntry:\n    app(['serve', '--help'])\nexcept "
        "SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(m for m in ('fastapi', 'uvicorn', 'torch') if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, env=ENV, timeout=60
    )
    assert "--max-body-bytes" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1] == "HEAVY="


def test_serve_bad_model_dir_is_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "model directory not found" in result.output


@contextmanager
def _served(model: Path, log_path: Path, *options: str):
    """A real `naba serve` on a free port; yields its base URL and the
    process, and stops it afterwards."""
    # --port 0: the OS picks a free port (no race); the log says which.
    args = [
        sys.executable,
        "-m",
        "naba",
        "serve",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *options,
    ]
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    try:
        base = None
        deadline = time.monotonic() + 90
        while base is None:
            assert proc.poll() is None, log_path.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "the server did not start:\n" + log_path.read_text(
                encoding="utf-8"
            )
            match = re.search(
                r"running on (http://127\.0\.0\.1:\d+)", log_path.read_text(encoding="utf-8")
            )
            base = match.group(1) if match else None
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_naba_serve_micro_batches_concurrent_requests(trained_model: Path, tmp_path: Path) -> None:
    import httpx

    log_path = tmp_path / "server.log"
    with _served(trained_model, log_path, "--max-batch-size", "16", "--batch-wait-ms", "20") as (
        base,
        _,
    ):
        # trust_env=False: never route loopback traffic through a proxy from the environment.
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
            assert http.get("/healthz").json() == {
                "status": "ok",
                "batches": 0,
                "articles": 0,
                "requests": 0,
            }

            def send(i: int) -> tuple[int, list]:
                articles = [
                    {"id": f"r{i}-{j}", "text": TEXTS[(i + j) % len(TEXTS)]} for j in range(3)
                ]
                response = http.post("/v1/classify", json={"articles": articles})
                return response.status_code, [
                    r.get("id") for r in response.json().get("results", [])
                ]

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(send, range(40)))
            for i, (status, ids) in enumerate(answers):
                assert status == 200
                assert ids == [f"r{i}-{j}" for j in range(3)]
            health = http.get("/healthz").json()
    assert health["requests"] == 40 and health["articles"] == 120
    assert health["batches"] < 40, health  # concurrent requests shared predict calls
    assert "Application shutdown complete" in log_path.read_text(encoding="utf-8")


@pytest.mark.slow
def test_naba_serve_workers_share_the_port_each_with_its_model(
    trained_model: Path, tmp_path: Path
) -> None:
    import httpx

    log_path = tmp_path / "server.log"
    with _served(trained_model, log_path, "--workers", "2") as (base, proc):
        seen: dict[int, list] = {}
        deadline = time.monotonic() + 120
        while len(seen) < 2 and time.monotonic() < deadline:
            # A new connection each time: the kernel hands each to
            # whichever worker accepts it first.
            try:
                with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
                    worker = http.get("/healthz", headers={"Connection": "close"}).json()["worker"]
                    response = http.post(
                        "/v1/classify",
                        json={"articles": [{"id": "a", "text": TEXTS[0]}]},
                        headers={"Connection": "close"},
                    )
            except (
                httpx.ConnectError
            ):  # the socket listens once the first worker has loaded its model
                time.sleep(0.2)
                continue
            assert response.status_code == 200
            seen.setdefault(worker, response.json()["results"])
            time.sleep(0.05)
        children = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
    assert sorted(seen) == [0, 1], log_path.read_text(encoding="utf-8")
    assert seen[0] == seen[1]  # two processes, one model: the same answer
    assert len(children) >= 2  # the workers (and uvicorn's own helpers) under the one command


def test_serve_workers_below_one_is_refused(trained_model: Path) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    result = CliRunner().invoke(app, ["serve", str(trained_model), "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


@pytest.mark.slow
def test_docs_render_in_a_browser_with_no_network(trained_model: Path, tmp_path: Path) -> None:
    """Headless Chromium, with every host but loopback unresolvable, renders Swagger UI at /docs."""
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    shot = tmp_path / "docs.png"
    with _served(trained_model, tmp_path / "server.log") as (base, _):
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=8000",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=1200,1400",
                f"--screenshot={shot}",
                f"{base}/docs",
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert shot.exists()
    from matplotlib.image import imread

    rgb = imread(str(shot))[..., :3]

    def share(colour: tuple[int, int, int]) -> float:
        return float((abs(rgb - [c / 255 for c in colour]).max(axis=2) < 0.05).mean())

    # Swagger UI drew the operations: its POST button green (#49cc90)
    # and GET buttons blue (#61affe).
    assert share((0x49, 0xCC, 0x90)) > 0.001 and share((0x61, 0xAF, 0xFE)) > 0.002, (
        share((0x49, 0xCC, 0x90)),
        share((0x61, 0xAF, 0xFE)),
    )
    if os.environ.get("NABA_SCREENSHOTS"):  # keep the screenshot to look at
        shutil.copy(shot, Path(os.environ["NABA_SCREENSHOTS"]) / "docs.png")


def test_docs_are_served_offline(client) -> None:
    """/docs and /redoc reference only assets the service itself serves (an
    air-gapped network has no CDN)."""
    import re as _re

    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        html_page = response.text
        assert (
            "cdn.jsdelivr" not in html_page
            and "unpkg" not in html_page
            and "fonts.googleapis" not in html_page
        )
        assets = _re.findall(r'(?:src|href)="([^"]+)"', html_page)
        assert assets and all(a.startswith("/static-docs/") for a in assets), assets
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 1000, asset
    bundle = client.get("/static-docs/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle  # Swagger UI 5, which renders FastAPI's OpenAPI 3.1 schema

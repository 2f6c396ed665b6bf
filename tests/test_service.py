"""Issue #31: the service as other systems depend on it: API keys, metrics, request ids, access
logs, readiness, and fuzzed requests that never get a 500 (through TestClient).

The real ``naba serve`` (TLS, SIGHUP, SIGTERM, --workers) is in test_service_server.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("prometheus_client")

from fastapi.testclient import TestClient  # noqa: E402

from naba.errors import NabaError  # noqa: E402
from naba.serve.app import ServeSettings, create_app  # noqa: E402
from naba.serve.security import ApiKeys, check_bind  # noqa: E402

SETTINGS = ServeSettings(max_batch_size=8, max_text_chars=200, max_body_bytes=20_000)
KEY_A = "a" * 8 + "-first-key-0123456789"
KEY_B = "b" * 8 + "-second-key-0123456789"
TEXTS = ["ارتفعت أسعار النفط بعد قرار أوبك", "فاز المنتخب الوطني في المباراة", "حملة تطعيم جديدة"]


@pytest.fixture(scope="module")
def clf(trained_model: Path):
    from naba.infer.classifier import Classifier

    return Classifier.load(trained_model)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.txt"
    path.write_text(f"# rotation: both keys work\n{KEY_A}\n\n{KEY_B}  # the new one\n")
    return path


@pytest.fixture(scope="module")
def client(clf, key_file: Path):
    app = create_app(clf, SETTINGS, keys=ApiKeys(key_file))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def auth(key: str = KEY_A) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service never became ready"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- API keys


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/classify"), ("GET", "/v1/model"), ("GET", "/v1/schema"), ("GET", "/metrics")],
)
def test_a_missing_or_wrong_key_is_401_with_a_bearer_challenge(client, method, path) -> None:
    body = {"json": {"articles": [TEXTS[0]]}} if method == "POST" else {}
    missing = client.request(method, path, **body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="naba"'
    assert missing.json()["detail"] == "missing API key: send the header Authorization: Bearer KEY"
    for wrong in (
        auth(KEY_A[:-1]),
        auth(KEY_A + "x"),
        {"Authorization": KEY_A},  # no scheme
        {"Authorization": f"Basic {KEY_A}"},
    ):
        response = client.request(method, path, headers=wrong, **body)
        assert response.status_code == 401, wrong
        assert response.headers["www-authenticate"].startswith('Bearer realm="naba"')
    for key in (KEY_A, KEY_B):  # both keys of the file: rotation
        assert client.request(method, path, headers=auth(key), **body).status_code == 200
    lower = {"Authorization": f"bearer {KEY_B}"}  # the scheme is case-insensitive (RFC 7235)
    assert client.request(method, path, headers=lower, **body).status_code == 200


def test_probes_and_docs_are_open_and_unknown_paths_are_not(client) -> None:
    for path in ("/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code in (200, 503), path
    wait_ready(client)
    assert client.get("/readyz").json() == {"status": "ready"}
    assert client.get("/v2/anything").status_code == 401  # deny by default
    assert client.get("/v2/anything", headers=auth()).status_code == 404


def test_without_a_key_the_body_is_not_read(client) -> None:
    big = json.dumps({"articles": ["ن" * 150] * 200}).encode()
    assert len(big) > SETTINGS.max_body_bytes
    response = client.post(
        "/v1/classify", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 401  # not 413: an unauthenticated body is never buffered
    assert client.post("/v1/classify", content=big, headers=auth()).status_code == 413


def test_key_file_is_reread_and_a_bad_reload_keeps_the_keys(tmp_path: Path, caplog) -> None:
    path = tmp_path / "keys"
    path.write_text(KEY_A + "\n")
    keys = ApiKeys(path)
    assert keys.check(KEY_A.encode()) and not keys.check(KEY_B.encode()) and len(keys) == 1
    path.write_text(KEY_B + "\n")
    assert keys.reload()
    assert keys.check(KEY_B.encode()) and not keys.check(KEY_A.encode())
    with caplog.at_level(logging.INFO, logger="naba.serve.security"):
        path.write_text("# emptied by mistake\n")
        assert not keys.reload()
        path.unlink()
        assert not keys.reload()
    assert keys.check(KEY_B.encode())  # still in force
    assert "API keys not reloaded, the 1 in force stay" in caplog.text
    assert KEY_B not in caplog.text and KEY_A not in caplog.text


def test_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NABA_API_KEYS", raising=False)
    assert ApiKeys.from_sources(None) is None
    monkeypatch.setenv("NABA_API_KEYS", f"{KEY_A}, {KEY_B}")
    keys = ApiKeys.from_sources(None)
    assert keys is not None and len(keys) == 2 and keys.check(KEY_B.encode())
    path = tmp_path / "keys"
    path.write_text("c" * 20 + "\n")
    both = ApiKeys.from_sources(path)
    assert both is not None and len(both) == 3


def test_bad_key_files_are_one_line_errors_that_never_show_a_key(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f'{KEY_A}\nsecret with spaces\tand"quote\n')
    with pytest.raises(NabaError) as info:
        ApiKeys(path)
    assert str(info.value) == (
        f"{path}:2: an API key may hold only letters, digits and -._~+/ (a Bearer token); "
        "generate one with `openssl rand -hex 32`"
    )
    path.write_text("\n# nothing\n")
    with pytest.raises(NabaError, match=re.escape(f"{path}: no API key found")):
        ApiKeys(path)
    with pytest.raises(NabaError, match=re.escape("cannot read the API key file")):
        ApiKeys(tmp_path / "missing")


def test_sighup_rereads_the_key_file(tmp_path: Path) -> None:
    from naba.serve.process import reload_on_sighup

    path = tmp_path / "keys"
    path.write_text(KEY_A + "\n")
    keys = ApiKeys(path)
    before = signal.getsignal(signal.SIGHUP)
    with reload_on_sighup(keys):
        path.write_text(KEY_B + "\n")
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not keys.check(KEY_B.encode()):
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert not keys.check(KEY_A.encode())
    assert signal.getsignal(signal.SIGHUP) == before


def test_a_public_address_needs_keys_or_no_auth(caplog) -> None:
    check_bind("127.0.0.1", None, no_auth=False)
    check_bind("::1", None, no_auth=False)
    check_bind("127.0.0.2", None, no_auth=False)
    check_bind("localhost", None, no_auth=False)
    for public in ("0.0.0.0", "::", "10.1.2.3", "example.org", "127.0.0.1.nip.io"):
        with pytest.raises(NabaError, match=re.escape(f"--host {public}: refusing")):
            check_bind(public, None, no_auth=False)
    with pytest.raises(
        NabaError,
        match=re.escape(
            "--host 0.0.0.0: refusing to serve a non-loopback address without API keys; "
            "give --api-key-file FILE (or NABA_API_KEYS), or --no-auth when a proxy in front "
            "authenticates callers"
        ),
    ):
        check_bind("0.0.0.0", None, no_auth=False)
    with caplog.at_level(logging.WARNING, logger="naba.serve.security"):
        check_bind("0.0.0.0", None, no_auth=True)
    assert "binding 0.0.0.0 with --no-auth" in caplog.text
    with pytest.raises(NabaError, match=re.escape("--no-auth: API keys are also given")):
        check_bind("0.0.0.0", object(), no_auth=True)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- request ids, errors


def test_request_ids_are_echoed_or_generated_and_in_error_bodies(client) -> None:
    given = client.post(
        "/v1/classify", json={"articles": [TEXTS[0]]}, headers={**auth(), "X-Request-ID": "abc-1"}
    )
    assert given.status_code == 200 and given.headers["x-request-id"] == "abc-1"
    made = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    # A header that is not a sane token is not echoed (it would go into the logs): a new id.
    odd = client.get("/healthz", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])
    errors = {
        401: client.post("/v1/classify", json={"articles": ["x"]}),
        413: client.post("/v1/classify", content=b"{" * 30_000, headers=auth()),
        422: client.post("/v1/classify", json={"articles": []}, headers=auth()),
        404: client.get("/nowhere", headers=auth()),
        405: client.get("/v1/classify", headers=auth()),
    }
    for status, response in errors.items():
        assert response.status_code == status
        body = response.json()
        assert body["request_id"] == response.headers["x-request-id"], status
        assert body["detail"]
        assert int(response.headers["content-length"]) == len(response.content)


def test_an_unexpected_error_is_a_json_500_with_the_id_and_no_traceback(
    clf, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    app = create_app(clf, SETTINGS)

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU fell off")

    monkeypatch.setattr(clf, "predict", broken)
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as c:
        response = c.post("/v1/classify", json={"articles": ["x"]}, headers={"X-Request-ID": "r9"})
        ready = c.get("/readyz")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "request_id": "r9"}
    assert "Traceback" not in response.text and "GPU" not in response.text
    assert "request r9 failed" in caplog.text and "the GPU fell off" in caplog.text
    # The warm-up pass failed too: never ready.
    assert (ready.status_code, ready.json()["status"]) == (503, "warming up")
    assert "warm-up forward pass failed" in caplog.text


# ----------------------------------------------------------------------------- readiness


def test_readyz_is_503_until_the_warm_up_pass_and_after_shutdown(
    clf, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    calls = []
    real = clf.predict

    def gated(articles, *args, **kwargs):
        gate.wait(30)
        calls.append(list(articles))
        return real(articles, *args, **kwargs)

    monkeypatch.setattr(clf, "predict", gated)
    app = create_app(clf, SETTINGS)
    with TestClient(app) as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200  # alive at once
            answer = c.get("/readyz")
            assert (answer.status_code, answer.json()["status"]) == (503, "warming up")
        gate.set()
        wait_ready(c)
        assert c.get("/healthz").json()["requests"] == 0  # the warm-up is not a request
        assert len(calls) == 1
    assert not app.state.batcher.is_ready()  # shut down


# ----------------------------------------------------------------------------- metrics


def _families(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(family, name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_parse_as_prometheus_text_with_nabas_metrics(clf, trained_model: Path) -> None:
    app = create_app(clf, SETTINGS)  # no keys: /metrics is open too
    with TestClient(app) as c:
        wait_ready(c)
        for n in (1, 2, 3):
            c.post("/v1/classify", json={"articles": TEXTS[:n]}).raise_for_status()
        c.post("/v1/classify", json={"articles": TEXTS[:2], "targets": ["النفط"]})
        c.post("/v1/classify", json={"articles": []})
        c.get("/no/such/path")
        scrape = c.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain; version=")
    metrics = _families(scrape.text)
    assert all(name.startswith("naba_") for name in metrics if not name.startswith("python_"))
    requests = metrics["naba_requests"]
    ok = _value(requests, "naba_requests_total", route="/v1/classify", status="200")
    assert ok == 4
    assert _value(requests, "naba_requests_total", route="/v1/classify", status="422") == 1
    assert _value(requests, "naba_requests_total", route="other", status="404") == 1
    latency = metrics["naba_request_duration_seconds"]
    assert _value(latency, "naba_request_duration_seconds_count", route="/v1/classify") == 5
    batches = metrics["naba_batch_size_articles"]
    assert _value(batches, "naba_batch_size_articles_sum") == 1 + 2 + 3 + 2
    articles = metrics["naba_articles_classified"]
    assert _value(articles, "naba_articles_classified_total", task="topic") == 8
    assert _value(articles, "naba_articles_classified_total", task="stance") == 2
    assert _value(metrics["naba_queue_depth"], "naba_queue_depth") == 0
    (info,) = metrics["naba_model_info"].samples
    fingerprint = hashlib.sha256((trained_model / "naba.json").read_bytes()).hexdigest()[:12]
    assert info.value == 1 and info.labels == {
        "model": trained_model.name,
        "fingerprint": fingerprint,
        "precision": "fp32",
        "device": "cpu",
        "naba_version": clf.manifest.naba_version,
    }


# ----------------------------------------------------------------------------- access logs


def test_access_log_records_and_their_json_form(client, caplog) -> None:
    from naba.serve.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="naba.serve.access"):
        client.post(
            "/v1/classify",
            json={"articles": TEXTS},
            headers={**auth(), "X-Request-ID": "log-me"},
        )
        client.post("/v1/classify", json={"articles": TEXTS})  # 401
    ours = [r for r in caplog.records if r.name == "naba.serve.access"]
    assert [r.access["status"] for r in ours] == [200, 401]
    record = ours[0]
    line = json.loads(JsonFormatter().format(record))
    assert set(line) == {"time", "id", "method", "route", "status", "latency_ms", "articles"}
    assert (line["id"], line["route"], line["status"], line["articles"]) == (
        "log-me",
        "/v1/classify",
        200,
        3,
    )
    assert line["latency_ms"] > 0 and line["time"].endswith("+00:00")
    assert re.search(r'"POST /v1/classify" 200 [\d.]+ ms articles=3 id=log-me', record.getMessage())
    assert KEY_A not in caplog.text


# ----------------------------------------------------------------------------- fuzzing


def _fuzz_strategies():
    from hypothesis import strategies as st

    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=40),
    )

    def nest(inner):
        return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner)

    junk = st.recursive(leaf, nest, max_leaves=12)
    article = st.one_of(
        st.text(max_size=250),
        st.fixed_dictionaries(
            {"text": st.one_of(st.text(max_size=250), junk)},
            optional={"id": junk, "title": junk, "target": junk, "labels": junk},
        ),
        junk,
    )
    request = st.fixed_dictionaries(
        {"articles": st.one_of(st.lists(article, max_size=10), junk)},
        optional={
            "targets": st.one_of(st.lists(st.text(max_size=30), max_size=4), junk),
            "threshold": st.one_of(st.floats(), st.integers(), junk),
            "tasks": st.one_of(st.lists(st.sampled_from(["topic", "stance", "x"])), junk),
            "all_targets": junk,
            "model_dir": junk,
        },
    )

    def dumps(value) -> bytes:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")

    raw = st.binary(max_size=300)
    body = st.one_of(
        request.map(dumps),
        junk.map(dumps),
        raw,
        raw.map(lambda b: b'{"articles": ["' + b + b'"]}'),  # invalid UTF-8 inside a string
        st.integers(1, 5000).map(lambda n: b'{"articles": ["x"], "threshold": 1' + b"0" * n + b"}"),
        st.integers(1, 3000).map(lambda d: b'{"articles": ' + b"[" * d + b"]" * d + b"}"),
        st.text(max_size=60).map(lambda t: t.encode("utf-16")),
    )
    header = st.binary(max_size=150).filter(lambda b: not set(b) & {0, 10, 13})
    key = f"Bearer {KEY_A}".encode()
    headers = st.fixed_dictionaries(
        {
            "authorization": st.one_of(st.just(key), st.just(key), st.just(key), header),
            "content-type": st.one_of(
                st.sampled_from(
                    [
                        b"application/json",
                        b"application/json; charset=latin-1",
                        b"text/plain",
                        b"application/x-www-form-urlencoded",
                        b"multipart/form-data; boundary=x",
                        b"",
                    ]
                ),
                header,
            ),
        },
        optional={"x-request-id": header, "accept": header, "x-forwarded-for": header},
    )
    return body, headers, st.sampled_from(["/v1/classify"] * 6 + ["/v1/model", "/metrics"])


def test_fuzzed_requests_never_get_a_500_or_a_traceback(client) -> None:
    from hypothesis import HealthCheck, given, settings

    body, headers, path = _fuzz_strategies()
    wait_ready(client)

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,  # the same examples every run: a failure reproduces
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=body, headers=headers, path=path)
    def check(body: bytes, headers: dict, path: str) -> None:
        response = client.post(path, content=body, headers=headers)
        assert response.status_code < 500, (body[:80], headers, response.text[:300])
        assert b"Traceback" not in response.content and b'File "' not in response.content
        if response.status_code >= 400:
            assert response.json()["request_id"] == response.headers["x-request-id"]

    check()

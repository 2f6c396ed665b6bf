"""Issue #31, the real ``naba serve``: public binds refused, TLS, keys, JSON logs, SIGHUP, SIGTERM.

One server (TLS, keys, JSON logs, SIGHUP, SIGTERM exit 0) runs in the fast
suite; SIGTERM under load and metrics over ``--workers 2`` are slow.
"""

from __future__ import annotations

import json
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

from test_service import KEY_A, KEY_B, TEXTS, _families, _value, auth  # noqa: E402


def test_naba_serve_refuses_a_public_bind_without_keys(
    trained_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from naba.cli import app

    monkeypatch.delenv("NABA_API_KEYS", raising=False)
    ran = []
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kwargs: ran.append(kwargs))
    refused = CliRunner().invoke(app, ["serve", str(trained_model), "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and ran == []
    assert refused.output.strip().splitlines() == [
        "error: --host 0.0.0.0: refusing to serve a non-loopback address without API keys; "
        "give --api-key-file FILE (or NABA_API_KEYS), or --no-auth when a proxy in front "
        "authenticates callers"
    ]
    monkeypatch.setenv("NABA_API_KEYS", KEY_A)
    served = CliRunner().invoke(
        app, ["serve", str(trained_model), "--host", "0.0.0.0", "--graceful-timeout", "7"]
    )
    assert served.exit_code == 0, served.output
    assert ran[-1]["host"] == "0.0.0.0" and ran[-1]["timeout_graceful_shutdown"] == 7
    assert ran[-1]["access_log"] is False  # naba's own access log, with request ids
    assert KEY_A not in served.output


def test_tls_needs_both_files(trained_model: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from naba.cli import app

    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    result = CliRunner().invoke(app, ["serve", str(trained_model), "--ssl-certfile", str(cert)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --ssl-certfile and --ssl-keyfile: give both (the certificate and its key) "
        "or neither"
    )


def test_a_missing_serve_extra_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    from typer.testing import CliRunner

    from naba.cli import app

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "prometheus_client" else real(name, *args),
    )
    result = CliRunner().invoke(app, ["serve", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: naba serve needs prometheus-client: pip install 'naba[serve]'"
    )


# ----------------------------------------------------------------------------- the real server

ENV = {
    **{k: v for k, v in os.environ.items() if k != "NABA_API_KEYS"},
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


def start(model: Path, log_path: Path, *options: str):
    """``naba serve MODEL --port 0 OPTIONS`` as a subprocess; its process and base URL."""
    import subprocess
    import sys

    args = [sys.executable, "-m", "naba", "serve", str(model), "--port", "0", *options]
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=ENV)
    deadline = time.monotonic() + 120
    while True:
        text = log_path.read_text(encoding="utf-8")
        match = re.search(r"running on (https?://127\.0\.0\.1:\d+)", text)
        if match:
            return proc, match.group(1)
        assert proc.poll() is None and time.monotonic() < deadline, text
        time.sleep(0.2)


def stop(proc) -> int:
    import subprocess

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, made here (no network, no CA)."""
    pytest.importorskip("cryptography")
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_naba_serve_over_tls_with_keys_json_logs_sighup_and_sigterm(
    trained_model: Path, tmp_path: Path
) -> None:
    import ssl

    import httpx

    cert, key = self_signed(tmp_path)
    keys = tmp_path / "keys.txt"
    keys.write_text(KEY_A + "\n")
    log_path = tmp_path / "server.log"
    proc, base = start(
        trained_model,
        log_path,
        *("--ssl-certfile", str(cert), "--ssl-keyfile", str(key)),
        *("--api-key-file", str(keys), "--log-format", "json"),
    )
    try:
        assert base.startswith("https://")
        trust = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(base_url=base, verify=trust, trust_env=False, timeout=60) as http:
            deadline = time.monotonic() + 60
            while http.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            body = {"articles": TEXTS}
            assert http.post("/v1/classify", json=body).status_code == 401
            answer = http.post(
                "/v1/classify", json=body, headers={**auth(KEY_A), "X-Request-ID": "tls-1"}
            )
            assert answer.status_code == 200 and answer.headers["x-request-id"] == "tls-1"
            assert len(answer.json()["results"]) == 3
            assert http.get("/metrics").status_code == 401
            scrape = http.get("/metrics", headers=auth(KEY_A))
            requests = _families(scrape.text)["naba_requests"]
            assert _value(requests, "naba_requests_total", route="/v1/classify", status="200") == 1
            # Rotate: the file now holds only the new key; SIGHUP makes it so.
            keys.write_text(KEY_B + "\n")
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while http.get("/v1/model", headers=auth(KEY_B)).status_code != 200:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            assert http.get("/v1/model", headers=auth(KEY_A)).status_code == 401
        with pytest.raises(httpx.TransportError):  # no plain HTTP on the TLS port
            httpx.get(base.replace("https://", "http://") + "/healthz", trust_env=False)
    finally:
        code = stop(proc)
    log = log_path.read_text(encoding="utf-8")
    assert code == 0, log  # SIGTERM: a clean exit
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]  # every line is JSON
    access = [line for line in lines if line.get("id") == "tls-1"]
    assert len(access) == 1
    assert {k: access[0][k] for k in ("method", "route", "status", "articles")} == {
        "method": "POST",
        "route": "/v1/classify",
        "status": 200,
        "articles": 3,
    }
    assert any("API keys reloaded: 1 in force" in line.get("message", "") for line in lines)
    assert KEY_A not in log and KEY_B not in log


@pytest.mark.slow
def test_sigterm_under_load_loses_no_accepted_request(trained_model: Path, tmp_path: Path) -> None:
    """SIGTERM while 8 clients keep sending: every request the server read got its 200, then exit 0.

    A request the server never read (its connection refused or closed once
    shutdown began) fails on the client side and is absent from the access
    log; no request is answered 5xx or left without an answer.
    """
    import httpx

    log_path = tmp_path / "server.log"
    # A long batch wait keeps requests in flight at any moment.
    proc, base = start(
        trained_model,
        log_path,
        *("--batch-wait-ms", "300", "--graceful-timeout", "60", "--log-format", "json"),
    )
    outcomes: dict[str, tuple[int | str, float, float]] = {}  # id -> (status or error, sent, done)
    lock = threading.Lock()
    stopping = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=base, trust_env=False, timeout=120) as http:
            for i in range(10_000):
                rid = f"c{worker}-{i}"
                sent = time.monotonic()
                try:
                    status: int | str = http.post(
                        "/v1/classify",
                        json={"articles": [TEXTS[i % 3]]},
                        headers={"X-Request-ID": rid},
                    ).status_code
                except httpx.TransportError as exc:
                    status = type(exc).__name__
                with lock:
                    outcomes[rid] = (status, sent, time.monotonic())
                if not isinstance(status, int):  # refused or closed: the server is gone
                    return

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while sum(isinstance(o[0], int) for o in list(outcomes.values())) < 24:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        term = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stopping.set()
        code = proc.wait(timeout=90)
    finally:
        stopping.set()
        code = stop(proc)
        for thread in threads:
            thread.join(timeout=60)
    log = log_path.read_text(encoding="utf-8")
    assert code == 0, log
    served = {
        line["id"]: line["status"]
        for line in map(json.loads, log.splitlines())
        if line.get("route") == "/v1/classify"
    }
    answered = {rid: o for rid, o in outcomes.items() if isinstance(o[0], int)}
    failed = {rid: o for rid, o in outcomes.items() if not isinstance(o[0], int)}
    assert {o[0] for o in answered.values()} == {200}, answered
    assert set(served) == set(answered) and set(served.values()) == {200}
    assert not set(failed) & set(served)  # what failed was never read by the server
    in_flight = [rid for rid, (_, sent, done) in answered.items() if sent < term < done]
    assert in_flight, "no request was in flight at SIGTERM: the test proved nothing"
    assert len(failed) <= len(threads)  # each client stops at its first refused connection


@pytest.mark.slow
def test_metrics_sum_over_workers(trained_model: Path, tmp_path: Path) -> None:
    """With --workers 2, whichever worker answers the scrape counts the requests of both."""
    import httpx

    keys = tmp_path / "keys.txt"
    keys.write_text(KEY_A + "\n")
    proc, base = start(
        trained_model, tmp_path / "server.log", "--workers", "2", "--api-key-file", str(keys)
    )
    try:
        seen: set[int] = set()
        sent = 0
        deadline = time.monotonic() + 180
        while len(seen) < 2 or sent < 6:
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            try:  # a new connection each time: the kernel picks the worker
                with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
                    seen.add(http.get("/healthz").json()["worker"])
                    answer = http.post(
                        "/v1/classify", json={"articles": [TEXTS[0]]}, headers=auth()
                    )
            except httpx.TransportError:  # the socket listens once a worker has its model
                time.sleep(0.2)
                continue
            assert answer.status_code == 200
            sent += 1
        counts = []
        for _ in range(6):
            with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
                scrape = http.get("/metrics", headers=auth())
            families = _families(scrape.text)
            counts.append(
                _value(
                    families["naba_requests"],
                    "naba_requests_total",
                    route="/v1/classify",
                    status="200",
                )
            )
            assert len(families["naba_model_info"].samples) >= 1
    finally:
        code = stop(proc)
    assert counts == [sent] * 6  # the sum over both workers, every time
    assert code == 0

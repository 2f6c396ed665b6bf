"""Load test for ``naba serve``: a bounded run of mixed requests from concurrent clients (loopback).

Starts ``naba serve MODEL`` as a real subprocess on 127.0.0.1 (a free port
the OS picks), sends exactly ``--requests`` requests from ``--clients``
threads (each takes the next request until none is left, so the run stops by
itself), and reports:

- status codes, per kind of request: short articles, long ones (~5,000
  characters), batches of several articles, and about 10% invalid ones (bad
  JSON, a missing text, wrong types, an empty batch, a text over the limit, a
  body over the limit);
- the API key at work: the server runs with a key (``NABA_API_KEYS``) and about
  5% of the requests, valid or not, are sent without it: each must be a 401;
- latency p50/p99 (client side, send to last byte);
- the server's peak RSS (``VmHWM``) and its RSS sampled after the first 100
  requests and after the last: memory that grows across the run shows there.

::

    .venv/bin/python bench/serve_load.py    # trains a tiny model first (about a minute)
    .venv/bin/python bench/serve_load.py --model runs/ant-e5-2000 --requests 1000 --clients 16

Exit status 0 when there was no 5xx, every keyless request was answered 401,
every other invalid one 4xx and every other valid one 200; 1 otherwise.
``tests/test_reliability.py`` runs a smaller version against the test suite's tiny model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"

# The limits the server runs with: a 2 MB body limit keeps the "too large" requests cheap to send.
MAX_BODY_BYTES = 2_000_000
MAX_TEXT_CHARS = 20_000
MAX_BATCH = 16


@dataclass(frozen=True)
class Request:
    kind: str  # short, long, batch, or invalid-*
    body: bytes
    content_type: str = "application/json"
    keyed: bool = True  # sent with the API key

    @property
    def valid(self) -> bool:
        return not self.kind.startswith("invalid")


@dataclass
class Outcome:
    kind: str
    valid: bool
    status: int  # 0: no answer (connection error)
    seconds: float
    keyed: bool = True


@dataclass
class Report:
    requests: int
    clients: int
    wall_s: float
    outcomes: list[Outcome]
    rss_after_warmup_mb: float
    rss_end_mb: float
    peak_rss_mb: float
    rss_samples: list[tuple[int, float]] = field(default_factory=list)  # (requests done, RSS MB)
    health: dict[str, Any] = field(default_factory=dict)
    metrics: str = ""  # the /metrics text after the run

    @property
    def server_errors(self) -> int:
        return sum(1 for o in self.outcomes if o.status >= 500 or o.status == 0)

    @property
    def keyless_not_401(self) -> int:
        return sum(1 for o in self.outcomes if not o.keyed and o.status != 401)

    @property
    def invalid_not_4xx(self) -> int:
        return sum(
            1 for o in self.outcomes if o.keyed and not o.valid and not 400 <= o.status < 500
        )

    @property
    def valid_not_200(self) -> int:
        return sum(1 for o in self.outcomes if o.keyed and o.valid and o.status != 200)

    @property
    def ok(self) -> bool:
        return (
            self.server_errors == 0
            and self.keyless_not_401 == 0
            and self.invalid_not_4xx == 0
            and self.valid_not_200 == 0
        )


# ----------------------------------------------------------------------------- requests


def _texts() -> list[str]:
    rows = [
        json.loads(line)
        for line in (SAMPLE / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return [r["text"] for r in rows]


def make_requests(n: int, seed: int = 13, keyless: float = 0.05) -> list[Request]:
    """``n`` requests in a seeded random mix: ~50% short, ~15% long, ~25% batches, ~10% invalid;
    a ``keyless`` share of them, drawn apart from the mix, is sent without the API key."""
    rng = random.Random(seed)
    without_key = random.Random(seed + 1)
    texts = _texts()
    pool = " ".join(texts)

    def short() -> str:
        return rng.choice(texts)[: rng.randint(40, 600)]

    def long() -> str:
        start = rng.randrange(0, len(pool) - 6000)
        return pool[start : start + rng.randint(4500, 5500)]

    def body(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False).encode("utf-8")

    invalid = {  # kind -> body; rng.choice over the kinds, in this order
        "json": lambda: b'{"articles": ["' + short().encode() + b'"',
        "missing-text": lambda: body({"articles": [{"id": "x", "title": short()}]}),
        "type": lambda: body({"articles": [{"text": 123}], "threshold": "high"}),
        "empty": lambda: body({"articles": []}),
        "text-too-long": lambda: body({"articles": ["ن" * (MAX_TEXT_CHARS + 1)]}),
        "too-many": lambda: body({"articles": [short()] * (MAX_BATCH + 1)}),
        "body-too-large": lambda: b'{"articles": ["' + b"a" * (MAX_BODY_BYTES + 10) + b'"]}',
        "not-json": lambda: body({"articles": [short()]}),
    }
    requests = []
    for i in range(n):
        roll = rng.random()
        if roll < 0.10:
            kind = rng.choice(list(invalid))
            content_type = "text/plain" if kind == "not-json" else "application/json"
            requests.append(Request(f"invalid-{kind}", invalid[kind](), content_type))
        elif roll < 0.60:
            requests.append(
                Request("short", body({"articles": [{"id": f"s{i}", "text": short()}]}))
            )
        elif roll < 0.75:
            requests.append(Request("long", body({"articles": [{"id": f"l{i}", "text": long()}]})))
        else:
            k = rng.randint(2, 8)
            requests.append(
                Request(
                    "batch",
                    body(
                        {
                            "articles": [short() if j % 3 else long() for j in range(k)],
                            **({"targets": ["الطاقة النووية"]} if rng.random() < 0.3 else {}),
                        }
                    ),
                )
            )
        if without_key.random() < keyless:
            requests[-1] = Request(**{**requests[-1].__dict__, "keyed": False})
    return requests


# ----------------------------------------------------------------------------- server


def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return float("nan")


def start_server(
    model: Path, log_path: Path, key: str, timeout: float = 300
) -> tuple[subprocess.Popen, str]:
    """``naba serve`` on 127.0.0.1 and a port the OS picks, requiring
    ``key``; the process and its URL."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "NABA_API_KEYS": key,
    }
    args = [
        sys.executable,
        "-m",
        "naba",
        "serve",
        str(model),
        "--port",
        "0",
        "--max-body-bytes",
        str(MAX_BODY_BYTES),
        "--max-text-chars",
        str(MAX_TEXT_CHARS),
        "--max-batch-size",
        str(MAX_BATCH),
    ]  # no --host: the default is loopback
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(encoding="utf-8", errors="replace")
        match = re.search(r"running on (http://[^:/]+:\d+)", text)
        if match:
            return proc, match.group(1)
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"naba serve did not start:\n{text[-3000:]}")
        time.sleep(0.2)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- the run


def run_load(
    model: Path, requests: int = 1000, clients: int = 16, seed: int = 13, work: Path | None = None
) -> Report:
    """Serve ``model``, send the requests, stop the server; the measurements."""
    import httpx

    work = work or ROOT / "runs" / "bench" / "serve-load"
    work.mkdir(parents=True, exist_ok=True)
    plan = make_requests(requests, seed)
    key = secrets.token_hex(32)
    keyed = {"Authorization": f"Bearer {key}"}
    proc, base = start_server(model, work / "server.log", key)
    outcomes: list[Outcome | None] = [None] * len(plan)
    done = 0
    lock = threading.Lock()
    next_index = iter(range(len(plan)))
    samples: list[tuple[int, float]] = []
    finished = threading.Event()

    def client() -> None:
        nonlocal done
        # trust_env=False: loopback traffic never goes through a proxy from the environment.
        with httpx.Client(base_url=base, trust_env=False, timeout=300) as http:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                request = plan[i]
                started = time.perf_counter()
                try:
                    status = http.post(
                        "/v1/classify",
                        content=request.body,
                        headers={
                            "content-type": request.content_type,
                            **(keyed if request.keyed else {}),
                        },
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                outcomes[i] = Outcome(
                    request.kind,
                    request.valid,
                    status,
                    time.perf_counter() - started,
                    request.keyed,
                )
                with lock:
                    done += 1

    def sampler() -> None:
        while not finished.is_set():
            with lock:
                count = done
            samples.append((count, _rss_mb(proc.pid)))
            finished.wait(0.05)

    try:
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
            http.post(
                "/v1/classify", json={"articles": ["إحماء"]}, headers=keyed
            ).raise_for_status()  # load lazily-built state before timing
        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        started = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        finished.set()
        watcher.join()
        end_rss = _rss_mb(proc.pid)
        peak = _rss_mb(proc.pid, "VmHWM")
        with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
            health = http.get("/healthz").json()
            metrics = http.get("/metrics", headers=keyed).text
    finally:
        finished.set()
        stop_server(proc)
    warm = min(100, requests)
    after_warmup = next((rss for count, rss in samples if count >= warm), end_rss)
    return Report(
        requests,
        clients,
        wall,
        [o for o in outcomes if o is not None],
        after_warmup,
        end_rss,
        peak,
        samples,
        health,
        metrics,
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def table(report: Report) -> str:
    """A Markdown table: per kind of request, count, status codes, p50 and p99 latency."""
    kinds: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in report.outcomes:
        group = "keyless" if not outcome.keyed else "invalid" if not outcome.valid else outcome.kind
        kinds[group].append(outcome)
        kinds["all"].append(outcome)
    lines = ["| requests | n | status codes | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for kind in ("short", "long", "batch", "invalid", "keyless", "all"):
        group = kinds.get(kind, [])
        if not group:
            continue
        codes = ", ".join(
            f"{code} x{n}" for code, n in sorted(Counter(o.status for o in group).items())
        )
        ms = [o.seconds * 1000 for o in group]
        lines.append(
            f"| {kind} | {len(group)} | {codes} | {_percentile(ms, 0.5):.0f} | "
            f"{_percentile(ms, 0.99):.0f} |"
        )
    return "\n".join(lines)


def summary(report: Report) -> str:
    invalid = Counter(o.kind for o in report.outcomes if not o.valid and o.keyed)
    return "\n".join(
        [
            table(report),
            "",
            f"{report.requests} requests from {report.clients} clients in {report.wall_s:.1f} s "
            f"({report.requests / report.wall_s:.1f} requests/s); server: {report.health}",
            "invalid requests: "
            + ", ".join(f"{k.removeprefix('invalid-')} {n}" for k, n in sorted(invalid.items())),
            f"server RSS: {report.rss_after_warmup_mb:.0f} MB after the first "
            f"{min(100, report.requests)} requests, "
            f"{report.rss_end_mb:.0f} MB after the last; peak (VmHWM) {report.peak_rss_mb:.0f} MB",
            f"5xx or no answer: {report.server_errors}; keyless not answered 401: "
            f"{report.keyless_not_401}; invalid not answered 4xx: {report.invalid_not_4xx}; "
            f"valid not answered 200: {report.valid_not_200}",
        ]
    )


# ------------------------------------------------------------------ a tiny model when none is given


def tiny_model(work: Path) -> Path:
    """Train (once, then reuse) a tiny topic+stance model on the sample data."""
    model = work / "tiny-model"
    if (model / "naba.json").exists():
        return model
    naba = [sys.executable, "-m", "naba", "-q"]
    encoder = work / "tiny-encoder"
    if not (encoder / "config.json").exists():
        subprocess.run(
            [
                *naba,
                "encoder",
                "tiny",
                "--corpus",
                str(SAMPLE / "articles.jsonl"),
                "--corpus",
                str(SAMPLE / "stance_pairs.jsonl"),
                "-o",
                str(encoder),
                "--layers",
                "2",
                "--hidden",
                "32",
                "--heads",
                "2",
                "--vocab-size",
                "2000",
                "--overwrite",
            ],
            check=True,
        )
    config = work / "tiny.yaml"
    tasks = {
        t: {s: str(SAMPLE / t / f"{s}.jsonl") for s in ("train", "dev", "test")}
        for t in ("topic", "stance")
    }
    config.write_text(
        json.dumps(
            {
                "seed": 13,
                "tasks": tasks,
                "model": {
                    "base": str(encoder),
                    "window": {"length": 64, "stride": 16, "max_windows": 4},
                },
                "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3},
            }
        ),
        encoding="utf-8",
    )
    subprocess.run(
        [*naba, "train", str(config), "-o", str(model), "--overwrite", "--no-progress"], check=True
    )
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        type=Path,
        help="model directory (default: a tiny model trained on the sample data)",
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "runs" / "bench" / "serve-load",
        help="logs and the tiny model",
    )
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = args.model or tiny_model(args.work)
    report = run_load(model, args.requests, args.clients, args.seed, args.work)
    print(f"model: {model}")
    print(summary(report))
    if args.json:
        ms = [o.seconds * 1000 for o in report.outcomes]
        measured = {
            "model": str(model),
            **{k: getattr(report, k) for k in ("requests", "clients", "health", "ok")},
            "wall_s": round(report.wall_s, 2),
            "status": dict(Counter(str(o.status) for o in report.outcomes)),
            "p50_ms": round(_percentile(ms, 0.5), 1),
            "p99_ms": round(_percentile(ms, 0.99), 1),
            **{k: round(getattr(report, k), 1) for k in ("rss_after_warmup_mb", "rss_end_mb")},
            "peak_rss_mb": round(report.peak_rss_mb, 1),
            "keyless": sum(not o.keyed for o in report.outcomes),
            "keyless_not_401": report.keyless_not_401,
        }
        args.json.write_text(json.dumps(measured, indent=2), encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

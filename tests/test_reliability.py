"""Issue #7: crash safety (kill -9, atomic writes), safe loading, and the service under load.

Bad input has its own module (test_badinput.py). The kill -9 and load tests
are slow (``-m slow``); the others run in the fast suite. No assertion here
depends on timing: kills are triggered by progress, not by the clock.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE
from naba.errors import ModelDirError

ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}


# ---------------------------------------------------------------------- crash safety: atomic writes


def test_atomic_dir_interrupted_by_an_error_leaves_nothing(tmp_path: Path) -> None:
    from naba.atomic import atomic_dir

    with pytest.raises(RuntimeError, match="boom"), atomic_dir(tmp_path / "model") as tmp:
        (tmp / "naba.json").write_text("{}", encoding="utf-8")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_a_directory_only_when_complete(tmp_path: Path) -> None:
    from naba.atomic import INCOMPLETE, atomic_dir

    target = tmp_path / "report"
    with atomic_dir(target) as tmp:
        (tmp / "metrics.json").write_text("old", encoding="utf-8")
    assert sorted(p.name for p in target.iterdir()) == [
        "metrics.json"
    ]  # the marker goes once in place
    with pytest.raises(KeyboardInterrupt), atomic_dir(target, overwrite=True) as tmp:
        assert (tmp / INCOMPLETE).exists()
        (tmp / "metrics.json").write_text("new", encoding="utf-8")
        raise KeyboardInterrupt
    assert (target / "metrics.json").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


KILL_INSIDE_ATOMIC_DIR = """
import os, shutil, signal, sys
from naba.atomic import atomic_dir
with atomic_dir(sys.argv[2]) as tmp:
    shutil.copytree(sys.argv[1], tmp, dirs_exist_ok=True)  # a whole model, naba.json and all
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies before the rename
"""


def test_kill_during_a_model_directory_write_leaves_nothing_that_loads(
    trained_model: Path, tmp_path: Path
) -> None:
    from naba.infer.classifier import Classifier

    out = tmp_path / "model"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_INSIDE_ATOMIC_DIR, str(trained_model), str(out)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    [leftover] = list(tmp_path.iterdir())  # the temporary directory, complete but for the rename
    assert leftover.name.startswith(".model.") and (leftover / "naba.json").exists()
    with pytest.raises(
        ModelDirError,
        match=re.escape(
            f"{leftover}: incomplete (a write into it was interrupted); "
            "rerun the command that wrote it"
        ),
    ):
        Classifier.load(leftover)


def test_a_training_work_directory_does_not_load(trained_model: Path, tmp_path: Path) -> None:
    # What `kill -9` of `naba train` leaves: OUT.partial with checkpoints,
    # but no naba.json until assembly.
    from naba.infer.classifier import Classifier

    work = tmp_path / "model.partial"
    (work / "topic" / "checkpoint").mkdir(parents=True)
    (work / "config.yaml").write_text("seed: 13\n", encoding="utf-8")
    with pytest.raises(
        ModelDirError,
        match=re.escape(f"{work}/naba.json: missing; {work} is not a naba model directory"),
    ):
        Classifier.load(work)


# --------------------------------------------------------------- crash safety: kill -9 and --resume


def _predict_input(tmp_path: Path) -> Path:
    """~720 articles with a few bad rows between them (so the error
    records must come out identical too)."""
    rows = [
        json.loads(line)
        for line in (SAMPLE / "articles.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    lines = []
    for k in range(3):
        for i, r in enumerate(rows):
            lines.append(
                json.dumps(
                    {"id": f"{k}-{r['id']}", "title": r["title"], "text": r["text"]},
                    ensure_ascii=False,
                )
            )
            if i % 97 == 13:
                lines.append(f'{{"id": "broken-{k}-{i}", "text": ')
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; fail if it finished first."""
    deadline = time.monotonic() + 600  # a safety net for a hung process, not a measurement
    while proc.poll() is None and not ready():
        assert time.monotonic() < deadline, f"{what}: never reached"
        time.sleep(0.01)
    assert proc.poll() is None, (
        f"finished before the kill ({what}): " + proc.stderr.read().decode()[-2000:]
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _rows_done(progress: Path) -> int:
    try:
        return json.loads(progress.read_text(encoding="utf-8")).get("rows", 0)
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


@pytest.mark.slow
def test_kill_9_predict_at_random_points_then_resume_gives_identical_output(
    trained_model: Path, tmp_path: Path
) -> None:
    source = _predict_input(tmp_path)
    total = len(source.read_text(encoding="utf-8").splitlines())
    args = [
        sys.executable,
        "-m",
        "naba",
        "-q",
        "predict",
        str(trained_model),
        str(source),
        "--chunk-size",
        "16",
        "--no-progress",
    ]
    clean = subprocess.run(
        [*args, "-o", str(tmp_path / "clean.jsonl")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert clean.returncode == 1, clean.stderr  # the broken rows
    rng = random.Random(7)
    # Kill points: before any chunk is done (during start-up or the first chunk), then after a
    # random number of rows; the last trial kills twice, the second time during the resumed run.
    trials = [
        [None],
        [rng.randrange(16, total // 2)],
        [rng.randrange(total // 2, total - 32)],
        sorted(rng.sample(range(16, total - 32), 2)),
    ]
    for trial, kills in enumerate(trials):
        out = tmp_path / f"trial{trial}.jsonl"
        progress = out.with_name(out.name + ".progress.json")
        partial = out.with_name(out.name + ".partial")
        for n, after in enumerate(kills):
            proc = subprocess.Popen(
                [*args, "-o", str(out), *(["--resume"] if n else [])],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            if after is None:
                _kill_when(proc, partial.exists, "the partial output was created")
            else:
                _kill_when(
                    proc, lambda p=progress, n=after: _rows_done(p) >= n, f"{after} rows done"
                )
            assert (
                not out.exists()
            )  # never a file under the output's name until the run is complete
            assert not out.with_name(f"trial{trial}.errors.jsonl").exists()
        resumed = subprocess.run(
            [*args, "-o", str(out), "--resume"],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert resumed.returncode == 1, resumed.stderr
        assert out.read_bytes() == (tmp_path / "clean.jsonl").read_bytes(), (
            f"trial {trial}, kills after {kills}"
        )
        errors = out.with_name(f"trial{trial}.errors.jsonl")
        assert errors.read_bytes() == (tmp_path / "clean.errors.jsonl").read_bytes()
        assert not progress.exists() and not partial.exists()


# ----------------------------------------------------------------------------- safe loading


def test_server_binds_loopback_by_default(
    trained_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer.main
    import uvicorn
    from typer.testing import CliRunner

    from naba.cli import app
    from naba.serve.server import serve

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    params = {p.name: p for p in typer.main.get_command(app).commands["serve"].params}
    assert params["host"].default == "127.0.0.1"
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kwargs: seen.update(kwargs))
    result = CliRunner().invoke(app, ["serve", str(trained_model)])
    assert result.exit_code == 0, result.output
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8000)


def test_binding_another_address_needs_keys_or_no_auth(
    trained_model: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    import uvicorn

    from naba.errors import NabaError
    from naba.serve.process import ServerOptions
    from naba.serve.server import serve

    monkeypatch.delenv("NABA_API_KEYS", raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda app_, **kwargs: None)
    with pytest.raises(NabaError, match=re.escape("--host 0.0.0.0: refusing to serve")):
        serve(trained_model, "0.0.0.0")
    with caplog.at_level("WARNING", logger="naba.serve.security"):
        serve(trained_model, "0.0.0.0", options=ServerOptions(no_auth=True))
    assert "binding 0.0.0.0 with --no-auth: anyone who can reach this address" in caplog.text


def test_requests_cannot_name_paths(trained_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import io

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from naba.infer.classifier import Classifier
    from naba.serve.app import create_app

    with TestClient(
        create_app(Classifier.load(trained_model)), raise_server_exceptions=False
    ) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        request = next(v for k, v in schema.items() if k.startswith("ClassifyRequest"))
        assert set(request["properties"]) == {
            "articles",
            "targets",
            "all_targets",
            "tasks",
            "threshold",
            "explain",
        }
        assert set(schema["ArticleIn"]["properties"]) == {"id", "title", "text", "target"}
        # A path-like key at the top level is refused, inside an article
        # ignored; nothing on disk is opened.
        opened: list[str] = []
        for module, name in ((builtins, "open"), (io, "open"), (os, "open")):
            real = getattr(module, name)
            monkeypatch.setattr(
                module,
                name,
                lambda path, *a, _real=real, **k: (opened.append(str(path)), _real(path, *a, **k))[
                    1
                ],
            )
        refused = client.post(
            "/v1/classify", json={"articles": ["نص"], "model_dir": "/etc", "path": "/etc/passwd"}
        )
        answered = client.post(
            "/v1/classify",
            json={
                "articles": [
                    {
                        "text": "/etc/passwd",
                        "path": "/etc/passwd",
                        "file": "/etc/hosts",
                        "model": str(trained_model),
                    }
                ]
            },
        )
        monkeypatch.undo()
    assert refused.status_code == 422
    assert {e["loc"][-1] for e in refused.json()["detail"]} == {"model_dir", "path"}
    assert answered.status_code == 200 and "root:" not in answered.text
    assert opened == []


def test_trust_remote_code_is_never_enabled(
    trained_model: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import transformers

    from naba.infer.classifier import Classifier

    # Every mention in the source sets it to False ...
    for path in (ROOT / "src" / "naba").rglob("*.py"):
        for match in re.finditer(
            r"trust_remote_code[\"']?\s*[=:]\s*(\w+)", path.read_text(encoding="utf-8")
        ):
            assert match.group(1) == "False", f"{path}: {match.group(0)}"
    # ... and every from_pretrained call naba makes passes it as False or not at all
    # (transformers' default is False).
    calls: list[dict] = []
    for name in (
        "AutoTokenizer",
        "AutoModelForSequenceClassification",
        "AutoConfig",
        "AutoModel",
        "AutoModelForMaskedLM",
    ):
        cls = getattr(transformers, name)
        real = cls.from_pretrained.__func__

        def spy(klass, *args, _real=real, **kwargs):
            calls.append(kwargs)
            return _real(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    Classifier.load(trained_model)
    from conftest import write_config
    from naba.config import load_config
    from naba.train.data import TaskData
    from naba.train.task_inputs import load_base_model

    config = load_config(
        write_config(tmp_path / "trust.yaml", tiny_encoder, {"topic": {"train": "x.jsonl"}})
    )
    load_base_model(config, TaskData(task="topic", labels=["a", "b"], multi_label=False, splits={}))
    assert len(calls) >= 6
    assert all(call.get("trust_remote_code", False) is False for call in calls), calls


@pytest.mark.parametrize("command", ["train", "pretrain", "predict", "evaluate", "serve"])
def test_pickle_is_off_unless_asked(command: str) -> None:
    import typer.main

    from naba.cli import app

    params = {p.name: p for p in typer.main.get_command(app).commands[command].params}
    assert params["allow_pickle"].default is False
    assert params["allow_pickle"].opts == ["--allow-pickle"]


def test_pickle_weights_are_refused_by_the_loader(tmp_path: Path, tiny_encoder: Path) -> None:
    import shutil

    import torch
    from safetensors.torch import load_file

    from naba.hub import check_local_weights, load_kwargs

    base = tmp_path / "pickled"
    shutil.copytree(tiny_encoder, base)
    torch.save(load_file(str(base / "model.safetensors")), base / "pytorch_model.bin")
    (base / "model.safetensors").unlink()
    message = (
        f"{base}: has only pickle weights (pytorch_model.bin), which can run code when loaded; "
        "convert them to safetensors, or pass --allow-pickle if you trust the source"
    )
    with pytest.raises(ModelDirError, match=re.escape(message)):
        check_local_weights(base, allow_pickle=False)
    check_local_weights(base, allow_pickle=True)
    assert load_kwargs(str(base), allow_pickle=True) == {"trust_remote_code": False}
    assert load_kwargs(str(tiny_encoder), allow_pickle=False) == {
        "trust_remote_code": False,
        "use_safetensors": True,
    }


# --------------------------------------------------------------------------- the service under load


@pytest.mark.slow
def test_service_under_load(trained_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("httpx")
    sys.path.insert(0, str(ROOT / "bench"))
    from serve_load import run_load, summary

    report = run_load(trained_model, requests=200, clients=8, seed=13, work=tmp_path)
    print(summary(report))
    assert len(report.outcomes) == 200
    assert report.server_errors == 0
    assert report.invalid_not_4xx == 0 and sum(not o.valid for o in report.outcomes) >= 10
    assert report.valid_not_200 == 0
    assert report.keyless_not_401 == 0 and sum(not o.keyed for o in report.outcomes) >= 4
    # The server's own count of 401s (GET /metrics after the run) agrees with the clients'.
    from prometheus_client.parser import text_string_to_metric_families

    unauthorised = sum(
        s.value
        for family in text_string_to_metric_families(report.metrics)
        for s in family.samples
        if s.name == "naba_requests_total" and s.labels.get("status") == "401"
    )
    assert unauthorised == sum(not o.keyed for o in report.outcomes)
    assert (
        report.health["requests"] == sum(o.valid and o.keyed for o in report.outcomes) + 1
    )  # + the warm-up request
    # Memory does not grow across the run (a generous bound: allocator noise is tens of MB).
    assert report.rss_end_mb < report.rss_after_warmup_mb * 1.25 + 50, (
        report.rss_after_warmup_mb,
        report.rss_end_mb,
    )
    assert "running on http://127.0.0.1:" in (tmp_path / "server.log").read_text(encoding="utf-8")

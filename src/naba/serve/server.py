"""Running the service: :func:`serve` loads a model and runs uvicorn, in one process or several.

With ``workers`` above 1, uvicorn starts that many processes sharing the port;
each calls :func:`worker_app`, which reads what to load from the
``NABA_SERVE_WORKER`` environment variable, claims a slot (its index, and with
several GPUs its GPU) and builds its own app (:func:`naba.serve.app.create_app`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from naba.errors import NabaError
from naba.serve.app import ServeSettings, create_app
from naba.serve.process import ServerOptions, multiprocess_metrics, reload_on_sighup
from naba.serve.security import ApiKeys, check_bind

if TYPE_CHECKING:
    from fastapi import FastAPI

WORKER_ENV = "NABA_SERVE_WORKER"  # naba serve --workers N: what each worker process loads (JSON)


def _claim_slot(directory: Path, workers: int) -> int:
    """This worker's index in ``0 .. workers - 1``: the first slot file it creates (a dead worker's
    slot is taken over)."""
    for attempt in range(2):
        for slot in range(workers):
            path = directory / f"worker-{slot}"
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if attempt == 1 and not _alive(int(path.read_text(encoding="utf-8") or 0)):
                    path.write_text(
                        str(os.getpid()), encoding="utf-8"
                    )  # a restarted worker takes the dead one's slot
                    return slot
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(str(os.getpid()))
            return slot
    return os.getpid() % workers


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return pid > 0


def worker_device(device: str | None, slot: int) -> str | None:
    """One model per GPU: under ``auto`` or ``cuda`` with several GPUs, worker ``k`` takes ``cuda:(k
    mod GPUs)``."""
    import torch

    name = (device or "auto").strip().lower()
    if name in ("auto", "cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        return f"cuda:{slot % torch.cuda.device_count()}"
    return device


def worker_app() -> FastAPI:
    """The app of one ``naba serve --workers N`` process; uvicorn calls it in each worker (settings
    in ``NABA_SERVE_WORKER``)."""
    import torch

    from naba.infer.classifier import Classifier
    from naba.serve.logs import configure_logging

    spec = json.loads(os.environ[WORKER_ENV])
    configure_logging(spec["log_format"], spec["log_level"])  # a new interpreter: no logging yet
    slot = _claim_slot(Path(spec["slots"]), spec["workers"])
    torch.set_num_threads(spec["threads"])
    classifier = Classifier.load(
        spec["model_dir"],
        spec["precision"],
        allow_pickle=spec["allow_pickle"],
        device=worker_device(spec["device"], slot),
        runtime=spec.get("runtime", "auto"),
        threads=spec["threads"],
    )
    keys = ApiKeys.from_sources(spec["api_key_file"])  # read as each worker starts (SIGHUP)
    app = create_app(classifier, ServeSettings(**spec["settings"]), keys=keys)
    app.state.worker = slot
    return app


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    precision: str = "fp32",
    device: str | None = "auto",
    settings: ServeSettings | None = None,
    allow_pickle: bool = False,
    workers: int = 1,
    threads: int | None = None,
    options: ServerOptions | None = None,
    runtime: str = "auto",
) -> None:
    """Load a model directory and serve it over HTTP until SIGTERM or SIGINT (then exit cleanly).

    Args:
        model_dir: The directory ``naba train`` wrote.
        host: Interface to bind; loopback by default. Another address needs API keys
            (``options.api_key_file`` or ``NABA_API_KEYS``) or ``options.no_auth``.
        port: TCP port (0: any free port).
        precision: ``fp32``, ``bf16`` or ``int8``.
        settings: Limits and batching.
        allow_pickle: Allow pickle weights (never needed for naba's own models).
        workers: Processes sharing the port, each with its own copy of the model (and, with
            several GPUs, its own GPU: worker ``k`` takes ``cuda:(k mod GPUs)``); the kernel
            hands each connection to one of them. Micro-batching works within a process.
        threads: torch threads per process (default: the cores divided among the workers);
            ONNX Runtime's intra-op threads too under ``runtime="onnx"``.
        options: API keys, TLS, graceful shutdown, log format (:class:`ServerOptions`).
        runtime: ``torch``, ``onnx`` or ``auto`` (see :meth:`Classifier.load`).

    Raises:
        ModelDirError: the model directory cannot be loaded.
        NabaError: invalid settings or key file, or a public address without keys.
    """
    import uvicorn

    from naba.infer.classifier import Classifier

    settings = settings or ServeSettings()
    options = options or ServerOptions()
    keys = ApiKeys.from_sources(options.api_key_file)
    check_bind(host, keys, options.no_auth)
    threads = _process_threads(workers, threads)
    # Loaded here even with workers: a model that cannot load fails now, with its error,
    # not in a worker restart loop.
    classifier = Classifier.load(
        model_dir,
        precision,  # type: ignore[arg-type]
        allow_pickle=allow_pickle,
        device=device,
        runtime=runtime,
        threads=threads,
    )
    if workers == 1:
        app = create_app(classifier, settings, keys=keys)
        with reload_on_sighup(keys):
            uvicorn.run(app, host=host, port=port, **options.uvicorn_kwargs(workers))
        return
    del classifier
    spec = {
        "model_dir": str(model_dir),
        "precision": precision,
        "device": device,
        "allow_pickle": allow_pickle,
        "settings": asdict(settings),
        "workers": workers,
        "threads": threads,
        "runtime": runtime,
        "api_key_file": options.api_key_file,
        "log_format": options.log_format,
        "log_level": logging.getLogger().getEffectiveLevel(),
    }
    _run_workers(spec, host, port, options)


def _process_threads(workers: int, threads: int | None) -> int | None:
    """The torch threads of each process, set for this one: ``threads``, or the cores divided
    among several workers (None: torch's default).

    Raises:
        NabaError: fewer than one worker.
    """
    if workers < 1:
        raise NabaError(f"workers: expected 1 or more processes, found {workers}")
    if threads is None and workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return threads


def _run_workers(spec: dict[str, Any], host: str, port: int, options: ServerOptions) -> None:
    """Run ``spec["workers"]`` uvicorn worker processes, each loading what ``spec`` names."""
    import tempfile

    import uvicorn

    with tempfile.TemporaryDirectory(prefix="naba-serve-") as slots:
        os.environ[WORKER_ENV] = json.dumps({**spec, "slots": slots})
        with multiprocess_metrics(Path(slots) / "metrics"):
            uvicorn.run(
                "naba.serve.server:worker_app",
                host=host,
                port=port,
                **options.uvicorn_kwargs(spec["workers"]),
            )

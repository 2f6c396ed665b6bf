"""How ``naba serve`` runs under uvicorn: TLS, signals, graceful shutdown, multiprocess metrics.

- **SIGTERM** (a rolling deploy) and SIGINT: uvicorn stops accepting
  connections at once, lets the requests in flight finish (at most
  ``graceful_timeout`` seconds; past that they are cancelled), runs the app's
  shutdown (the batcher finishes its round) and ``naba serve`` exits 0.
  A connection that was never read gets no answer, so a client may retry it
  elsewhere; a request that was read gets its answer.
- **SIGHUP** re-reads ``--api-key-file``. With ``--workers N`` uvicorn's
  supervisor replaces the workers one by one instead, and each new worker
  reads the file as it starts: the same effect, without dropping a request.
- **TLS**: ``ssl_certfile`` and ``ssl_keyfile`` go to uvicorn as they are.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naba.errors import NabaError
from naba.serve.security import ApiKeys

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """How the server runs, as opposed to what it serves (:class:`naba.serve.app.ServeSettings`).

    Args:
        api_key_file: One API key per line (see :mod:`naba.serve.security`); re-read on SIGHUP.
        no_auth: Serve a non-loopback address without keys (a proxy authenticates).
        ssl_certfile: PEM certificate (chain) for HTTPS.
        ssl_keyfile: PEM private key of the certificate.
        graceful_timeout: Seconds in-flight requests get to finish after SIGTERM.
        log_format: ``text`` or ``json`` (one JSON object per line).

    Raises:
        NabaError: one TLS file without the other, a file that does not exist, a
            negative timeout, an unknown log format.
    """

    api_key_file: str | None = None
    no_auth: bool = False
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    graceful_timeout: float = 20.0
    log_format: str = "text"

    def __post_init__(self) -> None:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise NabaError(
                "--ssl-certfile and --ssl-keyfile: give both (the certificate and its key) "
                "or neither"
            )
        for name in ("ssl_certfile", "ssl_keyfile", "api_key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise NabaError(f"--{name.replace('_', '-')} {path}: file not found")
        if not self.graceful_timeout >= 0:
            raise NabaError(
                f"graceful_timeout: expected 0 or more seconds, found {self.graceful_timeout!r}"
            )
        if self.log_format not in ("text", "json"):
            raise NabaError(f"log_format: expected text or json, found {self.log_format!r}")

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_certfile else "http"

    def uvicorn_kwargs(self, workers: int) -> dict[str, Any]:
        """What ``uvicorn.run`` takes besides the app, host and port."""
        kwargs: dict[str, Any] = {
            # log_config=None: uvicorn's records go through the logging the CLI configured.
            "log_config": None,
            # naba's own access log (naba.serve.logs) carries the request id and articles.
            "access_log": False,
            "timeout_graceful_shutdown": self.graceful_timeout,
        }
        if self.ssl_certfile:
            kwargs.update(ssl_certfile=self.ssl_certfile, ssl_keyfile=self.ssl_keyfile)
        if workers > 1:
            # A replacement worker (SIGHUP) loads its model before it answers the supervisor.
            kwargs.update(factory=True, workers=workers, timeout_worker_healthcheck=120)
        return kwargs


@contextmanager
def reload_on_sighup(keys: ApiKeys | None) -> Iterator[None]:
    """While serving in this process, SIGHUP re-reads the key file (on a thread: no I/O in the
    handler)."""
    if (
        keys is None
        or keys.file is None
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def handler(signum: int, frame: object) -> None:
        threading.Thread(target=keys.reload, name="naba-keys-reload", daemon=True).start()

    previous = signal.signal(signal.SIGHUP, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@contextmanager
def multiprocess_metrics(directory: Path) -> Iterator[None]:
    """Point prometheus-client's multiprocess mode at ``directory`` unless the environment already
    does."""
    from naba.serve.metrics import MULTIPROC_ENV

    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)

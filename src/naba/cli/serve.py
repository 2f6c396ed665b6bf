"""``naba serve``: the HTTP service."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from naba.cli._common import (
    ALLOW_PICKLE_HELP,
    PRECISION_HELP,
    DeviceOption,
    PrecisionName,
    RuntimeName,
    RuntimeOption,
    app,
    err,
    quiet_libraries,
    user_errors,
)


def _missing_extra() -> str | None:
    """The first package of the ``serve`` extra that is not installed, or None."""
    from importlib.util import find_spec

    for module, package in (
        ("fastapi", "fastapi"),
        ("uvicorn", "uvicorn"),
        ("prometheus_client", "prometheus-client"),
    ):
        if find_spec(module) is None:
            return package
    return None


class LogFormat(str, Enum):
    text = "text"
    json = "json"


HostOption = Annotated[
    str,
    typer.Option(
        help="Interface to bind. Another address than loopback needs API keys "
        "(--api-key-file or NABA_API_KEYS) or --no-auth."
    ),
]
PortOption = Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")]
MaxBatchSizeOption = Annotated[
    int, typer.Option(min=1, help="Most articles per request, and per shared predict call.")
]
MaxTextCharsOption = Annotated[
    int, typer.Option(min=1, help="Most characters in one article text (422 beyond).")
]
MaxBodyBytesOption = Annotated[
    int, typer.Option(min=1, help="Most bytes in one request body (413 beyond).")
]
BatchWaitOption = Annotated[
    float,
    typer.Option(min=0.0, help="How long to wait for concurrent requests to share a batch."),
]
WorkersOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="Processes sharing the port, each with its own model (with several "
        "GPUs, worker k takes GPU k mod N).",
    ),
]
ServeThreadsOption = Annotated[
    int | None,
    typer.Option(
        min=1, help="torch threads per process (default: the cores divided among the workers)."
    ),
]
ApiKeyFileOption = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="API keys, one per line (several: rotation); clients send "
        "Authorization: Bearer KEY. Re-read on SIGHUP. NABA_API_KEYS adds keys too.",
    ),
]
NoAuthOption = Annotated[
    bool,
    typer.Option(
        "--no-auth",
        help="Serve a non-loopback address without API keys (a proxy in front "
        "authenticates callers).",
    ),
]
SslCertfileOption = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, help="PEM certificate: serve HTTPS."),
]
SslKeyfileOption = Annotated[
    Path | None,
    typer.Option(exists=True, dir_okay=False, help="PEM private key of --ssl-certfile."),
]
GracefulTimeoutOption = Annotated[
    float,
    typer.Option(min=0.0, help="Seconds in-flight requests get to finish after SIGTERM."),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(help="Logs, access log included: text, or json (one object per line)."),
]


@app.command("serve")
def serve_command(
    model: Annotated[Path, typer.Argument(help="Model directory written by `naba train`.")],
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    precision: Annotated[PrecisionName, typer.Option(help=PRECISION_HELP)] = PrecisionName.fp32,
    device: DeviceOption = "auto",
    runtime: RuntimeOption = RuntimeName.auto,
    max_batch_size: MaxBatchSizeOption = 64,
    max_text_chars: MaxTextCharsOption = 100_000,
    max_body_bytes: MaxBodyBytesOption = 10_000_000,
    batch_wait_ms: BatchWaitOption = 5.0,
    workers: WorkersOption = 1,
    threads: ServeThreadsOption = None,
    allow_pickle: Annotated[bool, typer.Option(help=ALLOW_PICKLE_HELP)] = False,
    api_key_file: ApiKeyFileOption = None,
    no_auth: NoAuthOption = False,
    ssl_certfile: SslCertfileOption = None,
    ssl_keyfile: SslKeyfileOption = None,
    graceful_timeout: GracefulTimeoutOption = 20.0,
    log_format: LogFormatOption = LogFormat.text,
) -> None:
    """Serve a model over HTTP: POST /v1/classify, GET /v1/model, /metrics, /healthz, /readyz,
    /docs."""
    with user_errors():
        missing = _missing_extra()
        if missing:
            err(f"error: naba serve needs {missing}: pip install 'naba[serve]'")
            raise typer.Exit(code=2)
        from naba.serve.logs import configure_logging

        configure_logging(log_format.value)
        quiet_libraries()
        from naba.serve.app import ServeSettings
        from naba.serve.process import ServerOptions
        from naba.serve.server import serve

        settings = ServeSettings(
            max_batch_size=max_batch_size,
            max_text_chars=max_text_chars,
            max_body_bytes=max_body_bytes,
            batch_wait_ms=batch_wait_ms,
        )
        options = ServerOptions(
            api_key_file=str(api_key_file) if api_key_file else None,
            no_auth=no_auth,
            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
            graceful_timeout=graceful_timeout,
            log_format=log_format.value,
        )
        serve(
            model,
            host,
            port,
            precision=precision.value,
            settings=settings,
            allow_pickle=allow_pickle,
            device=device,
            workers=workers,
            threads=threads,
            options=options,
            runtime=runtime.value,
        )
